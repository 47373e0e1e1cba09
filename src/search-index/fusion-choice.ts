/**
 * Choosing a hybrid's fusion (the dense weight and RRF's k) on dev splits: a grid search for the highest mean
 * nDCG@10, as trec_eval computes it, of the fused rankings. A test split is refused by name, because weights tuned
 * on the queries they are then reported on overstate the hybrid.
 */
import { evaluateRun } from '../eval/measures.js';
import type { Qrels } from '../eval/qrels.js';
import type { Run } from '../eval/run.js';
import { type HybridFusion, RRF_K, fuseHybrid, trecRankedIds } from './rrf.js';

/** One dev set's two rankings and its judgments. */
export interface FusionDevCase {
  /** The split the queries and qrels come from (BeirDataset.split); 'test' is refused. */
  split: string;
  dense: Run;
  bm25: Run;
  qrels: Qrels;
}

export interface FusionGrid {
  denseWeights: readonly number[];
  ks: readonly number[];
}

/** Dense weight 0, 0.1, …, 1 (BM25 alone … dense alone; BM25's weight is 1 − it) and k around the usual 60. */
export const FUSION_GRID: FusionGrid = {
  denseWeights: Array.from({ length: 11 }, (_, i) => i / 10),
  ks: [10, 30, 60, 100],
};

export interface FusionCandidate extends HybridFusion {
  /** Mean over the dev cases of each case's mean nDCG@10 (so a large dev set does not outvote a small one). */
  ndcg10: number;
}

export interface FusionChoice {
  fusion: HybridFusion;
  ndcg10: number;
  /** Every grid point with its score, weights outer and k inner. */
  candidates: FusionCandidate[];
}

/** Throws for a test split: the one guard between the chooser and the figures it would inflate. */
export function refuseTestSplit(split: string): void {
  if (split.trim().toLowerCase() === 'test')
    throw new RangeError(
      "fusion weights are chosen on a dev split, never on 'test': weights fitted to the test queries would " +
        'overstate the hybrid reported on them; give a dev split (or a held-out part of train).',
    );
}

/**
 * Ties (equal scores, common on small dev sets) stay nearest the untuned default: the dense weight closest to
 * 0.5 (equal weights), then k closest to RRF_K, then the smaller dense weight, then the smaller k.
 */
function tieOrder(a: HybridFusion, b: HybridFusion): number {
  return (
    Math.abs(a.denseWeight - 0.5) - Math.abs(b.denseWeight - 0.5) ||
    Math.abs(a.k - RRF_K) - Math.abs(b.k - RRF_K) ||
    a.denseWeight - b.denseWeight ||
    a.k - b.k
  );
}

/** Only the top 10 of a fused ranking count for nDCG@10. */
const CUTOFF = 10;

/**
 * The fused ranking's first CUTOFF documents and every one tied with the last of them: trec_eval orders ties by id
 * (descending), not as the fusion does, so any of those may be in the top 10 it scores.
 */
function topForEvaluation(fused: readonly { id: string; score: number }[]): { id: string; score: number }[] {
  let n = Math.min(CUTOFF, fused.length);
  while (n < fused.length && fused[n]!.score === fused[CUTOFF - 1]!.score) n++;
  return fused.slice(0, n);
}

/** A dev case's rankings, each list in trec_eval's rank order once, so the grid only fuses and scores. */
interface PreparedCase {
  qrels: Qrels;
  lists: [string, string[], string[]][];
}

function prepare(c: FusionDevCase): PreparedCase {
  refuseTestSplit(c.split);
  if (c.qrels.size === 0) throw new RangeError(`the '${c.split}' dev case has no judged query`);
  const lists: PreparedCase['lists'] = [...c.qrels.keys()].map((q) => [
    q,
    trecRankedIds(c.dense.get(q)),
    trecRankedIds(c.bm25.get(q)),
  ]);
  return { qrels: c.qrels, lists };
}

function meanNdcg10(c: PreparedCase, fusion: HybridFusion): number {
  const run: Run = new Map();
  for (const [q, dense, bm25] of c.lists) {
    const top = topForEvaluation(fuseHybrid(dense, bm25, fusion));
    run.set(q, { docIds: top.map((t) => t.id), scores: top.map((t) => t.score) });
  }
  // complete: a judged query that neither ranking answers scores 0 instead of dropping out of the mean
  return evaluateRun(run, c.qrels, { cutoffs: [CUTOFF], complete: true }).all['ndcg_cut_10']!;
}

/** The grid point with the best mean dev nDCG@10 over `cases`, ties broken by tieOrder. */
export function chooseFusion(cases: readonly FusionDevCase[], grid: FusionGrid = FUSION_GRID): FusionChoice {
  if (cases.length === 0) throw new RangeError('choosing a fusion needs at least one dev case');
  if (grid.denseWeights.length === 0 || grid.ks.length === 0) throw new RangeError('the fusion grid is empty');
  const prepared = cases.map(prepare);
  const candidates: FusionCandidate[] = grid.denseWeights.flatMap((denseWeight) =>
    grid.ks.map((k) => {
      const fusion = { denseWeight, k };
      const ndcg10 = prepared.reduce((a, c) => a + meanNdcg10(c, fusion), 0) / prepared.length;
      return { ...fusion, ndcg10 };
    }),
  );
  const best = candidates.reduce((a, b) =>
    b.ndcg10 > a.ndcg10 || (b.ndcg10 === a.ndcg10 && tieOrder(b, a) < 0) ? b : a,
  );
  return { fusion: { denseWeight: best.denseWeight, k: best.k }, ndcg10: best.ndcg10, candidates };
}
