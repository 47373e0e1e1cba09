import { EvalInputError } from './input-error.js';
import type { Qrels } from './qrels.js';
import type { RankedList, Run } from './run.js';
import { sortedIds, trecRankOrder } from './trec-order.js';

/**
 * trec_eval's measures, computed the way trec_eval 9/10 computes them (m_*.c), with the same arithmetic order so
 * that values agree to the last bit in practice, not just to the printed digits:
 *   num_ret, num_rel, num_rel_ret (summed over queries), map, Rprec, recip_rank, P_k, recall_k, ndcg_cut_k, map_cut_k
 * (averaged over queries). Names are trec_eval's; cutoffs default to trec_eval's 5,10,15,20,30,100,200,500,1000.
 */
export const TREC_CUTOFFS: readonly number[] = [5, 10, 15, 20, 30, 100, 200, 500, 1000];

export interface EvalOptions {
  /** Cutoffs for P, recall, ndcg_cut and map_cut. */
  cutoffs?: readonly number[];
  /** Grade from which a document counts as relevant for binary measures (trec_eval -l; default 1). */
  relevanceLevel?: number;
  /**
   * trec_eval -c: average over every query in the qrels, scoring a query the run does not answer as an empty ranking.
   * Default (as trec_eval and pytrec_eval): only queries present in both the run and the qrels.
   */
  complete?: boolean;
  /**
   * Leave out queries whose judgments contain no relevant document. trec_eval does NOT do this (it evaluates such a
   * query, every measure is 0, and it counts in num_q and the averages); this option is for protocols that do.
   */
  skipQueriesWithoutRelevant?: boolean;
  /** MTEB (ArguAna, FiQA, ...): drop a retrieved document whose id equals the query id before evaluating. */
  ignoreIdenticalIds?: boolean;
  /** BRIGHT: per-query document ids to drop from the run before evaluating. */
  excludedIds?: ReadonlyMap<string, Iterable<string>>;
}

/** Measure values of one query, keyed by trec_eval measure name. */
export type MeasureValues = Record<string, number>;

export interface Evaluation {
  /** Measure names in trec_eval's print order. */
  measures: string[];
  /** Measures that are summed (num_*) rather than averaged. */
  summed: string[];
  /** Per-query values, queries in trec_eval's (strcmp) order. */
  perQuery: Map<string, MeasureValues>;
  /** Averages (sums for num_*) over the evaluated queries. */
  all: MeasureValues;
  numQueries: number;
}

/** trec_eval's relevance codes for retrieved documents that are not judged. */
const NONPOOL = -1;
const UNJUDGED = -2;

/** Measure names in trec_eval's print order for the given cutoffs. */
export function measureNames(cutoffs: readonly number[] = TREC_CUTOFFS): string[] {
  return [
    'num_ret',
    'num_rel',
    'num_rel_ret',
    'map',
    'Rprec',
    'recip_rank',
    ...cutoffs.map((k) => `P_${k}`),
    ...cutoffs.map((k) => `recall_${k}`),
    ...cutoffs.map((k) => `ndcg_cut_${k}`),
    ...cutoffs.map((k) => `map_cut_${k}`),
  ];
}

export const SUMMED_MEASURES: readonly string[] = ['num_ret', 'num_rel', 'num_rel_ret'];

function checkCutoffs(cutoffs: readonly number[]): void {
  for (let i = 0; i < cutoffs.length; i++) {
    const k = cutoffs[i]!;
    if (!Number.isInteger(k) || k <= 0) throw new EvalInputError(`cutoff ${k} must be a positive integer`);
    if (i > 0 && k <= cutoffs[i - 1]!) throw new EvalInputError('cutoffs must be increasing without duplicates');
  }
}

/**
 * Evaluates one query. `rels[i]` is the grade of the document at rank i+1 (already in trec_eval rank order), or
 * -1 (not in qrels) / -2 (judged negative: unjudged). `judged` holds every judgment of the query.
 */
export function evaluateRanking(
  rels: ArrayLike<number>,
  judged: ReadonlyMap<string, number>,
  cutoffs: readonly number[] = TREC_CUTOFFS,
  relevanceLevel = 1,
): MeasureValues {
  checkCutoffs(cutoffs);
  const numRet = rels.length;
  // Positive grades present in the qrels, highest first: the ideal ranking of ndcg (trec_eval uses every grade >= 1
  // for the ideal gain, whatever the relevance level).
  const gains: number[] = [];
  let numRel = 0;
  for (const r of judged.values()) {
    if (r >= relevanceLevel) numRel++;
    if (r > 0) gains.push(r);
  }
  gains.sort((a, b) => b - a);

  const v: MeasureValues = { num_ret: numRet, num_rel: numRel };
  let relSoFar = 0;
  let apSum = 0;
  let firstRel = -1;
  let dcg = 0;
  let rprecRel = 0;
  const rprecDepth = Math.min(numRet, numRel);
  // Values at each cutoff: the state after the first k ranks (or the whole run when it is shorter).
  const relAt: number[] = new Array(cutoffs.length);
  const apAt: number[] = new Array(cutoffs.length);
  const dcgAt: number[] = new Array(cutoffs.length);
  let c = 0;
  for (let i = 0; i < numRet; i++) {
    while (c < cutoffs.length && i === cutoffs[c]) {
      relAt[c] = relSoFar;
      apAt[c] = apSum;
      dcgAt[c] = dcg;
      c++;
    }
    const rel = rels[i]!;
    if (rel >= relevanceLevel) {
      relSoFar++;
      apSum += relSoFar / (i + 1);
      if (firstRel < 0) firstRel = i;
    }
    if (rel > 0) dcg += rel / Math.log2(i + 2); // rank i+1 is discounted by log2(rank+1) (trec_eval >= 9.0.4)
    if (i + 1 === rprecDepth) rprecRel = relSoFar;
  }
  for (; c < cutoffs.length; c++) {
    relAt[c] = relSoFar;
    apAt[c] = apSum;
    dcgAt[c] = dcg;
  }

  v['num_rel_ret'] = relSoFar;
  v['map'] = relSoFar > 0 ? apSum / numRel : 0;
  v['Rprec'] = rprecDepth > 0 ? rprecRel / numRel : 0;
  v['recip_rank'] = firstRel >= 0 ? 1 / (firstRel + 1) : 0;
  for (let j = 0; j < cutoffs.length; j++) v[`P_${cutoffs[j]}`] = relAt[j]! / cutoffs[j]!;
  for (let j = 0; j < cutoffs.length; j++) v[`recall_${cutoffs[j]}`] = numRel > 0 ? relAt[j]! / numRel : 0;

  // Ideal DCG at each cutoff, accumulated in the same order as m_ndcg_cut.c.
  let ideal = 0;
  c = 0;
  for (let i = 0; i < gains.length; i++) {
    while (c < cutoffs.length && i === cutoffs[c]) {
      v[`ndcg_cut_${cutoffs[c]}`] = ideal > 0 ? dcgAt[c]! / ideal : dcgAt[c]!;
      c++;
    }
    if (c === cutoffs.length) break;
    ideal += gains[i]! / Math.log2(i + 2);
  }
  for (; c < cutoffs.length; c++) v[`ndcg_cut_${cutoffs[c]}`] = ideal > 0 ? dcgAt[c]! / ideal : dcgAt[c]!;

  for (let j = 0; j < cutoffs.length; j++) v[`map_cut_${cutoffs[j]}`] = numRel > 0 ? apAt[j]! / numRel : 0;
  return v;
}

/** Grades of a query's retrieved documents in trec_eval rank order (see evaluateRanking). */
export function rankedGrades(list: RankedList, judged: ReadonlyMap<string, number>): Int32Array {
  const order = trecRankOrder(list.docIds, list.scores);
  const rels = new Int32Array(order.length);
  for (let r = 0; r < order.length; r++) {
    const g = judged.get(list.docIds[order[r]!]!);
    rels[r] = g === undefined ? NONPOOL : g < 0 ? UNJUDGED : g;
  }
  return rels;
}

/** Removes documents from a query's list (MTEB's identical ids, BRIGHT's excluded ids). */
function filterList(qid: string, list: RankedList, options: EvalOptions): RankedList {
  const excluded = options.excludedIds?.get(qid);
  if (!options.ignoreIdenticalIds && excluded === undefined) return list;
  const drop = new Set(excluded ?? []);
  if (options.ignoreIdenticalIds) drop.add(qid);
  const out: RankedList = { docIds: [], scores: [] };
  for (let i = 0; i < list.docIds.length; i++) {
    if (drop.has(list.docIds[i]!)) continue;
    out.docIds.push(list.docIds[i]!);
    out.scores.push(list.scores[i]!);
  }
  return out;
}

const EMPTY: RankedList = { docIds: [], scores: [] };

/** Evaluates a run against qrels with trec_eval's semantics (see EvalOptions for the choices that differ). */
export function evaluateRun(run: Run, qrels: Qrels, options: EvalOptions = {}): Evaluation {
  const cutoffs = options.cutoffs ?? TREC_CUTOFFS;
  const level = options.relevanceLevel ?? 1;
  const measures = measureNames(cutoffs);
  const perQuery = new Map<string, MeasureValues>();
  for (const qid of sortedIds(qrels.keys())) {
    const judged = qrels.get(qid)!;
    let list = run.get(qid);
    // An empty list is a query the run does not answer: a TREC run file cannot hold it either, so in-memory and
    // file-based evaluation agree.
    if (list === undefined || list.docIds.length === 0) {
      if (!options.complete) continue;
      list = EMPTY;
    }
    if (options.skipQueriesWithoutRelevant) {
      let any = false;
      for (const g of judged.values())
        if (g >= level) {
          any = true;
          break;
        }
      if (!any) continue;
    }
    list = filterList(qid, list, options);
    perQuery.set(qid, evaluateRanking(rankedGrades(list, judged), judged, cutoffs, level));
  }
  const all: MeasureValues = {};
  for (const m of measures) {
    let sum = 0;
    for (const v of perQuery.values()) sum += v[m]!;
    all[m] = SUMMED_MEASURES.includes(m) || perQuery.size === 0 ? sum : sum / perQuery.size;
  }
  return { measures, summed: [...SUMMED_MEASURES], perQuery, all, numQueries: perQuery.size };
}

/** Per-query values of one measure in a fixed query order (for significance tests); missing queries count 0. */
export function measureVector(evaluation: Evaluation, measure: string, qids: readonly string[]): Float64Array {
  const out = new Float64Array(qids.length);
  qids.forEach((q, i) => {
    out[i] = evaluation.perQuery.get(q)?.[measure] ?? 0;
  });
  return out;
}
