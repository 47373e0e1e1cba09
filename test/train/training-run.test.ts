/**
 * The run folder and loop every trainer uses (train/training-run.ts), on a two-number "model": what the
 * loop logs, evaluates and checkpoints, and when; resume; and that a NaN or Inf loss or gradient stops the
 * run before the optimiser changes anything, in one sentence naming the step and the checkpoint kept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { tempPathFor } from '../../src/io/atomic-file.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import type { OptimizerSettings } from '../../src/train/config-merge.js';
import {
  RunFolder,
  TrainingDiverged,
  type RunPlan,
  type StepResult,
  type TrainingRun,
  epochOrder,
} from '../../src/train/training-run.js';
import { LockThread } from '../helpers/lock-thread.js';
import { tempDir, withoutTimes } from '../helpers/train-fixtures.js';

const settings: OptimizerSettings = {
  lr: 0.1,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  warmupSteps: 0,
  minLr: 0,
  maxGradNorm: 1,
};

/**
 * A run whose one tensor w is trained towards 0 on the loss Σ w², and its folder: close it when the run is done,
 * as a trainer does, before the folder is opened again.
 */
async function toyRun(
  output: string,
  resume = false,
  totalSteps = 5,
  warn: (line: string) => void = () => {},
): Promise<{ run: TrainingRun; w: T.Tensor; folder: RunFolder }> {
  const w = new T.Tensor(new Float32Array([1, -2]), [2], true, 'w');
  const plan: RunPlan = {
    params: [w],
    optimizer: new T.AdamW([w], { weightDecay: 0 }),
    settings,
    totalSteps,
    seed: 1,
    checkpoint: { every: 2, keep: 5 },
  };
  const folder = await RunFolder.open(output, { resume, progress: false, warn });
  return { run: await folder.begin(plan), w, folder };
}

function squareStep(run: TrainingRun, w: T.Tensor, loss = (): T.Tensor => T.sum(T.mul(w, w))): StepResult {
  const l = loss();
  const value = run.checkLoss(l.item());
  l.backward();
  const { gradNorm, lr } = run.update();
  return { record: { loss: value, lr, gradNorm }, progress: { loss: value, lr, tokensPerSec: 0 } };
}

interface Logged {
  type: string;
  step: number;
  loss?: number;
}

/** metrics.jsonl without its wall times. */
const records = (dir: string): Logged[] =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => withoutTimes(l) as Logged);

test(
  'the loop logs every step, evaluates before the first step, every n steps and after the last, and ' +
    'checkpoints every n steps and where it stops; a resumed run continues the same losses',
  async () => {
    const dir = tempDir('loop');
    const straight = path.join(dir, 'straight'),
      stopped = path.join(dir, 'stopped');
    const evaluated: number[] = [];
    const a = await toyRun(straight);
    await a.run.loop({
      step: () => squareStep(a.run, a.w),
      evaluate: {
        every: 2,
        run: () => {
          evaluated.push(a.run.state.step);
        },
      },
    });
    assert.deepEqual(evaluated, [0, 2, 4, 5]);
    assert.deepEqual(
      listCheckpoints(path.join(straight, 'checkpoints')).map((c) => c.step),
      [2, 4, 5],
    );
    const logged = records(straight);
    assert.deepEqual(
      logged.map((r) => `${r.type} ${r.step}`),
      [1, 2, 3, 4, 5].map((s) => `train ${s}`),
    );
    assert.ok(
      logged.every((r, i) => i === 0 || r.loss! < logged[i - 1]!.loss!),
      'the loss falls',
    );

    const b = await toyRun(stopped);
    await b.run.loop({ step: () => squareStep(b.run, b.w), stopAt: 3 });
    b.folder.close();
    assert.deepEqual(
      listCheckpoints(path.join(stopped, 'checkpoints')).map((c) => c.step),
      [2, 3],
    );
    await assert.rejects(toyRun(stopped), /already has checkpoints \(newest step 3\); pass --resume/);
    const c = await toyRun(stopped, true);
    assert.equal(c.run.startStep, 3);
    assert.deepEqual(Array.from(c.w.data), Array.from(b.w.data), 'the weights of step 3');
    await c.run.loop({ step: () => squareStep(c.run, c.w) });
    assert.deepEqual(records(stopped), logged, 'the resumed run logs what the straight one did, to the bit');
  },
);

test('files a checkpoint manifest does not list (.DS_Store, Thumbs.db, a check log) leave it resumable', async () => {
  const dir = tempDir('extra-files');
  const a = await toyRun(dir);
  await a.run.loop({ step: () => squareStep(a.run, a.w), stopAt: 3 });
  a.folder.close();
  const checkpoints = listCheckpoints(path.join(dir, 'checkpoints'));
  for (const c of checkpoints)
    for (const name of ['.DS_Store', 'Thumbs.db', 'log']) writeFileSync(path.join(c.dir, name), 'not training');
  const warnings: string[] = [];
  const b = await toyRun(dir, true, 5, (line) => warnings.push(line));
  assert.equal(b.run.startStep, 3, 'the newest checkpoint resumes');
  assert.deepEqual(Array.from(b.w.data), Array.from(a.w.data));
  assert.deepEqual(warnings, [], 'no checkpoint was taken for damaged');
});

test("a NaN loss, a NaN gradient or an op's NaN stops the run before any update, naming the step", async () => {
  const dir = tempDir('diverge');
  const { run, w } = await toyRun(dir);
  await run.loop({ step: () => squareStep(run, w), stopAt: 2 });
  const logged = JSON.stringify(run.records);
  const weights = Array.from(w.data);
  // finite is not sane: what to do when the checkpoint's weights have grown too large already is said too
  const kept = new RegExp(
    'the last checkpoint with finite weights is \\S+step-00000002 \\(resume from it with a lower learning rate: ' +
      'edit optimizer\\.lr, then --resume; if it stops again at its first step, its weights had grown too large ' +
      'already: start afresh, with a new output folder and a lower optimizer\\.lr\\)$',
  );
  const refused = (e: unknown, re: RegExp): boolean => {
    assert.ok(e instanceof TrainingDiverged, String(e));
    assert.match(e.message, re);
    assert.match(e.message, kept);
    return true;
  };
  const nanLoss = /^training stopped at step 3, batch 7: the loss is NaN, /;
  assert.throws(
    () => run.checkLoss(NaN, 'batch 7'),
    (e) => refused(e, nanLoss),
  );
  // a gradient that is NaN (the loss was finite): the optimiser is never called
  w.grad = new Float32Array([NaN, 1]);
  const nanGradient = /^training stopped at step 3: .*gradient norm is NaN, so its update/;
  assert.throws(
    () => run.update(),
    (e) => refused(e, nanGradient),
  );
  assert.deepEqual(Array.from(w.data), weights, 'the weights are untouched');
  w.grad = null;
  // an op that produces Inf inside a step (the tensor layer refuses it) ends the loop the same way
  const overflow = (): T.Tensor => T.sum(T.mul(T.scale(w, 1e30), T.scale(w, 1e30)));
  const blown = run.loop({ step: () => squareStep(run, w, overflow) });
  await assert.rejects(blown, (e) => refused(e, /^training stopped at step 3: .*NaN or Inf/));
  assert.deepEqual(Array.from(w.data), weights);
  assert.equal(JSON.stringify(run.records), logged, 'nothing logged for the step that diverged');
  assert.deepEqual(
    listCheckpoints(path.join(dir, 'checkpoints')).map((c) => c.step),
    [2],
  );
  // with the tensor layer's own checks off, the loss check still stops a NaN before the optimiser
  T.setFiniteCheck(false);
  try {
    const nan = (): T.Tensor => T.sum(T.mul(w, new T.Tensor(new Float32Array([NaN, 0]), [2])));
    const unchecked = run.loop({ step: () => squareStep(run, w, nan) });
    await assert.rejects(unchecked, (e) => refused(e, /step 3: the loss is NaN/));
  } finally {
    T.setFiniteCheck(true);
  }
  assert.deepEqual(Array.from(w.data), weights);
});

test(
  'a run with no checkpoint yet says so when it diverges; a run begins by clearing half-written checkpoint ' +
    'folders of either naming',
  async () => {
    const dir = tempDir('fresh');
    const { run, folder } = await toyRun(dir);
    const fresh = /training stopped at step 1: the loss is Infinity, .*; no checkpoint had been written yet/;
    assert.throws(
      () => run.checkLoss(Infinity),
      (e) => e instanceof TrainingDiverged && fresh.test(e.message),
    );
    const root = path.join(dir, 'checkpoints');
    const stale = [tempPathFor(path.join(root, 'step-00000004')), path.join(root, '.step-00000006.tmp-1-x')];
    for (const s of stale) mkdirSync(s, { recursive: true });
    folder.close();
    await toyRun(dir);
    for (const s of stale) assert.ok(!existsSync(s), `${path.basename(s)} is removed`);
  },
);

test('a run folder open in this process, in any thread, is refused to another trainer, until closed', async () => {
  const dir = tempDir('twice');
  const { folder } = await toyRun(dir);
  await assert.rejects(toyRun(dir), {
    name: 'RunFolderError',
    message:
      `${dir} is in use by another trainer in this process; two trainers in one run folder would overwrite each ` +
      `other's checkpoints and log: let that one finish (or close its run folder) first`,
  });
  folder.close();
  (await toyRun(dir)).folder.close();
  assert.ok(!existsSync(path.join(dir, 'train.lock')));

  // a trainer in a worker thread holds the folder: refused the same; once that thread is gone, free
  const worker = await LockThread.start();
  try {
    assert.deepEqual(await worker.ask({ acquire: path.join(dir, 'train.lock') }), { won: true });
    await assert.rejects(toyRun(dir), {
      name: 'RunFolderError',
      message:
        `${dir} is in use by another trainer in another thread of this process; two trainers in one run folder ` +
        `would overwrite each other's checkpoints and log: let that one finish (or close its run folder) first`,
    });
  } finally {
    await worker.terminate();
  }
  (await toyRun(dir)).folder.close();
  assert.ok(!existsSync(path.join(dir, 'train.lock')));
});

test("an existing output folder holding others' files and none of a run's is refused, left as it was", async () => {
  const dir = tempDir('foreign');
  // a BEIR folder named as the output: the run's report.html or metrics.jsonl would have replaced one of the same name
  const files: Record<string, string> = {
    'corpus.jsonl': '{"_id":"d1","text":"a"}\n',
    'queries.jsonl': '{"_id":"q1","text":"b"}\n',
    'report.txt': 'mine',
    'notes.md': 'mine too',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  await assert.rejects(toyRun(dir), {
    name: 'RunFolderError',
    message:
      `the output ${dir} already holds files that are not a training run's (corpus.jsonl, notes.md, queries.jsonl ` +
      "and 1 more); the run's would be written among them and over any of the same name: give the run a folder of " +
      'its own, new or empty',
  });
  assert.deepEqual(readdirSync(dir).sort(), Object.keys(files).sort(), 'no lock, record or log left');
  // hidden entries are no one's work; a folder a run wrote takes the user's files beside it (a resume)
  const hidden = tempDir('hidden');
  writeFileSync(path.join(hidden, '.gitkeep'), '');
  const { run, w, folder } = await toyRun(hidden, false, 2);
  await run.loop({ step: () => squareStep(run, w) });
  folder.close();
  writeFileSync(path.join(hidden, 'notes.md'), 'the run went well');
  (await toyRun(hidden, true, 2)).folder.close();
});

test('epochOrder: a permutation fixed by its seed', () => {
  const o = epochOrder(50, 7);
  assert.deepEqual(
    [...o].sort((a, b) => a - b),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.deepEqual(o, epochOrder(50, 7));
  assert.notDeepEqual(o, epochOrder(50, 8));
});

test('a checkpoint a killed rewrite left aside as its only copy is renamed back on resume, not removed', async () => {
  const dir = tempDir('set-aside');
  const a = await toyRun(dir);
  await a.run.loop({ step: () => squareStep(a.run, a.w), stopAt: 3 });
  a.folder.close();
  const root = path.join(dir, 'checkpoints');
  const newest = listCheckpoints(root).at(-1)!;
  // the layout of a rewrite killed between its two renames, by a process that is gone
  const gone = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout);
  const name = path.basename(newest.dir);
  renameSync(newest.dir, path.join(root, `.${name}.${gone}.mqx6abc.tmp.old`));
  mkdirSync(path.join(root, `.${name}.${gone}.mqx6abc.tmp`));
  const b = await toyRun(dir, true);
  assert.equal(b.run.startStep, newest.step, 'the newest checkpoint is back and resumes');
  assert.deepEqual(Array.from(b.w.data), Array.from(a.w.data));
  assert.deepEqual(
    readdirSync(root).filter((n) => n.startsWith('.')),
    [],
    'no temporary left',
  );
  b.folder.close();
});
