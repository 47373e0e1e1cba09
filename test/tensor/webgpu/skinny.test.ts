/**
 * The skinny products (m ≤ 8) against native gemm and gemmHalf, through both reductions (workgroup memory,
 * and subgroups where the device has them: lavapipe does), with k split across workgroups or not.
 * Float32 sums in a different order than the CPU's: relErr ≤ 1e-4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HalfArray, type HalfDtype } from '../../../src/tensor/half-float.js';
import type { GemmArgs } from '../../../src/tensor/kernels.js';
import type { GpuArray } from '../../../src/tensor/webgpu/gpu-array.js';
import { type MatmulKernels, type MatmulOptions, matmulKernels } from '../../../src/tensor/webgpu/matmul-kernels.js';
import { F32_TOL, down, ref, relErr, seeded, skipWithoutGpu, up, wg } from './harness.js';

const opt = { skip: skipWithoutGpu };
const r = seeded(23);

type BType = 'f32' | HalfDtype;
type Shape = Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias'> & { withBias?: boolean };

function shape(m: number, n: number, k: number, o: Partial<Shape> = {}): Shape {
  return {
    batch: 1,
    m,
    n,
    k,
    transA: false,
    transB: false,
    strideA: m * k,
    strideB: k * n,
    strideC: m * n,
    accumulate: false,
    ...o,
  };
}

/** B on the host (float32 values, or the 16-bit array the native kernel reads) and on the GPU. */
interface Operand {
  host: Float32Array | HalfArray;
  gpu: GpuArray;
}

function operandB(values: Float32Array, dtype: BType): Operand {
  if (dtype === 'f32') return { host: values, gpu: up(values) };
  const host = HalfArray.from(values, dtype);
  return { host, gpu: wg().halfFromHost(host) };
}

/** relErr of `kernels`' product against native for one shape, on fresh A and C. */
function check(kernels: MatmulKernels, shape: Shape, b: Operand): number {
  const { withBias, ...s } = shape;
  const a = r.randn((s.batch - 1) * s.strideA + s.m * s.k);
  const c0 = r.randn((s.batch - 1) * s.strideC + s.m * s.n);
  const bias = withBias ? r.randn(s.n) : null;
  const want = Float32Array.from(c0);
  if (b.host instanceof HalfArray) ref.gemmHalf({ ...s, a, b: b.host, c: want, bias });
  else ref.gemm({ ...s, a, b: b.host, c: want, bias });
  const gc = up(c0);
  const gb = bias && up(bias);
  if (b.host instanceof HalfArray) kernels.gemmHalf({ ...s, a: up(a), b: b.gpu, c: gc, bias: gb });
  else kernels.gemm({ ...s, a: up(a), b: b.gpu, c: gc, bias: gb });
  return relErr(down(gc), want);
}

/** Values in [−1, 1) from a xorshift: the normal generator takes a second for B's 20 M elements. */
function uniform(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

const hasSubgroups = (): boolean =>
  wg().gpu.facts.features.includes('subgroups') && wg().gpu.facts.languageFeatures.includes('subgroup_id');

/** Every reduction this device can run. */
function variants(extra: MatmulOptions = {}): Array<[string, MatmulKernels]> {
  const out: Array<[string, MatmulKernels]> = [['shared', matmulKernels(wg().gpu, { skinny: 'shared', ...extra })]];
  if (hasSubgroups()) out.push(['subgroups', matmulKernels(wg().gpu, { skinny: 'subgroups', ...extra })]);
  return out;
}

test('the device offers subgroups here (lavapipe), so both reductions are tested', opt, () => {
  if (wg().gpu.facts.software) assert.ok(hasSubgroups(), `features: ${wg().gpu.facts.features.join(', ')}`);
});

test('skinny gemm and gemmHalf match native over m, n, k, transB, accumulate and B dtype', opt, () => {
  const ks = [1, 13, 896, 4099];
  const ns = [1, 7, 896, 4867];
  const ms = [1, 2, 3, 8];
  const kinds = variants();
  let count = 0;
  for (const n of ns) {
    for (const k of ks) {
      // n and k both long (20 M elements of B, most of the test's time on lavapipe) take no path that a long n
      // with k = 896 and a long k with n = 896 do not: the same kernels, split or not alike (splitsFor); the
      // long ones read B as f32 and f16, and bf16 is read by f16's indexing (it differs only in the conversion)
      if (n === 4867 && k === 4099) continue;
      // B of a million elements or more: one dtype per shape and m ∈ {1, 8} keep lavapipe's time in bounds.
      const big = n * k >= 1e6;
      const values = big ? uniform(n * k, count) : r.randn(n * k);
      const dtypes: BType[] = big ? [(['f32', 'f16', 'bf16'] as const)[count % 3]] : ['f32', 'f16', 'bf16'];
      for (const dtype of dtypes) {
        const b = operandB(values, dtype);
        for (const m of big ? [1, 8] : ms) {
          for (const transB of [true, false]) {
            count++;
            const s = shape(m, n, k, { transB, transA: count % 3 === 0, accumulate: count % 2 === 0 });
            for (const [name, kernels] of kinds) {
              const e = check(kernels, s, b);
              const what = `${name} ${dtype} m ${m} n ${n} k ${k} transA ${s.transA} transB ${transB}`;
              assert.ok(e <= F32_TOL, `${what} accumulate ${s.accumulate}: relErr ${e}`);
            }
          }
        }
        b.gpu.free();
      }
    }
  }
});

test('split-k: forced splits, odd k, accumulating, and every B dtype', opt, () => {
  for (const splitK of [2, 3, 7]) {
    for (const [name, kernels] of variants({ splitK })) {
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        for (const [m, n, k] of [
          [1, 5, 13],
          [3, 9, 1001],
          [8, 70, 257],
        ]) {
          const b = operandB(r.randn(n * k), dtype);
          for (const transB of [true, false]) {
            for (const accumulate of [false, true]) {
              const e = check(kernels, shape(m, n, k, { transB, accumulate, transA: m === 3 }), b);
              const what = `${name} splitK ${splitK} ${dtype} ${m}×${n}×${k} transB ${transB} accumulate ${accumulate}`;
              assert.ok(e <= F32_TOL, `${what}: relErr ${e}`);
            }
          }
          b.gpu.free();
        }
      }
    }
  }
});

test('skinny batched products: strides, shared operands, one C for every entry, overlapping C', opt, () => {
  const m = 3,
    n = 37,
    k = 45;
  const cases: Array<[string, Partial<Shape>]> = [
    ['contiguous', { batch: 3 }],
    ['padded strides', { batch: 3, strideA: m * k + 5, strideB: k * n + 3, strideC: m * n + 7 }],
    ['strideA 0', { batch: 3, strideA: 0, transA: true }],
    ['strideB 0', { batch: 3, strideB: 0 }],
    ['strideC 0, accumulating', { batch: 3, strideC: 0, accumulate: true }],
    ['strideC 0, overwriting', { batch: 3, strideC: 0 }],
    ['overlapping C', { batch: 3, strideC: n, accumulate: true }],
  ];
  for (const [kname, kernels] of variants()) {
    for (const dtype of ['f32', 'bf16'] as const) {
      for (const transB of [true, false]) {
        for (const [name, o] of cases) {
          const s = shape(m, n, k, { transB, ...o });
          const b = operandB(r.randn((s.batch - 1) * s.strideB + k * n), dtype);
          const e = check(kernels, s, b);
          assert.ok(e <= F32_TOL, `${kname} ${dtype} transB ${transB} ${name}: relErr ${e}`);
          b.gpu.free();
        }
      }
    }
  }
});

test('k = 0 zeroes C or leaves it on the skinny path', opt, () => {
  for (const [, kernels] of variants()) {
    for (const accumulate of [false, true]) {
      assert.equal(check(kernels, shape(2, 9, 0, { accumulate, transB: true }), operandB(r.randn(1), 'f32')), 0);
    }
  }
});

test("skinny: 'off' keeps small products on the tiled kernel, which still matches native", opt, () => {
  const tiled = matmulKernels(wg().gpu, { skinny: 'off' });
  for (const transB of [true, false]) {
    const e = check(tiled, shape(3, 70, 129, { transB, accumulate: true }), operandB(r.randn(70 * 129), 'bf16'));
    assert.ok(e <= F32_TOL, `tiled transB ${transB}: relErr ${e}`);
  }
});

test('a bias is added to every row: skinny, split, batched, 16-bit B, and k = 0', opt, () => {
  const cases: Array<[string, Shape, MatmulOptions]> = [
    ['decode', shape(1, 70, 129, { transB: true, withBias: true }), {}],
    ['skinnyN', shape(3, 37, 45, { withBias: true }), {}],
    ['split', shape(2, 9, 1001, { transB: true, withBias: true }), { splitK: 3 }],
    ['batched, padded C', shape(3, 37, 45, { batch: 3, strideC: 3 * 37 + 7, withBias: true }), {}],
    ['accumulating', shape(4, 33, 65, { transB: true, accumulate: true, withBias: true }), {}],
    ['k = 0', shape(2, 9, 0, { transB: true, withBias: true }), {}],
  ];
  for (const [name, s, o] of cases) {
    for (const [kname, kernels] of variants(o)) {
      for (const dtype of ['f32', 'bf16'] as const) {
        const b = operandB(r.randn(Math.max(1, (s.batch - 1) * s.strideB + s.k * s.n)), dtype);
        const e = check(kernels, s, b);
        assert.ok(e <= F32_TOL, `${kname} ${dtype} ${name}: relErr ${e}`);
        b.gpu.free();
      }
    }
  }
});
