/**
 * `npm run bench:scale`: distributed indexing against single-process `index`, in one run on one corpus.
 * Three timings of the same CLI work, each from process start to exit (model load, staging and storing
 * included): `search-r3 index` alone (on LanceDB, the store the queue writes), then `index --queue` with
 * 1 and with 2 `search-r3 worker`s, every process on one native thread (SEARCH_R3_THREADS=1), against a
 * private redis-server on a free port.
 * Workers are started (and have loaded nothing yet) before each timed run.
 *
 * A fourth timing runs two plain `index` processes at once, each on half of the corpus: the speed-up two
 * encoders get on this machine with no queue at all, the ceiling the 2-worker figure is read against.
 * Prints documents/s for each, the 2-worker speed-up over single-process (target ≥ 1.8×; it needs two
 * free cores for the workers beside the coordinator, so a busy machine shows less), and the queue's
 * overhead per job: (1-worker time − single-process time) / jobs, i.e. what sending a chunk through Redis
 * and back costs beyond encoding it. The model is random (no pretrained weights here) with a small
 * transformer's shape, so encoding dominates as it does for real models; only speed is measured.
 * Env: BENCH_DOCS (1500 SciFact documents), BENCH_COMMIT (64 documents per job), BENCH_HIDDEN (256),
 * BENCH_LAYERS (4).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { saveModelFolder } from '../src/model/model-folder.js';
import { readDocuments } from '../src/search-index/document-source.js';
import { tinyModel } from '../test/helpers/tiny-model.js';
import { RedisServer } from '../test/helpers/redis.js';
import { repoRoot } from '../test/helpers/repo.js';
import { CliProcess } from '../test/helpers/cli-process.js';

const DOCS = Number(process.env.BENCH_DOCS ?? 1500);
const COMMIT = Number(process.env.BENCH_COMMIT ?? 64);
const HIDDEN = Number(process.env.BENCH_HIDDEN ?? 256);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 4);
const MAIN = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const ENV = { ...process.env, SEARCH_R3_THREADS: '1' };

function cli(args: string[]): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [MAIN, ...args], { env: ENV, maxBuffer: 1 << 26 }, (err, _out, stderr) =>
      err ? reject(new Error(`search-r3 ${args[0]} failed: ${stderr}`)) : resolve((performance.now() - t0) / 1000),
    ),
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sr3-bench-scale-'));
  const redis = await RedisServer.start();
  try {
    const modelDir = path.join(dir, 'model');
    const shape = { hiddenSize: HIDDEN, intermediateSize: 4 * HIDDEN, numHiddenLayers: LAYERS, numAttentionHeads: 8 };
    await saveModelFolder(modelDir, tinyModel(11, { ...shape, maxPositionEmbeddings: 256 }, 4096));
    const docs = (await readDocuments(path.join(repoRoot, 'demo', 'scifact'))).slice(0, DOCS);
    const input = path.join(dir, 'corpus.jsonl');
    const jsonl = (part: typeof docs): string =>
      part.map((d) => JSON.stringify({ _id: d.id, title: d.title, text: d.text })).join('\n');
    writeFileSync(input, jsonl(docs));
    const halves = [0, 1].map((h) => path.join(dir, `half-${h}.jsonl`));
    halves.forEach((file, h) => writeFileSync(file, jsonl(docs.filter((_, i) => i % 2 === h))));
    const common = ['--model', modelDir, '--input', input, '--commit-every', String(COMMIT)];
    const jobs = Math.ceil(docs.length / COMMIT);

    // the same store as the queued runs (--queue implies LanceDB), so only the encoding's distribution differs
    const single = await cli(['index', ...common, '--store', 'lancedb', '--out', path.join(dir, 'single')]);
    // the machine's own ceiling for two encoders: two plain runs on the halves at once, no queue
    const t0 = performance.now();
    await Promise.all(
      halves.map((file, h) =>
        cli([
          'index',
          ...common.map((a) => (a === input ? file : a)),
          '--store',
          'lancedb',
          '--out',
          path.join(dir, `half-${h}`),
        ]),
      ),
    );
    const parallel = (performance.now() - t0) / 1000;
    const queued = async (workers: number): Promise<number> => {
      const name = `bench-${workers}`;
      const procs = Array.from(
        { length: workers },
        () => new CliProcess(['worker', '--queue', redis.url, '--queue-name', name, '--model', modelDir], ENV),
      );
      try {
        await Promise.all(procs.map((p) => p.waitFor(/waiting for jobs/)));
        const out = path.join(dir, `queued-${workers}`);
        return await cli(['index', '--queue', redis.url, '--queue-name', name, ...common, '--out', out]);
      } finally {
        for (const p of procs) await p.stop();
      }
    };
    const one = await queued(1);
    const two = await queued(2);

    const rate = (s: number): string => `${(docs.length / s).toFixed(1)} docs/s (${s.toFixed(1)} s)`;
    console.log(
      `corpus: ${docs.length} SciFact documents, ${jobs} jobs of ${COMMIT}; model: random Qwen2 shape, hidden ` +
        `${HIDDEN}, ${LAYERS} layers, cut at 256 tokens; 1 thread per process`,
    );
    console.log(`single-process index   ${rate(single)}`);
    console.log(`queue, 1 worker        ${rate(one)}  ${(single / one).toFixed(2)}× single-process`);
    console.log(`queue, 2 workers       ${rate(two)}  ${(single / two).toFixed(2)}× single-process (target ≥ 1.8×)`);
    console.log(
      `2 plain runs on halves ${rate(parallel)}  ${(single / parallel).toFixed(2)}× single-process ` +
        `(what two encoders get on this machine without a queue)`,
    );
    console.log(
      `queue overhead per job ${(((one - single) * 1000) / jobs).toFixed(1)} ms (1 worker vs single-process)`,
    );
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
