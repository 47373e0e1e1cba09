import { kernels, type Buf } from '../backend.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';

export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing (PyTorch's default −100). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (PyTorch's default), 'sum', or 'none' (one loss per row). */
  reduction?: 'mean' | 'sum' | 'none';
}

/** The targets not ignored, each checked to be a row's word of the vocabulary (`what`: the logits, for messages). */
export function countTargets(
  op: string,
  targets: Int32Array,
  rows: number,
  vocab: number,
  ignoreIndex: number,
  what: string,
): number {
  if (targets.length !== rows) throw new TensorError(op, `${targets.length} targets for ${what}`);
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= vocab)
      throw new TensorError(op, `target ${t} at row ${r} is outside the vocabulary (${vocab}) of ${what}`);
    count++;
  }
  return count;
}

/** Cross-entropy of logits [..., vocab] against integer targets (one per row), fused with log-softmax. */
export function crossEntropy(logits: Tensor, targets: Int32Array, opts: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100,
    reduction = opts.reduction ?? 'mean';
  const vocab = logits.shape[logits.ndim - 1],
    rows = logits.size / vocab;
  const count = countTargets('crossEntropy', targets, rows, vocab, ignoreIndex, `logits ${shapeStr(logits.shape)}`);
  const loss = kernels().alloc(rows),
    lse = kernels().alloc(rows);
  kernels().crossEntropyForward(logits.buf, targets, loss, lse, rows, vocab, ignoreIndex);
  // mean over zero targets is 0/0 in PyTorch (NaN); we define it as 0 so an all-ignored batch is harmless
  const factor = reduction === 'mean' ? (count === 0 ? 0 : 1 / count) : 1;
  const scaleRows = (g: Buf): Buf => {
    if (reduction === 'none') return g;
    const K = kernels(),
      perRow = K.alloc(rows);
    K.copy(g, 0, [0], perRow, 0, [1], [rows], false);
    if (factor !== 1) K.axpby(factor, perRow, 0, perRow);
    return perRow;
  };
  let value: Float32Array | Buf, shape: number[];
  if (reduction === 'none') {
    value = loss;
    shape = logits.shape.slice(0, -1);
  } else {
    // Summed on the host in double precision: the loss is read for the log every step anyway.
    const l = kernels().toHost(loss);
    let s = 0;
    for (let r = 0; r < rows; r++) s += l[r];
    value = new Float32Array([reduction === 'mean' ? (count === 0 ? 0 : s / count) : s]);
    shape = [];
  }
  return Tensor.record(new Tensor(value, shape), 'crossEntropy', [logits], (g) => {
    const d = kernels().alloc(logits.size);
    kernels().crossEntropyBackward(logits.buf, targets, lse, scaleRows(g), d, rows, vocab, ignoreIndex);
    return [d];
  });
}
