/**
 * Leaving documents out of a contrastive softmax (InfoNCE in both fine-tuning stages) at any temperature.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';

/**
 * `scaled`, cosines divided by `temperature` (so every entry lies in [−1/τ, 1/τ]), with each entry for whose flat
 * index `excluded` returns true moved to at most −2/τ − 1e4: at least 1e4 below every entry left in, so exp() of
 * the gap underflows to exactly 0 in float32 and an excluded entry takes no part in a softmax, logsumexp or
 * cross-entropy, nor in their gradients. A fixed offset does not hold at every τ: with −1e4, an excluded
 * cosine of 1 at τ = 1e-4 lands level with a cosine of −1 left in. The offset is finite so that no kernel meets
 * an infinity (−∞ − (−∞) is NaN in a row that excludes all).
 */
export function excludeScaledCosines(scaled: Tensor, excluded: (i: number) => boolean, temperature: number): Tensor {
  const offset = -(3 / temperature + 1e4);
  // a predicate rather than a flag array, so that the additive mask is the one array built for it
  const mask = new Float32Array(scaled.size);
  for (let i = 0; i < mask.length; i++) if (excluded(i)) mask[i] = offset;
  return T.add(scaled, new T.Tensor(mask, scaled.shape));
}
