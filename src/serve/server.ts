/**
 * The HTTP server: OpenAI-compatible POST /v1/embeddings (plus GET /v1/models), POST /v1/search over an
 * index, GET /health and GET /metrics. Embedding work from concurrent requests is batched
 * (embedding-batcher.ts); every limit answers with a 4xx in OpenAI's error shape; close() stops
 * accepting connections and resolves once in-flight requests have finished.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type QueryEmbedding, type QueryOptions } from '../embed/index.js';
import { generate } from '../model/generate.js';
import type { LocalBackend } from '../index/embedding-backend.js';
import type { SearchIndex } from '../index/search-index.js';
import { EmbeddingBatcher, QueueFullError } from './embedding-batcher.js';
import { HttpError, badRequest } from './http-error.js';
import { Metrics } from './metrics.js';

export interface ServeOptions {
  backend: LocalBackend;
  index?: SearchIndex;
  /** The name clients pass as `model` (the model id is accepted too). Default 'search-r3'. */
  modelName?: string;
  /** Require `Authorization: Bearer <apiKey>` on everything but /health. */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** Most inputs in one /v1/embeddings request (default 256). */
  maxInputs?: number;
  /** Most tokens in one input text (default the model's context length). */
  maxTokensPerInput?: number;
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
  /** Stops accepting, finishes in-flight requests, then resolves. */
  close(): Promise<void>;
}

interface EmbeddingExtension { mode: 'document' | 'query'; reasoning: 'on' | 'off'; max_reasoning_tokens?: number; temperature?: number; top_p?: number; seed?: number }

export function createSearchServer(opts: ServeOptions): { handler: http.RequestListener; batcher: EmbeddingBatcher; metrics: Metrics; inFlight: () => number; drain: () => void } {
  const { backend, index } = opts;
  const embedder = backend.embedder;
  const modelName = opts.modelName ?? 'search-r3';
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  const maxInputs = opts.maxInputs ?? 256;
  const maxTokens = opts.maxTokensPerInput ?? embedder.maxLength;
  const maxK = opts.maxK ?? 1000;
  const metrics = new Metrics();
  const batcher = new EmbeddingBatcher(embedder, {
    maxQueue: opts.maxQueue, maxWaitMs: opts.maxWaitMs, maxBatchInputs: opts.maxBatchInputs,
    onBatch: (n, kind, s) => {
      metrics.inc('search_r3_batches_total', 'Forward batches run.', { kind });
      metrics.inc('search_r3_batch_inputs_total', 'Inputs embedded in batches.', { kind }, n);
      metrics.observe('search_r3_batch_duration_seconds', 'Time of one embedding batch.', { kind }, s);
    },
  });
  metrics.gauge('search_r3_queue_inputs', 'Inputs waiting for or in a forward pass.', () => batcher.depth);
  metrics.gauge('process_resident_memory_bytes', 'Resident set size.', () => process.memoryUsage.rss());
  if (index) metrics.gauge('search_r3_index_documents', 'Documents in the served index.', () => index.stats().documents);
  let inFlight = 0;
  let draining = false;
  let lastRefresh = performance.now();
  const refreshMs = opts.refreshMs ?? 1000;
  metrics.gauge('search_r3_requests_in_flight', 'Requests being handled.', () => inFlight);

  const checkModel = (model: unknown): void => {
    if (model === undefined) return;
    if (typeof model !== 'string') throw badRequest("'model' must be a string.", 'model', 'invalid_type');
    if (model !== modelName && model !== backend.modelId) throw new HttpError(404, `The model '${model}' does not exist; this server serves '${modelName}'.`, 'model_not_found', 'model');
  };

  const countTokens = (text: string, param: string): number => {
    const n = embedder.tokenizer.encode(text).length;
    if (n > maxTokens) throw badRequest(`${param} has ${n} tokens; this server accepts at most ${maxTokens} tokens per input.`, param, 'context_length_exceeded');
    return n;
  };

  const queryOptions = (ext: Partial<EmbeddingExtension> & Record<string, unknown>, prefix: string): QueryOptions => {
    const num = (k: string, lo: number, hi: number): number | undefined => {
      const v = ext[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw badRequest(`'${prefix}${k}' must be a number in [${lo}, ${hi}].`, `${prefix}${k}`);
      return v;
    };
    const maxR = num('max_reasoning_tokens', 0, 4096);
    if (maxR !== undefined && !Number.isInteger(maxR)) throw badRequest(`'${prefix}max_reasoning_tokens' must be an integer.`, `${prefix}max_reasoning_tokens`);
    return { maxReasoningTokens: maxR, temperature: num('temperature', 0, 5), topP: num('top_p', 0, 1), seed: num('seed', 0, 2 ** 32 - 1) };
  };

  const embed = async (texts: string[], mode: 'document' | 'query', reasoning: 'on' | 'off', qopts: QueryOptions): Promise<QueryEmbedding[]> => {
    try {
      if (mode === 'query' && reasoning === 'on') return await batcher.embedReasoning(texts, qopts);
      return await batcher.embedDirect(texts.map((t) => batcher.prepare(t, mode)));
    } catch (e) {
      if (e instanceof QueueFullError) throw new HttpError(429, e.message, 'rate_limit_exceeded');
      throw e;
    }
  };

  async function embeddings(body: Record<string, unknown>): Promise<unknown> {
    checkModel(body.model);
    if (body.model === undefined) throw badRequest("'model' is required.", 'model', 'missing_required_parameter');
    const input = body.input;
    // token ids (OpenAI's array-of-integers input) are embedded as given: the hidden state at the last token
    const tokenInput = parseTokenInput(input);
    if (tokenInput) return embedTokens(tokenInput, body);
    let texts: string[];
    if (typeof input === 'string') texts = [input];
    else if (Array.isArray(input) && input.every((x) => typeof x === 'string')) texts = input as string[];
    else throw badRequest("'input' is required and must be a string, an array of strings, or token ids.", 'input', input === undefined ? 'missing_required_parameter' : 'invalid_type');
    if (texts.length === 0) throw badRequest("'input' must not be empty.", 'input');
    if (texts.length > maxInputs) throw badRequest(`'input' has ${texts.length} items; at most ${maxInputs} per request.`, 'input', 'too_many_inputs');
    texts.forEach((t, i) => { if (t === '') throw badRequest(`input[${i}] is an empty string.`, `input[${i}]`); });
    const format = body.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64') throw badRequest("'encoding_format' must be 'float' or 'base64'.", 'encoding_format');
    if (body.dimensions !== undefined && body.dimensions !== embedder.dimension) throw badRequest(`'dimensions' must be ${embedder.dimension} (this model's size) or left out.`, 'dimensions');
    const ext = (body.search_r3 ?? {}) as Partial<EmbeddingExtension> & Record<string, unknown>;
    if (typeof ext !== 'object' || ext === null || Array.isArray(ext)) throw badRequest("'search_r3' must be an object.", 'search_r3', 'invalid_type');
    const mode = ext.mode ?? 'document';
    if (mode !== 'document' && mode !== 'query') throw badRequest("'search_r3.mode' must be 'document' or 'query'.", 'search_r3.mode');
    const reasoning = ext.reasoning ?? 'off';
    if (reasoning !== 'on' && reasoning !== 'off') throw badRequest("'search_r3.reasoning' must be 'on' or 'off'.", 'search_r3.reasoning');
    if (reasoning === 'on' && mode !== 'query') throw badRequest("reasoning applies to queries: set 'search_r3.mode' to 'query'.", 'search_r3.reasoning');
    const qopts = queryOptions(ext, 'search_r3.');
    let promptTokens = 0;
    texts.forEach((t, i) => { promptTokens += countTokens(t, `input[${i}]`); });
    const res = await embed(texts, mode, reasoning, qopts);
    const data = encodeVectors(res.map((r) => r.vector), format);
    metrics.inc('search_r3_embedded_inputs_total', 'Inputs embedded via /v1/embeddings.', { mode, reasoning }, texts.length);
    return {
      object: 'list', data, model: modelName,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      ...(mode === 'query' && reasoning === 'on' ? { search_r3: res.map((r) => ({ reasoning: r.reasoning, forced: r.forced, reasoning_tokens: r.tokens.length })) } : {}),
    };
  }

  function encodeVectors(vectors: readonly Float32Array[], format: unknown): { object: string; index: number; embedding: string | number[] }[] {
    return vectors.map((v, i) => ({
      object: 'embedding', index: i,
      embedding: format === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
    }));
  }

  async function embedTokens(seqs: number[][], body: Record<string, unknown>): Promise<unknown> {
    if (seqs.length > maxInputs) throw badRequest(`'input' has ${seqs.length} items; at most ${maxInputs} per request.`, 'input', 'too_many_inputs');
    if (body.search_r3 !== undefined) throw badRequest("'search_r3' does not apply to token-id input (it is embedded as given).", 'search_r3');
    const format = body.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64') throw badRequest("'encoding_format' must be 'float' or 'base64'.", 'encoding_format');
    const vocab = embedder.model.config.vocabSize;
    seqs.forEach((ids, i) => {
      if (ids.length === 0) throw badRequest(`input[${i}] has no tokens.`, `input[${i}]`);
      if (ids.length > embedder.maxLength) throw badRequest(`input[${i}] has ${ids.length} tokens; the context is ${embedder.maxLength}.`, `input[${i}]`, 'context_length_exceeded');
      if (!ids.every((t) => Number.isInteger(t) && t >= 0 && t < vocab)) throw badRequest(`input[${i}] has a token id outside [0, ${vocab}).`, `input[${i}]`);
    });
    let res: QueryEmbedding[];
    try { res = await batcher.embedDirect(seqs.map((ids) => ({ ids, truncated: 0 }))); } catch (e) {
      if (e instanceof QueueFullError) throw new HttpError(429, e.message, 'rate_limit_exceeded');
      throw e;
    }
    const tokens = seqs.reduce((a, s) => a + s.length, 0);
    metrics.inc('search_r3_embedded_inputs_total', 'Inputs embedded via /v1/embeddings.', { mode: 'tokens', reasoning: 'off' }, seqs.length);
    return { object: 'list', data: encodeVectors(res.map((r) => r.vector), format), model: modelName, usage: { prompt_tokens: tokens, total_tokens: tokens } };
  }

  /**
   * OpenAI's chat completions with the served model (one choice), so a generic OpenAI-compatible client
   * (RemoteEmbedder's 'openai' protocol, or anything else) can get the model's query analysis. A stop
   * that names a special token (e.g. <|embed_token|>) stops at that token; `stop_reason` says which stop
   * ended the text, as vLLM reports it. Generation runs in turn with the embedding batches.
   */
  async function chat(body: Record<string, unknown>): Promise<unknown> {
    if (body.model === undefined) throw badRequest("'model' is required.", 'model', 'missing_required_parameter');
    checkModel(body.model);
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0) throw badRequest("'messages' must be a non-empty array.", 'messages', messages === undefined ? 'missing_required_parameter' : 'invalid_type');
    messages.forEach((m: unknown, i) => {
      const x = m as { role?: unknown; content?: unknown };
      if (typeof m !== 'object' || m === null || !['system', 'user', 'assistant'].includes(x.role as string) || typeof x.content !== 'string') {
        throw badRequest(`messages[${i}] must be {"role": "system" | "user" | "assistant", "content": string}.`, `messages[${i}]`);
      }
    });
    if (body.n !== undefined && body.n !== 1) throw badRequest("only 'n': 1 is supported.", 'n');
    if (body.stream === true) throw badRequest("'stream' is not supported.", 'stream');
    const maxTokensRaw = body.max_completion_tokens ?? body.max_tokens ?? 256;
    if (typeof maxTokensRaw !== 'number' || !Number.isInteger(maxTokensRaw) || maxTokensRaw < 1 || maxTokensRaw > 4096) throw badRequest("'max_tokens' must be an integer in [1, 4096].", 'max_tokens');
    const q = queryOptions({ temperature: body.temperature ?? 1, top_p: body.top_p, seed: body.seed } as Record<string, unknown>, '');
    const stops = body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
    if (!Array.isArray(stops) || stops.length > 4 || !stops.every((x) => typeof x === 'string' && x !== '')) throw badRequest("'stop' must be a string or up to 4 strings.", 'stop');
    const tok = embedder.tokenizer;
    const prompt = tok.encode(tok.renderChat(messages as { role: string; content: string }[], { addGenerationPrompt: true }));
    if (prompt.length + maxTokensRaw > embedder.maxLength) {
      throw badRequest(`the prompt has ${prompt.length} tokens; with max_tokens ${maxTokensRaw} it exceeds the context of ${embedder.maxLength}.`, 'messages', 'context_length_exceeded');
    }
    const stopIds = new Map<number, string>();
    for (const t of ['<|im_end|>', '<|endoftext|>']) { const id = tok.tokenToId(t); if (id !== undefined) stopIds.set(id, t); }
    if (tok.eosTokenId !== null && !stopIds.has(tok.eosTokenId)) stopIds.set(tok.eosTokenId, '');
    const textStops: string[] = [];
    for (const s of stops as string[]) {
      const id = tok.tokenToId(s);
      if (id !== undefined && tok.isSpecial(id)) stopIds.set(id, s); else textStops.push(s);
    }
    let g;
    try {
      g = await batcher.runExclusive(() => generate(embedder.model, [prompt], {
        maxNewTokens: maxTokensRaw, temperature: q.temperature, topP: q.topP, seed: q.seed, stopTokens: [...stopIds.keys()],
      })[0]);
    } catch (e) {
      if (e instanceof QueueFullError) throw new HttpError(429, e.message, 'rate_limit_exceeded');
      throw e;
    }
    let finish: 'stop' | 'length' = g.finish;
    let stopReason: string | null = null;
    let tokens = g.tokens;
    if (g.finish === 'stop') {
      const last = tokens[tokens.length - 1];
      stopReason = stopIds.get(last) || null;
      tokens = tokens.slice(0, -1);
    }
    let content = tok.decode(tokens, { skipSpecialTokens: true });
    for (const s of textStops) {
      const at = content.indexOf(s);
      if (at >= 0) { content = content.slice(0, at); finish = 'stop'; stopReason = s; }
    }
    return {
      id: `chatcmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`, object: 'chat.completion',
      created: Math.floor(Date.now() / 1000), model: modelName,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finish, stop_reason: stopReason, logprobs: null }],
      usage: { prompt_tokens: prompt.length, completion_tokens: g.tokens.length, total_tokens: prompt.length + g.tokens.length },
    };
  }

  async function search(body: Record<string, unknown>): Promise<unknown> {
    if (!index) throw new HttpError(404, 'this server has no index; start it with --index to use /v1/search.', 'no_index');
    checkModel(body.model);
    if (typeof body.query !== 'string' || body.query.trim() === '') throw badRequest("'query' is required and must be a non-empty string.", 'query', body.query === undefined ? 'missing_required_parameter' : 'invalid_type');
    const k = body.k ?? 10;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > maxK) throw badRequest(`'k' must be an integer in [1, ${maxK}].`, 'k');
    const reasoning = body.reasoning ?? 'off';
    if (reasoning !== 'on' && reasoning !== 'off') throw badRequest("'reasoning' must be 'on' or 'off'.", 'reasoning');
    if (body.hybrid !== undefined && typeof body.hybrid !== 'boolean') throw badRequest("'hybrid' must be a boolean.", 'hybrid', 'invalid_type');
    const qopts = queryOptions(body as Record<string, unknown>, '');
    const tokens = countTokens(body.query, 'query');
    if (performance.now() - lastRefresh >= refreshMs) {
      lastRefresh = performance.now();
      await index.refresh();
    }
    const t0 = performance.now();
    const [q] = await embed([body.query], 'query', reasoning, qopts);
    const t1 = performance.now();
    const hits = await index.searchVector(q.vector, { k, hybrid: body.hybrid === true, queryText: body.query });
    const t2 = performance.now();
    return {
      object: 'search.result', model: modelName, query: body.query,
      ...(reasoning === 'on' ? { reasoning: q.reasoning, forced: q.forced } : {}),
      data: hits.map((h, i) => ({
        rank: i + 1, id: h.id, score: h.score, title: h.title, text: h.text, metadata: h.metadata ?? null,
        ...(h.denseScore !== undefined ? { dense_score: h.denseScore } : {}), ...(h.bm25Score !== undefined ? { bm25_score: h.bm25Score } : {}),
      })),
      usage: { prompt_tokens: tokens, total_tokens: tokens + q.tokens.length },
      timings: { embed_ms: t1 - t0, search_ms: t2 - t1 },
    };
  }

  function health(): unknown {
    return {
      status: draining ? 'draining' : 'ok', model: modelName, model_id: backend.modelId, source: backend.source,
      dimension: embedder.dimension, max_length: embedder.maxLength, templates: embedder.templates,
      queue: batcher.depth, ...(index ? { index: { documents: index.stats().documents, dir: index.dir } } : {}),
    };
  }

  const send = (res: http.ServerResponse, status: number, body: unknown, contentType = 'application/json'): void => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...(draining ? { connection: 'close' } : {}) });
    res.end(text);
  };

  const handler: http.RequestListener = (req, res) => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = ['/v1/embeddings', '/v1/search', '/v1/chat/completions', '/v1/models', '/health', '/metrics'].includes(url.pathname) ? url.pathname : 'other';
    inFlight++;
    res.on('close', () => {
      inFlight--;
      metrics.inc('search_r3_http_requests_total', 'HTTP requests by route and status.', { route, status: String(res.statusCode) });
      metrics.observe('search_r3_http_request_duration_seconds', 'HTTP request latency.', { route }, (performance.now() - started) / 1000);
    });
    const fail = (e: unknown): void => {
      const err = e instanceof HttpError ? e : new HttpError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, 'internal_error');
      if (err.status >= 500) console.error(e);
      if (!res.headersSent) send(res, err.status, err.body());
      else res.destroy();
    };
    try {
      if (route === '/health' && req.method === 'GET') return send(res, draining ? 503 : 200, health());
      if (opts.apiKey !== undefined) {
        const auth = req.headers.authorization ?? '';
        if (auth !== `Bearer ${opts.apiKey}`) { req.resume(); throw new HttpError(401, 'Missing or incorrect API key; send Authorization: Bearer <key>.', 'invalid_api_key'); }
      }
      if (draining) { req.resume(); throw new HttpError(503, 'the server is shutting down.', 'shutting_down'); }
      if (route === '/metrics' && req.method === 'GET') return send(res, 200, metrics.render(), 'text/plain; version=0.0.4');
      if (route === '/v1/models' && req.method === 'GET') {
        return send(res, 200, { object: 'list', data: [{ id: modelName, object: 'model', created: 0, owned_by: 'search-r3' }] });
      }
      if (route === '/v1/embeddings' || route === '/v1/search' || route === '/v1/chat/completions') {
        if (req.method !== 'POST') { req.resume(); throw new HttpError(405, `${route} takes POST.`, 'method_not_allowed'); }
        const handle = route === '/v1/embeddings' ? embeddings : route === '/v1/search' ? search : chat;
        readJson(req, maxBodyBytes).then(handle).then((out) => send(res, 200, out), fail);
        return;
      }
      req.resume();
      throw new HttpError(404, `no route ${req.method} ${url.pathname}.`, 'not_found');
    } catch (e) {
      fail(e);
    }
  };

  return { handler, batcher, metrics, inFlight: () => inFlight, drain: () => { draining = true; } };
}

/** OpenAI's token-id input: one sequence (integers) or several (arrays of integers); null when the input is not token ids. */
function parseTokenInput(input: unknown): number[][] | null {
  if (!Array.isArray(input) || input.length === 0) return null;
  if (input.every((x) => typeof x === 'number')) return [input as number[]];
  if (input.every((x) => Array.isArray(x) && x.every((y) => typeof y === 'number'))) return input as number[][];
  return null;
}

/** Reads a JSON object body, refusing (413) more than `limit` bytes without buffering them. */
function readJson(req: http.IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      req.resume();
      reject(new HttpError(413, `the request body is ${declared} bytes; the limit is ${limit}.`, 'request_too_large'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new HttpError(413, `the request body exceeds the limit of ${limit} bytes.`, 'request_too_large'));
        return;
      }
      chunks.push(c);
    });
    req.on('error', (e) => { if (!failed) { failed = true; reject(e); } });
    req.on('end', () => {
      if (failed) return;
      let v: unknown;
      try { v = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch (e) {
        reject(badRequest(`the body is not valid JSON (${(e as Error).message}).`, null, 'invalid_json'));
        return;
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) reject(badRequest('the body must be a JSON object.', null, 'invalid_json'));
      else resolve(v as Record<string, unknown>);
    });
  });
}

/** Starts the server on host:port (port 0: any free port). */
export async function startSearchServer(opts: ServeOptions & { host?: string; port?: number }): Promise<RunningServer> {
  const s = createSearchServer(opts);
  const server = http.createServer({ keepAliveTimeout: 5000 }, s.handler);
  if (opts.index?.stats().documents) opts.index.warmHybrid();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    server, port: addr.port, url: `http://${host}:${addr.port}`,
    close: () => closing ??= (async () => {
      s.drain();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // keep-alive connections become idle once their in-flight request is answered
      while (s.inFlight() > 0) await new Promise((r) => setTimeout(r, 10));
      await s.batcher.idle();
      server.closeIdleConnections();
      await closed;
    })(),
  };
}
