/**
 * What the main thread and the GPU thread say to each other.
 *
 * WebGPU answers reads asynchronously (mapAsync), but the tensor layer, autodiff and everything above
 * it are synchronous. So the device lives on a worker thread: the main thread queues commands and posts
 * them in batches; when it needs a value it posts a read carrying a SharedArrayBuffer and blocks on
 * Atomics.wait until the worker has copied the bytes in. Commands never wait, so the GPU runs ahead of
 * the main thread until a value is read.
 */

/** Buffers are named by integers the main thread hands out; the worker maps them to GPUBuffers. */
export type BufferId = number;

export type GpuCommand =
  /** zeroed: cleared before use; else a pooled buffer keeps its old contents (see GpuDevice.alloc). */
  | { op: 'alloc'; id: BufferId; bytes: number; zeroed: boolean }
  | { op: 'free'; id: BufferId }
  | { op: 'write'; id: BufferId; byteOffset: number; data: ArrayBuffer }
  /** One compute dispatch: kernel by name, storage buffers in binding order 1…n, params at binding 0. */
  | { op: 'run'; kernel: string; ids: BufferId[]; params: ArrayBuffer; groups: [number, number, number] }
  | { op: 'copy'; src: BufferId; srcByte: number; dst: BufferId; dstByte: number; bytes: number }
  | { op: 'read'; id: BufferId; byteOffset: number; bytes: number; reply: SharedArrayBuffer }
  /** Destroys the device as a driver reset would (fault-injection tests): later reads say it was lost. */
  | { op: 'lose' }
  /** Counters of the GPU thread (GpuStats as JSON), once everything before has been encoded. */
  | { op: 'stats'; reply: SharedArrayBuffer }
  /**
   * Destroys the pool's free buffers and the staging buffers of reads, once everything before has been
   * submitted, so that their memory goes back to the driver (GpuDevice.trim).
   */
  | { op: 'trim' }
  /**
   * on: true starts timing every later dispatch (answering once what came before is submitted); on: false
   * stops, and answers with the times (KernelTime[] as JSON) once everything before has run. `progress`
   * (with on): where the times so far are published (publish) each time more come back from the GPU.
   */
  | { op: 'profile'; on: boolean; reply: SharedArrayBuffer; progress?: SharedArrayBuffer }
  /** Finish everything, destroy the device, then answer: Dawn must be idle when the thread is torn down. */
  | { op: 'close'; reply: SharedArrayBuffer };

export interface GpuInit {
  /** Where the worker reports that it is ready (or why it is not). */
  reply: SharedArrayBuffer;
  /** Ask for an adapter that is not a software rasteriser only (auto) or take any (webgpu). */
  powerPreference: 'high-performance' | 'low-power';
  /** Flags for Dawn's instance (the webgpu package's create()): SEARCH_R3_DAWN_FLAGS, split at spaces. */
  dawnFlags: string[];
  /**
   * SEARCH_R3_GPU_POISON=1: every buffer handed out without a clear is filled with NaN first, so that a
   * kernel that leaves part of an output it should write whole shows up as NaN instead of as old values.
   */
  poison: boolean;
}

/** Reply layout: Int32 state, Int32 length of the text or data that follows the 8-byte header. */
export const REPLY_HEADER_BYTES = 8;
export const enum ReplyState {
  Waiting = 0,
  Done = 1,
  /** This command failed (a request the device cannot do); the device still works. */
  Failed = 2,
  /** The device itself failed (lost, a refused command): every later read fails the same way. */
  DeviceFailed = 3,
  /**
   * DeviceFailed because it ran out of memory; the text is JSON, `heldBytes` (by tensors) and `detail` (Dawn's
   * sentence), for the main thread to word (GpuSizeRefusal).
   */
  OutOfMemory = 4,
}

/** The adapter the worker found, as JSON in the ready reply. */
export interface AdapterFacts {
  description: string;
  vendor: string;
  architecture: string;
  /** True for a software adapter (lavapipe, SwiftShader): it runs, but on the CPU. */
  software: boolean;
  features: string[];
  /** WGSL language features the implementation accepts (navigator.gpu.wgslLanguageFeatures). */
  languageFeatures: string[];
  /** The smallest subgroup size the adapter may use (0 when it does not say). */
  subgroupMinSize: number;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxComputeWorkgroupsPerDimension: number;
  minUniformBufferOffsetAlignment: number;
  /** The Dawn flags the device was opened with (GpuInit.dawnFlags), so that a figure says how it was made. */
  dawnFlags: string[];
}

/** Room for an error sentence or the adapter facts in a reply. */
export const REPLY_TEXT_BYTES = 16384;

/** Reads a reply once its state is no longer Waiting. */
export function replyText(reply: SharedArrayBuffer): string {
  const head = new Int32Array(reply, 0, 2);
  return new TextDecoder().decode(new Uint8Array(reply, REPLY_HEADER_BYTES, head[1]).slice());
}

export function writeReplyText(reply: SharedArrayBuffer, state: ReplyState, text: string): void {
  const bytes = new TextEncoder().encode(text);
  const room = reply.byteLength - REPLY_HEADER_BYTES;
  const n = Math.min(bytes.length, room);
  new Uint8Array(reply, REPLY_HEADER_BYTES, n).set(bytes.subarray(0, n));
  settle(reply, state, n);
}

export function settle(reply: SharedArrayBuffer, state: ReplyState, length: number): void {
  const head = new Int32Array(reply, 0, 2);
  head[1] = length;
  Atomics.store(head, 0, state);
  Atomics.notify(head, 0);
}

/**
 * A text one thread rewrites while another may read it at any moment, without waiting for the writer: a
 * sequence number, odd while a write is under way, then the length and the bytes after the 8-byte header.
 * Does nothing with a text larger than the buffer: the last one that fitted stays.
 */
export function publish(shared: SharedArrayBuffer, text: string): void {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > shared.byteLength - REPLY_HEADER_BYTES) return;
  const head = new Int32Array(shared, 0, 2);
  Atomics.add(head, 0, 1);
  new Uint8Array(shared, REPLY_HEADER_BYTES, bytes.length).set(bytes);
  Atomics.store(head, 1, bytes.length);
  Atomics.add(head, 0, 1);
}

/** The text last published, or null when none was (or a write never ended within `ms`: its thread died). */
export function readPublished(shared: SharedArrayBuffer, ms = 50): string | null {
  const head = new Int32Array(shared, 0, 2);
  const until = performance.now() + ms;
  do {
    const seq = Atomics.load(head, 0);
    if (seq % 2 === 1) continue;
    const bytes = new Uint8Array(shared, REPLY_HEADER_BYTES, Atomics.load(head, 1)).slice();
    if (Atomics.load(head, 0) === seq) return seq === 0 ? null : new TextDecoder().decode(bytes);
  } while (performance.now() < until);
  return null;
}

/** What the GPU thread has done so far: a warmed-up training step should create no buffers. */
export interface GpuStats {
  created: number;
  submits: number;
  /** Kernels run (compute dispatches). */
  dispatches: number;
  /** Seconds the GPU thread spent encoding commands (the host's share of a dispatch's cost). */
  encodeSeconds: number;
  /** Bytes uploaded from the host. */
  staged: number;
  /** Bytes tensors hold (each buffer's bytes as asked for, not its size class). */
  heldBytes: number;
  /**
   * Bytes of every buffer the GPU thread keeps: the tensors' (by size class), the pool's free ones, the
   * staging buffers of reads and the parameter ring. What a trim gives back is the pool's and the staging.
   */
  reservedBytes: number;
  /** Bytes of the pool's free buffers and the staging buffers of reads: what a trim would give back now. */
  pooledBytes: number;
  /** Buffers destroyed by trims. */
  destroyed: number;
}
