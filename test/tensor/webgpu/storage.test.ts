/** WebGPU storage and element-wise kernels against the native ones (relErr ≤ 1e-4, see harness.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BinaryOp, ReduceOp, UnaryOp } from '../../../src/tensor/kernels.js';
import * as T from '../../../src/tensor/index.js';
import { F32_TOL, down, ref, relErr, seeded, skipWithoutGpu, up, wg } from './harness.js';

const opt = { skip: skipWithoutGpu };
const r = seeded(7);

test('upload, download, fill and clone round-trip exactly', opt, () => {
  const x = r.randn(1000);
  const g = up(x);
  assert.deepEqual(down(g), x);
  const c = wg().clone(g);
  wg().fill(g, 2.5);
  assert.deepEqual(down(c), x);
  assert.ok(down(g).every((v) => v === 2.5));
  assert.ok(down(wg().alloc(300)).every((v) => v === 0));
});

test('binary ops broadcast like the native kernels, also with the output aliasing an input', opt, () => {
  const shape = [3, 5, 7];
  const a = r.randn(3 * 5 * 7),
    b = r.randn(5 * 1).map((v) => v + 3);
  for (const op of [BinaryOp.Add, BinaryOp.Sub, BinaryOp.Mul, BinaryOp.Div]) {
    const want = new Float32Array(a.length);
    ref.binary(op, a, [35, 7, 1], b, [0, 1, 0], want, shape);
    const out = wg().alloc(a.length);
    wg().binary(op, up(a), [35, 7, 1], up(b), [0, 1, 0], out, shape);
    assert.ok(relErr(down(out), want) <= F32_TOL, `op ${op}`);
    const ga = up(a);
    wg().binary(op, ga, [35, 7, 1], up(b), [0, 1, 0], ga, shape);
    assert.ok(relErr(down(ga), want) <= F32_TOL, `op ${op} in place`);
  }
});

test('unary ops and axpby', opt, () => {
  const x = r.randn(777).map((v) => Math.abs(v) + 0.1);
  for (const op of [
    UnaryOp.Neg,
    UnaryOp.Exp,
    UnaryOp.Log,
    UnaryOp.Sqrt,
    UnaryOp.Abs,
    UnaryOp.Square,
    UnaryOp.Reciprocal,
  ]) {
    const want = new Float32Array(x.length);
    ref.unary(op, x, want);
    const g = up(x);
    wg().unary(op, g, g);
    assert.ok(relErr(down(g), want) <= F32_TOL, `unary ${op}`);
  }
  const y = r.randn(777);
  const want = Float32Array.from(y);
  ref.axpby(0.5, x, -2, want);
  const gy = up(y);
  wg().axpby(0.5, up(x), -2, gy);
  assert.ok(relErr(down(gy), want) <= F32_TOL);
  const gx = up(x);
  wg().axpby(1, gx, 1, gx);
  assert.ok(
    relErr(
      down(gx),
      x.map((v) => 2 * v),
    ) <= F32_TOL,
    'axpby with x aliasing out',
  );
});

test('strided copy: transpose, offsets, and sums into a broadcast destination', opt, () => {
  const x = r.randn(4 * 6 * 5);
  // transpose [4,6,5] -> [5,6,4] read through strides
  const want = new Float32Array(x.length);
  ref.copy(x, 0, [1, 5, 30], want, 0, [24, 4, 1], [5, 6, 4], false);
  const out = wg().alloc(x.length);
  wg().copy(up(x), 0, [1, 5, 30], out, 0, [24, 4, 1], [5, 6, 4], false);
  assert.deepEqual(down(out), want);
  // sum over axes 0 and 2 into [6], accumulating onto existing values, with offsets
  const base = r.randn(10);
  const sum = Float32Array.from(base);
  ref.copy(x, 5, [30, 5, 1], sum, 2, [0, 1, 0], [3, 6, 5], true);
  const gs = up(base);
  wg().copy(up(x), 5, [30, 5, 1], gs, 2, [0, 1, 0], [3, 6, 5], true);
  assert.ok(relErr(down(gs), sum) <= F32_TOL);
});

test('reduce (sum, max with argmax), Σx² and the finite check', opt, () => {
  const x = r.randn(3 * 9 * 4);
  for (const op of [ReduceOp.Sum, ReduceOp.Max]) {
    const want = new Float32Array(12),
      wantArg = new Int32Array(12);
    ref.reduce(op, x, 3, 9, 4, want, wantArg);
    const out = wg().alloc(12),
      arg = new Int32Array(12);
    wg().reduce(op, up(x), 3, 9, 4, out, op === ReduceOp.Max ? arg : null);
    assert.ok(relErr(down(out), want) <= F32_TOL);
    if (op === ReduceOp.Max) assert.deepEqual(arg, wantArg);
  }
  const big = r.randn(3_000_001);
  const s = wg().sumSquares(up(big));
  assert.ok(Math.abs(s - ref.sumSquares(big)) / ref.sumSquares(big) <= F32_TOL);
  assert.equal(wg().allFinite(up(big)), true);
  big[2_999_999] = NaN;
  assert.equal(wg().allFinite(up(big)), false);
  big[2_999_999] = -Infinity;
  assert.equal(wg().allFinite(up(big)), false);
});

test('Σx² holds where float32 squares would not: gradients of 1e20 and 1e-30, and the clip of a huge norm', opt, () => {
  const near = (got: number, want: number): boolean => Math.abs(got - want) <= F32_TOL * want;
  for (const scale of [1e20, 1e-30, 1e37]) {
    const x = r.randn(5000, scale);
    const many = [x.subarray(0, 700), x.subarray(700)].map((part) => up(Float32Array.from(part)));
    assert.ok(near(wg().sumSquares(up(x)), ref.sumSquares(x)), `scale ${scale}: ${wg().sumSquares(up(x))}`);
    assert.ok(near(wg().sumSquaresMany(many), ref.sumSquares(x)), `scale ${scale}, two arrays`);
  }
  // one huge value beside ordinary ones, and Σx² exact where float32 sums it exactly
  const mixed = r.randn(3000);
  mixed[1234] = 2e19;
  assert.ok(near(wg().sumSquares(up(mixed)), ref.sumSquares(mixed)));
  assert.equal(wg().sumSquares(up(Float32Array.from({ length: 64 }, (_, i) => i))), 85344);
  assert.equal(wg().sumSquares(up(new Float32Array(0))), 0);
  // a non-finite value gives what double precision gives: Inf for an Inf, NaN once there is a NaN
  mixed[7] = -Infinity;
  assert.equal(wg().sumSquares(up(mixed)), Infinity);
  mixed[2500] = NaN;
  assert.ok(Number.isNaN(wg().sumSquaresMany([up(new Float32Array(9).fill(1)), up(mixed)])));

  T.setBackend('webgpu');
  try {
    const p = new T.Tensor(r.randn(1000), [1000], true);
    T.sum(T.scale(p, 1e19)).backward();
    // every gradient is 1e19: the norm is 1e19·√1000, and clipping scales each to 1/√1000
    assert.ok(near(T.clipGradNorm([p], 1), 1e19 * Math.sqrt(1000)));
    assert.ok(p.readGrad()!.every((g) => near(g, 1 / Math.sqrt(1000))));
  } finally {
    T.setBackend('native');
  }
});

test('max as the CPU backends: the first NaN wins, −Inf over an empty axis, and no outputs with argmax', opt, () => {
  const maxOf = (x: Float32Array, outer: number, n: number, inner: number): [Float32Array, Int32Array] => {
    const out = wg().alloc(outer * inner),
      arg = new Int32Array(outer * inner).fill(7);
    wg().reduce(ReduceOp.Max, up(x), outer, n, inner, out, arg);
    return [down(out), arg];
  };
  // rows [1, NaN, 5, NaN] and [NaN, 2, 3, 4], and a max over the middle axis with a NaN in one column
  const [m, a] = maxOf(Float32Array.from([1, NaN, 5, NaN, NaN, 2, 3, 4]), 2, 4, 1);
  assert.deepEqual(
    [Array.from(m), Array.from(a)],
    [
      [NaN, NaN],
      [1, 0],
    ],
  );
  const [mc, ac] = maxOf(Float32Array.from([1, 2, 9, NaN, 3, 4]), 1, 3, 2);
  assert.deepEqual(
    [Array.from(mc), Array.from(ac)],
    [
      [9, NaN],
      [1, 1],
    ],
  );
  assert.deepEqual(maxOf(new Float32Array(0), 2, 0, 3)[0], new Float32Array(6).fill(-Infinity));
  assert.deepEqual(maxOf(new Float32Array(0), 0, 5, 1)[1], new Int32Array(0));
  T.setBackend('webgpu');
  try {
    assert.deepEqual(T.logsumexp(new T.Tensor(new Float32Array(0), [0, 5]), 1).shape, [0]);
  } finally {
    T.setBackend('native');
  }
});
