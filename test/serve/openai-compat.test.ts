/** What OpenAI-compatible clients and proxies expect beyond the core routes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import OpenAI from 'openai';
import path from 'node:path';
import { LocalBackend, SearchIndex, Tokenizer, startSearchServer } from '../../src/index.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { type Reply, post, request } from '../helpers/http.js';

test('chat completions without max_tokens get what the context leaves after the prompt', async () => {
  const { dir, cleanup } = tempDir('chatdef');
  const modelDir = await tinyModelDir(dir);
  // a cut below the context (128 of 256), and the model's whole context as the default model has it
  const servers = [
    await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 }),
    await startSearchServer({ backend: await LocalBackend.fromModelDir(modelDir), port: 0 }),
  ];
  try {
    const tokenizer = await Tokenizer.fromFolder(modelDir);
    const messages = [{ role: 'user' as const, content: 'which protein binds the receptor?' }];
    const promptTokens = tokenizer.encode(tokenizer.renderChat(messages, { addGenerationPrompt: true })).length;
    for (const [server, context] of [
      [servers[0], 128],
      [servers[1], 256],
    ] as const) {
      const client = new OpenAI({ apiKey: 'x', baseURL: `${server.url}/v1`, maxRetries: 0 });
      // no stop token can end it early: it runs to the room left
      const r = await client.chat.completions.create({
        model: 'search-r3',
        messages,
        temperature: 0,
        stop: ['no such text'],
      });
      assert.equal(r.usage!.prompt_tokens, promptTokens);
      const completion = r.usage!.completion_tokens;
      // as vLLM counts: prompt + completion fill the context, and no more
      const room = context - promptTokens;
      assert.ok(completion >= 1 && completion <= room, JSON.stringify(r.usage));
      if (r.choices[0].finish_reason === 'length') assert.equal(completion, room);
      const exact = await post(server.url, '/v1/chat/completions', { model: 'search-r3', messages, max_tokens: room });
      assert.equal(exact.status, 200, JSON.stringify(exact.body));
      // an explicit max_tokens beyond the room is still refused, naming the context
      await assert.rejects(
        client.chat.completions.create({ model: 'search-r3', messages, max_tokens: room + 1 }),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.message.includes(`at most ${room} tokens are left`),
      );
      // as many messages as the context has tokens, however short, leave no room: refused before they are rendered
      const many = Array.from({ length: context }, () => ({ role: 'user', content: '' }));
      const refused = await post(server.url, '/v1/chat/completions', { model: 'search-r3', messages: many });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error!.code, 'context_length_exceeded');
      assert.equal(refused.body.error!.param, 'messages');
      assert.match(refused.body.error!.message, new RegExp(`^the conversation has ${context} messages`));
    }
  } finally {
    for (const s of servers) await s.close();
    cleanup();
  }
});

test("a message's fields other than role and content are ignored, whatever they hold", async () => {
  const { dir, cleanup } = tempDir('chat-extra');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0 });
  try {
    const ask = (messages: string): Promise<Reply> =>
      request(
        server.url,
        'POST',
        '/v1/chat/completions',
        `{"model":"search-r3","max_tokens":1,"messages":${messages}}`,
      );
    const plain = await ask('[{"role":"user","content":"hi"},{"role":"assistant","content":""}]');
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    const deep = '['.repeat(4000) + ']'.repeat(4000);
    const toolCall = '[{"type":"function","function":{"name":"lookup","arguments":{"q":"x"}}}]';
    for (const extra of [`"x":${deep}`, '"tool_calls":5', `"tool_calls":${toolCall}`, '"name":"bob"']) {
      const r = await ask(`[{"role":"user","content":"hi",${extra}},{"role":"assistant","content":"",${extra}}]`);
      assert.equal(r.status, 200, `${extra.slice(0, 40)}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body.usage, plain.body.usage, 'the prompt the template rendered is the same');
    }
  } finally {
    await server.close();
    cleanup();
  }
});

test('chat: developer messages and text parts are taken; fields that would change the answer are refused', async () => {
  const { dir, cleanup } = tempDir('chat-fields');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0 });
  try {
    const chat = (fields: Record<string, unknown>, messages?: unknown): Promise<Reply> =>
      post(server.url, '/v1/chat/completions', {
        model: 'search-r3',
        max_tokens: 3,
        temperature: 0,
        messages: messages ?? [{ role: 'user', content: 'which protein binds?' }],
        ...fields,
      });
    const refused = (r: Reply, code: string, param: string): void => {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error!.type, 'invalid_request_error');
      assert.equal(r.body.error!.code, code);
      assert.equal(r.body.error!.param, param);
      assert.ok(r.body.error!.message.includes(`'${param}'`) || r.body.error!.message.includes(param));
    };
    const plain = await chat({});
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    // what changes the answer and is not done is refused by name; its neutral value, and null, are taken
    for (const [field, value] of [
      ['response_format', { type: 'json_object' }],
      ['tools', [{ type: 'function', function: { name: 'f' } }]],
      ['tool_choice', 'auto'],
      ['presence_penalty', 0.5],
      ['frequency_penalty', 1],
      ['logit_bias', { 5: 10 }],
      ['reasoning_effort', 'low'],
      ['modalities', ['text', 'audio']],
    ] as const) {
      const r = await chat({ [field]: value });
      refused(r, 'unsupported_parameter', field);
      assert.match(r.body.error!.message, new RegExp(`^'${field}' is not supported by this server: leave it out`));
    }
    refused(await chat({ top_k: 5 }), 'unknown_parameter', 'top_k');
    const two = await chat({ top_k: 5, min_p: 0.1, response_format: { type: 'json_object' } });
    refused(two, 'unknown_parameter', 'top_k');
    assert.equal(two.body.error!.message, "'top_k' and 'min_p' are not fields of chat completions; leave them out.");
    const neutral = {
      response_format: { type: 'text' },
      tools: [],
      tool_choice: 'none',
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: {},
      modalities: ['text'],
      reasoning_effort: null,
      user: 'u-1',
      metadata: { team: 'x' },
      store: false,
      service_tier: 'auto',
      parallel_tool_calls: true,
    };
    const taken = await chat(neutral);
    assert.equal(taken.status, 200, JSON.stringify(taken.body));
    assert.deepEqual((taken.body.choices as unknown[])[0], (plain.body.choices as unknown[])[0]);

    // developer is OpenAI's newer name for system; text parts are joined by newlines
    const system = await chat({}, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'which protein\nbinds?' },
    ]);
    const developer = await chat({}, [
      { role: 'developer', content: [{ type: 'text', text: 'Be brief.' }] },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'which protein' },
          { type: 'text', text: 'binds?' },
        ],
      },
    ]);
    assert.equal(developer.status, 200, JSON.stringify(developer.body));
    assert.deepEqual(developer.body.usage, system.body.usage);
    assert.deepEqual((developer.body.choices as unknown[])[0], (system.body.choices as unknown[])[0]);
    const image = { type: 'image_url', image_url: { url: 'http://x/y.png' } };
    const withImage = await chat({}, [{ role: 'user', content: [{ type: 'text', text: 'what is it?' }, image] }]);
    refused(withImage, 'unsupported_parameter', 'messages[0].content[1]');
    assert.match(withImage.body.error!.message, /is a 'image_url' part; this server's model reads text alone/);
    refused(await chat({}, [{ role: 'user', content: [{ type: 'text' }] }]), 'invalid_value', 'messages[0].content[0]');
    refused(await chat({}, [{ role: 'tool', content: 'x' }]), 'invalid_value', 'messages[0]');
  } finally {
    await server.close();
    cleanup();
  }
});

test('embeddings: usage counts the tokens embedded, after a cut; an unknown search_r3 field is refused', async () => {
  const { dir, cleanup } = tempDir('emb-usage');
  const modelDir = await tinyModelDir(dir);
  const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0 });
  try {
    const tokenizer = await Tokenizer.fromFolder(modelDir);
    const long = 'cells divide and the heart pumps blood '.repeat(60);
    const given = tokenizer.encode(long).length;
    const r = await post(server.url, '/v1/embeddings', {
      model: 'search-r3',
      input: [long, 'heart'],
      search_r3: { truncate: true },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const cut = (r.body.search_r3 as { truncated_tokens: number }[]).map((x) => x.truncated_tokens);
    assert.ok(cut[0] > 0 && cut[1] === 0, JSON.stringify(cut));
    const embedded = given - cut[0] + tokenizer.encode('heart').length;
    assert.deepEqual(r.body.usage, { prompt_tokens: embedded, total_tokens: embedded });
    assert.ok(embedded < 128, 'no more than the cut length of 128 was embedded');

    const typo = await post(server.url, '/v1/embeddings', {
      model: 'search-r3',
      input: 'x',
      search_r3: { mode: 'query', max_reasoning: 4 },
    });
    assert.equal(typo.status, 400);
    assert.equal(typo.body.error!.code, 'unknown_parameter');
    assert.equal(typo.body.error!.param, 'search_r3.max_reasoning');
    assert.equal(
      typo.body.error!.message,
      "'search_r3.max_reasoning' is not a field of the search_r3 extension, which takes mode, reasoning, " +
        'max_reasoning_tokens, temperature, top_p, seed, truncate; leave it out.',
    );
    const two = await post(server.url, '/v1/embeddings', {
      model: 'search-r3',
      input: 'x',
      search_r3: { mode: 'query', max_reasoning: 4, topp: 0.5, seed: null },
    });
    assert.equal(two.status, 400);
    assert.equal(two.body.error!.param, 'search_r3.max_reasoning');
    assert.match(two.body.error!.message, /^'search_r3\.max_reasoning' and 'search_r3\.topp' are not fields of /);
  } finally {
    await server.close();
    cleanup();
  }
});

test('embeddings: truncate cuts a text to --max-tokens; total_tokens adds the analyses generated', async () => {
  const { dir, cleanup } = tempDir('emb-cut');
  const modelDir = await tinyModelDir(dir);
  const server = await startSearchServer({ backend: await tinyBackend(modelDir), port: 0, maxTokensPerInput: 20 });
  const emb = (input: unknown, ext: Record<string, unknown>): Promise<Reply> =>
    post(server.url, '/v1/embeddings', { model: 'search-r3', input, search_r3: ext });
  try {
    const tokenizer = await Tokenizer.fromFolder(modelDir);
    // over --max-tokens (20), well within the prompt's room (the cut length is 128)
    const text = 'cells divide and the heart pumps blood '.repeat(2);
    const given = tokenizer.encode(text).length;
    assert.ok(given > 20 && given < 100, `${given} tokens`);
    assert.equal((await emb(text, {})).body.error?.code, 'context_length_exceeded');
    const r = await emb(text, { truncate: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const cut = (r.body.search_r3 as { truncated_tokens: number }[])[0].truncated_tokens;
    const kept = given - cut;
    assert.ok(kept <= 20 && kept >= 19, `${kept} tokens kept of ${given}: at most --max-tokens`);
    assert.deepEqual(r.body.usage, { prompt_tokens: kept, total_tokens: kept });
    // embedded as the text of its first tokens is, sent alone
    const head = await emb(tokenizer.decode(tokenizer.encode(text).slice(0, kept)), {});
    const [a, b] = [r, head].map((x) => (x.body.data as { embedding: number[] }[])[0].embedding);
    assert.ok(Math.max(...a.map((v, i) => Math.abs(v - b[i]))) <= 1e-6);
    // the analyses are tokens the model generated: counted in the total, as /v1/search counts them
    const q = await emb(['heart', 'cells'], { mode: 'query', reasoning: 'on', max_reasoning_tokens: 4 });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    const generated = (q.body.search_r3 as { reasoning_tokens: number }[]).reduce((s, x) => s + x.reasoning_tokens, 0);
    assert.ok(generated > 0);
    const prompt = tokenizer.encode('heart').length + tokenizer.encode('cells').length;
    assert.deepEqual(q.body.usage, { prompt_tokens: prompt, total_tokens: prompt + generated });
  } finally {
    await server.close();
    cleanup();
  }
});

test('GET /v1/models/{id} and HEAD /health', async () => {
  const { dir, cleanup } = tempDir('models');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0, modelName: 'org/sr3' });
  try {
    const client = new OpenAI({ apiKey: 'x', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const m = await client.models.retrieve('org/sr3');
    assert.equal(m.id, 'org/sr3');
    assert.equal(m.object, 'model');
    await assert.rejects(client.models.retrieve('gpt-4'), (e: unknown) => e instanceof OpenAI.NotFoundError);
    const missing = await request(server.url, 'GET', '/v1/models/gpt-4');
    assert.equal(missing.body.error?.code, 'model_not_found');

    const head = await request(server.url, 'HEAD', '/health');
    assert.equal(head.status, 200);
    assert.equal(head.raw.length, 0);
    assert.match(String(head.headers['content-type']), /application\/json/);
  } finally {
    await server.close();
    cleanup();
  }
});

/** gzip of `size` bytes of one repeated byte, streamed so the test never holds them. */
async function gzipBomb(size: number): Promise<Buffer> {
  const chunk = Buffer.alloc(1 << 20, 0x61);
  const source = Readable.from(
    (function* () {
      for (let n = 0; n < size; n += chunk.length) yield chunk;
    })(),
  );
  const parts: Buffer[] = [];
  for await (const c of source.pipe(zlib.createGzip({ level: 9 }))) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('gzip request bodies are read, with the body limit applied to the decompressed size', async () => {
  const { dir, cleanup } = tempDir('gzip');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0 });
  try {
    const body = JSON.stringify({ model: 'search-r3', input: ['cells divide', 'the heart pumps blood'] });
    const send = (b: string | Buffer, encoding: string, chunked = false): Promise<Reply> =>
      request(server.url, 'POST', '/v1/embeddings', b, { headers: { 'content-encoding': encoding }, chunked });
    const plain = await post(server.url, '/v1/embeddings', body);
    const zipped = await send(zlib.gzipSync(body), 'gzip');
    assert.equal(zipped.status, 200, JSON.stringify(zipped.body));
    assert.deepEqual(zipped.body.data, plain.body.data);
    const chunked = await send(zlib.gzipSync(body), 'GZIP', true);
    assert.deepEqual(chunked.body.data, plain.body.data);

    // 256 MiB that compress to ~250 KB: refused at the limit (1 MiB), without inflating the rest
    const bomb = await gzipBomb(256 << 20);
    assert.ok(bomb.length < 1 << 20);
    const rssBefore = process.memoryUsage.rss();
    const r = await send(bomb, 'gzip');
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'request_too_large');
    assert.match(r.body.error!.message, /decompressed/);
    const grown = (process.memoryUsage.rss() - rssBefore) / 2 ** 20;
    assert.ok(grown < 64, `RSS grew by ${grown.toFixed(0)} MiB`);

    const broken = await send(Buffer.from('not gzip at all'), 'gzip');
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error?.code, 'invalid_body');
    const compress = await send(body, 'compress');
    assert.equal(compress.status, 415);
    assert.equal(compress.body.error?.code, 'unsupported_encoding');
    // the server still answers plain requests
    assert.equal((await post(server.url, '/v1/embeddings', body)).status, 200);
  } finally {
    await server.close();
    cleanup();
  }
});

test('embeddings and search take the fields they have, and refuse any other by name in one sentence', async () => {
  const { dir, cleanup } = tempDir('fields');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
  await index.addDocuments(corpus(5));
  const server = await startSearchServer({ backend, index, port: 0 });
  try {
    const refused = (r: Reply, param: string, message: string, code = 'unknown_parameter'): void => {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual(r.body.error, { message, type: 'invalid_request_error', param, code });
    };
    const embeddings = 'of /v1/embeddings, which takes model, input, encoding_format, dimensions, user, search_r3';
    const emb = (fields: Record<string, unknown>): Promise<Reply> =>
      post(server.url, '/v1/embeddings', { model: 'search-r3', input: 'heart disease', ...fields });
    // OpenAI's fields: each honoured, or taken as asking for nothing (user; dimensions at the model's own size)
    const plain = await emb({ encoding_format: 'float' });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    const vector = (plain.body.data as { embedding: number[] }[])[0].embedding;
    const all = await emb({ encoding_format: 'float', user: 'u-1', dimensions: vector.length, unused: null });
    assert.deepEqual(all.body.data, plain.body.data);
    const b64 = await emb({ encoding_format: 'base64' });
    const bytes = Buffer.from((b64.body.data as { embedding: string }[])[0].embedding, 'base64');
    assert.deepEqual(Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)), vector);
    refused(
      await emb({ dimensions: 8 }),
      'dimensions',
      `'dimensions' must be ${vector.length} or left out: this model's vectors have ${vector.length} and cannot ` +
        `be shortened.`,
      'invalid_value',
    );
    refused(await emb({ mode: 'query' }), 'mode', `'mode' is not a field ${embeddings}; leave it out.`);
    refused(
      await emb({ input: [1, 2, 3], truncate: true, normalize: false }),
      'truncate',
      `'truncate' and 'normalize' are not fields ${embeddings}; leave them out.`,
    );
    // the official client: its default base64 is decoded, `dimensions` and an unknown field raise its BadRequestError
    const client = new OpenAI({ apiKey: 'none', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const got = await client.embeddings.create({ model: 'search-r3', input: 'heart disease', user: 'u-1' });
    assert.deepEqual(Array.from(got.data[0].embedding), vector);
    for (const extra of [{ dimensions: 8 }, { mode: 'query' }]) {
      await assert.rejects(
        client.embeddings.create({ model: 'search-r3', input: 'x', ...extra } as OpenAI.EmbeddingCreateParams),
        (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === Object.keys(extra)[0],
      );
    }

    const search =
      'of /v1/search, which takes model, query, k, reasoning, hybrid, highlight, truncate, ' +
      'max_reasoning_tokens, temperature, top_p, seed';
    const found = await post(server.url, '/v1/search', { query: 'heart', k: 2, hybrid: true, user: null });
    assert.equal(found.status, 200, JSON.stringify(found.body));
    refused(
      await post(server.url, '/v1/search', { query: 'heart', top_k: 2 }),
      'top_k',
      `'top_k' is not a field ${search}; leave it out.`,
    );
    refused(
      await post(server.url, '/v1/search', { query: 'heart', stream: true }),
      'stream',
      `'stream' is not a field ${search}; leave it out.`,
    );
    // the stream is refused as a JSON 400 before any event, as every bad request to it is
    const stream = await post(server.url, '/v1/search/stream', { query: 'heart', filter: { year: 2020 } });
    refused(
      stream,
      'filter',
      `'filter' is not a field ${search.replace('/v1/search', '/v1/search/stream')}; leave it out.`,
    );
  } finally {
    await server.close();
    await index.close();
    cleanup();
  }
});
