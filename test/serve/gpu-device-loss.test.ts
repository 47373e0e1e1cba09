/**
 * `search-r3 serve --device webgpu` whose GPU device is lost while it serves (a driver reset, simulated
 * by the preload test/helpers/lose-gpu-device.ts through GpuDevice.simulateLoss): the request in flight is
 * a 503 that says to retry, the model worker starts again on a fresh device, /health counts the restart,
 * later requests are answered, and the server's log holds no stack trace.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { postEmbeddings as embeddings, request } from '../helpers/http.js';
import { repoRoot } from '../helpers/repo.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { CliProcess } from '../queue/cli-process.js';
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
