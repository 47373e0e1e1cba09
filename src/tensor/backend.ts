/**
 * The backend registry: the one piece of global state in the tensor layer. It picks the kernels
 * (pure TS, native or WebGPU) and holds the autodiff switches (grad recording, finite checks).
 *
 * SEARCH_R3_BACKEND=js|native|webgpu chooses, taken when kernels are first needed; by default the native
 * backend is used when its addon loaded. useDevice() is what commands call for --device auto|cpu|webgpu,
 * which wins over the variable.
 */
import { existsSync, readdirSync } from 'node:fs';
import type { HalfArray } from './half-float.js';
import { jsKernels } from './js-kernels.js';
import type { F32, Kernels } from './kernels.js';
import { loadNativeKernels } from './native-kernels.js';
import type { GpuArray } from './webgpu/gpu-array.js';
import { GpuDevice, GpuError } from './webgpu/gpu-device.js';
import { switchSetting } from '../io/env-settings.js';
import { createWebgpuKernels, type WebgpuKernels } from './webgpu/webgpu-kernels.js';

export type BackendName = 'js' | 'native' | 'webgpu';
export type DeviceChoice = 'auto' | 'cpu' | 'webgpu';
export const DEVICE_CHOICES: readonly DeviceChoice[] = ['auto', 'cpu', 'webgpu'];

/** A tensor's float32 storage on whichever device: host memory or a GPU buffer. */
export type Buf = F32 | GpuArray;
/** A frozen weight's 16-bit storage on whichever device. */
export type HalfBuf = HalfArray | GpuArray;
/** The active kernels, typed over every device's storage (tensors always hold the active device's). */
export type AnyKernels = Kernels<Buf, HalfBuf>;

interface Registry {
  kernels: AnyKernels;
  native: Kernels | null | undefined; // undefined: not tried yet
  nativeError: string | null;
  webgpu: WebgpuKernels | null | undefined;
  webgpuError: string | null;
  gradEnabled: boolean;
  checkFinite: boolean;
  /**
   * Why SEARCH_R3_BACKEND's choice could not be taken when this module loaded (a name of no backend, or a
   * backend this machine lacks): thrown when kernels are asked for, until a backend is set explicitly
   * (--device), and never at load, where it would be a stack trace even for --help.
   */
  startError: Error | null;
  /**
   * The backend SEARCH_R3_BACKEND names, taken when kernels are first asked for rather than at load: a
   * command whose --device chooses first (useDevice) never starts it, so `--device cpu` starts no GPU thread.
   */
  pending: BackendName | null;
}

const registry: Registry = {
  kernels: jsKernels as AnyKernels,
  native: undefined,
  nativeError: null,
  webgpu: undefined,
  webgpuError: null,
  gradEnabled: true,
  checkFinite: process.env.SEARCH_R3_CHECK_FINITE !== '0',
  startError: null,
  pending: null,
};

/** The native kernels, or null (with the reason in nativeBackendError()) when the addon is unavailable. */
export function nativeKernels(): Kernels | null {
  if (registry.native === undefined) {
    try {
      registry.native = loadNativeKernels();
    } catch (e) {
      registry.native = null;
      registry.nativeError = e instanceof Error ? e.message : String(e);
    }
  }
  return registry.native;
}

/** The fastest kernels for host arrays (native, else TS), whatever device the tensors are on. */
export function hostKernels(): Kernels {
  return nativeKernels() ?? jsKernels;
}

export function nativeBackendError(): string | null {
  nativeKernels();
  return registry.nativeError;
}

/**
 * The WebGPU kernels on the first adapter found (the GPU thread starts on the first call), or null with
 * the reason in webgpuBackendError().
 */
export function webgpuKernels(): WebgpuKernels | null {
  if (registry.webgpu === undefined) {
    try {
      registry.webgpu = createWebgpuKernels(GpuDevice.open());
    } catch (e) {
      registry.webgpu = null;
      registry.webgpuError = e instanceof Error ? e.message : String(e);
    }
  }
  return registry.webgpu;
}

/**
 * Throws the GpuError that --device webgpu would meet here (no adapter), without keeping the device: for a
 * process that only starts others that compute (the recipe), so that it fails before hours of CPU steps.
 */
export function checkWebgpuAvailable(): void {
  const had = registry.webgpu !== undefined;
  const g = webgpuKernels();
  if (!g) throw new GpuError(registry.webgpuError ?? 'WebGPU is unavailable');
  if (!had) releaseWebgpu();
}

/** Closes the WebGPU device this process opened and forgets it (a later webgpuKernels() opens a new one). */
function releaseWebgpu(): void {
  registry.webgpu?.gpu.close();
  registry.webgpu = undefined;
}

/** Ends the GPU thread, if this process started one: a process that stops because its device failed. */
export async function shutdownGpu(): Promise<void> {
  await registry.webgpu?.gpu.shutdown();
}

/** Whether this process (or worker thread) has a GPU thread, which must end before the thread that owns it. */
export function hasGpuThread(): boolean {
  return Boolean(registry.webgpu);
}

export function webgpuBackendError(): string | null {
  webgpuKernels();
  return registry.webgpuError;
}

/**
 * Selects the kernels every op runs on. Throws when the backend asked for is unavailable. Tensors made
 * before a switch stay on their device; using them after it is an error that names both devices.
 */
export function setBackend(name: BackendName): void {
  registry.pending = null;
  takeBackend(name);
  registry.startError = null;
}

/** The active kernels, SEARCH_R3_BACKEND's choice taken first if nothing has chosen since the process began. */
function activeKernels(): AnyKernels {
  const want = registry.pending;
  if (want !== null) {
    registry.pending = null;
    try {
      takeBackend(want);
    } catch (e) {
      registry.startError =
        want === 'webgpu' && e instanceof GpuError
          ? new GpuError(`SEARCH_R3_BACKEND=webgpu: ${e.message}; unset SEARCH_R3_BACKEND to compute on the CPU.`)
          : e instanceof Error
            ? e
            : new Error(String(e));
    }
  }
  return registry.kernels;
}

function takeBackend(name: BackendName): void {
  if (name === 'js') {
    registry.kernels = jsKernels as AnyKernels;
    registry.checkFinite = switchSetting('SEARCH_R3_CHECK_FINITE') ?? true;
    return;
  }
  if (name === 'webgpu') {
    const g = webgpuKernels();
    if (!g) throw new GpuError(registry.webgpuError ?? 'WebGPU is unavailable');
    registry.kernels = g as unknown as AnyKernels;
    // A per-op finite check would read every op's output back and serialise the GPU; training loops
    // still check their loss. SEARCH_R3_CHECK_FINITE=1 turns the per-op check on regardless.
    registry.checkFinite = switchSetting('SEARCH_R3_CHECK_FINITE') ?? false;
    return;
  }
  const k = nativeKernels();
  if (!k) throw new BackendUnavailableError(`the native backend is unavailable: ${registry.nativeError}`);
  registry.kernels = k as AnyKernels;
  registry.checkFinite = switchSetting('SEARCH_R3_CHECK_FINITE') ?? true;
}

/** What useDevice chose, for the command to print. */
export interface DeviceReport {
  backend: BackendName;
  /** One line: the device and why it was taken. */
  description: string;
  /** --device auto asked Dawn and declined what it found (Dawn may have printed warnings about it). */
  declined?: boolean;
}

/**
 * --device: 'cpu' takes the native backend (or the TS one without the addon); 'webgpu' takes the first
 * WebGPU adapter, even a software one, and fails in one sentence without any; 'auto' takes a hardware
 * adapter when there is one and the CPU otherwise.
 */
export function useDevice(choice: DeviceChoice): DeviceReport {
  if (!DEVICE_CHOICES.includes(choice))
    throw new BackendChoiceError(`device must be 'auto', 'cpu' or 'webgpu', not '${choice}'.`);
  const cpu = (why: string): DeviceReport => {
    setBackend(nativeKernels() ? 'native' : 'js');
    return { backend: backendName(), description: `cpu (${backendName()} kernels)${why}` };
  };
  if (choice === 'cpu') return cpu('');
  if (choice === 'webgpu') {
    setBackend('webgpu');
    return { backend: 'webgpu', description: `webgpu (${registry.webgpu!.gpu.facts.description})` };
  }
  const noGpu = noGpuDeviceNode();
  if (noGpu) return cpu(`: ${noGpu}`);
  const g = webgpuKernels();
  if (g && !g.gpu.facts.software) {
    setBackend('webgpu');
    return { backend: 'webgpu', description: `webgpu (${g.gpu.facts.description}), found by --device auto` };
  }
  if (!g) return { ...cpu(`: no WebGPU adapter (${registry.webgpuError})`), declined: true };
  // the software adapter is let go: its GPU thread would idle for the rest of the run
  const description = g.gpu.facts.description;
  releaseWebgpu();
  return { ...cpu(`: the only WebGPU adapter, ${description}, runs on the CPU itself`), declined: true };
}

/**
 * On Linux, a reason to skip WebGPU for --device auto without starting Dawn (which costs a GPU thread
 * and prints its limit warnings): no GPU device node at all, so the only adapter could be a software
 * one. Null when a GPU may be there (or the platform is not Linux), so Dawn must be asked.
 */
function noGpuDeviceNode(): string | null {
  if (process.platform !== 'linux') return null;
  const nodes = (dir: string, pattern: RegExp): boolean =>
    existsSync(dir) && readdirSync(dir).some((f) => pattern.test(f));
  if (nodes('/dev/dri', /^renderD\d+$/) || nodes('/dev', /^nvidia\d+$/)) return null;
  return 'this machine has no GPU device (/dev/dri/renderD*, /dev/nvidia*)';
}

/**
 * SEARCH_R3_BACKEND names no backend. Thrown when the kernels are asked for, or a command starts
 * (checkBackendChoice), never when this module loads: an import that throws is a stack trace, even for --help.
 */
export class BackendChoiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendChoiceError';
  }
}

/** The backend asked for cannot run here (the native addon did not load). */
export class BackendUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}

function initialBackend(): void {
  const want = process.env.SEARCH_R3_BACKEND;
  if (want === 'js' || want === 'native' || want === 'webgpu') {
    registry.pending = want;
    return;
  }
  if (want !== undefined && want !== '') {
    const names = `'js', 'native' or 'webgpu'`;
    registry.startError = new BackendChoiceError(
      `SEARCH_R3_BACKEND must be ${names}, not '${want}'; set it to one of them, or unset it.`,
    );
    return;
  }
  const k = nativeKernels();
  if (k) registry.kernels = k as AnyKernels;
}
initialBackend();

/**
 * Throws when SEARCH_R3_BACKEND names no backend; a command calls it when it starts. A backend named but
 * missing here is said when kernels are first asked for, so that --device cpu can still take the CPU.
 */
export function checkBackendChoice(): void {
  if (registry.startError instanceof BackendChoiceError) throw registry.startError;
}

export function kernels(): AnyKernels {
  const k = activeKernels();
  if (registry.startError) throw registry.startError;
  return k;
}

/**
 * Gives the buffers of unreachable GPU tensors back to the pool: collects garbage when GPU memory has
 * grown, then yields to the event loop so the finalizers run. Loops that hold the thread for a long time
 * (a training run's steps) await it between iterations; on the CPU it returns at once.
 */
export async function releaseUnusedMemory(): Promise<void> {
  const k = activeKernels();
  if (k.device === 'cpu') return;
  (k as unknown as WebgpuKernels).gpu.collectIfGrown(1.1, 2 ** 20);
  await new Promise((resolve) => setImmediate(resolve));
}

/** What releaseGpuMemory gave back, in bytes of GPU buffers (see GpuStats). */
export interface GpuMemoryRelease {
  /** Bytes the GPU thread kept in buffers before the release, and after it. */
  reservedBefore: number;
  reservedAfter: number;
  /** Bytes that live tensors hold: what no release can give back. */
  heldBytes: number;
}

/**
 * Gives the GPU memory that no tensor holds back to the driver, for a program that lives on after a large
 * piece of work (a server idle for a while, an app that indexed and goes on), which other programs on the same
 * GPU may then have: collects garbage and yields, so that dead tensors return their buffers to the pool (as
 * releaseUnusedMemory), then destroys the pool's free buffers. Later work creates its buffers anew, so a
 * loop awaits releaseUnusedMemory between its steps, not this. Null where this process has no GPU device.
 */
export async function releaseGpuMemory(): Promise<GpuMemoryRelease | null> {
  const gpu = registry.webgpu?.gpu;
  if (!gpu) return null;
  gpu.collect();
  await new Promise((resolve) => setImmediate(resolve));
  if (gpu.isClosed) return null;
  const before = gpu.stats();
  gpu.trim();
  const after = gpu.stats();
  return { reservedBefore: before.reservedBytes, reservedAfter: after.reservedBytes, heldBytes: after.heldBytes };
}

const constants = new WeakMap<AnyKernels, WeakMap<Float32Array, Buf>>();

/**
 * A host array that never changes (rope's cos/sin tables) on the active device, uploaded once per
 * device and kept for as long as the host array lives.
 */
export function deviceConstant(x: Float32Array): Buf {
  const k = activeKernels();
  if (k.device === 'cpu') return x;
  let perDevice = constants.get(k);
  if (!perDevice) constants.set(k, (perDevice = new WeakMap()));
  let d = perDevice.get(x);
  if (!d) perDevice.set(x, (d = k.fromHost(x)));
  return d;
}
export function backendName(): BackendName {
  return activeKernels().name;
}

export function isGradEnabled(): boolean {
  return registry.gradEnabled;
}

/** Runs f without recording operations for autodiff (inference, optimiser updates). */
export function noGrad<T>(f: () => T): T {
  const prev = registry.gradEnabled;
  registry.gradEnabled = false;
  try {
    return f();
  } finally {
    registry.gradEnabled = prev;
  }
}

/** Whether every op checks its output for NaN/Inf (on by default; SEARCH_R3_CHECK_FINITE=0 turns it off). */
export function isFiniteCheckEnabled(): boolean {
  return registry.checkFinite;
}
export function setFiniteCheck(on: boolean): void {
  registry.checkFinite = on;
}
