import type { EmbedStats, QueryEmbedding, QueryOptions } from '../embed/index.js';
import { corpusIds, documentText, type BeirDocument, type CorpusSource } from './beir.js';
import { denseSearch, type EmbeddingMatrix } from './dense-search.js';
import { DOCUMENT_SHARD } from './embedding-cache.js';
import { EvalInputError } from './input-error.js';
import type { ProgressFn, Retriever } from './retriever.js';
import type { Run } from './run.js';

/** How a Search-R3 model retrieves: its query options, and how documents are turned into text. */
export interface ModelRetrieverOptions extends QueryOptions {
  /** Queries embedded per generation batch with reasoning on (default 8). */
  queryBatch?: number;
  /** Documents per embedDocuments call when the corpus is embedded (default DOCUMENT_SHARD, see embedCorpus). */
  documentGroup?: number;
}

/**
 * What a retriever needs of a Search-R3 model: search-r3's Embedder, or another engine that speaks the
 * protocol (llama.cpp's); either may answer synchronously.
 */
export interface SearchR3Encoder {
  readonly dimension: number;
  embedDocuments(
    texts: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): { vectors: Float32Array[]; stats: EmbedStats } | Promise<{ vectors: Float32Array[]; stats: EmbedStats }>;
  embedQueries(texts: readonly string[], opts?: QueryOptions): QueryEmbedding[] | Promise<QueryEmbedding[]>;
}

/** Row-major stack of equal-length vectors. */
export function stackVectors(vs: readonly Float32Array[], dim: number): Float32Array {
  const out = new Float32Array(vs.length * dim);
  vs.forEach((v, i) => out.set(v, i * dim));
  return out;
}

/**
 * `count` texts (`texts(start, end)` gives those of documents start..end-1, asked for in order, so it may read
 * them from a stream) embedded `group` at a time, each group's vectors written straight into one row-major
 * matrix. An encoder tokenizes all it is given before its first forward pass, so one call over a corpus of
 * millions would hold every document's token ids (GBs) beside the vectors; in groups the peak is the matrix plus
 * one group's prompts. Batches are cut by length within a group, as the evaluation recipe's shards (of the same
 * DOCUMENT_SHARD documents) are, so both give the same vectors. Progress is one count over all `count` texts.
 */
export async function embedCorpus(
  encoder: Pick<SearchR3Encoder, 'dimension' | 'embedDocuments'>,
  count: number,
  texts: (start: number, end: number) => string[] | Promise<string[]>,
  onProgress?: (done: number, total: number) => void,
  group = DOCUMENT_SHARD,
): Promise<Float32Array> {
  const dim = encoder.dimension;
  const data = new Float32Array(count * dim);
  for (let start = 0; start < count; start += group) {
    const end = Math.min(count, start + group);
    const { vectors } = await encoder.embedDocuments(await texts(start, end), (done) =>
      onProgress?.(start + done, count),
    );
    vectors.forEach((v, i) => data.set(v, (start + i) * dim));
    await new Promise((r) => setImmediate(r)); // let progress output through between groups
  }
  return data;
}

/**
 * Embeds every query (reasoning on: in generation batches of `queryBatch`, reporting progress between them),
 * counting the queries whose embed token had to be forced and the tokens the model generated.
 */
export async function embedQueryMatrix(
  embedder: SearchR3Encoder,
  queries: ReadonlyMap<string, string>,
  options: ModelRetrieverOptions = {},
  onProgress?: ProgressFn,
): Promise<{ matrix: EmbeddingMatrix; forced: number; generatedTokens: number }> {
  const qIds = [...queries.keys()];
  const qVecs: Float32Array[] = [];
  const batch = options.reasoning === 'on' ? (options.queryBatch ?? 8) : Math.max(1, qIds.length);
  let forced = 0,
    generatedTokens = 0;
  for (let i = 0; i < qIds.length; i += batch) {
    const slice = qIds.slice(i, i + batch);
    for (const q of await embedder.embedQueries(
      slice.map((id) => queries.get(id)!),
      options,
    )) {
      qVecs.push(q.vector);
      if (q.forced) forced++;
      generatedTokens += q.tokens.length;
    }
    onProgress?.('encoding queries', Math.min(i + batch, qIds.length), qIds.length);
    await new Promise((r) => setImmediate(r)); // let progress output through between batches
  }
  const dim = embedder.dimension;
  return { matrix: { ids: qIds, dim, data: stackVectors(qVecs, dim) }, forced, generatedTokens };
}

/**
 * A Search-R3 model as a retriever: documents embedded directly, queries with reasoning on or off,
 * then exact cosine top-k. Reasoning on vs off (or two models) are two runs of the same harness.
 */
export class ModelRetriever implements Retriever {
  /** Queries whose embed token had to be forced in the last retrieve(). */
  forcedQueries = 0;

  constructor(
    private readonly embedder: SearchR3Encoder,
    readonly name: string,
    private readonly options: ModelRetrieverOptions = {},
  ) {}

  async retrieve(
    corpus: CorpusSource,
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run> {
    const [{ run, forced }] = await this.retrieveModes(corpus, queries, k, [this.options], onProgress);
    this.forcedQueries = forced;
    return run;
  }

  /**
   * One run per query options of `modes` (reasoning off and on, say), the corpus embedded once for all of them;
   * with each run, the queries whose embed token had to be forced.
   */
  async retrieveModes(
    corpus: CorpusSource,
    queries: ReadonlyMap<string, string>,
    k: number,
    modes: readonly ModelRetrieverOptions[],
    onProgress?: ProgressFn,
  ): Promise<{ run: Run; forced: number }[]> {
    const docs = await this.documentMatrix(corpus, onProgress);
    const runs: { run: Run; forced: number }[] = [];
    for (const mode of modes) {
      const { matrix, forced } = await embedQueryMatrix(this.embedder, queries, mode, onProgress);
      runs.push({ run: (await denseSearch(matrix, docs, { k, onProgress })).run, forced });
    }
    return runs;
  }

  /**
   * The corpus embedded in groups (see embedCorpus), as one matrix. The corpus is read twice: its ids first, so
   * that the matrix is allocated once at its size, then its texts a group at a time, so that no more than one
   * group's texts are held.
   */
  private async documentMatrix(corpus: CorpusSource, onProgress?: ProgressFn): Promise<EmbeddingMatrix> {
    const ids = await corpusIds(corpus);
    const progress = (done: number, total: number): void => onProgress?.('encoding documents', done, total);
    const group = this.options.documentGroup ?? DOCUMENT_SHARD;
    const reader = corpus.documents()[Symbol.asyncIterator]();
    try {
      const texts = async (start: number, end: number): Promise<string[]> => {
        const out: string[] = [];
        for (let i = start; i < end; i++) out.push(documentText(sameDocument(await reader.next(), ids, i)));
        return out;
      };
      const data = await embedCorpus(this.embedder, ids.length, texts, progress, group);
      sameDocument(await reader.next(), ids, ids.length);
      return { ids, dim: this.embedder.dimension, data };
    } finally {
      await reader.return?.();
    }
  }
}

/**
 * Document `i` of a second read of a corpus whose first read gave `ids` (i = ids.length: the read's end), refused
 * when the two reads differ: the vectors would be filed under other documents' ids.
 */
function sameDocument(next: IteratorResult<BeirDocument>, ids: readonly string[], i: number): BeirDocument {
  const first = i < ids.length ? `'${ids[i]}'` : 'the end';
  const second = next.done ? 'the end' : `'${next.value.id}'`;
  if (first !== second) {
    throw new EvalInputError(
      `the corpus changed while it was read twice (document ${i + 1} was ${first}, then ${second}); ` +
        'evaluate a corpus file that nothing writes meanwhile',
    );
  }
  return next.value as BeirDocument;
}
