import type { RankedList, Run } from '../eval/run.js';
import { trecRankOrder } from '../eval/trec-order.js';

/**
 * Reciprocal-rank fusion (Cormack et al., 2009), weighted: score(d) = Σ_lists w_list / (k + rank_list(d)), rank
 * from 1; plain RRF is every weight 1. It needs no score calibration between BM25 and cosine, which is why it is
 * the usual hybrid default; the weights let a dev split say how far each ranking is to be trusted.
 */
export const RRF_K = 60;

/**
 * How a hybrid fuses its dense ranking with BM25's: the dense list's weight (BM25's is 1 − denseWeight) and k.
 * Absent, a hybrid is plain RRF with k = RRF_K (both weights 1).
 */
export interface HybridFusion {
  denseWeight: number;
  k: number;
}

/** Weights may be zero (a list that counts for nothing) but never negative or NaN: that would invert a ranking. */
function checkArguments(k: number, weights: readonly number[] | undefined, lists: number): void {
  if (!(Number.isFinite(k) && k >= 0)) throw new RangeError(`RRF k ${k} must be a finite number ≥ 0`);
  if (weights === undefined) return;
  if (weights.length !== lists) throw new RangeError(`${weights.length} RRF weights for ${lists} ranked lists`);
  for (const w of weights)
    if (!(Number.isFinite(w) && w >= 0)) throw new RangeError(`RRF weight ${w} must be a finite number ≥ 0`);
}

export function reciprocalRankFusion(
  lists: readonly (readonly string[])[],
  k = RRF_K,
  weights?: readonly number[],
): { id: string; score: number }[] {
  checkArguments(k, weights, lists.length);
  const scores = new Map<string, number>();
  lists.forEach((list, l) => {
    const w = weights?.[l] ?? 1;
    list.forEach((id, r) => scores.set(id, (scores.get(id) ?? 0) + w / (k + r + 1)));
  });
  return [...scores]
    .map(([id, score]) => ({ id, score }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Each list ranked by trec_eval's rule (score descending, ties by id descending): the ranks an evaluation sees. */
export function trecRankedIds(l: RankedList | undefined): string[] {
  return l ? trecRankOrder(l.docIds, l.scores).map((i) => l.docIds[i]!) : [];
}

/** Fuses runs query by query with (weighted) reciprocal rank, keeping `depth` documents per query. */
export function fuseRuns(runs: readonly Run[], depth: number, k = RRF_K, weights?: readonly number[]): Run {
  checkArguments(k, weights, runs.length);
  const out: Run = new Map();
  for (const q of new Set(runs.flatMap((r) => [...r.keys()]))) {
    const fused = reciprocalRankFusion(
      runs.map((r) => trecRankedIds(r.get(q))),
      k,
      weights,
    ).slice(0, depth);
    out.set(q, { docIds: fused.map((f) => f.id), scores: fused.map((f) => f.score) });
  }
  return out;
}

/** How many documents hybrid search takes from each ranking before it fuses them, unless 4k is more. */
export const HYBRID_CANDIDATES = 100;

/** A fusion in words, as every report says it: 'dense weight 0.1, k 10'. */
export function describeFusion(f: HybridFusion): string {
  return `dense weight ${f.denseWeight}, k ${f.k}`;
}

/** RRF's k and the [dense, BM25] weights of a hybrid's fusion; none given: plain RRF, k = RRF_K. */
function hybridRrf(fusion: HybridFusion | undefined): { k: number; weights: readonly number[] | undefined } {
  if (!fusion) return { k: RRF_K, weights: undefined };
  const w = fusion.denseWeight;
  if (!(w >= 0 && w <= 1)) throw new RangeError(`a hybrid's dense weight ${w} must lie in [0, 1]`);
  return { k: fusion.k, weights: [w, 1 - w] };
}

/** The hybrid ranking of one query: its dense and BM25 rankings (ids, best first) fused by `fusion`. */
export function fuseHybrid(
  dense: readonly string[],
  bm25: readonly string[],
  fusion?: HybridFusion,
): { id: string; score: number }[] {
  const { k, weights } = hybridRrf(fusion);
  return reciprocalRankFusion([dense, bm25], k, weights);
}

/** fuseHybrid over whole runs, `depth` documents kept per query. */
export function fuseHybridRuns(dense: Run, bm25: Run, depth: number, fusion?: HybridFusion): Run {
  const { k, weights } = hybridRrf(fusion);
  return fuseRuns([dense, bm25], depth, k, weights);
}
