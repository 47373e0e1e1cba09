/**
 * POST /v1/search/stream: the analysis arrives as server-sent events while the model writes it, each a
 * beginning of the final one, then the hits /v1/search gives; bad requests are answered before any event,
 * as /v1/search answers them. The web routes: pages without the key, data with it, odd paths as 4xx.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SearchIndex } from '../../src/search-index/search-index.js';
import { type RunningServer, startSearchServer } from '../../src/serve/server.js';
import { leaveAfterFirstBytes, post, request } from '../helpers/http.js';
import { corpus, tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';

const KEY = 'stream-key';
const auth = { authorization: `Bearer ${KEY}` };
let server: RunningServer;
let index: SearchIndex;
let scratch: { dir: string; cleanup: () => void };

before(async () => {
  scratch = tempDir('stream');
  const backend = await tinyBackend(await tinyModelDir(scratch.dir));
  index = await SearchIndex.open(path.join(scratch.dir, 'idx'), { backend, create: {} });
  await index.addDocuments(corpus(30));
  server = await startSearchServer({ backend, index, port: 0, apiKey: KEY });
});

after(async () => {
  await server.close();
  await index.close();
  scratch.cleanup();
});

function events(raw: string): { name: string; data: Record<string, unknown> }[] {
  return raw
    .split('\n\n')
    .filter((b) => b.trim() !== '')
    .map((block) => {
      const name = /^event: (.*)$/m.exec(block)![1]!;
      return { name, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as Record<string, unknown> };
    });
}

test('the analysis streams token by token, then the hits of /v1/search', async () => {
  // sampled, so that the tiny random model writes an analysis that grows (greedy, it repeats a byte that never
  // completes a character)
  const sampled = { temperature: 1, seed: 1 };
  const body = {
    query: 'protein cancer risk',
    k: 5,
    reasoning: 'on',
    max_reasoning_tokens: 24,
    hybrid: true,
    ...sampled,
  };
  const r = await post(server.url, '/v1/search/stream', body, auth);
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/event-stream/);
  const ev = events(r.raw.toString());
  const last = ev.pop()!;
  assert.equal(last.name, 'result');
  assert.ok(ev.length >= 2, `${ev.length} reasoning events`);
  const final = last.data.reasoning as string;
  let before = '';
  for (const e of ev) {
    assert.equal(e.name, 'reasoning');
    assert.ok(final.startsWith(e.data.reasoning as string), `${e.data.reasoning} begins ${final}`);
    assert.notEqual(e.data.reasoning, before, 'each event tells something new');
    before = e.data.reasoning as string;
  }
  const plain = await post(server.url, '/v1/search', body, auth);
  const strip = (a: Record<string, unknown>): unknown => ({ ...a, timings: null });
  assert.deepEqual(strip(last.data), strip(plain.body));

  const off = events((await post(server.url, '/v1/search/stream', { query: 'gene', k: 3 }, auth)).raw.toString());
  assert.deepEqual(
    off.map((e) => e.name),
    ['result'],
  );
  assert.equal((off[0]!.data.data as unknown[]).length, 3);
});

test('a bad request is refused before any event, in the shape /v1/search refuses it', async () => {
  // the last is refused by the model worker (its tokens counted there), after the request was parsed
  const tooLong = { query: 'protein '.repeat(30), reasoning: 'on' };
  for (const body of [{ query: '' }, { query: 'x', k: 0 }, { query: 'x', highlight: 'yes' }, tooLong]) {
    const s = await post(server.url, '/v1/search/stream', body, auth);
    const p = await post(server.url, '/v1/search', body, auth);
    assert.equal(s.status, 400);
    assert.match(String(s.headers['content-type']), /^application\/json/);
    assert.deepEqual(s.body, p.body);
  }
  // a query of the wrong type, and a string with nothing in it
  for (const [query, code] of [
    [undefined, 'missing_required_parameter'],
    [null, 'missing_required_parameter'],
    [5, 'invalid_type'],
    [' \t\n', 'invalid_value'],
  ] as const) {
    const r = await post(server.url, '/v1/search', { query }, auth);
    assert.equal(r.status, 400);
    assert.deepEqual([r.body.error?.param, r.body.error?.code], ['query', code], JSON.stringify(query));
  }
  // the other fields: a value of the wrong JSON type is invalid_type, one of the right type refused invalid_value
  for (const [field, value, code] of [
    ['k', '5', 'invalid_type'],
    ['k', true, 'invalid_type'],
    ['k', 0, 'invalid_value'],
    ['reasoning', 5, 'invalid_type'],
    ['reasoning', 'maybe', 'invalid_value'],
    ['max_reasoning_tokens', '5', 'invalid_type'],
    ['temperature', 'hot', 'invalid_type'],
    ['seed', '1', 'invalid_type'],
  ] as const) {
    const r = await post(server.url, '/v1/search', { query: 'x', [field]: value }, auth);
    assert.equal(r.status, 400);
    assert.deepEqual([r.body.error?.param, r.body.error?.code], [field, code], `${field}: ${JSON.stringify(value)}`);
  }
  // null is "not given" for the optional model, as OpenAI's clients send it
  assert.equal((await post(server.url, '/v1/search', { query: 'x', model: null }, auth)).status, 200);
  // the stream is the endpoint itself: a 'stream' field (as chat completions take it) is refused by the path sent to
  const streamed = await post(server.url, '/v1/search/stream', { query: 'x', stream: true }, auth);
  assert.equal(streamed.status, 400);
  assert.match(streamed.body.error!.message, /^'stream' is not a field of \/v1\/search\/stream, which takes model, /);
  const wrong = await post(server.url, '/v1/search/stream', { query: 'x' }, { authorization: 'Bearer nope' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error?.code, 'invalid_api_key');
});

test('pages without the key, their data with it; unknown files and broken paths are 4xx', async () => {
  const page = await request(server.url, 'GET', '/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.raw.toString(), /<script type="module" src="web\/playground\.js">/);
  assert.match(String(page.headers['content-security-policy']), /script-src 'self'/);
  const script = await request(server.url, 'GET', '/web/playground.js');
  assert.equal(script.status, 200);
  assert.match(String(script.headers['content-type']), /^text\/javascript/);
  const outside = await request(server.url, 'GET', '/web/../package.json', undefined, { headers: auth });
  assert.equal(outside.status, 404);
  assert.equal((await request(server.url, 'GET', '/web/nothing.js')).status, 404);
  const broken = await request(server.url, 'GET', '/web/%E0%A4%A');
  assert.equal(broken.status, 400);
  assert.equal((await request(server.url, 'GET', '/v1/runs')).status, 401);
  const runs = await request(server.url, 'GET', '/v1/runs', undefined, { headers: auth });
  assert.equal(runs.status, 404);
  assert.match(runs.body.error!.message, /--runs <run folder>/);
});

test('a client that leaves a stream is no error: nothing is logged for the work dropped for it', async (t) => {
  // the model as the worker answers a request whose client went away: its analysis so far, then the cancel
  let cancelled!: Promise<void>;
  type Progress = (input: number, reasoning: string) => void;
  t.mock.method(server.backend, 'embed', (_job: unknown, onProgress: Progress, signal: AbortSignal) => {
    onProgress(0, 'The query');
    const gone = new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(new Error('cancelled: the client went away'))),
    );
    cancelled = gone.then(undefined, () => undefined);
    return gone;
  });
  const logged = t.mock.method(console, 'error', () => undefined);
  await leaveAfterFirstBytes(server.url, '/v1/search/stream', { query: 'protein', reasoning: 'on' }, auth);
  await cancelled;
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    logged.mock.calls.map((c) => c.arguments),
    [],
  );
});
