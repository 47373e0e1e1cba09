/**
 * What every route handler of the server shares: the model (in its worker), the index, the limits, the
 * metrics, the bounded queue in front of the model, and the checks that several routes make. Built once
 * per server by createSearchServer; the routes (./routes/*.ts) take it as their first argument.
 */
import path from 'node:path';
import type { SearchIndex } from '../search-index/search-index.js';
import { HttpError, badRequest } from './http-error.js';
import type { TokenLimits } from './input-limits.js';
import type { Metrics } from './metrics.js';
import type { Judgments } from './judgments.js';
import type { WorkerBackend } from './model-worker.js';
import type { RunSource } from './run-source.js';

/** What the web pages' routes (routes/web.ts, routes/runs.ts) need: both servers' contexts have it. */
export interface WebContext {
  /** Training runs the dashboard shows; absent when the server was given none. */
  runs: RunSource | undefined;
}

export interface ServerContext extends WebContext {
  model: WorkerBackend;
  index: SearchIndex | undefined;
  /** The name clients pass as `model`. */
  modelName: string;
  limits: TokenLimits;
  maxInputs: number;
  maxK: number;
  /** Most reasoning tokens one request may ask for (queries × budget). */
  maxReasoning: number;
  /** Longest text one token stands for (the model's vocabulary): lets a text be refused by its length. */
  tokenChars: number;
  metrics: Metrics;
  /** Inputs waiting for or in the model. */
  queued(): number;
  /** Runs model work for `n` inputs within the queue bound (429 beyond it; 400 when `n` alone exceeds it). */
  queue<T>(n: number, work: () => Promise<T>): Promise<T>;
  /** A `model` field names this server's model, or is absent or null (404 model_not_found otherwise). */
  checkModel(name: unknown): void;
  /** Index calls: whatever the index layer throws (a damaged file) is a 503 with the reason. */
  fromIndex<T>(call: () => T | Promise<T>): Promise<T>;
  /** Picks up what another process committed to the index, at most every `refreshMs`. */
  refreshIndex(): Promise<void>;
  /** Relevance judgments for benchmark queries (serve --qrels). */
  judgments: Judgments | undefined;
  draining: boolean;
}

export interface ContextOptions {
  model: WorkerBackend;
  index?: SearchIndex;
  modelName?: string;
  maxInputs?: number;
  maxTokensPerInput?: number;
  maxRequestTokens?: number;
  maxRequestReasoningTokens?: number;
  maxK?: number;
  maxQueue?: number;
  refreshMs?: number;
  judgments?: Judgments;
  runs?: RunSource;
  metrics: Metrics;
}

/** Most inputs in one /v1/embeddings request, unless the server is told otherwise. */
export const DEFAULT_MAX_INPUTS = 256;
/** Most inputs waiting for the model before requests get 429, unless the server is told otherwise. */
export const DEFAULT_MAX_QUEUE = 1024;

export function notFoundModel(name: string, served: string): HttpError {
  const message = `The model '${name}' does not exist; this server serves '${served}'.`;
  return new HttpError(404, message, 'model_not_found', 'model');
}

/** One sentence for a health check or a 503 when the index layer throws (a damaged or vanished file). */
export function indexProblem(e: unknown, dir: string): string {
  // the machine's paths stay private: the index folder is named by its basename
  const name = path.basename(dir);
  const raw = e instanceof Error ? e.message : String(e);
  const message = raw.split(path.resolve(dir)).join(name).split(dir).join(name);
  if (e instanceof Error && e.name === 'IndexError') return message;
  return `the index '${name}' cannot be read (${message}); restore its folder or rebuild it with search-r3 index.`;
}

export function createContext(o: ContextOptions): ServerContext {
  const { model, index, metrics } = o;
  const modelName = o.modelName ?? 'search-r3';
  const maxQueue = o.maxQueue ?? DEFAULT_MAX_QUEUE;
  const refreshMs = o.refreshMs ?? 1000;
  let queued = 0;
  let lastRefresh = performance.now();
  const ctx: ServerContext = {
    model,
    index,
    modelName,
    metrics,
    // no input longer than the context can be embedded whole, whatever --max-tokens says
    limits: {
      perInput: Math.min(o.maxTokensPerInput ?? model.maxLength, model.maxLength),
      perRequest: o.maxRequestTokens ?? 65_536,
    },
    maxInputs: o.maxInputs ?? DEFAULT_MAX_INPUTS,
    maxK: o.maxK ?? 1000,
    maxReasoning: o.maxRequestReasoningTokens ?? 8192,
    tokenChars: model.info.longestTokenChars,
    judgments: o.judgments,
    runs: o.runs,
    draining: false,
    queued: () => queued,
    async queue<T>(n: number, work: () => Promise<T>): Promise<T> {
      // n ≤ maxInputs ≤ maxQueue (startSearchServer refuses a smaller queue): waiting always lets it in
      if (queued + n > maxQueue) {
        const message = `the embedding queue is full (${queued} inputs waiting, limit ${maxQueue}); retry later`;
        throw new HttpError(429, message, 'rate_limit_exceeded');
      }
      queued += n;
      try {
        return await work();
      } finally {
        queued -= n;
      }
    },
    checkModel(name: unknown): void {
      if (name === undefined || name === null) return; // null is "not given", as OpenAI's clients send it
      if (typeof name !== 'string') throw badRequest("'model' must be a string.", 'model', 'invalid_type');
      if (name !== modelName && name !== model.modelId) throw notFoundModel(name, modelName);
    },
    async fromIndex<T>(call: () => T | Promise<T>): Promise<T> {
      try {
        return await call();
      } catch (e) {
        throw new HttpError(503, indexProblem(e, index?.dir ?? ''), 'index_unavailable');
      }
    },
    async refreshIndex(): Promise<void> {
      if (!index || performance.now() - lastRefresh < refreshMs) return;
      lastRefresh = performance.now();
      await ctx.fromIndex(() => index.refresh());
    },
  };
  return ctx;
}
