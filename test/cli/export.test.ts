import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { attachLora, saveLoraAdapter } from '../../src/model/lora.js';
import { generate } from '../../src/model/generate.js';
import { saveSafetensors } from '../../src/model/safetensors.js';
import { runCli } from '../helpers/cli.js';
import { openLlamaCppModel } from '../helpers/llama-cpp.js';
import { tinyModel } from '../helpers/tiny-model.js';

test('search-r3 export gguf writes a model llama.cpp runs like ours, and an adapter it applies', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-export-'));
  try {
    const { model, tokenizer } = tinyModel(9, {
      hiddenSize: 64,
      numAttentionHeads: 4,
      headDim: 16,
      intermediateSize: 128,
    });
    for (const p of model.parameters())
      if (!p.name!.endsWith('norm.weight'))
        T.noGrad(() =>
          p.data.forEach((x, i) => {
            p.data[i] = x * 10;
          }),
        );
    await saveModelFolder(path.join(dir, 'model'), { model, tokenizer });
    const r = runCli([
      'export',
      'gguf',
      '--model',
      path.join(dir, 'model'),
      '--out',
      path.join(dir, 'm.gguf'),
      '--type',
      'f32',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const prompt = tokenizer.encode('hello world, this is a test');
    const ours = generate(model, [prompt], { maxNewTokens: 16 })[0].tokens;
    const llama = await openLlamaCppModel(path.join(dir, 'm.gguf'));
    try {
      assert.deepEqual(await llama.greedy(prompt, 16), ours);
      // adapter: random B so that it changes the model
      const rng = new T.Rng(3);
      const cfg = { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] as ('q_proj' | 'v_proj')[] };
      attachLora(model, cfg, rng);
      for (const ad of model.adapters.values()) ad.b.data.set(T.randn(ad.b.shape, rng, 2).data);
      await saveLoraAdapter(path.join(dir, 'lora'), model, cfg);
      const r2 = runCli([
        'export',
        'gguf',
        '--model',
        path.join(dir, 'model'),
        '--lora',
        path.join(dir, 'lora'),
        '--out',
        path.join(dir, 'lora.gguf'),
      ]);
      assert.equal(r2.status, 0, r2.stderr);
      const adapted = generate(model, [prompt], { maxNewTokens: 16 })[0].tokens;
      assert.notDeepEqual(adapted, ours);
      assert.deepEqual(await llama.greedy(prompt, 16, { lora: path.join(dir, 'lora.gguf') }), adapted);
    } finally {
      await llama.dispose();
    }
    const q = runCli([
      'export',
      'gguf',
      '--model',
      path.join(dir, 'model'),
      '--out',
      path.join(dir, 'q.gguf'),
      '--type',
      'q8_0',
    ]);
    assert.equal(q.status, 0, q.stderr);
    assert.ok(existsSync(path.join(dir, 'q.gguf')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('export refuses bad input with one line naming what is wrong', () => {
  const noModel = runCli(['export', 'gguf', '--out', '/tmp/x.gguf']);
  assert.equal(noModel.status, 2);
  assert.match(noModel.stderr, /--model is required/);
  const missing = runCli(['export', 'gguf', '--model', '/nonexistent/dir', '--out', '/tmp/x.gguf']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no such folder/);
  const badType = runCli(['export', 'gguf', '--model', '/tmp', '--out', '/tmp/x.gguf', '--type', 'q4']);
  assert.match(badType.stderr, /choose f32, f16 or q8_0/);
  const notModel = runCli(['export', 'gguf', '--model', '/tmp', '--out', '/tmp/x.gguf']);
  assert.equal(notModel.status, 2);
  assert.match(notModel.stderr, /config\.json/);
  assert.doesNotMatch(notModel.stderr, /at .*\.js:\d+/, 'no stack trace');
});

test(
  'export gguf with a config.json that does not match the weights: one line naming config.json, the field and ' +
    'the tensor',
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sr3-export-cfg-'));
    try {
      const { model, tokenizer } = tinyModel(4);
      const modelDir = path.join(dir, 'model');
      await saveModelFolder(modelDir, { model, tokenizer });
      const configFile = path.join(modelDir, 'config.json');
      const original = readFileSync(configFile, 'utf8');
      const cases: [Record<string, unknown>, RegExp][] = [
        [
          { hidden_size: 64 },
          /"hidden_size" 64 makes dimension 1 of tensor "model\.embed_tokens\.weight" 64, but .* 32/,
        ],
        [{ vocab_size: 400 }, /"vocab_size" 400 makes dimension 0 of tensor "model\.embed_tokens\.weight" 400, but/],
        [{ num_hidden_layers: 3 }, /"num_hidden_layers" is 3, but the weights have no layer 2 \("\S+" and 11 more/],
        [
          { num_hidden_layers: 1 },
          /"num_hidden_layers" is 1, but the weights hold layer 1 \(tensor "model\.layers\.1\./,
        ],
        [{ intermediate_size: 32 }, /"intermediate_size" 32 makes dimension 0 of tensor "\S+\.mlp\.gate_proj\.weight"/],
        [{ num_key_value_heads: 4 }, /"num_key_value_heads" 4 × head_dim 8 \(hidden_size \/ num_attention_heads\)/],
        [{ tie_word_embeddings: false }, /"tie_word_embeddings" is false, but the weights have no "lm_head\.weight"/],
      ];
      for (const [change, expected] of cases) {
        writeFileSync(configFile, JSON.stringify({ ...JSON.parse(original), ...change }));
        const r = runCli(['export', 'gguf', '--model', modelDir, '--out', path.join(dir, 'm.gguf')]);
        assert.equal(r.status, 2, `${JSON.stringify(change)}: ${r.stderr}`);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.ok(r.stderr.startsWith(`search-r3: ${configFile}: `), r.stderr);
        assert.match(r.stderr, expected);
        assert.match(r.stderr, /config\.json does not match the weights in \S+model\.safetensors\.$/m);
        assert.ok(!existsSync(path.join(dir, 'm.gguf')), 'nothing is written');
      }
      // an adapter whose weights file names a tensor PEFT never writes
      writeFileSync(configFile, original);
      const cfg = { rank: 2, alpha: 4, dropout: 0, targets: ['q_proj'] as 'q_proj'[] };
      attachLora(model, cfg, new T.Rng(1));
      await saveLoraAdapter(path.join(dir, 'lora'), model, cfg);
      const oddTensor = ['base_model.model.q.weight', { shape: [1], data: new Float32Array(1) }] as const;
      await saveSafetensors(path.join(dir, 'lora', 'adapter_model.safetensors'), [oddTensor]);
      const lora = path.join(dir, 'lora');
      const r = runCli(['export', 'gguf', '--model', modelDir, '--lora', lora, '--out', path.join(dir, 'a.gguf')]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /adapter_model\.safetensors: tensor "base_model\.model\.q\.weight" is not a PEFT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("export replaces a GGUF it wrote before, never another file (the model's own weights)", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-export-out-'));
  try {
    const { model, tokenizer } = tinyModel(4);
    const modelDir = path.join(dir, 'model');
    await saveModelFolder(modelDir, { model, tokenizer });
    const weights = path.join(modelDir, 'model.safetensors');
    const before = readFileSync(weights);
    const r = runCli(['export', 'gguf', '--model', modelDir, '--out', weights]);
    assert.equal(r.status, 2);
    const refused = /^search-r3: --out \S+model\.safetensors exists and is not a GGUF file; .*new file\.$/;
    assert.match(r.stderr.trim(), refused);
    assert.ok(readFileSync(weights).equals(before), 'the weights are untouched');
    const gguf = path.join(dir, 'm.gguf');
    for (let i = 0; i < 2; i++) assert.equal(runCli(['export', 'gguf', '--model', modelDir, '--out', gguf]).status, 0);
    // a folder that does not exist yet is made, with the folders above it, as mine and index --out make theirs
    const deep = path.join(dir, 'gguf', 'f16', 'm.gguf');
    const made = runCli(['export', 'gguf', '--model', modelDir, '--out', deep]);
    assert.equal(made.status, 0, made.stderr);
    assert.ok(readFileSync(deep).equals(readFileSync(gguf)), 'the same GGUF, in the folders made for it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
