import type { Evaluation } from './measures.js';

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
      else { chars[i] = String.fromCharCode(chars[i]!.charCodeAt(0) + 1); break; }
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

/**
 * trec_eval's relational output: `measure<TAB>qid<TAB>value`, measure names left-justified to 22 characters,
 * values %6.4f (counts as integers). With perQuery, each query's lines come first (as trec_eval -q prints them).
 */
export function formatTrecEval(evaluation: Evaluation, runTag: string, perQuery = false): string {
  let out = '';
  if (perQuery) {
    for (const [qid, v] of evaluation.perQuery) {
      for (const m of evaluation.measures) out += line(m, qid, valueText(m, v[m]!, evaluation.summed));
    }
  }
  out += line('runid', 'all', runTag);
  out += line('num_q', 'all', String(evaluation.numQueries));
  for (const m of evaluation.measures) out += line(m, 'all', valueText(m, evaluation.all[m]!, evaluation.summed));
  return out;
}
