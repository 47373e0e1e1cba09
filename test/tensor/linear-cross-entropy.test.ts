/**
 * linearCrossEntropy, beyond the op cases (PyTorch, finite differences, TS and WebGPU backends: op-cases.ts):
 * it is crossEntropy(linear(h, w)) for an LM head of many chunks and for a frozen 16-bit head, a model's
 * lmLoss trains as its logits did, and on a GPU its peak memory is a chunk's logits, not the batch's.
 * Tolerances: 1e-5 relative against the unfused path on one backend (the same products, summed in another
 * order), 1e-4 on WebGPU against native.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { HalfArray } from '../../src/tensor/half-float.js';
import { relErr } from '../helpers/rel-err.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';
import { webgpuSkip } from '../helpers/webgpu.js';

function inputs(rows: number, d: number, vocab: number, seed: number) {
  const rng = new T.Rng(seed);
  const h = Float32Array.from({ length: rows * d }, () => rng.normal());
  const w = Float32Array.from({ length: vocab * d }, () => rng.normal() * 0.3);
  const targets = Int32Array.from({ length: rows }, (_, i) => (i % 17 === 5 ? -100 : rng.int(vocab)));
  return { h, w, targets };
}

interface Run {
  fused: boolean;
  reduction: 'mean' | 'sum';
  chunkRows: number;
  /** Called once the inputs are tensors, before the loss (a GPU peak measured from there). */
  start?: () => void;
}

/** Loss and gradients of the fused op, or of crossEntropy(linear(...)), on the active backend. */
function lossAndGrads(rows: number, d: number, vocab: number, o: Run) {
  const { h, w, targets } = inputs(rows, d, vocab, rows + vocab);
  const ht = new T.Tensor(h, [rows, d], true),
    wt = new T.Tensor(w, [vocab, d], true);
  o.start?.();
  const loss = o.fused
    ? T.linearCrossEntropy(ht, wt, targets, { reduction: o.reduction, chunkRows: o.chunkRows })
    : T.crossEntropy(T.linear(ht, wt), targets, { reduction: o.reduction });
  loss.backward();
  return { loss: loss.item(), dh: T.kernels().toHost(ht.grad!), dw: T.kernels().toHost(wt.grad!) };
}

function bothWays(rows: number, d: number, vocab: number, chunkRows: number, reduction: 'mean' | 'sum') {
  return {
    fused: lossAndGrads(rows, d, vocab, { fused: true, reduction, chunkRows }),
    plain: lossAndGrads(rows, d, vocab, { fused: false, reduction, chunkRows }),
  };
}

test('linearCrossEntropy equals crossEntropy(linear) over many chunks, a ragged last one and ignored rows', () => {
  for (const reduction of ['mean', 'sum'] as const) {
    const { fused, plain } = bothWays(203, 24, 301, 16, reduction);
    assert.ok(Math.abs(fused.loss - plain.loss) <= 1e-5 * Math.abs(plain.loss), `${fused.loss} vs ${plain.loss}`);
    assert.ok(relErr(fused.dh, plain.dh) <= 1e-5, `dh ${relErr(fused.dh, plain.dh)}`);
    assert.ok(relErr(fused.dw, plain.dw) <= 1e-5, `dw ${relErr(fused.dw, plain.dw)}`);
  }
});

test('a frozen 16-bit head: the loss and the gradient to h are those through linear', () => {
  const rows = 40,
    d = 16,
    vocab = 70;
  const { h, w, targets } = inputs(rows, d, vocab, 9);
  const head = new T.Tensor(HalfArray.from(w, 'bf16'), [vocab, d]);
  const grads = (fused: boolean): { loss: number; dh: Float32Array } => {
    const ht = new T.Tensor(Float32Array.from(h), [rows, d], true);
    const loss = fused
      ? T.linearCrossEntropy(ht, head, targets, { chunkRows: 7 })
      : T.crossEntropy(T.linear(ht, head), targets);
    loss.backward();
    return { loss: loss.item(), dh: T.kernels().toHost(ht.grad!) };
  };
  const a = grads(true),
    b = grads(false);
  assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * b.loss);
  assert.ok(relErr(a.dh, b.dh) <= 1e-5);
});

test("a model's lmLoss is the loss of its logits, and with no gradient recorded it keeps no gradient work", () => {
  const config = tinyQwen2Config({ vocabSize: 97, hiddenSize: 32, numHiddenLayers: 1, intermediateSize: 48 });
  const model = Qwen2Model.random(config, new T.Rng(2), 0.1);
  const ids = Int32Array.from({ length: 3 * 11 }, (_, i) => (i * 7) % 97);
  const targets = Int32Array.from({ length: 3 * 11 }, (_, i) => (i * 5 + 1) % 97);
  const h = model.forward(ids, 3, 11);
  const a = model.lmLoss(h, targets).item(),
    b = T.crossEntropy(model.logits(h), targets).item();
  assert.ok(Math.abs(a - b) <= 1e-5 * b, `${a} vs ${b}`);
  // without a graph to feed, no chunk's gradient is taken (the kernel that makes it is never called)
  const k = T.kernels();
  const backward = k.crossEntropyBackward;
  let calls = 0;
  k.crossEntropyBackward = (...args) => {
    calls++;
    backward.apply(k, args);
  };
  try {
    T.noGrad(() => model.lmLoss(h, targets, { reduction: 'sum' }));
    assert.equal(calls, 0);
    model.lmLoss(h, targets, { chunkRows: 10 });
    assert.equal(calls, 4, 'with a graph, one call per chunk of 10 of the 33 rows');
  } finally {
    k.crossEntropyBackward = backward;
  }
});

test(
  'on WebGPU: equal to native, and the peak is a chunk of logits, not the batch (2 MiB chunks of 16 MiB)',
  { skip: webgpuSkip() },
  () => {
    const rows = 512,
      d = 64,
      vocab = 8192;
    const cpu = bothWays(rows, d, vocab, 64, 'mean');
    T.setBackend('webgpu');
    try {
      const gpu = T.webgpuKernels()!.gpu;
      const peakOf = (fused: boolean) => {
        let before = 0;
        const start = (): void => {
          before = gpu.heldBytes;
          gpu.resetPeak();
        };
        const r = lossAndGrads(rows, d, vocab, { fused, reduction: 'mean', chunkRows: 64, start });
        return { ...r, peak: gpu.peakBytes - before };
      };
      const fused = peakOf(true),
        plain = peakOf(false);
      assert.ok(Math.abs(fused.loss - cpu.fused.loss) <= 1e-4 * cpu.fused.loss);
      assert.ok(relErr(fused.dh, cpu.fused.dh) <= 1e-4, `dh ${relErr(fused.dh, cpu.fused.dh)}`);
      assert.ok(relErr(fused.dw, cpu.fused.dw) <= 1e-4, `dw ${relErr(fused.dw, cpu.fused.dw)}`);
      const logits = rows * vocab * 4;
      assert.ok(plain.peak >= 2 * logits, `the unfused pass holds logits and their gradient: ${plain.peak}`);
      assert.ok(fused.peak < logits / 2, `fused peak ${fused.peak} bytes, logits ${logits}`);
    } finally {
      T.setBackend('native');
    }
  },
);

test('default chunks: within the backend chunkBytes, whole 128-row blocks where a chunk holds that many', () => {
  const MiB = 2 ** 20;
  // Qwen2.5's vocabulary: 55 rows in 32 MiB; 441 fit in 256 MiB, of which 3 blocks of 128 are taken
  assert.equal(T.chunkRowsFor(151936, 32 * MiB), 55);
  assert.equal(T.chunkRowsFor(151936, 256 * MiB), 384);
  assert.equal(T.chunkRowsFor(16384, 32 * MiB), 512);
  assert.equal(T.chunkRowsFor(300, 32 * MiB), 27904);
  assert.equal(T.chunkRowsFor(2 ** 24, 32 * MiB), 1, 'at least one row');
  try {
    for (const name of ['js', 'native'] as const) {
      T.setBackend(name);
      assert.equal(T.kernels().chunkBytes, 32 * MiB, name);
    }
  } finally {
    T.setBackend('native');
  }
});

test(
  'WebGPU chunks: 32 MiB on a software adapter (lavapipe), up to 256 MiB on a hardware one',
  { skip: webgpuSkip() },
  () => {
    T.setBackend('webgpu');
    try {
      const k = T.webgpuKernels()!;
      const { software, maxStorageBufferBindingSize: binding } = k.gpu.facts;
      const MiB = 2 ** 20;
      if (software) assert.equal(k.chunkBytes, 32 * MiB);
      else
        assert.ok(k.chunkBytes >= 32 * MiB && k.chunkBytes <= 256 * MiB && k.chunkBytes <= binding, `${k.chunkBytes}`);
    } finally {
      T.setBackend('native');
    }
  },
);
