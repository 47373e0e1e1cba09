/**
 * The Qwen2 model on WebGPU (lavapipe in CI) against the native backend, from the same weights:
 * 32 greedy tokens from 4 prompts of different lengths (batched, so padding and the KV cache are
 * exercised) must be identical, and the final-norm state captured at the embed token must agree to
 * cosine ≥ 0.9999 — with float32 weights, and with frozen bf16 weights widened inside the kernels. Sampled
 * generation (temperature, drawn on the GPU) must give the CPU's tokens for the same seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { generate, type GenerateOptions, type Generation } from '../../src/model/generate.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';
import { webgpuSkip } from '../helpers/webgpu.js';

const config = tinyQwen2Config({
  vocabSize: 97,
  hiddenSize: 64,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 16,
  intermediateSize: 96,
  numHiddenLayers: 2,
  maxPositionEmbeddings: 128,
});
const EMBED = 96;
const rng = new T.Rng(2024);
const weights = Qwen2Model.random(config, rng, 0.3);
const host = new Map([...weights.params].map(([n, p]) => [n, { shape: p.shape, data: Float32Array.from(p.data) }]));
const prompts = [5, 9, 2, 13].map((n) => Array.from({ length: n }, () => 1 + rng.int(90)));

function run(
  backend: T.BackendName,
  dtype: 'f32' | 'bf16',
  sampling: GenerateOptions = { maxNewTokens: 32 },
): Generation[] {
  T.setBackend(backend);
  try {
    const params = new Map(
      [...host].map(([n, { shape, data }]) => {
        const frozen = dtype === 'bf16' && !n.endsWith('norm.weight') && !n.endsWith('.bias');
        const values = frozen ? T.HalfArray.from(data, 'bf16') : Float32Array.from(data);
        return [n, new T.Tensor(values, shape, false, n)] as const;
      }),
    );
    const model = new Qwen2Model(config, params);
    // the embed token is fed after the prompt so its state is captured, as embedding a query does
    return T.noGrad(() =>
      generate(
        model,
        prompts.map((p) => [...p, EMBED]),
        { ...sampling, captureTokens: [EMBED] },
      ),
    );
  } finally {
    T.setBackend('native');
  }
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

for (const dtype of ['f32', 'bf16'] as const) {
  test(
    `greedy tokens and the embed-token state on WebGPU match the native backend (${dtype} weights)`,
    {
      skip: webgpuSkip(),
    },
    () => {
      const cpu = run('native', dtype),
        gpu = run('webgpu', dtype);
      for (let b = 0; b < prompts.length; b++) {
        assert.equal(gpu[b].tokens.length, 32);
        assert.deepEqual(gpu[b].tokens, cpu[b].tokens, `prompt ${b}`);
        // chosen on the GPU (greedyPick), the log-probabilities are the CPU's to float32 rounding
        gpu[b].logprobs.forEach((l, i) =>
          assert.ok(
            Math.abs(l - cpu[b].logprobs[i]) <= 1e-4 * Math.max(1, Math.abs(cpu[b].logprobs[i])),
            `prompt ${b}`,
          ),
        );
        const pos = prompts[b].length;
        const c = cosine(gpu[b].hidden.get(pos)!, cpu[b].hidden.get(pos)!);
        assert.ok(c >= 0.9999, `prompt ${b}: embed-token state cosine ${c}`);
      }
    },
  );
}

test(
  "sampled tokens (temperature 1.3, drawn on the GPU) are the CPU backend's for the same seed, rows ending at " +
    'different steps; top-p draws, made on the host, too',
  { skip: webgpuSkip() },
  () => {
    // Over 97 words a draw lands within float32 rounding (≈1e-6) of a boundary about once in 10^4 draws,
    // so these ~150 draws are the CPU's; over a large flat vocabulary they need not be (device-picks.ts).
    for (const sampling of [
      { maxNewTokens: 24, temperature: 1.3, seed: 7, stopTokens: [3, 11] },
      { maxNewTokens: 12, temperature: 0.8, topP: 0.9, seed: 8 },
    ]) {
      const cpu = run('native', 'f32', sampling),
        gpu = run('webgpu', 'f32', sampling);
      if (sampling.stopTokens) {
        const early = cpu.filter((g) => g.finish === 'stop' && g.tokens.length < sampling.maxNewTokens);
        assert.ok(early.length > 0 && early.length < cpu.length, 'some rows end early, so others draw after them');
      }
      for (let b = 0; b < prompts.length; b++) {
        assert.deepEqual(gpu[b].tokens, cpu[b].tokens, `prompt ${b}, ${JSON.stringify(sampling)}`);
        assert.equal(gpu[b].finish, cpu[b].finish);
        gpu[b].logprobs.forEach((l, i) =>
          assert.ok(Math.abs(l - cpu[b].logprobs[i]) <= 1e-4 * Math.max(1, Math.abs(cpu[b].logprobs[i])), `${b}`),
        );
      }
    }
  },
);
