/**
 * Pretraining throughput of candidate default-model sizes (docs/default-model.md): tokens/s of
 * one full causal-LM step (forward, cross-entropy over the vocabulary, backward, clip, AdamW) at
 * batch 8 × 256 tokens, in our native backend and in PyTorch on the CPU (same config and threads),
 * with the ratio; and what one hour of training reaches at our speed.
 *
 * `npm run build && node dist/bench/lm-pretrain.js` — env: BENCH_THREADS (2), BENCH_STEPS (4),
 * BENCH_WARMUP (1), BENCH_CANDIDATES (comma list of names below; default all), BENCH_PEER (1; 0 skips PyTorch).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import os from 'node:os';
import * as T from '../src/tensor/index.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import type { Qwen2Config } from '../src/model/qwen2-config.js';
import { pythonConfig, tinyQwen2Config } from '../test/helpers/tiny-qwen2.js';
import { repoRoot } from '../test/helpers/repo.js';

const threads = Number(process.env.BENCH_THREADS ?? 2);
const steps = Number(process.env.BENCH_STEPS ?? 4);
const warmup = Number(process.env.BENCH_WARMUP ?? 1);
const batch = 8,
  seq = 256,
  tokens = batch * seq;

const CANDIDATES: Record<string, Partial<Qwen2Config>> = {
  'd256-L4': {
    hiddenSize: 256,
    numHiddenLayers: 4,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 64,
    intermediateSize: 768,
  },
  'd256-L6': {
    hiddenSize: 256,
    numHiddenLayers: 6,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 64,
    intermediateSize: 768,
  },
  'd384-L6': {
    hiddenSize: 384,
    numHiddenLayers: 6,
    numAttentionHeads: 6,
    numKeyValueHeads: 2,
    headDim: 64,
    intermediateSize: 1024,
  },
  'd384-L8': {
    hiddenSize: 384,
    numHiddenLayers: 8,
    numAttentionHeads: 6,
    numKeyValueHeads: 2,
    headDim: 64,
    intermediateSize: 1024,
  },
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function configOf(name: string): Qwen2Config {
  return tinyQwen2Config({
    vocabSize: 8192,
    maxPositionEmbeddings: 1024,
    tieWordEmbeddings: true,
    ...CANDIDATES[name],
  });
}

function ourSeconds(config: Qwen2Config): number[] {
  const rng = new T.Rng(0);
  const model = Qwen2Model.random(config, rng, 0.02);
  const params = model.parameters();
  const opt = new T.AdamW(params, { weightDecay: 0.1 });
  const ids = Int32Array.from({ length: tokens }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: tokens }, () => rng.int(config.vocabSize));
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now(),
      c0 = process.cpuUsage();
    opt.zeroGrad();
    const loss = T.crossEntropy(model.logits(model.forward(ids, batch, seq)), targets);
    loss.backward();
    T.clipGradNorm(params, 1.0);
    opt.step(1e-4);
    if (i >= warmup) {
      times.push((performance.now() - t0) / 1000);
      const c = process.cpuUsage(c0);
      cpuTimes.push((c.user + c.system) / 1e6);
    }
  }
  return times;
}

/**
 * CPU seconds per step of our last candidate: on a machine shared with other jobs, wall time overstates the cost; CPU
 * time / threads is the idle-machine estimate.
 */
const cpuTimes: number[] = [];

function peerSeconds(config: Qwen2Config): number[] | null {
  const r = spawnSync('/usr/bin/python3', [join(repoRoot, 'bench', 'peers', 'torch_train_step.py')], {
    input: JSON.stringify({
      config: {
        ...pythonConfig(config),
        hidden_size: config.hiddenSize,
        vocab_size: config.vocabSize,
        intermediate_size: config.intermediateSize,
      },
      batch,
      seq,
      steps,
      warmup,
      threads,
    }),
    env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) {
    console.log(
      `  (PyTorch peer unavailable: ${(r.stderr?.toString() ?? r.error?.message ?? '').trim().split('\n').pop()})`,
    );
    return null;
  }
  return (JSON.parse(r.stdout.toString()) as { seconds: number[] }).seconds;
}

function main(): void {
  process.env.SEARCH_R3_THREADS ??= String(threads);
  T.setBackend('native');
  const names = (process.env.BENCH_CANDIDATES ?? Object.keys(CANDIDATES).join(',')).split(',');
  console.log(
    `causal-LM step, vocab 8192 (tied), batch ${batch}×${seq}, ${threads} threads, median of ${steps} steps ` +
      `after ${warmup} warm-up; load average at start ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
  );
  for (const name of names) {
    const config = configOf(name);
    const params = Qwen2Model.random(config, new T.Rng(0))
      .parameters()
      .reduce((a, p) => a + p.size, 0);
    cpuTimes.length = 0;
    const ours = median(ourSeconds(config));
    const cpu = median(cpuTimes);
    const peer = process.env.BENCH_PEER === '0' ? null : peerSeconds(config);
    const theirs = peer ? median(peer) : NaN;
    const perHour = (tokens / ours) * 3600;
    console.log(
      `${name.padEnd(8)} ${(params / 1e6).toFixed(2)}M params: ours ${(ours * 1000).toFixed(0)} ms/step ` +
        `${(tokens / ours).toFixed(0)} tok/s` +
        (peer
          ? `; PyTorch ${(theirs * 1000).toFixed(0)} ms/step ${(tokens / theirs).toFixed(0)} tok/s; ratio ` +
            `ours/PyTorch ${(theirs / ours).toFixed(2)}`
          : '') +
        `; 1 h ≈ ${(perHour / 1e6).toFixed(1)}M tokens (${(perHour / params).toFixed(2)} tokens/param)` +
        `; CPU ${cpu.toFixed(2)} s/step → idle-machine estimate ${(tokens / (cpu / threads)).toFixed(0)} ` +
        `tok/s, 1 h ≈ ${(((tokens / (cpu / threads)) * 3600) / 1e6).toFixed(1)}M tokens`,
    );
  }
}

main();
