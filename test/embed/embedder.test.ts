import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import {
  Embedder,
  type EmbedderOptions,
  encodePrompt,
  DEFAULT_TEMPLATES,
  PromptTooLongError,
} from '../../src/embed/index.js';
import { ModelFileError } from '../../src/model/model-file-error.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { relErr } from '../helpers/torch.js';
import { tinyModel } from '../helpers/tiny-model.js';

const { model, tokenizer } = tinyModel(11, { tieWordEmbeddings: false });
const docs = [
  'Aspirin reduces the risk of heart attack.',
  'short',
  'The mitochondria is the powerhouse of the cell, and ATP synthase turns a proton gradient into chemical energy.',
  '深度学习',
  '',
];

function hiddenAtLast(ids: number[]): Float32Array {
  const h = T.noGrad(() => model.forward(Int32Array.from(ids), 1, ids.length)).data;
  const d = model.config.hiddenSize;
  return h.slice((ids.length - 1) * d, ids.length * d);
}

const unit = (v: Float32Array): Float32Array => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};

test('prompts follow the published format: chat template, assistant turn ending at <|embed_token|>', () => {
  const p = encodePrompt(tokenizer, 'what is BM25?', 'query', DEFAULT_TEMPLATES, 256);
  assert.equal(
    tokenizer.decode(p.ids),
    '<|im_start|>system\nPlease represent user queries.<|im_end|>\n<|im_start|>user\nwhat is ' +
      'BM25?<|im_end|>\n<|im_start|>assistant\nThe embedding is <|embed_token|>',
  );
  assert.equal(p.embedAt, p.ids.length - 1);
  const r = encodePrompt(tokenizer, 'what is BM25?', 'query', DEFAULT_TEMPLATES, 256, true);
  assert.ok(tokenizer.decode(r.ids).endsWith('<|im_start|>assistant\n'));
  const d = encodePrompt(tokenizer, 'a document', 'document', DEFAULT_TEMPLATES, 256);
  assert.ok(tokenizer.decode(d.ids).startsWith('<|im_start|>system\nPlease represent documents.<|im_end|>'));
});

test('embedDocuments: unit vectors in input order, batched by length, equal to one forward pass each', () => {
  const e = new Embedder(model, tokenizer, { batchTokens: 150 });
  const { vectors, stats } = e.embedDocuments(docs);
  assert.equal(vectors.length, docs.length);
  assert.equal(stats.texts, docs.length);
  docs.forEach((text, i) => {
    const ids = encodePrompt(tokenizer, text, 'document', DEFAULT_TEMPLATES, 256).ids;
    assert.ok(Math.abs(Math.hypot(...vectors[i]) - 1) < 1e-5);
    assert.ok(relErr(vectors[i], unit(hiddenAtLast(ids))) < 1e-5, `document ${i}`);
  });
});

test('texts longer than the context are cut to fit and counted', () => {
  const e = new Embedder(model, tokenizer, { maxLength: 120 });
  const long = 'protein folding '.repeat(100);
  const { vectors, stats } = e.embedDocuments([long, 'short one']);
  assert.equal(stats.truncatedTexts, 1);
  assert.equal(vectors[0].length, model.config.hiddenSize);
  const p = encodePrompt(tokenizer, long, 'document', DEFAULT_TEMPLATES, 120);
  assert.ok(p.ids.length <= 120 && p.truncated > 0);
  assert.equal(p.ids[p.ids.length - 1], tokenizer.tokenToId('<|embed_token|>'));
  // a context too small for the template itself is a setting to change, named as such (one line in the CLI)
  assert.throws(
    () => encodePrompt(tokenizer, long, 'document', DEFAULT_TEMPLATES, 5),
    (e: unknown) =>
      e instanceof PromptTooLongError && e.name === 'PromptTooLongError' && /raise maxLength/.test(e.message),
  );
});

test('a chat template that leaves out the assistant turn, or renders nothing, is refused naming its file', () => {
  const { tokenizerJson, tokenizerConfig } = tokenizer.toJSON();
  const withTemplate = (chat_template: string): Tokenizer =>
    Tokenizer.fromJSON(tokenizerJson, { ...tokenizerConfig, chat_template });
  const noAssistant = withTemplate(
    "{% for m in messages %}{% if m.role != 'assistant' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n" +
      '{% endif %}{% endfor %}',
  );
  const every = "use a chat template that renders every message, as Qwen2.5-Instruct's does.";
  const refused =
    (message: string) =>
    (e: unknown): boolean =>
      e instanceof ModelFileError && e.message === message;
  // embedding at no token gave a vector of no dimensions, without a word
  assert.throws(
    () => new Embedder(model, noAssistant).embedDocuments(['a document']),
    refused(
      'tokenizer_config.json: chat_template leaves out the assistant turn ("The embedding is <|embed_token|>."), ' +
        `so a document prompt has no <|embed_token|> to embed at; ${every}`,
    ),
  );
  assert.throws(
    () => encodePrompt(withTemplate(''), 'q', 'query', DEFAULT_TEMPLATES, 256, true),
    refused(`tokenizer_config.json: chat_template renders a query prompt as no text at all; ${every}`),
  );
});

test('embedQuery with reasoning: a model that never emits the token gets it forced, and says so', () => {
  const e = new Embedder(model, tokenizer);
  const q = e.embedQuery('does aspirin help?', { reasoning: 'on', maxReasoningTokens: 6 });
  assert.equal(q.forced, true);
  assert.equal(q.tokens.length, 6);
  const prompt = encodePrompt(tokenizer, 'does aspirin help?', 'query', DEFAULT_TEMPLATES, 256, true).ids;
  // the vector is the hidden state at the token appended after the analysis
  assert.ok(
    relErr(q.vector, unit(hiddenAtLast([...prompt, ...q.tokens, tokenizer.tokenToId('<|embed_token|>')!]))) < 1e-5,
  );
  const off = e.embedQuery('does aspirin help?');
  assert.equal(off.forced, false);
  assert.equal(off.reasoning, '');
  assert.ok(relErr(q.vector, off.vector) > 1e-3, 'reasoning changes the embedding');
});

test(
  'embedQuery with reasoning: a model that emits the token ' +
    'is not forced, and its vector is the hidden state there',
  () => {
    const local = tinyModel(11, { tieWordEmbeddings: false });
    const e = new Embedder(local.model, local.tokenizer);
    const prompt = encodePrompt(local.tokenizer, 'q', 'query', DEFAULT_TEMPLATES, 256, true).ids;
    // point the embed token's output row at the prompt's last hidden state: it becomes the greedy choice
    const h = T.noGrad(() => local.model.forward(Int32Array.from(prompt), 1, prompt.length)).data;
    const d = local.model.config.hiddenSize,
      embedId = e.embedId;
    const head = local.model.params.get('lm_head.weight')!.data;
    for (let i = 0; i < d; i++) head[embedId * d + i] = 100 * h[(prompt.length - 1) * d + i];
    const q = e.embedQuery('q', { reasoning: 'on', maxReasoningTokens: 8 });
    assert.equal(q.forced, false);
    assert.deepEqual(q.tokens, [embedId]);
    const full = T.noGrad(() => local.model.forward(Int32Array.from([...prompt, embedId]), 1, prompt.length + 1)).data;
    assert.ok(relErr(q.vector, unit(full.slice(prompt.length * d, (prompt.length + 1) * d))) < 1e-5);
  },
);

test('query options and texts that are not what QueryOptions says are refused, naming them, before any pass', () => {
  const e = new Embedder(model, tokenizer);
  const refused = (message: string) => (err: unknown) => err instanceof RangeError && err.message === message;
  // NaN fails both `> 0` and `<= 0`: the sampler took it for a temperature that draws, without the generator
  assert.throws(
    () => e.embedQuery('aspirin', { reasoning: 'on', temperature: NaN }),
    refused("'temperature' must be a number ≥ 0 (got NaN)."),
  );
  assert.throws(
    () => e.embedQuery('aspirin', { reasoning: 'on', temperature: 1, topP: NaN }),
    refused("'topP' must be a number in [0, 1] (got NaN)."),
  );
  assert.throws(
    () => e.embedQuery('aspirin', { reasoning: 'yes' as 'on' }),
    refused("'reasoning' must be 'on' or 'off' (got 'yes')."),
  );
  assert.throws(
    () => e.embedQuery('aspirin', { reasoning: 'on', maxReasoningTokens: -1 }),
    refused("'maxReasoningTokens' must be an integer ≥ 0 (got -1)."),
  );
  // the chat template was blamed for a query that is not text
  assert.throws(() => e.embedQuery(null as unknown as string), refused('query text [0] must be a string (got null).'));
  assert.throws(
    () => e.embedDocuments(['a', 7 as unknown as string]),
    refused('document text [1] must be a string (got 7).'),
  );
});

test("an Embedder's options that are not what EmbedderOptions says are refused, naming them, at construction", () => {
  const refused = (message: string) => (err: unknown) => err instanceof RangeError && err.message === message;
  // a maxLength that is no number made every vector NaN; a batchTokens that is none failed in the forward pass
  const cases: [unknown, string][] = [
    [{ maxLength: 'abc' }, "'maxLength' must be a positive integer (got 'abc')."],
    [{ maxLength: NaN }, "'maxLength' must be a positive integer (got NaN)."],
    [{ batchTokens: 'x' }, "'batchTokens' must be a positive integer (got 'x')."],
    [{ batchTokens: 0 }, "'batchTokens' must be a positive integer (got 0)."],
    [{ templates: { documentSystem: 5 } }, "'templates.documentSystem' must be a string (got 5)."],
    [5, 'the embedder options must be an object (got 5).'],
  ];
  for (const [opts, message] of cases)
    assert.throws(() => new Embedder(model, tokenizer, opts as EmbedderOptions), refused(message), message);
});
