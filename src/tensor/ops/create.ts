/** Tensors from values, constants and seeded random numbers; made on the host, then on the active device. */
import type { Rng } from '../rng.js';
import { kernels } from '../backend.js';
import { type Shape, Tensor, shapeSize } from '../tensor.js';

export function tensor(values: ArrayLike<number>, shape: Shape = [values.length], requiresGrad = false): Tensor {
  return new Tensor(Float32Array.from(values), shape, requiresGrad);
}

export function zeros(shape: Shape, requiresGrad = false): Tensor {
  return new Tensor(kernels().alloc(shapeSize(shape)), shape, requiresGrad);
}

export function full(shape: Shape, value: number): Tensor {
  const d = kernels().alloc(shapeSize(shape));
  kernels().fill(d, value);
  return new Tensor(d, shape);
}

/** Normal(0, std²) values from a seeded generator. */
export function randn(shape: Shape, rng: Rng, std = 1, requiresGrad = false): Tensor {
  const d = new Float32Array(shapeSize(shape));
  for (let i = 0; i < d.length; i++) d[i] = rng.normal() * std;
  return new Tensor(d, shape, requiresGrad);
}

/** Uniform(lo, hi) values from a seeded generator. */
export function rand(shape: Shape, rng: Rng, lo = 0, hi = 1, requiresGrad = false): Tensor {
  const d = new Float32Array(shapeSize(shape));
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rng.next();
  return new Tensor(d, shape, requiresGrad);
}

/** A trainable leaf tensor. */
export function parameter(data: Float32Array, shape: Shape, name?: string): Tensor {
  return new Tensor(data, shape, true, name);
}
