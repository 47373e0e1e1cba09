import { kernels } from '../backend.js';
import { type Shape, Tensor, TensorError, shapeStr } from '../tensor.js';

/**
 * Rows of weight [vocab, dim] picked by ids; the result has shape [...idsShape, dim]. A weight held in
 * f16 or bf16 is frozen: its rows are widened, and it gets no gradient.
 */
export function embedding(weight: Tensor, ids: Int32Array, idsShape: Shape = [ids.length]): Tensor {
  const [vocab, dim] = weight.shape;
  if (weight.ndim !== 2)
    throw new TensorError('embedding', `weight must be [vocab, dim], got ${shapeStr(weight.shape)}`);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw new TensorError(
        'embedding',
        `id ${ids[i]} at position ${i} is outside the vocabulary (${vocab}) of weight ${shapeStr(weight.shape)}`,
      );
  }
  const out = kernels().empty(ids.length * dim);
  if (weight.dtype !== 'f32') {
    if (weight.tracksGrad) {
      const why = `${weight.describe()} is held in ${weight.dtype}, so it is frozen and gets no gradient`;
      throw new TensorError('embedding', why);
    }
    kernels().embeddingForwardHalf(weight.half, ids, out, dim);
    return new Tensor(out, [...idsShape, dim]);
  }
  kernels().embeddingForward(weight.buf, ids, out, dim);
  return Tensor.record(new Tensor(out, [...idsShape, dim]), 'embedding', [weight], (g) => {
    const dw = kernels().alloc(weight.size);
    kernels().embeddingBackward(g, ids, dw, dim);
    return [dw];
  });
}
