import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { cutTexts, encodedLengths } from '../helpers/cut-texts.js';
import { qwenReferenceTokenizerDir } from '../helpers/qwen-reference-tokenizer.js';
import { repoRoot } from '../helpers/repo.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

// The shipped model's tokenizer, the real Qwen one (151,643 merges' worth of long tokens), and a tiny one.
const tokenizers: [string, Tokenizer][] = [
  ['shipped', await Tokenizer.fromFolder(path.join(repoRoot, 'models', 'search-r3-default'))],
  ['qwen', await Tokenizer.fromFolder(qwenReferenceTokenizerDir())],
  [
    'tiny',
    (() => {
      const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 400 });
      return Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
    })(),
  ],
];

test('every position isCut accepts splits the tokens: the two sides encoded apart give the whole text', () => {
  for (const [name, tok] of tokenizers) {
    let cuts = 0;
    for (const [i, text] of cutTexts(10, 700, 7).entries()) {
      const whole = tok.encode(text).join();
      for (let at = 0; at <= text.length; at++) {
        if (!tok.isCut(text, at)) continue;
        cuts++;
        const apart = [...tok.encode(text.slice(0, at)), ...tok.encode(text.slice(at))].join();
        assert.equal(apart, whole, `${name}, text ${i} cut at ${at}: ${JSON.stringify(text.slice(at - 12, at + 12))}`);
      }
    }
    // the texts are dense with awkward places, yet ordinary word ends still count as cuts
    assert.ok(cuts > 300, `${name}: only ${cuts} cuts`);
  }
});

test('encodeHead gives exactly the first n tokens of the whole text, encoding only a prefix of a long one', () => {
  const cjk = '東京大学の研究者は、新しい方法を発表した。'.repeat(400);
  for (const [name, tok] of tokenizers) {
    for (const [i, text] of [...cutTexts(4, 30_000, 11), cjk].entries()) {
      const whole = tok.encode(text);
      for (const n of [1, 2, 7, 50, 333, 1000, 4000, whole.length - 1, whole.length, whole.length + 3]) {
        const { result, lengths } = encodedLengths(tok, () => tok.encodeHead(text, n));
        assert.deepEqual(result, whole.slice(0, n), `${name}, text ${i}, n ${n}`);
        // text with no ASCII beside a letter has no cuts, and is encoded whole
        if (text !== cjk && n <= 1000)
          assert.ok(Math.max(...lengths) < text.length / 2, `${name}, text ${i}, n ${n}: encoded ${lengths}`);
      }
    }
  }
});

test('countTokens counts a long text in pieces and gets what encoding it whole counts', () => {
  for (const [name, tok] of tokenizers) {
    for (const [i, text] of cutTexts(2, 150_000, 13).entries()) {
      const { result, lengths } = encodedLengths(tok, () => tok.countTokens(text));
      assert.equal(result, tok.encode(text).length, `${name}, text ${i}`);
      assert.ok(lengths.length > 2 && Math.max(...lengths) < 70_000, `${name}, text ${i}: pieces ${lengths}`);
    }
  }
});

test('a tokenizer built otherwise than Qwen2 has no cuts, and encodeHead then encodes the whole text', () => {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 400 });
  const pattern = (tokenizerJson.pre_tokenizer as { pretokenizers: { pattern: { Regex: string } }[] }).pretokenizers;
  const variants: [string, unknown, unknown][] = [
    ['NFKC', { ...tokenizerJson, normalizer: { type: 'NFKC' } }, tokenizerConfig],
    [
      'another split pattern',
      {
        ...tokenizerJson,
        pre_tokenizer: {
          type: 'Sequence',
          pretokenizers: [{ ...pattern[0], pattern: { Regex: '\\s+|\\S+' } }, pattern[1]],
        },
      },
      tokenizerConfig,
    ],
    [
      'an added token that strips spaces',
      { ...tokenizerJson, added_tokens: tokenizerJson.added_tokens.map((t) => ({ ...t, lstrip: true })) },
      tokenizerConfig,
    ],
    ['remove_space', tokenizerJson, { ...tokenizerConfig, remove_space: true }],
  ];
  const text = cutTexts(1, 5000, 17)[0];
  for (const [name, json, config] of variants) {
    const tok = Tokenizer.fromJSON(json, config);
    assert.equal(tok.nextCut(text, 0), -1, name);
    const { result, lengths } = encodedLengths(tok, () => tok.encodeHead(text, 10));
    assert.deepEqual(result, tok.encode(text).slice(0, 10), name);
    assert.deepEqual(lengths, [text.length], name);
  }
});
