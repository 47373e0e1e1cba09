/**
 * The llama.cpp engine (node-llama-cpp 3.21.1, CPU) against search-r3's own engine on the same tiny
 * Search-R3 model folder (F16 weights, held in 16 bits by ours) and its GGUF exports: documents and
 * queries with reasoning off and on at cosine ≥ 0.9999 for the f16 GGUF and ≥ 0.99 for q8_0, and the
 * same greedy analysis under f16 (a first difference is accepted only at a near-tie of our own top-2
 * logits, < 1e-2, as f16 activations in llama.cpp may break it the other way). The greedy text is
 * compared on random weights whose layers amplify (so that continuations vary); q8_0 on weights whose
 * layers keep the scale, as trained ones do: with gain 2, q8_0's rounding grows layer by layer (worst
 * document cosine 0.986–0.998 over seeds 1–8), with gain 1 it stays ≥ 0.9998 on every seed. Bad input: a GGUF of
 * another architecture, one without <|embed_token|>, a folder whose tokenizer lacks it, a model larger
 * than the memory allowed: one sentence each.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Embedder, encodePrompt, DEFAULT_TEMPLATES } from '../../src/embed/index.js';
import { LlamaCppEngine } from '../../src/embed/llama-cpp-engine.js';
import { qwen2GgufContents, ggufTokenizerFromFiles, writeGguf, str } from '../../src/model/gguf.js';
import { type LoadedModel, loadModelFolder } from '../../src/model/model-folder.js';
import { readQwen2Config } from '../../src/model/qwen2-config.js';
import { cosine } from '../helpers/llama-cpp.js';
import { exportGguf, ggufModelFolder } from '../helpers/gguf-model-folder.js';
import { DEFAULT_SCALES, VARIED_SCALES } from '../helpers/random-qwen2.js';
import { tinyModelFolder } from '../helpers/train-fixtures.js';

const DOCS = [
  'Aspirin lowers the risk of heart attack in adults.',
  'short',
  'Mitochondria turn a proton gradient into ATP.',
  '深度学习',
];
const QUERIES = ['does aspirin prevent heart attacks?', 'what makes ATP', 'protein folding'];
const NEAR_TIE = 1e-2;

let root = '',
  dir = '';
let ours: LoadedModel;
let embedder: Embedder;
/** Per GGUF type: the engine, and search-r3's engine on the folder it was exported from. */
const pairs: Partial<Record<'F16' | 'Q8_0', { engine: LlamaCppEngine; embedder: Embedder }>> = {};

before(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'sr3-llama-engine-'));
  for (const type of ['F16', 'Q8_0'] as const) {
    const folder = path.join(root, type);
    await ggufModelFolder(folder, type === 'F16' ? 6 : 1, type === 'F16' ? VARIED_SCALES : DEFAULT_SCALES);
    const m = await loadModelFolder(folder);
    // one thread each: given to the F16 engine, taken by the Q8_0 one from SEARCH_R3_THREADS as ours takes it
    const setting = process.env.SEARCH_R3_THREADS;
    process.env.SEARCH_R3_THREADS = '1';
    const engine = await LlamaCppEngine.open({
      gguf: await exportGguf(folder, type),
      modelDir: folder,
      gpu: 'off',
      ...(type === 'F16' ? { threads: 1 } : {}),
    }).finally(() => {
      if (setting === undefined) delete process.env.SEARCH_R3_THREADS;
      else process.env.SEARCH_R3_THREADS = setting;
    });
    pairs[type] = { engine, embedder: new Embedder(m.model, m.tokenizer) };
    if (type === 'F16') {
      dir = folder;
      ours = m;
      embedder = pairs[type].embedder;
    }
  }
});

after(async () => {
  for (const p of Object.values(pairs)) await p.engine.close();
  await fsp.rm(root, { recursive: true, force: true });
});

const floor = { F16: 0.9999, Q8_0: 0.99 };

for (const type of ['F16', 'Q8_0'] as const) {
  test(`${type} GGUF: documents and direct queries at cosine ≥ ${floor[type]} with search-r3's engine`, async () => {
    const { engine: e, embedder: mine } = pairs[type]!;
    assert.equal(e.gpu, false);
    assert.equal(e.threads, 1);
    assert.equal(e.facts.fileType, type);
    const theirs = (await e.embedDocuments(DOCS)).vectors;
    mine.embedDocuments(DOCS).vectors.forEach((v, i) => {
      assert.ok(cosine(v, theirs[i]) >= floor[type], `document ${i}: cosine ${cosine(v, theirs[i])}`);
    });
    const q = await e.embedQueries(QUERIES);
    mine.embedQueries(QUERIES).forEach((v, i) => assert.ok(cosine(v.vector, q[i].vector) >= floor[type], `query ${i}`));
  });
}

test('close() while it works: the work stops at its next text, close() resolves, later calls are refused', async () => {
  const e = await LlamaCppEngine.open({ gguf: path.join(dir, 'model-f16.gguf'), modelDir: dir, gpu: 'off' });
  const texts = Array.from({ length: 2000 }, (_, i) => `${DOCS[i % DOCS.length]} ${i}`);
  let done = 0;
  let closed: Promise<void> | undefined;
  const embedding = e.embedDocuments(texts, (n) => {
    done = n;
    closed ??= e.close(); // after the first text: llama.cpp is at work
  });
  const queued = e.embedQueries(['waits its turn']);
  const refused = /^EngineError: the llama\.cpp engine has been closed\.$/;
  await assert.rejects(embedding, (err: Error) => refused.test(`${err.name}: ${err.message}`));
  await assert.rejects(queued, (err: Error) => refused.test(`${err.name}: ${err.message}`));
  await closed;
  assert.ok(done < texts.length, `it embedded all ${done} texts before it stopped`);
  await assert.rejects(e.embedDocuments(['later']), /has been closed/);
  await e.close(); // a second close() is harmless
});

/** Our top-2 logit gap after `seq`. */
function gapAfter(seq: number[]): number {
  const logits = T.noGrad(() => ours.model.logits(ours.model.forward(Int32Array.from(seq), 1, seq.length))).data;
  const row = Array.from(logits.subarray((seq.length - 1) * ours.config.vocabSize)).sort((a, b) => b - a);
  return row[0] - row[1];
}

test('F16 GGUF, reasoning on: the same greedy analysis and the <|embed_token|> state at cosine ≥ 0.9999', async () => {
  const e = pairs.F16!.engine;
  const budget = 24;
  const theirs = await e.embedQueries(QUERIES, { reasoning: 'on', maxReasoningTokens: budget });
  const mine = embedder.embedQueries(QUERIES, { reasoning: 'on', maxReasoningTokens: budget });
  let compared = 0;
  for (const [i, m] of mine.entries()) {
    const t = theirs[i];
    const first = m.tokens.findIndex((tok, j) => tok !== t.tokens[j]);
    if (first >= 0 || m.tokens.length !== t.tokens.length) {
      const at = first >= 0 ? first : Math.min(m.tokens.length, t.tokens.length);
      const prompt = encodePrompt(
        ours.tokenizer,
        QUERIES[i],
        'query',
        DEFAULT_TEMPLATES,
        e.maxLength - 1 - budget,
        true,
      ).ids;
      const gap = gapAfter([...prompt, ...m.tokens.slice(0, at)]);
      assert.ok(
        gap < NEAR_TIE,
        `query ${i}: analyses part at token ${at} (our top-2 gap ${gap})\nours  ${m.tokens}\ntheirs ${t.tokens}`,
      );
      continue;
    }
    assert.equal(t.reasoning, m.reasoning);
    assert.equal(t.forced, m.forced);
    assert.ok(new Set(m.tokens).size >= 4, 'the analysis is varied, so agreement means something');
    assert.ok(cosine(m.vector, t.vector) >= 0.9999, `query ${i}: cosine ${cosine(m.vector, t.vector)}`);
    compared++;
  }
  assert.ok(compared >= 2, `${compared} of ${QUERIES.length} analyses compared in full`);
});

test(
  'Q8_0 GGUF, reasoning on: the <|embed_token|> state ' + 'after its own analysis at cosine ≥ 0.99 with ours',
  async () => {
    // q8_0 rounding soon takes the analysis elsewhere; the vector is compared on the analysis it wrote
    const { engine: e, embedder: q8 } = pairs.Q8_0!;
    const budget = 8;
    const theirs = await e.embedQueries(QUERIES, { reasoning: 'on', maxReasoningTokens: budget });
    for (const [i, t] of theirs.entries()) {
      const prompt = encodePrompt(
        q8.tokenizer,
        QUERIES[i],
        'query',
        DEFAULT_TEMPLATES,
        e.maxLength - 1 - budget,
        true,
      ).ids;
      const analysis = t.forced && t.tokens.length === budget ? t.tokens : t.tokens.slice(0, -1);
      const [mine] = q8.forwardBatches([[...prompt, ...analysis, q8.embedId]]);
      assert.ok(cosine(mine, t.vector) >= 0.99, `query ${i}: cosine ${cosine(mine, t.vector)}`);
    }
  },
);

test(
  'bad input is one sentence: another architecture, no ' +
    '<|embed_token|> in the GGUF or the folder, too little memory',
  async () => {
    const config = await readQwen2Config(path.join(dir, 'config.json'));
    const tokJson = JSON.parse(await fsp.readFile(path.join(dir, 'tokenizer.json'), 'utf8'));
    const tokConfig = JSON.parse(await fsp.readFile(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    const tokenizer = ggufTokenizerFromFiles(tokJson, tokConfig, config);
    const tensors = new Map([...ours.model.params].map(([n, t]) => [n, { shape: t.shape, data: t.readValues() }]));
    const { metadata, tensors: list } = qwen2GgufContents({ config, tensors, tokenizer });
    const llama = path.join(dir, 'llama.gguf');
    await writeGguf(
      llama,
      new Map(
        [...metadata].map(([k, v]) => [
          k === 'general.architecture' ? k : k.replace(/^qwen2\./, 'llama.'),
          k === 'general.architecture' ? str('llama') : v,
        ]),
      ),
      list,
    );
    await assert.rejects(
      LlamaCppEngine.open({ gguf: llama, modelDir: dir, gpu: 'off' }),
      /llama\.gguf: is a llama model; --engine llama\.cpp runs the Qwen2 GGUFs that search-r3 export gguf writes\./,
    );
    const noToken = path.join(dir, 'no-token.gguf');
    const renamed = tokenizer.tokens.map((t) => (t === '<|embed_token|>' ? '<|other_token|>' : t));
    await writeGguf(
      noToken,
      qwen2GgufContents({ config, tensors, tokenizer: { ...tokenizer, tokens: renamed } }).metadata,
      list,
    );
    await assert.rejects(
      LlamaCppEngine.open({ gguf: noToken, modelDir: dir, gpu: 'off' }),
      /no-token\.gguf: has no <\|embed_token\|> in its vocabulary; export it from a Search-R3 model folder/,
    );
    await assert.rejects(
      LlamaCppEngine.open({ gguf: path.join(dir, 'missing.gguf'), modelDir: dir, gpu: 'off' }),
      /missing\.gguf: no such file; write one with search-r3 export gguf, or pass --gguf\./,
    );
    const gguf = path.join(dir, 'model-f16.gguf');
    await assert.rejects(
      LlamaCppEngine.open({ gguf, modelDir: dir, gpu: 'off', memoryLimit: 1000 }),
      new RegExp(
        'model-f16\\.gguf: its weights need [\\d.]+ [kMG]B \\(\\d+ bytes\\) of memory, ' +
          'more than the 1 kB available on this machine',
      ),
    );
    const base = await tinyModelFolder(path.join(dir, 'base'), 1, false);
    await assert.rejects(
      LlamaCppEngine.open({ gguf, modelDir: base, gpu: 'off' }),
      new RegExp(
        'base/tokenizer\\.json: has no <\\|embed_token\\|>, so this folder is not a Search-R3 model yet; ' +
          'stage 1 \\(search-r3 train sft\\) adds it',
      ),
    );
  },
);
