/** Numpy broadcasting rules, and the strides that read a smaller tensor as if it were expanded. */
import { kernels, type Buf } from '../backend.js';
import { type Shape, TensorError, shapeSize, shapeStr, stridesOf } from '../tensor.js';

export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1,
      db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new TensorError(op, `shapes ${shapeStr(a)} and ${shapeStr(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides for reading `shape` laid out as `outShape` (0 on broadcast axes). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const s = stridesOf(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : s[i - off]));
}

/** Sums a gradient of outShape down to `shape` (the reverse of broadcasting). */
export function sumToShape(grad: Buf, outShape: Shape, shape: Shape): Buf {
  if (shapeSize(shape) === grad.length) return grad;
  const out = kernels().alloc(shapeSize(shape));
  kernels().copy(grad, 0, stridesOf(outShape), out, 0, broadcastStrides(shape, outShape), outShape, true);
  return out;
}
