/**
 * `npm run bench:matmul`: where the native backend's time goes.
 *  1. sgemm 1024³ GFLOP/s of our native gemm at 1 and 2 threads, and PyTorch's matmul at the same
 *     thread counts in the same run, with the ratio.
 *  2. Every fused kernel at training sizes (rows 1024, dim 256, vocab 8192, SwiGLU 1024, attention
 *     B 8, H 4, G 2, T 128, D 64): the TS reference vs native at 1 and 2 threads, in ms (best of reps).
 *
 * The machine is shared: figures are the best of several repetitions, and still vary run to run.
 * Options (env): BENCH_REPS (10), BENCH_SKIP_JS=1 (native columns only).
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsKernels } from '../src/tensor/js-kernels.js';
import { type AttentionShape, BinaryOp, type Kernels, ReduceOp, UnaryOp } from '../src/tensor/kernels.js';
import { loadAddon, loadNativeKernels, nativeThreads, setNativeThreads } from '../src/tensor/native-kernels.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const reps = Number(process.env.BENCH_REPS ?? 10);
const skipJs = process.env.BENCH_SKIP_JS === '1';
const native = loadNativeKernels();

let seed = 1;
function randArr(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = ((seed / 4294967296) * 2 - 1) * scale;
  }
  return a;
}
function randInts(n: number, hi: number): Int32Array {
  return Int32Array.from(randArr(n), (x) => Math.floor(((x + 1) / 2) * hi) % hi);
}

/**
 * Best wall time in ms of f over up to `max` runs (at least 2, stopping after ~2 s), after one warm-up
 * run, and the best process CPU time (all threads): on a shared machine the 1-thread CPU time is the
 * figure load cannot inflate.
 */
function best(f: () => void, max = reps): { wall: number; cpu: number } {
  f();
  let wall = Infinity,
    cpu = Infinity;
  const start = performance.now();
  for (let i = 0; i < max && (i < 2 || performance.now() - start < 2000); i++) {
    const u0 = process.cpuUsage(),
      t0 = performance.now();
    f();
    wall = Math.min(wall, performance.now() - t0);
    const u = process.cpuUsage(u0);
    cpu = Math.min(cpu, (u.user + u.system) / 1000);
  }
  return { wall, cpu };
}
const bestMs = (f: () => void, max = reps): number => best(f, max).wall;

function torchGflops(n: number, threads: number): number | string {
  const r = spawnSync('/usr/bin/python3', [join(root, 'bench', 'peers', 'torch_matmul.py')], {
    input: JSON.stringify({ n, reps }),
    env: {
      ...process.env,
      OMP_NUM_THREADS: String(threads),
      OPENBLAS_NUM_THREADS: String(threads),
      MKL_NUM_THREADS: String(threads),
    },
  });
  if (r.status !== 0) return `n/a (${(r.stderr?.toString() || r.error?.message || '').trim().split('\n').pop()})`;
  return (JSON.parse(r.stdout.toString()) as { gflops: number }).gflops;
}

function gemmSection(): void {
  const n = 1024,
    a = randArr(n * n),
    b = randArr(n * n),
    c = new Float32Array(n * n);
  const run = (): void =>
    native.gemm({
      a,
      b,
      c,
      batch: 1,
      m: n,
      n,
      k: n,
      transA: false,
      transB: false,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      accumulate: false,
    });
  console.log(
    `sgemm ${n}³ fp32, GFLOP/s (best of ${reps}; "per CPU-s" divides by the process CPU time instead of wall time)`,
  );
  console.log('threads  ours(native)  ours per CPU-s  PyTorch  ours/PyTorch');
  for (const t of [1, 2]) {
    setNativeThreads(t);
    const b = best(run);
    const ours = (2 * n ** 3) / (b.wall / 1000) / 1e9,
      oursCpu = (2 * n ** 3) / (b.cpu / 1000) / 1e9;
    const peer = torchGflops(n, t);
    const ratio = typeof peer === 'number' ? (ours / peer).toFixed(2) : '—';
    console.log(
      `${String(t).padStart(7)}  ${ours.toFixed(1).padStart(12)}  ${oursCpu.toFixed(1).padStart(14)}  ` +
        `${(typeof peer === 'number' ? peer.toFixed(1) : peer).padStart(7)}  ${ratio.padStart(12)}`,
    );
  }
  console.log();
}

interface Case {
  name: string;
  run: (k: Kernels) => void;
  jsMax?: number;
}

function cases(): Case[] {
  const rows = 1024,
    dim = 256,
    vocab = 8192,
    ffn = 1024;
  const x = randArr(rows * dim),
    w = randArr(dim),
    y = new Float32Array(rows * dim),
    rstd = new Float32Array(rows);
  const dy = randArr(rows * dim),
    dx = new Float32Array(rows * dim),
    dw = new Float32Array(dim);
  const big = randArr(rows * ffn),
    up = randArr(rows * ffn),
    dbig = randArr(rows * ffn),
    o1 = new Float32Array(rows * ffn),
    o2 = new Float32Array(rows * ffn);
  const logits = randArr(rows * vocab, 4),
    targets = randInts(rows, vocab),
    loss = new Float32Array(rows),
    lse = new Float32Array(rows);
  const scale = new Float32Array(rows).fill(1 / rows),
    dlogits = new Float32Array(rows * vocab),
    dlogits2 = new Float32Array(rows * vocab);
  const B = 8,
    H = 4,
    G = 2,
    T = 128,
    D = 64;
  const q = randArr(B * T * H * D),
    kk = randArr(B * T * G * D),
    v = randArr(B * T * G * D);
  const out = new Float32Array(q.length),
    alse = new Float32Array(B * H * T),
    dout = randArr(q.length);
  const dq = new Float32Array(q.length),
    dk = new Float32Array(kk.length),
    dv = new Float32Array(kk.length);
  const shape: AttentionShape = {
    batch: B,
    queryHeads: H,
    kvHeads: G,
    queryLen: T,
    keyLen: T,
    headDim: D,
    scale: 1 / Math.sqrt(D),
    causal: true,
    keyMask: null,
  };
  const half = D / 2,
    cos = randArr(512 * half),
    sin = randArr(512 * half);
  const pos = Int32Array.from({ length: rows }, (_, i) => i % T);
  const qh = randArr(rows * H * D),
    qh2 = new Float32Array(rows * H * D);
  const emb = randArr(vocab * dim),
    ids = randInts(rows, vocab),
    demb = new Float32Array(vocab * dim);
  const nParams = 4_000_000,
    p = randArr(nParams),
    g = randArr(nParams),
    m = new Float32Array(nParams),
    vv = new Float32Array(nParams);
  const ph = randArr(B * T * H * D),
    phT = new Float32Array(B * T * H * D);
  const wq = randArr(768 * dim),
    qkv = new Float32Array(rows * 768),
    dqkv = randArr(rows * 768),
    dwq = new Float32Array(768 * dim);
  const wout = randArr(vocab * dim);
  const gemm = (
    k: Kernels,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    M: number,
    N: number,
    K: number,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
  ): void =>
    k.gemm({ a, b, c, batch: 1, m: M, n: N, k: K, transA, transB, strideA: 0, strideB: 0, strideC: 0, accumulate });
  return [
    {
      name: 'gemm x·Wqkvᵀ 1024×768×256',
      run: (k) => gemm(k, x, wq, qkv, rows, 768, dim, false, true, false),
      jsMax: 1,
    },
    {
      name: 'gemm dWqkv += dYᵀ·x 768×256×1024',
      run: (k) => gemm(k, dqkv, x, dwq, 768, dim, rows, true, false, true),
      jsMax: 1,
    },
    {
      name: 'gemm lm head 1024×8192×256',
      run: (k) => gemm(k, x, wout, logits, rows, vocab, dim, false, true, false),
      jsMax: 1,
    },
    { name: 'binary add 1024×256', run: (k) => k.binary(BinaryOp.Add, x, [dim, 1], dy, [dim, 1], y, [rows, dim]) },
    {
      name: 'binary mul row-broadcast 1024×256',
      run: (k) => k.binary(BinaryOp.Mul, x, [dim, 1], w, [0, 1], y, [rows, dim]),
    },
    {
      name: 'copy heads transpose 8×128×4×64',
      run: (k) => k.copy(ph, 0, [T * H * D, D, H * D, 1], phT, 0, [H * T * D, T * D, D, 1], [B, H, T, D], false),
    },
    { name: 'copy sum-to-shape 1024×256→256', run: (k) => k.copy(x, 0, [dim, 1], dw, 0, [0, 1], [rows, dim], true) },
    { name: 'reduce sum axis 0 1024×256', run: (k) => k.reduce(ReduceOp.Sum, x, 1, rows, dim, dw, null) },
    { name: 'unary exp 1024×1024', run: (k) => k.unary(UnaryOp.Exp, big, o1) },
    { name: 'axpby 4M', run: (k) => k.axpby(0.5, p, 0.9, m) },
    {
      name: 'sumSquares 4M',
      run: (k) => {
        k.sumSquares(g);
      },
    },
    {
      name: 'allFinite 4M',
      run: (k) => {
        k.allFinite(g);
      },
    },
    { name: 'rmsnorm fwd 1024×256', run: (k) => k.rmsnormForward(x, w, y, rstd, rows, dim, 1e-6) },
    { name: 'rmsnorm bwd 1024×256', run: (k) => k.rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim) },
    { name: 'rope 1024×4×64', run: (k) => k.rope(qh, qh2, cos, sin, pos, rows, H, D, false) },
    { name: 'softmax fwd 2048×128', run: (k) => k.softmaxForward(q, out, 2048, 128) },
    { name: 'softmax bwd 2048×128', run: (k) => k.softmaxBackward(out, dout, dq, 2048, 128) },
    { name: 'logSoftmax fwd 1024×8192', run: (k) => k.logSoftmaxForward(logits, dlogits, rows, vocab) },
    { name: 'logSoftmax bwd 1024×8192', run: (k) => k.logSoftmaxBackward(dlogits, logits, dlogits2, rows, vocab) },
    {
      name: 'crossEntropy fwd 1024×8192',
      run: (k) => k.crossEntropyForward(logits, targets, loss, lse, rows, vocab, -100),
    },
    {
      name: 'crossEntropy bwd 1024×8192',
      run: (k) => k.crossEntropyBackward(logits, targets, lse, scale, dlogits, rows, vocab, -100),
    },
    { name: 'silu fwd 1024×1024', run: (k) => k.siluForward(big, o1) },
    { name: 'silu bwd 1024×1024', run: (k) => k.siluBackward(big, dbig, o1) },
    { name: 'swiglu fwd 1024×1024', run: (k) => k.swigluForward(big, up, o1) },
    { name: 'swiglu bwd 1024×1024', run: (k) => k.swigluBackward(big, up, dbig, o1, o2) },
    { name: 'attention fwd B8 H4 G2 T128 D64', run: (k) => k.attentionForward(q, kk, v, out, alse, shape), jsMax: 3 },
    {
      name: 'attention bwd B8 H4 G2 T128 D64',
      run: (k) => k.attentionBackward(q, kk, v, out, alse, dout, dq, dk, dv, shape),
      jsMax: 3,
    },
    { name: 'embedding fwd 1024×256', run: (k) => k.embeddingForward(emb, ids, y, dim) },
    { name: 'embedding bwd 1024×256', run: (k) => k.embeddingBackward(dy, ids, demb, dim) },
    { name: 'adamw 4M', run: (k) => k.adamw(p, g, m, vv, 1e-4, 0.9, 0.999, 1e-8, 0.01, 0.1, 0.001) },
  ];
}

function kernelSection(): void {
  const list = cases();
  const width = Math.max(...list.map((c) => c.name.length));
  console.log(
    `kernels at training sizes, ms (best of up to ${reps}); 1T cpu = process CPU ms of the 1-thread run; ` +
      `speedup = js / native 2T`,
  );
  console.log(
    `${'kernel'.padEnd(width)}  ${'js'.padStart(9)}  ${'native 1T'.padStart(9)}  ${'1T cpu'.padStart(9)}  ` +
      `${'native 2T'.padStart(9)}  ${'speedup'.padStart(8)}`,
  );
  let sum1 = 0,
    sum1c = 0,
    sum2 = 0;
  for (const c of list) {
    const js = skipJs ? NaN : bestMs(() => c.run(jsKernels), c.jsMax ?? Math.min(reps, 3));
    setNativeThreads(1);
    const n1 = best(() => c.run(native));
    setNativeThreads(2);
    const n2 = bestMs(() => c.run(native));
    sum1 += n1.wall;
    sum1c += n1.cpu;
    sum2 += n2;
    const f = (ms: number): string => (Number.isNaN(ms) ? '—' : ms.toFixed(3)).padStart(9);
    console.log(
      `${c.name.padEnd(width)}  ${f(js)}  ${f(n1.wall)}  ${f(n1.cpu)}  ${f(n2)}  ` +
        `${(Number.isNaN(js) ? '—' : (js / n2).toFixed(1) + '×').padStart(8)}`,
    );
  }
  console.log(
    `${'total native'.padEnd(width)}  ${''.padStart(9)}  ${sum1.toFixed(3).padStart(9)}  ` +
      `${sum1c.toFixed(3).padStart(9)}  ${sum2.toFixed(3).padStart(9)}`,
  );
}

const threadsBefore = nativeThreads();
console.log(
  `native: ${loadAddon().blasConfig()}; OpenBLAS on 1 thread, our pool on ${threadsBefore} (SEARCH_R3_THREADS)`,
);
console.log(
  `load average at start: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')} (the machine is shared: >~0.5 means 2-thread figures are contended)\n`,
);
gemmSection();
kernelSection();
console.log(
  `load average at end: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
setNativeThreads(threadsBefore);
