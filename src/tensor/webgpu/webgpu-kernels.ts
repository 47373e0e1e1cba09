/**
 * The WebGPU backend's Kernels: every kernel is a WGSL compute shader (wgsl/) dispatched on the GPU
 * thread; values stay in GPU buffers and come back only through toHost, sumSquares and allFinite.
 */
import { HOST_CHUNK_BYTES, type Kernels } from '../kernels.js';
import { attentionKernels } from './attention-kernels.js';
import type { GpuArray } from './gpu-array.js';
import type { GpuDevice } from './gpu-device.js';
import { matmulKernels } from './matmul-kernels.js';
import { rowKernels } from './row-kernels.js';
import { storageKernels } from './storage-kernels.js';

export type WebgpuKernels = Kernels<GpuArray, GpuArray> & { readonly gpu: GpuDevice };

/**
 * A hardware adapter gets 256 MiB working buffers where its bindings allow (2 × 256 MiB is little beside a
 * discrete GPU's memory); a software one, whose memory is the host's, what the CPU backends use.
 */
function chunkBytes(gpu: GpuDevice): number {
  if (gpu.facts.software) return HOST_CHUNK_BYTES;
  return Math.max(HOST_CHUNK_BYTES, Math.min(256 * 2 ** 20, gpu.facts.maxStorageBufferBindingSize));
}

export function createWebgpuKernels(gpu: GpuDevice): WebgpuKernels {
  return {
    name: 'webgpu',
    gpu,
    chunkBytes: chunkBytes(gpu),
    ...storageKernels(gpu),
    ...rowKernels(gpu),
    ...matmulKernels(gpu),
    ...attentionKernels(gpu),
  };
}
