import { type Tensor, recycle } from '../tensor.js';
import { add } from './elementwise.js';
import { matmul } from './matmul.js';

/** y = x·Wᵀ + bias, with W stored [out, in] as in PyTorch and Hugging Face checkpoints. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const y = matmul(x, weight, { transB: true });
  if (!bias) return y;
  const out = add(y, bias);
  recycle(y);
  return out;
}
