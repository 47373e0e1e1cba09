import { kernels } from '../backend.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';

/** x·sigmoid(x). */
export function silu(x: Tensor): Tensor {
  const y = kernels().alloc(x.size);
  kernels().siluForward(x.buf, y);
  return Tensor.record(new Tensor(y, x.shape), 'silu', [x], (g) => {
    const dx = kernels().alloc(x.size);
    kernels().siluBackward(x.buf, g, dx);
    return [dx];
  });
}

/** silu(gate)·up, the gated unit of a SwiGLU feed-forward layer. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.shape.join() !== up.shape.join())
    throw new TensorError('swiglu', `gate ${shapeStr(gate.shape)} and up ${shapeStr(up.shape)} differ`);
  const y = kernels().empty(gate.size);
  kernels().swigluForward(gate.buf, up.buf, y);
  return Tensor.record(new Tensor(y, gate.shape), 'swiglu', [gate, up], (g) => {
    const dg = kernels().alloc(gate.size),
      du = kernels().alloc(up.size);
    kernels().swigluBackward(gate.buf, up.buf, g, dg, du);
    return [dg, du];
  });
}
