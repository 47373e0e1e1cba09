import { kernels } from '../backend.js';
import { Tensor } from '../tensor.js';
import { exp, log, sub, add } from './elementwise.js';
import { max, sum, normAxis } from './reduce.js';
import { reshape } from './shape.js';

function lastAxis(x: Tensor): [number, number] {
  const n = x.shape[x.ndim - 1];
  return [x.size / n, n];
}

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  const [rows, n] = lastAxis(x);
  const y = kernels().alloc(x.size);
  kernels().softmaxForward(x.buf, y, rows, n);
  return Tensor.record(new Tensor(y, x.shape), 'softmax', [x], (g) => {
    const dx = kernels().alloc(x.size);
    kernels().softmaxBackward(y, g, dx, rows, n);
    return [dx];
  });
}

/** Log-softmax over the last axis. */
export function logSoftmax(x: Tensor): Tensor {
  const [rows, n] = lastAxis(x);
  const y = kernels().alloc(x.size);
  kernels().logSoftmaxForward(x.buf, y, rows, n);
  return Tensor.record(new Tensor(y, x.shape), 'logSoftmax', [x], (g) => {
    const dx = kernels().alloc(x.size);
    kernels().logSoftmaxBackward(y, g, dx, rows, n);
    return [dx];
  });
}

/** log Σ exp(x) along an axis, stabilised by the (constant) maximum: built from primitive ops. */
export function logsumexp(x: Tensor, axis = -1, keepdim = false): Tensor {
  const ax = normAxis('logsumexp', axis, x.ndim);
  const m = max(x, ax, true).detach();
  const s = log(sum(exp(sub(x, m)), ax, true));
  const out = add(s, m);
  return keepdim
    ? out
    : reshape(
        out,
        out.shape.filter((_, i) => i !== ax),
      );
}
