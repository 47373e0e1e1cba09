import type { CorpusSource } from './beir.js';
import type { Run } from './run.js';

/**
 * Reports progress of long work: `done` of `total` units of `stage` ("indexing", "searching", ...); `total` is
 * Infinity while it is not known (a corpus streamed from its file, until its end), and `done` when the stage ends.
 */
export type ProgressFn = (stage: string, done: number, total: number) => void;

/**
 * The one hook between evaluation and whatever ranks documents. BM25 (bm25-retriever.ts) and precomputed embeddings
 * (embedding-retriever.ts) implement it here; the embed layer implements it for a Search-R3 model (embed documents,
 * embed queries with or without reasoning, then exact cosine search with denseSearch), so "reasoning on/off" or any
 * two models are two runs of the same harness.
 */
export interface Retriever {
  /** Short name, used as the run tag (one word). */
  readonly name: string;
  /**
   * The `k` best documents of `corpus` for each query, as a run (scores: higher is better). The corpus is read as
   * a stream (once or more; beirCorpusSource streams a file, corpusOf serves an array), so a retriever holds what
   * it makes of the documents (an index, a matrix) and never needs every text at once.
   */
  retrieve(
    corpus: CorpusSource,
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run>;
}
