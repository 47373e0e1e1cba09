/**
 * 1,000 full training steps of a tiny Qwen2 decoder (forward, cross-entropy, backward, clip by global
 * norm, AdamW, zeroGrad) do not grow the process's memory. The loop runs in a child process started
 * with --expose-gc (this same file, in child mode), so that the measurements are taken after a full
 * collection and nothing else in the test runner shares the heap. RSS is sampled after 100 warm-up steps
 * and every 100 steps to 1,000: RSS may grow by at most RSS_STEP_BOUND_MB per 100 steps (the median of the
 * nine intervals) and RSS_BOUND_MB in all besides one step of at most ONE_STEP_BOUND_MB; the JS heap plus
 * typed-array buffers (where tensor data lives) by HEAP_BOUND_MB.
 * A leak of one step's graph (the activations of a [4, 16] batch, ≈ 0.5 MB) would add ≈ 450 MB; a
 * native kernel leaking its scratch buffers shows up in RSS, which the heap figure would miss.
 * Measured (2-core dev machine, Node 20, one malloc arena): RSS drift 0.0 to +2.4 MB native (≈ 1 ms/step), +1.6 MB TS
 * (≈ 15 ms/step); JS heap and buffers ±0.1 MB. Keeping each step's logits alive (16 KB/step) grows the
 * buffers by 14 MB and fails the test. The measured figures are printed (test diagnostics).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/tensor/index.js';
import { Qwen2Model } from '../../src/model/qwen2-model.js';
import { tinyQwen2Config } from '../helpers/tiny-qwen2.js';

const RSS_BOUND_MB = 20;
const RSS_STEP_BOUND_MB = 1;
const ONE_STEP_BOUND_MB = 64;
const HEAP_BOUND_MB = 5;
const STEPS = 1000,
  WARMUP = 100;
const CHILD_ENV = 'SEARCH_R3_MEMORY_CHILD';

interface Report {
  backend: T.BackendName;
  rssMB: number[]; // after step WARMUP, then every 100 steps up to STEPS
  heapMB: number[];
  /** Typed-array backing stores (tensor data lives here, outside the JS heap). */
  buffersMB: number[];
  firstLoss: number;
  lastLoss: number;
  msPerStep: number;
  gc: boolean;
}

function trainAndMeasure(backend: T.BackendName): Report {
  T.setBackend(backend);
  const config = tinyQwen2Config({
    vocabSize: 64,
    hiddenSize: 32,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 8,
    intermediateSize: 64,
    numHiddenLayers: 2,
  });
  const rng = new T.Rng(1234);
  const model = Qwen2Model.random(config, rng, 0.1);
  const params = model.parameters();
  const opt = new T.AdamW(params, { weightDecay: 0.01 });
  const lr = T.warmupCosine(3e-3, 50, STEPS, 3e-4);
  const batch = 4,
    seq = 16;
  const gc = (globalThis as { gc?: () => void }).gc;
  const mb = (n: number): number => n / (1 << 20);
  const sample = (r: Report): void => {
    if (gc) {
      gc();
      gc();
    }
    const m = process.memoryUsage();
    r.rssMB.push(mb(m.rss));
    r.heapMB.push(mb(m.heapUsed));
    r.buffersMB.push(mb(m.arrayBuffers));
  };
  const report: Report = {
    backend,
    rssMB: [],
    heapMB: [],
    buffersMB: [],
    firstLoss: NaN,
    lastLoss: NaN,
    msPerStep: 0,
    gc: gc !== undefined,
  };
  let t0 = 0;
  for (let step = 0; step < STEPS; step++) {
    // a learnable task: arithmetic sequences mod vocab with a random start and stride per row, each step fresh
    const ids = new Int32Array(batch * seq),
      targets = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) {
      const start = rng.int(config.vocabSize),
        stride = 1 + rng.int(3);
      for (let t = 0; t < seq; t++) ids[b * seq + t] = (start + stride * t) % config.vocabSize;
      for (let t = 0; t < seq; t++) targets[b * seq + t] = t + 1 < seq ? ids[b * seq + t + 1] : -100;
    }
    const loss = T.crossEntropy(model.logits(model.forward(ids, batch, seq)), targets);
    loss.backward();
    T.clipGradNorm(params, 1);
    opt.step(lr(step));
    opt.zeroGrad();
    if (step === 0) report.firstLoss = loss.item();
    if (step === STEPS - 1) report.lastLoss = loss.item();
    if (step + 1 === WARMUP) {
      sample(report);
      t0 = performance.now();
    }
    if (step + 1 > WARMUP && (step + 1) % 100 === 0) sample(report);
  }
  report.msPerStep = (performance.now() - t0) / (STEPS - WARMUP);
  return report;
}

if (process.env[CHILD_ENV]) {
  process.stdout.write(JSON.stringify(trainAndMeasure(process.env[CHILD_ENV] as T.BackendName)));
} else {
  // One backend keeps the test near 10 s: native when it loaded (faster for these shapes, and the one whose
  // C code could leak outside the JS heap), else TS. SEARCH_R3_MEMORY_BACKEND=js|native overrides.
  const backend: T.BackendName =
    (process.env.SEARCH_R3_MEMORY_BACKEND as T.BackendName | undefined) ?? (T.nativeKernels() ? 'native' : 'js');
  test(
    `${STEPS} training steps of a tiny Qwen2 do not grow memory (${backend} backend; ` +
      `RSS ≤ ${RSS_STEP_BOUND_MB} MB per 100 steps, ${RSS_BOUND_MB} MB in all; ` +
      `JS heap + tensor buffers ≤ ${HEAP_BOUND_MB} MB)`,
    (t) => {
      // One malloc arena: glibc otherwise opens arenas for the native pool's threads whenever scheduling
      // makes them contend, each a step of up to ≈ 14 MB in RSS that is not a leak (drifts of −0.4 to
      // 13.4 MB over runs of this test on an idle 2-core machine; 0.2 to 2.4 MB with one arena). A leak still
      // grows the one arena.
      const env: NodeJS.ProcessEnv = { ...process.env, [CHILD_ENV]: backend, MALLOC_ARENA_MAX: '1' };
      delete env.NODE_TEST_CONTEXT; // the child is a plain script, not a test-runner child
      // A fixed young generation: V8 otherwise grows it (by up to 2×16 MB) whenever it decides to, a step in
      // RSS that is not a leak.
      const flags = ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'];
      const r = spawnSync(process.execPath, [...flags, fileURLToPath(import.meta.url)], {
        env,
        timeout: 180_000,
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, `child failed (${r.signal ?? r.status}):\n${r.stderr}`);
      const rep = JSON.parse(r.stdout) as Report;
      const drift = (a: number[]): number => a[a.length - 1] - a[0];
      const rssDrift = drift(rep.rssMB),
        heapDrift = drift(rep.heapMB),
        bufDrift = drift(rep.buffersMB);
      const fmt = (a: number[]): string => a.map((v) => v.toFixed(1)).join(' ');
      t.diagnostic(
        `${backend}: RSS after step ${WARMUP}, then every 100 to ${STEPS} (MB): ${fmt(rep.rssMB)}; drift ` +
          `${rssDrift.toFixed(2)} MB`,
      );
      t.diagnostic(
        `${backend}: JS heap (MB): ${fmt(rep.heapMB)}, drift ${heapDrift.toFixed(2)} MB; tensor buffers (MB): ` +
          `${fmt(rep.buffersMB)}, drift ${bufDrift.toFixed(2)} MB`,
      );
      t.diagnostic(
        `${backend}: ${rep.msPerStep.toFixed(2)} ms/step; ` +
          `loss ${rep.firstLoss.toFixed(3)} → ${rep.lastLoss.toFixed(3)}`,
      );
      assert.ok(rep.gc, 'the child runs with --expose-gc');
      assert.equal(rep.rssMB.length, (STEPS - WARMUP) / 100 + 1);
      // the loop really trains (so the measured steps are real steps)
      assert.ok(rep.lastLoss < 0.5 * rep.firstLoss, `loss ${rep.firstLoss} → ${rep.lastLoss}`);
      // A leak grows RSS in every interval; the allocator or a thread pool taking one more block of memory is
      // one step, once (a 10.3 MB step between steps 700 and 800, flat before and after, was seen here on Node
      // 20; on Node 24 and 26, 26–55 MB between two samples and flat after, while V8's heap and the buffers stayed
      // flat). So the bound is on the median growth per 100 steps, and on the whole drift less its largest step,
      // which may be one such step of up to ONE_STEP_BOUND_MB.
      const steps = rep.rssMB.slice(1).map((v, i) => v - rep.rssMB[i]);
      const sorted = [...steps].sort((a, b) => a - b);
      const medianStep = sorted[Math.floor(steps.length / 2)],
        largestStep = sorted[steps.length - 1];
      assert.ok(
        medianStep <= RSS_STEP_BOUND_MB && rssDrift - largestStep <= RSS_BOUND_MB && largestStep <= ONE_STEP_BOUND_MB,
        `RSS grew by ${rssDrift.toFixed(1)} MB over ${STEPS - WARMUP} steps, a median of ${medianStep.toFixed(2)} MB ` +
          `per 100, ${largestStep.toFixed(1)} MB at most: ${fmt(rep.rssMB)}`,
      );
      assert.ok(
        heapDrift + bufDrift <= HEAP_BOUND_MB,
        `JS heap + buffers grew by ${(heapDrift + bufDrift).toFixed(1)} MB over ${STEPS - WARMUP} steps`,
      );
    },
  );
}
