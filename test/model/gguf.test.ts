import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gguf } from '@huggingface/gguf';
import {
  buildGgufHeader,
  exportQwen2GgufFromFolder,
  exportQwen2LoraGgufFromFolder,
  ggufTokenizerFromFiles,
  ggufTokenizerFromTokenizerJson,
  loraPairsFromPeft,
  quantizeQ8_0,
  qwen2GgufContents,
  qwen2GgufTensorName,
  writeGguf,
  writeQwen2Gguf,
  writeQwen2LoraGguf,
  TOKEN_TYPE,
  GGML_TYPE,
  type GgufFileType,
} from '../../src/model/gguf.js';
import { bpeTokenizerFiles } from '../../src/model/byte-level-bpe.js';
import { ModelFileError } from '../../src/model/model-file-error.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { HalfArray, f16FromFloat32, float32FromF16, widenHalf } from '../../src/tensor/half-float.js';
import type { TensorData } from '../../src/model/tensor-data.js';
import { writeQwen2Config } from '../../src/model/qwen2-config.js';
import { saveSafetensors, saveSafetensorsFolder } from '../../src/model/safetensors.js';
import { tinyQwen2Fixture } from '../helpers/random-qwen2.js';
import { SeededRandom } from '../helpers/seeded-random.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gguf-'));
  try {
    await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Parses a GGUF with @huggingface/gguf, an implementation independent of our writer. */
async function parse(file: string) {
  const r = await gguf(file, { allowLocalFile: true, typedMetadata: true });
  const meta = r.typedMetadata as unknown as Record<string, { value: unknown; type: number; subType?: number }>;
  return { ...r, meta };
}

function dequantQ8_0(bytes: Uint8Array, n: number): Float32Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let b = 0; b < n / 32; b++) {
    const d = float32FromF16(v.getUint16(b * 34, true));
    for (let i = 0; i < 32; i++) out[b * 32 + i] = d * v.getInt8(b * 34 + 2 + i);
  }
  return out;
}

for (const fileType of ['F32', 'F16', 'Q8_0'] as GgufFileType[]) {
  test(`Qwen2 GGUF (${fileType}) reads back with an independent parser: metadata, tensor infos, data`, async () => {
    await withTempDir(async (dir) => {
      const fx = tinyQwen2Fixture(1);
      const file = path.join(dir, 'm.gguf');
      await writeQwen2Gguf(file, {
        config: fx.config,
        tensors: fx.tensors,
        tokenizer: fx.ggufTokenizer,
        fileType,
        name: 'tiny',
      });
      const r = await parse(file);
      const m = r.meta;
      assert.equal(m['version']!.value, 3);
      assert.equal(m['general.architecture']!.value, 'qwen2');
      assert.equal(m['general.type']!.value, 'model');
      assert.equal(m['general.name']!.value, 'tiny');
      assert.equal(m['general.file_type']!.value, { F32: 0, F16: 1, Q8_0: 7 }[fileType]);
      const u32s: Record<string, number> = {
        'qwen2.context_length': 512,
        'qwen2.embedding_length': 64,
        'qwen2.block_count': 2,
        'qwen2.feed_forward_length': 128,
        'qwen2.attention.head_count': 4,
        'qwen2.attention.head_count_kv': 2,
        'tokenizer.ggml.bos_token_id': 296,
        'tokenizer.ggml.eos_token_id': 298,
        'tokenizer.ggml.padding_token_id': 296,
      };
      for (const [k, v] of Object.entries(u32s)) {
        assert.equal(m[k]?.value, v, k);
        assert.equal(m[k]?.type, 4, `${k} is a uint32`);
      }
      assert.equal(m['qwen2.rope.freq_base']!.value, 1e6);
      assert.equal(m['qwen2.rope.freq_base']!.type, 6, 'float32');
      assert.equal(m['qwen2.attention.layer_norm_rms_epsilon']!.value, Math.fround(1e-6));
      assert.equal(m['tokenizer.ggml.model']!.value, 'gpt2');
      assert.equal(m['tokenizer.ggml.pre']!.value, 'qwen2');
      assert.equal(m['tokenizer.ggml.add_bos_token']!.value, false);
      assert.equal(m['tokenizer.chat_template']!.value, fx.chatTemplate);
      const tokens = m['tokenizer.ggml.tokens']!.value as string[];
      const types = m['tokenizer.ggml.token_type']!.value as number[];
      assert.equal(tokens.length, 320);
      assert.equal(types.length, 320);
      assert.equal(tokens[0], '!');
      assert.equal(tokens[298], '<|im_end|>');
      assert.equal(types[298], TOKEN_TYPE.CONTROL);
      assert.equal(types[100], TOKEN_TYPE.NORMAL);
      assert.equal(tokens[319], '[PAD319]');
      assert.equal(types[319], TOKEN_TYPE.UNUSED);
      const merges = m['tokenizer.ggml.merges']!.value as string[];
      assert.equal(merges.length, 300 - 256 - 4);
      assert.equal(merges[0], 'Ġ Ġ', 'merges are "left right" strings');

      // Tensors: names, dims = numpy shape reversed, types, aligned offsets, bytes.
      const infos = r.tensorInfos;
      assert.equal(infos.length, 1 + 2 * 12 + 1, 'tied: no output.weight');
      assert.equal(Number(r.tensorDataOffset) % 32, 0);
      const bytes = await fsp.readFile(file);
      const expectedNames = [...fx.tensors.keys()].map((n) => qwen2GgufTensorName(n));
      assert.deepEqual(
        infos.map((t) => t.name),
        expectedNames,
      );
      for (const info of infos) {
        const hf = [...fx.tensors.keys()].find((n) => qwen2GgufTensorName(n) === info.name)!;
        const t = fx.tensors.get(hf)!;
        assert.deepEqual(info.shape.map(Number), [...t.shape].reverse(), info.name);
        assert.equal(Number(info.offset) % 32, 0, `${info.name} aligned`);
        const is2d = t.shape.length === 2;
        const type = !is2d || fileType === 'F32' ? GGML_TYPE.F32 : fileType === 'F16' ? GGML_TYPE.F16 : GGML_TYPE.Q8_0;
        assert.equal(info.dtype, type, `${info.name} type`);
        const at = Number(r.tensorDataOffset + info.offset);
        const n = t.data.length;
        if (type === GGML_TYPE.F32) {
          assert.deepEqual(
            new Float32Array(bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + 4 * n)),
            t.data,
            info.name,
          );
        } else if (type === GGML_TYPE.F16) {
          for (let i = 0; i < n; i += 97)
            assert.equal(bytes.readUInt16LE(at + 2 * i), f16FromFloat32(t.data[i]!), `${info.name}[${i}]`);
        } else {
          const deq = dequantQ8_0(bytes.subarray(at, at + (n / 32) * 34), n);
          for (let b = 0; b < n / 32; b++) {
            let amax = 0;
            for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(t.data[b * 32 + i]!));
            for (let i = 0; i < 32; i++) {
              const err = Math.abs(deq[b * 32 + i]! - t.data[b * 32 + i]!);
              assert.ok(err <= (amax / 127) * 0.5 + amax * 1e-3, `${info.name} block ${b} error ${err}`);
            }
          }
        }
      }
      const last = infos.at(-1)!;
      assert.equal(last.name, 'output_norm.weight');
      assert.equal(
        bytes.length,
        Number(r.tensorDataOffset + last.offset) + 4 * 64,
        'the file ends with the last tensor',
      );
    });
  });
}

test('untied models get output.weight; a head_dim llama.cpp cannot run is refused', async () => {
  await withTempDir(async (dir) => {
    const fx = tinyQwen2Fixture(2, { tie_word_embeddings: false });
    const file = path.join(dir, 'm.gguf');
    await writeQwen2Gguf(file, {
      config: fx.config,
      tensors: fx.tensors,
      tokenizer: fx.ggufTokenizer,
      fileType: 'F32',
    });
    const r = await parse(file);
    assert.deepEqual(r.tensorInfos.at(-1)!.shape.map(Number), [64, 320]);
    assert.equal(r.tensorInfos.at(-1)!.name, 'output.weight');
    const wide = tinyQwen2Fixture(2, { head_dim: 32 });
    assert.throws(
      () => qwen2GgufContents({ config: wide.config, tensors: wide.tensors, tokenizer: wide.ggufTokenizer }),
      /config\.json: head_dim 32 × "num_attention_heads" 4 is not "hidden_size" 64; llama\.cpp's qwen2 architecture/,
    );
  });
});

test('Q8_0 blocks: f16 scale = max|x|/127, int8 codes with |q| <= 127, zero blocks stay zero', () => {
  const rng = new SeededRandom(4);
  const x = rng.normalArray(96, 3);
  x.fill(0, 64, 96);
  const q = quantizeQ8_0(x);
  assert.equal(q.length, 3 * 34);
  const v = new DataView(q.buffer);
  for (let b = 0; b < 2; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
    assert.equal(v.getUint16(b * 34, true), f16FromFloat32(amax / 127));
    const codes = Array.from({ length: 32 }, (_, i) => v.getInt8(b * 34 + 2 + i));
    assert.equal(Math.max(...codes.map(Math.abs)), 127, 'the largest value maps to ±127');
  }
  assert.ok(q.subarray(68).every((byte) => byte === 0));
  assert.equal(buildGgufHeader(new Map(), []).length % 32, 0);
});

test('generic writer: metadata types, array types and padding follow the GGUF layout byte for byte', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'g.gguf');
    await writeGguf(
      file,
      new Map([
        ['a.u8', { type: 'uint8', value: 7 }],
        ['a.i32', { type: 'int32', value: -5 }],
        ['a.arr', { type: 'array', itemType: 'uint32', value: [1, 2] }],
      ] as const),
      [{ name: 't', shape: [3], type: 'F32', data: new Float32Array([1, 2, 3]) }],
    );
    const b = await fsp.readFile(file);
    let o = 0;
    const u32 = (): number => {
      const v = b.readUInt32LE(o);
      o += 4;
      return v;
    };
    const u64 = (): number => {
      const v = Number(b.readBigUInt64LE(o));
      o += 8;
      return v;
    };
    const s = (): string => {
      const n = u64();
      const v = b.subarray(o, o + n).toString('utf8');
      o += n;
      return v;
    };
    assert.equal(b.subarray(0, 4).toString('latin1'), 'GGUF');
    o = 4;
    assert.equal(u32(), 3);
    assert.equal(u64(), 1);
    assert.equal(u64(), 3);
    assert.equal(s(), 'a.u8');
    assert.equal(u32(), 0);
    assert.equal(b.readUInt8(o), 7);
    o += 1;
    assert.equal(s(), 'a.i32');
    assert.equal(u32(), 5);
    assert.equal(b.readInt32LE(o), -5);
    o += 4;
    assert.equal(s(), 'a.arr');
    assert.equal(u32(), 9);
    assert.equal(u32(), 4);
    assert.equal(u64(), 2);
    assert.equal(u32(), 1);
    assert.equal(u32(), 2);
    assert.equal(s(), 't');
    assert.equal(u32(), 1);
    assert.equal(u64(), 3);
    assert.equal(u32(), 0);
    assert.equal(u64(), 0);
    const dataStart = Math.ceil(o / 32) * 32;
    assert.ok(
      b.subarray(o, dataStart).every((x) => x === 0),
      'zero padding',
    );
    assert.deepEqual([b.readFloatLE(dataStart), b.readFloatLE(dataStart + 4), b.readFloatLE(dataStart + 8)], [1, 2, 3]);
    assert.equal(b.length, dataStart + 32, 'the last tensor is padded to the alignment too');
    await assert.rejects(
      writeGguf(file, new Map([['x', { type: 'uint8', value: 300 }]]), []),
      /"x" = 300 is not a valid uint8/,
    );
  });
});

test('refuses checkpoints that do not match the config, naming the tensor', () => {
  const fx = tinyQwen2Fixture(3);
  const opts = (tensors: Map<string, TensorData>) => ({ config: fx.config, tensors, tokenizer: fx.ggufTokenizer });
  const without = new Map(fx.tensors);
  without.delete('model.layers.1.self_attn.k_proj.bias');
  assert.throws(
    () => qwen2GgufContents(opts(without)),
    /tensor "model\.layers\.1\.self_attn\.k_proj\.bias" is missing/,
  );
  const reshaped = new Map(fx.tensors);
  reshaped.set('model.layers.0.mlp.up_proj.weight', { shape: [64, 128], data: new Float32Array(64 * 128) });
  assert.throws(
    () => qwen2GgufContents(opts(reshaped)),
    /config\.json: "intermediate_size" 128 makes dimension 0 of tensor "\S+\.up_proj\.weight" 128, but the weights/,
  );
  const extra = new Map(fx.tensors);
  extra.set('model.layers.0.self_attn.o_proj.bias', { shape: [64], data: new Float32Array(64) });
  assert.throws(
    () => qwen2GgufContents(opts(extra)),
    /model\.safetensors: tensor "model\.layers\.0\.self_attn\.o_proj\.bias" is not part of a Qwen2 model/,
  );
  const deeper = new Map(fx.tensors);
  deeper.set('model.layers.2.input_layernorm.weight', { shape: [64], data: new Float32Array(64) });
  assert.throws(
    () => qwen2GgufContents(opts(deeper)),
    /config\.json: "num_hidden_layers" is 2, but the weights hold layer 2 \(tensor "model\.layers\.2\.input_layernorm/,
  );
  const withRotary = new Map(fx.tensors);
  withRotary.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [8], data: new Float32Array(8) });
  assert.equal(qwen2GgufContents(opts(withRotary)).tensors.length, 26, 'rotary caches are dropped');
  assert.throws(
    () =>
      qwen2GgufContents({
        ...opts(fx.tensors),
        tokenizer: { ...fx.ggufTokenizer, tokens: fx.ggufTokenizer.tokens.slice(1) },
      }),
    /tokenizer\.json: has 319 tokens and 320 token types, but "vocab_size" in config\.json is 320/,
  );
});

test('a config.json BOS or EOS id beyond the vocabulary, left to it by the tokenizer, is refused naming it', () => {
  const fx = tinyQwen2Fixture(3);
  const files = { config: '/m/config.json' };
  const contents =
    (config: typeof fx.config, tokenizerConfig: Record<string, unknown> = {}) =>
    () =>
      qwen2GgufContents({
        config,
        tensors: fx.tensors,
        tokenizer: ggufTokenizerFromFiles(fx.tokenizerJson, tokenizerConfig, config),
        files,
      });
  assert.throws(
    contents({ ...fx.config, bosTokenId: 99999 }),
    (err: Error) =>
      err instanceof ModelFileError &&
      err.message ===
        '/m/config.json: "bos_token_id" 99999 is not a token id of this model ("vocab_size" is 320); set it to ' +
          'the id of its BOS token, or to null.',
  );
  assert.throws(
    contents({ ...fx.config, eosTokenId: [320, 298] }),
    (err: Error) => err instanceof ModelFileError && /^\/m\/config\.json: "eos_token_id" 320 is not/.test(err.message),
  );
  // tokenizer_config.json's eos_token is the one taken: config.json's is not read
  const named = contents({ ...fx.config, eosTokenId: 99999 }, { eos_token: '<|im_end|>' })();
  assert.equal(named.metadata.get('tokenizer.ggml.eos_token_id')?.value, 298);
});

/** Qwen2's normalizer, pre-tokenizer and decoder, which the GGUF export needs of every tokenizer.json. */
const { normalizer, pre_tokenizer, decoder } = bpeTokenizerFiles([]).tokenizerJson;
const qwen2Shape = { normalizer, pre_tokenizer, decoder };

test('a tokenizer.json that pre-tokenizes otherwise than llama.cpp\'s "qwen2" is not exported', () => {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const split = (tokenizerJson.pre_tokenizer as { pretokenizers: unknown[] }).pretokenizers[0] as object;
  const gpt2 = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  // the GPT-2 pre-tokenizer really splits otherwise: our Tokenizer gives other ids than with Qwen2's
  const text = 'cell 12345 heart';
  const asGpt2 = Tokenizer.fromJSON({ ...tokenizerJson, pre_tokenizer: gpt2 }, tokenizerConfig);
  assert.notDeepEqual(asGpt2.encode(text), Tokenizer.fromJSON(tokenizerJson, tokenizerConfig).encode(text));

  const sequence = (...steps: unknown[]): Record<string, unknown> => ({
    pre_tokenizer: { type: 'Sequence', pretokenizers: steps },
  });
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ pre_tokenizer: gpt2 }, /pre_tokenizer is \{"type":"ByteLevel","add_prefix_space":true,/],
    [sequence(split, { ...byteLevel, add_prefix_space: true }), /pretokenizers\[1\] is \{[^}]*"add_prefix_space":true/],
    [
      sequence(split, { ...byteLevel, use_regex: true }),
      /pretokenizers\[1\] is \{[^}]*"use_regex":true\}, not Qwen2's/,
    ],
    [sequence({ ...split, pattern: { Regex: '\\w+' } }, byteLevel), /pretokenizers\[0\] is \{[^}]*"Regex":"\\\\w\+"/],
    [sequence(split), /pre_tokenizer is \{"type":"Sequence"/],
    [{ pre_tokenizer: null }, /pre_tokenizer is null, not Qwen2's/],
    [{ normalizer: { type: 'Lowercase' } }, /normalizer is \{"type":"Lowercase"\}, which llama\.cpp does not apply/],
  ];
  for (const [change, why] of refused) {
    assert.throws(
      () => ggufTokenizerFromTokenizerJson({ ...tokenizerJson, ...change }, 300, '/m/tokenizer.json'),
      (e: unknown) =>
        e instanceof ModelFileError &&
        e.message.startsWith('/m/tokenizer.json: ') &&
        why.test(e.message) &&
        e.message.endsWith('so only Qwen2-style tokenizers can be exported to GGUF.'),
      JSON.stringify(change),
    );
  }
  // Qwen2's own files (NFC), and the same without a normalizer, are exported
  assert.equal(ggufTokenizerFromTokenizerJson(tokenizerJson, 300).tokens.length, 300);
  assert.equal(ggufTokenizerFromTokenizerJson({ ...tokenizerJson, normalizer: null }, 300).tokens.length, 300);
});

test('tokenizer.json conversion: both merge forms, added-token types, vocabularies too big for the model', () => {
  const json = {
    ...qwen2Shape,
    model: { type: 'BPE', vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] },
    added_tokens: [
      { id: 3, content: '<|x|>', special: false },
      { id: 4, content: '<tool>', special: false },
      { id: 5, content: '<s>', special: true },
    ],
  };
  const t = ggufTokenizerFromTokenizerJson(json, 8);
  assert.deepEqual(t.tokens, ['a', 'b', 'ab', '<|x|>', '<tool>', '<s>', '[PAD6]', '[PAD7]']);
  assert.deepEqual(t.tokenTypes, [1, 1, 1, 3, 4, 3, 5, 5]);
  assert.deepEqual(t.merges, ['a b']);
  assert.deepEqual(
    ggufTokenizerFromTokenizerJson({ ...json, model: { ...json.model, merges: [['a', 'b']] } }, 6).merges,
    ['a b'],
  );
  assert.throws(
    () => ggufTokenizerFromTokenizerJson(json, 5, '/t/tokenizer.json'),
    (e: unknown) =>
      e instanceof ModelFileError &&
      /^\/t\/tokenizer\.json: added token "<s>" has id 5, beyond the model's 5 embedding rows/.test(e.message),
  );
  // the checks of tokenizer.json are the ones our Tokenizer makes when it loads the file
  assert.throws(
    () => ggufTokenizerFromTokenizerJson({ model: { type: 'Unigram', vocab: [] } }, 5),
    /tokenizer\.json: model\.type is "Unigram", but only byte-level "BPE"/,
  );
  assert.throws(
    () => ggufTokenizerFromTokenizerJson({ model: { type: 'BPE', vocab: { a: 0, b: 0 }, merges: [] } }, 5),
    /id 0 is given to both "a" and "b" \(model\.vocab\)/,
  );
  const clash = { ...json, added_tokens: [{ id: 1, content: '<|embed_token|>', special: true }] };
  assert.throws(
    () => ggufTokenizerFromTokenizerJson(clash, 8, '/t/tokenizer.json'),
    /^ModelFileError: \/t\/tokenizer\.json: id 1 is given to both "b" and "<\|embed_token\|>" \(added_tokens\[0\]\)/,
  );
});

test(
  'tokenizer files: special tokens by name, config.json ' + 'fallback, named chat templates, unknown names refused',
  () => {
    const fx = tinyQwen2Fixture(7);
    const t = ggufTokenizerFromFiles(
      fx.tokenizerJson,
      {
        eos_token: { content: '<|im_end|>', special: true },
        pad_token: '<|endoftext|>',
        chat_template: [
          { name: 'tool_use', template: 'T' },
          { name: 'default', template: 'D' },
        ],
      },
      fx.config,
    );
    assert.deepEqual([t.bosTokenId, t.eosTokenId, t.padTokenId, t.chatTemplate], [296, 298, 296, 'D']);
    const none = ggufTokenizerFromFiles(
      fx.tokenizerJson,
      {},
      { ...fx.config, bosTokenId: null, eosTokenId: [297, 298] },
    );
    assert.deepEqual([none.bosTokenId, none.eosTokenId, none.padTokenId, none.chatTemplate], [null, 297, null, null]);
    assert.throws(
      () =>
        ggufTokenizerFromFiles(fx.tokenizerJson, { eos_token: '</s>' }, fx.config, {
          tokenizerConfig: '/m/tokenizer_config.json',
        }),
      /\/m\/tokenizer_config\.json: "eos_token" "<\/s>" is not a token of tokenizer\.json\./,
    );
  },
);

test(
  'LoRA adapter GGUF: adapter metadata, lora_a/lora_b ' + 'names and transposed dims as llama.cpp checks them',
  async () => {
    await withTempDir(async (dir) => {
      const fx = tinyQwen2Fixture(5);
      const rng = new SeededRandom(6);
      const r = 4;
      const peft = new Map<string, TensorData>();
      for (const proj of ['q_proj', 'v_proj']) {
        const out = proj === 'q_proj' ? 64 : 32;
        peft.set(`base_model.model.model.layers.1.self_attn.${proj}.lora_A.weight`, {
          shape: [r, 64],
          data: rng.normalArray(r * 64, 0.1),
        });
        peft.set(`base_model.model.model.layers.1.self_attn.${proj}.lora_B.weight`, {
          shape: [out, r],
          data: rng.normalArray(out * r, 0.1),
        });
      }
      const adapters = loraPairsFromPeft(peft);
      assert.deepEqual([...adapters.keys()].sort(), [
        'model.layers.1.self_attn.q_proj.weight',
        'model.layers.1.self_attn.v_proj.weight',
      ]);
      const file = path.join(dir, 'lora.gguf');
      await writeQwen2LoraGguf(file, { config: fx.config, adapters, alpha: 8 });
      const p = await parse(file);
      assert.equal(p.meta['general.architecture']!.value, 'qwen2');
      assert.equal(p.meta['general.type']!.value, 'adapter');
      assert.equal(p.meta['adapter.type']!.value, 'lora');
      assert.equal(p.meta['adapter.lora.alpha']!.value, 8);
      assert.equal(p.meta['adapter.lora.alpha']!.type, 6, 'float32');
      assert.deepEqual(
        p.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype]),
        [
          ['blk.1.attn_q.weight.lora_a', [64, r], 0],
          ['blk.1.attn_q.weight.lora_b', [r, 64], 0],
          ['blk.1.attn_v.weight.lora_a', [64, r], 0],
          ['blk.1.attn_v.weight.lora_b', [r, 32], 0],
        ],
      );
      const bad = new Map(adapters);
      bad.set('model.layers.0.self_attn.k_proj.weight', {
        a: { shape: [r, 64], data: new Float32Array(r * 64) },
        b: { shape: [64, r], data: new Float32Array(64 * r) },
      });
      await assert.rejects(
        writeQwen2LoraGguf(file, { config: fx.config, adapters: bad, alpha: 8 }),
        /"model\.layers\.0\.self_attn\.k_proj\.weight" \[32, 64\] needs A \[r, 64\] and B \[32, r\]/,
      );
      assert.throws(() => loraPairsFromPeft(new Map([...peft].slice(0, 1))), /has lora_B missing/);
      // a value an F16 adapter cannot hold is refused, not written as Inf
      const huge = new Map(adapters);
      const v = adapters.get('model.layers.1.self_attn.v_proj.weight')!;
      huge.set('model.layers.1.self_attn.v_proj.weight', {
        ...v,
        b: { ...v.b, data: v.b.data.map((x, i) => (i ? x : 1e6)) },
      });
      await assert.rejects(
        writeQwen2LoraGguf(file, { config: fx.config, adapters: huge, alpha: 8, fileType: 'F16' }),
        new RegExp(
          'adapter_model\\.safetensors: the adapter.s B of "model\\.layers\\.1\\.self_attn\\.v_proj\\.weight" holds ' +
            'values up to 1000000 in magnitude, beyond what F16 stores \\(the GGUF would hold Inf there\\); export ' +
            'with --type f32\\.$',
        ),
      );
    });
  },
);

test('a chat_template.jinja beside tokenizer_config.json is the chat template the GGUF carries', async () => {
  await withTempDir(async (dir) => {
    const fx = tinyQwen2Fixture(4);
    await saveSafetensorsFolder(dir, fx.tensors);
    await writeQwen2Config(path.join(dir, 'config.json'), fx.config);
    const { chat_template: _, ...configWithout } = fx.tokenizerConfig;
    await fsp.writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(fx.tokenizerJson));
    await fsp.writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify(configWithout));
    await fsp.writeFile(path.join(dir, 'chat_template.jinja'), fx.chatTemplate);
    const out = path.join(dir, 'model.gguf');
    await exportQwen2GgufFromFolder(dir, out);
    assert.equal((await parse(out)).meta['tokenizer.chat_template']?.value, fx.chatTemplate);
    // as in transformers, the file's template wins over one in the config
    await fsp.writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify(fx.tokenizerConfig));
    await fsp.writeFile(path.join(dir, 'chat_template.jinja'), '{{ messages[0].content }}');
    await exportQwen2GgufFromFolder(dir, out);
    assert.equal((await parse(out)).meta['tokenizer.chat_template']?.value, '{{ messages[0].content }}');
    // a template that does not parse is refused naming its file, and the GGUF already there stays
    const before = await fsp.readFile(out);
    await fsp.writeFile(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}{{ m.content }}');
    await assert.rejects(exportQwen2GgufFromFolder(dir, out), (e: Error) => {
      assert.ok(e instanceof ModelFileError, String(e));
      assert.match(e.message, /chat_template\.jinja: chat_template is not a valid Jinja template \(/);
      return true;
    });
    assert.ok((await fsp.readFile(out)).equals(before));
  });
});

test(
  'exporting from Hugging Face folders (sharded model, ' + 'PEFT adapter) gives the same bytes as the direct writers',
  async () => {
    await withTempDir(async (dir) => {
      const fx = tinyQwen2Fixture(8);
      const modelDir = path.join(dir, 'tiny-model');
      await saveSafetensorsFolder(modelDir, fx.tensors, { maxShardBytes: 100_000 });
      assert.ok((await fsp.readdir(modelDir)).includes('model.safetensors.index.json'), 'sharded');
      await writeQwen2Config(path.join(modelDir, 'config.json'), fx.config);
      await fsp.writeFile(path.join(modelDir, 'tokenizer.json'), JSON.stringify(fx.tokenizerJson));
      await fsp.writeFile(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(fx.tokenizerConfig));
      const viaFolder = path.join(dir, 'folder.gguf');
      const direct = path.join(dir, 'direct.gguf');
      await exportQwen2GgufFromFolder(modelDir, viaFolder, { fileType: 'Q8_0' });
      await writeQwen2Gguf(direct, {
        config: fx.config,
        tensors: fx.tensors,
        fileType: 'Q8_0',
        name: 'tiny-model',
        tokenizer: ggufTokenizerFromFiles(fx.tokenizerJson, fx.tokenizerConfig, fx.config),
      });
      assert.ok((await fsp.readFile(viaFolder)).equals(await fsp.readFile(direct)));
      assert.equal((await parse(viaFolder)).meta['qwen2.pooling_type']!.value, 3, 'last-token pooling');

      // a bf16 checkpoint, held in 16 bits while it is written, converts exactly as its float32 values do
      const bf16Dir = path.join(dir, 'bf16-model');
      await saveSafetensorsFolder(bf16Dir, fx.tensors, { dtype: 'BF16', maxShardBytes: 100_000 });
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json'])
        await fsp.copyFile(path.join(modelDir, f), path.join(bf16Dir, f));
      const rounded = new Map(
        [...fx.tensors].map(([n, t]) => {
          const data = new Float32Array(t.data.length);
          widenHalf(HalfArray.from(t.data, 'bf16'), data);
          return [n, { shape: t.shape, data }] as const;
        }),
      );
      for (const fileType of ['F32', 'F16', 'Q8_0'] as const) {
        await exportQwen2GgufFromFolder(bf16Dir, viaFolder, { fileType });
        await writeQwen2Gguf(direct, {
          config: fx.config,
          tensors: rounded,
          fileType,
          name: 'bf16-model',
          tokenizer: ggufTokenizerFromFiles(fx.tokenizerJson, fx.tokenizerConfig, fx.config),
        });
        assert.ok((await fsp.readFile(viaFolder)).equals(await fsp.readFile(direct)), `bf16 folder as ${fileType}`);
      }

      const rng = new SeededRandom(9);
      const peft = new Map<string, TensorData>([
        [
          'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight',
          { shape: [2, 128], data: rng.normalArray(256, 0.1) },
        ],
        [
          'base_model.model.model.layers.0.mlp.down_proj.lora_B.weight',
          { shape: [64, 2], data: rng.normalArray(128, 0.1) },
        ],
      ]);
      const adapterDir = path.join(dir, 'adapter');
      await fsp.mkdir(adapterDir);
      await saveSafetensors(path.join(adapterDir, 'adapter_model.safetensors'), peft);
      const adapterConfig = {
        peft_type: 'LORA',
        r: 2,
        lora_alpha: 16,
        target_modules: ['down_proj'],
        use_rslora: false,
      };
      await fsp.writeFile(path.join(adapterDir, 'adapter_config.json'), JSON.stringify(adapterConfig));
      await exportQwen2LoraGgufFromFolder(adapterDir, fx.config, viaFolder);
      await writeQwen2LoraGguf(direct, { config: fx.config, adapters: loraPairsFromPeft(peft), alpha: 16 });
      assert.ok((await fsp.readFile(viaFolder)).equals(await fsp.readFile(direct)));

      await fsp.writeFile(
        path.join(adapterDir, 'adapter_config.json'),
        JSON.stringify({ ...adapterConfig, use_rslora: true }),
      );
      await exportQwen2LoraGgufFromFolder(adapterDir, fx.config, viaFolder);
      assert.equal(
        (await parse(viaFolder)).meta['adapter.lora.alpha']!.value,
        Math.fround(16 * Math.sqrt(2)),
        'rsLoRA: alpha·sqrt(r), so alpha/r = 16/sqrt(2)',
      );
      await fsp.writeFile(path.join(adapterDir, 'adapter_config.json'), JSON.stringify({ ...adapterConfig, r: 4 }));
      await assert.rejects(
        exportQwen2LoraGgufFromFolder(adapterDir, fx.config, viaFolder),
        /"model\.layers\.0\.mlp\.down_proj\.weight" has rank 2, but adapter_config\.json says r = 4/,
      );
      await assert.rejects(
        exportQwen2GgufFromFolder(adapterDir, viaFolder),
        /adapter\/config\.json: is missing; a model folder needs config\.json/,
      );
      await fsp.writeFile(
        path.join(adapterDir, 'adapter_config.json'),
        JSON.stringify({ ...adapterConfig, alpha_pattern: { down_proj: 64 } }),
      );
      await assert.rejects(
        exportQwen2LoraGgufFromFolder(adapterDir, fx.config, viaFolder),
        /"alpha_pattern" .* gives some modules their own rank or alpha/,
      );

      // NaN in the weights is refused, as loading refuses it; so is a value that the chosen type turns to Inf
      const edit = async (dst: string, name: string, value: number): Promise<void> => {
        const tensors = new Map(
          [...fx.tensors].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]),
        );
        tensors.get(name)!.data[3] = value;
        await saveSafetensorsFolder(dst, tensors, { dtype: 'BF16' });
        for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json'])
          await fsp.copyFile(path.join(modelDir, f), path.join(dst, f));
      };
      const up = 'model.layers.0.mlp.up_proj.weight';
      await edit(path.join(dir, 'nan'), up, NaN);
      await assert.rejects(
        exportQwen2GgufFromFolder(path.join(dir, 'nan'), viaFolder, { fileType: 'F32' }),
        /model\.safetensors: weight "model\.layers\.0\.mlp\.up_proj\.weight" holds NaN or Inf values/,
      );
      await edit(path.join(dir, 'big'), up, 1e6);
      await assert.rejects(
        exportQwen2GgufFromFolder(path.join(dir, 'big'), viaFolder, { fileType: 'F16' }),
        /weight "model\.layers\.0\.mlp\.up_proj\.weight" holds values up to 999424 in magnitude, beyond what F16 /,
      );
      await exportQwen2GgufFromFolder(path.join(dir, 'big'), viaFolder, { fileType: 'F32' });
      await exportQwen2GgufFromFolder(path.join(dir, 'big'), viaFolder, { fileType: 'Q8_0' });
    });
  },
);

test('a value beyond the chosen type is refused while writing: the GGUF at the path stays, no temp file', async () => {
  await withTempDir(async (dir) => {
    const fx = tinyQwen2Fixture(8);
    const modelDir = path.join(dir, 'model');
    // in the last layer, so that the tensors before it are written when the refusal comes
    const up = 'model.layers.1.mlp.up_proj.weight';
    const tensors = new Map([...fx.tensors].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]));
    tensors.get(up)!.data[5] = -1e7; // beyond F16 (65504) and Q8_0's f16 block scales (65504 × 127)
    await saveSafetensorsFolder(modelDir, tensors);
    await writeQwen2Config(path.join(modelDir, 'config.json'), fx.config);
    await fsp.writeFile(path.join(modelDir, 'tokenizer.json'), JSON.stringify(fx.tokenizerJson));
    await fsp.writeFile(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(fx.tokenizerConfig));
    const out = path.join(dir, 'model.gguf');
    await exportQwen2GgufFromFolder(modelDir, out, { fileType: 'F32' });
    const before = await fsp.readFile(out);
    for (const fileType of ['F16', 'Q8_0'] as const) {
      await assert.rejects(
        exportQwen2GgufFromFolder(modelDir, out, { fileType }),
        new RegExp(
          `model\\.safetensors: weight "model\\.layers\\.1\\.mlp\\.up_proj\\.weight" holds values up to ` +
            `10000000 in magnitude, beyond what ${fileType} stores \\(the GGUF would hold Inf there\\); ` +
            'export with --type f32\\.',
        ),
      );
      assert.ok((await fsp.readFile(out)).equals(before), `${fileType}: the F32 export is as it was`);
      assert.deepEqual((await fsp.readdir(dir)).sort(), ['model', 'model.gguf'], `${fileType}: no temp file left`);
    }
    // a missing folder is made for the file, and removed again with the refused write: no empty folder is left
    const deep = path.join(dir, 'new', 'deep', 'model.gguf');
    await assert.rejects(exportQwen2GgufFromFolder(modelDir, deep, { fileType: 'F16' }), /beyond what F16 stores/);
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['model', 'model.gguf'], 'no folder left by the refusal');
    await exportQwen2GgufFromFolder(modelDir, deep, { fileType: 'F32' });
    assert.ok((await fsp.readFile(deep)).equals(before), 'written into the folders made for it');
  });
});
