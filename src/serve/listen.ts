/** Listening and closing, for both servers: close() finishes in-flight requests before it resolves. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

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
  const server = http.createServer({ keepAliveTimeout: 5000 }, handler);
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
        // keep-alive connections become idle once their in-flight request is answered
        while (h.inFlight() > 0) await new Promise((r) => setTimeout(r, 10));
        // every request has been answered; what is left are connections without a whole request (a client
        // that connected and sent nothing, or half its headers), which would hold the process until they give up
        server.closeAllConnections();
        await closed;
      })()),
  };
}
