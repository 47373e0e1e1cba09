/**
 * The native addon in a worker thread (the server runs the model in one). Node unloads an addon when
 * the last environment that loaded it ends, but the addon's pool helpers are detached threads that live
 * for the process: if the code under them were unmapped, the next instruction they run would crash the
 * whole process. Each case runs in a child process, so a crash shows up as its exit status.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/repo.js';

const kernelsUrl = pathToFileURL(path.join(repoRoot, 'dist/src/tensor/native-kernels.js')).href;

/** Worker code: load the addon, run a gemm big enough to be split over the pool, then end at once. */
const workerCode = `
import { loadAddon } from ${JSON.stringify(kernelsUrl)};
const a = loadAddon();
const n = 192, x = new Float32Array(n * n).fill(1), y = new Float32Array(n * n).fill(1), z = new Float32Array(n * n);
a.gemm(x, y, z, 1, n, n, n, false, false, 0, 0, 0, false);
if (z[0] !== n) throw new Error('gemm gave ' + z[0]);
`;

/** Main thread of the child: never loads the addon itself; runs `rounds` workers one after another. */
const mainCode = `
import { Worker } from 'node:worker_threads';
for (let round = 0; round < 2; round++) {
  const w = new Worker(${JSON.stringify(workerCode)}, { eval: true });
  const code = await new Promise((resolve, reject) => { w.on('error', reject); w.on('exit', resolve); });
  if (code !== 0) throw new Error('worker exited with ' + code);
  // the helpers are still polling for work here (a long spin): they must find their code mapped
  await new Promise((r) => setTimeout(r, 300));
}
console.log('alive');
`;

test('the native pool survives the worker that loaded the addon ending while its helpers poll', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', mainCode], {
    // two threads even on a one-core machine; helpers poll for ~1 s before sleeping
    env: { ...process.env, SEARCH_R3_THREADS: '2', SEARCH_R3_SPIN: '20000000' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'alive');
});
