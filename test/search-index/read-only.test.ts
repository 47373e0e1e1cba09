/**
 * Reading an index never writes to it; what is missing is said in one sentence; a damaged HNSW file never
 * reaches usearch (which trusts its bytes and aborts the process on garbage).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { IndexError } from '../../src/search-index/index-error.js';
import { documentText } from '../../src/search-index/document-source.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { folderDigest } from '../helpers/damage.js';
import { corpus, tempDir, tinyBackend, tinyModelDir, writeJsonl } from './fixtures.js';

test('search on an index whose docs.sqlite is missing or empty says so and leaves every file as it was', async () => {
  const { dir, cleanup } = tempDir('ro');
  try {
    const model = await tinyModelDir(dir);
    const idx = path.join(dir, 'idx');
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(12));
    assert.equal(runCli(['index', '--model', model, '--input', input, '--out', idx]).status, 0);
    const manifest = readFileSync(path.join(idx, 'index.json'), 'utf8');
    for (const state of ['missing', 'empty']) {
      if (state === 'missing') rmSync(path.join(idx, 'docs.sqlite'));
      else writeFileSync(path.join(idx, 'docs.sqlite'), '');
      const before = folderDigest(idx);
      const r = runCli(['search', '--index', idx, 'protein']);
      assert.equal(r.status, 2, r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.match(
        r.stderr,
        new RegExp(
          `docs\\.sqlite is ${state}: the index has lost its documents; rebuild it with 'search-r3 index ` +
            `--input <your documents> --out `,
        ),
      );
      assert.deepEqual(folderDigest(idx), before, 'nothing created, emptied or rewritten');
      assert.equal(
        readFileSync(path.join(idx, 'index.json'), 'utf8'),
        manifest,
        'index.json still counts 12 documents',
      );
    }
    // a write rebuilds it: every document is encoded again
    const w = runCli(['index', '--input', input, '--out', idx]);
    assert.equal(w.status, 0, w.stderr);
    assert.match(w.stderr, /docs\.sqlite was empty; the index is rebuilt/);
    assert.match(w.stdout, /12 documents indexed \(12 encoded now, 0 unchanged\)/);
  } finally {
    cleanup();
  }
});

test('an index run killed before its first commit (docs.sqlite empty, no index.json) left no index', async () => {
  const { dir, cleanup } = tempDir('ro-unborn');
  try {
    const idx = path.join(dir, 'idx');
    mkdirSync(idx);
    writeFileSync(path.join(idx, 'docs.sqlite'), '');
    const before = folderDigest(idx);
    // as serve and the package open an index (search says so before it opens one)
    await assert.rejects(SearchIndex.open(idx), {
      name: IndexError.name,
      message:
        `${path.join(idx, 'index.json')} is missing, and ${path.join(idx, 'docs.sqlite')} is empty; ` +
        `this is not a search-r3 index (${BUILD_ONE}).`,
    });
    assert.deepEqual(folderDigest(idx), before, 'nothing created or rewritten');
  } finally {
    cleanup();
  }
});

/** How SearchIndex.open says to make an index: a program's author is told the option as well as the command. */
const BUILD_ONE = "build one with 'search-r3 index', or in code with SearchIndex.open(dir, { backend, create: {} })";

test('a folder with no index: a program is told the create option and the command, the CLI the command', async () => {
  const { dir, cleanup } = tempDir('ro-none');
  try {
    const idx = path.join(dir, 'notes');
    mkdirSync(idx);
    writeFileSync(path.join(idx, 'readme.txt'), 'not an index\n');
    const missing = `${path.join(idx, 'index.json')} is missing; this is not a search-r3 index`;
    await assert.rejects(SearchIndex.open(idx), { name: IndexError.name, message: `${missing} (${BUILD_ONE}).` });
    const r = runCli(['search', '--index', idx, 'a question']);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `search-r3: ${missing} (build one with 'search-r3 index').\n`);
  } finally {
    cleanup();
  }
});

test('a writable open of a folder with no index is refused and leaves the folder byte for byte as it was', async () => {
  const { dir, cleanup } = tempDir('ro-refused-writer');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const manifest = (idx: string) => path.join(idx, 'index.json');
    const docs = (idx: string) => path.join(idx, 'docs.sqlite');
    const cases: [string, (idx: string) => void, (idx: string) => string][] = [
      ['empty', () => {}, (idx) => `${manifest(idx)} is missing; this is not a search-r3 index`],
      [
        'notes',
        (idx) => writeFileSync(path.join(idx, 'readme.txt'), 'not an index\n'),
        (idx) => `${manifest(idx)} is missing; this is not a search-r3 index`,
      ],
      [
        'unborn',
        (idx) => writeFileSync(docs(idx), ''),
        (idx) => `${manifest(idx)} is missing, and ${docs(idx)} is empty; this is not a search-r3 index`,
      ],
      [
        'damaged',
        (idx) => writeFileSync(manifest(idx), '{"format": "search-r3'),
        (idx) =>
          `${manifest(idx)} is damaged: not valid JSON, and ${docs(idx)} is missing; this is not a search-r3 index`,
      ],
    ];
    for (const [name, fill, message] of cases) {
      const idx = path.join(dir, name);
      mkdirSync(idx);
      fill(idx);
      const before = folderDigest(idx);
      for (const opts of [{ backend, writable: true }, { writable: true }]) {
        await assert.rejects(SearchIndex.open(idx, opts), {
          name: IndexError.name,
          message: `${message(idx)} (${BUILD_ONE}).`,
        });
        assert.deepEqual(folderDigest(idx), before, `${name}: no docs.sqlite (or its journal) created or rewritten`);
      }
      // the CLI opens such a folder for writing too
      const r = runCli(['index', '--out', idx, '--delete', 'doc-1']);
      assert.equal(r.status, 2, r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.deepEqual(folderDigest(idx), before, `${name}: index --delete left the folder as it was`);
    }
    // nor is a folder that is not there made
    const gone = path.join(dir, 'gone');
    await assert.rejects(SearchIndex.open(gone, { backend, writable: true }), {
      name: IndexError.name,
      message: `${manifest(gone)} is missing; this is not a search-r3 index (${BUILD_ONE}).`,
    });
    assert.equal(existsSync(gone), false);
  } finally {
    cleanup();
  }
});

test("an index run killed while it creates docs.sqlite's tables leaves no index, not a damaged one", async () => {
  const { dir, cleanup } = tempDir('ro-schema');
  try {
    const idx = path.join(dir, 'idx');
    mkdirSync(idx);
    const file = path.join(idx, 'docs.sqlite');
    // the kill lands after the first of the statements that make the tables
    const table = pathToFileURL(path.join(repoRoot, 'dist/src/search-index/document-table.js')).href;
    const code = `import Database from 'better-sqlite3';
      const exec = Database.prototype.exec;
      Database.prototype.exec = function (sql) {
        if (!sql.includes('CREATE TABLE IF NOT EXISTS docs')) return exec.call(this, sql);
        exec.call(this, sql.split(';')[0]);
        process.kill(process.pid, 'SIGKILL');
      };
      const { DocumentTable } = await import(${JSON.stringify(table)});
      DocumentTable.openForWriting(${JSON.stringify(file)});`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: repoRoot });
    assert.equal(r.signal, 'SIGKILL', String(r.stderr));
    await assert.rejects(
      SearchIndex.open(idx),
      /index\.json is missing, and .*docs\.sqlite is empty; this is not a search-r3/,
    );
  } finally {
    cleanup();
  }
});

/** What a writer killed inside a transaction leaves: uncommitted pages in `file` and its journal of the old ones. */
function killMidTransaction(file: string): void {
  const code = `const db = new (require('better-sqlite3'))(${JSON.stringify(file)});
    db.pragma('cache_size = 1'); // changed pages spill into the file before the commit
    db.exec('BEGIN IMMEDIATE');
    db.exec("UPDATE docs SET text = text || ' unfinished'");
    process.kill(process.pid, 'SIGKILL');`;
  spawnSync(process.execPath, ['-e', code], { cwd: repoRoot });
  assert.ok(existsSync(`${file}-journal`), 'the killed write left its journal');
}

test('a reader rolls back the unfinished write of a killed index run, unless an index run holds the lock', async () => {
  const { dir, cleanup } = tempDir('ro-journal');
  try {
    const model = await tinyModelDir(dir);
    const idx = path.join(dir, 'idx');
    const input = path.join(dir, 'docs.jsonl');
    writeJsonl(input, corpus(40));
    assert.equal(runCli(['index', '--model', model, '--input', input, '--out', idx]).status, 0);
    const query = ['--json', '-k', '40', 'protein'];
    const want = JSON.parse(runCli(['search', '--index', idx, ...query]).stdout) as { data: unknown[] };
    const reader = await SearchIndex.open(idx);
    killMidTransaction(path.join(idx, 'docs.sqlite'));
    const held = path.join(dir, 'held');
    cpSync(idx, held, { recursive: true });

    // no index run is writing: the reader restores the last commit and answers as before
    const r = runCli(['search', '--index', idx, ...query]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { data: unknown[] }).data, want.data);
    assert.ok(!existsSync(path.join(idx, 'docs.sqlite-journal')));
    // so does a reader (a server) that was open when the writer was killed
    killMidTransaction(path.join(idx, 'docs.sqlite'));
    assert.equal(reader.stats().documents, 40);
    assert.ok(!existsSync(path.join(idx, 'docs.sqlite-journal')));
    await reader.close();

    // a live process holds the write lock: the journal is its business, and the reader says what to do
    const writer = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    try {
      writeFileSync(path.join(held, 'write.lock'), `${writer.pid}\n`);
      const before = folderDigest(held);
      const refused = runCli(['search', '--index', held, ...query]);
      assert.equal(refused.status, 2, refused.stderr);
      assert.match(refused.stderr, /docs\.sqlite holds an unfinished write of a process that was killed/);
      assert.deepEqual(folderDigest(held), before, 'nothing rolled back');
    } finally {
      writer.kill();
    }
  } finally {
    cleanup();
  }
});

test('a read-only open creates nothing, not even SQLite journal files, and refuses writes', async () => {
  const { dir, cleanup } = tempDir('ro2');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const idx = path.join(dir, 'idx');
    const writer = await SearchIndex.open(idx, { backend, create: {} });
    await writer.addDocuments(corpus(10));
    await writer.close();
    const before = folderDigest(idx);
    const reader = await SearchIndex.open(idx, { backend });
    assert.equal(reader.readOnly, true);
    assert.equal((await reader.search('gene', { k: 3, hybrid: true })).hits.length, 3);
    await assert.rejects(
      reader.addDocuments(corpus(2)),
      (e: unknown) => e instanceof IndexError && /opened read-only/.test(e.message),
    );
    await assert.rejects(reader.deleteDocuments(['d000']), IndexError);
    await reader.close();
    assert.deepEqual(folderDigest(idx), before);
  } finally {
    cleanup();
  }
});

test('a damaged vectors.usearch is not loaded: the HNSW graph rebuilt from docs.sqlite ranks exactly', async () => {
  const { dir, cleanup } = tempDir('hnsw');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const idx = path.join(dir, 'idx');
    const docs = corpus(60);
    // a search beam wider than the corpus: any connected graph then ranks exactly, whichever way it was built
    const writer = await SearchIndex.open(idx, { backend, create: { hnsw: { expansionSearch: 200 } } });
    await writer.addDocuments(docs, { documentsPerCommit: 16 });
    const probes = await backend.embedDocuments([0, 17, 42].map((i) => documentText(docs[i])));
    const want = await Promise.all(probes.map((v) => writer.searchVector(v, { k: 10, exact: true })));
    await writer.close();
    const file = path.join(idx, 'vectors.usearch');
    // the file usearch itself would take: right size, random content (std::bad_alloc, exit 134, before checksums)
    writeFileSync(file, randomBytes(statSync(file).size));
    const before = folderDigest(idx);
    // one thread: a graph built on several differs run to run, and HNSW may leave a node unreachable
    const reader = await SearchIndex.open(idx, { backend, threads: 1 });
    assert.equal(reader.notes.length, 1);
    assert.match(reader.notes[0], /vectors\.usearch is damaged .* rebuilt in memory from docs\.sqlite/);
    for (let i = 0; i < probes.length; i++) {
      const got = await reader.searchVector(probes[i], { k: 10, exact: false });
      assert.deepEqual(
        got.map((h) => h.id),
        want[i].map((h) => h.id),
      );
    }
    await reader.close();
    assert.deepEqual(folderDigest(idx), before, 'the reader rebuilt in memory only');
    // a writer rewrites the file; the next reader loads it without a note
    const repair = await SearchIndex.open(idx, { backend, writable: true, threads: 1 });
    assert.match(repair.notes[0], /rebuilding it from docs\.sqlite/);
    await repair.close();
    const again = await SearchIndex.open(idx, { backend });
    assert.deepEqual(again.notes, []);
    assert.deepEqual(
      (await again.searchVector(probes[1], { k: 10, exact: false })).map((h) => h.id),
      want[1].map((h) => h.id),
    );
    await again.close();
  } finally {
    cleanup();
  }
});

test(
  'a lost index.json is recovered from the copy in ' + 'docs.sqlite; an index without that copy is refused by name',
  async () => {
    const { dir, cleanup } = tempDir('man');
    try {
      const backend = await tinyBackend(await tinyModelDir(dir));
      const idx = path.join(dir, 'idx');
      const w = await SearchIndex.open(idx, { backend, create: {} });
      await w.addDocuments(corpus(8));
      await w.close();
      const text = readFileSync(path.join(idx, 'index.json'), 'utf8');
      // a flipped digit still parses as JSON: the checksum tells
      writeFileSync(path.join(idx, 'index.json'), text.replace('"dimension": 32', '"dimension": 33'));
      const r = await SearchIndex.open(idx, { backend });
      assert.match(
        r.notes[0],
        /index\.json is damaged: its content does not match its checksum; used the copy kept in docs\.sqlite/,
      );
      assert.equal(r.dimension, 32);
      assert.equal(r.info.counts.documents, 8);
      await r.close();
      const repaired = await SearchIndex.open(idx, { backend, writable: true });
      await repaired.close();
      assert.deepEqual(JSON.parse(readFileSync(path.join(idx, 'index.json'), 'utf8')).dimension, 32);
    } finally {
      cleanup();
    }
  },
);

/** Takes the index in `idx` back to the format before checksums: WAL journal, no row checksums, no manifest copy. */
function makeLegacy(idx: string): void {
  const db = new Database(path.join(idx, 'docs.sqlite'));
  db.exec('ALTER TABLE docs DROP COLUMN crc; ALTER TABLE docs DROP COLUMN vhash; DROP TABLE info;');
  db.pragma('journal_mode = WAL');
  db.close();
}

test(
  'an index written before checksums (WAL journal, no row checksums, ' +
    'no manifest copy) is read as it is, then upgraded by a write',
  async () => {
    const { dir, cleanup } = tempDir('legacy');
    try {
      const backend = await tinyBackend(await tinyModelDir(dir));
      const idx = path.join(dir, 'idx');
      const docs = corpus(30);
      const w = await SearchIndex.open(idx, { backend, create: { hnsw: { expansionSearch: 200 } } });
      await w.addDocuments(docs);
      const [v] = await backend.embedDocuments([documentText(docs[9])]);
      const want = (await w.searchVector(v, { k: 5, exact: true })).map((h) => h.id);
      await w.close();
      // take the folder back to the earlier format
      makeLegacy(idx);
      const manifest = JSON.parse(readFileSync(path.join(idx, 'index.json'), 'utf8')) as Record<string, unknown>;
      delete manifest.checksum;
      writeFileSync(path.join(idx, 'index.json'), JSON.stringify(manifest, null, 2));
      const record = JSON.parse(readFileSync(path.join(idx, 'vectors.generation.json'), 'utf8')) as {
        generation: number;
      };
      writeFileSync(path.join(idx, 'vectors.generation.json'), JSON.stringify({ generation: record.generation }));

      const old = await SearchIndex.open(idx, { backend });
      assert.match(old.notes.join(' '), /vectors\.usearch has no checksum \(it was written by an older search-r3\)/);
      assert.deepEqual(
        (await old.searchVector(v, { k: 5, exact: false })).map((h) => h.id),
        want,
      );
      assert.equal(want[0], docs[9].id);
      await old.close();

      const upgrade = await SearchIndex.open(idx, { backend, writable: true });
      assert.deepEqual(upgrade.docs.damagedIds(), []);
      await upgrade.close();
      const upgraded = await SearchIndex.open(idx, { backend });
      assert.deepEqual(upgraded.notes, []);
      assert.deepEqual(
        (await upgraded.searchVector(v, { k: 5, exact: false })).map((h) => h.id),
        want,
      );
      await upgraded.close();
      // the upgrade wrote the manifest copy: index.json can now be lost
      rmSync(path.join(idx, 'index.json'));
      const recovered = await SearchIndex.open(idx, { backend });
      assert.match(recovered.notes[0], /index\.json is missing; used the copy kept in docs\.sqlite/);
      await recovered.close();
      const rewriter = await SearchIndex.open(idx, { backend, writable: true });
      assert.match(rewriter.notes[0], /^\S+index\.json is missing; rewrote it from the copy kept in docs\.sqlite\.$/);
      await rewriter.close();
      assert.ok(existsSync(path.join(idx, 'index.json')), 'a writer rewrote index.json');
    } finally {
      cleanup();
    }
  },
);

test('a writer refused for its model or its vectors leaves the folder byte for byte as it was', async () => {
  const { dir, cleanup } = tempDir('refused-writer');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const other = await tinyBackend(await tinyModelDir(dir, 99));
    const built = path.join(dir, 'built');
    const w = await SearchIndex.open(built, { backend, create: {} });
    await w.addDocuments(corpus(6));
    await w.close();
    const refused = async (idx: string, opts: Parameters<typeof SearchIndex.open>[1], why: RegExp): Promise<void> => {
      const before = folderDigest(idx);
      await assert.rejects(SearchIndex.open(idx, opts), (e: unknown) => e instanceof IndexError && why.test(e.message));
      assert.deepEqual(folderDigest(idx), before, `${idx}: nothing upgraded, rewritten or left beside the files`);
    };
    const mixed = /the index was built with model sha256:\w+ .* vectors from different models cannot be mixed/;
    const cases: { name: string; legacy: boolean; lost: boolean }[] = [
      { name: 'current', legacy: false, lost: false },
      { name: 'current-lost', legacy: false, lost: true },
      { name: 'legacy', legacy: true, lost: false },
      { name: 'legacy-lost', legacy: true, lost: true },
    ];
    for (const c of cases) {
      const idx = path.join(dir, c.name);
      cpSync(built, idx, { recursive: true });
      if (c.legacy) makeLegacy(idx);
      if (c.lost) rmSync(path.join(idx, 'index.json'));
      if (c.legacy && c.lost) {
        // its model is unknown: refused whichever model asks
        await refused(idx, { backend, writable: true }, /keeps no copy of it .* the model of its vectors is unknown/);
        continue;
      }
      await refused(idx, { backend: other, writable: true }, mixed);
      await refused(idx, { backend: other, create: {} }, mixed);
      await refused(idx, { backend, create: { dtype: 'f16' } }, /the index stores f32 vectors, not f16/);
      if (c.legacy) assert.equal(existsSync(path.join(idx, 'docs.sqlite-wal')), false, 'no WAL file left');
    }
  } finally {
    cleanup();
  }
});

test("a reader between a commit's vectors.usearch and its record waits for the record; alone: damage", async () => {
  const { dir, cleanup } = tempDir('ro-commit');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const idx = path.join(dir, 'idx');
    const docs = corpus(20);
    const index = await SearchIndex.open(idx, { backend, create: {} });
    await index.addDocuments(docs.slice(0, 10));
    const recordFile = path.join(idx, 'vectors.generation.json');
    const older = readFileSync(recordFile);
    await index.addDocuments(docs.slice(10));
    await index.close();
    const newer = readFileSync(recordFile);
    // the new file with the old record: as a writer leaves it for a moment between its rename and the record
    writeFileSync(recordFile, older);
    const writer = spawn(process.execPath, [
      '-e',
      `setTimeout(() => require('node:fs').writeFileSync(${JSON.stringify(recordFile)}, ${JSON.stringify(
        newer.toString(),
      )}), 150)`,
    ]);
    await new Promise((r) => writer.on('spawn', r));
    const reader = await SearchIndex.open(idx, { backend });
    assert.deepEqual(reader.notes, [], 'the record followed: nothing is damaged');
    await reader.close();
    await new Promise((r) => writer.on('exit', r));
    writeFileSync(recordFile, older); // and when no record follows, the file is damaged
    const alone = await SearchIndex.open(idx, { backend });
    assert.match(alone.notes.join(' '), /vectors\.usearch is damaged/);
    await alone.close();
  } finally {
    cleanup();
  }
});
