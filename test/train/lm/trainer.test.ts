/**
 * Causal-LM pretraining on a tiny model: real SciFact text packed with the separator between
 * documents; loss falls; a run stopped and resumed gives exactly the losses of an uninterrupted one,
 * and those within float rounding when resumed with its step split into other forward passes; config
 * typos are errors naming the key.
 */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bpeTokenizerFiles, InputFileError, learnMerges, WordCounter } from '../../../src/model/bpe-trainer.js';
import { loadModelFolder } from '../../../src/model/model-folder.js';
import { Qwen2Model } from '../../../src/model/qwen2-model.js';
import { Tokenizer } from '../../../src/model/tokenizer.js';
import { ConfigError } from '../../../src/train/config-merge.js';
import { parseLmConfig, type LmConfig } from '../../../src/train/lm/config.js';
import { cachedTokenStream, PackedSequences, sequenceOrder } from '../../../src/train/lm/data.js';
import { tokenizeFiles } from '../../../src/train/lm/tokenize-files.js';
import { DecayGroupsAdamW, checkTrainingFits, lmModelConfig, trainLm } from '../../../src/train/lm/trainer.js';
import { listCheckpoints } from '../../../src/train/checkpoint.js';
import { TrainingDiverged } from '../../../src/train/training-run.js';
import { loadSafetensors } from '../../../src/model/safetensors.js';
import * as T from '../../../src/tensor/index.js';
import { runCli } from '../../helpers/cli.js';
import { until } from '../../helpers/until.js';
import { repoRoot, sharedData } from '../../helpers/repo.js';
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';

let dir = '';
let tokenizer: Tokenizer;
let docs: { title: string; text: string }[] = [];

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lm-train-'));
  const lines = readFileSync(path.join(sharedData, 'scifact/corpus.jsonl'), 'utf8')
    .split('\n', 260)
    .filter((l) => l.trim() !== '');
  docs = lines.map((l) => JSON.parse(l) as { title: string; text: string });
  const counter = new WordCounter();
  for (const d of docs) counter.add(`${d.title}\n${d.text}`);
  const files = bpeTokenizerFiles(learnMerges(counter.counts, { vocabSize: 768 }).merges);
  tokenizer = Tokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
  await tokenizer.save(path.join(dir, 'tok'));
  await fsp.writeFile(path.join(dir, 'train.jsonl'), lines.slice(0, 220).join('\n') + '\n');
  await fsp.writeFile(path.join(dir, 'valid.jsonl'), lines.slice(220).join('\n') + '\n');
});

after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function config(output: string, over: Record<string, unknown> = {}): LmConfig {
  return parseLmConfig(
    {
      tokenizer: 'tok',
      output,
      seed: 3,
      data: { train: ['train.jsonl'], valid: ['valid.jsonl'] },
      model: {
        hiddenSize: 32,
        intermediateSize: 64,
        numHiddenLayers: 2,
        numAttentionHeads: 4,
        numKeyValueHeads: 2,
        maxPositionEmbeddings: 64,
      },
      seqLength: 32,
      batchSize: 4,
      accumulation: 2,
      steps: 60,
      optimizer: { lr: 1e-2, warmupSteps: 4, minLr: 1e-3, weightDecay: 0.01 },
      eval: { every: 60, maxSequences: 16 },
      checkpoint: { every: 5, keep: 2 },
      ...over,
    },
    dir,
  );
}

test(
  'packing: the separator precedes every document, ' + 'sequences shift targets by one and stay within their split',
  async () => {
    const sep = tokenizer.tokenToId('<|endoftext|>')!;
    const stream = await tokenizeFiles([path.join(dir, 'valid.jsonl')], tokenizer, sep);
    assert.equal(stream.documents, docs.length - 220);
    // the stream is exactly: sep, doc, sep, doc, ..., sep
    const expected = [sep];
    for (const d of docs.slice(220)) expected.push(...tokenizer.encode(`${d.title}\n${d.text}`), sep);
    assert.deepEqual(Array.from(stream.tokens), expected);
    const seqs = new PackedSequences(stream.tokens, 32);
    assert.equal(seqs.count, Math.floor((stream.tokens.length - 1) / 32));
    const { ids, targets } = seqs.batch([0, seqs.count - 1]);
    assert.deepEqual(Array.from(ids.subarray(0, 32)), Array.from(stream.tokens.subarray(0, 32)));
    assert.deepEqual(Array.from(targets.subarray(0, 31)), Array.from(ids.subarray(1, 32)));
    assert.ok((seqs.count - 1) * 32 + 32 < stream.tokens.length, "the last sequence reads only this split's tokens");
    assert.throws(() => seqs.batch([seqs.count]), RangeError);
    // train and valid are separate streams: the valid stream holds only valid documents' tokens
    const train = await cachedTokenStream(
      'train',
      [path.join(dir, 'train.jsonl')],
      tokenizer,
      sep,
      path.join(dir, 'cache'),
    );
    assert.equal(train.documents, 220);
    assert.equal(tokenizer.decode(Array.from(train.tokens)).split('<|endoftext|>').length, 222);
    const again = await cachedTokenStream(
      'train',
      [path.join(dir, 'train.jsonl')],
      tokenizer,
      sep,
      path.join(dir, 'cache'),
    );
    assert.equal(again.cached, true);
    assert.deepEqual(again.tokens, train.tokens);
    // the order is a seeded permutation
    const o = sequenceOrder(100, 3, 1);
    assert.deepEqual(
      [...o].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.deepEqual(o, sequenceOrder(100, 3, 1));
    assert.notDeepEqual(o, sequenceOrder(100, 3, 2));
  },
);

test('tokenizing files on threads gives the one-thread stream; a bad line names its file and line', async () => {
  const sep = tokenizer.tokenToId('<|endoftext|>')!;
  // four files of different sizes, one plain-text file among them, so that threads finish out of order
  const lines = docs.map((d) => JSON.stringify(d));
  const files = [lines.slice(0, 120), lines.slice(120, 125), lines.slice(125, 200)].map((part, i) => {
    const f = path.join(dir, `threads-${i}.jsonl`);
    return { f, text: part.join('\n') + '\n' };
  });
  const plain = { f: path.join(dir, 'threads-plain.txt'), text: `${docs[3].title}\n${docs[3].text}` };
  for (const { f, text } of [...files, plain]) await fsp.writeFile(f, text);
  const names = [files[0].f, plain.f, files[1].f, files[2].f];
  const one = await tokenizeFiles(names, tokenizer, sep, 1);
  for (const threads of [2, 4]) {
    const many = await tokenizeFiles(names, tokenizer, sep, threads);
    assert.equal(many.documents, 201);
    assert.deepEqual(many.tokens, one.tokens, `${threads} threads`);
  }
  const bad = path.join(dir, 'threads-bad.jsonl');
  await fsp.writeFile(bad, `${lines[0]}\n{"title": \n`);
  await assert.rejects(
    tokenizeFiles([files[1].f, bad], tokenizer, sep, 2),
    (e: Error) => e instanceof InputFileError && e.message.startsWith(`${bad}:2: not a JSON object`),
  );
  // a file that is not UTF-8 text (here gzip's magic bytes) is refused, not tokenized as replacement characters
  for (const name of ['threads-gz.txt', 'threads-gz.jsonl']) {
    const gz = path.join(dir, name);
    await fsp.writeFile(gz, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x41, 0x0a]));
    await assert.rejects(tokenizeFiles([gz], tokenizer, sep, 1), /is not UTF-8 text \(invalid UTF-8 at byte offset 1/);
  }
  // a .jsonl file in another layout would give no document (a valid set of 0 documents, no validation loss)
  const body = path.join(dir, 'threads-body.jsonl');
  await fsp.writeFile(body, '\n{"body": "a document", "id": 1}\n{"body": "another"}\n');
  for (const threads of [1, 2])
    await assert.rejects(
      tokenizeFiles([files[1].f, body], tokenizer, sep, threads),
      (e: Error) =>
        e instanceof InputFileError &&
        e.message ===
          `${body}:2: no line has a non-empty string "title" or "text" (this one's keys: "body", "id"); ` +
            'each line of a .jsonl document file is {"title", "text"}',
    );
});

test(
  "with several faulty files on threads, the error is the first faulty file's, however late its thread answers",
  { skip: process.platform === 'win32' && 'needs a named pipe' },
  async () => {
    const sep = tokenizer.tokenToId('<|endoftext|>')!;
    // the first file is a pipe whose bad line comes only once the second file's thread has long failed
    const slow = path.join(dir, 'threads-slow.jsonl');
    execFileSync('mkfifo', [slow]);
    const fast = path.join(dir, 'threads-fast.jsonl');
    await fsp.writeFile(fast, '{"title": \n');
    const run = tokenizeFiles([slow, fast], tokenizer, sep, 2);
    let settled = false;
    const ended = run.then(
      () => (settled = true),
      () => (settled = true),
    );
    // time for the second file's thread to fail (all the time it needs where its failure ends the call)
    await Promise.race([ended, new Promise((r) => setTimeout(r, 1000))]);
    // the bad line goes in once the first file's thread has opened the pipe (its start can take seconds on a
    // busy machine), unless the call has ended without it; without blocking, which a pipe with no reader would
    let w = -1;
    const opened = (): boolean => {
      if (settled) return true;
      try {
        w = openSync(slow, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
        return false;
      }
    };
    await until(opened, 60_000, () => 'the first file was never opened', 20);
    if (w >= 0) {
      writeSync(w, `${JSON.stringify(docs[0])}\n[1]\n`);
      closeSync(w);
    }
    await assert.rejects(run, (e: Error) => e instanceof InputFileError && e.message.startsWith(`${slow}:2: `));
  },
);

test('training loss and validation loss fall on real text; final/ is a loadable model folder', async () => {
  const losses: number[] = [];
  const r = await trainLm(config('run-a'), { progress: false, onStep: (_, l) => losses.push(l) });
  assert.equal(r.steps, 60);
  const head = losses.slice(0, 3).reduce((a, b) => a + b) / 3,
    tail = losses.slice(-3).reduce((a, b) => a + b) / 3;
  assert.ok(tail < head - 0.8, `loss ${head.toFixed(3)} → ${tail.toFixed(3)}`);
  const metrics = readFileSync(path.join(dir, 'run-a/metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; step: number; loss: number });
  const valid = metrics.filter((m) => m.type === 'valid');
  assert.deepEqual(
    valid.map((v) => v.step),
    [0, 60],
  );
  assert.ok(valid[1]!.loss < valid[0]!.loss - 0.5, `valid ${valid[0]!.loss} → ${valid[1]!.loss}`);
  assert.equal(metrics.filter((m) => m.type === 'train').length, 60);
  const loaded = await loadModelFolder(path.join(dir, 'run-a/final'));
  assert.equal(loaded.model.config.vocabSize, 768);
  assert.equal(loaded.tokenizer.vocabSize, 768);
});

test('a run stopped at step 13 and resumed gives exactly the losses of an uninterrupted run', async () => {
  const full: number[] = [],
    resumed: number[] = [];
  const steps = { steps: 20 };
  await trainLm(config('run-full', steps), { progress: false, onStep: (_, l) => full.push(l) });
  await trainLm(config('run-stop', steps), { progress: false, stopAtStep: 13, onStep: (_, l) => resumed.push(l) });
  await assert.rejects(trainLm(config('run-stop', steps), { progress: false }), /--resume/);
  await trainLm(config('run-stop', steps), { progress: false, resume: true, onStep: (_, l) => resumed.push(l) });
  assert.equal(resumed.length, 20);
  assert.deepEqual(resumed, full);
  const a = readFileSync(path.join(dir, 'run-full/final/model.safetensors'));
  const b = readFileSync(path.join(dir, 'run-stop/final/model.safetensors'));
  assert.ok(a.equals(b), 'final weights are identical');
});

test(
  'resumed with batchSize 1 × accumulation 2 from a batchSize 2 checkpoint (and back), a run trains the ' +
    'same sequences in the same steps: losses within 1e-5, the same epoch ends',
  async () => {
    // one document: 27 sequences of 32 tokens, so a step of 2 leaves one out of each epoch and the 16 steps
    // cross an epoch's end at step 13, where a split step must end the epoch where the whole one does
    await fsp.writeFile(path.join(dir, 'one-doc.jsonl'), JSON.stringify(docs[0]) + '\n');
    const shape = (batchSize: number, accumulation: number): Record<string, unknown> => ({
      data: { train: ['one-doc.jsonl'], valid: ['valid.jsonl'] },
      steps: 16,
      eval: { every: 16, maxSequences: 8 },
      batchSize,
      accumulation,
    });
    type Run = { losses: number[]; valid: number | null; state: { epoch: number; batchIndex: number } };
    const train = async (output: string, sessions: [number, number, number | undefined][]): Promise<Run> => {
      const losses: number[] = [];
      let valid: number | null = null;
      for (const [i, [b, a, stopAtStep]] of sessions.entries()) {
        const r = await trainLm(config(output, shape(b, a)), {
          progress: false,
          resume: i > 0,
          stopAtStep,
          onStep: (_, l) => losses.push(l),
        });
        valid = r.validLoss;
      }
      const last = listCheckpoints(path.join(dir, output, 'checkpoints')).at(-1)!;
      const state = JSON.parse(readFileSync(path.join(last.dir, 'state.json'), 'utf8')) as Run['state'];
      return { losses, valid, state };
    };
    const full = await train('run-b2', [[2, 1, undefined]]);
    const data = readFileSync(path.join(dir, 'run-b2/metrics.jsonl'), 'utf8').split('\n')[0]!;
    assert.equal((JSON.parse(data) as { trainSequences: number }).trainSequences, 27);
    // 13 steps of epoch 0, then 3 of epoch 1
    assert.deepEqual([full.state.epoch, full.state.batchIndex], [1, 6]);
    const runs = {
      '2 → 1 × 2 at step 6': await train('run-b2-a2', [
        [2, 1, 6],
        [1, 2, undefined],
      ]),
      '1 × 2 → 2 at step 10': await train('run-a2-b2', [
        [1, 2, 10],
        [2, 1, undefined],
      ]),
    };
    for (const [how, r] of Object.entries(runs)) {
      assert.equal(r.losses.length, 16, how);
      r.losses.forEach((l, i) => {
        const want = full.losses[i]!;
        assert.ok(Math.abs(l - want) <= 1e-5 * Math.abs(want), `${how}: step ${i + 1} loss ${l} vs ${want}`);
      });
      assert.deepEqual([r.state.epoch, r.state.batchIndex], [1, 6], `${how}: the data position`);
      assert.ok(Math.abs(r.valid! - full.valid!) <= 1e-5 * full.valid!, `${how}: valid loss ${r.valid}`);
    }
    const resumes = (
      JSON.parse(readFileSync(path.join(dir, 'run-b2-a2/run-config.json'), 'utf8')) as {
        resumes: { step: number; changed: unknown }[];
      }
    ).resumes;
    assert.deepEqual(
      resumes.map((x) => [x.step, x.changed]),
      [[6, { batchSize: { from: 2, to: 1 }, accumulation: { from: 1, to: 2 } }]],
    );
  },
);

test('resumed with fewer steps than its checkpoint has done, a run writes final/ from that checkpoint', async () => {
  await trainLm(config('run-past', { steps: 20 }), { progress: false, stopAtStep: 10 });
  assert.equal(existsSync(path.join(dir, 'run-past/final')), false);
  const r = await trainLm(config('run-past', { steps: 8 }), { progress: false, resume: true });
  assert.equal(r.steps, 10);
  assert.ok(existsSync(path.join(dir, 'run-past/final/model.safetensors')), 'the model of step 10 is the final one');
  // its checkpoints deleted to save space, the finished run is still not trained over afresh
  rmSync(path.join(dir, 'run-past/checkpoints'), { recursive: true });
  const log = readFileSync(path.join(dir, 'run-past/metrics.jsonl'));
  await assert.rejects(
    trainLm(config('run-past', { steps: 8 }), { progress: false }),
    /run-past holds the models of an earlier run \(final\/\) and no checkpoint to resume from; choose another/,
  );
  assert.ok(readFileSync(path.join(dir, 'run-past/metrics.jsonl')).equals(log), 'its log is kept');
});

test('a session deadline: a step at least, a checkpoint, no final/; the CLI exits 75, --resume finishes', async () => {
  const full: number[] = [],
    sessions: number[] = [];
  const steps = { steps: 12, checkpoint: { every: 5, keep: 2 } };
  await trainLm(config('run-full-12', steps), { progress: false, onStep: (_, l) => full.push(l) });
  // a deadline already passed: the first step runs, then the session ends at a checkpoint of step 1
  const r = await trainLm(config('run-session', steps), {
    progress: false,
    deadline: Date.now(),
    onStep: (_, l) => sessions.push(l),
  });
  assert.equal(r.steps, 1);
  assert.deepEqual(
    listCheckpoints(path.join(dir, 'run-session/checkpoints')).map((c) => c.step),
    [1],
  );
  assert.ok(!existsSync(path.join(dir, 'run-session/final')), 'final/ waits for the last step');
  await trainLm(config('run-session', steps), { progress: false, resume: true, onStep: (_, l) => sessions.push(l) });
  assert.deepEqual(sessions, full, 'the sessions together train exactly as one run');

  const file = path.join(dir, 'session.json');
  await fsp.writeFile(file, JSON.stringify({ ...config('run-cli', steps), tokenizer: 'tok', output: 'run-cli' }));
  const cli = runCli(['train', 'lm', '--config', file, '--max-seconds', '0.001', '--quiet']);
  assert.equal(cli.status, 75, cli.stderr);
  assert.match(cli.stdout, /trained steps 0→1 of 12[\s\S]*session ended at --max-seconds 0\.001, before the last step/);
  const bad = runCli(['train', 'lm', '--config', file, '--max-seconds', 'soon']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--max-seconds must be a number of seconds > 0/);
  const rest = runCli(['train', 'lm', '--config', file, '--resume', '--quiet']);
  assert.equal(rest.status, 0, rest.stderr);
  assert.ok(existsSync(path.join(dir, 'run-cli/final/config.json')));
});

test('a model too large for this machine is one sentence before the run folder is made, not a crash', async () => {
  // the floor it checks: 16 bytes a parameter (weights, gradients, two moments) and the rotary tables
  const shape = lmModelConfig(config('run-fits'), tokenizer);
  const parameters = T.countParameters(Qwen2Model.random(shape, new T.Rng(1)).parameters());
  const floor = parameters * 16 + shape.maxPositionEmbeddings * shape.headDim * 4;
  checkTrainingFits(shape, floor);
  assert.throws(() => checkTrainingFits(shape, floor - 1), ConfigError);
  // a width mistyped by zeros (it was a RangeError's stack trace), a context of 10¹⁰ positions (it filled memory)
  for (const [model, said] of [
    [{ hiddenSize: 1_000_000 }, /^"model" has 6(,\d{3}){4} parameters \(vocabulary 768\): training it needs/],
    [{ maxPositionEmbeddings: 1e10 }, /\(vocabulary 768\), and 320\.00 GB of rotary tables for its positions: /],
  ] as const) {
    const cfg = config('run-too-large');
    await assert.rejects(trainLm({ ...cfg, model: { ...cfg.model, ...model } }, { progress: false }), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, said);
      assert.match(e.message, /more than the .* available on this machine; shrink model\.hiddenSize, /);
      return true;
    });
  }
  assert.equal(existsSync(path.join(dir, 'run-too-large')), false);
});

test('a validation file that is also a training file is refused before the run folder is made', async () => {
  // the folder holds valid.jsonl beside train.jsonl: listed whole, it would train on the validation text
  const cfg = config('run-overlap', { data: { train: ['.'], valid: ['valid.jsonl'] } });
  await assert.rejects(
    trainLm(cfg, { progress: false }),
    (e: unknown) =>
      e instanceof Error &&
      e.message ===
        `${path.join(dir, 'valid.jsonl')} is among the files of both data.train and data.valid, so the validation ` +
          'loss would be measured on text the model trains on; move it out of the training folder, or name the ' +
          'training files one by one.',
  );
  assert.equal(existsSync(path.join(dir, 'run-overlap')), false);
});

test('a run folder inside a text folder it reads is refused: the run would read its own files as text', async () => {
  mkdirSync(path.join(dir, 'texts'));
  writeFileSync(path.join(dir, 'texts', 'train.jsonl'), readFileSync(path.join(dir, 'train.jsonl')));
  const cfg = config('texts/run', { data: { train: ['train.jsonl'], valid: ['texts'] } });
  await assert.rejects(
    trainLm(cfg, { progress: false }),
    /^RunFolderError: the output \S+texts\/run lies in the data\.valid\[0\] folder \S+texts, so the run's files/,
  );
  assert.deepEqual(readdirSync(path.join(dir, 'texts')), ['train.jsonl']);
});

test('a data folder with no .jsonl or .txt file is refused naming its key, before the run folder is made', async () => {
  // Markdown files: a folder of them gave no document, and the run went on without any validation
  const notes = path.join(dir, 'notes-md');
  await fsp.mkdir(notes);
  writeFileSync(path.join(notes, 'a.md'), docs[0].text);
  const cfg = config('run-md', { data: { train: ['train.jsonl'], valid: ['valid.jsonl', 'notes-md'] } });
  await assert.rejects(
    trainLm(cfg, { progress: false }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message.startsWith(`"data.valid[1]" ${notes} holds no .jsonl or .txt file (of a folder, only those are read)`),
  );
  assert.equal(existsSync(path.join(dir, 'run-md')), false);
});

test("a BEIR folder's queries among the training text are refused: the test queries are never trained on", async () => {
  const beir = path.join(dir, 'beir-folder');
  await fsp.mkdir(path.join(beir, 'qrels'), { recursive: true });
  await fsp.copyFile(path.join(dir, 'train.jsonl'), path.join(beir, 'corpus.jsonl'));
  writeFileSync(path.join(beir, 'queries.jsonl'), JSON.stringify({ _id: 'q1', text: 'what lowers cholesterol?' }));
  writeFileSync(path.join(beir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\td1\t1\n');
  for (const train of [['beir-folder'], ['beir-folder/queries.jsonl']]) {
    const cfg = config('run-beir', { data: { train, valid: ['valid.jsonl'] } });
    await assert.rejects(
      trainLm(cfg, { progress: false }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith(
          `"data.train[0]" ${path.join(dir, train[0])} gives ${path.join(beir, 'queries.jsonl')}, `,
        ) &&
        e.message.includes("a BEIR folder's queries (its test queries among them)"),
      train[0],
    );
  }
  assert.equal(existsSync(path.join(dir, 'run-beir')), false);
  // its corpus is text to learn from
  const corpus = await trainLm(
    config('run-beir', { steps: 1, data: { train: ['beir-folder/corpus.jsonl'], valid: [] } }),
    {
      progress: false,
    },
  );
  assert.equal(corpus.steps, 1);
});

test('a file given twice in a split (named twice, or in a folder named too) is refused naming both keys', async () => {
  const folder = path.join(dir, 'dup-folder');
  await fsp.mkdir(folder);
  await fsp.copyFile(path.join(dir, 'train.jsonl'), path.join(folder, 'part.jsonl'));
  const train = path.join(dir, 'train.jsonl');
  const part = path.join(folder, 'part.jsonl');
  const cases: [Record<string, string[]>, string][] = [
    [
      { train: ['train.jsonl', 'train.jsonl'], valid: ['valid.jsonl'] },
      `"data.train[1]" ${train} gives ${train}, which "data.train[0]" gives too`,
    ],
    [
      { train: ['dup-folder', 'train.jsonl', 'dup-folder/part.jsonl'], valid: [] },
      `"data.train[2]" ${part} gives ${part}, which "data.train[0]" gives too`,
    ],
    [
      { train: ['train.jsonl'], valid: ['valid.jsonl', './valid.jsonl'] },
      `"data.valid[1]" ${path.join(dir, 'valid.jsonl')} gives ${path.join(dir, 'valid.jsonl')}, which ` +
        '"data.valid[0]" gives too',
    ],
  ];
  for (const [data, start] of cases) {
    await assert.rejects(
      trainLm(config('run-dup', { steps: 1, data }), { progress: false }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith(`${start}, so it would be read twice an epoch: give each file once`),
      start,
    );
    assert.equal(existsSync(path.join(dir, 'run-dup')), false, start);
  }
});

test("train lm says which files of a data folder it left out, in tokenizer train's words", async () => {
  const text = path.join(dir, 'text-skips');
  await fsp.mkdir(text);
  await fsp.copyFile(path.join(dir, 'train.jsonl'), path.join(text, 'train.jsonl'));
  // a name that is not UTF-8 (Latin-1 'café.txt') and a link out of the folder: neither is read
  writeFileSync(Buffer.concat([Buffer.from(path.join(text, 'caf')), Buffer.from([0xe9]), Buffer.from('.txt')]), 'x');
  symlinkSync(path.join(dir, 'valid.jsonl'), path.join(text, 'out.jsonl'));
  const file = path.join(dir, 'skips.json');
  const cfg = { ...config('run-skips', { steps: 1 }), tokenizer: 'tok', output: 'run-skips' };
  await fsp.writeFile(file, JSON.stringify({ ...cfg, data: { train: ['text-skips'], valid: [] } }));
  const cli = runCli(['train', 'lm', '--config', file]);
  assert.equal(cli.status, 0, cli.stderr);
  const lines = cli.stderr.split(/[\r\n]+/).filter((l) => l.includes('skipped'));
  assert.deepEqual(lines, [
    'train: skipped 1 file with a name not in UTF-8',
    'train: skipped 1 file outside the folder',
  ]);
});

test('config: unknown keys and bad values are errors naming the key; the CLI prints one line', async () => {
  assert.throws(
    () => config('x', { seqLen: 32 }),
    (e: Error) => e instanceof ConfigError && /"seqLen" is not a config key/.test(e.message),
  );
  assert.throws(() => config('x', { optimizer: { learningRate: 1 } }), /"optimizer.learningRate" is not a config key/);
  assert.throws(() => config('x', { seqLength: 128 }), /seqLength" 128 exceeds model.maxPositionEmbeddings 64/);
  assert.throws(() => config('x', { batchSize: '4' }), /"batchSize" must be a number/);
  assert.throws(() => config('x', { model: { ropeTheta: 0 } }), /"model\.ropeTheta" must be a positive number, got 0/);
  assert.throws(() => config('x', { optimizer: { beta2: 1 } }), /"optimizer\.beta2" must be in \[0, 1\)/);
  // resolved against the config's folder, "" would read every text file beside the config
  const empty = /"data\.valid\[1\]" is an empty path; name a text file or folder$/;
  assert.throws(() => config('x', { data: { train: ['train.jsonl'], valid: ['valid.jsonl', ''] } }), empty);
  const file = path.join(dir, 'bad.json');
  await fsp.writeFile(
    file,
    JSON.stringify({ tokenizer: 'tok', output: 'o', data: { train: ['train.jsonl'], shuffle: true } }),
  );
  const r = runCli(['train', 'lm', '--config', file]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /"data.shuffle" is not a config key/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

test(
  'train lm killed (SIGKILL) mid-run and resumed from the ' +
    "CLI: its metrics equal an uninterrupted run's, step for step",
  async () => {
    const over = {
      steps: 150,
      accumulation: 1,
      checkpoint: { every: 10, keep: 2 },
      eval: { every: 50, maxSequences: 8 },
    };
    const full: number[] = [];
    await trainLm(config('run-ref', over), { progress: false, onStep: (_, l) => full.push(l) });
    const cfgFile = path.join(dir, 'kill.json');
    await fsp.writeFile(
      cfgFile,
      JSON.stringify({
        tokenizer: 'tok',
        output: 'run-kill',
        seed: 3,
        data: { train: ['train.jsonl'], valid: ['valid.jsonl'] },
        model: {
          hiddenSize: 32,
          intermediateSize: 64,
          numHiddenLayers: 2,
          numAttentionHeads: 4,
          numKeyValueHeads: 2,
          maxPositionEmbeddings: 64,
        },
        seqLength: 32,
        batchSize: 4,
        optimizer: { lr: 1e-2, warmupSteps: 4, minLr: 1e-3, weightDecay: 0.01 },
        ...over,
      }),
    );
    const ckpts = path.join(dir, 'run-kill/checkpoints');
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'dist/src/cli/main.js'), 'train', 'lm', '--config', cfgFile, '--quiet'],
      { stdio: 'ignore' },
    );
    let done = false;
    const exited = new Promise<void>((resolve) =>
      child.on('exit', () => {
        done = true;
        resolve();
      }),
    );
    // kill as soon as the second checkpoint is in place, mid-way between checkpoints
    while (!done && !(existsSync(ckpts) && readdirSync(ckpts).some((n) => n === 'step-00000020')))
      await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await exited;
    assert.equal(existsSync(path.join(dir, 'run-kill/final')), false, 'the run was killed before it finished');
    const r = runCli(['train', 'lm', '--config', cfgFile, '--resume', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /trained steps (2\d|3\d|4\d)→150 of 150/);
    // resumed again, the finished run trains nothing and says so (no loss or speed of its own)
    const again = runCli(['train', 'lm', '--config', cfgFile, '--resume', '--quiet']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already trained to step 150 of 150/);
    assert.doesNotMatch(again.stdout, /NaN/);
    const train = readFileSync(path.join(dir, 'run-kill/metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; loss: number })
      .filter((m) => m.type === 'train');
    assert.deepEqual(
      train.map((m) => m.loss),
      full,
    );
  },
);

test('weight decay applies to matrices only; the grouped optimiser state round-trips as one AdamW state', () => {
  const make = (): T.Tensor[] => [
    T.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]),
    T.tensor(new Float32Array([1, 1]), [2]),
  ];
  const params = make();
  const opt = new DecayGroupsAdamW(params, { weightDecay: 0.5 });
  for (const p of params) p.grad = new Float32Array(p.size);
  opt.step(0.1);
  assert.deepEqual(
    Array.from(params[0]!.data),
    [1, 2, 3, 4].map((x) => Math.fround(x * (1 - 0.05))),
  );
  assert.deepEqual(Array.from(params[1]!.data), [1, 1]);
  const st = opt.state();
  assert.equal(st.buffers[0]!.length, 2);
  const other = new DecayGroupsAdamW(make(), { weightDecay: 0.5 });
  other.loadState(st);
  assert.deepEqual(other.state(), st);
  assert.throws(() => new DecayGroupsAdamW([params[1]!, params[0]!], {}), /matrices first/);
});

test(
  'a NaN or Inf stops pretraining before the optimiser ' + 'sees it, names the step, keeps the last checkpoint',
  async () => {
    // an absurd learning rate: step 1 is finite, its update sends the weights to ±1e30, step 2's forward overflows
    const optimizer = { lr: 1e30, warmupSteps: 0, maxGradNorm: 0 };
    const cfg = config('run-nan', { steps: 6, checkpoint: { every: 1, keep: 3 }, optimizer });
    await assert.rejects(trainLm(cfg, { progress: false }), (e: unknown) => {
      assert.ok(e instanceof TrainingDiverged, String(e));
      assert.match(e.message, /^training stopped at step 2: .*(NaN|Inf).*, so its update was not applied; /);
      assert.match(e.message, /the last checkpoint with finite weights is \S+step-00000001 /);
      return true;
    });
    const cks = listCheckpoints(path.join(cfg.output, 'checkpoints'));
    assert.deepEqual(
      cks.map((c) => c.step),
      [1],
    );
    const w = await loadSafetensors(path.join(cks[0]!.dir, 'trainable.safetensors'));
    for (const [name, t] of w) assert.ok(t.data.every(Number.isFinite), `${name} is finite in the kept checkpoint`);
    const logged = readFileSync(path.join(cfg.output, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step: number })
      .filter((r) => r.type === 'train');
    assert.deepEqual(
      logged.map((r) => r.step),
      [1],
      'the diverged step is not logged',
    );
    assert.ok(!existsSync(path.join(cfg.output, 'final')));
  },
);

test('"init": pretraining continues from the f16 folder an earlier run wrote; another shape is refused', async () => {
  const first = await trainLm(
    config('init-a', { steps: 20, saveDtype: 'F16', eval: { every: 20, maxSequences: 16 } }),
    {
      progress: false,
    },
  );
  const validLosses = (run: string): number[] =>
    readFileSync(path.join(dir, run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; loss: number })
      .filter((m) => m.type === 'valid')
      .map((m) => m.loss);
  const ended = validLosses('init-a').at(-1)!;
  await trainLm(config('init-b', { init: path.relative(dir, first.output + '/final'), steps: 4 }), { progress: false });
  // step 0 of the new run evaluates the weights it started from: the first run's, rounded to f16
  const started = validLosses('init-b')[0];
  assert.ok(Math.abs(started - ended) < 0.02 * ended, `continued from ${started}, the first run ended at ${ended}`);
  const fresh = validLosses('run-a')[0];
  assert.ok(started < fresh - 0.3, `a random start is at ${fresh}`);
  await assert.rejects(
    trainLm(
      config('init-c', {
        init: path.relative(dir, first.output + '/final'),
        model: {
          hiddenSize: 64,
          intermediateSize: 64,
          numHiddenLayers: 2,
          numAttentionHeads: 4,
          numKeyValueHeads: 2,
          maxPositionEmbeddings: 64,
        },
      }),
      { progress: false },
    ),
    /"init" .* is not the model this config trains: hiddenSize 32 \(config: 64\)/,
  );
  // refused before the text is tokenized, which leaves its cache in the run folder
  assert.equal(existsSync(path.join(dir, 'init-c')), false);
  await assert.rejects(
    trainLm(config('init-d', { init: 'no-model' }), { progress: false }),
    /no-model: no such folder/,
  );
  assert.equal(existsSync(path.join(dir, 'init-d')), false);
});
