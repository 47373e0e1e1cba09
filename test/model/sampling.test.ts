/**
 * Sampling draws from the distribution it claims: softmax(logits / temperature), cut to the top-k and the
 * top-p nucleus (most likely first, ties to the lower id) and renormalised. Each check counts 40,000 seeded
 * draws and holds every token's frequency within 5 standard deviations of its probability (a binomial
 * bound: about ±0.012 at p = 0.5), so a draw biased by a few percent, or one that leaves a token out of or
 * lets one into the nucleus, fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { sampleToken, type SamplingOptions } from '../../src/model/sampling.js';

const DRAWS = 40_000;

/** The distribution a sampler must follow, computed the plain way: a full sort and explicit cuts. */
function reference(logits: number[], opts: SamplingOptions): number[] {
  const t = opts.temperature!;
  const order = logits.map((_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  let kept = opts.topK ? order.slice(0, opts.topK) : order;
  const mx = Math.max(...logits);
  const w = (i: number): number => Math.exp((logits[i] - mx) / t);
  const mass = kept.reduce((a, i) => a + w(i), 0);
  if ((opts.topP ?? 1) < 1) {
    let acc = 0,
      n = 0;
    while (n < kept.length && acc < opts.topP! * mass) acc += w(kept[n++]);
    kept = kept.slice(0, Math.max(1, n));
  }
  const z = kept.reduce((a, i) => a + w(i), 0);
  return logits.map((_, i) => (kept.includes(i) ? w(i) / z : 0));
}

function frequencies(logits: number[], opts: SamplingOptions): number[] {
  const row = Float32Array.from([9, 9, ...logits]); // at an offset, as a batch row is
  const rng = new T.Rng(11);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < DRAWS; i++) counts[sampleToken(row, 2, logits.length, opts, rng).token]++;
  return counts.map((c) => c / DRAWS);
}

function assertFollows(logits: number[], opts: SamplingOptions): void {
  const want = reference(logits, opts),
    got = frequencies(logits, opts);
  for (let i = 0; i < logits.length; i++) {
    const sd = Math.sqrt((want[i] * (1 - want[i])) / DRAWS);
    if (want[i] === 0) assert.equal(got[i], 0, `token ${i} is outside the kept set but was drawn`);
    else assert.ok(Math.abs(got[i] - want[i]) <= 5 * sd, `token ${i}: drawn ${got[i]}, probability ${want[i]}`);
  }
}

const logits = [1.5, 0.2, 1.5, -0.7, 0.9, 0.2, 2.1, -2];

test('temperature sampling follows softmax(logits / t), and reports each token’s log-probability', () => {
  assertFollows(logits, { temperature: 0.8 });
  assertFollows(logits, { temperature: 2 });
  const row = Float32Array.from(logits);
  const lse = Math.log(logits.reduce((a, x) => a + Math.exp(x / 0.8), 0));
  const s = sampleToken(row, 0, row.length, { temperature: 0.8 }, new T.Rng(3));
  assert.ok(Math.abs(s.logprob - (logits[s.token] / 0.8 - lse)) < 1e-5);
});

test('top-p keeps the smallest most-likely-first set reaching p, ties to the lower id', () => {
  assertFollows(logits, { temperature: 1, topP: 0.5 });
  assertFollows(logits, { temperature: 1, topP: 0.8 });
  assertFollows(logits, { temperature: 0.7, topP: 0.9 });
});

test('top-k keeps the k most likely (ties to the lower id), and top-p then cuts within them', () => {
  assertFollows(logits, { temperature: 1, topK: 3 });
  assertFollows(logits, { temperature: 1, topK: 5, topP: 0.7 });
});

test('a drawn value that is not finite has probability 0; a row with none finite gives token 0 and draws', () => {
  const noisy = [1.5, NaN, 1.5, Infinity, 0.9, -Infinity, 2.1, -2];
  const clean = noisy.map((v) => (Number.isFinite(v) ? v : -Infinity));
  for (const topP of [1, 0.9]) {
    const a = new T.Rng(11),
      b = new T.Rng(11);
    for (let i = 0; i < 200; i++) {
      const got = sampleToken(Float32Array.from(noisy), 0, 8, { temperature: 1, topP }, a);
      const want = sampleToken(Float32Array.from(clean), 0, 8, { temperature: 1, topP }, b);
      assert.deepEqual(got, want, `draw ${i}, top-p ${topP}`);
      assert.ok(Number.isFinite(noisy[got.token]));
    }
  }
  const r = new T.Rng(5),
    ref = new T.Rng(5);
  const none = sampleToken(Float32Array.of(NaN, -Infinity, Infinity), 0, 3, { temperature: 1 }, r);
  assert.equal(none.token, 0);
  assert.ok(Number.isNaN(none.logprob));
  ref.next();
  assert.equal(r.next(), ref.next(), 'the row took its draw');
});
