import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../helpers/repo.js';
import { writeNpyEmbeddings } from '../../src/eval/embeddings-file.js';
import { readTrecRun } from '../../src/eval/run.js';
import { readBeirQrels } from '../../src/eval/qrels.js';
import { exactRandomizationP, referenceNdcg, studentTwoSidedP } from '../helpers/reference-measures.js';

const run = promisify(execFile);
const main = join(repoRoot, 'dist/src/cli/main.js');
const fixtures = join(repoRoot, 'test/eval/fixtures');
const tiny = join(fixtures, 'tiny-beir');

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [main, 'eval', ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const M = (cuts: string) =>
  [
    'num_q',
    'num_ret',
    'num_rel',
    'num_rel_ret',
    'map',
    'Rprec',
    'recip_rank',
    `P.${cuts}`,
    `recall.${cuts}`,
    `ndcg_cut.${cuts}`,
    `map_cut.${cuts}`,
  ].flatMap((m) => ['-m', m]);

test('eval --qrels --run prints exactly what trec_eval prints (ties, grades, UTF-8 ids, -q, -l)', async () => {
  const q = await cli(
    '--qrels',
    join(fixtures, 'ties.qrels'),
    '--run',
    join(fixtures, 'ties.run'),
    '-q',
    ...M('1,2,3,5,10,1000'),
  );
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stdout, readFileSync(join(fixtures, 'ties.expected-q.txt'), 'utf8'));
  const l2 = await cli(
    '--qrels',
    join(fixtures, 'ties.qrels'),
    '--run',
    join(fixtures, 'ties.run'),
    '-l',
    '2',
    ...M('1,2,3,5,10,1000'),
  );
  assert.equal(l2.stdout, readFileSync(join(fixtures, 'ties.expected-l2.txt'), 'utf8'));
  const c = await cli(
    '--qrels',
    join(fixtures, 'hand-missing.qrels'),
    '--run',
    join(fixtures, 'hand.run'),
    '-c',
    '-q',
    ...M('1,2,5,10'),
  );
  assert.equal(c.stdout, readFileSync(join(fixtures, 'hand.expected-c.txt'), 'utf8'));
});

test('eval --dataset --retriever bm25 writes a TREC run and reports JSON', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-cli-'));
  try {
    const out = join(dir, 'bm25.trec');
    const r = await cli('--dataset', tiny, '--retriever', 'bm25', '--run', out, '--json', '--cutoffs', '1,3');
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      numQueries: number;
      all: Record<string, number>;
      dataset: { documents: number };
    };
    assert.equal(report.numQueries, 4);
    assert.equal(report.dataset.documents, 5);
    // Each query's best BM25 match is its judged document (q1: d1 graded 2), except q5, which matches nothing and
    // counts 0 instead of vanishing from the average.
    assert.equal(report.all['recip_rank'], 3 / 4);
    // The written run, evaluated as a file with -c, gives the same figures; without -c q5 is not in the run.
    const again = await cli('--qrels', join(tiny, 'qrels/test.tsv'), '--run', out, '-c', '--json', '--cutoffs', '1,3');
    assert.deepEqual((JSON.parse(again.stdout) as { all: unknown }).all, report.all);
    const plain = await cli('--qrels', join(tiny, 'qrels/test.tsv'), '--run', out, '--json', '--cutoffs', '1,3');
    assert.equal((JSON.parse(plain.stdout) as { numQueries: number }).numQueries, 3);
    const written = await readTrecRun(out);
    assert.equal(written.tag, 'bm25');
    assert.equal(written.run.get('q1')!.docIds[0], 'd1');
    assert.equal(written.run.has('q4'), false); // unjudged queries are not retrieved
    // a --run that is a link (to a run already there, or to one not written yet) is written through
    const store = join(dir, 'store');
    mkdirSync(store);
    writeFileSync(join(store, 'old.trec'), 'q1 Q0 d1 1 1 stale\n');
    symlinkSync(join(store, 'old.trec'), join(dir, 'rlink.trec'));
    symlinkSync(join(store, 'new.trec'), join(dir, 'dangling.trec'));
    for (const link of ['rlink.trec', 'dangling.trec']) {
      const through = await cli('--dataset', tiny, '--retriever', 'bm25', '--run', join(dir, link));
      assert.equal(through.code, 0, through.stderr);
      assert.equal(lstatSync(join(dir, link)).isSymbolicLink(), true, `${link} stays a link`);
    }
    for (const f of ['old.trec', 'new.trec']) assert.deepEqual(readFileSync(join(store, f)), readFileSync(out));
    const table = await cli('--dataset', tiny, '--retriever', 'bm25');
    assert.match(table.stdout, /^nDCG\s+0\.7500/m); // three perfect queries and q5 at 0
    // --excluded-ids saved with a byte-order mark: q1's best document (d1, graded 2) is dropped
    const excluded = join(dir, 'excluded.json');
    writeFileSync(excluded, '\uFEFF{"q1": ["d1"]}');
    const less = await cli('--dataset', tiny, '--retriever', 'bm25', '--excluded-ids', excluded);
    assert.equal(less.code, 0, less.stderr);
    assert.match(less.stdout, /^nDCG\s+0\.6250/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('eval with precomputed embeddings runs exact dense search; --compare adds paired p-values', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-cli-'));
  try {
    // Documents are unit vectors; each query points at its judged document, q3 half-way to a wrong one.
    const docIds = ['d1', 'd2', 'd3', 'd4', 'd5'];
    const docs = new Float32Array(25);
    docIds.forEach((_, i) => {
      docs[i * 5 + i] = 1;
    });
    writeNpyEmbeddings(join(dir, 'docs.npy'), { ids: docIds, dim: 5, data: docs });
    writeFileSync(
      join(dir, 'q.jsonl'),
      [
        '{"id":"q1","vector":[1,0,0,0.2,0]}',
        '{"id":"q2","vector":[0,0,1,0,0]}',
        '{"id":"q3","vector":[0,0.9,0,0,0.5]}',
        '{"id":"q4","vector":[0,1,0,0,0]}',
        '{"id":"q5","vector":[0,0,0,0,-1]}',
      ].join('\n'),
    );
    const out = join(dir, 'dense.trec');
    const r = await cli(
      '--dataset',
      tiny,
      '--query-embeddings',
      join(dir, 'q.jsonl'),
      '--doc-embeddings',
      join(dir, 'docs.npy'),
      '--run',
      out,
      '--json',
      '--cutoffs',
      '1,10',
    );
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { all: Record<string, number> };
    assert.equal(report.all['P_1'], 2 / 4); // q3 ranks d2 first
    // q5 is orthogonal to d1-d4 (cosine 0, tied): trec_eval's order d4, d3, d2, d1 puts its judged d2 third.
    assert.equal(report.all['recip_rank'], (1 + 1 + 0.5 + 1 / 3) / 4);

    const bm25 = join(dir, 'bm25.trec');
    await cli('--dataset', tiny, '--retriever', 'bm25', '--run', bm25);
    const cmp = await cli(
      '--dataset',
      tiny,
      '--query-embeddings',
      join(dir, 'q.jsonl'),
      '--doc-embeddings',
      join(dir, 'docs.npy'),
      '--compare',
      bm25,
      '--json',
      '--cutoffs',
      '10',
    );
    const c = JSON.parse(cmp.stdout) as {
      comparison: { measures: { measure: string; tTestP: number; randomizationP: number }[] };
    };
    const ndcg = c.comparison.measures.find((m) => m.measure === 'ndcg_cut_10')!;
    // p-values from the two run files by the tests' definitions, without the eval layer's code
    const qrels = await readBeirQrels(join(tiny, 'qrels/test.tsv'));
    const perQuery = async (file: string): Promise<Map<string, number>> =>
      referenceNdcg((await readTrecRun(file)).run, qrels, 10).perQuery;
    const [dense, lexical] = [await perQuery(out), await perQuery(bm25)];
    const diffs = [...dense.keys()].map((q) => dense.get(q)! - lexical.get(q)!);
    const mean = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    const sd = Math.sqrt(diffs.reduce((a, x) => a + (x - mean) ** 2, 0) / (diffs.length - 1));
    assert.ok(Math.abs(ndcg.tTestP - studentTwoSidedP(mean / (sd / Math.sqrt(diffs.length)), diffs.length - 1)) < 1e-6);
    const exact = exactRandomizationP(diffs);
    assert.ok(Math.abs(ndcg.randomizationP - exact) <= 5 * Math.sqrt((exact * (1 - exact)) / 1e4) + 2e-4, `${exact}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('eval refuses a --run that is one of its inputs, however named, and leaves that input as it was', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-cli-'));
  try {
    const ds = join(dir, 'sfe');
    cpSync(tiny, ds, { recursive: true });
    writeNpyEmbeddings(join(dir, 'd.npy'), { ids: ['d1'], dim: 2, data: new Float32Array([1, 0]) });
    writeFileSync(join(dir, 'q.jsonl'), '{"id":"q1","vector":[1,0]}\n');
    writeFileSync(join(dir, 'ex.json'), '{"q1": ["d2"]}');
    writeFileSync(join(dir, 'other.trec'), 'q1 Q0 d1 1 1 other\n');
    symlinkSync(join(ds, 'queries.jsonl'), join(dir, 'link.jsonl'));
    const bm25 = ['--retriever', 'bm25', '--excluded-ids', join(dir, 'ex.json'), '--compare', join(dir, 'other.trec')];
    const dense = ['--query-embeddings', join(dir, 'q.jsonl'), '--doc-embeddings', join(dir, 'd.npy')];
    const cases: [string[], string, RegExp][] = [
      [bm25, join(ds, 'qrels/test.tsv'), /--run .*qrels\/test\.tsv is the same file as --dataset's qrels /],
      [bm25, `${ds}/./corpus.jsonl`, /--run .*corpus\.jsonl is the same file as --dataset's corpus /],
      [bm25, join(dir, 'link.jsonl'), /--run .*link\.jsonl is the same file as --dataset's queries .*queries\.jsonl;/],
      [bm25, join(dir, 'ex.json'), /--run .*ex\.json is the same file as --excluded-ids /],
      [bm25, join(dir, 'other.trec'), /--run .*other\.trec is the same file as --compare /],
      [dense, join(dir, 'q.jsonl'), /--run .*q\.jsonl is the same file as --query-embeddings /],
      [dense, join(dir, 'd.npy'), /--run .*d\.npy is the same file as --doc-embeddings /],
      [dense, join(dir, 'd.ids.txt'), /--run .*d\.ids\.txt is the same file as --doc-embeddings .*d\.ids\.txt;/],
    ];
    for (const [how, out, re] of cases) {
      const before = readFileSync(out);
      const r = await cli('--dataset', ds, ...how, '--run', out);
      assert.equal(r.code, 2, `${out}: ${r.stderr}`);
      assert.match(r.stderr.trim(), re);
      assert.match(r.stderr.trim(), /writing it would destroy that input: name another file\.$/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.deepEqual(readFileSync(out), before, `${out} is left as it was`);
    }
    // no input, but no run either (a model's config.json named by mistake): not replaced; a run is
    writeFileSync(join(dir, 'config.json'), '{"model_type": "qwen2"}\n');
    const cfg = await cli('--dataset', ds, '--retriever', 'bm25', '--run', join(dir, 'config.json'));
    assert.equal(cfg.code, 2, cfg.stderr);
    assert.match(
      cfg.stderr.trim(),
      /^search-r3: --run .*config\.json exists and is not a TREC run \(its first line has 2 fields, a run's have 6\)/,
    );
    assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), '{"model_type": "qwen2"}\n');
    writeFileSync(join(dir, 'notes.txt'), 'mine\n');
    const one = await cli('--dataset', ds, '--retriever', 'bm25', '--run', join(dir, 'notes.txt'));
    assert.match(one.stderr.trim(), /\(its first line has 1 field, a run's have 6\)/);
    const again = await cli('--dataset', ds, '--retriever', 'bm25', '--run', join(dir, 'other.trec'));
    assert.equal(again.code, 0, again.stderr);
    assert.notEqual(readFileSync(join(dir, 'other.trec'), 'utf8'), 'q1 Q0 d1 1 1 other\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives one clear sentence and exit code 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-cli-'));
  try {
    const model = await cli('--dataset', tiny, '--retriever', 'models/search-r3-small');
    assert.equal(model.code, 2);
    assert.match(model.stderr, /--retriever 'models\/search-r3-small': not 'bm25' and not a model folder/);
    writeFileSync(join(dir, 'bad.run'), 'q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 t\n');
    const bad = await cli('--qrels', join(fixtures, 'hand.qrels'), '--run', join(dir, 'bad.run'));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /bad\.run:2: expected 6 fields/);
    const none = await cli();
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give --dataset/);
    const m = await cli('--qrels', join(fixtures, 'hand.qrels'), '--run', join(fixtures, 'hand.run'), '-m', 'bpref');
    assert.match(m.stderr, /unknown measure 'bpref'/);

    // refused before the corpus is read, not after retrieval
    const early = async (args: string[], re: RegExp): Promise<void> => {
      const r = await cli('--dataset', tiny, '--retriever', 'bm25', ...args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr.trim(), re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    };
    await early(['--b', '1.5'], /^search-r3: --b must be a number in \[0, 1\] \(got '1\.5'\)\.$/);
    await early(['--k1=-1'], /^search-r3: --k1 must be a number ≥ 0 \(got '-1'\)\.$/);
    await early(['--temperature=-0.5'], /^search-r3: --temperature must be a number ≥ 0 \(got '-0\.5'\)\.$/);
    // options of a model's retrieval, given to BM25: said, not silently dropped
    const bm25 = await cli('--dataset', tiny, '--retriever', 'bm25', '--reasoning', 'on', '--temperature', '0.3');
    assert.equal(bm25.code, 0, bm25.stderr);
    assert.deepEqual(
      bm25.stderr.split('\n').filter((l) => l.includes('has no effect')),
      ['--reasoning on', '--temperature 0.3'].map(
        (o) => `search-r3: ${o} has no effect: this evaluation runs no model (BM25, or vectors read from files).`,
      ),
    );
    await early(['--threads', '0'], /^search-r3: --threads must be a positive integer \(got '0'\)\.$/);
    await early(['--tag', 'two words'], /--tag 'two words' must be one non-empty word/);
    await early(['--max-queries', '1', '--compare', join(fixtures, 'hand.run')], /--compare .* needs --max-queries 2/);

    // a non-finite component would drop its row from every ranking without a word
    const docs = join(dir, 'd.npy');
    writeNpyEmbeddings(docs, { ids: ['d1', 'd2'], dim: 2, data: new Float32Array([1, 0, Infinity, 1]) });
    writeFileSync(join(dir, 'q.jsonl'), '{"id":"q1","vector":[1,0]}\n{"id":"q2","vector":[1e39,1]}\n');
    const dense = async (q: string, d: string): Promise<string> => {
      const r = await cli('--dataset', tiny, '--query-embeddings', q, '--doc-embeddings', d);
      assert.equal(r.code, 2, r.stderr);
      return r.stderr.trim();
    };
    assert.match(await dense(join(dir, 'q.jsonl'), docs), /q\.jsonl: the vector of id 'q2' has a non-finite value/);
    writeFileSync(join(dir, 'q.jsonl'), '{"id":"q1","vector":[1,0]}\n');
    assert.match(
      await dense(join(dir, 'q.jsonl'), docs),
      /d\.npy: the vector of id 'd2' has a non-finite value \(Infinity\)/,
    );
    writeFileSync(join(dir, 'cut.npy'), Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 2, 0, 0xff, 0xff]));
    assert.match(await dense(join(dir, 'q.jsonl'), join(dir, 'cut.npy')), /cut\.npy: .*the file is cut short/);

    // which file lacks an id, and which two disagree in dimension, are named: the user has to fix one of them
    const five = join(dir, 'five.jsonl');
    const vectors = (ids: string[], dim: number): string =>
      ids.map((id) => JSON.stringify({ id, vector: Array.from({ length: dim }, (_, i) => i + 1) })).join('\n');
    writeFileSync(five, vectors(['d1', 'd2', 'd3', 'd4', 'd5'], 2));
    writeFileSync(join(dir, 'three.jsonl'), vectors(['d1', 'd2', 'd3'], 2));
    writeFileSync(join(dir, 'q4.jsonl'), vectors(['q1', 'q2', 'q3', 'q5'], 3));
    assert.equal(
      await dense(join(dir, 'q4.jsonl'), join(dir, 'three.jsonl')),
      `search-r3: ${join(dir, 'three.jsonl')}: has no embedding for document 'd4' (2 of the 5 documents of the ` +
        'corpus have none); embed them all',
    );
    assert.match(
      await dense(join(dir, 'q.jsonl'), five),
      /q\.jsonl: has no embedding for query 'q2' \(3 of the 4 judged queries of the split have none\)/,
    );
    assert.match(
      await dense(join(dir, 'q4.jsonl'), five),
      /q4\.jsonl: its vectors are 3-d and those of .*five\.jsonl 2-d; embed queries and documents with one model$/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--compare pairs the queries both runs answer: refused when none, the counts said when some miss', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-cli-'));
  try {
    const qrels = join(fixtures, 'hand.qrels');
    const a = join(fixtures, 'hand.run');
    const lines = readFileSync(a, 'utf8').split('\n');
    const partial = join(dir, 'partial.trec');
    writeFileSync(partial, lines.filter((l) => /^(q1|q2) /.test(l)).join('\n') + '\n');
    type Out = { comparison: { measures: { n: number }[] } };
    const n = (r: { stdout: string }): number => (JSON.parse(r.stdout) as Out).comparison.measures[0]!.n;
    // without -c each run is averaged over the queries it answers: the pairs are the 2 both answer
    const plain = await cli('--qrels', qrels, '--run', a, '--compare', partial, '--json');
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(n(plain), 2);
    assert.match(
      plain.stderr,
      new RegExp(
        '^search-r3: --compare: of the 5 judged queries, .*hand\\.run answers 5 and .*partial\\.trec 2, ' +
          '2 of them in both; the paired tests count those 2 \\(without -c',
        'm',
      ),
    );
    // with -c a missing query scores 0: all 5 are paired, and the sentence says so
    const complete = await cli('-c', '--qrels', qrels, '--run', a, '--compare', partial, '--json');
    assert.equal(complete.code, 0, complete.stderr);
    assert.equal(n(complete), 5);
    assert.match(
      complete.stderr,
      /2 of them in both; a query a run misses scores 0 in it \(-c\), so the paired tests count all 5\./,
    );
    // the same queries: nothing to say
    const same = await cli('--qrels', qrels, '--run', a, '--compare', a, '--json');
    assert.equal(same.code, 0, same.stderr);
    assert.doesNotMatch(same.stderr, /--compare/);
    // a run of other queries (q9 is judged nowhere) has nothing to pair: refused, in the trec and the dataset form
    const other = join(dir, 'other.trec');
    writeFileSync(other, 'q9 Q0 d1 1 1.0 x\nzz Q0 d2 1 1.0 x\n');
    const none = await cli('--qrels', qrels, '--run', a, '--compare', other);
    assert.equal(none.code, 2, none.stderr);
    assert.match(
      none.stderr,
      /^search-r3: --compare .*other\.trec answers none of the queries judged in .*hand\.qrels: paired tests need/,
    );
    assert.equal(none.stdout, '');
    const q3 = join(dir, 'q3.trec');
    writeFileSync(q3, lines.filter((l) => l.startsWith('q3 ')).join('\n') + '\n');
    const apart = await cli('-c', '--qrels', qrels, '--run', partial, '--compare', q3);
    assert.equal(apart.code, 2, apart.stderr);
    assert.match(apart.stderr, /q3\.trec answers none of the queries .*partial\.trec answers of those judged in /);
    const ds = await cli('--dataset', tiny, '--retriever', 'bm25', '--compare', other);
    assert.equal(ds.code, 2, ds.stderr);
    assert.match(
      ds.stderr,
      /^search-r3: --compare .*other\.trec answers none of the queries judged in .*tiny-beir \(split test\)/m,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('eval --qrels says which retrieval options it ignores, as it says it of --k', async () => {
  const args = ['--qrels', join(fixtures, 'hand.qrels'), '--run', join(fixtures, 'hand.run')];
  const plain = await cli(...args);
  const r = await cli(
    ...args,
    ...['--k', '10', '--split', 'dev', '--k1', '0.5', '--b', '0.3', '--language', 'zh', '--threads', '2'],
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, plain.stdout, 'the evaluation is the same');
  const why = 'has no effect: it sets up a --dataset retrieval, and this evaluation reads its run.';
  assert.deepEqual(r.stderr.trim().split('\n'), [
    'search-r3: --k 10 has no effect: it bounds a retrieval, and this evaluation reads its run.',
    ...['--split dev', '--k1 0.5', '--b 0.3', '--language zh', '--threads 2'].map((o) => `search-r3: ${o} ${why}`),
  ]);
  // the dataset form reads them (its default split is still test)
  const ds = await cli('--dataset', tiny, '--retriever', 'bm25', '--k1', '0.5', '--json');
  assert.equal(ds.code, 0, ds.stderr);
  assert.doesNotMatch(ds.stderr, /has no effect/);
  assert.equal((JSON.parse(ds.stdout) as { dataset: { split: string } }).dataset.split, 'test');
});

test('--compare tells its two columns apart: by tag, never cut, or by file where both runs have one tag', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sr3-cli-'));
  try {
    const [a, b] = [join(dir, 'k1-0.9.trec'), join(dir, 'k1-1.2.trec')];
    assert.equal((await cli('--dataset', tiny, '--retriever', 'bm25', '--run', a)).code, 0);
    assert.equal((await cli('--dataset', tiny, '--retriever', 'bm25', '--k1', '1.2', '--run', b)).code, 0);
    const header = (stdout: string): string[] => {
      const lines = stdout.split('\n');
      const at = lines.findIndex((l) => l.startsWith('measure '));
      return [lines[at - 1]!, lines[at]!];
    };
    // both tagged bm25: the files say which column is which
    const same = await cli('--qrels', join(tiny, 'qrels/test.tsv'), '--run', a, '--compare', b);
    assert.equal(same.code, 0, same.stderr);
    const [heading, columns] = header(same.stdout);
    assert.equal(heading, `${a} vs ${b} (both tagged bm25):`);
    assert.match(columns!, /^measure +k1-0\.9\.trec +k1-1\.2\.trec +diff /);
    // tags longer than a column are shown whole
    const long = join(dir, 'long.trec');
    writeFileSync(long, readFileSync(b, 'utf8').replace(/ bm25$/gm, ' search-r3-reasoning'));
    const [h2, c2] = header((await cli('--qrels', join(tiny, 'qrels/test.tsv'), '--run', a, '--compare', long)).stdout);
    assert.equal(h2, `bm25 vs search-r3-reasoning (${long}):`);
    assert.match(c2!, /^measure +bm25 +search-r3-reasoning +diff /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
