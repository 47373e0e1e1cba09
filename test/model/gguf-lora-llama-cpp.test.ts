/**
 * LoRA adapter GGUF validated end to end: random adapters on q_proj and v_proj, exported with
 * writeQwen2LoraGguf and applied by llama.cpp at context creation, must give the greedy tokens of the
 * PyTorch reference model with merged weights W + (alpha / r) · B · A. Same tie-tolerant rule as
 * gguf-llama-cpp.test.ts: a first difference is accepted only where PyTorch's top-2 gap < 1e-3.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loraPairsFromPeft, writeQwen2Gguf, writeQwen2LoraGguf } from '../../src/model/gguf.js';
import { writeQwen2Config } from '../../src/model/qwen2-config.js';
import { saveSafetensors } from '../../src/model/safetensors.js';
import type { TensorData } from '../../src/model/tensor-data.js';
import { openLlamaCppModel, type LlamaCppModel } from '../helpers/llama-cpp.js';
import { runOracle } from '../helpers/python-oracle.js';
import { tinyQwen2Fixture } from '../helpers/random-qwen2.js';
import { SeededRandom } from '../helpers/seeded-random.js';

const N_NEW = 32;
const NEAR_TIE = 1e-3;
const RANK = 4;
const ALPHA = 8;
const PROMPTS = [
  [5, 17, 123, 250, 3, 77, 299, 41],
  [297, 40, 41, 42, 43, 298, 297, 100],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
];

interface OracleResult {
  greedy: number[];
  gaps: number[];
}

let dir = '';
let model: LlamaCppModel | undefined;
let loraFile = '';
let base: OracleResult[] = [];
let merged: OracleResult[] = [];

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gguf-lora-'));
  const fx = tinyQwen2Fixture(1234);
  const rng = new SeededRandom(77);
  const peft = new Map<string, TensorData>();
  for (let layer = 0; layer < fx.config.numHiddenLayers; layer++) {
    for (const [proj, out] of [
      ['q_proj', 64],
      ['v_proj', 32],
    ] as const) {
      const prefix = `base_model.model.model.layers.${layer}.self_attn.${proj}`;
      peft.set(`${prefix}.lora_A.weight`, { shape: [RANK, 64], data: rng.normalArray(RANK * 64, 1 / 8) });
      peft.set(`${prefix}.lora_B.weight`, { shape: [out, RANK], data: rng.normalArray(out * RANK, 0.5) });
    }
  }
  const weights = path.join(dir, 'model.safetensors');
  const adapter = path.join(dir, 'adapter_model.safetensors');
  const config = path.join(dir, 'config.json');
  await saveSafetensors(weights, fx.tensors);
  await saveSafetensors(adapter, peft);
  await writeQwen2Config(config, fx.config);
  const gguf = path.join(dir, 'model.gguf');
  loraFile = path.join(dir, 'lora.gguf');
  await writeQwen2Gguf(gguf, { config: fx.config, tensors: fx.tensors, tokenizer: fx.ggufTokenizer, fileType: 'F32' });
  await writeQwen2LoraGguf(loraFile, { config: fx.config, adapters: loraPairsFromPeft(peft), alpha: ALPHA });
  const request = { config, weights, prompts: PROMPTS, n_new: N_NEW };
  base = (await runOracle<{ results: OracleResult[] }>('qwen2_forward.py', request)).results;
  merged = (
    await runOracle<{ results: OracleResult[] }>('qwen2_forward.py', {
      ...request,
      lora: { weights: adapter, alpha: ALPHA },
    })
  ).results;
  model = await openLlamaCppModel(gguf);
});

after(async () => {
  await model?.dispose();
  await fsp.rm(dir, { recursive: true, force: true });
});

function assertGreedyAgrees(label: string, ours: number[], ref: OracleResult): void {
  for (let i = 0; i < ref.greedy.length; i++) {
    if (ours[i] === ref.greedy[i]) continue;
    assert.ok(
      ref.gaps[i]! < NEAR_TIE,
      `${label}: step ${i}: llama.cpp ${ours[i]} vs PyTorch ${ref.greedy[i]} (top-2 gap ` +
        `${ref.gaps[i]})\nllama.cpp ${ours.join(',')}\nPyTorch   ${ref.greedy.join(',')}`,
    );
    return;
  }
}

test('the adapter changes the reference continuations (so agreement below is not the base model agreeing)', () => {
  const changed = PROMPTS.filter((_, i) => base[i]!.greedy.join() !== merged[i]!.greedy.join()).length;
  assert.equal(changed, PROMPTS.length, 'every prompt continues differently with the adapter');
});

test('llama.cpp with the LoRA GGUF = PyTorch with W + (alpha/r)·B·A merged, 32 greedy tokens', async () => {
  for (const [i, p] of PROMPTS.entries()) {
    const g = await model!.greedy(p, N_NEW, { lora: loraFile });
    assert.equal(g.length, N_NEW);
    assertGreedyAgrees(`prompt ${i} with LoRA`, g, merged[i]!);
  }
});

test('without the adapter, the same llama.cpp model gives the base continuations', async () => {
  for (const [i, p] of PROMPTS.entries())
    assertGreedyAgrees(`prompt ${i} base`, await model!.greedy(p, N_NEW), base[i]!);
});
