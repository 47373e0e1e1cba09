/**
 * A model worker on a GPU gives the GPU memory that no tensor holds back to the driver once it has been idle
 * for SEARCH_R3_GPU_IDLE_RELEASE_MS (30 s by default; 1 s here): a batch's peak does not stay reserved
 * while the server waits, requests closer together than that keep the pool warm, and the weights survive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GpuMemoryRelease } from '../../src/tensor/index.js';
import { WorkerBackend } from '../../src/serve/model-worker.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';

const IDLE_MS = 1000;
const MiB = 2 ** 20;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `done()` holds, looking every 50 ms; fails after `ms`. */
async function until(done: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${ms} ms`);
    await sleep(50);
  }
}

test(
  'the model worker on a GPU gives back its pool once idle, and only then',
  { skip: webgpuSkip(), timeout: 120_000 },
  async (t) => {
    const { dir, cleanup } = tempDir('gpu-idle-release');
    // the worker shares this environment (SHARE_ENV), and reads it as it loads
    process.env.SEARCH_R3_GPU_IDLE_RELEASE_MS = String(IDLE_MS);
    let w: WorkerBackend | null = null;
    try {
      w = await WorkerBackend.start(await tinyModelDir(dir), { device: 'webgpu', batchTokens: 8192 });
      const releases: GpuMemoryRelease[] = [];
      w.onMemoryReleased((r) => releases.push(r));
      await until(() => releases.length === 1, 10 * IDLE_MS, 'the release after loading');
      const texts = Array.from({ length: 16 }, (_, i) => `document ${i} on gene therapy and the heart `.repeat(8));
      await w.embedDocuments(texts);
      // requests closer together than the idle time: the wait starts again after each, so no release
      let vectors: Float32Array[] = [];
      for (let i = 0; i < 3; i++) {
        await sleep(IDLE_MS / 5);
        vectors = await w.embedDocuments(texts.slice(0, 2));
      }
      assert.equal(releases.length, 1, 'a release while requests kept coming');
      await until(() => releases.length === 2, 10 * IDLE_MS, 'the release after the batch');
      const r = releases[1];
      t.diagnostic(
        `reserved ${r.reservedBefore} → ${r.reservedAfter} bytes after the batch, ${r.heldBytes} held by tensors`,
      );
      assert.ok(r.reservedBefore - r.reservedAfter > 2 * MiB, `released ${r.reservedBefore - r.reservedAfter}`);
      // what stays: the weights (small ones rounded up to a power of two) and the parameter ring
      assert.ok(r.reservedAfter <= 2 * r.heldBytes + MiB, `${r.reservedAfter} reserved for ${r.heldBytes} held`);
      assert.deepEqual(await w.embedDocuments(texts.slice(0, 2)), vectors, 'the vectors after the release');
    } finally {
      await w?.close();
      delete process.env.SEARCH_R3_GPU_IDLE_RELEASE_MS;
      cleanup();
    }
  },
);
