import { kernels } from '../backend.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · weight. */
export function rmsnorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const dim = x.shape[x.ndim - 1];
  if (weight.ndim !== 1 || weight.shape[0] !== dim) {
    throw new TensorError(
      'rmsnorm',
      `weight ${shapeStr(weight.shape)} does not match the last axis of ${shapeStr(x.shape)}`,
    );
  }
  const rows = x.size / dim;
  const y = new Float32Array(x.size),
    rstd = new Float32Array(rows);
  kernels().rmsnormForward(x.data, weight.data, y, rstd, rows, dim, eps);
  return Tensor.record(new Tensor(y, x.shape), 'rmsnorm', [x, weight], (g) => {
    const dx = new Float32Array(x.size);
    const dw = weight.tracksGrad ? new Float32Array(dim) : null;
    kernels().rmsnormBackward(g, x.data, weight.data, rstd, dx, dw, rows, dim);
    return [x.tracksGrad ? dx : null, dw];
  });
}
