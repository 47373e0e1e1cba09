/** Sum, mean and max along one axis (or all), with or without keeping the reduced axis. */
import { kernels, type Buf } from '../backend.js';
import { ReduceOp } from '../kernels.js';
import { type Shape, Tensor, TensorError, shapeStr } from '../tensor.js';

export function normAxis(op: string, axis: number, ndim: number): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim)
    throw new TensorError(op, `axis ${axis} is out of range for ${ndim} dimensions`);
  return a;
}

/** Views shape as [outer, n, inner] around `axis`. */
function split(shape: Shape, axis: number): [number, number, number] {
  let outer = 1,
    inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i];
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i];
  return [outer, shape[axis], inner];
}

function reducedShape(shape: Shape, axis: number, keepdim: boolean): number[] {
  return keepdim ? shape.map((d, i) => (i === axis ? 1 : d)) : shape.filter((_, i) => i !== axis);
}

/** Repeats g [outer, inner] n times along the middle axis, times `factor`. */
function spread(g: Buf, outer: number, n: number, inner: number, factor: number): Buf {
  const out = kernels().alloc(outer * n * inner);
  kernels().copy(g, 0, [inner, 0, 1], out, 0, [n * inner, inner, 1], [outer, n, inner], false);
  if (factor !== 1) kernels().axpby(factor, out, 0, out);
  return out;
}

/** Sum along `axis`, or of every element (a scalar) when no axis is given. */
export function sum(x: Tensor, axis?: number, keepdim = false): Tensor {
  if (axis === undefined) return sum(reshapeFlat(x), 0);
  const ax = normAxis('sum', axis, x.ndim);
  const [outer, n, inner] = split(x.shape, ax);
  const out = kernels().alloc(outer * inner);
  kernels().reduce(ReduceOp.Sum, x.buf, outer, n, inner, out, null);
  return Tensor.record(new Tensor(out, reducedShape(x.shape, ax, keepdim)), 'sum', [x], (g) => [
    spread(g, outer, n, inner, 1),
  ]);
}

/** Mean along `axis`, or of every element (a scalar) when no axis is given. */
export function mean(x: Tensor, axis?: number, keepdim = false): Tensor {
  if (axis === undefined) return mean(reshapeFlat(x), 0);
  const ax = normAxis('mean', axis, x.ndim);
  const [outer, n, inner] = split(x.shape, ax);
  if (n === 0) throw new TensorError('mean', `empty axis ${axis} of ${shapeStr(x.shape)}`);
  const out = kernels().alloc(outer * inner);
  kernels().reduce(ReduceOp.Sum, x.buf, outer, n, inner, out, null);
  kernels().axpby(1 / n, out, 0, out);
  return Tensor.record(new Tensor(out, reducedShape(x.shape, ax, keepdim)), 'mean', [x], (g) => [
    spread(g, outer, n, inner, 1 / n),
  ]);
}

/** Maximum along an axis; the gradient goes to the (first) arg-max. */
export function max(x: Tensor, axis: number, keepdim = false): Tensor {
  const ax = normAxis('max', axis, x.ndim);
  const [outer, n, inner] = split(x.shape, ax);
  if (n === 0) throw new TensorError('max', `empty axis ${axis} of ${shapeStr(x.shape)}`);
  const out = kernels().alloc(outer * inner);
  const arg = new Int32Array(outer * inner);
  kernels().reduce(ReduceOp.Max, x.buf, outer, n, inner, out, arg);
  return Tensor.record(new Tensor(out, reducedShape(x.shape, ax, keepdim)), 'max', [x], (g) => {
    // A scatter through the arg-max indices: the embedding gradient kernel with rows of one element,
    // each output element's gradient landing at its arg-max's flat index (distinct, so nothing sums).
    const at = new Int32Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) at[o * inner + i] = (o * n + arg[o * inner + i]) * inner + i;
    }
    const gx = kernels().alloc(x.size);
    kernels().embeddingBackward(g, at, gx, 1);
    return [gx];
  });
}

function reshapeFlat(x: Tensor): Tensor {
  return Tensor.record(Tensor.view(x, [x.size]), 'reshape', [x], (g) => [g]);
}
