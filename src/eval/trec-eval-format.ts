import { measureNames, TREC_CUTOFFS, type Evaluation } from './measures.js';
import { EvalInputError } from './input-error.js';

/**
 * C printf("%.Nf") for a double: rounds the exact binary value, ties to even, as glibc does. Number.toFixed rounds
 * exact ties up instead, which differs on values such as 1/32 = 0.03125 (a mean over 32 queries can be exactly that).
 */
export function cFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
  const neg = x < 0 || Object.is(x, -0);
  // toFixed(digits + 60) shows enough of the exact expansion to see whether the remainder is exactly one half.
  const exact = Math.abs(x).toFixed(Math.min(100, digits + 60));
  const dot = exact.indexOf('.');
  const head = exact.slice(0, dot + 1 + digits);
  const rest = exact.slice(dot + 1 + digits);
  let roundUp: boolean;
  if (rest[0]! > '5') roundUp = true;
  else if (rest[0]! < '5') roundUp = false;
  else if (/[1-9]/.test(rest.slice(1))) roundUp = true;
  else {
    const last = head[head.length - 1] === '.' ? head[head.length - 2]! : head[head.length - 1]!;
    roundUp = (last.charCodeAt(0) - 48) % 2 === 1;
  }
  let out = head.endsWith('.') ? head.slice(0, -1) : head;
  if (roundUp) {
    const chars = out.split('');
    let i = chars.length - 1;
    for (; i >= 0; i--) {
      if (chars[i] === '.') continue;
      if (chars[i] === '9') chars[i] = '0';
      else {
        chars[i] = String.fromCharCode(chars[i]!.charCodeAt(0) + 1);
        break;
      }
    }
    out = (i < 0 ? '1' : '') + chars.join('');
  }
  return (neg ? '-' : '') + out;
}

function line(name: string, qid: string, value: string): string {
  return `${name.padEnd(22)}\t${qid}\t${value}\n`;
}

function valueText(name: string, value: number, summed: readonly string[]): string {
  return summed.includes(name) ? String(Math.trunc(value)) : cFixed(value, 4);
}

/** What to print, as trec_eval's -m options select it. */
export interface MeasureSelection {
  /** Cutoffs to compute (the union of those requested). */
  cutoffs: number[];
  /** Output names (e.g. P_10, ndcg_cut_10, map) in trec_eval print order. */
  names: string[];
  runid: boolean;
  numQ: boolean;
}

const CUTOFF_MEASURES = ['P', 'recall', 'ndcg_cut', 'map_cut'];
const PLAIN_MEASURES = ['num_ret', 'num_rel', 'num_rel_ret', 'map', 'Rprec', 'recip_rank'];
export const SUPPORTED_MEASURES: readonly string[] = ['runid', 'num_q', ...PLAIN_MEASURES, ...CUTOFF_MEASURES];

/**
 * Parses trec_eval -m requests: a measure name, a cutoff measure with its cutoffs ("P.5,10", "ndcg_cut.10"), or
 * "official"/"all_trec" for everything implemented here. No request: everything, with `defaultCutoffs`.
 */
export function selectMeasures(
  requests: readonly string[],
  defaultCutoffs: readonly number[] = TREC_CUTOFFS,
): MeasureSelection {
  const wanted = new Map<string, number[] | null>(); // base name → cutoffs (null: defaults)
  let all = requests.length === 0;
  for (const r of requests) {
    // at the first dot only: the rest is the cutoff list, refused whole when it is none (P.5.5 is not P.5)
    const dot = r.indexOf('.');
    const [base, params] = dot < 0 ? [r, undefined] : [r.slice(0, dot), r.slice(dot + 1)];
    if (base === 'official' || base === 'all_trec') {
      all = true;
      continue;
    }
    // the name a cutoff measure is printed with (P_10), which -m asks for as P.10
    const printed = /^(P|recall|ndcg_cut|map_cut)_(\d+)$/.exec(base);
    if (printed && params === undefined) {
      const asked = `${printed[1]}.${printed[2]}`;
      throw new EvalInputError(
        `-m ${r}: a cutoff measure is asked for as ${asked} (trec_eval's syntax; ${r} is its printed name)`,
      );
    }
    if (!SUPPORTED_MEASURES.includes(base)) {
      throw new EvalInputError(`unknown measure '${base}'; supported: ${SUPPORTED_MEASURES.join(', ')} (or official)`);
    }
    if (params === undefined) {
      wanted.set(base, null);
      continue;
    }
    if (!CUTOFF_MEASURES.includes(base)) throw new EvalInputError(`measure '${base}' takes no cutoffs`);
    const cuts = params.split(',').map(Number);
    if (!cuts.every((k) => Number.isInteger(k) && k > 0)) {
      throw new EvalInputError(`cutoffs of '${r}' must be positive integers`);
    }
    wanted.set(base, [...new Set([...(wanted.get(base) ?? []), ...cuts])]);
  }
  if (all) for (const m of SUPPORTED_MEASURES) if (!wanted.has(m)) wanted.set(m, null);
  const cutoffSet = new Set<number>();
  for (const m of CUTOFF_MEASURES) {
    if (!wanted.has(m)) continue;
    for (const k of wanted.get(m) ?? defaultCutoffs) cutoffSet.add(k);
  }
  const cutoffs = [...cutoffSet].sort((a, b) => a - b);
  const names = measureNames(cutoffs).filter((name) => {
    const m = /^(P|recall|ndcg_cut|map_cut)_(\d+)$/.exec(name);
    if (!m) return wanted.has(name);
    if (!wanted.has(m[1]!)) return false;
    return (wanted.get(m[1]!) ?? defaultCutoffs).includes(Number(m[2]));
  });
  return { cutoffs, names, runid: wanted.has('runid'), numQ: wanted.has('num_q') };
}

/**
 * trec_eval's relational output: `measure<TAB>qid<TAB>value`, measure names left-justified to 22 characters,
 * values %6.4f (counts as integers). With perQuery, each query's lines come first (as trec_eval -q prints them).
 */
export function formatTrecEval(
  evaluation: Evaluation,
  runTag: string,
  perQuery = false,
  selection?: Pick<MeasureSelection, 'names' | 'runid' | 'numQ'>,
): string {
  const names = selection?.names ?? evaluation.measures;
  let out = '';
  if (perQuery) {
    for (const [qid, v] of evaluation.perQuery) {
      for (const m of names) out += line(m, qid, valueText(m, v[m]!, evaluation.summed));
    }
  }
  if (selection?.runid ?? true) out += line('runid', 'all', runTag);
  if (selection?.numQ ?? true) out += line('num_q', 'all', String(evaluation.numQueries));
  for (const m of names) out += line(m, 'all', valueText(m, evaluation.all[m]!, evaluation.summed));
  return out;
}
