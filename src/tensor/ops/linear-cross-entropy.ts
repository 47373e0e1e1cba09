/**
 * Cross-entropy of the logits h·wᵀ (an LM head) against targets, without the [rows, vocab] logits ever
 * existing whole. Rows go through in chunks, a chunk's logits and their gradient being the only
 * vocabulary-wide buffers, and each chunk's gradient is taken while its logits are at hand: dh and dw for a
 * unit upstream gradient are summed during the forward pass, and backward only scales them by the
 * gradient it is given. That needs the loss to be one number ('mean' or 'sum'), so that the upstream
 * gradient is one scalar. A pretraining batch of 32 × 256 rows over 16,384 words has 512 MiB of logits
 * and as much again of their gradient; this holds two chunks (32 MiB each on the CPU) and dh, dw. No product is
 * computed twice: the flops are those of linear + crossEntropy.
 */
import { isGradEnabled, kernels, type Buf } from '../backend.js';
import { BinaryOp } from '../kernels.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';
import { type CrossEntropyOptions, countTargets } from './cross-entropy.js';
import { gemmWith } from './matmul.js';

export interface LinearCrossEntropyOptions extends CrossEntropyOptions {
  reduction?: 'mean' | 'sum';
  /**
   * Rows per chunk; default as many as keep a chunk's logits within the backend's chunkBytes, a multiple of
   * 128 when there are that many (whole blocks of the GPU's tiled products).
   */
  chunkRows?: number;
}

/** The default rows per chunk for a vocabulary and a backend's chunkBytes. */
export function chunkRowsFor(vocab: number, chunkBytes: number): number {
  const fit = Math.max(1, Math.floor(chunkBytes / (4 * vocab)));
  return fit >= 128 ? fit - (fit % 128) : fit;
}

/** h [rows, d], w [vocab, d] (float32, or a frozen 16-bit weight): the loss of crossEntropy(linear(h, w), targets). */
export function linearCrossEntropy(
  h: Tensor,
  w: Tensor,
  targets: Int32Array,
  opts: LinearCrossEntropyOptions = {},
): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100,
    reduction = opts.reduction ?? 'mean';
  if (h.ndim !== 2 || w.ndim !== 2 || h.shape[1] !== w.shape[1])
    throw new TensorError(
      'linearCrossEntropy',
      `h ${shapeStr(h.shape)} and w ${shapeStr(w.shape)} need [rows, d], [vocab, d]`,
    );
  const [rows, d] = h.shape,
    vocab = w.shape[0];
  const count = countTargets('linearCrossEntropy', targets, rows, vocab, ignoreIndex, `logits [${rows}, ${vocab}]`);
  const factor = reduction === 'mean' ? (count === 0 ? 0 : 1 / count) : 1;
  const K = kernels();
  const chunk = Math.max(1, Math.min(rows, opts.chunkRows ?? chunkRowsFor(vocab, K.chunkBytes)));
  const grad = (h.tracksGrad || w.tracksGrad) && isGradEnabled();
  const loss = K.empty(rows),
    logits = K.empty(chunk * vocab),
    lse = K.empty(chunk),
    rowLoss = K.empty(chunk);
  const dlogits = grad ? K.empty(chunk * vocab) : null,
    scale = grad ? K.empty(chunk) : null;
  const dh = grad && h.tracksGrad ? K.empty(rows * d) : null,
    dw = grad && w.tracksGrad ? K.alloc(vocab * d) : null;
  if (scale) K.fill(scale, factor);
  const whole = chunk === rows;
  const hc = whole ? h.buf : K.empty(chunk * d),
    dhc = whole || !dh ? dh : K.empty(chunk * d);
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const n = Math.min(chunk, rows - r0),
      t = targets.subarray(r0, r0 + n);
    if (!whole) K.copy(h.buf, r0 * d, [d, 1], hc, 0, [d, 1], [n, d], false);
    gemmWith(K, w, { a: hc, c: logits, ...product(n, vocab, d, false, true), accumulate: false });
    K.crossEntropyForward(logits, t, rowLoss, lse, n, vocab, ignoreIndex);
    K.copy(rowLoss, 0, [1], loss, r0, [1], [n], false);
    if (!dlogits || !scale) continue;
    K.crossEntropyBackward(logits, t, lse, scale, dlogits, n, vocab, ignoreIndex);
    if (dh && dhc) {
      // dh = dlogits·w
      gemmWith(K, w, { a: dlogits, c: dhc, ...product(n, d, vocab, false, false), accumulate: false });
      if (!whole) K.copy(dhc, 0, [d, 1], dh, r0 * d, [d, 1], [n, d], false);
    }
    // dw += dlogitsᵀ·h
    if (dw) K.gemm({ a: dlogits, b: hc, c: dw, ...product(vocab, d, n, true, false), accumulate: true });
  }
  for (const b of [logits, lse, rowLoss, dlogits, scale, whole ? null : hc, whole ? null : dhc])
    if (b !== null) K.release(b);
  // summed on the host in double precision: the loss is read for the log every step anyway
  const l = K.toHost(loss);
  K.release(loss);
  let s = 0;
  for (let r = 0; r < rows; r++) s += l[r];
  const out = new Tensor(new Float32Array([s * factor]), []);
  const scaled = (x: Buf | null, g: Buf): Buf | null => {
    if (x === null) return null;
    const y = K.empty(x.length);
    K.binary(BinaryOp.Mul, x, [1], g, [0], y, [x.length]);
    return y;
  };
  return Tensor.record(out, 'linearCrossEntropy', [h, w], (g) => [scaled(dh, g), scaled(dw, g)]);
}

/** One gemm of m×k by k×n, unbatched. */
function product(m: number, n: number, k: number, transA: boolean, transB: boolean) {
  return { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0 };
}
