/**
 * The request dispatch both servers share (the search server, and the dashboard that runs without a
 * model): a table of routes, the API key, the body limit, errors in OpenAI's shape, request metrics.
 * A route answers from the URL (`get`), takes a JSON body and returns JSON (`json`), or takes a JSON
 * body and writes its own streamed answer (`stream`).
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import { inspect } from 'node:util';
import { terminalSafe } from '../io/one-line.js';
import { ApiKey } from './api-key.js';
import { type CorsOrigins, CorsPolicy, originNotAllowed } from './cors.js';
import { HttpError } from './http-error.js';
import type { Metrics } from './metrics.js';
import { ModelUnavailableError } from './model-worker.js';
import { parseJsonObject, readBody } from './request-body.js';

export type Answer = { status: number; body: unknown; contentType?: string; headers?: Record<string, string> };

export interface Route<C> {
  methods: readonly string[];
  /** An exact path, or a prefix ending in '/' (other than '/' itself) whose rest is the route's parameter. */
  path: string;
  /** Served without the API key (it decides itself how much to tell). */
  open?: boolean;
  /** `signal` aborts when the client goes away before its answer: the model drops what it has not started. */
  json?: (ctx: C, body: Record<string, unknown>, signal: AbortSignal) => Promise<unknown>;
  get?: (ctx: C, param: string, authorized: boolean, url: URL) => Answer;
  /**
   * Writes the answer itself; an HttpError thrown before it writes the head is sent as usual. A route that
   * has `json` too streams only when the body asks for it (`"stream": true`, as in OpenAI's API).
   */
  stream?: (ctx: C, body: Record<string, unknown>, res: http.ServerResponse, signal: AbortSignal) => Promise<void>;
}

export const ok = (body: unknown, contentType?: string): Answer => ({ status: 200, body, contentType });

export interface HandlerOptions<C> {
  routes: readonly Route<C>[];
  ctx: C;
  apiKey?: string;
  /** Largest request body in bytes, after decompression. */
  maxBodyBytes: number;
  /** Origins whose pages may call the server from a browser (cors.ts); none when left out. */
  corsOrigins?: CorsOrigins;
  metrics: Metrics;
  draining: () => boolean;
}

export interface Handler {
  handler: http.RequestListener;
  inFlight: () => number;
}

const isPrefix = (path: string): boolean => path.length > 1 && path.endsWith('/');

/** The methods a route answers: its own, and HEAD wherever it answers GET (Node sends HEAD's head alone). */
function allowedMethods<C>(route: Route<C>): readonly string[] {
  return route.methods.includes('GET') && !route.methods.includes('HEAD') ? [...route.methods, 'HEAD'] : route.methods;
}

/**
 * The route of a path, and the parameter of a prefix route; undefined for an unknown path. A prefix route takes a
 * parameter: its bare prefix (/v1/models/) would ask for the model '' and is no route, as any other trailing slash.
 */
function findRoute<C>(routes: readonly Route<C>[], pathname: string): { route: Route<C>; param: string } | undefined {
  for (const route of routes) {
    if (route.path === pathname && !isPrefix(route.path)) return { route, param: '' };
    if (isPrefix(route.path) && pathname.startsWith(route.path) && pathname.length > route.path.length) {
      return { route, param: decodeURIComponent(pathname.slice(route.path.length)) };
    }
  }
  return undefined;
}

/**
 * The request's path and query. A path (origin-form, '/...') is read as a path whatever follows its first
 * slash: resolved against a base, '//x/health' would be the URL of host x, path /health, and answered as
 * /health ('//health' as /). A target that is no URL (`http://[`), or a path that is not valid
 * percent-encoding (whatever route it names: a prefix route's parameter is decoded), is a 400, not an
 * exception in the server.
 */
function requestUrl(target = '/'): URL {
  let url: URL;
  try {
    url = target.startsWith('/') ? new URL(`http://localhost${target}`) : new URL(target, 'http://localhost');
  } catch {
    throw new HttpError(400, 'the request target is not a valid URL path.', 'invalid_path');
  }
  try {
    decodeURIComponent(url.pathname);
  } catch {
    throw new HttpError(400, 'the path is not valid percent-encoding.', 'invalid_path');
  }
  return url;
}

function methodNotAllowed(pathname: string, method: string, allowed: readonly string[]): HttpError {
  const message = `${pathname} takes ${allowed.join(' or ')}, not ${method}.`;
  return new HttpError(405, message, 'method_not_allowed', null, { allow: allowed.join(', ') });
}

/** The error a failed request is answered with: what the route threw when it is meant for the client, else a 500. */
export function httpErrorOf(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ModelUnavailableError) return new HttpError(503, e.message, 'model_unavailable');
  return new HttpError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, 'internal_error');
}

/**
 * An internal error on the server's stderr, stack and all, with control characters dropped: its message may
 * quote a request (a chat template's words on the messages it failed on), and an escape sequence in one would
 * act on the operator's terminal or log viewer.
 */
export function logInternalError(e: unknown): void {
  process.stderr.write(`${terminalSafe(inspect(e))}\n`);
}

export function createHandler<C>(o: HandlerOptions<C>): Handler {
  const { metrics } = o;
  const apiKey = o.apiKey !== undefined ? new ApiKey(o.apiKey) : null;
  const cors = new CorsPolicy(o.corsOrigins);
  let inFlight = 0;

  /**
   * `close`: the connection ends once the answer is sent (Node destroys it after the flush), as when the
   * server drains, or when the body was refused unread: reading on to keep the connection would take in
   * whatever a client sends, however much.
   */
  const send = (res: http.ServerResponse, a: Answer, close = false): void => {
    const text = typeof a.body === 'string' || Buffer.isBuffer(a.body) ? a.body : JSON.stringify(a.body);
    const closing = close || o.draining() ? { connection: 'close' } : {};
    res.writeHead(a.status, {
      'content-type': a.contentType ?? 'application/json',
      'content-length': Buffer.byteLength(text),
      ...a.headers,
      ...closing,
    });
    res.end(text);
  };

  // One 'close' listener a socket, whatever number of requests a client pipelines on it, calls their `done`s.
  const pending = new WeakMap<Socket, Set<() => void>>();
  const whenSocketCloses = (socket: Socket, done: () => void): void => {
    let set = pending.get(socket);
    if (!set) {
      const created = new Set<() => void>();
      pending.set(socket, created);
      socket.once('close', () => {
        for (const f of [...created]) f();
      });
      set = created;
    }
    set.add(done);
  };

  const handler: http.RequestListener = (req, res) => {
    const started = performance.now();
    // first, so that every answer to an allowed origin carries its headers, errors included
    const preflight = cors.admit(req, res);
    let url = new URL('http://localhost/');
    let found: { route: Route<C>; param: string } | undefined;
    let badPath: unknown = null;
    try {
      url = requestUrl(req.url);
      found = findRoute(o.routes, url.pathname);
    } catch (e) {
      badPath = e;
    }
    const label = found ? (isPrefix(found.route.path) ? `${found.route.path}{id}` : found.route.path) : 'other';
    // A request is done when its response closes, or when its socket does: a pipelined request behind one
    // whose client went away never gets a response of its own, and shutdown waits for the count to reach 0.
    inFlight++;
    let open = true;
    const gone = new AbortController();
    const done = (): void => {
      if (!open) return;
      open = false;
      inFlight--;
      if (!res.writableFinished) gone.abort();
      pending.get(req.socket)?.delete(done);
      metrics.inc('search_r3_http_requests_total', 'HTTP requests by route and status.', {
        route: label,
        status: res.writableFinished ? String(res.statusCode) : 'aborted',
      });
      const seconds = (performance.now() - started) / 1000;
      metrics.observe('search_r3_http_request_duration_seconds', 'HTTP request latency.', { route: label }, seconds);
    };
    res.on('close', done);
    whenSocketCloses(req.socket, done);
    // the body was refused before it was all read (too large, an encoding not taken, not gzip)
    let bodyRefused = false;
    const fail = (e: unknown): void => {
      // work dropped because its client went away is no server error, and there is no one to answer
      if (gone.signal.aborted) return;
      const err = httpErrorOf(e);
      if (err.status === 500) logInternalError(e);
      if (!res.headersSent)
        send(res, { status: err.status, body: err.body(), headers: { ...err.headers } }, bodyRefused);
      else res.destroy();
    };
    try {
      if (badPath !== null) throw badPath;
      // a browser asks before Authorization or a JSON body is sent: answered before either is needed
      if (preflight) {
        req.resume();
        // an origin not allowed learns nothing of the routes: refused alike where there is one and where not
        const origin = req.headers.origin;
        if (!cors.allows(origin)) throw originNotAllowed(origin);
        if (!found) throw new HttpError(404, `no route ${url.pathname}.`, 'not_found');
        res.writeHead(204, cors.preflight(origin, req.headers, allowedMethods(found.route)));
        res.end();
        return;
      }
      if (cors.refusesUnasked(req)) {
        req.resume();
        throw originNotAllowed(req.headers.origin);
      }
      const authorized = apiKey === null || apiKey.accepts(req.headers.authorization);
      const method = req.method ?? 'GET';
      const route = found?.route;
      const allowed = route ? allowedMethods(route) : [];
      // a route open to all answers any client alike, the key deciding only how much it tells
      if (route?.open) {
        req.resume();
        if (!allowed.includes(method)) throw methodNotAllowed(url.pathname, method, allowed);
        return send(res, route.get!(o.ctx, found!.param, authorized, url));
      }
      if (!authorized) {
        req.resume();
        throw new HttpError(401, 'Missing or incorrect API key; send Authorization: Bearer <key>.', 'invalid_api_key');
      }
      if (o.draining()) {
        req.resume();
        throw new HttpError(503, 'the server is shutting down.', 'shutting_down');
      }
      if (!route) {
        req.resume();
        throw new HttpError(404, `no route ${method} ${url.pathname}.`, 'not_found');
      }
      if (!allowed.includes(method)) {
        req.resume();
        throw methodNotAllowed(url.pathname, method, allowed);
      }
      if (route.get) {
        req.resume();
        return send(res, route.get(o.ctx, found!.param, authorized, url));
      }
      const body = readBody(req, o.maxBodyBytes).then(parseJsonObject, (e: unknown) => {
        bodyRefused = true;
        throw e;
      });
      const streams = (b: Record<string, unknown>): boolean => !route.json || (!!route.stream && b.stream === true);
      body
        .then(async (b) => {
          if (streams(b)) return route.stream!(o.ctx, b, res, gone.signal);
          send(res, { status: 200, body: await route.json!(o.ctx, b, gone.signal) });
        })
        .catch(fail);
    } catch (e) {
      fail(e);
    }
  };
  return { handler, inFlight: () => inFlight };
}
