import { corpusIds, type CorpusSource } from './beir.js';
import { denseSearch, type DenseSearchOptions, type EmbeddingMatrix } from './dense-search.js';
import { EvalInputError } from './input-error.js';
import type { ProgressFn, Retriever } from './retriever.js';
import type { Run } from './run.js';

/** The files the embeddings were read from, named when one lacks an id or the two disagree in dimension. */
export interface EmbeddingFiles {
  queries: string;
  documents: string;
}

export interface EmbeddingRetrieverOptions extends Omit<DenseSearchOptions, 'k' | 'onProgress'> {
  files?: EmbeddingFiles;
}

/**
 * Dense retrieval from precomputed embeddings (any model, reasoning on or off): exact cosine top-k. Queries and
 * documents are matched to the dataset by id; a judged query or a corpus document without an embedding is an error,
 * since silently skipping it would inflate or deflate every figure.
 */
export class EmbeddingRetriever implements Retriever {
  constructor(
    private readonly queryEmbeddings: EmbeddingMatrix,
    private readonly docEmbeddings: EmbeddingMatrix,
    readonly name = 'dense',
    private readonly options: EmbeddingRetrieverOptions = {},
  ) {}

  async retrieve(
    corpus: CorpusSource,
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run> {
    const { files, ...search } = this.options;
    const docs = select(this.docEmbeddings, await corpusIds(corpus), 'document', files?.documents);
    const qs = select(this.queryEmbeddings, [...queries.keys()], 'query', files?.queries);
    if (files !== undefined && qs.dim !== docs.dim) {
      throw new EvalInputError(
        `its vectors are ${qs.dim}-d and those of ${files.documents} ${docs.dim}-d; embed queries and documents ` +
          'with one model',
        files.queries,
      );
    }
    return (await denseSearch(qs, docs, { ...search, k, onProgress })).run;
  }
}

/** The rows of `m` for `ids`, in that order (the same matrix when it already matches); `file` is m's, if any. */
function select(m: EmbeddingMatrix, ids: string[], what: 'query' | 'document', file?: string): EmbeddingMatrix {
  if (m.ids.length === ids.length && m.ids.every((id, i) => id === ids[i])) return m;
  const row = new Map(m.ids.map((id, i) => [id, i]));
  const missing = ids.filter((id) => !row.has(id));
  if (missing.length > 0) {
    const of = what === 'query' ? 'judged queries of the split' : 'documents of the corpus';
    const lacks = `no embedding for ${what} '${missing[0]}' (${missing.length} of the ${ids.length} ${of} have none)`;
    throw new EvalInputError(file === undefined ? lacks : `has ${lacks}; embed them all`, file);
  }
  const data = new Float32Array(ids.length * m.dim);
  ids.forEach((id, i) => {
    const r = row.get(id)!;
    data.set(m.data.subarray(r * m.dim, (r + 1) * m.dim), i * m.dim);
  });
  return { ids, dim: m.dim, data };
}
