import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../../src/train/config-merge.js';
import { parseSftConfig } from '../../../src/train/sft/config.js';
import { DataError, loadTrainingData } from '../../../src/train/sft/data.js';
import { pseudoQueryExamples, splitSentences, PSEUDO_QUERY_DEFAULTS } from '../../../src/train/sft/pseudo-queries.js';
import { sharedData } from '../../helpers/repo.js';
import { tempDir, toyExamples, writeJsonl } from '../../helpers/train-fixtures.js';

const docs = [
  {
    id: 'a',
    title: 'Vitamin D and bone density in adults',
    text:
      'Vitamin D is made in the skin. Low levels are common in winter months. Supplements raised bone ' +
      'density by 2% in the trial.',
  },
  { id: 'b', title: 'Short', text: 'One sentence only, so no inverse cloze pair can be made from it.' },
  {
    id: 'c',
    title: '',
    text: 'Statins lower LDL cholesterol in most patients. 3 trials found fewer strokes among the treated group.',
  },
];

test('sentences split at terminal punctuation before a capital or a digit, not inside numbers or abbreviations', () => {
  assert.deepEqual(splitSentences('It rose 2.5 fold. Then it fell! Why? 3 groups e.g. mice were used.'), [
    'It rose 2.5 fold.',
    'Then it fell!',
    'Why?',
    '3 groups e.g. mice were used.',
  ]);
});

test('title pseudo-queries ask for the body; short titles are not asked', () => {
  const ex = pseudoQueryExamples(docs, { ...PSEUDO_QUERY_DEFAULTS, kind: 'title' });
  assert.deepEqual(ex, [{ query: 'Vitamin D and bone density in adults', positives: [docs[0].text], negatives: [] }]);
});

test('sentence pseudo-queries: the asked sentence is removed from its document, the choice is seeded', () => {
  const ex = pseudoQueryExamples(docs, { ...PSEUDO_QUERY_DEFAULTS, kind: 'sentence', seed: 1 });
  assert.equal(ex.length, 2, 'the one-sentence body gives no example');
  for (const [e, d] of [
    [ex[0], docs[0]],
    [ex[1], docs[2]],
  ] as const) {
    assert.ok(d.text.includes(e.query), "the query is one of the document's sentences");
    assert.ok(!e.positives[0].includes(e.query), 'and it is cut from the positive');
    assert.equal(e.positives[0].length, (d.title ? d.title.length + 1 : 0) + d.text.length - e.query.length - 1);
  }
  assert.ok(ex[0].positives[0].startsWith('Vitamin D and bone density in adults\n'), 'the positive keeps the title');
  assert.deepEqual(pseudoQueryExamples(docs, { ...PSEUDO_QUERY_DEFAULTS, kind: 'sentence', seed: 1 }), ex);
  const picks = new Set<string>();
  for (let seed = 0; seed < 20; seed++)
    picks.add(pseudoQueryExamples(docs, { ...PSEUDO_QUERY_DEFAULTS, kind: 'sentence', seed })[0].query);
  assert.equal(picks.size, 3, 'every usable sentence of the first document is picked by some seed');
});

test('real data: SciFact corpus pseudo-queries through a training config, with maxDocuments', async () => {
  const cfg = parseSftConfig(
    {
      model: 'm',
      output: 'o',
      data: [
        { type: 'pseudo-queries', path: path.join(sharedData, 'scifact'), queries: 'sentence', maxDocuments: 500 },
        { type: 'pseudo-queries', path: path.join(sharedData, 'scifact/corpus.jsonl'), queries: 'title', seed: 3 },
      ],
    },
    '/',
  );
  const { examples, stats } = await loadTrainingData(cfg.data);
  const [sentence, title] = stats.perSource.map((s) => s.examples);
  assert.ok(sentence > 450 && sentence <= 500, `most abstracts have a usable sentence (${sentence})`);
  assert.ok(title > 5000 && title <= 5183, `nearly every SciFact title has ≥ 4 words (${title})`);
  assert.match(stats.perSource[0].source, /^pseudo-queries\(sentence\):/);
  assert.ok(examples.every((e) => e.positives.length === 1 && e.query.trim() !== ''));
});

test('a pseudo-queries source with a wrong kind or key is a config error naming it', () => {
  const bad = (src: Record<string, unknown>): void => {
    assert.throws(() => parseSftConfig({ model: 'm', output: 'o', data: [src] }, '/'), ConfigError);
  };
  bad({ type: 'pseudo-queries', path: 'x', queries: 'abstract' });
  bad({ type: 'pseudo-queries', path: 'x', queries: 'title', maxDocs: 3 });
  bad({ type: 'pseudo-queries', path: 'x', queries: 'title', seed: -1 });
  const titles = { model: 'm', output: 'o', data: [{ type: 'pseudo-queries', path: 'x', queries: 'titles' }] };
  assert.throws(() => parseSftConfig(titles, '/'), /"data\[0\]\.queries" must be "title" or "sentence"/);
});

test('a pseudo-queries source that gives no query is refused naming its file, even beside other sources', async () => {
  const dir = tempDir('pseudo-none');
  // documents without titles, and each of one sentence: neither kind of query can be asked of them
  const corpus = path.join(dir, 'corpus.jsonl');
  writeFileSync(
    corpus,
    [docs[1], { ...docs[1], id: 'b2', title: '' }]
      .map((d) => JSON.stringify({ _id: d.id, title: d.title, text: d.text }))
      .join('\n'),
  );
  const pairs = writeJsonl(path.join(dir, 'pairs.jsonl'), toyExamples(4));
  for (const [queries, why] of [
    ['title', 'no document has a title of 4 words or more and a text'],
    ['sentence', 'no document has a text of two sentences or more, one of them of 4–40 words'],
  ]) {
    const cfg = parseSftConfig(
      {
        model: 'm',
        output: 'o',
        data: [
          { type: 'jsonl', path: pairs },
          { type: 'pseudo-queries', path: corpus, queries },
        ],
      },
      '/',
    );
    await assert.rejects(
      loadTrainingData(cfg.data),
      (e: unknown) =>
        e instanceof DataError && e.message.startsWith(`${corpus}: gives no "${queries}" pseudo-query: ${why}`),
      queries,
    );
  }
});

test("a BEIR folder's queries file as a pseudo-queries corpus is refused: it holds the test queries", async () => {
  const queries = path.join(sharedData, 'scifact', 'queries.jsonl');
  const cfg = parseSftConfig(
    { model: 'm', output: 'o', data: [{ type: 'pseudo-queries', path: queries, queries: 'sentence' }] },
    '/',
  );
  await assert.rejects(
    loadTrainingData(cfg.data),
    (e: unknown) => e instanceof DataError && e.message.startsWith(`${queries}: is a BEIR folder's queries file`),
  );
  // a corpus of one's own that happens to have that name, with no qrels beside it, is a corpus
  const dir = tempDir('pseudo-own');
  const own = path.join(dir, 'queries.jsonl');
  writeFileSync(own, JSON.stringify({ _id: 'a', title: docs[0].title, text: docs[0].text }) + '\n');
  const mine = parseSftConfig(
    { model: 'm', output: 'o', data: [{ type: 'pseudo-queries', path: own, queries: 'title' }] },
    '/',
  );
  assert.equal((await loadTrainingData(mine.data)).stats.examples, 1);
});
