/**
 * Cross-origin requests: a web page on another origin may call the API from a browser only where the server
 * names that origin. A browser sends a preflight (OPTIONS, no Authorization) before a JSON POST; it must get
 * a 2xx with the origin, methods and headers allowed, or the page's request is never sent; every answer to
 * the page, errors and streams included, must carry Access-Control-Allow-Origin for the page to read it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { type RunningServer, startSearchServer } from '../../src/index.js';
import { startDashboardServer } from '../../src/serve/dashboard-server.js';
import { runWatch } from '../../src/cli/run-folders.js';
import { tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { type Reply, post, request } from '../helpers/http.js';
import { runCli } from '../helpers/cli.js';

const PAGE = 'http://localhost:3000';
const OTHER = 'https://elsewhere.example';
// what OpenAI's browser client asks to send, its own headers included
const ASKED = 'authorization, content-type, x-stainless-os, x-stainless-lang';

let work: { dir: string; cleanup: () => void };
let modelDir: string;
let closed: RunningServer;
let open: RunningServer;
let any: RunningServer;

before(async () => {
  work = tempDir('cors');
  modelDir = await tinyModelDir(work.dir);
  [closed, open, any] = await Promise.all([
    startSearchServer({ backend: await tinyBackend(modelDir), port: 0, apiKey: 'k' }),
    startSearchServer({ backend: await tinyBackend(modelDir), port: 0, apiKey: 'k', corsOrigins: [PAGE] }),
    startSearchServer({ backend: await tinyBackend(modelDir), port: 0, corsOrigins: ['*'] }),
  ]);
});

after(async () => {
  await Promise.all([closed, open, any].map((s) => s.close()));
  work.cleanup();
});

const preflight = (url: string, origin: string, path = '/v1/embeddings'): Promise<Reply> =>
  request(url, 'OPTIONS', path, undefined, {
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': ASKED },
  });

const embed = (url: string, origin: string, key?: string): Promise<Reply> =>
  post(
    url,
    '/v1/embeddings',
    { model: 'search-r3', input: 'which protein binds?' },
    { origin, ...(key ? { authorization: `Bearer ${key}` } : {}) },
  );

test('a preflight from a named origin is allowed before any API key, with the methods and headers asked', async () => {
  const r = await preflight(open.url, PAGE);
  assert.equal(r.status, 204, r.raw.toString());
  assert.equal(r.headers['access-control-allow-origin'], PAGE);
  assert.equal(r.headers['vary'], 'Origin');
  assert.equal(r.headers['access-control-allow-methods'], 'POST');
  assert.equal(r.headers['access-control-allow-headers'], ASKED);
  assert.equal(r.headers['access-control-max-age'], '600');
  // a GET route's preflight names what it takes
  const health = await preflight(open.url, PAGE, '/health');
  assert.equal(health.status, 204);
  assert.equal(health.headers['access-control-allow-methods'], 'GET, HEAD');
  // a path with no route: a 404 the page can read
  const none = await preflight(open.url, PAGE, '/v1/nothing');
  assert.equal(none.status, 404);
  assert.equal(none.headers['access-control-allow-origin'], PAGE);
});

test("the page reads every answer: a result, the API key's 401, a stream", async () => {
  const done = await embed(open.url, PAGE, 'k');
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.headers['access-control-allow-origin'], PAGE);
  assert.equal((done.body.data as unknown[]).length, 1);
  const refused = await embed(open.url, PAGE);
  assert.equal(refused.status, 401);
  assert.equal(refused.headers['access-control-allow-origin'], PAGE);
  const streamed = await post(
    open.url,
    '/v1/chat/completions',
    { model: 'search-r3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true },
    { origin: PAGE, authorization: 'Bearer k' },
  );
  assert.equal(streamed.status, 200);
  assert.match(String(streamed.headers['content-type']), /^text\/event-stream/);
  assert.equal(streamed.headers['access-control-allow-origin'], PAGE);
});

test('an origin not named: its preflight is a 403 that says how to allow it, its answers allow nothing', async () => {
  for (const [server, origin] of [
    [closed, PAGE],
    [open, OTHER],
  ] as const) {
    const r = await preflight(server.url, origin);
    assert.equal(r.status, 403);
    assert.equal(r.body.error!.code, 'origin_not_allowed');
    assert.equal(
      r.body.error!.message,
      `cross-origin requests from ${origin} are not allowed: start the server with --cors-origin ${origin} ` +
        '(corsOrigins from code) to let pages there call it.',
    );
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    // it learns nothing of the routes: a path with none is refused alike
    const none = await preflight(server.url, origin, '/v1/nothing');
    assert.deepEqual([none.status, none.body.error!.message], [403, r.body.error!.message]);
    const answered = await embed(server.url, origin, 'k');
    assert.equal(answered.status, 200);
    assert.equal(answered.headers['access-control-allow-origin'], undefined, 'the browser keeps it from the page');
  }
  // a request from no page at all (curl, a Node client) is as before
  const plain = await post(
    open.url,
    '/v1/embeddings',
    { model: 'search-r3', input: 'x' },
    { authorization: 'Bearer k' },
  );
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['access-control-allow-origin'], undefined);
  // its answer differs from a named page's too, so a cache between them must key on Origin
  assert.equal(plain.headers['vary'], 'Origin');
  const health = await request(closed.url, 'GET', '/health');
  assert.equal(health.headers['vary'], undefined, 'no origins named: no answer depends on Origin');
  // an Origin no browser sends (a final /) cannot be named by --cors-origin, which refuses it: not suggested
  const slash = await preflight(open.url, `${PAGE}/`);
  assert.equal(slash.status, 403);
  assert.equal(
    slash.body.error!.message,
    `cross-origin requests are not allowed: the Origin header '${PAGE}/' is not an origin as browsers send it ` +
      '(scheme, host and port only).',
  );
});

test("a page's form or text/plain POST, sent without a preflight, is refused before the model works", async () => {
  const body = JSON.stringify({ model: 'search-r3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; b=x'])
    for (const [server, origin] of [
      [closed, PAGE],
      [open, OTHER],
      [open, 'null'],
    ] as const) {
      const r = await request(server.url, 'POST', '/v1/chat/completions', body, {
        headers: { origin, 'content-type': type, authorization: 'Bearer k' },
      });
      assert.equal(r.status, 403, `${type} from ${origin}`);
      assert.equal(r.body.error!.code, 'origin_not_allowed');
    }
  // from an origin allowed, as JSON from any page (the server's own), and from clients that send no Origin
  // (curl -d sends a form's type): answered
  const headers = (origin: string | undefined, type: string): Record<string, string> => ({
    ...(origin ? { origin } : {}),
    'content-type': type,
    authorization: 'Bearer k',
  });
  for (const [origin, type] of [
    [PAGE, 'text/plain'],
    [OTHER, 'application/json; charset=utf-8'],
    [undefined, 'application/x-www-form-urlencoded'],
  ] as const) {
    const r = await request(open.url, 'POST', '/v1/chat/completions', body, { headers: headers(origin, type) });
    assert.equal(r.status, 200, `${type} from ${origin}: ${r.raw.toString()}`);
  }
});

test('* allows every page without echoing its Origin', async () => {
  const r = await preflight(any.url, OTHER);
  assert.equal(r.status, 204);
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.equal(r.headers['vary'], undefined);
  const done = await embed(any.url, OTHER);
  assert.equal(done.status, 200);
  assert.equal(done.headers['access-control-allow-origin'], '*');
});

test('the dashboard takes the same origins', async () => {
  // an empty folder is a run yet to start
  const run = path.join(work.dir, 'run');
  mkdirSync(run);
  const runs = runWatch([run]);
  const dash = await startDashboardServer({ runs, port: 0, corsOrigins: [PAGE] });
  try {
    const r = await preflight(dash.url, PAGE, '/v1/runs');
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-methods'], 'GET, HEAD');
    const refused = await preflight(dash.url, OTHER, '/v1/runs');
    assert.equal(refused.status, 403);
  } finally {
    await dash.close();
  }
});

test('an origin not written as a browser sends it is refused, from code and on the command line', async () => {
  const cases: [string, RegExp][] = [
    [`${PAGE}/`, /give 'http:\/\/localhost:3000' \(no path, no final \/\)/],
    [`${PAGE}/app`, /give 'http:\/\/localhost:3000'/],
    ['localhost:3000', /is no web origin/],
    ['not an origin', /is no origin: give scheme, host and port as a browser sends them/],
  ];
  for (const [origin, why] of cases) {
    await assert.rejects(
      startSearchServer({ backend: await tinyBackend(modelDir), port: 0, corsOrigins: [origin] }),
      (e: Error) => e.message.startsWith("startSearchServer: 'corsOrigins': ") && why.test(e.message),
    );
  }
  await assert.rejects(
    startSearchServer({ backend: await tinyBackend(modelDir), port: 0, corsOrigins: PAGE as unknown as string[] }),
    /'corsOrigins' must be an array of origins/,
  );
  const cli = runCli(['serve', '--model', modelDir, '--port', '0', '--cors-origin', `${PAGE}/`]);
  assert.equal(cli.status, 2, cli.stderr);
  assert.match(cli.stderr, /^search-r3: --cors-origin: 'http:\/\/localhost:3000\/' is not written as a browser sends/m);
});
