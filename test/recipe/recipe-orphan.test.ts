/**
 * One recipe per work folder: a second `recipe default` on it is refused while the first runs, and a recipe
 * killed with SIGKILL (which it cannot pass on) leaves no step running beside the next run: the step stops by
 * itself once its recipe is gone, and the next run waits for it before its first step (cli/recipe-guard.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { processRuns } from '../../src/io/process-runs.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot, sharedData } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';
import { until } from '../helpers/until.js';

const env = { SEARCH_R3_THREADS: '1' };

/** A tiny recipe's arguments on a work folder whose steps up to mine are done, so that stage 1 runs next. */
function prepared(name: string): { work: string; args: string[] } {
  const dir = tempDir(name);
  const work = path.join(dir, 'work');
  const args = ['recipe', 'default', '--profile', 'tiny', '--work', work, '--out', path.join(dir, 'model')];
  const r = runCli([...args, '--data', sharedData, '--quiet', '--until', 'mine'], env);
  assert.equal(r.status, 0, r.stderr);
  return { work, args: [...args, '--data', sharedData, '--until', 'stage1'] };
}

/** Starts the CLI with `args`; `stderr()` is what it (and the steps it left running) wrote there so far. */
function start(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist/src/cli/main.js'), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exit };
}

/** The pid of stage 1's trainer, from its run folder's lock once it has taken it. */
async function trainerOf(work: string, stderr: () => string): Promise<number> {
  const lock = path.join(work, 'stage1', 'train.lock');
  let pid = NaN;
  await until(
    () => existsSync(lock) && (pid = Number(readFileSync(lock, 'utf8').split('\n')[0])) > 0,
    120_000,
    () => `stage 1 never started:\n${stderr()}`,
  );
  return pid;
}

test(
  'a second recipe on a work folder in use is refused in one sentence naming the first',
  { timeout: 300_000 },
  async () => {
    const { work, args } = prepared('recipe-twice');
    const first = start(args);
    const trainer = await trainerOf(work, first.stderr);
    const second = runCli(args, env);
    const lock = path.join(work, 'recipe.lock');
    assert.equal(second.status, 2, second.stderr);
    assert.equal(
      second.stderr,
      `search-r3: ${work} is in use by another recipe (pid ${first.child.pid}, in ${lock}); ` +
        'two recipes in one work folder would run the same steps over each other: wait for it to finish or stop it ' +
        `(kill -TERM ${first.child.pid}), then run this again\n`,
    );
    assert.ok(processRuns(trainer), "the first recipe's step runs on");
    assert.equal(await first.exit, 0, first.stderr());
    assert.ok(existsSync(path.join(work, 'stage1', 'final', 'config.json')));
    assert.ok(!existsSync(lock), 'the recipe removes its lock when it ends');
  },
);

test(
  'a recipe killed with SIGKILL leaves no step running: it stops by itself, and the next run waits for it',
  { timeout: 300_000 },
  async () => {
    const { work, args } = prepared('recipe-sigkill');
    const killed = start(args);
    const trainer = await trainerOf(work, killed.stderr);
    killed.child.kill('SIGKILL');
    await killed.exit;
    // held still (alive, but not yet looking for its recipe), so that the next run surely finds it running
    process.kill(trainer, 'SIGSTOP');
    const again = start(args);
    try {
      const left = 'which a killed run of the recipe left running';
      const waiting = `pid ${trainer} (search-r3 train sft), ${left}, still runs; waiting`;
      let ended = false;
      void again.exit.then(() => (ended = true));
      await until(() => again.stderr().includes(waiting) || ended, 120_000, again.stderr);
      assert.ok(again.stderr().includes(waiting), `the next run waits for the step:\n${again.stderr()}`);
    } finally {
      // a failure here must not leave the step stopped for good
      process.kill(trainer, 'SIGCONT');
    }
    await until(
      () => !processRuns(trainer),
      10_000,
      () => `the orphaned step runs on:\n${killed.stderr()}`,
    );
    const orphan = killed.stderr();
    assert.match(
      orphan,
      new RegExp(
        `search-r3: the recipe that ran this step \\(pid ${killed.child.pid}\\) is gone; stopping as on SIGTERM`,
      ),
    );
    assert.match(orphan, /search-r3: SIGTERM: stopping after the step in progress, with a checkpoint/);
    assert.equal(await again.exit, 0, again.stderr());
    assert.ok(existsSync(path.join(work, 'stage1', 'final', 'config.json')));
    assert.ok(!existsSync(path.join(work, 'recipe-step.json')), 'no step is recorded as running once the recipe ends');
  },
);
