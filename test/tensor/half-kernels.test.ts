/**
 * Kernels that read weights held in f16 or bf16. Widening is exact, so each must equal the float32
 * kernel run on the widened weight up to summation order: the JS reference (double sums) within 1e-6
 * relative, the native one (float sums, packed blocks) within 1e-5, on the decode path (m ≤ 4, weight
 * streamed once) and the panel path, with transposes, batches, accumulation and ragged k. Widening
 * itself is bit-exact on both backends for every one of the 65,536 patterns of each format, and both
 * find an Inf or NaN wherever it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { HalfArray, type HalfDtype, widenHalf } from '../../src/tensor/half-float.js';
import { jsKernels } from '../../src/tensor/js-kernels.js';
import type { GemmArgs, Kernels } from '../../src/tensor/kernels.js';
import { loadNativeKernels } from '../../src/tensor/native-kernels.js';
import { Rng } from '../../src/tensor/rng.js';
import { relErr } from '../helpers/torch.js';

let native: Kernels | null = null;
let loadError = '';
try {
  native = loadNativeKernels();
} catch (e) {
  loadError = e instanceof Error ? e.message : String(e);
}
const skip =
  native === null && process.env.SEARCH_R3_ALLOW_NO_NATIVE === '1' ? `native addon unavailable: ${loadError}` : false;
const nk = (): Kernels => {
  if (!native) throw new Error(`the native addon did not load (${loadError}); set SEARCH_R3_ALLOW_NO_NATIVE=1 to skip`);
  return native;
};

const rng = new Rng(77);
const randn = (n: number, std = 1): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * std);

function widened(h: HalfArray): Float32Array {
  const out = new Float32Array(h.length);
  widenHalf(h, out);
  return out;
}

interface Case {
  m: number;
  n: number;
  k: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  sharedB?: boolean;
  accumulate?: boolean;
}

const CASES: Case[] = [
  { m: 1, n: 300, k: 257, transB: true }, // decode: one token against a weight [out, in]
  { m: 1, n: 10, k: 4113, transB: true }, // decode with a long row: four weight rows at a time, then the rest
  { m: 1, n: 7, k: 4200, transB: true, accumulate: true },
  { m: 3, n: 130, k: 96, transB: true },
  { m: 4, n: 64, k: 1100, transB: true, accumulate: true },
  { m: 2, n: 40, k: 33, transB: false }, // a LoRA backward pass: dX = dY · W
  { m: 37, n: 150, k: 70, transB: true }, // prefill panels
  { m: 37, n: 150, k: 70, transB: false },
  { m: 20, n: 33, k: 17, transA: true, transB: true },
  { m: 9, n: 12, k: 8, batch: 3, transB: true, sharedB: false },
  { m: 2, n: 70, k: 64, batch: 3, transB: true, sharedB: false },
  { m: 6, n: 10, k: 5, batch: 4, transB: false, accumulate: true },
  // packed blocks: several k slices (ragged last), row blocks and column panels, each with a ragged edge
  { m: 130, n: 1100, k: 450, transB: true },
  { m: 100, n: 70, k: 400, transB: false, accumulate: true },
  { m: 50, n: 40, k: 300, transA: true, transB: false },
  { m: 13, n: 48, k: 200, batch: 3, transB: true },
];

function runCase(k: Kernels, cs: Case, dtype: HalfDtype): { half: Float32Array; wide: Float32Array } {
  const batch = cs.batch ?? 1,
    shared = cs.sharedB ?? true;
  const a = randn(batch * cs.m * cs.k),
    c0 = randn(batch * cs.m * cs.n);
  const b = HalfArray.from(randn((shared ? 1 : batch) * cs.k * cs.n, 0.5), dtype);
  const args: Omit<GemmArgs, 'b'> = {
    a,
    c: c0.slice(),
    batch,
    m: cs.m,
    n: cs.n,
    k: cs.k,
    transA: cs.transA ?? false,
    transB: cs.transB ?? false,
    strideA: cs.m * cs.k,
    strideB: shared ? 0 : cs.k * cs.n,
    strideC: cs.m * cs.n,
    accumulate: cs.accumulate ?? false,
  };
  k.gemmHalf({ ...args, b });
  const wide = c0.slice();
  jsKernels.gemm({ ...args, b: widened(b), c: wide });
  return { half: args.c, wide };
}

for (const dtype of ['bf16', 'f16'] as const) {
  test(`gemmHalf (${dtype}), JS reference: the float32 gemm of the widened weight`, () => {
    for (const cs of CASES) {
      const { half, wide } = runCase(jsKernels, cs, dtype);
      assert.ok(relErr(half, wide) <= 1e-6, `${JSON.stringify(cs)}: relErr ${relErr(half, wide)}`);
    }
  });

  test(`gemmHalf (${dtype}), native: decode and panel paths agree with the widened gemm`, { skip }, () => {
    for (const cs of CASES) {
      const { half, wide } = runCase(nk(), cs, dtype);
      assert.ok(relErr(half, wide) <= 1e-5, `${JSON.stringify(cs)}: relErr ${relErr(half, wide)}`);
    }
  });

  test(`widenHalf and embeddingForwardHalf (${dtype}) are exact on both backends`, { skip }, () => {
    const all = new HalfArray(
      dtype,
      Uint16Array.from({ length: 65536 }, (_, i) => i),
    );
    const want = new Uint32Array(widened(all).buffer);
    for (const k of [jsKernels, nk()]) {
      const got = new Float32Array(65536);
      k.widenHalf(all, got);
      const bits = new Uint32Array(got.buffer);
      const wrong = want.findIndex(
        (w, i) => w !== bits[i] && !(Number.isNaN(got[i]) && Number.isNaN(widened(all.subarray(i, i + 1))[0])),
      );
      assert.equal(wrong, -1, `${k.name}: pattern ${wrong.toString(16)}`);
      const table = HalfArray.from(randn(50 * 24), dtype);
      const ids = Int32Array.from([3, 49, 0, 3, 17]);
      const out = new Float32Array(ids.length * 24);
      k.embeddingForwardHalf(table, ids, out, 24);
      const ref = new Float32Array(ids.length * 24);
      jsKernels.embeddingForward(widened(table), ids, ref, 24);
      assert.deepEqual(out, ref, `${k.name}: embedding rows`);
      const inf = dtype === 'bf16' ? 0x7f80 : 0x7c00,
        nan = inf | 1;
      const some = (at: number, v: number): T.HalfArray => {
        const bits = new Uint16Array(300_000).fill(0x3c00);
        bits[at] = v;
        return new T.HalfArray(dtype, bits);
      };
      assert.equal(k.halfAllFinite(some(0, 0x3c00)), true, `${k.name}: finite`);
      for (const [at, v] of [
        [0, inf],
        [299_999, nan | 0x8000],
        [150_001, inf | 0x8000],
      ]) {
        assert.equal(k.halfAllFinite(some(at, v)), false, `${k.name}: ${v.toString(16)} at ${at}`);
      }
    }
  });
}

test('native gemmHalf refuses a weight shorter than the product needs', { skip }, () => {
  const b = new HalfArray('bf16', new Uint16Array(10));
  const args = { a: new Float32Array(8), b, c: new Float32Array(8), batch: 1, m: 2, n: 4, k: 4 };
  const flags = { transA: false, transB: true, strideA: 0, strideB: 0, strideC: 0, accumulate: false };
  assert.throws(() => nk().gemmHalf({ ...args, ...flags }), /gemmHalf: b has length 10 but needs at least 16/);
});
