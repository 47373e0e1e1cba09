/**
 * `npm run bench:train`: tokens/s of one full training step (forward, cross-entropy, backward, clip,
 * AdamW) of the same decoder in our native backend and in PyTorch on the CPU, same config and threads,
 * in one run; prints both and the ratio. Each side computes the loss as its users do: ours as train lm
 * does (through the LM head in chunks, Qwen2Model.lmLoss), PyTorch's from the full logits. Also the
 * native sgemm GFLOP/s at 1024³.
 *
 * Options (env): BENCH_THREADS (2), BENCH_STEPS (10), BENCH_WARMUP (3).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as T from '../src/tensor/index.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import { pythonConfig, tinyQwen2Config } from '../test/helpers/tiny-qwen2.js';
import { repoRoot } from '../test/helpers/repo.js';

const threads = Number(process.env.BENCH_THREADS ?? 2);
const steps = Number(process.env.BENCH_STEPS ?? 10);
const warmup = Number(process.env.BENCH_WARMUP ?? 3);
const config = tinyQwen2Config({
  vocabSize: 8192,
  hiddenSize: 256,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 64,
  intermediateSize: 1024,
  numHiddenLayers: 4,
  maxPositionEmbeddings: 512,
  tieWordEmbeddings: false,
});
const batch = 8,
  seq = 128,
  tokens = batch * seq;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function peerSeconds(threads: number): { seconds: number[]; torch: string } {
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
    // torch's matmuls run on OpenBLAS's own pool: pin both pools to the same count
    env: { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) },
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`PyTorch peer failed: ${r.stderr?.toString() ?? r.error?.message}`);
  return JSON.parse(r.stdout.toString());
}

function ourSeconds(): number[] {
  const rng = new T.Rng(0);
  const model = Qwen2Model.random(config, rng, 0.02);
  const params = model.parameters();
  const opt = new T.AdamW(params, { weightDecay: 0.01 });
  const ids = Int32Array.from({ length: tokens }, () => rng.int(config.vocabSize));
  const targets = Int32Array.from({ length: tokens }, () => rng.int(config.vocabSize));
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    opt.zeroGrad();
    const loss = model.lmLoss(model.forward(ids, batch, seq), targets);
    loss.backward();
    T.clipGradNorm(params, 1.0);
    opt.step(1e-4);
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
  }
  return times;
}

function gemmGflops(): number {
  const n = 1024,
    rng = new T.Rng(1);
  const a = T.randn([n, n], rng).data,
    b = T.randn([n, n], rng).data,
    c = new Float32Array(n * n);
  const k = T.kernels();
  const run = (): void =>
    k.gemm({
      a,
      b,
      c,
      batch: 1,
      m: n,
      n,
      k: n,
      transA: false,
      transB: false,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      accumulate: false,
    });
  run();
  const reps = 10,
    t0 = performance.now();
  for (let i = 0; i < reps; i++) run();
  return (2 * n * n * n * reps) / ((performance.now() - t0) / 1000) / 1e9;
}

function main(): void {
  process.env.SEARCH_R3_THREADS ??= String(threads);
  T.setBackend('native');
  console.log(
    `config: 4 layers, d_model 256, 4 heads / 2 KV heads, SwiGLU 1024, vocab 8192, batch ${batch}×${seq}; ` +
      `${threads} threads; median of ${steps} steps after ${warmup} warm-up`,
  );
  const ours = median(ourSeconds());
  const peer = peerSeconds(threads);
  const theirs = median(peer.seconds);
  // PyTorch 1.13 on this 2-core machine is often faster on one thread than on two: show that too.
  const peer1 = threads === 1 ? null : median(peerSeconds(1).seconds);
  const row = (name: string, s: number): string =>
    `${name.padEnd(22)} ${(s * 1000).toFixed(0).padStart(7)} ms/step ${(tokens / s).toFixed(0).padStart(8)} tokens/s`;
  console.log(row('search-r3 (native)', ours));
  console.log(row(`PyTorch ${peer.torch}`, theirs));
  if (peer1 !== null) console.log(row(`PyTorch, 1 thread`, peer1) + '   (for reference)');
  console.log(`ratio (ours / PyTorch tokens/s, ${threads} threads each): ${(theirs / ours).toFixed(2)}`);
  if (peer1 !== null) console.log(`ratio vs PyTorch's faster 1-thread run: ${(peer1 / ours).toFixed(2)}`);
  console.log(`native sgemm 1024³: ${gemmGflops().toFixed(0)} GFLOP/s`);
}

main();
