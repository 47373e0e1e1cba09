/**
 * `npm run bench:load`: autocannon against POST /v1/search of a `search-r3 serve` child process on the
 * SciFact corpus (5,183 documents from ../shared/data/scifact, licence CC BY-NC: read locally, never
 * shipped), loopback only. The model is a tiny random Qwen2 (hidden 64, 2 layers): what is measured is
 * the server (HTTP, JSON, batching, query prompt + one forward pass, HNSW, sqlite), not a real model's
 * forward pass. Queries are SciFact's 1,109 claims, picked at random per request, reasoning off.
 *
 * Prints p50/p99 latency, throughput, status counts (5xx must be 0), and the server's RSS from /metrics
 * at start, every 10 s, and at the end. The index and model are cached in $TMPDIR/search-r3-loadtest.
 * Env: LOAD_DURATION (60 s), LOAD_CONNECTIONS (16), LOAD_HYBRID=1 (fuse with BM25).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readBeirQueries } from '../src/eval/beir.js';
import { readDocuments } from '../src/index/document-source.js';
import { LocalBackend } from '../src/index/embedding-backend.js';
import { SearchIndex } from '../src/index/search-index.js';
import { saveModelFolder } from '../src/model/model-folder.js';
import { tinyModel } from '../test/helpers/tiny-model.js';

interface AutocannonResult {
  latency: { p50: number; p99: number; average: number; max: number };
  requests: { average: number; total: number };
  throughput: { average: number };
  errors: number; timeouts: number; non2xx: number; '2xx': number; '4xx': number; '5xx': number;
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const scifact = path.resolve(root, '../shared/data/scifact');
const cache = path.join(tmpdir(), 'search-r3-loadtest');
const duration = Number(process.env.LOAD_DURATION ?? 60);
const connections = Number(process.env.LOAD_CONNECTIONS ?? 16);
const hybrid = process.env.LOAD_HYBRID === '1';

async function rssMiB(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)![1]) / 2 ** 20;
}

async function main(): Promise<void> {
  if (!existsSync(path.join(scifact, 'corpus.jsonl'))) throw new Error(`SciFact not found at ${scifact}`);
  mkdirSync(cache, { recursive: true });
  const modelDir = path.join(cache, 'model');
  if (!existsSync(path.join(modelDir, 'config.json'))) await saveModelFolder(modelDir, tinyModel(3, { hiddenSize: 64, numAttentionHeads: 4, maxPositionEmbeddings: 512 }, 2000));
  const indexDir = path.join(cache, 'scifact-index');
  const t0 = performance.now();
  const backend = await LocalBackend.fromModelDir(modelDir, { maxLength: 512 });
  const index = await SearchIndex.open(indexDir, { backend, create: {} });
  const { encoded } = await index.addDocuments(await readDocuments(scifact), { chunkSize: 1024 });
  console.log(`index: ${index.stats().documents} SciFact documents (${encoded} encoded now) in ${((performance.now() - t0) / 1000).toFixed(1)} s; model ${backend.modelId}`);
  await index.close();
  const queries = [...(await readBeirQueries(path.join(scifact, 'queries.jsonl'))).values()];

  const child = spawn(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'serve', '--index', indexDir, '--port', '0', '--max-queue', '4096'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; const m = /at (http:\/\/\S+)/.exec(out); if (m) resolve(m[1]); });
    child.on('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
  try {
    // warm-up, then the measured run
    await autocannon({ url: `${url}/v1/search`, connections, duration: 3, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: queries[0], k: 10 }) });
    const rss: number[] = [await rssMiB(url)];
    const sampler = setInterval(() => { rssMiB(url).then((m) => rss.push(m), () => undefined); }, 10_000);
    // how responsive /health stays while the server is saturated (the event loop is shared with the forward passes)
    const healthMs: number[] = [];
    const prober = setInterval(() => {
      const s = performance.now();
      fetch(`${url}/health`).then((r) => r.arrayBuffer()).then(() => healthMs.push(performance.now() - s), () => undefined);
    }, 250);
    let n = 0;
    const res = await autocannon({
      url, connections, duration,
      requests: [{
        method: 'POST', path: '/v1/search', headers: { 'content-type': 'application/json' },
        setupRequest: (req: Record<string, unknown>) => ({ ...req, body: JSON.stringify({ query: queries[(n++ * 7919) % queries.length], k: 10, hybrid }) }),
      }],
    });
    clearInterval(sampler);
    clearInterval(prober);
    rss.push(await rssMiB(url));
    const codes = Object.entries(res.statusCodeStats).map(([c, s]) => `${c}:${s.count}`).join(' ');
    console.log(`autocannon ${duration} s, ${connections} connections, POST /v1/search k=10${hybrid ? ' hybrid' : ''}, reasoning off, loopback`);
    console.log(`  latency p50 ${res.latency.p50} ms  p99 ${res.latency.p99} ms  mean ${res.latency.average.toFixed(2)} ms  max ${res.latency.max} ms`);
    console.log(`  throughput ${res.requests.average.toFixed(0)} req/s (${res.requests.total} requests)`);
    console.log(`  status ${codes}; 5xx ${res['5xx']}, errors ${res.errors}, timeouts ${res.timeouts}`);
    console.log(`  server RSS MiB: start ${rss[0].toFixed(0)}, samples ${rss.slice(1, -1).map((x) => x.toFixed(0)).join(' ')}, end ${rss.at(-1)!.toFixed(0)}`);
    const sorted = [...healthMs].sort((a, b) => a - b);
    console.log(`  GET /health during the run: ${sorted.length} probes, p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms, p99 ${sorted[Math.floor(sorted.length * 0.99)].toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const batches = Number(/search_r3_batches_total\{kind="direct"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const inputs = Number(/search_r3_batch_inputs_total\{kind="direct"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    console.log(`  batching: ${inputs} queries in ${batches} forward batches (${(inputs / Math.max(1, batches)).toFixed(1)} per batch)`);
    if (res['5xx'] > 0 || res.errors > 0) process.exitCode = 1;
  } finally {
    const t = performance.now();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    console.log(`  graceful shutdown in ${(performance.now() - t).toFixed(0)} ms`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
