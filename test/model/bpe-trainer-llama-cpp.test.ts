/**
 * A tokenizer trained by our BPE trainer, exported with a tiny random Qwen2 to GGUF: llama.cpp loads
 * it as a gpt2/qwen2 vocabulary and tokenizes varied text (multilingual, code, emoji, whitespace runs,
 * special tokens) exactly as our Tokenizer does, and detokenizes back to the text.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { trainBpeTokenizer } from '../../src/model/bpe-trainer.js';
import { ggufTokenizerFromFiles, writeQwen2Gguf } from '../../src/model/gguf.js';
import { parseQwen2Config } from '../../src/model/qwen2-config.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { openLlamaCppModel, type LlamaCppModel } from '../helpers/llama-cpp.js';
import { randomQwen2Weights } from '../helpers/random-qwen2.js';
import { sharedData } from '../helpers/repo.js';
import { variedStrings } from '../helpers/varied-strings.js';

let dir = '';
let model: LlamaCppModel | undefined;
let tokenizer: Tokenizer;
const VOCAB = 3000;

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bpe-gguf-'));
  // English, Chinese and Arabic text, so merges span several scripts
  const inputs = ['scifact/corpus.jsonl', 'drcd/beir/dev/corpus.jsonl', 'arcd/beir/test/corpus.jsonl'].map((p) =>
    path.join(sharedData, p),
  );
  const r = await trainBpeTokenizer(inputs, { vocabSize: VOCAB });
  tokenizer = Tokenizer.fromJSON(r.tokenizerJson, r.tokenizerConfig);
  const config = parseQwen2Config(
    {
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      vocab_size: VOCAB,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      rope_theta: 1e6,
      max_position_embeddings: 512,
      tie_word_embeddings: true,
      bos_token_id: null,
      eos_token_id: tokenizer.eosTokenId,
    },
    'config.json',
  );
  const exported = ggufTokenizerFromFiles(r.tokenizerJson, r.tokenizerConfig, config);
  const file = path.join(dir, 'trained-vocab.gguf');
  await writeQwen2Gguf(file, { config, tensors: randomQwen2Weights(config, 3), tokenizer: exported, fileType: 'F16' });
  model = await openLlamaCppModel(file);
});

after(async () => {
  await model?.dispose();
  await fsp.rm(dir, { recursive: true, force: true });
});

test('llama.cpp tokenizes 300 varied strings exactly as our Tokenizer does with the trained vocabulary', () => {
  const m = model!.model;
  let tokens = 0;
  // llama.cpp does not apply tokenizer.json's NFC normalizer (for real Qwen2 neither), so both get NFC text
  for (const text of variedStrings(300, 99).map((s) => s.normalize('NFC'))) {
    const ours = tokenizer.encode(text);
    const theirs = m.tokenize(text, true).map(Number);
    assert.deepEqual(theirs, ours, JSON.stringify(text));
    assert.equal(m.detokenize(m.tokenize(text, true), true), text);
    tokens += ours.length;
  }
  assert.ok(tokens > 3000);
});

test('llama.cpp sees the trained special tokens as control tokens and <|im_end|> as end of generation', () => {
  const m = model!.model;
  assert.equal(Number(m.tokens.eos), tokenizer.tokenToId('<|im_end|>'));
  assert.ok(m.isEogToken(tokenizer.tokenToId('<|im_end|>') as never));
  assert.deepEqual(
    m
      .tokenize('<|im_start|>user\n<|embed_token|>', true)
      .map(Number)
      .filter((id) => id >= VOCAB - 4),
    [VOCAB - 3, VOCAB - 1],
  );
});
