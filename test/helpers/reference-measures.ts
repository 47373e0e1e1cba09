/**
 * nDCG@k and recall@k of a run written out plainly from their definitions, as trec_eval computes them
 * (ranking: score descending, ties by document id descending; gain = the graded judgement; discount
 * log2(rank + 1); every judged query counted, a query missing from the run scores 0): an independent
 * computation to check the eval layer's figures against, without its code.
 */
import type { Run } from '../../src/eval/run.js';

type Qrels = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** A ranked list's ids in trec_eval's order: score descending, ties by document id descending. */
export function ranked(list: { docIds: readonly string[]; scores: readonly number[] }): string[] {
  const order = list.docIds.map((id, i) => ({ id, score: list.scores[i]! }));
  order.sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return order.map((d) => d.id);
}

/**
 * Weighted reciprocal-rank fusion of two runs, written out: score(d) = wDense / (k + dense rank) + wBm25 / (k + BM25
 * rank), ranks from 1 in trec_eval's order; every document of either list kept.
 */
export function referenceFusion(dense: Run, bm25: Run, wDense: number, wBm25: number, k: number): Run {
  const out: Run = new Map();
  for (const q of new Set([...dense.keys(), ...bm25.keys()])) {
    const scores = new Map<string, number>();
    for (const [run, w] of [
      [dense, wDense],
      [bm25, wBm25],
    ] as const) {
      const list = run.get(q);
      if (list) ranked(list).forEach((d, r) => scores.set(d, (scores.get(d) ?? 0) + w / (k + r + 1)));
    }
    out.set(q, { docIds: [...scores.keys()], scores: [...scores.values()] });
  }
  return out;
}

export function referenceNdcg(run: Run, qrels: Qrels, k: number): { mean: number; perQuery: Map<string, number> } {
  const perQuery = new Map<string, number>();
  for (const [q, rels] of qrels) {
    const ideal = [...rels.values()]
      .filter((g) => g > 0)
      .sort((a, b) => b - a)
      .slice(0, k);
    const idcg = ideal.reduce((s, g, i) => s + g / Math.log2(i + 2), 0);
    const list = run.get(q);
    const docs = list ? ranked(list).slice(0, k) : [];
    const dcg = docs.reduce((s, d, i) => s + Math.max(0, rels.get(d) ?? 0) / Math.log2(i + 2), 0);
    perQuery.set(q, idcg > 0 ? dcg / idcg : 0);
  }
  const mean = [...perQuery.values()].reduce((a, b) => a + b, 0) / perQuery.size;
  return { mean, perQuery };
}

export function referenceRecall(run: Run, qrels: Qrels, k: number): number {
  let sum = 0;
  for (const [q, rels] of qrels) {
    const relevant = [...rels].filter(([, g]) => g > 0).map(([d]) => d);
    const list = run.get(q);
    const top = new Set(list ? ranked(list).slice(0, k) : []);
    sum += relevant.length > 0 ? relevant.filter((d) => top.has(d)).length / relevant.length : 0;
  }
  return sum / qrels.size;
}

/**
 * Two-sided p of Student's t with `df` degrees of freedom, by numerical integration of its density
 * (Simpson's rule on [0, |t|]): independent of the eval layer's incomplete-beta implementation.
 */
export function studentTwoSidedP(t: number, df: number): number {
  const logC = lgamma((df + 1) / 2) - lgamma(df / 2) - 0.5 * Math.log(df * Math.PI);
  const density = (x: number): number => Math.exp(logC - ((df + 1) / 2) * Math.log(1 + (x * x) / df));
  const n = 20000,
    a = Math.abs(t),
    h = a / n;
  let s = density(0) + density(a);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * density(i * h);
  return Math.max(0, 1 - (2 * (s * h)) / 3);
}

/** log Γ(x) by the Lanczos approximation (g = 7, n = 9). */
function lgamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lgamma(1 - x);
  const z = x - 1;
  let a = c[0]!;
  for (let i = 1; i < 9; i++) a += c[i]! / (z + i);
  const tt = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(tt) - tt + Math.log(a);
}

/**
 * The exact p of the paired randomization test: every one of the 2^n sign assignments of the per-query
 * differences, counting those whose |sum| reaches the observed one (a Monte Carlo test estimates this).
 */
export function exactRandomizationP(diffs: readonly number[]): number {
  const observed = Math.abs(diffs.reduce((a, b) => a + b, 0));
  const eps = 1e-12 * diffs.reduce((a, x) => a + Math.abs(x), 0);
  let hits = 0;
  for (let mask = 0; mask < 2 ** diffs.length; mask++) {
    const s = diffs.reduce((a, x, i) => a + (mask & (1 << i) ? -x : x), 0);
    if (Math.abs(s) >= observed - eps) hits++;
  }
  return hits / 2 ** diffs.length;
}
