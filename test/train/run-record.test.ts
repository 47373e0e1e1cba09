/**
 * A run folder records what defines its run (run-record.ts): --resume refuses another stage's folder and
 * settings that would make the remaining steps another run (model, data, seed, batch, environment), in
 * one sentence naming each field old → new, with nothing in the folder changed; the changes the docs
 * advise on a resume (learning rate, steps, a smaller GradCache chunk or train lm batch split into more
 * passes for less memory) go on and are kept in run-config.json, resume by resume; a
 * folder from before the record resumes, saying that it cannot be checked. Data files are compared by
 * content (data-stamps.ts): other bytes under the same path are refused, the same bytes touched or copied
 * resume.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { parseLmConfig } from '../../src/train/lm/config.js';
import { trainLm } from '../../src/train/lm/trainer.js';
import { parseRlConfig } from '../../src/train/rl/config.js';
import { trainRl } from '../../src/train/rl/trainer.js';
import { RunFolderError } from '../../src/train/run-folder-error.js';
import { loadSftConfig, type SftConfig } from '../../src/train/sft/config.js';
import { trainSft } from '../../src/train/sft/trainer.js';
import { runCli } from '../helpers/cli.js';
import { folderDigest } from '../helpers/damage.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import {
  rlFixture,
  tempDir,
  tinyModelFolder,
  toyBeir,
  toyExamples,
  toySftRun,
  writeConfig,
  writeJsonl,
} from '../helpers/train-fixtures.js';

interface Recorded {
  stage: string;
  config: { steps: number; optimizer: { lr: number } };
  fingerprints: Record<string, string | null>;
  data?: Record<
    string,
    { path: string; files: Array<{ name: string; bytes: number; mtimeMs: number; sha256: string }> }
  >;
  resumes: Array<{ step: number; changed: Record<string, { from: unknown; to: unknown }> | null }>;
}
const record = (run: string): Recorded =>
  JSON.parse(readFileSync(path.join(run, 'run-config.json'), 'utf8')) as Recorded;

/** A finished two-step LoRA stage-1 run in a new folder; its config file and parsed config. */
async function sftRun(prefix: string): Promise<{ root: string; file: string; cfg: SftConfig }> {
  const root = tempDir(prefix);
  const file = await toySftRun(root, { steps: 2, checkpoint: { every: 1, keep: 2 } });
  const cfg = loadSftConfig(file);
  await trainSft(cfg, { progress: false });
  return { root, file, cfg };
}

/** Asserts that resuming `cfg` is refused with a RunFolderError matching every one of `res`. */
async function refused(run: Promise<unknown>, res: RegExp[]): Promise<string> {
  let message = '';
  await assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof RunFolderError, String(e));
    message = e.message;
    return true;
  });
  for (const re of res) assert.match(message, re);
  return message;
}

test('train rl into a finished train sft run folder is refused by name, with or without --resume', async () => {
  const { root, cfg } = await sftRun('record-stage');
  toyBeir(path.join(root, 'beir'));
  const rl = writeConfig(path.join(root, 'rl.json'), {
    model: 'model',
    output: 'run',
    steps: 12,
    data: { beir: 'beir' },
    lora: { rank: 4, alpha: 8, dropout: 0.1 },
    rollout: { queries: 2, group: 2, maxReasoningTokens: 3 },
  });
  const before = folderDigest(cfg.output);
  for (const resume of [['--resume'], []]) {
    const r = runCli(['train', 'rl', '--config', rl, ...resume, '--quiet']);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      `search-r3: ${cfg.output} is the run folder of a train sft run (${cfg.output}/run-config.json says so), ` +
        'not of train rl; give train rl an "output" folder of its own\n',
    );
  }
  assert.deepEqual(folderDigest(cfg.output), before, "stage 1's final/, checkpoints and record are untouched");
});

test('--resume refuses another base model, seed, batch or data, naming each old → new; nothing changes', async () => {
  const { root, cfg } = await sftRun('record-refuse');
  await tinyModelFolder(path.join(root, 'model2'), 2);
  writeJsonl(path.join(root, 'other.jsonl'), toyExamples(12).reverse());
  const before = folderDigest(cfg.output);
  const resume = (c: SftConfig): Promise<unknown> => trainSft(c, { progress: false, resume: true });
  await refused(resume({ ...cfg, model: path.join(root, 'model2') }), [
    /^\S+run holds a train sft run started with other settings than this config's: model /,
    /model \S+\/model \(sha256:[0-9a-f]{32}\) → \S+\/model2 \(sha256:[0-9a-f]{32}\);/,
  ]);
  await refused(
    resume({
      ...cfg,
      seed: 4,
      batch: { ...cfg.batch, queries: 2 },
      data: [{ type: 'jsonl', path: path.join(root, 'other.jsonl') }],
    }),
    [
      /: seed 3 → 4; /,
      /; batch\.queries 4 → 2; /,
      /; data\[0\]\.path \S+\/train\.jsonl → \S+\/other\.jsonl; /,
      /--resume continues a run only with the settings it started with \(it may change steps, epochs, optimizer\.lr/,
      /resume with the earlier config \(recorded in \S+run-config\.json\), or give this config a new "output" folder$/,
    ],
  );
  assert.deepEqual(folderDigest(cfg.output), before, 'the run folder is as the finished run left it');
});

test('stage 2: another environment mode or group size is refused on --resume', async () => {
  const { dir, raw } = await rlFixture('record-rl');
  await trainRl(parseRlConfig({ ...raw, steps: 1 }, dir), { progress: false });
  const changed = {
    ...raw,
    environment: { ...(raw.environment as object), mode: 'exact' },
    rollout: { ...(raw.rollout as object), group: 2 },
  };
  await refused(trainRl(parseRlConfig(changed, dir), { progress: false, resume: true }), [
    /train rl run started with other settings than this config's: rollout\.group 3 → 2; environment\.mode /,
    /; environment\.mode local → exact; /,
  ]);
  assert.equal(record(path.join(dir, 'run')).resumes.length, 0);
});

test('a new lr, more steps or a moved model folder resume, each resume recorded with what it changed', async () => {
  const { root, cfg } = await sftRun('record-allowed');
  const s1 = await trainSft(
    { ...cfg, steps: 3, optimizer: { ...cfg.optimizer, lr: 1e-3 } },
    { progress: false, resume: true },
  );
  assert.deepEqual([s1.startStep, s1.steps], [2, 3]);
  const s2 = await trainSft(
    { ...cfg, steps: 4, optimizer: { ...cfg.optimizer, lr: 1e-3 } },
    { progress: false, resume: true },
  );
  assert.deepEqual([s2.startStep, s2.steps], [3, 4]);
  renameSync(path.join(root, 'model'), path.join(root, 'moved'));
  const moved = { ...cfg, model: path.join(root, 'moved'), steps: 4, optimizer: { ...cfg.optimizer, lr: 1e-3 } };
  await trainSft(moved, { progress: false, resume: true });
  const r = record(cfg.output);
  assert.equal(r.stage, 'sft');
  assert.equal(r.config.optimizer.lr, 1e-3, "the record's config is the latest session's");
  assert.match(r.fingerprints.model ?? '', /^sha256:/);
  assert.deepEqual(
    r.resumes.map((x) => [x.step, x.changed]),
    [
      [2, { steps: { from: 2, to: 3 }, 'optimizer.lr': { from: 3e-3, to: 1e-3 } }],
      [3, { steps: { from: 3, to: 4 } }],
      [4, { model: { from: path.join(root, 'model'), to: path.join(root, 'moved') } }],
    ],
  );
});

test('a run moved with its data (a work folder taken to another machine) resumes: its paths moved along', async () => {
  const { root, file } = await sftRun('record-tree');
  const moved = path.join(tempDir('record-moved'), 'run');
  // copied, as to another machine: every file gets a new mtime, so the data is hashed and found the same
  cpSync(root, moved, { recursive: true });
  rmSync(root, { recursive: true });
  // the same config file, read where it now is: its data, model and output paths all moved together
  writeConfig(path.join(moved, 'cfg.json'), {
    ...JSON.parse(readFileSync(path.join(moved, path.basename(file)), 'utf8')),
    steps: 3,
  });
  const cfg = loadSftConfig(path.join(moved, 'cfg.json'));
  const r = await trainSft(cfg, { progress: false, resume: true });
  assert.deepEqual([r.startStep, r.steps], [2, 3]);
  const changed = record(cfg.output).resumes[0]!.changed!;
  assert.deepEqual(changed['data[0].path'], {
    from: path.join(root, 'train.jsonl'),
    to: path.join(moved, 'train.jsonl'),
  });
  const stamped = record(cfg.output).data?.['data[0].path'];
  assert.equal(stamped?.path, path.join(moved, 'train.jsonl'));
  assert.deepEqual(
    stamped.files.map((f) => [f.name, f.mtimeMs]),
    [['train.jsonl', statSync(path.join(moved, 'train.jsonl')).mtimeMs]],
    "the copy's mtime is recorded, so the next resume trusts it unread",
  );
  // a data file of another folder is still another data file
  writeFileSync(path.join(moved, 'other.jsonl'), readFileSync(path.join(moved, 'train.jsonl')));
  await refused(
    trainSft(
      { ...cfg, steps: 4, data: [{ type: 'jsonl', path: path.join(moved, 'other.jsonl') }] },
      { progress: false, resume: true },
    ),
    [/data\[0\]\.path \S+train\.jsonl → \S+other\.jsonl/],
  );
});

test('other bytes under a data path are refused on --resume, by key and file; the same bytes resume', async () => {
  const { root, cfg } = await sftRun('record-data');
  const data = path.join(root, 'train.jsonl');
  const original = readFileSync(data);
  // the same lines in another order: the same size, another training set's batches
  writeJsonl(data, toyExamples(12).reverse());
  assert.equal(statSync(data).size, original.length);
  const before = folderDigest(cfg.output);
  const resume = (steps: number): Promise<unknown> => trainSft({ ...cfg, steps }, { progress: false, resume: true });
  await refused(resume(3), [
    /^\S+run holds a train sft run whose data is not what it trained on: data\[0\]\.path \S+\/train\.jsonl has other /,
    /has other content \(same size, \d+ bytes; SHA-256 [0-9a-f]{12}… → [0-9a-f]{12}…\); /,
    /put back the data as it was \(\S+run-config\.json records each file's size and SHA-256\), or give this config /,
  ]);
  assert.deepEqual(folderDigest(cfg.output), before, 'the run folder is as the finished run left it');

  // the same bytes again, with a new mtime (restored, touched): the same data
  writeFileSync(data, original);
  const later = new Date(Date.now() + 60_000);
  utimesSync(data, later, later);
  const r = (await resume(3)) as { startStep: number; steps: number };
  assert.deepEqual([r.startStep, r.steps], [2, 3]);
  const stamp = record(cfg.output).data?.['data[0].path']?.files[0];
  assert.equal(stamp?.mtimeMs, statSync(data).mtimeMs, "the record takes the file's new mtime");
  assert.equal(stamp.bytes, original.length);

  // a file whose size and mtime are as recorded is trusted unread (make's rule): only its mtime is looked at
  writeJsonl(data, toyExamples(12).reverse());
  utimesSync(data, later, later);
  const t = (await resume(4)) as { startStep: number };
  assert.equal(t.startStep, 3);
});

test('a BEIR folder given as data is checked file by file: an edited split or new test qrels are refused', async () => {
  const { dir, raw } = await rlFixture('record-beir');
  await trainRl(parseRlConfig({ ...raw, steps: 1 }, dir), { progress: false });
  const resume = (): Promise<unknown> => trainRl(parseRlConfig(raw, dir), { progress: false, resume: true });
  const qrels = path.join(dir, 'beir', 'qrels', 'train.tsv');
  const judged = readFileSync(qrels, 'utf8');
  writeFileSync(qrels, judged.replace('q0\td0\t1', 'q0\td0\t2'));
  await refused(resume(), [
    /whose data is not what it trained on: data\.beir \S+\/beir\/qrels\/train\.tsv has other content \(same size/,
  ]);
  writeFileSync(qrels, judged);
  // test qrels appearing keep their queries out of the training split (hold-out.ts): other training queries
  writeFileSync(path.join(dir, 'beir', 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\td5\t1\n');
  await refused(resume(), [/: data\.beir \S+\/beir\/qrels\/test\.tsv is new \(the run did not read it\); /]);
  assert.equal(record(path.join(dir, 'run')).resumes.length, 0);
});

test('a record without data stamps resumes, saying so; files a checkpoint manifest lacks are named', async () => {
  const { file, cfg } = await sftRun('record-unstamped');
  const rec = record(cfg.output);
  delete rec.data;
  writeFileSync(path.join(cfg.output, 'run-config.json'), JSON.stringify(rec, null, 2));
  // a file its manifest does not list (a file manager's) is named, not read
  writeFileSync(path.join(cfg.output, 'checkpoints', 'step-00000002', '.DS_Store'), 'finder');
  writeConfig(file, { ...JSON.parse(readFileSync(file, 'utf8')), steps: 3 });
  const r = runCli(['train', 'sft', '--config', file, '--resume']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /run-config\.json does not record its data files' content .* cannot check that they are /);
  assert.match(r.stderr, /step-00000002 also holds \.DS_Store, which its checksums\.sha256 does not list: not read/);
  assert.match(record(cfg.output).data?.['data[0].path']?.files[0]?.sha256 ?? '', /^[0-9a-f]{64}$/);
});

test('a run folder from before the record resumes, saying it cannot be checked; it is recorded from then', async () => {
  const { file, cfg } = await sftRun('record-old');
  // run-config.json as earlier versions wrote it: the stage and the latest session's config
  writeFileSync(path.join(cfg.output, 'run-config.json'), JSON.stringify({ stage: 'sft', config: cfg }, null, 2));
  writeConfig(file, { ...JSON.parse(readFileSync(file, 'utf8')), steps: 3 });
  const r = runCli(['train', 'sft', '--config', file, '--resume']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /run has no record of the settings its checkpoints were trained with .* cannot be checked/);
  assert.match(r.stdout, /trained steps 2→3/);
  const rec = record(cfg.output);
  assert.deepEqual(
    rec.resumes.map((x) => [x.step, x.changed]),
    [[2, null]],
  );
  assert.match(rec.fingerprints.model ?? '', /^sha256:/);
});

test('train lm: a changed seed or tokenizer is refused on --resume as in the other stages', async () => {
  const dir = tempDir('record-lm');
  for (const [name, vocabSize] of [
    ['tok', 300],
    ['tok2', 320],
  ] as const) {
    const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize });
    await Tokenizer.fromJSON(tokenizerJson, tokenizerConfig).save(path.join(dir, name));
  }
  const rng = new T.Rng(5);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'omega', 'sigma', 'kappa', 'theta'];
  const doc = (): string => JSON.stringify({ text: Array.from({ length: 30 }, () => words[rng.int(8)]).join(' ') });
  writeFileSync(path.join(dir, 'train.jsonl'), Array.from({ length: 20 }, doc).join('\n') + '\n');
  const raw = {
    tokenizer: 'tok',
    output: 'run',
    seed: 3,
    data: { train: ['train.jsonl'] },
    model: { hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1 },
    seqLength: 16,
    batchSize: 2,
    steps: 2,
    checkpoint: { every: 1, keep: 2 },
  };
  await trainLm(parseLmConfig(raw, dir), { progress: false });
  await refused(
    trainLm(parseLmConfig({ ...raw, seed: 4, tokenizer: 'tok2' }, dir), { progress: false, resume: true }),
    [
      /train lm run started with other settings than this config's: tokenizer \S+\/tok \(sha256:\w+\) → \S+\/tok2 /,
      /; seed 3 → 4; /,
    ],
  );
  const s = await trainLm(parseLmConfig({ ...raw, steps: 3 }, dir), { progress: false, resume: true });
  assert.deepEqual([s.startStep, s.steps], [2, 3]);
  // the sequences of a step are batchSize × accumulation: a resume may split them otherwise, not change them
  const before = folderDigest(path.join(dir, 'run'));
  for (const [batchSize, accumulation, was] of [
    [1, 1, 'batchSize 2 → 1'],
    [2, 2, 'accumulation 1 → 2'],
    [1, 4, 'batchSize 2 → 1; accumulation 1 → 4'],
  ] as const)
    await refused(
      trainLm(parseLmConfig({ ...raw, steps: 4, batchSize, accumulation }, dir), { progress: false, resume: true }),
      [
        new RegExp(`train lm run started with other settings than this config's: ${was}; --resume continues `),
        /\(it may change steps, optimizer\.lr, .*, batchSize and accumulation while batchSize × accumulation stays 2\)/,
      ],
    );
  assert.deepEqual(folderDigest(path.join(dir, 'run')), before, 'the run folder is as the last session left it');
  const split = await trainLm(parseLmConfig({ ...raw, steps: 4, batchSize: 1, accumulation: 2 }, dir), {
    progress: false,
    resume: true,
  });
  assert.deepEqual([split.startStep, split.steps], [3, 4]);
  assert.deepEqual(record(path.join(dir, 'run')).resumes.at(-1)?.changed, {
    steps: { from: 3, to: 4 },
    batchSize: { from: 2, to: 1 },
    accumulation: { from: 1, to: 2 },
  });
});

test('train sft: another batch.subBatch (GradCache) resumes to the losses of the run it continues (1e-5)', async () => {
  const losses = (run: string): number[] =>
    readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; loss: number })
      .filter((m) => m.type === 'train')
      .map((m) => m.loss);
  /** One session of `cfg` up to `stopAt` (its end when null), stopped there as a signal stops it. */
  const session = async (cfg: SftConfig, stopAt: number | null, resume: boolean): Promise<void> => {
    const stop = new AbortController();
    const onStep = (step: number): void => {
      if (step === stopAt) stop.abort();
    };
    const s = await trainSft(cfg, { progress: false, resume, stop: stop.signal, onStep });
    assert.equal(s.steps, stopAt ?? cfg.steps);
  };
  // no LoRA dropout: plain backprop and GradCache draw their masks differently (docs/stage1.md)
  const over = { steps: 5, batch: { queries: 4, hardNegatives: 1, subBatch: 0 }, lora: { rank: 4, alpha: 8 } };
  const full = loadSftConfig(await toySftRun(tempDir('record-subbatch-full'), over));
  await session(full, null, false);
  const cfg = loadSftConfig(await toySftRun(tempDir('record-subbatch'), over));
  await session(cfg, 2, false);
  await session({ ...cfg, batch: { ...cfg.batch, subBatch: 3 } }, 3, true);
  await session({ ...cfg, batch: { ...cfg.batch, subBatch: 1 } }, null, true);
  const want = losses(full.output),
    got = losses(cfg.output);
  assert.equal(got.length, 5);
  got.forEach((l, i) => assert.ok(Math.abs(l - want[i]!) <= 1e-5 * want[i]!, `step ${i + 1}: ${l} vs ${want[i]}`));
  assert.deepEqual(
    record(cfg.output).resumes.map((x) => [x.step, x.changed]),
    [
      [2, { 'batch.subBatch': { from: 0, to: 3 } }],
      [3, { 'batch.subBatch': { from: 3, to: 1 } }],
    ],
  );
});
