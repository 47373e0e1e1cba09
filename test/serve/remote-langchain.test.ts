import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { Embeddings } from '@langchain/core/embeddings';
import { SearchR3Embeddings, RemoteEmbedder, RemoteError, SearchIndex, startSearchServer } from '../../src/index.js';
import { assertSameVectors, corpus, tempDir, tinyBackend, tinyModelDir } from '../index/fixtures.js';
import { documentText } from '../../src/index/document-source.js';

test('the remote backend over two local servers gives the in-process vectors, spreads requests and retries', async () => {
  const { dir, cleanup } = tempDir('remote');
  const modelDir = await tinyModelDir(dir);
  const local = await tinyBackend(modelDir);
  const s1 = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
  const s2 = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
  // a flaky front for s2: the first two requests get 503, then it forwards
  let flaky = 2;
  const proxy = http.createServer((req, res) => {
    if (req.url === '/v1/embeddings' && flaky-- > 0) { req.resume(); res.writeHead(503).end('{"error":{"message":"busy"}}'); return; }
    const up = http.request(`${s2.url}${req.url}`, { method: req.method, headers: req.headers }, (r) => { res.writeHead(r.statusCode!, r.headers); r.pipe(res); });
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  try {
    const remote = await RemoteEmbedder.connect([s1.url, proxyUrl], { inputsPerRequest: 3, backoffMs: 5 });
    assert.equal(remote.modelId, local.modelId);
    assert.equal(remote.dimension, local.dimension);
    const texts = corpus(20).map(documentText);
    const got = await remote.embedDocuments(texts);
    assertSameVectors(got, await local.embedDocuments(texts));
    // one request per server, same batch as in-process: bit-exact
    const whole = await RemoteEmbedder.connect([s1.url], { inputsPerRequest: 100 });
    assert.deepEqual(await whole.embedDocuments(texts), await local.embedDocuments(texts));
    assert.ok(remote.requestsPerServer.get(s1.url)! > 1 && remote.requestsPerServer.get(proxyUrl)! > 1, JSON.stringify([...remote.requestsPerServer]));
    assert.ok(flaky < 0, 'the 503s were retried');
    const qs = ['gene therapy', 'heart'];
    const rq = await remote.embedQueries(qs, { reasoning: 'on', maxReasoningTokens: 4 });
    const lq = await local.embedQueries(qs, { reasoning: 'on', maxReasoningTokens: 4 });
    assert.deepEqual(rq.map((q) => [q.reasoning, q.forced]), lq.map((q) => [q.reasoning, q.forced]));
    assertSameVectors(rq.map((q) => q.vector), lq.map((q) => q.vector));

    // an index built over the servers equals one built in-process, and either model may extend it
    const viaRemote = await SearchIndex.open(path.join(dir, 'remote-index'), { backend: remote, create: {} });
    await viaRemote.addDocuments(corpus(10), { chunkSize: 4 });
    const viaLocal = await SearchIndex.open(path.join(dir, 'local-index'), { backend: local, create: {} });
    await viaLocal.addDocuments(corpus(10));
    assert.deepEqual(viaRemote.documentIds(), viaLocal.documentIds());
    const ids = viaLocal.documentIds();
    assertSameVectors(ids.map((id) => viaRemote.getDocument(id)!.vector!), ids.map((id) => viaLocal.getDocument(id)!.vector!));
    await viaRemote.close();
    await viaLocal.close();
    assert.ok(await SearchIndex.open(path.join(dir, 'remote-index'), { backend: local }).then((i) => i.close()) === undefined);

    // one server gone: its requests fail over to the other
    await s1.close();
    assertSameVectors(await remote.embedDocuments(texts.slice(0, 7)), await local.embedDocuments(texts.slice(0, 7)));
  } finally {
    await s1.close();
    await s2.close();
    proxy.close();
    cleanup();
  }
});

test('the remote backend refuses servers that serve different models, and reports 4xx without retrying', async () => {
  const { dir, cleanup } = tempDir('remote2');
  const a = await startSearchServer({ backend: await tinyBackend(await tinyModelDir(dir, 7)), port: 0 });
  const b = await startSearchServer({ backend: await tinyBackend(await tinyModelDir(dir, 8)), port: 0, maxTokensPerInput: 5 });
  try {
    await assert.rejects(RemoteEmbedder.connect([a.url, b.url]), (e: unknown) => e instanceof RemoteError && /all servers must serve the same model/.test(e.message));
    await assert.rejects(RemoteEmbedder.connect(['http://127.0.0.1:1']), /cannot connect/);
    const rb = await RemoteEmbedder.connect([b.url], { backoffMs: 1 });
    await assert.rejects(rb.embedDocuments(['one two three four five six seven eight']), (e: unknown) => e instanceof RemoteError && e.status === 400 && /at most 5 tokens/.test(e.message));
    assert.equal(rb.requestsPerServer.get(b.url), 1);
  } finally {
    await a.close();
    await b.close();
    cleanup();
  }
});

test('SearchR3Embeddings is a LangChain Embeddings: documents and queries use their prompts, in-process or remote', async () => {
  const { dir, cleanup } = tempDir('lc');
  const modelDir = await tinyModelDir(dir);
  const local = await tinyBackend(modelDir);
  const server = await startSearchServer({ backend: local, port: 0 });
  try {
    const docs = ['cells divide', 'vaccines train immunity', 'the heart pumps blood'];
    const wantDocs = (await local.embedDocuments(docs)).map((v) => Array.from(v));
    const wantQuery = Array.from((await local.embedQueries(['what pumps blood?']))[0].vector);
    for (const emb of [new SearchR3Embeddings({ modelDir }), new SearchR3Embeddings({ baseURL: server.url }), new SearchR3Embeddings({ backend: local, batchSize: 2 })]) {
      assert.ok(emb instanceof Embeddings);
      const d = await emb.embedDocuments(docs);
      // a fresh load of the folder uses the model's full context as its cut; these texts are short, so vectors agree exactly
      assert.deepEqual(d, wantDocs);
      assert.deepEqual(await emb.embedQuery('what pumps blood?'), wantQuery);
      assert.ok(d.every((v) => Array.isArray(v) && v.length === local.dimension && typeof v[0] === 'number'));
    }
    const reasoning = new SearchR3Embeddings({ backend: local, query: { reasoning: 'on', maxReasoningTokens: 4 } });
    assert.deepEqual(await reasoning.embedQuery('heart'), Array.from((await local.embedQueries(['heart'], { reasoning: 'on', maxReasoningTokens: 4 }))[0].vector));
    assert.throws(() => new SearchR3Embeddings({}), /exactly one of modelDir, baseURL or backend/);
  } finally {
    await server.close();
    cleanup();
  }
});
