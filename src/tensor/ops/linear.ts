import { isGradEnabled, kernels } from '../backend.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';
import { gemmWith, matmul } from './matmul.js';

/** y = x·Wᵀ + bias, with W stored [out, in] as in PyTorch and Hugging Face checkpoints. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return matmul(x, weight, { transB: true, bias });
}

/**
 * out += x·Wᵀ + bias, in place and without gradients (inference): a residual connection whose add costs
 * no pass of its own, the product accumulating onto the residual stream's buffer as it stores. `out` is
 * changed: only for a tensor whose old values nothing reads afterwards. Returns out.
 */
export function linearAccumulate(out: Tensor, x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const fail = (why: string): never => {
    throw new TensorError('linearAccumulate', why);
  };
  if (isGradEnabled()) fail('it changes its output in place, so it runs only without gradients (noGrad)');
  if (weight.ndim !== 2) fail(`the weight ${shapeStr(weight.shape)} is not a matrix`);
  const [n, k] = weight.shape;
  const rows = x.size / k;
  if (x.shape[x.ndim - 1] !== k || out.shape[out.ndim - 1] !== n || out.size !== rows * n) {
    fail(`${shapeStr(out.shape)} += ${shapeStr(x.shape)} · ${shapeStr(weight.shape)}ᵀ: the shapes do not fit`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== n)) fail(`bias ${shapeStr(bias.shape)} is not [${n}]`);
  gemmWith(kernels(), weight, {
    a: x.buf,
    c: out.buf,
    batch: 1,
    m: rows,
    n,
    k,
    transA: false,
    transB: true,
    strideA: 0,
    strideB: 0,
    strideC: rows * n,
    accumulate: true,
    bias: bias?.buf ?? null,
  });
  // nothing is recorded without gradients; this runs the per-op finite check the CPU backends make
  return Tensor.record(out, 'linearAccumulate', [x, weight], () => fail('has no backward pass'));
}
