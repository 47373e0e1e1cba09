import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SearchIndex } from '../../src/search-index/search-index.js';
import type { SourceDocument } from '../../src/search-index/document-source.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from './fixtures.js';

const QUERIES = ['protein cell', 'cancer vaccine gene gene', 'brain heart virus drug', 'immune', 'zebra'];

/** Every hit of each query (k covers the whole index), with its fused, dense and BM25 scores. */
async function hybridHits(index: SearchIndex): Promise<unknown[]> {
  const out = [];
  for (const q of QUERIES) out.push((await index.search(q, { k: 60, hybrid: true })).hits);
  return out;
}

test('hybrid search after each add, replacement and delete equals a fresh build; BM25 is built once', async () => {
  const { dir, cleanup } = tempDir('hyb-live');
  try {
    const modelDir = await tinyModelDir(dir);
    const backend = await tinyBackend(modelDir);
    const indexDir = path.join(dir, 'index');
    const writer = await SearchIndex.open(indexDir, { backend, create: {} });
    await writer.addDocuments(corpus(12, 3));
    const follower = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir) });
    await hybridHits(writer);
    await hybridHits(follower);
    let seed = 5;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const texts = corpus(200, 9).map((d) => d.text);
    const text = (): string => texts[Math.floor(rand() * texts.length)]!;
    for (let round = 0; round < 8; round++) {
      const ids = writer.documentIds();
      const pick = (): string => ids[Math.floor(rand() * ids.length)]!;
      if (round % 3 === 2) {
        assert.ok((await writer.deleteDocuments([pick(), pick(), 'absent'])).length > 0);
      } else {
        const docs: SourceDocument[] = [
          { id: `new-${round}-a`, title: '', text: text() },
          { id: `new-${round}-b`, title: round === 0 ? 'zebra' : '', text: text() },
          { id: pick(), title: '', text: text() }, // a replacement
        ];
        await writer.addDocuments(docs);
      }
      const fresh = await SearchIndex.open(indexDir, { backend: await tinyBackend(modelDir) });
      const want = await hybridHits(fresh);
      assert.deepEqual(await hybridHits(writer), want, `round ${round}`);
      // another process's commits are taken up by refresh() and rebuilt from docs.sqlite
      await follower.refresh();
      assert.deepEqual(await hybridHits(follower), want, `round ${round}, follower`);
      assert.equal(fresh.bm25Builds, 1);
      await fresh.close();
    }
    assert.equal(writer.bm25Builds, 1);
    // its first index is the one the writer saved as bm25.bin at its first hybrid search; the writer saves its
    // followed commits only at close, so each later generation is rebuilt
    assert.equal(follower.bm25Loads, 1);
    assert.equal(follower.bm25Builds, 8);
    await writer.close();
    await follower.close();
  } finally {
    cleanup();
  }
});
