import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  DEFAULT_TEMPLATES,
  EMBED_TOKEN,
  type EncodedPrompt,
  type PromptKind,
  PromptTooLongError,
  UNCOUNTED_CUT,
  embedTokenId,
  encodePrompt,
} from '../../src/embed/prompts.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { QWEN2_5_CHAT_TEMPLATE } from '../../src/model/qwen2-chat-template.js';
import { SequenceEncoder } from '../../src/train/sft/sequences.js';
import { cutTexts, encodedLengths } from '../helpers/cut-texts.js';
import { qwenReferenceTokenizerDir } from '../helpers/qwen-reference-tokenizer.js';
import { repoRoot } from '../helpers/repo.js';
import { seededRandom } from '../helpers/varied-strings.js';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.js';

/**
 * What encodePrompt is defined to give, computed the plain way: encode the whole rendered chat and the whole
 * text, keep the text's first maxLength − overhead tokens, shrink while the decoded cut re-encodes too long.
 */
function wholeTextPrompt(
  tok: Tokenizer,
  text: string,
  kind: PromptKind,
  maxLength: number,
  reasoning: boolean,
): EncodedPrompt {
  const t = DEFAULT_TEMPLATES;
  const system = kind === 'document' ? t.documentSystem : reasoning ? t.reasoningSystem : t.querySystem;
  const render = (content: string): number[] => {
    const messages = [
      { role: 'system', content: system },
      { role: 'user', content },
    ];
    if (reasoning) return tok.encode(tok.renderChat(messages, { addGenerationPrompt: true }));
    const full = tok.encode(tok.renderChat([...messages, { role: 'assistant', content: t.directResponse }]));
    return full.slice(0, full.lastIndexOf(embedTokenId(tok)) + 1);
  };
  let ids = remembered(tok, `${kind} ${reasoning}`, text, render);
  let truncated = 0;
  if (ids.length > maxLength) {
    const textIds = remembered(tok, 'text', text, (t) => tok.encode(t));
    const overhead = ids.length - textIds.length;
    if (maxLength - overhead < 1) throw new PromptTooLongError(`overhead ${overhead}`);
    for (let k = maxLength - overhead; k >= 1; k--) {
      ids = render(tok.decode(textIds.slice(0, k)));
      if (ids.length <= maxLength) {
        truncated = textIds.length - k;
        break;
      }
    }
  }
  return { ids, embedAt: reasoning ? -1 : ids.length - 1, truncated };
}

const encodings = new WeakMap<Tokenizer, Map<string, number[]>>();

/** `encode(text)` once for each tokenizer, `what` and text: each is asked for again at every prompt length. */
function remembered(tok: Tokenizer, what: string, text: string, encode: (text: string) => number[]): number[] {
  const known = encodings.get(tok) ?? new Map<string, number[]>();
  encodings.set(tok, known);
  const key = `${what}\0${text}`;
  const ids = known.get(key) ?? encode(text);
  known.set(key, ids);
  return ids;
}

function withEmbedToken(tok: Tokenizer): Tokenizer {
  tok.addSpecialTokens([EMBED_TOKEN]);
  return tok;
}

const tiny = (chatTemplate: string): Tokenizer => {
  const { tokenizerJson, tokenizerConfig } = makeTinyTokenizer({ vocabSize: 400, chatTemplate });
  return Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
};

// The shipped model's tokenizer; the real Qwen vocabulary with Qwen3's chat template (which looks into the
// messages it renders); a tiny one; and one whose template trims the text, so the text is not in the chat as
// it is and a long text must be encoded whole.
const tokenizers: [string, Tokenizer][] = [
  ['shipped', await Tokenizer.fromFolder(path.join(repoRoot, 'models', 'search-r3-default'))],
  ['qwen3', withEmbedToken(await Tokenizer.fromFolder(qwenReferenceTokenizerDir()))],
  ['tiny', tiny(QWEN2_5_CHAT_TEMPLATE)],
  [
    'trimming',
    tiny(
      QWEN2_5_CHAT_TEMPLATE.replace(
        "'\\n' + message.content + '<|im_end|>'",
        "'\\n' + (message.content | trim) + '<|im_end|>'",
      ),
    ),
  ],
];

/** Texts with long runs (many characters a token) as well as dense ones, so long texts both fit and are cut. */
function promptTexts(seed: number): string[] {
  const rand = seededRandom(seed);
  const sparse = [
    'word' + ' '.repeat(200) + 'x. ',
    '-'.repeat(64) + ' b. ',
    '='.repeat(100) + '\n',
    'ab' + '\n'.repeat(50),
    ' déjà' + ' '.repeat(120) + '東京. ',
    '  \t \n',
  ];
  const texts = cutTexts(4, 3000, seed);
  for (let i = 0; i < 5; i++) {
    let t = ['', '東京 ', '  \n'][i % 3];
    while (t.length < 6000) t += rand() < 0.8 ? sparse[Math.floor(rand() * sparse.length)] : texts[i % 4].slice(0, 40);
    texts.push(t);
  }
  return texts;
}

test('a long text gives the prompt, embed position and cut count that encoding it whole gives', () => {
  const rand = seededRandom(5);
  for (const [name, tok] of tokenizers) {
    let cut = 0,
      fit = 0,
      refused = 0,
      long = 0,
      trimmed = 0;
    for (const [i, text] of promptTexts(3).entries()) {
      for (const [kind, reasoning] of [
        ['document', false],
        ['query', false],
        ['query', true],
      ] as const) {
        const full = wholeTextPrompt(tok, text, kind, 1 << 20, reasoning).ids.length;
        const textTokens = remembered(tok, 'text', text, (t) => tok.encode(t)).length;
        const overhead = full - textTokens;
        // around the edges: exactly fitting, one token over, nothing of the text left, and some in between
        const lengths = [full + 1, full, full - 1, overhead + 2, overhead + 1, overhead, overhead - 1];
        for (let k = 0; k < 2; k++) lengths.push(overhead + 2 + Math.floor(rand() * Math.min(400, textTokens)));
        for (const maxLength of lengths.filter((n) => n > 0)) {
          const what = `${name}, text ${i}, ${kind}${reasoning ? ' reasoning' : ''}, maxLength ${maxLength}`;
          let want: EncodedPrompt;
          try {
            want = wholeTextPrompt(tok, text, kind, maxLength, reasoning);
          } catch (err) {
            assert.ok(err instanceof PromptTooLongError, what);
            assert.throws(() => encodePrompt(tok, text, kind, DEFAULT_TEMPLATES, maxLength, reasoning), {
              name: 'PromptTooLongError',
              message: new RegExp(`needs ${overhead} tokens`),
            });
            refused++;
            continue;
          }
          const got = encodePrompt(tok, text, kind, DEFAULT_TEMPLATES, maxLength, reasoning);
          assert.deepEqual(got, want, what);
          const quick = encodedLengths(tok, () =>
            encodePrompt(tok, text, kind, DEFAULT_TEMPLATES, maxLength, reasoning, UNCOUNTED_CUT),
          );
          assert.deepEqual(quick.result.ids, want.ids, what);
          assert.equal(quick.result.embedAt, want.embedAt, what);
          assert.equal(quick.result.truncated > 0, want.truncated > 0, what);
          assert.ok(quick.result.truncated <= want.truncated, what);
          // a text far longer than its prompt is not encoded whole, unless the template does not show it as it is
          if (text.length > 10 * maxLength && textTokens > 4 * maxLength) {
            const changed = !tok.renderChat([{ role: 'user', content: text }]).includes(text);
            assert.equal(
              quick.lengths.some((n) => n >= text.length),
              changed,
              `${what}: ${quick.lengths}`,
            );
            long++;
            if (changed) trimmed++;
          }
          if (want.truncated > 0) cut++;
          else fit++;
        }
      }
    }
    const counts = `${name}: ${cut} cut, ${fit} fit, ${refused} refused, ${long} long, ${trimmed} trimmed`;
    assert.ok(cut > 50 && fit > 20 && refused > 5 && long > 20 && (name !== 'trimming' || trimmed > 5), counts);
  }
});

test('stage 1 encodes a long positive passage no further than the training sequence needs', () => {
  const tok = tokenizers[0][1];
  const passage = cutTexts(1, 400_000, 23)[0];
  const encoder = new SequenceEncoder(tok, DEFAULT_TEMPLATES, 256);
  const { result, lengths } = encodedLengths(tok, () => encoder.encode(passage, 'document'));
  assert.ok(Math.max(...lengths) < 10_000, `encoded ${Math.max(...lengths)} characters at once`);
  const want = wholeTextPrompt(tok, passage, 'document', 256 - encoder.tailLength, false);
  assert.deepEqual(result.ids.slice(0, want.ids.length), want.ids);
  assert.equal(result.embedAt, want.embedAt);
  assert.ok(result.truncated > 0);
});
