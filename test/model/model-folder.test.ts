import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { addSpecialTokens, isModelFolder, loadModelFolder, saveModelFolder } from '../../src/model/model-folder.js';
import { isAdapterFolder } from '../../src/model/peft-config.js';
import { leaveAsideAsKilledWrite } from '../helpers/killed-write.js';
import {
  LORA_TARGETS,
  attachLora,
  loadLoraAdapter,
  loraModulePaths,
  loraParameters,
  mergeLora,
  saveLoraAdapter,
  unmergeLora,
} from '../../src/model/lora.js';
import { loadSafetensors, saveSafetensors, saveSafetensorsFolder } from '../../src/model/safetensors.js';
import type { TensorData } from '../../src/model/tensor-data.js';
import { relErr } from '../helpers/torch.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';

function tiny(seed = 1, tie = true): { model: Qwen2Model; tokenizer: Tokenizer } {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
  const tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const config = tinyQwen2Config({ vocabSize: tokenizer.vocabSize, tieWordEmbeddings: tie });
  return { model: Qwen2Model.random(config, new T.Rng(seed), 0.1), tokenizer };
}

function hidden(model: Qwen2Model, ids: number[]): Float32Array {
  return T.noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length).data);
}

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'sr3-model-'));
const ids = [5, 77, 123, 9, 250, 31, 2];

test('save → load round trip is bit-exact in F32, and F16/BF16 reload their rounded values exactly', async () => {
  const m = tiny(1, false);
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    const dir = tmp();
    try {
      await saveModelFolder(dir, m, { dtype });
      const back = await loadModelFolder(dir);
      const wide = await loadModelFolder(dir, { precision: 'f32' });
      for (const p of m.model.parameters()) {
        const q = back.model.params.get(p.name!)!;
        // frozen matrices stay in the file's 16 bits; norms and biases, and everything with precision f32, are f32
        assert.equal(q.dtype, dtype === 'F32' || p.ndim === 1 ? 'f32' : dtype.toLowerCase(), p.name);
        assert.equal(wide.model.params.get(p.name!)!.dtype, 'f32');
        assert.deepEqual(wide.model.params.get(p.name!)!.data, q.float32().data, p.name);
        if (dtype === 'F32') assert.deepEqual(q.data, p.data, p.name);
        else assert.ok(relErr(q.float32().data, p.data) < (dtype === 'F16' ? 1e-3 : 1e-2), `${p.name} ${dtype}`);
      }
      if (dtype !== 'F32') {
        // a second round trip of already-rounded values changes nothing, whether they were held in 16 or 32 bits
        for (const from of [back, wide]) {
          const dir2 = tmp();
          await saveModelFolder(dir2, from, { dtype });
          const again = await loadModelFolder(dir2);
          for (const p of back.model.parameters()) assert.deepEqual(again.model.params.get(p.name!)!.values, p.values);
          rmSync(dir2, { recursive: true });
        }
      }
      assert.deepEqual(hidden(back.model, ids).length, ids.length * m.model.config.hiddenSize);
      assert.equal(back.tokenizer.encode('hello world').join(), m.tokenizer.encode('hello world').join());
    } finally {
      rmSync(dir, { recursive: true });
    }
  }
});

test('a folder with a missing file, a foreign architecture or a wrong-shaped weight is refused by name', async () => {
  const m = tiny();
  const dir = tmp();
  try {
    await assert.rejects(loadModelFolder(path.join(dir, 'nope')), /no such folder/);
    await assert.rejects(loadModelFolder(dir), /config\.json: is missing/);
    // a file where the folder belongs (a GGUF, say) is named as such, not as a missing config.json
    writeFileSync(path.join(dir, 'model.gguf'), 'GGUF');
    await assert.rejects(
      loadModelFolder(path.join(dir, 'model.gguf')),
      new RegExp(
        'model\\.gguf: is a file, not a model folder; give the folder that holds config\\.json and the weights, ' +
          'or a LoRA adapter folder ' +
          '\\(a GGUF runs with --engine llama\\.cpp --gguf, beside its model folder\\)\\.$',
      ),
    );
    rmSync(path.join(dir, 'model.gguf'));
    await saveModelFolder(dir, m);
    rmSync(path.join(dir, 'tokenizer.json'));
    await assert.rejects(loadModelFolder(dir), /tokenizer\.json/);
    await saveModelFolder(dir, m);
    rmSync(path.join(dir, 'model.safetensors'));
    await assert.rejects(loadModelFolder(dir), /model\.safetensors/);
    await saveModelFolder(dir, m);
    writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama' }),
    );
    await assert.rejects(loadModelFolder(dir), /LlamaForCausalLM.*not supported/);
    const wrong = tiny();
    await saveModelFolder(dir, {
      model: new Qwen2Model(
        { ...wrong.model.config, intermediateSize: 80 },
        Qwen2Model.random({ ...wrong.model.config, intermediateSize: 80 }, new T.Rng(2)).params,
      ),
      tokenizer: wrong.tokenizer,
    });
    writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({
        architectures: ['Qwen2ForCausalLM'],
        model_type: 'qwen2',
        vocab_size: wrong.model.config.vocabSize,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 128,
        rope_theta: 10000,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
      }),
    );
    await assert.rejects(
      loadModelFolder(dir),
      /config\.json: "intermediate_size" 64 makes dimension 0 of tensor "\S+\.gate_proj\.weight" 64, but the weights/,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('adding <|embed_token|> grows the embedding and untied head only when needed, and is saved back', async () => {
  const base = tiny(3, false);
  const before = base.model.config.vocabSize;
  const {
    model,
    ids: [id],
  } = addSpecialTokens(base, ['<|search_token|>']);
  assert.equal(id, before);
  assert.equal(model.config.vocabSize, before + 1);
  assert.deepEqual(model.params.get('lm_head.weight')!.shape, [before + 1, 32]);
  // old rows unchanged, so the model computes the same on old tokens
  assert.ok(relErr(hidden(model, ids), hidden(base.model, ids)) === 0);
  const dir = tmp();
  try {
    await saveModelFolder(dir, { model, tokenizer: base.tokenizer });
    const back = await loadModelFolder(dir);
    assert.equal(back.model.config.vocabSize, before + 1);
    assert.deepEqual(back.tokenizer.encode('a<|search_token|>b').includes(id), true);
  } finally {
    rmSync(dir, { recursive: true });
  }
  // a token that already exists needs no resize
  const again = addSpecialTokens({ model, tokenizer: base.tokenizer }, ['<|embed_token|>']);
  assert.equal(again.model, model);
});

test(
  'a table held in bf16 grows in bf16: old rows as ' + 'they were, the new row the bf16 mean of the old ones',
  async () => {
    const base = tiny(6, false);
    const dir = tmp();
    try {
      await saveModelFolder(dir, base, { dtype: 'BF16' });
      const half = await loadModelFolder(dir);
      const wide = await loadModelFolder(dir, { precision: 'f32' });
      const grownHalf = addSpecialTokens(half, ['<|embed_token|>']).model;
      const grownWide = addSpecialTokens(wide, ['<|embed_token|>']).model;
      for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
        const h = grownHalf.params.get(name)!,
          w = grownWide.params.get(name)!;
        assert.equal(h.dtype, 'bf16');
        assert.deepEqual(
          (h.readValues() as T.HalfArray).bits.subarray(0, half.model.params.get(name)!.size),
          (half.model.params.get(name)!.readValues() as T.HalfArray).bits,
        );
        assert.deepEqual(
          (h.readValues() as T.HalfArray).bits,
          T.HalfArray.from(w.data, 'bf16').bits,
          `${name}: the mean row rounds as float32 does`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true });
    }
  },
);

test('weights that would not fit in memory are refused before any is read, with the bytes they need', async () => {
  const m = tiny(7, false);
  const dir = tmp();
  try {
    await saveModelFolder(dir, m, { dtype: 'BF16' });
    const params = m.model.parameters();
    const matrices = params.filter((p) => p.ndim === 2).reduce((a, p) => a + p.size, 0);
    const vectors = params.filter((p) => p.ndim === 1).reduce((a, p) => a + p.size, 0);
    const half = 2 * matrices + 4 * vectors,
      wide = 4 * (matrices + vectors);
    await assert.rejects(
      loadModelFolder(dir, { memoryLimit: half - 1 }),
      new RegExp(
        `its weights as loaded need .* \\(${half} bytes\\) of memory, more than the .* available on this machine`,
      ),
    );
    await loadModelFolder(dir, { memoryLimit: half });
    await assert.rejects(
      loadModelFolder(dir, { memoryLimit: half, trainable: true }),
      new RegExp(`\\(${wide} bytes\\)`),
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test(
  'LoRA: starts as the identity, trains only the adapters, ' +
    'merges and unmerges exactly, round-trips through PEFT files',
  async () => {
    const m = tiny(4);
    const baseHidden = hidden(m.model, ids);
    const baseW = Float32Array.from(m.model.params.get('model.layers.0.self_attn.q_proj.weight')!.data);
    const cfg = {
      rank: 4,
      alpha: 8,
      dropout: 0,
      targets: ['q_proj', 'v_proj', 'down_proj'] as ('q_proj' | 'v_proj' | 'down_proj')[],
    };
    const trainable = attachLora(m.model, cfg, new T.Rng(5));
    assert.equal(trainable.length, 2 * 3 * m.model.config.numHiddenLayers);
    assert.equal(relErr(hidden(m.model, ids), baseHidden), 0, 'B = 0: identity at start');
    // one step of training changes only the adapters
    const opt = new T.AdamW(loraParameters(m.model), { weightDecay: 0 });
    const loss = T.crossEntropy(
      m.model.logits(m.model.forward(Int32Array.from(ids), 1, ids.length)),
      Int32Array.from([...ids.slice(1), -100]),
    );
    loss.backward();
    for (const p of m.model.parameters()) assert.equal(p.grad, null, `${p.name} is frozen`);
    opt.step(1e-2);
    const adapted = hidden(m.model, ids);
    assert.ok(relErr(adapted, baseHidden) > 1e-4, 'adapters changed the model');
    mergeLora(m.model);
    assert.ok(relErr(hidden(m.model, ids), adapted) < 1e-5, 'merged = unmerged forward');
    unmergeLora(m.model);
    assert.ok(
      relErr(m.model.params.get('model.layers.0.self_attn.q_proj.weight')!.data, baseW) < 1e-6,
      'unmerge restores W',
    );
    assert.ok(relErr(hidden(m.model, ids), adapted) < 1e-5);
    const dir = tmp();
    try {
      await saveLoraAdapter(dir, m.model, cfg, 'tiny');
      assert.ok(
        existsSync(path.join(dir, 'adapter_config.json')) && existsSync(path.join(dir, 'adapter_model.safetensors')),
      );
      const fresh = tiny(4);
      const loaded = await loadLoraAdapter(dir, fresh.model);
      assert.deepEqual(loaded, cfg);
      assert.ok(relErr(hidden(fresh.model, ids), adapted) < 1e-6, 'loaded adapter gives the same model');
      await assert.rejects(
        loadLoraAdapter(path.join(dir, 'missing'), fresh.model),
        /missing: no such folder; give the folder that holds adapter_config\.json/,
      );
      // what would change the weights' meaning, and is not modelled, is refused rather than ignored
      const configFile = path.join(dir, 'adapter_config.json');
      const saved = JSON.parse(readFileSync(configFile, 'utf8'));
      const refused: [Record<string, unknown>, RegExp][] = [
        [{ alpha_pattern: { v_proj: 64 } }, /"alpha_pattern" \{"v_proj":64\} gives some modules their own rank/],
        [{ rank_pattern: { q_proj: 8 } }, /"rank_pattern" .* not supported/],
        [{ target_modules: ['q_proj', 'qkv'] }, /target module "qkv" is not a Qwen2 linear layer/],
        [
          { target_modules: ['q_proj'] },
          /lora_A\.weight" is not on a module that adapter_config\.json's target_modules/,
        ],
        [{ r: 0 }, /"r" must be a positive integer, got 0/],
        [{ use_dora: true }, /DoRA adapters are not supported/],
        // the file holds tensors for modules the settings leave out: loaded, the adapter would lose them
        [{ layers_to_transform: [0] }, /"base_model\.model\.model\.layers\.1\..* is not on a module that/],
        [{ bias: 'lora_only' }, /"bias" "lora_only" trains the base model's biases along with the adapter/],
      ];
      for (const [change, expected] of refused) {
        writeFileSync(configFile, JSON.stringify({ ...saved, ...change }));
        await assert.rejects(loadLoraAdapter(dir, tiny(4).model), expected, JSON.stringify(change));
      }
      writeFileSync(configFile, '{"r": 4,');
      await assert.rejects(loadLoraAdapter(dir, tiny(4).model), /adapter_config\.json: is not valid JSON/);
      // PEFT writes empty patterns by default
      const defaults = { alpha_pattern: {}, rank_pattern: {}, layers_to_transform: null, exclude_modules: null };
      writeFileSync(configFile, JSON.stringify({ ...saved, ...defaults }));
      assert.deepEqual(await loadLoraAdapter(dir, tiny(4).model), cfg);
    } finally {
      rmSync(dir, { recursive: true });
    }
    assert.throws(
      () => attachLora(tiny().model, { ...cfg, targets: ['qkv' as 'q_proj'] }, new T.Rng(1)),
      /not a Qwen2 linear layer/,
    );
  },
);

test('RoPE inverse frequencies saved in a checkpoint are skipped, as transformers skips them', async () => {
  const dir = tmp();
  try {
    const m = tiny(6);
    await saveModelFolder(dir, m);
    const tensors = await loadSafetensors(path.join(dir, 'model.safetensors'));
    tensors.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [4], data: new Float32Array(4).fill(1) });
    await saveSafetensors(path.join(dir, 'model.safetensors'), tensors);
    const loaded = await loadModelFolder(dir);
    assert.equal(relErr(hidden(loaded.model, ids), hidden(m.model, ids)), 0);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("JSON files saved with a byte-order mark (an editor's UTF-8 with BOM) load as without it", async () => {
  const dir = tmp();
  try {
    const m = tiny(7);
    await saveModelFolder(dir, m);
    const tensors = await loadSafetensors(path.join(dir, 'model.safetensors'));
    rmSync(path.join(dir, 'model.safetensors'));
    await saveSafetensorsFolder(dir, tensors, { maxShardBytes: 40_000 });
    const json = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json'];
    for (const f of json) writeFileSync(path.join(dir, f), '\ufeff' + readFileSync(path.join(dir, f), 'utf8'));
    const loaded = await loadModelFolder(dir);
    assert.equal(relErr(hidden(loaded.model, ids), hidden(m.model, ids)), 0);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

/** W + scale·B·A by plain loops: what a PEFT adapter's module is once merged. */
function merged(w: Float32Array, a: TensorData, b: TensorData, scale: number): Float32Array {
  const [rank, inp] = a.shape as [number, number];
  const out = Float32Array.from(w);
  for (let o = 0; o < b.shape[0]!; o++)
    for (let i = 0; i < inp; i++) {
      let sum = 0;
      for (let k = 0; k < rank; k++) sum += b.data[o * rank + k]! * a.data[k * inp + i]!;
      out[o * inp + i] += scale * sum;
    }
  return out;
}

test(
  'a PEFT adapter on some modules (layers_to_transform, exclude_modules, a target pattern, all-linear) or with ' +
    'rsLoRA loads as PEFT applies it; settings it cannot mean are refused',
  async () => {
    const dir = tmp();
    try {
      const m = tiny(4);
      const rank = 2;
      const cfg = { rank, alpha: 6, dropout: 0, targets: [...LORA_TARGETS] };
      attachLora(m.model, cfg, new T.Rng(3));
      // random B: PEFT starts it at zero, and a zero B merges to the base whatever modules it is on
      const rng = new T.Rng(7);
      for (const ad of m.model.adapters.values()) ad.b.write(T.randn([...ad.b.shape], rng).read());
      await saveLoraAdapter(dir, m.model, cfg, 'tiny');
      const configFile = path.join(dir, 'adapter_config.json');
      const weightsFile = path.join(dir, 'adapter_model.safetensors');
      const saved = JSON.parse(readFileSync(configFile, 'utf8'));
      const all = await loadSafetensors(weightsFile);
      const base = tiny(4).model;
      const attention = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
      const q = (l: number, t: string): string =>
        `model.layers.${l}.${attention.includes(t) ? 'self_attn' : 'mlp'}.${t}`;
      const cases: [Record<string, unknown>, string[]][] = [
        [{ target_modules: ['q_proj', 'down_proj'], layers_to_transform: [1] }, [q(1, 'q_proj'), q(1, 'down_proj')]],
        [{ target_modules: ['v_proj'], layers_to_transform: 0, layers_pattern: 'layers' }, [q(0, 'v_proj')]],
        [
          { target_modules: ['k_proj', 'up_proj'], exclude_modules: ['model.layers.0.mlp.up_proj'] },
          [q(0, 'k_proj'), q(1, 'k_proj'), q(1, 'up_proj')],
        ],
        [{ target_modules: '.*\\.(q|o)_proj', exclude_modules: '.*layers\\.0\\..*' }, [q(1, 'q_proj'), q(1, 'o_proj')]],
        [{ target_modules: 'all-linear', layers_to_transform: [0] }, LORA_TARGETS.map((t) => q(0, t))],
        // a path named whole is on whatever its layer, as PEFT takes it
        [
          { target_modules: ['model.layers.0.self_attn.o_proj', 'gate_proj'], layers_to_transform: [1] },
          [q(0, 'o_proj'), q(1, 'gate_proj')],
        ],
        [{ target_modules: ['up_proj'], use_rslora: true }, [q(0, 'up_proj'), q(1, 'up_proj')]],
      ];
      for (const [change, on] of cases) {
        writeFileSync(configFile, JSON.stringify({ ...saved, ...change }));
        const kept = [...all].filter(([name]) => on.some((mod) => name.startsWith(`base_model.model.${mod}.`)));
        await saveSafetensors(weightsFile, kept);
        const fresh = tiny(4).model;
        await loadLoraAdapter(dir, fresh);
        assert.deepEqual([...fresh.adapters.keys()].sort(), [...on].sort(), JSON.stringify(change));
        mergeLora(fresh);
        const scale = change['use_rslora'] ? 6 / Math.sqrt(rank) : 6 / rank;
        for (const mod of loraModulePaths(base, LORA_TARGETS)) {
          const w = base.params.get(`${mod}.weight`)!.data;
          const [a, b] = ['A', 'B'].map((part) => all.get(`base_model.model.${mod}.lora_${part}.weight`)!);
          const expected = on.includes(mod) ? merged(w, a!, b!, scale) : w;
          assert.ok(
            relErr(fresh.params.get(`${mod}.weight`)!.data, expected) < 1e-6,
            `${mod} ${JSON.stringify(change)}`,
          );
        }
      }
      const refused: [Record<string, unknown>, RegExp][] = [
        [{ layers_to_transform: [2] }, /"layers_to_transform" names layer 2, and the base model has 2 \(0 to 1\): the/],
        [{ layers_to_transform: [0], layers_pattern: 'h' }, /"layers_pattern" "h" is not where a Qwen2 model keeps/],
        [{ target_modules: '.*q_proj', layers_to_transform: [0] }, /PEFT refuses the two together; list the module/],
        [{ target_modules: '(?P<q>q_proj)' }, /"target_modules" "\(\?P<q>q_proj\)" is not a regular expression/],
        [{ exclude_modules: '.*' }, /leave no layer adapted/],
        [{ layers_to_transform: ['1'] }, /"layers_to_transform" must be a layer number or a list of them, got \["1"\]/],
      ];
      for (const [change, expected] of refused) {
        writeFileSync(configFile, JSON.stringify({ ...saved, ...change }));
        await assert.rejects(loadLoraAdapter(dir, tiny(4).model), expected, JSON.stringify(change));
      }
      // a tensor on the output layer: PEFT's pattern may take it, a merged model here cannot
      writeFileSync(configFile, JSON.stringify({ ...saved, target_modules: '.*(q_proj|lm_head)' }));
      const onHead: [string, TensorData][] = [
        ['base_model.model.lm_head.lora_A.weight', { shape: [rank, 32], data: new Float32Array(rank * 32) }],
        ['base_model.model.lm_head.lora_B.weight', { shape: [300, rank], data: new Float32Array(300 * rank) }],
      ];
      const qOnly = [...all].filter(([name]) => name.includes('q_proj'));
      await saveSafetensors(weightsFile, [...qOnly, ...onHead]);
      await assert.rejects(
        loadLoraAdapter(dir, tiny(4).model),
        /lm_head\.lora_A\.weight" is on a module an adapter here cannot be on/,
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  },
);

test('a model or adapter folder a killed write left aside is found as one, and gets its name back', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sr3-aside-'));
  try {
    const model = path.join(root, 'model'),
      adapter = path.join(root, 'adapter');
    mkdirSync(model);
    writeFileSync(path.join(model, 'config.json'), '{}');
    mkdirSync(adapter);
    writeFileSync(path.join(adapter, 'adapter_config.json'), '{}');
    leaveAsideAsKilledWrite(model);
    leaveAsideAsKilledWrite(adapter);
    assert.equal(isModelFolder(model), true);
    assert.equal(isAdapterFolder(adapter), true);
    assert.deepEqual(readdirSync(root).sort(), ['adapter', 'model']);
    assert.equal(isModelFolder(path.join(root, 'none')), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
