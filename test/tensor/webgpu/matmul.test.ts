/**
 * WebGPU gemm, gemmHalf, 16-bit widening and the embedding kernels against the native ones: float32 and
 * 16-bit products within relErr 1e-4 (both widen the same bits, then sum in float32), widening and
 * embedding lookups bit-exact, and the embedding gradient exact (it adds in the CPU's order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HalfArray, type HalfDtype } from '../../../src/tensor/half-float.js';
import type { GemmArgs } from '../../../src/tensor/kernels.js';
import { type MatmulKernels, matmulKernels } from '../../../src/tensor/webgpu/matmul-kernels.js';
import { F32_TOL, down, ref, relErr, seeded, skipWithoutGpu, up, wg } from './harness.js';

const opt = { skip: skipWithoutGpu };
const r = seeded(11);

interface Case {
  batch?: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  accumulate?: boolean;
  /** A bias added to every row of C (drawn at random). */
  bias?: boolean;
}

/** Full arguments with contiguous batch strides unless the case sets them. */
function shapeOf(c: Case): Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias'> {
  return {
    batch: c.batch ?? 1,
    m: c.m,
    n: c.n,
    k: c.k,
    transA: c.transA ?? false,
    transB: c.transB ?? false,
    strideA: c.strideA ?? c.m * c.k,
    strideB: c.strideB ?? c.k * c.n,
    strideC: c.strideC ?? c.m * c.n,
    accumulate: c.accumulate ?? false,
  };
}

/** Length an operand needs: the last batch entry's offset plus one matrix. */
const extent = (batch: number, stride: number, size: number): number => (batch - 1) * stride + size;

/** The kernels a case runs on: the backend's own, or matmulKernels with forced options. */
type Products = Pick<MatmulKernels, 'gemm' | 'gemmHalf'>;

function gemmCase(c: Case, kernels: Products = wg()): number {
  const s = shapeOf(c);
  const a = r.randn(extent(s.batch, s.strideA, s.m * s.k));
  const b = r.randn(extent(s.batch, s.strideB, s.k * s.n));
  const c0 = r.randn(extent(s.batch, s.strideC, s.m * s.n));
  const bias = c.bias ? r.randn(s.n) : null;
  const want = Float32Array.from(c0);
  ref.gemm({ ...s, a, b, c: want, bias });
  const gc = up(c0);
  kernels.gemm({ ...s, a: up(a), b: up(b), c: gc, bias: bias && up(bias) });
  return relErr(down(gc), want);
}

function gemmHalfCase(c: Case, dtype: HalfDtype, kernels: Products = wg()): number {
  const s = shapeOf(c);
  const a = r.randn(extent(s.batch, s.strideA, s.m * s.k));
  const b = HalfArray.from(r.randn(extent(s.batch, s.strideB, s.k * s.n)), dtype);
  const c0 = r.randn(extent(s.batch, s.strideC, s.m * s.n));
  const bias = c.bias ? r.randn(s.n) : null;
  const want = Float32Array.from(c0);
  ref.gemmHalf({ ...s, a, b, c: want, bias });
  const gc = up(c0);
  kernels.gemmHalf({ ...s, a: up(a), b: wg().halfFromHost(b), c: gc, bias: bias && up(bias) });
  return relErr(down(gc), want);
}

const transCombos: Array<[boolean, boolean]> = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

test('gemm matches native over awkward shapes and every transpose combination', opt, () => {
  for (const [m, n, k] of [
    [1, 1, 1],
    [3, 5, 7],
    [65, 33, 129],
    [64, 64, 16],
    [1, 130, 40],
  ]) {
    for (const [transA, transB] of transCombos) {
      const e = gemmCase({ m, n, k, transA, transB });
      assert.ok(e <= F32_TOL, `${m}×${n}×${k} transA ${transA} transB ${transB}: relErr ${e}`);
    }
  }
});

test('gemm with a long k and accumulating onto non-zero C', opt, () => {
  for (const [transA, transB] of transCombos) {
    const e = gemmCase({ m: 7, n: 70, k: 4099, transA, transB });
    assert.ok(e <= F32_TOL, `k 4099 transA ${transA} transB ${transB}: relErr ${e}`);
  }
  for (const [transA, transB] of transCombos) {
    const e = gemmCase({ m: 65, n: 33, k: 129, transA, transB, accumulate: true });
    assert.ok(e <= F32_TOL, `accumulate transA ${transA} transB ${transB}: relErr ${e}`);
  }
});

test('batched gemm: contiguous, shared A, shared B, and one C for every entry', opt, () => {
  const m = 9,
    n = 70,
    k = 33;
  const cases: Array<[string, Case]> = [
    ['contiguous', { batch: 3, m, n, k }],
    ['padded strides', { batch: 3, m, n, k, strideA: m * k + 5, strideB: k * n + 3, strideC: m * n + 7 }],
    ['strideA 0', { batch: 3, m, n, k, strideA: 0, transA: true }],
    ['strideB 0', { batch: 3, m, n, k, strideB: 0, transB: true }],
    ['strideA and strideB 0', { batch: 3, m, n, k, strideA: 0, strideB: 0, accumulate: true }],
    ['strideC 0, accumulating', { batch: 3, m, n, k, strideC: 0, accumulate: true }],
    ['strideC 0, overwriting', { batch: 3, m, n, k, strideC: 0 }],
    ['overlapping C', { batch: 3, m, n, k, strideC: n, accumulate: true }],
  ];
  for (const [name, c] of cases) {
    const e = gemmCase(c);
    assert.ok(e <= F32_TOL, `${name}: relErr ${e}`);
  }
});

test('gemm with k = 0 zeroes C or leaves it, and refuses an output that is an input', opt, () => {
  assert.ok(gemmCase({ m: 5, n: 6, k: 0 }) === 0);
  assert.ok(gemmCase({ m: 5, n: 6, k: 0, accumulate: true }) === 0);
  const x = up(r.randn(16));
  const s = shapeOf({ m: 4, n: 4, k: 4 });
  assert.throws(() => wg().gemm({ ...s, a: x, b: up(r.randn(16)), c: x }), /output c is also an input/);
  assert.throws(() => wg().gemm({ ...s, a: x, b: x, c: up(r.randn(15)) }), /c is indexed up to 16/);
});

test('gemmHalf (f16 and bf16 B) matches native gemmHalf', opt, () => {
  for (const dtype of ['f16', 'bf16'] as const) {
    for (const [transA, transB] of transCombos) {
      for (const [m, n, k] of [
        [1, 1, 1],
        [3, 5, 7],
        [65, 33, 129],
      ]) {
        const e = gemmHalfCase({ m, n, k, transA, transB, accumulate: m === 3 }, dtype);
        assert.ok(e <= F32_TOL, `${dtype} ${m}×${n}×${k} transA ${transA} transB ${transB}: relErr ${e}`);
      }
    }
    // Odd batch strides start entries in the middle of a packed word.
    const odd = gemmHalfCase({ batch: 3, m: 5, n: 7, k: 9, strideB: 7 * 9 + 1 }, dtype);
    assert.ok(odd <= F32_TOL, `${dtype} odd strideB: relErr ${odd}`);
    const shared = gemmHalfCase({ batch: 3, m: 5, n: 7, k: 1031, strideB: 0, transB: true }, dtype);
    assert.ok(shared <= F32_TOL, `${dtype} strideB 0, k 1031: relErr ${shared}`);
  }
});

test(
  'both tiled blocks, with and without prefetch, match native: partial tiles, transposes, batches, 16-bit B',
  opt,
  () => {
    // every product on the tiled kernel, small m included, so that each variant meets every edge case
    for (const [tile, prefetch] of [64, 128].flatMap((t) => [false, true].map((p) => [t, p] as const))) {
      const k = matmulKernels(wg().gpu, { tile: tile as 64 | 128, prefetch, skinny: 'off' });
      const variant = `tile ${tile}${prefetch ? ' prefetch' : ''}`;
      for (const [m, n, kk] of [
        [1, 1, 1],
        [3, 5, 7],
        [129, 130, 17],
        [128, 128, 8],
        [200, 257, 33],
      ]) {
        for (const [transA, transB] of transCombos) {
          const e = gemmCase({ m, n, k: kk, transA, transB, accumulate: m === 3 }, k);
          assert.ok(e <= F32_TOL, `${variant} ${m}×${n}×${kk} transA ${transA} transB ${transB}: relErr ${e}`);
        }
      }
      for (const [name, c] of [
        ['batched, padded strides', { batch: 3, m: 131, n: 70, k: 19, strideA: 131 * 19 + 5, strideC: 131 * 70 + 7 }],
        ['one C for every entry', { batch: 3, m: 140, n: 129, k: 9, strideC: 0, accumulate: true, transB: true }],
        ['k = 0, accumulating', { m: 130, n: 131, k: 0, accumulate: true }],
        ['a bias', { m: 131, n: 70, k: 19, transB: true, bias: true }],
        ['a bias, batched, padded C', { batch: 3, m: 131, n: 70, k: 19, strideC: 131 * 70 + 7, bias: true }],
        ['a bias, accumulating', { m: 140, n: 129, k: 9, accumulate: true, bias: true }],
        ['a bias, k = 0', { m: 130, n: 131, k: 0, bias: true }],
      ] as Array<[string, Case]>) {
        const e = gemmCase(c, k);
        assert.ok(e <= F32_TOL, `${variant} ${name}: relErr ${e}`);
      }
      for (const dtype of ['f16', 'bf16'] as const) {
        const half = { m: 150, n: 133, k: 41, transB: true, strideB: 133 * 41 + 1, batch: 2, bias: dtype === 'bf16' };
        const e = gemmHalfCase(half, dtype, k);
        assert.ok(e <= F32_TOL, `${variant} ${dtype}: relErr ${e}`);
      }
    }
  },
);

test('a tiled product with few blocks and a long k splits k, and still matches native', opt, () => {
  // forced counts (one split longer than the rest, splits ending mid-slice) and the automatic one
  for (const [tile, splitK, prefetch] of [
    [64, 7, false],
    [128, 3, false],
    [128, 3, true],
    [64, 'auto', false],
  ] as Array<[64 | 128, number | 'auto', boolean]>) {
    const k = matmulKernels(wg().gpu, { tile, skinny: 'off', splitK, prefetch });
    for (const [transA, transB] of transCombos) {
      const e = gemmCase({ m: 55, n: 130, k: 3001, transA, transB, accumulate: transA }, k);
      assert.ok(e <= F32_TOL, `tile ${tile} splitK ${splitK} transA ${transA} transB ${transB}: relErr ${e}`);
    }
    const half = gemmHalfCase({ m: 20, n: 70, k: 2500, transB: true, bias: true }, 'bf16', k);
    assert.ok(half <= F32_TOL, `tile ${tile} splitK ${splitK} bf16: relErr ${half}`);
  }
});

test('widenHalf is bit-exact over every 16-bit pattern; halfAllFinite finds Inf and NaN', opt, () => {
  // Every pattern plus one, so the last element sits alone in the low half of a word.
  const bits = Uint16Array.from({ length: 65537 }, (_, i) => i & 0xffff);
  for (const dtype of ['f16', 'bf16'] as const) {
    const h = new HalfArray(dtype, bits);
    const want = new Float32Array(bits.length);
    ref.widenHalf(h, want);
    const got = wg().alloc(bits.length);
    wg().widenHalf(wg().halfFromHost(h), got);
    assert.deepEqual(new Uint32Array(down(got).buffer), new Uint32Array(want.buffer), dtype);

    const finite = HalfArray.from(r.randn(1001), dtype);
    assert.equal(wg().halfAllFinite(wg().halfFromHost(finite)), true, `${dtype} finite`);
    for (const [at, value] of [
      [1000, Infinity],
      [7, NaN],
      [500, -Infinity],
    ]) {
      const planted = HalfArray.from(
        Float32Array.from(r.randn(1001), (v, i) => (i === at ? value : v)),
        dtype,
      );
      assert.equal(ref.halfAllFinite(planted), false);
      assert.equal(wg().halfAllFinite(wg().halfFromHost(planted)), false, `${dtype} ${value} at ${at}`);
    }
  }
});

test('embedding forward (f32, f16, bf16) and backward with repeated ids match native exactly', opt, () => {
  const vocab = 50,
    dim = 37;
  const ids = Int32Array.from([3, 7, 3, 49, 0, 7, 7, 3, 12, 0, 3]);
  const weight = r.randn(vocab * dim);
  const want = new Float32Array(ids.length * dim);
  ref.embeddingForward(weight, ids, want, dim);
  const out = wg().alloc(ids.length * dim);
  wg().embeddingForward(up(weight), ids, out, dim);
  assert.deepEqual(down(out), want);

  for (const dtype of ['f16', 'bf16'] as const) {
    const h = HalfArray.from(weight, dtype);
    const wantH = new Float32Array(ids.length * dim);
    ref.embeddingForwardHalf(h, ids, wantH, dim);
    const outH = wg().alloc(ids.length * dim);
    wg().embeddingForwardHalf(wg().halfFromHost(h), ids, outH, dim);
    assert.deepEqual(down(outH), wantH, dtype);
  }

  const dout = r.randn(ids.length * dim);
  const dw0 = r.randn(vocab * dim);
  const wantDw = Float32Array.from(dw0);
  ref.embeddingBackward(dout, ids, wantDw, dim);
  const dw = up(dw0);
  wg().embeddingBackward(up(dout), ids, dw, dim);
  assert.deepEqual(down(dw), wantDw);

  assert.throws(() => wg().embeddingForward(up(weight), Int32Array.from([50]), out, dim), /outside weight/);
});
