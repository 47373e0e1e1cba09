/**
 * What the WebGPU kernel tests share: the GPU (the backend registry's, on whatever adapter there is:
 * lavapipe in CI), the native kernels as the reference, seeded inputs and the error measure
 *   relErr = max|gpu − native| / max(max|native|, 1e-6)
 * (non-finite entries must match exactly). Without an adapter the tests fail, unless
 * SEARCH_R3_ALLOW_NO_WEBGPU=1 turns them into skips. Values a kernel leaves unwritten are NaN.
 */
import type { GpuArray } from '../../../src/tensor/webgpu/gpu-array.js';
import type { WebgpuKernels } from '../../../src/tensor/webgpu/webgpu-kernels.js';
import { loadNativeKernels } from '../../../src/tensor/native-kernels.js';
import type { Kernels } from '../../../src/tensor/kernels.js';
import { Rng } from '../../../src/tensor/rng.js';
import * as T from '../../../src/tensor/index.js';
import { poisonUnwrittenGpuValues, webgpuSkip } from '../../helpers/webgpu.js';

poisonUnwrittenGpuValues();

/** Test option: skip (with the reason) only when allowed and there is no adapter. */
export const skipWithoutGpu: string | false = webgpuSkip();

/** The registry's WebGPU kernels: the device every backend switch in the tests uses too. */
export function wg(): WebgpuKernels {
  return T.webgpuKernels()!;
}

export const ref: Kernels = loadNativeKernels();

/** Tolerances the issue sets: float32 kernels, and kernels that read 16-bit storage or compute in f16. */
export const F32_TOL = 1e-4;
export const F16_TOL = 2e-2;

export function seeded(seed: number): {
  randn: (n: number, scale?: number) => Float32Array;
  ints: (n: number, hi: number) => Int32Array;
} {
  const rng = new Rng(seed);
  return {
    randn(n, scale = 1) {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
      return a;
    },
    ints(n, hi) {
      const a = new Int32Array(n);
      for (let i = 0; i < n; i++) a[i] = Math.floor(rng.next() * hi);
      return a;
    },
  };
}

export const up = (x: Float32Array): GpuArray => wg().fromHost(x);
export const down = (x: GpuArray): Float32Array => wg().toHost(x);

export { relErr } from '../../helpers/rel-err.js';
