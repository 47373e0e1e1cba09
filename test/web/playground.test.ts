/**
 * The search playground in a real browser (Debian's chromium, headless): a SciFact test claim typed into
 * the page streams the model's analysis and shows 10 hits whose ✓ marks are SciFact's judgments and whose
 * order is what POST /v1/search answers; hybrid changes the order exactly as the API does; a comparison
 * column shows each hit's move; bad input and a wrong API key end in a message on the page.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { post } from '../helpers/http.js';
import { referenceNdcg } from '../helpers/reference-measures.js';
import { tempDir } from '../search-index/fixtures.js';
import { noBrowser, launch, openPage, screenshot } from './browser.js';
import { CLAIMS, type Playground, startPlayground } from './fixtures.js';

const KEY = 'playground-key';
/** The weights the model stores for hybrid search: the page says them beside the checkbox. */
const FUSION = { denseWeight: 0.7, k: 30, chosenOn: 'a dev set (12 queries)' };
const auth = { authorization: `Bearer ${KEY}` };
let browser: Browser;
let pg: Playground;
let scratch: { dir: string; cleanup: () => void };

before(async () => {
  if (noBrowser) return;
  scratch = tempDir('web-playground');
  pg = await startPlayground(scratch.dir, { apiKey: KEY, fusion: FUSION });
  browser = await launch();
});

after(async () => {
  if (noBrowser) return;
  await browser?.close();
  await pg?.close();
  scratch?.cleanup();
});

interface ShownHit {
  id: string;
  rank: number;
  relevant: boolean;
  grade: string | null;
  marks: string[];
}

async function shownHits(page: Page, column: string): Promise<ShownHit[]> {
  return page.$$eval(`#${column} li.hit`, (items) =>
    items.map((li) => ({
      id: li.getAttribute('data-id')!,
      rank: Number(li.getAttribute('data-rank')),
      relevant: li.querySelector('.judged.relevant') !== null,
      grade: li.getAttribute('data-grade'),
      marks: [...li.querySelectorAll('mark')].map((m) => m.textContent ?? ''),
    })),
  );
}

/** Submits the form and waits until the search has ended (the button is enabled again). */
async function search(page: Page): Promise<void> {
  await page.click('#search-button');
  await page.waitForFunction(() => !(document.getElementById('search-button') as HTMLButtonElement).disabled);
}

async function withKey(page: Page, key: string): Promise<void> {
  // a page that was refused has opened the key form already
  if (!(await page.$eval('#key-box', (d) => (d as HTMLDetailsElement).open))) await page.click('#key-box summary');
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
}

test(
  'a SciFact claim: streamed analysis, 10 hits with the qrels ✓ marks, the API order, hybrid as the API says',
  {
    skip: noBrowser,
  },
  async () => {
    const errors: string[] = [];
    const page = await openPage(browser, errors);
    await page.goto(`${pg.server.url}/`);
    // the page's own check, without a key, is refused and opens the key form: a click on the form's summary
    // before that answer came would be undone by it (the form then closed, its field hidden)
    await page.waitForSelector('#key-box[open]');
    await withKey(page, KEY);
    await page.waitForFunction(() => document.getElementById('fusion')!.textContent!.startsWith('weighted'));
    // the tiny model's FUSION; in docs mode the shipped model's own weights are shown instead
    if (process.env.SEARCH_R3_SCREENSHOTS !== 'docs') {
      assert.equal(
        await page.textContent('label:has(#hybrid)'),
        ' Hybrid: dense fused with BM25 (weighted reciprocal rank: dense 0.7, BM25 0.3, k 30)',
      );
      assert.equal(await page.getAttribute('#fusion', 'title'), 'chosen on a dev set (12 queries)');
    }
    const claimId = CLAIMS[2]!;
    const claim = pg.queries.get(claimId)!;
    const judged = pg.qrels.get(claimId)!;
    await page.fill('#query', claim);
    // every text the analysis shows while the search runs: each update adds a text node, so the records keep every
    // state even when a busy browser delivers several updates to one observer callback
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      const box = document.getElementById('analysis')!;
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) seen.push(n.textContent ?? '');
      }).observe(box, { childList: true, characterData: true });
    });
    await search(page);

    const api = await post(
      pg.server.url,
      '/v1/search',
      { query: claim, k: 10, reasoning: 'on', highlight: true },
      auth,
    );
    assert.equal(api.status, 200);
    const apiHits = api.body.data as { id: string; snippet: { text: string; marks: [number, number][] } }[];
    const dense = await shownHits(page, 'col-a');
    assert.equal(dense.length, 10);
    assert.deepEqual(
      dense.map((h) => h.id),
      apiHits.map((h) => h.id),
      'the page shows the API ranking',
    );
    for (const h of dense) {
      const grade = judged.get(h.id);
      assert.equal(h.relevant, (grade ?? 0) >= 1, `✓ of ${h.id}`);
      assert.equal(h.grade, grade === undefined ? 'unjudged' : String(grade));
    }
    // the marks are the API's, which are the words BM25's analyzer matches
    assert.deepEqual(
      dense.map((h) => h.marks),
      apiHits.map((h) => h.snippet.marks.map(([a, b]) => h.snippet.text.slice(a, b))),
    );
    assert.ok(
      dense.some((h) => h.marks.length > 0),
      'some query terms are marked',
    );

    const analysis = (await page.textContent('#analysis'))!;
    assert.equal(analysis, (api.body.reasoning as string) || '(the model wrote no analysis)');
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    const growing = [...new Set(seen.filter((s) => s !== '' && s !== analysis))];
    for (const part of growing) assert.ok(analysis.startsWith(part), `${part} begins ${analysis}`);
    const usage = api.body.usage as { prompt_tokens: number; total_tokens: number };
    // a long analysis arrives in many events, and the page shows them as they come
    if (usage.total_tokens - usage.prompt_tokens >= 32) assert.ok(growing.length >= 2, 'the analysis grew on the page');

    const ndcgShown = Number(await page.getAttribute('#col-a .ndcg', 'data-ndcg'));
    const ids = dense.map((h) => h.id);
    const run = new Map([[claimId, { docIds: ids, scores: ids.map((_, i) => 10 - i) }]]);
    const want = referenceNdcg(run, new Map([[claimId, judged]]), 10).mean;
    assert.ok(Math.abs(ndcgShown - want) < 1e-12, `nDCG@10 ${ndcgShown} vs ${want}`);

    await page.check('#hybrid');
    await search(page);
    const hybrid = await shownHits(page, 'col-a');
    const apiHybrid = await post(
      pg.server.url,
      '/v1/search',
      { query: claim, k: 10, reasoning: 'on', hybrid: true },
      auth,
    );
    assert.deepEqual(
      hybrid.map((h) => h.id),
      (apiHybrid.body.data as { id: string }[]).map((h) => h.id),
      'hybrid: the page shows the API ranking',
    );
    assert.notDeepEqual(
      hybrid.map((h) => h.id),
      ids,
      'hybrid changes the order',
    );
    for (const h of hybrid) assert.equal(h.relevant, (judged.get(h.id) ?? 0) >= 1, `✓ of ${h.id} (hybrid)`);
    assert.ok(
      hybrid.some((h) => h.relevant),
      'BM25 brings a relevant abstract into the top 10',
    );
    const scores = await page.$$eval('#col-a li.hit:first-child .scores dt', (d) => d.map((x) => x.textContent));
    assert.deepEqual(scores, ['dense', 'BM25', 'fused']);

    // reasoning on vs off, side by side: each hit of the second column says where it was in the first
    await page.selectOption('#compare', 'reasoning');
    await search(page);
    const left = await shownHits(page, 'col-a');
    const right = await shownHits(page, 'col-b');
    const apiOff = await post(
      pg.server.url,
      '/v1/search',
      { query: claim, k: 10, reasoning: 'off', hybrid: true },
      auth,
    );
    assert.deepEqual(
      right.map((h) => h.id),
      (apiOff.body.data as { id: string }[]).map((h) => h.id),
    );
    const leftRank = new Map(left.map((h) => [h.id, h.rank]));
    const moves = await page.$$eval('#col-b li.hit .move', (m) => m.map((x) => x.textContent));
    right.forEach((h, i) => {
      const was = leftRank.get(h.id);
      const want =
        was === undefined ? 'new' : was === h.rank ? '=' : was > h.rank ? `▲${was - h.rank}` : `▼${h.rank - was}`;
      assert.equal(moves[i], want, `move of ${h.id}`);
    });
    assert.match((await page.textContent('#col-b h2'))!, /reasoning off/);
    await page.setViewportSize({ width: 1280, height: 1500 });
    await screenshot(page, 'web-playground.png', scratch.dir, false);
    assert.deepEqual(errors, []);
    await page.close();
  },
);

test(
  'an empty query, a 1 MB query and a wrong API key each end in one message on the page',
  {
    skip: noBrowser,
  },
  async () => {
    const errors: string[] = [];
    const page = await openPage(browser, errors);
    await page.goto(`${pg.server.url}/`);
    const message = async (): Promise<string> => {
      await page.waitForSelector('#message:not([hidden])');
      return (await page.textContent('#message'))!;
    };
    // no key yet: the page says so as soon as it loads
    assert.match(await message(), /needs an API key/);
    // the key's check fails while the user types a query: the typing stays in the query
    await page.route('**/v1/models', async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await route.continue();
    });
    await withKey(page, 'not-the-key');
    await page.focus('#query');
    await page.keyboard.type('vitamin D');
    await page.waitForFunction(() => document.getElementById('message')!.textContent!.includes('refused'));
    await page.unroute('**/v1/models');
    assert.equal(await page.inputValue('#query'), 'vitamin D');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'query');
    assert.equal(await page.inputValue('#api-key'), 'not-the-key');
    await search(page);
    assert.match(await message(), /refused this API key/);
    assert.equal(await page.isVisible('#col-a'), false);

    await withKey(page, KEY);
    await page.fill('#query', '   ');
    await search(page);
    assert.equal(await message(), 'Type a query first.');

    await page.fill('#query', 'protein '.repeat(125_000)); // 1 MB
    await search(page);
    const big = await message();
    assert.match(big, /query/);
    assert.doesNotMatch(big, /\n\s+at |internal error/, 'no stack trace');
    assert.ok(big.length < 400, big);
    assert.equal(await page.isVisible('#search-form'), true, 'the page is still there');

    // a query longer than the model's context is cut to fit, and the page says so
    await page.fill('#query', 'protein cell '.repeat(300));
    await search(page);
    await page.waitForFunction(() => /cut by \d+ tokens/.test(document.getElementById('status')!.textContent!));
    assert.match((await page.textContent('#status'))!, /^10 hits\. The query was cut by \d+ tokens to fit/);
    assert.equal(await page.isVisible('#message'), false);

    // and it recovers: a normal query after the bad ones
    // by keyboard alone: Tab reaches the options, Space toggles one, Enter in the query searches
    await page.fill('#query', pg.queries.get(CLAIMS[0]!)!);
    await page.focus('#query');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'reasoning');
    await page.keyboard.press('Space');
    assert.equal(await page.isChecked('#reasoning'), false);
    await page.focus('#query');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#col-a li.hit');
    await page.waitForFunction(() => !(document.getElementById('search-button') as HTMLButtonElement).disabled);
    assert.equal(await page.isVisible('#message'), false);
    assert.equal((await shownHits(page, 'col-a')).length, 10);
    assert.deepEqual(errors, []);
    await page.close();
  },
);

/**
 * A reverse proxy that serves `target` under `prefix`, as nginx's `location /search/ { proxy_pass
 * http://target/; }` does: the server sees its own paths, the browser only the prefixed ones.
 */
async function prefixProxy(target: string, prefix: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (!req.url!.startsWith(prefix)) {
      res.writeHead(404).end(`${req.url} is not under ${prefix}`);
      return;
    }
    const headers = { ...req.headers, host: new URL(target).host };
    const up = http.request(`${target}/${req.url!.slice(prefix.length)}`, { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url, close };
}

test(
  'behind a reverse proxy at /search/: both pages, their files and every call they make stay under it',
  { skip: noBrowser },
  async () => {
    const proxy = await prefixProxy(pg.server.url, '/search/');
    const base = `${proxy.url}/search/`;
    try {
      const errors: string[] = [];
      const page = await openPage(browser, errors);
      const asked: string[] = [];
      page.on('request', (r) => asked.push(r.url()));
      await page.goto(base);
      await page.waitForSelector('#key-box[open]');
      await withKey(page, KEY);
      await page.fill('#query', pg.queries.get(CLAIMS[0]!)!);
      await search(page);
      assert.equal((await shownHits(page, 'col-a')).length, 10, 'the search ran through the proxy');
      const links = await page.$$eval('nav a', (as) => as.map((a) => (a as HTMLAnchorElement).href));
      assert.deepEqual(links, [base, `${base}runs`]);
      // the dashboard: the server has no runs, which the page says once it has asked for them
      await page.click('nav a[href="runs"]');
      await page.waitForURL(`${base}runs`);
      await page.waitForFunction(() => document.getElementById('message')?.textContent !== '');
      for (const want of ['web/style.css', 'web/playground.js', 'v1/search/stream', 'web/dashboard.js', 'v1/runs'])
        assert.ok(asked.includes(`${base}${want}`), `${want} asked for under the prefix: ${asked.join(', ')}`);
      assert.deepEqual(
        asked.filter((u) => !u.startsWith(base)),
        [],
        'nothing asked for outside the prefix',
      );
      assert.deepEqual(errors, []);
      await page.close();
    } finally {
      await proxy.close();
    }
  },
);
