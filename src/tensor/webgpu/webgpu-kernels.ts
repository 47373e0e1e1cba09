/**
 * The WebGPU backend's Kernels: every kernel is a WGSL compute shader (wgsl/) dispatched on the GPU
 * thread; values stay in GPU buffers and come back only through toHost, sumSquares and allFinite.
 */
import type { Kernels } from '../kernels.js';
import { attentionKernels } from './attention-kernels.js';
import type { GpuArray } from './gpu-array.js';
import type { GpuDevice } from './gpu-device.js';
import { matmulKernels } from './matmul-kernels.js';
import { rowKernels } from './row-kernels.js';
import { storageKernels } from './storage-kernels.js';

export type WebgpuKernels = Kernels<GpuArray, GpuArray> & { readonly gpu: GpuDevice };

export function createWebgpuKernels(gpu: GpuDevice): WebgpuKernels {
  return {
    name: 'webgpu',
    gpu,
    ...storageKernels(gpu),
    ...rowKernels(gpu),
    ...matmulKernels(gpu),
    ...attentionKernels(gpu),
  };
}
