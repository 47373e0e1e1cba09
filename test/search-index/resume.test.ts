import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { contentHash, documentText } from '../../src/search-index/document-source.js';
import { IndexError } from '../../src/search-index/index-error.js';
import { runCli } from '../helpers/cli.js';
import { LockThread } from '../helpers/lock-thread.js';
import { GENERATION_FILE } from '../../src/search-index/usearch-store.js';
import { corpus, indexWithCopiedTable, tempDir, tinyBackend, tinyModelDir, writeJsonl } from './fixtures.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'resume-child.js');

/**
 * Runs the child; with killAfter, SIGKILLs it once that many chunks are reported. Resolves with the chunk lines seen.
 */
function runChild(args: string[], killAfter?: number): Promise<{ lines: string[]; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    let buf = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (killAfter !== undefined && lines.filter((l) => l.startsWith('chunk')).length === killAfter)
          p.kill('SIGKILL');
      }
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ lines, killed: true });
      else if (code === 0) resolve({ lines, killed: false });
      else reject(new Error(`child exited with ${code}`));
    });
  });
}

test('index → SIGKILL mid-run → resume gives the same index as an uninterrupted run', async () => {
  const { dir, cleanup } = tempDir('resume');
  try {
    const modelDir = await tinyModelDir(dir);
    const n = 48,
      chunk = 4;
    const full = path.join(dir, 'full'),
      resumed = path.join(dir, 'resumed');
    const a = await runChild([modelDir, full, String(n), String(chunk), '0']);
    assert.equal(a.lines.at(-1), 'done');
    const k = await runChild([modelDir, resumed, String(n), String(chunk), '40'], 3);
    assert.ok(k.killed, 'the run was killed');
    assert.ok(!k.lines.includes('done'));

    const backend = await tinyBackend(modelDir);
    const partial = await SearchIndex.open(resumed, { backend });
    const mid = partial.stats();
    assert.ok(mid.documents >= 3 * chunk && mid.documents < n, `killed mid-run: ${mid.documents} of ${n} indexed`);
    assert.equal(mid.documents % chunk, 0, 'only whole chunks are committed');
    assert.equal(mid.pending, n - mid.documents, 'the rest is pending');
    await partial.close();

    const r = await runChild([modelDir, resumed, String(n), String(chunk), '0']);
    assert.equal(r.lines.at(-1), 'done');
    assert.equal(
      r.lines.filter((l) => l.startsWith('chunk')).length,
      (n - mid.documents) / chunk,
      'the resumed run encodes only what was left',
    );

    const A = await SearchIndex.open(full, { backend });
    const B = await SearchIndex.open(resumed, { backend });
    assert.deepEqual(B.documentIds(), A.documentIds());
    assert.equal(B.stats().pending, 0);
    for (const id of A.documentIds()) {
      const va = A.getDocument(id)!.vector!,
        vb = B.getDocument(id)!.vector!;
      assert.deepEqual(Buffer.from(vb.buffer), Buffer.from(va.buffer), `vector of ${id} is bit-exact`);
    }
    for (const q of ['protein cell', 'vaccine trial dose', 'heart', corpus(n)[17].text]) {
      const ha = (await A.search(q, { k: 10 })).hits,
        hb = (await B.search(q, { k: 10 })).hits;
      assert.deepEqual(
        hb.map((h) => [h.id, h.score]),
        ha.map((h) => [h.id, h.score]),
      );
    }
    await A.close();
    await B.close();
  } finally {
    cleanup();
  }
});

test('a vector store that lags docs.sqlite (kill between the two commits) is rebuilt on open', async () => {
  const { dir, cleanup } = tempDir('lag');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const indexDir = path.join(dir, 'index');
    let index = await SearchIndex.open(indexDir, { backend, create: {} });
    await index.addDocuments(corpus(12), { chunkSize: 4 });
    const want = (await index.search('gene', { k: 12 })).hits.map((h) => h.id);
    // simulate the crash window: docs.sqlite moves on (a delete), the HNSW file is not rewritten
    const { generation } = index.docs.delete(['d001']);
    assert.notEqual((await index.store.committed()).generation, generation);
    await index.close();
    index = await SearchIndex.open(indexDir, { backend, writable: true });
    assert.equal((await index.store.committed()).generation, index.docs.generation());
    assert.equal(await index.store.size(), 11);
    assert.deepEqual(
      (await index.search('gene', { k: 12 })).hits.map((h) => h.id),
      want.filter((id) => id !== 'd001'),
    );
    await index.close();
  } finally {
    cleanup();
  }
});

/** The id of the top hit through the vector store (not exact search) for each vector, as `index` ranks it. */
async function storeTopIds(index: SearchIndex, vectors: readonly Float32Array[]): Promise<(string | undefined)[]> {
  return Promise.all(vectors.map(async (v) => (await index.searchVector(v, { k: 1, exact: false }))[0]?.id));
}

test(
  "another index's docs.sqlite copied in at the same generation has the HNSW graph rebuilt, not trusted; a " +
    'graph committed without a table id (an older search-r3) is trusted, and records the id at its next commit',
  async () => {
    const { dir, cleanup } = tempDir('copied-table');
    try {
      const backend = await tinyBackend(await tinyModelDir(dir));
      const { indexDir, docs } = await indexWithCopiedTable(dir, backend, {});
      const vectors = await backend.embedDocuments(docs.map(documentText));
      const ids = docs.map((d) => d.id);
      const reader = await SearchIndex.open(indexDir, { backend });
      assert.deepEqual(await storeTopIds(reader, vectors), ids);
      await reader.close();
      const writer = await SearchIndex.open(indexDir, { backend, writable: true });
      assert.deepEqual(await storeTopIds(writer, vectors), ids);
      const table = writer.docs.identity();
      assert.equal((await writer.store.committed()).table, table);
      await writer.close();

      const recordFile = path.join(indexDir, GENERATION_FILE);
      const record = JSON.parse(readFileSync(recordFile, 'utf8')) as Record<string, unknown>;
      assert.equal(record.table, table);
      delete record.table;
      writeFileSync(recordFile, JSON.stringify(record));
      const old = await SearchIndex.open(indexDir, { backend, writable: true });
      assert.equal((await old.store.committed()).table, undefined, 'trusted as it is: not rebuilt');
      assert.deepEqual(await storeTopIds(old, vectors), ids);
      await old.checkStoreWritable();
      await old.close();
      assert.equal((JSON.parse(readFileSync(recordFile, 'utf8')) as Record<string, unknown>).table, table);
    } finally {
      cleanup();
    }
  },
);

test('an update an older version left pending in place (before staged rows) is finished by the next run', async () => {
  const { dir, cleanup } = tempDir('legacy-pending');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const indexDir = path.join(dir, 'index');
    const docs = corpus(12);
    let index = await SearchIndex.open(indexDir, { backend, create: {} });
    await index.addDocuments(docs);
    await index.close();
    // what an older version left when killed mid-update: changed rows pending in place, their vectors gone
    // (a table from before row checksums, so that the test need not write them)
    const changed = docs.slice(0, 4).map((d) => ({ ...d, text: `CHANGED ${d.text}` }));
    const db = new Database(path.join(indexDir, 'docs.sqlite'));
    db.exec('ALTER TABLE docs DROP COLUMN crc; ALTER TABLE docs DROP COLUMN vhash; DROP TABLE staged;');
    const set = db.prepare("UPDATE docs SET text = ?, hash = ?, status = 'pending', vector = NULL WHERE id = ?");
    for (const d of changed) set.run(d.text, contentHash(d), d.id);
    db.close();

    index = await SearchIndex.open(indexDir, { backend, writable: true });
    assert.deepEqual(index.stats(), { documents: 8, pending: 4, outdated: 0, generation: index.docs.generation() });
    const r = await index.addDocuments([...changed, ...docs.slice(4)]);
    assert.deepEqual(r.counts, { added: 0, changed: 0, unchanged: 8, resumed: 4, repaired: 0 });
    assert.equal(r.encoded, 4);
    assert.equal(await index.store.size(), 12, 'the old vectors of the changed documents are gone');
    const hits = (await index.search('protein', { k: 20 })).hits;
    assert.equal(hits.length, 12);
    assert.equal(hits.filter((h) => h.text.startsWith('CHANGED ')).length, 4);
    await index.close();
  } finally {
    cleanup();
  }
});

test(
  'one writer at a time: a second writer is refused ' + 'while the first runs, and takes over once it was killed',
  async () => {
    const { dir, cleanup } = tempDir('lock');
    try {
      const modelDir = await tinyModelDir(dir);
      const indexDir = path.join(dir, 'idx');
      const backend = await tinyBackend(modelDir);
      // the child pauses 10 s after its first chunk; the parent tries to write meanwhile, then kills it
      const p = spawn(process.execPath, [child, '--child', modelDir, indexDir, '12', '4', '10000'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve) =>
        p.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('chunk 1')) resolve();
        }),
      );
      const second = await SearchIndex.open(indexDir, { backend, writable: true });
      await assert.rejects(
        second.addDocuments(corpus(2)),
        (e: unknown) =>
          e instanceof IndexError && new RegExp(`another process \\(pid ${p.pid}\\) is writing`).test(e.message),
      );
      await assert.rejects(second.deleteDocuments(['d000']), IndexError);
      assert.equal(second.stats().documents, 4, 'reading is fine meanwhile');
      // the command line is refused before it reports anything about the index (such as what is pending)
      const input = path.join(dir, 'docs.jsonl');
      writeJsonl(input, corpus(12));
      const cli = runCli(['index', '--input', input, '--out', indexDir]);
      assert.equal(cli.status, 2, cli.stderr);
      assert.match(cli.stderr, /another process \(pid \d+\) is writing to this index/);
      assert.doesNotMatch(cli.stderr, /resuming/);
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
      const r = await second.addDocuments(corpus(12));
      assert.equal(r.encoded, 8);
      await second.close();
    } finally {
      cleanup();
    }
  },
);

test(
  'one writer in one process too: a second SearchIndex writing the folder (by any name) is refused in one ' +
    'sentence, a reader beside the writer works, and once the writer is closed the folder opens for writing',
  async () => {
    const { dir, cleanup } = tempDir('lock-here');
    try {
      const backend = await tinyBackend(await tinyModelDir(dir));
      const indexDir = path.join(dir, 'idx');
      const link = path.join(dir, 'link');
      const docs = corpus(15);
      const first = await SearchIndex.open(indexDir, { backend, create: {} });
      await first.addDocuments(docs.slice(0, 5));
      symlinkSync(indexDir, link);
      const reader = await SearchIndex.open(indexDir, { backend });
      for (const name of [indexDir, link]) {
        // each keeps its own graph in memory: the last to commit would save one without the other's vectors
        const second = await SearchIndex.open(name, { backend, writable: true });
        await assert.rejects(second.addDocuments(docs.slice(10, 15)), {
          name: 'IndexError',
          message:
            `${name} is already open for writing in this process (another SearchIndex); use that instance or ` +
            `close it first.`,
        });
        await second.close();
      }
      assert.ok(existsSync(path.join(indexDir, 'write.lock')), "a refused writer's close leaves the writer's lock");
      await first.addDocuments(docs.slice(0, 10));
      assert.equal(await reader.refresh(), true);
      const [v7] = await backend.embedDocuments([documentText(docs[7])]);
      assert.equal((await reader.searchVector(v7, { k: 1, exact: false }))[0].id, docs[7].id);
      await first.close();
      await reader.close();

      // a writer in a worker thread of this process is another writer just the same; gone, it holds nothing
      const worker = await LockThread.start();
      try {
        assert.deepEqual(await worker.ask({ acquire: path.join(indexDir, 'write.lock') }), { won: true });
        const second = await SearchIndex.open(indexDir, { backend, writable: true });
        await assert.rejects(second.addDocuments(docs.slice(10, 15)), {
          name: 'IndexError',
          message:
            `${indexDir} is already open for writing in this process (another SearchIndex, in another thread); ` +
            `use that instance or close it first.`,
        });
        await second.close();
      } finally {
        await worker.terminate();
      }

      const again = await SearchIndex.open(link, { backend, writable: true });
      assert.equal((await again.addDocuments(docs)).encoded, 5);
      await again.close();
      const reopened = await SearchIndex.open(indexDir, { backend });
      assert.deepEqual(reopened.notes, []);
      assert.equal(await reopened.store.size(), 15);
      for (const d of docs) {
        const [v] = await backend.embedDocuments([documentText(d)]);
        assert.equal((await reopened.searchVector(v, { k: 1, exact: false }))[0].id, d.id);
      }
      await reopened.close();
    } finally {
      cleanup();
    }
  },
);
