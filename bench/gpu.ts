/**
 * `npm run bench:gpu`: search-r3 on WebGPU (the first adapter `--device webgpu` finds) beside PyTorch on
 * the same machine (CUDA when torch sees a GPU, else its CPU) and beside our own CPU backend, in one run:
 *
 * - matmul TFLOP/s at a few square sizes: our f32 gemm and our gemmHalf (B held in f16 / bf16, products
 *   and sums in f32) against torch.matmul in f32, f16 and bf16 (both operands 16-bit, tensor cores);
 * - one full training step (forward, cross-entropy, backward, clip, AdamW) in f32, tokens/s, against
 *   PyTorch eager f32 (a Qwen2 written on torch ops, SDPA attention where torch has it);
 * - prefill and decode tokens/s of greedy generation at batch 1 and 8, against transformers'
 *   Qwen2ForCausalLM.generate (f32, same weights), or a plain PyTorch loop with a KV cache when
 *   transformers is missing. Prefill = a generation of 1 token from a `prompt`-token prompt; decode = a
 *   generation of `decode` tokens from a 1-token prompt (as bench:gen measures it); and decode at the
 *   largest batch sampled at temperature 1 (ours draws on the GPU), against the peer's generate sampling.
 *
 * Both sides get the same random weights (a raw float32 file the peer reads), ids and targets, so the
 * first training loss and the greedy tokens are compared as a check. Every measure is the median of
 * BENCH_GPU_REPS runs after BENCH_GPU_WARMUP; garbage is collected between runs, off the clock, because
 * GPU buffers return to the pool only when their tensors are collected. Prints a markdown table and
 * writes it as JSON to $BENCH_OUT (after every phase, so a run cut short still leaves what it measured).
 *
 * Options (env): BENCH_GPU_SHAPE tiny|small|0.5b (tiny on a software adapter, 0.5b on hardware),
 * BENCH_GPU_PARTS (matmul,train,gen), BENCH_GPU_SIZES (matmul sizes, e.g. 1024,4096), BENCH_GPU_REPS,
 * BENCH_GPU_WARMUP, BENCH_GPU_CPU (1; 0 skips our CPU column), BENCH_GPU_PEER (1; 0 skips PyTorch),
 * BENCH_GPU_WEBGPU (1; 0 skips our WebGPU column: our CPU's figures alone, at a shape lavapipe cannot run),
 * BENCH_GPU_CPU_REPS, BENCH_GPU_PROMPT, BENCH_GPU_DECODE, BENCH_GPU_BATCHES (generation batches, 1,8),
 * BENCH_GPU_BUDGET_S (phases that would start after this many seconds are skipped and said so),
 * BENCH_PYTHON (the peer's interpreter), BENCH_OUT.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { webgpuKernels, webgpuBackendError } from '../src/tensor/backend.js';
import type { GpuDevice } from '../src/tensor/webgpu/gpu-device.js';
import { matmulKernels } from '../src/tensor/webgpu/matmul-kernels.js';
import type { AdapterFacts, GpuStats } from '../src/tensor/webgpu/gpu-protocol.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import type { Qwen2Config } from '../src/model/qwen2-config.js';
import { generate } from '../src/model/generate.js';
import { sampleToken } from '../src/model/sampling.js';
import { tinyQwen2Config } from '../test/helpers/tiny-qwen2.js';
import {
  type HostWeights,
  type ProfiledRun,
  firstLine,
  median,
  profiledRun,
  settle,
  timeRuns,
  trainRun,
} from './gpu-timing.js';
import { kernelProfileTable } from '../src/tensor/webgpu/kernel-profile.js';
import { repoRoot } from '../test/helpers/repo.js';

type ShapeName = 'tiny' | 'small' | '0.5b';
/** The temperature of the sampled decode row (no top-k or top-p: what RL rollouts draw from). */
const SAMPLED_T = 1;
interface Shape {
  name: ShapeName;
  config: Qwen2Config;
  /** Training batch: rows × tokens per row. */
  batch: number;
  seq: number;
  prompt: number;
  decode: number;
  sizes: number[];
  reps: number;
  warmup: number;
  /** Our CPU backend's runs, warm-up runs and largest matmul (its large runs take long on a CPU). */
  cpuReps: number;
  cpuWarmup: number;
  cpuMaxN: number;
  budgetS: number;
}

function shapeOf(name: ShapeName): Shape {
  if (name === 'tiny') {
    const config = tinyQwen2Config({
      vocabSize: 2048,
      hiddenSize: 128,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 32,
      intermediateSize: 512,
      numHiddenLayers: 2,
      maxPositionEmbeddings: 256,
    });
    const s = { batch: 4, seq: 64, prompt: 64, decode: 16, sizes: [256, 512] };
    return { name, config, ...s, reps: 5, warmup: 1, cpuReps: 5, cpuWarmup: 1, cpuMaxN: 4096, budgetS: 170 };
  }
  if (name === 'small') {
    const config = tinyQwen2Config({
      vocabSize: 8192,
      hiddenSize: 256,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 64,
      intermediateSize: 1024,
      numHiddenLayers: 4,
      maxPositionEmbeddings: 512,
    });
    const s = { batch: 8, seq: 128, prompt: 128, decode: 32, sizes: [512, 1024, 2048] };
    return { name, config, ...s, reps: 3, warmup: 1, cpuReps: 3, cpuWarmup: 1, cpuMaxN: 4096, budgetS: 600 };
  }
  // Qwen2.5-0.5B: 24 layers, d 896, 14/2 heads of 64, SwiGLU 4864, vocab 151936, tied embeddings
  const config = tinyQwen2Config({
    vocabSize: 151936,
    hiddenSize: 896,
    numAttentionHeads: 14,
    numKeyValueHeads: 2,
    headDim: 64,
    intermediateSize: 4864,
    numHiddenLayers: 24,
    maxPositionEmbeddings: 1024,
    ropeTheta: 1000000,
    tieWordEmbeddings: true,
  });
  const s = { batch: 8, seq: 256, prompt: 512, decode: 32, sizes: [1024, 2048, 4096, 8192] };
  return { name, config, ...s, reps: 3, warmup: 1, cpuReps: 1, cpuWarmup: 0, cpuMaxN: 4096, budgetS: 330 };
}

const env = process.env;
const num = (v: string | undefined, d: number): number => (v === undefined || v === '' ? d : Number(v));
const list = (v: string | undefined, d: number[]): number[] =>
  v === undefined || v === '' ? d : v.split(',').map((x) => Number(x.trim()));

type Part = 'matmul' | 'train' | 'gen';
type Dtype = 'f32' | 'f16' | 'bf16';
const DTYPES: Dtype[] = ['f32', 'f16', 'bf16'];
/** The tiled gemm's variants the bench forces in turn: each block, reading the next k-slice late or early. */
const GEMM_VARIANTS = [64, 128].flatMap((tile) => [false, true].map((prefetch) => ({ tile, prefetch }))) as {
  tile: 64 | 128;
  prefetch: boolean;
}[];
/** The matmul row of f32 gemm with one tiled variant forced. */
const tileRow = (v: { tile: number; prefetch: boolean }): string => `f32-tile${v.tile}${v.prefetch ? 'p' : ''}`;

interface Row {
  key: string;
  measure: string;
  ours: number | null;
  peer: number | null;
  cpu: number | null;
  notes: string[];
}

interface Report {
  shape: string;
  config: Record<string, number | boolean>;
  adapter: AdapterFacts | null;
  adapterError: string | null;
  peer: Record<string, unknown>;
  rows: Row[];
  peaks: { ours: Record<string, number>; peer: Record<string, number>; peerKind: string };
  checks: Record<string, unknown>;
  notes: string[];
  /** Our WebGPU side's kernel profiles (train: one step; decode1: one batch-1 generation). */
  profiles: Record<string, ProfiledRun>;
  seconds: Record<string, number>;
  settings: Record<string, unknown>;
}

const t0 = performance.now();
const elapsed = (): number => (performance.now() - t0) / 1000;

function normals(n: number, rng: T.Rng, std = 1): Float32Array {
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal() * std;
  return d;
}

/** Waits until the active device has written `x` (reads a word of it back; nothing to do on the CPU). */
function readBack(x: T.Buf): void {
  const k = T.kernels() as unknown as { device: string; gpu?: GpuDevice };
  if (k.device !== 'cpu') k.gpu!.read((x as { id: number }).id, 0, 4);
}

/** Products on the active backend's buffers. */
type Products = Pick<ReturnType<typeof T.kernels>, 'gemm' | 'gemmHalf'>;

/**
 * TFLOP/s of C = A·B, n×n×n, on the active backend: B in f32 (gemm) or 16 bits (gemmHalf); `products`
 * runs the product instead of the backend's own (a forced tile).
 */
function gemmTflops(
  n: number,
  dtype: Dtype,
  reps: number,
  aHost: Float32Array,
  bHost: Float32Array,
  products?: Products,
): number {
  const k = T.kernels();
  const p = products ?? k;
  const a = k.fromHost(aHost),
    c = k.alloc(n * n);
  const args = { a, c, batch: 1, m: n, n, k: n, transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 };
  let run: () => void;
  if (dtype === 'f32') {
    const b = k.fromHost(bHost);
    run = () => p.gemm({ ...args, b, accumulate: false });
  } else {
    const b = k.halfFromHost(T.HalfArray.from(bHost, dtype));
    run = () => p.gemmHalf({ ...args, b, accumulate: false });
  }
  // two calls compile and warm up, the second one also says how many calls make a ~0.2 s timing
  run();
  readBack(c);
  let s = performance.now();
  run();
  readBack(c);
  const once = (performance.now() - s) / 1000;
  const inner = Math.max(1, Math.min(50, Math.round(0.2 / Math.max(once, 1e-6))));
  const per: number[] = [];
  for (let r = 0; r < reps; r++) {
    s = performance.now();
    for (let i = 0; i < inner; i++) run();
    readBack(c);
    per.push((performance.now() - s) / 1000 / inner);
  }
  return (2 * n ** 3) / median(per) / 1e12;
}

function inferenceModel(config: Qwen2Config, weights: HostWeights): Qwen2Model {
  return new Qwen2Model(config, new Map([...weights].map(([n, w]) => [n, new T.Tensor(w.data, w.shape, false, n)])));
}

interface GenInputs {
  prompts: Map<number, number[][]>;
  starts: Map<number, number[][]>;
}

interface OursFigures {
  matmul: Record<string, number>;
  train: { seconds: number[]; loss0: number } | null;
  prefill: Record<number, number[]>;
  decode: Record<number, number[]>;
  /** Decode sampled at temperature 1 (the largest batch only). */
  sampled: Record<number, number[]>;
  tokens: number[] | null;
  errors: Record<string, string>;
  peaks: Record<string, number>;
  /**
   * GPU buffers created, command buffers submitted and kernels run per timed training step, and the GPU
   * thread's encoding time per dispatch (µs).
   */
  stepStats?: { created: number; submits: number; dispatches: number; encodeMicros: number };
  /** Kernels run per decoded token at batch 1, and the GPU thread's encoding time per dispatch there (µs). */
  decodeStats?: { dispatches: number; encodeMicros: number };
  /** One more training step, and one more batch-1 decode, with every dispatch timed (kernel-profile.ts). */
  profiles: Record<string, ProfiledRun>;
}

class Bench {
  readonly rows = new Map<string, Row>();
  readonly notes: string[] = [];
  readonly seconds: Record<string, number> = {};
  report: Report | null = null;

  row(key: string, measure: string): Row {
    let r = this.rows.get(key);
    if (!r) this.rows.set(key, (r = { key, measure, ours: null, peer: null, cpu: null, notes: [] }));
    return r;
  }

  /** Whether a phase may start: false (and a note) once the time budget is spent. */
  mayStart(phase: string, budgetS: number): boolean {
    if (elapsed() <= budgetS) return true;
    this.notes.push(`${phase}: skipped, ${elapsed().toFixed(0)} s had passed (BENCH_GPU_BUDGET_S=${budgetS})`);
    return false;
  }
}

interface Run {
  label: string;
  reps: number;
  warmup: number;
  /** Matmul sizes above this are not run (said in the row). */
  maxN: number;
  gpu: GpuDevice | null;
}

async function ours(
  shape: Shape,
  parts: Set<Part>,
  weights: HostWeights,
  data: { ids: Int32Array; targets: Int32Array; gen: GenInputs; batches: number[] },
  run: Run,
  bench: Bench,
): Promise<OursFigures> {
  const { label, reps, warmup, gpu } = run;
  const f: OursFigures = {
    matmul: {},
    train: null,
    prefill: {},
    decode: {},
    sampled: {},
    tokens: null,
    errors: {},
    peaks: {},
    profiles: {},
  };
  const phase = async (name: string, work: () => Promise<void>): Promise<void> => {
    if (!bench.mayStart(`${label} ${name}`, shape.budgetS)) {
      f.errors[name] = 'skipped: over the time budget';
      return;
    }
    await settle();
    gpu?.resetPeak();
    const s = performance.now();
    try {
      await work();
    } catch (e) {
      f.errors[name] = firstLine(e);
    }
    bench.seconds[`${label} ${name}`] = (performance.now() - s) / 1000;
    if (gpu) f.peaks[name] = gpu.peakBytes;
    console.error(`(${label} ${name}: ${((performance.now() - s) / 1000).toFixed(1)} s)`);
  };
  if (parts.has('matmul')) {
    await phase('matmul', async () => {
      for (const n of shape.sizes) {
        if (n > run.maxN) {
          for (const dtype of DTYPES)
            f.errors[`matmul ${dtype} ${n}`] = `not run above ${run.maxN} (BENCH_GPU_CPU_MAX_N)`;
          continue;
        }
        // one pair of host matrices per size (8192² normals take seconds to draw)
        const rng = new T.Rng(n);
        const aHost = normals(n * n, rng),
          bHost = normals(n * n, rng);
        for (const dtype of DTYPES) {
          try {
            f.matmul[`${dtype}:${n}`] = gemmTflops(n, dtype, reps, aHost, bHost);
          } catch (e) {
            f.errors[`matmul ${dtype} ${n}`] = firstLine(e);
          }
          await settle();
        }
        // each tiled block forced, so that one run says which suits this adapter (the row above is 'auto')
        for (const v of gpu ? GEMM_VARIANTS : []) {
          try {
            // the active backend is this GPU's, so its buffers are what these kernels take
            const products = matmulKernels(gpu!, { ...v, skinny: 'off' }) as unknown as Products;
            f.matmul[`${tileRow(v)}:${n}`] = gemmTflops(n, 'f32', reps, aHost, bHost, products);
          } catch (e) {
            f.errors[`matmul ${tileRow(v)} ${n}`] = firstLine(e);
          }
          await settle();
        }
      }
    });
  }
  if (parts.has('train')) {
    await phase('train', async () => {
      const { step, losses } = trainRun(shape.config, weights, shape.batch, shape.seq, data.ids, data.targets);
      let before: GpuStats | null = null;
      const seconds = await timeRuns(step, warmup, reps, () => (before = gpu?.stats() ?? null));
      f.train = { seconds, loss0: losses[0] };
      const b = before as GpuStats | null;
      if (gpu && b) {
        const after = gpu.stats();
        // `after` counts the submit that answered it
        const submits = (after.submits - b.submits - 1) / reps;
        const dispatches = after.dispatches - b.dispatches;
        f.stepStats = {
          created: (after.created - b.created) / reps,
          submits,
          dispatches: dispatches / reps,
          encodeMicros: (1e6 * (after.encodeSeconds - b.encodeSeconds)) / Math.max(dispatches, 1),
        };
        const profile = await profiledRun(gpu, step);
        if (profile) f.profiles.train = profile;
      }
    });
  }
  if (parts.has('gen')) {
    await phase('gen', async () => {
      const model = inferenceModel(shape.config, weights);
      for (const b of data.batches) {
        const prompts = data.gen.prompts.get(b)!,
          starts = data.gen.starts.get(b)!;
        f.prefill[b] = await timeRuns(() => generate(model, prompts, { maxNewTokens: 1 }), warmup, reps);
        let tokens: number[] = [];
        f.decode[b] = await timeRuns(
          () => (tokens = generate(model, starts, { maxNewTokens: shape.decode })[0].tokens),
          warmup,
          reps,
        );
        if (b === 1) f.tokens = tokens;
        if (b === Math.max(...data.batches)) {
          const sampling = { maxNewTokens: shape.decode, temperature: SAMPLED_T, seed: 1 };
          f.sampled[b] = await timeRuns(() => generate(model, starts, sampling), warmup, reps);
        }
        if (b === 1 && gpu) {
          const decodeOne = (): void => void generate(model, starts, { maxNewTokens: shape.decode });
          const before = gpu.stats();
          decodeOne();
          const after = gpu.stats();
          const dispatches = after.dispatches - before.dispatches;
          f.decodeStats = {
            dispatches: dispatches / shape.decode,
            encodeMicros: (1e6 * (after.encodeSeconds - before.encodeSeconds)) / Math.max(dispatches, 1),
          };
          const profile = await profiledRun(gpu, decodeOne);
          if (profile) f.profiles.decode1 = profile;
        }
      }
    });
  }
  return f;
}

interface PeerResult {
  torch: string;
  device: string;
  device_name: string;
  threads: number;
  transformers: string | null;
  transformers_error: string | null;
  gen_engine: string | null;
  matmul_tf32: string | null;
  matmul: Record<Dtype, Record<string, number | null>>;
  train: { seconds: number[]; loss0: number } | null;
  gen: {
    prefill: Record<string, number[]>;
    decode: Record<string, number[]>;
    sampled?: Record<string, number[]>;
    tokens: number[];
  } | null;
  peaks: Record<string, number>;
  peak_kind: string;
  errors: Record<string, string>;
  seconds: Record<string, number>;
}

function findPython(): string {
  if (env.BENCH_PYTHON) return env.BENCH_PYTHON;
  const probe = 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("torch") else 1)';
  for (const p of ['python3', '/usr/bin/python3']) {
    if (spawnSync(p, ['-c', probe]).status === 0) return p;
  }
  return '/usr/bin/python3';
}

function runPeer(request: Record<string, unknown>, timeoutS: number): PeerResult | string {
  const python = findPython();
  const r = spawnSync(python, [join(repoRoot, 'bench', 'peers', 'torch_gpu.py')], {
    input: JSON.stringify(request),
    maxBuffer: 1 << 26,
    timeout: Math.round(Math.max(1, timeoutS) * 1000),
    env: { ...env, OMP_NUM_THREADS: String(request.threads), OPENBLAS_NUM_THREADS: String(request.threads) },
  });
  const stderr = r.stderr?.toString() ?? '';
  if (r.error || r.status !== 0) {
    const why = r.error?.message ?? `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}`;
    return `${python} bench/peers/torch_gpu.py failed: ${why}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
  }
  return JSON.parse(r.stdout.toString()) as PeerResult;
}

function writeWeights(file: string, weights: HostWeights): void {
  const fd = openSync(file, 'w');
  try {
    for (const { data } of weights.values())
      writeSync(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } finally {
    closeSync(fd);
  }
}

const fmt = (x: number | null): string =>
  x === null || !Number.isFinite(x) ? '—' : x >= 1000 ? x.toFixed(0) : x.toPrecision(3);
const bytes = (b: number): string =>
  b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(b >= 2 ** 24 ? 0 : 1)} MiB`;

function table(rows: Row[], peerName: string, cpuName: string): string {
  const lines = [
    `| measure | ours webgpu | ${peerName} | ratio ours/peer | ours cpu (${cpuName}) |`,
    '|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio = r.ours !== null && r.peer !== null && r.peer > 0 ? `${(r.ours / r.peer).toFixed(2)}×` : '—';
    const note = r.notes.length > 0 ? ` (${r.notes.join('; ')})` : '';
    lines.push(`| ${r.measure}${note} | ${fmt(r.ours)} | ${fmt(r.peer)} | ${ratio} | ${fmt(r.cpu)} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const bench = new Bench();
  // the adapter decides the default shape, so WebGPU opens first
  const gk = webgpuKernels();
  const gpu = gk?.gpu ?? null;
  const adapterError = gk ? null : webgpuBackendError();
  const shapeName = (env.BENCH_GPU_SHAPE || (gpu && !gpu.facts.software ? '0.5b' : 'tiny')) as ShapeName;
  if (!['tiny', 'small', '0.5b'].includes(shapeName)) throw new Error(`BENCH_GPU_SHAPE: tiny, small or 0.5b`);
  const base = shapeOf(shapeName);
  const shape: Shape = {
    ...base,
    sizes: list(env.BENCH_GPU_SIZES, base.sizes),
    reps: num(env.BENCH_GPU_REPS, base.reps),
    warmup: num(env.BENCH_GPU_WARMUP, base.warmup),
    cpuReps: num(env.BENCH_GPU_CPU_REPS, base.cpuReps),
    cpuWarmup: num(env.BENCH_GPU_CPU_WARMUP, base.cpuWarmup),
    cpuMaxN: num(env.BENCH_GPU_CPU_MAX_N, base.cpuMaxN),
    prompt: num(env.BENCH_GPU_PROMPT, base.prompt),
    decode: num(env.BENCH_GPU_DECODE, base.decode),
    budgetS: num(env.BENCH_GPU_BUDGET_S, base.budgetS),
  };
  const parts = new Set((env.BENCH_GPU_PARTS || 'matmul,train,gen').split(',').map((p) => p.trim() as Part));
  const batches = list(env.BENCH_GPU_BATCHES, [1, 8]);
  const withCpu = env.BENCH_GPU_CPU !== '0',
    withPeer = env.BENCH_GPU_PEER !== '0',
    withGpu = env.BENCH_GPU_WEBGPU !== '0';
  const threads = Number(env.SEARCH_R3_THREADS || availableParallelism());
  const c = shape.config;
  c.maxPositionEmbeddings = Math.max(c.maxPositionEmbeddings, shape.seq, shape.prompt + 2, shape.decode + 2);
  const tokens = shape.batch * shape.seq;

  console.log(
    `adapter: ${gpu ? `${gpu.facts.description} (${gpu.facts.software ? 'software' : 'hardware'}; ` : 'none ('}` +
      `${gpu ? `features ${gpu.facts.features.join(', ')})` : `${adapterError})`}` +
      (gpu && gpu.facts.dawnFlags.length > 0 ? `; Dawn flags ${gpu.facts.dawnFlags.join(' ')}` : ''),
  );
  console.log(
    `shape ${shape.name}: ${c.numHiddenLayers} layers, d ${c.hiddenSize}, ` +
      `${c.numAttentionHeads}/${c.numKeyValueHeads} heads of ${c.headDim}, SwiGLU ${c.intermediateSize}, ` +
      `vocab ${c.vocabSize}, ${c.tieWordEmbeddings ? 'tied' : 'untied'} embeddings; ` +
      `training batch ${shape.batch}×${shape.seq}; prompt ${shape.prompt}, decode ${shape.decode}, ` +
      `batches ${batches.join(',')}; matmul ${shape.sizes.join(',')}; median of ${shape.reps} after ` +
      `${shape.warmup} warm-up (our CPU: ${shape.cpuReps} after ${shape.cpuWarmup}); ${threads} CPU threads`,
  );

  // weights, ids and targets shared by both sides
  let s = performance.now();
  const cpuBackend: T.BackendName = T.nativeKernels() ? 'native' : 'js';
  T.setBackend(cpuBackend);
  const rng = new T.Rng(0);
  const needModel = parts.has('train') || parts.has('gen');
  const weights: HostWeights = new Map();
  if (needModel) {
    for (const p of Qwen2Model.random(c, rng, 0.02).parameters())
      weights.set(p.name!, { shape: p.shape, data: p.data });
  }
  const ids = Int32Array.from({ length: tokens }, () => rng.int(c.vocabSize));
  const labels = Int32Array.from({ length: tokens }, () => rng.int(c.vocabSize));
  const gen: GenInputs = { prompts: new Map(), starts: new Map() };
  for (const b of batches) {
    gen.prompts.set(
      b,
      Array.from({ length: b }, () => Array.from({ length: shape.prompt }, () => rng.int(c.vocabSize))),
    );
    gen.starts.set(
      b,
      Array.from({ length: b }, () => [rng.int(c.vocabSize)]),
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'sr3-bench-gpu-'));
  const weightFile = join(dir, 'weights.f32');
  if (needModel && withPeer) writeWeights(weightFile, weights);
  bench.seconds['weights'] = (performance.now() - s) / 1000;

  const inputs = { ids, targets: labels, gen, batches };
  const save = (peer: PeerResult | string | null, peerName: string): void => {
    const report: Report = {
      shape: shape.name,
      config: {
        layers: c.numHiddenLayers,
        hidden: c.hiddenSize,
        heads: c.numAttentionHeads,
        kvHeads: c.numKeyValueHeads,
        headDim: c.headDim,
        ffn: c.intermediateSize,
        vocab: c.vocabSize,
        tied: c.tieWordEmbeddings,
        batch: shape.batch,
        seq: shape.seq,
        prompt: shape.prompt,
        decode: shape.decode,
      },
      adapter: gpu?.facts ?? null,
      adapterError,
      peer: typeof peer === 'string' ? { error: peer } : peer ? { ...peer, name: peerName } : {},
      rows: [...bench.rows.values()],
      peaks: {
        ours: ourPeaks,
        peer: typeof peer === 'object' && peer ? peer.peaks : {},
        peerKind: typeof peer === 'object' && peer ? peer.peak_kind : '',
      },
      checks,
      notes: bench.notes,
      profiles: oursGpu?.profiles ?? {},
      seconds: { ...bench.seconds, total: elapsed() },
      settings: { parts: [...parts], batches, withCpu, threads, budgetS: shape.budgetS, sizes: shape.sizes },
    };
    bench.report = report;
    if (env.BENCH_OUT) writeFileSync(env.BENCH_OUT, JSON.stringify(report, null, 2));
  };
  const ourPeaks: Record<string, number> = {};
  const checks: Record<string, unknown> = {};
  let oursGpu: OursFigures | null = null;

  // rows in table order, so that a row exists (with a reason) even when its measure could not be taken
  for (const dtype of DTYPES) {
    for (const n of shape.sizes) {
      const what = dtype === 'f32' ? 'f32 gemm' : `gemmHalf, B in ${dtype} (peer: torch ${dtype})`;
      if (parts.has('matmul')) bench.row(`matmul:${dtype}:${n}`, `matmul ${n}³ ${what}, TFLOP/s`);
    }
  }
  for (const v of gpu && parts.has('matmul') ? GEMM_VARIANTS : [])
    for (const n of shape.sizes) {
      const how = `${v.tile}×${v.tile} blocks${v.prefetch ? ' with prefetch' : ''}`;
      bench.row(`matmul:${tileRow(v)}:${n}`, `matmul ${n}³ f32 gemm, ${how} forced, TFLOP/s`);
    }
  if (parts.has('train')) bench.row('train', `training step f32, ${shape.batch}×${shape.seq}, tokens/s`);
  for (const kind of ['prefill', 'decode'] as const) {
    for (const b of batches) {
      const n = kind === 'prefill' ? shape.prompt : shape.decode;
      if (parts.has('gen')) bench.row(`${kind}:${b}`, `${kind} batch ${b} (${n} tokens) f32, tokens/s`);
    }
  }
  const sampledAt = Math.max(...batches);
  if (parts.has('gen')) {
    const what = `decode batch ${sampledAt} (${shape.decode} tokens) f32, sampled at T = ${SAMPLED_T}, tokens/s`;
    bench.row(`sampled:${sampledAt}`, what);
  }
  const fill = (f: OursFigures, column: 'ours' | 'cpu'): void => {
    const tag = column === 'ours' ? 'webgpu' : 'cpu';
    for (const [k, v] of Object.entries(f.matmul)) bench.row(`matmul:${k}`, '')[column] = v;
    if (f.train) bench.row('train', '')[column] = tokens / median(f.train.seconds);
    for (const b of batches) {
      if (f.prefill[b]) bench.row(`prefill:${b}`, '')[column] = (b * shape.prompt) / median(f.prefill[b]);
      if (f.decode[b]) bench.row(`decode:${b}`, '')[column] = (b * shape.decode) / median(f.decode[b]);
      if (f.sampled[b]) bench.row(`sampled:${b}`, '')[column] = (b * shape.decode) / median(f.sampled[b]);
    }
    for (const [k, why] of Object.entries(f.errors)) {
      const [part, dtype, n] = k.split(' ');
      const keys =
        part === 'matmul' && dtype !== undefined
          ? [`matmul:${dtype}:${n}`]
          : [...bench.rows.keys()].filter((key) =>
              part === 'gen' ? /^(prefill|decode|sampled):/.test(key) : key.split(':')[0] === part,
            );
      for (const key of keys) bench.row(key, '').notes.push(`${tag}: ${why}`);
    }
  };

  // 1. ours on WebGPU. The device stays open (its pool keeps what the phases held) until the process
  // ends: closing it mid-run risks the abort Dawn gives when its thread ends with work in flight, and a
  // GPU large enough for the 0.5b shape holds our pool and the peer side by side.
  if (gpu && !withGpu) {
    bench.notes.push('ours webgpu: not run (BENCH_GPU_WEBGPU=0)');
  } else if (gpu) {
    T.setBackend('webgpu');
    const run = { label: 'ours webgpu', reps: shape.reps, warmup: shape.warmup, maxN: Infinity, gpu };
    oursGpu = await ours(shape, parts, weights, inputs, run, bench);
    Object.assign(ourPeaks, oursGpu.peaks);
    fill(oursGpu, 'ours');
    T.setBackend(cpuBackend);
  } else {
    bench.notes.push(`ours webgpu: not run, WebGPU did not open (${adapterError})`);
  }
  save(null, '');

  // 2. the peer, on the same weights and inputs
  let peer: PeerResult | string | null = null;
  let peerName = 'PyTorch';
  if (!withPeer) bench.notes.push('peer: not run (BENCH_GPU_PEER=0)');
  else if (bench.mayStart('peer', shape.budgetS)) {
    s = performance.now();
    peer = runPeer(
      {
        parts: [...parts],
        threads,
        reps: shape.reps,
        warmup: shape.warmup,
        sizes: shape.sizes,
        config: {
          vocab_size: c.vocabSize,
          hidden_size: c.hiddenSize,
          intermediate_size: c.intermediateSize,
          num_hidden_layers: c.numHiddenLayers,
          num_attention_heads: c.numAttentionHeads,
          num_key_value_heads: c.numKeyValueHeads,
          head_dim: c.headDim,
          max_position_embeddings: c.maxPositionEmbeddings,
          rope_theta: c.ropeTheta,
          rms_norm_eps: c.rmsNormEps,
          tie_word_embeddings: c.tieWordEmbeddings,
        },
        weights: { file: weightFile, order: [...weights].map(([n, w]) => [n, w.shape]) },
        train: { batch: shape.batch, seq: shape.seq, ids: [...ids], targets: [...labels] },
        gen: {
          decode: shape.decode,
          batches,
          sampled: { batch: sampledAt, temperature: SAMPLED_T },
          prompts: Object.fromEntries(batches.map((b) => [b, gen.prompts.get(b)])),
          starts: Object.fromEntries(batches.map((b) => [b, gen.starts.get(b)])),
        },
      },
      // ends within a minute of the budget, so a caller's timeout a little above it keeps the peer's figures
      Math.max(30, shape.budgetS + 60 - elapsed()),
    );
    bench.seconds['peer'] = (performance.now() - s) / 1000;
    console.error(`(peer: ${bench.seconds['peer'].toFixed(1)} s)`);
  }
  if (typeof peer === 'string') {
    bench.notes.push(`peer: ${peer}`);
  } else if (peer) {
    peerName = `PyTorch ${peer.torch} ${peer.device}`;
    for (const dtype of DTYPES) {
      for (const [n, v] of Object.entries(peer.matmul?.[dtype] ?? {})) bench.row(`matmul:${dtype}:${n}`, '').peer = v;
    }
    if (peer.train) bench.row('train', '').peer = tokens / median(peer.train.seconds);
    for (const b of batches) {
      const p = peer.gen?.prefill[b],
        d = peer.gen?.decode[b];
      if (p) bench.row(`prefill:${b}`, '').peer = (b * shape.prompt) / median(p);
      if (d) bench.row(`decode:${b}`, '').peer = (b * shape.decode) / median(d);
      const sd = peer.gen?.sampled?.[b];
      if (sd) bench.row(`sampled:${b}`, '').peer = (b * shape.decode) / median(sd);
    }
    for (const [k, why] of Object.entries(peer.errors)) bench.notes.push(`peer ${k}: ${why}`);
    if (parts.has('gen')) {
      const why = peer.transformers_error ? ` because transformers did not load here (${peer.transformers_error})` : '';
      bench.notes.push(`peer generation: ${peer.gen_engine ?? 'not run'}${why}`);
    }
    if (peer.device === 'cuda') bench.notes.push(`peer f32 matmul precision: ${peer.matmul_tf32}`);
  }
  save(peer, peerName);

  // 3. ours on the CPU (native), same work
  let oursCpu: OursFigures | null = null;
  if (withCpu && (cpuBackend === 'native' || shape.name !== '0.5b')) {
    T.setBackend(cpuBackend);
    const run = { label: 'ours cpu', reps: shape.cpuReps, warmup: shape.cpuWarmup, maxN: shape.cpuMaxN, gpu: null };
    oursCpu = await ours(shape, parts, weights, inputs, run, bench);
    fill(oursCpu, 'cpu');
  } else if (withCpu) {
    bench.notes.push(`ours cpu: not run, the native addon did not load (${T.nativeBackendError()})`);
  }
  rmSync(dir, { recursive: true, force: true });

  // checks and targets (reported, not asserted)
  const theirs = typeof peer === 'object' ? peer : null;
  const ratio = (k: string): number | null => {
    const r = bench.rows.get(k);
    return r && r.ours !== null && r.peer !== null ? r.ours / r.peer : null;
  };
  const verdict = (x: number | null, want: number): string =>
    x === null ? 'not measured' : `${x.toFixed(2)}× (${x >= want ? 'met' : 'missed'})`;
  const tr = bench.rows.get('train');
  const gpuOverCpu = tr && tr.ours !== null && tr.cpu !== null ? tr.ours / tr.cpu : null;
  const goals = [
    `training step f32 ≥ 0.5× PyTorch eager f32: ${verdict(ratio('train'), 0.5)}`,
    ...batches.map((b) => `decode batch ${b} ≥ 1× the peer's generate: ${verdict(ratio(`decode:${b}`), 1)}`),
    ...batches.map((b) => `prefill batch ${b} ≥ 0.5× the peer's: ${verdict(ratio(`prefill:${b}`), 0.5)}`),
    `our GPU training step ≥ 100× our CPU step on this machine: ${verdict(gpuOverCpu, 100)}`,
  ];
  if (oursGpu?.train && theirs?.train) checks.loss0 = { ours: oursGpu.train.loss0, peer: theirs.train.loss0 };
  if (oursCpu?.train) checks.loss0Cpu = oursCpu.train.loss0;
  if (oursGpu?.stepStats) checks.gpuStep = oursGpu.stepStats;
  if (oursGpu?.tokens && theirs?.gen?.tokens) {
    const a = oursGpu.tokens,
      b = theirs.gen.tokens;
    let same = 0;
    while (same < Math.min(a.length, b.length) && a[same] === b[same]) same++;
    checks.greedyTokensAgree = { prefix: same, of: a.length };
  }
  const facts = [
    'gemmHalf reads A in f32 and widens the 16-bit B to f32 inside the kernel (f32 products and sums, no ' +
      'tensor cores); the peer multiplies two 16-bit matrices (on tensor cores on a GPU)',
  ];
  const loss = checks.loss0 as { ours: number; peer: number } | undefined;
  if (loss) facts.push(`first training loss: ours ${loss.ours.toFixed(5)}, peer ${loss.peer.toFixed(5)}`);
  if (oursCpu?.train) facts.push(`first training loss on our CPU backend: ${oursCpu.train.loss0.toFixed(5)}`);
  const agree = checks.greedyTokensAgree as { prefix: number; of: number } | undefined;
  if (agree) facts.push(`greedy tokens, batch 1: the first ${agree.prefix} of ${agree.of} agree with the peer's`);
  const peaks = (p: Record<string, number>): string =>
    Object.entries(p)
      .map(([k, v]) => `${k} ${bytes(v)}`)
      .join(', ') || '—';
  facts.push(`our peak GPU bytes (GpuDevice.peakBytes, per phase): ${peaks(ourPeaks)}`);
  const st = oursGpu?.stepStats;
  if (st) {
    facts.push(
      `per warm training step on WebGPU: ${st.created} buffers created, ${st.submits} submits, ` +
        `${st.dispatches} kernels run, ${st.encodeMicros.toFixed(1)} µs of the GPU thread's encoding per kernel`,
    );
  }
  if (parts.has('gen')) {
    // the bench's shape, and the v2 model's RL rollouts (16 queries × 4 responses over 16,384 words)
    const at = (rows: number, vocab: number): string =>
      `${hostSamplerMs(rows, vocab).toFixed(1)} ms at ${rows} × ${vocab} words`;
    facts.push(
      `the host's sampler (sampling.ts, what a CPU backend and a top-k/top-p draw use), per token, after the ` +
        `logits are read back: ${at(sampledAt, shape.config.vocabSize)}, ${at(64, 16384)}; on WebGPU the ` +
        'sampled row draws on the GPU instead',
    );
  }
  const ds = oursGpu?.decodeStats;
  if (ds) {
    facts.push(
      `per decoded token at batch 1 on WebGPU: ${ds.dispatches.toFixed(1)} kernels run, ` +
        `${ds.encodeMicros.toFixed(1)} µs of the GPU thread's encoding per kernel`,
    );
  }
  if (theirs) facts.push(`the peer's peak memory (${theirs.peak_kind}): ${peaks(theirs.peaks)}`);
  bench.notes.unshift(...goals, ...facts);
  bench.notes.push(`total ${elapsed().toFixed(0)} s`);
  save(peer, peerName);

  console.log();
  console.log(table([...bench.rows.values()], peerName, cpuBackend));
  console.log();
  console.log('targets (reported, not asserted), then notes:');
  for (const n of bench.notes) console.log(`- ${n}`);
  const profiles: [string, string][] = [
    ['train', `one training step (${shape.batch}×${shape.seq})`],
    ['decode1', `one generation at batch 1 (${shape.decode} tokens from a 1-token prompt)`],
  ];
  for (const [key, what] of profiles) {
    const p = oursGpu?.profiles[key];
    if (!p) continue;
    console.log();
    console.log(`GPU kernel profile on WebGPU, ${what}, each dispatch in a pass of its own:`);
    console.log(kernelProfileTable(p.times, p.wallSeconds));
  }
  if (gpu && !gpu.facts.features.includes('timestamp-query')) console.log('(no kernel profile: no timestamp queries)');
  if (env.BENCH_OUT) console.log(`(JSON in ${env.BENCH_OUT})`);
}

/** Milliseconds sampling.ts takes to draw one token for each of `rows` rows of `vocab` logits (median of 5). */
function hostSamplerMs(rows: number, vocab: number): number {
  const r = new T.Rng(5),
    logits = new Float32Array(rows * vocab).map(() => r.normal() * 3),
    rng = new T.Rng(6);
  const times: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const t0 = performance.now();
    for (let b = 0; b < rows; b++) sampleToken(logits, b * vocab, vocab, { temperature: SAMPLED_T }, rng);
    times.push(performance.now() - t0);
  }
  return median(times);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
