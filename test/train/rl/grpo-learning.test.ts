/**
 * GRPO learns, not only runs: one prompt, two responses rewarded 1 and 0; the real pieces of a stage-2
 * update (the rollouts' forward pass, group advantages, per-response token weights, the clipped GRPO loss
 * with its KL term, gradient clipping and AdamW) raise the rewarded response's log-probability and lower
 * the other's on a tiny model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { groupAdvantages, grpoLoss, responseMeanWeights } from '../../../src/train/rl/grpo.js';
import { forwardRollouts, type Rollout } from '../../../src/train/rl/rollout.js';
import { tinyModel } from '../../helpers/tiny-model.js';

test('after GRPO updates, the rewarded response is likelier and the unrewarded one less likely', () => {
  const { model, tokenizer } = tinyModel(7);
  const params = model.parameters();
  for (const p of params) p.requiresGrad = true;
  const prompt = tokenizer.encode('which letter is alpha?');
  const rollout = (text: string): Rollout => {
    const response = tokenizer.encode(text);
    return {
      query: 0,
      ids: [...prompt, ...response],
      from: prompt.length,
      to: prompt.length + response.length,
      emitted: true,
      reasoningTokens: response.length,
      sampledLogprobs: [],
    };
  };
  const rollouts = [rollout(' alpha is the first'), rollout(' omega is the last')];
  const lengths = rollouts.map((r) => r.to - r.from);
  const advantages = groupAdvantages([1, 0], 2);
  assert.ok(advantages[0]! > 0 && advantages[1]! < 0);
  const tokenAdvantages = Float32Array.from(lengths.flatMap((n, i) => new Array<number>(n).fill(advantages[i]!)));
  const weights = responseMeanWeights(lengths);
  /** The log-probability of every response token, and of each response (the sum over its tokens), now. */
  const logProbs = (): { tokens: Float32Array; responses: number[] } => {
    const tokens = T.noGrad(() => forwardRollouts(model, rollouts, 1)).logp.data.slice();
    const sum = (from: number, to: number): number => tokens.slice(from, to).reduce((s, v) => s + v, 0);
    return { tokens, responses: [sum(0, lengths[0]!), sum(lengths[0]!, tokens.length)] };
  };
  const before = logProbs();
  const optimizer = new T.AdamW(params, { weightDecay: 0 });
  for (let update = 0; update < 8; update++) {
    const old = logProbs().tokens;
    const { loss } = grpoLoss({
      logp: forwardRollouts(model, rollouts, 1).logp,
      oldLogp: old,
      refLogp: before.tokens,
      advantages: tokenAdvantages,
      weights,
      clipEps: 0.2,
      beta: 0.04,
    });
    loss.backward();
    T.clipGradNorm(params, 1);
    optimizer.step(1e-3);
    optimizer.zeroGrad();
  }
  const after = logProbs();
  const [rewarded, other] = [0, 1].map((i) => after.responses[i]! - before.responses[i]!);
  assert.ok(rewarded! > 2, `the rewarded response's log-probability rose by ${rewarded}`);
  assert.ok(other! < -2, `the unrewarded response's log-probability fell by ${-other!}`);
});
