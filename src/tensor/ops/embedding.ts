import { kernels } from '../backend.js';
import { type Shape, Tensor, TensorError, shapeStr } from '../tensor.js';

/** Rows of weight [vocab, dim] picked by ids; the result has shape [...idsShape, dim]. */
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
  const out = new Float32Array(ids.length * dim);
  kernels().embeddingForward(weight.data, ids, out, dim);
  return Tensor.record(new Tensor(out, [...idsShape, dim]), 'embedding', [weight], (g) => {
    const dw = new Float32Array(weight.size);
    kernels().embeddingBackward(g, ids, dw, dim);
    return [dw];
  });
}
