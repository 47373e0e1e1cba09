/**
 * The run dashboard in a real browser: a tiny stage-1 run in another process, watched while it trains,
 * whose loss curve grows on the page until it holds every step of metrics.jsonl; a damaged and a cut
 * metrics.jsonl are reported on the page; `search-r3 dashboard` on the tiny recipe's work folder shows
 * its three stages, their configs and the recipe's evaluation table.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startDashboardServer } from '../../src/serve/dashboard-server.js';
import type { Listening } from '../../src/serve/listen.js';
import { RunWatch } from '../../src/train/run-watch.js';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/repo.js';
import { tempDir, toySftRun } from '../helpers/train-fixtures.js';
import { noBrowser, launch, openPage, screenshot } from './browser.js';

let browser: Browser;
let scratch: string;

before(async () => {
  if (noBrowser) return;
  scratch = tempDir('web-dashboard');
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

const STEPS = 16;

/** A toy stage-1 run of STEPS steps that sleeps `sleepMs` after each step, in a child process. */
async function startRun(root: string, sleepMs: number): Promise<{ child: ChildProcess; done: Promise<number | null> }> {
  const cfg = await toySftRun(root, { steps: STEPS, checkpoint: { every: 8, keep: 1 } });
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist/test/helpers/train-child.js'), cfg, 'fresh'], {
    env: { ...process.env, SLEEP_MS: String(sleepMs), SEARCH_R3_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, done };
}

const points = (page: Page, metric: string): Promise<number> =>
  page.$eval(`figure[data-metric="${metric}"]`, (f) => Number(f.getAttribute('data-points'))).catch(() => 0);

/** Waits until the loss chart holds `n` points. */
const lossPoints = (page: Page, n: number): Promise<unknown> =>
  page.waitForFunction(
    (want) =>
      document.querySelector('figure[data-metric="train · loss"]')?.getAttribute('data-points') === String(want),
    n,
  );

const trainRecords = (run: string): number =>
  readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => JSON.parse(l).type === 'train').length;

/** "type · field" of every finite number the run's records hold, nested fields joined by dots; data records aside. */
function loggedMetrics(run: string): string[] {
  const out = new Set<string>();
  const walk = (type: string, o: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(o)) {
      if (prefix === '' && (k === 'type' || k === 'step')) continue;
      if (typeof v === 'number' && Number.isFinite(v)) out.add(`${type} · ${prefix}${k}`);
      else if (v && typeof v === 'object' && !Array.isArray(v))
        walk(type, v as Record<string, unknown>, `${prefix}${k}.`);
    }
  };
  for (const line of readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n')) {
    const r = JSON.parse(line) as Record<string, unknown>;
    if (r.type !== 'data') walk(String(r.type), r, '');
  }
  return [...out].sort();
}

test(
  'a run watched while it trains: the loss curve grows to every logged step; damaged logs get a message',
  {
    skip: noBrowser,
  },
  async () => {
    const root = path.join(scratch, 'live');
    const { child, done } = await startRun(root, 250);
    let finished = false;
    void done.then(() => (finished = true));
    const run = path.join(root, 'run');
    let server: Listening | null = null;
    try {
      // the folder exists once the run has started; the dashboard may start before it logs a step
      while (!finished && !(await import('node:fs')).existsSync(run)) await new Promise((r) => setTimeout(r, 50));
      server = await startDashboardServer({ runs: new RunWatch([run]), port: 0 });
      const errors: string[] = [];
      const page = await openPage(browser, errors);
      await page.goto(`${server.url}/runs?poll=200`);
      const seen: number[] = [];
      while (!finished) {
        seen.push(await points(page, 'train · loss'));
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.equal(await done, 0);
      const growing = [...new Set(seen.filter((n) => n > 0))];
      assert.ok(growing.length >= 3, `the curve grew while the run trained (${seen.join(' ')})`);
      assert.deepEqual(
        growing,
        [...growing].sort((a, b) => a - b),
      );
      assert.ok(growing[0]! < STEPS, 'the first points were shown before the run ended');
      await lossPoints(page, trainRecords(run));
      assert.equal(trainRecords(run), STEPS);
      // every numeric field the run logs has its chart (stage 1's loss terms, lr, gradNorm, ...), and only those
      const metrics = await page.$$eval('figure.chart', (f) => f.map((x) => x.getAttribute('data-metric')));
      assert.deepEqual(metrics.sort(), loggedMetrics(run));
      for (const m of ['train · sft', 'train · kl', 'train · infonce', 'train · triplet'])
        assert.ok(metrics.includes(m));
      const shown = JSON.parse((await page.textContent('#config'))!.split('\ndata:')[0]!);
      assert.deepEqual(shown, JSON.parse(readFileSync(path.join(run, 'run-config.json'), 'utf8')).config);
      assert.equal(await page.isVisible('#message'), false);
      await page.close();
      assert.deepEqual(errors, []);
    } finally {
      child.kill();
      await server?.close();
    }

    // the same run twice more: one log with a line that is no record, one cut in the middle of its last line
    const damaged = path.join(scratch, 'damaged');
    const cut = path.join(scratch, 'cut');
    cpSync(run, damaged, { recursive: true });
    cpSync(run, cut, { recursive: true });
    appendFileSync(path.join(damaged, 'metrics.jsonl'), '{"type": "train", "st\u0000\n');
    const text = readFileSync(path.join(cut, 'metrics.jsonl'), 'utf8');
    writeFileSync(path.join(cut, 'metrics.jsonl'), text.slice(0, text.length - 25));
    server = await startDashboardServer({ runs: new RunWatch([run, damaged, cut]), port: 0, apiKey: 'k' });
    try {
      const errors: string[] = [];
      const page = await openPage(browser, errors);
      await page.goto(`${server.url}/`);
      await page.waitForSelector('#message:not([hidden])');
      assert.match((await page.textContent('#message'))!, /needs an API key/);
      await page.fill('#api-key', 'k');
      await page.press('#api-key', 'Enter');
      await page.waitForFunction(() => /incomplete line/.test(document.getElementById('message')?.textContent ?? ''));
      const message = (await page.textContent('#message'))!;
      assert.match(message, /damaged: 1 line\(s\) of metrics\.jsonl are not metrics records/);
      assert.match(message, /cut: metrics\.jsonl ends in an incomplete line \(\d+ bytes\)/);
      await lossPoints(page, 3 * STEPS - 1);
      const runs = await page.$$eval('#run-list label', (l) => l.map((x) => x.textContent));
      assert.deepEqual(runs, ['run (sft)', 'damaged (sft)', 'cut (sft)']);
      // a run taken off the chart is off every chart
      await page.uncheck('#run-list input >> nth=1');
      await lossPoints(page, 2 * STEPS - 1);
      await page.close();
      assert.deepEqual(errors, []);
    } finally {
      await server.close();
    }
  },
);

test(
  'search-r3 dashboard on the tiny recipe: its three stages, their configs and the evaluation table',
  {
    skip: noBrowser,
  },
  async () => {
    const work = path.join(scratch, 'recipe');
    const made = runCli(['recipe', 'default', '--profile', 'tiny', '--work', work, '--quiet'], {
      SEARCH_R3_THREADS: '1',
    });
    assert.equal(made.status, 0, made.stderr);
    const cli = spawn(
      process.execPath,
      [path.join(repoRoot, 'dist/src/cli/main.js'), 'dashboard', work, '--port', '0'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        cli.stdout!.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /at (http:\/\/\S+?)\/?\n/.exec(out);
          if (m) resolve(m[1]!);
        });
        cli.on('exit', (code) => reject(new Error(`dashboard exited with ${code}: ${out}`)));
      });
      const errors: string[] = [];
      const page = await openPage(browser, errors);
      await page.goto(`${url}/`);
      await page.waitForSelector('#evaluations:not([hidden]) table');
      const runs = await page.$$eval('#run-list label', (l) => l.map((x) => x.textContent));
      assert.deepEqual(runs, ['recipe/lm (lm)', 'recipe/stage1 (sft)', 'recipe/stage2 (rl)']);
      for (const m of [
        'train · loss',
        'valid · loss',
        'train · rewardMean',
        'train · env.meanStaleness',
        'eval · ndcg10',
      ])
        await page.waitForSelector(`figure[data-metric="${m}"]`);
      // the table on the page is the one the recipe computed
      const evaluation = JSON.parse(readFileSync(path.join(work, 'evaluation', 'evaluation.json'), 'utf8')) as {
        datasets: { label: string; rows: { label: string; ndcg10: number }[] }[];
      };
      const table = await page.$$eval('#evaluations table >> nth=0', (t) =>
        [...t[0]!.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((c) => c.textContent)),
      );
      const scifact = evaluation.datasets[0]!;
      assert.deepEqual(
        table.map((r) => [r[0], r[1]]),
        scifact.rows.map((r) => [r.label, r.ndcg10.toFixed(4)]),
        'nDCG@10 of every row on SciFact',
      );
      await page.selectOption('#config-run', { label: 'recipe/stage2' });
      const config = JSON.parse((await page.textContent('#config'))!.split('\ndata:')[0]!);
      assert.deepEqual(config, JSON.parse(readFileSync(path.join(work, 'stage2', 'run-config.json'), 'utf8')).config);
      await page.fill('#metric-filter', 'loss');
      const filtered = await page.$$eval('figure.chart', (f) => f.map((x) => x.getAttribute('data-metric')!));
      assert.deepEqual(filtered, ['train · loss', 'valid · loss']);
      await screenshot(page, 'web-dashboard.png', scratch, false);
      await page.close();
      assert.deepEqual(errors, []);
    } finally {
      cli.kill('SIGTERM');
    }
  },
);
