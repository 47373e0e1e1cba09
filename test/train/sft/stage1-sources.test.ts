/**
 * Stage-1 pairs beyond SciFact: DRCD (Chinese) and ARCD (Arabic) questions with their paragraphs, from
 * the splits that are not test (DRCD dev, ARCD train), with other paragraphs of the same article as hard
 * negatives; pseudo-queries from their corpora, whose sentences are split and counted in their own scripts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../../src/train/config-merge.js';
import { parseSftConfig } from '../../../src/train/sft/config.js';
import { loadTrainingData } from '../../../src/train/sft/data.js';
import {
  PSEUDO_QUERY_DEFAULTS,
  pseudoQueryExamples,
  splitSentences,
  wordCount,
} from '../../../src/train/sft/pseudo-queries.js';
import { sharedData } from '../../helpers/repo.js';

const rows = (file: string): Array<Record<string, string>> =>
  readFileSync(path.join(sharedData, file), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, string>);

/** The first `n` judged queries of a BEIR split, as the raw files have them: query text → its paragraph. */
function firstPairs(folder: string, split: string, n: number): Array<{ query: string; doc: string; title: string }> {
  const queries = new Map(rows(`${folder}/queries.jsonl`).map((q) => [q._id, q.text]));
  const corpus = new Map(rows(`${folder}/corpus.jsonl`).map((d) => [d._id, d]));
  const qrels = readFileSync(path.join(sharedData, folder, 'qrels', `${split}.tsv`), 'utf8')
    .trim()
    .split('\n')
    .slice(1);
  return qrels.slice(0, n).map((l) => {
    const [qid, did] = l.split('\t');
    const d = corpus.get(did)!;
    return { query: queries.get(qid)!, doc: `${d.title}\n${d.text}`, title: d.title };
  });
}

const config = (data: unknown[]): ReturnType<typeof parseSftConfig> =>
  parseSftConfig({ model: 'm', output: 'o', data }, '/');

for (const [name, folder, split, count] of [
  ['DRCD dev (zh-Hant)', 'drcd/beir/dev', 'dev', 3524],
  ['ARCD train (ar)', 'arcd/beir/train', 'train', 693],
] as const) {
  test(`${name}: questions → their paragraph, with paragraphs of the same article as hard negatives`, async () => {
    const cfg = config([{ type: 'beir', path: path.join(sharedData, folder), split, sameTitleNegatives: 2 }]);
    assert.deepEqual(cfg.data[0], { type: 'beir', path: path.join(sharedData, folder), split, sameTitleNegatives: 2 });
    const { examples, stats } = await loadTrainingData(cfg.data);
    assert.equal(stats.examples, count, 'every judged question has its paragraph');
    const expected = firstPairs(folder, split, 5);
    for (let i = 0; i < 5; i++) {
      const e = examples[i],
        x = expected[i];
      assert.equal(e.query, x.query);
      assert.deepEqual(e.positives, [x.doc]);
      assert.ok(e.negatives.length >= 1 && e.negatives.length <= 2, `${e.negatives.length} negatives`);
      for (const n of e.negatives) {
        assert.ok(n.startsWith(`${x.title}\n`), 'a negative is a paragraph of the same article');
        assert.notEqual(n, x.doc);
      }
    }
    assert.ok(examples.filter((e) => e.negatives.length === 2).length > count / 2, 'most articles have ≥ 3 paragraphs');
    // without the option, no negatives: the default keeps what the source always gave
    const plain = await loadTrainingData(config([{ type: 'beir', path: path.join(sharedData, folder), split }]).data);
    assert.ok(plain.examples.every((e) => e.negatives.length === 0));
  });
}

test('the test splits of DRCD and ARCD are refused: their questions are never trained on', () => {
  for (const folder of ['drcd/beir/test', 'arcd/beir/test'])
    assert.throws(
      () => config([{ type: 'beir', path: path.join(sharedData, folder), split: 'test' }]),
      (e: unknown) => e instanceof ConfigError && /test queries are never trained on/.test(e.message),
    );
  assert.throws(() => config([{ type: 'beir', path: 'x', split: 'dev', sameTitleNegatives: -1 }]), ConfigError);
});

test('sentences of Chinese and Arabic prose, and their length in words', () => {
  assert.deepEqual(splitSentences('馬祖列島是群島。他說：「好。」然後離開！最後呢？'), [
    '馬祖列島是群島。',
    '他說：「好。」',
    '然後離開！',
    '最後呢？',
  ]);
  assert.deepEqual(splitSentences('تأسست المدينة عام 1900. كانت صغيرة؟ نعم كانت.'), [
    'تأسست المدينة عام 1900.',
    'كانت صغيرة؟',
    'نعم كانت.',
  ]);
  assert.deepEqual(splitSentences('It rose 2.5 fold. then it fell. It did.'), [
    'It rose 2.5 fold. then it fell.',
    'It did.',
  ]);
  assert.equal(wordCount('馬祖列島是群島。'), 4, 'seven characters, two to a word');
  assert.equal(wordCount('1999年 Matsu 列島'), 4);
  assert.equal(wordCount('Vitamin D is made in the skin.'), 7);
});

test('pseudo-queries from the DRCD and ARCD corpora: one sentence asks for the rest of its paragraph', async () => {
  for (const [folder, script, minimum] of [
    ['drcd/beir/test', /\p{Script=Han}/u, 15],
    ['arcd/beir/train', /\p{Script=Arabic}/u, 5],
  ] as const) {
    const cfg = config([
      { type: 'pseudo-queries', path: path.join(sharedData, folder), queries: 'sentence', maxDocuments: 20 },
    ]);
    const { examples } = await loadTrainingData(cfg.data);
    assert.ok(examples.length >= minimum && examples.length <= 20, `${folder}: ${examples.length} examples`);
    const docs = rows(`${folder}/corpus.jsonl`).slice(0, 20);
    for (const e of examples) {
      assert.match(e.query, script);
      const n = wordCount(e.query);
      assert.ok(n >= PSEUDO_QUERY_DEFAULTS.minWords && n <= PSEUDO_QUERY_DEFAULTS.maxWords, `${n} words`);
      assert.ok(!e.positives[0].includes(e.query), 'the asked sentence is cut from its paragraph');
      const d = docs.find((x) => x.text.includes(e.query))!;
      assert.ok(e.positives[0].startsWith(`${d.title}\n`), 'the positive keeps the article title');
    }
  }
  // an article name asks for its paragraphs only when it is long enough (eight characters of Chinese)
  const docs = rows('drcd/beir/dev/corpus.jsonl')
    .slice(0, 200)
    .map((d) => ({ id: d._id, title: d.title, text: d.text }));
  const titled = pseudoQueryExamples(docs, { ...PSEUDO_QUERY_DEFAULTS, kind: 'title' });
  assert.ok(titled.length > 0 && titled.length < docs.length / 2, `${titled.length} of ${docs.length}`);
  for (const e of titled) assert.ok([...e.query].length >= 7, e.query);
});
