/**
 * The four stage-1 loss terms (DESIGN.md §1–2), composed of tensor ops so that autodiff differentiates
 * them: InfoNCE and a cosine triplet loss over query/document embeddings, cross-entropy on the assistant
 * response (L_SFT), and KL(π‖π_ref) per response token against the frozen starting model (L_KL).
 *
 * Embeddings are raw hidden states; the contrastive terms normalise them (cosine), as inference does.
 */
import * as T from '../../tensor/index.js';
import type { Tensor } from '../../tensor/index.js';
import { excludeScaledCosines } from '../excluded-logits.js';

/**
 * Which documents of a contrastive batch play which role for each query.
 * Queries are rows of q [B, d]; documents are rows of d [M, d] (positives, then hard negatives).
 */
export interface ContrastiveTargets {
  /** The document index of each query's positive, [B]. */
  positive: Int32Array;
  /** 1 where document j must not count as a negative of query i (another of its positives), [B·M]. */
  exclude: Uint8Array;
  /** 1 where document j is a triplet negative of query i, [B·M]. */
  tripletNegative: Uint8Array;
}

/**
 * InfoNCE: mean over queries of −log softmax_j(cos(q_i, d_j)/τ)[positive_i], over every document of the
 * batch (in-batch and hard negatives) except the query's other positives.
 */
export function infoNCE(q: Tensor, d: Tensor, t: ContrastiveTargets, temperature: number): Tensor {
  const [B, M] = [q.shape[0], d.shape[0]];
  checkTargets(t, B, M);
  let logits = T.scale(T.cosineMatrix(q, d), 1 / temperature);
  if (t.exclude.some((x) => x !== 0)) {
    const excluded = (i: number): boolean => t.exclude[i] !== 0 && t.positive[Math.floor(i / M)] !== i % M;
    logits = excludeScaledCosines(logits, excluded, temperature);
  }
  return T.crossEntropy(logits, t.positive);
}

/**
 * Triplet loss on cosine: mean over the (query, negative) pairs marked in tripletNegative of
 * max(0, θ − cos(q, d⁺) + cos(q, d⁻)). Zero when there are no such pairs.
 */
export function tripletLoss(q: Tensor, d: Tensor, t: ContrastiveTargets, margin: number): Tensor {
  const [B, M] = [q.shape[0], d.shape[0]];
  checkTargets(t, B, M);
  const sim = T.cosineMatrix(q, d);
  const posIdx = new Float32Array(B * M);
  for (let i = 0; i < B; i++) posIdx[i * M + t.positive[i]] = 1;
  // cos(q_i, d⁺_i) as a column [B, 1]: a one-hot row mask summed, so its gradient flows
  const pos = T.sum(T.mul(sim, new T.Tensor(posIdx, [B, M])), 1, true);
  const hinge = T.affine(T.sub(sim, pos), 1, margin);
  // relu(x) = x·[x > 0] with the indicator a constant; pairs not marked are masked out in the same product
  const keep = new Float32Array(B * M);
  let count = 0;
  const h = hinge.read();
  for (let i = 0; i < B * M; i++) {
    if (!t.tripletNegative[i]) continue;
    count++;
    if (h[i] > 0) keep[i] = 1;
  }
  return T.scale(T.sum(T.mul(hinge, new T.Tensor(keep, [B, M]))), 1 / Math.max(count, 1));
}

/**
 * L_SFT: summed cross-entropy of the response tokens divided by `normalizer` (the number of response
 * tokens of the whole contrastive batch, so that sub-batches add up to the batch mean).
 */
export function sftLoss(logits: Tensor, labels: Int32Array, normalizer: number): Tensor {
  return T.scale(T.crossEntropy(logits, labels, { reduction: 'sum' }), 1 / normalizer);
}

/**
 * L_KL: Σ_rows Σ_v π(v)·(log π(v) − log π_ref(v)) / normalizer, with π from logits [N, V] and π_ref from
 * refLogits (constants: the reference model is frozen). Rows are response-token positions only.
 */
export function klLoss(logits: Tensor, refLogits: Tensor, normalizer: number): Tensor {
  const lp = T.logSoftmax(logits);
  const lpRef = T.noGrad(() => T.logSoftmax(refLogits.detach()));
  const perToken = T.sum(T.mul(T.exp(lp), T.sub(lp, lpRef)), -1);
  return T.scale(T.sum(perToken), 1 / normalizer);
}

function checkTargets(t: ContrastiveTargets, B: number, M: number): void {
  if (t.positive.length !== B || t.exclude.length !== B * M || t.tripletNegative.length !== B * M) {
    throw new Error(`contrastive targets do not fit ${B} queries × ${M} documents`);
  }
  for (let i = 0; i < B; i++) {
    if (!(t.positive[i] >= 0 && t.positive[i] < M))
      throw new Error(`query ${i}'s positive ${t.positive[i]} is outside the ${M} documents`);
  }
}
