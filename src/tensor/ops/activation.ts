import { kernels } from '../backend.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';

/** x·sigmoid(x). */
export function silu(x: Tensor): Tensor {
  const y = new Float32Array(x.size);
  kernels().siluForward(x.data, y);
  return Tensor.record(new Tensor(y, x.shape), 'silu', [x], (g) => {
    const dx = new Float32Array(x.size);
    kernels().siluBackward(x.data, g, dx);
    return [dx];
  });
}

/** silu(gate)·up, the gated unit of a SwiGLU feed-forward layer. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.shape.join() !== up.shape.join())
    throw new TensorError('swiglu', `gate ${shapeStr(gate.shape)} and up ${shapeStr(up.shape)} differ`);
  const y = new Float32Array(gate.size);
  kernels().swigluForward(gate.data, up.data, y);
  return Tensor.record(new Tensor(y, gate.shape), 'swiglu', [gate, up], (g) => {
    const dg = new Float32Array(gate.size),
      du = new Float32Array(up.size);
    kernels().swigluBackward(gate.data, up.data, g, dg, du);
    return [dg, du];
  });
}
