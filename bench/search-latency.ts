/**
 * `npm run bench:search`: search latency at 100k documents, without reasoning (the query vector is given;
 * embedding a query is the model's cost, measured elsewhere).
 *
 * No pretrained Search-R3 weights exist on this machine, so the vectors are synthetic but clustered like
 * real embeddings (HNSW recall collapses on uniform random vectors and says nothing): a mixture of 2,000
 * Gaussian topics on the unit sphere in 256-d, topic sizes Zipf-distributed, per-document noise chosen so a
 * document's cosine to its topic centre is ~0.7 and to other documents of its topic ~0.5; queries are
 * fresh draws from the same mixture (not copies of documents).
 *
 * Measured: recall@10 of HNSW against exact search (usearch exactSearch, f32), and per-query latency p50/p99
 * of (a) the HNSW walk alone and (b) SearchIndex.searchVector (HNSW + fetching the 10 documents' texts from
 * docs.sqlite), against the peer: exact brute force over the same vectors (usearch SIMD, 1 thread).
 * Env: BENCH_N (100000), BENCH_DIM (256), BENCH_QUERIES (1000), BENCH_DTYPE (f32), BENCH_EF (64,128).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import usearch from 'usearch';
import { DEFAULT_TEMPLATES, type QueryEmbedding } from '../src/embed/index.js';
import type { EmbeddingBackend } from '../src/search-index/embedding-backend.js';
import type { VectorDtype } from '../src/search-index/manifest.js';
import { SearchIndex } from '../src/search-index/search-index.js';
import { UsearchStore } from '../src/search-index/usearch-store.js';

const N = Number(process.env.BENCH_N ?? 100_000);
const DIM = Number(process.env.BENCH_DIM ?? 256);
const Q = Number(process.env.BENCH_QUERIES ?? 1000);
const DTYPE = (process.env.BENCH_DTYPE ?? 'f32') as VectorDtype;
const EFS = (process.env.BENCH_EF ?? '64,128').split(',').map(Number);
const TOPICS = 2000;
const K = 10;

let seed = 12345;
// Math.imul: a plain multiply exceeds 2^53 and collapses the generator into a short cycle (duplicate vectors)
const uniform = (): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed + 0.5) / 4294967296;
};
const gauss = (): number => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
function normalise(v: Float32Array): Float32Array {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

const centres = Array.from({ length: TOPICS }, () => normalise(Float32Array.from({ length: DIM }, gauss)));
// Zipf topic sizes: a few big topics, a long tail, as in real corpora
const weights = Array.from({ length: TOPICS }, (_, i) => 1 / (i + 1) ** 0.8);
const cum: number[] = [];
weights.reduce((a, w, i) => (cum[i] = a + w), 0);
const pickTopic = (): number => {
  const u = uniform() * cum[TOPICS - 1];
  let lo = 0,
    hi = TOPICS - 1;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (cum[m] < u) lo = m + 1;
    else hi = m;
  }
  return lo;
};
// noise σ per coordinate so that cos(doc, centre) ≈ 1 / sqrt(1 + σ²·DIM) ≈ 0.7
const sigma = Math.sqrt((1 / 0.7 ** 2 - 1) / DIM);
const draw = (): Float32Array => {
  const c = centres[pickTopic()];
  return normalise(c.map((x) => x + sigma * gauss()));
};

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function main(): Promise<void> {
  console.log(
    `search latency: ${N} documents × ${DIM}-d (${TOPICS} Zipf topics, cos to centre ≈ 0.7), ${Q} fresh ` +
      `queries, k=${K}, HNSW ${DTYPE}`,
  );
  let t = performance.now();
  const data = new Float32Array(N * DIM);
  for (let i = 0; i < N; i++) data.set(draw(), i * DIM);
  const queries = Array.from({ length: Q }, draw);
  console.log(`generated in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  // the index is built through the real path (docs.sqlite + usearch, committed in chunks) with a backend that returns
  // these vectors
  const backend: EmbeddingBackend = {
    modelId: 'synthetic-clustered',
    dimension: DIM,
    templates: DEFAULT_TEMPLATES,
    maxLength: 512,
    embedDocuments: async (texts) =>
      texts.map((s) => {
        const i = Number(s.slice(s.lastIndexOf(' ') + 1));
        return data.slice(i * DIM, (i + 1) * DIM);
      }),
    embedQueries: async (): Promise<QueryEmbedding[]> => {
      throw new Error('not used');
    },
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-bench-'));
  try {
    t = performance.now();
    const index = await SearchIndex.open(path.join(dir, 'idx'), { backend, create: { dtype: DTYPE } });
    await index.addDocuments(
      Array.from({ length: N }, (_, i) => ({ id: `doc${i}`, title: '', text: `synthetic document ${i}` })),
      { chunkSize: 20_000 },
    );
    console.log(
      `indexed in ${((performance.now() - t) / 1000).toFixed(1)} s (sqlite + HNSW M=16 ef_add=128, 2 threads)`,
    );

    // exact top-10 (the peer), timed per query
    const exactMs: number[] = [];
    const truth: Set<number>[] = [];
    for (const q of queries) {
      const s = performance.now();
      const m = usearch.exactSearch(data, q, DIM, K, usearch.MetricKind.Cos, 1);
      exactMs.push(performance.now() - s);
      truth.push(new Set(Array.from(m.keys as BigUint64Array, Number)));
    }
    // keys are assigned in commit order; map key → row via the document id
    const keyToRow = new Map<number, number>();
    for (const rows of index.docs.indexedVectors()) for (const r of rows) keyToRow.set(r.key, Number(r.id.slice(3)));

    const rowsOut: string[] = [];
    for (const ef of EFS) {
      await index.close();
      const store = new UsearchStore(path.join(dir, 'idx'), {
        dimension: DIM,
        dtype: DTYPE,
        hnsw: { connectivity: 16, expansionAdd: 128, expansionSearch: ef },
      });
      // loading the saved graph keeps its build-time ef; the walk below sets ef per store
      const storeMs: number[] = [];
      let hitsFound = 0;
      for (let r = 0; r < 2; r++)
        for (const [qi, q] of queries.entries()) {
          const s = performance.now();
          const hits = store.searchSync(q, K);
          if (r === 1) {
            storeMs.push(performance.now() - s);
            hitsFound += hits.filter((h) => truth[qi].has(keyToRow.get(h.key)!)).length;
          }
        }
      const recall = hitsFound / (Q * K);
      rowsOut.push(
        `  HNSW walk (ef=${ef}, from file):    recall@10 ${recall.toFixed(4)}  p50 ` +
          `${pct(storeMs, 50).toFixed(3)} ms  p99 ${pct(storeMs, 99).toFixed(3)} ms`,
      );
    }
    // the full path: SearchIndex.searchVector = HNSW (manifest ef) + the 10 documents from sqlite
    const idx = await SearchIndex.open(path.join(dir, 'idx'));
    const fullMs: number[] = [];
    let found = 0;
    for (let r = 0; r < 2; r++)
      for (const [qi, q] of queries.entries()) {
        const s = performance.now();
        const hits = await idx.searchVector(q, { k: K, exact: false });
        if (r === 1) {
          fullMs.push(performance.now() - s);
          found += hits.filter((h) => truth[qi].has(Number(h.id.slice(3)))).length;
        }
      }
    await idx.close();
    const p50 = pct(fullMs, 50);
    console.log(rowsOut.join('\n'));
    console.log(
      `  SearchIndex.searchVector (ef=${idx.info.hnsw.expansionSearch}, + sqlite texts): recall@10 ` +
        `${(found / (Q * K)).toFixed(4)}  p50 ${p50.toFixed(3)} ms  p99 ${pct(fullMs, 99).toFixed(3)} ms`,
    );
    console.log(
      `  peer: exact brute force (usearch SIMD, 1 thread): p50 ${pct(exactMs, 50).toFixed(3)} ms  p99 ` +
        `${pct(exactMs, 99).toFixed(3)} ms`,
    );
    console.log(`  ratio exact/ours at p50: ${(pct(exactMs, 50) / p50).toFixed(1)}x`);
    console.log(`RSS ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
