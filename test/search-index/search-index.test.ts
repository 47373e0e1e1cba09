import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  type CreateIndexOptions,
  type OpenIndexOptions,
  type RankOptions,
  SearchIndex,
} from '../../src/search-index/search-index.js';
import { type SourceDocument, documentText } from '../../src/search-index/document-source.js';
import { IndexError } from '../../src/search-index/index-error.js';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import { MANIFEST_FILE, type VectorDtype, sealManifest, unsealManifest } from '../../src/search-index/manifest.js';
import { UsearchStore, exactCosineSearch } from '../../src/search-index/usearch-store.js';
import { assertSameVectors, corpus, tempDir, tinyBackend, tinyModelDir } from './fixtures.js';
import { Document } from '@langchain/core/documents';
import Database from 'better-sqlite3';
import { showValue } from '../../src/io/option-checks.js';
import { SearchR3Embeddings } from '../../src/client/langchain-embeddings.js';
import { SearchR3VectorStore } from '../../src/client/langchain-vectorstore.js';

test('indexed vectors equal in-process embeddings, and search finds each document by its own text', async () => {
  const { dir, cleanup } = tempDir('idx');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const docs = corpus(30);
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    const r = await index.addDocuments(docs, { chunkSize: 7 });
    // the tiny tokenizer spends many tokens per word: more than half the documents exceed 128 tokens
    const cut = backend.embedder.embedDocuments(docs.map(documentText)).stats.truncatedTexts;
    assert.ok(cut > 0 && cut < 30);
    assert.deepEqual(r, {
      staged: 30,
      encoded: 30,
      counts: { added: 30, changed: 0, unchanged: 0, resumed: 0, repaired: 0 },
      truncated: cut,
    });
    const direct = await backend.embedDocuments(docs.map(documentText));
    assertSameVectors(
      docs.map((d) => index.getDocument(d.id)!.vector!),
      direct,
    );
    // a document's own vector is its nearest neighbour (score 1)
    for (const i of [0, 11, 29]) {
      const hits = await index.searchVector(direct[i], { k: 3 });
      assert.equal(hits[0].id, docs[i].id);
      assert.ok(Math.abs(hits[0].score - 1) < 1e-4);
      assert.deepEqual(hits[0].metadata, { n: i });
    }
    const res = await index.search('protein cell', { k: 5 });
    assert.equal(res.hits.length, 5);
    assert.ok(res.hits.every((h, j) => j === 0 || h.score <= res.hits[j - 1].score));
    await index.close();
  } finally {
    cleanup();
  }
});

test(
  'update and delete are reflected in search without ' + 'rebuilding; unchanged documents are not re-encoded',
  async () => {
    const { dir, cleanup } = tempDir('upd');
    try {
      const backend = await tinyBackend(await tinyModelDir(dir));
      const docs = corpus(20);
      const indexDir = path.join(dir, 'index');
      let index = await SearchIndex.open(indexDir, { backend, create: {} });
      await index.addDocuments(docs);
      const changed = { ...docs[3], text: 'an entirely new text about astronomy and telescopes' };
      const r = await index.addDocuments([...docs.slice(0, 3), changed, ...docs.slice(4)]);
      assert.deepEqual(r, {
        staged: 1,
        encoded: 1,
        counts: { added: 0, changed: 1, unchanged: 19, resumed: 0, repaired: 0 },
        truncated: 0,
      });
      await index.close();
      index = await SearchIndex.open(indexDir, { backend, writable: true });
      const [newVec] = await backend.embedDocuments([documentText(changed)]);
      const hits = await index.searchVector(newVec, { k: 1 });
      assert.equal(hits[0].id, changed.id);
      assert.equal(hits[0].text, changed.text);
      // the old vector of d003 no longer leads to it
      const [oldVec] = await backend.embedDocuments([documentText(docs[3])]);
      assert.ok(
        !(await index.searchVector(oldVec, { k: 20 })).some((h) => h.id === docs[3].id && Math.abs(h.score - 1) < 1e-4),
      );

      assert.deepEqual(await index.deleteDocuments(['d005', 'nope']), ['d005']);
      const [v5] = await backend.embedDocuments([documentText(docs[5])]);
      const after = await index.searchVector(v5, { k: 25 });
      assert.equal(after.length, 19);
      assert.ok(!after.some((h) => h.id === 'd005'));
      assert.equal(index.stats().documents, 19);
      assert.equal(index.info.counts.documents, 19);
      await index.close();
    } finally {
      cleanup();
    }
  },
);

test(
  'an update stopped between commits leaves every document searchable, changed ones as they were; a rerun ' +
    'finishes it, and a change given back before it was encoded is dropped',
  async () => {
    const { dir, cleanup } = tempDir('upd-stop');
    try {
      const backend = await tinyBackend(await tinyModelDir(dir));
      const docs = corpus(20);
      const changed = docs.map((d) => ({ ...d, text: `CHANGED ${d.text}` }));
      const indexDir = path.join(dir, 'index');
      const writer = await SearchIndex.open(indexDir, { backend, create: {} });
      await writer.addDocuments(docs);
      // the update dies after its second commit of 4 documents
      await assert.rejects(
        writer.addDocuments(changed, {
          documentsPerCommit: 4,
          onChunkCommitted: (p) => {
            if (p.chunks === 2) throw new Error('killed');
          },
        }),
      );
      const reader = await SearchIndex.open(indexDir, { backend });
      assert.deepEqual(reader.stats(), { documents: 20, pending: 12, outdated: 12, generation: 3 });
      const [query] = await backend.embedDocuments([documentText(docs[0])]);
      const hits = await reader.searchVector(query, { k: 50 });
      assert.equal(hits.length, 20, 'every document is searchable');
      const updated = hits.filter((h) => h.text.startsWith('CHANGED ')).map((h) => h.id);
      assert.equal(updated.length, 8, 'the two committed chunks are searched with their new text');
      for (const d of docs.filter((x) => !updated.includes(x.id))) {
        const [old] = await backend.embedDocuments([documentText(d)]);
        const [top] = await reader.searchVector(old, { k: 1 });
        assert.equal(top.id, d.id, `${d.id} is found by its old vector`);
        assert.equal(top.text, d.text, `${d.id} keeps its old text until its new vector is committed`);
      }

      const back = await writer.addDocuments(docs);
      assert.deepEqual(back.counts, { added: 0, changed: 8, unchanged: 12, resumed: 0, repaired: 0 });
      assert.equal(back.encoded, 8, 'only the committed changes are encoded back');
      const r = await writer.addDocuments(changed);
      assert.equal(r.encoded, 20);
      assert.ok(await reader.refresh());
      const all = await reader.searchVector(query, { k: 50 });
      assert.equal(all.filter((h) => h.text.startsWith('CHANGED ')).length, 20);
      assert.equal(reader.stats().pending, 0);
      await reader.close();
      await writer.close();
    } finally {
      cleanup();
    }
  },
);

test('an index refuses vectors from another model', async () => {
  const { dir, cleanup } = tempDir('mix');
  try {
    const a = await tinyBackend(await tinyModelDir(dir, 7));
    const b = await tinyBackend(await tinyModelDir(dir, 8));
    const indexDir = path.join(dir, 'index');
    const index = await SearchIndex.open(indexDir, { backend: a, create: {} });
    await index.addDocuments(corpus(3));
    await index.close();
    await assert.rejects(
      SearchIndex.open(indexDir, { backend: b }),
      (e: unknown) => e instanceof IndexError && /index\.json: the index was built with model sha256:/.test(e.message),
    );
    await assert.rejects(SearchIndex.open(path.join(dir, 'nothing'), { backend: a }), /index\.json is missing/);
  } finally {
    cleanup();
  }
});

test('hybrid search fuses BM25 and dense rankings', async () => {
  const { dir, cleanup } = tempDir('hyb');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const docs = corpus(25);
    docs.push({ id: 'zebra', title: 'zebra', text: 'zebra stripes zebra savanna' });
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    await index.addDocuments(docs);
    const res = await index.search('zebra savanna', { k: 5, hybrid: true });
    // the random model knows nothing; BM25 alone puts the only matching document first, and fusion keeps it there
    assert.equal(res.hits[0].id, 'zebra');
    assert.ok(res.hits[0].bm25Score! > 0);
    assert.equal(res.hits.length, 5);
    // a k whose 4k lists run past 2^53 (the CLI's -k takes any safe integer) ranks every document
    const all = await index.search('zebra savanna', { k: Number.MAX_SAFE_INTEGER, hybrid: true });
    assert.equal(all.hits.length, docs.length);
    await index.close();
  } finally {
    cleanup();
  }
});

test("another program's index.json or docs.sqlite in the folder is refused, and the file is kept", async () => {
  const { dir, cleanup } = tempDir('foreign');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const web = path.join(dir, 'web');
    mkdirSync(web);
    const theirs = `${JSON.stringify({ name: 'my web app', version: 1, model: 'gpt' })}\n`;
    writeFileSync(path.join(web, MANIFEST_FILE), theirs);
    await assert.rejects(SearchIndex.open(web, { backend, create: {} }), {
      name: 'IndexError',
      message:
        `${path.join(web, MANIFEST_FILE)} is another program's file, not a search-r3 index manifest (it lacks the ` +
        'fields of one), and an index would write over it; give the index a folder of its own, or move the file away.',
    });
    assert.equal(readFileSync(path.join(web, MANIFEST_FILE), 'utf8'), theirs);
    assert.deepEqual(readdirSync(web), [MANIFEST_FILE]);
    // another program's SQLite database called docs.sqlite: the index added its tables and set its journal mode;
    // one whose table is called docs too (its notes, not an index's) was called a damaged index
    const foreignDatabases: [string, string, string][] = [
      ['app', 'notes', 'CREATE TABLE notes (body TEXT)'],
      ['blog', 'docs', 'CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)'],
    ];
    for (const [name, table, schema] of foreignDatabases) {
      const folder = path.join(dir, name);
      mkdirSync(folder);
      const db = new Database(path.join(folder, 'docs.sqlite'));
      db.pragma('journal_mode = WAL');
      db.exec(schema);
      db.prepare(`INSERT INTO ${table} (body) VALUES ('kept')`).run();
      db.close();
      await assert.rejects(SearchIndex.open(folder, { backend, create: {} }), {
        name: 'IndexError',
        message:
          `${path.join(folder, 'docs.sqlite')} is another program's database (its tables: ${table}), and an index ` +
          'would add its own to it; give the index a folder of its own, or move the file away.',
      });
      const after = new Database(path.join(folder, 'docs.sqlite'), { readonly: true });
      assert.deepEqual(after.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all(), [table]);
      assert.deepEqual(after.prepare(`SELECT body FROM ${table}`).pluck().all(), ['kept']);
      assert.equal(after.pragma('journal_mode', { simple: true }), 'wal');
      after.close();
    }
    // a manifest of ours that lost a field to damage is still rewritten, as the damage table says
    const own = path.join(dir, 'own');
    const index = await SearchIndex.open(own, { backend, create: {} });
    await index.addDocuments(corpus(3));
    await index.close();
    const sealed = readFileSync(path.join(own, MANIFEST_FILE), 'utf8');
    writeFileSync(path.join(own, MANIFEST_FILE), sealed.replace('"templates"', '"templatez"'));
    const reopened = await SearchIndex.open(own, { backend, create: {} });
    assert.equal(reopened.documentIds().length, 3);
    await reopened.close();
    assert.ok(unsealManifest(readFileSync(path.join(own, MANIFEST_FILE), 'utf8'), 'index.json').templates);
  } finally {
    cleanup();
  }
});

test('a closed index refuses every use with one sentence naming it and how to open it again', async () => {
  const { dir, cleanup } = tempDir('closed');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const indexDir = path.join(dir, 'index');
    const writer = await SearchIndex.open(indexDir, { backend, create: {} });
    await writer.addDocuments(corpus(3));
    const vector = writer.getDocument('d000')!.vector!;
    await writer.close();
    const reader = await SearchIndex.open(indexDir, { backend });
    await reader.close();
    await reader.close(); // a second close does nothing
    const closed = (e: unknown): boolean =>
      e instanceof IndexError &&
      e.message ===
        `the index ${indexDir} was closed; open it again with SearchIndex.open(${JSON.stringify(indexDir)}) to use it.`;
    for (const index of [writer, reader]) {
      await assert.rejects(index.search('gene'), closed);
      await assert.rejects(index.searchVector(vector, { k: 1 }), closed);
      await assert.rejects(index.addDocuments(corpus(1)), closed);
      await assert.rejects(index.stageDocuments(corpus(1)), closed);
      await assert.rejects(index.encodePending(), closed);
      await assert.rejects(index.commitEncoded([], []), closed);
      await assert.rejects(index.checkStoreWritable(), closed);
      await assert.rejects(index.deleteDocuments(['d000']), closed);
      await assert.rejects(index.refresh(), closed);
      assert.throws(() => index.getDocument('d000'), closed);
      assert.throws(() => index.documentIds(), closed);
      assert.throws(() => index.pendingChunks(1), closed);
      assert.throws(() => index.exactSearch(vector, 1), closed);
      assert.throws(() => index.indexedVectors(), closed);
      assert.throws(() => index.warmHybrid(), closed);
      assert.throws(() => index.stats(), closed);
      assert.throws(() => index.lockForWriting(), closed);
    }
  } finally {
    cleanup();
  }
});

test('a lone surrogate is stored as U+FFFD and checks against its hash; an id holding one is refused', async () => {
  const { dir, cleanup } = tempDir('surrogate');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    await index.addDocuments([{ id: 'ok', title: '', text: 'an intact document' }]);
    const cut = 'Launch day 🚀 was a success'.slice(0, 12); // the slice ends inside the emoji's surrogate pair
    assert.equal(cut, 'Launch day \ud83d');
    const launch = {
      id: 'launch',
      title: '🚀 x'.slice(1),
      text: cut,
      metadata: { note: cut, ['k\ud800']: ['\udfff'] },
    };
    const r = await index.addDocuments([launch]);
    assert.deepEqual([r.counts.added, r.encoded], [1, 1]);
    const stored = index.getDocument('launch')!;
    assert.equal(stored.status, 'indexed');
    assert.deepEqual(
      { title: stored.title, text: stored.text, metadata: stored.metadata },
      { title: '\uFFFD x', text: 'Launch day \uFFFD', metadata: { note: 'Launch day \uFFFD', 'k\uFFFD': ['\uFFFD'] } },
    );
    // the next write finds no damaged row to delete, and the same document given again is unchanged
    const next = await index.addDocuments([{ id: 'other', title: '', text: 'another document' }, launch]);
    assert.equal(next.removedDamaged, undefined);
    assert.deepEqual(next.counts, { added: 1, changed: 0, unchanged: 1, resumed: 0, repaired: 0 });
    // the LangChain store adds through the same path
    const store = new SearchR3VectorStore(new SearchR3Embeddings({ backend }), index);
    await store.addDocuments([new Document({ id: 'lc', pageContent: cut })]);
    assert.equal(index.getDocument('lc')!.text, 'Launch day \uFFFD');
    assert.deepEqual(index.documentIds(), ['launch', 'lc', 'ok', 'other']);
    // the table itself stages what it hashes, whoever calls it
    index.docs.stage([{ id: 'direct', title: '', text: cut }]);
    assert.deepEqual(index.docs.damagedIds(), []);
    assert.equal(await index.encodePending(), 1);

    // an id would come back as another one: refused, and nothing of the call is written (not even the slices
    // of 10,000 documents the table stages before the one holding it)
    const bad = [
      ...Array.from({ length: 10_000 }, (_, i) => ({ id: `fine${i}`, title: '', text: 'x' })),
      { id: `launch${cut.slice(-1)}`, title: '', text: 'y' },
    ];
    await assert.rejects(
      index.addDocuments(bad),
      (e) =>
        e instanceof IndexError &&
        e.message.startsWith('document 10001 of 10001 given: the id "launch\\ud83d" holds a lone UTF-16 surrogate'),
    );
    // nor may one name its U+FFFD twin for deletion
    await index.addDocuments([{ id: 'twin\uFFFD', title: '', text: 'z' }]);
    await assert.rejects(index.deleteDocuments(['twin\ud800']), /the id "twin\\ud800" holds a lone UTF-16 surrogate/);
    assert.deepEqual(index.documentIds(), ['direct', 'launch', 'lc', 'ok', 'other', 'twin\uFFFD']);
    assert.deepEqual(index.stats().pending, 0);
    await index.close();
  } finally {
    cleanup();
  }
});

test('writes on one index run one at a time in call order: each pending chunk is encoded once', async () => {
  const { dir, cleanup } = tempDir('concurrent');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    const docs = corpus(80);
    const [a, b, deleted] = await Promise.all([
      index.addDocuments(docs.slice(0, 40), { documentsPerCommit: 8 }),
      index.addDocuments(docs.slice(40), { documentsPerCommit: 8 }),
      index.deleteDocuments(['d000']),
    ]);
    // each call's counts are its own: 80 documents encoded once, d000 among them before it was deleted
    assert.deepEqual([a.staged, a.encoded, b.staged, b.encoded], [40, 40, 40, 40]);
    assert.deepEqual(deleted, ['d000']);
    assert.deepEqual(index.stats(), { documents: 79, pending: 0, outdated: 0, generation: index.docs.generation() });
    assert.equal(await index.store.size(), 79);
    const direct = await backend.embedDocuments(docs.slice(1).map(documentText));
    assertSameVectors(
      docs.slice(1).map((d) => index.getDocument(d.id)!.vector!),
      direct,
    );
    await index.close();
  } finally {
    cleanup();
  }
});

test('close() during addDocuments lets the chunk under way commit, stops, and refuses the writes waiting', async () => {
  const { dir, cleanup } = tempDir('close-busy');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const indexDir = path.join(dir, 'index');
    const index = await SearchIndex.open(indexDir, { backend, create: {} });
    let closing: Promise<void> | undefined;
    let waiting: Promise<string[]> | undefined;
    const adding = index.addDocuments(corpus(30), {
      documentsPerCommit: 10,
      onChunkCommitted: (p) => {
        if (p.chunks !== 1) return;
        waiting = index.deleteDocuments(['d000']);
        closing = index.close();
      },
    });
    await assert.rejects(
      adding,
      (e) =>
        e instanceof IndexError &&
        e.message ===
          `the index ${indexDir} was closed while documents were encoded: 10 were committed and 20 stay pending; ` +
            `open it again and call encodePending() (or run 'search-r3 index' on it) to encode them.`,
    );
    await assert.rejects(waiting!, (e) => e instanceof IndexError && /was closed; open it again/.test(e.message));
    await closing;
    const again = await SearchIndex.open(indexDir, { backend, writable: true });
    assert.deepEqual(again.notes, []);
    assert.deepEqual([again.stats().documents, again.stats().pending], [10, 20]);
    assert.equal(await again.encodePending(), 20);
    assert.equal(again.stats().documents, 30);
    assert.ok(again.getDocument('d000'));
    await again.close();
  } finally {
    cleanup();
  }
});

/** An IndexError whose message is exactly `message`. */
const refusedWith =
  (message: string) =>
  (e: unknown): boolean =>
    e instanceof IndexError && e.message === message;

test('bad search arguments are refused in one sentence naming them; none reaches usearch (NaN aborts it)', async () => {
  const { dir, cleanup } = tempDir('badsearch');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    await index.addDocuments(corpus(5));
    const vector = index.getDocument('d000')!.vector!;
    const k = "'k' must be a positive integer";
    const cases: [unknown, Record<string, unknown> | undefined, string][] = [
      ['gene', { k: NaN }, `${k} (got NaN).`],
      ['gene', { k: 0 }, `${k} (got 0).`],
      ['gene', { k: -3 }, `${k} (got -3).`],
      ['gene', { k: 2.5 }, `${k} (got 2.5).`],
      ['gene', { k: Infinity }, `${k} (got Infinity).`],
      ['gene', { k: '5' }, `${k} (got '5').`],
      ['gene', { hybrid: true, candidates: NaN }, "'candidates' must be a positive integer (got NaN)."],
      ['gene', { hybrid: 'yes' }, "'hybrid' must be true or false (got 'yes')."],
      ['gene', { reasoning: 'yes' }, "'reasoning' must be 'on' or 'off' (got 'yes')."],
      ['gene', { reasoning: true }, "'reasoning' must be 'on' or 'off' (got true)."],
      ['gene', { reasoning: 'on', maxReasoningTokens: -1 }, "'maxReasoningTokens' must be an integer ≥ 0 (got -1)."],
      ['gene', { reasoning: 'on', temperature: NaN }, "'temperature' must be a number ≥ 0 (got NaN)."],
      ['gene', { reasoning: 'on', temperature: 1, topP: 2 }, "'topP' must be a number in [0, 1] (got 2)."],
      ['gene', { seed: -1 }, "'seed' must be an integer in [0, 4294967295] (got -1)."],
      [null, undefined, 'the query must be a string (got null).'],
      [undefined, undefined, 'the query must be a string (got undefined).'],
      [42, {}, 'the query must be a string (got 42).'],
      // a misspelt option would be dropped silently: a plain search where a hybrid one was asked for
      [
        'gene',
        { hybird: true },
        "search has no option 'hybird'; it takes 'k', 'hybrid', 'candidates', 'exact', 'reasoning', " +
          "'maxReasoningTokens', 'temperature', 'topP' or 'seed'.",
      ],
      [
        'gene',
        { k: 2, queryText: 'cell' },
        "search has no option 'queryText'; it takes 'k', 'hybrid', " +
          "'candidates', 'exact', 'reasoning', 'maxReasoningTokens', 'temperature', 'topP' or 'seed'.",
      ],
    ];
    for (const [query, opts, message] of cases)
      await assert.rejects(index.search(query as string, opts), refusedWith(message), message);
    await assert.rejects(index.searchVector(vector, { k: NaN }), refusedWith(`${k} (got NaN).`));
    await assert.rejects(index.searchVector(vector, { k: NaN, exact: false }), refusedWith(`${k} (got NaN).`));
    const rank = "it takes 'k', 'hybrid', 'candidates', 'exact' or 'queryText'.";
    for (const [opts, key] of [
      [{ hybird: true, queryText: 'gene' }, 'hybird'],
      [{ k: 2, reasoning: 'on' }, 'reasoning'],
    ] as const)
      await assert.rejects(
        index.searchVector(vector, opts as unknown as RankOptions),
        refusedWith(`searchVector has no option '${key}'; ${rank}`),
      );
    // an option left undefined is an option left out, as a caller passing its own optional values gives it
    assert.equal((await index.searchVector(vector, { k: 2, hybrid: undefined })).length, 2);
    // a NaN or ±Infinity in the query scored every document 1; another array than a Float32Array found nothing
    for (const exact of [true, false]) {
      for (const [at, bad] of [
        [0, NaN],
        [7, Infinity],
        [31, -Infinity],
      ] as const) {
        const q = Float32Array.from(vector);
        q[at] = bad;
        const message = `the query vector must hold finite numbers (element ${at} is ${bad}).`;
        await assert.rejects(index.searchVector(q, { k: 2, exact }), refusedWith(message), message);
      }
      const want = 'the query vector must be a Float32Array (Float32Array.from(numbers) makes one)';
      for (const [q, got] of [
        [Array.from(vector), 'an array'],
        ['gene', "'gene'"],
        [undefined, 'undefined'],
      ] as const)
        await assert.rejects(
          index.searchVector(q as unknown as Float32Array, { k: 2, exact }),
          refusedWith(`${want} (got ${got}).`),
          got,
        );
    }
    // the native calls themselves refuse what would abort the process, whoever calls them
    const native = (e: unknown): boolean =>
      e instanceof RangeError &&
      /the number of results asked of usearch must be an integer \(got NaN\)/.test(e.message);
    // exactSearch, public beside searchVector, refuses what searchVector refuses before native code sees it
    assert.throws(() => index.exactSearch(vector, NaN), refusedWith(`${k} (got NaN).`));
    assert.throws(() => index.exactSearch(vector, 1.5), refusedWith(`${k} (got 1.5).`));
    assert.throws(
      () => index.exactSearch(vector.subarray(1), 2),
      refusedWith(`the query vector has ${vector.length - 1} dimensions; the index holds ${vector.length}-d vectors.`),
    );
    assert.throws(
      () => index.exactSearch(Array.from(vector) as unknown as Float32Array, 2),
      refusedWith('the query vector must be a Float32Array (Float32Array.from(numbers) makes one) (got an array).'),
    );
    assert.deepEqual(
      index.exactSearch(vector, 2).map((h) => h.score),
      (await index.searchVector(vector, { k: 2, exact: true })).map((h) => h.score),
    );
    assert.throws(() => exactCosineSearch(vector, vector.length, vector, 0.5), RangeError);
    assert.throws(() => (index.store as UsearchStore).searchSync(vector, NaN), native);
    // a k beyond the documents there are is the documents there are
    assert.equal((await index.searchVector(vector, { k: 1e9, exact: false })).length, 5);
    assert.equal((await index.search('gene', { k: 3 })).hits.length, 3);
    await index.close();
  } finally {
    cleanup();
  }
});

test("bad create options are refused by the manifest reader's own check, before the index folder is made", async () => {
  const { dir, cleanup } = tempDir('badcreate');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const cases: [unknown, string][] = [
      [{ dtype: 'f64' }, "'create.dtype' must be 'f32', 'f16' or 'i8' (got 'f64')."],
      [{ dtype: 'F16' }, "'create.dtype' must be 'f32', 'f16' or 'i8' (got 'F16')."],
      [{ store: 'usearch' }, "'create.store' must be 'local' or 'lancedb' (got 'usearch')."],
      [{ storeUri: 5 }, "'create.storeUri' must be a LanceDB location (a path or a URI) (got 5)."],
      // a LanceDB table holds float32 vectors: the manifest would say i8 of f32 vectors
      [
        { store: 'lancedb', dtype: 'i8' },
        "'create.dtype' must be 'f32' or left out with the LanceDB store, which keeps float32 vectors (got 'i8').",
      ],
      [
        { storeUri: path.join(dir, 'v.lance'), dtype: 'f16' },
        "'create.dtype' must be 'f32' or left out with the LanceDB store, which keeps float32 vectors (got 'f16').",
      ],
      [{ hnsw: { expansionSearch: 0 } }, "'create.hnsw.expansionSearch' must be a positive integer (got 0)."],
      [{ hnsw: { connectivity: -5 } }, "'create.hnsw.connectivity' must be a positive integer (got -5)."],
      [{ hnsw: { connectivity: 'many' } }, "'create.hnsw.connectivity' must be a positive integer (got 'many')."],
      [
        { hnsw: { ef: 3 } },
        "'create.hnsw' has no option 'ef'; it takes 'connectivity', 'expansionAdd' or 'expansionSearch'.",
      ],
      [{ dType: 'f16' }, "'create' has no option 'dType'; it takes 'dtype', 'hnsw', 'store' or 'storeUri'."],
      ['f16', "'create' must be an object (got 'f16')."],
    ];
    const indexDir = path.join(dir, 'index');
    for (const [create, message] of cases) {
      await assert.rejects(
        SearchIndex.open(indexDir, { backend, create: create as CreateIndexOptions }),
        refusedWith(message),
        message,
      );
      assert.ok(!existsSync(indexDir), `${message}: nothing is written`);
    }
    for (const [opts, key] of [
      [{ backend, writeable: true }, 'writeable'],
      [{ backend, create: {}, thread: 2 }, 'thread'],
      [{ saveBM25: true }, 'saveBM25'],
    ] as const) {
      const message =
        `SearchIndex.open has no option '${key}'; it takes 'backend', 'create', 'writable', 'threads' or ` +
        "'saveBm25'.";
      await assert.rejects(
        SearchIndex.open(indexDir, opts as unknown as OpenIndexOptions),
        refusedWith(message),
        message,
      );
      assert.ok(!existsSync(indexDir), `${message}: nothing is written`);
    }
    await assert.rejects(
      SearchIndex.open(indexDir, { create: {} }),
      refusedWith('creating an index needs a model (backend) to fix its dimension and prompts.'),
    );
    // '' would have made the working directory the index; a number failed inside node:path
    for (const [folder, got] of [
      ['', "''"],
      [5, '5'],
    ] as const) {
      const message = `the index folder must be a path (a non-empty string) (got ${got}).`;
      await assert.rejects(SearchIndex.open(folder as string, { backend, create: {} }), refusedWith(message));
      await assert.rejects(LocalBackend.fromModelDir(folder as string), refusedWith(message.replace('index', 'model')));
    }
    assert.ok(!existsSync(indexDir));
    // a model folder's path, or the backend's promise not awaited, in place of the backend: refused before any
    // file is written, where it used to leave an index.json of no dimension that no later open could read
    const backendWant =
      "'backend' must be an embedding backend, awaited: await LocalBackend.fromModelDir(dir), " +
      'WorkerBackend.start(dir) or RemoteEmbedder.connect(urls)';
    for (const [wrong, got] of [
      [backend.source, showValue(backend.source)],
      [Promise.resolve(backend), 'a promise'],
      [{}, 'an object'],
    ] as const) {
      const opened = SearchIndex.open(indexDir, { backend: wrong as unknown as typeof backend, create: {} });
      await assert.rejects(opened, refusedWith(`${backendWant} (got ${got}).`), got);
      assert.ok(!existsSync(indexDir), `${got}: nothing is written`);
    }
    // what create refuses is what the reader of index.json (and of its copy in docs.sqlite) refuses
    const index = await SearchIndex.open(indexDir, { backend, create: { hnsw: { connectivity: 8 } } });
    await index.close();
    const file = path.join(indexDir, MANIFEST_FILE);
    const m = unsealManifest(readFileSync(file, 'utf8'), file);
    assert.deepEqual(m.hnsw, { connectivity: 8, expansionAdd: 128, expansionSearch: 64 });
    assert.throws(
      () => unsealManifest(sealManifest({ ...m, dtype: 'f64' as VectorDtype }), file),
      refusedWith(`${file}: field 'dtype' must be 'f32', 'f16' or 'i8'`),
    );
    assert.throws(
      () => unsealManifest(sealManifest({ ...m, hnsw: { ...m.hnsw, expansionSearch: 0 } }), file),
      refusedWith(`${file}: field 'hnsw.expansionSearch' must be a positive integer`),
    );
  } finally {
    cleanup();
  }
});

test('addDocuments refuses bad documents and ids given twice, before staging any', async () => {
  const { dir, cleanup } = tempDir('baddocs');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    const docs = corpus(3);
    await index.addDocuments(docs);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const doc = { id: 'new', title: 'T', text: 'x' };
    const cases: [unknown, string][] = [
      [[{ ...doc, id: 5 }], 'documents[0].id must be a non-empty string (got 5).'],
      [[doc, { ...doc, id: '' }], "documents[1].id must be a non-empty string (got '')."],
      [[{ id: 'u', title: 'T' }], "documents[0].text (id 'u') must be a string, '' for none (got undefined)."],
      [[{ id: 'u', text: 'x' }], "documents[0].title (id 'u') must be a string, '' for none (got undefined)."],
      [[{ ...doc, text: 42 }], "documents[0].text (id 'new') must be a string, '' for none (got 42)."],
      [
        [{ ...doc, metadata: [1, 2] }],
        "documents[0].metadata (id 'new') must be an object, or left out (got an array).",
      ],
      [[{ ...doc, metadata: null }], "documents[0].metadata (id 'new') must be an object, or left out (got null)."],
      [
        [{ ...doc, metadata: circular }],
        "documents[0].metadata (id 'new') cannot be stored as JSON (Converting circular structure to JSON).",
      ],
      [[null], 'documents[0] must be an object { id, title, text, metadata? } (got null).'],
      // eslint-disable-next-line no-sparse-arrays
      [[doc, , docs[0]], 'documents[1] must be an object { id, title, text, metadata? } (got undefined).'],
      [doc, 'the documents must be an array of { id, title, text, metadata? } (got an object).'],
      [
        [{ ...doc, text: 'one' }, docs[0], { ...doc, text: 'two' }],
        "document id 'new' appears twice, as documents[0] and documents[2]; give each document once.",
      ],
    ];
    for (const [given, message] of cases) {
      await assert.rejects(index.addDocuments(given as SourceDocument[]), refusedWith(message), message);
      await assert.rejects(index.stageDocuments(given as SourceDocument[]), refusedWith(message), message);
    }
    const perCommit = "'documentsPerCommit' must be a positive integer";
    await assert.rejects(
      index.addDocuments([doc], { documentsPerCommit: NaN }),
      refusedWith(`${perCommit} (got NaN).`),
    );
    await assert.rejects(index.addDocuments([doc], { documentsPerCommit: 0 }), refusedWith(`${perCommit} (got 0).`));
    await assert.rejects(
      index.encodePending({ chunkSize: -1 }),
      refusedWith("'chunkSize' must be a positive integer (got -1)."),
    );
    assert.throws(() => index.pendingChunks(NaN), refusedWith(`${perCommit} (got NaN).`));
    assert.throws(
      () => (index.pendingChunks as () => unknown)(),
      refusedWith("pendingChunks needs 'documentsPerCommit', the documents of a chunk."),
    );
    await assert.rejects(
      index.deleteDocuments('d000' as unknown as string[]),
      refusedWith("the ids to delete must be an array of strings (got 'd000')."),
    );
    await assert.rejects(
      index.deleteDocuments([1] as unknown as string[]),
      refusedWith('ids[0] must be a string (got 1).'),
    );
    // nothing was staged, deleted or damaged: the index is as it was, and takes the documents once they are right
    assert.deepEqual(index.documentIds(), ['d000', 'd001', 'd002']);
    assert.deepEqual(index.stats(), { documents: 3, pending: 0, outdated: 0, generation: index.stats().generation });
    assert.deepEqual(await index.addDocuments([doc], { documentsPerCommit: 1 }), {
      staged: 1,
      encoded: 1,
      counts: { added: 1, changed: 0, unchanged: 0, resumed: 0, repaired: 0 },
      truncated: 0,
    });
    assert.equal(index.getDocument('new')!.text, 'x');
    // vectors encoded elsewhere: a Float64Array was stored as twice the floats (every later search failed), and a
    // NaN vector scored 1 for every query
    await index.stageDocuments([{ ...doc, id: 'encoded-elsewhere' }]);
    const [chunk] = index.pendingChunks(1);
    const dim = index.getDocument('d000')!.vector!.length;
    for (const [vectors, message] of [
      [[new Float64Array(dim)], 'vectors[0] is a Float64Array; give a Float32Array (Float32Array.from(it)).'],
      [[new Float32Array(dim).fill(NaN)], 'vectors[0] must hold finite numbers (element 0 is NaN).'],
      [[new Float32Array(dim + 1)], `vectors[0] has ${dim + 1} numbers; the index's vectors have ${dim}.`],
      [[], 'the chunk has 1 documents and 0 vectors; give one per document.'],
      [null, 'the vectors must be an array of Float32Array, one per document of the chunk (got null).'],
    ] as const) {
      await assert.rejects(index.commitEncoded(chunk, vectors as unknown as Float32Array[]), refusedWith(message));
    }
    await index.encodePending();
    assert.ok(index.getDocument('encoded-elsewhere')!.vector, 'encoded once its vectors are right');
    await index.close();
  } finally {
    cleanup();
  }
});

test('documents given as a stream are staged a slice at a time while it is read, checked as an array is', async () => {
  const { dir, cleanup } = tempDir('stream');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    const n = 25_000;
    // what the index held staged when the stream was asked for each 5,000th document
    const stagedWhenAsked: number[] = [];
    async function* documents(): AsyncGenerator<SourceDocument> {
      for (let i = 0; i < n; i++) {
        if (i % 5000 === 0) stagedWhenAsked.push(index.stats().pending);
        yield { id: `d${i}`, title: '', text: `text ${i}` };
      }
    }
    const r = await index.stageDocuments(documents());
    assert.equal(r.counts.added, n);
    assert.equal(index.stats().pending, n);
    // a whole corpus is never held: the first 10,000 are in docs.sqlite before the 15,000th is read
    assert.deepEqual(stagedWhenAsked, [0, 0, 10_000, 10_000, 20_000]);
    const doc = { id: 'new', title: 'T', text: 'x' };
    async function* twice(): AsyncGenerator<SourceDocument> {
      yield doc;
      yield { ...doc, text: 'y' };
    }
    await assert.rejects(
      index.stageDocuments(twice()),
      refusedWith("document id 'new' appears twice, as documents[0] and documents[1]; give each document once."),
    );
  } finally {
    cleanup();
  }
});
