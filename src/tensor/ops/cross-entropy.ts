import { kernels } from '../backend.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';

export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing (PyTorch's default −100). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (PyTorch's default), 'sum', or 'none' (one loss per row). */
  reduction?: 'mean' | 'sum' | 'none';
}

/** Cross-entropy of logits [..., vocab] against integer targets (one per row), fused with log-softmax. */
export function crossEntropy(logits: Tensor, targets: Int32Array, opts: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -100,
    reduction = opts.reduction ?? 'mean';
  const vocab = logits.shape[logits.ndim - 1],
    rows = logits.size / vocab;
  if (targets.length !== rows)
    throw new TensorError('crossEntropy', `${targets.length} targets for logits ${shapeStr(logits.shape)}`);
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= vocab)
      throw new TensorError(
        'crossEntropy',
        `target ${t} at row ${r} is outside the vocabulary (${vocab}) of logits ${shapeStr(logits.shape)}`,
      );
    count++;
  }
  const loss = new Float32Array(rows),
    lse = new Float32Array(rows);
  kernels().crossEntropyForward(logits.data, targets, loss, lse, rows, vocab, ignoreIndex);
  const scaleRows = (g: Float32Array): Float32Array => {
    if (reduction === 'none') return g;
    // mean over zero targets is 0/0 in PyTorch (NaN); we define it as 0 so an all-ignored batch is harmless
    const f = reduction === 'mean' ? (count === 0 ? 0 : g[0] / count) : g[0];
    return new Float32Array(rows).fill(f);
  };
  let value: Float32Array, shape: number[];
  if (reduction === 'none') {
    value = loss;
    shape = logits.shape.slice(0, -1);
  } else {
    let s = 0;
    for (let r = 0; r < rows; r++) s += loss[r];
    value = new Float32Array([reduction === 'mean' ? (count === 0 ? 0 : s / count) : s]);
    shape = [];
  }
  return Tensor.record(new Tensor(value, shape), 'crossEntropy', [logits], (g) => {
    const d = new Float32Array(logits.size);
    kernels().crossEntropyBackward(logits.data, targets, lse, scaleRows(g), d, rows, vocab, ignoreIndex);
    return [d];
  });
}
