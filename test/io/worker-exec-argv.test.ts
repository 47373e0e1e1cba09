/**
 * The node options a worker thread gets: the process's, less those only its own entry can use. The GPU
 * thread started from `node --input-type=module -e` is tested in test/tensor/webgpu/faults.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { workerExecArgv } from '../../src/io/worker-exec-argv.js';

test("a worker gets the process's node options less --input-type and -e/-p with their code", () => {
  assert.deepEqual(workerExecArgv(['--input-type=module', '-e', 'code', '--max-old-space-size=4096', '--expose-gc']), [
    '--max-old-space-size=4096',
    '--expose-gc',
  ]);
  assert.deepEqual(workerExecArgv(['--input-type', 'module', '--print', 'x']), []);
  assert.deepEqual(workerExecArgv(['--eval=x', '-p', 'y', '--enable-source-maps']), ['--enable-source-maps']);
  assert.equal(workerExecArgv([]), undefined);
});

test('with nothing to drop, a worker inherits the options itself, so options of the process alone stay out', () => {
  assert.equal(workerExecArgv(['--stack-trace-limit=10', '--v8-pool-size=4', '--enable-source-maps']), undefined);
});

test('a worker started under node --test runs: the options the test runner gives a file are inherited', async () => {
  // Node ≥ 24 puts per-process options (--v8-pool-size, …) in a test file's execArgv; handed to a Worker as
  // they are, they are refused. On Node 20 the list is empty, and this passes either way.
  const worker = new Worker('require("node:worker_threads").parentPort.postMessage(42)', {
    eval: true,
    execArgv: workerExecArgv(process.execArgv),
  });
  const answer = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  assert.equal(answer, 42);
  await worker.terminate();
});
