import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../helpers/repo.js';
import { readBeirCorpus, readBeirDataset, readBeirQueries } from '../../src/eval/beir.js';
import { readJsonlEmbeddings, readNpyEmbeddings, writeNpyEmbeddings } from '../../src/eval/embeddings-file.js';
import { readBeirQrels, readTrecQrels } from '../../src/eval/qrels.js';
import { readTrecRun, writeTrecRun, type Run } from '../../src/eval/run.js';

const tiny = join(repoRoot, 'test/eval/fixtures/tiny-beir');

/** Writes `text` to the file `name` in `dir` and returns its path. */
const writer =
  (dir: string) =>
  (name: string, text: string): string => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-fmt-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('BEIR folder: header skipped, graded qrels, only judged queries kept', async () => {
  const ds = await readBeirDataset(tiny, 'test');
  assert.equal(ds.corpus.length, 5);
  assert.deepEqual([...ds.queries.keys()], ['q1', 'q2', 'q3', 'q5']);
  assert.equal(ds.qrels.get('q1')!.get('d1'), 2);
  assert.equal(ds.corpus[4]!.title, '');
  await assert.rejects(
    readBeirDataset(tiny, 'dev'),
    /no qrels for split 'dev' \(expected .*dev\.tsv; splits here: test\)/,
  );
});

test('malformed lines are reported with file and line number', async () => {
  await withTemp(async (dir) => {
    const f = writer(dir);
    await assert.rejects(
      readTrecRun(f('a.run', 'q1 Q0 d1 1 2.5 tag\nq1 Q0 d2 2 tag\n')),
      (e: Error) => e.message === `${join(dir, 'a.run')}:2: expected 6 fields 'qid Q0 docid rank score tag', found 5`,
    );
    await assert.rejects(readTrecRun(f('b.run', 'q1 Q0 d1 1 x tag\n')), /b\.run:1: score 'x' is not a number/);
    await assert.rejects(
      readTrecRun(f('c.run', 'q1 Q0 d1 1 1 t\nq1 Q0 d1 2 0.5 t\n')),
      /c\.run:2: document 'd1' appears twice/,
    );
    await assert.rejects(readTrecQrels(f('a.qrels', 'q1 0 d1 1\nq1 0 d2\n')), /a\.qrels:2: expected 4 fields/);
    await assert.rejects(
      readTrecQrels(f('beir.qrels', 'query-id\tcorpus-id\tscore\nq1\td1\t1\n')),
      (e: Error) =>
        e.message ===
        `${join(dir, 'beir.qrels')}:1: expected 4 fields 'qid iter docid rel', found 3 (BEIR qrels, ` +
          "'query-id corpus-id score'? --qrels reads those from a .tsv)",
    );
    await assert.rejects(
      readTrecQrels(f('b.qrels', 'q1 0 d1 high\n')),
      /b\.qrels:1: relevance 'high' is not an integer/,
    );
    await assert.rejects(
      readBeirQrels(f('q.tsv', 'query-id\tcorpus-id\tscore\nq1\td1\n')),
      /q\.tsv:2: expected 3 tab-separated/,
    );
    await assert.rejects(
      readBeirQueries(f('q.jsonl', '{"_id":"1","text":"a"}\n{"_id": "2", text}\n')),
      /q\.jsonl:2: not valid JSON/,
    );
    await assert.rejects(readBeirQueries(f('r.jsonl', '{"text":"a"}\n')), /r\.jsonl:1: missing or empty '_id'/);
    await assert.rejects(
      readBeirCorpus(f('m.jsonl', '{"_id": {"$oid": "5f1"}, "text": "a"}\n')),
      (e: Error) =>
        e.message ===
        `${join(dir, 'm.jsonl')}:1: '_id' is an object ({"$oid":"5f1"}); it must be a string or an integer`,
    );
    await assert.rejects(readTrecRun(join(dir, 'missing.run')), /missing\.run: file not found/);
  });
});

test('TREC qrels allow comments, any whitespace and integral decimals; conflicting duplicates are errors', async () => {
  await withTemp(async (dir) => {
    writeFileSync(join(dir, 'q'), '# comment\nq1\t0  d1 1\n\nq1 0 d2 2.0\nq2 Q0 d1 0\n');
    const q = await readTrecQrels(join(dir, 'q'));
    assert.deepEqual(
      [...q.get('q1')!],
      [
        ['d1', 1],
        ['d2', 2],
      ],
    );
    assert.equal(q.get('q2')!.get('d1'), 0);
    writeFileSync(join(dir, 'r'), 'q1 0 d1 1\nq1 0 d1 2\n');
    await assert.rejects(readTrecQrels(join(dir, 'r')), /r:2: document 'd1' is judged twice/);
  });
});

test('runs written in trec_eval rank order read back identically (scores round-trip exactly)', async () => {
  await withTemp(async (dir) => {
    const run: Run = new Map([
      ['q2', { docIds: ['b', 'a', 'c'], scores: [0.1 + 0.2, 0.1 + 0.2, Math.fround(1 / 3)] }],
      ['q1', { docIds: ['x'], scores: [-1e-7] }],
    ]);
    writeTrecRun(join(dir, 'out.trec'), run, 'mytag');
    const text = readFileSync(join(dir, 'out.trec'), 'utf8');
    assert.equal(
      text,
      'q1 Q0 x 1 -1e-7 mytag\nq2 Q0 c 1 0.3333333432674408 mytag\n' +
        'q2 Q0 b 2 0.30000000000000004 mytag\nq2 Q0 a 3 0.30000000000000004 mytag\n',
    );
    const back = await readTrecRun(join(dir, 'out.trec'));
    assert.equal(back.tag, 'mytag');
    assert.deepEqual(back.run.get('q2'), {
      docIds: ['c', 'b', 'a'],
      scores: [Math.fround(1 / 3), 0.1 + 0.2, 0.1 + 0.2],
    });
  });
});

test('a numeric id JSON cannot carry exactly is refused by line; a safe integer id reads as its digits', async () => {
  await withTemp(async (dir) => {
    const f = writer(dir);
    // JSON.parse reads 12345678901234567890 as 12345678901234567000: a different id, matching nothing
    const big = '{"_id": 12345678901234567890, "text": "a"}\n';
    await assert.rejects(readBeirQueries(f('q.jsonl', `{"_id": 7, "text": "b"}\n${big}`)), (e: Error) =>
      e.message.startsWith(`${join(dir, 'q.jsonl')}:2: id 12345678901234567000 is a number JSON cannot`),
    );
    await assert.rejects(readBeirCorpus(f('corpus.jsonl', big)), /corpus\.jsonl:1: id 12345678901234567000 is a/);
    await assert.rejects(
      readBeirCorpus(f('c2.jsonl', '{"_id": 1.50, "text": "a"}\n')),
      /c2\.jsonl:1: id 1\.5 is a number JSON cannot carry exactly .*write it as a string/,
    );
    await assert.rejects(
      readJsonlEmbeddings(f('e.jsonl', '{"id": 12345678901234567890, "vector": [1]}\n')),
      /e\.jsonl:1: id 12345678901234567000 is a number/,
    );
    assert.deepEqual([...(await readBeirQueries(f('ok.jsonl', '{"_id": 7, "text": "b"}\n'))).keys()], ['7']);
  });
});

test('a query without text, or a document without title or text, is refused; an empty text is kept', async () => {
  await withTemp(async (dir) => {
    const f = writer(dir);
    // another format's field names ('query', 'body') read as empty texts: every query then scored 0 silently
    await assert.rejects(
      readBeirQueries(f('q.jsonl', '{"_id": "1", "text": "a"}\n{"_id": "2", "query": "b"}\n')),
      (e: Error) =>
        e.message ===
        `${join(dir, 'q.jsonl')}:2: query '2' has no 'text' (its fields: _id, query); a BEIR queries.jsonl line ` +
          'is {"_id", "text"}',
    );
    await assert.rejects(readBeirQueries(f('n.jsonl', '{"_id": "1", "text": null}\n')), /n\.jsonl:1: query '1' has no/);
    await assert.rejects(
      readBeirCorpus(f('c.jsonl', '{"_id": "d1", "title": "t"}\n{"_id": "d2", "body": "b"}\n')),
      /c\.jsonl:2: document 'd2' has neither 'title' nor 'text' \(its fields: _id, body\); a BEIR corpus\.jsonl line/,
    );
    const docs = await readBeirCorpus(f('ok.jsonl', '{"_id": "d1", "title": "t"}\n{"_id": "d2", "text": ""}\n'));
    assert.deepEqual(
      docs.map((d) => [d.title, d.text]),
      [
        ['t', ''],
        ['', ''],
      ],
    );
    assert.equal((await readBeirQueries(f('e.jsonl', '{"_id": "1", "text": ""}\n'))).get('1'), '');
  });
});

test('run scores inf and -inf are infinities, as trec_eval (atof) reads them; nan is refused', async () => {
  await withTemp(async (dir) => {
    const file = join(dir, 'inf.run');
    writeFileSync(file, 'q1 Q0 d1 1 inf t\nq1 Q0 d2 2 1.5 t\nq1 Q0 d3 3 -INF t\nq1 Q0 d4 4 +Infinity t\n');
    assert.deepEqual((await readTrecRun(file)).run.get('q1')!.scores, [Infinity, 1.5, -Infinity, Infinity]);
    writeFileSync(file, 'q1 Q0 d1 1 nan t\n');
    await assert.rejects(readTrecRun(file), /inf\.run:1: score 'nan' is not a number/);
  });
});

test('BEIR qrels apart by spaces, or in TREC form, are refused saying which they are', async () => {
  await withTemp(async (dir) => {
    const file = join(dir, 'test.tsv');
    writeFileSync(file, 'query-id corpus-id score\nq1 d1 1\n');
    await assert.rejects(
      readBeirQrels(file),
      (e: Error) =>
        e.message ===
        `${file}:2: expected 3 tab-separated fields 'query-id corpus-id score', found 1: its fields are apart by ` +
          'spaces, and BEIR qrels separate them by tabs',
    );
    writeFileSync(file, 'q1\t0\td1\t1\n');
    await assert.rejects(readBeirQrels(file), /test\.tsv:1: .*found 4 \(a TREC qrels line, 'qid iter docid rel'\?/);
  });
});

test('a run is not written with an id holding whitespace, which would split it across the columns', async () => {
  await withTemp(async (dir) => {
    const file = join(dir, 'out.trec');
    const run: Run = new Map([['q1', { docIds: ['d1', 'doc 2'], scores: [2, 1] }]]);
    assert.throws(
      () => writeTrecRun(file, run, 't'),
      (e: Error) =>
        e.name === 'EvalInputError' &&
        e.message ===
          `${file}: document id 'doc 2' holds whitespace, which a TREC run cannot hold (its columns are apart by ` +
            'whitespace), so the run is not written; give the ids of the dataset without whitespace',
    );
    assert.throws(() => writeTrecRun(file, new Map([['q\t1', run.get('q1')!]]), 't'), /query id 'q\t1' holds/);
    assert.throws(() => writeTrecRun(join(dir, 'new', 'out.trec'), run, 't'), /document id 'doc 2' holds/);
    assert.deepEqual(readdirSync(dir), [], 'no run file, no temporary file, no folder made');
  });
});

test('a corpus or queries file written as one JSON document (an array, indented) is told so', async () => {
  await withTemp(async (dir) => {
    const docs = [{ _id: 'd1', title: '', text: 'a' }];
    const sentence = (file: string, what: string, record: string): string =>
      `${file}:1: ${what}, where JSON lines hold one object per line; write each ${record} on its own line ` +
      "(jq -c '.[]' turns an array into JSON lines)";
    const pretty = join(dir, 'corpus.jsonl');
    writeFileSync(pretty, JSON.stringify(docs, null, 2));
    const spread = 'one JSON document spread over lines (an array or an indented object)';
    await assert.rejects(readBeirCorpus(pretty), { message: sentence(pretty, spread, 'document') });
    const array = join(dir, 'queries.jsonl');
    writeFileSync(array, JSON.stringify([{ _id: 'q1', text: 'a' }]) + '\n');
    await assert.rejects(readBeirQueries(array), { message: sentence(array, 'a JSON array', 'query') });
  });
});

test('a .npy of embeddings over 2 GiB is read (readFileSync refuses such a file)', async () => {
  await withTemp(async (dir) => {
    // one row of 2^29 + 16 floats: just past 2 GiB, written sparse (no disk used for its zeros)
    const dim = 2 ** 29 + 16;
    const file = join(dir, 'big.npy');
    writeNpyEmbeddings(file, { ids: ['a'], dim: 16, data: new Float32Array(16).fill(1) });
    const header = readFileSync(file).subarray(0, 128).toString('latin1');
    const lead = header.slice(0, header.indexOf('\n') + 1).replace('(1, 16)', `(1, ${dim})`);
    const padded = lead.slice(0, -1).padEnd(lead.length - 1 + ((64 - (lead.length % 64)) % 64)) + '\n';
    const head = Buffer.from(padded, 'latin1');
    head.writeUInt16LE(head.length - 10, 8);
    const fd = openSync(file, 'w');
    writeSync(fd, head);
    writeSync(fd, Buffer.from(new Float32Array([2.5]).buffer), 0, 4, head.length + (dim - 1) * 4);
    closeSync(fd);
    const m = await readNpyEmbeddings(file);
    assert.deepEqual([m.ids, m.dim, m.data.length, m.data[0], m.data[dim - 1]], [['a'], dim, dim, 0, 2.5]);
  });
});
