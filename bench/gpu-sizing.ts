/**
 * `npm run bench:sizing`: the rates that size the gpu profile (docs/default-model-v2.md). Each candidate
 * shape (GPU_SHAPES), smallest first, runs train lm's optimiser step on the WebGPU adapter present, at the
 * profile's batch (rows × sequence length × accumulation, vocabulary GPU_BUDGET.vocabSize): tokens/s, the
 * effective TFLOP/s (6 × parameters × tokens/s), the pretraining tokens each would see in
 * GPU_BUDGET.pretrainSeconds, the share of one more (profiled) step the GPU spent in kernels, and the
 * shape gpuSizing takes from these rates. Prints the `measured` and
 * `measuredOn` entries for GPU_BUDGET (src/recipe/recipe-profiles.ts) and writes the table as JSON to $BENCH_OUT.
 *
 * A shape that sees too little text ends the run (a larger one sees less), as does BENCH_SIZING_BUDGET_S
 * (default 120) having passed before a shape starts. Options (env): BENCH_SIZING_REPS (3, after one
 * warm-up), BENCH_SIZING_ROWS (default the profile's; fewer rows let a small adapter run it, and the
 * figures are then not the profile's), BENCH_OUT.
 */
import { writeFileSync } from 'node:fs';
import * as T from '../src/tensor/index.js';
import { webgpuKernels, webgpuBackendError } from '../src/tensor/backend.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import {
  GPU_BUDGET,
  GPU_SHAPES,
  PROFILES,
  gpuShapeKey,
  gpuSizing,
  recipePaths,
} from '../src/recipe/recipe-profiles.js';
import { qwen2Parameters } from '../src/model/qwen2-config.js';
import { tinyQwen2Config } from '../test/helpers/tiny-qwen2.js';
import { gpuBusyShare } from '../src/tensor/webgpu/kernel-profile.js';
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

interface SizingRow {
  shape: string;
  parameters: number;
  tokensPerSecond: number | null;
  tflops: number | null;
  pretrainTokens: number | null;
  tokensPerParameter: number | null;
  /** The share of one more step's wall-clock time the GPU spent in kernels (kernel-profile.ts). */
  gpuBusy: number | null;
  /** That step's kernel times, for the JSON. */
  profile?: ProfiledRun;
  error?: string;
}

const env = process.env;
const t0 = performance.now();
const elapsed = (): number => (performance.now() - t0) / 1000;
const millions = (n: number): string => `${(n / 1e6).toFixed(2)} M`;

async function main(): Promise<void> {
  const gk = webgpuKernels();
  if (!gk) throw new Error(`WebGPU did not open (${webgpuBackendError()}): bench:sizing times the GPU step`);
  const facts = gk.gpu.facts;
  const lm = PROFILES.gpu.lm(recipePaths('work', 'data')) as {
    batchSize: number;
    seqLength: number;
    accumulation: number;
  };
  const accumulation = lm.accumulation;
  const rows = Number(env.BENCH_SIZING_ROWS || lm.batchSize);
  const seq = lm.seqLength;
  const reps = Number(env.BENCH_SIZING_REPS || 3);
  const budgetS = Number(env.BENCH_SIZING_BUDGET_S || 120);
  const tokens = rows * seq * accumulation;
  console.log(`adapter: ${facts.description} (${facts.software ? 'software: not the GPU rates' : 'hardware'})`);
  const notProfile = rows !== lm.batchSize ? `; the profile's rows are ${lm.batchSize}` : '';
  console.log(
    `step: ${accumulation} × ${rows}×${seq} tokens (${tokens} a step${notProfile}), vocab ${GPU_BUDGET.vocabSize}, ` +
      `f32, median of ${reps} after 1 warm-up; pretraining ${GPU_BUDGET.pretrainSeconds} s`,
  );

  const table: SizingRow[] = [];
  const measured: Record<string, number> = {};
  const save = (): void => {
    if (env.BENCH_OUT)
      writeFileSync(
        env.BENCH_OUT,
        JSON.stringify({ adapter: facts, rows, seq, accumulation, measured, table, seconds: elapsed() }, null, 2),
      );
  };
  for (const shape of GPU_SHAPES) {
    const key = gpuShapeKey(shape);
    const parameters = qwen2Parameters(shape, GPU_BUDGET.vocabSize);
    const row: SizingRow = {
      shape: key,
      parameters,
      tokensPerSecond: null,
      tflops: null,
      pretrainTokens: null,
      tokensPerParameter: null,
      gpuBusy: null,
    };
    table.push(row);
    if (elapsed() > budgetS) {
      row.error = `not run: ${elapsed().toFixed(0)} s had passed (BENCH_SIZING_BUDGET_S=${budgetS})`;
      continue;
    }
    const config = tinyQwen2Config({
      ...shape,
      vocabSize: GPU_BUDGET.vocabSize,
      headDim: shape.hiddenSize / shape.numAttentionHeads,
      maxPositionEmbeddings: 1024,
      ropeTheta: 10000,
      tieWordEmbeddings: true,
    });
    try {
      // weights drawn on the CPU, uploaded by the step's model; ids and targets random
      T.setBackend(T.nativeKernels() ? 'native' : 'js');
      const rng = new T.Rng(0);
      const weights: HostWeights = new Map();
      for (const p of Qwen2Model.random(config, rng, 0.02).parameters())
        weights.set(p.name!, { shape: p.shape, data: p.data });
      const ids = Int32Array.from({ length: rows * seq }, () => rng.int(GPU_BUDGET.vocabSize));
      const targets = Int32Array.from({ length: rows * seq }, () => rng.int(GPU_BUDGET.vocabSize));
      T.setBackend('webgpu');
      const { step } = trainRun(config, weights, rows, seq, ids, targets, accumulation);
      const seconds = await timeRuns(step, 1, reps);
      row.tokensPerSecond = tokens / median(seconds);
      row.tflops = (6 * parameters * row.tokensPerSecond) / 1e12;
      row.pretrainTokens = row.tokensPerSecond * GPU_BUDGET.pretrainSeconds;
      row.tokensPerParameter = row.pretrainTokens / parameters;
      measured[key] = Math.round(row.tokensPerSecond);
      // whether a step of this size keeps the GPU busy, or waits for the host (dispatches, reads)
      const profile = await profiledRun(gk.gpu, step);
      if (profile) {
        row.profile = profile;
        row.gpuBusy = gpuBusyShare(profile.times, profile.wallSeconds);
      }
    } catch (e) {
      row.error = firstLine(e);
    }
    await settle();
    console.error(`(${key}: ${elapsed().toFixed(0)} s)`);
    save();
    if (row.tokensPerParameter !== null && row.tokensPerParameter < GPU_BUDGET.minTokensPerParameter) break;
  }

  console.log();
  console.log(
    '| shape | parameters | tokens/s | TFLOP/s (6N) | tokens in pretraining | tokens/param | GPU busy (profiled) |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  const fmt = (x: number | null, digits: number): string => (x === null ? '—' : x.toFixed(digits));
  for (const r of table)
    console.log(
      `| ${r.shape} | ${millions(r.parameters)} | ${fmt(r.tokensPerSecond, 0)} | ${fmt(r.tflops, 2)} | ` +
        `${r.pretrainTokens === null ? '—' : millions(r.pretrainTokens)} | ${fmt(r.tokensPerParameter, 2)} | ` +
        `${r.gpuBusy === null ? '—' : `${(100 * r.gpuBusy).toFixed(0)} %`} |` +
        (r.error ? ` ${r.error}` : ''),
    );
  save();
  if (Object.keys(measured).length === 0) {
    console.log('\nno shape was measured');
    process.exitCode = 1;
    return;
  }
  const chosen = gpuSizing({ ...GPU_BUDGET, measured });
  console.log(
    `\ngpuSizing with these rates: ${gpuShapeKey(chosen.shape)} (${millions(chosen.parameters)} parameters), ` +
      `${chosen.steps} pretraining steps of ${GPU_BUDGET.tokensPerStep} tokens`,
  );
  if (notProfile) {
    console.log(`not GPU_BUDGET figures: the step had ${rows} rows (BENCH_SIZING_ROWS)${notProfile}`);
    return;
  }
  console.log('GPU_BUDGET (src/recipe/recipe-profiles.ts):');
  console.log(`  measured: ${JSON.stringify(measured)},\n  measuredOn: ${JSON.stringify(facts.description)},`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
