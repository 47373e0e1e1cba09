import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  parseQwen2Config,
  qwen2ConfigToJSON,
  readQwen2Config,
  writeQwen2Config,
  qwen2TensorSpecs,
} from '../../src/model/qwen2-config.js';
import { ModelFileError } from '../../src/model/model-file-error.js';

import { QWEN2_5_1_5B_CONFIG as QWEN25_15B } from '../helpers/qwen2_5-config.js';

test('parses the released Qwen2.5-1.5B-Instruct config', () => {
  const c = parseQwen2Config(QWEN25_15B, 'config.json');
  assert.equal(c.hiddenSize, 1536);
  assert.equal(c.numHiddenLayers, 28);
  assert.equal(c.numAttentionHeads, 12);
  assert.equal(c.numKeyValueHeads, 2);
  assert.equal(c.headDim, 128);
  assert.equal(c.intermediateSize, 8960);
  assert.equal(c.ropeTheta, 1e6);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.vocabSize, 151936);
  assert.equal(c.bosTokenId, 151643);
  assert.equal(c.eosTokenId, 151645);
  assert.equal(c.torchDtype, 'bfloat16');
  assert.equal(c.extra['max_window_layers'], 21);
});

test('writing and re-reading loses nothing and gives the same keys as the original', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cfg-'));
  try {
    const file = path.join(dir, 'config.json');
    const c = parseQwen2Config(QWEN25_15B, 'in.json');
    await writeQwen2Config(file, c);
    const raw = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(raw, QWEN25_15B); // same keys, same values
    assert.deepEqual(Object.keys(raw), Object.keys(raw).sort(), 'keys are sorted as transformers writes them');
    assert.deepEqual(await readQwen2Config(file), c);
    assert.deepEqual(await fsp.readdir(dir), ['config.json'], 'no temp file left behind');
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('defaults follow transformers (kv heads = heads, rope_theta 1e4, eps 1e-6, untied)', () => {
  const c = parseQwen2Config(
    {
      model_type: 'qwen2',
      vocab_size: 300,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
    },
    'c.json',
  );
  assert.equal(c.numKeyValueHeads, 4);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.tieWordEmbeddings, false);
  assert.deepEqual(c.architectures, ['Qwen2ForCausalLM']);
  assert.equal(qwen2ConfigToJSON(c)['head_dim'], undefined);
});

test('refuses other architectures with one message naming the file and what was found', () => {
  assert.throws(
    () =>
      parseQwen2Config({ ...QWEN25_15B, architectures: ['LlamaForCausalLM'], model_type: 'llama' }, '/m/config.json'),
    (e: unknown) =>
      e instanceof ModelFileError &&
      /^\/m\/config\.json: architecture "LlamaForCausalLM" is not supported/.test(e.message),
  );
  assert.throws(
    () => parseQwen2Config({ ...QWEN25_15B, architectures: undefined, model_type: 'qwen3' }, 'c.json'),
    /model_type "qwen3" is not supported/,
  );
  assert.throws(() => parseQwen2Config({ hidden_size: 8 }, 'c.json'), /architecture none/);
});

test('refuses inconsistent or unsupported settings, naming the field', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ num_key_value_heads: 5 }, /"num_attention_heads" \(12\) must be a multiple of "num_key_value_heads" \(5\)/],
    [{ hidden_size: 1537 }, /"hidden_size" \(1537\) must be a multiple/],
    [{ hidden_size: undefined }, /"hidden_size" is missing/],
    [{ vocab_size: -3 }, /"vocab_size" must be a positive integer/],
    [{ rope_theta: 0 }, /"rope_theta" must be a positive number/],
    [{ hidden_act: 'gelu' }, /"hidden_act" is "gelu"/],
    [{ rope_scaling: { type: 'yarn', factor: 4 } }, /"rope_scaling" .* is not supported/],
    [{ use_sliding_window: true }, /use_sliding_window/],
    [{ tie_word_embeddings: 'yes' }, /"tie_word_embeddings" must be true or false/],
    [{ eos_token_id: 'x' }, /"eos_token_id" must be/],
    [{ rope_parameters: { rope_type: 'yarn', rope_theta: 1e6, factor: 4 } }, /"rope_parameters" .* not supported/],
    [{ rope_parameters: { rope_theta: 1e6, factor: 4 } }, /"rope_parameters" .* not supported/],
    [{ rope_parameters: { rope_theta: -1 } }, /"rope_parameters\.rope_theta" must be a positive number/],
    [
      { rope_parameters: { rope_theta: 5e5 } },
      /"rope_theta" 1000000 and "rope_parameters\.rope_theta" 500000 disagree/,
    ],
    [{ torch_dtype: undefined, dtype: 16 }, /"dtype" must be a string/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(() => parseQwen2Config({ ...QWEN25_15B, ...patch }, 'config.json'), re, JSON.stringify(patch));
  }
  assert.throws(() => parseQwen2Config([1], 'config.json'), /must be a JSON object/);
});

test('a transformers 5 config: RoPE base from "rope_parameters", precision from "dtype"', () => {
  const { rope_theta: _, torch_dtype: __, ...rest } = QWEN25_15B as Record<string, unknown>;
  const v5 = { ...rest, rope_parameters: { rope_theta: 1e6, rope_type: 'default' }, dtype: 'bfloat16' };
  const c = parseQwen2Config(v5, 'config.json');
  assert.equal(c.ropeTheta, 1e6);
  assert.equal(c.torchDtype, 'bfloat16');
  assert.equal(parseQwen2Config(qwen2ConfigToJSON(c), 'config.json').ropeTheta, 1e6, 'written back, it reads alike');
  assert.equal(parseQwen2Config({ ...rest, rope_parameters: null }, 'config.json').ropeTheta, 10000);
});

test('eos_token_id lists are kept as lists', () => {
  const c = parseQwen2Config({ ...QWEN25_15B, eos_token_id: [151645, 151643] }, 'c.json');
  assert.deepEqual(c.eosTokenId, [151645, 151643]);
  assert.deepEqual(qwen2ConfigToJSON(c)['eos_token_id'], [151645, 151643]);
});

test('readQwen2Config reports unreadable and non-JSON files by name', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cfg-'));
  try {
    await assert.rejects(
      readQwen2Config(path.join(dir, 'nope.json')),
      /nope\.json: is missing; a model folder needs config\.json/,
    );
    await fsp.writeFile(path.join(dir, 'bad.json'), '{"a":');
    await assert.rejects(readQwen2Config(path.join(dir, 'bad.json')), /bad\.json: is not valid JSON/);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('tensor specs: q/k/v carry biases, o_proj does not; lm_head only when untied', () => {
  const c = parseQwen2Config(QWEN25_15B, 'c.json');
  const specs = new Map(qwen2TensorSpecs(c).map((s) => [s.name, s.shape]));
  assert.equal(specs.size, 1 + 28 * 12 + 1);
  assert.deepEqual(specs.get('model.layers.0.self_attn.q_proj.bias'), [1536]);
  assert.deepEqual(specs.get('model.layers.0.self_attn.k_proj.weight'), [256, 1536]);
  assert.deepEqual(specs.get('model.layers.27.mlp.down_proj.weight'), [1536, 8960]);
  assert.equal(specs.has('model.layers.0.self_attn.o_proj.bias'), false);
  assert.equal(specs.has('lm_head.weight'), false);
  const untied = qwen2TensorSpecs({ ...c, tieWordEmbeddings: false });
  const from = ['"vocab_size" 151936', '"hidden_size" 1536'];
  assert.deepEqual(untied.at(-1), { name: 'lm_head.weight', shape: [151936, 1536], from });
  // Parameter count of Qwen2.5-1.5B: 1.54 B.
  const params = qwen2TensorSpecs(c).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  assert.equal(params, 1_543_714_304);
});
