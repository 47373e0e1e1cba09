/**
 * GGUF export with Qwen2.5's real tokenizer (151,643 BPE tokens + 22 added, padded to 151,936 rows):
 * llama.cpp must tokenize text exactly as our tokenizer.json implementation does, which checks the
 * exported tokens, token types, merges and `pre = qwen2` at full scale. The weights are a tiny random
 * one-layer model; only the vocabulary is real.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ggufTokenizerFromFiles, TOKEN_TYPE, writeQwen2Gguf, type GgufTokenizer } from '../../src/model/gguf.js';
import { QWEN2_5_CHAT_TEMPLATE } from '../../src/model/qwen2-chat-template.js';
import { parseQwen2Config } from '../../src/model/qwen2-config.js';
import { qwen2_5TokenizerFiles } from '../helpers/qwen-reference-tokenizer.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { openLlamaCppModel, type LlamaCppModel } from '../helpers/llama-cpp.js';
import { randomQwen2Weights } from '../helpers/random-qwen2.js';

let dir = '';
let model: LlamaCppModel | undefined;
let tokenizer: Tokenizer;
let exported: GgufTokenizer;

const TEXTS = [
  '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is ' +
    'BM25?<|im_end|>\n<|im_start|>assistant\n',
  "Don't panic: it's 42, isn't it? They'll say we'd   done  it.\n\n\n   Indented\tand\ttabbed.",
  '检索增强生成（RAG）把检索和生成结合起来。 البحث عن المعلومات باللغة العربية. Ελληνικά, русский, हिन्दी.',
  'def f(x):\n    return x**2 + 1_000_000  # 12345678901234567890\r\n{"key": [1, 2.5e-3]}',
  'emoji 🙂👍🏽 and accents: naïve café résumé, ÅÄÖ; zero-width\u200bspace; nbsp\u00a0here',
];

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'gguf-vocab-'));
  const { tokenizerJson, tokenizerConfig } = qwen2_5TokenizerFiles();
  tokenizer = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const config = parseQwen2Config(
    {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      vocab_size: 151936,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      rope_theta: 1e6,
      max_position_embeddings: 512,
      tie_word_embeddings: true,
      bos_token_id: 151643,
      eos_token_id: 151645,
    },
    'config.json',
  );
  exported = ggufTokenizerFromFiles(tokenizerJson, tokenizerConfig, config);
  const file = path.join(dir, 'qwen-vocab.gguf');
  await writeQwen2Gguf(file, { config, tensors: randomQwen2Weights(config, 1), tokenizer: exported, fileType: 'F16' });
  model = await openLlamaCppModel(file);
});

after(async () => {
  await model?.dispose();
  await fsp.rm(dir, { recursive: true, force: true });
});

test('the exported vocabulary has Qwen2.5 layout: 151,643 normal tokens, 22 control/user tokens, padding rows', () => {
  const count = (t: number): number => exported.tokenTypes.filter((x) => x === t).length;
  assert.equal(exported.tokens.length, 151936);
  assert.equal(count(TOKEN_TYPE.NORMAL), 151643);
  assert.equal(count(TOKEN_TYPE.CONTROL) + count(TOKEN_TYPE.USER_DEFINED), 22);
  assert.equal(count(TOKEN_TYPE.UNUSED), 151936 - 151665);
  assert.equal(exported.tokens[151645], '<|im_end|>');
  assert.equal(exported.tokenTypes[151645], TOKEN_TYPE.CONTROL);
  assert.equal(exported.merges.length, 151387);
});

test("special ids and chat template resolve as llama.cpp's converter does for Qwen2.5-Instruct", () => {
  assert.equal(exported.bosTokenId, 151643, 'bos: tokenizer_config has none, config.json bos_token_id');
  assert.equal(exported.eosTokenId, 151645, 'eos: tokenizer_config eos_token <|im_end|>');
  assert.equal(exported.padTokenId, 151643, 'pad: tokenizer_config pad_token <|endoftext|>');
  assert.equal(exported.chatTemplate, QWEN2_5_CHAT_TEMPLATE);
});

test('llama.cpp tokenizes like our tokenizer.json implementation, and round-trips the text', () => {
  const m = model!.model;
  for (const text of TEXTS) {
    const ours = tokenizer.encode(text);
    const theirs = m.tokenize(text, true).map(Number);
    assert.deepEqual(theirs, ours, JSON.stringify(text));
    assert.equal(m.detokenize(m.tokenize(text, true), true), text);
  }
});

test('llama.cpp sees the special ids and the chat template', () => {
  const m = model!.model;
  assert.equal(Number(m.tokens.bos), 151643);
  assert.equal(m.fileInfo.metadata.tokenizer.ggml.padding_token_id, 151643);
  assert.equal(Number(m.tokens.eos), 151645);
  assert.ok(m.isEogToken(151645 as never), '<|im_end|> ends generation');
  assert.equal(m.fileInfo.metadata.tokenizer.chat_template, exported.chatTemplate);
});
