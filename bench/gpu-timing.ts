/**
 * Timing pieces shared by the GPU benches (bench:gpu, bench:sizing): runs timed between full collections
 * (GPU buffers return to the pool only when their tensors are collected), and a training step built the
 * way src/train runs one.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import * as T from '../src/tensor/index.js';
import { Qwen2Model } from '../src/model/qwen2-model.js';
import type { Qwen2Config } from '../src/model/qwen2-config.js';
import type { GpuDevice } from '../src/tensor/webgpu/gpu-device.js';
import type { KernelTime } from '../src/tensor/webgpu/kernel-profile.js';

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** An error's first line, for a table cell or a note. */
export const firstLine = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 160);

/** A full collection, then a moment for the finalizers that return GPU buffers to the pool. */
export async function settle(): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
  await new Promise((resolve) => setTimeout(resolve, 10));
}

/**
 * Seconds of each of `reps` runs after `warmup`, each run synchronous (it reads its result back);
 * `beforeTimed` runs once, off the clock, before the first timed run.
 */
export async function timeRuns(
  run: () => void,
  warmup: number,
  reps: number,
  beforeTimed?: () => void,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < warmup + reps; i++) {
    await settle();
    if (i === warmup) beforeTimed?.();
    const s = performance.now();
    run();
    if (i >= warmup) times.push((performance.now() - s) / 1000);
  }
  return times;
}

/** One run with every dispatch timed on the GPU, and its wall-clock time until the GPU was done. */
export interface ProfiledRun {
  wallSeconds: number;
  times: KernelTime[];
}

/**
 * `run` once more, after a collection, with a kernel profile on (GpuDevice.startProfile); null on an
 * adapter without timestamp queries. The profile runs each dispatch in a pass of its own, so this run is
 * not one of the timed ones.
 */
export async function profiledRun(gpu: GpuDevice, run: () => void): Promise<ProfiledRun | null> {
  if (!gpu.facts.features.includes('timestamp-query')) return null;
  await settle();
  gpu.startProfile();
  const s = performance.now();
  run();
  const times = gpu.stopProfile(); // waits until the GPU has done all of it
  return { wallSeconds: (performance.now() - s) / 1000, times };
}

export type HostWeights = Map<string, { shape: readonly number[]; data: Float32Array }>;

/**
 * One optimiser step as train lm runs it: `accumulation` micro-batches of rows × seq tokens (the same ids
 * each time), the loss through the LM head in chunks (Qwen2Model.lmLoss), each loss read before its
 * backward pass (the trainer checks it is finite there), the gradients scaled by 1/accumulation, then
 * clipping, AdamW and zeroing.
 */
export function trainRun(
  config: Qwen2Config,
  weights: HostWeights,
  rows: number,
  seq: number,
  ids: Int32Array,
  targets: Int32Array,
  accumulation = 1,
): { step: () => void; losses: number[] } {
  const copy = T.kernels().device === 'cpu'; // the step changes the weights; a GPU upload copies anyway
  const params = new Map(
    [...weights].map(([n, w]) => [n, new T.Tensor(copy ? Float32Array.from(w.data) : w.data, w.shape, true, n)]),
  );
  const model = new Qwen2Model(config, params);
  const list = model.parameters();
  const opt = new T.AdamW(list, { weightDecay: 0.01 });
  const losses: number[] = [];
  const scale = new Float32Array([1 / accumulation]);
  const step = (): void => {
    let loss = 0;
    for (let a = 0; a < accumulation; a++) {
      const l = model.lmLoss(model.forward(ids, rows, seq), targets);
      loss += l.item() / accumulation;
      l.backward(scale);
    }
    T.clipGradNorm(list, 1.0);
    opt.step(1e-4);
    opt.zeroGrad(); // as src/train does, so the gradients' buffers are garbage before the next step
    losses.push(loss);
  };
  return { step, losses };
}
