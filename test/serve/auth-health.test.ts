/** API keys, what /health tells whom, and a damaged index under a running server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RemoteEmbedder } from '../../src/client/remote-embedder.js';
import { writeModelFusion } from '../../src/search-index/model-fusion.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { startSearchServer } from '../../src/serve/server.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { type Reply, post, request } from '../helpers/http.js';

/** Every string anywhere in a JSON value. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v !== null && typeof v === 'object') return Object.values(v).flatMap(strings);
  return [];
}

test('API keys: Bearer in any case, keys of any length; /health without the key tells only the status', async () => {
  const { dir, cleanup } = tempDir('auth2');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0, apiKey: 'k1-secret' });
  try {
    const body = { model: 'search-r3', input: 'x' };
    for (const auth of ['Bearer k1-secret', 'bearer k1-secret', 'BEARER k1-secret', 'Bearer  k1-secret']) {
      assert.equal((await post(server.url, '/v1/embeddings', body, { authorization: auth })).status, 200, auth);
    }
    const wrong = [
      'Bearer k1-secreT',
      'Bearer k1',
      'Bearer k1-secret-and-more',
      'Basic k1-secret',
      'k1-secret',
      'Bearer',
    ];
    for (const auth of wrong) {
      const r = await post(server.url, '/v1/embeddings', body, { authorization: auth });
      assert.equal(r.status, 401, `${auth}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, 'invalid_api_key');
    }
    const anonymous = await request(server.url, 'GET', '/health');
    assert.equal(anonymous.status, 200);
    assert.deepEqual(anonymous.body, { status: 'ok' });
    const health = (authorization: string): Promise<Reply> =>
      request(server.url, 'GET', '/health', undefined, { headers: { authorization } });
    assert.deepEqual((await health('Bearer nope')).body, { status: 'ok' });
    const full = await health('bearer k1-secret');
    assert.equal(full.body.model_id, backend.modelId);
    assert.equal(full.body.dimension, backend.dimension);
    // an open route refuses a method it does not take alike, key or not
    for (const headers of [{}, { authorization: 'Bearer k1-secret' }] as Record<string, string>[]) {
      const r = await request(server.url, 'POST', '/health', '{}', { headers });
      assert.equal(r.status, 405, JSON.stringify(headers));
      assert.equal(r.body.error?.code, 'method_not_allowed');
      assert.equal(r.headers.allow, 'GET, HEAD');
    }
  } finally {
    await server.close();
    cleanup();
  }
});

test('a key beyond ASCII is taken whether a client sends it as UTF-8 (curl) or as Latin-1 (Python)', async () => {
  const { dir, cleanup } = tempDir('auth-utf8');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0, apiKey: 'voilà' });
  /**
   * The header with these bytes on the wire: Node's http client writes each of its characters as one byte, when
   * the body is a Buffer (with a string body it writes the header as UTF-8, with the body).
   */
  const sent = (bytes: Buffer): string => bytes.toString('latin1');
  try {
    const body = Buffer.from(JSON.stringify({ model: 'search-r3', input: 'x' }));
    const status = async (authorization: string): Promise<number> =>
      (await request(server.url, 'POST', '/v1/embeddings', body, { headers: { authorization } })).status;
    // curl writes the key's UTF-8 bytes, the last of them 0xA0, Latin-1's no-break space
    assert.equal(await status(sent(Buffer.from('Bearer voilà', 'utf8'))), 200, 'UTF-8');
    assert.equal(await status(sent(Buffer.from('Bearer voilà', 'latin1'))), 200, 'Latin-1');
    assert.equal(await status(sent(Buffer.from('Bearer voila', 'utf8'))), 401, 'another key');
    assert.equal(await status(sent(Buffer.from('Bearer voilà!', 'utf8'))), 401, 'another key, beyond ASCII');
  } finally {
    await server.close();
    cleanup();
  }
});

test('/health never shows absolute paths of the machine', async () => {
  const { dir, cleanup } = tempDir('paths');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const index = await SearchIndex.open(path.join(dir, 'idx'), { backend, create: {} });
  await index.addDocuments(corpus(5));
  const server = await startSearchServer({ backend, index, port: 0 });
  try {
    const h = await request(server.url, 'GET', '/health');
    assert.equal(h.status, 200);
    assert.equal(h.body.model_id, backend.modelId);
    assert.equal((h.body.index as { documents: number }).documents, 5);
    const leaks = strings(h.body).filter((s) => s.includes(dir) || path.isAbsolute(s));
    assert.deepEqual(leaks, []);
  } finally {
    await server.close();
    await index.close();
    cleanup();
  }
});

test("/health tells the model's stored fusion, and a remote client fuses with it", async () => {
  const { dir, cleanup } = tempDir('fusion');
  const modelDir = await tinyModelDir(dir);
  const fusion = { denseWeight: 0.3, k: 30, chosenOn: 'a dev split' };
  await writeModelFusion(modelDir, fusion);
  const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
  try {
    const h = await request(server.url, 'GET', '/health');
    assert.deepEqual(h.body.fusion, { dense_weight: 0.3, k: 30, chosen_on: 'a dev split' });
    const remote = await RemoteEmbedder.connect([server.url]);
    assert.deepEqual(remote.fusion, fusion);
  } finally {
    await server.close();
    cleanup();
  }
});

test('a damaged docs.sqlite under a running server: 503 with the reason on /health and /v1/search', async () => {
  const { dir, cleanup } = tempDir('corrupt');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const indexDir = path.join(dir, 'idx');
  const writer = await SearchIndex.open(indexDir, { backend, create: {} });
  await writer.addDocuments(corpus(40));
  await writer.close();
  const index = await SearchIndex.open(indexDir, { backend });
  const server = await startSearchServer({ backend, index, port: 0, refreshMs: 0 });
  try {
    assert.equal((await post(server.url, '/v1/search', { query: 'immune cell' })).status, 200);
    const docs = path.join(indexDir, 'docs.sqlite');
    writeFileSync(docs, randomBytes(statSync(docs).size));
    // an open connection keeps serving cached pages until the WAL index says the file changed, as another
    // process's commit (or a restore of the folder) does: a zeroed docs.sqlite-shm says so
    if (existsSync(`${docs}-shm`)) writeFileSync(`${docs}-shm`, Buffer.alloc(statSync(`${docs}-shm`).size));

    const h = await request(server.url, 'GET', '/health');
    assert.equal(h.status, 503, JSON.stringify(h.body));
    assert.equal(h.body.status, 'error');
    assert.equal(typeof h.body.reason, 'string');
    assert.match(h.body.reason as string, /index/);
    assert.ok(!(h.body.reason as string).includes(dir), h.body.reason as string);
    assert.equal((await request(server.url, 'HEAD', '/health')).status, 503);

    const s = await post(server.url, '/v1/search', { query: 'immune cell' });
    assert.equal(s.status, 503, JSON.stringify(s.body));
    assert.equal(s.body.error?.code, 'index_unavailable');
    assert.equal(s.body.error?.type, 'server_error');
    assert.match(s.body.error!.message, /index/);
    // embeddings do not need the index and still work
    assert.equal((await post(server.url, '/v1/embeddings', { model: 'search-r3', input: 'x' })).status, 200);
  } finally {
    await server.close();
    await index.close().catch(() => undefined);
    cleanup();
  }
});
