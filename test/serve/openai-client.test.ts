import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import OpenAI from 'openai';
import { reasoningPrompts } from '../../src/embed/index.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { startSearchServer } from '../../src/serve/server.js';
import { assertSameVectors, corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { post } from '../helpers/http.js';

test(
  'the official openai client gets the in-process vectors from ' +
    '/v1/embeddings (base64 and float, documents and queries)',
  async () => {
    const { dir, cleanup } = tempDir('oai');
    const backend = await tinyBackend(await tinyModelDir(dir));
    const server = await startSearchServer({ backend, port: 0, apiKey: 'sekret' });
    try {
      const client = new OpenAI({ apiKey: 'sekret', baseURL: `${server.url}/v1`, maxRetries: 0 });
      const texts = ['the first document', 'a second, longer document about proteins and cells', 'three'];
      const want = await backend.embedDocuments(texts);

      // the client asks for base64 and decodes it
      const b64 = await client.embeddings.create({ model: 'search-r3', input: texts });
      assert.equal(b64.data.length, 3);
      b64.data.forEach((d, i) => {
        assert.equal(d.index, i);
        assert.deepEqual(Float32Array.from(d.embedding), want[i]);
      });
      assert.equal(b64.model, 'search-r3');
      assert.ok(b64.usage.prompt_tokens > 0 && b64.usage.total_tokens === b64.usage.prompt_tokens);

      // alone, as the server embeds a one-input request (another batch shape can change the last bits)
      const flt = await client.embeddings.create({ model: 'search-r3', input: texts[1], encoding_format: 'float' });
      assert.deepEqual(Float32Array.from(flt.data[0].embedding), (await backend.embedDocuments([texts[1]]))[0]);

      // the extension field picks query mode; vectors then equal embedQueries
      const [q] = await backend.embedQueries(['what binds proteins?']);
      const qr = await client.embeddings.create({
        model: 'search-r3',
        input: 'what binds proteins?',
        search_r3: { mode: 'query' },
      } as OpenAI.EmbeddingCreateParams);
      assert.deepEqual(Float32Array.from(qr.data[0].embedding), q.vector);
      assert.notDeepEqual(
        Float32Array.from(qr.data[0].embedding),
        (await backend.embedDocuments(['what binds proteins?']))[0],
      );

      // with reasoning the response carries the analysis; the vector equals in-process greedy reasoning
      const [qr2] = await backend.embedQueries(['heart disease'], { reasoning: 'on', maxReasoningTokens: 6 });
      const rr = await client.embeddings.create({
        model: 'search-r3',
        input: ['heart disease'],
        search_r3: { mode: 'query', reasoning: 'on', max_reasoning_tokens: 6 },
      } as OpenAI.EmbeddingCreateParams);
      assert.deepEqual(Float32Array.from(rr.data[0].embedding), qr2.vector);
      const ext = (rr as unknown as { search_r3: { reasoning: string; forced: boolean }[] }).search_r3;
      assert.deepEqual(ext, [{ reasoning: qr2.reasoning, forced: qr2.forced, reasoning_tokens: qr2.tokens.length }]);

      // wrong key: the client raises its AuthenticationError
      const bad = new OpenAI({ apiKey: 'wrong', baseURL: `${server.url}/v1`, maxRetries: 0 });
      await assert.rejects(
        bad.embeddings.create({ model: 'search-r3', input: 'x' }),
        (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401,
      );
      const models = await client.models.list();
      assert.deepEqual(
        models.data.map((m) => m.id),
        ['search-r3'],
      );
    } finally {
      await server.close();
      cleanup();
    }
  },
);

test('concurrent requests share forward batches and each gets its own vectors', async () => {
  const { dir, cleanup } = tempDir('batch');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0, maxWaitMs: 20 });
  try {
    const client = new OpenAI({ apiKey: 'x', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const texts = Array.from({ length: 24 }, (_, i) => `document number ${i} ${'word '.repeat(i % 7)}`);
    const want = await backend.embedDocuments(texts);
    const got = await Promise.all(texts.map((t) => client.embeddings.create({ model: 'search-r3', input: t })));
    // each response carries its own input's vector (equal up to the rounding a different batch shape may cause)
    assertSameVectors(
      got.map((r) => Float32Array.from(r.data[0].embedding)),
      want,
    );
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const batches = Number(/search_r3_batches_total\{kind="direct"\} (\d+)/.exec(metrics)![1]);
    const inputs = Number(/search_r3_batch_inputs_total\{kind="direct"\} (\d+)/.exec(metrics)![1]);
    assert.equal(inputs, 24);
    assert.ok(batches < 24, `24 concurrent requests ran in ${batches} batches`);
    assert.match(metrics, /search_r3_http_requests_total\{route="\/v1\/embeddings",status="200"\} 24/);
    assert.match(metrics, /# TYPE search_r3_http_request_duration_seconds histogram/);
  } finally {
    await server.close();
    cleanup();
  }
});

test('/v1/search returns what SearchIndex.search returns, with reasoning and hybrid options', async () => {
  const { dir, cleanup } = tempDir('srch');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
  await index.addDocuments(corpus(40));
  const server = await startSearchServer({ backend, index, port: 0 });
  try {
    const post = async (body: unknown): Promise<Record<string, unknown>> => {
      const r = await fetch(`${server.url}/v1/search`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      assert.equal(r.status, 200);
      return r.json() as Promise<Record<string, unknown>>;
    };
    for (const opts of [{ k: 5 }, { k: 3, hybrid: true }, { k: 4, reasoning: 'on' as const, maxReasoningTokens: 5 }]) {
      const want = await index.search('immune cell therapy', opts);
      const got = await post({
        query: 'immune cell therapy',
        k: opts.k,
        hybrid: opts.hybrid,
        reasoning: opts.reasoning,
        max_reasoning_tokens: opts.maxReasoningTokens,
      });
      const data = got.data as { id: string; score: number; rank: number }[];
      assert.deepEqual(
        data.map((d) => d.id),
        want.hits.map((h) => h.id),
      );
      assert.deepEqual(
        data.map((d) => d.score),
        want.hits.map((h) => h.score),
      );
      if (opts.reasoning) assert.equal(got.reasoning, want.reasoning);
    }
    const health = (await (await fetch(`${server.url}/health`)).json()) as {
      status: string;
      index: { documents: number };
      model_id: string;
    };
    assert.equal(health.status, 'ok');
    assert.equal(health.index.documents, 40);
    assert.equal(health.model_id, backend.modelId);
  } finally {
    await server.close();
    await index.close();
    cleanup();
  }
});

test(
  'max_reasoning_tokens 0 reasons not at all: the vector is at <|embed_token|> forced right after the prompt',
  { timeout: 60_000 },
  async () => {
    const { dir, cleanup } = tempDir('budget0');
    const backend = await tinyBackend(await tinyModelDir(dir));
    const server = await startSearchServer({ backend, port: 0 });
    try {
      const e = backend.embedder;
      const text = 'heart disease';
      const [prompt] = reasoningPrompts(e.tokenizer, [text], e.templates, e.maxLength, 0).prompts;
      const [want] = e.forwardBatches([[...prompt!.ids, e.embedId]]);
      const local = e.embedQuery(text, { reasoning: 'on', maxReasoningTokens: 0 });
      assert.deepEqual(local.tokens, [], 'in process: nothing generated');
      assert.equal(local.forced, true);
      assertSameVectors([local.vector], [want!]);

      const r = await post(server.url, '/v1/embeddings', {
        model: 'search-r3',
        input: [text],
        search_r3: { mode: 'query', reasoning: 'on', max_reasoning_tokens: 0 },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.search_r3, [{ reasoning: '', forced: true, reasoning_tokens: 0 }]);
      const [got] = (r.body.data as { embedding: number[] }[]).map((d) => Float32Array.from(d.embedding));
      assertSameVectors([got!], [want!]);
    } finally {
      await server.close();
      cleanup();
    }
  },
);
