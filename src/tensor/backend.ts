/**
 * The backend registry: the one piece of global state in the tensor layer. It picks the kernels
 * (pure TS or native) and holds the autodiff switches (grad recording, finite checks).
 *
 * SEARCH_R3_BACKEND=js|native chooses; by default the native backend is used when its addon loaded.
 */
import { jsKernels } from './js-kernels.js';
import type { Kernels } from './kernels.js';
import { loadNativeKernels } from './native-kernels.js';

export type BackendName = 'js' | 'native';

interface Registry {
  kernels: Kernels;
  native: Kernels | null | undefined; // undefined: not tried yet
  nativeError: string | null;
  gradEnabled: boolean;
  checkFinite: boolean;
}

const registry: Registry = {
  kernels: jsKernels,
  native: undefined,
  nativeError: null,
  gradEnabled: true,
  checkFinite: process.env.SEARCH_R3_CHECK_FINITE !== '0',
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

export function nativeBackendError(): string | null {
  nativeKernels();
  return registry.nativeError;
}

/** Selects the kernels every op runs on. Throws when 'native' is asked for and unavailable. */
export function setBackend(name: BackendName): void {
  if (name === 'js') {
    registry.kernels = jsKernels;
    return;
  }
  const k = nativeKernels();
  if (!k) throw new Error(`the native backend is unavailable: ${registry.nativeError}`);
  registry.kernels = k;
}

function initialBackend(): void {
  const want = process.env.SEARCH_R3_BACKEND;
  if (want === 'js' || want === 'native') return setBackend(want);
  if (want !== undefined && want !== '') throw new Error(`SEARCH_R3_BACKEND must be 'js' or 'native', not '${want}'`);
  const k = nativeKernels();
  if (k) registry.kernels = k;
}
initialBackend();

export function kernels(): Kernels {
  return registry.kernels;
}
export function backendName(): BackendName {
  return registry.kernels.name;
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
