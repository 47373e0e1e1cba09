/**
 * The main thread's side of the GPU: hands out buffer ids, queues commands, posts them in batches to the
 * GPU thread (gpu-worker.ts) and blocks on Atomics.wait when a value must come back. Everything here is
 * synchronous, so the tensor layer above needs no async path.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { constants as osConstants } from 'node:os';
import {
  type AdapterFacts,
  type BufferId,
  type GpuCommand,
  type GpuInit,
  type GpuStats,
  REPLY_HEADER_BYTES,
  REPLY_TEXT_BYTES,
  ReplyState,
  readPublished,
  replyText,
} from './gpu-protocol.js';
import { dawnFlagsSetting, gpuTimeoutSetting, switchSetting } from '../../io/env-settings.js';
import { workerExecArgv } from '../../io/worker-exec-argv.js';
import { captureStderr, deliverSignal, exitNow, watchSignals } from '../native-kernels.js';
import { sortDawnStderr } from './dawn-text.js';
import { type KernelTime, kernelProfileTable } from './kernel-profile.js';

/** The element types a GPU buffer holds; 16-bit types pack two elements per 32-bit word. */
export type GpuDtype = 'f32' | 'f16' | 'bf16';

/** A failure of the GPU itself (no adapter, out of memory, device lost): one sentence, no stack. */
export class GpuError extends Error {
  /**
   * `deviceFailed`: the device itself failed (lost, out of memory, a refused command, no answer), so it
   * computes nothing more and only a device opened anew (a new process or worker thread) will; false for
   * a request this device cannot do (a tensor larger than it binds), after which it still works.
   * `sizeRefusal`: the work was too large for the GPU, which a command may say again naming its own
   * settings (gpuSizeSentence).
   */
  constructor(
    message: string,
    readonly deviceFailed = false,
    readonly sizeRefusal: GpuSizeRefusal | null = null,
  ) {
    super(message);
    this.name = 'GpuError';
  }
}

/** What a GPU refused for its size: a tensor larger than it binds, or memory it ran out of. */
export type GpuSizeRefusal =
  | { kind: 'binding'; bytes: number; limit: number; adapter: string }
  | { kind: 'memory'; heldBytes: number; adapter: string; detail: string };

/** What shrinks the work, where no command names its own settings. */
const SMALLER_WORK = 'a smaller batch or sequence length';

/**
 * The sentence of a size refusal, `smaller` naming what shrinks the work ("a smaller --batch-tokens"):
 * the tensor layer knows only that a batch or a sequence was too large, the command that set it knows how.
 */
export function gpuSizeSentence(r: GpuSizeRefusal, smaller = SMALLER_WORK): string {
  if (r.kind === 'memory') {
    return (
      `the GPU (${r.adapter}) ran out of memory with ${r.heldBytes} bytes held by tensors (${r.detail}): ` +
      `use ${smaller}, 16-bit weights, or --device cpu`
    );
  }
  return (
    `a tensor of ${r.bytes} bytes is larger than the largest buffer this GPU (${r.adapter}) binds ` +
    `(${r.limit} bytes): for activations, use ${smaller}; a weight this large (a big vocabulary's embedding) ` +
    'does not fit this GPU at all: use --device cpu or a GPU that binds more'
  );
}

/** A GpuError for a size refusal, worded for no command in particular. */
function sizeError(r: GpuSizeRefusal): GpuError {
  return new GpuError(gpuSizeSentence(r), r.kind === 'memory', r);
}

/**
 * Whether `e` is a GpuError whose device failed (see GpuError.deviceFailed). By name, so that an error
 * rebuilt on another thread with the flag counts as well.
 */
export function isGpuDeviceFailure(e: unknown): boolean {
  return e instanceof Error && e.name === 'GpuError' && (e as { deviceFailed?: unknown }).deviceFailed === true;
}

/** After this long, closing says that it waits for queued GPU work. */
const CLOSE_NOTICE_MS = 3_000;
/** How long a process that a signal stops waits for the GPU before it ends without it (exitHook). */
const SIGNAL_EXIT_GRACE_MS = 500;
/** Growth of GPU memory, beyond a multiple of what was held, that makes collectIfGrown collect. */
const COLLECT_SLACK = 64 * 2 ** 20;

let gcFunction: (() => void) | null = null;
/** A full garbage collection (node's gc, exposed for this process on first use). */
function forceGc(): void {
  if (!gcFunction) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
}

type Freed = { id: BufferId; bytes: number };
/** A FinalizationRegistry, with V8's cleanupSome where this node has it (see trackFreed). */
type Registry = FinalizationRegistry<Freed> & { cleanupSome?: () => void };

/**
 * The registry that frees a buffer when its GpuArray is collected. Finalizers normally run at a later
 * turn of the event loop, which a long synchronous loop (embedding a whole corpus) never reaches; V8's
 * cleanupSome runs them at once after a forced collection. It is a staging feature, present on
 * registries made in a context created after its flag is set; without it, freeing waits for the loop.
 */
function trackFreed(release: (b: Freed) => void): Registry {
  // V8 prints an error for a flag it does not know, so only the node versions whose V8 has it try it.
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 20 || major > 22) return new FinalizationRegistry<Freed>(release);
  try {
    setFlagsFromString('--harmony-weak-refs-with-cleanup-some');
    return runInNewContext('new FinalizationRegistry(release)', { release }) as Registry;
  } catch {
    return new FinalizationRegistry<Freed>(release);
  }
}

/** Room for a kernel profile's JSON: a few hundred kernels of a long name. */
const PROFILE_REPLY_BYTES = 1 << 20;

/** Commands queued before they are posted even without a read (keeps the GPU busy on long graphs). */
const BATCH = 256;

export class GpuDevice {
  readonly facts: AdapterFacts;
  private readonly worker: Worker;
  private pending: GpuCommand[] = [];
  private nextId = 1;
  private held = 0;
  /** Bytes held at the last forced collection (see collectIfGrown). */
  private collectedAt = 0;
  private peak = 0;
  private readonly registry = trackFreed((b) => this.release(b));
  private closed = false;
  /** Runs once, first thing when the device closes (the process profile's table). */
  private onClose: (() => void) | null = null;
  /** The reply of the close command, once posted. */
  private closeReply: SharedArrayBuffer | null = null;
  /** The stop signal delivered while this device waited for the GPU, if one was (see exitHook). */
  private signalled: NodeJS.Signals | null = null;
  /** Prints the process profile's table of what the GPU finished so far, without waiting for it. */
  private onSignalStop: ((signal: NodeJS.Signals) => void) | null = null;
  private readonly exitListener = (code: number): void => this.exitHook(code);
  /** What a read does with stop signals that arrived while it waited: the command's listeners get them. */
  private readonly deliver = (caught: NodeJS.Signals[]): void => {
    this.signalled ??= caught[0];
    // last, so that every other exit listener (a lock's removal) has run when exitHook ends the process
    process.off('exit', this.exitListener);
    process.on('exit', this.exitListener);
    for (const s of caught) deliverSignal(s);
  };

  private constructor(
    worker: Worker,
    facts: AdapterFacts,
    /** How long a read may wait for the GPU thread before it is declared stuck (SEARCH_R3_GPU_TIMEOUT_MS). */
    private readonly timeoutMs: number,
  ) {
    this.worker = worker;
    this.facts = facts;
  }

  /**
   * Starts the GPU thread and waits (synchronously) for its adapter; throws GpuError when there is none.
   * SEARCH_R3_DAWN_FLAGS passes flags to Dawn, separated by spaces: `adapter=<name>` picks one of several
   * GPUs, `enable-dawn-features=<toggles>` sets Dawn toggles (docs/gpu.md).
   */
  static open(powerPreference: GpuInit['powerPreference'] = 'high-performance'): GpuDevice {
    const timeoutMs = gpuTimeoutSetting(); // read once, and a bad value refused before a GPU thread starts
    const reply = new SharedArrayBuffer(REPLY_HEADER_BYTES + REPLY_TEXT_BYTES);
    const dawnFlags = dawnFlagsSetting();
    const init: GpuInit = { reply, powerPreference, dawnFlags, poison: process.env.SEARCH_R3_GPU_POISON === '1' };
    // Dawn writes warnings to stderr from native code while it looks for an adapter (see dawn-text.ts): they
    // are caught while this thread waits in Atomics.wait, so that nothing of its own lands among them
    let release = captureStderr();
    let worker: Worker;
    let state: ReplyState;
    let said = '';
    // An adapter can take minutes to come up on some drivers, while this thread blocks: a stop signal goes to
    // the command's listeners at once, as in a read. One that exits must not wait for the GPU thread either:
    // Node's teardown would wait for the adapter, or abort inside Dawn.
    const endOpen = (code: number): void => endAfterExitListeners(endOpen, code, code);
    const onSignals = (caught: NodeJS.Signals[]): void => {
      // what the listeners write must reach stderr, after what a successful start would have passed on
      const kept = sortDawnStderr(release?.() ?? '').kept;
      if (kept.length > 0) process.stderr.write(`${kept.join('\n')}\n`);
      process.off('exit', endOpen);
      process.on('exit', endOpen); // last, so that every other exit listener (a lock's removal) has run
      for (const s of caught) deliverSignal(s);
      release = captureStderr();
    };
    try {
      worker = new Worker(new URL('./gpu-worker.js', import.meta.url), {
        workerData: init,
        execArgv: workerExecArgv(process.execArgv),
      });
      state = wait(reply, 120_000, onSignals);
    } finally {
      said = release?.() ?? '';
      process.off('exit', endOpen);
    }
    const dawn = sortDawnStderr(said);
    if (state !== ReplyState.Done) {
      void worker.terminate();
      // why there is no adapter goes into the sentence; what other code wrote meanwhile is passed on
      if (dawn.others.length > 0) process.stderr.write(`${dawn.others.join('\n')}\n`);
      const failed = state === ReplyState.Failed ? replyText(reply) : 'the GPU thread did not start within 2 minutes';
      const why = dawn.logged.length === 0 ? failed : `${failed}; Dawn said: ${dawn.logged.join('; ')}`;
      throw new GpuError(`WebGPU is unavailable: ${why}`);
    }
    if (dawn.kept.length > 0) process.stderr.write(`${dawn.kept.join('\n')}\n`);
    worker.unref();
    const device = new GpuDevice(worker, JSON.parse(replyText(reply)) as AdapterFacts, timeoutMs);
    // Node tearing the thread down while Dawn still works crashes the process: when the event loop has
    // drained, close the device and wait for the thread to end; on process.exit(), close at least.
    process.once('beforeExit', () => void device.shutdown());
    process.on('exit', device.exitListener);
    if (switchSetting('SEARCH_R3_GPU_PROFILE') === true) device.profileProcess();
    return device;
  }

  /** Bytes held by live GPU buffers, and the most ever held at once. */
  get heldBytes(): number {
    return this.held;
  }
  get peakBytes(): number {
    return this.peak;
  }
  /**
   * Whether a collection forced in the middle of synchronous work frees the buffers of what it collected at
   * once (V8's cleanupSome: Node 20–22). Elsewhere they are freed at the next turn of the event loop, so a loop
   * that records graphs and never awaits holds every iteration's buffers until it does.
   */
  get collectsSynchronously(): boolean {
    return this.registry.cleanupSome !== undefined;
  }
  /** Whether close() (or an exit) has closed this device: it computes nothing more and holds nothing. */
  get isClosed(): boolean {
    return this.closed;
  }
  /** Starts the peak again from what is held now, so that one phase of work can be measured alone. */
  resetPeak(): void {
    this.peak = this.held;
  }

  /**
   * A buffer of `bytes`, owned by `owner`: freed when owner is garbage-collected (or by free()). Zeroed, or
   * (zeroed false) holding whatever a pooled buffer held: a clear costs the GPU a transfer between compute
   * passes, which an output that a kernel writes whole does not need.
   */
  alloc(bytes: number, owner: object, zeroed = true): BufferId {
    this.checkOpen();
    const limit = Math.min(this.facts.maxBufferSize, this.facts.maxStorageBufferBindingSize);
    if (bytes > limit) throw sizeError({ kind: 'binding', bytes, limit, adapter: this.facts.description });
    const id = this.nextId++;
    this.held += bytes;
    this.peak = Math.max(this.peak, this.held);
    // mid-step only when memory has doubled: what a step builds is mostly still in use
    this.collectIfGrown(2, COLLECT_SLACK);
    this.registry.register(owner, { id, bytes }, owner);
    this.enqueue({ op: 'alloc', id, bytes, zeroed });
    return id;
  }

  /**
   * V8 sees a GPU tensor as a small object and collects garbage by JavaScript heap pressure, so it may
   * never run while GPU memory fills. When the bytes held exceed `factor` times those at the last
   * collection plus `slack`, collect now, and free the buffers of what was collected (at once where V8
   * offers cleanupSome, else at the next turn of the event loop: see releaseUnusedMemory in backend.ts).
   */
  collectIfGrown(factor: number, slack: number): void {
    if (this.held > this.collectedAt * factor + slack) this.collect();
  }

  /**
   * Collects garbage now, and frees the buffers of what was collected (at once where V8 offers cleanupSome,
   * else at the next turn of the event loop).
   */
  collect(): void {
    forceGc();
    this.registry.cleanupSome?.();
    this.collectedAt = this.held;
  }

  /**
   * Gives the memory of every buffer no tensor holds back to the driver: the GPU thread destroys the pool's
   * free buffers once what is queued before has been submitted (see gpu-worker.ts). The buffers that later
   * work needs are created anew, so this is for the end of a large piece of work, never between steps. A
   * closed device holds nothing, and this does nothing there.
   */
  trim(): void {
    if (this.closed) return;
    this.enqueue({ op: 'trim' });
    this.flush();
  }

  /** Frees a buffer now instead of at garbage collection. */
  free(id: BufferId, bytes: number, owner: object): void {
    if (this.registry.unregister(owner)) this.release({ id, bytes });
  }

  private release(b: { id: BufferId; bytes: number }): void {
    if (this.closed) return;
    this.held -= b.bytes;
    this.collectedAt = Math.min(this.collectedAt, this.held);
    this.pending.push({ op: 'free', id: b.id });
  }

  write(id: BufferId, byteOffset: number, data: ArrayBufferView): void {
    const copy = new Uint8Array(data.byteLength);
    copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.enqueue({ op: 'write', id, byteOffset, data: copy.buffer });
  }

  run(kernel: string, ids: BufferId[], params: ArrayBuffer, groups: [number, number, number]): void {
    // A host array handed to a GPU kernel would surface much later as a missing buffer: say it here.
    if (ids.some((id) => typeof id !== 'number')) throw new GpuError(`kernel ${kernel} was given a non-GPU array`);
    this.enqueue({ op: 'run', kernel, ids, params, groups });
  }

  copy(src: BufferId, srcByte: number, dst: BufferId, dstByte: number, bytes: number): void {
    this.enqueue({ op: 'copy', src, srcByte, dst, dstByte, bytes });
  }

  /** Blocks until every queued command has run and `bytes` of buffer `id` are back on the host. */
  read(id: BufferId, byteOffset: number, bytes: number): Uint8Array {
    this.checkOpen();
    const reply = new SharedArrayBuffer(REPLY_HEADER_BYTES + Math.max(bytes, REPLY_TEXT_BYTES));
    this.pending.push({ op: 'read', id, byteOffset, bytes, reply });
    this.flush();
    const state = wait(reply, this.timeoutMs, this.deliver);
    if (state !== ReplyState.Done) throw this.replyError(reply, state);
    return new Uint8Array(reply, REPLY_HEADER_BYTES, bytes);
  }

  /** Loses the device as a driver reset or a removed GPU would, so tests can check what users then see. */
  simulateLoss(): void {
    this.enqueue({ op: 'lose' });
    this.flush();
  }

  /** The GPU thread's counters (see GpuStats), after everything queued so far. */
  stats(): GpuStats {
    return JSON.parse(this.ask((reply) => ({ op: 'stats', reply }))) as GpuStats;
  }

  /**
   * Times every dispatch from now until stopProfile() (timestamp queries; kernel-profile.ts). Throws
   * GpuError on an adapter without them. `progress` (REPLY_HEADER_BYTES and room for the JSON) is where the
   * times so far are published as they come back (readPublished: KernelTime[] as JSON).
   */
  startProfile(progress?: SharedArrayBuffer): void {
    this.ask((reply) => ({ op: 'profile', on: true, reply, progress }));
  }

  /** Waits for everything queued, then returns the GPU time of each kernel since startProfile(). */
  stopProfile(): KernelTime[] {
    return JSON.parse(this.ask((reply) => ({ op: 'profile', on: false, reply }), PROFILE_REPLY_BYTES)) as KernelTime[];
  }

  /**
   * SEARCH_R3_GPU_PROFILE=1: the whole process is profiled, and the table is printed on stderr when the
   * device closes, against the wall-clock time since it opened (host-only work such as tokenizing counts
   * there too). A process that a signal stops in a read does not wait for the GPU's queue (exitHook): its
   * table holds the dispatches whose times had come back.
   */
  private profileProcess(): void {
    const progress = new SharedArrayBuffer(REPLY_HEADER_BYTES + PROFILE_REPLY_BYTES);
    try {
      this.startProfile(progress);
    } catch (e) {
      process.stderr.write(`search-r3: no GPU kernel profile: ${e instanceof Error ? e.message : String(e)}\n`);
      return;
    }
    const opened = performance.now();
    const say = (times: KernelTime[], of: string): void => {
      const wall = (performance.now() - opened) / 1000;
      process.stderr.write(
        `search-r3: GPU kernel profile (SEARCH_R3_GPU_PROFILE)${of}\n${kernelProfileTable(times, wall)}\n`,
      );
    };
    this.onClose = () => say(this.stopProfile(), '');
    this.onSignalStop = (signal) => {
      const text = readPublished(progress);
      say(
        text === null ? [] : (JSON.parse(text) as KernelTime[]),
        ` of the work done before ${signal} (what was still queued on the GPU is left out)`,
      );
    };
  }

  /** Posts a command that answers in text once everything queued before it has been done, and waits. */
  private ask(command: (reply: SharedArrayBuffer) => GpuCommand, bytes = REPLY_TEXT_BYTES): string {
    this.checkOpen();
    const reply = new SharedArrayBuffer(REPLY_HEADER_BYTES + bytes);
    this.pending.push(command(reply));
    this.flush();
    const state = wait(reply, this.timeoutMs, this.deliver);
    if (state === ReplyState.Done) return replyText(reply);
    throw this.replyError(reply, state);
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.worker.postMessage(
      batch,
      batch.flatMap((c) => (c.op === 'write' ? [c.data] : [])),
    );
  }

  /** Lets the GPU finish what is queued, destroys the device and stops the thread. */
  close(): void {
    void this.shutdown();
  }

  /**
   * On process exit: close(), except in a process that a signal stops while the GPU still computes. Node's
   * teardown of the GPU thread would then abort inside Dawn, and the queue can hold minutes of work on a
   * software adapter, so after a short grace the process ends at once, as a CPU run stopped by the signal
   * would (this listener runs last: the other exit listeners have run).
   */
  private exitHook(code: number): void {
    // the process is ending already, and Node would deliver a signal that arrives now only after the wait
    const endOnSignal = (caught: NodeJS.Signals[]): void => {
      process.stderr.write(`search-r3: ${caught[0]}: not waiting for the GPU to finish the work already queued\n`);
      this.endNow(code, 128 + osConstants.signals[caught[0]]);
    };
    if (!this.signalled) return void this.shutdown(endOnSignal);
    const onSignalStop = this.onSignalStop;
    this.onSignalStop = null;
    this.onClose = null;
    try {
      onSignalStop?.(this.signalled);
    } catch (e) {
      process.stderr.write(`search-r3: no GPU kernel profile: ${e instanceof Error ? e.message : String(e)}\n`);
    }
    if (wait(this.postClose(), SIGNAL_EXIT_GRACE_MS, endOnSignal) !== ReplyState.Waiting) {
      void this.worker.terminate();
      return;
    }
    process.stderr.write('search-r3: not waiting for the GPU to finish the work already queued\n');
    this.endNow(code, code);
  }

  /**
   * Ends the process with `exitCode` without Node's teardown of the GPU thread (which would abort inside
   * Dawn), once the exit listeners after this device's have run with `code`: Node calls them only after
   * exitHook returns, and among them are those a command adds after a signal (a lock's removal).
   */
  private endNow(code: number, exitCode: number): void {
    endAfterExitListeners(this.exitListener, code, exitCode);
  }

  /**
   * close(), resolving once the GPU thread has ended; `onSignals` takes the stop signals that arrive while it
   * waits for the GPU (the command's listeners, except while the process exits).
   */
  async shutdown(onSignals = this.deliver): Promise<void> {
    if (this.closed) return;
    const onClose = this.onClose;
    this.onClose = null;
    try {
      onClose?.();
    } catch (e) {
      process.stderr.write(`search-r3: no GPU kernel profile: ${e instanceof Error ? e.message : String(e)}\n`);
    }
    const reply = this.postClose();
    // Dawn aborts the process when its thread is torn down with work in flight, so the queue drains first,
    // for as long as a read may take: a software adapter can hold a minute of queued work when an error
    // ends the process in the middle of a step
    if (wait(reply, CLOSE_NOTICE_MS, onSignals) === ReplyState.Waiting) {
      process.stderr.write('search-r3: waiting for the GPU to finish the work already queued, then exiting\n');
      wait(reply, this.timeoutMs, onSignals);
    }
    await this.worker.terminate();
  }

  /** Posts close once, and returns the reply it answers in. */
  private postClose(): SharedArrayBuffer {
    if (this.closeReply) return this.closeReply;
    const reply = new SharedArrayBuffer(REPLY_HEADER_BYTES + REPLY_TEXT_BYTES);
    // nothing reads what was queued but not yet posted once the device closes: the GPU need not compute it
    this.pending = [{ op: 'close', reply }];
    this.flush();
    this.closed = true;
    this.closeReply = reply;
    return reply;
  }

  private enqueue(c: GpuCommand): void {
    this.checkOpen();
    this.pending.push(c);
    if (this.pending.length >= BATCH) this.flush();
  }

  private checkOpen(): void {
    if (this.closed) throw new GpuError('the GPU device was closed');
  }

  /** The GpuError of a reply that did not come back Done; a GPU that does not answer counts as failed. */
  private replyError(reply: SharedArrayBuffer, state: ReplyState): GpuError {
    if (state === ReplyState.Failed) return new GpuError(replyText(reply));
    if (state === ReplyState.DeviceFailed) return new GpuError(replyText(reply), true);
    if (state === ReplyState.OutOfMemory) {
      const { heldBytes, detail } = JSON.parse(replyText(reply)) as { heldBytes: number; detail: string };
      return sizeError({ kind: 'memory', heldBytes, detail, adapter: this.facts.description });
    }
    const ms = this.timeoutMs;
    return new GpuError(
      `the GPU did not answer within ${ms / 1000} s (SEARCH_R3_GPU_TIMEOUT_MS=${ms}: raise it where the GPU ` +
        'is only slow)',
      true,
    );
  }
}

/**
 * Runs the exit listeners registered after `mine` with `code`, then ends the process with `exitCode` at once
 * (see GpuDevice.endNow): called from `mine`, an exit listener, since Node calls the later ones only after it.
 */
function endAfterExitListeners(mine: (code: number) => void, code: number, exitCode: number): void {
  const listeners = process.listeners('exit') as ((code: number) => void)[];
  const at = listeners.indexOf(mine);
  // not among them (removed while the exit was emitted): those after it are not known, and running the whole
  // list again would run the earlier ones twice and this one into itself
  for (const listener of at < 0 ? [] : listeners.slice(at + 1)) {
    try {
      listener.call(process, code);
    } catch (e) {
      process.stderr.write(`search-r3: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
  exitNow(exitCode);
}

/** How often a wait that watches for stop signals looks whether one arrived (see wait). */
const SIGNAL_SLICE_MS = 50;

/**
 * Blocks until the GPU thread answers in `reply` or `timeoutMs` pass. A read can take many seconds on a slow
 * adapter (lavapipe computes on the CPU), and a blocked thread never runs Node's signal listeners: with
 * `onSignals`, a wait that blocks at all watches for SIGINT, SIGTERM and SIGHUP from its start (a signal
 * that reached Node's handler instead would wait for the whole read), in slices, and hands those that
 * arrive to `onSignals` at once (which may end the process), then waits on.
 */
function wait(
  reply: SharedArrayBuffer,
  timeoutMs: number,
  onSignals: ((caught: NodeJS.Signals[]) => void) | null,
): ReplyState {
  const head = new Int32Array(reply, 0, 1);
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    if (Atomics.load(head, 0) !== ReplyState.Waiting || left <= 0) break;
    const watch = onSignals ? watchSignals() : null;
    if (!watch) {
      Atomics.wait(head, 0, ReplyState.Waiting, left);
      break;
    }
    let caught: NodeJS.Signals[];
    try {
      // a slice never runs past the deadline: a short timeout must fail the read, not wait out a slice
      for (let now = performance.now(); !watch.caught() && deadline > now; now = performance.now())
        if (Atomics.wait(head, 0, ReplyState.Waiting, Math.min(SIGNAL_SLICE_MS, deadline - now)) !== 'timed-out') break;
    } finally {
      caught = watch.end();
    }
    if (caught.length > 0) onSignals?.(caught);
  }
  return Atomics.load(head, 0) as ReplyState;
}
