/**
 * Rewards of one response in the retrieval environment. The response's embedding ranks the whole
 * corpus; the ranking reward is DCG@k of the relevant documents (gain = grade, discount log2(rank+1),
 * as trec_eval's ndcg_cut), nDCG@k, or the reciprocal rank of the best relevant document. A response
 * that never emitted <|embed_token|> (the token was forced) pays a format penalty; an optional length
 * penalty discourages long analyses.
 */

export type RankingRewardKind = 'dcg' | 'ndcg' | 'rr';

export interface RewardSettings {
  kind: RankingRewardKind;
  /** Cutoff: documents ranked below k earn nothing (rr: 0 = no cutoff). */
  k: number;
  /** Subtracted when the embed token had to be forced. */
  formatPenalty: number;
  /** Subtracted × (reasoning tokens / maxReasoningTokens). */
  lengthPenalty: number;
}

export const DEFAULT_REWARD: RewardSettings = { kind: 'dcg', k: 10, formatPenalty: 0.5, lengthPenalty: 0 };

/** A relevant document: its row in the environment's table and its relevance grade (≥ 1). */
export interface Positive {
  row: number;
  grade: number;
}

/**
 * 1-based rank of `row` when rows are ordered by descending score; ties are broken by the lower row
 * index, so the order is total and reproducible. A NaN score (an embedding that is not finite) ranks below
 * every number: compared as numbers, it would be above nothing and so first.
 */
export function rankOf(scores: ArrayLike<number>, row: number): number {
  const s = scores[row];
  const nan = Number.isNaN(s);
  let above = 0;
  for (let j = 0; j < scores.length; j++) {
    const v = scores[j];
    if (nan ? !Number.isNaN(v) || j < row : v > s || (v === s && j < row)) above++;
  }
  return above + 1;
}

/** DCG@k of relevant documents at the given 1-based ranks with the given grades. */
export function dcgAtK(ranks: readonly number[], grades: readonly number[], k: number): number {
  let dcg = 0;
  ranks.forEach((r, i) => {
    if (r <= k) dcg += grades[i] / Math.log2(r + 1);
  });
  return dcg;
}

/** The best DCG@k these grades can reach (all relevant documents on top, highest grade first). */
export function idealDcgAtK(grades: readonly number[], k: number): number {
  const sorted = [...grades].sort((a, b) => b - a);
  return dcgAtK(
    sorted.map((_, i) => i + 1),
    sorted,
    k,
  );
}

/** 1 / rank of the best-ranked relevant document (0 when it is below the cutoff; k = 0: no cutoff). */
export function reciprocalRank(ranks: readonly number[], k = 0): number {
  if (ranks.length === 0) return 0;
  const best = Math.min(...ranks);
  return k > 0 && best > k ? 0 : 1 / best;
}

/** The ranking reward of one response from its scores over every row of the corpus. */
export function rankingReward(
  scores: ArrayLike<number>,
  positives: readonly Positive[],
  kind: RankingRewardKind,
  k: number,
): number {
  const ranks = positives.map((p) => rankOf(scores, p.row));
  const grades = positives.map((p) => p.grade);
  if (kind === 'rr') return reciprocalRank(ranks, k);
  const dcg = dcgAtK(ranks, grades, k);
  if (kind === 'dcg') return dcg;
  const ideal = idealDcgAtK(grades, k);
  return ideal > 0 ? dcg / ideal : 0;
}

/** Ranking reward minus the format penalty (token forced) and the length penalty. */
export function responseReward(
  ranking: number,
  forced: boolean,
  reasoningTokens: number,
  maxReasoningTokens: number,
  s: RewardSettings,
): number {
  const length = maxReasoningTokens > 0 ? reasoningTokens / maxReasoningTokens : 0;
  return ranking - (forced ? s.formatPenalty : 0) - s.lengthPenalty * length;
}
