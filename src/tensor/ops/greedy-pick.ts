import { kernels } from '../backend.js';
import type { Tensor } from '../tensor.js';

/** Greedy decoding's choice for each row of logits [..., vocab], made on the device. */
export interface GreedyPicks {
  /** The first largest logit's index. */
  tokens: Int32Array;
  /** Its log-probability: the logit minus the row's log Σ exp. */
  logprobs: Float32Array;
}

/**
 * Each row's greedy token and its log-probability computed where the logits are, when the backend can
 * (a GPU: then 2 floats a row come back instead of the whole vocabulary); null on the CPU backends, whose
 * logits are on the host already (sampling.ts chooses there).
 */
export function greedyPick(logits: Tensor): GreedyPicks | null {
  const K = kernels();
  if (!K.greedyPick) return null;
  const vocab = logits.shape[logits.ndim - 1],
    rows = logits.size / vocab;
  const picks = K.empty(2 * rows);
  K.greedyPick(logits.buf, picks, rows, vocab);
  const host = K.toHost(picks);
  K.release(picks);
  const tokens = new Int32Array(rows),
    logprobs = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    tokens[r] = host[2 * r];
    logprobs[r] = host[2 * r + 1];
  }
  return { tokens, logprobs };
}
