/** WebGPU storage and element-wise kernels against the native ones (relErr ≤ 1e-4, see harness.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BinaryOp, ReduceOp, UnaryOp } from '../../../src/tensor/kernels.js';
import * as T from '../../../src/tensor/index.js';
import {
  GPU_REDUCE,
  type ReduceSplit,
  SOFTWARE_REDUCE,
  reduceLanes,
  storageKernels,
} from '../../../src/tensor/webgpu/storage-kernels.js';
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
  const [emptyMax, emptyArg] = maxOf(new Float32Array(0), 2, 0, 3);
  assert.deepEqual([emptyMax, emptyArg], [new Float32Array(6).fill(-Infinity), new Int32Array(6)]);
  assert.deepEqual(maxOf(new Float32Array(0), 0, 5, 1)[1], new Int32Array(0));
  T.setBackend('webgpu');
  try {
    assert.deepEqual(T.logsumexp(new T.Tensor(new Float32Array(0), [0, 5]), 1).shape, [0]);
  } finally {
    T.setBackend('native');
  }
});

/** The grids of the `reduce` dispatches a reduction takes: one per fold of its lanes, the last with one lane. */
function reduceGrids(outer: number, n: number, inner: number, split: ReduceSplit): string[] {
  const grids: string[] = [];
  for (let lanes = 0; lanes !== 1; n = lanes) {
    lanes = reduceLanes(outer, n, inner, split);
    grids.push(`${Math.ceil((outer * lanes * inner) / 256)}×1×1`);
  }
  return grids;
}

test(
  'few outputs over a long axis: lanes split the axis, with native sums and maxima, the same bits each run',
  opt,
  () => {
    const gpu = wg().gpu;
    // this device's split, and a large GPU's wherever the tests run
    for (const [kernels, split] of [
      [wg(), gpu.facts.software ? SOFTWARE_REDUCE : GPU_REDUCE],
      [storageKernels(gpu, GPU_REDUCE), GPU_REDUCE],
    ] as const) {
      const once = (op: ReduceOp, x: Float32Array, outer: number, n: number, inner: number) => {
        const out = wg().alloc(outer * inner),
          arg = new Int32Array(outer * inner);
        const gx = up(x);
        gpu.startProfile();
        kernels.reduce(op, gx, outer, n, inner, out, op === ReduceOp.Max ? arg : null);
        const values = down(out);
        const grids = gpu.stopProfile().flatMap((t) => Array<string>(t.dispatches).fill(`${t.groups.join('×')}`));
        return { values, arg, grids };
      };
      // [outer, n, inner]: a bias gradient's shape, a few columns, outer rows, a whole-array sum; a large GPU
      // splits them all, a software adapter those with under 8 outputs
      const shapes = [
        [1, 9000, 128],
        [1, 9000, 3],
        [3, 9000, 5],
        [2, 9000, 3],
        [2, 8200, 70],
        [1, 30000, 1],
      ];
      const splitting = shapes.filter(([outer, n, inner]) => reduceGrids(outer, n, inner, split).length > 1);
      assert.equal(splitting.length, split === GPU_REDUCE ? shapes.length : 3);
      for (const [outer, n, inner] of shapes) {
        const what = `[${outer}, ${n}, ${inner}] split as ${JSON.stringify(split)}`;
        const grids = reduceGrids(outer, n, inner, split);
        // an offset makes a serial float32 sum drift, as the sums of a long axis do
        const x = r.randn(outer * n * inner).map((v) => v + 3);
        const want = new Float32Array(outer * inner);
        ref.reduce(ReduceOp.Sum, x, outer, n, inner, want, null);
        const got = once(ReduceOp.Sum, x, outer, n, inner);
        assert.deepEqual(got.grids.sort(), grids.sort(), what);
        // no worse than one float32 loop over the whole axis
        const serial = new Float32Array(outer * inner);
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < inner; i++) {
            let s = 0;
            for (let j = 0; j < n; j++) s = Math.fround(s + x[(o * n + j) * inner + i]);
            serial[o * inner + i] = s;
          }
        }
        const err = relErr(got.values, want);
        assert.ok(err <= Math.max(relErr(serial, want), 1e-7), `${what}: ${err}`);
        assert.deepEqual(once(ReduceOp.Sum, x, outer, n, inner).values, got.values, `${what}: a second run`);

        // values from a few integers tie everywhere (the first index wins); in column 0 a NaN near the end, in
        // column 1 an earlier NaN beats a later one, and the last column is −Inf throughout
        const ys = Float32Array.from(r.ints(outer * n * inner, 6));
        ys[(n - 1) * inner] = NaN;
        if (inner > 1) {
          ys[(n - 2) * inner + 1] = NaN;
          ys[(Math.floor(n / 3) + 1) * inner + 1] = NaN;
          for (let j = 0; j < n; j++) ys[j * inner + inner - 1] = -Infinity;
        }
        const wantMax = new Float32Array(outer * inner),
          wantArg = new Int32Array(outer * inner);
        ref.reduce(ReduceOp.Max, ys, outer, n, inner, wantMax, wantArg);
        const max = once(ReduceOp.Max, ys, outer, n, inner);
        assert.deepEqual(max.values, wantMax, what);
        assert.deepEqual(max.arg, wantArg, what);
      }
    }
    // a large GPU splits the bias gradients of the benchmark's 8×256 tokens, where a software adapter keeps one
    // loop per output; short axes and many outputs stay one dispatch
    assert.deepEqual(reduceGrids(1, 2048, 896, GPU_REDUCE), ['448×1×1', '28×1×1', '4×1×1']);
    assert.deepEqual(reduceGrids(1, 2048, 128, GPU_REDUCE), ['64×1×1', '4×1×1', '1×1×1']);
    assert.deepEqual(reduceGrids(1, 2048, 896, SOFTWARE_REDUCE), ['4×1×1']);
    assert.deepEqual(reduceGrids(1, 2048, 128, SOFTWARE_REDUCE), ['1×1×1']);
    assert.deepEqual(reduceGrids(1, 1e6, 1, SOFTWARE_REDUCE), ['1×1×1', '1×1×1']);
    assert.deepEqual(reduceGrids(3, 9, 4, GPU_REDUCE), ['1×1×1']);
    assert.deepEqual(reduceGrids(16384, 1000, 1, GPU_REDUCE), ['64×1×1']);
  },
);
