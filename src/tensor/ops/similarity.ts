import { kernels } from '../backend.js';
import { Tensor } from '../tensor.js';
import { mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { sum } from './reduce.js';

/** x / max(‖x‖, eps) along the last axis (torch.nn.functional.normalize). */
export function l2normalize(x: Tensor, eps = 1e-12): Tensor {
  const dim = x.shape[x.ndim - 1],
    rows = x.size / dim;
  // Computed on the host (a copy from a GPU): normalised rows are embeddings, a few per batch.
  const K = kernels();
  const y = new Float32Array(x.size),
    norms = new Float32Array(rows);
  const xd = K.toHost(x.buf);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += xd[r * dim + i] * xd[r * dim + i];
    const n = Math.max(Math.sqrt(s), eps);
    norms[r] = n;
    for (let i = 0; i < dim; i++) y[r * dim + i] = xd[r * dim + i] / n;
  }
  return Tensor.record(new Tensor(y, x.shape), 'l2normalize', [x], (gb) => {
    const g = K.toHost(gb);
    const dx = new Float32Array(x.size);
    for (let r = 0; r < rows; r++) {
      const o = r * dim,
        n = norms[r];
      // Below eps the denominator is the constant eps; above it, project out the radial component.
      let dot = 0;
      if (n > eps) for (let i = 0; i < dim; i++) dot += g[o + i] * y[o + i];
      for (let i = 0; i < dim; i++) dx[o + i] = (g[o + i] - y[o + i] * dot) / n;
    }
    return [K.fromHost(dx)];
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
