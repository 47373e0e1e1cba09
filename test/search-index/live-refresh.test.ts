import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { documentText } from '../../src/search-index/document-source.js';
import { startSearchServer } from '../../src/serve/server.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from './fixtures.js';

test('a reader (and a running server) picks up documents another process adds, updates and deletes', async () => {
  const { dir, cleanup } = tempDir('live');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const indexDir = path.join(dir, 'idx');
  const docs = corpus(20);
  const writer = await SearchIndex.open(indexDir, { backend, create: {} });
  await writer.addDocuments(docs.slice(0, 15));
  const reader = await SearchIndex.open(indexDir, { backend });
  const server = await startSearchServer({ backend, index: reader, port: 0, refreshMs: 0 });
  try {
    assert.equal(await reader.refresh(), false);
    await writer.addDocuments([
      ...docs.slice(0, 4),
      { ...docs[4], text: 'rewritten text on astronomy' },
      ...docs.slice(5),
    ]);
    await writer.deleteDocuments([docs[0].id]);
    const [v17] = await backend.embedDocuments([documentText(docs[17])]);
    // before refresh the HNSW graph in memory does not know d017 yet
    assert.ok(!(await reader.searchVector(v17, { k: 3, exact: false })).some((h) => h.id === docs[17].id));
    assert.equal(await reader.refresh(), true);
    const hnsw = await reader.searchVector(v17, { k: 20, exact: false });
    assert.equal(hnsw[0].id, docs[17].id);
    assert.ok(!hnsw.some((h) => h.id === docs[0].id));
    assert.equal(hnsw.find((h) => h.id === docs[4].id)?.text, 'rewritten text on astronomy');

    // the server sees the next change without a restart
    await writer.addDocuments([{ id: 'late', title: 'late arrival', text: 'zebra savanna migration' }]);
    const r = await fetch(`${server.url}/v1/search`, {
      method: 'POST',
      body: JSON.stringify({ query: 'zebra savanna migration', k: 50 }),
    });
    const ids = ((await r.json()) as { data: { id: string }[] }).data.map((d) => d.id);
    assert.equal(ids.length, 20);
    assert.ok(ids.includes('late') && !ids.includes(docs[0].id));
    const health = (await (await fetch(`${server.url}/health`)).json()) as { index: { documents: number } };
    assert.equal(health.index.documents, 20);
  } finally {
    await server.close();
    await reader.close();
    await writer.close();
    cleanup();
  }
});
