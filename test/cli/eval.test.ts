/** search-r3 eval's own options that the trec_eval-exactness tests (test/eval) do not cover. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { tempDir } from '../search-index/fixtures.js';

const tiny = path.join(repoRoot, 'test', 'eval', 'fixtures', 'tiny-beir');

/** Runs `fn` in a new temporary folder, removed after it. */
function inTempDir(name: string, fn: (dir: string) => void): void {
  const { dir, cleanup } = tempDir(name);
  try {
    fn(dir);
  } finally {
    cleanup();
  }
}

test('eval --max-queries n evaluates the first n judged queries of the split, as demo --max-queries does', () => {
  const all = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--json', '-q']);
  assert.equal(all.status, 0, all.stderr);
  const two = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--json', '-q', '--max-queries', '2']);
  assert.equal(two.status, 0, two.stderr);
  interface Report {
    numQueries: number;
    dataset: { queries: number; documents: number };
    perQuery: Record<string, Record<string, number>>;
  }
  const a = JSON.parse(all.stdout) as Report,
    b = JSON.parse(two.stdout) as Report;
  assert.equal(a.numQueries, 4);
  assert.equal(b.numQueries, 2);
  assert.deepEqual(b.dataset, { ...a.dataset, queries: 2 }, 'the whole corpus is still searched');
  // q4 has no judgement, so the first two judged queries of queries.jsonl are q1 and q2
  assert.deepEqual(
    Object.keys(b.perQuery)
      .filter((q) => q !== 'all')
      .sort(),
    ['q1', 'q2'],
  );
  for (const q of ['q1', 'q2']) assert.deepEqual(b.perQuery[q], a.perQuery[q], `${q} scores as in the full run`);
  const help = runCli(['eval', '--help']);
  assert.match(help.stdout, /--max-queries <n> +evaluate only the first n queries of the split/);
  const zero = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--max-queries', '0']);
  assert.equal(zero.status, 2);
  assert.equal(zero.stderr, "search-r3: --max-queries must be a positive integer (got '0').\n");
  const qrels = path.join(tiny, 'qrels', 'test.tsv');
  const trec = runCli(['eval', '--qrels', qrels, '--run', 'x.trec', '--max-queries', '2']);
  assert.equal(trec.status, 2);
  assert.match(trec.stderr, /^search-r3: --max-queries goes with --dataset/);
});

test('eval --run makes a missing folder, with the folders above it, when it writes the run', () => {
  inTempDir('eval-run-folder', (dir) => {
    const run = path.join(dir, 'runs', 'bm25', 'test.trec');
    // a run refused before retrieving makes no folder
    const bad = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--run', run, '--cutoffs', 'x']);
    assert.equal(bad.status, 2, bad.stderr);
    assert.equal(existsSync(path.join(dir, 'runs')), false, 'no folder made by a refused run');
    const r = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--json', '--run', run]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(run, 'utf8'), /^\S+ Q0 \S+ 1 \S+ bm25$/m);
    assert.match(
      runCli(['eval', '--help']).stdout,
      /--run <file> +TREC run: written .*its folder is created if missing/,
    );
  });
});

test('eval --help names the ids file a .npy of embeddings is read with: d.ids.txt for d.npy', () => {
  const help = runCli(['eval', '--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /X\.npy, float32 \[queries × dim\], with its ids one per line in X\.ids\.txt beside/);
  assert.match(help.stdout, /\(d\.npy: d\.ids\.txt\)/);
  assert.doesNotMatch(help.stdout, /<file>\.ids\.txt/);
});

test('--device where no model runs (BM25) is said to have no effect; a wrong value is still refused', () => {
  const r = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--json', '-q', '--device', 'webgpu']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stderr,
    'search-r3: --device webgpu has no effect: this evaluation runs no model (BM25, or vectors read from files).\n',
  );
  const wrong = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--device', 'gpu']);
  assert.equal(wrong.status, 2);
  assert.match(wrong.stderr, /--device must be auto, cpu or webgpu/);
});

test('eval --dataset naming a file (its corpus.jsonl) says it is a file, not that the split has no qrels', () => {
  const corpus = path.join(tiny, 'corpus.jsonl');
  const r = runCli(['eval', '--dataset', corpus, '--retriever', 'bm25']);
  assert.equal(r.status, 2);
  assert.equal(
    r.stderr,
    `search-r3: ${corpus}: is a file; name the BEIR folder that holds corpus.jsonl, queries.jsonl and qrels/\n`,
  );
});

test('eval --dataset --run with a query id holding whitespace is refused before retrieving; nothing is written', () => {
  inTempDir('eval-run-space', (dir) => {
    const ds = path.join(dir, 'ds');
    mkdirSync(path.join(ds, 'qrels'), { recursive: true });
    writeFileSync(path.join(ds, 'corpus.jsonl'), '{"_id": "d1", "text": "vitamin d"}\n');
    writeFileSync(path.join(ds, 'queries.jsonl'), '{"_id": "q 1", "text": "vitamin"}\n');
    writeFileSync(path.join(ds, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq 1\td1\t1\n');
    const run = path.join(dir, 'out.trec');
    const r = runCli(['eval', '--dataset', ds, '--retriever', 'bm25', '--run', run]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^search-r3: .*out\.trec: query id 'q 1' holds whitespace, which a TREC run cannot hold/);
    assert.doesNotMatch(r.stderr, /indexing/, 'refused before the corpus is indexed');
    assert.equal(existsSync(run), false);
    // without --run nothing is written, so the evaluation stands
    assert.equal(runCli(['eval', '--dataset', ds, '--retriever', 'bm25']).status, 0);
  });
});

test('eval --run naming a folder that is not there yet (out/) is refused, not written as a file named out', () => {
  inTempDir('eval-run-slash', (dir) => {
    const out = `${path.join(dir, 'runs')}/`;
    const r = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--run', out]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, `search-r3: --run ${out} ends in '/', which names a folder; name the file to write.\n`);
    assert.equal(existsSync(path.join(dir, 'runs')), false);
  });
});

test('eval --dataset warns when no document judged relevant is in the corpus (every figure 0), and only then', () => {
  inTempDir('eval-no-relevant', (dir) => {
    const ds = path.join(dir, 'ds');
    mkdirSync(path.join(ds, 'qrels'), { recursive: true });
    for (const f of ['corpus.jsonl', 'queries.jsonl'])
      writeFileSync(path.join(ds, f), readFileSync(path.join(tiny, f)));
    // another dataset's qrels: judged documents the corpus does not hold (d1 judged 0 only)
    writeFileSync(path.join(ds, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\tx9\t1\nq2\tx8\t2\nq2\td1\t0\n');
    const r = runCli(['eval', '--dataset', ds, '--retriever', 'bm25', '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stderr,
      `search-r3: warning: none of the 2 documents judged relevant in ${path.join(ds, 'qrels', 'test.tsv')} is in ` +
        `${path.join(ds, 'corpus.jsonl')}, so every measure is 0; check that the corpus and the qrels are of one ` +
        'dataset\n',
    );
    const fine = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--json']);
    assert.equal(fine.status, 0, fine.stderr);
    assert.equal(fine.stderr, '');
  });
});

test('eval --qrels test.tsv.gz reads BEIR qrels through gunzip, as test.tsv is read', () => {
  inTempDir('eval-qrels-gz', (dir) => {
    const qrels = path.join(tiny, 'qrels', 'test.tsv');
    const run = path.join(dir, 'bm25.trec');
    assert.equal(runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--json', '--run', run]).status, 0);
    const gz = path.join(dir, 'test.tsv.gz');
    writeFileSync(gz, gzipSync(readFileSync(qrels)));
    const plain = runCli(['eval', '--qrels', qrels, '--run', run]);
    const zipped = runCli(['eval', '--qrels', gz, '--run', run]);
    assert.equal(zipped.status, 0, zipped.stderr);
    assert.equal(zipped.stdout, plain.stdout);
  });
});

test('eval --dataset --run out.trec.gz is refused before retrieving: the run is written as plain text', () => {
  inTempDir('eval-run-gz', (dir) => {
    const run = path.join(dir, 'out.trec.gz');
    const r = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--run', run]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /^search-r3: --run .*out\.trec\.gz: eval writes the run as plain text, .*name it without \.gz/,
    );
    assert.equal(existsSync(run), false);
  });
});

test('eval --excluded-ids naming a folder says so, not that it is invalid JSON', () => {
  const r = runCli(['eval', '--dataset', tiny, '--retriever', 'bm25', '--excluded-ids', tiny]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, `search-r3: ${tiny} is a folder; --excluded-ids names a JSON file.\n`);
});
