/**
 * The BPE trainer: a hand-computed example (merge order and the tie rule), determinism whatever the
 * input order, a tokenizer trained on real SciFact text that is consistent, loads in our Tokenizer and
 * round-trips 1,000 varied strings, and a JS pre-tokenizer that splits exactly as the tokenizer.json
 * engine does (the trainer counts the words the tokenizer will later see).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, promises as fsp, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { gzipSync } from 'node:zlib';
import {
  bpeTokenizerFiles,
  InputFileError,
  learnMerges,
  listInputFiles,
  preTokenize,
  readUtf8Lines,
  readUtf8Text,
  skippedLinesText,
  trainBpeTokenizer,
  WordCounter,
} from '../../src/model/bpe-trainer.js';
import { bpeConsistencyProblems } from '../helpers/tiny-tokenizer.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { sharedData } from '../helpers/repo.js';
import { seededRandom, variedStrings } from '../helpers/varied-strings.js';

const SPECIALS = 4;

test(
  'hand-computed example: merges by pair count, ties to the ' +
    'smaller (left, right) strings, stops when no pair is left',
  () => {
    // pairs: u g 20, p u 17, u n 16, h u 15 ... → "u g"; then u n 16 > h ug 15 > p un 12;
    // then "hug s" 5 and "p ug" 5 tie: "hug" < "p"; then b un 4; then nothing is left to merge.
    const words = new Map([
      ['hug', 10],
      ['pug', 5],
      ['pun', 12],
      ['bun', 4],
      ['hugs', 5],
    ]);
    const r = learnMerges(words, { vocabSize: 256 + 20 + SPECIALS, minFrequency: 1 });
    assert.deepEqual(r.merges, [
      ['u', 'g'],
      ['u', 'n'],
      ['h', 'ug'],
      ['p', 'un'],
      ['hug', 's'],
      ['p', 'ug'],
      ['b', 'un'],
    ]);
    assert.match(r.stoppedEarly ?? '', /no pairs left to merge after 7 merges/);
    assert.equal(r.tokens[256], 'ug');
    // minFrequency stops before pairs rarer than it
    const r5 = learnMerges(words, { vocabSize: 256 + 20 + SPECIALS, minFrequency: 5 });
    assert.deepEqual(
      r5.merges.map((m) => m.join(' ')),
      ['u g', 'u n', 'h ug', 'p un', 'hug s', 'p ug'],
    );
    // and the vocabulary size caps the merges
    assert.equal(learnMerges(words, { vocabSize: 256 + 2 + SPECIALS, minFrequency: 1 }).merges.length, 2);
  },
);

test('overlapping pairs merge left to right, and bytes beyond ASCII are byte-level characters', () => {
  const r = learnMerges(
    new Map([
      ['aaa', 3],
      [' é', 2],
    ]),
    { vocabSize: 256 + 3 + SPECIALS, minFrequency: 1 },
  );
  // "a a" counts 2 per word (overlapping) = 6; after it "aa a" 3, then " é" = Ġ + the two UTF-8 bytes of é (Ã ©) 2
  assert.deepEqual(r.merges, [
    ['a', 'a'],
    ['aa', 'a'],
    ['Ã', '©'],
  ]);
});

test('the same words in any order give the same merges', () => {
  const words = [...new WordCounterFrom(readSlice(400)).counts.entries()];
  const shuffled = [...words].reverse();
  const a = learnMerges(new Map(words), { vocabSize: 1200 });
  const b = learnMerges(new Map(shuffled), { vocabSize: 1200 });
  assert.deepEqual(a.merges, b.merges);
  assert.equal(a.merges.length, 1200 - 256 - SPECIALS);
});

test('a tokenizer trained on SciFact text is consistent, loads, and round-trips 1,000 varied strings', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bpe-train-'));
  try {
    const file = path.join(dir, 'slice.jsonl');
    await fsp.writeFile(file, readSlice(1500).join('\n'));
    const r = await trainBpeTokenizer([file], { vocabSize: 4096 });
    assert.equal(r.summary.vocabSize, 4096);
    assert.equal(r.summary.stoppedEarly, null);
    assert.deepEqual(bpeConsistencyProblems(r.tokenizerJson), []);
    // trained twice from a folder: identical files
    const again = await trainBpeTokenizer([dir], { vocabSize: 4096 });
    assert.equal(JSON.stringify(again.tokenizerJson), JSON.stringify(r.tokenizerJson));

    const tok = Tokenizer.fromJSON(r.tokenizerJson, r.tokenizerConfig);
    await tok.save(path.join(dir, 'tok'));
    const loaded = await Tokenizer.fromFolder(path.join(dir, 'tok'));
    assert.equal(loaded.vocabSize, 4096);
    assert.equal(loaded.eosTokenId, loaded.tokenToId('<|im_end|>'));
    assert.equal(loaded.padTokenId, loaded.tokenToId('<|endoftext|>'));
    assert.equal(loaded.tokenToId('<|embed_token|>'), 4095);
    assert.match(
      loaded.renderChat([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }),
      /<\|im_start\|>user\nhi<\|im_end\|>\n<\|im_start\|>assistant\n$/,
    );

    // frequent domain words became single tokens; the learned merges actually compress text
    assert.equal(loaded.tokenize(' the').length, 1);
    const sample = readSlice(20)
      .map((l) => (JSON.parse(l) as { text: string }).text)
      .join('\n');
    const bytes = Buffer.byteLength(sample);
    const ids = loaded.encode(sample);
    assert.ok(bytes / ids.length > 3, `compression ${(bytes / ids.length).toFixed(2)} bytes/token`);

    for (const s of variedStrings(1000)) {
      assert.equal(loaded.decode(loaded.encode(s)), s.normalize('NFC'), JSON.stringify(s));
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("the trainer's pre-tokenizer splits exactly as the tokenizer.json engine does", () => {
  const { tokenizerJson, tokenizerConfig } = bpeTokenizerFiles([]);
  const split = (tokenizerJson.pre_tokenizer as { pretokenizers: unknown[] }).pretokenizers[0];
  const engine = new HfTokenizer({ ...tokenizerJson, pre_tokenizer: split }, tokenizerConfig) as unknown as {
    pre_tokenizer: { pre_tokenize_text(t: string): string[] };
  };
  const extra = ['a\u0085b \u0085 x', '\uFEFFword \uFEFF', "IT'S we'Re", ' \u3000\u00a0 \n\r\n  x'];
  for (const s of [...variedStrings(500, 7), ...extra]) {
    const text = s.normalize('NFC');
    assert.deepEqual(preTokenize(text), engine.pre_tokenizer.pre_tokenize_text(text), JSON.stringify(text));
  }
});

test('special tokens written in the training text are not learned as merges', () => {
  const c = new WordCounter();
  for (let i = 0; i < 50; i++) c.add('<|im_start|>user<|im_end|>');
  assert.ok(![...c.counts.keys()].some((w) => w.includes('<|')), [...c.counts.keys()].join(','));
});

function readSlice(n: number): string[] {
  // first n SciFact documents (the corpus is read once per call; the file is 7.8 MB)
  return readFileLines(path.join(sharedData, 'scifact/corpus.jsonl'), n);
}

function readFileLines(file: string, n: number): string[] {
  return readFileSync(file, 'utf8')
    .split('\n', n)
    .filter((l) => l.trim() !== '');
}

class WordCounterFrom extends WordCounter {
  constructor(lines: string[]) {
    super();
    for (const l of lines) {
      const d = JSON.parse(l) as { title: string; text: string };
      this.add(`${d.title}\n${d.text}`);
    }
  }
}

/** The textbook algorithm: recount every pair before each merge. Slow, obviously right. */
function naiveMerges(words: Map<string, number>, count: number): Array<[string, string]> {
  const seqs = [...words].map(([w, c]) => ({ s: [...w], c }));
  const out: Array<[string, string]> = [];
  while (out.length < count) {
    const pairs = new Map<string, { a: string; b: string; n: number }>();
    for (const { s, c } of seqs) {
      for (let i = 0; i + 1 < s.length; i++) {
        const k = JSON.stringify([s[i], s[i + 1]]);
        const e = pairs.get(k) ?? { a: s[i]!, b: s[i + 1]!, n: 0 };
        e.n += c;
        pairs.set(k, e);
      }
    }
    let best: { a: string; b: string; n: number } | null = null;
    for (const e of pairs.values()) {
      if (!best || e.n > best.n || (e.n === best.n && (e.a < best.a || (e.a === best.a && e.b < best.b)))) best = e;
    }
    if (!best) break;
    out.push([best.a, best.b]);
    for (const q of seqs) {
      const r: string[] = [];
      for (let i = 0; i < q.s.length; i++) {
        if (i + 1 < q.s.length && q.s[i] === best.a && q.s[i + 1] === best.b) {
          r.push(best.a + best.b);
          i++;
        } else r.push(q.s[i]!);
      }
      q.s = r;
    }
  }
  return out;
}

test(
  'the incremental merge loop equals recounting every pair ' +
    'before each merge (random words with runs like aaaa, abab)',
  () => {
    const next = seededRandom(12345);
    const rand = (n: number): number => Math.floor(next() * n);
    for (let round = 0; round < 5; round++) {
      const words = new Map<string, number>();
      for (let i = 0; i < 300; i++) {
        let w = '';
        const len = 1 + rand(12);
        for (let j = 0; j < len; j++) w += 'abcd'[rand(round < 2 ? 2 : 4)];
        words.set(w, (words.get(w) ?? 0) + 1 + rand(5));
      }
      const ours = learnMerges(words, { vocabSize: 256 + 60 + SPECIALS, minFrequency: 1 }).merges;
      assert.deepEqual(ours, naiveMerges(words, ours.length), `round ${round}`);
      assert.ok(ours.length >= 40, `round ${round}: ${ours.length} merges`);
    }
  },
);

test('input that is not UTF-8 text is refused, naming the offset and line of the first bad character', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bpe-utf8-'));
  try {
    const write = async (name: string, bytes: Uint8Array): Promise<string> => {
      const file = path.join(dir, name);
      await fsp.writeFile(file, bytes);
      return file;
    };
    const refusal = (file: string, offset: number, line: number) => (e: unknown) =>
      e instanceof InputFileError &&
      e.message ===
        `${file}: is not UTF-8 text (invalid UTF-8 at byte offset ${offset}, line ${line}); ` +
          'give plain text or .jsonl files in UTF-8 (decompress or convert this one first)';

    // a gzip file's second byte (0x8b) cannot start a character: before, its bytes were learned as text
    const gz = await write('corpus.txt.gz', gzipSync('protein cell heart\n'.repeat(50)));
    await assert.rejects(trainBpeTokenizer([gz], { vocabSize: 300 }), refusal(gz, 1, 1));

    // valid characters across the 64 KiB reads decode as one text; a bad byte far in is found exactly
    const lineText = 'é€𝄞 protein cell\n'; // 2-, 3- and 4-byte characters
    const lineBytes = Buffer.byteLength(lineText);
    const lines = Math.ceil(200_000 / lineBytes);
    const good = Buffer.from(lineText.repeat(lines));
    const valid = await write('valid.txt', good);
    let decoded = '';
    for await (const piece of readUtf8Text(valid)) decoded += piece;
    assert.equal(decoded, lineText.repeat(lines));
    const latin1 = Buffer.concat([good, Buffer.from('caf\xe9\n', 'latin1')]);
    const late = await write('late.txt', latin1);
    await assert.rejects(trainBpeTokenizer([late], { vocabSize: 300 }), refusal(late, good.length + 3, lines + 1));

    // a character begun at the end of one 64 KiB read and broken in the next
    const cut = Buffer.concat([Buffer.alloc(65535, 0x61), Buffer.from([0xc3, 0x41])]);
    const split = await write('split.txt', cut);
    await assert.rejects(trainBpeTokenizer([split], { vocabSize: 300 }), refusal(split, 65535, 1));
    // and a file that ends inside a character: the offset of its first byte
    const truncated = await write('truncated.txt', Buffer.concat([Buffer.from('ab\ncd'), Buffer.from([0xe2, 0x82])]));
    await assert.rejects(trainBpeTokenizer([truncated], { vocabSize: 300 }), refusal(truncated, 5, 2));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('.jsonl lines with no "title" or "text" are counted as skipped; a file of only those is refused', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bpe-jsonl-'));
  try {
    const some = path.join(dir, 'some.jsonl');
    const docs = ['{"title":"a","text":"protein cell"}', '{"text":5}', '{"body":"x"}', '', '{"text":"cancer cell"}'];
    await fsp.writeFile(some, docs.join('\n') + '\n{"title":"","text":""}\n');
    const stages: string[] = [];
    const r = await trainBpeTokenizer([some], { vocabSize: 300, onStage: (m) => stages.push(m) });
    assert.equal(r.summary.skippedLines, 3);
    assert.ok(
      stages.some((m) => m.startsWith(`counted ${some}`) && m.endsWith(skippedLinesText(3))),
      stages.join('\n'),
    );
    assert.equal(skippedLinesText(3), 'skipped 3 .jsonl lines with no non-empty string "title" or "text"');

    const none = path.join(dir, 'none.jsonl');
    await fsp.writeFile(none, '{"body":"x"}\n{"text":5}\n');
    await assert.rejects(
      trainBpeTokenizer([some, none], { vocabSize: 300 }),
      (e: unknown) =>
        e instanceof InputFileError &&
        e.message ===
          `${none}: none of its 2 lines has a non-empty string "title" or "text"; ` +
            'each line of a .jsonl document file is {"title", "text"}',
    );
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a folder is listed in name order, each file once, without link loops, links out or hidden files', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bpe-walk-'));
  try {
    const root = path.join(dir, 'text');
    mkdirSync(path.join(root, 'sub'), { recursive: true });
    writeFileSync(path.join(root, 'b.txt'), 'b');
    writeFileSync(path.join(root, 'sub', 'a.jsonl'), '{"text": "a"}\n');
    writeFileSync(path.join(root, 'manifest.json'), '{}');
    writeFileSync(path.join(root, '.draft.txt'), 'hidden');
    writeFileSync(path.join(dir, 'outside.txt'), 'not in the folder');
    symlinkSync('..', path.join(root, 'sub', 'loop'));
    symlinkSync(path.join(dir, 'outside.txt'), path.join(root, 'out.txt'));
    symlinkSync(path.join(root, 'b.txt'), path.join(root, 'c.txt'));
    // c.txt, a link to b.txt, is b.txt's text again: read once
    assert.deepEqual(await listInputFiles([root]), [path.join(root, 'b.txt'), path.join(root, 'sub', 'a.jsonl')]);
    // a file named is read whatever its name, and once however often it is given, named or in a folder named
    const manifest = path.join(root, 'manifest.json');
    assert.deepEqual(await listInputFiles([manifest, manifest]), [manifest]);
    assert.deepEqual(await listInputFiles([path.join(root, 'sub', 'a.jsonl'), root, path.join(root, 'b.txt')]), [
      path.join(root, 'sub', 'a.jsonl'),
      path.join(root, 'b.txt'),
    ]);
    // training says what the listing left out: the link out of the folder, a name that is not UTF-8, the link
    // to a file read already
    writeFileSync(Buffer.concat([Buffer.from(path.join(root, 'caf')), Buffer.from([0xe9]), Buffer.from('.txt')]), 'x');
    const stages: string[] = [];
    await trainBpeTokenizer([root], { vocabSize: 300, onStage: (m) => stages.push(m) });
    assert.deepEqual(
      stages.filter((m) => m.startsWith('skipped')),
      [
        'skipped 1 file with a name not in UTF-8',
        'skipped 1 file outside the folder',
        'skipped 1 file given more than once',
      ],
    );
    // the same file given twice counts its words as given once
    const once = await trainBpeTokenizer([path.join(root, 'b.txt')], { vocabSize: 300 });
    const twice = await trainBpeTokenizer([path.join(root, 'b.txt'), path.join(root, 'b.txt')], { vocabSize: 300 });
    assert.equal(twice.summary.bytes, once.summary.bytes);
    assert.deepEqual(twice.summary.files, once.summary.files);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readUtf8Lines splits as node:readline does; a line over its bound is refused after those before', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bpe-lines-'));
  try {
    const file = path.join(dir, 'a.txt');
    // 65,536 bytes is a read chunk: the \r is its last byte, the \n the next chunk's first
    const first = 'x'.repeat(65_535);
    writeFileSync(file, `${first}\r\né\r\r\nz\n\n€`);
    const lines: { text: string; line: number }[] = [];
    for await (const l of readUtf8Lines(file)) lines.push(l);
    assert.deepEqual(
      lines.map((l) => [l.text.length > 10 ? l.text.length : l.text, l.line]),
      [
        [65_535, 1],
        ['é', 2],
        ['', 3],
        ['z', 4],
        ['', 5],
        ['€', 6],
      ],
    );
    writeFileSync(file, `a\nb\n${'y'.repeat(200_000)}\nc\n`);
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const l of readUtf8Lines(file, 100_000)) seen.push(l.text);
      })(),
      (e: Error) =>
        e instanceof InputFileError &&
        e.message ===
          `${file}: line 3 is longer than 100000 characters (no line break in it); each line is one record: check ` +
            'that this is a text or JSON-lines file, and split a record this long',
    );
    assert.deepEqual(seen, ['a', 'b']);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
