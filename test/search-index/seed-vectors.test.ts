import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { saveSeedVectors, seedIndex, seedVectorsInfo } from '../../src/search-index/seed-vectors.js';
import { assertSameVectors, corpus, tempDir, tinyBackend, tinyModelDir } from './fixtures.js';

const CHUNK = 8;

async function built(dir: string, backend: LocalBackend, n: number): Promise<SearchIndex> {
  const index = await SearchIndex.open(dir, { backend, create: {} });
  await index.addDocuments(corpus(n), { documentsPerCommit: CHUNK });
  return index;
}

test('seed vectors: an index filled from them stores exactly what encoding every document stores', async () => {
  const { dir, cleanup } = tempDir('seed');
  try {
    const model = await tinyModelDir(dir);
    const backend = await tinyBackend(model);
    const source = await built(path.join(dir, 'a'), backend, 40);
    const file = path.join(dir, 'seed.safetensors');
    assert.equal(await saveSeedVectors(file, source), 40);
    assert.deepEqual(await seedVectorsInfo(file), { model: backend.modelId, documents: 40, dimension: 32 });

    // a backend that cannot encode: every vector must come from the file
    const refuse = Object.create(backend) as LocalBackend;
    refuse.embedDocuments = () => Promise.reject(new Error('encoded a document'));
    refuse.encodeDocuments = () => Promise.reject(new Error('encoded a document'));
    const seeded = await SearchIndex.open(path.join(dir, 'b'), { backend: refuse, create: {} });
    await seeded.stageDocuments(corpus(40).reverse()); // the order given does not matter
    assert.deepEqual(await seedIndex(seeded, file, CHUNK), { seeded: 40 });
    assert.equal(seeded.stats().pending, 0);
    const want = source.indexedVectors(),
      got = seeded.indexedVectors();
    assert.deepEqual(got.ids, want.ids);
    assert.deepEqual(got.keys, want.keys);
    assert.deepEqual(Buffer.from(got.data.buffer), Buffer.from(want.data.buffer));
    const query = 'protein receptor signal';
    assert.deepEqual((await seeded.search(query, { k: 10 })).hits, (await source.search(query, { k: 10 })).hits);
    await Promise.all([source.close(), seeded.close()]);
  } finally {
    cleanup();
  }
});

test('seed vectors: a changed or new document is encoded; the rest of the file is used', async () => {
  const { dir, cleanup } = tempDir('seed-partial');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const source = await built(path.join(dir, 'a'), backend, 24);
    const file = path.join(dir, 'seed.safetensors');
    await saveSeedVectors(file, source);
    await source.close();

    const docs = corpus(24);
    // the longest document, encoded in the first chunk; the new one, short, is in the last
    const size = (d: { title: string; text: string }): number => d.title.length + d.text.length;
    const at = docs.reduce((best, d, i) => (size(d) > size(docs[best]!) ? i : best), 0);
    const changed = docs[at]!.id;
    docs[at] = { ...docs[at]!, title: `revised: ${docs[at]!.title}` };
    docs.push({ id: 'new', title: 'n', text: 'x' });
    const index = await SearchIndex.open(path.join(dir, 'b'), { backend, create: {} });
    await index.stageDocuments(docs);
    // the chunks holding the changed and the new document stay pending whole
    const chunks = index.pendingChunks(CHUNK);
    assert.ok(chunks[0]!.some((d) => d.id === changed) && chunks.at(-1)!.some((d) => d.id === 'new'));
    const kept = chunks.slice(1, -1);
    const { seeded } = await seedIndex(index, file, CHUNK);
    assert.equal(seeded, kept.flat().length);
    assert.ok(seeded > 0 && seeded < 24, `seeded ${seeded}`);
    const left = index.stats().pending;
    assert.equal(left, 25 - seeded);
    assert.equal(await index.encodePending({ documentsPerCommit: CHUNK }), left);
    const fresh = await backend.embedDocuments([`${docs[at]!.title}\n${docs[at]!.text}`]);
    assertSameVectors([index.getDocument(changed)!.vector!], fresh);
    assert.equal(index.stats().documents, 25);
    await index.close();
  } finally {
    cleanup();
  }
});

test('seed vectors: another model, another cut length or a foreign file is not used', async () => {
  const { dir, cleanup } = tempDir('seed-other');
  try {
    const model = await tinyModelDir(dir);
    const source = await built(path.join(dir, 'a'), await tinyBackend(model), 8);
    const file = path.join(dir, 'seed.safetensors');
    await saveSeedVectors(file, source);
    await source.close();

    const cases: [string, LocalBackend, RegExp][] = [
      ['other-model', await tinyBackend(await tinyModelDir(dir, 8)), /made with another model/],
      [
        'other-length',
        await LocalBackend.fromModelDir(model, { maxLength: 64 }),
        /made with another cut length \(maxLength\)/,
      ],
    ];
    for (const [name, backend, why] of cases) {
      const index = await SearchIndex.open(path.join(dir, name), { backend, create: {} });
      await index.stageDocuments(corpus(8));
      const r = await seedIndex(index, file, CHUNK);
      assert.equal(r.seeded, 0, name);
      assert.match(r.unusable ?? '', why);
      assert.equal(index.stats().pending, 8);
      await index.close();
    }

    const foreign = path.join(model, 'model.safetensors');
    const index = await SearchIndex.open(path.join(dir, 'c'), { backend: await tinyBackend(model), create: {} });
    await index.stageDocuments(corpus(8));
    await assert.rejects(seedIndex(index, foreign), /is not a file of seed vectors/);
    writeFileSync(path.join(dir, 'cut.safetensors'), Buffer.from([1, 2, 3]));
    await assert.rejects(seedIndex(index, path.join(dir, 'cut.safetensors')), /shorter than the 8-byte header/);
    assert.equal(index.stats().pending, 8);
    await index.close();
  } finally {
    cleanup();
  }
});
