/** best/ and the run's state agree after a resume, even when best/ was written after the resumed checkpoint. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadSftConfig } from '../../../src/train/sft/config.js';
import { trainSft } from '../../../src/train/sft/trainer.js';
import {
  tempDir,
  tinyModelFolder,
  toyBeir,
  toyExamples,
  toySftRun,
  writeConfig,
  writeJsonl,
} from '../../helpers/train-fixtures.js';

test('a best/ evaluated after the checkpoint a run resumes from stays the best, said in a warning', async () => {
  const dir = tempDir('best-resume');
  await tinyModelFolder(path.join(dir, 'model'));
  writeJsonl(path.join(dir, 'train.jsonl'), toyExamples(12));
  toyBeir(path.join(dir, 'dev'));
  const output = path.join(dir, 'run');
  const config = writeConfig(path.join(dir, 'best.json'), {
    model: path.join(dir, 'model'),
    output,
    seed: 3,
    data: [{ type: 'jsonl', path: path.join(dir, 'train.jsonl') }],
    maxLength: 128,
    steps: 4,
    batch: { queries: 4, hardNegatives: 1 },
    optimizer: { lr: 3e-3, warmupSteps: 2 },
    checkpoint: { every: 2, keep: 2 },
    lora: { rank: 4, alpha: 8 },
    eval: { beir: path.join(dir, 'dev'), split: 'train', every: 1 },
  });
  await trainSft(loadSftConfig(config), { progress: false });
  const stampFile = path.join(output, 'best', 'best-step.json');
  const stamp = JSON.parse(readFileSync(stampFile, 'utf8')) as { step: number; ndcg10: number };
  assert.ok(stamp.step >= 0 && stamp.step <= 4 && stamp.ndcg10 > 0, JSON.stringify(stamp));

  // as if the run had stopped after step 3's evaluation wrote best/ with a score no later step reaches
  rmSync(path.join(output, 'checkpoints', 'step-00000004'), { recursive: true });
  rmSync(path.join(output, 'final'), { recursive: true });
  writeFileSync(stampFile, JSON.stringify({ step: 3, ndcg10: 0.99 }) + '\n');
  const adapter = readFileSync(path.join(output, 'best', 'adapter_model.safetensors'));
  const warnings: string[] = [];
  const r = await trainSft(loadSftConfig(config), { progress: false, resume: true, warn: (l) => warnings.push(l) });
  assert.equal(r.startStep, 2);
  assert.deepEqual([r.bestStep, r.bestScore], [3, 0.99]);
  assert.ok(
    warnings.some((w) =>
      /best holds the model of step 3 \(dev nDCG@10 0\.9900\), evaluated after the checkpoint of step 2/.test(w),
    ),
    warnings.join('\n'),
  );
  assert.ok(readFileSync(path.join(output, 'best', 'adapter_model.safetensors')).equals(adapter), 'best/ is kept');
  rmSync(dir, { recursive: true, force: true });
});

test('a run stopped after its step-0 evaluation, before its first checkpoint, starts again as new', async () => {
  const dir = tempDir('best-step0');
  const config = await toySftRun(dir, {
    steps: 4,
    eval: { beir: toyBeir(path.join(dir, 'dev')), split: 'train', every: 1 },
  });
  const cfg = loadSftConfig(config);
  await trainSft(cfg, { progress: false });
  const output = path.join(dir, 'run');
  // what a Ctrl-C between the step-0 evaluation and the first checkpoint leaves: best/ of step 0, the log
  rmSync(path.join(output, 'checkpoints'), { recursive: true });
  rmSync(path.join(output, 'final'), { recursive: true });
  const stampFile = path.join(output, 'best', 'best-step.json');
  writeFileSync(stampFile, JSON.stringify({ step: 0, ndcg10: 0.5 }) + '\n');
  const r = await trainSft(cfg, { progress: false });
  assert.equal(r.startStep, 0);
  assert.ok(readFileSync(path.join(output, 'final', 'adapter_model.safetensors')).length > 0);
  // a best/ of a trained step is a model the run made: not trained over
  rmSync(path.join(output, 'checkpoints'), { recursive: true });
  rmSync(path.join(output, 'final'), { recursive: true });
  writeFileSync(stampFile, JSON.stringify({ step: 3, ndcg10: 0.5 }) + '\n');
  await assert.rejects(trainSft(cfg, { progress: false }), /holds the models of an earlier run \(best\/\)/);
  rmSync(dir, { recursive: true, force: true });
});
