import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { ModelFileError } from '../../src/model/model-file-error.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import {
  qwen2_5TokenizerFiles,
  qwenReferenceTokenizerDir,
  readQwenReferenceFiles,
} from '../helpers/qwen-reference-tokenizer.js';
import { repoRoot } from '../helpers/repo.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';
import { variedStrings } from '../helpers/varied-strings.js';

// One load of the real Qwen tokenizer (151,643 BPE tokens + Qwen3's 26 added tokens) for the read-only tests.
const qwen = await Tokenizer.fromFolder(qwenReferenceTokenizerDir());

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'search-r3-tokenizer-'));
}

test('encodes 1,200 varied strings exactly as the independent @lenml/tokenizers, and decodes them back', () => {
  const { tokenizerJson, tokenizerConfig } = readQwenReferenceFiles();
  const peer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: tokenizerJson as never,
    tokenizerConfig: tokenizerConfig as never,
  });
  const strings = variedStrings(1200);
  assert.equal(strings.length, 1200);
  // The set really covers what it claims (so a generator change cannot quietly empty it).
  assert.ok(
    strings.some((s) => /[\u4e00-\u9fff]/.test(s)),
    'Chinese',
  );
  assert.ok(
    strings.some((s) => /[\u0600-\u06ff]/.test(s)),
    'Arabic',
  );
  assert.ok(
    strings.some((s) => s.includes('\u200d')),
    'ZWJ emoji',
  );
  assert.ok(
    strings.some((s) => /\p{Emoji_Modifier}/u.test(s)),
    'skin tones',
  );
  assert.ok(
    strings.some((s) => s.includes('<|im_start|>')) && strings.some((s) => s.includes('<|endoftext|>')),
    'special tokens',
  );
  assert.ok(
    strings.some((s) => / {3,}/.test(s)) &&
      strings.some((s) => /\n\n/.test(s)) &&
      strings.some((s) => s.includes('\t')),
    'whitespace runs',
  );
  assert.ok(
    strings.some((s) => /\d{6,}/.test(s)),
    'digit runs',
  );
  assert.ok(
    strings.some((s) => s.includes("'S")),
    "uppercase 's",
  );
  assert.ok(
    strings.some((s) => s !== s.normalize('NFC')),
    'text that NFC changes',
  );

  let tokens = 0;
  for (const s of strings) {
    const ids = qwen.encode(s);
    tokens += ids.length;
    assert.deepEqual(ids, peer.encode(s, { add_special_tokens: false }), `ids differ for ${JSON.stringify(s)}`);
    // Qwen2's normalizer is NFC, so the text comes back NFC-normalised (identical for text already in NFC).
    assert.equal(qwen.decode(ids), s.normalize('NFC'), `decode(encode(s)) differs for ${JSON.stringify(s)}`);
  }
  assert.ok(tokens > 50_000, `only ${tokens} tokens: the strings are too short to mean much`);
});

test('U+0085 and U+FEFF split as in HF Rust tokenizers (Oniguruma \\s), where a plain JS RegExp differs', () => {
  // Ids produced by the Rust implementation (npm `tokenizers` 0.23.2, Tokenizer.fromFile on the same
  // tokenizer.json, addSpecialTokens false). @lenml/tokenizers gives other ids for the first two.
  const expected: Array<[string, number[]]> = [
    ['a \u0085b', [64, 220, 126, 227, 65]],
    ['a \ufeffb', [64, 75780, 65]],
    ['x\u0085y \ufeffz', [87, 126, 227, 88, 75780, 89]],
    [' \u0085\u0085 a', [2139, 227, 126, 227, 264]],
    ['\ufeffLos Panthers', [3225, 29596, 44167]],
    ['end \ufeff\n', [408, 220, 61519]],
  ];
  for (const [text, ids] of expected) {
    assert.deepEqual(qwen.encode(text), ids, JSON.stringify(text));
    assert.equal(qwen.decode(ids), text);
  }
});

test('known Qwen ids, special tokens as single tokens, and decode options', () => {
  assert.deepEqual(qwen.encode('Hello world'), [9707, 1879]);
  assert.equal(qwen.vocabSize, 151669);
  assert.equal(qwen.eosTokenId, 151645);
  assert.equal(qwen.padTokenId, 151643);
  assert.equal(qwen.bosTokenId, null);
  assert.equal(qwen.tokenToId('<|im_start|>'), 151644);
  assert.equal(qwen.idToToken(151644), '<|im_start|>');
  assert.equal(qwen.idToToken(9707), 'Hello');

  const chat = '<|im_start|>user\nHi<|im_end|>\n';
  const ids = qwen.encode(chat);
  assert.deepEqual(ids, [151644, 872, 198, 13048, 151645, 198]);
  // Qwen2's post-processor adds no BOS/EOS either way.
  assert.deepEqual(qwen.encode(chat, { addSpecialTokens: false }), ids);
  assert.equal(qwen.decode(ids), chat);
  assert.equal(qwen.decode(ids, { skipSpecialTokens: true }), 'user\nHi\n');
  // <tool_call> is an added token but not special: it stays.
  assert.equal(qwen.decode(qwen.encode('<tool_call>x'), { skipSpecialTokens: true }), '<tool_call>x');
  assert.ok(qwen.isSpecial(151645) && !qwen.isSpecial(qwen.tokenToId('<tool_call>')!) && !qwen.isSpecial(9707));

  assert.deepEqual(qwen.encode(''), []);
  assert.equal(qwen.decode([]), '');
  assert.equal(qwen.decode([151645], { skipSpecialTokens: true }), '');
  // Half of a two-byte character decodes to U+FFFD, like HF's errors="replace".
  assert.equal(qwen.decode([qwen.tokenToId('Ã')!]), '\uFFFD');
  assert.throws(() => qwen.decode([qwen.vocabSize]), /not in the vocabulary/);
  assert.throws(() => qwen.decode([-1]), /not in the vocabulary/);
  assert.equal(qwen.tokenize('Hello world').join('|'), 'Hello|Ġworld');
});

test('vocabulary() and merges() expose what a GGUF writer needs', () => {
  const vocab = qwen.vocabulary();
  assert.equal(vocab.length, qwen.vocabSize);
  assert.equal(vocab[9707], 'Hello');
  assert.equal(vocab[151645], '<|im_end|>');
  const merges = qwen.merges();
  assert.equal(merges.length, 151387);
  assert.deepEqual(merges[0], ['Ġ', 'Ġ']);
  assert.equal(qwen.addedTokens.length, 26);
  assert.equal(qwen.addedTokens[0]!.content, '<|endoftext|>');
});

test(
  'adding <|embed_token|> to Qwen2.5 gives id 151665, ' + 'encodes it as one token, and survives save + load',
  async () => {
    const files = qwen2_5TokenizerFiles();
    const originalAdded = files.tokenizerJson.added_tokens.length;
    const tok = Tokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
    assert.equal(tok.vocabSize, 151665);
    const before = tok.encode('The embedding is <|embed_token|>.');
    assert.ok(before.length > 6);

    const result = tok.addSpecialTokens(['<|embed_token|>']);
    assert.deepEqual(result, { ids: [151665], added: 1 });
    assert.equal(tok.vocabSize, 151666);
    assert.deepEqual(tok.encode('The embedding is <|embed_token|>.'), [785, 39088, 374, 220, 151665, 13]);
    assert.equal(tok.decode([785, 39088, 374, 220, 151665, 13], { skipSpecialTokens: true }), 'The embedding is .');
    // Adding it again changes nothing; the caller's objects were not mutated.
    assert.deepEqual(tok.addSpecialTokens(['<|embed_token|>', '<|im_end|>']), { ids: [151665, 151645], added: 0 });
    assert.equal(files.tokenizerJson.added_tokens.length, originalAdded);
    assert.equal(files.tokenizerConfig.added_tokens_decoder?.['151665'], undefined);

    const dir = await tempDir();
    try {
      await tok.save(dir);
      assert.deepEqual((await readdir(dir)).sort(), ['tokenizer.json', 'tokenizer_config.json'], 'no temp files left');
      const savedConfig = JSON.parse(await readFile(path.join(dir, 'tokenizer_config.json'), 'utf8'));
      assert.deepEqual(savedConfig.added_tokens_decoder['151665'], {
        content: '<|embed_token|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      });
      assert.ok(savedConfig.additional_special_tokens.includes('<|embed_token|>'));
      const savedJson = JSON.parse(await readFile(path.join(dir, 'tokenizer.json'), 'utf8'));
      assert.deepEqual(savedJson.added_tokens.at(-1), {
        id: 151665,
        content: '<|embed_token|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      });
      // Everything else in tokenizer.json is as loaded.
      assert.deepEqual({ ...savedJson, added_tokens: savedJson.added_tokens.slice(0, -1) }, files.tokenizerJson);

      const again = await Tokenizer.fromFolder(dir);
      assert.equal(again.vocabSize, 151666);
      assert.equal(again.tokenToId('<|embed_token|>'), 151665);
      assert.ok(again.isSpecial(151665));
      assert.deepEqual(again.encode('x<|embed_token|>y'), tok.encode('x<|embed_token|>y'));
      assert.equal(again.chatTemplateSource, tok.chatTemplateSource);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test('a folder with a missing or malformed tokenizer file fails with one message naming the file', async () => {
  const dir = await tempDir();
  try {
    await assert.rejects(Tokenizer.fromFolder(dir), (err: Error) => {
      assert.match(err.message, /tokenizer\.json: is missing/);
      assert.ok(err.message.includes(path.join(dir, 'tokenizer.json')));
      return true;
    });
    const ref = qwenReferenceTokenizerDir();
    await copyFile(path.join(ref, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    await assert.rejects(Tokenizer.fromFolder(dir), /tokenizer_config\.json: is missing/);

    await writeFile(path.join(dir, 'tokenizer_config.json'), '{"eos_token": "<|im_end|>",');
    await assert.rejects(Tokenizer.fromFolder(dir), /tokenizer_config\.json: is not valid JSON/);

    await writeFile(path.join(dir, 'tokenizer_config.json'), '{"eos_token": "<|no_such_token|>"}');
    await assert.rejects(
      Tokenizer.fromFolder(dir),
      /tokenizer_config\.json: eos_token is "<\|no_such_token\|>", which is not a token/,
    );

    await writeFile(path.join(dir, 'tokenizer_config.json'), '{}');
    await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'Unigram', vocab: [] } }));
    await assert.rejects(
      Tokenizer.fromFolder(dir),
      /tokenizer\.json: model\.type is "Unigram", but only byte-level "BPE"/,
    );

    await writeFile(path.join(dir, 'tokenizer.json'), '[]');
    await assert.rejects(Tokenizer.fromFolder(dir), /tokenizer\.json: is not a JSON object/);

    const bpe = (vocab: unknown, merges: unknown): string => JSON.stringify({ model: { type: 'BPE', vocab, merges } });
    await writeFile(path.join(dir, 'tokenizer.json'), bpe({ a: 0, b: 1, ab: 2 }, ['a b', 7]));
    await assert.rejects(Tokenizer.fromFolder(dir), /tokenizer\.json: model\.merges\[1\] 7 is not "left right"/);
    await writeFile(path.join(dir, 'tokenizer.json'), bpe({ a: 0, b: -3 }, []));
    await assert.rejects(Tokenizer.fromFolder(dir), /tokenizer\.json: model\.vocab\["b"\] is -3, not a token id/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('chat_template.jinja holds the chat template when there is one, and is written back by save', async () => {
  const dir = await tempDir();
  try {
    const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
    const { chat_template: template, ...withoutTemplate } = tokenizerConfig;
    assert.equal(typeof template, 'string');
    const write = async (folder: string, config: object, jinja: string | null): Promise<void> => {
      await mkdir(folder, { recursive: true });
      await writeFile(path.join(folder, 'tokenizer.json'), JSON.stringify(tokenizerJson));
      await writeFile(path.join(folder, 'tokenizer_config.json'), JSON.stringify(config));
      if (jinja !== null) await writeFile(path.join(folder, 'chat_template.jinja'), jinja);
    };
    const chat = [{ role: 'user', content: 'protein cell' }];
    const rendered = Tokenizer.fromJSON(tokenizerJson, tokenizerConfig).renderChat(chat);

    // transformers 4.43 on saves the template so: the config has none
    const saved = path.join(dir, 'saved');
    await write(saved, withoutTemplate, template as string);
    const tok = await Tokenizer.fromFolder(saved);
    assert.equal(tok.chatTemplateSource, template);
    assert.equal(tok.renderChat(chat), rendered);

    // save keeps it there, so the folder loads again with the same template
    const copy = path.join(dir, 'copy');
    await tok.save(copy);
    assert.equal(await readFile(path.join(copy, 'chat_template.jinja'), 'utf8'), template);
    const copiedConfig = JSON.parse(await readFile(path.join(copy, 'tokenizer_config.json'), 'utf8'));
    assert.equal(copiedConfig.chat_template, undefined);
    assert.equal((await Tokenizer.fromFolder(copy)).renderChat(chat), rendered);

    // with a template in both, the file's wins, as in transformers' from_pretrained
    const both = path.join(dir, 'both');
    await write(both, tokenizerConfig, 'file: {{ messages[0].content }}');
    assert.equal((await Tokenizer.fromFolder(both)).renderChat(chat), 'file: protein cell');

    // a tokenizer whose template is in its config, saved over that folder, leaves no file to override it
    await Tokenizer.fromJSON(tokenizerJson, tokenizerConfig).save(both);
    assert.deepEqual((await readdir(both)).sort(), ['tokenizer.json', 'tokenizer_config.json']);
    assert.equal((await Tokenizer.fromFolder(both)).renderChat(chat), rendered);

    const none = path.join(dir, 'none');
    await write(none, withoutTemplate, null);
    await assert.rejects(
      Tokenizer.fromFolder(none).then((t) => t.renderChat(chat)),
      (e: unknown) =>
        e instanceof ModelFileError &&
        e.message ===
          `${path.join(none, 'tokenizer_config.json')}: has no chat_template, and there is no chat_template.jinja ` +
            "beside it; add the model's chat template to render conversations.",
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an id given to two different strings is refused; a vocabulary token listed again as added is kept', () => {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
  const amp = tokenizerJson.model.vocab['&']!;
  const embedAt = (id: number): unknown => ({
    ...tokenizerJson,
    added_tokens: tokenizerJson.added_tokens.map((t) => (t.content === '<|embed_token|>' ? { ...t, id } : t)),
  });
  // the engine would take "&" in a text for <|embed_token|>: "a&b" decoded as "a<|embed_token|>b"
  assert.throws(
    () => Tokenizer.fromJSON(embedAt(amp), tokenizerConfig),
    (e: unknown) =>
      e instanceof ModelFileError &&
      e.message ===
        `tokenizer.json: id ${amp} is given to both "&" and "<|embed_token|>" (added_tokens[3]); ` +
          'give each token an id of its own.',
  );
  const endoftext = tokenizerJson.added_tokens[0]!.id;
  assert.throws(() => Tokenizer.fromJSON(embedAt(endoftext), tokenizerConfig), /both "<\|endoftext\|>" and "<\|embed/);
  const twice = {
    ...tokenizerJson,
    model: { ...tokenizerJson.model, vocab: { ...tokenizerJson.model.vocab, '&&': amp } },
  };
  assert.throws(
    () => Tokenizer.fromJSON(twice, tokenizerConfig),
    /id \d+ is given to both "&" and "&&" \(model\.vocab\)/,
  );
  const negative = embedAt(-1);
  assert.throws(() => Tokenizer.fromJSON(negative, tokenizerConfig), /added_tokens\[3\] needs a token id "id"/);

  // GPT-2's tokenizer.json lists <|endoftext|> in model.vocab and again as an added token with the same id
  const relisted = {
    ...tokenizerJson,
    added_tokens: [...tokenizerJson.added_tokens, { ...tokenizerJson.added_tokens[0]!, id: amp, content: '&' }],
  };
  const tok = Tokenizer.fromJSON(relisted, tokenizerConfig);
  assert.equal(tok.decode(tok.encode('a&b')), 'a&b');
  assert.equal(tok.tokenToId('&'), amp);
});

test('BPE model options that change how words split, which the engine does not model, are refused', () => {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 300 });
  const withModel = (extra: Record<string, unknown>): unknown => ({
    ...tokenizerJson,
    model: { ...tokenizerJson.model, ...extra },
  });
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ ignore_merges: true }, /model\.ignore_merges is true; only plain byte-level BPE \(ignore_merges false\)/],
    [{ byte_fallback: true }, /model\.byte_fallback is true/],
    [{ dropout: 0.1 }, /model\.dropout is 0\.1/],
    [{ continuing_subword_prefix: '##' }, /model\.continuing_subword_prefix is "##"/],
  ];
  for (const [extra, expected] of refused)
    assert.throws(() => Tokenizer.fromJSON(withModel(extra), tokenizerConfig), expected, JSON.stringify(extra));
  // the plain settings, as Qwen2's file writes them, or left out
  const plain = { dropout: null, ignore_merges: false, byte_fallback: false, continuing_subword_prefix: null };
  assert.ok(Tokenizer.fromJSON(withModel(plain), tokenizerConfig));
});

test('longestTokenChars bounds the text one token stands for, so a length alone can exceed n tokens', async () => {
  const ours = await Tokenizer.fromFolder(path.join(repoRoot, 'models', 'search-r3-default'));
  // normalization may shrink a text (NFC composes 'A' + two marks into one character): the server allows 2×
  const shrinking = [
    'A\u030A\u0301'.repeat(300),
    'e\u0301'.repeat(500),
    '\u{1D400}'.repeat(400),
    ' '.repeat(5000),
    '─'.repeat(3000),
    '<|im_start|>'.repeat(50),
  ];
  for (const tok of [qwen, ours]) {
    const longest = tok.longestTokenChars();
    assert.ok(longest >= 12 && longest < 1000, String(longest));
    for (const s of [...variedStrings(300), ...shrinking]) {
      const n = tok.encode(s).length;
      assert.ok(n * longest * 2 >= s.length, `${JSON.stringify(s.slice(0, 40))}: ${n} × ${longest} × 2 < ${s.length}`);
    }
  }
});
