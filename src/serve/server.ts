/**
 * The HTTP server: OpenAI-compatible POST /v1/embeddings and /v1/chat/completions (plus GET /v1/models),
 * POST /v1/search over an index, GET|HEAD /health and GET /metrics. This thread does HTTP, JSON, the
 * checks that need no tokenizer, admission (a bounded queue), index search, health and metrics; the
 * model runs in a worker thread (model-worker.ts), which tokenizes, batches and runs the model. Every
 * limit answers with a 4xx in OpenAI's error shape; close() stops accepting connections and resolves
 * once in-flight requests have finished and the worker has stopped.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { DEFAULT_MAX_REASONING_TOKENS, type QueryOptions } from '../embed/index.js';
import type { LocalBackend } from '../search-index/embedding-backend.js';
import type { SearchIndex } from '../search-index/search-index.js';
import { searchHitJson } from '../search-index/search-json.js';
import { ApiKey } from './api-key.js';
import { HttpError, badRequest } from './http-error.js';
import {
  type TokenLimits, charsBeyond, checkInputChars, checkReasoningWork, checkRequestChars, checkRequestTokens,
} from './input-limits.js';
import { Metrics } from './metrics.js';
import { ModelUnavailableError, WorkerBackend } from './model-worker.js';
import { readBody, parseJsonObject } from './request-body.js';
import type { EmbedJob } from './worker-protocol.js';
import {
  checkInputCount, encodingFormat, parseChatFields, parseTextInput, parseTokenInput, queryOptions,
} from './request-fields.js';

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

interface EmbeddingExtension { mode: 'document' | 'query'; reasoning: 'on' | 'off' }

const ROUTES = ['/v1/embeddings', '/v1/search', '/v1/chat/completions', '/v1/models', '/health', '/metrics'];

/** One sentence for a health check or a 503 when the index layer throws (a damaged or vanished file). */
export function indexProblem(e: unknown, dir: string): string {
  // the machine's paths stay private: the index folder is named by its basename
  const name = path.basename(dir);
  const raw = e instanceof Error ? e.message : String(e);
  const message = raw.split(path.resolve(dir)).join(name).split(dir).join(name);
  if (e instanceof Error && e.name === 'IndexError') return message;
  return `the index '${name}' cannot be read (${message}); restore its folder or rebuild it with search-r3 index.`;
}

interface EmbeddingItem { object: string; index: number; embedding: string | number[] }

function encodeVectors(vectors: readonly Float32Array[], format: 'float' | 'base64'): EmbeddingItem[] {
  return vectors.map((v, i) => ({
    object: 'embedding', index: i,
    embedding: format === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
      : Array.from(v),
  }));
}

function notFoundModel(name: string, served: string): HttpError {
  const message = `The model '${name}' does not exist; this server serves '${served}'.`;
  return new HttpError(404, message, 'model_not_found', 'model');
}

export interface SearchServer {
  handler: http.RequestListener;
  metrics: Metrics;
  inFlight: () => number;
  drain: () => void;
}

function modelObject(id: string): Record<string, unknown> {
  return { id, object: 'model', created: 0, owned_by: 'search-r3' };
}

export function createSearchServer(opts: ServeOptions & { backend: WorkerBackend }): SearchServer {
  const { backend: model, index } = opts;
  const modelName = opts.modelName ?? 'search-r3';
  const apiKey = opts.apiKey !== undefined ? new ApiKey(opts.apiKey) : null;
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  const maxInputs = opts.maxInputs ?? 256;
  const limits: TokenLimits = {
    perInput: opts.maxTokensPerInput ?? model.maxLength, perRequest: opts.maxRequestTokens ?? 65_536,
  };
  const maxReasoning = opts.maxRequestReasoningTokens ?? 8192;
  const maxK = opts.maxK ?? 1000;
  const maxQueue = opts.maxQueue ?? 1024;
  const tokenChars = model.info.longestTokenChars;
  const metrics = new Metrics();
  let queued = 0;
  let inFlight = 0;
  let draining = false;
  let lastRefresh = performance.now();
  const refreshMs = opts.refreshMs ?? 1000;

  model.onBatch((n, kind, s) => {
    metrics.inc('search_r3_batches_total', 'Forward batches run.', { kind });
    metrics.inc('search_r3_batch_inputs_total', 'Inputs embedded in batches.', { kind }, n);
    metrics.observe('search_r3_batch_duration_seconds', 'Time of one embedding batch.', { kind }, s);
  });
  metrics.gauge('search_r3_queue_inputs', 'Inputs waiting for or in a forward pass.', () => queued);
  metrics.gauge('search_r3_model_up', 'Whether the model worker takes requests.',
    () => (model.health().state === 'ready' ? 1 : 0));
  metrics.gauge('search_r3_model_restarts', 'Times the model worker died and was restarted.',
    () => model.health().restarts);
  metrics.gauge('process_resident_memory_bytes', 'Resident set size.', () => process.memoryUsage.rss());
  if (index) {
    // NaN while the index cannot be read (/health says why)
    metrics.gauge('search_r3_index_documents', 'Documents in the served index.', () => {
      try { return index.stats().documents; } catch { return NaN; }
    });
  }
  metrics.gauge('search_r3_requests_in_flight', 'Requests being handled.', () => inFlight);

  const checkModel = (name: unknown): void => {
    if (name === undefined) return;
    if (typeof name !== 'string') throw badRequest("'model' must be a string.", 'model', 'invalid_type');
    if (name !== modelName && name !== model.modelId) throw notFoundModel(name, modelName);
  };

  /** Runs model work for `n` inputs within the queue bound (429 beyond it). */
  const queue = async <T>(n: number, work: () => Promise<T>): Promise<T> => {
    if (queued + n > maxQueue) {
      const message = `the embedding queue is full (${queued} inputs waiting, limit ${maxQueue}); retry later`;
      throw new HttpError(429, message, 'rate_limit_exceeded');
    }
    queued += n;
    try { return await work(); } finally { queued -= n; }
  };

  /** Index calls: whatever the index layer throws (a damaged file) is a 503 with the reason. */
  const fromIndex = async <T>(dir: string, call: () => T | Promise<T>): Promise<T> => {
    try { return await call(); } catch (e) { throw new HttpError(503, indexProblem(e, dir), 'index_unavailable'); }
  };

  async function embeddings(body: Record<string, unknown>): Promise<unknown> {
    checkModel(body.model);
    if (body.model === undefined) throw badRequest("'model' is required.", 'model', 'missing_required_parameter');
    // token ids (OpenAI's array-of-integers input) are embedded as given: the hidden state at the last token
    const tokenInput = parseTokenInput(body.input);
    if (tokenInput) return embedTokens(tokenInput, body);
    const texts = parseTextInput(body.input, maxInputs);
    const format = encodingFormat(body.encoding_format);
    if (body.dimensions !== undefined && body.dimensions !== model.dimension) {
      throw badRequest(`'dimensions' must be ${model.dimension} (this model's size) or left out.`, 'dimensions');
    }
    const ext = (body.search_r3 ?? {}) as Partial<EmbeddingExtension> & Record<string, unknown>;
    if (typeof ext !== 'object' || ext === null || Array.isArray(ext)) {
      throw badRequest("'search_r3' must be an object.", 'search_r3', 'invalid_type');
    }
    const mode = ext.mode ?? 'document';
    if (mode !== 'document' && mode !== 'query') throw badRequest("'search_r3.mode' must be 'document' or 'query'.", 'search_r3.mode');
    const reasoning = ext.reasoning ?? 'off';
    if (reasoning !== 'on' && reasoning !== 'off') throw badRequest("'search_r3.reasoning' must be 'on' or 'off'.", 'search_r3.reasoning');
    if (reasoning === 'on' && mode !== 'query') {
      throw badRequest("reasoning applies to queries: set 'search_r3.mode' to 'query'.", 'search_r3.reasoning');
    }
    const qopts = queryOptions(ext, 'search_r3.');
    texts.forEach((t, i) => checkInputChars(t, `input[${i}]`, limits.perInput, tokenChars));
    checkRequestChars(texts.reduce((a, t) => a + t.length, 0), limits.perRequest, tokenChars);
    const budget = qopts.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS;
    if (reasoning === 'on') checkReasoningWork(texts.length, budget, maxReasoning, 'search_r3.max_reasoning_tokens');
    const job: EmbedJob = { texts, mode, reasoning: reasoning === 'on', query: qopts, limits, param: 'input' };
    const { results, promptTokens } = await queue(texts.length, () => model.embed(job));
    metrics.inc('search_r3_embedded_inputs_total', 'Inputs embedded via /v1/embeddings.', { mode, reasoning }, texts.length);
    const analyses = results.map((r) => ({
      reasoning: r.reasoning, forced: r.forced, reasoning_tokens: r.tokens.length,
    }));
    return {
      object: 'list', data: encodeVectors(results.map((r) => r.vector), format), model: modelName,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      ...(reasoning === 'on' ? { search_r3: analyses } : {}),
    };
  }

  async function embedTokens(seqs: number[][], body: Record<string, unknown>): Promise<unknown> {
    checkInputCount(seqs.length, maxInputs);
    if (body.search_r3 !== undefined) {
      throw badRequest("'search_r3' does not apply to token-id input (it is embedded as given).", 'search_r3');
    }
    const format = encodingFormat(body.encoding_format);
    const vocab = model.info.vocabSize;
    seqs.forEach((ids, i) => {
      const param = `input[${i}]`;
      if (ids.length === 0) throw badRequest(`${param} has no tokens.`, param);
      if (ids.length > model.maxLength) {
        const message = `${param} has ${ids.length} tokens; the context is ${model.maxLength}.`;
        throw badRequest(message, param, 'context_length_exceeded');
      }
      if (!ids.every((t) => Number.isInteger(t) && t >= 0 && t < vocab)) {
        throw badRequest(`${param} has a token id outside [0, ${vocab}).`, param);
      }
    });
    const tokens = seqs.reduce((a, s) => a + s.length, 0);
    checkRequestTokens(tokens, limits.perRequest);
    const res = await queue(seqs.length, () => model.embedTokens(seqs));
    metrics.inc('search_r3_embedded_inputs_total', 'Inputs embedded via /v1/embeddings.', { mode: 'tokens', reasoning: 'off' }, seqs.length);
    return {
      object: 'list', data: encodeVectors(res.map((r) => r.vector), format), model: modelName,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  }

  /** Chat completions, generated in the worker in turn with the embedding batches (see chat.ts). */
  async function chat(body: Record<string, unknown>): Promise<unknown> {
    if (body.model === undefined) throw badRequest("'model' is required.", 'model', 'missing_required_parameter');
    checkModel(body.model);
    const job = parseChatFields(body);
    const chars = job.messages.reduce((a, m) => a + m.content.length, 0);
    if (chars > charsBeyond(model.maxLength, tokenChars)) {
      const message = `the messages have ${chars} characters, more than the ${model.maxLength} tokens of the context `
        + 'can hold; shorten them.';
      throw badRequest(message, 'messages', 'context_length_exceeded');
    }
    const r = await queue(1, () => model.chat(job));
    return {
      id: `chatcmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`, object: 'chat.completion',
      created: Math.floor(Date.now() / 1000), model: modelName,
      choices: [{
        index: 0, message: { role: 'assistant', content: r.content },
        finish_reason: r.finish, stop_reason: r.stopReason, logprobs: null,
      }],
      usage: {
        prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens,
        total_tokens: r.promptTokens + r.completionTokens,
      },
    };
  }

  async function search(body: Record<string, unknown>): Promise<unknown> {
    if (!index) throw new HttpError(404, 'this server has no index; start it with --index to use /v1/search.', 'no_index');
    checkModel(body.model);
    if (typeof body.query !== 'string' || body.query.trim() === '') {
      const code = body.query === undefined ? 'missing_required_parameter' : 'invalid_type';
      throw badRequest("'query' is required and must be a non-empty string.", 'query', code);
    }
    const k = body.k ?? 10;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > maxK) throw badRequest(`'k' must be an integer in [1, ${maxK}].`, 'k');
    const reasoning = body.reasoning ?? 'off';
    if (reasoning !== 'on' && reasoning !== 'off') throw badRequest("'reasoning' must be 'on' or 'off'.", 'reasoning');
    if (body.hybrid !== undefined && typeof body.hybrid !== 'boolean') {
      throw badRequest("'hybrid' must be a boolean.", 'hybrid', 'invalid_type');
    }
    const qopts: QueryOptions = queryOptions(body, '');
    const query = body.query;
    checkInputChars(query, 'query', limits.perInput, tokenChars);
    if (reasoning === 'on') {
      const budget = qopts.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS;
      checkReasoningWork(1, budget, maxReasoning, 'max_reasoning_tokens');
    }
    if (performance.now() - lastRefresh >= refreshMs) {
      lastRefresh = performance.now();
      await fromIndex(index.dir, () => index.refresh());
    }
    const t0 = performance.now();
    const job: EmbedJob = {
      texts: [query], mode: 'query', reasoning: reasoning === 'on', query: qopts, limits, param: 'query',
    };
    const { results: [q], promptTokens } = await queue(1, () => model.embed(job));
    const t1 = performance.now();
    const searchOpts = { k, hybrid: body.hybrid === true, queryText: query };
    const hits = await fromIndex(index.dir, () => index.searchVector(q.vector, searchOpts));
    const t2 = performance.now();
    return {
      object: 'search.result', model: modelName, query,
      ...(reasoning === 'on' ? { reasoning: q.reasoning, forced: q.forced } : {}),
      data: hits.map((h, i) => searchHitJson(h, i + 1)),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens + q.tokens.length },
      timings: { embed_ms: t1 - t0, search_ms: t2 - t1 },
    };
  }

  /** The status, and with `details` what the server serves; never the machine's paths (folders by basename). */
  function health(details: boolean): { status: number; body: Record<string, unknown> } {
    const m = model.health();
    let reason = draining ? 'the server is shutting down.' : m.reason;
    let indexInfo: Record<string, unknown> | undefined;
    if (index) {
      try {
        indexInfo = { documents: index.stats().documents, folder: path.basename(index.dir) };
      } catch (e) {
        reason ??= indexProblem(e, index.dir);
      }
    }
    const status = draining ? 'draining' : reason ? 'error' : 'ok';
    const code = status === 'ok' ? 200 : 503;
    if (!details) return { status: code, body: { status } };
    return {
      status: code,
      body: {
        status, ...(reason ? { reason } : {}),
        model: modelName, model_id: model.modelId, model_folder: path.basename(model.source),
        dimension: model.dimension, max_length: model.maxLength, templates: model.templates, queue: queued,
        model_worker: { state: m.state, restarts: m.restarts }, ...(indexInfo ? { index: indexInfo } : {}),
      },
    };
  }

  const send = (res: http.ServerResponse, status: number, body: unknown, contentType = 'application/json'): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const close = draining ? { connection: 'close' } : {};
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...close });
    res.end(text);
  };

  const handler: http.RequestListener = (req, res) => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const modelPath = url.pathname.startsWith('/v1/models/');
    const route = modelPath ? '/v1/models/{id}' : ROUTES.includes(url.pathname) ? url.pathname : 'other';
    inFlight++;
    res.on('close', () => {
      inFlight--;
      metrics.inc('search_r3_http_requests_total', 'HTTP requests by route and status.', { route, status: String(res.statusCode) });
      const seconds = (performance.now() - started) / 1000;
      metrics.observe('search_r3_http_request_duration_seconds', 'HTTP request latency.', { route }, seconds);
    });
    const fail = (e: unknown): void => {
      const err = e instanceof HttpError ? e
        : e instanceof ModelUnavailableError ? new HttpError(503, e.message, 'model_unavailable')
          : new HttpError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, 'internal_error');
      if (err.status === 500) console.error(e);
      if (!res.headersSent) send(res, err.status, err.body());
      else res.destroy();
    };
    try {
      const authorized = apiKey === null || apiKey.accepts(req.headers.authorization);
      if (route === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
        req.resume();
        const h = health(authorized);
        return send(res, h.status, h.body);
      }
      if (!authorized) {
        req.resume();
        throw new HttpError(401, 'Missing or incorrect API key; send Authorization: Bearer <key>.', 'invalid_api_key');
      }
      if (draining) { req.resume(); throw new HttpError(503, 'the server is shutting down.', 'shutting_down'); }
      if (route === '/metrics' && req.method === 'GET') return send(res, 200, metrics.render(), 'text/plain; version=0.0.4');
      if (route === '/v1/models' && req.method === 'GET') {
        return send(res, 200, { object: 'list', data: [modelObject(modelName)] });
      }
      if (modelPath && req.method === 'GET') {
        const id = decodeURIComponent(url.pathname.slice('/v1/models/'.length));
        if (id !== modelName && id !== model.modelId) throw notFoundModel(id, modelName);
        return send(res, 200, modelObject(id));
      }
      if (route === '/v1/embeddings' || route === '/v1/search' || route === '/v1/chat/completions') {
        if (req.method !== 'POST') { req.resume(); throw new HttpError(405, `${route} takes POST.`, 'method_not_allowed'); }
        const handle = route === '/v1/embeddings' ? embeddings : route === '/v1/search' ? search : chat;
        readBody(req, maxBodyBytes).then(parseJsonObject).then(handle).then((out) => send(res, 200, out), fail);
        return;
      }
      req.resume();
      throw new HttpError(404, `no route ${req.method} ${url.pathname}.`, 'not_found');
    } catch (e) {
      fail(e);
    }
  };

  return { handler, metrics, inFlight: () => inFlight, drain: () => { draining = true; } };
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
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
  let s: ReturnType<typeof createSearchServer>;
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
    server, port: addr.port, url: `http://${host}:${addr.port}`, backend: model,
    close: () => closing ??= (async () => {
      s.drain();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // keep-alive connections become idle once their in-flight request is answered
      while (s.inFlight() > 0) await new Promise((r) => setTimeout(r, 10));
      server.closeIdleConnections();
      await closed;
      await model.close();
    })(),
  };
}
