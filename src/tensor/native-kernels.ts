/**
 * Loads the N-API addon (build/Release/search_r3_native.node, built at install by node-gyp from
 * native/) and presents it as Kernels. The addon takes positional arguments (cheaper to unpack in C
 * than objects), so the object-taking kernels get thin wrappers here. Any kernel the addon lacks falls
 * back to the TS reference, so every kernel exists on both backends.
 *
 * Threads: one pool of our own (native/pool.c) runs every parallel loop, gemm included (OpenBLAS is kept
 * on one thread and gemm splits panels/batches across the pool). Work is claimed chunk by chunk, so the
 * calling thread never waits for a helper that another process kept off the CPU. SEARCH_R3_THREADS sets
 * the pool size (default: all cores the process may run on); setNativeThreads changes it at run time.
 * SEARCH_R3_SPIN sets how long (pause loops, default 4000 ≈ 0.1 ms) an idle helper polls before sleeping.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { biasIntoC, jsKernels } from './js-kernels.js';
import type { HalfArray } from './half-float.js';
import type { AttentionShape, F32, GemmArgs, GemmHalfArgs, Kernels } from './kernels.js';

/** The addon's exports: kernels with positional arguments, plus thread control. */
export interface NativeAddon {
  gemm(
    a: F32,
    b: F32,
    c: F32,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    accumulate: boolean,
  ): void;
  gemmHalf(
    a: F32,
    b: Uint16Array,
    bf16: boolean,
    c: F32,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    accumulate: boolean,
  ): void;
  widenHalf(src: Uint16Array, bf16: boolean, dst: F32): void;
  halfAllFinite(x: Uint16Array, bf16: boolean): boolean;
  embeddingForwardHalf(weight: Uint16Array, bf16: boolean, ids: Int32Array, out: F32, dim: number): void;
  attentionForward(
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    lse: F32,
    batch: number,
    queryHeads: number,
    kvHeads: number,
    queryLen: number,
    keyLen: number,
    headDim: number,
    scale: number,
    causal: boolean,
    keyMask: Uint8Array | null,
    keyStride: number,
  ): void;
  attentionBackward(
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    lse: F32,
    dout: F32,
    dq: F32,
    dk: F32,
    dv: F32,
    batch: number,
    queryHeads: number,
    kvHeads: number,
    queryLen: number,
    keyLen: number,
    headDim: number,
    scale: number,
    causal: boolean,
    keyMask: Uint8Array | null,
    keyStride: number,
  ): void;
  setNumThreads(n: number): void;
  numThreads(): number;
  blasConfig(): string;
  /** fd 2 into memory until releaseStderr (native/stderr-capture.c); false when it did not start. */
  captureStderr?(): boolean;
  releaseStderr?(): string;
  /** SIGINT/SIGTERM/SIGHUP only noted until unwatchSignals (native/signal-watch.c); false when one is on. */
  watchSignals?(): boolean;
  /** The signals noted so far, as bits 1 << signo. */
  caughtSignals?(): number;
  /** Puts the previous handlers back and returns the signals noted, as bits 1 << signo. */
  unwatchSignals?(): number;
  /** Ends the process at once (_exit): no exit listeners, no teardown of other threads. */
  exitNow?(code: number): void;
  [kernel: string]: unknown;
}

function findAddon(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'build', 'Release', 'search_r3_native.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  // npm 12 and later skip the install script that builds it until the project approves it: then there is no log
  throw new Error(
    'build/Release/search_r3_native.node not found; `npm rebuild search-r3` builds it (`npm install` in a checkout) ' +
      "given python3, make, a C compiler and libopenblas-dev: the package's native-build.log says what was missing " +
      '(none: npm 12 and later run the install script only once `npm install-scripts approve search-r3` allows it)',
  );
}

let loaded: NativeAddon | null = null;

/**
 * Loads the addon once. OpenBLAS reads its environment when it is loaded, so its thread setting goes
 * into process.env just for the load and is removed again afterwards: child processes (the PyTorch
 * peers in the benches) must not inherit it.
 */
export function loadAddon(): NativeAddon {
  if (loaded) return loaded;
  const defaults: Record<string, string> = {
    // OpenBLAS never threads (gemm parallelises over our pool itself): skip creating its idle threads.
    OPENBLAS_NUM_THREADS: '1',
  };
  const added = Object.keys(defaults).filter((key) => process.env[key] === undefined);
  for (const key of added) process.env[key] = defaults[key];
  try {
    const require = createRequire(import.meta.url);
    loaded = require(findAddon()) as NativeAddon;
  } finally {
    for (const key of added) delete process.env[key];
  }
  return loaded;
}

/**
 * Starts capturing what the process writes to stderr (fd 2, native code included) and returns the
 * function that ends it: it restores stderr and returns the text. Null where nothing is captured: no
 * addon (or one built before it could), not Linux, or a capture already active. Whoever captures must
 * release before its thread runs anything else that writes to stderr, or that output comes late.
 */
export function captureStderr(): (() => string) | null {
  let addon: NativeAddon;
  try {
    addon = loadAddon();
  } catch {
    return null;
  }
  const { captureStderr: capture, releaseStderr: release } = addon;
  if (typeof capture !== 'function' || typeof release !== 'function' || !capture()) return null;
  return () => release();
}

/** Watches a blocking wait for stop signals (see watchSignals). */
export interface SignalWatch {
  /** Whether a stop signal has arrived since the watch began. */
  caught(): boolean;
  /** Ends the watch (the handlers as they were) and returns the signals that arrived, in signal order. */
  end(): NodeJS.Signals[];
}

const STOP_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM'] as const;

/**
 * While the main thread blocks (Atomics.wait), Node cannot hand it a signal: its listeners run from the
 * event loop. Between watchSignals and end, SIGINT, SIGTERM and SIGHUP are only noted, so that the waiting
 * code can see them and deliver them itself (deliverSignal). Null without the addon (or one built before
 * it could), while another watch is on, and on a worker thread: signals reach only the main thread's
 * listeners, whose loop a blocked worker leaves free.
 */
export function watchSignals(): SignalWatch | null {
  if (!isMainThread) return null;
  let addon: NativeAddon;
  try {
    addon = loadAddon();
  } catch {
    return null;
  }
  const { watchSignals: watch, caughtSignals: caught, unwatchSignals: unwatch } = addon;
  if (typeof watch !== 'function' || typeof caught !== 'function' || typeof unwatch !== 'function' || !watch())
    return null;
  return {
    caught: () => caught() !== 0,
    end() {
      const bits = unwatch();
      return STOP_SIGNALS.filter((s) => (bits & (1 << osConstants.signals[s])) !== 0);
    },
  };
}

/**
 * Ends the process with `code` at once, without Node's teardown (see native/signal-watch.c); returns only
 * without the addon (or one built before it could).
 */
export function exitNow(code: number): void {
  let addon: NativeAddon;
  try {
    addon = loadAddon();
  } catch {
    return;
  }
  addon.exitNow?.(code);
}

/**
 * Delivers `signal` now, as Node would at its next turn of the event loop: to the process's listeners
 * where it has any, else to the handler it had before (Node's default ends the process).
 */
export function deliverSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 0) process.emit(signal, signal);
  else process.kill(process.pid, signal);
}

/** Threads the native kernels use (pool size, the calling thread included). */
export function setNativeThreads(n: number): void {
  loadAddon().setNumThreads(n);
}
export function nativeThreads(): number {
  return loadAddon().numThreads();
}

const KERNEL_NAMES: ReadonlyArray<keyof Kernels> = [
  'binary',
  'unary',
  'axpby',
  'reduce',
  'copy',
  'sumSquares',
  'allFinite',
  'rmsnormForward',
  'rmsnormBackward',
  'l2normalizeForward',
  'l2normalizeBackward',
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
  'embeddingBackward',
  'adamw',
];

export function loadNativeKernels(): Kernels {
  const addon = loadAddon();
  const direct: Partial<Kernels> = {};
  for (const name of KERNEL_NAMES) {
    if (typeof addon[name] === 'function') (direct as Record<string, unknown>)[name] = addon[name];
  }
  return {
    ...jsKernels,
    ...direct,
    name: 'native',
    sumSquaresMany: (xs: readonly F32[]) => {
      const one = direct.sumSquares ?? jsKernels.sumSquares;
      return xs.reduce((s, x) => s + one(x), 0);
    },
    // the addon has no bias: it goes into C first, and the product accumulates onto it
    gemm: (args: GemmArgs) => {
      const g = biasIntoC(args);
      addon.gemm(
        g.a,
        g.b,
        g.c,
        g.batch,
        g.m,
        g.n,
        g.k,
        g.transA,
        g.transB,
        g.strideA,
        g.strideB,
        g.strideC,
        g.accumulate,
      );
    },
    gemmHalf: (args: GemmHalfArgs) => {
      const g = biasIntoC(args);
      addon.gemmHalf(
        g.a,
        g.b.bits,
        g.b.dtype === 'bf16',
        g.c,
        g.batch,
        g.m,
        g.n,
        g.k,
        g.transA,
        g.transB,
        g.strideA,
        g.strideB,
        g.strideC,
        g.accumulate,
      );
    },
    widenHalf: (src: HalfArray, dst: F32) => addon.widenHalf(src.bits, src.dtype === 'bf16', dst),
    halfAllFinite: (x: HalfArray) => addon.halfAllFinite(x.bits, x.dtype === 'bf16'),
    embeddingForwardHalf: (w: HalfArray, ids: Int32Array, out: F32, dim: number) =>
      addon.embeddingForwardHalf(w.bits, w.dtype === 'bf16', ids, out, dim),
    attentionForward: (q, k, v, out, lse, s: AttentionShape) =>
      addon.attentionForward(
        q,
        k,
        v,
        out,
        lse,
        s.batch,
        s.queryHeads,
        s.kvHeads,
        s.queryLen,
        s.keyLen,
        s.headDim,
        s.scale,
        s.causal,
        s.keyMask,
        s.keyStride ?? s.keyLen,
      ),
    attentionBackward: (q, k, v, out, lse, dout, dq, dk, dv, s: AttentionShape) =>
      addon.attentionBackward(
        q,
        k,
        v,
        out,
        lse,
        dout,
        dq,
        dk,
        dv,
        s.batch,
        s.queryHeads,
        s.kvHeads,
        s.queryLen,
        s.keyLen,
        s.headDim,
        s.scale,
        s.causal,
        s.keyMask,
        s.keyStride ?? s.keyLen,
      ),
  };
}
