/** Reshape (free: shares data), permute/transpose, slice and concat (strided copies). */
import { kernels, type Buf } from '../backend.js';
import { type Shape, Tensor, TensorError, shapeSize, shapeStr, stridesOf } from '../tensor.js';
import { normAxis } from './reduce.js';

/** Same data, new shape; one dimension may be -1. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const hole = s.indexOf(-1);
  if (hole >= 0) {
    const known = s.reduce((a, d, i) => (i === hole ? a : a * d), 1);
    s[hole] = known === 0 ? 0 : x.size / known;
  }
  if (shapeSize(s) !== x.size || s.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TensorError('reshape', `cannot reshape ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  }
  return Tensor.record(Tensor.view(x, s), 'reshape', [x], (g) => [g]);
}

function permuteRaw(data: Buf, shape: Shape, perm: readonly number[]): Buf {
  const inStrides = stridesOf(shape);
  const outShape = perm.map((p) => shape[p]);
  const out = kernels().alloc(data.length);
  kernels().copy(
    data,
    0,
    perm.map((p) => inStrides[p]),
    out,
    0,
    stridesOf(outShape),
    outShape,
    false,
  );
  return out;
}

/** Reorders axes: output axis i is input axis perm[i]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.ndim || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new TensorError('permute', `[${perm.join(', ')}] is not a permutation of the axes of ${shapeStr(x.shape)}`);
  }
  const outShape = perm.map((p) => x.shape[p]);
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => {
    inverse[p] = i;
  });
  return Tensor.record(new Tensor(permuteRaw(x.buf, x.shape, perm), outShape), 'permute', [x], (g) => [
    permuteRaw(g, outShape, inverse),
  ]);
}

/** Swaps two axes. */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const ia = normAxis('transpose', a, x.ndim),
    ib = normAxis('transpose', b, x.ndim);
  [perm[ia], perm[ib]] = [perm[ib], perm[ia]];
  return permute(x, perm);
}

/** Elements start..end-1 along `axis`. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = normAxis('slice', axis, x.ndim);
  const n = x.shape[ax];
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= n)) {
    throw new TensorError(
      'slice',
      `range ${start}..${end} is outside axis ${axis} (size ${n}) of ${shapeStr(x.shape)}`,
    );
  }
  const outShape = x.shape.map((d, i) => (i === ax ? end - start : d));
  const strides = stridesOf(x.shape);
  const outStrides = stridesOf(outShape);
  const off = start * strides[ax];
  const out = kernels().empty(shapeSize(outShape));
  kernels().copy(x.buf, off, strides, out, 0, outStrides, outShape, false);
  return Tensor.record(new Tensor(out, outShape), 'slice', [x], (g) => {
    const gx = kernels().alloc(x.size);
    kernels().copy(g, 0, outStrides, gx, off, strides, outShape, false);
    return [gx];
  });
}

/** Joins tensors along `axis`; all other dimensions must agree. */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new TensorError('concat', 'needs at least one tensor');
  const ax = normAxis('concat', axis, xs[0].ndim);
  for (const t of xs) {
    if (t.ndim !== xs[0].ndim || t.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) {
      throw new TensorError(
        'concat',
        `shapes ${xs.map((u) => shapeStr(u.shape)).join(', ')} differ outside axis ${axis}`,
      );
    }
  }
  const outShape = xs[0].shape.map((d, i) => (i === ax ? xs.reduce((a, t) => a + t.shape[ax], 0) : d));
  const outStrides = stridesOf(outShape);
  const out = kernels().alloc(shapeSize(outShape));
  const offsets: number[] = [];
  let pos = 0;
  for (const t of xs) {
    offsets.push(pos * outStrides[ax]);
    kernels().copy(t.buf, 0, stridesOf(t.shape), out, pos * outStrides[ax], outStrides, t.shape, false);
    pos += t.shape[ax];
  }
  return Tensor.record(new Tensor(out, outShape), 'concat', xs, (g) =>
    xs.map((t, i) => {
      if (!t.tracksGrad) return null;
      const gt = kernels().alloc(t.size);
      kernels().copy(g, offsets[i], outStrides, gt, 0, stridesOf(t.shape), t.shape, false);
      return gt;
    }),
  );
}
