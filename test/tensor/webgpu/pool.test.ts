/**
 * The WebGPU buffer pool and command batching, on a tiny Qwen2 training step (forward, cross-entropy,
 * backward, clip, AdamW, loss read): once warm, a step creates no GPU buffer at all, and it is sent in a
 * handful of command buffers, not one per op. Between steps the loop awaits releaseUnusedMemory, as
 * the training loop does, so the tensors of the last step give their buffers back; over many steps the
 * GPU memory held stays flat.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { Qwen2Model } from '../../../src/model/qwen2-model.js';
import { tinyQwen2Config } from '../../helpers/tiny-qwen2.js';
import { webgpuSkip } from '../../helpers/webgpu.js';

test('a warm training step creates no GPU buffer and uses few submits', { skip: webgpuSkip() }, async () => {
  const config = tinyQwen2Config({ vocabSize: 64, hiddenSize: 32, numHiddenLayers: 2, intermediateSize: 48 });
  const rng = new T.Rng(7);
  const host = Qwen2Model.random(config, rng, 0.1);
  const ids = Int32Array.from({ length: 2 * 16 }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from(ids, (_, i) => (i % 16 === 15 ? -100 : ids[i + 1]));
  T.setBackend('webgpu');
  try {
    const gpu = T.webgpuKernels()!.gpu;
    const params = new Map([...host.params].map(([n, p]) => [n, new T.Tensor(p.data, p.shape, true, n)] as const));
    const model = new Qwen2Model(config, params);
    const opt = new T.AdamW(model.parameters(), { weightDecay: 0.1 });
    const counts: { created: number; submits: number; heldBytes: number }[] = [];
    for (let step = 0; step < 40; step++) {
      const loss = T.crossEntropy(model.logits(model.forward(ids, 2, 16)), targets);
      loss.backward();
      T.clipGradNorm(model.parameters(), 1);
      opt.step(1e-3);
      opt.zeroGrad();
      assert.ok(Number.isFinite(loss.item()));
      await T.releaseUnusedMemory();
      counts.push(gpu.stats());
    }
    const created = counts.map((c) => c.created);
    assert.equal(created[39], created[20], `buffers created after each step: ${created.join(', ')}`);
    const held = counts.map((c) => c.heldBytes);
    const peak = (from: number, to: number): number => Math.max(...held.slice(from, to));
    assert.ok(peak(20, 40) <= peak(0, 20), `GPU bytes held after each step: ${held.join(', ')}`);
    const submits = counts[39].submits - counts[38].submits;
    assert.ok(submits <= 12, `a warm step took ${submits} submits`);
  } finally {
    T.setBackend('native');
  }
});

test(
  'a long synchronous inference loop keeps GPU memory bounded (no event-loop turn needed on Node 20–22)',
  { skip: webgpuSkip() },
  async (t) => {
    const config = tinyQwen2Config({ vocabSize: 64, hiddenSize: 64, numHiddenLayers: 2, intermediateSize: 128 });
    const host = Qwen2Model.random(config, new T.Rng(3), 0.1);
    T.setBackend('webgpu');
    try {
      const gpu = T.webgpuKernels()!.gpu;
      const params = new Map([...host.params].map(([n, p]) => [n, new T.Tensor(p.data, p.shape, false, n)] as const));
      const model = new Qwen2Model(config, params);
      const ids = new Int32Array(32 * 128).fill(5);
      // Recording gradients (none flow: the weights are frozen), a forward releases nothing as it goes.
      const kept = (): Float32Array => model.forward(ids, 32, 128).read();
      const released = (): void =>
        T.noGrad(() => {
          const h = model.forward(ids, 32, 128);
          h.read();
          h.release();
        });
      const before = gpu.heldBytes;
      kept();
      const one = gpu.heldBytes - before; // nothing is freed inside a synchronous forward: all it allocated
      assert.ok(one > 2 ** 24, `a forward allocates ${one} bytes`);
      gpu.resetPeak();
      // the way a training loop's forward passes run, one after another, never awaiting
      for (let i = 0; i < 8; i++) kept();
      const peak = gpu.peakBytes - before;
      if (gpu.collectsSynchronously) {
        // garbage collected as memory doubles (plus 64 MiB): not 8 forwards' worth piled up
        assert.ok(peak < 3 * one + 2 ** 27, `peak ${peak} bytes over 8 forwards of ${one}`);
      } else {
        // without cleanupSome (Node 24 on) the finalizers wait for the event loop: one turn gives it all back
        t.diagnostic(`Node ${process.versions.node}: 8 forwards in a row held ${peak} bytes, ${one} each`);
        await T.releaseUnusedMemory();
        await T.releaseUnusedMemory();
        assert.ok(gpu.heldBytes - before <= one, `held ${gpu.heldBytes - before} bytes after a turn of the loop`);
      }
      // the way Embedder.forwardBatches runs over a corpus: each activation goes back to the pool once used
      const mark = gpu.heldBytes;
      gpu.resetPeak();
      for (let i = 0; i < 8; i++) released();
      const inference = gpu.peakBytes - mark;
      assert.ok(
        inference < one / 2,
        `peak ${inference} bytes over 8 inference forwards, ${one} for one that keeps all`,
      );
    } finally {
      T.setBackend('native');
    }
  },
);
