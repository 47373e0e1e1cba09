/**
 * `npm run bench:eval`: the evaluation harness's two speed targets, on this machine.
 *  1. Dense: 300 SciFact test queries × 5,183 documents, precomputed 1536-d float32 embeddings (synthetic, seeded:
 *     each query is its relevant document plus noise, so the metrics are not trivial), exact cosine top-1000 and
 *     every trec_eval measure. Target < 1 s. Peer: numpy (BLAS sgemm on all cores + argpartition) on the same
 *     .npy files, search only.
 *  2. BM25: index SciFact (5,183 abstracts, title + text), search the 300 test queries, evaluate. Target: index
 *     < 5 s. nDCG@10 is printed beside Pyserini's published 0.679.
 *
 * The machine is shared: figures are the best of BENCH_REPS (default 5) runs, and the load average is printed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAnalyzer } from '../src/eval/analyzer.js';
import { readBeirDataset } from '../src/eval/beir.js';
import { Bm25Index } from '../src/eval/bm25.js';
import { flatText } from '../src/eval/bm25-retriever.js';
import { denseSearch, type EmbeddingMatrix } from '../src/eval/dense-search.js';
import { readEmbeddings, writeNpyEmbeddings } from '../src/eval/embeddings-file.js';
import { evaluateRun } from '../src/eval/measures.js';
import type { Run } from '../src/eval/run.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const data = join(root, '..', 'shared', 'data', 'scifact');
const reps = Number(process.env.BENCH_REPS ?? 5);
const DIM = 1536;

async function best(f: () => Promise<unknown> | unknown, n = reps): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

const ms = (x: number) => `${x.toFixed(0)} ms`;
const line = (what: string, ours: number, peer: number | undefined, peerName: string) =>
  console.log(
    `${what.padEnd(46)} ours ${ms(ours).padStart(8)}   ${peerName} ` +
      `${peer === undefined ? 'n/a' : ms(peer).padStart(8)}` +
      (peer === undefined ? '' : `   ratio ${(ours / peer).toFixed(2)}×`),
  );

async function main(): Promise<void> {
  console.log(
    `bench:eval — ${availableParallelism()} cores, load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}, best of ${reps}`,
  );
  const t0 = performance.now();
  const ds = await readBeirDataset(data, 'test');
  const readMs = performance.now() - t0;

  // 1. Dense evaluation from precomputed embeddings.
  const rand = gaussian(2024);
  const docIds = ds.corpus.map((d) => d.id);
  const docs: EmbeddingMatrix = {
    ids: docIds,
    dim: DIM,
    data: Float32Array.from({ length: docIds.length * DIM }, rand),
  };
  const row = new Map(docIds.map((id, i) => [id, i]));
  const qIds = [...ds.queries.keys()];
  const queries: EmbeddingMatrix = { ids: qIds, dim: DIM, data: new Float32Array(qIds.length * DIM) };
  qIds.forEach((q, i) => {
    const rel = row.get([...ds.qrels.get(q)!.keys()][0]!)!;
    for (let j = 0; j < DIM; j++) queries.data[i * DIM + j] = docs.data[rel * DIM + j]! + 1.3 * rand();
  });
  const dir = mkdtempSync(join(tmpdir(), 'bench-eval-'));
  try {
    writeNpyEmbeddings(join(dir, 'queries.npy'), queries);
    writeNpyEmbeddings(join(dir, 'docs.npy'), docs);
    const loadMs = await best(() =>
      Promise.all([readEmbeddings(join(dir, 'queries.npy')), readEmbeddings(join(dir, 'docs.npy'))]),
    );
    let run: Run = new Map();
    let usedThreads = 0;
    const searchAndEval = async (threads: number | undefined, kernel: 'wasm' | 'js') => {
      const r = await denseSearch(queries, docs, { k: 1000, threads, kernel });
      run = r.run;
      usedThreads = r.threads;
      return evaluateRun(run, ds.qrels);
    };
    const denseDefault = await best(() => searchAndEval(undefined, 'wasm'));
    const defaultThreads = usedThreads;
    const dense2 = await best(() => searchAndEval(availableParallelism(), 'wasm'));
    const dense1 = await best(() => searchAndEval(1, 'wasm'));
    const ev = evaluateRun(run, ds.qrels);
    const evalMs = await best(() => evaluateRun(run, ds.qrels));
    const js1 = await best(() => searchAndEval(availableParallelism(), 'js'), Math.min(reps, 2));
    const peer = spawnSync(
      '/usr/bin/python3',
      [
        join(root, 'bench/peers/numpy_dense_topk.py'),
        join(dir, 'queries.npy'),
        join(dir, 'docs.npy'),
        '1000',
        String(reps),
      ],
      { encoding: 'utf8' },
    );
    const numpyMs = peer.status === 0 ? Number(peer.stdout.trim()) : undefined;
    if (numpyMs === undefined)
      console.log(`(numpy peer unavailable: ${peer.stderr?.trim().split('\n').pop() ?? peer.error})`);
    console.log(
      `\ndense: ${qIds.length} queries × ${docIds.length} docs × ${DIM}-d, top-1000 + all measures ` +
        `(synthetic nDCG@10 ${ev.all['ndcg_cut_10']!.toFixed(4)}); target < 1000 ms`,
    );
    line(
      `exact search + metrics, default (${defaultThreads} thread${defaultThreads > 1 ? 's' : ''}, wasm SIMD)`,
      denseDefault,
      numpyMs,
      'numpy search',
    );
    line(`exact search + metrics, ${availableParallelism()} threads (wasm SIMD)`, dense2, numpyMs, 'numpy search');
    line('exact search + metrics, 1 thread (wasm SIMD)', dense1, numpyMs, 'numpy search');
    line(`exact search + metrics, ${availableParallelism()} threads (plain TS)`, js1, numpyMs, 'numpy search');
    line('  of which all trec_eval measures', evalMs, undefined, '');
    line('  loading the two .npy files (not in the above)', loadMs, undefined, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // 2. BM25 on SciFact.
  const flat = ds.corpus.map((d) => ({ id: d.id, text: flatText(d) }));
  let index: Bm25Index | undefined;
  const indexMs = await best(() => {
    index = Bm25Index.build(flat, createAnalyzer());
  });
  let run: Run = new Map();
  const searchMs = await best(() => {
    run = new Map();
    for (const [q, text] of ds.queries) run.set(q, index!.search(text, 1000));
  });
  const ev = evaluateRun(run, ds.qrels, { cutoffs: [10, 100, 1000] });
  console.log(
    `\nBM25 (k1 0.9, b 0.4, Lucene English analysis) on SciFact: ${flat.length} docs, vocabulary ` +
      `${index!.vocabularySize}; reading the BEIR folder ${ms(readMs)}`,
  );
  line('index SciFact (target < 5000 ms)', indexMs, 5000, 'target');
  line(`search ${ds.queries.size} queries, top 1000`, searchMs, undefined, '');
  console.log(
    `nDCG@10 ${ev.all['ndcg_cut_10']!.toFixed(4)} (Pyserini BM25 flat: 0.679)   R@100 ` +
      `${ev.all['recall_100']!.toFixed(4)}` +
      ` (0.9253)   R@1000 ${ev.all['recall_1000']!.toFixed(4)} (0.9767)`,
  );
}

await main();
