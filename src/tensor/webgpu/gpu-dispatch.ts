/**
 * What every WebGPU kernel wrapper needs: packing a dispatch's parameters (binding 0, 64 words, read in
 * WGSL through the prelude's pu/pi/pf) and choosing a grid for a flat range of invocations.
 */
import type { GpuArray } from './gpu-array.js';
import { type GpuDevice, GpuError } from './gpu-device.js';

/** Invocations per workgroup of every flat kernel; wgsl/prelude.ts's flatId assumes it. */
export const WORKGROUP = 256;
const MAX_GROUPS = 65535;

/** A dispatch's parameters: u32, i32 and f32 values in order, at most 64 words. */
export class Params {
  private readonly words = new Uint32Array(64);
  private readonly floats = new Float32Array(this.words.buffer);
  private readonly ints = new Int32Array(this.words.buffer);
  private n = 0;

  u32(...vs: number[]): this {
    for (const v of vs) this.words[this.next()] = v >>> 0;
    return this;
  }
  i32(...vs: number[]): this {
    for (const v of vs) this.ints[this.next()] = v;
    return this;
  }
  f32(...vs: number[]): this {
    for (const v of vs) this.floats[this.next()] = v;
    return this;
  }
  /** `length` u32 slots from vs, zero-padded (fixed-rank shape and stride arrays). */
  u32s(vs: ArrayLike<number>, length: number): this {
    if (vs.length > length) {
      throw new GpuError(`WebGPU ops take tensors of at most ${length} dimensions, not ${vs.length}: use --device cpu`);
    }
    for (let i = 0; i < length; i++) this.words[this.next()] = i < vs.length ? vs[i] >>> 0 : 0;
    return this;
  }
  get buffer(): ArrayBuffer {
    return this.words.buffer.slice(0);
  }
  private next(): number {
    if (this.n >= 64) throw new Error('a WebGPU kernel takes at most 64 parameter words');
    return this.n++;
  }
}

/** A grid of workgroups covering `groups` of them, folded into y when x would exceed the limit. */
export function grid(groups: number): [number, number, number] {
  if (groups <= MAX_GROUPS) return [Math.max(groups, 1), 1, 1];
  const y = Math.ceil(groups / MAX_GROUPS);
  if (y > MAX_GROUPS) throw new Error(`${groups} workgroups are more than one dispatch can hold`);
  return [Math.ceil(groups / y), y, 1];
}

/** Runs `kernel` over `invocations` flat indices (WORKGROUP per group; the kernel bounds-checks). */
export function runFlat(dev: GpuDevice, kernel: string, arrays: GpuArray[], p: Params, invocations: number): void {
  if (invocations <= 0) return;
  dev.run(
    kernel,
    arrays.map((a) => a.id),
    p.buffer,
    grid(Math.ceil(invocations / WORKGROUP)),
  );
}

/** Runs `kernel` with one workgroup per row (row-wise kernels: norms, softmax, cross-entropy). */
export function runRows(dev: GpuDevice, kernel: string, arrays: GpuArray[], p: Params, rows: number): void {
  if (rows <= 0) return;
  dev.run(
    kernel,
    arrays.map((a) => a.id),
    p.buffer,
    grid(rows),
  );
}
