import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { Qwen2Model } from '../../../src/model/qwen2-model.js';
import { DEFAULT_TEMPLATES } from '../../../src/embed/prompts.js';
import { type EncodedBatch, type LossSettings, plainBackward } from '../../../src/train/sft/batch-loss.js';
import { batchTexts, planEpoch } from '../../../src/train/sft/batches.js';
import { gradCacheBackward } from '../../../src/train/sft/grad-cache.js';
import { SequenceEncoder } from '../../../src/train/sft/sequences.js';
import type { TrainExample } from '../../../src/train/sft/data.js';
import { toyExamples } from '../../helpers/train-fixtures.js';
import { relErr } from '../../helpers/torch.js';
import { tinyModel } from '../../helpers/tiny-model.js';

function encodedBatch(enc: SequenceEncoder, examples: TrainExample[]): EncodedBatch {
  const plan = planEpoch(examples, 3, 0, examples.length, 2)[0];
  const bt = batchTexts(examples, plan);
  return {
    seqs: [...bt.queries.map((q) => enc.encode(q, 'query')), ...bt.documents.map((d) => enc.encode(d, 'document'))],
    numQueries: bt.queries.length,
    targets: bt.targets,
  };
}

test('GradCache gives the gradients of plain backprop over the whole batch (all four terms)', async () => {
  const { model, tokenizer } = tinyModel(5);
  const ref = new Qwen2Model(
    model.config,
    new Map([...model.params].map(([k, v]) => [k, new T.Tensor(Float32Array.from(v.data), v.shape)])),
  );
  // move the trained model away from the reference so that L_KL has a gradient
  const rng = new T.Rng(9);
  for (const p of model.parameters()) for (let i = 0; i < p.size; i++) p.data[i] += 0.02 * rng.normal();
  const enc = new SequenceEncoder(tokenizer, DEFAULT_TEMPLATES, 200);
  const batch = encodedBatch(enc, toyExamples(6));
  assert.equal(batch.seqs.length, 6 + 6 + 12, 'queries, positives and two hard negatives each');
  const w: LossSettings = { sft: 1, kl: 1, infonce: 1, triplet: 1, temperature: 0.05, margin: 0.2 };
  const m = { model, ref };

  const plain = plainBackward(m, batch, w, 0.5);
  const gPlain = model.parameters().map((p) => Float32Array.from(p.readGrad()!));
  for (const p of model.parameters()) p.grad = null;
  for (const sub of [1, 5]) {
    const cached = await gradCacheBackward(m, batch, w, 0.5, sub);
    for (const k of ['loss', 'sft', 'kl', 'infonce', 'triplet'] as const) {
      assert.ok(
        Math.abs(cached[k] - plain[k]) <= 1e-5 * Math.max(1, Math.abs(plain[k])),
        `${k}: ${cached[k]} vs ${plain[k]}`,
      );
    }
    assert.ok(plain.kl > 0 && plain.triplet > 0 && plain.infonce > 0 && plain.sft > 0, 'every term is active');
    let worst = 0;
    model.parameters().forEach((p, i) => {
      worst = Math.max(worst, relErr(p.readGrad()!, gPlain[i]));
    });
    assert.ok(worst <= 1e-4, `sub-batch ${sub}: worst relative gradient error ${worst}`);
    for (const p of model.parameters()) p.grad = null;
  }
});
