import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { IndexError } from '../../src/search-index/index-error.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from './fixtures.js';

test('f16 and i8 HNSW indexes rank like exact search over the f32 vectors, and keep their dtype', async () => {
  const { dir, cleanup } = tempDir('dtype');
  try {
    const backend = await tinyBackend(await tinyModelDir(dir));
    const docs = corpus(60);
    const queries = ['protein receptor signal', 'vaccine dose trial', 'brain tumor therapy', 'blood risk heart'];
    for (const dtype of ['f32', 'f16', 'i8'] as const) {
      const indexDir = path.join(dir, dtype);
      const index = await SearchIndex.open(indexDir, { backend, create: { dtype, hnsw: { expansionSearch: 200 } } });
      await index.addDocuments(docs);
      assert.equal(index.info.dtype, dtype);
      let overlap = 0,
        maxScoreDiff = 0;
      for (const q of queries) {
        const [{ vector }] = await backend.embedQueries([q]);
        const hnsw = await index.searchVector(vector, { k: 5, exact: false });
        const exact = await index.searchVector(vector, { k: 5, exact: true });
        overlap += hnsw.filter((h) => exact.some((e) => e.id === h.id)).length;
        // scores are cosines of the stored precision: close to the exact ones
        for (const h of hnsw) {
          const e = exact.find((x) => x.id === h.id);
          if (e) maxScoreDiff = Math.max(maxScoreDiff, Math.abs(h.score - e.score));
          if (e)
            assert.ok(
              Math.abs(h.score - e.score) < (dtype === 'i8' ? 0.05 : 2e-3),
              `${dtype}: ${h.score} vs ${e.score}`,
            );
        }
      }
      // the random tiny model puts all documents within a narrow cone, the hardest case for quantisation
      assert.ok(
        overlap / (5 * queries.length) >= (dtype === 'i8' ? 0.8 : 1),
        `${dtype}: top-5 overlap ${overlap}/${5 * queries.length}`,
      );
      // the stored precision shows in the scores: f32 agrees to rounding, f16 and i8 do not
      if (dtype === 'f32') assert.ok(maxScoreDiff < 1e-5, `f32 score diff ${maxScoreDiff}`);
      else
        assert.ok(maxScoreDiff > 1e-6, `${dtype} vectors were stored at lower precision (score diff ${maxScoreDiff})`);
      await index.close();
      await assert.rejects(
        SearchIndex.open(indexDir, { backend, create: { dtype: dtype === 'f32' ? 'i8' : 'f32' } }),
        (e: unknown) => e instanceof IndexError && /build a new index to change it/.test(e.message),
      );
    }
  } finally {
    cleanup();
  }
});
