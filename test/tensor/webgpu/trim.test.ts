/**
 * Trimming the WebGPU buffer pool (GpuDevice.trim, releaseGpuMemory): the free buffers are destroyed, so the
 * bytes the GPU thread keeps drop back to what live tensors need, while those tensors keep their values; and
 * a trim between training steps, or in the middle of a step's queued commands (buffers freed by the backward
 * pass while commands that use them are still being encoded), changes no number the steps compute.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as T from '../../../src/tensor/index.js';
import { Qwen2Model } from '../../../src/model/qwen2-model.js';
import { tinyQwen2Config } from '../../helpers/tiny-qwen2.js';
import { webgpuSkip } from '../../helpers/webgpu.js';

const MiB = 2 ** 20;

/** This process's resident memory, where lavapipe keeps GPU memory (VmRSS, Linux). */
function residentBytes(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

test('a trim gives the pool back: reserved bytes drop to what live tensors need', { skip: webgpuSkip() }, async (t) => {
  T.setBackend('webgpu');
  try {
    const gpu = T.webgpuKernels()!.gpu;
    await T.releaseGpuMemory();
    const base = gpu.stats();
    const kept = T.tensor(
      Float32Array.from({ length: 65536 }, (_, i) => Math.sin(i)),
      [256, 256],
    );
    const doubled = T.scale(kept, 2);
    // 192 MiB in buffers of 4 to 32 MiB (each sum and its operands), all dead: Dawn gives a buffer of 4 MiB
    // or more an allocation of its own, which a destroy frees (smaller ones share blocks that Dawn keeps)
    for (const mib of [32, 16, 8, 4, 4]) T.add(T.zeros([(mib * MiB) / 4]), T.zeros([(mib * MiB) / 4])).release();
    assert.ok(Number.isFinite(doubled.read()[1]));
    await T.releaseUnusedMemory();
    const rssBefore = residentBytes();
    const before = gpu.stats();
    const released = await T.releaseGpuMemory();
    assert.ok(released !== null);
    const after = gpu.stats();
    doubled.read(); // a read after the trim lets Dawn free what the queue no longer uses
    // Dawn frees a destroyed buffer at a later tick of its device, not always by the first read's: the resident
    // set is looked at again after each further read, for at most 2 s (it stayed put in 1 run of 4 at once)
    let rssAfter = residentBytes();
    for (let i = 0; i < 40 && rssBefore - rssAfter <= 64 * MiB; i++) {
      await new Promise((r) => setTimeout(r, 50));
      doubled.read();
      rssAfter = residentBytes();
    }
    const live = 2 * 256 * 256 * 4;
    t.diagnostic(
      `reserved ${before.reservedBytes} → ${after.reservedBytes} bytes (pooled ${before.pooledBytes} → ` +
        `${after.pooledBytes}), held by tensors ${after.heldBytes}; RSS ${rssBefore} → ${rssAfter}`,
    );
    assert.ok(before.pooledBytes >= 128 * MiB, `pooled ${before.pooledBytes} bytes before the trim`);
    assert.equal(after.pooledBytes, 0);
    assert.equal(released.reservedAfter, after.reservedBytes);
    assert.equal(released.reservedBefore, before.reservedBytes);
    // what is left: the live tensors, the parameter ring and what was there before this test
    assert.ok(after.heldBytes - base.heldBytes >= live, `held ${after.heldBytes} bytes`);
    assert.ok(
      after.reservedBytes <= base.reservedBytes + live + MiB,
      `reserved ${after.reservedBytes} bytes after the trim, ${base.reservedBytes} before the test`,
    );
    assert.ok(after.destroyed - before.destroyed >= 15, `${after.destroyed - before.destroyed} buffers destroyed`);
    // lavapipe's GPU memory is this process's: what the trim destroyed leaves its resident set
    if (gpu.facts.software) assert.ok(rssBefore - rssAfter > 64 * MiB, `RSS ${rssBefore} → ${rssAfter}`);
    // live tensors keep their values, and new work runs on buffers made anew
    const values = doubled.read();
    for (const i of [0, 1, 4097, 65535]) assert.equal(values[i], Math.fround(2 * Math.fround(Math.sin(i))));
    assert.deepEqual(T.add(kept, kept).read(), values);
  } finally {
    T.setBackend('native');
  }
});

/** Where a run of steps trims: never, between steps (releaseGpuMemory), or inside each step without a read. */
type TrimAt = 'never' | 'between' | 'inside';

const config = tinyQwen2Config({ vocabSize: 64, hiddenSize: 32, numHiddenLayers: 2, intermediateSize: 48 });
const rng = new T.Rng(11);
/** The weights on the host (made before any test takes the GPU), and a batch of 2 × 16 tokens. */
const host = Qwen2Model.random(config, rng, 0.1);
const ids = Int32Array.from({ length: 2 * 16 }, () => rng.int(config.vocabSize));
const targets = Int32Array.from(ids, (_, i) => (i % 16 === 15 ? -100 : ids[i + 1]));

/**
 * Three AdamW steps on the GPU from the same weights and batch; returns each step's loss, the weights after
 * the last, and the buffers created by each step.
 */
async function steps(trimAt: TrimAt): Promise<{ losses: number[]; weights: Float32Array[]; created: number[] }> {
  const gpu = T.webgpuKernels()!.gpu;
  const params = new Map([...host.params].map(([n, p]) => [n, new T.Tensor(p.data, p.shape, true, n)] as const));
  const model = new Qwen2Model(config, params);
  const opt = new T.AdamW(model.parameters(), { weightDecay: 0.1 });
  const losses: number[] = [];
  const created: number[] = [];
  for (let step = 0; step < 3; step++) {
    const before = gpu.stats().created;
    const loss = T.crossEntropy(model.logits(model.forward(ids, 2, 16)), targets);
    losses.push(loss.item());
    loss.backward();
    // the backward pass freed gradients and activations while their commands were still being encoded
    if (trimAt === 'inside') gpu.trim();
    T.clipGradNorm(model.parameters(), 1);
    opt.step(1e-3);
    if (trimAt === 'inside') gpu.trim();
    opt.zeroGrad();
    await T.releaseUnusedMemory();
    if (trimAt === 'between') await T.releaseGpuMemory();
    created.push(gpu.stats().created - before);
  }
  return { losses, weights: model.parameters().map((p) => p.read()), created };
}

test(
  'a trim between steps or inside one changes no number a training step computes',
  { skip: webgpuSkip() },
  async () => {
    T.setBackend('webgpu');
    try {
      const plain = await steps('never');
      for (const trimAt of ['between', 'inside'] as const) {
        const trimmed = await steps(trimAt);
        assert.deepEqual(trimmed.losses, plain.losses, `losses with a trim ${trimAt}`);
        trimmed.weights.forEach((w, i) => assert.deepEqual(w, plain.weights[i], `weight ${i} with a trim ${trimAt}`));
        // a trimmed pool makes the next step create its buffers again, as the first step did
        assert.ok(trimmed.created[2] > 0, `buffers created per step with a trim ${trimAt}: ${trimmed.created}`);
      }
    } finally {
      T.setBackend('native');
    }
  },
);
