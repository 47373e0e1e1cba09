/**
 * CORS as a browser enforces it (Debian's chromium): a page served from another origin calls the API with
 * fetch, as OpenAI's browser client does (Authorization, JSON, x-stainless-* headers, so the browser sends a
 * preflight first). From an origin --cors-origin names it reads the embeddings; from any other the browser
 * refuses to send the request, and a form POST it sends without asking is refused by the server unread.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { type RunningServer, startSearchServer } from '../../src/index.js';
import { tempDir, tinyBackend, tinyModelDir } from '../search-index/fixtures.js';
import { request } from '../helpers/http.js';
import { noBrowser, launch, openPage } from './browser.js';

const KEY = 'cors-key';
let browser: Browser;
let api: RunningServer;
let pages: http.Server[] = [];
let work: { dir: string; cleanup: () => void };

/** A page server of its own origin: every path answers a blank HTML page. */
async function pageOrigin(): Promise<string> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<p>app'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  pages.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let allowed: string;
let other: string;

before(async () => {
  if (noBrowser) return;
  work = tempDir('cors-browser');
  [allowed, other] = [await pageOrigin(), await pageOrigin()];
  const backend = await tinyBackend(await tinyModelDir(work.dir));
  api = await startSearchServer({ backend, port: 0, apiKey: KEY, corsOrigins: [allowed] });
  browser = await launch();
});

after(async () => {
  if (noBrowser) return;
  await browser?.close();
  await api?.close();
  for (const s of pages) s.close();
  pages = [];
  work?.cleanup();
});

/** What fetch from a page at `origin` gets: the embedding's length, or the error the browser raised. */
async function embedFrom(origin: string): Promise<{ dims?: number; status?: number; error?: string }> {
  const errors: string[] = [];
  const page = await openPage(browser, errors);
  try {
    await page.goto(`${origin}/`);
    return await page.evaluate(
      async ({ url, key }) => {
        try {
          const res = await fetch(`${url}/v1/embeddings`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${key}`,
              'content-type': 'application/json',
              'x-stainless-os': 'Linux',
              'x-stainless-lang': 'js',
            },
            body: JSON.stringify({ model: 'search-r3', input: 'which protein binds the receptor?' }),
          });
          const body = (await res.json()) as { data?: { embedding: number[] }[] };
          return { status: res.status, dims: body.data?.[0]?.embedding.length };
        } catch (e) {
          return { error: String(e) };
        }
      },
      { url: api.url, key: KEY },
    );
  } finally {
    await page.close();
  }
}

test(
  'a page at an origin --cors-origin names reads the API; one elsewhere is refused by the browser',
  {
    skip: noBrowser,
  },
  async () => {
    const got = await embedFrom(allowed);
    assert.equal(got.status, 200, JSON.stringify(got));
    assert.ok(got.dims! > 0, JSON.stringify(got));
    const refused = await embedFrom(other);
    assert.equal(refused.status, undefined, JSON.stringify(refused));
    assert.match(refused.error!, /TypeError: Failed to fetch/);
  },
);

test(
  'a form POST from elsewhere, which the browser sends unasked, is refused by the server unread',
  {
    skip: noBrowser,
  },
  async () => {
    const metric = async (): Promise<number> => {
      const text = (
        await request(api.url, 'GET', '/metrics', undefined, { headers: { authorization: `Bearer ${KEY}` } })
      ).raw.toString();
      const line = text
        .split('\n')
        .find((l) => l.startsWith('search_r3_http_requests_total{route="/v1/embeddings",status="403"}'));
      return line ? Number(line.split(' ').at(-1)) : 0;
    };
    const before403 = await metric();
    const page = await openPage(browser, []);
    try {
      await page.goto(`${other}/`);
      await page.evaluate(async (url) => {
        // no-cors: the page may send it and never read the answer, as a hidden form on any site can
        await fetch(`${url}/v1/embeddings`, {
          method: 'POST',
          mode: 'no-cors',
          headers: { 'content-type': 'text/plain' },
          body: JSON.stringify({ model: 'search-r3', input: 'work for a site the user merely visits' }),
        });
      }, api.url);
    } finally {
      await page.close();
    }
    assert.equal(await metric(), before403 + 1, 'the server answered it 403');
  },
);
