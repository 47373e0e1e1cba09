/**
 * `search-r3 serve --device webgpu` whose GPU device is lost while it serves (a driver reset, simulated
 * by the preload test/helpers/lose-gpu-device.ts through GpuDevice.simulateLoss): the request in flight is
 * a 503 that says to retry, the model worker starts again on a fresh device, /health counts the restart,
 * later requests are answered, and the server's log holds no stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { postEmbeddings as embeddings, request } from '../helpers/http.js';
import { repoRoot } from '../helpers/repo.js';
import { runProgram } from '../helpers/run-program.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { CliProcess } from '../helpers/cli-process.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';

const losePreload = path.join(repoRoot, 'dist', 'test', 'helpers', 'lose-gpu-device.js');

test(
  'a lost GPU device: 503 to retry, a model worker on a fresh device, /health counts it, no stack trace',
  { skip: webgpuSkip(), timeout: 120_000 },
  async () => {
    const { dir, cleanup } = tempDir('gpu-loss');
    const modelDir = await tinyModelDir(dir);
    const trigger = path.join(dir, 'lose-now');
    const serve = new CliProcess(['serve', '--model', modelDir, '--port', '0', '--device', 'webgpu'], {
      NODE_OPTIONS: `--import ${losePreload}`,
      SEARCH_R3_TEST_LOSE_GPU: trigger,
    });
    try {
      const url = (await serve.waitFor(/serving embeddings at (http:\/\/\S+) /))[1]!;
      assert.equal((await embeddings(url, 'before the loss')).status, 200);

      writeFileSync(trigger, ''); // the next read of the GPU loses its device
      const lost = await embeddings(url, 'during the loss');
      assert.equal(lost.status, 503, JSON.stringify(lost.body));
      assert.equal(lost.body.error?.code, 'model_unavailable');
      const said = lost.body.error!.message;
      assert.match(said, /^the model worker stopped \(the GPU device was lost \(.*\)\) and is being restarted on a /);
      assert.ok(said.endsWith('on a fresh GPU device; retry shortly.'), said);

      let health = await request(url, 'GET', '/health');
      for (let i = 0; health.status !== 200; i++) {
        assert.ok(i < 600, `the model worker was not restarted within 60 s: ${JSON.stringify(health.body)}`);
        assert.match(health.body.reason as string, /GPU device was lost|restart/);
        await new Promise((r) => setTimeout(r, 100));
        health = await request(url, 'GET', '/health');
      }
      assert.deepEqual(health.body.model_worker, { state: 'ready', restarts: 1 });
      assert.equal((await embeddings(url, 'after the restart')).status, 200);
    } finally {
      assert.equal(await serve.stop(), 0, serve.output);
      cleanup();
    }
    assert.doesNotMatch(serve.output, /^\s+at /m, 'a stack trace in the log');
    assert.doesNotMatch(serve.output, /GpuError/);
  },
);

test(
  'close() right after a device loss lets the worker close its GPU and end itself, and the program exits',
  { skip: webgpuSkip(), timeout: 120_000 },
  async () => {
    const { dir, cleanup } = tempDir('gpu-loss-close');
    try {
      const modelDir = await tinyModelDir(dir);
      const trigger = path.join(dir, 'lose-now');
      const closedLog = path.join(dir, 'gpu-closed');
      // a queue worker does this: its job failed with the device, so it closes the model and stops
      const program = `import { writeFileSync, existsSync } from 'node:fs';
import { WorkerBackend } from 'ENTRY';
const w = await WorkerBackend.start(${JSON.stringify(modelDir)}, { device: 'webgpu' });
await w.embedDocuments(['before the loss']);
writeFileSync(${JSON.stringify(trigger)}, '');
const e = await w.embedDocuments(['during the loss']).then(() => null, (e) => e);
console.log(e?.name, e?.cause?.name);
await w.close();
console.log(existsSync(${JSON.stringify(closedLog)}) ? 'closed' : 'not closed');
`;
      const r = await runProgram(dir, 'close-after-loss', program, 90_000, {
        NODE_OPTIONS: `--import ${losePreload}`,
        SEARCH_R3_TEST_LOSE_GPU: trigger,
        SEARCH_R3_TEST_GPU_CLOSED: closedLog,
      });
      // terminated while Dawn still drained its queue, the worker would abort the whole process
      assert.deepEqual([r.code, r.signal], [0, null], r.stderr);
      assert.equal(r.stdout, 'ModelUnavailableError GpuError\nclosed\n', r.stderr);
      assert.equal(readFileSync(closedLog, 'utf8').split('\n').length - 1, 1, 'one device, closed once');
      assert.ok(!existsSync(trigger));
    } finally {
      cleanup();
    }
  },
);
