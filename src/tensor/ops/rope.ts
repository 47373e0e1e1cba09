import { type Buf, deviceConstant, kernels } from '../backend.js';
import { Tensor, TensorError, shapeStr } from '../tensor.js';

/** cos/sin tables [maxPositions, headDim/2] for rotary embeddings with base `theta`. */
export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
  maxPositions: number;
  headDim: number;
}

/**
 * Tables as Hugging Face's Qwen2 computes them: inverse frequencies theta^(−2i/d) in float32, angles
 * pos·freq in float32, then cos and sin.
 */
export function ropeTables(headDim: number, maxPositions: number, theta: number): RopeTables {
  if (headDim % 2 !== 0) throw new TensorError('rope', `head dimension ${headDim} must be even`);
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  const cos = new Float32Array(maxPositions * half),
    sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin, maxPositions, headDim };
}

/**
 * Rotates x [..., heads, headDim] (rotate_half convention); positions gives the position of each row
 * of x [..., heads, headDim] viewed as [rows, heads, headDim].
 */
export function rope(x: Tensor, tables: RopeTables, positions: Int32Array): Tensor {
  const headDim = x.shape[x.ndim - 1],
    heads = x.shape[x.ndim - 2];
  const rows = x.size / (heads * headDim);
  if (headDim !== tables.headDim)
    throw new TensorError('rope', `head dimension ${headDim} ≠ table's ${tables.headDim} (x ${shapeStr(x.shape)})`);
  if (positions.length !== rows)
    throw new TensorError('rope', `${positions.length} positions for ${rows} rows of ${shapeStr(x.shape)}`);
  for (let i = 0; i < positions.length; i++) {
    if (positions[i] < 0 || positions[i] >= tables.maxPositions) {
      throw new TensorError('rope', `position ${positions[i]} is outside the table (max ${tables.maxPositions})`);
    }
  }
  // The backward pass is the transpose rotation of the gradient.
  const rotate = (src: Buf, inverse: boolean): Buf => {
    const out = kernels().empty(x.size);
    const [cos, sin] = [deviceConstant(tables.cos), deviceConstant(tables.sin)];
    kernels().rope(src, out, cos, sin, positions, rows, heads, headDim, inverse);
    return out;
  };
  return Tensor.record(new Tensor(rotate(x.buf, false), x.shape), 'rope', [x], (g) => [rotate(g, true)]);
}
