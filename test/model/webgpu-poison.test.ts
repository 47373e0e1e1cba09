/**
 * WebGPU outputs taken without a clear (Kernels.empty, uploads) hold whatever a pooled buffer held, so
 * every kernel must write such an output whole. With SEARCH_R3_GPU_POISON=1 each of them starts as NaN: the
 * kernel tests run so in the suite (poisonUnwrittenGpuValues); greedy generation against the native backend
 * and a Qwen2 training step against PyTorch, which run the device as users do there, pass poisoned too, in a
 * process of their own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { webgpuSkip } from '../helpers/webgpu.js';

test(
  'every WebGPU kernel writes its whole output: generation and a training step pass with unwritten values poisoned',
  { skip: webgpuSkip() },
  () => {
    const files = ['model/webgpu-model.test.js', 'model/qwen2-train-step.test.js'].map((f) =>
      path.join(repoRoot, 'dist', 'test', f),
    );
    // a test runner of its own, reporting TAP here (NODE_TEST_CONTEXT would make it report to this one)
    const env: NodeJS.ProcessEnv = { ...process.env, SEARCH_R3_GPU_POISON: '1' };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...files], {
      encoding: 'utf8',
      env,
      maxBuffer: 1 << 26,
    });
    // each failure with the lines of TAP after it (its error, or the exit code or signal of a file that died)
    const lines = r.stdout.split('\n');
    const failed = lines.flatMap((l, i) => (/^\s*not ok/.test(l) ? lines.slice(i, i + 16) : []));
    assert.equal(r.status, 0, `${failed.join('\n')}\n${r.stderr.slice(-2000)}`);
    assert.match(r.stdout, /^# fail 0$/m);
    assert.match(r.stdout, /^# pass [1-9]\d*$/m);
  },
);
