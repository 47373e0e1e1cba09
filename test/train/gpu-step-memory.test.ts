/**
 * On a GPU, a training step of several forward passes (accumulation, GradCache chunks) must hold about one
 * pass's graph at a time: that is what a user lowering batchSize or subBatch after running out of memory
 * relies on. A pass's graph is garbage once its backward is done, but its GPU buffers come back only when
 * finalizers run, which (without V8's cleanupSome: Node 24 on, and below the collection threshold on any
 * Node) waits for the event loop: the trainers yield between passes.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bpeTokenizerFiles, learnMerges, WordCounter } from '../../src/model/bpe-trainer.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { parseLmConfig } from '../../src/train/lm/config.js';
import { trainLm } from '../../src/train/lm/trainer.js';
import { DEFAULT_TEMPLATES } from '../../src/embed/prompts.js';
import { type LossSettings, plainBackward } from '../../src/train/sft/batch-loss.js';
import { batchTexts, planEpoch } from '../../src/train/sft/batches.js';
import { gradCacheBackward } from '../../src/train/sft/grad-cache.js';
import { SequenceEncoder } from '../../src/train/sft/sequences.js';
import { parseRlConfig } from '../../src/train/rl/config.js';
import { trainRl } from '../../src/train/rl/trainer.js';
import { loadSftConfig } from '../../src/train/sft/config.js';
import { trainSft } from '../../src/train/sft/trainer.js';
import { rlFixture, tempDir, toyExamples, toySftRun } from '../helpers/train-fixtures.js';
import { tinyModel } from '../helpers/tiny-model.js';
import * as T from '../../src/tensor/index.js';
import { sharedData } from '../helpers/repo.js';
import { webgpuSkip } from '../helpers/webgpu.js';

let dir = '';

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gpu-step-memory-'));
  const lines = readFileSync(path.join(sharedData, 'scifact/corpus.jsonl'), 'utf8')
    .split('\n', 200)
    .filter((l) => l.trim() !== '');
  const counter = new WordCounter();
  for (const l of lines) {
    const d = JSON.parse(l) as { title: string; text: string };
    counter.add(`${d.title}\n${d.text}`);
  }
  const files = bpeTokenizerFiles(learnMerges(counter.counts, { vocabSize: 512 }).merges);
  await Tokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig).save(path.join(dir, 'tok'));
  await fsp.writeFile(path.join(dir, 'train.jsonl'), lines.join('\n') + '\n');
});

after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** The most GPU memory a run holds beyond what was held before it. */
async function peakOf(run: () => Promise<unknown>): Promise<number> {
  const gpu = T.webgpuKernels()!.gpu;
  await T.releaseUnusedMemory();
  const base = gpu.heldBytes;
  gpu.resetPeak();
  await run();
  return gpu.peakBytes - base;
}

/** Trains with 1 and with n passes a step on the GPU: the second must peak within a quarter of the first. */
async function assertPeakNearOne(
  t: TestContext,
  n: number,
  passes: string,
  train: (passes: number) => Promise<unknown>,
): Promise<void> {
  T.setBackend('webgpu');
  try {
    const one = await peakOf(() => train(1));
    const many = await peakOf(() => train(n));
    const said = `peak GPU bytes: ${many} with ${n} ${passes} a step, ${one} with 1`;
    t.diagnostic(said);
    assert.ok(many < one * 1.25, said);
  } finally {
    T.setBackend('native');
  }
}

test(
  'train lm on a GPU: a step of 4 accumulated passes peaks near a step of one',
  { skip: webgpuSkip() },
  async (t) => {
    const lm = (accumulation: number) =>
      trainLm(
        parseLmConfig(
          {
            tokenizer: 'tok',
            output: `lm-${accumulation}`,
            seed: 1,
            data: { train: ['train.jsonl'] },
            model: {
              hiddenSize: 64,
              intermediateSize: 128,
              numHiddenLayers: 2,
              numAttentionHeads: 4,
              numKeyValueHeads: 2,
              maxPositionEmbeddings: 128,
            },
            seqLength: 128,
            batchSize: 4,
            accumulation,
            steps: 2,
            checkpoint: { every: 100, keep: 1 },
          },
          dir,
        ),
        { progress: false },
      );
    await assertPeakNearOne(t, 4, 'passes', lm);
  },
);

test(
  'GradCache on a GPU: 8 chunks of a batch peak far below the whole batch in one graph',
  { skip: webgpuSkip() },
  async (t) => {
    T.setBackend('webgpu');
    try {
      const { model, tokenizer } = tinyModel(5);
      const enc = new SequenceEncoder(tokenizer, DEFAULT_TEMPLATES, 200);
      const examples = toyExamples(8);
      const bt = batchTexts(examples, planEpoch(examples, 3, 0, examples.length, 2)[0]);
      const batch = {
        seqs: [...bt.queries.map((q) => enc.encode(q, 'query')), ...bt.documents.map((d) => enc.encode(d, 'document'))],
        numQueries: bt.queries.length,
        targets: bt.targets,
      };
      const w: LossSettings = { sft: 1, kl: 0, infonce: 1, triplet: 0, temperature: 0.05, margin: 0.2 };
      const m = { model, ref: null };
      const whole = await peakOf(async () => plainBackward(m, batch, w, 1));
      const chunked = await peakOf(() => gradCacheBackward(m, batch, w, 1, batch.seqs.length / 8));
      t.diagnostic(`peak GPU bytes: ${chunked} in chunks of ${batch.seqs.length / 8}, ${whole} in one graph`);
      assert.ok(chunked < whole / 3, `peak GPU bytes: ${chunked} in 8 chunks, ${whole} in one graph`);
    } finally {
      T.setBackend('native');
    }
  },
);

test(
  'train sft on a GPU: a step of 3 accumulated batches peaks near a step of one',
  { skip: webgpuSkip() },
  async (t) => {
    const sftDir = tempDir('gpu-step-memory-sft');
    const sft = async (accumulation: number) => {
      const batch = { queries: 4, hardNegatives: 1, subBatch: 0, accumulation };
      const file = await toySftRun(sftDir, { output: `sft-${accumulation}`, steps: 1, batch, lora: null });
      return trainSft(loadSftConfig(file), { progress: false });
    };
    try {
      await assertPeakNearOne(t, 3, 'batches', sft);
    } finally {
      await fsp.rm(sftDir, { recursive: true, force: true });
    }
  },
);

test('train rl on a GPU: 4 inner updates a step peak near one', { skip: webgpuSkip() }, async (t) => {
  const { dir: rlDir, raw } = await rlFixture('gpu-step-memory-rl');
  const rl = (innerEpochs: number) =>
    trainRl(
      parseRlConfig(
        {
          ...raw,
          output: `rl-${innerEpochs}`,
          steps: 1,
          rollout: { queries: 2, group: 4, temperature: 1, maxReasoningTokens: 8 },
          loss: { ...(raw.loss as object), innerEpochs },
        },
        rlDir,
      ),
      { progress: false },
    );
  try {
    await assertPeakNearOne(t, 4, 'inner updates', rl);
  } finally {
    await fsp.rm(rlDir, { recursive: true, force: true });
  }
});
