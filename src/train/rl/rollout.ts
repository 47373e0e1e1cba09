/**
 * Rollouts for GRPO: G sampled responses per query (analysis, then <|embed_token|>, which is forced when
 * the model does not emit it within the budget), turned into training sequences, and the per-token
 * log-probabilities and embeddings of those sequences under a model.
 *
 * Log-probabilities are taken under softmax(logits / T) with T the sampling temperature (T = 1 when
 * sampling greedily), the distribution the tokens were drawn from, so the ratios π/π_old and the KL to
 * π_ref are measured on the sampling policy (as TRL does); generate() reports the same quantity.
 *
 * Trained tokens are every sampled token: the analysis and the token that ended it (<|embed_token|>,
 * or an end-of-turn token, which the reward then penalises as a format failure). A forced embed token was
 * not sampled and is not trained. The embedding is the final hidden state at the last token of
 * prompt + sampled tokens (+ the forced embed token).
 */
import * as T from '../../tensor/index.js';
import type { Tensor } from '../../tensor/index.js';
import { generate } from '../../model/generate.js';
import type { Qwen2Model } from '../../model/qwen2-model.js';

export interface Rollout {
  /** Index of the query in the batch (responses of one query are consecutive). */
  query: number;
  ids: number[];
  /** Trained tokens are ids[from .. to). */
  from: number;
  to: number;
  /** The model emitted <|embed_token|> itself. */
  emitted: boolean;
  /** Analysis tokens (sampled tokens other than the one that ended the analysis). */
  reasoningTokens: number;
  /** log-probabilities generate() reported for the sampled tokens (at the sampling temperature). */
  sampledLogprobs: number[];
}

export interface RolloutSettings {
  group: number;
  temperature: number;
  topP: number;
  topK: number;
  maxReasoningTokens: number;
  seed: number;
}

export function sampleRollouts(
  model: Qwen2Model,
  prompts: readonly number[][],
  embedId: number,
  endTokens: readonly number[],
  s: RolloutSettings,
): Rollout[] {
  const rows = prompts.flatMap((p) => Array.from({ length: s.group }, () => p));
  const longest = Math.max(...prompts.map((p) => p.length));
  const budget = Math.max(0, Math.min(s.maxReasoningTokens, model.config.maxPositionEmbeddings - 2 - longest));
  const gens =
    budget > 0
      ? generate(model, rows, {
          maxNewTokens: budget,
          temperature: s.temperature,
          topP: s.topP,
          topK: s.topK,
          seed: s.seed,
          stopTokens: [embedId, ...endTokens],
        })
      : rows.map(() => ({ tokens: [] as number[], logprobs: [] as number[] }));
  const ends = new Set(endTokens);
  return gens.map((g, i) => {
    const prompt = rows[i];
    const last = g.tokens[g.tokens.length - 1];
    const emitted = last === embedId;
    const stopped = emitted || (last !== undefined && ends.has(last));
    const ids = [...prompt, ...g.tokens, ...(emitted ? [] : [embedId])];
    return {
      query: Math.floor(i / s.group),
      ids,
      from: prompt.length,
      to: prompt.length + g.tokens.length,
      emitted,
      reasoningTokens: g.tokens.length - (stopped ? 1 : 0),
      sampledLogprobs: g.logprobs,
    };
  });
}

export interface SequenceForward {
  /** log π(token) of every trained token, rollouts in order, [tokens]. */
  logp: Tensor;
  /** Final hidden state at each rollout's last token, [rollouts, d] (not normalised). */
  emb: Tensor;
}

/** One forward pass over the rollouts' sequences (padded on the right; causal attention ignores it). */
export function forwardRollouts(
  model: Qwen2Model,
  rs: readonly Rollout[],
  temperature: number,
  rng?: T.Rng,
): SequenceForward {
  const n = rs.length,
    L = Math.max(...rs.map((r) => r.ids.length)),
    d = model.config.hiddenSize;
  const ids = new Int32Array(n * L);
  rs.forEach((r, b) => ids.set(r.ids, b * L));
  const hidden = T.reshape(model.forward(ids, n, L, { rng }), [n * L, d]);
  const emb = T.concat(
    rs.map((r, b) => T.slice(hidden, 0, b * L + r.ids.length - 1, b * L + r.ids.length)),
    0,
  );
  // position p − 1 predicts token p
  const parts = rs.flatMap((r, b) => (r.to > r.from ? [T.slice(hidden, 0, b * L + r.from - 1, b * L + r.to - 1)] : []));
  const labels = Int32Array.from(rs.flatMap((r) => r.ids.slice(r.from, r.to)));
  if (parts.length === 0) return { logp: T.zeros([0]), emb };
  const rows = parts.length === 1 ? parts[0] : T.concat(parts, 0);
  let logits = model.logits(rows);
  const t = temperature > 0 ? temperature : 1;
  if (t !== 1) logits = T.scale(logits, 1 / t);
  return { logp: T.neg(T.crossEntropy(logits, labels, { reduction: 'none' })), emb };
}

/** Rows of a [n, d] tensor as unit-length Float32Arrays. */
export function unitRows(x: Tensor): Float32Array[] {
  const [n, d] = x.shape;
  const values = x.read();
  return Array.from({ length: n }, (_, i) => {
    const v = values.subarray(i * d, (i + 1) * d);
    let s = 0;
    for (let j = 0; j < d; j++) s += v[j] * v[j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    return Float32Array.from(v, (y) => y * inv);
  });
}
