/**
 * Hybrid search as an evaluation's retriever: BM25 and a dense retriever each rank `k` deep, and the two rankings
 * are fused query by query as hybrid search fuses them (the model's stored weights, or plain RRF), `k` kept. What
 * `eval --hybrid` measures, so that a fusion chosen on dev queries can be reported on the test split.
 */
import type { CorpusSource } from '../eval/beir.js';
import type { ProgressFn, Retriever } from '../eval/retriever.js';
import type { Run } from '../eval/run.js';
import { type HybridFusion, fuseHybridRuns } from './rrf.js';

export class HybridRetriever implements Retriever {
  readonly name: string;

  constructor(
    private readonly dense: Retriever,
    private readonly bm25: Retriever,
    private readonly fusion?: HybridFusion,
  ) {
    this.name = `hybrid-${dense.name}`;
  }

  async retrieve(
    corpus: CorpusSource,
    queries: ReadonlyMap<string, string>,
    k: number,
    onProgress?: ProgressFn,
  ): Promise<Run> {
    const lexical = await this.bm25.retrieve(corpus, queries, k, onProgress);
    const dense = await this.dense.retrieve(corpus, queries, k, onProgress);
    return fuseHybridRuns(dense, lexical, k, this.fusion);
  }
}
