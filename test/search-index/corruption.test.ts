/**
 * The index corruption suite: each file of an index (manifest, document store, HNSW graph and its
 * checksum record, saved BM25 index) missing, empty, cut in half, overwritten with random bytes of the same size,
 * or with bits flipped, each kind that takes a path of its own through the code (CASES). For each, `search` (a
 * read) must not abort, must leave every file as it was (bm25.bin aside: a hybrid search saves the BM25 index it
 * had to build, the one file a read may write), and must either rank exactly as the intact index does
 * (rebuilding what it can in memory, and saying what it rebuilt) or fail with one sentence naming the damaged
 * file. `index` on the damaged folder (a write) must repair what docs.sqlite allows, after which searches rank
 * as before and say nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import path from 'node:path';
import { runCliAsync } from '../helpers/cli.js';
import { DAMAGE_KINDS, type DamageKind, damageFile, folderDigest } from '../helpers/damage.js';
import { corpus, tempDir, tinyModelDir, writeJsonl } from './fixtures.js';
import { BM25_FILE } from '../../src/search-index/search-index.js';
import { inPool } from '../helpers/pool.js';

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

async function cli(...args: string[]): Promise<Run> {
  const r = await runCliAsync(args, { SEARCH_R3_THREADS: '1' });
  return { ...r, code: r.status };
}

interface Hit {
  id: string;
  score: number;
  title: string;
  text: string;
}

function hitsOf(r: Run): Hit[] {
  return (JSON.parse(r.stdout) as { data: Hit[] }).data.map(({ id, score, title, text }) => ({
    id,
    score,
    title,
    text,
  }));
}

/** Same documents in the same order with the same texts; scores equal up to float rounding (a re-encoded batch). */
function assertSameRanking(got: Hit[], want: Hit[], what: string): void {
  assert.deepEqual(
    got.map((h) => [h.id, h.title, h.text]),
    want.map((h) => [h.id, h.title, h.text]),
    what,
  );
  got.forEach((h, i) => assert.ok(Math.abs(h.score - want[i].score) < 1e-5, `${what}: score of ${h.id}`));
}

function assertNoAbort(r: Run, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}`);
  assert.ok(r.code === 0 || r.code === 2, `${what}: exit code ${r.code}\n${r.stderr}`);
}

/** A failure is one line, `search-r3: ...`, naming the damaged file. */
function assertOneSentence(r: Run, file: string, what: string): void {
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: one line expected:\n${r.stderr}`);
  assert.match(lines[0], /^search-r3: /, what);
  assert.ok(lines[0].includes(file), `${what}: the message names ${file}: ${lines[0]}`);
}

/** The unique index on docs.key, through which search finds the rows of the vectors it ranks. */
const KEY_INDEX = 'sqlite_autoindex_docs_2';

/**
 * One case (3 commands) for each way a command meets a damaged file; a kind left out takes the path of a kept one
 * (what the commands say shows it), so it would only run the same code again.
 */
const CASES: [file: string, kind: DamageKind, seed?: number][] = [
  // missing, or not valid JSON (as the empty file, random bytes and 8 flipped bits of it are)
  ['index.json', 'missing'],
  ['index.json', 'truncated'],
  ['vectors.generation.json', 'missing'],
  ['vectors.generation.json', 'truncated'],
  // missing, or bytes its checksum record refuses: of another size (an empty file alike), or of the same size
  // (random bytes alike), which usearch would load, and abort on, were they not checked
  ['vectors.usearch', 'missing'],
  ['vectors.usearch', 'truncated'],
  ['vectors.usearch', 'bitflip'],
  // missing (nothing to say), not a BM25 file (an empty one alike), shorter than its header says, checksum refused
  [BM25_FILE, 'missing'],
  [BM25_FILE, 'random'],
  [BM25_FILE, 'truncated'],
  [BM25_FILE, 'bitflip'],
  // the source of truth, each kind its own path; bit flips land in a vector (seed 1), the row structure SQLite's
  // check finds (2), free space (3) or a text (5)
  ...DAMAGE_KINDS.map((kind): [string, DamageKind] => ['docs.sqlite', kind]),
  ...[2, 3, 5].map((seed): [string, DamageKind, number] => ['docs.sqlite', 'bitflip', seed]),
];

/** Damage each file of the index can take and still rank as before: the others are rebuilt from docs.sqlite. */
const REBUILT_BY_READER = new Set(['index.json', 'vectors.usearch', 'vectors.generation.json', BM25_FILE]);

/** The files of `dir` but bm25.bin, which a hybrid search saves when it had to build BM25. */
function digestBesidesBm25(dir: string): Map<string, string> {
  const digest = folderDigest(dir);
  digest.delete(BM25_FILE);
  return digest;
}

test(
  'a damaged index never aborts a process, a read ' + 'never writes, and what docs.sqlite allows is rebuilt',
  async () => {
    const { dir, cleanup } = tempDir('corrupt');
    try {
      const model = await tinyModelDir(dir);
      const docs = corpus(40);
      const input = path.join(dir, 'docs.jsonl');
      writeJsonl(input, docs);
      const intact = path.join(dir, 'intact');
      const built = await cli('index', '--model', model, '--input', input, '--out', intact, '--commit-every', '16');
      assert.equal(built.code, 0, built.stderr);
      const query = ['--json', '-k', '8', '--hybrid', `${docs[5].title} ${docs[5].text}`];
      const want = hitsOf(await cli('search', '--index', intact, ...query));
      assert.equal(want.length, 8);

      const cases = CASES.map(([file, kind, seed = 1]) => ({ file, kind, seed }));

      const outcomes: string[] = [];
      await inPool(cases, async ({ file, kind, seed }) => {
        const what = `${file} ${kind}${kind === 'bitflip' ? ` (seed ${seed})` : ''}`;
        const idx = path.join(dir, `case-${file}-${kind}-${seed}`);
        cpSync(intact, idx, { recursive: true });
        damageFile(path.join(idx, file), kind, seed, 8);
        const before = digestBesidesBm25(idx);

        const read = await cli('search', '--index', idx, ...query);
        assertNoAbort(read, `search, ${what}`);
        assert.deepEqual(
          digestBesidesBm25(idx),
          before,
          `search, ${what}: no file of the index is created, changed or removed`,
        );
        // a missing bm25.bin is what every index has until its first hybrid search: nothing to say
        const silent = file === BM25_FILE && kind === 'missing';
        if (read.code === 0) {
          assertSameRanking(hitsOf(read), want, `search, ${what}`);
          if (REBUILT_BY_READER.has(file) && !silent)
            assertOneSentence(read, file, `search, ${what}: says what it rebuilt`);
          else assert.equal(read.stderr, '', `search, ${what}`);
        } else {
          assert.ok(
            !REBUILT_BY_READER.has(file),
            `search, ${what}: should have been rebuilt in memory: ${read.stderr}`,
          );
          assertOneSentence(read, file, `search, ${what}`);
        }

        const write = await cli('index', '--input', input, '--out', idx);
        assertNoAbort(write, `index, ${what}`);
        if (write.code !== 0) {
          // only a damaged document store cannot be repaired by a write (it is the source of truth)
          assert.equal(file, 'docs.sqlite', `index, ${what}: ${write.stderr}`);
          assert.ok(kind === 'random' || kind === 'truncated' || kind === 'bitflip', `index, ${what}: ${write.stderr}`);
          assertOneSentence(write, file, `index, ${what}`);
          outcomes.push(`${what}: refused`);
          return;
        }
        const after = await cli('search', '--index', idx, ...query);
        assert.equal(after.code, 0, `search after index, ${what}: ${after.stderr}`);
        if (after.stderr !== '') {
          // a bit flip the write did not touch (a document of the index it had no reason to read) still shows
          assert.equal(kind, 'bitflip', `search after index, ${what}: ${after.stderr}`);
          assertOneSentence(after, file, `search after index, ${what}`);
        } else {
          assertSameRanking(hitsOf(after), want, `search after index, ${what}`);
        }
        outcomes.push(`${what}: ${read.code === 0 ? 'read ok' : 'read refused'}, repaired`);
      });
      assert.equal(outcomes.length, cases.length);
      // the cases reach every path: reads that rebuild, reads that refuse, writes that repair and that refuse
      for (const o of ['read ok, repaired', 'read refused, repaired', ': refused'])
        assert.ok(
          outcomes.some((x) => x.endsWith(o)),
          o,
        );
    } finally {
      cleanup();
    }
  },
);

test('a flipped bit in an index of docs.sqlite, which SQLite’s quick check misses, is rebuilt by index', async () => {
  const { dir, cleanup } = tempDir('corrupt-index');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(40));
    const idx = path.join(dir, 'idx');
    assert.equal((await cli('index', '--model', model, '--input', input, '--out', idx)).code, 0);
    const query = ['--json', '-k', '40', 'protein'];
    const want = hitsOf(await cli('search', '--index', idx, ...query));
    damageKeyIndexEntry(path.join(idx, 'docs.sqlite'));
    const read = await cli('search', '--index', idx, ...query);
    assert.ok(
      read.code !== 0 || hitsOf(read).length < want.length,
      'the damaged entry loses a document (or the read is refused)',
    );

    const write = await cli('index', '--input', input, '--out', idx);
    assert.equal(write.code, 0, write.stderr);
    const after = await cli('search', '--index', idx, ...query);
    assert.equal(after.code, 0, after.stderr);
    assertSameRanking(hitsOf(after), want, 'search after index');
  } finally {
    cleanup();
  }
});

/**
 * Points an entry of the docs.key index (one page: 40 documents) at another key, as a flipped bit would: the
 * row's key is no longer found through the index, and SQLite's quick check does not compare the two.
 */
function damageKeyIndexEntry(file: string): void {
  const db = new Database(file, { readonly: true });
  const { rootpage } = db.prepare('SELECT rootpage FROM sqlite_master WHERE name = ?').get(KEY_INDEX) as {
    rootpage: number;
  };
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.close();
  const bytes = readFileSync(file);
  const page = (rootpage - 1) * pageSize;
  assert.equal(bytes[page], 0x0a, 'a leaf page of an index');
  // a cell: payload size, record header size (3), serial types of key and rowid (1: an 8-bit integer), values
  const cells = Array.from(
    { length: bytes.readUInt16BE(page + 3) },
    (_, i) => page + bytes.readUInt16BE(page + 8 + 2 * i),
  );
  const cell = cells.find((c) => bytes[c + 1] === 3 && bytes[c + 2] === 1)!;
  bytes[cell + 4] ^= 64;
  writeFileSync(file, bytes);
}
