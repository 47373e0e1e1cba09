import { corpusIds, type CorpusSource } from './beir.js';
import { denseSearch, type DenseSearchOptions, type EmbeddingMatrix } from './dense-search.js';
import { EvalInputError } from './input-error.js';
import type { ProgressFn, Retriever } from './retriever.js';
import type { Run } from './run.js';

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
    private readonly options: Omit<DenseSearchOptions, 'k' | 'onProgress'> = {},
  ) {}

  async retrieve(
    corpus: CorpusSource,
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run> {
    const docs = select(this.docEmbeddings, await corpusIds(corpus), 'document');
    const qs = select(this.queryEmbeddings, [...queries.keys()], 'query');
    return (await denseSearch(qs, docs, { ...this.options, k, onProgress })).run;
  }
}

/** The rows of `m` for `ids`, in that order (the same matrix when it already matches). */
function select(m: EmbeddingMatrix, ids: string[], what: string): EmbeddingMatrix {
  if (m.ids.length === ids.length && m.ids.every((id, i) => id === ids[i])) return m;
  const row = new Map(m.ids.map((id, i) => [id, i]));
  const data = new Float32Array(ids.length * m.dim);
  ids.forEach((id, i) => {
    const r = row.get(id);
    if (r === undefined) throw new EvalInputError(`no ${what} embedding for id '${id}'`);
    data.set(m.data.subarray(r * m.dim, (r + 1) * m.dim), i * m.dim);
  });
  return { ids, dim: m.dim, data };
}
