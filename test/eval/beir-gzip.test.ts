import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { repoRoot, sharedData } from '../helpers/repo.js';
import { readBeirCorpus, readBeirDataset } from '../../src/eval/beir.js';
import { readDocuments } from '../../src/search-index/document-source.js';
import { loadTrainingData } from '../../src/train/sft/data.js';
import { loadRlData } from '../../src/train/rl/data.js';
import { Judgments } from '../../src/serve/judgments.js';
import { trainingDataFiles } from '../../src/recipe/training-data-files.js';
import type { RecipePaths, RecipeProfile } from '../../src/recipe/recipe-profiles.js';

const demo = join(repoRoot, 'demo/scifact');

test('the shipped demo folder (corpus.jsonl.gz) reads as the plain SciFact corpus, test split only', async () => {
  const ds = await readBeirDataset(demo, 'test');
  const plain = await readBeirCorpus(join(sharedData, 'scifact/corpus.jsonl'));
  assert.equal(ds.corpus.length, 5183);
  assert.deepEqual(ds.corpus, plain);
  assert.equal(ds.queries.size, 300);
  assert.equal(
    [...ds.qrels.values()].reduce((n, m) => n + m.size, 0),
    339,
  );
  // The index reads the same folder the same way (BEIR folder with a compressed corpus).
  const docs = await readDocuments(demo);
  assert.deepEqual(
    docs.map((d) => [d.id, d.title, d.text]),
    plain.map((d) => [d.id, d.title, d.text]),
  );
});

test('a gzipped corpus: same documents as plain; a cut archive is an input error naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-gz-'));
  try {
    const lines = Array.from({ length: 2000 }, (_, i) =>
      JSON.stringify({ _id: `d${i}`, title: `the title of document ${i}`, text: `body ${i} `.repeat(20) }),
    );
    const text = lines.join('\n') + '\n';
    writeFileSync(join(dir, 'plain.jsonl'), text);
    const gz = gzipSync(text, { level: 9 });
    writeFileSync(join(dir, 'c.jsonl.gz'), gz);
    const fromGz = await readBeirCorpus(join(dir, 'c.jsonl.gz'));
    assert.equal(fromGz.length, 2000);
    assert.deepEqual(fromGz, await readBeirCorpus(join(dir, 'plain.jsonl')));

    writeFileSync(join(dir, 'cut.jsonl.gz'), gz.subarray(0, Math.floor(gz.length / 2)));
    await assert.rejects(
      readBeirCorpus(join(dir, 'cut.jsonl.gz')),
      (e: Error) => e.name === 'EvalInputError' && /cut\.jsonl\.gz: cannot be read after line \d+/.test(e.message),
    );
    writeFileSync(join(dir, 'bad.jsonl.gz'), 'not gzip at all\n');
    await assert.rejects(readBeirCorpus(join(dir, 'bad.jsonl.gz')), {
      message:
        `${join(dir, 'bad.jsonl.gz')}: is not gzip-compressed (incorrect header check), though its name ends in ` +
        '.gz; compress it, or name a plain file without .gz',
    });
    // gzip damaged in its first block is damaged gzip, not a plain file
    const broken = Buffer.from(gz);
    broken.fill(0xff, 10, 40);
    writeFileSync(join(dir, 'broken.jsonl.gz'), broken);
    await assert.rejects(readBeirCorpus(join(dir, 'broken.jsonl.gz')), (e: Error) =>
      /broken\.jsonl\.gz: cannot be read after line 0 \(/.test(e.message),
    );

    // A folder with only corpus.jsonl.gz is a BEIR folder for eval and index alike.
    const folder = join(dir, 'beir');
    mkdirSync(join(folder, 'qrels'), { recursive: true });
    writeFileSync(join(folder, 'corpus.jsonl.gz'), gz);
    writeFileSync(join(folder, 'queries.jsonl'), '{"_id":"q1","text":"body 7"}\n');
    writeFileSync(join(folder, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\td7\t1\n');
    assert.equal((await readBeirDataset(folder, 'test')).corpus.length, 2000);
    assert.equal((await readDocuments(folder)).length, 2000);
    // and for a pseudo-queries training source (which read only corpus.jsonl)
    const pseudo = { type: 'pseudo-queries', path: folder, queries: 'title', seed: 1, maxDocuments: 0 } as const;
    assert.equal((await loadTrainingData([pseudo])).stats.perSource[0].examples, 2000);
    // a corpus.jsonl beside the .gz would stand for it unseen: eval, index and training refuse the folder
    writeFileSync(join(folder, 'corpus.jsonl'), '{"_id":"d1","text":"stale"}\n');
    const both = /beir: holds both corpus\.jsonl and corpus\.jsonl\.gz; keep the one to read and move the other/;
    await assert.rejects(readBeirDataset(folder, 'test'), both);
    await assert.rejects(readDocuments(folder), both);
    await assert.rejects(loadTrainingData([pseudo]), both);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the shipped queries are exactly the judged test claims', () => {
  const ids = readFileSync(join(demo, 'queries.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { _id: string })._id);
  const judged = new Set(
    readFileSync(join(demo, 'qrels/test.tsv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split('\t')[0]),
  );
  assert.deepEqual(new Set(ids), judged);
  assert.equal(ids.length, 300);
});

test("queries.jsonl.gz, as the hub's BEIR datasets ship it: read by eval, training, its filter, serve", async () => {
  const data = mkdtempSync(join(tmpdir(), 'sr3-gz-queries-'));
  const folder = join(data, 'beir');
  try {
    mkdirSync(join(folder, 'qrels'), { recursive: true });
    const docs = [0, 1, 2, 3].map((i) => JSON.stringify({ _id: `d${i}`, title: '', text: `document ${i}` }));
    writeFileSync(join(folder, 'corpus.jsonl.gz'), gzipSync(docs.join('\n') + '\n'));
    // q2 asks what the test query q9 asks: training on the train split leaves it out
    const queries = [
      { _id: 'q1', text: 'first question' },
      { _id: 'q2', text: 'a test question' },
      { _id: 'q9', text: 'a test question' },
    ];
    writeFileSync(join(folder, 'queries.jsonl.gz'), gzipSync(queries.map((q) => JSON.stringify(q)).join('\n')));
    writeFileSync(join(folder, 'qrels', 'train.tsv'), 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n');
    writeFileSync(join(folder, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq9\td3\t1\n');

    const test9 = await readBeirDataset(folder, 'test');
    assert.deepEqual([...test9.queries], [['q9', 'a test question']]);
    const rl = await loadRlData({ beir: folder, split: 'train', holdOut: null, maxQueries: 0, maxDocuments: 0 });
    assert.deepEqual(
      rl.queries.map((q) => q.text),
      ['first question'],
    );
    const judged = await Judgments.load(folder, 'test');
    assert.equal(judged.queries, 1);
    // a lease carries the compressed files the training steps read
    const profile = { name: 'test', lm: () => ({}), mine: () => ({}), stage1: () => ({}), stage2: () => ({ folder }) };
    assert.deepEqual(trainingDataFiles(profile as unknown as RecipeProfile, { data } as RecipePaths), [
      'beir/corpus.jsonl.gz',
      'beir/qrels/test.tsv',
      'beir/qrels/train.tsv',
      'beir/queries.jsonl.gz',
    ]);
    writeFileSync(join(folder, 'queries.jsonl'), '{"_id":"q1","text":"stale"}\n');
    await assert.rejects(readBeirDataset(folder, 'test'), /holds both queries\.jsonl and queries\.jsonl\.gz; keep the/);
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
});

test('qrels/<split>.tsv.gz is read as the .tsv; a split is a name, not a path; a qrels file is refused', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'sr3-gz-qrels-'));
  try {
    mkdirSync(join(folder, 'qrels'));
    writeFileSync(join(folder, 'corpus.jsonl'), '{"_id":"d1","text":"a"}\n{"_id":"d2","text":"b"}\n');
    writeFileSync(join(folder, 'queries.jsonl'), '{"_id":"q1","text":"x"}\n{"_id":"q2","text":"y"}\n');
    writeFileSync(join(folder, 'qrels', 'dev.tsv.gz'), gzipSync('query-id\tcorpus-id\tscore\nq1\td2\t1\n'));
    writeFileSync(join(folder, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq2\td1\t1\n');
    const dev = await readBeirDataset(folder, 'dev');
    assert.deepEqual([...dev.queries.keys()], ['q1']);
    assert.deepEqual([...dev.qrels.get('q1')!], [['d2', 1]]);
    await assert.rejects(readBeirDataset(folder, 'train'), /no qrels for split 'train' .*splits here: dev, test\)$/);
    // './test' or '../x/test' would read the test judgments where a command refuses the split test
    for (const split of ['./test', '../qrels/test', 'qrels/test', '..', ''])
      await assert.rejects(readBeirDataset(folder, split), /is no split's name: name a file of its qrels\/ folder/);
    rmSync(join(folder, 'qrels'), { recursive: true });
    writeFileSync(join(folder, 'qrels'), 'not a folder\n');
    await assert.rejects(readBeirDataset(folder, 'test'), /qrels: is a file; a BEIR folder keeps its judgments in a/);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});
