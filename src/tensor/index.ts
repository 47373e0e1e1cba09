/** The tensor layer: tensors, autodiff, ops, optimisers. Everything above imports from here. */
export { Tensor, TensorError, recycle, shapeSize, shapeStr, stridesOf, type Shape, type DType } from './tensor.js';
export {
  HalfArray,
  type HalfDtype,
  decodeBf16,
  decodeF16,
  encodeBf16,
  encodeF16,
  f16BitsFromFloat32Bits,
  widenHalf,
} from './half-float.js';
export {
  BackendChoiceError,
  backendName,
  checkBackendChoice,
  checkWebgpuAvailable,
  shutdownGpu,
  hasGpuThread,
  isGradEnabled,
  nativeBackendError,
  hostKernels,
  useDevice,
  webgpuBackendError,
  webgpuKernels,
  releaseUnusedMemory,
  releaseGpuMemory,
  type GpuMemoryRelease,
  DEVICE_CHOICES,
  type DeviceChoice,
  type DeviceReport,
  type Buf,
  nativeKernels,
  noGrad,
  setBackend,
  setFiniteCheck,
  isFiniteCheckEnabled,
  kernels,
  type BackendName,
} from './backend.js';
export type { Kernels } from './kernels.js';
export { GpuError, type GpuSizeRefusal, gpuSizeSentence, isGpuDeviceFailure } from './webgpu/gpu-device.js';
export { Rng, type RngState } from './rng.js';
export { tensor, zeros, full, randn, rand, parameter } from './ops/create.js';
export { add, sub, mul, div, affine, scale, neg, exp, log, sqrt, square } from './ops/elementwise.js';
export { sum, mean, max } from './ops/reduce.js';
export { reshape, permute, transpose, slice, concat } from './ops/shape.js';
export { matmul, type MatmulOptions } from './ops/matmul.js';
export { linear, linearAccumulate } from './ops/linear.js';
export { rmsnorm } from './ops/rmsnorm.js';
export { rope, ropeTables, type RopeTables } from './ops/rope.js';
export { silu, swiglu } from './ops/activation.js';
export { softmax, logSoftmax, logsumexp } from './ops/softmax.js';
export { attention, type AttentionOptions } from './ops/attention.js';
export { crossEntropy, type CrossEntropyOptions } from './ops/cross-entropy.js';
export { greedyPick, samplePick, type DevicePicks } from './ops/device-picks.js';
export { chunkRowsFor, linearCrossEntropy, type LinearCrossEntropyOptions } from './ops/linear-cross-entropy.js';
export { embedding } from './ops/embedding.js';
export { dropout } from './ops/dropout.js';
export { l2normalize, cosineSimilarity, cosineMatrix } from './ops/similarity.js';
export {
  AdamW,
  SGD,
  clipGradNorm,
  countParameters,
  type Optimizer,
  type OptimizerState,
  type AdamWOptions,
} from './optim.js';
export { warmupCosine, constant, type Schedule } from './schedule.js';
