/**
 * The WebGPU backend's Kernels: every kernel is a WGSL compute shader (wgsl/) dispatched on the GPU
 * thread; values stay in GPU buffers and come back only through toHost, sumSquares and allFinite.
 */
import type { Kernels } from '../kernels.js';
import type { GpuArray } from './gpu-array.js';
import type { GpuDevice } from './gpu-device.js';
import { attentionKernels } from './attention-kernels.js';
import { storageKernels } from './storage-kernels.js';

export type WebgpuKernels = Kernels<GpuArray, GpuArray> & { readonly gpu: GpuDevice };

export function createWebgpuKernels(gpu: GpuDevice): WebgpuKernels {
  const missing = (name: string) => (): never => {
    throw new Error(`the ${name} kernel is not available on WebGPU yet`);
  };
  const todo = [
    'gemm',
    'gemmHalf',
    'widenHalf',
    'halfAllFinite',
    'rmsnormForward',
    'rmsnormBackward',
    'rope',
    'softmaxForward',
    'softmaxBackward',
    'logSoftmaxForward',
    'logSoftmaxBackward',
    'crossEntropyForward',
    'crossEntropyBackward',
    'siluForward',
    'siluBackward',
    'swigluForward',
    'swigluBackward',
    'embeddingForward',
    'embeddingForwardHalf',
    'embeddingBackward',
    'adamw',
  ] as const;
  const stubs = Object.fromEntries(todo.map((n) => [n, missing(n)])) as unknown as Pick<
    Kernels<GpuArray, GpuArray>,
    (typeof todo)[number]
  >;
  return {
    name: 'webgpu',
    gpu,
    ...stubs,
    ...storageKernels(gpu),
    ...attentionKernels(gpu),
  };
}
