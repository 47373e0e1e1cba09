/**
 * WorkerBackend: the Search-R3 model in a worker thread (model-worker-entry.ts), as an EmbeddingBackend.
 * The weights are loaded in the worker only, and every tokenization, forward pass and generation runs
 * there, so the thread that owns it (the server's event loop) stays free for HTTP, /health and search.
 * The native kernels then only ever run on that one JS thread.
 *
 * If the worker dies (an uncaught exception, running out of memory) or its GPU device fails (lost, out of
 * GPU memory: the worker then ends itself), the requests it held fail with a ModelUnavailableError and a
 * new worker loads the model again, on a fresh device; until it is ready, requests fail the same way at
 * once and health() says why.
 *
 * A worker that dies again soon after it started (a GPU that runs out of memory on every batch, a model that
 * crashes its first one) would otherwise be restarted, its model loaded again, in a loop without end: from
 * the second such death in a row, the restart waits, twice as long each time up to LAST_RETRY_MS, as after a
 * restart that failed; the wait starts over once a worker has stayed up STAYED_UP_MS.
 *
 * A ready worker keeps the process alive only while a request waits on it (ref'd then, unref'd when idle), as
 * an http Agent's idle sockets do: a program that embeds and forgets close() still exits when its work is done,
 * and one that awaits an answer is not ended before it comes. A worker that is loading the model is ref'd,
 * so that Node never tears one down in the middle of opening its device.
 */
import path from 'node:path';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import type {
  DeviceChoice,
  EmbedderOptions,
  GpuMemoryRelease,
  PromptTemplates,
  QueryEmbedding,
  QueryOptions,
} from '../embed/index.js';
import { GpuError, checkQueryOptions, checkTexts } from '../embed/index.js';
import { isModelFolder } from '../model/model-folder.js';
import type { DocumentEmbeddings, EmbeddingBackend, LocalBackend } from '../search-index/embedding-backend.js';
import { type ModelFusion, readModelFusion } from '../search-index/model-fusion.js';
import {
  type BatchKind,
  type BatchingOptions,
  checkBatchingOptions,
  type ChatJob,
  type ChatResult,
  type EmbedJob,
  type DocumentsResult,
  type EmbedResult,
  type LlamaCppEngineChoice,
  type ModelInfo,
  type WorkerConfig,
  type WorkerData,
  type WorkerReply,
  type WorkerRequest,
  errorFromWire,
} from './worker-protocol.js';
import { settledWithin } from '../io/settled-within.js';
import { workerExecArgv } from '../io/worker-exec-argv.js';
import { type Refuse, checkOptionsObject, checkPathArgument } from '../io/option-checks.js';

const refuseRange: Refuse = (message) => new RangeError(message);

const ENTRY = new URL('./model-worker-entry.js', import.meta.url);
const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 30_000;
/** A worker that dies sooner than this after it started counts as failing on start. */
const STAYED_UP_MS = 60_000;
const WORKER_YOUNG_GENERATION_MB = 8;
/**
 * How long close() waits for a worker with native work (a GPU thread, llama.cpp) to end its step, close its
 * engine and end itself, before it terminates the worker (which aborts the process if that work still runs):
 * the default GPU watchdog's time (SEARCH_R3_GPU_TIMEOUT_MS), after which a GPU worker's own reads give up
 * (llama.cpp's steps, a text or a token, take far less).
 */
const CLOSE_WAIT_MS = 600_000;
/** How long an exiting process waits for such a worker before it says so. */
const EXIT_NOTICE_MS = 3000;

export interface WorkerBackendOptions extends EmbedderOptions, BatchingOptions {
  /** Run the model on llama.cpp (a GGUF exported from the folder) instead of search-r3's engine. */
  engine?: LlamaCppEngineChoice;
  /**
   * Where search-r3's engine computes in the worker (see useDevice); taken there before the model loads,
   * and reported in info.device. Default: the worker's environment (SEARCH_R3_BACKEND, else the CPU).
   */
  device?: DeviceChoice;
}

/**
 * The model cannot take requests now (its worker died and is restarting); the message says why. `cause`:
 * the worker's GpuError (deviceFailed) when its GPU device failed, for a caller that must not go on with
 * this device (a queue worker puts its job back for another machine).
 */
export class ModelUnavailableError extends Error {
  constructor(message: string, options?: { cause?: Error }) {
    super(message, options);
    this.name = 'ModelUnavailableError';
  }
}

export interface ModelHealth {
  state: 'ready' | 'restarting' | 'failed' | 'closed';
  /** Why the model is not ready (one sentence), or null. */
  reason: string | null;
  /** Times the worker died and was started again. */
  restarts: number;
}

export type BatchListener = (inputs: number, kind: BatchKind, seconds: number) => void;

/** Sees the GPU memory a worker on a GPU gave back after it was idle a while (SEARCH_R3_GPU_IDLE_RELEASE_MS). */
export type MemoryReleaseListener = (release: GpuMemoryRelease) => void;

/** Sees a streamed job's analysis of input `input` so far, after each generated token. */
export type ProgressListener = (input: number, reasoning: string) => void;

/** Sees a streamed chat completion's content, piece by piece, in order. */
export type ContentListener = (piece: string) => void;

/** What a request's caller watches while its answer is generated. */
interface Watchers {
  progress?: ProgressListener;
  content?: ContentListener;
}

interface Spawned {
  worker: Worker;
  info: ModelInfo;
  /** The worker runs native work (a GPU thread, llama.cpp) that Node must not tear down: it closes itself. */
  closesItself: boolean;
  /** Raised by the worker once that work is closed (WorkerData.closedFlag). */
  closedFlag: Int32Array;
}

/** Starts a worker and waits until it has loaded the model (or rejects with why it could not). */
function spawnWorker(config: WorkerConfig): Promise<Spawned> {
  // SHARE_ENV: what the addon sets in the environment while it loads (native-kernels.ts) must reach the
  // C libraries of this process, as it does when the main thread loads it
  // A small young generation: the model's big arrays live outside the V8 heap, so a large nursery only
  // holds the garbage of many batches longer (bench:load: RSS under load 1.49× idle with V8's default,
  // 1.39× with 8 MB, same throughput).
  const resourceLimits = { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB };
  const closedFlag = new SharedArrayBuffer(4);
  const worker = new Worker(ENTRY, {
    workerData: { ...config, closedFlag } satisfies WorkerData,
    env: SHARE_ENV,
    resourceLimits,
    execArgv: workerExecArgv(process.execArgv),
  });
  return new Promise((resolve, reject) => {
    const done = (): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const onMessage = (m: WorkerReply): void => {
      done();
      if (m.type === 'ready') {
        resolve({ worker, info: m.info, closesItself: m.closesItself, closedFlag: new Int32Array(closedFlag) });
        return;
      }
      void worker.terminate();
      const early = new Error(`the model worker sent '${m.type}' before it was ready`);
      reject(m.type === 'failed' ? errorFromWire(m.error) : early);
    };
    const onError = (e: Error): void => {
      done();
      void worker.terminate();
      reject(e);
    };
    const onExit = (code: number): void => {
      done();
      reject(new Error(`the model worker exited with code ${code} before it was ready`));
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

function exited(worker: Worker): Promise<void> {
  return new Promise((resolve) => worker.once('exit', () => resolve()));
}

/** Asks a worker to end what runs at its next step, close its engine and GPU, and end; resolves once it has. */
function askToClose(worker: Worker): Promise<void> {
  const ended = exited(worker);
  worker.postMessage({ type: 'close' } satisfies WorkerRequest);
  return ended;
}

/**
 * The process exits (process.exit, an uncaught error) while `worker` may still be at work: Node would tear it
 * down and abort the process inside Dawn or llama.cpp, so it is asked to close, and waited for here, where
 * nothing can be awaited, on the flag it raises once closed; a wait past EXIT_NOTICE_MS is said.
 */
function closeOnExit(worker: Worker, closedFlag: Int32Array): void {
  if (Atomics.load(closedFlag, 0) !== 0) return;
  worker.postMessage({ type: 'close' } satisfies WorkerRequest);
  if (Atomics.wait(closedFlag, 0, 0, EXIT_NOTICE_MS) !== 'timed-out') return;
  process.stderr.write('search-r3: waiting for the model worker to finish its forward pass, then exiting\n');
  Atomics.wait(closedFlag, 0, 0, CLOSE_WAIT_MS);
}

/**
 * Ends `worker`: waits for `ending` (a worker closing its GPU thread or llama.cpp itself, which Node must not
 * tear down mid-work, or the whole process aborts), and terminates it only when there is none or it hangs.
 */
async function endWorker(worker: Worker, ending: Promise<void> | null): Promise<void> {
  if (ending && (await settledWithin(ending, CLOSE_WAIT_MS))) return;
  await worker.terminate();
}

export class WorkerBackend implements EmbeddingBackend {
  private worker!: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; watchers: Watchers }
  >();
  private nextId = 1;
  private state: ModelHealth['state'] = 'ready';
  private reason: string | null = null;
  /** What made the worker stop, when callers should know it (its GPU device failed), until it is ready again. */
  private cause: Error | undefined;
  private restarts = 0;
  /** The wait before the next restart that waits; back to FIRST_RETRY_MS once a worker has stayed up. */
  private retryMs = FIRST_RETRY_MS;
  private retryTimer: NodeJS.Timeout | null = null;
  /** When the restart that waits starts (Date.now()), which the reason counts down to; null when none waits. */
  private retryAt: number | null = null;
  /** When the worker in use was ready (Date.now()). */
  private readyAt = Date.now();
  /** The workers in a row that died sooner than stayedUpMs after they were ready. */
  private quickDeaths = 0;
  /** STAYED_UP_MS; a field so that a test of the wait's reset need not keep a worker up a minute. */
  private stayedUpMs = STAYED_UP_MS;
  private readonly batchListeners = new Set<BatchListener>();
  private readonly releaseListeners = new Set<MemoryReleaseListener>();
  /** Whether the worker in use runs native work (a GPU thread, llama.cpp) that it must close itself. */
  private closesItself = false;
  /** The end of the worker in use once it is closing itself (its GPU device failed, or close()); else null. */
  private ending: Promise<void> | null = null;

  private constructor(
    private readonly config: WorkerConfig,
    readonly info: ModelInfo,
    /** The folder's stored hybrid fusion: a search setting, read here, since the worker only embeds. */
    readonly fusion: ModelFusion | undefined,
    spawned: Spawned,
  ) {
    this.attach(spawned);
  }

  /** Loads the model folder in a new worker thread. */
  static async start(modelDir: string, opts: WorkerBackendOptions = {}): Promise<WorkerBackend> {
    checkPathArgument(modelDir, 'the model folder', refuseRange);
    checkBatchingOptions(checkOptionsObject(opts, 'the WorkerBackend options', refuseRange), refuseRange);
    const { maxWaitMs, maxBatchInputs, engine, device, ...embedder } = opts;
    if (engine && device) throw new Error("device chooses where search-r3's engine runs; llama.cpp has its own gpu.");
    const config: WorkerConfig = {
      modelDir: path.resolve(modelDir),
      embedder,
      batching: { maxWaitMs, maxBatchInputs },
      ...(engine ? { engine } : {}),
      ...(device ? { device } : {}),
    };
    const fusion = readModelFusion(config.modelDir);
    const spawned = await spawnWorker(config);
    return new WorkerBackend(config, spawned.info, fusion, spawned);
  }

  /**
   * The model of a LocalBackend made by LocalBackend.fromModelDir, loaded again from its folder in a worker
   * (on `device` when given, else the worker's default: see WorkerBackendOptions.device).
   */
  static async fromLocalBackend(
    local: LocalBackend,
    options: BatchingOptions & { device?: DeviceChoice } = {},
  ): Promise<WorkerBackend> {
    if (!isModelFolder(local.source)) {
      throw new Error(
        'a worker loads the model from its folder, and this LocalBackend was not loaded from one; ' +
          'use WorkerBackend.start(modelDir).',
      );
    }
    const opts = {
      maxLength: local.maxLength,
      templates: local.templates,
      batchTokens: local.embedder.batchTokens,
      ...options,
    };
    const w = await WorkerBackend.start(local.source, opts);
    if (w.modelId !== local.modelId) {
      await w.close();
      throw new Error(
        `the folder ${local.source} no longer holds the LocalBackend's model (${local.modelId}); ` + 'load it again.',
      );
    }
    return w;
  }

  get modelId(): string {
    return this.info.modelId;
  }
  get dimension(): number {
    return this.info.dimension;
  }
  get templates(): PromptTemplates {
    return this.info.templates;
  }
  get maxLength(): number {
    return this.info.maxLength;
  }
  /** The model folder (absolute path), for an index manifest. */
  get source(): string {
    return this.config.modelDir;
  }

  health(): ModelHealth {
    return { state: this.state, reason: this.why(), restarts: this.restarts };
  }

  /** Called after every batch the worker runs; returns a function that stops the calls. */
  onBatch(listener: BatchListener): () => void {
    this.batchListeners.add(listener);
    return () => this.batchListeners.delete(listener);
  }

  /**
   * Called each time the worker, on a GPU and idle for a while, has given the GPU memory that no tensor holds
   * back to the driver (docs/serve.md); returns a function that stops the calls.
   */
  onMemoryReleased(listener: MemoryReleaseListener): () => void {
    this.releaseListeners.add(listener);
    return () => this.releaseListeners.delete(listener);
  }

  /** Changes how the worker batches (kept across restarts). */
  configureBatching(b: BatchingOptions): void {
    this.config.batching = { ...this.config.batching, ...b };
    if (this.state === 'ready') this.worker.postMessage({ type: 'configure', batching: b } satisfies WorkerRequest);
  }

  // the worker takes the job as given: a text that is no string was embedded as something else, and an option out
  // of range failed inside the forward pass, so both are refused here as Embedder refuses them
  async embedDocuments(texts: readonly string[]): Promise<Float32Array[]> {
    checkTexts(texts, 'document');
    const job: EmbedJob = { texts: [...texts], mode: 'document', reasoning: false, query: {}, param: 'input' };
    const { results } = await this.embed(job);
    return results.map((r) => r.vector);
  }

  async embedQueries(texts: readonly string[], opts: QueryOptions = {}): Promise<QueryEmbedding[]> {
    checkTexts(texts, 'query');
    checkQueryOptions(opts);
    const job: EmbedJob = {
      texts: [...texts],
      mode: 'query',
      reasoning: opts.reasoning === 'on',
      query: opts,
      param: 'input',
    };
    return (await this.embed(job)).results;
  }

  /** Documents as the engine encodes them in one call (see DocumentsResult): what an index stores. */
  async encodeDocuments(texts: readonly string[]): Promise<DocumentEmbeddings> {
    checkTexts(texts, 'document');
    const r = await this.call<DocumentsResult>((id) => ({ id, type: 'encodeDocuments', texts: [...texts] }));
    const d = this.dimension;
    const vectors = Array.from({ length: texts.length }, (_, i) => r.vectors.slice(i * d, (i + 1) * d));
    return { vectors, truncated: r.truncated };
  }

  /**
   * Embeds texts; with `job.limits`, over-long inputs are refused (HttpError 400) instead of cut. With
   * `onProgress`, queries that reason report their analysis as it is generated.
   */
  async embed(
    job: EmbedJob,
    onProgress?: ProgressListener,
    signal?: AbortSignal,
  ): Promise<{ results: QueryEmbedding[]; promptTokens: number }> {
    const streamed = onProgress ? { ...job, stream: true } : job;
    const make = (id: number): WorkerRequest => ({ id, type: 'embed', job: streamed });
    const r = await this.call<EmbedResult>(make, { progress: onProgress }, signal);
    return { results: this.unpack(r), promptTokens: r.promptTokens };
  }

  /** Embeds token-id sequences as given: the hidden state at each one's last token. */
  async embedTokens(seqs: number[][], signal?: AbortSignal): Promise<QueryEmbedding[]> {
    return this.unpack(await this.call<EmbedResult>((id) => ({ id, type: 'embedTokens', seqs }), {}, signal));
  }

  /** A chat completion; with `onContent`, its content also comes piece by piece as it is generated. */
  chat(job: ChatJob, signal?: AbortSignal, onContent?: ContentListener): Promise<ChatResult> {
    const streamed = onContent ? { ...job, stream: true } : job;
    return this.call<ChatResult>((id) => ({ id, type: 'chat', job: streamed }), { content: onContent }, signal);
  }

  /**
   * Stops the worker; requests still waiting fail. A worker on a GPU or on llama.cpp first ends the forward pass
   * it is in and closes them (Node tearing down their native work halfway aborts the whole process), so close()
   * may take as long as that pass; one on search-r3's CPU kernels is stopped at once.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const running = this.state === 'ready';
    this.state = 'closed';
    this.reason = 'the model has been closed.';
    this.retryAt = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.failPending(this.reason);
    if (running && this.closesItself) this.ending ??= askToClose(this.worker);
    this.worker.ref();
    await endWorker(this.worker, this.ending);
  }

  private unpack(r: EmbedResult): QueryEmbedding[] {
    const d = this.dimension;
    return r.analyses.map((a, i) => ({ ...a, vector: r.vectors.slice(i * d, (i + 1) * d) }));
  }

  /** `signal`: the caller no longer wants the answer (its client went away), so the worker drops what it can. */
  private call<T>(make: (id: number) => WorkerRequest, watchers: Watchers = {}, signal?: AbortSignal): Promise<T> {
    if (this.state !== 'ready') {
      const cause = this.cause ? { cause: this.cause } : undefined;
      return Promise.reject(new ModelUnavailableError(this.why() ?? 'the model is not ready.', cause));
    }
    const id = this.nextId++;
    const worker = this.worker;
    return new Promise<T>((resolve, reject) => {
      // posted first: a request that cannot be cloned throws here (the promise rejects) and leaves no entry
      // that nothing would ever answer; the worker's reply comes in a later turn of the event loop
      worker.postMessage(make(id));
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, watchers });
      this.holdWhileBusy();
      const cancel = (): void => {
        if (this.pending.has(id) && this.worker === worker) worker.postMessage({ id, type: 'cancel' });
      };
      if (signal?.aborted) cancel();
      else signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  /** The worker keeps the process alive while a request waits on it, and not while it is idle. */
  private holdWhileBusy(): void {
    if (this.pending.size > 0) this.worker.ref();
    else this.worker.unref();
  }

  private attach({ worker, closesItself, closedFlag }: Spawned): void {
    this.worker = worker;
    this.closesItself = closesItself;
    if (closesItself) {
      const onProcessExit = (): void => closeOnExit(worker, closedFlag);
      process.on('exit', onProcessExit);
      worker.once('exit', () => process.off('exit', onProcessExit));
    }
    this.readyAt = Date.now();
    this.ending = null;
    let lastError: string | null = null;
    worker.on('message', (m: WorkerReply) => {
      if (m.type !== 'deviceFailed') return this.receive(m);
      // its requests are answered now; the new worker starts once this one has closed its GPU and ended
      if (this.worker !== worker || this.state !== 'ready') return;
      this.ending = exited(worker);
      this.stopped(m.message, ' on a fresh GPU device', new GpuError(m.message, true));
    });
    worker.on('error', (e) => {
      lastError = e.message;
    });
    worker.on('exit', (code) => {
      if (this.worker !== worker || this.state === 'closed') return;
      if (this.state === 'ready') this.stopped(lastError ?? `it exited with code ${code}`, '');
      this.restartAt(this.retryAt ?? Date.now());
    });
    // after the listeners: adding one refs the worker's port again
    this.holdWhileBusy();
  }

  /** The reason the model is not ready, with the seconds left when a restart waits. */
  private why(): string | null {
    if (this.retryAt === null || this.reason === null) return this.reason;
    const seconds = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
    return `${this.reason}; trying again in ${seconds} s.`;
  }

  private receive(m: WorkerReply): void {
    if (m.type === 'batch') {
      for (const l of this.batchListeners) l(m.inputs, m.kind, m.seconds);
      return;
    }
    if (m.type === 'memoryReleased') {
      for (const l of this.releaseListeners) l(m.release);
      return;
    }
    if (m.type === 'progress') {
      this.pending.get(m.id)?.watchers.progress?.(m.input, m.reasoning);
      return;
    }
    if (m.type === 'content') {
      this.pending.get(m.id)?.watchers.content?.(m.piece);
      return;
    }
    if (m.type !== 'result' && m.type !== 'error') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.holdWhileBusy();
    if (m.type === 'result') p.resolve(m.value);
    else p.reject(errorFromWire(m.error));
  }

  private failPending(message: string, cause?: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.holdWhileBusy();
    for (const p of pending) p.reject(new ModelUnavailableError(message, cause ? { cause } : undefined));
  }

  /**
   * The worker stopped or is stopping, for `why` (restarted `where`): its requests fail, and so do new ones
   * until the restart, which waits when this worker is the second in a row to die soon after it started.
   */
  private stopped(why: string, where: string, cause?: Error): void {
    this.restarts++;
    this.state = 'restarting';
    this.cause = cause;
    const upMs = Date.now() - this.readyAt;
    if (upMs >= this.stayedUpMs) {
      this.quickDeaths = 0;
      this.retryMs = FIRST_RETRY_MS;
    } else {
      this.quickDeaths++;
    }
    if (this.quickDeaths < 2) {
      this.reason = `the model worker stopped (${why}) and is being restarted${where}; retry shortly.`;
    } else {
      const within = `within ${Math.round(this.stayedUpMs / 1000)} s of starting`;
      this.reason =
        `the model worker stopped (${why}), ${this.quickDeaths} times in a row ${within}, so it waits before ` +
        `loading the model again${where}`;
      this.retryAt = Date.now() + this.backOff();
    }
    this.failPending(this.why()!, cause);
    // one whose GPU device failed is still closing it before it ends itself: Node must not tear it down meanwhile
    this.worker.ref();
  }

  /** The wait before the next restart that waits; each one waits twice as long, up to LAST_RETRY_MS. */
  private backOff(): number {
    const ms = this.retryMs;
    this.retryMs = Math.min(LAST_RETRY_MS, this.retryMs * 2);
    return ms;
  }

  /** Starts a new worker at `at` (Date.now()), or at once when that has passed. */
  private restartAt(at: number): void {
    const ms = at - Date.now();
    if (ms <= 0) {
      void this.restart();
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.restart();
    }, ms);
    this.retryTimer.unref();
  }

  private async restart(): Promise<void> {
    try {
      const spawned = await spawnWorker(this.config);
      const { worker, info, closesItself } = spawned;
      const end = (): Promise<void> => endWorker(worker, closesItself ? askToClose(worker) : null);
      if (this.state === 'closed') {
        await end();
        return;
      }
      if (info.modelId !== this.info.modelId) {
        await end();
        const was = this.info.modelId;
        throw new Error(`the model folder now holds another model (${info.modelId}, not ${was}); restart the server`);
      }
      this.attach(spawned);
      this.state = 'ready';
      this.reason = null;
      this.retryAt = null;
      this.cause = undefined;
    } catch (e) {
      if (this.state === 'closed') return;
      this.state = 'failed';
      this.reason = `the model worker could not be restarted (${(e as Error).message})`;
      this.retryAt = Date.now() + this.backOff();
      this.restartAt(this.retryAt);
    }
  }
}
