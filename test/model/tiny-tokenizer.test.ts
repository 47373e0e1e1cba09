import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { Tokenizer } from '../../src/model/tokenizer.js';
import {
  bpeConsistencyProblems,
  byteLevelAlphabet,
  makeTinyTokenizer,
  TINY_SPECIAL_TOKENS,
} from '../helpers/tiny-tokenizer.js';
import { readQwenReferenceFiles } from '../helpers/qwen-reference-tokenizer.js';
import { variedStrings } from '../helpers/varied-strings.js';

test('byte-level alphabet: 256 distinct printable characters in Qwen2 id order', () => {
  const alphabet = byteLevelAlphabet();
  assert.equal(new Set(alphabet).size, 256);
  assert.equal(alphabet[0], '!');
  assert.equal(alphabet.indexOf('Ġ'), 220);
  assert.equal(alphabet.indexOf('Ċ'), 198); // newline
  const { tokenizerJson } = readQwenReferenceFiles();
  alphabet.forEach((ch, id) => assert.equal(tokenizerJson.model.vocab[ch], id));
});

test('tiny tokenizers are consistent, sized as asked, and a prefix of the real Qwen vocabulary', () => {
  const { tokenizerJson: real } = readQwenReferenceFiles();
  for (const vocabSize of [260, 512, 4096]) {
    const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize });
    assert.deepEqual(bpeConsistencyProblems(tokenizerJson), []);
    const tok = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    assert.equal(tok.vocabSize, vocabSize);
    const vocab = tok.vocabulary();
    assert.ok(
      vocab.every((t) => t.length > 0),
      'no holes in the ids',
    );
    for (const [id, token] of vocab.entries()) {
      if (id < vocabSize - TINY_SPECIAL_TOKENS.length) assert.equal(real.model.vocab[token], id, token);
    }
    assert.deepEqual(vocab.slice(-4), [...TINY_SPECIAL_TOKENS]);
    assert.equal(tok.eosTokenId, tok.tokenToId('<|im_end|>'));
    assert.equal(tok.padTokenId, tok.tokenToId('<|endoftext|>'));
    assert.equal(tok.merges().length, vocabSize - 256 - 4);
  }
});

test('a tiny tokenizer encodes any text as @lenml/tokenizers does, and decodes it back', () => {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 1024 });
  const tok = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  const peer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: tokenizerJson as never,
    tokenizerConfig: tokenizerConfig as never,
  });
  for (const s of variedStrings(150, 7)) {
    const ids = tok.encode(s);
    assert.deepEqual(ids, peer.encode(s, { add_special_tokens: false }), JSON.stringify(s));
    assert.equal(tok.decode(ids), s.normalize('NFC'));
  }
  // The merges do work: common English compresses below one token per byte.
  const english = 'the cat sat on the mat and then the dog ran in the garden';
  assert.ok(tok.encode(english).length < english.length * 0.7);
  assert.deepEqual(tok.encode('x<|embed_token|>'), [tok.tokenToId('x'), 1023]);
});

test('options and bad sizes', async () => {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  const tok = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  assert.equal(tok.vocabSize, 300);
  assert.equal(tok.eosTokenId, 299);
  assert.equal(tok.tokenToId('<|embed_token|>'), undefined);
  assert.deepEqual(tok.addSpecialTokens(['<|embed_token|>']), { ids: [300], added: 1 });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'search-r3-tiny-'));
  try {
    await tok.save(dir);
    const again = await Tokenizer.fromFolder(dir);
    assert.equal(again.vocabSize, 301);
    assert.deepEqual(bpeConsistencyProblems(again.toJSON().tokenizerJson), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => makeTinyTokenizer({ vocabSize: 100 }), /vocabSize must be an integer from 260/);
  assert.throws(() => makeTinyTokenizer({ vocabSize: 512.5 }), /vocabSize must be an integer/);
  assert.throws(() => makeTinyTokenizer({ specialTokens: ['a', 'a'] }), /duplicates/);
  assert.throws(() => makeTinyTokenizer({ specialTokens: ['in'] }), /already a BPE token/);

  // Older tokenizer.json files write merges as "a b" strings; both forms load and encode alike.
  const pairs = makeTinyTokenizer();
  const strings = {
    ...pairs.tokenizerJson,
    model: {
      ...pairs.tokenizerJson.model,
      merges: pairs.tokenizerJson.model.merges.map((m) => (m as string[]).join(' ')),
    },
  };
  const a = Tokenizer.fromJSON(pairs.tokenizerJson, pairs.tokenizerConfig);
  const b = Tokenizer.fromJSON(strings, pairs.tokenizerConfig);
  assert.deepEqual(b.merges(), a.merges());
  assert.deepEqual(b.encode('interesting things in the middle'), a.encode('interesting things in the middle'));

  const broken = makeTinyTokenizer().tokenizerJson;
  broken.model.merges.push(['no', 'such']);
  assert.deepEqual(bpeConsistencyProblems(broken), ['merge 252 (no such) has a part or result that is not a token']);
});
