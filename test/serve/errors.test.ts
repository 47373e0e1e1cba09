import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import OpenAI from 'openai';
import { createSearchServer, startSearchServer } from '../../src/serve/server.js';
import { WorkerBackend } from '../../src/serve/model-worker.js';
import { LocalBackend } from '../../src/search-index/embedding-backend.js';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { type Reply, request } from '../helpers/http.js';
import { until } from '../helpers/until.js';
import { showValue } from '../../src/io/option-checks.js';

test('malformed and oversized requests get the documented 4xx in OpenAI error shape', async () => {
  const { dir, cleanup } = tempDir('err');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({
    backend,
    port: 0,
    maxInputs: 4,
    maxTokensPerInput: 20,
    maxBodyBytes: 2000,
    maxQueue: 4,
  });
  const emb = (body: unknown): Promise<Reply> =>
    request(
      server.url,
      'POST',
      '/v1/embeddings',
      typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    );
  const expect = (r: Reply, status: number, code: string | null, param?: string | null): void => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.ok(r.body.error, 'OpenAI error shape');
    assert.equal(typeof r.body.error.message, 'string');
    assert.equal(r.body.error.code, code);
    if (param !== undefined) assert.equal(r.body.error.param, param);
    assert.equal(r.body.error.type, status === 429 ? 'rate_limit_error' : 'invalid_request_error');
  };
  try {
    expect(await emb('{"model": "search-r3", "input": '), 400, 'invalid_json', null);
    expect(await emb('[1, 2]'), 400, 'invalid_json');
    // 'café' in Latin-1: decoded to U+FFFD it would be embedded as another text
    const latin1 = await emb(Buffer.from('{"model": "search-r3", "input": "caf\xe9"}', 'latin1'));
    expect(latin1, 400, 'invalid_json', null);
    assert.equal(latin1.body.error!.message, 'the body is not UTF-8; send the JSON encoded as UTF-8.');
    // a byte-order mark before the JSON is taken, as RFC 8259 lets a parser take it
    const bom = await emb(`\ufeff${JSON.stringify({ model: 'search-r3', input: 'café' })}`);
    assert.equal(bom.status, 200, JSON.stringify(bom.body));
    expect(await emb({ model: 'search-r3' }), 400, 'missing_required_parameter', 'input');
    expect(await emb({ input: 'x' }), 400, 'missing_required_parameter', 'model');
    expect(await emb({ model: 'search-r3', input: [1, 'two', 3] }), 400, 'invalid_type', 'input');
    const badId = await emb({
      model: 'search-r3',
      input: [
        [1, 2],
        [3, 1e9],
      ],
    });
    expect(badId, 400, 'invalid_value', 'input[1]');
    assert.match(badId.body.error!.message, /^input\[1\]\[1\] is 1000000000, not a token id in \[0, \d+\)\.$/);
    // one flat sequence is the input itself, as one string is: errors name `input`, not `input[0]`
    const flatBad = await emb({ model: 'search-r3', input: [1, 2, -3] });
    expect(flatBad, 400, 'invalid_value', 'input');
    assert.match(flatBad.body.error!.message, /^input\[2\] is -3, not a token id/);
    expect(
      await emb({ model: 'search-r3', input: [1, 2], search_r3: { mode: 'query' } }),
      400,
      'invalid_value',
      'search_r3',
    );
    expect(
      await emb({ model: 'search-r3', input: Array.from({ length: 200 }, () => 5) }),
      400,
      'context_length_exceeded',
      'input',
    );
    // token ids are bound by --max-tokens (20 here) as texts are, not only by the context
    const ids = (n: number): number[] => Array.from({ length: n }, () => 5);
    const over = await emb({ model: 'search-r3', input: [ids(3), ids(21)] });
    expect(over, 400, 'context_length_exceeded', 'input[1]');
    assert.equal(
      over.body.error!.message,
      'input[1] has 21 tokens; this server accepts at most 20 tokens per input (--max-tokens); shorten it.',
      'no truncate for token ids, which are embedded as given',
    );
    assert.equal((await emb({ model: 'search-r3', input: [ids(3), ids(20)] })).status, 200);
    const chat = (body: unknown): Promise<Reply> =>
      request(server.url, 'POST', '/v1/chat/completions', JSON.stringify(body));
    expect(await chat({ model: 'search-r3' }), 400, 'missing_required_parameter', 'messages');
    expect(
      await chat({ model: 'search-r3', messages: [{ role: 'robot', content: 'x' }] }),
      400,
      'invalid_value',
      'messages[0]',
    );
    expect(
      await chat({ model: 'search-r3', messages: [{ role: 'user', content: 'x' }], n: 2 }),
      400,
      'invalid_value',
      'n',
    );
    expect(
      await chat({ model: 'search-r3', messages: [{ role: 'user', content: 'x' }], max_tokens: 0 }),
      400,
      'invalid_value',
      'max_tokens',
    );
    expect(
      await chat({ model: 'search-r3', messages: [{ role: 'user', content: 'x' }], max_tokens: 4000 }),
      400,
      'context_length_exceeded',
      'messages',
    );
    expect(await emb({ model: 'search-r3', input: [] }), 400, 'invalid_value', 'input');
    // an empty text is refused, as OpenAI refuses it, unless the request speaks search-r3's protocol: it is then
    // embedded inside its prompt, as in-process encoding embeds it
    const empty = await emb({ model: 'search-r3', input: ['a', ''] });
    expect(empty, 400, 'invalid_value', 'input[1]');
    assert.match(empty.body.error!.message, /^input\[1\] is an empty string; send "search_r3": \{\} to embed it/);
    const prompted = await emb({ model: 'search-r3', input: ['a', ''], search_r3: {} });
    assert.equal(prompted.status, 200, JSON.stringify(prompted.body));
    assert.equal((prompted.body.data as unknown[]).length, 2);
    // one text sent as a string is named by the field, as it was sent
    expect(await emb({ model: 'search-r3', input: '' }), 400, 'invalid_value', 'input');
    const longOne = await emb({ model: 'search-r3', input: 'word '.repeat(40) });
    expect(longOne, 400, 'context_length_exceeded', 'input');
    assert.match(longOne.body.error!.message, /^input has \d+ tokens/);
    expect(await emb({ model: 'search-r3', input: ['a', 'b', 'c', 'd', 'e'] }), 400, 'too_many_inputs', 'input');
    const long = await emb({ model: 'search-r3', input: ['short', 'word '.repeat(40)] });
    expect(long, 400, 'context_length_exceeded', 'input[1]');
    assert.match(
      long.body.error!.message,
      /^input\[1\] has \d+ tokens; this server accepts at most 20 tokens per input/,
    );
    assert.match(long.body.error!.message, /shorten it, or set 'search_r3\.truncate' to true to cut it to fit\.$/);
    expect(
      await emb({ model: 'search-r3', input: 'x', encoding_format: 'int8' }),
      400,
      'invalid_value',
      'encoding_format',
    );
    expect(await emb({ model: 'search-r3', input: 'x', dimensions: 8 }), 400, 'invalid_value', 'dimensions');
    expect(await emb({ model: 'search-r3', input: [1, 2], dimensions: 8 }), 400, 'invalid_value', 'dimensions');
    const seeded = { mode: 'query', reasoning: 'on', temperature: 1, seed: 1.5 };
    expect(await emb({ model: 'search-r3', input: 'x', search_r3: seeded }), 400, 'invalid_value', 'search_r3.seed');
    const say = [{ role: 'user', content: 'x' }];
    for (const stream of ['true', 1, 'float']) {
      expect(await chat({ model: 'search-r3', messages: say, stream }), 400, 'invalid_type', 'stream');
    }
    const options = (stream: boolean, stream_options: unknown): Promise<Reply> =>
      chat({ model: 'search-r3', messages: say, stream, stream_options });
    expect(await options(false, { include_usage: true }), 400, 'invalid_value', 'stream_options');
    expect(await options(true, 'usage'), 400, 'invalid_type', 'stream_options');
    expect(await options(true, { include_usage: 'yes' }), 400, 'invalid_type', 'stream_options.include_usage');
    // a prompt the model worker finds too long for the context is a JSON 400 when streamed too
    const streamedTooLong = await chat({ model: 'search-r3', messages: say, max_tokens: 4000, stream: true });
    expect(streamedTooLong, 400, 'context_length_exceeded', 'messages');
    assert.match(String(streamedTooLong.headers['content-type']), /^application\/json/);
    // null is an unset field, as OpenAI's clients send it
    const nulls = await chat({
      model: 'search-r3',
      messages: say,
      max_tokens: 2,
      max_completion_tokens: null,
      top_p: null,
      seed: null,
      n: null,
      logprobs: null,
      top_logprobs: null,
    });
    assert.equal(nulls.status, 200, JSON.stringify(nulls.body));
    // an error names the field that was sent
    expect(
      await chat({ model: 'search-r3', messages: say, max_completion_tokens: 0 }),
      400,
      'invalid_value',
      'max_completion_tokens',
    );
    expect(
      await chat({ model: 'search-r3', messages: say, max_completion_tokens: 1.5, max_tokens: 2 }),
      400,
      'invalid_value',
      'max_completion_tokens',
    );
    const tooMany = await chat({ model: 'search-r3', messages: say, max_completion_tokens: 4000 });
    expect(tooMany, 400, 'context_length_exceeded', 'messages');
    assert.match(tooMany.body.error!.message, /with max_completion_tokens 4000 it exceeds the context/);
    assert.match(tooMany.body.error!.message, /leave max_completion_tokens out to get them/);
    // each of the two that is sent is checked, the one that is not used too
    expect(
      await chat({ model: 'search-r3', messages: say, max_tokens: 'x', max_completion_tokens: 5 }),
      400,
      'invalid_type',
      'max_tokens',
    );
    // a value of the wrong JSON type is invalid_type; one of the right type that is refused, invalid_value
    for (const [field, value, code] of [
      ['max_tokens', '5', 'invalid_type'],
      ['n', '1', 'invalid_type'],
      ['stop', 5, 'invalid_type'],
      ['stop', ['a', 5], 'invalid_type'],
      ['stop', ['a', ''], 'invalid_value'],
      ['temperature', 'hot', 'invalid_type'],
      ['seed', '1', 'invalid_type'],
    ] as const) {
      expect(await chat({ model: 'search-r3', messages: say, [field]: value }), 400, code, field);
    }
    // null is "not given": a request that must name the model and sends null has not named it
    expect(await chat({ model: null, messages: say }), 400, 'missing_required_parameter', 'model');
    expect(await emb({ model: null, input: 'x' }), 400, 'missing_required_parameter', 'model');
    for (const [extra, param, code] of [
      [{ encoding_format: 5 }, 'encoding_format', 'invalid_type'],
      [{ dimensions: '64' }, 'dimensions', 'invalid_type'],
      [{ dimensions: 3 }, 'dimensions', 'invalid_value'],
      [{ search_r3: { mode: 5 } }, 'search_r3.mode', 'invalid_type'],
      [{ search_r3: { mode: 'query', reasoning: 1 } }, 'search_r3.reasoning', 'invalid_type'],
      [{ search_r3: { mode: 'query', max_reasoning_tokens: '8' } }, 'search_r3.max_reasoning_tokens', 'invalid_type'],
    ] as const) {
      expect(await emb({ model: 'search-r3', input: 'x', ...extra }), 400, code, param);
    }
    // log-probabilities are not computed: asking for them is refused, not answered with logprobs: null
    expect(await chat({ model: 'search-r3', messages: say, logprobs: true }), 400, 'unsupported_parameter', 'logprobs');
    expect(await chat({ model: 'search-r3', messages: say, logprobs: 'yes' }), 400, 'invalid_type', 'logprobs');
    expect(
      await chat({ model: 'search-r3', messages: say, top_logprobs: 2 }),
      400,
      'unsupported_parameter',
      'top_logprobs',
    );
    assert.equal((await chat({ model: 'search-r3', messages: say, max_tokens: 1, logprobs: false })).status, 200);
    expect(
      await emb({ model: 'search-r3', input: 'x', search_r3: { mode: 'passage' } }),
      400,
      'invalid_value',
      'search_r3.mode',
    );
    expect(
      await emb({ model: 'search-r3', input: 'x', search_r3: { reasoning: 'on' } }),
      400,
      'invalid_value',
      'search_r3.reasoning',
    );
    expect(
      await emb({ model: 'search-r3', input: 'x', search_r3: { mode: 'query', reasoning: 'on', temperature: -1 } }),
      400,
      'invalid_value',
      'search_r3.temperature',
    );
    expect(await emb({ model: 'gpt-4', input: 'x' }), 404, 'model_not_found', 'model');
    // too large: by declared length, and streamed without one
    const big = JSON.stringify({ model: 'search-r3', input: 'a'.repeat(3000) });
    expect(await emb(big), 413, 'request_too_large');
    expect(await request(server.url, 'POST', '/v1/embeddings', big, { chunked: true }), 413, 'request_too_large');
    // a queue smaller than maxInputs is refused at start (the options test below), so the input bound is the one met
    const client = new OpenAI({ apiKey: 'x', baseURL: `${server.url}/v1`, maxRetries: 0 });
    await assert.rejects(
      client.embeddings.create({ model: 'search-r3', input: ['a', 'b', 'c', 'd', 'e'] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && /at most 4/.test(e.message),
    );
    // routes and methods: a known path with another method is a 405 that says which it takes
    for (const [method, path, allow] of [
      ['GET', '/v1/embeddings', 'POST'],
      ['PUT', '/v1/chat/completions', 'POST'],
      ['POST', '/v1/models', 'GET, HEAD'],
      ['DELETE', '/v1/models/search-r3', 'GET, HEAD'],
      ['POST', '/health', 'GET, HEAD'],
      ['POST', '/metrics', 'GET, HEAD'],
    ]) {
      const r = await request(server.url, method!, path!);
      expect(r, 405, 'method_not_allowed', null);
      assert.equal(r.headers.allow, allow, `${method} ${path}`);
      assert.equal(r.body.error!.message, `${path} takes ${allow!.replace(', ', ' or ')}, not ${method}.`);
    }
    const head = await request(server.url, 'HEAD', '/v1/models');
    assert.equal(head.status, 200, 'HEAD where GET is');
    assert.equal(head.raw.length, 0);
    expect(await request(server.url, 'GET', '/v2/nothing'), 404, 'not_found');
    expect(await request(server.url, 'POST', '/v1/search', JSON.stringify({ query: 'x' })), 404, 'no_index');
    // the server still works after all that
    assert.equal((await emb({ model: 'search-r3', input: ['fine', 'also fine'] })).status, 200);
  } finally {
    await server.close();
    cleanup();
  }
});

/** The server's inputs waiting for or in a forward pass, from /metrics. */
async function queued(url: string): Promise<number> {
  const m = (await request(url, 'GET', '/metrics')).raw.toString();
  return Number(/^search_r3_queue_inputs (\d+)/m.exec(m)?.[1]);
}

/** The inputs the server's forward passes have embedded, from /metrics. */
async function embeddedInputs(url: string): Promise<number> {
  const m = (await request(url, 'GET', '/metrics')).raw.toString();
  return [...m.matchAll(/^search_r3_batch_inputs_total(?:\{[^}]*\})? (\d+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
}

test('a full queue is a 429 (RateLimitError) for a request that fits it once the queue drains', async () => {
  const { dir, cleanup } = tempDir('queue-full');
  const backend = await tinyBackend(await tinyModelDir(dir));
  // a long batching wait and large batches keep the first request's inputs in the queue
  const server = await startSearchServer({
    backend,
    port: 0,
    maxQueue: 4,
    maxInputs: 4,
    maxWaitMs: 3000,
    maxBatchInputs: 1024,
  });
  try {
    const client = new OpenAI({ apiKey: 'x', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const first = client.embeddings.create({ model: 'search-r3', input: ['a', 'b', 'c'] });
    await until(
      async () => (await queued(server.url)) === 3,
      10_000,
      () => 'the first request never queued',
    );
    const second = await request(
      server.url,
      'POST',
      '/v1/embeddings',
      JSON.stringify({ model: 'search-r3', input: ['d', 'e'] }),
    );
    assert.equal(second.status, 429, JSON.stringify(second.body));
    assert.equal(second.body.error?.code, 'rate_limit_exceeded');
    await assert.rejects(
      client.embeddings.create({ model: 'search-r3', input: ['d', 'e'] }),
      (e: unknown) => e instanceof OpenAI.RateLimitError,
    );
    assert.equal((await first).data.length, 3);
    assert.equal((await client.embeddings.create({ model: 'search-r3', input: ['d', 'e'] })).data.length, 2);
  } finally {
    await server.close();
    cleanup();
  }
});

test('bearer auth guards everything but /health', async () => {
  const { dir, cleanup } = tempDir('auth');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0, apiKey: 'k1' });
  try {
    const body = JSON.stringify({ model: 'search-r3', input: 'x' });
    const r = await request(server.url, 'POST', '/v1/embeddings', body);
    assert.equal(r.status, 401);
    assert.deepEqual(Object.keys(r.body.error!).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(r.body.error!.type, 'authentication_error');
    const withKey = (authorization: string): Promise<Reply> =>
      request(server.url, 'POST', '/v1/embeddings', body, { headers: { authorization } });
    assert.equal((await withKey('Bearer k2')).status, 401);
    assert.equal((await request(server.url, 'GET', '/metrics')).status, 401);
    assert.equal((await withKey('Bearer k1')).status, 200);
    assert.equal((await request(server.url, 'GET', '/health')).status, 200);
  } finally {
    await server.close();
    cleanup();
  }
});

test('graceful shutdown answers in-flight requests, then refuses connections', async () => {
  const { dir, cleanup } = tempDir('shut');
  const backend = await tinyBackend(await tinyModelDir(dir));
  // a long batching wait keeps the request in flight while close() starts
  const server = await startSearchServer({ backend, port: 0, maxWaitMs: 300 });
  try {
    const inflight = request(
      server.url,
      'POST',
      '/v1/embeddings',
      JSON.stringify({ model: 'search-r3', input: ['in flight'] }),
    );
    await until(
      async () => (await queued(server.url)) === 1,
      10_000,
      () => 'the request never queued',
    );
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal((r.body.data as unknown[]).length, 1);
    await closing;
    assert.ok(closed);
    await assert.rejects(request(server.url, 'GET', '/health'), /ECONNREFUSED/);
  } finally {
    await server.close();
    cleanup();
  }
});

/** Sends raw bytes on one connection and gathers what comes back until the server closes it or `ms` pass. */
function rawExchange(url: string, bytes: string, ms = 2000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(bytes));
    let got = '';
    socket.on('data', (d) => (got += d.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    setTimeout(() => socket.destroy(), ms);
  });
}

test('a request target that is no URL, or no valid percent-encoding, is a 400 (with an API key too)', async () => {
  const { dir, cleanup } = tempDir('bad-url');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0, apiKey: 'secret' });
  try {
    const got = await rawExchange(server.url, 'GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 400 /);
    assert.match(got, /"code":"invalid_path"/);
    // a path beginning with '//' is a path, not the URL of a host: '//x/health' was answered as /health, '//health'
    // as the playground at /, and '//v1/embeddings' refused as 'no route POST /embeddings'
    const auth = { headers: { authorization: 'Bearer secret' } };
    for (const [method, target] of [
      ['GET', '//health'],
      ['GET', '//x/health'],
      ['GET', '//v1/models'],
      ['POST', '//v1/embeddings'],
      // a prefix route's bare prefix asked for the model (or run, or file) '': "The model '' does not exist"
      ['GET', '/v1/models/'],
      ['GET', '/v1/runs/'],
      ['GET', '/web/'],
    ]) {
      const r = await request(server.url, method!, target!, JSON.stringify({ model: 'search-r3', input: 'x' }), auth);
      assert.equal(r.status, 404, `${target}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.message, `no route ${method} ${target}.`);
    }
    // a target in absolute form (as a proxy sends it) names its path after the host
    const absolute = await rawExchange(
      server.url,
      'GET http://example.com/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    assert.match(absolute, /^HTTP\/1\.1 200 /);
    // a path that is not valid percent-encoding, whatever route it would name
    for (const target of ['/%zz', '/v1/models/%E0%A4%A', '/web/%zz', '/v1/embeddings%']) {
      const r = await request(server.url, 'GET', target);
      assert.equal(r.status, 400, target);
      assert.equal(r.body.error?.code, 'invalid_path', target);
    }
    const health = await request(server.url, 'GET', '/health');
    assert.equal(health.status, 200, 'still serving');
  } finally {
    await server.close();
    cleanup();
  }
});

test("a request Node's HTTP parser refuses gets its status and an error in OpenAI's shape", async () => {
  const { dir, cleanup } = tempDir('parser-refused');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0 });
  /** The status line and the error of the one answer to `bytes`. */
  const answer = async (bytes: string): Promise<{ head: string; error: Record<string, unknown> }> => {
    const got = await rawExchange(server.url, bytes);
    const body = got.slice(got.indexOf('\r\n\r\n') + 4);
    return {
      head: got.split('\r\n')[0]!,
      error: body ? (JSON.parse(body) as { error: Record<string, unknown> }).error : {},
    };
  };
  try {
    const long = await answer(`GET /v1/models/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(long.head, 'HTTP/1.1 431 Request Header Fields Too Large');
    assert.deepEqual(long.error, {
      message: `the request line and headers exceed ${http.maxHeaderSize} bytes; send a shorter URL or fewer headers.`,
      type: 'invalid_request_error',
      param: null,
      code: 'headers_too_large',
    });
    const chunked = 'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n';
    const badChunk = await answer(chunked);
    assert.equal(badChunk.head, 'HTTP/1.1 400 Bad Request');
    assert.equal(badChunk.error.message, 'the request is not valid HTTP/1.1 (Invalid character in chunk size).');
    assert.equal(badChunk.error.code, 'invalid_http');
    const badLength = await answer('POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n');
    assert.equal(badLength.head, 'HTTP/1.1 400 Bad Request');
    assert.equal(badLength.error.message, 'the request is not valid HTTP/1.1 (Invalid character in Content-Length).');
    // HTTP/1.1 requires Host (Node's own refusal has no body); HTTP/1.0 does not
    const hostless = await answer('GET /health HTTP/1.1\r\n\r\n');
    assert.equal(hostless.head, 'HTTP/1.1 400 Bad Request');
    assert.deepEqual(hostless.error, {
      message: 'the request has no Host header, which HTTP/1.1 requires; send one.',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_http',
    });
    assert.equal((await answer('GET /health HTTP/1.0\r\n\r\n')).head, 'HTTP/1.1 200 OK');
    assert.equal((await request(server.url, 'GET', '/health')).status, 200, 'still serving');
  } finally {
    await server.close();
    cleanup();
  }
});

test(
  'shutdown does not wait for a client that sent nothing or half its headers, nor for a pipelined request ' +
    'whose client left',
  { timeout: 30_000 },
  async () => {
    const { dir, cleanup } = tempDir('shut-stalled');
    const backend = await tinyBackend(await tinyModelDir(dir));
    const server = await startSearchServer({ backend, port: 0 });
    const { hostname, port } = new URL(server.url);
    const sockets: net.Socket[] = [];
    const connect = (bytes: string): Promise<void> =>
      new Promise((resolve) => {
        const s = net.connect(Number(port), hostname, () => {
          s.write(bytes);
          resolve();
        });
        s.on('error', () => {});
        sockets.push(s);
      });
    try {
      // a slow request with a pipelined one behind it, on a connection the client then drops
      const body = JSON.stringify({ model: 'search-r3', input: Array.from({ length: 64 }, (_, i) => `text ${i}`) });
      const pipelined =
        `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n`;
      await connect(pipelined);
      await new Promise((r) => setTimeout(r, 20));
      sockets[0]!.destroy();
      await connect(''); // connected, sent nothing
      await connect('GET /health HTTP/1.1\r\nHost:'); // half its headers
      // the dropped connection's request ends once its forward pass has; the other two never start one
      let metrics = '';
      await until(
        async () => {
          metrics = (await request(server.url, 'GET', '/metrics')).raw.toString();
          return /search_r3_requests_in_flight 1\b/.test(metrics);
        },
        10_000,
        () => `only the /metrics request itself should be in flight:\n${metrics}`,
        50,
      );
      const t0 = performance.now();
      await server.close();
      assert.ok(performance.now() - t0 < 3000, `close took ${(performance.now() - t0).toFixed(0)} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await server.close();
      cleanup();
    }
  },
);

test('--max-tokens above the model context is taken as the context', async () => {
  const { dir, cleanup } = tempDir('room');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0, maxTokensPerInput: 100_000 });
  try {
    const context = backend.maxLength;
    let text = 'protein';
    while (backend.embedder.tokenizer.encode(text).length <= context) text += ' protein';
    const r = await request(server.url, 'POST', '/v1/embeddings', JSON.stringify({ model: 'search-r3', input: text }));
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'context_length_exceeded');
    assert.match(r.body.error!.message, new RegExp(`at most ${context} tokens per input`));
  } finally {
    await server.close();
    cleanup();
  }
});

test('requests pipelined on one connection are all answered, with one close listener on its socket', async () => {
  const { dir, cleanup } = tempDir('pipelined');
  const backend = await tinyBackend(await tinyModelDir(dir));
  const server = await startSearchServer({ backend, port: 0 });
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  try {
    const one = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
    const got = await rawExchange(
      server.url,
      one.repeat(19) + one.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'),
    );
    assert.equal(got.match(/HTTP\/1\.1 200 /g)?.length, 20);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings, []);
  } finally {
    process.off('warning', onWarning);
    await server.close();
    cleanup();
  }
});

test('a request whose client went away frees its place in the queue: the work not started is dropped', async () => {
  const { dir, cleanup } = tempDir('abandoned');
  const backend = await tinyBackend(await tinyModelDir(dir));
  // a long batching wait and large batches keep the inputs waiting, not yet started, while their clients leave
  const server = await startSearchServer({ backend, port: 0, maxQueue: 256, maxWaitMs: 4000, maxBatchInputs: 1024 });
  const { hostname, port } = new URL(server.url);
  const body = JSON.stringify({ model: 'search-r3', input: Array.from({ length: 64 }, (_, i) => `text ${i}`) });
  try {
    const clients = Array.from({ length: 4 }, () => {
      const r = http.request({ host: hostname, port: Number(port), method: 'POST', path: '/v1/embeddings' });
      r.on('error', () => {});
      r.setHeader('content-type', 'application/json');
      r.end(body);
      return r;
    });
    let n = 0;
    const fill = async (want: number): Promise<boolean> => (n = await queued(server.url)) === want;
    await until(
      () => fill(256),
      10_000,
      () => `the four requests fill the queue (${n} queued)`,
      20,
    );
    for (const c of clients) c.destroy();
    await until(
      () => fill(0),
      10_000,
      () => `the queue is freed (${n} queued)`,
      20,
    );
    assert.equal(await embeddedInputs(server.url), 0, 'their work was dropped before the batching wait ended');
    const next = await request(server.url, 'POST', '/v1/embeddings', body);
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.equal(await embeddedInputs(server.url), 64, 'the next request alone was embedded');
  } finally {
    await server.close();
    cleanup();
  }
});

test(
  'a 413 closes the connection once it is sent, instead of reading on whatever the client keeps sending',
  { timeout: 30_000 },
  async () => {
    const { dir, cleanup } = tempDir('413-close');
    const backend = await tinyBackend(await tinyModelDir(dir));
    const server = await startSearchServer({ backend, port: 0, maxBodyBytes: 2000 });
    const { hostname, port } = new URL(server.url);
    /** Headers, then body bytes without end until the server closes: what came back, and when it closed. */
    const flood = (framing: string): Promise<{ got: string; closedAfterMs: number }> =>
      new Promise((resolve) => {
        const chunked = framing.startsWith('Transfer-Encoding');
        const part = (b: Buffer): Buffer =>
          chunked ? Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]) : b;
        const filler = Buffer.alloc(16 * 1024, 'a');
        let got = '';
        let answeredAt = 0;
        let closed = false;
        const socket = net.connect(Number(port), hostname, () => {
          socket.write(
            `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`,
          );
          socket.write(part(Buffer.from('{"input": "')));
          const pump = (): void => {
            if (closed) return;
            socket.write(part(filler));
            setTimeout(pump, 2);
          };
          pump();
        });
        socket.on('data', (d) => {
          answeredAt ||= performance.now();
          got += d.toString();
        });
        socket.on('error', () => {});
        socket.on('close', () => {
          closed = true;
          resolve({ got, closedAfterMs: performance.now() - answeredAt });
        });
        // a server that reads on never closes: give up after 5 s
        setTimeout(() => socket.destroy(), 5000);
      });
    try {
      for (const framing of ['Content-Length: 50000000', 'Transfer-Encoding: chunked']) {
        const { got, closedAfterMs } = await flood(framing);
        assert.match(got, /^HTTP\/1\.1 413 /, framing);
        assert.match(got, /\r\nconnection: close\r\n/i, framing);
        assert.match(got, /"code":"request_too_large"/, framing);
        assert.ok(closedAfterMs < 2000, `${framing}: closed ${closedAfterMs.toFixed(0)} ms after the answer`);
      }
      assert.equal((await request(server.url, 'GET', '/health')).status, 200, 'still serving');
    } finally {
      await server.close();
      cleanup();
    }
  },
);

test('startSearchServer refuses options of the wrong kind in one sentence, before any model loads', async () => {
  const { dir, cleanup } = tempDir('serveopts');
  try {
    const modelDir = await tinyModelDir(dir);
    const backend = await tinyBackend(modelDir);
    const model = 'a model, awaited: await WorkerBackend.start(dir) or await LocalBackend.fromModelDir(dir)';
    const cases: [Record<string, unknown>, string | RegExp][] = [
      [{}, `'backend' must be ${model} (got undefined).`],
      [{ backend: modelDir }, `'backend' must be ${model} (got ${showValue(modelDir)}).`],
      [{ backend: Promise.resolve(backend) }, `'backend' must be ${model} (got a promise).`],
      [
        { backend, index: dir },
        `'index' must be an index, awaited: await SearchIndex.open(dir, { backend }) (got ${showValue(dir)}).`,
      ],
      // Node would listen on a socket file named '8080' in the working folder
      [{ backend, port: '8080' }, "'port' must be an integer in [0, 65535] (got '8080')."],
      [{ backend, port: 70000 }, "'port' must be an integer in [0, 65535] (got 70000)."],
      // a key that is no string failed each request with a TypeError
      [{ backend, apiKey: 5 }, "'apiKey' must be a non-empty string (got 5)."],
      // a misspelt key was dropped: 'apikey' served everyone without one
      [{ backend, apikey: 'secret' }, /^the server has no option 'apikey'; it takes 'backend', /],
      [{ backend, corsOrigin: ['http://x.test'] }, /^the server has no option 'corsOrigin'; /],
      // every search would be refused as asking beyond k 0
      [{ backend, maxK: 0 }, "'maxK' must be a positive integer (got 0)."],
      [{ backend, maxQueue: '10' }, "'maxQueue' must be a positive integer (got '10')."],
      [{ backend, maxWaitMs: 1e9 }, "'maxWaitMs' must be an integer in [0, 60000] (got 1000000000)."],
      [{ backend, refreshMs: -1 }, "'refreshMs' must be a number ≥ 0 (got -1)."],
      // a request with more inputs than the queue holds would get 429 however idle the server, as the CLI says
      [
        { backend, maxQueue: 4, maxInputs: 8 },
        "'maxQueue' 4 is below 'maxInputs' 8, so a request with more inputs than the queue holds could never be " +
          "taken; raise 'maxQueue' or lower 'maxInputs'.",
      ],
      [
        { backend, maxQueue: 100 },
        "'maxQueue' 100 is below 'maxInputs' 256 (the default), so a request with more inputs than the queue " +
          "holds could never be taken; raise 'maxQueue' or lower 'maxInputs'.",
      ],
    ];
    // an index opened without a backend, served with a model whose cut differs: its queries ranked as noise
    const index = await SearchIndex.open(path.join(dir, 'index'), { backend, create: {} });
    await index.close();
    const vectorsOnly = await SearchIndex.open(path.join(dir, 'index'));
    const otherCut = await LocalBackend.fromModelDir(modelDir, { maxLength: 64 });
    cases.push([
      { backend: otherCut, index: vectorsOnly },
      "'index' and 'backend' do not match: the index cut texts at 128 tokens but this model setup cuts at 64; " +
        'serve the index with the model it was built with.',
    ]);
    for (const [opts, message] of cases)
      await assert.rejects(
        startSearchServer(opts as unknown as Parameters<typeof startSearchServer>[0]),
        (e: unknown) =>
          e instanceof Error &&
          (typeof message === 'string'
            ? e.message === `startSearchServer: ${message}`
            : message.test(e.message.replace(/^startSearchServer: /, ''))),
        String(message),
      );
    await vectorsOnly.close();
  } finally {
    cleanup();
  }
});

test('createSearchServer, the handler alone, refuses what startSearchServer refuses', async () => {
  const { dir, cleanup } = tempDir('createopts');
  const modelDir = await tinyModelDir(dir);
  const local = await tinyBackend(modelDir);
  const model = await WorkerBackend.start(modelDir);
  const refuses = (opts: Record<string, unknown>, message: string): void =>
    assert.throws(
      () => createSearchServer(opts as unknown as Parameters<typeof createSearchServer>[0]),
      (e: unknown) => e instanceof Error && e.message === `createSearchServer: ${message}`,
      message,
    );
  try {
    // its handler needs the model in a worker thread: a LocalBackend failed inside the first request
    refuses({ backend: local }, "'backend' must be a model, awaited: await WorkerBackend.start(dir) (got an object).");
    refuses({ backend: model, apiKey: 5 }, "'apiKey' must be a non-empty string (got 5).");
    refuses({ backend: model, maxK: 0 }, "'maxK' must be a positive integer (got 0).");
    refuses(
      { backend: model, corsOrigins: ['http://x/'] },
      "'corsOrigins': 'http://x/' is not written as a browser sends its Origin: give 'http://x' (no path, no final /).",
    );
    const s = createSearchServer({ backend: model, apiKey: 'k' });
    assert.equal(typeof s.handler, 'function');
    await model.close();
    refuses(
      { backend: model },
      'the WorkerBackend has been closed (a server closes its model when it stops); start another with ' +
        'WorkerBackend.start.',
    );
  } finally {
    await model.close();
    cleanup();
  }
});

test("a start that fails (port in use) leaves the caller's WorkerBackend running for the next try", async () => {
  const { dir, cleanup } = tempDir('serveretry');
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const model = await WorkerBackend.start(await tinyModelDir(dir));
  try {
    const busy = (blocker.address() as net.AddressInfo).port;
    // the sentence the CLI says, naming the option of the API, and Node's code for a program that tries another
    await assert.rejects(startSearchServer({ backend: model, port: busy }), {
      name: 'ListenError',
      code: 'EADDRINUSE',
      message: `'port' ${busy} is in use; pick another with 'port' or stop the other server.`,
    });
    // it was closed here, and the server started next on it answered 503 to everything
    assert.equal(model.health().state, 'ready');
    const server = await startSearchServer({ backend: model, port: 0 });
    assert.equal((await request(server.url, 'GET', '/health')).status, 200);
    await server.close();
    assert.equal(model.health().state, 'closed', 'a server that ran closes its model');
    await assert.rejects(
      startSearchServer({ backend: model, port: 0 }),
      (e: unknown) =>
        e instanceof Error &&
        e.message ===
          'startSearchServer: the WorkerBackend has been closed (a server closes its model when it stops); ' +
            'start another with WorkerBackend.start.',
    );
  } finally {
    await model.close();
    blocker.close();
    cleanup();
  }
});
