/**
 * One full training step of a tiny Qwen2 decoder (forward, cross-entropy with ignored targets,
 * backward, clip by global norm, AdamW) against the same step in PyTorch (float64) from the same weights:
 * loss and gradient norm to relErr 1e-5, each parameter's gradient to relErr ≤ 1e-4, and every
 * parameter after the step within 1e-4 (absolute) of PyTorch's. Runs on every backend, WebGPU included
 * (on lavapipe in CI).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { decodeF64, encodeF32, relErr, runTorch } from '../helpers/torch.js';
import { pythonConfig, tinyQwen2Config } from '../helpers/tiny-qwen2.js';
import { webgpuSkip } from '../helpers/webgpu.js';

const config = tinyQwen2Config({
  vocabSize: 67,
  hiddenSize: 48,
  numAttentionHeads: 6,
  numKeyValueHeads: 2,
  headDim: 8,
  intermediateSize: 72,
  numHiddenLayers: 3,
  tieWordEmbeddings: false,
});
const batch = 3,
  seq = 11;
const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, max_norm: 0.5, batch, seq };

const rng = new T.Rng(4242);
const initial = Qwen2Model.random(config, rng, 0.2);
const ids = Int32Array.from({ length: batch * seq }, () => rng.int(config.vocabSize));
// next-token targets, the last position of each row and a few others ignored
const targets = Int32Array.from({ length: batch * seq }, (_, i) =>
  (i + 1) % seq === 0 || i % 7 === 3 ? -100 : ids[i + 1],
);
const snapshot = new Map([...initial.params].map(([n, p]) => [n, Float32Array.from(p.data)]));
const order = initial.parameters().map((p) => [p.name!, p.shape] as const);

interface TorchStep {
  loss: number;
  norm: number;
  grads: Record<string, string>;
  params: Record<string, string>;
}
const ref = runTorch<TorchStep>('qwen2_train_step.py', {
  config: pythonConfig(config),
  opts,
  order,
  ids: [...ids],
  targets: [...targets],
  weights: Object.fromEntries(
    [...snapshot].map(([n, d]) => [n, { shape: initial.params.get(n)!.shape, data: encodeF32(d) }]),
  ),
});

function step(backend: T.BackendName): void {
  T.setBackend(backend);
  try {
    const params = new Map(
      [...snapshot].map(([n, d]) => [n, new T.Tensor(Float32Array.from(d), initial.params.get(n)!.shape, true)]),
    );
    const model = new Qwen2Model(config, params);
    const logits = model.logits(model.forward(ids, batch, seq));
    const loss = T.crossEntropy(logits, targets);
    loss.backward();
    assert.ok(relErr([loss.item()], [ref.loss]) <= 1e-5, `loss ${loss.item()} vs ${ref.loss}`);
    for (const p of model.parameters()) {
      const e = relErr(p.readGrad()!, decodeF64(ref.grads[p.name!]));
      assert.ok(e <= 1e-4, `gradient of ${p.name}: relErr ${e}`);
    }
    const norm = T.clipGradNorm(model.parameters(), opts.max_norm);
    assert.ok(relErr([norm], [ref.norm]) <= 1e-5, `grad norm ${norm} vs ${ref.norm}`);
    const opt = new T.AdamW(model.parameters(), {
      beta1: opts.beta1,
      beta2: opts.beta2,
      eps: opts.eps,
      weightDecay: opts.weight_decay,
    });
    opt.step(opts.lr);
    for (const p of model.parameters()) {
      const want = decodeF64(ref.params[p.name!]);
      const got = p.read();
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      assert.ok(worst <= 1e-4, `${p.name} after the step: max |ours − torch| = ${worst}`);
    }
  } finally {
    T.setBackend('js');
  }
}

test('one training step matches PyTorch (TS backend)', () => step('js'));
test('one training step matches PyTorch (native backend)', { skip: !T.nativeKernels() }, () => step('native'));
test('one training step matches PyTorch (WebGPU backend)', { skip: webgpuSkip() }, () => step('webgpu'));
