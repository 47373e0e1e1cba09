/**
 * A trainer asked to stop by a signal (cli/train.ts) stops after the step in progress, with a checkpoint of
 * it, exits 128 + the signal's number, and --resume goes on from exactly there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { loadSftConfig } from '../../src/train/sft/config.js';
import { trainSft } from '../../src/train/sft/trainer.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { tempDir, toySftRun } from '../helpers/train-fixtures.js';

const trainSteps = (run: string): number[] =>
  existsSync(path.join(run, 'metrics.jsonl'))
    ? readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"type":"train"'))
        .map((l) => (JSON.parse(l) as { step: number }).step)
    : [];

for (const [signal, code, times] of [
  ['SIGTERM', 143, 1],
  // Ctrl-C reaches a recipe's step twice (from the terminal, and passed on by the recipe): one request
  ['SIGINT', 130, 2],
] as const) {
  const how = `${signal}${times > 1 ? ' twice at once' : ''}`;
  test(`train sft on ${how}: a checkpoint of its last step, exit ${code}; --resume continues`, async () => {
    const root = tempDir(`stop-${signal}`);
    // no checkpoint falls due: the one there is, the stop wrote
    const file = await toySftRun(root, { steps: 60, checkpoint: { every: 1000, keep: 2 } });
    const run = path.join(root, 'run');
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'dist/src/cli/main.js'), 'train', 'sft', '--config', file, '--quiet'],
      {
        env: { ...process.env, SEARCH_R3_THREADS: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '',
      err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    while (trainSteps(run).length < 2) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < times; i++) child.kill(signal);
    assert.equal(await exited, code, err);
    const logged = trainSteps(run);
    const last = logged[logged.length - 1]!;
    assert.ok(last < 60, `stopped early, at step ${last}`);
    assert.deepEqual(
      listCheckpoints(path.join(run, 'checkpoints')).map((c) => c.step),
      [last],
      'the step it stopped after is checkpointed',
    );
    assert.ok(!existsSync(path.join(run, 'final')), 'no final/ for a run that did not finish');
    assert.match(err, new RegExp(`^search-r3: ${signal}: stopping after the step in progress, with a checkpoint`));
    assert.match(out, new RegExp(`stopped by ${signal} before the last step, at a checkpoint; continue with --resume`));
    const rest = runCli(['train', 'sft', '--config', file, '--resume', '--quiet']);
    assert.equal(rest.status, 0, rest.stderr);
    assert.match(rest.stdout, new RegExp(`^trained steps ${last}→60 `));
    assert.deepEqual(
      trainSteps(run),
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
  });
}

test('asked to stop, a run ends after the step in progress, checkpointed, or before any step', async () => {
  const root = tempDir('stop-in-process');
  const cfg = loadSftConfig(await toySftRun(root, { steps: 10, checkpoint: { every: 1000, keep: 2 } }));
  const early = new AbortController();
  early.abort('SIGTERM');
  // what it says on stderr: it said 'continue with --resume' of a run with nothing to resume
  const said: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string | Uint8Array): boolean => said.push(String(chunk)) > 0;
  const none = await trainSft(cfg, { progress: true, stop: early.signal }).finally(() => {
    process.stderr.write = write;
  });
  assert.deepEqual([none.steps, none.finished], [0, false]);
  assert.match(said.join(''), /stopping at step 0 of 10 as asked \(SIGTERM\), before its first; run it again\n/);
  assert.doesNotMatch(said.join(''), /--resume/);
  assert.deepEqual(listCheckpoints(path.join(cfg.output, 'checkpoints')), []);
  // nothing to resume: the same run starts afresh
  const stop = new AbortController();
  const first = await trainSft(cfg, { progress: false, stop: stop.signal, onStep: (s) => s === 3 && stop.abort() });
  assert.deepEqual([first.steps, first.finished], [3, false]);
  assert.deepEqual(
    listCheckpoints(path.join(cfg.output, 'checkpoints')).map((c) => c.step),
    [3],
  );
  const rest = await trainSft(cfg, { progress: false, resume: true });
  assert.deepEqual([rest.startStep, rest.steps, rest.finished], [3, 10, true]);
});
