/**
 * Answers as server-sent events. The 200 and its headers go out with the first event, so that what a route
 * refuses before it (a prompt too long for the context, found by the model worker) is still a JSON 4xx.
 */
import type http from 'node:http';
import type { HttpError } from './http-error.js';
import { httpErrorOf, logInternalError } from './http-handler.js';

/** Writes one event's text; `draining`: whether the server is shutting down (the connection then closes). */
export function eventWriter(res: http.ServerResponse, draining: () => boolean): (text: string) => void {
  return (text) => {
    if (!res.headersSent) {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        ...(draining() ? { connection: 'close' } : {}),
      });
    }
    if (!res.destroyed && !res.writableEnded) res.write(text);
  };
}

/**
 * The error that ends a stream whose head has gone; an internal one is logged, as the handler logs a 500.
 * One before the head, or one after the client went away (`signal`: the work was dropped for it, which is
 * no error), is thrown on, for the handler to answer or drop as it does any route's.
 */
export function lateError(e: unknown, res: http.ServerResponse, signal: AbortSignal): HttpError {
  if (!res.headersSent || signal.aborted) throw e;
  const err = httpErrorOf(e);
  if (err.status === 500) logInternalError(e);
  return err;
}
