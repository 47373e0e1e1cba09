import type { RankedList, Run } from '../eval/run.js';
import { trecRankOrder } from '../eval/trec-order.js';

/**
 * Reciprocal-rank fusion (Cormack et al., 2009): score(d) = Σ_lists 1 / (k + rank_list(d)), rank from 1.
 * It needs no score calibration between BM25 and cosine, which is why it is the usual hybrid default.
 */
export const RRF_K = 60;

export function reciprocalRankFusion(
  lists: readonly (readonly string[])[],
  k = RRF_K,
): { id: string; score: number }[] {
  const scores = new Map<string, number>();
  for (const list of lists) list.forEach((id, r) => scores.set(id, (scores.get(id) ?? 0) + 1 / (k + r + 1)));
  return [...scores]
    .map(([id, score]) => ({ id, score }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Fuses runs query by query with reciprocal rank, keeping `depth` documents per query. Each input list is ranked by
 * trec_eval's rule (score descending, ties by id descending), so the fusion sees the ranks an evaluation sees.
 */
export function fuseRuns(runs: readonly Run[], depth: number, k = RRF_K): Run {
  const out: Run = new Map();
  const ranked = (l: RankedList | undefined): string[] =>
    l ? trecRankOrder(l.docIds, l.scores).map((i) => l.docIds[i]!) : [];
  for (const q of new Set(runs.flatMap((r) => [...r.keys()]))) {
    const fused = reciprocalRankFusion(
      runs.map((r) => ranked(r.get(q))),
      k,
    ).slice(0, depth);
    out.set(q, { docIds: fused.map((f) => f.id), scores: fused.map((f) => f.score) });
  }
  return out;
}
