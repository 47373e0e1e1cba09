import type { EmbedStats, QueryEmbedding, QueryOptions } from '../embed/index.js';
import { documentText, type BeirDocument } from './beir.js';
import { denseSearch, type EmbeddingMatrix } from './dense-search.js';
import type { ProgressFn, Retriever } from './retriever.js';
import type { Run } from './run.js';

/** How a Search-R3 model retrieves: its query options, and how documents are turned into text. */
export interface ModelRetrieverOptions extends QueryOptions {
  /** Queries embedded per generation batch with reasoning on (default 8). */
  queryBatch?: number;
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
    corpus: readonly BeirDocument[],
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run> {
    const docs = await this.documentMatrix(corpus, onProgress);
    const { matrix, forced } = await embedQueryMatrix(this.embedder, queries, this.options, onProgress);
    this.forcedQueries = forced;
    const result = await denseSearch(matrix, docs, { k, onProgress });
    return result.run;
  }

  /**
   * The corpus embedded, as one matrix. Made here, so that the vectors one by one are garbage once stacked,
   * rather than held beside the matrix and the search's own normalised copy of it.
   */
  private async documentMatrix(corpus: readonly BeirDocument[], onProgress?: ProgressFn): Promise<EmbeddingMatrix> {
    const progress = (done: number, total: number): void => onProgress?.('encoding documents', done, total);
    const { vectors } = await this.embedder.embedDocuments(corpus.map(documentText), progress);
    const dim = this.embedder.dimension;
    return { ids: corpus.map((d) => d.id), dim, data: stackVectors(vectors, dim) };
  }
}
