import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Embedder } from '../../../src/embed/embedder.js';
import { EMBED_TOKEN } from '../../../src/embed/prompts.js';
import { loadModelFolder, saveModelFolder } from '../../../src/model/model-folder.js';
import { loadSafetensors } from '../../../src/model/safetensors.js';
import { loadSftConfig } from '../../../src/train/sft/config.js';
import { ConfigError } from '../../../src/train/config-merge.js';
import { listCheckpoints } from '../../../src/train/checkpoint.js';
import { trainSft } from '../../../src/train/sft/trainer.js';
import { TrainingDiverged } from '../../../src/train/training-run.js';
import { repoRoot } from '../../helpers/repo.js';
import { runCli } from '../../helpers/cli.js';
import { makeTinyTokenizer } from '../../helpers/tiny-tokenizer.js';
import { tinyQwen2Config } from '../../helpers/tiny-qwen2.js';
import * as T from '../../../src/tensor/index.js';
import { ModelFileError } from '../../../src/model/model-file-error.js';
import { Qwen2Model } from '../../../src/model/qwen2-model.js';
import { Tokenizer } from '../../../src/model/tokenizer.js';
import {
  tempDir,
  toyBeir,
  tinyModelFolder,
  toyExamples,
  toySftRun,
  writeConfig,
  writeJsonl,
} from '../../helpers/train-fixtures.js';

interface Rec {
  type: string;
  step: number;
  loss?: number;
  sft?: number;
  kl?: number;
  infonce?: number;
  triplet?: number;
}
const metrics = (dir: string): Rec[] =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Rec);
const trainCurve = (dir: string): Rec[] => metrics(dir).filter((r) => r.type === 'train');

async function toyRun(name: string, extra: Record<string, unknown> = {}): Promise<{ root: string; cfgFile: string }> {
  const root = tempDir(name);
  return { root, cfgFile: await toySftRun(root, extra) };
}

function runChild(
  cfgFile: string,
  mode: string,
  killAtStep?: number,
): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist/test/helpers/train-child.js'), cfgFile, mode], {
      env: { ...process.env, SLEEP_MS: killAtStep ? '200' : '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (killAtStep && out.includes(`step ${killAtStep}\n`)) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

test('kill -9 before the first checkpoint, --resume: the run starts again at step 0, bit-identical', async () => {
  const a = await toyRun('resume-early-a', { steps: 4 });
  assert.equal((await runChild(a.cfgFile, 'fresh')).code, 0);
  const b = await toyRun('resume-early-b', { steps: 4 });
  const killed = await runChild(b.cfgFile, 'fresh', 1);
  assert.equal(killed.signal, 'SIGKILL');
  const runB = path.join(b.root, 'run');
  assert.deepEqual(listCheckpoints(path.join(runB, 'checkpoints')), [], 'killed before its first checkpoint (step 2)');
  const resumed = await runChild(b.cfgFile, 'resume');
  assert.equal(resumed.code, 0, resumed.out);
  assert.ok(resumed.out.startsWith('step 1\n'), resumed.out);
  assert.deepEqual(
    trainCurve(runB).map((r) => r.step),
    [1, 2, 3, 4],
    "the killed run's step 1 is logged once",
  );
  const wa = await loadSafetensors(path.join(a.root, 'run/final/adapter_model.safetensors'));
  const wb = await loadSafetensors(path.join(runB, 'final/adapter_model.safetensors'));
  for (const [name, t] of wa) assert.deepEqual(Array.from(wb.get(name)!.data), Array.from(t.data), name);
});

test('a model whose tokenizer has no <|im_end|> is refused naming its folder, before any checkpoint', async () => {
  const root = tempDir('no-im-end');
  // a tokenizer without the ChatML tokens: the assistant turn stage 1 trains has no end to learn
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const model = Qwen2Model.random(tinyQwen2Config({ vocabSize: tokenizer.vocabSize }), new T.Rng(1), 0.1);
  await saveModelFolder(path.join(root, 'model'), { model, tokenizer });
  writeJsonl(path.join(root, 'train.jsonl'), toyExamples(8));
  const file = writeConfig(path.join(root, 'c.json'), {
    model: 'model',
    output: 'run',
    data: [{ type: 'jsonl', path: 'train.jsonl' }],
    batch: { queries: 4 },
    steps: 1,
  });
  await assert.rejects(
    trainSft(loadSftConfig(file), { progress: false }),
    (e: unknown) =>
      e instanceof ModelFileError &&
      e.message.startsWith(`${path.join(root, 'model')}: its tokenizer has no <|im_end|> token: stage 1 trains`),
  );
  assert.equal(existsSync(path.join(root, 'run', 'checkpoints')), false);
});

test('a config key that does not exist is an error naming it', () => {
  const root = tempDir('cfg');
  const file = writeConfig(path.join(root, 'c.json'), {
    model: 'm',
    output: 'o',
    data: [{ type: 'jsonl', path: 'x' }],
    loss: { temprature: 0.1 },
  });
  assert.throws(() => loadSftConfig(file), /"loss\.temprature" is not a config key.*temperature/);
  writeConfig(file, { model: 'm', output: 'o', data: [{ type: 'jsonl', path: 'x', split: 'dev' }] });
  assert.throws(() => loadSftConfig(file), /"data\[0\]\.split" is not a config key/);
  writeConfig(file, { model: 'm', output: 'o', data: [{ type: 'beir', path: 'x', split: 'test' }] });
  assert.throws(() => loadSftConfig(file), /"data\[0\]\.split" is "test": test queries are never trained on/);
  writeConfig(file, { model: 'm', output: 'o', data: [{ type: 'jsonl', path: 'x' }], batch: { queries: '8' } });
  assert.throws(() => loadSftConfig(file), /"batch\.queries" must be a number/);
  const refused = (over: object, re: RegExp): void => {
    writeConfig(file, { model: 'm', output: 'o', data: [{ type: 'jsonl', path: 'x' }], ...over });
    assert.throws(() => loadSftConfig(file), re);
  };
  refused(
    { eval: { beir: 'b', split: 'test' } },
    /"eval\.split" must not be "test": best\/ would be chosen on the test/,
  );
  refused({ eval: { beir: 'b', maxQueries: 2.5 } }, /"eval\.maxQueries" must be an integer ≥ 0, got 2\.5/);
  refused({ seed: 1.5 }, /"seed" must be an integer/);
  refused({ optimizer: { beta2: 1 } }, /"optimizer\.beta2" must be in \[0, 1\), got 1/);
  refused({ optimizer: { maxGradNorm: -1 } }, /"optimizer\.maxGradNorm" must be ≥ 0 \(0: no clipping\)/);
  writeConfig(file, { model: 'm', output: 'o', data: [{ type: 'jsonl', path: 'x' }], lora: { rank: 4 } });
  const cfg = loadSftConfig(file);
  assert.equal(cfg.loss.temperature, 0.05);
  assert.equal(cfg.loss.margin, 0.2);
  assert.equal(cfg.lora?.alpha, 16);
  assert.equal(cfg.model, path.join(root, 'm'), 'paths resolve against the config folder');
});

test(
  'kill -9 after step 5, --resume: the loss curve equals ' +
    'the uninterrupted run, LoRA dropout and GradCache included',
  async () => {
    const a = await toyRun('resume-a');
    const full = await runChild(a.cfgFile, 'fresh');
    assert.equal(full.code, 0, full.out);
    const b = await toyRun('resume-b');
    const killed = await runChild(b.cfgFile, 'fresh', 5);
    assert.equal(killed.signal, 'SIGKILL');
    const runB = path.join(b.root, 'run');
    assert.ok(!existsSync(path.join(runB, 'final')), 'the run was killed before it finished');
    assert.deepEqual(
      listCheckpoints(path.join(runB, 'checkpoints')).map((c) => c.step),
      [2, 4],
      'checkpoints every 2 steps, the newest kept',
    );
    assert.ok(
      trainCurve(runB).some((r) => r.step === 5),
      'step 5 was logged before the kill: resume must redo it',
    );
    // a checkpoint folder half-written when the kill came: never renamed into place, so never resumed from
    const stale = path.join(runB, 'checkpoints', '.step-00000006.tmp-1-x');
    mkdirSync(stale);
    writeFileSync(path.join(stale, 'state.json'), '{"step": 6');
    const resumed = await runChild(b.cfgFile, 'resume');
    assert.ok(!existsSync(stale), 'the half-written folder is cleaned up');
    assert.equal(resumed.code, 0, resumed.out);
    assert.ok(resumed.out.startsWith('step 5\n'), 'resume starts after the last checkpoint (step 4)');
    const ca = trainCurve(path.join(a.root, 'run')),
      cb = trainCurve(runB);
    assert.deepEqual(
      cb.map((r) => r.step),
      ca.map((r) => r.step),
      'each step appears once',
    );
    for (let i = 0; i < ca.length; i++) {
      for (const k of ['loss', 'sft', 'kl', 'infonce', 'triplet'] as const) {
        assert.ok(
          Math.abs(ca[i][k]! - cb[i][k]!) <= 1e-6 * Math.max(1, Math.abs(ca[i][k]!)),
          `step ${ca[i].step} ${k}: ${cb[i][k]} vs ${ca[i][k]}`,
        );
      }
    }
    assert.ok(ca[ca.length - 1].kl! > 0, 'LoRA moved the model away from its adapters-off reference');
    const wa = await loadSafetensors(path.join(a.root, 'run/final/adapter_model.safetensors'));
    const wb = await loadSafetensors(path.join(runB, 'final/adapter_model.safetensors'));
    for (const [name, t] of wa) assert.deepEqual(Array.from(wb.get(name)!.data), Array.from(t.data), name);
    assert.ok(readFileSync(path.join(runB, 'report.html'), 'utf8').includes('<svg'), 'the report has its charts');
  },
);

test('a NaN loss stops training, names the step and batch, and keeps the last good checkpoint', async () => {
  // full fine-tuning at an absurd learning rate: step 1 is finite, its update sends the weights to ±1e30
  const r = await toyRun('nan', {
    lora: null,
    steps: 6,
    checkpoint: { every: 1, keep: 3 },
    optimizer: { lr: 1e30, warmupSteps: 0, maxGradNorm: 0 },
  });
  const cfg = loadSftConfig(r.cfgFile);
  await assert.rejects(trainSft(cfg, { progress: false }), (e: unknown) => {
    assert.ok(e instanceof TrainingDiverged, String(e));
    assert.match(e.message, /step 2, epoch 0 batch 1 \(first query "what is/);
    assert.match(e.message, /last checkpoint with finite weights is .*step-00000001/);
    return true;
  });
  const cks = listCheckpoints(path.join(cfg.output, 'checkpoints'));
  assert.deepEqual(
    cks.map((c) => c.step),
    [1],
  );
  const w = await loadSafetensors(path.join(cks[0].dir, 'trainable.safetensors'));
  for (const [name, t] of w) assert.ok(t.data.every(Number.isFinite), `${name} is finite in the kept checkpoint`);
});

test('an optimizer moment that overflows is never checkpointed: the checkpoint named resumes', async () => {
  // lr 1000 unclipped: the losses and gradients stay finite while AdamW's second moment overflows to Inf
  const r = await toyRun('moment-inf', { lora: null, optimizer: { lr: 1000, warmupSteps: 0, maxGradNorm: 0 } });
  const cfg = loadSftConfig(r.cfgFile);
  let named = '';
  await assert.rejects(trainSft(cfg, { progress: false }), (e: unknown) => {
    assert.ok(e instanceof TrainingDiverged, String(e));
    assert.match(e.message, /^training stopped at step \d+: after its update the optimizer's state "buffer1\.\d+" /);
    assert.match(e.message, /optimizer\.maxGradNorm is 0: nothing was clipped\), so its checkpoint was not written/);
    named = /the last checkpoint with finite weights is (\S+) \(resume from it/.exec(e.message)![1]!;
    return true;
  });
  const newest = listCheckpoints(path.join(cfg.output, 'checkpoints')).at(-1)!;
  assert.equal(named, newest.dir, 'the checkpoint named is the newest on disk');
  for (const file of ['trainable.safetensors', 'optimizer.safetensors'])
    for (const [name, t] of await loadSafetensors(path.join(named, file)))
      assert.ok(t.data.every(Number.isFinite), `${file} "${name}" is finite in the checkpoint named`);
  // as the message says: a lower learning rate, then --resume, from that checkpoint
  const lower = { ...cfg, optimizer: { ...cfg.optimizer, lr: 1e-3 } };
  const resumed = await trainSft(lower, { progress: false, resume: true });
  assert.equal(resumed.startStep, newest.step);
  assert.equal(resumed.steps, 10);
});

test('a model that never emitted <|embed_token|> (not even in its vocabulary) learns to emit it', async () => {
  const root = tempDir('emit');
  await tinyModelFolder(path.join(root, 'model'), 4, false);
  const before = await loadModelFolder(path.join(root, 'model'));
  assert.equal(before.tokenizer.tokenToId(EMBED_TOKEN), undefined);
  writeJsonl(path.join(root, 'train.jsonl'), toyExamples(16, 0));
  const cfg = loadSftConfig(
    writeConfig(path.join(root, 'cfg.json'), {
      model: 'model',
      output: 'run',
      data: [{ type: 'jsonl', path: 'train.jsonl' }],
      maxLength: 128,
      steps: 80,
      batch: { queries: 4, hardNegatives: 0 },
      loss: { sft: 1, kl: 0, infonce: 0, triplet: 0 },
      optimizer: { lr: 2e-2, warmupSteps: 4 },
      checkpoint: { every: 80 },
    }),
  );
  await trainSft(cfg, { progress: false });
  const after = await loadModelFolder(path.join(root, 'run/final'));
  const emb = new Embedder(after.model, after.tokenizer);
  // reasoning mode: the model writes its own answer from the generation prompt, on queries it never saw
  const results = emb.embedQueries(['what is omega 99?', 'is kappa a letter?', 'theta'], {
    reasoning: 'on',
    maxReasoningTokens: 24,
  });
  for (const r of results)
    assert.equal(
      r.forced,
      false,
      `the model emitted the token itself (generated: ${JSON.stringify(after.tokenizer.decode(r.tokens))})`,
    );
  const sft = trainCurve(path.join(root, 'run')).map((x) => x.sft!);
  assert.ok(sft[sft.length - 1] < sft[0] / 5, `SFT loss fell from ${sft[0]} to ${sft[sft.length - 1]}`);
});

test(
  'bad input: queries without positives, empty texts and ' + 'over-long texts are counted, not trained on silently',
  async () => {
    const root = tempDir('badinput');
    await tinyModelFolder(path.join(root, 'model'));
    const ex = toyExamples(8);
    const long = 'word '.repeat(400);
    writeFileSync(
      path.join(root, 'train.jsonl'),
      [
        ...ex.map((e) => JSON.stringify({ query: e.query, pos: e.positives, neg: e.negatives })),
        JSON.stringify({ query: 'no positive here', pos: [], neg: ['x'] }),
        JSON.stringify({ query: 'only empty positives', pos: ['', '  '] }),
        JSON.stringify({ query: '', pos: ['orphan'] }),
        JSON.stringify({ query: 'a long one', pos: [long] }),
      ].join('\n') + '\n',
    );
    const cfg = loadSftConfig(
      writeConfig(path.join(root, 'cfg.json'), {
        model: 'model',
        output: 'run',
        data: [{ type: 'jsonl', path: 'train.jsonl' }],
        maxLength: 96,
        epochs: 1,
        batch: { queries: 3, hardNegatives: 1 },
        checkpoint: { every: 100 },
      }),
    );
    const r = await trainSft(cfg, { progress: false });
    assert.equal(r.data.examples, 9);
    assert.equal(r.data.withoutPositive, 2);
    assert.equal(r.data.emptyTexts, 3, 'two empty positives and one empty query');
    assert.ok(r.truncatedTexts >= 1, 'the long positive was cut to maxLength and counted');
    assert.equal(r.steps, 3, 'one epoch of 9 examples in batches of 3');
    const data = metrics(path.join(root, 'run')).find((x) => x.type === 'data') as unknown as Record<string, number>;
    assert.equal(data.withoutPositive, 2);
  },
);

test('gradient accumulation adds whole contrastive batches: the negatives per query do not shrink', async () => {
  const root = tempDir('accum');
  await tinyModelFolder(path.join(root, 'model'));
  writeJsonl(path.join(root, 'train.jsonl'), toyExamples(8, 1));
  const base = {
    model: 'model',
    data: [{ type: 'jsonl', path: 'train.jsonl' }],
    maxLength: 128,
    epochs: 1,
    checkpoint: { every: 100 },
  };
  const batch = { queries: 4, hardNegatives: 1 };
  const one = loadSftConfig(
    writeConfig(path.join(root, 'a.json'), {
      ...base,
      output: 'a',
      batch: { ...batch, accumulation: 1 },
    }),
  );
  const two = loadSftConfig(
    writeConfig(path.join(root, 'b.json'), {
      ...base,
      output: 'b',
      batch: { ...batch, accumulation: 2, subBatch: 3 },
    }),
  );
  await trainSft(one, { progress: false });
  await trainSft(two, { progress: false });
  const a = trainCurve(one.output) as unknown as { tokens: number; infonce: number }[];
  const b = trainCurve(two.output) as unknown as { tokens: number; infonce: number }[];
  assert.equal(a.length, 2);
  assert.equal(b.length, 1, 'two batches per optimiser step');
  assert.equal(b[0].tokens, a[0].tokens + a[1].tokens, 'the step saw both 4-query batches whole');
});

test('a dev set that does not load (no qrels for eval.split) is refused with the disk as it was', async () => {
  const root = tempDir('bad-dev');
  const cfgFile = await toySftRun(root, { eval: { beir: toyBeir(path.join(root, 'dev')), split: 'dev', every: 1 } });
  // the toy folder judges its train split only: there is no qrels/dev.tsv
  await assert.rejects(trainSft(loadSftConfig(cfgFile), { progress: false }), /qrels[/\\]dev\.tsv/);
  assert.equal(existsSync(path.join(root, 'run')), false, 'the refused start leaves no run folder');
  // nor does it stand in the way of the corrected config
  const fixed = await toySftRun(root, { steps: 1, eval: { beir: 'dev', split: 'train', every: 1 } });
  assert.equal((await trainSft(loadSftConfig(fixed), { progress: false })).steps, 1);
});

test('every source and the dev split are checked before the model loads and before a source is read', async () => {
  const root = tempDir('inputs-first');
  await toySftRun(root);
  toyBeir(path.join(root, 'dev'));
  writeFileSync(path.join(root, 'damaged.jsonl'), 'not json\n');
  // the model folder does not load, and data[0] does not read: the input named is found before either
  const config = (over: Record<string, unknown>): string =>
    writeConfig(path.join(root, 'bad.json'), {
      model: 'no-model',
      output: 'run',
      data: [{ type: 'jsonl', path: 'damaged.jsonl' }],
      ...over,
    });
  const refused = (over: Record<string, unknown>): Promise<void> =>
    trainSft(loadSftConfig(config(over)), { progress: false }).then(() => assert.fail('trained'));
  await assert.rejects(refused({ eval: { beir: 'dev', split: 'dev' } }), /no qrels for split 'dev'/);
  const later = { type: 'beir', path: 'dev', split: 'dev' };
  await assert.rejects(refused({ data: [{ type: 'jsonl', path: 'damaged.jsonl' }, later] }), /split 'dev'/);
  const missing = { type: 'pairs', path: 'none.tsv' };
  await assert.rejects(refused({ data: [{ type: 'jsonl', path: 'damaged.jsonl' }, missing] }), /none\.tsv: not found/);
  assert.equal(existsSync(path.join(root, 'run')), false);
  // mine reads the same config: with --retriever model, its model loads first
  const mine = runCli(['mine', '--config', path.join(root, 'bad.json'), '--out', path.join(root, 'mined.jsonl')]);
  assert.equal(mine.status, 2, mine.stderr);
  assert.match(mine.stderr, /^search-r3: \S+none\.tsv: not found \(data source of type pairs\)\n$/);
  const byModel = ['--retriever', 'model', '--device', 'cpu'];
  const mineModel = runCli([
    'mine',
    '--config',
    path.join(root, 'bad.json'),
    '--out',
    path.join(root, 'm.jsonl'),
    ...byModel,
  ]);
  assert.equal(mineModel.status, 2, mineModel.stderr);
  assert.match(mineModel.stderr, /none\.tsv: not found/);
});

test('"batch.queries" above the training examples is refused at start, naming what to set', async () => {
  const root = tempDir('few-examples');
  // 12 toy examples: every batch would hold 12 queries where the config says 13
  const cfg = loadSftConfig(await toySftRun(root, { batch: { queries: 13, hardNegatives: 1 } }));
  await assert.rejects(
    trainSft(cfg, { progress: false }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        '"batch.queries" is 13, but the data has only 12 training examples, so no batch could take 13: set ' +
          'batch.queries to 12 or fewer',
  );
  assert.equal(existsSync(cfg.output), false, 'refused before the run folder is made');
});
