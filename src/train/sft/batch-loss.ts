/**
 * One contrastive batch through the model: forward passes over chunks of training sequences, the loss
 * terms, and gradients into the parameters. `plainBackward` keeps the whole batch's graph and calls
 * backward once; grad-cache.ts gets the same gradients chunk by chunk.
 */
import * as T from '../../tensor/index.js';
import type { Rng, Tensor } from '../../tensor/index.js';
import type { Qwen2Model } from '../../model/qwen2-model.js';
import type { ContrastiveTargets } from './losses.js';
import { infoNCE, klLoss, sftLoss, tripletLoss } from './losses.js';
import type { TrainSequence } from './sequences.js';

export interface LossSettings {
  sft: number;
  kl: number;
  infonce: number;
  triplet: number;
  temperature: number;
  margin: number;
}

/** The trained model and the frozen reference for L_KL (null when w_kl = 0). */
export interface TrainModels {
  model: Qwen2Model;
  ref: Qwen2Model | null;
}

export interface EncodedBatch {
  /** Query sequences, then document sequences. */
  seqs: TrainSequence[];
  numQueries: number;
  targets: ContrastiveTargets;
}

/** Unweighted values of each term, the weighted total, and what the batch cost. */
export interface BatchLoss {
  loss: number;
  sft: number;
  kl: number;
  infonce: number;
  triplet: number;
  tokens: number;
  truncated: number;
}

export interface ChunkOutput {
  /** Hidden state at <|embed_token|> of each sequence, [n, d]. */
  emb: Tensor;
  /** Logits at the response positions [R, V] and the tokens they predict; null when not asked for. */
  logits: Tensor | null;
  refLogits: Tensor | null;
  labels: Int32Array;
}

/** Rows [from, to) of every sequence's positions in hidden [n·L, d], concatenated (slices + concat keep the graph). */
function gatherRows(hidden: Tensor, ranges: [number, number][]): Tensor {
  const parts = ranges.filter(([a, b]) => b > a).map(([a, b]) => T.slice(hidden, 0, a, b));
  return parts.length === 1 ? parts[0] : T.concat(parts, 0);
}

/**
 * Forward pass over sequences padded on the right to one length (causal attention: padding after a
 * token cannot change it). Gathers the embedding rows and, when `withResponse`, the response logits of
 * the model and of the reference model.
 */
export function forwardChunk(
  m: TrainModels,
  seqs: readonly TrainSequence[],
  rng: Rng | undefined,
  withResponse: boolean,
  withRef: boolean,
): ChunkOutput {
  const n = seqs.length,
    L = Math.max(...seqs.map((s) => s.ids.length));
  const ids = new Int32Array(n * L);
  seqs.forEach((s, b) => ids.set(s.ids, b * L));
  const d = m.model.config.hiddenSize;
  const hidden = T.reshape(m.model.forward(ids, n, L, { rng }), [n * L, d]);
  const emb = gatherRows(
    hidden,
    seqs.map((s, b) => [b * L + s.embedAt, b * L + s.embedAt + 1]),
  );
  if (!withResponse) return { emb, logits: null, refLogits: null, labels: new Int32Array(0) };
  const respRanges = seqs.map((s, b): [number, number] => [b * L + s.respFrom, b * L + s.respTo]);
  const labels = Int32Array.from(seqs.flatMap((s) => s.ids.slice(s.respFrom + 1, s.respTo + 1)));
  const logits = m.model.logits(gatherRows(hidden, respRanges));
  let refLogits: Tensor | null = null;
  if (withRef && m.ref) {
    const ref = m.ref;
    refLogits = T.noGrad(() => ref.logits(gatherRows(T.reshape(ref.forward(ids, n, L), [n * L, d]), respRanges)));
  }
  return { emb, logits, refLogits, labels };
}

/** w_nce·InfoNCE + w_tri·Triplet on embeddings [S, d] (queries first), or null when both weights are 0. */
export function contrastiveLoss(
  emb: Tensor,
  numQueries: number,
  targets: ContrastiveTargets,
  w: LossSettings,
): { total: Tensor | null; infonce: number; triplet: number } {
  const S = emb.shape[0];
  const q = T.slice(emb, 0, 0, numQueries),
    d = T.slice(emb, 0, numQueries, S);
  let total: Tensor | null = null,
    infonce = 0,
    triplet = 0;
  if (w.infonce > 0) {
    const l = infoNCE(q, d, targets, w.temperature);
    infonce = l.item();
    total = T.scale(l, w.infonce);
  }
  if (w.triplet > 0) {
    const l = tripletLoss(q, d, targets, w.margin);
    triplet = l.item();
    total = total ? T.add(total, T.scale(l, w.triplet)) : T.scale(l, w.triplet);
  }
  return { total, infonce, triplet };
}

/** w_sft·L_SFT + w_kl·L_KL of one chunk, normalised by the whole batch's response tokens. */
export function responseLoss(
  out: ChunkOutput,
  responseTokens: number,
  w: LossSettings,
): { total: Tensor | null; sft: number; kl: number } {
  let total: Tensor | null = null,
    sft = 0,
    kl = 0;
  if (!out.logits) return { total, sft, kl };
  if (w.sft > 0) {
    const l = sftLoss(out.logits, out.labels, responseTokens);
    sft = l.item();
    total = T.scale(l, w.sft);
  }
  if (w.kl > 0 && out.refLogits) {
    const l = klLoss(out.logits, out.refLogits, responseTokens);
    kl = l.item();
    total = total ? T.add(total, T.scale(l, w.kl)) : T.scale(l, w.kl);
  }
  return { total, sft, kl };
}

export function responseTokenCount(seqs: readonly TrainSequence[]): number {
  return seqs.reduce((a, s) => a + s.respTo - s.respFrom, 0);
}

export function weightedTotal(r: Omit<BatchLoss, 'loss' | 'tokens' | 'truncated'>, w: LossSettings): number {
  return w.sft * r.sft + w.kl * r.kl + w.infonce * r.infonce + w.triplet * r.triplet;
}

export function batchCost(seqs: readonly TrainSequence[]): { tokens: number; truncated: number } {
  return { tokens: seqs.reduce((a, s) => a + s.ids.length, 0), truncated: seqs.filter((s) => s.truncated > 0).length };
}

/** Chunks of at most `size` sequences, longest first (less padding per pass). */
export function chunkSequences(lengths: readonly number[], size: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const chunks: number[][] = [];
  for (let i = 0; i < order.length; i += size) chunks.push(order.slice(i, i + size));
  return chunks;
}

/**
 * Sequences per forward pass of plain backprop. A batch mixes short queries with long documents;
 * padding all of them to the longest would spend more than half the compute on padding, so the
 * batch runs as length-sorted chunks whose graphs are all kept, then one backward.
 */
export const PLAIN_CHUNK = 16;

/**
 * The whole batch with its graph kept, one backward. Gradients are scaled by `gradScale`
 * (1/accumulation) and added to those already in the parameters.
 */
export function plainBackward(
  m: TrainModels,
  batch: EncodedBatch,
  w: LossSettings,
  gradScale: number,
  rng?: Rng,
): BatchLoss {
  const wantResponse = w.sft > 0 || w.kl > 0;
  const chunks = chunkSequences(
    batch.seqs.map((s) => s.ids.length),
    PLAIN_CHUNK,
  );
  const outs = chunks.map((idx) =>
    forwardChunk(
      m,
      idx.map((i) => batch.seqs[i]),
      rng,
      wantResponse,
      w.kl > 0,
    ),
  );
  // embeddings back in batch order (queries first), as the contrastive loss expects
  const chunked =
    outs.length === 1
      ? outs[0].emb
      : T.concat(
          outs.map((o) => o.emb),
          0,
        );
  const rowOf = new Int32Array(batch.seqs.length);
  chunks.flat().forEach((i, row) => {
    rowOf[i] = row;
  });
  const inOrder =
    chunks.length === 1 && chunks[0].every((i, r) => i === r)
      ? chunked
      : T.concat(
          [...rowOf].map((row) => T.slice(chunked, 0, row, row + 1)),
          0,
        );
  const c = contrastiveLoss(inOrder, batch.numQueries, batch.targets, w);
  const respTokens = responseTokenCount(batch.seqs);
  let total = c.total,
    sft = 0,
    kl = 0;
  for (const out of outs) {
    const r = responseLoss(out, respTokens, w);
    sft += r.sft;
    kl += r.kl;
    if (r.total) total = total ? T.add(total, r.total) : r.total;
  }
  if (total) total.backward(new Float32Array([gradScale]));
  const terms = { sft, kl, infonce: c.infonce, triplet: c.triplet };
  return { loss: weightedTotal(terms, w), ...terms, ...batchCost(batch.seqs) };
}
