import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { Embeddings } from '@langchain/core/embeddings';
import { Document, type DocumentInterface } from '@langchain/core/documents';
import {
  SearchR3Embeddings,
  SearchR3VectorStore,
  RemoteEmbedder,
  RemoteError,
  type RemoteOptions,
  SearchIndex,
  startSearchServer,
} from '../../src/index.js';
import { assertSameVectors, corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { documentText } from '../../src/search-index/document-source.js';
import { encodePrompt } from '../../src/embed/index.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { showValue } from '../../src/io/option-checks.js';
import { freePort } from '../helpers/redis.js';

test(
  'the remote backend over two local servers gives ' + 'the in-process vectors, spreads requests and retries',
  async () => {
    const { dir, cleanup } = tempDir('remote');
    const modelDir = await tinyModelDir(dir);
    const local = await tinyBackend(modelDir);
    const s1 = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
    const s2 = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
    // a flaky front for s2: the first two requests get 503, then it forwards
    let flaky = 2;
    const proxy = http.createServer((req, res) => {
      if (req.url === '/v1/embeddings' && flaky-- > 0) {
        req.resume();
        res.writeHead(503).end('{"error":{"message":"busy"}}');
        return;
      }
      const up = http.request(`${s2.url}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      });
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
      assert.ok(
        remote.requestsPerServer.get(s1.url)! > 1 && remote.requestsPerServer.get(proxyUrl)! > 1,
        JSON.stringify([...remote.requestsPerServer]),
      );
      assert.ok(flaky < 0, 'the 503s were retried');
      const qs = ['gene therapy', 'heart'];
      const rq = await remote.embedQueries(qs, { reasoning: 'on', maxReasoningTokens: 4 });
      const lq = await local.embedQueries(qs, { reasoning: 'on', maxReasoningTokens: 4 });
      assert.deepEqual(
        rq.map((q) => [q.reasoning, q.forced]),
        lq.map((q) => [q.reasoning, q.forced]),
      );
      assertSameVectors(
        rq.map((q) => q.vector),
        lq.map((q) => q.vector),
      );

      // an index built over the servers equals one built in-process, and either model may extend it
      const viaRemote = await SearchIndex.open(path.join(dir, 'remote-index'), { backend: remote, create: {} });
      await viaRemote.addDocuments(corpus(10), { chunkSize: 4 });
      const viaLocal = await SearchIndex.open(path.join(dir, 'local-index'), { backend: local, create: {} });
      await viaLocal.addDocuments(corpus(10));
      assert.deepEqual(viaRemote.documentIds(), viaLocal.documentIds());
      const ids = viaLocal.documentIds();
      assertSameVectors(
        ids.map((id) => viaRemote.getDocument(id)!.vector!),
        ids.map((id) => viaLocal.getDocument(id)!.vector!),
      );
      await viaRemote.close();
      await viaLocal.close();
      assert.ok(
        (await SearchIndex.open(path.join(dir, 'remote-index'), { backend: local }).then((i) => i.close())) ===
          undefined,
      );

      // one server gone: its requests fail over to the other
      await s1.close();
      assertSameVectors(await remote.embedDocuments(texts.slice(0, 7)), await local.embedDocuments(texts.slice(0, 7)));
    } finally {
      await s1.close();
      await s2.close();
      proxy.close();
      cleanup();
    }
  },
);

test('the remote backend refuses servers that serve different models, and reports 4xx without retrying', async () => {
  const { dir, cleanup } = tempDir('remote2');
  const a = await startSearchServer({ backend: await tinyBackend(await tinyModelDir(dir, 7)), port: 0 });
  const b = await startSearchServer({
    backend: await tinyBackend(await tinyModelDir(dir, 8)),
    port: 0,
    maxRequestTokens: 5,
  });
  try {
    await assert.rejects(
      RemoteEmbedder.connect([a.url, b.url]),
      (e: unknown) => e instanceof RemoteError && /all servers must serve the same model/.test(e.message),
    );
    await assert.rejects(RemoteEmbedder.connect(['http://127.0.0.1:1']), /cannot connect/);
    const rb = await RemoteEmbedder.connect([b.url], { backoffMs: 1 });
    await assert.rejects(
      rb.embedDocuments(['one two three four five six seven eight']),
      (e: unknown) => e instanceof RemoteError && e.status === 400 && /at most 5 tokens per request/.test(e.message),
    );
    assert.equal(rb.requestsPerServer.get(b.url), 1);
  } finally {
    await a.close();
    await b.close();
    cleanup();
  }
});

test('an empty document embeds over servers as in-process, inside its prompt', async () => {
  const { dir, cleanup } = tempDir('remote-empty');
  const modelDir = await tinyModelDir(dir);
  const local = await tinyBackend(modelDir);
  const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
  try {
    const remote = await RemoteEmbedder.connect([server.url]);
    const docs = [
      { id: 'e', title: '', text: '' },
      { id: 'a', title: 'A', text: 'x' },
    ];
    const index = await SearchIndex.open(path.join(dir, 'idx'), { backend: remote, create: {} });
    try {
      await index.addDocuments(docs);
      assert.deepEqual(index.documentIds().sort(), ['a', 'e']);
      assertSameVectors([index.getDocument('e')!.vector!], await local.embedDocuments(['']));
    } finally {
      await index.close();
    }
    const byUrl = new SearchR3Embeddings({ baseURL: server.url });
    const inProcess = new SearchR3Embeddings({ modelDir });
    assert.deepEqual(await byUrl.embedDocuments(['', 'x']), await inProcess.embedDocuments(['', 'x']));
    assert.deepEqual(await byUrl.embedQuery(''), await inProcess.embedQuery(''));
  } finally {
    await server.close();
    cleanup();
  }
});

test('a request the servers refuse while indexing names the documents it carried', async () => {
  const { dir, cleanup } = tempDir('remote-ids');
  const modelDir = await tinyModelDir(dir);
  const local = await tinyBackend(modelDir);
  const tok = local.embedder.tokenizer;
  const words = (n: number): string =>
    corpus(n, 3)
      .map((d) => d.title)
      .join(' ');
  // encoded longest first, two to a request: the long pair's request is over the servers' bound, the short pair's not
  const docs = [
    { id: 'short 1', title: '', text: words(1) },
    { id: 'short 2', title: '', text: words(1) },
    { id: 'long 1', title: '', text: words(6) },
    { id: 'long 2', title: '', text: words(6) },
  ];
  const tokens = (i: number): number => tok.encode(documentText(docs[i])).length;
  const server = await startSearchServer({
    backend: await tinyBackend(modelDir),
    port: 0,
    maxRequestTokens: tokens(0) + tokens(1),
  });
  // a generic server's error names the input it refuses: the index names that document alone
  const prompt = (i: number): number =>
    encodePrompt(tok, documentText(docs[i]), 'document', local.templates, 128).ids.length;
  const generic = await startSearchServer({
    backend: await tinyBackend(modelDir),
    port: 0,
    maxTokensPerInput: prompt(2) - 1,
  });
  try {
    assert.ok(tokens(2) + tokens(3) > tokens(0) + tokens(1));
    const remote = await RemoteEmbedder.connect([server.url], { inputsPerRequest: 2, concurrency: 1 });
    const index = await SearchIndex.open(path.join(dir, 'idx'), { backend: remote, create: {} });
    await assert.rejects(index.addDocuments(docs), (e: unknown) => {
      assert.ok(e instanceof RemoteError);
      assert.match(e.message, /^encoding documents "long 1", "long 2": http:\/\/\S+: HTTP 400: .*tokens per request/);
      return true;
    });
    await index.close();

    const openai = await RemoteEmbedder.connect([generic.url], {
      protocol: 'openai',
      model: 'search-r3',
      tokenizer: await Tokenizer.fromFolder(modelDir),
      maxLength: 128,
      modelId: local.modelId,
      inputsPerRequest: 4,
    });
    const docsLong = [docs[0], docs[1], docs[2]];
    const viaOpenai = await SearchIndex.open(path.join(dir, 'idx2'), { backend: openai, create: {} });
    await assert.rejects(viaOpenai.addDocuments(docsLong), (e: unknown) => {
      assert.ok(e instanceof RemoteError);
      assert.match(e.message, /^encoding document "long 1": http:\/\/\S+: HTTP 400: input\[0\]/);
      return true;
    });
    await viaOpenai.close();
  } finally {
    await server.close();
    await generic.close();
    cleanup();
  }
});

test('several requests refused: the error names the first refused inputs, whatever answer comes first', async () => {
  const { dir, cleanup } = tempDir('remote-first');
  const modelDir = await tinyModelDir(dir);
  const words = corpus(4, 3)
    .map((d) => d.title)
    .join(' ');
  const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0, maxRequestTokens: 4 });
  // a front that holds the first input's refusal until the second input's has gone out
  let secondSent!: () => void;
  const second = new Promise<void>((r) => (secondSent = r));
  const proxy = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      const text = Buffer.concat(body).toString();
      const up = http.request(`${server.url}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
        const answer: Buffer[] = [];
        r.on('data', (c: Buffer) => answer.push(c));
        r.on('end', () => {
          const send = (): void => void res.writeHead(r.statusCode!, r.headers).end(Buffer.concat(answer));
          if (text.includes('FIRST')) void second.then(send);
          else {
            send();
            if (text.includes('SECOND')) res.on('finish', secondSent);
          }
        });
      });
      up.end(Buffer.concat(body));
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  try {
    const remote = await RemoteEmbedder.connect([proxyUrl], { inputsPerRequest: 1, concurrency: 2 });
    await assert.rejects(remote.embedDocuments([`FIRST ${words}`, `SECOND ${words}`]), (e: unknown) => {
      assert.ok(e instanceof RemoteError);
      assert.match(e.message, /HTTP 400: .*tokens per request/);
      assert.deepEqual(e.failedInputs, { start: 0, end: 1 });
      return true;
    });
  } finally {
    await new Promise((r) => proxy.close(r));
    await server.close();
    cleanup();
  }
});

test(
  'SearchR3Embeddings is a LangChain Embeddings: documents ' + 'and queries use their prompts, in-process or remote',
  async () => {
    const { dir, cleanup } = tempDir('lc');
    const modelDir = await tinyModelDir(dir);
    const local = await tinyBackend(modelDir);
    const server = await startSearchServer({ backend: local, port: 0 });
    try {
      const docs = ['cells divide', 'vaccines train immunity', 'the heart pumps blood'];
      const wantDocs = (await local.embedDocuments(docs)).map((v) => Array.from(v));
      const wantQuery = Array.from((await local.embedQueries(['what pumps blood?']))[0].vector);
      // a fresh load of the folder uses the model's full context as its cut; these texts are short, so vectors agree
      // exactly where the batches are the same (batchSize 2 cuts them otherwise, which may change the last bits)
      const embeddings: [SearchR3Embeddings, boolean][] = [
        [new SearchR3Embeddings({ modelDir }), true],
        [new SearchR3Embeddings({ baseURL: server.url }), true],
        [new SearchR3Embeddings({ backend: local, batchSize: 2 }), false],
      ];
      for (const [emb, sameBatches] of embeddings) {
        assert.ok(emb instanceof Embeddings);
        const d = await emb.embedDocuments(docs);
        if (sameBatches) assert.deepEqual(d, wantDocs);
        else
          assertSameVectors(
            d.map((v) => Float32Array.from(v)),
            wantDocs.map((v) => Float32Array.from(v)),
          );
        assert.deepEqual(await emb.embedQuery('what pumps blood?'), wantQuery);
        assert.ok(d.every((v) => Array.isArray(v) && v.length === local.dimension && typeof v[0] === 'number'));
      }
      const reasoning = new SearchR3Embeddings({ backend: local, query: { reasoning: 'on', maxReasoningTokens: 4 } });
      assert.deepEqual(
        await reasoning.embedQuery('heart'),
        Array.from((await local.embedQueries(['heart'], { reasoning: 'on', maxReasoningTokens: 4 }))[0].vector),
      );
      assert.throws(() => new SearchR3Embeddings({}), /exactly one of modelDir, baseURL or backend/);
    } finally {
      await server.close();
      cleanup();
    }
  },
);

test('SearchR3VectorStore: a LangChain retriever over a search-r3 index', async () => {
  const { dir, cleanup } = tempDir('lcvs');
  const local = await tinyBackend(await tinyModelDir(dir));
  const index = await SearchIndex.open(path.join(dir, 'idx'), { backend: local, create: {} });
  try {
    const store = new SearchR3VectorStore(new SearchR3Embeddings({ backend: local }), index);
    const docs = corpus(12).map(
      (d) => new Document({ id: d.id, pageContent: d.text, metadata: { title: d.title, n: d.metadata!.n } }),
    );
    assert.deepEqual(
      await store.addDocuments(docs),
      docs.map((d) => d.id),
    );
    const anon = await store.addDocuments([new Document({ pageContent: 'no id here', metadata: {} })]);
    assert.equal(anon[0].length, 24);
    assert.deepEqual(
      await store.addDocuments([new Document({ pageContent: 'no id here', metadata: {} })]),
      anon,
      'same content, same id',
    );
    // the same content twice in one call, as over two calls: once, the last one's metadata kept
    const twice = [1, 2].map((n) => new Document({ pageContent: 'no id here', metadata: { n } }));
    assert.deepEqual(await store.addDocuments(twice), [anon[0], anon[0]]);
    assert.deepEqual(index.getDocument(anon[0])?.metadata, { n: 2 });
    // what ids and hashes are made of, refused before: these were TypeErrors, and ids given as a string its letters
    for (const [docs, ids, message] of [
      ['abc', undefined, "the documents must be an array of LangChain Documents (got 'abc')."],
      [[null], undefined, 'documents[0] must be a LangChain Document (got null).'],
      [[{ pageContent: 5, metadata: {} }], undefined, 'documents[0].pageContent must be a string (got 5).'],
      [twice, 'ab', "'ids' must be an array of strings, one per document (got 'ab')."],
      // the second document got a hash id without a word
      [twice, ['only-one'], "'ids' has 1 ids for 2 documents; give one per document."],
    ] as const)
      await assert.rejects(
        store.addDocuments(docs as unknown as DocumentInterface[], { ids: ids as unknown as string[] }),
        (e: unknown) => e instanceof Error && e.message === `SearchR3VectorStore: ${message}`,
        message,
      );
    assert.equal(index.stats().documents, 13);
    // the retriever embeds the query with the query prompt and returns LangChain Documents in index order
    const q = 'immune receptor signal';
    const want = (await index.search(q, { k: 3 })).hits;
    const got = await store.asRetriever(3).invoke(q);
    assert.ok(got.every((d) => d instanceof Document));
    assert.deepEqual(
      got.map((d) => d.id),
      want.map((h) => h.id),
    );
    assert.deepEqual(
      got.map((d) => d.pageContent),
      want.map((h) => h.text),
    );
    assert.equal(got[0].metadata.title, want[0].title);
    const scored = await store.similaritySearchWithScore(q, 2);
    assert.deepEqual(
      scored.map(([, s]) => s),
      want.slice(0, 2).map((h) => h.score),
    );
    await store.delete({ ids: [want[0].id] });
    assert.ok(!(await store.asRetriever(13).invoke(q)).some((d) => d.id === want[0].id));
    await assert.rejects(store.addVectors(), /embeds documents with its own model/);
    // a string became NaNs ("element 0 is NaN"), a number an empty vector: refused as what was given
    for (const [wrong, got] of [
      ['abc', "'abc'"],
      [5, '5'],
    ] as const)
      await assert.rejects(
        store.similaritySearchVectorWithScore(wrong as unknown as number[], 2),
        (e: unknown) =>
          e instanceof Error &&
          e.message === `SearchR3VectorStore: the query vector must be an array of numbers (got ${got}).`,
      );
    const [vq] = await store.embeddings.embedDocuments([q]);
    assert.equal((await store.similaritySearchVectorWithScore(vq, 2)).length, 2);
    // a metadata filter would be dropped, and documents it excludes returned: refused, by every path to it
    const noFilter = (e: unknown): boolean =>
      e instanceof Error && /^SearchR3VectorStore: a search-r3 index has no metadata filter/.test(e.message);
    const n0 = (d: DocumentInterface): boolean => d.metadata.n === 0;
    await assert.rejects(store.similaritySearch(q, 3, { n: 0 }), noFilter);
    await assert.rejects(store.similaritySearchWithScore(q, 3, n0), noFilter);
    await assert.rejects(store.asRetriever({ k: 3, filter: n0 }).invoke(q), noFilter);
    // LangChain's factories, which otherwise say the implementation forgot them and to report a bug
    const made = await SearchR3VectorStore.fromTexts(['made by fromTexts'], { title: 'F' }, store.embeddings, {
      index,
    });
    assert.equal(made.index, index);
    const [fromTexts] = await made.similaritySearch('made by fromTexts', 1);
    assert.deepEqual([fromTexts.pageContent, fromTexts.metadata.title], ['made by fromTexts', 'F']);
    const fromDocs = await SearchR3VectorStore.fromDocuments(
      [new Document({ id: 'fd', pageContent: 'made by fromDocuments' })],
      store.embeddings,
      { index },
    );
    assert.equal(fromDocs.index.getDocument('fd')?.text, 'made by fromDocuments');
    await assert.rejects(
      SearchR3VectorStore.fromDocuments([], store.embeddings, { index: path.join(dir, 'idx') } as never),
      (e: unknown) =>
        e instanceof Error &&
        e.message ===
          "SearchR3VectorStore: 'dbConfig.index' must be a SearchIndex, awaited: { index: await " +
            `SearchIndex.open(dir, { backend, create: {} }) } (got ${showValue(path.join(dir, 'idx'))}).`,
    );
  } finally {
    await index.close();
    cleanup();
  }
});

test('SearchR3Embeddings whose servers were down at its first call embeds once they are up', async () => {
  const { dir, cleanup } = tempDir('lcdown');
  const port = await freePort();
  const embeddings = new SearchR3Embeddings({ baseURL: `http://127.0.0.1:${port}`, maxRetries: 0 });
  try {
    await assert.rejects(embeddings.embedQuery('heart'), (e: unknown) => e instanceof RemoteError);
    const server = await startSearchServer({ backend: await tinyBackend(await tinyModelDir(dir)), port });
    try {
      // the failed connect was kept: every later call failed with it, the server up or not
      assert.equal((await embeddings.embedQuery('heart')).length, 32);
    } finally {
      await server.close();
    }
  } finally {
    cleanup();
  }
});

test('numeric options that would loop, run out of memory or return nothing are refused before any work', async () => {
  const { dir, cleanup } = tempDir('lcopts');
  try {
    const local = await tinyBackend(await tinyModelDir(dir));
    const lc = (message: string) => (e: unknown) =>
      e instanceof Error && e.message === `SearchR3Embeddings: ${message}`;
    // batchSize 0 would cut the documents into empty slices forever
    for (const [batchSize, shown] of [
      [0, '0'],
      [2.5, '2.5'],
      [NaN, 'NaN'],
    ] as const)
      assert.throws(
        () => new SearchR3Embeddings({ backend: local, batchSize }),
        lc(`'batchSize' must be a positive integer (got ${shown}).`),
      );
    assert.throws(
      () => new SearchR3Embeddings({ backend: local, query: { reasoning: 'on', temperature: NaN } }),
      lc("'query.temperature' must be a number ≥ 0 (got NaN)."),
    );
    assert.throws(
      () => new SearchR3Embeddings({ backend: local, query: { reasoning: 'yes' as 'on' } }),
      lc("'query.reasoning' must be 'on' or 'off' (got 'yes')."),
    );
    assert.equal((await new SearchR3Embeddings({ backend: local, batchSize: 1 }).embedDocuments(['a', 'b'])).length, 2);
    // texts that are not strings: refused at once, not after the six retries of LangChain's caller (a minute)
    const lcDefault = new SearchR3Embeddings({ backend: local });
    for (const [call, message] of [
      [
        () => lcDefault.embedDocuments('abc' as unknown as string[]),
        "the document texts must be an array of strings (got 'abc').",
      ],
      [() => lcDefault.embedDocuments(['a', 5 as unknown as string]), 'document text [1] must be a string (got 5).'],
      [() => lcDefault.embedQuery(5 as unknown as string), 'the query must be a string (got 5).'],
    ] as const)
      await assert.rejects(call(), lc(message), message);
    // refused before any server is asked: nothing listens on port 9, so a check after connecting would say so instead
    const remote = (message: string) => (e: unknown) => e instanceof RemoteError && e.message === message;
    const nowhere = ['http://127.0.0.1:9'];
    for (const [opts, message] of [
      [{ inputsPerRequest: 0 }, "'inputsPerRequest' must be a positive integer (got 0)."],
      [{ concurrency: 0 }, "'concurrency' must be a positive integer (got 0)."],
      [{ maxAttempts: 0.5 }, "'maxAttempts' must be a positive integer (got 0.5)."],
      [{ timeoutMs: NaN }, "'timeoutMs' must be an integer in [1, 2147483647] (got NaN)."],
      [{ backoffMs: -1 }, "'backoffMs' must be a number ≥ 0 (got -1)."],
      [{ protocol: 'vllm' }, "'protocol' must be 'search-r3' or 'openai' (got 'vllm')."],
    ] as const)
      await assert.rejects(RemoteEmbedder.connect(nowhere, opts as RemoteOptions), remote(message), message);
    await assert.rejects(
      RemoteEmbedder.connect(nowhere[0] as unknown as string[]),
      remote("the server URLs must be an array of strings (got 'http://127.0.0.1:9')."),
    );
    // "localhost:9" is a URL of scheme "localhost:", which fetch refused as a server that cannot be reached
    for (const url of ['127.0.0.1:9', 'localhost:9', 'not a url', 'ftp://127.0.0.1:9'])
      await assert.rejects(
        RemoteEmbedder.connect([nowhere[0], url]),
        remote(`the server URL '${url}' is not an http(s) URL; write it as http://host:port.`),
        url,
      );
    const server = await startSearchServer({ backend: local, port: 0 });
    try {
      const r = await RemoteEmbedder.connect([server.url]);
      await assert.rejects(
        r.embedQueries(['heart'], { maxReasoningTokens: -1 }),
        remote("'maxReasoningTokens' must be an integer ≥ 0 (got -1)."),
      );
      // texts too, before anything is sent: a string went as one input, a number as a token id
      for (const [call, message] of [
        [
          () => r.embedDocuments('abc' as unknown as string[]),
          "the document texts must be an array of strings (got 'abc').",
        ],
        [() => r.encodeDocuments([5 as unknown as string]), 'document text [0] must be a string (got 5).'],
        [() => r.embedQueries([null as unknown as string]), 'query text [0] must be a string (got null).'],
      ] as const)
        await assert.rejects(call(), remote(message), message);
      assert.equal(r.requestsPerServer.get(server.url) ?? 0, 0, 'no request sent');
    } finally {
      await server.close();
    }
  } finally {
    cleanup();
  }
});
