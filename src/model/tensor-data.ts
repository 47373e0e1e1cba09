import type { HalfArray } from '../tensor/index.js';

/**
 * A weight as file formats hand it over: float32 values, row-major, with its numpy-order shape.
 * Deliberately independent of the tensors of the autodiff, so that file I/O works on plain typed arrays.
 */
export interface TensorData {
  shape: number[];
  data: Float32Array;
}

/**
 * What writers accept: any read-only view of a tensor (TensorData is one), its values float32 or the
 * 16-bit patterns of a weight held in f16 or bf16.
 */
export interface TensorView {
  readonly shape: readonly number[];
  readonly data: Float32Array | HalfArray;
}

export interface NamedTensor extends TensorData {
  name: string;
}

/** Number of elements of a shape ([] is a scalar: 1). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
