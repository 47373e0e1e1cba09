import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { folderDigest } from '../helpers/damage.js';
import { LanceStore } from '../../src/search-index/lance-store.js';
import { EXACT_SEARCH_WORK, SearchIndex } from '../../src/search-index/search-index.js';
import { IndexError } from '../../src/search-index/index-error.js';
import { documentText } from '../../src/search-index/document-source.js';
import { type EmbeddingBackend, LocalBackend } from '../../src/search-index/embedding-backend.js';
import { saveModelFolder } from '../../src/model/model-folder.js';
import { tinyModel } from '../helpers/tiny-model.js';
import * as lancedb from '@lancedb/lancedb';
import { corpus, indexWithCopiedTable, tempDir, tinyBackend, tinyModelDir } from './fixtures.js';

function unit(seed: number, d: number): Float32Array {
  let s = seed;
  const v = Float32Array.from({ length: d }, () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  });
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

test('LanceStore on a local path: add, cosine search, delete, generation, reopen', async () => {
  const { dir, cleanup } = tempDir('lance');
  try {
    const uri = path.join(dir, 'v.lance');
    let store = await LanceStore.open(uri, 16);
    assert.deepEqual(await store.search(unit(1, 16), 3), []);
    const rows = Array.from({ length: 50 }, (_, i) => ({ key: i + 1, id: `doc${i}`, vector: unit(i + 7, 16) }));
    await store.add(rows);
    const hits = await store.search(rows[9].vector, 3);
    assert.equal(hits[0].key, 10);
    assert.ok(Math.abs(hits[0].score - 1) < 1e-5);
    // scores are cosines, best first, and agree with a brute-force check
    const dots = rows.map((r) => r.vector.reduce((a, x, j) => a + x * rows[9].vector[j], 0));
    const best = dots
      .map((d, i) => [d, i + 1])
      .sort((a, b) => b[0] - a[0])
      .slice(0, 3);
    assert.deepEqual(
      hits.map((h) => h.key),
      best.map((b) => b[1]),
    );
    hits.forEach((h, i) => assert.ok(Math.abs(h.score - best[i][0]) < 1e-5));
    await store.remove([10, 11]);
    assert.equal(await store.size(), 48);
    assert.ok(!(await store.search(rows[9].vector, 5)).some((h) => h.key === 10 || h.key === 11));
    assert.equal((await store.committed()).generation, 0);
    await store.commit({ generation: 3 });
    await store.commit({ generation: 4 });
    await store.close();
    store = await LanceStore.open(uri, 16);
    assert.equal((await store.committed()).generation, 4);
    assert.equal(await store.size(), 48);
    await store.clear();
    assert.equal(await store.size(), 0);
    await store.close();
  } finally {
    cleanup();
  }
});

test('a LanceDB search writes nothing to stderr (LanceDB warns of a projection that leaves out _distance)', () => {
  const { dir, cleanup } = tempDir('lance-quiet');
  try {
    // LanceDB's warnings come from its native code, straight to the process's stderr: a child process shows them
    const store = pathToFileURL(path.resolve(import.meta.dirname, '../../src/search-index/lance-store.js')).href;
    const script = `
      import { LanceStore } from ${JSON.stringify(store)};
      const s = await LanceStore.open(${JSON.stringify(path.join(dir, 'v.lance'))}, 4);
      await s.add([1, 2, 3].map((key) => ({ key, id: 'd' + key, vector: Float32Array.from([key, 1, 0, 0]) })));
      const hits = await s.search(Float32Array.from([1, 1, 0, 0]), 2);
      console.log(JSON.stringify(hits.map((h) => h.key)));
      await s.close();`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '[1,2]');
    assert.equal(r.stderr, '');
  } finally {
    cleanup();
  }
});

test('an index on the LanceDB store searches, updates and deletes like the local one', async () => {
  const { dir, cleanup } = tempDir('lanceidx');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const docs = corpus(20);
    const indexDir = path.join(dir, 'idx');
    let index = await SearchIndex.open(indexDir, { backend, create: { store: 'lancedb' } });
    await index.addDocuments(docs, { chunkSize: 8 });
    assert.equal(index.info.store, 'lancedb');
    assert.equal(await index.store.size(), 20);
    const [v] = await backend.embedDocuments([documentText(docs[6])]);
    const viaLance = await index.searchVector(v, { k: 5, exact: false });
    const exact = await index.searchVector(v, { k: 5, exact: true });
    assert.equal(viaLance[0].id, docs[6].id);
    assert.deepEqual(
      viaLance.map((h) => h.id),
      exact.map((h) => h.id),
    );
    await index.deleteDocuments([docs[6].id]);
    await index.close();
    index = await SearchIndex.open(indexDir, { backend });
    assert.equal(await index.store.size(), 19);
    assert.ok(!(await index.searchVector(v, { k: 19, exact: false })).some((h) => h.id === docs[6].id));
    await index.close();
  } finally {
    cleanup();
  }
});

test(
  "another index's docs.sqlite copied in at the same generation has the LanceDB table rebuilt, not trusted; a meta " +
    'table without the table id column (an older search-r3) is trusted, and gets the column at its next commit',
  async () => {
    const { dir, cleanup } = tempDir('lance-copied');
    try {
      const backend = await tinyBackend(await tinyModelDir(dir));
      const { indexDir, docs } = await indexWithCopiedTable(dir, backend, { store: 'lancedb' });
      const vectors = await backend.embedDocuments(docs.map(documentText));
      const topIds = (index: SearchIndex): Promise<(string | undefined)[]> =>
        Promise.all(vectors.map(async (v) => (await index.searchVector(v, { k: 1, exact: false }))[0]?.id));
      const ids = docs.map((d) => d.id);
      let index = await SearchIndex.open(indexDir, { backend, writable: true });
      assert.deepEqual(await topIds(index), ids);
      const { generation, table } = await index.store.committed();
      assert.equal(table, index.docs.identity());
      await index.close();

      const db = await lancedb.connect(path.join(indexDir, 'vectors.lance'));
      await db.dropTable('meta');
      await (await db.createTable('meta', [{ generation }])).close();
      db.close();
      index = await SearchIndex.open(indexDir, { backend, writable: true });
      assert.deepEqual(await index.store.committed(), { generation }, 'trusted as it is: not rebuilt');
      assert.deepEqual(await topIds(index), ids);
      await index.checkStoreWritable();
      await index.close();
      index = await SearchIndex.open(indexDir, { backend });
      assert.deepEqual(await index.store.committed(), { generation, table });
      await index.close();
    } finally {
      cleanup();
    }
  },
);

/** A LanceDB index of 12 documents in `<dir>/idx`, closed; a query vector and the exact search's top 5 ids. */
async function lanceIndex(
  dir: string,
): Promise<{ backend: EmbeddingBackend; indexDir: string; v: Float32Array; want: string[] }> {
  const backend = await tinyBackend(await tinyModelDir(dir));
  const docs = corpus(12);
  const indexDir = path.join(dir, 'idx');
  const writer = await SearchIndex.open(indexDir, { backend, create: { store: 'lancedb' } });
  await writer.addDocuments(docs);
  const [v] = await backend.embedDocuments([documentText(docs[3])]);
  const want = (await writer.searchVector(v, { k: 5, exact: true })).map((h) => h.id);
  await writer.close();
  return { backend, indexDir, v, want };
}

test('a reader of a LanceDB index whose table folder is gone creates nothing and searches docs.sqlite', async () => {
  const { dir, cleanup } = tempDir('lance-ro');
  try {
    const { backend, indexDir, v, want } = await lanceIndex(dir);
    rmSync(path.join(indexDir, 'vectors.lance'), { recursive: true });
    const before = folderDigest(indexDir);
    const reader = await SearchIndex.open(indexDir, { backend });
    assert.match(reader.notes[0], /vectors\.lance is missing; the search graph was rebuilt in memory/);
    assert.deepEqual(
      (await reader.searchVector(v, { k: 5, exact: false })).map((h) => h.id),
      want,
    );
    await reader.close();
    assert.deepEqual(folderDigest(indexDir), before);
    assert.ok(!existsSync(path.join(indexDir, 'vectors.lance')));
  } finally {
    cleanup();
  }
});

test('a LanceDB table listed but never written (killed in createTable) is none to readers and writers', async () => {
  const { dir, cleanup } = tempDir('lance-unborn');
  try {
    const { backend, indexDir, v, want } = await lanceIndex(dir);
    // what a process killed after LanceDB registered the tables and before their first version leaves
    for (const table of ['vectors', 'meta'])
      for (const part of ['_versions', '_transactions'])
        rmSync(path.join(indexDir, 'vectors.lance', `${table}.lance`, part), { recursive: true });
    const reader = await SearchIndex.open(indexDir, { backend });
    assert.deepEqual(
      (await reader.searchVector(v, { k: 5 })).map((h) => h.id),
      want,
    );
    await reader.close();
    const again = await SearchIndex.open(indexDir, { backend, writable: true });
    assert.equal(await again.store.size(), 12, 'the writer made the table again from docs.sqlite');
    assert.equal((await again.store.committed()).generation, again.stats().generation);
    assert.deepEqual(
      (await again.searchVector(v, { k: 5, exact: false })).map((h) => h.id),
      want,
    );
    await again.close();
  } finally {
    cleanup();
  }
});

/** docs/serve.md: an index's LanceDB table gets an ANN index through the package's own exports. */
test("the package exports LanceStore: a LanceDB index's store is one, and builds its IVF-PQ index", async () => {
  const api = (await import('../../src/index.js')) as Record<string, unknown>;
  assert.equal(api.LanceStore, LanceStore, 'LanceStore is not exported from the package entry');
  const { dir, cleanup } = tempDir('lance-ann');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const index = await SearchIndex.open(path.join(dir, 'idx'), { backend, create: { store: 'lancedb' } });
    try {
      // IVF-PQ trains its codebooks on at least 256 vectors
      const docs = corpus(300);
      await index.addDocuments(docs);
      assert.ok(index.store instanceof LanceStore);
      await index.store.createVectorIndex();
      const vector = index.getDocument(docs[7].id)!.vector!;
      // searched through the ANN index (approximate: the document itself among the first ten)
      const hits = await index.searchVector(vector, { k: 10, exact: false });
      assert.ok(
        hits.some((h) => h.id === docs[7].id),
        hits.map((h) => h.id).join(' '),
      );
    } finally {
      await index.close();
    }
  } finally {
    cleanup();
  }
});

test("createVectorIndex on a table too small to train IVF-PQ is one sentence, not LanceDB's dump", async () => {
  const { dir, cleanup } = tempDir('lance-small-ann');
  try {
    const uri = path.join(dir, 'v.lance');
    const store = await LanceStore.open(uri, 16);
    const refused = (rows: number): { name: string; message: string } => ({
      name: 'IndexError',
      message:
        `the LanceDB store ${uri} holds ${rows} vectors, and an IVF-PQ index trains on at least 256; ` +
        'search it as it is (exactly, by brute force) and build the index once it holds more.',
    });
    try {
      await assert.rejects(store.createVectorIndex(), refused(0));
      const rows = Array.from({ length: 255 }, (_, i) => ({ key: i + 1, id: `doc${i}`, vector: unit(i + 5, 16) }));
      await store.add(rows);
      await assert.rejects(store.createVectorIndex(), refused(255));
      // searched as before, exactly
      assert.equal((await store.search(rows[3].vector, 1))[0].key, 4);
    } finally {
      await store.close();
    }
  } finally {
    cleanup();
  }
});

test("a writer's refresh while its own write saves the LanceDB table leaves its searches on the table", async () => {
  const { dir, cleanup } = tempDir('lance-own');
  try {
    // dense search goes exact for small indexes whatever the store says: this one is just past that size
    const dim = 1024;
    const modelDir = path.join(dir, 'model');
    await saveModelFolder(modelDir, tinyModel(7, { hiddenSize: dim, numHiddenLayers: 1, maxPositionEmbeddings: 256 }));
    const backend = await LocalBackend.fromModelDir(modelDir, { maxLength: 128 });
    const n = Math.floor(EXACT_SEARCH_WORK / dim) + 2;
    const index = await SearchIndex.open(path.join(dir, 'idx'), { backend, create: { store: 'lancedb' } });
    try {
      await index.stageDocuments(Array.from({ length: n }, (_, i) => ({ id: `d${i}`, title: '', text: `t${i}` })));
      const vector = (id: string): Float32Array => unit(Number(id.slice(1)) + 1, dim);
      for (const chunk of index.pendingChunks(n))
        await index.commitEncoded(
          chunk,
          chunk.map((d) => vector(d.id)),
        );
      // a server's refresh lands between the writer's two commits: docs.sqlite has the delete, the table not yet
      const { store } = index;
      const commit = store.commit.bind(store);
      const refreshed: boolean[] = [];
      store.commit = async (state) => {
        refreshed.push(await index.refresh());
        return commit(state);
      };
      await index.deleteDocuments(['d0']);
      assert.deepEqual(refreshed, [false]);
      const search = store.search.bind(store);
      const searched: number[] = [];
      store.search = (vector, k) => {
        searched.push(k);
        return search(vector, k);
      };
      const hits = await index.searchVector(vector('d1'), { k: 3 });
      assert.equal(hits[0].id, 'd1');
      assert.deepEqual(searched, [3], 'the table answers, not an exact scan of docs.sqlite');
    } finally {
      await index.close();
    }
  } finally {
    cleanup();
  }
});

test('a LanceStore answers the calls under way when closed, and refuses any after in one sentence', async () => {
  const { dir, cleanup } = tempDir('lance-store-close');
  try {
    const uri = path.join(dir, 'v.lance');
    const store = await LanceStore.open(uri, 16);
    const rows = Array.from({ length: 30 }, (_, i) => ({ key: i + 1, id: `doc${i}`, vector: unit(i + 3, 16) }));
    await store.add(rows);
    await store.commit({ generation: 2 });
    const want = await store.search(rows[4].vector, 3);
    const under = [store.search(rows[4].vector, 3), store.size(), store.committed()] as const;
    const closing = store.close();
    const closed = {
      name: 'IndexError',
      message:
        `the LanceDB store ${uri} was closed; ` +
        `open it again with LanceStore.open(${JSON.stringify(uri)}, 16) to use it.`,
    };
    for (const call of [
      () => store.search(rows[4].vector, 3),
      () => store.size(),
      () => store.committed(),
      () => store.reload({ generation: 2 }),
      () => store.add(rows.slice(0, 1)),
      () => store.remove([1]),
      () => store.commit({ generation: 3 }),
      () => store.clear(),
      () => store.createVectorIndex(),
    ]) {
      await assert.rejects(call(), closed);
    }
    assert.deepEqual(await Promise.all(under), [want, 30, { generation: 2 }]);
    await closing;
    await store.close(); // closing again does nothing
    await assert.rejects(store.size(), closed);
  } finally {
    cleanup();
  }
});

test('close() answers searches under way first (a text one still embedding too); later ones are refused', async () => {
  const { dir, cleanup } = tempDir('lance-close');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    for (const store of ['lancedb', 'local'] as const) {
      const indexDir = path.join(dir, store);
      const writer = await SearchIndex.open(indexDir, { backend, create: { store } });
      await writer.addDocuments(corpus(20));
      await writer.close();
      const closed = (e: unknown): boolean =>
        e instanceof IndexError &&
        e.message ===
          `the index ${indexDir} was closed; open it again with ` +
            `SearchIndex.open(${JSON.stringify(indexDir)}) to use it.`;
      // through the store (not the exact search a corpus this small would get), then docs.sqlite; and exactly
      for (const [hybrid, exact] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ]) {
        const index = await SearchIndex.open(indexDir, { backend });
        const vector = index.getDocument('d003')!.vector!;
        const opts = { k: 3, exact, hybrid, queryText: 'gene' };
        const want = await index.searchVector(vector, opts);
        assert.equal(want.length, 3);
        const textOpts = { k: 3, exact, hybrid };
        const wantText = (await index.search('gene', textOpts)).hits;
        assert.equal(wantText.length, 3);
        const under = index.searchVector(vector, opts);
        // still embedding its query when close() is called
        const embedding = index.search('gene', textOpts);
        const refreshing = index.refresh();
        const closing = index.close();
        await assert.rejects(index.searchVector(vector, opts), closed);
        await assert.rejects(index.refresh(), closed);
        const how = `${store}${hybrid ? ', hybrid' : ''}${exact ? ', exact' : ''}`;
        assert.deepEqual(await under, want, `${how}: the search under way is answered`);
        assert.deepEqual((await embedding).hits, wantText, `${how}: the text search under way is answered`);
        assert.equal(await refreshing, false);
        await closing;
        await assert.rejects(index.searchVector(vector, opts), closed);
      }
    }
  } finally {
    cleanup();
  }
});
