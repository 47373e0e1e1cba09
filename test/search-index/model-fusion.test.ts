import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ModelFileError } from '../../src/model/model-file-error.js';
import { modelFingerprint } from '../../src/model/model-fingerprint.js';
import { MODEL_SEARCH_FILE, readModelFusion, writeModelFusion } from '../../src/search-index/model-fusion.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from './fixtures.js';

test('a stored fusion reads back as written and leaves the model fingerprint (so its indexes) unchanged', async () => {
  const { dir, cleanup } = tempDir('fusion-file');
  try {
    const modelDir = await tinyModelDir(dir);
    assert.equal(readModelFusion(modelDir), undefined);
    const before = await modelFingerprint(modelDir);
    const fusion = { denseWeight: 0.3, k: 30, chosenOn: 'SciFact train, a 300-query sample (300 queries)' };
    await writeModelFusion(modelDir, fusion);
    assert.deepEqual(readModelFusion(modelDir), fusion);
    assert.equal(await modelFingerprint(modelDir), before);
    await assert.rejects(writeModelFusion(modelDir, { ...fusion, denseWeight: 2 }), /denseWeight' must be a number/);
  } finally {
    cleanup();
  }
});

test('a damaged or malformed search-r3.json is one error naming the file', async () => {
  const { dir, cleanup } = tempDir('fusion-bad');
  try {
    const modelDir = await tinyModelDir(dir);
    const file = path.join(modelDir, MODEL_SEARCH_FILE);
    const cases: [string, RegExp][] = [
      ['{"schema": "search-r3/model-search@1", "fusion": {"denseWeight": 0.3', /is damaged: not valid JSON/],
      ['{"fusion": {"denseWeight": 0.3, "k": 30, "chosenOn": "x"}}', /is not a search-r3 model search file/],
      ['{"schema": "search-r3/model-search@1"}', /has no 'fusion' object/],
      [
        '{"schema": "search-r3/model-search@1", "fusion": {"denseWeight": 0.3, "k": -1, "chosenOn": "x"}}',
        /'fusion\.k' must be a finite number ≥ 0/,
      ],
    ];
    for (const [text, why] of cases) {
      writeFileSync(file, text);
      assert.throws(
        () => readModelFusion(modelDir),
        (e: unknown) => e instanceof ModelFileError && e.file === file && why.test(e.message),
        text,
      );
      await assert.rejects(tinyBackend(modelDir), ModelFileError);
    }
  } finally {
    cleanup();
  }
});

test("hybrid search uses the model's stored fusion, and plain RRF (k = 60) without one", async () => {
  const { dir, cleanup } = tempDir('fusion-query');
  try {
    const modelDir = await tinyModelDir(dir);
    const docs = corpus(25);
    docs.push({ id: 'zebra', title: 'zebra', text: 'zebra stripes zebra savanna' });
    const indexDir = path.join(dir, 'index');
    const plainBackend = await tinyBackend(modelDir);
    assert.equal(plainBackend.fusion, undefined);
    const index = await SearchIndex.open(indexDir, { backend: plainBackend, create: {} });
    await index.addDocuments(docs);
    const query = 'zebra savanna';
    const dense = (await index.search(query, { k: docs.length })).hits.map((h) => h.id);
    const plain = (await index.search(query, { k: 5, hybrid: true })).hits;
    // plain RRF: the only BM25 match is in both rankings, BM25's first, so it scores above 1/61 and leads
    assert.equal(plain[0]!.id, 'zebra');
    assert.ok(plain[0]!.score > 1 / 61);
    await index.close();

    // dense weight 1: BM25 counts for nothing, so the hybrid is the dense order scored 1/(10 + rank)
    await writeModelFusion(modelDir, { denseWeight: 1, k: 10, chosenOn: 'a test' });
    const backend = await tinyBackend(modelDir);
    assert.deepEqual(backend.fusion, { denseWeight: 1, k: 10, chosenOn: 'a test' });
    const reopened = await SearchIndex.open(indexDir, { backend });
    const hits = (await reopened.search(query, { k: 5, hybrid: true })).hits;
    assert.deepEqual(
      hits.map((h) => h.id),
      dense.slice(0, 5),
    );
    hits.forEach((h, i) => assert.equal(h.score, 1 / (10 + i + 1)));
    await reopened.close();
  } finally {
    cleanup();
  }
});
