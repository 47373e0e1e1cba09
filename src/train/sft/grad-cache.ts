/**
 * GradCache (Gao et al., 2021): the contrastive loss of a batch larger than one forward pass fits.
 *  1. embed every chunk without keeping its graph;
 *  2. compute InfoNCE/Triplet on the detached embeddings and backpropagate to them only: their
 *     gradients are the "cache";
 *  3. run each chunk again with its graph and backpropagate the cached gradient (plus the chunk's own
 *     L_SFT/L_KL, which couple no sequences) into the parameters.
 * Every query still sees every document of the batch as a negative, so gradients equal plain
 * backprop over the whole batch (up to float rounding). LoRA dropout draws the same masks in both
 * passes of a chunk, because each chunk gets its own generator state.
 */
import * as T from '../../tensor/index.js';
import type { Rng } from '../../tensor/index.js';
import {
  type BatchLoss,
  type EncodedBatch,
  type LossSettings,
  type TrainModels,
  batchCost,
  chunkSequences,
  contrastiveLoss,
  forwardChunk,
  responseLoss,
  responseTokenCount,
  weightedTotal,
} from './batch-loss.js';

export async function gradCacheBackward(
  m: TrainModels,
  batch: EncodedBatch,
  w: LossSettings,
  gradScale: number,
  subBatch: number,
  rng?: Rng,
): Promise<BatchLoss> {
  const S = batch.seqs.length,
    d = m.model.config.hiddenSize;
  const chunks = chunkSequences(
    batch.seqs.map((s) => s.ids.length),
    subBatch,
  );
  const chunkSeeds = chunks.map(() => (rng ? rng.nextU32() : 0));
  const chunkRng = (c: number): Rng | undefined => (rng ? new T.Rng(chunkSeeds[c]) : undefined);
  const dropout = [...m.model.adapters.values()].some((a) => a.dropout > 0 && !a.merged);

  // 1. embeddings only (with dropout the graph must be recorded for the masks to be drawn; it is dropped)
  const all = new Float32Array(S * d);
  for (const [c, idx] of chunks.entries()) {
    const run = (): Float32Array =>
      forwardChunk(
        m,
        idx.map((i) => batch.seqs[i]),
        chunkRng(c),
        false,
        false,
      ).emb.read();
    const e = rng && dropout ? run() : T.noGrad(run);
    idx.forEach((i, r) => all.set(e.subarray(r * d, (r + 1) * d), i * d));
    await T.releaseUnusedMemory();
  }

  // 2. the contrastive loss on detached embeddings: gradients for the embeddings alone
  const leaf = new T.Tensor(all, [S, d], true);
  const c = contrastiveLoss(leaf, batch.numQueries, batch.targets, w);
  if (c.total) c.total.backward(new Float32Array([gradScale]));
  const cache = leaf.grad ? T.kernels().toHost(leaf.grad) : null;

  // 3. each chunk again with its graph: cached embedding gradient + its own response loss
  const wantResponse = w.sft > 0 || w.kl > 0;
  const respTokens = responseTokenCount(batch.seqs);
  let sft = 0,
    kl = 0;
  // with neither a cached gradient nor a response loss, no chunk has anything to backpropagate
  const rerun = cache || wantResponse ? chunks : [];
  for (const [ci, idx] of rerun.entries()) {
    const out = forwardChunk(
      m,
      idx.map((i) => batch.seqs[i]),
      chunkRng(ci),
      wantResponse,
      w.kl > 0,
    );
    const r = responseLoss(out, respTokens, w);
    sft += r.sft;
    kl += r.kl;
    let total = r.total ? T.scale(r.total, gradScale) : null;
    if (cache) {
      const g = new Float32Array(idx.length * d);
      idx.forEach((i, row) => g.set(cache.subarray(i * d, (i + 1) * d), row * d));
      // Σ emb·g has gradient g with respect to emb: the cached gradient enters the chunk's graph
      const surrogate = T.sum(T.mul(out.emb, new T.Tensor(g, out.emb.shape)));
      total = total ? T.add(total, surrogate) : surrogate;
    }
    if (total) total.backward();
    // the chunk's graph is garbage now: on a GPU its buffers must come back before the next chunk builds its
    // own, or GradCache would hold every chunk's graph at once (see releaseUnusedMemory)
    await T.releaseUnusedMemory();
  }
  const terms = { sft, kl, infonce: c.infonce, triplet: c.triplet };
  return { loss: weightedTotal(terms, w), ...terms, ...batchCost(batch.seqs) };
}
