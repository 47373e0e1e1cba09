/**
 * The native kernels against the TS reference, on awkward shapes. Agreement is measured as
 *   relErr = max|native − js| / max(max|js|, 1e-6)
 * over finite entries (non-finite entries must match exactly) and must be ≤ 1e-5 for every kernel,
 * gemm included. Without the addon these tests fail, unless SEARCH_R3_ALLOW_NO_NATIVE=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostStorage, jsKernels } from '../../src/tensor/js-kernels.js';
import { HalfArray } from '../../src/tensor/half-float.js';
import { Rng } from '../../src/tensor/rng.js';
import { relErr } from '../helpers/rel-err.js';
import { loadNativeKernels, setNativeThreads, nativeThreads } from '../../src/tensor/native-kernels.js';
import {
  type AttentionShape,
  BinaryOp,
  type GemmArgs,
  type Kernels,
  ReduceOp,
  UnaryOp,
} from '../../src/tensor/kernels.js';

const TOL = 1e-5;

let native: Kernels | null = null;
let loadError = '';
try {
  native = loadNativeKernels();
} catch (e) {
  loadError = e instanceof Error ? e.message : String(e);
}
const allowMissing = process.env.SEARCH_R3_ALLOW_NO_NATIVE === '1';
const skip = native === null && allowMissing ? `native addon unavailable: ${loadError}` : false;

function nk(): Kernels {
  if (!native) throw new Error(`the native addon did not load (${loadError}); set SEARCH_R3_ALLOW_NO_NATIVE=1 to skip`);
  return native;
}

// Deterministic random numbers so a failure reproduces.
const seeded = new Rng(12345);
const rand = (): number => seeded.next();
function randn(): number {
  const u = Math.max(rand(), 1e-12),
    v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
function randArr(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = randn() * scale;
  return a;
}
function randInts(n: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(rand() * hi);
  return a;
}

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = TOL): void {
  assert.equal(got.length, want.length, `${what}: lengths differ`);
  const e = relErr(got, want);
  assert.ok(e <= tol, `${what}: relErr ${e.toExponential(2)} > ${tol}`);
}

/** Runs f on the JS kernels and on the native ones with copies of the same buffers; returns both. */
function both<const T extends ReadonlyArray<Float32Array | Int32Array | Uint8Array | null>>(
  bufs: T,
  f: (k: Kernels, b: T) => void,
): [T, T] {
  const copyOf = (x: T): T => x.map((a) => (a ? a.slice() : null)) as unknown as T;
  const j = copyOf(bufs),
    n = copyOf(bufs);
  f(jsKernels, j);
  f(nk(), n);
  return [j, n];
}

function compareAll(
  what: string,
  j: ReadonlyArray<Float32Array | Int32Array | Uint8Array | null>,
  n: ReadonlyArray<Float32Array | Int32Array | Uint8Array | null>,
  tol = TOL,
): void {
  j.forEach((a, i) => {
    if (a) close(`${what} buffer ${i}`, n[i]!, a, tol);
  });
}

test('native backend is built (CI must build the addon)', { skip }, () => {
  const k = nk();
  assert.equal(k.name, 'native');
  assert.ok(nativeThreads() >= 1);
  // every kernel runs in C: none fell back to the TS reference (host storage is shared by both CPU backends)
  const fallbacks = (Object.keys(jsKernels) as Array<keyof Kernels>).filter(
    (key) => typeof jsKernels[key] === 'function' && k[key] === jsKernels[key] && !(key in hostStorage),
  );
  assert.deepEqual(fallbacks, []);
});

test('gemm: transposes, batches, shared and accumulated C, views, long k', { skip }, () => {
  const cases: Array<Partial<GemmArgs> & { batch: number; m: number; n: number; k: number }> = [];
  for (const transA of [false, true])
    for (const transB of [false, true])
      for (const accumulate of [false, true]) {
        cases.push({ batch: 1, m: 37, n: 53, k: 29, transA, transB, accumulate });
        cases.push({ batch: 3, m: 200, n: 130, k: 61, transA, transB, accumulate }); // panels over rows
        cases.push({ batch: 1, m: 70, n: 300, k: 160, transA, transB, accumulate }); // panels over columns
      }
  cases.push({ batch: 4, m: 64, n: 64, k: 64 }); // parallel over batches
  cases.push({ batch: 5, m: 9, n: 11, k: 7, strideB: 0 }); // one B shared by all batches
  cases.push({ batch: 6, m: 40, n: 50, k: 300, strideC: 0, accumulate: true }); // sum of products into one C
  cases.push({ batch: 1, m: 64, n: 48, k: 1000 });
  cases.push({ batch: 2, m: 33, n: 17, k: 1024, transA: true });
  // skinny products (a few rows, decoding): streamed B path, both layouts, chunked sums, shared C
  for (const m of [1, 2, 3, 4])
    for (const transA of [false, true])
      for (const transB of [false, true]) {
        cases.push({ batch: 1, m, n: 300, k: 2500, transA, transB, accumulate: m === 3 });
      }
  cases.push({ batch: 3, m: 1, n: 1000, k: 100, transB: true });
  cases.push({ batch: 3, m: 2, n: 700, k: 128, strideC: 0, accumulate: true });
  cases.push({ batch: 2, m: 4, n: 129, k: 600, strideA: 0, transB: true });
  // single rows too small for the streamed path go to sgemv
  for (const transA of [false, true])
    for (const transB of [false, true])
      cases.push({ batch: 3, m: 1, n: 50, k: 40, transA, transB, accumulate: transA });
  cases.push({ batch: 2, m: 5, n: 6, k: 0 });
  cases.push({ batch: 2, m: 5, n: 6, k: 0, accumulate: true });
  for (const cs of cases) {
    const { batch, m, n, k } = cs;
    const strideA = cs.strideA ?? m * k,
      strideB = cs.strideB ?? k * n,
      strideC = cs.strideC ?? m * n;
    const a = randArr(Math.max(1, (batch - 1) * strideA + m * k));
    const b = randArr(Math.max(1, (batch - 1) * strideB + k * n));
    const c = randArr((batch - 1) * strideC + m * n);
    const [j, nn] = both([a, b, c], (kk, [a, b, c]) =>
      kk.gemm({
        a: a!,
        b: b!,
        c: c!,
        batch,
        m,
        n,
        k,
        transA: cs.transA ?? false,
        transB: cs.transB ?? false,
        strideA,
        strideB,
        strideC,
        accumulate: cs.accumulate ?? false,
      }),
    );
    close(`gemm ${JSON.stringify(cs)}`, nn[2]!, j[2]!);
  }
  // Subarray views: only the viewed elements change.
  const big = randArr(200),
    bigB = randArr(200),
    bigC = randArr(200);
  const want = bigC.slice();
  jsKernels.gemm({
    a: big.subarray(3, 3 + 12),
    b: bigB.subarray(5, 5 + 20),
    c: want.subarray(7, 7 + 15),
    batch: 1,
    m: 3,
    n: 5,
    k: 4,
    transA: false,
    transB: false,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    accumulate: false,
  });
  nk().gemm({
    a: big.subarray(3, 3 + 12),
    b: bigB.subarray(5, 5 + 20),
    c: bigC.subarray(7, 7 + 15),
    batch: 1,
    m: 3,
    n: 5,
    k: 4,
    transA: false,
    transB: false,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    accumulate: false,
  });
  close('gemm on views', bigC, want);
});

test(
  'gemm and gemmHalf with C blocks that partly overlap run the entries in order, on several threads',
  { skip },
  () => {
    const threads = nativeThreads();
    setNativeThreads(4);
    try {
      // row panels, column panels (n > m) and the skinny path (m ≤ 8), each entry's C half over the last one's
      for (const [m, n, k] of [
        [127, 65, 300],
        [24, 130, 300],
        [7, 257, 127],
      ]) {
        const batch = 3,
          strideC = Math.floor((m * n) / 2) + 3;
        const shape = { batch, m, n, k, transA: false, transB: true, strideA: m * k, strideB: n * k, strideC };
        const a = randArr(batch * m * k),
          b = randArr(batch * n * k),
          c = randArr((batch - 1) * strideC + m * n);
        const [j, nv] = both([a, b, c], (K, [aa, bb, cc]) =>
          K.gemm({ ...shape, a: aa, b: bb, c: cc, accumulate: false }),
        );
        compareAll(`gemm ${m}×${n}×${k}`, j, nv);
        const half = HalfArray.from(b, 'bf16');
        const [jh, nh] = both([c], (K, [cc]) => K.gemmHalf({ ...shape, a, b: half, c: cc, accumulate: false }));
        compareAll(`gemmHalf ${m}×${n}×${k}`, jh, nh);
      }
    } finally {
      setNativeThreads(threads);
    }
  },
);

test('binary: same shape, row/column/scalar broadcast, strided operands', { skip }, () => {
  const cases: Array<{ shape: number[]; sa: number[]; sb: number[]; na: number; nb: number }> = [
    { shape: [5, 7, 9], sa: [63, 9, 1], sb: [63, 9, 1], na: 315, nb: 315 },
    { shape: [33, 17], sa: [17, 1], sb: [0, 1], na: 561, nb: 17 },
    { shape: [33, 17], sa: [17, 1], sb: [1, 0], na: 561, nb: 33 },
    { shape: [33, 17], sa: [0, 0], sb: [17, 1], na: 1, nb: 561 },
    { shape: [13, 11], sa: [1, 13], sb: [11, 1], na: 143, nb: 143 }, // a transposed
    { shape: [2, 3, 1, 5], sa: [15, 5, 5, 1], sb: [0, 5, 0, 1], na: 30, nb: 15 },
    { shape: [300, 257], sa: [257, 1], sb: [0, 1], na: 300 * 257, nb: 257 },
    { shape: [300, 257], sa: [257, 1], sb: [257, 1], na: 300 * 257, nb: 300 * 257 },
    { shape: [7, 300, 40], sa: [12000, 40, 1], sb: [40, 0, 1], na: 84000, nb: 280 },
    { shape: [4, 0, 3], sa: [0, 3, 1], sb: [0, 3, 1], na: 1, nb: 1 },
    { shape: [], sa: [], sb: [], na: 1, nb: 1 },
  ];
  for (const op of [BinaryOp.Add, BinaryOp.Sub, BinaryOp.Mul, BinaryOp.Div]) {
    for (const cs of cases) {
      const total = cs.shape.reduce((p, d) => p * d, 1);
      const a = randArr(cs.na),
        b = randArr(cs.nb);
      if (op === BinaryOp.Div) for (let i = 0; i < b.length; i++) b[i] = (b[i] >= 0 ? 1 : -1) * (0.5 + Math.abs(b[i]));
      const [j, n] = both([a, b, new Float32Array(total)], (k, [a, b, o]) =>
        k.binary(op, a!, cs.sa, b!, cs.sb, o!, cs.shape),
      );
      close(`binary op ${op} ${JSON.stringify(cs.shape)} ${JSON.stringify(cs.sb)}`, n[2]!, j[2]!);
    }
  }
  // Strides may come as typed arrays too.
  const a = randArr(12),
    b = randArr(4);
  const [j, n] = both([a, b, new Float32Array(12)], (k, [a, b, o]) =>
    k.binary(BinaryOp.Mul, a!, new Int32Array([4, 1]), b!, new Int32Array([0, 1]), o!, new Int32Array([3, 4])),
  );
  close('binary typed strides', n[2]!, j[2]!);
});

test('unary and axpby', { skip }, () => {
  for (const size of [1, 17, 100003]) {
    for (const op of [
      UnaryOp.Neg,
      UnaryOp.Exp,
      UnaryOp.Log,
      UnaryOp.Sqrt,
      UnaryOp.Abs,
      UnaryOp.Square,
      UnaryOp.Reciprocal,
    ]) {
      const x = randArr(size, 3);
      if (op === UnaryOp.Log || op === UnaryOp.Sqrt) for (let i = 0; i < size; i++) x[i] = Math.abs(x[i]) + 1e-3;
      if (op === UnaryOp.Reciprocal)
        for (let i = 0; i < size; i++) x[i] = (x[i] >= 0 ? 1 : -1) * (0.25 + Math.abs(x[i]));
      const [j, n] = both([x, new Float32Array(size)], (k, [x, o]) => k.unary(op, x!, o!));
      close(`unary ${op} n=${size}`, n[1]!, j[1]!);
      // in place
      const [j2, n2] = both([x], (k, [x]) => k.unary(op, x!, x!));
      close(`unary ${op} in place`, n2[0]!, j2[0]!);
    }
    // exp over the full float range, including overflow to Inf and underflow to 0
    const wide = new Float32Array([
      -1000,
      -104,
      -88,
      -87.5,
      -87,
      -20,
      -1e-8,
      0,
      1e-8,
      1,
      20,
      80,
      88.5,
      88.7,
      89,
      1000,
      -Infinity,
      Infinity,
      NaN,
    ]);
    const [je, ne] = both([wide, new Float32Array(wide.length)], (k, [x, o]) => k.unary(UnaryOp.Exp, x!, o!));
    for (let i = 0; i < wide.length; i++) {
      const w = je[1]![i],
        g = ne[1]![i];
      if (!Number.isFinite(w) || w < 1.2e-38)
        assert.ok(
          Object.is(w, g) || (w < 1.2e-38 && g < 1.2e-38) || (Number.isNaN(w) && Number.isNaN(g)),
          `exp(${wide[i]}): ${g} vs ${w}`,
        );
      else assert.ok(Math.abs(g - w) / w <= 1e-6, `exp(${wide[i]}): ${g} vs ${w}`);
    }
    for (const beta of [0, 1, -0.3]) {
      const x = randArr(size),
        out = randArr(size);
      const [j, n] = both([x, out], (k, [x, o]) => k.axpby(0.7, x!, beta, o!));
      close(`axpby beta=${beta}`, n[1]!, j[1]!);
    }
  }
  // beta = 0 overwrites even NaN
  const o = new Float32Array([NaN, Infinity]);
  nk().axpby(2, new Float32Array([1, 2]), 0, o);
  assert.deepEqual(Array.from(o), [2, 4]);
});

test('reduce: sum and max over last, middle and first axes, argmax, NaN', { skip }, () => {
  const shapes: Array<[number, number, number]> = [
    [7, 13, 1],
    [5, 9, 11],
    [1, 100000, 1],
    [3, 1000, 300],
    [1, 0, 5],
    [1000, 1, 1],
    [2, 600, 700],
    [700, 50, 1],
  ];
  for (const [outer, n, inner] of shapes) {
    for (const op of [ReduceOp.Sum, ReduceOp.Max]) {
      const x = randArr(outer * n * inner);
      const arg = op === ReduceOp.Max ? new Int32Array(outer * inner) : null;
      const [j, nn] = both([x, new Float32Array(outer * inner), arg], (k, [x, o, a]) =>
        k.reduce(op, x!, outer, n, inner, o!, a as Int32Array | null),
      );
      close(`reduce ${op} ${outer}x${n}x${inner}`, nn[1]!, j[1]!);
      if (arg) assert.deepEqual(nn[2], j[2], `argmax ${outer}x${n}x${inner}`);
    }
  }
  // ties pick the first index; a NaN wins and stops the scan
  const x = new Float32Array([1, 3, 3, 2, /**/ 1, NaN, 5, NaN, /**/ -Infinity, -Infinity, -Infinity, -Infinity]);
  const [j, n] = both([x, new Float32Array(3), new Int32Array(3)], (k, [x, o, a]) =>
    k.reduce(ReduceOp.Max, x!, 3, 4, 1, o!, a as Int32Array),
  );
  assert.deepEqual(Array.from(n[2]!), Array.from(j[2]!));
  assert.deepEqual(Array.from(n[1]!).map(String), Array.from(j[1]!).map(String));
  const [j2, n2] = both([x, new Float32Array(4), new Int32Array(4)], (k, [x, o, a]) =>
    k.reduce(ReduceOp.Max, x!, 1, 3, 4, o!, a as Int32Array),
  );
  assert.deepEqual(Array.from(n2[2]!), Array.from(j2[2]!));
  assert.deepEqual(Array.from(n2[1]!).map(String), Array.from(j2[1]!).map(String));
});

test('copy: transpose, permute, slice, expand, accumulate, sum-to-shape', { skip }, () => {
  const cases: Array<{
    name: string;
    srcLen: number;
    srcOff: number;
    ss: number[];
    dstLen: number;
    dstOff: number;
    ds: number[];
    shape: number[];
  }> = [
    { name: 'contiguous', srcLen: 1000, srcOff: 0, ss: [1], dstLen: 1000, dstOff: 0, ds: [1], shape: [1000] },
    {
      name: 'transpose',
      srcLen: 37 * 41,
      srcOff: 0,
      ss: [1, 41],
      dstLen: 37 * 41,
      dstOff: 0,
      ds: [37, 1],
      shape: [41, 37],
    },
    {
      name: 'permute 3d',
      srcLen: 5 * 6 * 7,
      srcOff: 0,
      ss: [1, 42, 7],
      dstLen: 210,
      dstOff: 0,
      ds: [30, 6, 1],
      shape: [7, 5, 6],
    },
    {
      name: 'heads split',
      srcLen: 8 * 128 * 256,
      srcOff: 0,
      ss: [128 * 256, 64, 256, 1],
      dstLen: 8 * 128 * 256,
      dstOff: 0,
      ds: [128 * 256, 128 * 64, 64, 1],
      shape: [8, 4, 128, 64],
    },
    {
      name: 'slice with offsets',
      srcLen: 400,
      srcOff: 23,
      ss: [20, 1],
      dstLen: 300,
      dstOff: 11,
      ds: [13, 1],
      shape: [15, 13],
    },
    { name: 'concat half', srcLen: 60, srcOff: 0, ss: [6, 1], dstLen: 120, dstOff: 6, ds: [12, 1], shape: [10, 6] },
    { name: 'expand', srcLen: 9, srcOff: 0, ss: [0, 1], dstLen: 900, dstOff: 0, ds: [9, 1], shape: [100, 9] },
    {
      name: 'sum rows',
      srcLen: 700 * 300,
      srcOff: 0,
      ss: [300, 1],
      dstLen: 300,
      dstOff: 0,
      ds: [0, 1],
      shape: [700, 300],
    },
    {
      name: 'sum cols',
      srcLen: 70 * 300,
      srcOff: 0,
      ss: [300, 1],
      dstLen: 70,
      dstOff: 0,
      ds: [1, 0],
      shape: [70, 300],
    },
    { name: 'negative stride', srcLen: 50, srcOff: 49, ss: [-1], dstLen: 50, dstOff: 0, ds: [1], shape: [50] },
    { name: 'empty', srcLen: 1, srcOff: 0, ss: [1, 1], dstLen: 1, dstOff: 0, ds: [1, 1], shape: [0, 4] },
  ];
  for (const cs of cases) {
    for (const acc of [false, true]) {
      const src = randArr(cs.srcLen),
        dst = randArr(cs.dstLen);
      const [j, n] = both([src, dst], (k, [s, d]) => k.copy(s!, cs.srcOff, cs.ss, d!, cs.dstOff, cs.ds, cs.shape, acc));
      close(`copy ${cs.name} acc=${acc}`, n[1]!, j[1]!);
    }
  }
});

test('sumSquares and allFinite', { skip }, () => {
  for (const size of [0, 1, 31, 200001]) {
    const x = randArr(size);
    const js = jsKernels.sumSquares(x),
      nv = nk().sumSquares(x);
    assert.ok(Math.abs(js - nv) <= 1e-12 * Math.max(1, js), `sumSquares n=${size}: ${nv} vs ${js}`);
    assert.equal(nk().allFinite(x), true);
    for (const bad of [NaN, Infinity, -Infinity]) {
      if (size === 0) continue;
      for (const pos of [0, size - 1, size >> 1]) {
        const y = x.slice();
        y[pos] = bad;
        assert.equal(nk().allFinite(y), false, `allFinite with ${bad} at ${pos} of ${size}`);
      }
    }
  }
  const y = new Float32Array([3.4e38, -3.4e38, 1e-45, 0, -0]);
  assert.equal(nk().allFinite(y), true);
});

test('rmsnorm forward and backward (dw accumulates, or null)', { skip }, () => {
  for (const [rows, dim] of [
    [1, 1],
    [67, 131],
    [1024, 256],
  ]) {
    const x = randArr(rows * dim, 2),
      w = randArr(dim);
    const [j, n] = both([x, w, new Float32Array(rows * dim), new Float32Array(rows)], (k, [x, w, y, r]) =>
      k.rmsnormForward(x!, w!, y!, r!, rows, dim, 1e-6),
    );
    compareAll(`rmsnormForward ${rows}x${dim}`, j, n);
    const rstd = j[3]!,
      dy = randArr(rows * dim);
    for (const withDw of [true, false]) {
      const dw = withDw ? randArr(dim) : null;
      const [jb, nb] = both([dy, x, w, rstd, new Float32Array(rows * dim), dw], (k, [dy, x, w, r, dx, dw]) =>
        k.rmsnormBackward(dy!, x!, w!, r!, dx!, dw as Float32Array | null, rows, dim),
      );
      compareAll(`rmsnormBackward ${rows}x${dim} dw=${withDw}`, jb, nb);
    }
  }
});

test('l2normalize forward and backward: zero, tiny and huge rows, outputs aliasing inputs', { skip }, () => {
  // The native sums run in double and in the reference's order: the results agree far inside 1e-6.
  const tol = 1e-6;
  for (const [rows, dim] of [
    [1, 1],
    [3, 7],
    [37, 256],
    [300, 1000],
  ]) {
    const x = randArr(rows * dim, 2),
      g = randArr(rows * dim);
    if (rows >= 3) {
      x.fill(0, dim, 2 * dim); // norm 0 < eps: y = 0, dx = g / eps
      for (let i = 2 * dim; i < 3 * dim; i++) x[i] *= 1e-25; // norm ≈ 1e-25 < eps; its squares underflow float32
    }
    if (rows >= 37) {
      for (let i = 3 * dim; i < 4 * dim; i++) x[i] *= 1e25; // squares overflow float32
      const row = x.subarray(4 * dim, 5 * dim); // norm 1e-12 / 2: clamped, with y half a unit vector
      const k = 0.5e-12 / Math.hypot(...row);
      row.forEach((v, i) => (row[i] = v * k));
    }
    for (const eps of [1e-12, 1e-30]) {
      const what = `${rows}x${dim} eps=${eps}`;
      const [j, n] = both([x, new Float32Array(rows * dim), new Float32Array(rows)], (k, [x, y, nr]) =>
        k.l2normalizeForward(x!, y!, nr!, rows, dim, eps),
      );
      compareAll(`l2normalizeForward ${what}`, j, n, tol);
      const [y, norms] = [j[1]!, j[2]!];
      const [jb, nb] = both([g, y, norms, new Float32Array(rows * dim)], (k, [g, y, nr, dx]) =>
        k.l2normalizeBackward(g!, y!, nr!, dx!, rows, dim, eps),
      );
      compareAll(`l2normalizeBackward ${what}`, jb, nb, tol);
      // Row by row too: one row's error must not hide beside another's larger values.
      for (let r = 0; r < rows; r++) {
        const ne = Math.abs(n[2]![r] - norms[r]) / norms[r];
        assert.ok(ne <= tol, `l2normalizeForward ${what} norm ${r}: ${n[2]![r]} against ${norms[r]}`);
        const row = (a: Float32Array): Float32Array => a.subarray(r * dim, (r + 1) * dim);
        close(`l2normalizeForward ${what} row ${r}`, row(n[1]!), row(y), tol);
        close(`l2normalizeBackward ${what} row ${r}`, row(nb[3]!), row(jb[3]!), tol);
      }
      const [ji, ni] = both([x, new Float32Array(rows)], (k, [x, nr]) =>
        k.l2normalizeForward(x!, x!, nr!, rows, dim, eps),
      );
      close(`l2normalizeForward in place ${what}`, ni[0]!, ji[0]!, tol);
      close(`l2normalizeForward in place ${what}: same as into y`, ji[0]!, y, 0);
      const [jg, ng] = both([g, y, norms], (k, [g, y, nr]) => k.l2normalizeBackward(g!, y!, nr!, g!, rows, dim, eps));
      close(`l2normalizeBackward dx aliasing g ${what}`, ng[0]!, jg[0]!, tol);
      close(`l2normalizeBackward dx aliasing g ${what}: same as into dx`, jg[0]!, jb[3]!, 0);
    }
  }
});

test('rope forward, inverse, in place', { skip }, () => {
  const maxPos = 50,
    half = 16,
    heads = 3,
    rows = 41,
    headDim = 2 * half;
  const cos = new Float32Array(maxPos * half),
    sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++)
    for (let i = 0; i < half; i++) {
      const a = p / Math.pow(10000, i / half);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  const pos = randInts(rows, maxPos);
  for (const inverse of [false, true]) {
    const x = randArr(rows * heads * headDim);
    const [j, n] = both([x, new Float32Array(x.length)], (k, [x, o]) =>
      k.rope(x!, o!, cos, sin, pos, rows, heads, headDim, inverse),
    );
    close(`rope inverse=${inverse}`, n[1]!, j[1]!);
    const [j2, n2] = both([x], (k, [x]) => k.rope(x!, x!, cos, sin, pos, rows, heads, headDim, inverse));
    close(`rope in place inverse=${inverse}`, n2[0]!, j2[0]!);
  }
});

test('softmax and log-softmax forward/backward, with -Inf entries', { skip }, () => {
  for (const [rows, n] of [
    [1, 1],
    [37, 1001],
    [64, 8192],
  ]) {
    const x = randArr(rows * n, 4);
    for (let r = 0; r < rows; r++) if (n > 3) x[r * n + (r % n)] = -Infinity;
    const [j, nn] = both([x, new Float32Array(rows * n)], (k, [x, y]) => k.softmaxForward(x!, y!, rows, n));
    close(`softmaxForward ${rows}x${n}`, nn[1]!, j[1]!);
    const dy = randArr(rows * n);
    const [jb, nb] = both([j[1]!, dy, new Float32Array(rows * n)], (k, [y, dy, dx]) =>
      k.softmaxBackward(y!, dy!, dx!, rows, n),
    );
    close(`softmaxBackward ${rows}x${n}`, nb[2]!, jb[2]!);
    const [jl, nl] = both([x, new Float32Array(rows * n)], (k, [x, y]) => k.logSoftmaxForward(x!, y!, rows, n));
    close(`logSoftmaxForward ${rows}x${n}`, nl[1]!, jl[1]!);
    const [jlb, nlb] = both([jl[1]!, dy, new Float32Array(rows * n)], (k, [y, dy, dx]) =>
      k.logSoftmaxBackward(y!, dy!, dx!, rows, n),
    );
    close(`logSoftmaxBackward ${rows}x${n}`, nlb[2]!, jlb[2]!);
  }
});

test('cross-entropy forward/backward with ignored rows', { skip }, () => {
  for (const [rows, vocab] of [
    [1, 2],
    [129, 1000],
    [67, 8192],
  ]) {
    const logits = randArr(rows * vocab, 3),
      targets = randInts(rows, vocab);
    for (let r = 0; r < rows; r += 5) targets[r] = -100;
    const [j, n] = both([logits, targets, new Float32Array(rows), new Float32Array(rows)], (k, [l, t, loss, lse]) =>
      k.crossEntropyForward(l!, t as Int32Array, loss!, lse!, rows, vocab, -100),
    );
    compareAll(`crossEntropyForward ${rows}x${vocab}`, j, n);
    const scale = randArr(rows);
    const [jb, nb] = both([logits, targets, j[3]!, scale, randArr(rows * vocab)], (k, [l, t, lse, s, d]) =>
      k.crossEntropyBackward(l!, t as Int32Array, lse!, s!, d!, rows, vocab, -100),
    );
    compareAll(`crossEntropyBackward ${rows}x${vocab}`, jb, nb);
  }
});

test('silu and swiglu forward/backward, including large |x|', { skip }, () => {
  for (const size of [5, 100003]) {
    const x = randArr(size, 4),
      up = randArr(size),
      dy = randArr(size);
    x[0] = 100;
    if (size > 3) {
      x[1] = -100;
      x[2] = -90;
      x[3] = 0;
    }
    const [j1, n1] = both([x, new Float32Array(size)], (k, [x, y]) => k.siluForward(x!, y!));
    close(`siluForward n=${size}`, n1[1]!, j1[1]!);
    const [j2, n2] = both([x, dy, new Float32Array(size)], (k, [x, dy, dx]) => k.siluBackward(x!, dy!, dx!));
    close(`siluBackward n=${size}`, n2[2]!, j2[2]!);
    const [j3, n3] = both([x, up, new Float32Array(size)], (k, [g, u, y]) => k.swigluForward(g!, u!, y!));
    close(`swigluForward n=${size}`, n3[2]!, j3[2]!);
    const [j, n] = both([x, up, dy, new Float32Array(size), new Float32Array(size)], (k, [g, u, dy, dg, du]) =>
      k.swigluBackward(g!, u!, dy!, dg!, du!),
    );
    compareAll(`swigluBackward n=${size}`, j, n);
  }
});

test('attention forward/backward: GQA 1/2/3, causal, KV cache, masks, fully-masked rows', { skip }, () => {
  const configs: Array<
    Omit<AttentionShape, 'keyMask' | 'scale'> & { mask?: 'random' | 'batchAllMasked' | 'prefixMasked' }
  > = [
    { batch: 2, queryHeads: 4, kvHeads: 4, queryLen: 9, keyLen: 9, headDim: 8, causal: true },
    { batch: 2, queryHeads: 6, kvHeads: 3, queryLen: 130, keyLen: 130, headDim: 24, causal: true },
    { batch: 1, queryHeads: 3, kvHeads: 1, queryLen: 17, keyLen: 17, headDim: 16, causal: false },
    { batch: 2, queryHeads: 4, kvHeads: 2, queryLen: 5, keyLen: 37, headDim: 16, causal: true },
    { batch: 3, queryHeads: 6, kvHeads: 2, queryLen: 1, keyLen: 70, headDim: 32, causal: true, mask: 'random' },
    {
      batch: 3,
      queryHeads: 2,
      kvHeads: 1,
      queryLen: 11,
      keyLen: 11,
      headDim: 8,
      causal: false,
      mask: 'batchAllMasked',
    },
    { batch: 2, queryHeads: 4, kvHeads: 2, queryLen: 70, keyLen: 70, headDim: 16, causal: true, mask: 'prefixMasked' },
    { batch: 2, queryHeads: 2, kvHeads: 2, queryLen: 12, keyLen: 8, headDim: 8, causal: true },
    { batch: 2, queryHeads: 4, kvHeads: 2, queryLen: 128, keyLen: 128, headDim: 64, causal: true, mask: 'random' },
  ];
  for (const cfg of configs) {
    const { batch: B, queryHeads: H, kvHeads: G, queryLen: T, keyLen: S, headDim: D } = cfg;
    let keyMask: Uint8Array | null = null;
    if (cfg.mask) {
      keyMask = new Uint8Array(B * S).fill(1);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < S; j++) {
          if (cfg.mask === 'random') keyMask[b * S + j] = rand() < 0.3 ? 0 : 1;
          if (cfg.mask === 'batchAllMasked' && b === 1) keyMask[b * S + j] = 0;
          // early causal rows see only padding
          if (cfg.mask === 'prefixMasked' && j < 10 * (b + 1)) keyMask[b * S + j] = 0;
        }
    }
    const shape: AttentionShape = { ...cfg, scale: 1 / Math.sqrt(D), keyMask };
    const q = randArr(B * T * H * D),
      k = randArr(B * S * G * D),
      v = randArr(B * S * G * D);
    const [j, n] = both([q, k, v, new Float32Array(q.length), new Float32Array(B * H * T)], (kk, [q, k, v, o, l]) =>
      kk.attentionForward(q!, k!, v!, o!, l!, shape),
    );
    const name = `attention ${JSON.stringify(cfg)}`;
    close(`${name} out`, n[3]!, j[3]!);
    close(`${name} lse`, n[4]!, j[4]!);
    if (cfg.mask === 'batchAllMasked' || cfg.mask === 'prefixMasked' || S < T)
      assert.ok(
        j[4]!.some((x) => x === -Infinity),
        `${name}: expected fully-masked rows`,
      );
    const dout = randArr(q.length);
    const [jb, nb] = both(
      [q, k, v, j[3]!, j[4]!, dout, randArr(q.length), randArr(k.length), randArr(k.length)],
      (kk, [q, k, v, o, l, d, dq, dk, dv]) => kk.attentionBackward(q!, k!, v!, o!, l!, d!, dq!, dk!, dv!, shape),
    );
    close(`${name} dq`, nb[6]!, jb[6]!);
    close(`${name} dk`, nb[7]!, jb[7]!);
    close(`${name} dv`, nb[8]!, jb[8]!);
  }
});

test(
  'attention over the first keyLen of keyStride positions (a KV cache with room) equals attention over them packed',
  { skip },
  () => {
    const B = 3,
      H = 4,
      G = 2,
      T = 1,
      S = 21,
      KS = 32,
      D = 16;
    const q = randArr(B * T * H * D),
      kWide = randArr(B * KS * G * D),
      vWide = randArr(B * KS * G * D);
    const pack = (wide: Float32Array): Float32Array => {
      const out = new Float32Array(B * S * G * D);
      for (let b = 0; b < B; b++) out.set(wide.subarray(b * KS * G * D, (b * KS + S) * G * D), b * S * G * D);
      return out;
    };
    const keyMask = Uint8Array.from({ length: B * S }, (_, i) => (i % 7 === 3 ? 0 : 1));
    const packed: AttentionShape = {
      batch: B,
      queryHeads: H,
      kvHeads: G,
      queryLen: T,
      keyLen: S,
      headDim: D,
      scale: 0.25,
      causal: true,
      keyMask,
    };
    const strided: AttentionShape = { ...packed, keyStride: KS };
    for (const kk of [jsKernels, nk()]) {
      const want = [new Float32Array(q.length), new Float32Array(B * H * T)];
      kk.attentionForward(q, pack(kWide), pack(vWide), want[0], want[1], packed);
      const got = [new Float32Array(q.length), new Float32Array(B * H * T)];
      kk.attentionForward(q, kWide, vWide, got[0], got[1], strided);
      assert.deepEqual(got, want, `${kk.name}: forward`);
      const dout = randArr(q.length);
      const dq = new Float32Array(q.length),
        dk = new Float32Array(B * S * G * D),
        dv = new Float32Array(B * S * G * D);
      kk.attentionBackward(q, pack(kWide), pack(vWide), want[0], want[1], dout, dq, dk, dv, packed);
      const dq2 = new Float32Array(q.length),
        dk2 = randArr(kWide.length),
        dv2 = randArr(vWide.length);
      kk.attentionBackward(q, kWide, vWide, want[0], want[1], dout, dq2, dk2, dv2, strided);
      assert.deepEqual([dq2, pack(dk2), pack(dv2)], [dq, dk, dv], `${kk.name}: backward`);
      for (let b = 0; b < B; b++) {
        assert.ok(
          dk2.subarray((b * KS + S) * G * D, (b + 1) * KS * G * D).every((x) => x === 0),
          `${kk.name}: unused positions get no gradient`,
        );
      }
    }
    assert.throws(
      () =>
        nk().attentionForward(q, kWide, vWide, new Float32Array(q.length), new Float32Array(B * H * T), {
          ...packed,
          keyStride: S - 1,
        }),
      /keyStride/,
    );
  },
);

test('embedding forward/backward with repeated ids', { skip }, () => {
  for (const [vocab, dim, count] of [
    [11, 7, 40],
    [500, 300, 1024],
  ]) {
    const w = randArr(vocab * dim),
      ids = randInts(count, vocab);
    ids[1] = ids[0];
    ids[2] = ids[0];
    const [j, n] = both([w, ids, new Float32Array(count * dim)], (k, [w, ids, o]) =>
      k.embeddingForward(w!, ids as Int32Array, o!, dim),
    );
    close(`embeddingForward ${vocab}x${dim}`, n[2]!, j[2]!);
    const [jb, nb] = both([randArr(count * dim), ids, randArr(vocab * dim)], (k, [d, ids, dw]) =>
      k.embeddingBackward(d!, ids as Int32Array, dw!, dim),
    );
    close(`embeddingBackward ${vocab}x${dim}`, nb[2]!, jb[2]!);
  }
});

test('adamw step', { skip }, () => {
  for (const size of [3, 100003]) {
    const p = randArr(size),
      g = randArr(size),
      m = randArr(size, 0.1),
      v = new Float32Array(size).map(() => Math.abs(randn()) * 0.01);
    const [j, n] = both([p, g, m, v], (k, [p, g, m, v]) =>
      k.adamw(p!, g!, m!, v!, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1 - 0.9 ** 3, 1 - 0.999 ** 3),
    );
    compareAll(`adamw n=${size}`, j, n);
  }
});

test(
  'results are bit-identical for 1, 2 and 3 threads (per-chunk partial sums); sgemm panels agree to rounding',
  { skip },
  () => {
    const before = nativeThreads();
    const rows = 1024,
      dim = 256;
    const x = randArr(rows * dim),
      w = randArr(dim),
      dy = randArr(rows * dim),
      long = randArr(300001);
    const run = (): { ours: number[][]; gemm: Float32Array } => {
      const y = new Float32Array(x.length),
        rstd = new Float32Array(rows),
        dx = new Float32Array(x.length),
        dw = new Float32Array(dim);
      nk().rmsnormForward(x, w, y, rstd, rows, dim, 1e-6);
      nk().rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim);
      const sum = new Float32Array(1);
      nk().reduce(ReduceOp.Sum, long, 1, long.length, 1, sum, null);
      const c = new Float32Array(300 * 200);
      nk().gemm({
        a: x,
        b: dy,
        c,
        batch: 1,
        m: 300,
        n: 200,
        k: 256,
        transA: false,
        transB: true,
        strideA: 0,
        strideB: 0,
        strideC: 0,
        accumulate: false,
      });
      return {
        ours: [Array.from(y), Array.from(dx), Array.from(dw), [nk().sumSquares(long)], Array.from(sum)],
        gemm: c,
      };
    };
    try {
      setNativeThreads(1);
      const one = run();
      for (const t of [2, 3]) {
        setNativeThreads(t);
        const got = run();
        assert.deepEqual(got.ours, one.ours, `${t} threads`);
        // Each thread's panel of C is one OpenBLAS call; OpenBLAS picks its kernel by the call's shape (on
        // some CPUs a small-matrix kernel that sums k in another order), so panels agree to rounding only.
        const worst = Math.max(
          ...Array.from(got.gemm, (v, i) => Math.abs(v - one.gemm[i]) / (Math.abs(one.gemm[i]) + 1)),
        );
        // seen 1e-5 (k = 256); a wrong panel is O(1)
        assert.ok(worst < 1e-4, `${t} threads: sgemm differs by ` + `${worst}`);
      }
    } finally {
      setNativeThreads(before);
    }
  },
);

test('kernels called from several JS threads at once stay correct', { skip }, async () => {
  const { Worker } = await import('node:worker_threads');
  const url = new URL('../../src/tensor/native-kernels.js', import.meta.url).href;
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then(({ loadNativeKernels }) => {
      const k = loadNativeKernels();
      const n = 1 << 18, x = new Float32Array(n).map((_, i) => (i % 7) - 3), y = new Float32Array(n);
      let ok = true;
      for (let r = 0; r < 200; r++) {
        k.axpby(2, x, 0, y);
        for (let i = 0; i < n; i += 4099) if (y[i] !== 2 * x[i]) ok = false;
        if (k.sumSquares(x) !== x.reduce((s, v) => s + v * v, 0)) ok = false;
      }
      parentPort.postMessage(ok);
    });`;
  const workers = [0, 1].map(() => new Worker(code, { eval: true }));
  const results = workers.map(
    (w) =>
      new Promise<boolean>((resolve, reject) => {
        w.on('message', resolve);
        w.on('error', reject);
      }),
  );
  const x = randArr(1 << 18),
    y = new Float32Array(x.length);
  for (let r = 0; r < 200; r++) {
    nk().axpby(3, x, 0, y);
    for (let i = 0; i < x.length; i += 4099) assert.equal(y[i], Math.fround(3 * x[i]));
  }
  assert.deepEqual(await Promise.all(results), [true, true]);
  await Promise.all(workers.map((w) => w.terminate()));
});

test('bad arguments throw an Error naming the kernel instead of touching memory', { skip }, () => {
  const k = nk();
  const f = (n: number): Float32Array => new Float32Array(n);
  const cases: Array<[string, () => void]> = [
    [
      'gemm',
      () =>
        k.gemm({
          a: f(6),
          b: f(6),
          c: f(3),
          batch: 1,
          m: 2,
          n: 2,
          k: 3,
          transA: false,
          transB: false,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          accumulate: false,
        }),
    ],
    [
      'gemm',
      () =>
        k.gemm({
          a: f(12),
          b: f(6),
          c: f(7),
          batch: 2,
          m: 2,
          n: 2,
          k: 3,
          transA: false,
          transB: false,
          strideA: 6,
          strideB: 0,
          strideC: 4,
          accumulate: false,
        }),
    ],
    [
      'gemm',
      () =>
        k.gemm({
          a: f(6),
          b: f(6),
          c: f(4),
          batch: 1,
          m: 2,
          n: 2,
          k: -3,
          transA: false,
          transB: false,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          accumulate: false,
        }),
    ],
    ['binary', () => k.binary(BinaryOp.Add, f(6), [3, 1], f(2), [0, 1], f(6), [2, 3])],
    ['binary', () => k.binary(BinaryOp.Add, f(6), [3, 1], f(3), [0, 1], f(5), [2, 3])],
    ['binary', () => k.binary(BinaryOp.Add, f(6), [3, 1], f(3), [0], f(6), [2, 3])],
    ['unary', () => k.unary(UnaryOp.Exp, f(5), f(4))],
    ['unary', () => k.unary(9 as UnaryOp, f(5), f(5))],
    ['axpby', () => k.axpby(1, f(5), 1, f(6))],
    ['reduce', () => k.reduce(ReduceOp.Max, f(11), 3, 4, 1, f(3), new Int32Array(3))],
    ['reduce', () => k.reduce(ReduceOp.Max, f(12), 3, 4, 1, f(3), new Int32Array(2))],
    ['copy', () => k.copy(f(10), 0, [1], f(20), 11, [1], [10], false)],
    ['copy', () => k.copy(f(10), 5, [-1], f(20), 0, [1], [10], false)],
    ['rmsnormForward', () => k.rmsnormForward(f(20), f(4), f(20), f(4), 5, 4, 1e-6)],
    ['rmsnormBackward', () => k.rmsnormBackward(f(20), f(20), f(4), f(5), f(20), f(3), 5, 4)],
    ['l2normalizeForward', () => k.l2normalizeForward(f(20), f(20), f(4), 5, 4, 1e-12)],
    ['l2normalizeBackward', () => k.l2normalizeBackward(f(20), f(19), f(5), f(20), 5, 4, 1e-12)],
    ['rope', () => k.rope(f(8), f(8), f(4), f(4), new Int32Array([0, 2]), 2, 1, 4, false)],
    ['rope', () => k.rope(f(8), f(8), f(4), f(4), new Int32Array([0, 1]), 2, 1, 3, false)],
    ['softmaxForward', () => k.softmaxForward(f(10), f(9), 2, 5)],
    ['logSoftmaxBackward', () => k.logSoftmaxBackward(f(10), f(10), f(9), 2, 5)],
    ['crossEntropyForward', () => k.crossEntropyForward(f(10), new Int32Array([1, 5]), f(2), f(2), 2, 5, -100)],
    [
      'crossEntropyBackward',
      () => k.crossEntropyBackward(f(10), new Int32Array([1, 2]), f(2), f(1), f(10), 2, 5, -100),
    ],
    ['siluForward', () => k.siluForward(f(4), f(5))],
    ['swigluBackward', () => k.swigluBackward(f(4), f(4), f(4), f(4), f(3))],
    [
      'attentionForward',
      () =>
        k.attentionForward(f(64), f(32), f(32), f(60), f(8), {
          batch: 1,
          queryHeads: 2,
          kvHeads: 1,
          queryLen: 4,
          keyLen: 4,
          headDim: 8,
          scale: 1,
          causal: true,
          keyMask: null,
        }),
    ],
    [
      'attentionForward',
      () =>
        k.attentionForward(f(64), f(32), f(32), f(64), f(8), {
          batch: 1,
          queryHeads: 3,
          kvHeads: 2,
          queryLen: 4,
          keyLen: 4,
          headDim: 4,
          scale: 1,
          causal: true,
          keyMask: null,
        }),
    ],
    [
      'attentionBackward',
      () =>
        k.attentionBackward(f(64), f(32), f(32), f(64), f(8), f(64), f(64), f(32), f(31), {
          batch: 1,
          queryHeads: 2,
          kvHeads: 1,
          queryLen: 4,
          keyLen: 4,
          headDim: 8,
          scale: 1,
          causal: true,
          keyMask: null,
        }),
    ],
    [
      'attentionBackward',
      () =>
        k.attentionBackward(f(64), f(32), f(32), f(64), f(8), f(64), f(64), f(32), f(32), {
          batch: 1,
          queryHeads: 2,
          kvHeads: 1,
          queryLen: 4,
          keyLen: 4,
          headDim: 8,
          scale: 1,
          causal: true,
          keyMask: new Uint8Array(3),
        }),
    ],
    ['embeddingForward', () => k.embeddingForward(f(12), new Int32Array([0, 4]), f(6), 3)],
    ['embeddingBackward', () => k.embeddingBackward(f(6), new Int32Array([0, -1]), f(12), 3)],
    ['adamw', () => k.adamw(f(4), f(4), f(4), f(3), 1e-3, 0.9, 0.999, 1e-8, 0, 0.1, 0.001)],
    ['sumSquares', () => k.sumSquares(new Float64Array(4) as unknown as Float32Array)],
  ];
  for (const [name, call] of cases) {
    assert.throws(
      call,
      (e: unknown) => e instanceof Error && e.message.includes(`native ${name}:`),
      `${name} should throw naming itself`,
    );
  }
});
