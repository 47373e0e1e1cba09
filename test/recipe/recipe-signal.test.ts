/**
 * A signal to `recipe default` goes on to the step it runs (cli/recipe.ts): the training step stops at its
 * checkpoint, the recipe waits for it and exits 128 + the signal's number, with no step left running; the
 * same command then continues.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { processRuns } from '../../src/io/process-runs.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot, sharedData } from '../helpers/repo.js';
import { tempDir } from '../helpers/train-fixtures.js';

test(
  'SIGTERM to the recipe stops its training step at a checkpoint, then the recipe; none is left running',
  {
    timeout: 300_000,
  },
  async () => {
    const dir = tempDir('recipe-signal');
    const work = path.join(dir, 'work');
    const args = ['recipe', 'default', '--profile', 'tiny', '--work', work, '--out', path.join(dir, 'model')];
    const env = { SEARCH_R3_THREADS: '1' };
    const prepared = runCli([...args, '--data', sharedData, '--quiet', '--until', 'mine'], env);
    assert.equal(prepared.status, 0, prepared.stderr);

    const recipe = spawn(
      process.execPath,
      [path.join(repoRoot, 'dist/src/cli/main.js'), ...args, '--data', sharedData],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    recipe.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => recipe.on('exit', (c) => resolve(c)));
    // stage 1's trainer holds its run folder's lock while it runs: its pid, on the lock's first line
    const lock = path.join(work, 'stage1', 'train.lock');
    let trainer = NaN;
    while (!(trainer > 0)) {
      if (existsSync(lock)) trainer = Number(readFileSync(lock, 'utf8').split('\n')[0]);
      await new Promise((r) => setTimeout(r, 5));
    }
    recipe.kill('SIGTERM');
    assert.equal(await exited, 143, err);
    assert.equal(processRuns(trainer), false, `the trainer (pid ${trainer}) stopped with the recipe`);
    assert.match(err, /SIGTERM: passed on to the running step; the recipe stops when it has/);
    assert.match(err, /search-r3: SIGTERM: stopping after the step in progress, with a checkpoint/);
    assert.match(err, /stopped by SIGTERM during search-r3 train sft; finished steps are kept/);
    const stage1 = path.join(work, 'stage1');
    assert.ok(!existsSync(path.join(stage1, 'final')) && !existsSync(lock));
    // whatever step it stopped after is its checkpoint (none when it stopped before its first)
    const logged = existsSync(path.join(stage1, 'metrics.jsonl'))
      ? readFileSync(path.join(stage1, 'metrics.jsonl'), 'utf8')
          .split('\n')
          .filter((l) => l.includes('"type":"train"')).length
      : 0;
    const checkpoints = listCheckpoints(path.join(stage1, 'checkpoints')).map((c) => c.step);
    assert.equal(checkpoints[checkpoints.length - 1] ?? 0, logged);

    const again = runCli([...args, '--data', sharedData, '--quiet', '--until', 'stage1'], env);
    assert.equal(again.status, 0, again.stderr);
    assert.ok(existsSync(path.join(stage1, 'final', 'config.json')));
  },
);
