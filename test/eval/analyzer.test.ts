import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sharedData } from '../helpers/repo.js';
import { createAnalyzer, segmentWords, tokenizeWords } from '../../src/eval/analyzer.js';
import { byte4ToInt, intToByte4 } from '../../src/eval/lucene-small-float.js';

const seg = new Intl.Segmenter('en', { granularity: 'word' });

test('fast word tokenizer gives exactly ICU UAX #29 words on tricky strings', () => {
  const samples = [
    "U.S. e.g. 1,000.5 don't a:b _x_ 3.0%, x-y/z (a) [1] \"q\" 'q' mail@x.com $5 #tag 1;2 a.1 1.a ...end.",
    "IL-6/STAT3 (p<0.05); n=12; 10^-3 ~5 a|b c\\d {e} `f` g&h *i* +j= k!? 2's 3'4 ''x'' .5 5. -1",
    'naïve café — “quoted” ½ ² Zürich 東京 mRNA’s',
    'tab\tand\nnew\r\nlines  two  spaces',
  ];
  for (const s of samples) assert.deepEqual(tokenizeWords(s, seg), segmentWords(s, seg), s);
});

test('fast word tokenizer equals ICU on a third of the SciFact corpus', () => {
  const lines = readFileSync(join(sharedData, 'scifact/corpus.jsonl'), 'utf8').split('\n').filter(Boolean);
  let checked = 0;
  for (let i = 0; i < lines.length; i += 3) {
    const d = JSON.parse(lines[i]!) as { title: string; text: string };
    const text = `${d.title} ${d.text}`;
    assert.deepEqual(tokenizeWords(text, seg), segmentWords(text, seg), `document on line ${i + 1}`);
    checked++;
  }
  assert.ok(checked > 1700);
});

test('English analysis follows Lucene EnglishAnalyzer: possessive, lower case, Lucene stop words, Porter', () => {
  const a = createAnalyzer();
  assert.deepEqual(a.analyze("The John's dogs are running into the Houses, and it is not over"), [
    'john',
    'dog',
    'run',
    'hous',
    'over',
  ]);
  // Lucene keeps words outside its 33-word stop list, e.g. "had" (Anserini's own test: "Mary had a little lamb").
  assert.deepEqual(a.analyze('Mary had a little lamb'), ['mari', 'had', 'littl', 'lamb']);
  assert.deepEqual(createAnalyzer({ stem: false, stopWords: false }).analyze('The Dogs'), ['the', 'dogs']);
});

test('Chinese and Thai are split into words, not one token per sentence; Arabic diacritics are normalised', () => {
  const zh = createAnalyzer({ language: 'zh' }).analyze('台灣大學位於台北市的大安區');
  assert.ok(zh.length >= 4, JSON.stringify(zh));
  assert.ok(
    zh.every((w) => w.length <= 4),
    JSON.stringify(zh),
  );
  const th = createAnalyzer({ language: 'th' }).analyze('ภาษาไทยเป็นภาษาที่มีวรรณยุกต์');
  assert.ok(th.length >= 3, JSON.stringify(th));
  const ar = createAnalyzer({ language: 'ar', stopWords: false });
  assert.deepEqual(ar.analyze('الْكِتَابُ'), ar.analyze('الكتاب'));
  assert.deepEqual(ar.analyze('أحمد'), ar.analyze('احمد'));
  assert.throws(() => createAnalyzer({ language: 'xx' }), /not supported/);
});

test('Lucene SmallFloat length bytes: exact below 24, 4 significant bits above, monotone', () => {
  for (let n = 0; n < 24; n++) assert.equal(byte4ToInt(intToByte4(n)), n);
  assert.equal(intToByte4(100), 57);
  assert.equal(byte4ToInt(57), 96);
  assert.equal(intToByte4(0x7fffffff), 255);
  let prev = -1;
  for (let b = 0; b < 256; b++) {
    const v = byte4ToInt(b);
    assert.ok(v > prev);
    assert.equal(intToByte4(v), b);
    prev = v;
  }
});
