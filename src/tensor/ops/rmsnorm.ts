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
  const y = kernels().empty(x.size),
    rstd = kernels().empty(rows);
  kernels().rmsnormForward(x.buf, weight.buf, y, rstd, rows, dim, eps);
  return Tensor.record(
    new Tensor(y, x.shape),
    'rmsnorm',
    [x, weight],
    (g) => {
      const dx = kernels().alloc(x.size);
      const dw = weight.tracksGrad ? kernels().alloc(dim) : null;
      kernels().rmsnormBackward(g, x.buf, weight.buf, rstd, dx, dw, rows, dim);
      return [x.tracksGrad ? dx : null, dw];
    },
    [rstd],
  );
}
