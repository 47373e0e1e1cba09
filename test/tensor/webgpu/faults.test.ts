/**
 * What a user sees when the GPU fails: a tensor larger than the adapter binds (one GpuError sentence that
 * says what to do), and a device lost in the middle of work (a driver reset: one sentence about the device,
 * to which each command adds its own next step); nothing hangs. And
 * an error that ends the process while the GPU still has long work queued ends it with the error's exit
 * code, not Dawn's abort.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../helpers/repo.js';
import { GpuDevice, GpuError, isGpuDeviceFailure } from '../../../src/tensor/webgpu/gpu-device.js';
import { createWebgpuKernels } from '../../../src/tensor/webgpu/webgpu-kernels.js';
import { skipWithoutGpu } from './harness.js';

const opt = { skip: skipWithoutGpu };

test('a tensor larger than the adapter binds is refused with its bytes and what to shrink', opt, () => {
  const k = createWebgpuKernels(GpuDevice.open());
  const limit = Math.min(k.gpu.facts.maxBufferSize, k.gpu.facts.maxStorageBufferBindingSize);
  const n = Math.floor(limit / 4) + 1;
  assert.throws(
    () => k.alloc(n),
    (e: Error) =>
      e instanceof GpuError &&
      !e.deviceFailed &&
      e.message.includes(`${n * 4} bytes`) &&
      /for activations, use a smaller batch or sequence length; a weight this large .* use --device cpu/.test(
        e.message,
      ),
  );
  // a request the device cannot do leaves it working
  assert.equal(k.sumSquares(k.fromHost(new Float32Array(8).fill(2))), 32);
  k.gpu.close();
});

test(
  'SEARCH_R3_DAWN_FLAGS reaches Dawn: a device opens with a toggle and computes; an unknown adapter lists them',
  opt,
  () => {
    const open = (flags: string): GpuDevice => {
      const before = process.env.SEARCH_R3_DAWN_FLAGS;
      process.env.SEARCH_R3_DAWN_FLAGS = flags;
      try {
        return GpuDevice.open();
      } finally {
        if (before === undefined) delete process.env.SEARCH_R3_DAWN_FLAGS;
        else process.env.SEARCH_R3_DAWN_FLAGS = before;
      }
    };
    const k = createWebgpuKernels(open('  enable-dawn-features=disable_robustness  '));
    assert.deepEqual(k.gpu.facts.dawnFlags, ['enable-dawn-features=disable_robustness']);
    // Σ i² for i < 64, through a reduction kernel compiled without the checks
    const x = k.fromHost(Float32Array.from({ length: 64 }, (_, i) => i));
    assert.equal(k.sumSquares(x), 85344);
    k.gpu.close();
    assert.throws(
      () => open('adapter=no-such-gpu'),
      (e: Error) => e instanceof GpuError && /^WebGPU is unavailable: .*Available adapters/s.test(e.message),
    );
  },
);

test('a device lost mid-work fails the next read in one sentence, and every read after it, as failed', opt, () => {
  const k = createWebgpuKernels(GpuDevice.open());
  const x = k.fromHost(new Float32Array(1024).fill(1));
  assert.equal(k.sumSquares(x), 1024);
  k.gpu.simulateLoss();
  const y = k.alloc(1024);
  k.axpby(2, x, 0, y);
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => k.toHost(y),
      (e: Error) =>
        e instanceof GpuError &&
        e.deviceFailed &&
        isGpuDeviceFailure(e) &&
        // what to do next is the command's to say (train resumes, serve restarts its worker): none here
        /^the GPU device was lost \(destroyed: [^]*\)$/.test(e.message) &&
        !/--resume|run the command/.test(e.message),
    );
  }

  k.gpu.close();
});

test('a process that fails with many seconds of GPU work queued waits for it and exits with its own code', opt, () => {
  // 16 products of 1024³ (34 GFLOP): on lavapipe over ten seconds of work still queued when the error ends it
  const tensor = path.join(repoRoot, 'dist', 'src', 'tensor', 'index.js');
  const script = `
    const T = await import(${JSON.stringify(tensor)});
    T.setBackend('webgpu');
    try {
      let a = new T.Tensor(new Float32Array(1024 * 1024).fill(0.001), [1024, 1024]);
      for (let i = 0; i < 16; i++) a = T.matmul(a, a);
      T.webgpuKernels().gpu.flush();
      throw new Error('failed with work queued');
    } catch (e) {
      console.error(e.message);
      process.exitCode = 2;
    }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /failed with work queued/);
  assert.doesNotMatch(r.stderr, /Promise not resolved|onSubmittedWorkDone/);
});
