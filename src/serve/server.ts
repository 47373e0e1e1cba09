/**
 * The HTTP server. Routes (one module each under ./routes/, behind the table below):
 *   POST     /v1/embeddings         OpenAI's embeddings (texts with Search-R3 prompts, or token ids)
 *   POST     /v1/chat/completions   OpenAI's chat completions with the served model
 *   POST     /v1/search             ranked documents of the served index (dense or hybrid)
 *   GET      /v1/models             the served model; GET /v1/models/{id}: one model
 *   GET|HEAD /health                status (503 with the reason when the model or the index is down)
 *   GET      /metrics               Prometheus text format
 * This thread does HTTP, JSON, the checks that need no tokenizer, admission (a bounded queue), index
 * search, health and metrics; the model runs in a worker thread (model-worker.ts), which tokenizes,
 * batches and runs the model. Every limit answers with a 4xx in OpenAI's error shape; close() stops
 * accepting connections and resolves once in-flight requests have finished and the worker has stopped.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalBackend } from '../search-index/embedding-backend.js';
import type { SearchIndex } from '../search-index/search-index.js';
import { ApiKey } from './api-key.js';
import { HttpError } from './http-error.js';
import { Metrics } from './metrics.js';
import { ModelUnavailableError, WorkerBackend } from './model-worker.js';
import { readBody, parseJsonObject } from './request-body.js';
import { chatCompletions } from './routes/chat-completions.js';
import { embeddings } from './routes/embeddings.js';
import { health } from './routes/health.js';
import { getModel, listModels } from './routes/models.js';
import { search } from './routes/search.js';
import { type ServerContext, createContext } from './server-context.js';

export interface ServeOptions {
  /**
   * The model: a WorkerBackend (WorkerBackend.start), or a LocalBackend made by LocalBackend.fromModelDir,
   * whose folder the server then loads in a worker of its own. The server closes it on close().
   */
  backend: WorkerBackend | LocalBackend;
  index?: SearchIndex;
  /** The name clients pass as `model` (the model id is accepted too). Default 'search-r3'. */
  modelName?: string;
  /** Require `Authorization: Bearer <apiKey>` on everything; /health without it tells only the status. */
  apiKey?: string;
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
  /** Most inputs waiting for the model; beyond it requests get 429 (default 1024). */
  maxQueue?: number;
  maxWaitMs?: number;
  maxBatchInputs?: number;
  /** How often /v1/search checks the index for changes committed by another process (default 1000 ms). */
  refreshMs?: number;
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

type Answer = { status: number; body: unknown; contentType?: string };

/** A route: a JSON body in, a JSON answer out (POST), or an answer from the URL alone. */
interface Route {
  methods: readonly string[];
  /** An exact path, or a prefix ending in '/' whose rest is the route's parameter. */
  path: string;
  /** Served without the API key (it decides itself how much to tell). */
  open?: boolean;
  json?: (ctx: ServerContext, body: Record<string, unknown>) => Promise<unknown>;
  get?: (ctx: ServerContext, param: string, authorized: boolean) => Answer;
}

const ok = (body: unknown, contentType?: string): Answer => ({ status: 200, body, contentType });

const ROUTES: readonly Route[] = [
  { methods: ['POST'], path: '/v1/embeddings', json: embeddings },
  { methods: ['POST'], path: '/v1/chat/completions', json: chatCompletions },
  { methods: ['POST'], path: '/v1/search', json: search },
  { methods: ['GET'], path: '/v1/models', get: (ctx) => ok(listModels(ctx)) },
  { methods: ['GET'], path: '/v1/models/', get: (ctx, id) => ok(getModel(ctx, id)) },
  { methods: ['GET', 'HEAD'], path: '/health', open: true, get: (ctx, _p, authorized) => health(ctx, authorized) },
  { methods: ['GET'], path: '/metrics', get: (ctx) => ok(ctx.metrics.render(), 'text/plain; version=0.0.4') },
];

/** The route of a path, and the parameter of a prefix route; undefined for an unknown path. */
function findRoute(pathname: string): { route: Route; param: string } | undefined {
  for (const route of ROUTES) {
    if (route.path === pathname) return { route, param: '' };
    if (route.path.endsWith('/') && pathname.startsWith(route.path) && pathname.length > route.path.length) {
      return { route, param: decodeURIComponent(pathname.slice(route.path.length)) };
    }
  }
  return undefined;
}

function registerGauges(ctx: ServerContext, inFlight: () => number): void {
  const { metrics, model, index } = ctx;
  model.onBatch((n, kind, s) => {
    metrics.inc('search_r3_batches_total', 'Forward batches run.', { kind });
    metrics.inc('search_r3_batch_inputs_total', 'Inputs embedded in batches.', { kind }, n);
    metrics.observe('search_r3_batch_duration_seconds', 'Time of one embedding batch.', { kind }, s);
  });
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

export function createSearchServer(opts: ServeOptions & { backend: WorkerBackend }): SearchServer {
  const metrics = new Metrics();
  const ctx = createContext({ ...opts, model: opts.backend, metrics });
  const apiKey = opts.apiKey !== undefined ? new ApiKey(opts.apiKey) : null;
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  let inFlight = 0;
  registerGauges(ctx, () => inFlight);

  const send = (res: http.ServerResponse, status: number, body: unknown, contentType = 'application/json'): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const close = ctx.draining ? { connection: 'close' } : {};
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...close });
    res.end(text);
  };

  const handler: http.RequestListener = (req, res) => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const found = findRoute(url.pathname);
    const label = found ? (found.route.path.endsWith('/') ? `${found.route.path}{id}` : found.route.path) : 'other';
    inFlight++;
    res.on('close', () => {
      inFlight--;
      metrics.inc('search_r3_http_requests_total', 'HTTP requests by route and status.', {
        route: label,
        status: String(res.statusCode),
      });
      const seconds = (performance.now() - started) / 1000;
      metrics.observe('search_r3_http_request_duration_seconds', 'HTTP request latency.', { route: label }, seconds);
    });
    const fail = (e: unknown): void => {
      const err =
        e instanceof HttpError
          ? e
          : e instanceof ModelUnavailableError
            ? new HttpError(503, e.message, 'model_unavailable')
            : new HttpError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, 'internal_error');
      if (err.status === 500) console.error(e);
      if (!res.headersSent) send(res, err.status, err.body());
      else res.destroy();
    };
    try {
      const authorized = apiKey === null || apiKey.accepts(req.headers.authorization);
      const method = req.method ?? 'GET';
      const route = found?.route;
      if (route?.open && route.methods.includes(method)) {
        req.resume();
        const a = route.get!(ctx, found!.param, authorized);
        return send(res, a.status, a.body, a.contentType);
      }
      if (!authorized) {
        req.resume();
        throw new HttpError(401, 'Missing or incorrect API key; send Authorization: Bearer <key>.', 'invalid_api_key');
      }
      if (ctx.draining) {
        req.resume();
        throw new HttpError(503, 'the server is shutting down.', 'shutting_down');
      }
      if (!route || !route.methods.includes(method)) {
        req.resume();
        if (route?.json) throw new HttpError(405, `${route.path} takes POST.`, 'method_not_allowed');
        throw new HttpError(404, `no route ${method} ${url.pathname}.`, 'not_found');
      }
      if (route.get) {
        req.resume();
        const a = route.get(ctx, found!.param, authorized);
        return send(res, a.status, a.body, a.contentType);
      }
      readBody(req, maxBodyBytes)
        .then(parseJsonObject)
        .then((body) => route.json!(ctx, body))
        .then((out) => send(res, 200, out), fail);
    } catch (e) {
      fail(e);
    }
  };

  return {
    handler,
    metrics,
    inFlight: () => inFlight,
    drain: () => {
      ctx.draining = true;
    },
  };
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Starts the server on host:port (port 0: any free port) once the model is loaded in its worker. */
export async function startSearchServer(opts: ServeOptions & { host?: string; port?: number }): Promise<RunningServer> {
  const batching = { maxWaitMs: opts.maxWaitMs, maxBatchInputs: opts.maxBatchInputs };
  let model: WorkerBackend;
  if (opts.backend instanceof WorkerBackend) {
    model = opts.backend;
    model.configureBatching(batching);
  } else {
    model = await WorkerBackend.fromLocalBackend(opts.backend, batching);
  }
  let s: SearchServer;
  let server: http.Server;
  try {
    s = createSearchServer({ ...opts, backend: model });
    server = http.createServer({ keepAliveTimeout: 5000 }, s.handler);
    if (opts.index?.stats().documents) opts.index.warmHybrid();
    await listen(server, opts.port ?? 8080, opts.host ?? '127.0.0.1');
  } catch (e) {
    await model.close();
    throw e;
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    server,
    port: addr.port,
    url: `http://${host}:${addr.port}`,
    backend: model,
    close: () =>
      (closing ??= (async () => {
        s.drain();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // keep-alive connections become idle once their in-flight request is answered
        while (s.inFlight() > 0) await new Promise((r) => setTimeout(r, 10));
        server.closeIdleConnections();
        await closed;
        await model.close();
      })()),
  };
}
