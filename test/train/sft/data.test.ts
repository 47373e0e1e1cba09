import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { InputFileError, MAX_LINE_CHARS } from '../../../src/model/bpe-trainer.js';
import { loadTrainingData, DataError } from '../../../src/train/sft/data.js';
import { ProgressBar } from '../../../src/train/progress.js';
import { renderReport } from '../../../src/train/report.js';
import { sharedData } from '../../helpers/repo.js';
import { tempDir } from '../../helpers/train-fixtures.js';

test(
  'real data: SciFact train qrels and Climate-FEVER claims ' + 'become examples; claims without evidence are counted',
  async () => {
    const { examples, stats } = await loadTrainingData([
      { type: 'beir', path: path.join(sharedData, 'scifact'), split: 'train' },
      { type: 'climate-fever', path: path.join(sharedData, 'climate-fever/climate-fever.jsonl') },
    ]);
    assert.deepEqual(
      stats.perSource.map((s) => s.examples),
      [807, 1061], // SciFact train's 809 judged queries less the 2 with a test query's text
    );
    assert.equal(stats.withoutPositive, 1535 - 1061, 'claims whose five evidences are all NOT_ENOUGH_INFO');
    const sci = examples[0];
    assert.ok(sci.positives.length >= 1 && sci.negatives.length === 0);
    assert.ok(
      examples.slice(807).some((e) => e.negatives.length > 0),
      'NOT_ENOUGH_INFO evidence serves as hard negatives',
    );
  },
);

test('JSONL in FlagEmbedding and Tevatron layouts, TSV pairs, and errors that name the line', async () => {
  const dir = tempDir('data');
  const flag = path.join(dir, 'flag.jsonl'),
    tev = path.join(dir, 'tev.jsonl'),
    tsv = path.join(dir, 'pairs.tsv'),
    bad = path.join(dir, 'bad.jsonl');
  writeFileSync(flag, JSON.stringify({ query: 'q1', pos: 'p1', neg: ['n1', 'p1', 'q1'] }) + '\n');
  writeFileSync(
    tev,
    JSON.stringify({
      query: 'q2',
      positive_passages: [{ docid: '1', title: 'T', text: 'p2' }],
      negative_passages: [{ text: 'n2' }],
    }) + '\n',
  );
  writeFileSync(tsv, 'q3\tp3\n\nq4\tp4\n');
  const { examples } = await loadTrainingData([
    { type: 'jsonl', path: flag },
    { type: 'jsonl', path: tev },
    { type: 'pairs', path: tsv },
  ]);
  assert.deepEqual(examples, [
    { query: 'q1', positives: ['p1'], negatives: ['n1'] }, // a negative equal to a positive or the query is dropped
    { query: 'q2', positives: ['T p2'], negatives: ['n2'] },
    { query: 'q3', positives: ['p3'], negatives: [] },
    { query: 'q4', positives: ['p4'], negatives: [] },
  ]);
  writeFileSync(bad, '{"query": "ok", "pos": "x"}\n{"pos": "y"}\n');
  await assert.rejects(
    loadTrainingData([{ type: 'jsonl', path: bad }]),
    (e: unknown) => e instanceof DataError && /bad\.jsonl:2: missing 'query'/.test(e.message),
  );
  await assert.rejects(loadTrainingData([{ type: 'pairs', path: path.join(dir, 'nope.tsv') }]), /nope\.tsv: not found/);
});

test('progress line and report', () => {
  const bar = new ProgressBar(100, 0, process.stderr, 5000, false);
  const line = bar.render(50, { loss: 1.23456, lr: 1e-4, tokensPerSec: 1234.4 }, Date.now() + 60_000);
  assert.match(line, /50\/100 loss 1\.2346 lr 1\.00e-4 1234 tok\/s ETA 1m0\ds/);
  const html = renderReport('run', [
    { type: 'train', step: 1, loss: 3, sft: 1, kl: 0, infonce: 2, triplet: 0 },
    { type: 'train', step: 2, loss: 2, sft: 0.5, kl: 0.1, infonce: 1.4, triplet: 0 },
    { type: 'eval', step: 0, ndcg10: 0.1 },
    { type: 'eval', step: 2, ndcg10: 0.3 },
  ]);
  assert.equal((html.match(/<svg/g) ?? []).length, 2);
  assert.match(html, /<path d="M[^"]+L/);
  assert.match(html, /nDCG@10/);
});

test('a query whose only positive is its own text is dropped and counted, from every kind of source', async () => {
  const dir = tempDir('data-self');
  const jsonl = path.join(dir, 'self.jsonl');
  writeFileSync(
    jsonl,
    [
      { query: 'same text', pos: ['same text'] },
      { query: 'kept', pos: ['kept', 'another text'] },
    ]
      .map((o) => JSON.stringify(o))
      .join('\n') + '\n',
  );
  const beir = path.join(dir, 'beir');
  mkdirSync(path.join(beir, 'qrels'), { recursive: true });
  const docs = [
    { _id: 'd0', title: '', text: 'which one is it here' },
    { _id: 'd1', title: 'one two three four', text: 'one two three four' },
    { _id: 'd2', title: 'five six seven eight', text: 'a body of its own' },
  ];
  writeFileSync(path.join(beir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  writeFileSync(path.join(beir, 'queries.jsonl'), JSON.stringify({ _id: 'q0', text: 'which one is it here' }) + '\n');
  writeFileSync(path.join(beir, 'qrels', 'train.tsv'), 'query-id\tcorpus-id\tscore\nq0\td0\t1\n');
  const { examples, stats } = await loadTrainingData([
    { type: 'jsonl', path: jsonl },
    { type: 'beir', path: beir, split: 'train' },
    { type: 'pseudo-queries', path: beir, queries: 'title', seed: 0, maxDocuments: 0 },
  ]);
  assert.deepEqual(examples, [
    { query: 'kept', positives: ['another text'], negatives: [] },
    { query: 'five six seven eight', positives: ['a body of its own'], negatives: [] },
  ]);
  assert.equal(stats.positiveIsQuery, 3, 'the JSONL line, the BEIR query and the pseudo-query');
  assert.equal(stats.withoutPositive, 0);
});

test('a jsonl source without a known positive key, or a file not in UTF-8, is refused naming the file', async () => {
  const dir = tempDir('data-keys');
  const renamed = path.join(dir, 'renamed.jsonl');
  writeFileSync(
    renamed,
    [
      { query: 'q1', pos: ['p1'] },
      { query: 'q2', positives: ['p2'], negatives: ['n2'] },
    ]
      .map((o) => JSON.stringify(o))
      .join('\n') + '\n',
  );
  await assert.rejects(
    loadTrainingData([{ type: 'jsonl', path: renamed }]),
    (e: unknown) =>
      e instanceof DataError &&
      e.message ===
        `${renamed}:2: has keys 'query', 'positives', 'negatives' but no positives: a "jsonl" source's lines are ` +
          'FlagEmbedding {query, pos, neg} or Tevatron {query, positive_passages, negative_passages}; rename the ' +
          "positives' key to 'pos'",
  );
  // Latin-1 bytes: read leniently they would train on U+FFFD; every kind of source that reads a file refuses them
  const latin1 = Buffer.concat([Buffer.from('{"query": "caf'), Buffer.from([0xe9]), Buffer.from('", "pos": ["x"]}\n')]);
  const files = { jsonl: 'l1.jsonl', pairs: 'l1.tsv', 'climate-fever': 'l1-fever.jsonl' } as const;
  for (const [type, name] of Object.entries(files)) {
    const file = path.join(dir, name);
    writeFileSync(
      file,
      type === 'pairs' ? Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9, 0x09, 0x78])]) : latin1,
    );
    await assert.rejects(
      loadTrainingData([{ type: type as keyof typeof files, path: file }]),
      (e: unknown) =>
        e instanceof InputFileError && e.message.startsWith(`${file}: is not UTF-8 text (invalid UTF-8 at byte offset`),
      type,
    );
  }
});

test('a training file is read a line at a time: a line over 64 MiB is refused naming the file and line', async () => {
  const dir = tempDir('data-long-line');
  const file = path.join(dir, 'long.jsonl');
  try {
    const fd = openSync(file, 'w');
    writeSync(fd, JSON.stringify({ query: 'q1', pos: ['p1'] }) + '\n{"query": "q2", "pos": ["');
    const block = Buffer.alloc(1 << 20, 'a');
    for (let written = 0; written <= MAX_LINE_CHARS; written += block.length) writeSync(fd, block);
    writeSync(fd, '"]}\n');
    closeSync(fd);
    await assert.rejects(
      loadTrainingData([{ type: 'jsonl', path: file }]),
      (e: unknown) =>
        e instanceof InputFileError &&
        e.message.startsWith(`${file}: line 2 is longer than ${MAX_LINE_CHARS} characters`),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
