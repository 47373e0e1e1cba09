/** Choosing the next token from a row of logits: greedy, temperature, top-k and top-p (nucleus). */
import { hostKernels, type Rng } from '../tensor/index.js';

export interface SamplingOptions {
  /** 0 (the default) picks the most likely token; otherwise logits are divided by it. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  topP?: number;
}

export interface Sampled {
  token: number;
  logprob: number;
}

/** Index of the largest logit (the lowest index among ties, as llama.cpp and torch.argmax). */
export function argmax(logits: Float32Array, offset = 0, n = logits.length - offset): number {
  let best = 0,
    bv = -Infinity;
  for (let i = 0; i < n; i++)
    if (logits[offset + i] > bv) {
      bv = logits[offset + i];
      best = i;
    }
  return best;
}

/**
 * Samples one token from logits[offset .. offset+n). The log-probability returned is that of the
 * token under softmax(logits / temperature) over the whole vocabulary (temperature 1 when greedy),
 * before top-k/top-p truncation: the quantity policy-gradient methods need.
 */
export function sampleToken(
  logits: Float32Array,
  offset: number,
  n: number,
  opts: SamplingOptions,
  rng: Rng | null,
): Sampled {
  const temperature = opts.temperature ?? 0;
  const t = temperature > 0 ? temperature : 1;
  const logZ = logSumExp(logits.subarray(offset, offset + n), t);
  const logprobOf = (tok: number): number => logits[offset + tok] / t - logZ;
  if (temperature <= 0) {
    const tok = argmax(logits, offset, n);
    return { token: tok, logprob: logprobOf(tok) };
  }
  if (!rng) throw new Error('sampling with temperature > 0 needs a seeded Rng');
  const mx = logZ; // exp(logit/t − logZ) is the probability itself, never above 1
  // Candidates sorted by logit, cut by top-k, then by top-p on the renormalised probabilities.
  let ids = Array.from({ length: n }, (_, i) => i);
  const topK = opts.topK ?? 0;
  if (topK > 0 && topK < n) ids = partialTop(logits, offset, ids, topK);
  else ids.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
  const probs = ids.map((i) => Math.exp(logits[offset + i] / t - mx));
  let total = probs.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let acc = 0,
      keep = 0;
    while (keep < probs.length && acc < topP * total) acc += probs[keep++];
    ids = ids.slice(0, Math.max(1, keep));
    probs.length = ids.length;
    total = probs.reduce((a, b) => a + b, 0);
  }
  let u = rng.next() * total;
  for (let i = 0; i < ids.length; i++) {
    u -= probs[i];
    if (u < 0) return { token: ids[i], logprob: logprobOf(ids[i]) };
  }
  const last = ids[ids.length - 1];
  return { token: last, logprob: logprobOf(last) };
}

/**
 * log Σ exp(row / t), on the backend's fused log-sum-exp (the cross-entropy kernel): over a 150k
 * vocabulary this is the costliest part of choosing a token, and runs once per generated token.
 */
function logSumExp(row: Float32Array, t: number): number {
  const x = t === 1 ? row : Float32Array.from(row, (v) => v / t);
  const loss = new Float32Array(1),
    lse = new Float32Array(1);
  hostKernels().crossEntropyForward(x, Int32Array.of(0), loss, lse, 1, x.length, -100);
  return lse[0];
}

/** The k largest logits' ids, sorted descending (ties by lower id). */
function partialTop(logits: Float32Array, offset: number, ids: number[], k: number): number[] {
  const better = (a: number, b: number): boolean =>
    logits[offset + a] > logits[offset + b] || (logits[offset + a] === logits[offset + b] && a < b);
  const top: number[] = [];
  for (const i of ids) {
    if (top.length < k) {
      top.push(i);
      continue;
    }
    let worst = 0;
    for (let j = 1; j < k; j++) if (better(top[worst], top[j])) worst = j;
    if (better(i, top[worst])) top[worst] = i;
  }
  return top.sort((a, b) => (better(a, b) ? -1 : 1));
}
