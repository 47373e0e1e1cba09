/**
 * Batches embedding work across concurrent HTTP requests. Inputs wait at most `maxWaitMs` for company,
 * then up to `maxBatchInputs` of them go through one forward pass. The forward pass is synchronous CPU
 * work in this process (the native kernels already use every core, so a worker thread would add a model
 * copy but no throughput); between batches the batcher yields to the event loop with setImmediate, so
 * /health, new connections and queue admission stay responsive, delayed by at most one batch.
 * The queue is bounded in inputs: a request that would overflow it is refused (HTTP 429) up front.
 */
import type { Embedder, QueryEmbedding, QueryOptions } from '../embed/index.js';
import { encodePrompt, type PromptKind } from '../embed/index.js';

export interface BatcherOptions {
  /** Most inputs waiting or running; more is refused (default 1024). */
  maxQueue?: number;
  /** Longest wait for more inputs before a batch starts (default 3 ms). */
  maxWaitMs?: number;
  /** Most inputs in one forward pass (default 64). */
  maxBatchInputs?: number;
  /** Called after each batch (for metrics). */
  onBatch?: (inputs: number, kind: 'direct' | 'reasoning', seconds: number) => void;
}

export class QueueFullError extends Error {
  constructor(readonly queued: number, readonly limit: number) {
    super(`the embedding queue is full (${queued} inputs waiting, limit ${limit}); retry later`);
  }
}

interface DirectJob { kind: 'direct'; ids: number[]; truncated: number; resolve: (e: QueryEmbedding) => void; reject: (e: unknown) => void }
interface ReasoningJob { kind: 'reasoning'; text: string; opts: QueryOptions; group: string; resolve: (e: QueryEmbedding) => void; reject: (e: unknown) => void }
interface TaskJob { kind: 'task'; run: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }
type Job = DirectJob | ReasoningJob | TaskJob;

export interface PreparedInput { ids: number[]; truncated: number }

export class EmbeddingBatcher {
  private queue: Job[] = [];
  private running = 0;
  private timer: NodeJS.Timeout | null = null;
  private working = false;
  private idleWaiters: (() => void)[] = [];
  private readonly maxQueue: number;
  private readonly maxWaitMs: number;
  private readonly maxBatchInputs: number;

  constructor(private readonly embedder: Embedder, private readonly opts: BatcherOptions = {}) {
    this.maxQueue = opts.maxQueue ?? 1024;
    this.maxWaitMs = opts.maxWaitMs ?? 3;
    this.maxBatchInputs = opts.maxBatchInputs ?? 64;
  }

  /** Inputs waiting or being embedded. */
  get depth(): number { return this.queue.length + this.running; }

  /** Tokenizes an input with its prompt (cheap; done in the request handler to check limits and count usage). */
  prepare(text: string, kind: PromptKind): PreparedInput {
    const p = encodePrompt(this.embedder.tokenizer, text, kind, this.embedder.templates, this.embedder.maxLength);
    return { ids: p.ids, truncated: p.truncated };
  }

  /** Throws QueueFullError when `n` more inputs would not fit. */
  admit(n: number): void {
    if (this.depth + n > this.maxQueue) throw new QueueFullError(this.depth, this.maxQueue);
  }

  /** Embeds prepared direct prompts (documents, or queries without reasoning). */
  embedDirect(inputs: readonly PreparedInput[]): Promise<QueryEmbedding[]> {
    this.admit(inputs.length);
    const out = Promise.all(inputs.map((p) => new Promise<QueryEmbedding>((resolve, reject) => {
      this.queue.push({ kind: 'direct', ids: p.ids, truncated: p.truncated, resolve, reject });
    })));
    this.schedule();
    return out;
  }

  /**
   * Queries that reason first. Greedy ones with equal budgets share a generation batch; sampled ones
   * (temperature > 0) run per request, so a seed gives the same analysis whatever else is queued.
   */
  embedReasoning(texts: readonly string[], opts: QueryOptions): Promise<QueryEmbedding[]> {
    this.admit(texts.length);
    const group = (opts.temperature ?? 0) > 0 ? `sampled:${Math.random()}` : `greedy:${opts.maxReasoningTokens ?? 128}`;
    const out = Promise.all(texts.map((text) => new Promise<QueryEmbedding>((resolve, reject) => {
      this.queue.push({ kind: 'reasoning', text, opts: { ...opts, reasoning: 'on' }, group, resolve, reject });
    })));
    this.schedule();
    return out;
  }

  /** Runs other model work (a chat completion) in turn with the batches, counted against the queue bound. */
  runExclusive<T>(run: () => T): Promise<T> {
    this.admit(1);
    const out = new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: 'task', run, resolve: resolve as (v: unknown) => void, reject });
    });
    this.schedule();
    return out;
  }

  private schedule(): void {
    if (this.working || this.queue.length === 0) return;
    if (this.queue.length >= this.maxBatchInputs) {
      if (this.timer) { clearTimeout(this.timer); this.timer = null; }
      this.working = true;
      setImmediate(() => this.runBatch());
    } else if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = null; this.working = true; this.runBatch(); }, this.maxWaitMs);
    }
  }

  private runBatch(): void {
    const first = this.queue[0];
    if (!first) { this.finishBatch(); return; }
    let batch: Job[];
    if (first.kind === 'direct') {
      batch = this.take((j) => j.kind === 'direct');
    } else if (first.kind === 'task') {
      batch = [this.queue.shift()!];
    } else {
      const g = first.group;
      batch = this.take((j) => j.kind === 'reasoning' && j.group === g);
    }
    this.running = batch.length;
    const t0 = performance.now();
    try {
      if (first.kind === 'task') {
        (first as TaskJob).resolve((first as TaskJob).run());
      } else if (first.kind === 'direct') {
        const jobs = batch as DirectJob[];
        const vectors = this.embedder.forwardBatches(jobs.map((j) => j.ids));
        jobs.forEach((j, i) => j.resolve({ vector: vectors[i], reasoning: '', forced: false, tokens: [], truncated: j.truncated }));
      } else {
        const jobs = batch as ReasoningJob[];
        const res = this.embedder.embedQueries(jobs.map((j) => j.text), jobs[0].opts);
        jobs.forEach((j, i) => j.resolve(res[i]));
      }
    } catch (e) {
      for (const j of batch) j.reject(e);
    }
    this.running = 0;
    if (first.kind !== 'task') this.opts.onBatch?.(batch.length, first.kind, (performance.now() - t0) / 1000);
    // yield to the event loop before the next batch
    setImmediate(() => this.finishBatch());
  }

  private take(match: (j: Job) => boolean): Job[] {
    const taken: Job[] = [];
    const rest: Job[] = [];
    for (const j of this.queue) (taken.length < this.maxBatchInputs && match(j) ? taken : rest).push(j);
    this.queue = rest;
    return taken;
  }

  private finishBatch(): void {
    this.working = false;
    if (this.queue.length > 0) {
      // work is already waiting longer than maxWaitMs: run it now
      this.working = true;
      setImmediate(() => this.runBatch());
      return;
    }
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (!this.working && this.queue.length === 0 && !this.timer) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
