import type { Tensor } from '../tensor.js';
import { matmul } from './matmul.js';

/** y = x·Wᵀ + bias, with W stored [out, in] as in PyTorch and Hugging Face checkpoints. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return matmul(x, weight, { transB: true, bias });
}
