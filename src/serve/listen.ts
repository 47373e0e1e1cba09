/** Listening and closing, for both servers: close() finishes in-flight requests before it resolves. */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpError, badRequest } from './http-error.js';

/**
 * How long shutdown waits for a request whose body is still arriving: a client that sent its headers and
 * part of a body, then stalled, would otherwise hold the exit until the request timeout.
 */
const BODY_GRACE_MS = 1500;

/**
 * Bounds on receiving a request (not on answering it): headers within 10 s, the whole request within 30 s
 * (a 1 MiB body at 35 kB/s), checked every second; Node's defaults (60 s, 300 s, checked every 30 s) let a
 * stalled client hold a connection and its place among the in-flight requests for minutes.
 */
const RECEIVE_LIMITS = { headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1000 };

/** A request that Node's HTTP parser refused (its code), as the HttpError its client is answered with. */
function parserRefusal(e: NodeJS.ErrnoException & { reason?: string }): HttpError {
  const { headersTimeout, requestTimeout } = RECEIVE_LIMITS;
  switch (e.code) {
    case 'HPE_HEADER_OVERFLOW': {
      const fewer = 'send a shorter URL or fewer headers';
      const message = `the request line and headers exceed ${http.maxHeaderSize} bytes; ${fewer}.`;
      return new HttpError(431, message, 'headers_too_large');
    }
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new HttpError(413, 'the chunk extensions of the body are too large.', 'request_too_large');
    case 'ERR_HTTP_REQUEST_TIMEOUT': {
      const message =
        `the request did not arrive in time: its headers are due within ${headersTimeout / 1000} s, ` +
        `all of it within ${requestTimeout / 1000} s.`;
      return new HttpError(408, message, 'request_timeout');
    }
    case 'HPE_INVALID_EOF_STATE':
      return badRequest('the connection ended before the whole request arrived.', null, 'invalid_http');
    default:
      return badRequest(`the request is not valid HTTP/1.1 (${e.reason ?? e.message}).`, null, 'invalid_http');
  }
}

/**
 * Answers a request that Node's HTTP parser refused in OpenAI's error shape, where Node would send the status
 * alone: an SDK then shows the reason, not '431 status code (no body)'. As Node does, only on a connection where
 * nothing has been written yet (a response under way there would be cut into), and the connection then closes.
 */
function answerClientError(e: NodeJS.ErrnoException, socket: Duplex): void {
  if (e.code !== 'ECONNRESET' && socket.writable && (socket as Socket).bytesWritten === 0) {
    const err = parserRefusal(e);
    const body = JSON.stringify(err.body());
    socket.write(
      `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(e);
}

/** HTTP/1.1 requires a Host header, and a server must refuse a request without one (RFC 9112, 3.2). */
function refuseHostless(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.resume();
  const err = badRequest('the request has no Host header, which HTTP/1.1 requires; send one.', null, 'invalid_http');
  const body = JSON.stringify(err.body());
  res.writeHead(err.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

/**
 * A listen failure the caller can fix (the port taken or privileged, a host this machine lacks), as one
 * sentence naming the option to change. `code` stays Node's (EADDRINUSE, EACCES, EADDRNOTAVAIL, ENOTFOUND),
 * for a program that tries another port; `cause` is Node's error.
 */
export class ListenError extends Error {
  constructor(
    message: string,
    readonly code: string,
    cause: Error,
  ) {
    super(message, { cause });
    this.name = 'ListenError';
  }
}

/** How a caller spells the options: the package's 'port' and 'host', or the CLI's --port and --host. */
export interface ListenOptionNames {
  port: string;
  host: string;
}

const API_NAMES: ListenOptionNames = { port: "'port'", host: "'host'" };

/** `e`, from listening on host:port, as a ListenError when the caller can fix it; null for anything else. */
export function listenProblem(
  e: unknown,
  host: string,
  port: number,
  names: ListenOptionNames = API_NAMES,
): ListenError | null {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  const sentence =
    code === 'EADDRINUSE'
      ? `${names.port} ${port} is in use; pick another with ${names.port} or stop the other server.`
      : code === 'EACCES'
        ? `${names.port} ${port} needs privileges this user lacks; pick a port above 1023.`
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
          ? `${names.host} ${host} is not an address of this machine; pick one it has (e.g. 127.0.0.1).`
          : null;
  return sentence === null ? null : new ListenError(sentence, code!, err);
}

export interface Listening {
  server: http.Server;
  url: string;
  port: number;
  /** Stops accepting connections and resolves once every in-flight request has been answered. */
  close(): Promise<void>;
}

export async function listen(
  handler: http.RequestListener,
  h: { inFlight: () => number; drain: () => void },
  port: number,
  host: string,
): Promise<Listening> {
  // requests not yet answered, so that shutdown can find those whose body has not fully arrived
  const unanswered = new Set<http.IncomingMessage>();
  // Node's own refusal of a request without Host is a bare 400 without a body; this one says why
  const server = http.createServer(
    { keepAliveTimeout: 5000, requireHostHeader: false, ...RECEIVE_LIMITS },
    (req, res) => {
      unanswered.add(req);
      res.once('close', () => unanswered.delete(req));
      if (req.headers.host === undefined && req.httpVersion === '1.1') return refuseHostless(req, res);
      handler(req, res);
    },
  );
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => {
    const refuse = (e: Error): void => reject(listenProblem(e, host, port) ?? e);
    server.once('error', refuse);
    server.listen(port, host, () => {
      server.off('error', refuse);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    server,
    port: addr.port,
    url: `http://${shown}:${addr.port}`,
    close: () =>
      (closing ??= (async () => {
        h.drain();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // keep-alive connections become idle once their in-flight request is answered; a request whose body
        // is still arriving after the grace is dropped (its socket closed), while complete ones are answered
        const started = performance.now();
        while (h.inFlight() > 0) {
          if (performance.now() - started >= BODY_GRACE_MS) {
            for (const req of unanswered) if (!req.complete) req.socket.destroy();
          }
          await new Promise((r) => setTimeout(r, 10));
        }
        // every request has been answered; what is left are connections without a whole request (a client
        // that connected and sent nothing, or half its headers), which would hold the process until they give up
        server.closeAllConnections();
        await closed;
      })()),
  };
}
