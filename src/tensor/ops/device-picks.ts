/**
 * The next token of each row of logits [..., vocab], chosen where the logits are when the backend can:
 * on a GPU, 2 floats a row come back instead of the whole vocabulary. The CPU backends return null,
 * since their logits are on the host already and sampling.ts chooses there.
 */
import { type Buf, kernels } from '../backend.js';
import type { Tensor } from '../tensor.js';

/** One chosen token per row. */
export interface DevicePicks {
  tokens: Int32Array;
  /** Each token's log-probability: its logit (divided by the temperature) minus the row's log Σ exp. */
  logprobs: Float32Array;
}

/** Greedy decoding's choice: the first largest logit of each row. */
export function greedyPick(logits: Tensor): DevicePicks | null {
  const K = kernels();
  if (!K.greedyPick) return null;
  const { rows, vocab } = rowsOf(logits);
  const picks = K.empty(2 * rows);
  K.greedyPick(logits.buf, picks, rows, vocab);
  return readPicks(picks, rows);
}

/**
 * A draw from each row's softmax(logits / temperature) with the uniform draws[r] in [0, 1) (what
 * sampling.ts's untruncated draw does with rng.next()): the host's token for the same draw, except where
 * the draw falls within float32 rounding of a boundary between two tokens. `draws` is called only when
 * the device samples, so a caller's random stream advances only then.
 */
export function samplePick(logits: Tensor, temperature: number, draws: () => Float32Array): DevicePicks | null {
  const K = kernels();
  if (!K.samplePick) return null;
  const { rows, vocab } = rowsOf(logits);
  const picks = K.empty(2 * rows);
  K.samplePick(logits.buf, draws(), picks, rows, vocab, temperature);
  return readPicks(picks, rows);
}

function rowsOf(logits: Tensor): { rows: number; vocab: number } {
  const vocab = logits.shape[logits.ndim - 1];
  return { rows: logits.size / vocab, vocab };
}

function readPicks(picks: Buf, rows: number): DevicePicks {
  const K = kernels();
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
