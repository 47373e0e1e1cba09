import type { Rng } from '../rng.js';
import { Tensor } from '../tensor.js';
import { mul } from './elementwise.js';

/** Zeroes each element with probability p and scales the rest by 1/(1−p); identity when p = 0. */
export function dropout(x: Tensor, p: number, rng: Rng): Tensor {
  if (p <= 0) return x;
  if (p >= 1) throw new RangeError(`dropout probability must be below 1, got ${p}`);
  const keep = 1 / (1 - p);
  const mask = new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < p ? 0 : keep;
  return mul(x, new Tensor(mask, x.shape));
}
