/**
 * The kernel interface: every numeric loop the tensor layer runs. Three implementations exist:
 * js-kernels.ts (pure TypeScript, the reference, always available), native-kernels.ts (an N-API addon
 * with OpenBLAS sgemm and fused C loops) and webgpu/webgpu-kernels.ts (WGSL compute shaders). Kernels
 * work on flat, contiguous arrays in row-major order (Float32Arrays on the CPU, GPU buffers on WebGPU:
 * the type parameter B, with H for 16-bit weights); shapes and strides are passed explicitly. Only the
 * storage methods (alloc, fromHost, …) allocate; kernels write into outputs they are given.
 *
 * Accumulating outputs (named `acc…` or marked "+=") add into what is already there: that is how
 * gradients of parameters used several times, and of broadcast inputs, are summed.
 */
import type { HalfArray } from './half-float.js';

export type F32 = Float32Array;

/** Where kernels compute: host memory or a GPU. */
export type DeviceKind = 'cpu' | 'webgpu';

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

export interface GemmArgs<B = F32> {
  a: B;
  b: B;
  c: B;
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
  /**
   * bias[j] added to column j of every row of every C (a linear layer's bias): C (+)= A·B + bias. Only
   * with C blocks that do not overlap (strideC ≥ m·n, or one batch entry).
   */
  bias?: B | null;
}

/** A bias must have a value per column, and the C blocks it goes into must not overlap. */
export function checkBias(args: { bias?: unknown; batch: number; m: number; n: number; strideC: number }): void {
  const bias = args.bias as { length: number } | null | undefined;
  if (!bias) return;
  if (bias.length < args.n) throw new RangeError(`gemm: bias has ${bias.length} values for ${args.n} columns`);
  if (args.batch > 1 && args.strideC < args.m * args.n) {
    throw new RangeError('gemm: a bias needs C blocks that do not overlap (strideC ≥ m·n)');
  }
}

/** gemm whose B is a frozen weight held in 16 bits, widened to float32 as it is read. */
export interface GemmHalfArgs<B = F32, H = HalfArray> extends Omit<GemmArgs<B>, 'b'> {
  b: H;
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

/** Kernels.chunkBytes where memory is the host's: the CPU backends and software adapters. */
export const HOST_CHUNK_BYTES = 32 * 2 ** 20;

export interface Kernels<B = F32, H = HalfArray> {
  readonly name: 'js' | 'native' | 'webgpu';
  readonly device: DeviceKind;
  /**
   * Bytes an op may give one vocabulary-wide working buffer (linearCrossEntropy's chunk of logits, and
   * again its gradient): 32 MiB on the CPU and software adapters, more on a GPU that binds it, where
   * fewer, taller chunks keep the products on full tiles and read the head's gradient fewer times.
   */
  readonly chunkBytes: number;

  /** A zeroed array of n float32 values on this device. */
  alloc(n: number): B;
  /**
   * An array of n float32 values for an op that writes every one of them: its contents are unspecified (a
   * reused array keeps old values), which spares the zeroing alloc does.
   */
  empty(n: number): B;
  /** The host values on this device: the array itself on the CPU (no copy), an upload on a GPU. */
  fromHost(x: F32): B;
  /** 16-bit weights on this device (the array itself on the CPU). */
  halfFromHost(x: HalfArray): H;
  /** The values on the host: the array itself on the CPU, a download (a copy) from a GPU. */
  toHost(x: B): F32;
  /** Whether x is this device's storage (a float32 array or 16-bit weights of it). */
  holds(x: unknown): boolean;
  /** x[i] = value. */
  fill(x: B, value: number): void;
  /** A new array with x's values. */
  clone(x: B): B;

  /** C[i] (+)= op(A[i])·op(B[i]) for each of `batch` matrices. op(A) is m×k, op(B) k×n, C m×n. */
  gemm(args: GemmArgs<B>): void;
  /** gemm with B in f16 or bf16; sums as gemm does (float32 products of the widened values). */
  gemmHalf(args: GemmHalfArgs<B, H>): void;
  /** dst = src widened to float32 (same length). */
  widenHalf(src: H, dst: B): void;

  /** out[idx] = a[idx·aStrides] ∘ b[idx·bStrides] over `shape`; a stride of 0 broadcasts that axis. */
  binary(
    op: BinaryOp,
    a: B,
    aStrides: ArrayLike<number>,
    b: B,
    bStrides: ArrayLike<number>,
    out: B,
    shape: ArrayLike<number>,
  ): void;
  /** out = f(x), element by element (out may be x). */
  unary(op: UnaryOp, x: B, out: B): void;
  /** out = alpha·x + beta·out (beta = 0 overwrites). */
  axpby(alpha: number, x: B, beta: number, out: B): void;
  /** x viewed as [outer, n, inner], reduced over n into out [outer, inner]. Max also writes the arg index. */
  reduce(op: ReduceOp, x: B, outer: number, n: number, inner: number, out: B, argmax: Int32Array | null): void;
  /**
   * Strided copy over `shape`: dst[dstOff + Σ i·dstStrides] (+)= src[srcOff + Σ i·srcStrides].
   * Transpose, slice, concat, expand and (with accumulate and a 0 dst stride) sum-to-shape are all this.
   */
  copy(
    src: B,
    srcOff: number,
    srcStrides: ArrayLike<number>,
    dst: B,
    dstOff: number,
    dstStrides: ArrayLike<number>,
    shape: ArrayLike<number>,
    accumulate: boolean,
  ): void;
  /** Σ x², in double precision. */
  sumSquares(x: B): number;
  /** Σ over the arrays of Σ x² (a GPU reads all of them back at once: one wait, not one per array). */
  sumSquaresMany(xs: readonly B[]): number;
  /** Gives an array's memory back now, to the pool that alloc draws from. Use it no more, nor any view of it. */
  release(x: B): void;
  /** True when no element is NaN or ±Inf. */
  allFinite(x: B): boolean;
  /** allFinite of 16-bit values. */
  halfAllFinite(x: H): boolean;

  /**
   * Greedy decoding's choice on the device, for a GPU backend: picks[2r] = the index of row r's first
   * largest value (NaN never largest; 0 when none is above −Inf), picks[2r + 1] = that value minus the
   * row's log Σ exp. Only 2 floats a row then cross to the host instead of the vocabulary's logits. The
   * CPU backends leave it out: their logits are on the host already.
   */
  greedyPick?(logits: B, picks: B, rows: number, vocab: number): void;
  /**
   * A draw from each row's softmax(row / temperature) on the device, for a GPU backend: picks[2r] = the
   * first token, in id order, at which the running sum of probabilities passes draws[r] (uniform in [0, 1))
   * times their total (the last token with any probability where rounding leaves it short), picks[2r + 1]
   * = its log-probability under that softmax. Values that are not finite have probability 0; a row with
   * no finite value gives token 0 and a NaN log-probability. The CPU backends leave it out.
   */
  samplePick?(logits: B, draws: Float32Array, picks: B, rows: number, vocab: number, temperature: number): void;

  /** y = x / sqrt(mean(x²) + eps) · w over rows of length dim; rstd[row] = 1/sqrt(mean(x²)+eps). */
  rmsnormForward(x: B, w: B, y: B, rstd: B, rows: number, dim: number, eps: number): void;
  /** dx = ∂L/∂x (overwritten); dw += ∂L/∂w. */
  rmsnormBackward(dy: B, x: B, w: B, rstd: B, dx: B, dw: B | null, rows: number, dim: number): void;

  /**
   * y = x / max(‖x‖, eps) over rows of length dim (torch.nn.functional.normalize); norms[row] = max(‖x‖, eps).
   * y may be x.
   */
  l2normalizeForward(x: B, y: B, norms: B, rows: number, dim: number, eps: number): void;
  /**
   * dx = ∂L/∂x (overwritten) from g = ∂L/∂y and the forward's y and norms: (g − y·Σ g∘y) / norm where
   * norm > eps, g / eps where the norm was clamped (the denominator is then a constant). dx may be g.
   */
  l2normalizeBackward(g: B, y: B, norms: B, dx: B, rows: number, dim: number, eps: number): void;

  /**
   * Rotary embedding, half-split ("rotate_half") convention, over x [rows, heads, headDim] where row r
   * sits at position positions[r]; cos/sin tables are [maxPos, headDim/2]. inverse applies the transpose
   * rotation (the backward pass). out may be x.
   */
  rope(
    x: B,
    out: B,
    cos: B,
    sin: B,
    positions: Int32Array,
    rows: number,
    heads: number,
    headDim: number,
    inverse: boolean,
  ): void;

  /** Row-wise softmax over the last axis of length n. */
  softmaxForward(x: B, y: B, rows: number, n: number): void;
  /** dx = y ∘ (dy − Σ dy∘y), row-wise. */
  softmaxBackward(y: B, dy: B, dx: B, rows: number, n: number): void;
  /** Row-wise log-softmax. */
  logSoftmaxForward(x: B, y: B, rows: number, n: number): void;
  /** dx = dy − exp(y)·Σ dy, row-wise. */
  logSoftmaxBackward(y: B, dy: B, dx: B, rows: number, n: number): void;

  /**
   * Cross-entropy per row: loss[r] = lse(logits[r]) − logits[r, target[r]], 0 where target = ignoreIndex.
   * Writes lse[r] for the backward pass.
   */
  crossEntropyForward(
    logits: B,
    targets: Int32Array,
    loss: B,
    lse: B,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  /** dlogits[r] = scale[r]·(softmax(logits[r]) − onehot(target[r])); 0 for ignored rows. */
  crossEntropyBackward(
    logits: B,
    targets: Int32Array,
    lse: B,
    scale: B,
    dlogits: B,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;

  /** y = x·sigmoid(x). */
  siluForward(x: B, y: B): void;
  /** dx = dy·silu'(x). */
  siluBackward(x: B, dy: B, dx: B): void;
  /** y = silu(gate)·up. */
  swigluForward(gate: B, up: B, y: B): void;
  /** dgate, dup (overwritten) from dy. */
  swigluBackward(gate: B, up: B, dy: B, dgate: B, dup: B): void;

  /**
   * Softmax attention. q [batch, queryLen, queryHeads, headDim], k and v [batch, keyLen, kvHeads, headDim],
   * out like q, lse [batch, queryHeads, queryLen] (log-sum-exp of the scaled, masked scores; −Inf where
   * a query sees no key, whose output is then 0).
   */
  attentionForward(q: B, k: B, v: B, out: B, lse: B, s: AttentionShape): void;
  /** dq, dk, dv overwritten. */
  attentionBackward(q: B, k: B, v: B, out: B, lse: B, dout: B, dq: B, dk: B, dv: B, s: AttentionShape): void;

  /** out[i] = weight[ids[i]] (rows of length dim). */
  embeddingForward(weight: B, ids: Int32Array, out: B, dim: number): void;
  /** embeddingForward from a weight held in f16 or bf16. */
  embeddingForwardHalf(weight: H, ids: Int32Array, out: B, dim: number): void;
  /** dweight[ids[i]] += dout[i]. */
  embeddingBackward(dout: B, ids: Int32Array, dweight: B, dim: number): void;

  /** One AdamW update in place; bc1/bc2 are the bias corrections 1−β₁ᵗ and 1−β₂ᵗ. */
  adamw(
    param: B,
    grad: B,
    m: B,
    v: B,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void;
}
