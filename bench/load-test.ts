/**
 * `npm run bench:load`: autocannon against POST /v1/search of a `search-r3 serve` child process on the
 * SciFact corpus (5,183 documents from ../shared/data/scifact, licence CC BY-NC: read locally, never
 * shipped), loopback only. The model is a tiny random Qwen2 (hidden 64, 2 layers): what is measured is
 * the server (HTTP, JSON, batching, query prompt + one forward pass, HNSW, sqlite), not a real model's
 * forward pass. Queries are SciFact's 1,109 claims, picked at random per request, reasoning off.
 *
 * Two phases:
 * 1. measured run: p50/p99 latency, throughput, status counts, the server's RSS, /health while saturated;
 * 2. adversarial: the same search traffic (half the connections) beside the largest embedding requests
 *    the limits allow, 1 MB inputs, reasoning-on batches at the reasoning bound, and malformed bodies
 *    (broken JSON, a gzip bomb, wrong fields). Prints /health p99 (target ≤ 50 ms), the 5xx count over
 *    both phases (target 0) and the peak RSS against the idle RSS (target ≤ 1.5×).
 * The index and model are cached in $TMPDIR/search-r3-loadtest.
 * Env: LOAD_DURATION (60 s), LOAD_ADVERSARIAL_DURATION (LOAD_DURATION), LOAD_CONNECTIONS (16),
 * LOAD_HYBRID=1 (fuse with BM25).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import { readBeirQueries } from '../src/eval/beir.js';
import { documentText, readDocuments } from '../src/search-index/document-source.js';
import { LocalBackend } from '../src/search-index/embedding-backend.js';
import { SearchIndex } from '../src/search-index/search-index.js';
import { saveModelFolder } from '../src/model/model-folder.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { tinyModel } from '../test/helpers/tiny-model.js';

interface AutocannonResult {
  latency: { p50: number; p99: number; average: number; max: number };
  requests: { average: number; total: number };
  throughput: { average: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  '4xx': number;
  '5xx': number;
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const scifact = path.resolve(root, '../shared/data/scifact');
const cache = path.join(tmpdir(), 'search-r3-loadtest');
const duration = Number(process.env.LOAD_DURATION ?? 60);
const adversarialDuration = Number(process.env.LOAD_ADVERSARIAL_DURATION ?? duration);
const connections = Number(process.env.LOAD_CONNECTIONS ?? 16);
const hybrid = process.env.LOAD_HYBRID === '1';
/** The bench model's cut; the server's default limits follow from it. */
const MAX_LENGTH = 512;
const MAX_REQUEST_TOKENS = 65_536;
const MAX_REQUEST_REASONING = 8192;

async function rssMiB(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)![1]) / 2 ** 20;
}

const quantile = (sorted: readonly number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];

function latencyLine(label: string, ms: readonly number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  if (s.length === 0) return `  ${label}: no answers`;
  const at = (q: number): string => `${quantile(s, q).toFixed(1)} ms`;
  return `  ${label}: ${s.length} probes, p50 ${at(0.5)}, p99 ${at(0.99)}, max ${s.at(-1)!.toFixed(1)} ms`;
}

/** The prober's loop, in a thread of its own so that the load this process generates does not delay it. */
const PROBER = `
const { parentPort, workerData: { url, everyMs } } = require('node:worker_threads');
const ms = [];
let running = true;
parentPort.once('message', () => { running = false; });
(async () => {
  while (running) {
    const s = performance.now();
    try {
      await (await fetch(url + '/health')).arrayBuffer();
      ms.push(performance.now() - s);
    } catch { /* counted as missing */ }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  parentPort.postMessage(ms);
})();
`;

/** Probes GET /health every `everyMs` until stopped; returns the latencies. */
function probeHealth(url: string, everyMs: number): { stop: () => Promise<number[]> } {
  const worker = new Worker(PROBER, { eval: true, workerData: { url, everyMs } });
  const result = new Promise<number[]>((resolve) => worker.once('message', resolve));
  const stop = async (): Promise<number[]> => {
    worker.postMessage('stop');
    const ms = await result;
    await worker.terminate();
    return ms;
  };
  return { stop };
}

/** Samples the server's RSS every `everyMs`; returns the samples. */
function sampleRss(url: string, everyMs: number): { stop: () => number[] } {
  const samples: number[] = [];
  const timer = setInterval(() => {
    rssMiB(url).then(
      (m) => samples.push(m),
      () => undefined,
    );
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return samples;
    },
  };
}

/** A text of at most `n` tokens cut from `text` (decode → encode may shift a token, so it is checked). */
function cutToTokens(tok: Tokenizer, text: string, n: number): string {
  let ids = tok.encode(text).slice(0, n);
  let cut = tok.decode(ids);
  while (tok.encode(cut).length > n) {
    ids = ids.slice(0, -1);
    cut = tok.decode(ids);
  }
  return cut;
}

interface Attack {
  name: string;
  send: () => Promise<Response>;
  want: (status: number) => boolean;
}

/** The adversarial requests: each is sent in a loop of its own, one at a time. */
function attacks(url: string, longTexts: string[], queries: string[]): Attack[] {
  // bodies are made once, so sending them costs this process little
  const json = (route: string, body: unknown, headers: Record<string, string> = {}): (() => Promise<Response>) => {
    const bytes = typeof body === 'string' ? body : Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body);
    const init = { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: bytes };
    return () => fetch(`${url}${route}`, init);
  };
  const perRequest = Math.floor(MAX_REQUEST_TOKENS / MAX_LENGTH);
  const reasoningQueries = Math.floor(MAX_REQUEST_REASONING / 128);
  const bomb = zlib.gzipSync(Buffer.alloc(64 << 20, 0x20));
  const huge = 'protein cell cancer '.repeat(52_000);
  const embed = (input: unknown, ext?: Record<string, unknown>): (() => Promise<Response>) =>
    json('/v1/embeddings', { model: 'search-r3', input, ...(ext ? { search_r3: ext } : {}) });
  const reasoning = { mode: 'query', reasoning: 'on', max_reasoning_tokens: 128, temperature: 1.5 };
  const is =
    (want: number) =>
    (status: number): boolean =>
      status === want;
  const ok = is(200);
  return [
    // the largest request the limits allow: inputs of the full cut, up to the per-request token bound
    { name: `${perRequest} inputs × ≤${MAX_LENGTH} tokens`, send: embed(longTexts.slice(0, perRequest)), want: ok },
    { name: '1 MB input', send: embed(huge), want: is(400) },
    {
      name: `reasoning ${reasoningQueries} queries × 128, T=1.5`,
      send: embed(queries.slice(0, reasoningQueries), reasoning),
      want: ok,
    },
    { name: 'broken JSON', send: json('/v1/embeddings', '{"model": "search-r3", "input": '), want: is(400) },
    { name: 'gzip bomb (64 MiB)', send: json('/v1/embeddings', bomb, { 'content-encoding': 'gzip' }), want: is(413) },
    { name: 'wrong fields', send: json('/v1/search', { query: 42, k: -1 }), want: is(400) },
  ];
}

interface AttackStats {
  sent: number;
  unexpected: Map<number, number>;
  failed: number;
  fiveXx: number;
}

/** Runs every attack in its own loop until `until`; counts answers that are not what the attack expects. */
async function runAttacks(list: Attack[], until: number): Promise<Map<string, AttackStats>> {
  const stats = new Map<string, AttackStats>();
  await Promise.all(
    list.map(async (a) => {
      const st: AttackStats = { sent: 0, unexpected: new Map(), failed: 0, fiveXx: 0 };
      stats.set(a.name, st);
      while (performance.now() < until) {
        st.sent++;
        try {
          const r = await a.send();
          await r.arrayBuffer();
          if (r.status >= 500) st.fiveXx++;
          if (!a.want(r.status)) st.unexpected.set(r.status, (st.unexpected.get(r.status) ?? 0) + 1);
        } catch {
          st.failed++; // a reset or refused connection
        }
      }
    }),
  );
  return stats;
}

function searchRequests(queries: string[]): Record<string, unknown>[] {
  let n = 0;
  return [
    {
      method: 'POST',
      path: '/v1/search',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req: Record<string, unknown>) => ({
        ...req,
        body: JSON.stringify({ query: queries[(n++ * 7919) % queries.length], k: 10, hybrid }),
      }),
    },
  ];
}

async function main(): Promise<void> {
  if (!existsSync(path.join(scifact, 'corpus.jsonl'))) throw new Error(`SciFact not found at ${scifact}`);
  mkdirSync(cache, { recursive: true });
  const modelDir = path.join(cache, 'model');
  if (!existsSync(path.join(modelDir, 'config.json'))) {
    const shape = { hiddenSize: 64, numAttentionHeads: 4, maxPositionEmbeddings: MAX_LENGTH };
    await saveModelFolder(modelDir, tinyModel(3, shape, 2000));
  }
  const indexDir = path.join(cache, 'scifact-index');
  const t0 = performance.now();
  const backend = await LocalBackend.fromModelDir(modelDir, { maxLength: MAX_LENGTH });
  const index = await SearchIndex.open(indexDir, { backend, create: {} });
  const docs = await readDocuments(scifact);
  const { encoded } = await index.addDocuments(docs, { chunkSize: 1024 });
  const took = ((performance.now() - t0) / 1000).toFixed(1);
  const n = index.stats().documents;
  console.log(`index: ${n} SciFact documents (${encoded} encoded now) in ${took} s; model ${backend.modelId}`);
  await index.close();
  const queries = [...(await readBeirQueries(path.join(scifact, 'queries.jsonl'))).values()];
  const tok = await Tokenizer.fromFolder(modelDir);
  const longest = docs
    .map(documentText)
    .sort((a, b) => b.length - a.length)
    .slice(0, 256);
  const longTexts = longest.map((t) => cutToTokens(tok, t, MAX_LENGTH));

  const cli = path.join(root, 'dist/src/cli/main.js');
  const child = spawn(process.execPath, [cli, 'serve', '--index', indexDir, '--port', '0', '--max-queue', '4096'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
  let fiveXx = 0;
  try {
    // the idle RSS (the server loaded, nothing asked yet), a warm-up, then the measured run
    const idle = await rssMiB(url);
    await autocannon({
      url: `${url}/v1/search`,
      connections,
      duration: 3,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: queries[0], k: 10 }),
    });
    const rss: number[] = [await rssMiB(url)];
    const sampler = setInterval(() => {
      rssMiB(url).then(
        (m) => rss.push(m),
        () => undefined,
      );
    }, 10_000);
    const peakSampler = sampleRss(url, 500);
    const prober = probeHealth(url, 250);
    const res = await autocannon({ url, connections, duration, requests: searchRequests(queries) });
    clearInterval(sampler);
    const healthMs = await prober.stop();
    rss.push(await rssMiB(url));
    fiveXx += res['5xx'];
    const codes = Object.entries(res.statusCodeStats)
      .map(([c, s]) => `${c}:${s.count}`)
      .join(' ');
    const what = `POST /v1/search k=10${hybrid ? ' hybrid' : ''}, reasoning off, loopback`;
    console.log(`autocannon ${duration} s, ${connections} connections, ${what}`);
    const lat = res.latency;
    console.log(`  latency p50 ${lat.p50} ms  p99 ${lat.p99} ms  mean ${lat.average.toFixed(2)} ms  max ${lat.max} ms`);
    console.log(`  throughput ${res.requests.average.toFixed(0)} req/s (${res.requests.total} requests)`);
    console.log(`  status ${codes}; 5xx ${res['5xx']}, errors ${res.errors}, timeouts ${res.timeouts}`);
    const mib = (x: number): string => x.toFixed(0);
    const samples = rss.slice(1, -1).map(mib).join(' ');
    console.log(`  server RSS MiB: start ${mib(rss[0])}, samples ${samples}, end ${mib(rss.at(-1)!)}`);
    console.log(latencyLine('GET /health during the run', healthMs));
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const batches = Number(/search_r3_batches_total\{kind="direct"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const inputs = Number(/search_r3_batch_inputs_total\{kind="direct"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const perBatch = (inputs / Math.max(1, batches)).toFixed(1);
    console.log(`  batching: ${inputs} queries in ${batches} forward batches (${perBatch} per batch)`);

    // adversarial phase: normal search traffic beside the worst requests the limits let through
    const half = Math.max(1, Math.floor(connections / 2));
    const advProber = probeHealth(url, 50);
    const until = performance.now() + adversarialDuration * 1000;
    const [normal, attackStats] = await Promise.all([
      autocannon({ url, connections: half, duration: adversarialDuration, requests: searchRequests(queries) }),
      runAttacks(attacks(url, longTexts, queries), until),
    ]);
    const advHealth = await advProber.stop();
    const peak = Math.max(...peakSampler.stop(), await rssMiB(url));
    fiveXx += normal['5xx'] + [...attackStats.values()].reduce((a, s) => a + s.fiveXx, 0);
    console.log(`adversarial ${adversarialDuration} s: POST /v1/search on ${half} connections, one loop per attack`);
    const nl = normal.latency;
    console.log(
      `  search: p50 ${nl.p50} ms  p99 ${nl.p99} ms  max ${nl.max} ms, ${normal.requests.total} requests, ` +
        `5xx ${normal['5xx']}, errors ${normal.errors}`,
    );
    for (const [name, st] of attackStats) {
      const odd = [...st.unexpected].map(([c, n]) => `${c}×${n}`).join(' ');
      console.log(`  ${name}: ${st.sent} sent, unexpected ${odd || 'none'}, connection errors ${st.failed}`);
    }
    const sorted = [...advHealth].sort((a, b) => a - b);
    console.log(latencyLine('GET /health every 50 ms', advHealth));
    console.log(
      `summary: /health p99 ${quantile(sorted, 0.99).toFixed(1)} ms (target ≤ 50), 5xx ${fiveXx} (target 0), ` +
        `peak RSS ${peak.toFixed(0)} MiB = ${(peak / idle).toFixed(2)}× idle ${idle.toFixed(0)} MiB (target ≤ 1.5×)`,
    );
    if (fiveXx > 0 || res.errors > 0) process.exitCode = 1;
  } finally {
    const t = performance.now();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    console.log(`  graceful shutdown in ${(performance.now() - t).toFixed(0)} ms`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
