import { kernels } from '../backend.js';
import { Tensor } from '../tensor.js';
import { mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';

/** x / max(‖x‖, eps) along the last axis (torch.nn.functional.normalize). */
export function l2normalize(x: Tensor, eps = 1e-12): Tensor {
  const dim = x.shape[x.ndim - 1],
    rows = dim > 0 ? x.size / dim : 0;
  const K = kernels();
  const y = K.alloc(x.size),
    norms = K.alloc(rows);
  K.l2normalizeForward(x.buf, y, norms, rows, dim, eps);
  return Tensor.record(new Tensor(y, x.shape), 'l2normalize', [x], (g) => {
    const dx = K.alloc(x.size);
    K.l2normalizeBackward(g, y, norms, dx, rows, dim, eps);
    return [dx];
  });
}

/** Cosine similarity of matching rows (broadcasting), over the last axis. */
export function cosineSimilarity(a: Tensor, b: Tensor, eps = 1e-12): Tensor {
  return sum(mul(l2normalize(a, eps), l2normalize(b, eps)), -1);
}

/** All-pairs cosine similarity: a [n, d], b [m, d] → [n, m]. */
export function cosineMatrix(a: Tensor, b: Tensor, eps = 1e-12): Tensor {
  return matmul(l2normalize(a, eps), l2normalize(b, eps), { transB: true });
}
