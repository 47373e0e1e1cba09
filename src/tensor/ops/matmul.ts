/**
 * Matrix products: op(a)·op(b) over the last two axes, batched over the leading ones. Either side may
 * be a single matrix shared by every batch entry (a weight); then the product runs as one large gemm.
 * b may be a frozen weight held in f16 or bf16: it is widened inside the kernel, and gradients flow
 * to a only.
 */
import { type AnyKernels, kernels, type Buf } from '../backend.js';
import { type GemmArgs, ReduceOp } from '../kernels.js';
import { type Shape, Tensor, TensorError, shapeStr } from '../tensor.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /**
   * Added to every row of the product ([n]): C starts as the bias and the product accumulates onto it, so a
   * linear layer's bias costs no pass of its own over the output.
   */
  bias?: Tensor | null;
}

function batchOf(shape: Shape): number {
  let n = 1;
  for (let i = 0; i < shape.length - 2; i++) n *= shape[i];
  return n;
}

interface Plan {
  batch: number;
  m: number;
  n: number;
  k: number;
  strideA: number;
  strideB: number;
  strideC: number;
  outShape: number[];
}

function plan(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Plan {
  const fail = (why: string): never => {
    throw new TensorError(
      'matmul',
      `${why}: ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} · ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''}`,
    );
  };
  if (a.ndim < 2 || b.ndim < 2) fail('both operands need at least 2 dimensions');
  const [ar, ac] = a.shape.slice(-2),
    [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar,
    k = transA ? ar : ac;
  const kb = transB ? bc : br,
    n = transB ? br : bc;
  if (k !== kb) fail(`inner dimensions ${k} and ${kb} differ`);
  const ba = batchOf(a.shape),
    bb = batchOf(b.shape);
  const aBatchShape = a.shape.slice(0, -2),
    bBatchShape = b.shape.slice(0, -2);
  if (ba !== bb && ba !== 1 && bb !== 1) fail('batch dimensions differ');
  if (ba === bb && aBatchShape.join() !== bBatchShape.join() && ba !== 1) fail('batch dimensions differ');
  const batch = Math.max(ba, bb);
  const outBatch = ba >= bb && a.ndim > 2 ? aBatchShape : bBatchShape;
  return {
    batch,
    m,
    n,
    k,
    strideA: ba === 1 ? 0 : m * k,
    strideB: bb === 1 ? 0 : k * n,
    strideC: m * n,
    outShape: [...outBatch, m, n],
  };
}

/** gemm with b as its B operand, whether b is float32 or a 16-bit weight. */
export function gemmWith(K: AnyKernels, b: Tensor, args: Omit<GemmArgs<Buf>, 'b'>): void {
  if (b.dtype === 'f32') K.gemm({ ...args, b: b.buf });
  else K.gemmHalf({ ...args, b: b.half });
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false,
    transB = opts.transB ?? false;
  const p = plan(a, b, transA, transB);
  if (b.dtype !== 'f32' && b.tracksGrad) {
    throw new TensorError('matmul', `${b.describe()} is held in ${b.dtype}, so it is frozen and gets no gradient`);
  }
  const K = kernels();
  // A batch of row-major A matrices against one shared B is a single (batch·m)×k matrix.
  const fold = p.strideB === 0 && p.strideA !== 0 && !transA;
  const M = fold ? p.batch * p.m : p.m,
    B = fold ? 1 : p.batch;
  const bias = opts.bias ?? null;
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== p.n)) {
    throw new TensorError('matmul', `bias ${shapeStr(bias.shape)} does not match the product's ${p.n} columns`);
  }
  // gemm writes all of C, the bias added to every row (by the kernel on a GPU: no pass of its own)
  const c = kernels().empty(p.batch * p.m * p.n);
  const { strideA, strideB } = p;
  gemmWith(K, b, {
    a: a.buf,
    c,
    batch: B,
    m: M,
    n: p.n,
    k: p.k,
    transA,
    transB,
    strideA,
    strideB,
    strideC: M * p.n,
    accumulate: false,
    bias: bias?.buf ?? null,
  });
  const out = new Tensor(c, p.outShape);
  return Tensor.record(out, 'matmul', bias ? [a, b, bias] : [a, b], (g) => {
    let ga: Buf | null = null,
      gb: Buf | null = null;
    if (a.tracksGrad) {
      ga = kernels().alloc(a.size);
      // A shared by the batch collects the sum of every batch entry's gradient.
      const sharedA = p.strideA === 0 && B > 1;
      if (!transA) {
        // dA = dC·op(B)ᵀ
        const strideC = sharedA ? 0 : M * p.k;
        gemmWith(K, b, {
          a: g,
          c: ga,
          batch: B,
          m: M,
          n: p.k,
          k: p.n,
          transA: false,
          transB: !transB,
          strideA: M * p.n,
          strideB: p.strideB,
          strideC,
          accumulate: sharedA,
        });
      } else {
        // dA (k×m) = op(B)·dCᵀ
        K.gemm({
          a: b.buf,
          b: g,
          c: ga,
          batch: B,
          m: p.k,
          n: M,
          k: p.n,
          transA: transB,
          transB: true,
          strideA: p.strideB,
          strideB: M * p.n,
          strideC: sharedA ? 0 : M * p.k,
          accumulate: sharedA,
        });
      }
    }
    if (b.tracksGrad) {
      gb = kernels().alloc(b.size);
      const sharedB = p.strideB === 0 && B > 1;
      if (!transB) {
        // dB (k×n) = op(A)ᵀ·dC
        K.gemm({
          a: a.buf,
          b: g,
          c: gb,
          batch: B,
          m: p.k,
          n: p.n,
          k: M,
          transA: !transA,
          transB: false,
          strideA: p.strideA,
          strideB: M * p.n,
          strideC: sharedB ? 0 : p.k * p.n,
          accumulate: sharedB,
        });
      } else {
        // dB (n×k) = dCᵀ·op(A)
        K.gemm({
          a: g,
          b: a.buf,
          c: gb,
          batch: B,
          m: p.n,
          n: p.k,
          k: M,
          transA: true,
          transB: transA,
          strideA: M * p.n,
          strideB: p.strideA,
          strideC: sharedB ? 0 : p.k * p.n,
          accumulate: sharedB,
        });
      }
    }
    if (!bias) return [ga, gb];
    let gbias: Buf | null = null;
    if (bias.tracksGrad) {
      gbias = kernels().alloc(p.n);
      K.reduce(ReduceOp.Sum, g, 1, p.batch * p.m, p.n, gbias, null);
    }
    return [ga, gb, gbias];
  });
}
