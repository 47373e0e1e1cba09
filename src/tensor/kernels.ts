/**
 * The kernel interface: every numeric loop the tensor layer runs. Two implementations exist:
 * js-kernels.ts (pure TypeScript, the reference, always available) and native-kernels.ts (an N-API
 * addon with OpenBLAS sgemm and fused C loops). Kernels work on flat, contiguous Float32Arrays in
 * row-major order; shapes and strides are passed explicitly. They never allocate their outputs.
 *
 * Accumulating outputs (named `acc…` or marked "+=") add into what is already there: that is how
 * gradients of parameters used several times, and of broadcast inputs, are summed.
 */
export type F32 = Float32Array;

export const enum BinaryOp {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
}
export const enum UnaryOp {
  Neg = 0,
  Exp = 1,
  Log = 2,
  Sqrt = 3,
  Abs = 4,
  Square = 5,
  Reciprocal = 6,
}
export const enum ReduceOp {
  Sum = 0,
  Max = 1,
}

export interface GemmArgs {
  a: F32;
  b: F32;
  c: F32;
  batch: number;
  m: number;
  n: number;
  k: number;
  /** A is stored k×m instead of m×k. */
  transA: boolean;
  /** B is stored n×k instead of k×n. */
  transB: boolean;
  /** Distance between consecutive batch matrices, in elements; 0 reuses one matrix for every batch. */
  strideA: number;
  strideB: number;
  strideC: number;
  /** C += A·B instead of C = A·B. */
  accumulate: boolean;
}

export interface AttentionShape {
  batch: number;
  /** Query heads and key/value heads; queryHeads is a multiple of kvHeads (grouped-query attention). */
  queryHeads: number;
  kvHeads: number;
  /** Query length and key length; with a KV cache, queries are the last `queryLen` of `keyLen` positions. */
  queryLen: number;
  keyLen: number;
  headDim: number;
  scale: number;
  causal: boolean;
  /** 1 = real key, 0 = padding, per [batch, keyLen]; null = no padding. */
  keyMask: Uint8Array | null;
  /**
   * Key/value positions allocated per batch row, ≥ keyLen (default keyLen): k and v are
   * [batch, keyStride, kvHeads, headDim] and only the first keyLen positions of a row are attended
   * (a KV cache that grows in place).
   */
  keyStride?: number;
}

export interface Kernels {
  readonly name: 'js' | 'native';

  /** C[i] (+)= op(A[i])·op(B[i]) for each of `batch` matrices. op(A) is m×k, op(B) k×n, C m×n. */
  gemm(args: GemmArgs): void;

  /** out[idx] = a[idx·aStrides] ∘ b[idx·bStrides] over `shape`; a stride of 0 broadcasts that axis. */
  binary(
    op: BinaryOp,
    a: F32,
    aStrides: ArrayLike<number>,
    b: F32,
    bStrides: ArrayLike<number>,
    out: F32,
    shape: ArrayLike<number>,
  ): void;
  /** out = f(x), element by element (out may be x). */
  unary(op: UnaryOp, x: F32, out: F32): void;
  /** out = alpha·x + beta·out (beta = 0 overwrites). */
  axpby(alpha: number, x: F32, beta: number, out: F32): void;
  /** x viewed as [outer, n, inner], reduced over n into out [outer, inner]. Max also writes the arg index. */
  reduce(op: ReduceOp, x: F32, outer: number, n: number, inner: number, out: F32, argmax: Int32Array | null): void;
  /**
   * Strided copy over `shape`: dst[dstOff + Σ i·dstStrides] (+)= src[srcOff + Σ i·srcStrides].
   * Transpose, slice, concat, expand and (with accumulate and a 0 dst stride) sum-to-shape are all this.
   */
  copy(
    src: F32,
    srcOff: number,
    srcStrides: ArrayLike<number>,
    dst: F32,
    dstOff: number,
    dstStrides: ArrayLike<number>,
    shape: ArrayLike<number>,
    accumulate: boolean,
  ): void;
  /** Σ x², in double precision. */
  sumSquares(x: F32): number;
  /** True when no element is NaN or ±Inf. */
  allFinite(x: F32): boolean;

  /** y = x / sqrt(mean(x²) + eps) · w over rows of length dim; rstd[row] = 1/sqrt(mean(x²)+eps). */
  rmsnormForward(x: F32, w: F32, y: F32, rstd: F32, rows: number, dim: number, eps: number): void;
  /** dx = ∂L/∂x (overwritten); dw += ∂L/∂w. */
  rmsnormBackward(dy: F32, x: F32, w: F32, rstd: F32, dx: F32, dw: F32 | null, rows: number, dim: number): void;

  /**
   * Rotary embedding, half-split ("rotate_half") convention, over x [rows, heads, headDim] where row r
   * sits at position positions[r]; cos/sin tables are [maxPos, headDim/2]. inverse applies the transpose
   * rotation (the backward pass). out may be x.
   */
  rope(
    x: F32,
    out: F32,
    cos: F32,
    sin: F32,
    positions: Int32Array,
    rows: number,
    heads: number,
    headDim: number,
    inverse: boolean,
  ): void;

  /** Row-wise softmax over the last axis of length n. */
  softmaxForward(x: F32, y: F32, rows: number, n: number): void;
  /** dx = y ∘ (dy − Σ dy∘y), row-wise. */
  softmaxBackward(y: F32, dy: F32, dx: F32, rows: number, n: number): void;
  /** Row-wise log-softmax. */
  logSoftmaxForward(x: F32, y: F32, rows: number, n: number): void;
  /** dx = dy − exp(y)·Σ dy, row-wise. */
  logSoftmaxBackward(y: F32, dy: F32, dx: F32, rows: number, n: number): void;

  /**
   * Cross-entropy per row: loss[r] = lse(logits[r]) − logits[r, target[r]], 0 where target = ignoreIndex.
   * Writes lse[r] for the backward pass.
   */
  crossEntropyForward(
    logits: F32,
    targets: Int32Array,
    loss: F32,
    lse: F32,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  /** dlogits[r] = scale[r]·(softmax(logits[r]) − onehot(target[r])); 0 for ignored rows. */
  crossEntropyBackward(
    logits: F32,
    targets: Int32Array,
    lse: F32,
    scale: F32,
    dlogits: F32,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;

  /** y = x·sigmoid(x). */
  siluForward(x: F32, y: F32): void;
  /** dx = dy·silu'(x). */
  siluBackward(x: F32, dy: F32, dx: F32): void;
  /** y = silu(gate)·up. */
  swigluForward(gate: F32, up: F32, y: F32): void;
  /** dgate, dup (overwritten) from dy. */
  swigluBackward(gate: F32, up: F32, dy: F32, dgate: F32, dup: F32): void;

  /**
   * Softmax attention. q [batch, queryLen, queryHeads, headDim], k and v [batch, keyLen, kvHeads, headDim],
   * out like q, lse [batch, queryHeads, queryLen] (log-sum-exp of the scaled, masked scores; −Inf where
   * a query sees no key, whose output is then 0).
   */
  attentionForward(q: F32, k: F32, v: F32, out: F32, lse: F32, s: AttentionShape): void;
  /** dq, dk, dv overwritten. */
  attentionBackward(
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
  ): void;

  /** out[i] = weight[ids[i]] (rows of length dim). */
  embeddingForward(weight: F32, ids: Int32Array, out: F32, dim: number): void;
  /** dweight[ids[i]] += dout[i]. */
  embeddingBackward(dout: F32, ids: Int32Array, dweight: F32, dim: number): void;

  /** One AdamW update in place; bc1/bc2 are the bias corrections 1−β₁ᵗ and 1−β₂ᵗ. */
  adamw(
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
  ): void;
}
