/**
 * Schedules model work across concurrent requests, inside the model worker.
 *
 * Direct inputs (documents, queries without reasoning) wait at most `maxWaitMs` for company, then go
 * through one forward pass together: up to `maxBatchInputs` inputs and about the embedder's
 * `batchTokens` tokens, so one batch is about one forward pass and nobody waits long behind it. A batch
 * takes inputs from the waiting requests in turn (round-robin), not first come first served, so a
 * one-input request rides along with the next batch instead of waiting behind a 256-input one; the
 * request that led a batch goes to the back of the line.
 *
 * Generation (queries with reasoning, chat completions) runs one generation at a time, in slices of
 * forward passes (`sliceMs`); between two slices a waiting direct batch runs, so a search query waits
 * for at most a slice and its own batch, not for a 64-query analysis to finish. Greedy reasoning queries
 * share a generation when their budgets are equal; sampled ones (temperature > 0) only share one with
 * their own request's queries, so a seed gives the same analysis whatever else is queued (a
 * generation's cache and sampler are its own, so what runs between its slices changes nothing).
 * After each batch or slice the scheduler yields (setImmediate), so requests that arrived meanwhile
 * join the line before the next one is formed.
 */
import type { Embedder, QueryEmbedding, QueryOptions } from '../embed/index.js';
import {
  DEFAULT_MAX_REASONING_TOKENS,
  GpuError,
  type GpuSizeRefusal,
  directQueryEmbedding,
  encodePrompt,
  gpuSizeSentence,
  type PromptKind,
} from '../embed/index.js';
import { type Steps, advance } from '../model/generate.js';
import type { BatchKind, BatchingOptions } from './worker-protocol.js';
import { HttpError } from './http-error.js';

/** What shrinks an input's activations: the client's text, or the operator's bound on it. */
const SHORTER_INPUT = 'a shorter input (the server bounds them with --max-tokens)';

/** The size refusal of a tensor larger than the GPU binds, after which the device still works; else null. */
function bindingRefusal(e: unknown): GpuSizeRefusal | null {
  if (!(e instanceof GpuError) || e.deviceFailed || e.sizeRefusal?.kind !== 'binding') return null;
  return e.sizeRefusal;
}

export interface BatcherOptions extends BatchingOptions {
  /** Called after each batch, and when a generation ends (for metrics); seconds of model work. */
  onBatch?: (inputs: number, kind: BatchKind, seconds: number) => void;
  /** Longest run of generation steps before waiting direct work gets its turn (default 20 ms). */
  sliceMs?: number;
}

export interface PreparedInput {
  ids: number[];
  truncated: number;
}

interface Settles<T> {
  /** The request that asked for it. */
  owner: number;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}
interface DirectJob extends Settles<QueryEmbedding> {
  kind: 'direct';
  input: PreparedInput;
}
interface ReasoningJob extends Settles<QueryEmbedding> {
  kind: 'reasoning';
  text: string;
  opts: QueryOptions;
  /** Jobs of one group may share a generation. */
  group: string;
  /** Sees each token of this query's analysis as it is generated. */
  onToken?: (token: number) => void;
}
interface ChatTask extends Settles<unknown> {
  kind: 'chat';
  steps: () => Steps<unknown>;
}
/** One input (or one chat completion) waiting for its turn. */
export type BatchJob = DirectJob | ReasoningJob | ChatTask;

/** A generation in progress: advanced slice by slice until it returns. */
interface Generation {
  steps: Steps<unknown>;
  /** The jobs that still want its result: when the last one's client leaves, the generation stops. */
  jobs: BatchJob[];
  done: (value: unknown) => void;
  kind: BatchKind;
  inputs: number;
  /** Model work so far (slices only, not what ran between them). */
  seconds: number;
}

/** Whether `j` may join a batch that `lead` started. */
function joins(lead: BatchJob, j: BatchJob): boolean {
  if (lead.kind === 'direct') return j.kind === 'direct';
  if (lead.kind === 'reasoning') return j.kind === 'reasoning' && j.group === lead.group;
  return false;
}

/** What a job adds to a batch's forward pass, in tokens (generation is bounded by count alone). */
const tokensOf = (j: BatchJob): number => (j.kind === 'direct' ? j.input.ids.length : 0);

/**
 * Takes (removes from `line`) the next batch: jobs that may join the batch that the first request's next
 * job leads, one per request in turn, starting with that request, until `maxInputs` jobs or `maxTokens`
 * tokens (the first job always goes). Each request's own jobs keep their order. `line` holds each waiting
 * request's jobs, requests in turn order.
 */
export function takeRoundRobin(line: readonly BatchJob[][], maxInputs: number, maxTokens = Infinity): BatchJob[] {
  const lead = line[0]?.[0];
  if (!lead) return [];
  if (lead.kind === 'chat') return [line[0].shift()!];
  const taken: BatchJob[] = [];
  let tokens = 0;
  for (let progress = true; progress;) {
    progress = false;
    for (const jobs of line) {
      const next = jobs[0];
      if (next === undefined || !joins(lead, next)) continue;
      if (taken.length >= maxInputs || (taken.length > 0 && tokens + tokensOf(next) > maxTokens)) return taken;
      taken.push(jobs.shift()!);
      tokens += tokensOf(next);
      progress = true;
    }
  }
  return taken;
}

export class EmbeddingBatcher {
  /** Waiting jobs per request, requests in turn order. */
  private readonly line = new Map<number, BatchJob[]>();
  private waiting = 0;
  private timer: NodeJS.Timeout | null = null;
  private working = false;
  private generation: Generation | null = null;
  /** Whether the last turn was a slice of the generation (then waiting direct work goes next). */
  private sliced = false;
  private maxWaitMs: number;
  private maxBatchInputs: number;
  private readonly sliceMs: number;
  private sampledGroups = 0;

  constructor(
    private readonly embedder: Embedder,
    private readonly opts: BatcherOptions = {},
  ) {
    this.maxWaitMs = opts.maxWaitMs ?? 3;
    this.maxBatchInputs = opts.maxBatchInputs ?? 64;
    this.sliceMs = opts.sliceMs ?? 20;
  }

  configure(b: BatchingOptions): void {
    if (b.maxWaitMs !== undefined) this.maxWaitMs = b.maxWaitMs;
    if (b.maxBatchInputs !== undefined) this.maxBatchInputs = b.maxBatchInputs;
  }

  /** Tokenizes an input with its prompt, cutting it to the model's prompt length. */
  prepare(text: string, kind: PromptKind): PreparedInput {
    const p = encodePrompt(this.embedder.tokenizer, text, kind, this.embedder.templates, this.embedder.maxLength);
    return { ids: p.ids, truncated: p.truncated };
  }

  /** Embeds prepared direct prompts (documents, queries without reasoning) of request `owner`. */
  embedDirect(owner: number, inputs: readonly PreparedInput[]): Promise<QueryEmbedding[]> {
    return Promise.all(
      inputs.map(
        (input) =>
          new Promise<QueryEmbedding>((resolve, reject) => {
            this.enqueue({ kind: 'direct', owner, input, resolve, reject });
          }),
      ),
    );
  }

  /**
   * Queries of request `owner` that reason first (see the module comment for who shares a generation);
   * `onToken` sees each generated token of query `i` as it comes.
   */
  embedReasoning(
    owner: number,
    texts: readonly string[],
    opts: QueryOptions,
    onToken?: (i: number, token: number) => void,
  ): Promise<QueryEmbedding[]> {
    const budget = opts.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS;
    const group = (opts.temperature ?? 0) > 0 ? `sampled:${this.sampledGroups++}` : `greedy:${budget}`;
    return Promise.all(
      texts.map(
        (text, i) =>
          new Promise<QueryEmbedding>((resolve, reject) => {
            this.enqueue({
              kind: 'reasoning',
              owner,
              text,
              opts: { ...opts, reasoning: 'on' },
              group,
              ...(onToken ? { onToken: (token: number) => onToken(i, token) } : {}),
              resolve,
              reject,
            });
          }),
      ),
    );
  }

  /** Runs a generation of request `owner` (a chat completion) alone, in its turn, slice by slice. */
  generate<T>(owner: number, steps: () => Steps<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.enqueue({ kind: 'chat', owner, steps, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /**
   * Request `owner`'s client went away. Its jobs that have not started fail at once, so the server's queue
   * frees their place, and a generation that was for it alone stops before its next step (a long chat
   * completion would otherwise hold the model for nobody). A generation shared with other requests' queries
   * goes on for them, without the leaving rows: they stop generating, so that it ends when the rows still
   * wanted do. A direct batch already running finishes.
   */
  cancel(owner: number): void {
    const gone = new Error('cancelled: the client went away');
    const jobs = this.line.get(owner) ?? [];
    this.line.delete(owner);
    this.waiting -= jobs.length;
    for (const j of jobs) j.reject(gone);
    const g = this.generation;
    if (!g?.jobs.some((j) => j.owner === owner)) return;
    for (const j of g.jobs) if (j.owner === owner) j.reject(gone);
    g.jobs = g.jobs.filter((j) => j.owner !== owner);
    if (g.jobs.length > 0) return;
    this.generation = null;
    g.steps.return(undefined);
    this.opts.onBatch?.(g.inputs, g.kind, g.seconds);
  }

  private enqueue(job: BatchJob): void {
    let jobs = this.line.get(job.owner);
    if (!jobs) this.line.set(job.owner, (jobs = []));
    jobs.push(job);
    this.waiting++;
    this.schedule();
  }

  private schedule(): void {
    if (this.working || this.waiting === 0) return;
    if (this.waiting >= this.maxBatchInputs) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      this.working = true;
      setImmediate(() => this.turn());
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.working = true;
        this.turn();
      }, this.maxWaitMs);
    }
  }

  /**
   * The next batch, taken from requests whose next job `fits` (all of them when no generation is running,
   * only direct work while one is), and the turn order after it: the request that led moves to the back.
   */
  private takeBatch(fits: (j: BatchJob) => boolean): BatchJob[] {
    const leader = [...this.line].find(([, jobs]) => fits(jobs[0]))?.[0];
    if (leader === undefined) return [];
    const order = [leader, ...[...this.line.keys()].filter((o) => o !== leader)];
    const line = order.map((o) => this.line.get(o)!);
    const batch = takeRoundRobin(line, this.maxBatchInputs, this.embedder.batchTokens);
    const rest = this.line.get(leader)!;
    this.line.delete(leader);
    if (rest.length > 0) this.line.set(leader, rest);
    for (const [owner, jobs] of this.line) if (jobs.length === 0) this.line.delete(owner);
    this.waiting -= batch.length;
    return batch;
  }

  /** One turn: a slice of the running generation, or the next batch (direct work first after a slice). */
  private turn(): void {
    const directNext = this.generation !== null && this.sliced;
    const fits = (j: BatchJob): boolean => this.generation === null || j.kind === 'direct';
    const batch = this.generation === null || directNext ? this.takeBatch(fits) : [];
    if (batch.length > 0 && batch[0].kind === 'direct') this.runDirect(batch as DirectJob[]);
    else if (batch.length > 0) this.startGeneration(batch);
    if (this.generation && (batch.length === 0 || batch[0].kind !== 'direct')) this.slice();
    else this.sliced = false;
    // yield, so requests that arrived meanwhile join the line before the next turn
    setImmediate(() => {
      this.working = this.generation !== null || this.waiting > 0;
      if (this.working) this.turn();
    });
  }

  private runDirect(jobs: DirectJob[]): void {
    const t0 = performance.now();
    this.forwardDirect(jobs);
    this.opts.onBatch?.(jobs.length, 'direct', (performance.now() - t0) / 1000);
  }

  /**
   * The jobs' forward pass. A batch with a tensor larger than the GPU binds (the device still works: nothing
   * was computed) runs again in halves, so that the requests in it are answered as on a GPU that binds more;
   * an input too large alone fails only its own request, with the bytes and what to shrink.
   */
  private forwardDirect(jobs: DirectJob[]): void {
    let vectors: Float32Array[];
    try {
      vectors = this.embedder.forwardBatches(jobs.map((j) => j.input.ids));
    } catch (e) {
      const refusal = bindingRefusal(e);
      if (refusal !== null && jobs.length > 1) {
        const half = Math.ceil(jobs.length / 2);
        this.forwardDirect(jobs.slice(0, half));
        this.forwardDirect(jobs.slice(half));
        return;
      }
      const error =
        refusal === null ? e : new HttpError(400, gpuSizeSentence(refusal, SHORTER_INPUT), 'input_too_large');
      for (const j of jobs) j.reject(error);
      return;
    }
    jobs.forEach((j, i) => j.resolve(directQueryEmbedding(vectors[i], j.input)));
  }

  private startGeneration(batch: BatchJob[]): void {
    const first = batch[0];
    if (first.kind === 'chat') {
      this.generation = {
        steps: first.steps(),
        jobs: [first],
        done: first.resolve,
        kind: 'chat',
        inputs: 1,
        seconds: 0,
      };
      return;
    }
    const jobs = batch as ReasoningJob[];
    const generation: Generation = {
      steps: this.embedder.reasoningSteps(
        jobs.map((j) => j.text),
        jobs[0].opts,
        (row, token) => jobs[row].onToken?.(token),
        // a query whose client left stops generating (cancel takes its job out of the generation's)
        (row) => !generation.jobs.includes(jobs[row]),
      ),
      jobs,
      done: (res) => jobs.forEach((j, i) => j.resolve((res as QueryEmbedding[])[i])),
      kind: 'reasoning',
      inputs: jobs.length,
      seconds: 0,
    };
    this.generation = generation;
  }

  /** Advances the generation by forward passes for up to sliceMs; settles it when it returns. */
  private slice(): void {
    const g = this.generation!;
    const t0 = performance.now();
    let finished = false;
    try {
      do {
        const r = advance(g.steps);
        if (r.done) {
          finished = true;
          g.done(r.value);
        }
      } while (!finished && performance.now() - t0 < this.sliceMs);
    } catch (e) {
      finished = true;
      for (const j of g.jobs) j.reject(e);
    }
    g.seconds += (performance.now() - t0) / 1000;
    this.sliced = true;
    if (finished) {
      this.generation = null;
      this.opts.onBatch?.(g.inputs, g.kind, g.seconds);
    }
  }
}
