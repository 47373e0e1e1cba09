/**
 * Stage 1's reasoning form: analyses that name a query's key concepts from its positive document, the
 * training sequence that writes one before <|embed_token|> under the reasoning prompt inference uses,
 * the SFT labels that cover it, and a stage-1 run that trains it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../../../src/tensor/index.js';
import { DEFAULT_TEMPLATES, EMBED_TOKEN } from '../../../src/embed/prompts.js';
import { reasoningPrompts } from '../../../src/embed/reasoning.js';
import { ConfigError } from '../../../src/train/config-merge.js';
import { TermStatistics, analyseQuery, formatAnalysis, shorterAnalyses } from '../../../src/train/sft/analysis.js';
import { forwardChunk, responseLoss } from '../../../src/train/sft/batch-loss.js';
import { loadSftConfig, parseSftConfig } from '../../../src/train/sft/config.js';
import { loadTrainingData } from '../../../src/train/sft/data.js';
import { SequenceEncoder } from '../../../src/train/sft/sequences.js';
import { trainSft } from '../../../src/train/sft/trainer.js';
import { tinyModel } from '../../helpers/tiny-model.js';
import { tempDir, toySftRun, writeJsonl } from '../../helpers/train-fixtures.js';

const DOCS = [
  'Vitamin D and fractures\nVitamin D supplements reduced hip fractures among elderly women taking calcium.',
  'Statins and stroke\nStatins lower cholesterol and reduce strokes in older adults.',
  'Exercise and bones\nWeight-bearing exercise increases bone density in women.',
  'Sleep\nShort sleep raises the risk of obesity in children.',
];

test("an analysis: the query's words found in its positive, rarest first, then the positive's own terms", () => {
  const stats = new TermStatistics(DOCS);
  const a = analyseQuery('Does vitamin D prevent fractures in the elderly?', DOCS[0], stats, {
    concepts: 3,
    related: 3,
  });
  // "does", "in", "the" are stop words, "D" one letter, "prevent" is not in the document
  assert.deepEqual(a.concepts, ['elderly', 'fractures', 'vitamin']);
  assert.deepEqual(a.related, ['among', 'calcium', 'hip']);
  // "women" is in two of the four documents: less weight than the words only this one has
  assert.ok(!a.related.includes('women'));
  assert.equal(formatAnalysis(a), 'Key concepts: elderly, fractures, vitamin. Related: among, calcium, hip.');
  // a query sharing no word with its positive keeps its own rarest words
  const none = analyseQuery('insomnia treatment', DOCS[1], stats, { concepts: 2, related: 1 });
  assert.deepEqual(none.concepts, ['insomnia', 'treatment']);
});

test('an analysis in the query language: Chinese words by ICU segmentation', () => {
  const zh = [
    '馬祖列島\n馬祖列島是隸屬中華民國的群島，位於臺灣海峽正北方。',
    '梵語\n梵語是印度的古典語言，印歐語系因梵語而被發現。',
    '天城文\n天城文在十一世紀成為梵語的標準書寫系統。',
  ];
  const a = analyseQuery('印歐語系因為哪一門語言而被發現？', zh[1], new TermStatistics(zh), {
    concepts: 3,
    related: 3,
  });
  assert.deepEqual(a, { concepts: ['印歐', '發現', '語系'], related: ['印度', '古典', '梵語'] });
  assert.equal(formatAnalysis(a), 'Key concepts: 印歐, 發現, 語系. Related: 印度, 古典, 梵語.');
});

test('shorter analyses drop related terms first, then concepts, down to nothing', () => {
  const all = [...shorterAnalyses({ concepts: ['a', 'b'], related: ['x'] })].map(formatAnalysis);
  assert.deepEqual(all, ['Key concepts: a, b. Related: x.', 'Key concepts: a, b.', 'Key concepts: a.', '']);
});

test('a reasoning sequence: the inference prompt, the analysis, then the embed token; SFT labels cover it', () => {
  const { model, tokenizer } = tinyModel(2);
  const enc = new SequenceEncoder(tokenizer, DEFAULT_TEMPLATES, 200);
  const query = 'does vitamin d prevent fractures';
  const analysis = { concepts: ['vitamin', 'fractures'], related: ['calcium', 'hip'] };
  const s = enc.encodeReasoning(query, analysis, 64);
  const written = 'Key concepts: vitamin, fractures. Related: calcium, hip.';
  assert.equal(s.analysis, written);
  // the prompt is the one inference builds for a reasoning query, the response starts right after it
  const prompt = reasoningPrompts(tokenizer, [query], DEFAULT_TEMPLATES, 200, 64).prompts[0].ids;
  assert.deepEqual(s.ids.slice(0, s.respFrom + 1), prompt);
  assert.equal(
    tokenizer.decode(s.ids.slice(s.respFrom + 1, s.respTo + 1)),
    `${written} ${DEFAULT_TEMPLATES.directResponse}<|im_end|>`,
  );
  assert.equal(s.ids[s.embedAt], tokenizer.tokenToId(EMBED_TOKEN));
  assert.equal(tokenizer.decode(s.ids.slice(s.respFrom + 1, s.embedAt)).trimEnd(), `${written} The embedding is`);

  // the labels L_SFT learns are the whole response, analysis first
  const direct = enc.encode(query, 'query');
  const out = T.noGrad(() => forwardChunk({ model, ref: null }, [s, direct], undefined, true, false));
  const own = out.labels.slice(0, s.respTo - s.respFrom);
  assert.equal(tokenizer.decode([...own]), `${written} ${DEFAULT_TEMPLATES.directResponse}<|im_end|>`);
  assert.equal(out.labels.length, s.respTo - s.respFrom + (direct.respTo - direct.respFrom));
  const w = { sft: 1, kl: 0, infonce: 0, triplet: 0, temperature: 0.05, margin: 0.2 };
  assert.ok(responseLoss(out, out.labels.length, w).sft > 0);

  // the embedding is the hidden state at the token after the analysis: what the prompt, the analysis and the
  // token give on their own (inference with reasoning on, when the model writes this analysis)
  const d = model.config.hiddenSize;
  const alone = s.ids.slice(0, s.embedAt + 1);
  const h = T.noGrad(() => model.forward(Int32Array.from(alone), 1, alone.length)).read();
  const last = h.subarray((alone.length - 1) * d, alone.length * d);
  const row = out.emb.read().subarray(0, d);
  for (let k = 0; k < d; k++) assert.ok(Math.abs(row[k] - last[k]) < 1e-4, `dim ${k}`);
});

test('the analysis is shortened to the reasoning budget, and left out when none fits', () => {
  const { tokenizer } = tinyModel(2);
  const enc = new SequenceEncoder(tokenizer, DEFAULT_TEMPLATES, 200);
  const analysis = { concepts: ['vitamin', 'fractures', 'elderly'], related: ['calcium', 'hip', 'women'] };
  const full = enc.encodeReasoning('q', analysis, 200);
  const before = (x: typeof full): number => x.embedAt - x.respFrom - 1;
  const budget = before(full) - 4;
  const cut = enc.encodeReasoning('q', analysis, budget);
  assert.ok(before(cut) <= budget && cut.analysis !== undefined && cut.analysis.length < full.analysis!.length);
  assert.ok(full.analysis!.startsWith(cut.analysis!.replace(/\.$/, '')), 'a prefix of the lists, in order');
  const none = enc.encodeReasoning('q', analysis, 2);
  assert.equal(none.analysis, undefined);
  assert.equal(tokenizer.decode(none.ids.slice(none.respFrom + 1)), `${DEFAULT_TEMPLATES.directResponse}<|im_end|>`);
});

test('the reasoning section of the config: defaults, checks, and a seeded share of each source', async () => {
  const cfg = parseSftConfig(
    { model: 'm', output: 'o', data: [{ type: 'pairs', path: 'p.tsv' }], reasoning: { fraction: 0.25 } },
    '/',
  );
  assert.deepEqual(cfg.reasoning, { fraction: 0.25, concepts: 3, related: 3, maxTokens: 24 });
  assert.equal(parseSftConfig({ model: 'm', output: 'o', data: [{ type: 'pairs', path: 'p' }] }, '/').reasoning, null);
  const bad = (reasoning: unknown, extra: Record<string, unknown> = {}): void =>
    assert.throws(
      () => parseSftConfig({ model: 'm', output: 'o', data: [{ type: 'pairs', path: 'p' }], reasoning, ...extra }, '/'),
      ConfigError,
    );
  bad({ fraction: 1.5 });
  bad({ share: 0.5 });
  bad({ maxTokens: 0 });
  bad({ fraction: 0.5 }, { loss: { sft: 0 } });

  const dir = tempDir('reasoning-data');
  const file = writeJsonl(
    path.join(dir, 'pairs.jsonl'),
    DOCS.map((d, i) => ({
      query: `query ${i} about ${d.split('\n')[0].toLowerCase()}`,
      positives: [d],
      negatives: [],
    })),
  );
  const src = [{ type: 'jsonl' as const, path: file }];
  const all = await loadTrainingData(src, { fraction: 1, concepts: 2, related: 2, seed: 0 });
  assert.equal(all.stats.analyses, 4);
  assert.deepEqual(all.examples[0].analysis, { concepts: ['fractures', 'vitamin'], related: ['among', 'calcium'] });
  const half = await loadTrainingData(src, { fraction: 0.5, concepts: 2, related: 2, seed: 7 });
  const again = await loadTrainingData(src, { fraction: 0.5, concepts: 2, related: 2, seed: 7 });
  assert.deepEqual(half.examples, again.examples, 'the draw is seeded');
  assert.equal(half.stats.analyses, half.examples.filter((e) => e.analysis).length);
  assert.equal((await loadTrainingData(src)).stats.analyses, 0);
});

test('stage 1 with reasoning: every query analysed, the analysis trained, the run says so', async () => {
  const root = tempDir('sft-reasoning');
  const cfgFile = await toySftRun(root, {
    steps: 2,
    reasoning: { fraction: 1, concepts: 2, related: 2, maxTokens: 40 },
    lora: null,
  });
  const cfg = loadSftConfig(cfgFile);
  const r = await trainSft(cfg, { progress: false });
  assert.equal(r.data.analyses, 12);
  const log = readFileSync(path.join(root, 'run/metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number | string>);
  assert.equal(log.find((x) => x.type === 'data')?.analyses, 12);
  const steps = log.filter((x) => x.type === 'train');
  assert.equal(steps.length, 2);
  for (const s of steps) assert.ok(Number(s.sft) > 0 && Number.isFinite(Number(s.loss)));
  assert.match(readFileSync(path.join(root, 'run/report.html'), 'utf8'), /reasoning form: 12 queries with an analysis/);
});

test('a reasoning budget leaving the prompt no room in maxLength is refused before any data is read', async () => {
  const root = tempDir('sft-reasoning-room');
  // maxLength 100 less 40 tokens of analysis and the response after it: 57, where the template alone takes 80
  const cfgFile = await toySftRun(root, { maxLength: 100, reasoning: { fraction: 1, maxTokens: 40 } });
  await assert.rejects(
    trainSft(loadSftConfig(cfgFile), { progress: false }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        '"reasoning.maxTokens" 40 leaves 57 tokens of maxLength 100 to the query prompt, whose template alone needs ' +
          '80 and the query some more: lower reasoning.maxTokens, or raise maxLength',
  );
  assert.equal(existsSync(path.join(root, 'run')), false, 'refused before the run folder is made');
});
