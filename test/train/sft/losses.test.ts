import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { infoNCE, klLoss, sftLoss, tripletLoss, type ContrastiveTargets } from '../../../src/train/sft/losses.js';
import { decodeF64, encodeF32, relErr, runTorch } from '../../helpers/torch.js';

type Oracle = Record<string, number | string>;

function leaf(data: Float32Array, shape: number[]): T.Tensor {
  return new T.Tensor(Float32Array.from(data), shape, true);
}

test('each stage-1 loss term and its gradient match PyTorch', () => {
  const rng = new T.Rng(7);
  const B = 4,
    M = 9,
    dim = 16,
    N = 11,
    V = 37;
  const q = T.randn([B, dim], rng).data,
    d = T.randn([M, dim], rng).data;
  // documents 0..3 are the positives; query 0 also has document 5 as a positive (excluded as a negative)
  const positive = Int32Array.from([0, 1, 2, 3]);
  const exclude = new Uint8Array(B * M);
  exclude[0 * M + 5] = 1;
  // triplet negatives: query 0 its hard negatives 4 and 6, the others every non-positive document
  const trip = new Uint8Array(B * M);
  trip[4] = 1;
  trip[6] = 1;
  for (let i = 1; i < B; i++) for (let j = 0; j < M; j++) if (j !== positive[i]) trip[i * M + j] = 1;
  const targets: ContrastiveTargets = { positive, exclude, tripletNegative: trip };
  const logits = T.randn([N, V], rng, 2).data,
    ref = T.randn([N, V], rng, 2).data;
  const labels = Int32Array.from({ length: N }, (_, i) => (i % 3 === 0 ? -100 : (i * 7) % V));
  const tau = 0.05,
    margin = 0.2,
    norm = 13;

  const o = runTorch<Oracle>('losses.py', {
    q: encodeF32(q),
    d: encodeF32(d),
    B,
    M,
    dim,
    positive: [...positive],
    exclude: [...exclude],
    triplet: [...trip],
    tau,
    margin,
    logits: encodeF32(logits),
    ref: encodeF32(ref),
    labels: [...labels],
    N,
    V,
    norm,
  });
  const check = (name: string, value: number, grads: [T.Tensor, string][]): void => {
    assert.ok(
      Math.abs(value - (o[name] as number)) <= 1e-5 * Math.max(1, Math.abs(o[name] as number)),
      `${name}: ${value} vs torch ${o[name]}`,
    );
    for (const [t, key] of grads) {
      const e = relErr(t.readGrad()!, decodeF64(o[key] as string));
      assert.ok(e <= 1e-4, `${key}: relative error ${e}`);
    }
  };

  let tq = leaf(q, [B, dim]),
    td = leaf(d, [M, dim]);
  let loss = infoNCE(tq, td, targets, tau);
  loss.backward();
  check('infonce', loss.item(), [
    [tq, 'infonce_q'],
    [td, 'infonce_d'],
  ]);

  tq = leaf(q, [B, dim]);
  td = leaf(d, [M, dim]);
  loss = tripletLoss(tq, td, targets, margin);
  loss.backward();
  assert.ok(loss.item() > 0, 'the triplet case must have active hinges to test anything');
  check('triplet', loss.item(), [
    [tq, 'triplet_q'],
    [td, 'triplet_d'],
  ]);

  let tl = leaf(logits, [N, V]);
  loss = sftLoss(tl, labels, norm);
  loss.backward();
  check('sft', loss.item(), [[tl, 'sft_grad']]);

  tl = leaf(logits, [N, V]);
  loss = klLoss(tl, new T.Tensor(ref, [N, V]), norm);
  loss.backward();
  check('kl', loss.item(), [[tl, 'kl_grad']]);
  assert.ok(
    Math.abs(loss.item() - (o.kl_torch as number)) <= 1e-5 * Math.abs(o.kl_torch as number),
    'KL agrees with torch.kl_div too',
  );
});

test('hand-computed values: a perfect retriever, equal policies', () => {
  // q = d: cos(q_i, d_i) = 1 and orthogonal otherwise, so InfoNCE = log(1 + (M−1)·e^(−1/τ)) exactly
  const eye = T.tensor([1, 0, 0, 0, 1, 0, 0, 0, 1], [3, 3]);
  const t: ContrastiveTargets = {
    positive: Int32Array.from([0, 1, 2]),
    exclude: new Uint8Array(9),
    tripletNegative: Uint8Array.from([0, 1, 1, 1, 0, 1, 1, 1, 0]),
  };
  assert.ok(Math.abs(infoNCE(eye, eye, t, 0.5).item() - Math.log(1 + 2 * Math.exp(-2))) < 1e-6);
  // hinge: max(0, 0.2 − 1 + 0) = 0 for every pair; with margin 1.5 it is 0.5 for every pair
  assert.equal(tripletLoss(eye, eye, t, 0.2).item(), 0);
  assert.ok(Math.abs(tripletLoss(eye, eye, t, 1.5).item() - 0.5) < 1e-6);
  // KL of a distribution with itself is 0; against uniform it is log V − H(π)
  const l = T.tensor([0, Math.log(3)], [1, 2]);
  assert.ok(Math.abs(klLoss(l, l, 1).item()) < 1e-7);
  const p = [0.25, 0.75];
  const expected = p[0] * Math.log(p[0] / 0.5) + p[1] * Math.log(p[1] / 0.5);
  assert.ok(Math.abs(klLoss(l, T.tensor([0, 0], [1, 2]), 1).item() - expected) < 1e-6);
});

test('InfoNCE leaves an excluded document out at τ = 1e-5 as at 0.05: PyTorch with −∞ agrees', () => {
  const rng = new T.Rng(11);
  const B = 3,
    M = 6,
    dim = 8;
  const q = T.randn([B, dim], rng).data,
    d = T.randn([M, dim], rng).data;
  // query 0's other positive (document 4) is the query itself: the most similar document by far
  d.set(q.subarray(0, dim), 4 * dim);
  const positive = Int32Array.from([0, 1, 2]);
  const exclude = new Uint8Array(B * M);
  exclude[4] = 1;
  const targets: ContrastiveTargets = { positive, exclude, tripletNegative: new Uint8Array(B * M) };
  for (const tau of [0.05, 1e-5]) {
    const o = runTorch<Oracle>('losses.py', {
      q: encodeF32(q),
      d: encodeF32(d),
      B,
      M,
      dim,
      positive: [...positive],
      exclude: [...exclude],
      triplet: [...targets.tripletNegative],
      tau,
      margin: 0.2,
      logits: encodeF32([0, 0]),
      ref: encodeF32([0, 0]),
      labels: [0],
      N: 1,
      V: 2,
      norm: 1,
    });
    const tq = leaf(q, [B, dim]),
      td = leaf(d, [M, dim]);
    const loss = infoNCE(tq, td, targets, tau);
    loss.backward();
    const torch = o.infonce as number;
    assert.ok(
      Math.abs(loss.item() - torch) <= 1e-5 * Math.max(1, Math.abs(torch)),
      `τ ${tau}: ${loss.item()} vs ${torch}`,
    );
    for (const [t, key] of [
      [tq, 'infonce_q'],
      [td, 'infonce_d'],
    ] as const) {
      const e = relErr(t.readGrad()!, decodeF64(o[key] as string));
      assert.ok(e <= 1e-4, `τ ${tau}, ${key}: relative error ${e}`);
    }
  }
});
