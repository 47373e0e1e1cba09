import { basename } from 'node:path';
import type { Evaluation } from './measures.js';
import type { Qrels } from './qrels.js';
import type { Run } from './run.js';
import { measureVector } from './measures.js';
import { pairedRandomizationTest, pairedTTest } from './significance.js';
import { cFixed } from './trec-eval-format.js';
import { sortedIds } from './trec-order.js';

/** Readable names of trec_eval measures for the summary table. */
const LABEL: Record<string, string> = { ndcg_cut: 'nDCG', map_cut: 'MAP', recall: 'Recall', P: 'P' };

/** A compact table: one row per cutoff measure (nDCG, MAP, Recall, P) × cutoffs, then MAP, MRR, R-prec. */
export function formatSummaryTable(ev: Evaluation, cutoffs: readonly number[]): string {
  const w = 8;
  let out = ''.padEnd(8) + cutoffs.map((k) => `@${k}`.padStart(w)).join('') + '\n';
  for (const base of ['ndcg_cut', 'map_cut', 'recall', 'P']) {
    out += LABEL[base]!.padEnd(8) + cutoffs.map((k) => cFixed(ev.all[`${base}_${k}`]!, 4).padStart(w)).join('') + '\n';
  }
  out +=
    `MAP ${cFixed(ev.all['map']!, 4)}   MRR ${cFixed(ev.all['recip_rank']!, 4)}   ` +
    `R-prec ${cFixed(ev.all['Rprec']!, 4)}   queries ${ev.numQueries}\n`;
  return out;
}

export interface MeasureComparison {
  measure: string;
  /** Means over the compared queries. */
  a: number;
  b: number;
  /** Paired t-test and randomisation test p-values (two-sided). */
  tTestP: number;
  randomizationP: number;
  n: number;
}

/**
 * Compares two evaluations query by query over the queries both evaluated, paired t-test and sign-flip
 * randomisation test per measure. With trec_eval -c both evaluated every judged query (one a run misses scores 0
 * there); without, a query only one run answers has no pair and is left out, as each run's mean leaves out the
 * queries it misses.
 */
export function compareEvaluations(
  a: Evaluation,
  b: Evaluation,
  measures: readonly string[],
  options: { trials?: number; seed?: number } = {},
): MeasureComparison[] {
  const qids = sortedIds([...a.perQuery.keys()].filter((q) => b.perQuery.has(q)));
  return measures.map((measure) => {
    const va = measureVector(a, measure, qids);
    const vb = measureVector(b, measure, qids);
    const mean = (v: Float64Array) => v.reduce((s, x) => s + x, 0) / v.length;
    return {
      measure,
      a: mean(va),
      b: mean(vb),
      tTestP: pairedTTest(va, vb).p,
      randomizationP: pairedRandomizationTest(va, vb, options).p,
      n: qids.length,
    };
  });
}

/** One side of a comparison: the run's tag and where it came from (its file, or the retrieval just done). */
export interface ComparedRun {
  tag: string;
  source: string;
}

/**
 * The heading and the two column labels of a comparison. Runs are told apart by their tags; two runs with one tag
 * (two BM25 settings, two model folders: both tagged by their retriever's name) are told apart by their files.
 */
export function comparisonLabels(a: ComparedRun, b: ComparedRun): { heading: string; columns: [string, string] } {
  if (a.tag !== b.tag) return { heading: `${a.tag} vs ${b.tag} (${b.source})`, columns: [a.tag, b.tag] };
  const [nameA, nameB] = [basename(a.source), basename(b.source)];
  return {
    heading: `${a.source} vs ${b.source} (both tagged ${a.tag})`,
    columns: nameA === nameB ? ['this run', '--compare'] : [nameA, nameB],
  };
}

export function formatComparison(rows: readonly MeasureComparison[], columns: readonly [string, string]): string {
  const p = (x: number) => (x < 1e-4 ? x.toExponential(1) : cFixed(x, 4));
  const [wa, wb] = columns.map((c) => Math.max(10, c.length) + 1) as [number, number];
  let out =
    `${'measure'.padEnd(14)}${columns[0].padStart(wa)}${columns[1].padStart(wb)}` +
    `${'diff'.padStart(9)}${'p (t-test)'.padStart(12)}${'p (random.)'.padStart(12)}\n`;
  for (const r of rows) {
    const diff = r.a - r.b;
    out +=
      `${r.measure.padEnd(14)}${cFixed(r.a, 4).padStart(wa)}${cFixed(r.b, 4).padStart(wb)}` +
      `${((diff >= 0 ? '+' : '') + cFixed(diff, 4)).padStart(9)}` +
      `${p(r.tTestP).padStart(12)}${p(r.randomizationP).padStart(12)}\n`;
  }
  return out + `(${rows[0]?.n ?? 0} queries, two-sided paired tests)\n`;
}

/** How many judged queries each of two runs answers (a non-empty ranking), and how many both do. */
export interface RunCoverage {
  judged: number;
  a: number;
  b: number;
  both: number;
}

export function runCoverage(a: Run, b: Run, qrels: Qrels): RunCoverage {
  const answers = (run: Run, q: string): boolean => (run.get(q)?.docIds.length ?? 0) > 0;
  const c: RunCoverage = { judged: qrels.size, a: 0, b: 0, both: 0 };
  for (const q of qrels.keys()) {
    const [inA, inB] = [answers(a, q), answers(b, q)];
    c.a += Number(inA);
    c.b += Number(inB);
    c.both += Number(inA && inB);
  }
  return c;
}

/**
 * What a comparison of two runs that do not answer the same judged queries rests on, in one sentence, or null
 * when they answer the same ones. `complete`: trec_eval -c, where a query a run misses scores 0 in it.
 */
export function coverageWarning(c: RunCoverage, names: { a: string; b: string }, complete: boolean): string | null {
  if (c.a === c.both && c.b === c.both) return null;
  const counts =
    `of the ${c.judged} judged queries, ${names.a} answers ${c.a} and ${names.b} ${c.b}, ${c.both} of them ` +
    'in both';
  return complete
    ? `${counts}; a query a run misses scores 0 in it (-c), so the paired tests count all ${c.judged}.`
    : `${counts}; the paired tests count those ${c.both} (without -c a query a run misses is left out).`;
}
