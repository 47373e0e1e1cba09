/** Choosing the next token from a row of logits: greedy, temperature, top-k and top-p (nucleus). */
import { hostKernels, type Rng } from '../tensor/index.js';
import { topK } from './top-k.js';

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
  const given = logits.subarray(offset, offset + n);
  if (temperature > 0 && !rng) throw new Error('sampling with temperature > 0 needs a seeded Rng');
  // A draw gives a value that is not finite (NaN, ±Inf) probability 0, as the GPU's samplePick does; a row
  // with nothing finite draws (so the stream advances as for any row) and gives token 0. Only such a row
  // has a log-sum-exp that is not finite, so a finite one needs no pass over the row to look for them.
  const givenZ = logSumExp(given, t);
  const row = temperature > 0 && !Number.isFinite(givenZ) ? finiteOnly(given) : given;
  if (row === null) {
    rng!.next();
    return { token: 0, logprob: NaN };
  }
  const logZ = row === given ? givenZ : logSumExp(row, t);
  const logprobOf = (tok: number): number => row[tok] / t - logZ;
  if (temperature <= 0) {
    const tok = argmax(row);
    return { token: tok, logprob: logprobOf(tok) };
  }
  const draws = rng!;
  // exp(logit/t − logZ) is the probability itself, never above 1
  const prob = (i: number): number => Math.exp(row[i] / t - logZ);
  const k = opts.topK ?? 0,
    p = opts.topP ?? 1;
  const truncated = (k > 0 && k < n) || p < 1;
  const tok = truncated ? drawTruncated(row, prob, k > 0 && k < n ? k : 0, p, draws) : drawInIdOrder(n, prob, draws);
  return { token: tok, logprob: logprobOf(tok) };
}

/** The row with every value that is not finite as −Inf; null when none is finite. */
function finiteOnly(row: Float32Array): Float32Array | null {
  const out = row.map((v) => (Number.isFinite(v) ? v : -Infinity));
  return out.some((v) => v !== -Infinity) ? out : null;
}

/**
 * A draw from the whole distribution. Any fixed order of the tokens gives the same distribution, and id
 * order needs no sort: over a 150k vocabulary, sorting cost more than the forward pass of a small model.
 */
function drawInIdOrder(n: number, prob: (i: number) => number, rng: Rng): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += prob(i);
  let u = rng.next() * total,
    last = 0;
  for (let i = 0; i < n; i++) {
    const p = prob(i);
    if (p === 0) continue;
    last = i;
    u -= p;
    if (u < 0) return i;
  }
  return last; // rounding left u a hair above 0: the last token that had any probability
}

/**
 * A draw from the k most likely tokens (k = 0: all), cut to the smallest most-likely-first set whose
 * probability reaches top-p of theirs, renormalised. Most likely first, ties to the lower id; without a k,
 * a heap yields the tokens in that order only as far as the nucleus reaches, instead of sorting them all.
 */
function drawTruncated(row: Float32Array, prob: (i: number) => number, k: number, topP: number, rng: Rng): number {
  let next: () => number;
  let total = 0; // the probability top-p is a share of
  if (k > 0) {
    const best = topK(row, k);
    for (const i of best) total += prob(i);
    let j = 0;
    next = () => (j < best.length ? best[j++] : -1);
  } else {
    for (let i = 0; i < row.length; i++) total += prob(i);
    next = mostLikelyFirst(row);
  }
  const ids: number[] = [],
    probs: number[] = [];
  let acc = 0;
  for (let i = next(); i >= 0; i = next()) {
    ids.push(i);
    probs.push(prob(i));
    acc += probs[probs.length - 1];
    if (topP < 1 && acc >= topP * total) break;
  }
  let u = rng.next() * acc;
  for (let i = 0; i < ids.length; i++) {
    u -= probs[i];
    if (u < 0) return ids[i];
  }
  return ids[ids.length - 1];
}

/** Token ids by descending logit (ties: lower id first), one per call, -1 at the end: a binary max-heap. */
function mostLikelyFirst(row: Float32Array): () => number {
  const heap = new Int32Array(row.length);
  for (let i = 0; i < heap.length; i++) heap[i] = i;
  const above = (a: number, b: number): boolean => row[a] > row[b] || (row[a] === row[b] && a < b);
  let size = heap.length;
  const siftDown = (at: number): void => {
    const x = heap[at];
    let i = at;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const c = l + 1 < size && above(heap[l + 1], heap[l]) ? l + 1 : l;
      if (!above(heap[c], x)) break;
      heap[i] = heap[c];
      i = c;
    }
    heap[i] = x;
  };
  for (let i = (size >> 1) - 1; i >= 0; i--) siftDown(i);
  return () => {
    if (size === 0) return -1;
    const top = heap[0];
    heap[0] = heap[--size];
    siftDown(0);
    return top;
  };
}

/**
 * log Σ exp(row / t), on the backend's fused log-sum-exp (the cross-entropy kernel): over a 150k
 * vocabulary this is the costliest part of choosing a token, and runs once per generated token.
 */
function logSumExp(row: Float32Array, t: number): number {
  let x = row;
  if (t !== 1) {
    x = new Float32Array(row.length);
    for (let i = 0; i < row.length; i++) x[i] = row[i] / t;
  }
  const loss = new Float32Array(1),
    lse = new Float32Array(1);
  hostKernels().crossEntropyForward(x, Int32Array.of(0), loss, lse, 1, x.length, -100);
  return lse[0];
}
