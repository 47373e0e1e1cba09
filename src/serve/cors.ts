/**
 * Cross-origin requests (CORS): which web pages on other origins may call the API from a browser. None may
 * unless the server names them (`serve --cors-origin`, `corsOrigins` from code): a page the user happens
 * to visit could otherwise read what a local server answers. An allowed origin's requests get
 * Access-Control-Allow-Origin on every answer, errors and event streams included, and its preflights
 * (OPTIONS, sent before Authorization or a JSON body) are answered before the API key is asked for.
 */
import type http from 'node:http';
import { HttpError } from './http-error.js';

/** The origins given, or '*' alone for any. */
export type CorsOrigins = readonly string[];

/** How long a browser may reuse a preflight's answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * Why `origin` is not an origin a browser sends (undefined when it is one): scheme, host and port only,
 * as the Origin header carries it, so that comparing it with that header is comparing strings.
 */
export function originProblem(origin: string): string | undefined {
  if (origin === '*') return undefined;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `'${origin}' is no origin: give scheme, host and port as a browser sends them (http://localhost:3000), or *`;
  }
  if (url.origin === 'null' || !['http:', 'https:'].includes(url.protocol))
    return `'${origin}' is no web origin: give an http:// or https:// one (http://localhost:3000), or *`;
  if (url.origin !== origin)
    return `'${origin}' is not written as a browser sends its Origin: give '${url.origin}' (no path, no final /)`;
  return undefined;
}

/** The 403 of a request from a page whose origin is not allowed, with the option that allows it. */
export function originNotAllowed(origin: string | undefined): HttpError {
  // an Origin header no browser sends (a path, a final /) could not be allowed by naming it: say so instead
  if (origin !== undefined && originProblem(origin) !== undefined) {
    const why = `the Origin header '${origin}' is not an origin as browsers send it (scheme, host and port only)`;
    return new HttpError(403, `cross-origin requests are not allowed: ${why}.`, 'origin_not_allowed');
  }
  const named = origin ?? '<origin>';
  return new HttpError(
    403,
    `cross-origin requests from ${named} are not allowed: start the server with --cors-origin ${named} ` +
      '(corsOrigins from code) to let pages there call it.',
    'origin_not_allowed',
  );
}

export class CorsPolicy {
  private readonly any: boolean;
  private readonly origins: ReadonlySet<string>;

  constructor(origins: CorsOrigins = []) {
    this.any = origins.includes('*');
    this.origins = new Set(origins);
  }

  allows(origin: string | undefined): origin is string {
    return origin !== undefined && (this.any || this.origins.has(origin));
  }

  /**
   * Sets the allow-origin headers on `res` for a request from an allowed origin (Node merges them into
   * whatever head is written later, a route's own stream included); true when the request is a preflight,
   * which the caller answers with `preflight`.
   */
  admit(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const origin = req.headers.origin;
    if (this.allows(origin)) for (const [k, v] of Object.entries(this.allowOrigin(origin))) res.setHeader(k, v);
    // with origins named, every answer depends on the Origin sent, none too: a cache must not give one to another
    else if (!this.any && this.origins.size > 0) res.setHeader('vary', 'Origin');
    return req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
  }

  /**
   * A body a page of an origin not allowed sent without a preflight, which a browser does only for a
   * "simple" request (a form's or text/plain body, never JSON): such a page cannot read the answer, but the
   * model would still do the work it asks for, for any site the user visits. Refused as its preflight
   * would have been; clients that are no browser send no Origin, and the server's own pages send JSON.
   */
  refusesUnasked(req: http.IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || this.allows(origin) || req.method === 'GET' || req.method === 'HEAD') return false;
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    return !(type === 'application/json' || type.endsWith('+json'));
  }

  /** The headers of a preflight's 204 from `origin`, which `allows`, to a route taking `methods`. */
  preflight(origin: string, headers: http.IncomingHttpHeaders, methods: readonly string[]): Record<string, string> {
    const answer: Record<string, string> = {
      ...this.allowOrigin(origin),
      'access-control-allow-methods': methods.join(', '),
      'access-control-max-age': String(PREFLIGHT_MAX_AGE_S),
    };
    // Every header the page wants to send: the server reads Authorization, Content-Type and Content-Encoding,
    // and OpenAI's browser client adds headers of its own (x-stainless-*), which a fixed list would refuse.
    // (A wildcard would not do: it leaves Authorization out.)
    const asked = headers['access-control-request-headers'];
    if (asked) answer['access-control-allow-headers'] = asked;
    return answer;
  }

  /**
   * The answer's allowed origin: * where any is, so no request's header is echoed; else the request's own,
   * with Vary, since the answer then depends on it and a cache must keep one origin's apart from another's.
   */
  private allowOrigin(origin: string): Record<string, string> {
    return this.any
      ? { 'access-control-allow-origin': '*' }
      : { 'access-control-allow-origin': origin, vary: 'Origin' };
  }
}
