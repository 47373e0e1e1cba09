/**
 * What a user sees when the GPU fails: a tensor larger than the adapter binds, and a device lost in the
 * middle of work (a driver reset), each as one GpuError sentence that says what to do; nothing hangs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GpuDevice, GpuError } from '../../../src/tensor/webgpu/gpu-device.js';
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
      e.message.includes(`${n * 4} bytes`) &&
      /smaller batch or sequence length/.test(e.message),
  );
  k.gpu.close();
});

test('a device lost mid-work fails the next read in one sentence, and every read after it', opt, () => {
  const k = createWebgpuKernels(GpuDevice.open());
  const x = k.fromHost(new Float32Array(1024).fill(1));
  assert.equal(k.sumSquares(x), 1024);
  k.gpu.simulateLoss();
  const y = k.alloc(1024);
  k.axpby(2, x, 0, y);
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => k.toHost(y),
      (e: Error) => e instanceof GpuError && /the GPU device was lost/.test(e.message) && /--resume/.test(e.message),
    );
  }
  k.gpu.close();
});
