/**
 * The reference backend: every kernel in plain TypeScript, single-threaded, written for clarity first.
 * The native backend is tested against it; it is also what runs when the addon could not be built.
 */
import { HalfArray, halfAllFinite, widenHalf } from './half-float.js';
import { HostArrayPool } from './host-pool.js';
import {
  type AttentionShape,
  BinaryOp,
  type F32,
  type GemmArgs,
  type GemmHalfArgs,
  HOST_CHUNK_BYTES,
  type Kernels,
  ReduceOp,
  checkBias,
  UnaryOp,
} from './kernels.js';

type BiasArgs = Pick<GemmArgs, 'c' | 'bias' | 'batch' | 'm' | 'n' | 'strideC' | 'accumulate'>;

/**
 * For a host gemm that has no bias of its own: puts the bias into every row of each C (added where the gemm
 * accumulates, copied where it would overwrite) and returns the arguments of the product that accumulates
 * onto it (the same arguments when there is no bias).
 */
export function biasIntoC<A extends BiasArgs>(args: A): A {
  const { c, bias, batch, m, n, strideC, accumulate } = args;
  if (!bias) return args;
  checkBias(args);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < m; i++) {
      const at = z * strideC + i * n;
      if (accumulate) for (let j = 0; j < n; j++) c[at + j] += bias[j];
      else c.set(bias.subarray(0, n), at);
    }
  }
  return { ...args, bias: null, accumulate: true };
}

function gemm(args: GemmArgs): void {
  const { a, b, c, batch, m, n, k, transA, transB, strideA, strideB, strideC, accumulate } = biasIntoC(args);
  const row = new Float64Array(n);
  for (let bi = 0; bi < batch; bi++) {
    const ao = bi * strideA,
      bo = bi * strideB,
      co = bi * strideC;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = transA ? a[ao + p * m + i] : a[ao + i * k + p];
        if (av === 0) continue;
        if (transB) {
          for (let j = 0; j < n; j++) row[j] += av * b[bo + j * k + p];
        } else {
          const bb = bo + p * n;
          for (let j = 0; j < n; j++) row[j] += av * b[bb + j];
        }
      }
      const cr = co + i * n;
      if (accumulate) for (let j = 0; j < n; j++) c[cr + j] += row[j];
      else for (let j = 0; j < n; j++) c[cr + j] = row[j];
    }
  }
}

/** Widens each batch's B (one matrix when strideB is 0) to float32 and runs gemm on it. */
function gemmHalf(given: GemmHalfArgs): void {
  const args = biasIntoC(given);
  const { b, batch, k, n, strideA, strideB, strideC } = args;
  const wide = new Float32Array(k * n);
  if (strideB === 0) {
    widenHalf(b.subarray(0, k * n), wide);
    gemm({ ...args, b: wide });
    return;
  }
  for (let bi = 0; bi < batch; bi++) {
    widenHalf(b.subarray(bi * strideB, bi * strideB + k * n), wide);
    const a = args.a.subarray(bi * strideA),
      c = args.c.subarray(bi * strideC);
    gemm({ ...args, a, b: wide, c, batch: 1 });
  }
}

/**
 * Calls f(offsetA, offsetB, i) for every index of `shape` in row-major order (i counts 0, 1, 2, ...),
 * where offsetA and offsetB start at a0/b0 and advance by their strides.
 */
function forEachIndex(
  shape: ArrayLike<number>,
  sa: ArrayLike<number>,
  sb: ArrayLike<number>,
  f: (oa: number, ob: number, i: number) => void,
  a0 = 0,
  b0 = 0,
): void {
  const nd = shape.length;
  let total = 1;
  for (let d = 0; d < nd; d++) total *= shape[d];
  if (total === 0) return;
  const idx = new Array<number>(nd).fill(0);
  let oa = a0,
    ob = b0;
  for (let i = 0; i < total; i++) {
    f(oa, ob, i);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < shape[d]) break;
      oa -= sa[d] * shape[d];
      ob -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
}

function binary(
  op: BinaryOp,
  a: F32,
  aStrides: ArrayLike<number>,
  b: F32,
  bStrides: ArrayLike<number>,
  out: F32,
  shape: ArrayLike<number>,
): void {
  switch (op) {
    case BinaryOp.Add:
      return forEachIndex(shape, aStrides, bStrides, (ia, ib, o) => {
        out[o] = a[ia] + b[ib];
      });
    case BinaryOp.Sub:
      return forEachIndex(shape, aStrides, bStrides, (ia, ib, o) => {
        out[o] = a[ia] - b[ib];
      });
    case BinaryOp.Mul:
      return forEachIndex(shape, aStrides, bStrides, (ia, ib, o) => {
        out[o] = a[ia] * b[ib];
      });
    case BinaryOp.Div:
      return forEachIndex(shape, aStrides, bStrides, (ia, ib, o) => {
        out[o] = a[ia] / b[ib];
      });
  }
}

const unaryFns: Record<UnaryOp, (x: number) => number> = {
  [UnaryOp.Neg]: (x) => -x,
  [UnaryOp.Exp]: Math.exp,
  [UnaryOp.Log]: Math.log,
  [UnaryOp.Sqrt]: Math.sqrt,
  [UnaryOp.Abs]: Math.abs,
  [UnaryOp.Square]: (x) => x * x,
  [UnaryOp.Reciprocal]: (x) => 1 / x,
};

function unary(op: UnaryOp, x: F32, out: F32): void {
  const f = unaryFns[op];
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
}

function axpby(alpha: number, x: F32, beta: number, out: F32): void {
  if (beta === 0) for (let i = 0; i < x.length; i++) out[i] = alpha * x[i];
  else for (let i = 0; i < x.length; i++) out[i] = alpha * x[i] + beta * out[i];
}

function reduce(
  op: ReduceOp,
  x: F32,
  outer: number,
  n: number,
  inner: number,
  out: F32,
  argmax: Int32Array | null,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      if (op === ReduceOp.Sum) {
        let s = 0;
        for (let j = 0; j < n; j++) s += x[base + j * inner];
        out[o * inner + i] = s;
      } else {
        let best = -Infinity,
          arg = 0;
        for (let j = 0; j < n; j++) {
          const v = x[base + j * inner];
          if (v > best || Number.isNaN(v)) {
            best = v;
            arg = j;
            if (Number.isNaN(v)) break;
          }
        }
        out[o * inner + i] = best;
        if (argmax) argmax[o * inner + i] = arg;
      }
    }
  }
}

function copy(
  src: F32,
  srcOff: number,
  srcStrides: ArrayLike<number>,
  dst: F32,
  dstOff: number,
  dstStrides: ArrayLike<number>,
  shape: ArrayLike<number>,
  accumulate: boolean,
): void {
  if (accumulate)
    forEachIndex(
      shape,
      srcStrides,
      dstStrides,
      (os, od) => {
        dst[od] += src[os];
      },
      srcOff,
      dstOff,
    );
  else
    forEachIndex(
      shape,
      srcStrides,
      dstStrides,
      (os, od) => {
        dst[od] = src[os];
      },
      srcOff,
      dstOff,
    );
}

function sumSquares(x: F32): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

function allFinite(x: F32): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}

function rmsnormForward(x: F32, w: F32, y: F32, rstd: F32, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const rs = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = rs;
    for (let i = 0; i < dim; i++) y[o + i] = x[o + i] * rs * w[i];
  }
}

function rmsnormBackward(dy: F32, x: F32, w: F32, rstd: F32, dx: F32, dw: F32 | null, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim,
      rs = rstd[r];
    // y = x·rs·w; dx = rs·(dy∘w) − x·rs³·mean(dy∘w∘x)
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += dy[o + i] * w[i] * x[o + i];
    const c = (rs * rs * rs * dot) / dim;
    for (let i = 0; i < dim; i++) {
      if (dw) dw[i] += dy[o + i] * x[o + i] * rs;
      dx[o + i] = rs * dy[o + i] * w[i] - c * x[o + i];
    }
  }
}

function l2normalizeForward(x: F32, y: F32, norms: F32, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let s = 0;
    for (let i = 0; i < dim; i++) s += x[o + i] * x[o + i];
    // y is divided by the norm in double; only the stored norm is rounded to float32.
    const n = Math.max(Math.sqrt(s), eps);
    norms[r] = n;
    for (let i = 0; i < dim; i++) y[o + i] = x[o + i] / n;
  }
}

function l2normalizeBackward(g: F32, y: F32, norms: F32, dx: F32, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim,
      n = norms[r];
    // Below eps the denominator is the constant eps; above it, project out the radial component.
    let dot = 0;
    if (n > eps) for (let i = 0; i < dim; i++) dot += g[o + i] * y[o + i];
    for (let i = 0; i < dim; i++) dx[o + i] = (g[o + i] - y[o + i] * dot) / n;
  }
}

function rope(
  x: F32,
  out: F32,
  cos: F32,
  sin: F32,
  positions: Int32Array,
  rows: number,
  heads: number,
  headDim: number,
  inverse: boolean,
): void {
  const half = headDim >> 1;
  const sgn = inverse ? -1 : 1;
  for (let r = 0; r < rows; r++) {
    const t = positions[r] * half;
    for (let h = 0; h < heads; h++) {
      const o = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[t + i],
          s = sgn * sin[t + i];
        const x1 = x[o + i],
          x2 = x[o + half + i];
        out[o + i] = x1 * c - x2 * s;
        out[o + half + i] = x2 * c + x1 * s;
      }
    }
  }
}

function softmaxForward(x: F32, y: F32, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let mx = -Infinity;
    for (let i = 0; i < n; i++) if (x[o + i] > mx) mx = x[o + i];
    let s = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp(x[o + i] - mx);
      y[o + i] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let i = 0; i < n; i++) y[o + i] *= inv;
  }
}

function softmaxBackward(y: F32, dy: F32, dx: F32, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let dot = 0;
    for (let i = 0; i < n; i++) dot += dy[o + i] * y[o + i];
    for (let i = 0; i < n; i++) dx[o + i] = y[o + i] * (dy[o + i] - dot);
  }
}

function rowLogSumExp(x: F32, o: number, n: number): number {
  let mx = -Infinity;
  for (let i = 0; i < n; i++) if (x[o + i] > mx) mx = x[o + i];
  if (mx === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[o + i] - mx);
  return mx + Math.log(s);
}

function logSoftmaxForward(x: F32, y: F32, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n,
      lse = rowLogSumExp(x, o, n);
    for (let i = 0; i < n; i++) y[o + i] = x[o + i] - lse;
  }
}

function logSoftmaxBackward(y: F32, dy: F32, dx: F32, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let s = 0;
    for (let i = 0; i < n; i++) s += dy[o + i];
    for (let i = 0; i < n; i++) dx[o + i] = dy[o + i] - Math.exp(y[o + i]) * s;
  }
}

function crossEntropyForward(
  logits: F32,
  targets: Int32Array,
  loss: F32,
  lse: F32,
  rows: number,
  vocab: number,
  ignoreIndex: number,
): void {
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === ignoreIndex) {
      loss[r] = 0;
      lse[r] = 0;
      continue;
    }
    const o = r * vocab,
      l = rowLogSumExp(logits, o, vocab);
    lse[r] = l;
    loss[r] = l - logits[o + t];
  }
}

function crossEntropyBackward(
  logits: F32,
  targets: Int32Array,
  lse: F32,
  scale: F32,
  dlogits: F32,
  rows: number,
  vocab: number,
  ignoreIndex: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * vocab,
      t = targets[r];
    if (t === ignoreIndex) {
      dlogits.fill(0, o, o + vocab);
      continue;
    }
    const l = lse[r],
      s = scale[r];
    for (let i = 0; i < vocab; i++) dlogits[o + i] = s * Math.exp(logits[o + i] - l);
    dlogits[o + t] -= s;
  }
}

/** Past this float32's exp is Inf (native sr3_expf, PyTorch): sigmoid(x) is 0 below its negative, silu(x) −0. */
const F32_EXP_MAX = Math.fround(88.7228);
const sigmoid = (x: number): number => (-x > F32_EXP_MAX ? 0 : 1 / (1 + Math.exp(-x)));

function siluForward(x: F32, y: F32): void {
  for (let i = 0; i < x.length; i++) y[i] = x[i] * sigmoid(x[i]);
}

function siluBackward(x: F32, dy: F32, dx: F32): void {
  for (let i = 0; i < x.length; i++) {
    const s = sigmoid(x[i]);
    dx[i] = dy[i] * s * (1 + x[i] * (1 - s));
  }
}

function swigluForward(gate: F32, up: F32, y: F32): void {
  for (let i = 0; i < gate.length; i++) y[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

function swigluBackward(gate: F32, up: F32, dy: F32, dgate: F32, dup: F32): void {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i],
      s = sigmoid(g),
      silu = g * s;
    dup[i] = dy[i] * silu;
    dgate[i] = dy[i] * up[i] * s * (1 + g * (1 - s));
  }
}

/** Number of keys query i may see (positions 0..limit-1); queries are the last queryLen of keyLen. */
function causalLimit(s: AttentionShape, i: number): number {
  return s.causal ? s.keyLen - s.queryLen + i + 1 : s.keyLen;
}

function attentionForward(q: F32, k: F32, v: F32, out: F32, lse: F32, s: AttentionShape): void {
  const { batch, queryHeads: H, kvHeads: G, queryLen: T, keyLen: S, headDim: D, scale, keyMask } = s;
  const KS = s.keyStride ?? S;
  const group = H / G;
  const p = new Float64Array(S);
  const acc = new Float64Array(D);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qo = ((b * T + i) * H + h) * D;
        const lim = causalLimit(s, i);
        let mx = -Infinity;
        for (let j = 0; j < lim; j++) {
          if (keyMask && keyMask[b * S + j] === 0) {
            p[j] = -Infinity;
            continue;
          }
          const ko = ((b * KS + j) * G + g) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
          p[j] = dot * scale;
          if (p[j] > mx) mx = p[j];
        }
        acc.fill(0);
        if (mx === -Infinity) {
          lse[(b * H + h) * T + i] = -Infinity;
        } else {
          let sum = 0;
          for (let j = 0; j < lim; j++) {
            const e = p[j] === -Infinity ? 0 : Math.exp(p[j] - mx);
            p[j] = e;
            sum += e;
          }
          for (let j = 0; j < lim; j++) {
            if (p[j] === 0) continue;
            const w = p[j] / sum,
              vo = ((b * KS + j) * G + g) * D;
            for (let d = 0; d < D; d++) acc[d] += w * v[vo + d];
          }
          lse[(b * H + h) * T + i] = mx + Math.log(sum);
        }
        for (let d = 0; d < D; d++) out[qo + d] = acc[d];
      }
    }
  }
}

function attentionBackward(
  q: F32,
  k: F32,
  v: F32,
  out: F32,
  lse: F32,
  dout: F32,
  dq: F32,
  dk: F32,
  dv: F32,
  s: AttentionShape,
): void {
  const { batch, queryHeads: H, kvHeads: G, queryLen: T, keyLen: S, headDim: D, scale, keyMask } = s;
  const KS = s.keyStride ?? S;
  const group = H / G;
  dq.fill(0);
  dk.fill(0);
  dv.fill(0);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const l = lse[(b * H + h) * T + i];
        if (l === -Infinity) continue;
        const qo = ((b * T + i) * H + h) * D;
        // delta = Σ_d dout·out: the softmax-backward row term
        let delta = 0;
        for (let d = 0; d < D; d++) delta += dout[qo + d] * out[qo + d];
        const lim = causalLimit(s, i);
        for (let j = 0; j < lim; j++) {
          if (keyMask && keyMask[b * S + j] === 0) continue;
          const ko = ((b * KS + j) * G + g) * D;
          let dot = 0,
            dp = 0;
          for (let d = 0; d < D; d++) {
            dot += q[qo + d] * k[ko + d];
            dp += dout[qo + d] * v[ko + d];
          }
          const pij = Math.exp(dot * scale - l);
          const ds = pij * (dp - delta) * scale;
          for (let d = 0; d < D; d++) {
            dv[ko + d] += pij * dout[qo + d];
            dq[qo + d] += ds * k[ko + d];
            dk[ko + d] += ds * q[qo + d];
          }
        }
      }
    }
  }
}

function embeddingForward(weight: F32, ids: Int32Array, out: F32, dim: number): void {
  for (let i = 0; i < ids.length; i++) out.set(weight.subarray(ids[i] * dim, ids[i] * dim + dim), i * dim);
}

function embeddingForwardHalf(weight: HalfArray, ids: Int32Array, out: F32, dim: number): void {
  for (let i = 0; i < ids.length; i++) {
    widenHalf(weight.subarray(ids[i] * dim, ids[i] * dim + dim), out.subarray(i * dim, i * dim + dim));
  }
}

function embeddingBackward(dout: F32, ids: Int32Array, dweight: F32, dim: number): void {
  for (let i = 0; i < ids.length; i++) {
    const o = ids[i] * dim,
      s = i * dim;
    for (let d = 0; d < dim; d++) dweight[o + d] += dout[s + d];
  }
}

function adamw(
  param: F32,
  grad: F32,
  m: F32,
  v: F32,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  bc1: number,
  bc2: number,
): void {
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    const mh = m[i] / bc1,
      vh = v[i] / bc2;
    param[i] = param[i] * decay - (lr * mh) / (Math.sqrt(vh) + eps);
  }
}

/** Arrays released by inference code, shared by both host backends (the native one keeps this storage). */
export const hostPool = new HostArrayPool(128 * 2 ** 20);

/** Host storage: arrays are used as they are (no copies), as they always were on the CPU. */
export const hostStorage = {
  device: 'cpu',
  chunkBytes: HOST_CHUNK_BYTES,
  alloc: (n: number): F32 => hostPool.take(n),
  empty: (n: number): F32 => hostPool.take(n, false),
  fromHost: (x: F32): F32 => x,
  halfFromHost: (x: HalfArray): HalfArray => x,
  toHost: (x: F32): F32 => x,
  holds: (x: unknown): boolean => x instanceof Float32Array || x instanceof HalfArray,
  fill: (x: F32, value: number): void => void x.fill(value),
  clone: (x: F32): F32 => Float32Array.from(x),
  release: (x: F32): void => hostPool.give(x),
} as const;

export const jsKernels: Kernels = {
  name: 'js',
  ...hostStorage,
  gemm,
  gemmHalf,
  widenHalf,
  binary,
  unary,
  axpby,
  reduce,
  copy,
  sumSquares,
  sumSquaresMany: (xs: readonly F32[]): number => xs.reduce((s, x) => s + sumSquares(x), 0),
  allFinite,
  halfAllFinite,
  rmsnormForward,
  rmsnormBackward,
  l2normalizeForward,
  l2normalizeBackward,
  rope,
  softmaxForward,
  softmaxBackward,
  logSoftmaxForward,
  logSoftmaxBackward,
  crossEntropyForward,
  crossEntropyBackward,
  siluForward,
  siluBackward,
  swigluForward,
  swigluBackward,
  attentionForward,
  attentionBackward,
  embeddingForward,
  embeddingForwardHalf,
  embeddingBackward,
  adamw,
};
