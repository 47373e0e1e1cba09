/** What OpenAI-compatible clients and proxies expect beyond the core routes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import OpenAI from 'openai';
import { LocalBackend, Tokenizer, startSearchServer } from '../../src/index.js';
import { tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
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
