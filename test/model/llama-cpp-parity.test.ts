/**
 * Our Qwen2 forward pass and generation against llama.cpp (node-llama-cpp 3.21.1, CPU) on the same
 * tiny random model exported to an F32 GGUF: last-token final hidden state cosine ≥ 0.9999, and 32
 * greedy tokens equal from several prompts, without and with a LoRA adapter. A first difference is
 * accepted only where our own top-2 logit gap is below 1e-3 (a near-tie either side may break).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { generate } from '../../src/model/generate.js';
import { loraPairsFromPeft, writeQwen2Gguf, writeQwen2LoraGguf } from '../../src/model/gguf.js';
import type { TensorData } from '../../src/model/tensor-data.js';
import { cosine, openLlamaCppModel, type LlamaCppModel } from '../helpers/llama-cpp.js';
import { tinyQwen2Fixture } from '../helpers/random-qwen2.js';

const N_NEW = 32,
  NEAR_TIE = 1e-3,
  RANK = 4,
  ALPHA = 8;
const PROMPTS = [
  [5, 17, 123, 250, 3, 77, 299, 41],
  [297, 40, 41, 42, 43, 298, 297, 100],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  [200],
];

const fx = tinyQwen2Fixture(2024);
const ours = new Qwen2Model(
  fx.config,
  new Map([...fx.tensors].map(([n, t]) => [n, new T.Tensor(Float32Array.from(t.data), t.shape)])),
);
const rng = new T.Rng(31);
const peft = new Map<string, TensorData>();
for (let l = 0; l < fx.config.numHiddenLayers; l++) {
  for (const [proj, out] of [
    ['q_proj', 64],
    ['v_proj', 32],
  ] as const) {
    const prefix = `base_model.model.model.layers.${l}.self_attn.${proj}`;
    peft.set(`${prefix}.lora_A.weight`, { shape: [RANK, 64], data: T.randn([RANK, 64], rng, 1 / 8).data });
    peft.set(`${prefix}.lora_B.weight`, { shape: [out, RANK], data: T.randn([out, RANK], rng, 0.5).data });
  }
}

let dir = '',
  lora = '';
let llama: LlamaCppModel | undefined;

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sr3-parity-'));
  const gguf = path.join(dir, 'model.gguf');
  lora = path.join(dir, 'lora.gguf');
  await writeQwen2Gguf(gguf, { config: fx.config, tensors: fx.tensors, tokenizer: fx.ggufTokenizer, fileType: 'F32' });
  await writeQwen2LoraGguf(lora, { config: fx.config, adapters: loraPairsFromPeft(peft), alpha: ALPHA });
  llama = await openLlamaCppModel(gguf);
});

after(async () => {
  await llama?.dispose();
  await fsp.rm(dir, { recursive: true, force: true });
});

function attachTestLora(on: boolean): void {
  ours.adapters.clear();
  if (!on) return;
  for (const [base, pair] of loraPairsFromPeft(peft)) {
    ours.adapters.set(base.replace(/\.weight$/, ''), {
      a: new T.Tensor(Float32Array.from(pair.a.data), pair.a.shape),
      b: new T.Tensor(Float32Array.from(pair.b.data), pair.b.shape),
      scale: ALPHA / RANK,
      dropout: 0,
      merged: false,
    });
  }
}

/** Our top-2 logit gap after `seq`. */
function gapAfter(seq: number[]): number {
  const logits = T.noGrad(() => ours.logits(ours.forward(Int32Array.from(seq), 1, seq.length))).data;
  const row = Array.from(logits.subarray((seq.length - 1) * fx.config.vocabSize)).sort((a, b) => b - a);
  return row[0] - row[1];
}

function assertGreedyAgrees(label: string, prompt: number[], mine: number[], theirs: number[]): void {
  for (let i = 0; i < N_NEW; i++) {
    if (mine[i] === theirs[i]) continue;
    const gap = gapAfter([...prompt, ...mine.slice(0, i)]);
    assert.ok(
      gap < NEAR_TIE,
      `${label}: step ${i}: ours ${mine[i]} vs llama.cpp ${theirs[i]} (our top-2 gap ${gap})\nours      ` +
        `${mine.join(',')}\nllama.cpp ${theirs.join(',')}`,
    );
    return;
  }
}

test('last-token final hidden state matches llama.cpp (cosine ≥ 0.9999)', async () => {
  attachTestLora(false);
  for (const p of PROMPTS) {
    const h = T.noGrad(() => ours.forward(Int32Array.from(p), 1, p.length)).data;
    const d = fx.config.hiddenSize;
    const c = cosine(h.subarray((p.length - 1) * d), await llama!.lastHidden(p));
    assert.ok(c >= 0.9999, `prompt ${p}: cosine ${c}`);
  }
});

test('32 greedy tokens agree with llama.cpp from several prompts', async () => {
  attachTestLora(false);
  const gens = generate(ours, PROMPTS, { maxNewTokens: N_NEW });
  for (const [i, p] of PROMPTS.entries()) {
    assert.ok(new Set(gens[i].tokens).size >= 8, 'continuations are varied, so agreement means something');
    assertGreedyAgrees(`prompt ${i}`, p, gens[i].tokens, await llama!.greedy(p, N_NEW));
  }
});

test('with a LoRA adapter (ours attached, llama.cpp from the adapter GGUF) the 32 greedy tokens agree', async () => {
  attachTestLora(false);
  const base = generate(ours, PROMPTS, { maxNewTokens: N_NEW });
  attachTestLora(true);
  const gens = generate(ours, PROMPTS, { maxNewTokens: N_NEW });
  for (const [i, p] of PROMPTS.entries()) {
    assert.notDeepEqual(gens[i].tokens, base[i].tokens, 'the adapter changes the continuation');
    assertGreedyAgrees(`prompt ${i} with LoRA`, p, gens[i].tokens, await llama!.greedy(p, N_NEW, { lora }));
  }
  attachTestLora(false);
});
