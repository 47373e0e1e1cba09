/**
 * The GRPO objective (DeepSeekMath; as in TRL's GRPOTrainer) from tensor ops, so gradients flow into
 * the policy's per-token log-probabilities:
 *   advantages   Â_i = (r_i − mean(r)) / std(r) within each group of G responses to one query
 *                (sample std, as torch.std; a group whose rewards are all equal gets Â = 0, never NaN);
 *   surrogate    per token t of response i: min(ρ_t·Â_i, clip(ρ_t, 1−ε, 1+ε)·Â_i), ρ_t = π(o_t)/π_old(o_t);
 *   KL           the k3 estimator of KL(π‖π_ref): exp(log π_ref − log π) − (log π_ref − log π) − 1 ≥ 0;
 *   loss         Σ_t w_t·(−surrogate_t + β·KL_t), with w_t = 1 / (|o_i|·responses) by default: the mean
 *                over each response's tokens, then over responses.
 * The clipped branch of the min is a constant in ρ, so its gradient is zero: the surrogate is written as
 * m_t·ρ_t·Â + (1 − m_t)·clip(ρ_t)·Â with m_t = 1 where the unclipped branch is the minimum.
 */
import * as T from '../../tensor/index.js';
import type { Tensor } from '../../tensor/index.js';

/** Group-normalised advantages for consecutive groups of `groupSize` rewards. */
export function groupAdvantages(rewards: readonly number[], groupSize: number, eps = 1e-4): number[] {
  if (groupSize < 1 || rewards.length % groupSize !== 0)
    throw new Error(`groupAdvantages: ${rewards.length} rewards do not split into groups of ${groupSize}`);
  const out = new Array<number>(rewards.length).fill(0);
  for (let g = 0; g < rewards.length; g += groupSize) {
    const r = rewards.slice(g, g + groupSize);
    const mean = r.reduce((s, v) => s + v, 0) / groupSize;
    const ss = r.reduce((s, v) => s + (v - mean) ** 2, 0);
    const std = groupSize > 1 ? Math.sqrt(ss / (groupSize - 1)) : 0;
    // all-equal rewards carry no preference: zero advantage (not 0/0)
    if (!(std > 1e-12)) continue;
    for (let i = 0; i < groupSize; i++) out[g + i] = (r[i] - mean) / (std + eps);
  }
  return out;
}

export interface GrpoInputs {
  /** log π(o_t) of every trained token under the current policy, [tokens], with gradient. */
  logp: Tensor;
  /** log π_old(o_t), the policy that sampled (constants). */
  oldLogp: Float32Array;
  /** log π_ref(o_t) (constants), or null when β = 0. */
  refLogp: Float32Array | null;
  /** Advantage of each token's response. */
  advantages: Float32Array;
  /** Weight of each token in the total (see the module comment). */
  weights: Float32Array;
  clipEps: number;
  beta: number;
}

export interface GrpoOutput {
  loss: Tensor;
  /** Weighted means (same weights as the loss, normalised): surrogate, KL, ratio. */
  surrogate: number;
  kl: number;
  ratio: number;
  /** Fraction of tokens whose ratio was clipped (the gradient-free branch was the minimum). */
  clipFraction: number;
}

/** Unweighted per-token quantities, for tests and logging. */
export function clippedSurrogate(ratio: number, adv: number, eps: number): { value: number; clipped: boolean } {
  const clippedRatio = Math.min(Math.max(ratio, 1 - eps), 1 + eps);
  const a = ratio * adv,
    b = clippedRatio * adv;
  return { value: Math.min(a, b), clipped: b < a };
}

export function k3(logp: number, refLogp: number): number {
  const d = refLogp - logp;
  return Math.exp(d) - d - 1;
}

export function grpoLoss(x: GrpoInputs): GrpoOutput {
  const n = x.logp.size;
  for (const [name, arr] of [
    ['oldLogp', x.oldLogp],
    ['advantages', x.advantages],
    ['weights', x.weights],
  ] as const) {
    if (arr.length !== n) throw new Error(`grpoLoss: ${name} has ${arr.length} values for ${n} tokens`);
  }
  if (x.refLogp && x.refLogp.length !== n)
    throw new Error(`grpoLoss: refLogp has ${x.refLogp.length} values for ${n} tokens`);
  const shape = [n];
  const logp = T.reshape(x.logp, shape);
  const ratio = T.exp(T.sub(logp, new T.Tensor(x.oldLogp, shape)));
  const coef = new Float32Array(n),
    constant = new Float32Array(n);
  const ratios = ratio.read();
  let clipped = 0,
    wsum = 0,
    surr = 0,
    rsum = 0;
  for (let t = 0; t < n; t++) {
    const s = clippedSurrogate(ratios[t], x.advantages[t], x.clipEps);
    if (s.clipped) {
      clipped++;
      constant[t] = s.value;
    } else coef[t] = x.advantages[t];
    wsum += x.weights[t];
    surr += x.weights[t] * s.value;
    rsum += x.weights[t] * ratios[t];
  }
  // −Σ w·surrogate; the clipped tokens contribute their (constant) value
  let perToken = T.neg(T.add(T.mul(ratio, new T.Tensor(coef, shape)), new T.Tensor(constant, shape)));
  let kl = 0;
  if (x.refLogp && x.beta !== 0) {
    const d = T.sub(new T.Tensor(x.refLogp, shape), logp);
    const klT = T.affine(T.sub(T.exp(d), d), 1, -1);
    const klValues = klT.read();
    for (let t = 0; t < n; t++) kl += x.weights[t] * klValues[t];
    perToken = T.add(perToken, T.scale(klT, x.beta));
  } else if (x.refLogp) {
    const logps = x.logp.read();
    for (let t = 0; t < n; t++) kl += x.weights[t] * k3(logps[t], x.refLogp[t]);
  }
  const loss = T.sum(T.mul(perToken, new T.Tensor(x.weights, shape)));
  const norm = wsum > 0 ? wsum : 1;
  return { loss, surrogate: surr / norm, kl: kl / norm, ratio: rsum / norm, clipFraction: n > 0 ? clipped / n : 0 };
}

/** Per-token weights 1 / (|o_i| · responses) for responses of the given token counts (empty ones get none). */
export function responseMeanWeights(lengths: readonly number[]): Float32Array {
  const total = lengths.reduce((s, l) => s + l, 0);
  const used = lengths.filter((l) => l > 0).length;
  const w = new Float32Array(total);
  let o = 0;
  for (const l of lengths) {
    w.fill(1 / (l * used), o, o + l);
    o += l;
  }
  return w;
}
