/**
 * The recipe's profiles checked without training: every config goes through the parser its command
 * uses; the gpu profile's size follows from its stated throughput; no profile trains on an evaluated
 * set; a recipe session ends at its time limit with exit code 75, and a stage-1 session before its last
 * step leaves a checkpoint and no final/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import * as T from '../../src/tensor/index.js';
import {
  checkProfileConfigs,
  checkProfileRules,
  devSampleLeak,
  RecipeConfigError,
} from '../../src/recipe/recipe-check.js';
import {
  SCIFACT_DEV,
  GPU_BUDGET,
  GPU_SHAPES,
  PROFILES,
  gpuShapeKey,
  gpuSizeNote,
  gpuSizing,
  recipePaths,
  trainShards,
  type GpuShape,
  type RecipeProfile,
} from '../../src/recipe/recipe-profiles.js';
import { qwen2Parameters } from '../../src/model/qwen2-config.js';
import type { RecipeState } from '../../src/recipe/default-recipe.js';
import { loadSftConfig } from '../../src/train/sft/config.js';
import { trainSft } from '../../src/train/sft/trainer.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { runCli } from '../helpers/cli.js';
import { sharedData } from '../helpers/repo.js';
import { tempDir, toySftRun } from '../helpers/train-fixtures.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';

/** A work folder whose corpus step has written six shards (the lm config lists the corpus's shards). */
function workWithCorpus(): ReturnType<typeof recipePaths> {
  const work = tempDir('recipe-profiles');
  const p = recipePaths(work, sharedData);
  mkdirSync(p.corpus, { recursive: true });
  for (let i = 0; i < 6; i++) writeFileSync(path.join(p.corpus, `train-0000${i}.jsonl`), '');
  writeFileSync(path.join(p.corpus, 'valid.jsonl'), '');
  return p;
}

test('every profile: each config passes the parser of its command, and the recipe rules hold', () => {
  const p = workWithCorpus();
  for (const profile of Object.values(PROFILES)) {
    const c = checkProfileConfigs(profile, p);
    assert.equal(c.lm.output, p.lm, profile.name);
    assert.ok(c.stage1.data.length >= 4 && c.stage2.steps > 0, profile.name);
  }
  assert.equal(trainShards(p.corpus, PROFILES.gpu.tokenizerShards).length, 4, 'the tokenizer reads four shards');
  assert.equal(trainShards(p.corpus).length, 6);
});

test('gpu sizing from measured rates: only measured shapes are candidates, the largest that sees enough text', () => {
  const keys = GPU_SHAPES.map(gpuShapeKey);
  assert.equal(new Set(keys).size, GPU_SHAPES.length, 'every shape has its own key');
  const n = (i: number): number => qwen2Parameters(GPU_SHAPES[i], GPU_BUDGET.vocabSize);
  const enough = (i: number): number => (GPU_BUDGET.minTokensPerParameter * n(i)) / GPU_BUDGET.pretrainSeconds;
  // shapes 0 and 1 measured fast enough, shape 2 measured too slow; the rest not measured (never chosen,
  // however fast the assumed TFLOP/s would make them)
  const measured = { [keys[0]]: 2 * enough(0), [keys[1]]: 1.01 * enough(1), [keys[2]]: 0.99 * enough(2) };
  const s = gpuSizing({ ...GPU_BUDGET, tflops: 1e6, measured });
  assert.equal(s.shape, GPU_SHAPES[1]);
  assert.ok(s.measured);
  assert.equal(s.tokensPerSecond, measured[keys[1]]);
  assert.equal(s.steps, Math.floor((s.tokensPerSecond * GPU_BUDGET.pretrainSeconds) / GPU_BUDGET.tokensPerStep));
  // nothing measured fast enough: the smallest measured shape, as with the assumption
  const slow = gpuSizing({ ...GPU_BUDGET, measured: { [keys[1]]: 1, [keys[3]]: 1 } });
  assert.equal(slow.shape, GPU_SHAPES[1]);
});

test("the card says how the gpu profile's size was chosen: a measured rate and its adapter, or an assumed one", () => {
  assert.equal(PROFILES.gpu.sizeNote, gpuSizeNote());
  assert.equal(PROFILES.full.sizeNote, undefined);
  assert.equal(PROFILES.tiny.sizeNote, undefined);
  const assumed = gpuSizeNote({ ...GPU_BUDGET, measured: {}, measuredOn: '' });
  assert.match(assumed, new RegExp(`an assumed ${GPU_BUDGET.tflops} TFLOP/s .*no rate was measured`));
  const keys = GPU_SHAPES.map(gpuShapeKey);
  const rate = (10 * qwen2Parameters(GPU_SHAPES[0], GPU_BUDGET.vocabSize)) / GPU_BUDGET.pretrainSeconds;
  const measured = gpuSizeNote({ ...GPU_BUDGET, measured: { [keys[0]]: rate }, measuredOn: 'NVIDIA H200' });
  assert.match(measured, /the largest candidate that sees at least 2 pretraining tokens per parameter/);
  assert.match(measured, /measured on NVIDIA H200: .* \(10\.0 per parameter\)/);
  const slow = gpuSizeNote({ ...GPU_BUDGET, measured: { [keys[0]]: rate / 10 }, measuredOn: 'NVIDIA H200' });
  assert.match(slow, /the smallest candidate, since none sees 2 pretraining tokens per parameter/);
});

test('the gpu profile: sized from its stated throughput, v2 data, analyses, one reasoning budget', () => {
  const p = workWithCorpus();
  const c = checkProfileConfigs(PROFILES.gpu, p);
  const sizing = gpuSizing();
  // the arithmetic the profile documents: tokens = tokens/s × seconds, the rate measured by bench:sizing
  // or, for a profile not yet measured, TFLOP/s / (6 × parameters)
  const anyMeasured = Object.keys(GPU_BUDGET.measured).length > 0;
  const rateOf = (shape: GpuShape): number | undefined =>
    GPU_BUDGET.measured[gpuShapeKey(shape)] ??
    (anyMeasured ? undefined : (GPU_BUDGET.tflops * 1e12) / (6 * qwen2Parameters(shape, GPU_BUDGET.vocabSize)));
  assert.equal(sizing.measured, anyMeasured);
  assert.ok(Math.abs(sizing.tokens - rateOf(sizing.shape)! * GPU_BUDGET.pretrainSeconds) < 1);
  assert.equal(sizing.steps, Math.floor(sizing.tokens / GPU_BUDGET.tokensPerStep));
  assert.equal(c.lm.steps, sizing.steps);
  assert.equal(c.lm.seqLength * c.lm.batchSize * c.lm.accumulation, GPU_BUDGET.tokensPerStep);
  assert.deepEqual(
    {
      hiddenSize: c.lm.model.hiddenSize,
      intermediateSize: c.lm.model.intermediateSize,
      numHiddenLayers: c.lm.model.numHiddenLayers,
      numAttentionHeads: c.lm.model.numAttentionHeads,
      numKeyValueHeads: c.lm.model.numKeyValueHeads,
    },
    sizing.shape,
  );
  assert.ok(sizing.tokens >= GPU_BUDGET.minTokensPerParameter * sizing.parameters);
  // the next larger shape would see too few tokens, or not come back in one command
  const i = GPU_SHAPES.indexOf(sizing.shape);
  for (const next of GPU_SHAPES.slice(i + 1)) {
    const n = qwen2Parameters(next, GPU_BUDGET.vocabSize);
    const rate = rateOf(next);
    if (rate === undefined) continue; // not measured: not a candidate
    const tokens = rate * GPU_BUDGET.pretrainSeconds;
    assert.ok(tokens < GPU_BUDGET.minTokensPerParameter * n || 4 * n > GPU_BUDGET.outBytes);
  }
  // a faster GPU buys a larger model, never past what one command may bring back
  const fast = gpuSizing({ ...GPU_BUDGET, tflops: 1000, measured: {} });
  assert.ok(fast.parameters > sizing.parameters && 4 * fast.parameters <= GPU_BUDGET.outBytes);

  const sources = c.stage1.data.map((s) => `${s.type}:${path.relative(sharedData, s.path)}`);
  for (const s of [
    'beir:drcd/beir/dev',
    'beir:arcd/beir/train',
    'climate-fever:climate-fever/climate-fever.jsonl',
    'pseudo-queries:drcd/beir/test/corpus.jsonl',
    'pseudo-queries:arcd/beir/test/corpus.jsonl',
  ])
    assert.ok(sources.includes(s), s);
  assert.ok(!sources.some((s) => /xquad|nfcorpus/.test(s)), 'never XQuAD (evaluated) nor NFCorpus (the dev set)');
  assert.equal(c.stage1.reasoning?.fraction, 0.5);
  assert.equal(c.stage1.reasoning?.maxTokens, 32);
  assert.equal(c.stage2.rollout.maxReasoningTokens, 32);
  assert.deepEqual(PROFILES.gpu.evaluateArgs, ['--max-reasoning-tokens', '32']);
});

test("the parameter count is the model's own", () => {
  for (const shape of [
    { hiddenSize: 64, intermediateSize: 160, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 },
    { hiddenSize: 96, intermediateSize: 256, numHiddenLayers: 3, numAttentionHeads: 6, numKeyValueHeads: 3 },
  ]) {
    const config = tinyQwen2Config({ ...shape, vocabSize: 500, tieWordEmbeddings: true });
    const model = Qwen2Model.random(config, new T.Rng(1), 0.02);
    assert.equal(
      model.parameters().reduce((a, t) => a + t.size, 0),
      qwen2Parameters(shape, 500),
    );
  }
});

test('a profile that trains on an evaluated set, or reasons for different budgets, is refused before any step', () => {
  const p = recipePaths(tempDir('recipe-rules'), sharedData);
  const withXquad: RecipeProfile = {
    ...PROFILES.gpu,
    stage1: (q) => {
      const c = PROFILES.gpu.stage1(q);
      const data = [...(c.data as unknown[])];
      data.push({ type: 'pseudo-queries', path: path.join(q.data, 'xquad/beir/en'), queries: 'sentence' });
      return { ...c, data };
    },
  };
  assert.throws(
    () => checkProfileRules(withXquad, p),
    (e: unknown) => e instanceof RecipeConfigError && /xquad\/beir\/en is an evaluated set/.test(e.message),
  );
  const testSplit: RecipeProfile = {
    ...PROFILES.gpu,
    stage2: (q) => ({ ...PROFILES.gpu.stage2(q), data: { beir: path.join(q.data, 'scifact'), split: 'test' } }),
  };
  assert.throws(
    () => checkProfileRules(testSplit, p),
    (e: unknown) =>
      e instanceof RecipeConfigError &&
      /profile gpu, stage2 config: "data.split" is "test": test queries are never trained on/.test(e.message),
  );
  const budgets: RecipeProfile = { ...PROFILES.gpu, evaluateArgs: ['--max-reasoning-tokens', '24'] };
  assert.throws(() => checkProfileRules(budgets, p), /stage 2 reasons for 32 tokens, the evaluation for 24/);
});

test("every profile holds SciFact's dev sample out of mining and stage 2; a profile that does not is refused", () => {
  const p = recipePaths(tempDir('recipe-hold-out'), sharedData);
  const scifact = path.join(sharedData, 'scifact');
  for (const profile of Object.values(PROFILES)) {
    const c = checkProfileRules(profile, p);
    const reads = c.mine.data.filter((s) => s.type === 'beir' && s.path === scifact);
    assert.deepEqual(
      reads.map((s) => s.type === 'beir' && s.holdOut),
      [SCIFACT_DEV.sample],
      profile.name,
    );
    assert.deepEqual([c.stage2.data.beir, c.stage2.data.holdOut], [scifact, SCIFACT_DEV.sample], profile.name);
    // stage 1 reads SciFact's train queries only through the mined file
    assert.ok(
      c.stage1.data.every((s) => s.type !== 'beir' || s.path !== scifact),
      profile.name,
    );
    assert.equal(devSampleLeak(c), null, profile.name);
  }
  const withoutMineHoldOut: RecipeProfile = {
    ...PROFILES.tiny,
    mine: (q) => ({ ...PROFILES.tiny.mine(q), data: [{ type: 'beir', path: scifact, split: 'train' }] }),
  };
  assert.throws(
    () => checkProfileRules(withoutMineHoldOut, p),
    (e: unknown) =>
      e instanceof RecipeConfigError &&
      e.message ===
        `profile tiny, mine config, data[0] reads ${scifact} (split train) without holding out the dev sample ` +
          "{n: 300, seed: 1}: the fusion's dev set would be trained on",
  );
  // a smaller sample, or another seed, is another set of queries: the dev sample is not (all) held out
  for (const holdOut of [
    { n: 299, seed: 1 },
    { n: 300, seed: 2 },
  ]) {
    const other: RecipeProfile = {
      ...PROFILES.full,
      stage2: (q) => {
        const c = PROFILES.full.stage2(q);
        return { ...c, data: { ...(c.data as object), holdOut } };
      },
    };
    assert.throws(() => checkProfileRules(other, p), /stage2 config, data reads \S+scifact \(split train\) without/);
  }
  // a larger sample with the same seed contains the dev sample (the first n ids of one seeded shuffle)
  const larger: RecipeProfile = {
    ...PROFILES.full,
    stage2: (q) => {
      const c = PROFILES.full.stage2(q);
      return { ...c, data: { ...(c.data as object), holdOut: { n: 400, seed: 1 } } };
    },
  };
  assert.doesNotThrow(() => checkProfileRules(larger, p));
});

test('recipe --session-seconds: no step starts after the limit, exit code 75, the record kept', () => {
  const dir = tempDir('recipe-session');
  const work = path.join(dir, 'work');
  const args = ['recipe', 'default', '--profile', 'tiny', '--work', work, '--data', sharedData, '--quiet'];
  const r = runCli([...args, '--session-seconds', '0.001']);
  assert.equal(r.status, 75, r.stderr);
  assert.match(r.stderr, /the session's time is used up before step corpus; run the recipe again to continue/);
  assert.match(r.stdout, /session ended \(--session-seconds 0\.001\)/);
  const state = JSON.parse(readFileSync(path.join(work, 'recipe.json'), 'utf8')) as RecipeState;
  assert.equal(state.profile, 'tiny');
  const bad = runCli([...args, '--session-seconds', 'soon']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--session-seconds must be a number of seconds > 0/);
});

test('recipe --until: the steps up to that one run, the rest wait for the same command without it', () => {
  const work = path.join(tempDir('recipe-until'), 'work');
  const args = ['recipe', 'default', '--profile', 'tiny', '--work', work, '--data', sharedData, '--quiet'];
  const r = runCli([...args, '--until', 'tokenizer']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /steps up to tokenizer done \(--until\)/);
  const state = JSON.parse(readFileSync(path.join(work, 'recipe.json'), 'utf8')) as RecipeState;
  assert.deepEqual(Object.keys(state.steps), ['corpus', 'tokenizer']);
  assert.ok(state.steps.corpus.done && state.steps.tokenizer.done);
  assert.ok(existsSync(path.join(work, 'tokenizer/tokenizer.json')) && !existsSync(path.join(work, 'lm')));
  const again = runCli([...args, '--until', 'corpus']);
  assert.equal(again.status, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /▶/);
  const bad = runCli([...args, '--until', 'train']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--until must name a step: corpus, tokenizer, lm/);
});

test('a stage-1 session that ends before its last step leaves a checkpoint and no final/', async () => {
  const root = tempDir('sft-session');
  const cfg = loadSftConfig(await toySftRun(root, { steps: 4, lora: null }));
  const first = await trainSft(cfg, { progress: false, deadline: Date.now() });
  assert.equal(first.finished, false);
  assert.equal(first.steps, 1);
  assert.ok(!existsSync(path.join(root, 'run/final')));
  assert.deepEqual(
    listCheckpoints(path.join(root, 'run/checkpoints')).map((c) => c.step),
    [1],
  );
  const rest = await trainSft(cfg, { progress: false, resume: true });
  assert.equal(rest.finished, true);
  assert.equal(rest.steps, 4);
  assert.ok(existsSync(path.join(root, 'run/final/config.json')));
});

test('only the gpu profile makes the Debian pairs, in the corpus folder that travels, and stage 1 reads them', () => {
  const p = workWithCorpus();
  assert.equal(path.dirname(p.pairs), p.corpus);
  const readsPairs = (profile: RecipeProfile): boolean =>
    checkProfileConfigs(profile, p).stage1.data.some((s) => s.type === 'jsonl' && s.path === p.pairs);
  assert.ok(readsPairs(PROFILES.gpu));
  assert.deepEqual(PROFILES.gpu.pairsArgs, ['--max-terms', '6000', '--max-headings', '3000', '--seed', '0']);
  for (const profile of [PROFILES.full, PROFILES.tiny]) {
    assert.equal(profile.pairsArgs, undefined, profile.name);
    assert.ok(!readsPairs(profile), profile.name);
  }
});
