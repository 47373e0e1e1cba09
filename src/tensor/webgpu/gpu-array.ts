/**
 * A tensor's values in a GPU buffer: float32, or a frozen weight's 16-bit patterns packed two per 32-bit
 * word (f16 is widened in WGSL with unpack2x16float, bf16 by a shift, so neither needs `shader-f16`).
 * The buffer goes back to the pool when the array is garbage-collected, or at once with free().
 */
import type { GpuDevice, GpuDtype } from './gpu-device.js';
import type { BufferId } from './gpu-protocol.js';

export class GpuArray {
  readonly id: BufferId;
  readonly bytes: number;
  private freed = false;

  constructor(
    readonly device: GpuDevice,
    /** Number of elements. */
    readonly length: number,
    readonly dtype: GpuDtype = 'f32',
    /** False for an array whose every element is written before it is read: its old values are left. */
    zeroed = true,
  ) {
    this.bytes = dtype === 'f32' ? length * 4 : Math.ceil(length / 2) * 4;
    this.id = device.alloc(this.bytes, this, zeroed);
  }

  /** Returns the buffer to the pool now; any later use is a bug the GPU thread reports. */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.device.free(this.id, this.bytes, this);
  }
}
