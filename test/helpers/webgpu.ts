/**
 * Whether the WebGPU tests can run: the setup command installs lavapipe, so an adapter must be there.
 * Without one these tests fail, unless SEARCH_R3_ALLOW_NO_WEBGPU=1 turns them into skips (with why).
 */
import * as T from '../../src/tensor/index.js';

export function webgpuSkip(): string | false {
  const why = T.webgpuBackendError();
  if (why === null) return false;
  if (process.env.SEARCH_R3_ALLOW_NO_WEBGPU === '1') return `no WebGPU adapter: ${why}`;
  throw new Error(`WebGPU did not open (${why}); set SEARCH_R3_ALLOW_NO_WEBGPU=1 to skip its tests`);
}

/**
 * Fills every GPU buffer handed out without a clear with NaN (SEARCH_R3_GPU_POISON), for the process's device,
 * which must not be open yet: a kernel that leaves part of its output unwritten then fails its test, where a
 * pooled buffer's old values could have passed it. The kernel tests run so; the model tests run the device as
 * users do, and again poisoned (webgpu-poison.test.ts).
 */
export function poisonUnwrittenGpuValues(): void {
  process.env.SEARCH_R3_GPU_POISON = '1';
}
