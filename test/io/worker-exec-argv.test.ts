/**
 * The node options a worker thread gets: the process's, less those only its own entry can use. The GPU
 * thread started from `node --input-type=module -e` is tested in test/tensor/webgpu/faults.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { workerExecArgv } from '../../src/io/worker-exec-argv.js';

test("a worker gets the process's node options less --input-type and -e/-p with their code", () => {
  assert.deepEqual(workerExecArgv(['--input-type=module', '-e', 'code', '--max-old-space-size=4096', '--expose-gc']), [
    '--max-old-space-size=4096',
    '--expose-gc',
  ]);
  assert.deepEqual(workerExecArgv(['--input-type', 'module', '--print', 'x']), []);
  assert.deepEqual(workerExecArgv(['--eval=x', '-p', 'y', '--enable-source-maps']), ['--enable-source-maps']);
  assert.deepEqual(workerExecArgv([]), []);
});
