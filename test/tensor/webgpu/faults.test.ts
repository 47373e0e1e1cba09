/**
 * What a user sees when the GPU fails: a tensor larger than the adapter binds (one GpuError sentence that
 * says what to do), a command the GPU refuses, a read that takes longer than allowed, and a device lost in
 * the middle of work (a driver reset: one sentence about the device, to which each command adds its own
 * next step); nothing hangs, and Dawn prints nothing of its own. And an error that ends the process while
 * the GPU still has long work queued ends it with the error's exit code, not Dawn's abort, without
 * computing what was never posted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../helpers/repo.js';
import { GpuDevice, GpuError, gpuSizeSentence, isGpuDeviceFailure } from '../../../src/tensor/webgpu/gpu-device.js';
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
      ) &&
      // the bytes travel with it, for a command to say what of its own to shrink
      e.sizeRefusal?.kind === 'binding' &&
      e.sizeRefusal.bytes === n * 4 &&
      e.sizeRefusal.limit === limit &&
      gpuSizeSentence(e.sizeRefusal, 'a smaller --batch-tokens').includes(
        'for activations, use a smaller --batch-tokens;',
      ),
  );
  // a request the device cannot do leaves it working
  assert.equal(k.sumSquares(k.fromHost(new Float32Array(8).fill(2))), 32);
  k.gpu.close();
});

test('out of GPU memory: the sentence names the bytes held and what to shrink, as a command names it', () => {
  // lavapipe takes memory from the host and crashes rather than say it ran out: the sentence alone
  const r = { kind: 'memory', heldBytes: 123456789, adapter: 'NVIDIA H100', detail: 'Out of memory' } as const;
  assert.equal(
    gpuSizeSentence(r),
    'the GPU (NVIDIA H100) ran out of memory with 123456789 bytes held by tensors (Out of memory): use a smaller ' +
      'batch or sequence length, 16-bit weights, or --device cpu',
  );
  assert.match(gpuSizeSentence(r, 'a smaller --batch-tokens'), /\): use a smaller --batch-tokens, 16-bit weights/);
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
    // one line: the name asked for, and the adapters Dawn found (each named as `adapter=` takes it)
    assert.throws(
      () => open('adapter=no-such-gpu'),
      (e: Error) =>
        e instanceof GpuError &&
        e.message.startsWith("WebGPU is unavailable: no adapter named 'no-such-gpu' was found ") &&
        e.message.includes('(SEARCH_R3_DAWN_FLAGS adapter=no-such-gpu); ') &&
        /; the adapters here: '[^\n]+' \(\w+\)$/.test(e.message),
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

/** Runs `script` (an ES module body, with T the tensor layer) in a node of its own: what it prints, and its status. */
function runTensorScript(script: string, env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const tensor = path.join(repoRoot, 'dist', 'src', 'tensor', 'index.js');
  const body = `const T = await import(${JSON.stringify(tensor)});\n${script}`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', body], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
}

test('a command the GPU refuses fails the next read in one sentence, and Dawn prints nothing of its own', opt, () => {
  // a copy past the end of both buffers: Dawn's validation refuses it, in a message of several lines
  const r = runTensorScript(`
    T.setBackend('webgpu');
    const g = T.webgpuKernels().gpu;
    const a = {}, b = {};
    const ia = g.alloc(1024, a), ib = g.alloc(1024, b);
    g.copy(ia, 0, ib, 0, 4096);
    try { g.read(ib, 0, 16); } catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }
    process.exit(0);`);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `Dawn printed its own error: ${r.stdout}`);
  const e = JSON.parse(lines[0]) as { name: string; message: string };
  assert.equal(e.name, 'GpuError');
  assert.match(
    e.message,
    /^the GPU refused a command: Copy range \(offset: 0, size: 4096\) does not fit in [^\n]*\(1024\)$/,
  );
  assert.doesNotMatch(r.stderr, /While |validation/);
});

test('a read that takes longer than allowed names SEARCH_R3_GPU_TIMEOUT_MS and says to raise it', opt, () => {
  // 1 ms: compiling the product's shader alone takes longer, on any GPU
  const r = runTensorScript(
    `
    T.setBackend('webgpu');
    const a = new T.Tensor(new Float32Array(256 * 256).fill(0.5), [256, 256]);
    try { T.matmul(a, a).toArray(); } catch (e) { console.log(e.message); }`,
    { SEARCH_R3_GPU_TIMEOUT_MS: '1' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    'the GPU did not answer within 0.001 s (SEARCH_R3_GPU_TIMEOUT_MS=1: raise it where the GPU is only slow)\n',
  );
});

test('closing a device does not compute what was queued but never posted (nothing can read it)', opt, async () => {
  const k = createWebgpuKernels(GpuDevice.open());
  const n = 1024;
  const a = k.fromHost(new Float32Array(n * n).fill(0.001));
  const c = k.alloc(n * n);
  const s = { batch: 1, m: n, n, k: n, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 };
  // 8 products of 1024³ (17 GFLOP): seconds of work on lavapipe, were it posted
  for (let i = 0; i < 8; i++) k.gemm({ ...s, a, b: a, c, accumulate: true });
  const started = performance.now();
  await k.gpu.shutdown();
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds < 1.5, `closing took ${seconds.toFixed(1)} s`);
});

test('a process that fails with many seconds of GPU work queued waits for it and exits with its own code', opt, () => {
  // 4 products of 1024³ (8.6 GFLOP): on lavapipe seconds of work still queued when the error ends it
  const tensor = path.join(repoRoot, 'dist', 'src', 'tensor', 'index.js');
  const script = `
    const T = await import(${JSON.stringify(tensor)});
    T.setBackend('webgpu');
    try {
      let a = new T.Tensor(new Float32Array(1024 * 1024).fill(0.001), [1024, 1024]);
      for (let i = 0; i < 4; i++) a = T.matmul(a, a);
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
