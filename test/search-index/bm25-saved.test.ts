/**
 * bm25.bin: hybrid search reads the BM25 index its folder holds instead of building it from every text, as long as
 * the file reflects docs.sqlite's generation; writers keep it current; a damaged one or a folder that cannot be
 * written never fails a search.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SearchIndex, BM25_FILE } from '../../src/search-index/search-index.js';
import { runCli, runCliAsync } from '../helpers/cli.js';
import { corpus, tempDir, tinyBackend, tinyModelDir, writeJsonl } from './fixtures.js';

const QUERIES = ['protein cell', 'cancer vaccine gene gene', 'brain heart virus drug', 'immune', 'zebra'];

/** A query vector that does not depend on a model: hybrid ranks by it and by BM25 over `queryText`. */
function vector(dim: number, seed: number): Float32Array {
  return Float32Array.from({ length: dim }, (_, i) => Math.sin(seed * 7.3 + i * 1.7));
}

async function hybridHits(index: SearchIndex): Promise<unknown[]> {
  const out = [];
  for (const [i, q] of QUERIES.entries())
    out.push(await index.searchVector(vector(index.dimension, i), { k: 60, hybrid: true, queryText: q }));
  return out;
}

/** The hits of a fresh build: the folder copied without bm25.bin, read by an instance that saves nothing. */
async function freshHits(indexDir: string, scratch: string): Promise<unknown[]> {
  rmSync(scratch, { recursive: true, force: true });
  cpSync(indexDir, scratch, { recursive: true });
  rmSync(path.join(scratch, BM25_FILE), { force: true });
  const index = await SearchIndex.open(scratch);
  try {
    const hits = await hybridHits(index);
    assert.equal(index.bm25Builds, 1);
    return hits;
  } finally {
    await index.close();
  }
}

/**
 * The QUERIES' hybrid hits, notes and BM25 builds of a saveBm25 open of `indexDir` by user 'nobody', in a child
 * process: root writes any folder whatever its mode, so permissions are tested as another user.
 */
function searchAsNobody(indexDir: string): { hits: unknown[]; notes: string[]; builds: number } {
  const module = new URL('../../src/search-index/search-index.js', import.meta.url).href;
  const script = `
    const { SearchIndex } = await import(${JSON.stringify(module)});
    if (process.getuid() === 0) { process.setgid(65534); process.setuid(65534); }
    const index = await SearchIndex.open(${JSON.stringify(indexDir)}, { saveBm25: true });
    const out = [];
    for (const [i, q] of ${JSON.stringify(QUERIES)}.entries()) {
      const v = Float32Array.from({ length: index.dimension }, (_, j) => Math.sin(i * 7.3 + j * 1.7));
      out.push(await index.searchVector(v, { k: 60, hybrid: true, queryText: q }));
    }
    await index.close();
    process.stdout.write(JSON.stringify({ hits: out, notes: index.notes, builds: index.bm25Builds }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { hits: unknown[]; notes: string[]; builds: number };
}

/** Opens `dir` read-only as the CLI's search does (saving bm25.bin), runs the queries, and closes it. */
async function cliLikeSearch(
  dir: string,
): Promise<{ hits: unknown[]; builds: number; loads: number; notes: string[] }> {
  const index = await SearchIndex.open(dir, { saveBm25: true });
  try {
    const hits = await hybridHits(index);
    return { hits, builds: index.bm25Builds, loads: index.bm25Loads, notes: [...index.notes] };
  } finally {
    await index.close();
  }
}

test('a hybrid search in a new instance reads bm25.bin rather than building; writes keep it current', async () => {
  const { dir, cleanup } = tempDir('bm25-saved');
  try {
    const modelDir = await tinyModelDir(dir);
    const indexDir = path.join(dir, 'index');
    const scratch = path.join(dir, 'scratch');
    const writer = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), create: {} });
    await writer.addDocuments(corpus(40, 3));
    await writer.close();
    assert.ok(!existsSync(path.join(indexDir, BM25_FILE)), 'an index run without hybrid search builds no BM25');

    const first = await cliLikeSearch(indexDir);
    assert.deepEqual([first.builds, first.loads], [1, 0]);
    assert.ok(existsSync(path.join(indexDir, BM25_FILE)));
    const second = await cliLikeSearch(indexDir);
    assert.deepEqual([second.builds, second.loads], [0, 1]);
    assert.deepEqual(second.hits, first.hits);
    assert.deepEqual(second.notes, []);

    // a writer (an `index` run) follows its commits in the file and saves it at close: the next search reads it
    const w = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), writable: true });
    await w.addDocuments([
      ...corpus(8, 11).map((d) => ({ ...d, id: `new-${d.id}` })),
      { ...corpus(1, 12)[0]!, id: 'd005' }, // a replacement
    ]);
    await w.deleteDocuments(['d007', 'd020']);
    assert.equal(w.bm25Builds, 0);
    await w.close();
    const after = await cliLikeSearch(indexDir);
    assert.deepEqual([after.builds, after.loads], [0, 1]);
    assert.deepEqual(after.hits, await freshHits(indexDir, scratch));

    // a writer that did not keep it (another version, or a library user who asked not to) leaves it stale: rebuilt
    const quiet = await SearchIndex.open(indexDir, {
      backend: await tinyBackend(modelDir),
      writable: true,
      saveBm25: false,
    });
    // a replacement: as many documents as before, so only the generation tells the file is stale
    await quiet.addDocuments([{ ...corpus(1, 40)[0]!, id: 'd001' }]);
    await quiet.close();
    const stale = await cliLikeSearch(indexDir);
    assert.deepEqual([stale.builds, stale.loads], [1, 0]);
    assert.deepEqual(stale.hits, await freshHits(indexDir, scratch));
    assert.deepEqual(stale.notes, [], 'a stale file is not damage: nothing to say');
    assert.deepEqual((await cliLikeSearch(indexDir)).loads, 1, 'the rebuilt index was saved');
  } finally {
    cleanup();
  }
});

test('a damaged bm25.bin is rebuilt and said once; the rebuilt one is saved', async () => {
  const { dir, cleanup } = tempDir('bm25-damaged');
  try {
    const modelDir = await tinyModelDir(dir);
    const indexDir = path.join(dir, 'index');
    const writer = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), create: {} });
    await writer.addDocuments(corpus(30, 5));
    await writer.close();
    const want = (await cliLikeSearch(indexDir)).hits;
    const file = path.join(indexDir, BM25_FILE);
    const bytes = readFileSync(file);
    const cases: [string, Uint8Array][] = [
      ['cut short', bytes.subarray(0, bytes.length - 7)],
      [
        'a flipped bit',
        Buffer.from(bytes).fill(bytes[bytes.length >> 1]! ^ 16, bytes.length >> 1, (bytes.length >> 1) + 1),
      ],
      ['foreign', Buffer.from('PK\u0003\u0004 not a BM25 index at all')],
    ];
    for (const [what, content] of cases) {
      writeFileSync(file, content);
      const r = await cliLikeSearch(indexDir);
      assert.deepEqual(r.hits, want, what);
      assert.equal(r.builds, 1, what);
      assert.equal(r.notes.length, 1, what);
      assert.match(r.notes[0]!, /bm25\.bin is damaged \(.+\); BM25 was rebuilt from docs\.sqlite/, what);
      assert.equal((await cliLikeSearch(indexDir)).loads, 1, `${what}: the rebuilt index was saved`);
    }
  } finally {
    cleanup();
  }
});

test('hybrid search on a folder it may not write ranks as usual, says so once and creates nothing', async () => {
  const { dir, cleanup } = tempDir('bm25-ro');
  try {
    const modelDir = await tinyModelDir(dir);
    const indexDir = path.join(dir, 'index');
    const writer = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), create: {} });
    await writer.addDocuments(corpus(30, 6));
    await writer.close();
    const want = await freshHits(indexDir, path.join(dir, 'scratch'));
    // root writes any folder whatever its mode: the search then runs as 'nobody' in a child process
    chmodSync(dir, 0o755);
    chmodSync(indexDir, 0o555);
    const got = searchAsNobody(indexDir);
    chmodSync(indexDir, 0o755);
    assert.deepEqual(got.hits, JSON.parse(JSON.stringify(want)));
    assert.equal(got.builds, 1);
    assert.equal(got.notes.length, 1, got.notes.join('\n'));
    assert.match(got.notes[0]!, /bm25\.bin could not be saved \(.*(EACCES|permission denied).*\)/i);
    assert.ok(!existsSync(path.join(indexDir, BM25_FILE)));
  } finally {
    cleanup();
  }
});

test('a docs.sqlite made anew at the same generation and count as the old one does not read its bm25.bin', async () => {
  const { dir, cleanup } = tempDir('bm25-anew');
  try {
    const modelDir = await tinyModelDir(dir);
    const indexDir = path.join(dir, 'index');
    const scratch = path.join(dir, 'scratch');
    const v1 = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), create: {} });
    await v1.addDocuments(corpus(40, 3), { chunkSize: 10 });
    const before = v1.stats();
    await v1.close();
    assert.deepEqual((await cliLikeSearch(indexDir)).builds, 1);
    assert.ok(existsSync(path.join(indexDir, BM25_FILE)));

    // the documents deleted, index.json kept: the next index run starts a new table and counts from 0 again
    rmSync(path.join(indexDir, 'docs.sqlite'));
    const v2 = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), writable: true });
    await v2.addDocuments(corpus(40, 77), { chunkSize: 10 });
    assert.deepEqual(v2.stats(), before, 'the new table reached the old generation and document count');
    await v2.close();

    const after = await cliLikeSearch(indexDir);
    assert.deepEqual([after.builds, after.loads], [1, 0]);
    assert.deepEqual(after.hits, await freshHits(indexDir, scratch));
    assert.deepEqual((await cliLikeSearch(indexDir)).loads, 1, 'the rebuilt index was saved');
  } finally {
    cleanup();
  }
});

test('a docs.sqlite without an identity (an older version wrote it) gets one at the next writable open', async () => {
  const { dir, cleanup } = tempDir('bm25-identity');
  try {
    const modelDir = await tinyModelDir(dir);
    const indexDir = path.join(dir, 'index');
    const writer = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), create: {} });
    await writer.addDocuments(corpus(30, 4));
    await writer.close();
    await cliLikeSearch(indexDir);
    const file = path.join(indexDir, BM25_FILE);
    const saved = statSync(file);
    const db = new Database(path.join(indexDir, 'docs.sqlite'));
    db.prepare("DELETE FROM info WHERE k = 'table_id'").run();
    db.close();

    // a reader cannot tell a file of this table from one of a table it replaced: it neither reads nor saves one
    const reader = await cliLikeSearch(indexDir);
    assert.deepEqual([reader.builds, reader.loads, reader.notes], [1, 0, []]);
    assert.equal(statSync(file).ino, saved.ino);
    await (await SearchIndex.open(indexDir, { writable: true })).close();
    assert.deepEqual((await cliLikeSearch(indexDir)).builds, 1, 'a file saved before the identity is stale');
    assert.deepEqual((await cliLikeSearch(indexDir)).loads, 1);
  } finally {
    cleanup();
  }
});

test('a bm25.bin it may not read is said so (not damaged), searched around and left as it is', async () => {
  const { dir, cleanup } = tempDir('bm25-unreadable');
  try {
    const modelDir = await tinyModelDir(dir);
    const indexDir = path.join(dir, 'index');
    const writer = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir), create: {} });
    await writer.addDocuments(corpus(30, 9));
    await writer.close();
    const want = await freshHits(indexDir, path.join(dir, 'scratch'));
    await cliLikeSearch(indexDir);
    const file = path.join(indexDir, BM25_FILE);
    // another user's file (umask 077) in a folder everyone may write: the search runs as 'nobody'
    chmodSync(dir, 0o755);
    chmodSync(indexDir, 0o777);
    chmodSync(file, 0o600);
    const saved = statSync(file);
    const got = searchAsNobody(indexDir);
    chmodSync(indexDir, 0o755);
    assert.deepEqual(got.hits, JSON.parse(JSON.stringify(want)));
    assert.equal(got.builds, 1);
    assert.equal(got.notes.length, 1, got.notes.join('\n'));
    assert.match(got.notes[0]!, /bm25\.bin could not be read \(EACCES.*\); BM25 was rebuilt .* left as it is/);
    assert.deepEqual([statSync(file).ino, statSync(file).mtimeMs], [saved.ino, saved.mtimeMs]);
  } finally {
    cleanup();
  }
});

test('CLI search --hybrid saves bm25.bin once and reads it at the next call; an index run keeps it', async () => {
  const { dir, cleanup } = tempDir('bm25-cli');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    const idx = path.join(dir, 'idx');
    writeJsonl(input, corpus(30, 8));
    assert.equal(runCli(['index', '--model', model, '--input', input, '--out', idx]).status, 0);
    const file = path.join(idx, BM25_FILE);
    assert.ok(!existsSync(file));
    const search = (): unknown => {
      const r = runCli(['search', '--index', idx, '--json', '-k', '10', '--hybrid', 'protein cell gene']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
      return (JSON.parse(r.stdout) as { data: unknown }).data;
    };
    const first = search();
    const saved = statSync(file);
    // a build saves a new file (a new inode, renamed into place); a read leaves the file as it was
    assert.deepEqual(search(), first);
    assert.deepEqual([statSync(file).ino, statSync(file).mtimeMs], [saved.ino, saved.mtimeMs]);
    writeJsonl(input, [...corpus(30, 8), ...corpus(5, 21).map((d) => ({ ...d, id: `more-${d.id}` }))]);
    assert.equal(runCli(['index', '--input', input, '--out', idx]).status, 0);
    const kept = statSync(file);
    assert.notEqual(kept.ino, saved.ino, 'the index run saved what it followed');
    search();
    assert.equal(statSync(file).ino, kept.ino, 'the search after the index run read the file');
  } finally {
    cleanup();
  }
});

test('processes building and saving bm25.bin at once answer alike and leave a file the next one reads', async () => {
  const { dir, cleanup } = tempDir('bm25-race');
  try {
    const model = await tinyModelDir(dir);
    const input = path.join(dir, 'docs.jsonl');
    const idx = path.join(dir, 'idx');
    writeJsonl(input, corpus(2000, 2));
    assert.equal(runCli(['index', '--model', model, '--input', input, '--out', idx]).status, 0);
    const args = ['search', '--index', idx, '--json', '-k', '10', '--hybrid', 'protein cell gene'];
    const runs = await Promise.all(Array.from({ length: 6 }, () => runCliAsync(args)));
    // each read a whole file, or none and built: never half of one (a damaged file would be said on stderr)
    for (const r of runs) assert.deepEqual([r.status, r.stderr], [0, '']);
    const answers = runs.map((r) => JSON.stringify((JSON.parse(r.stdout) as { data: unknown }).data));
    assert.equal(new Set(answers).size, 1);
    const reader = await SearchIndex.open(idx);
    try {
      await reader.searchVector(vector(reader.dimension, 1), { hybrid: true, queryText: 'protein' });
      assert.deepEqual([reader.bm25Builds, reader.bm25Loads, reader.notes], [0, 1, []]);
    } finally {
      await reader.close();
    }
  } finally {
    cleanup();
  }
});
