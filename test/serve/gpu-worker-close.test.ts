/**
 * WorkerBackend.close() on a model worker that computes on a GPU: Node tearing down the worker's GPU thread
 * while Dawn still works aborts the whole process (SIGABRT, "Promise not resolved or rejected: mapAsync()"),
 * so the worker is asked to stop instead: it drops the rest of the work, finishes the forward pass it is in,
 * closes its GPU and ends itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { type ProgramRun, runProgram } from '../helpers/run-program.js';
import { webgpuSkip } from '../helpers/webgpu.js';
import { tempDir, tinyModelDir } from '../search-index/fixtures.js';

const preload = path.join(repoRoot, 'dist', 'test', 'helpers', 'lose-gpu-device.js');

/**
 * Runs a program whose WorkerBackend embeds 4,000 documents on the GPU in batches of 256 tokens (minutes of
 * work on a software adapter) and, a second in, does `end`; returns its run and how often a GPU was closed.
 */
async function endWhileBusy(name: string, end: string): Promise<{ run: ProgramRun; gpuCloses: string }> {
  const { dir, cleanup } = tempDir(name);
  try {
    const modelDir = await tinyModelDir(dir);
    const closedLog = path.join(dir, 'gpu-closed');
    const program = `import { WorkerBackend } from 'ENTRY';
const w = await WorkerBackend.start(${JSON.stringify(modelDir)}, { device: 'webgpu', batchTokens: 256 });
const texts = Array.from({ length: 4000 }, (_, i) => 'document ' + i + ' on gene therapy and the heart'.repeat(4));
const embedding = w.embedDocuments(texts).then(() => 'embedded', (e) => e.name);
await new Promise((r) => setTimeout(r, 1000));
${end}
`;
    const run = await runProgram(dir, name, program, 150_000, {
      NODE_OPTIONS: `--import ${preload}`,
      SEARCH_R3_TEST_GPU_CLOSED: closedLog,
    });
    return { run, gpuCloses: existsSync(closedLog) ? readFileSync(closedLog, 'utf8') : '' };
  } finally {
    cleanup();
  }
}

test(
  'close() while the worker computes on the GPU: the rest is dropped, the GPU closed, the program exits',
  { skip: webgpuSkip(), timeout: 180_000 },
  async () => {
    const { run, gpuCloses } = await endWhileBusy(
      'gpu-close',
      `const t0 = Date.now();
await w.close();
const seconds = (Date.now() - t0) / 1000;
console.log(await embedding, seconds < 60 ? 'closed within a minute' : 'closed after ' + seconds + ' s');`,
    );
    assert.deepEqual([run.code, run.signal], [0, null], run.stderr);
    assert.equal(run.stdout, 'ModelUnavailableError closed within a minute\n', run.stderr);
    assert.match(gpuCloses, /^thread \d+\n$/, 'the worker closed its GPU, once');
  },
);

test(
  'a program that exits while its worker computes on the GPU waits for the GPU to close, then exits',
  { skip: webgpuSkip(), timeout: 180_000 },
  async () => {
    // process.exit, as a CLI's error path or an uncaught error ends it: Node then tears its workers down
    const { run, gpuCloses } = await endWhileBusy('gpu-exit', 'void embedding;\nprocess.exit(3);');
    assert.deepEqual([run.code, run.signal], [3, null], run.stderr);
    assert.match(gpuCloses, /^thread \d+\n$/, 'the worker closed its GPU, once');
  },
);
