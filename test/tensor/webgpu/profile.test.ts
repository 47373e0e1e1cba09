/**
 * The GPU kernel profile (SEARCH_R3_GPU_PROFILE, GpuDevice.startProfile): every dispatch between start
 * and stop is timed once, under its kernel's name and grid, with Dawn's timestamp rounding off; and the
 * tables sum and order it. (A command run with SEARCH_R3_GPU_PROFILE: test/cli/gpu-profile.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { withExactTimestamps } from '../../../src/tensor/webgpu/dispatch-timer.js';
import { type KernelTime, byKernel, kernelProfileTable } from '../../../src/tensor/webgpu/kernel-profile.js';
import { skipWithoutGpu, wg } from './harness.js';

const opt = { skip: skipWithoutGpu };

test('timestamps are asked for unrounded, unless a flag already names the toggle', () => {
  const off = 'disable-dawn-features=timestamp_quantization';
  assert.deepEqual(withExactTimestamps([]), [off]);
  assert.deepEqual(withExactTimestamps(['adapter=NVIDIA']), ['adapter=NVIDIA', off]);
  assert.deepEqual(withExactTimestamps(['disable-dawn-features=lazy_clear_resource_on_first_use']), [
    'disable-dawn-features=lazy_clear_resource_on_first_use,timestamp_quantization',
  ]);
  const mine = ['enable-dawn-features=disable_robustness,timestamp_quantization'];
  assert.deepEqual(withExactTimestamps(mine), mine);
});

test('the profile table sums a kernel over its grids, costliest first, and says how busy the GPU was', () => {
  const t = (kernel: string, x: number, dispatches: number, seconds: number): KernelTime => ({
    kernel,
    groups: [x, 1, 1],
    dispatches,
    seconds,
  });
  const times = [t('rope', 4, 2, 0.001), t('gemm', 8, 3, 0.004), t('gemm', 2, 1, 0.002), t('adamw', 1, 5, 0.001)];
  assert.deepEqual(byKernel(times), [
    { kernel: 'gemm', dispatches: 4, seconds: 0.006 },
    { kernel: 'adamw', dispatches: 5, seconds: 0.001 },
    { kernel: 'rope', dispatches: 2, seconds: 0.001 },
  ]);
  const table = kernelProfileTable(times, 0.016, 2);
  assert.match(table, /^\| gemm \| 4 \| 6\.000 \| 1500\.0 \| 75\.0 % \|$/m);
  assert.match(table, /^\| 1 other kernel \| 2 \| 1\.000 \| 500\.0 \| 12\.5 % \|$/m);
  assert.match(table, /GPU time 8\.000 ms in 11 dispatches of 16\.000 ms wall-clock: the GPU was busy 50\.0 %/);
  assert.match(table, /^\| gemm \| 8×1×1 \| 3 \| 4\.000 \| 1333\.3 \|$/m);
});

test('a kernel profile times each dispatch between start and stop once, and nothing outside', opt, () => {
  T.setBackend('webgpu');
  try {
    const gpu = wg().gpu;
    const rng = new T.Rng(5);
    const a = T.randn([70, 40], rng),
      b = T.randn([40, 90], rng);
    a.read();
    b.read();
    const before = gpu.stats().dispatches;
    gpu.startProfile();
    const c = T.matmul(a, b);
    T.add(c, c).read();
    const times = gpu.stopProfile();
    const ran = gpu.stats().dispatches - before;
    assert.equal(
      times.reduce((s, x) => s + x.dispatches, 0),
      ran,
    );
    assert.ok(
      times.some((x) => x.kernel.startsWith('gemm') && x.dispatches === 1),
      JSON.stringify(times),
    );
    for (const x of times) assert.ok(Number.isFinite(x.seconds) && x.seconds > 0, JSON.stringify(x));
    // Dawn's rounding would make every duration a multiple of 2^16 ns
    const ns = times.map((x) => Math.round(x.seconds * 1e9));
    assert.ok(
      ns.some((n) => n % 65536 !== 0),
      `durations ${ns.join(', ')} ns`,
    );
    gpu.startProfile();
    T.add(c, c).read();
    const again = gpu.stopProfile();
    assert.deepEqual(
      again.map((x) => [x.kernel, x.dispatches]),
      [['binary', 1]],
    );
  } finally {
    T.setBackend('native');
  }
});
