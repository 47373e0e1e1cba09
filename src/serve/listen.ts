/** Listening and closing, for both servers: close() finishes in-flight requests before it resolves. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

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
  const server = http.createServer({ keepAliveTimeout: 5000, ...RECEIVE_LIMITS }, (req, res) => {
    unanswered.add(req);
    res.once('close', () => unanswered.delete(req));
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
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
