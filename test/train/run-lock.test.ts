/**
 * One trainer per run folder (train.lock, training-run.ts): a second trainer started on a folder in use is
 * refused in one sentence naming the folder and the pid, and the first finishes as if alone; a lock left
 * by a process that is gone is taken over; a run frees its folder however it ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadSftConfig } from '../../src/train/sft/config.js';
import { trainSft } from '../../src/train/sft/trainer.js';
import { RunFolderError } from '../../src/train/run-folder-error.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { folderDigest } from '../helpers/damage.js';
import { tempDir, toySftRun } from '../helpers/train-fixtures.js';

const trainSteps = (run: string): number[] =>
  readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; step: number })
    .filter((r) => r.type === 'train')
    .map((r) => r.step);

test('a second train sft on a run folder in use is refused naming the pid; the first ends as if alone', async () => {
  const root = tempDir('lock-two');
  const file = await toySftRun(root, { steps: 20, checkpoint: { every: 1, keep: 2 } });
  const run = path.join(root, 'run');
  // the first trainer sleeps 150 ms after each step, so that it is still training when the second starts
  const first = spawn(process.execPath, [path.join(repoRoot, 'dist/test/helpers/train-child.js'), file, 'fresh'], {
    env: { ...process.env, SLEEP_MS: '150', SEARCH_R3_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => first.on('exit', (code) => resolve(code)));
  let out = '';
  await new Promise<void>((resolve) =>
    first.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('step 1\n')) resolve();
    }),
  );
  const second = runCli(['train', 'sft', '--config', file, '--resume', '--quiet']);
  assert.equal(second.status, 2, second.stderr);
  assert.equal(
    second.stderr,
    `search-r3: ${run} is in use by another trainer (pid ${first.pid}, in ${run}/train.lock); two trainers in one ` +
      "run folder would overwrite each other's checkpoints and log: wait for it to finish or stop it (kill -TERM " +
      `${first.pid}), then run this again (delete ${run}/train.lock only if pid ${first.pid} is not a search-r3 ` +
      'trainer)\n',
  );
  assert.equal(await exited, 0);
  assert.match(out, /step 20\ndone\n$/);
  assert.deepEqual(
    trainSteps(run),
    Array.from({ length: 20 }, (_, i) => i + 1),
    'every step logged once, in order',
  );
  assert.ok(!existsSync(path.join(run, 'train.lock')), 'the lock goes with the run');
});

test("a live process's lock refuses the run with nothing changed; a dead process's lock is taken over", async () => {
  const root = tempDir('lock-stale');
  const cfg = loadSftConfig(await toySftRun(root, { steps: 2 }));
  await trainSft(cfg, { progress: false });
  const lock = path.join(cfg.output, 'train.lock');
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    writeFileSync(lock, `${holder.pid}\n`);
    const before = folderDigest(cfg.output);
    await assert.rejects(trainSft({ ...cfg, steps: 3 }, { progress: false, resume: true }), (e: unknown) => {
      assert.ok(e instanceof RunFolderError, String(e));
      assert.match(e.message, new RegExp(`^${cfg.output} is in use by another trainer \\(pid ${holder.pid}, `));
      return true;
    });
    assert.deepEqual(folderDigest(cfg.output), before, 'the folder is as the other trainer has it');
  } finally {
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
  }
  // its process is gone (killed): the lock is stale
  const r = await trainSft({ ...cfg, steps: 3 }, { progress: false, resume: true });
  assert.deepEqual([r.startStep, r.steps], [2, 3]);
  assert.ok(!existsSync(lock));
});

test('a run that fails to start frees its folder and leaves none of the folders it made', async () => {
  const root = tempDir('lock-fail');
  const cfg = loadSftConfig(await toySftRun(root));
  rmSync(path.join(root, 'train.jsonl'));
  await assert.rejects(trainSft({ ...cfg, output: path.join(root, 'runs', 'a') }, { progress: false }));
  assert.ok(!existsSync(path.join(root, 'runs')), 'no empty run folder');
});
