/** Stage 2's contrastive term against PyTorch, at the default temperature and at one far below it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { responseInfoNce } from '../../../src/train/rl/trainer.js';
import { decodeF64, encodeF32, relErr, runTorch } from '../../helpers/torch.js';

test('a response’s InfoNCE counts only its positives in the numerator at τ = 1e-5 as at 0.05', () => {
  const rng = new T.Rng(5);
  const d = 8,
    m = 6;
  const emb = T.randn([1, d], rng).data;
  const docs = T.randn([m, d], rng).data;
  // a negative (document 5) in the response's own direction: ranked far above both positives (0 and 1)
  docs.set(emb, 5 * d);
  for (let r = 0; r < m; r++) {
    const row = docs.subarray(r * d, (r + 1) * d);
    const n = Math.hypot(...row);
    for (let i = 0; i < d; i++) row[i] /= n;
  }
  const isPositive = [true, true, false, false, false, false];
  for (const tau of [0.05, 1e-5]) {
    const o = runTorch<{ loss: number; grad: string }>('response_infonce.py', {
      emb: encodeF32(emb),
      docs: encodeF32(docs),
      d,
      m,
      positive: isPositive.map(Number),
      tau,
    });
    const e = new T.Tensor(Float32Array.from(emb), [1, d], true);
    const loss = responseInfoNce(e, docs, m, isPositive, tau);
    loss.backward();
    assert.ok(Math.abs(loss.item() - o.loss) <= 1e-5 * Math.max(1, o.loss), `τ ${tau}: ${loss.item()} vs ${o.loss}`);
    const err = relErr(e.readGrad()!, decodeF64(o.grad));
    assert.ok(err <= 1e-4, `τ ${tau}: gradient's relative error ${err}`);
  }
});
