/**
 * The HTTP server. Routes (one module each under ./routes/, behind the table below):
 *   POST     /v1/embeddings         OpenAI's embeddings (texts with Search-R3 prompts, or token ids)
 *   POST     /v1/chat/completions   OpenAI's chat completions with the served model, whole or streamed
 *   POST     /v1/search             ranked documents of the served index (dense or hybrid)
 *   GET      /v1/models             the served model; GET /v1/models/{id}: one model
 *   GET|HEAD /health                status (503 with the reason when the model or the index is down)
 *   GET      /metrics               Prometheus text format
 *   POST     /v1/search/stream      /v1/search as server-sent events: the analysis as it grows, then the hits
 *   GET      /, /runs, /web/...     the search playground and the run dashboard (routes/web.ts)
 *   GET      /v1/runs[/{id}]        the runs the dashboard shows, and their metrics (routes/runs.ts)
 * This thread does HTTP, JSON, the checks that need no tokenizer, admission (a bounded queue), index
 * search, health and metrics; the model runs in a worker thread (model-worker.ts), which tokenizes,
 * batches and runs the model. Every limit answers with a 4xx in OpenAI's error shape; close() stops
 * accepting connections and resolves once in-flight requests have finished and the worker has stopped.
 */
import type http from 'node:http';
import type { DeviceChoice } from '../embed/index.js';
import type { LocalBackend } from '../search-index/embedding-backend.js';
import type { SearchIndex } from '../search-index/search-index.js';
import { type Route, createHandler, ok } from './http-handler.js';
import { type Listening, listen } from './listen.js';
import { Metrics } from './metrics.js';
import { WorkerBackend } from './model-worker.js';
import type { Judgments } from './judgments.js';
import type { RunSource } from './run-source.js';
import { chatCompletions, chatCompletionsStream } from './routes/chat-completions.js';
import { embeddings } from './routes/embeddings.js';
import { health } from './routes/health.js';
import { getModel, listModels } from './routes/models.js';
import { search, searchStream } from './routes/search.js';
import { WEB_ROUTES } from './routes/web.js';
import { type ServerContext, createContext } from './server-context.js';
import { checkServeOptions } from './serve-options.js';

export interface ServeOptions {
  /**
   * The model: a WorkerBackend (WorkerBackend.start), or a LocalBackend made by LocalBackend.fromModelDir,
   * whose folder the server then loads in a worker of its own. The server closes it on close() (a start that
   * fails leaves a WorkerBackend open, for another try).
   */
  backend: WorkerBackend | LocalBackend;
  /**
   * Where the worker the server starts for a LocalBackend computes (see WorkerBackendOptions.device); a
   * WorkerBackend runs where it was started, so it goes without this.
   */
  device?: DeviceChoice;
  index?: SearchIndex;
  /** The name clients pass as `model` (the model id is accepted too). Default 'search-r3'. */
  modelName?: string;
  /** Require `Authorization: Bearer <apiKey>` on everything; /health without it tells only the status. */
  apiKey?: string;
  /**
   * Origins (scheme://host:port) whose web pages may call the server from a browser, or ['*'] for any page;
   * none when left out (the server's own playground needs none).
   */
  corsOrigins?: string[];
  /** Largest request body in bytes, after decompression (default 1 MiB). */
  maxBodyBytes?: number;
  /** Most inputs in one /v1/embeddings request (default 256). */
  maxInputs?: number;
  /** Most tokens in one input text (default the model's prompt length). */
  maxTokensPerInput?: number;
  /** Most input tokens in one request, all inputs together (default 65536). */
  maxRequestTokens?: number;
  /** Most reasoning one request may ask for: queries × max_reasoning_tokens (default 8192). */
  maxRequestReasoningTokens?: number;
  /** Largest k of /v1/search (default 1000). */
  maxK?: number;
  /**
   * Most inputs waiting for the model; beyond it requests get 429, and a request with more inputs than it
   * holds gets 400 (default 1024).
   */
  maxQueue?: number;
  maxWaitMs?: number;
  maxBatchInputs?: number;
  /** How often /v1/search checks the index for changes committed by another process (default 1000 ms). */
  refreshMs?: number;
  /** Relevance judgments: searches for a judged query mark the judged hits and get their nDCG@10. */
  judgments?: Judgments;
  /** Training runs the dashboard (/runs) shows. */
  runs?: RunSource;
}

export interface RunningServer {
  server: http.Server;
  url: string;
  port: number;
  /** The model the server runs (closed with the server). */
  backend: WorkerBackend;
  /** Stops accepting, finishes in-flight requests, stops the model worker, then resolves. */
  close(): Promise<void>;
}

export interface SearchServer {
  handler: http.RequestListener;
  metrics: Metrics;
  inFlight: () => number;
  drain: () => void;
}

const SEARCH_ROUTES: readonly Route<ServerContext>[] = [
  { methods: ['POST'], path: '/v1/embeddings', json: embeddings },
  { methods: ['POST'], path: '/v1/chat/completions', json: chatCompletions, stream: chatCompletionsStream },
  { methods: ['POST'], path: '/v1/search', json: search },
  { methods: ['POST'], path: '/v1/search/stream', stream: searchStream },
  { methods: ['GET'], path: '/v1/models', get: (ctx) => ok(listModels(ctx)) },
  { methods: ['GET'], path: '/v1/models/', get: (ctx, id) => ok(getModel(ctx, id)) },
  { methods: ['GET', 'HEAD'], path: '/health', open: true, get: (ctx, _p, authorized) => health(ctx, authorized) },
  { methods: ['GET'], path: '/metrics', get: (ctx) => ok(ctx.metrics.render(), 'text/plain; version=0.0.4') },
  ...WEB_ROUTES,
];

function registerGauges(ctx: ServerContext, inFlight: () => number): void {
  const { metrics, model, index } = ctx;
  model.onBatch((n, kind, s) => {
    metrics.inc('search_r3_batches_total', 'Forward batches run.', { kind });
    metrics.inc('search_r3_batch_inputs_total', 'Inputs embedded in batches.', { kind }, n);
    metrics.observe('search_r3_batch_duration_seconds', 'Time of one embedding batch.', { kind }, s);
  });
  model.onMemoryReleased((r) =>
    metrics.inc(
      'search_r3_gpu_released_bytes_total',
      'GPU memory the idle model worker gave back to the driver.',
      {},
      r.reservedBefore - r.reservedAfter,
    ),
  );
  metrics.gauge('search_r3_queue_inputs', 'Inputs waiting for or in a forward pass.', () => ctx.queued());
  metrics.gauge('search_r3_model_up', 'Whether the model worker takes requests.', () =>
    model.health().state === 'ready' ? 1 : 0,
  );
  metrics.gauge(
    'search_r3_model_restarts',
    'Times the model worker died and was restarted.',
    () => model.health().restarts,
  );
  metrics.gauge('process_resident_memory_bytes', 'Resident set size.', () => process.memoryUsage.rss());
  if (index) {
    // NaN while the index cannot be read (/health says why)
    metrics.gauge('search_r3_index_documents', 'Documents in the served index.', () => {
      try {
        return index.stats().documents;
      } catch {
        return NaN;
      }
    });
  }
  metrics.gauge('search_r3_requests_in_flight', 'Requests being handled.', inFlight);
}

/**
 * The request handler of a server on a running model worker, without listening anywhere (mount it in your own
 * http server). Its options are checked as startSearchServer's are.
 */
export function createSearchServer(opts: ServeOptions & { backend: WorkerBackend }): SearchServer {
  checkServeOptions(opts, 'createSearchServer');
  refuseClosed(opts.backend, 'createSearchServer');
  const metrics = new Metrics();
  const ctx = createContext({ ...opts, model: opts.backend, metrics });
  const h = createHandler({
    routes: SEARCH_ROUTES,
    ctx,
    apiKey: opts.apiKey,
    corsOrigins: opts.corsOrigins,
    maxBodyBytes: opts.maxBodyBytes ?? 1024 * 1024,
    metrics,
    draining: () => ctx.draining,
  });
  registerGauges(ctx, h.inFlight);
  return {
    handler: h.handler,
    metrics,
    inFlight: h.inFlight,
    drain: () => {
      ctx.draining = true;
    },
  };
}

// a server on a closed model would answer 503 to everything
function refuseClosed(model: WorkerBackend, caller: string): void {
  if (model.health().state === 'closed')
    throw new Error(
      `${caller}: the WorkerBackend has been closed (a server closes its model when it stops); ` +
        'start another with WorkerBackend.start.',
    );
}

/** Starts the server on host:port (port 0: any free port) once the model is loaded in its worker. */
export async function startSearchServer(opts: ServeOptions & { host?: string; port?: number }): Promise<RunningServer> {
  checkServeOptions(opts);
  const batching = { maxWaitMs: opts.maxWaitMs, maxBatchInputs: opts.maxBatchInputs };
  let model: WorkerBackend;
  if (opts.backend instanceof WorkerBackend) {
    if (opts.device) throw new Error('device goes with a LocalBackend; start the WorkerBackend with its device.');
    refuseClosed(opts.backend, 'startSearchServer');
    model = opts.backend;
    model.configureBatching(batching);
  } else {
    model = await WorkerBackend.fromLocalBackend(opts.backend, { ...batching, device: opts.device });
  }
  let l: Listening;
  try {
    // the address is startSearchServer's own: the handler takes the rest
    const { host, port, ...served } = opts;
    const s = createSearchServer({ ...served, backend: model });
    if (opts.index?.stats().documents) opts.index.warmHybrid();
    l = await listen(s.handler, s, port ?? 8080, host ?? '127.0.0.1');
  } catch (e) {
    // the caller's own WorkerBackend stays theirs until a server runs on it: they may start one on another port
    if (model !== opts.backend) await model.close();
    throw e;
  }
  let closing: Promise<void> | null = null;
  return {
    server: l.server,
    port: l.port,
    url: l.url,
    backend: model,
    close: () =>
      (closing ??= (async () => {
        await l.close();
        await model.close();
      })()),
  };
}
