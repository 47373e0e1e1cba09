import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { searchSlice, type SliceResult, type SliceTask } from './dense-kernel.js';
import { EvalInputError } from './input-error.js';
import type { ProgressFn } from './retriever.js';
import type { Run } from './run.js';
import { idRanks, MAX_PACKED_DOCS } from './top-k.js';
import { workerExecArgv } from '../io/worker-exec-argv.js';

/** Row-major embeddings with their ids: row i of `data` (dim floats) embeds ids[i]. */
export interface EmbeddingMatrix {
  ids: string[];
  dim: number;
  data: Float32Array;
}

export interface DenseSearchOptions {
  /** Documents kept per query (default 1000, as BEIR runs). */
  k?: number;
  /** Worker threads (default: the machine's cores for large problems, else 1 = the calling thread). */
  threads?: number;
  /** 'auto' uses WebAssembly SIMD where available, else plain TS; 'js' forces the plain-TS kernel. */
  kernel?: 'auto' | 'wasm' | 'js';
  onProgress?: ProgressFn;
}

export interface DenseSearchResult {
  run: Run;
  kernel: 'wasm' | 'js';
  threads: number;
}

/**
 * Below this many multiply-adds (about 0.4 s of the SIMD kernel on one core), starting workers (~60-70 ms each to
 * come online) costs more than it saves on a 2-core machine, measured with bench/eval.ts.
 */
const MIN_PARALLEL_WORK = 4e9;

function checkMatrix(m: EmbeddingMatrix, what: string): void {
  if (!Number.isInteger(m.dim) || m.dim <= 0) throw new EvalInputError(`${what} embeddings have no dimension`);
  if (m.data.length !== m.ids.length * m.dim) {
    throw new EvalInputError(`${what} embeddings hold ${m.data.length} floats, expected ${m.ids.length} × ${m.dim}`);
  }
}

/**
 * L2-normalised copy with rows padded to a multiple of 4 floats, in shared memory so workers read it without a
 * copy. A zero vector stays zero (cosine 0 with everything) rather than becoming NaN.
 */
function normalisedShared(m: EmbeddingMatrix, dimPad: number): Float32Array {
  const out = new Float32Array(new SharedArrayBuffer(m.ids.length * dimPad * 4));
  const { data, dim } = m;
  for (let r = 0; r < m.ids.length; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += data[r * dim + i]! * data[r * dim + i]!;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let i = 0; i < dim; i++) out[r * dimPad + i] = data[r * dim + i]! * inv;
  }
  return out;
}

function runSliceInWorker(task: SliceTask, onChunk: (docsDone: number) => void): Promise<SliceResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./dense-search-worker.js', import.meta.url), {
      execArgv: workerExecArgv(process.execArgv),
    });
    worker.on('message', (m: SliceResult | { progress: number }) => {
      if ('progress' in m) {
        onChunk(m.progress);
        return;
      }
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.postMessage(task);
  });
}

/**
 * Exact top-k by cosine similarity, every query against every document, as blocked matrix products over
 * Float32Arrays (WebAssembly SIMD or plain TS), split across worker threads by query. Ties are ordered as
 * trec_eval orders them, so the cut at k keeps what trec_eval would rank first.
 */
export async function denseSearch(
  queries: EmbeddingMatrix,
  docs: EmbeddingMatrix,
  options: DenseSearchOptions = {},
): Promise<DenseSearchResult> {
  checkMatrix(queries, 'query');
  checkMatrix(docs, 'document');
  if (queries.dim !== docs.dim) {
    throw new EvalInputError(`query embeddings are ${queries.dim}-d but document embeddings are ${docs.dim}-d`);
  }
  if (docs.ids.length > MAX_PACKED_DOCS) throw new EvalInputError(`more than ${MAX_PACKED_DOCS} documents`);
  const k = options.k ?? 1000;
  const nq = queries.ids.length;
  const nd = docs.ids.length;
  const dimPad = (queries.dim + 3) & ~3;
  const qs = normalisedShared(queries, dimPad);
  const ds = normalisedShared(docs, dimPad);
  const rank = idRanks(docs.ids);
  const idRank = new Int32Array(new SharedArrayBuffer(rank.byteLength));
  idRank.set(rank);
  const kernel = options.kernel === 'js' ? 'js' : 'wasm';
  const work = nq * nd * dimPad;
  let threads = Math.max(1, Math.min(options.threads ?? availableParallelism(), Math.ceil(nq / 4)));
  if (work < MIN_PARALLEL_WORK && options.threads === undefined) threads = 1;

  const base = { queries: qs, docs: ds, dim: dimPad, numDocs: nd, k, idRank, kernel } as const;
  // Progress in query units: each slice reports how many documents it has scored its queries against.
  const report = options.onProgress;
  const docsDone = new Map<number, number>();
  const progressOf = (qStart: number, qEnd: number) => (docs: number) => {
    if (!report) return;
    docsDone.set(qStart, docs * (qEnd - qStart));
    let units = 0;
    for (const u of docsDone.values()) units += u;
    report('searching', Math.floor(units / Math.max(nd, 1)), nq);
  };
  let slices: { start: number; result: SliceResult }[];
  if (threads === 1) {
    slices = [{ start: 0, result: searchSlice({ ...base, qStart: 0, qEnd: nq }, progressOf(0, nq)) }];
  } else {
    // Contiguous query ranges, multiples of 4 so no worker pads a partial 4-query group but the last.
    const per = Math.ceil(nq / threads / 4) * 4;
    const ranges: [number, number][] = [];
    for (let s = 0; s < nq; s += per) ranges.push([s, Math.min(nq, s + per)]);
    slices = await Promise.all(
      ranges.map(async ([qStart, qEnd]) => {
        const result = await runSliceInWorker({ ...base, qStart, qEnd }, progressOf(qStart, qEnd));
        return { start: qStart, result };
      }),
    );
    threads = ranges.length;
  }
  const run: Run = new Map();
  for (const { start, result } of slices) {
    result.docs.forEach((d, j) => {
      run.set(queries.ids[start + j]!, {
        docIds: Array.from(d, (i) => docs.ids[i]!),
        scores: Array.from(result.scores[j]!),
      });
    });
  }
  return { run, kernel: slices[0]?.result.kernel ?? kernel, threads };
}
