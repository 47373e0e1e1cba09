/**
 * The run dashboard on its own (search-r3 dashboard): the web routes and the runs API, with the search
 * server's dispatch, API key and error shape, and no model to load.
 */
import { type Route, createHandler } from './http-handler.js';
import { type Listening, listen } from './listen.js';
import { Metrics } from './metrics.js';
import type { RunSource } from './run-source.js';
import { WEB_ROUTES, asset } from './routes/web.js';
import type { WebContext } from './server-context.js';

export interface DashboardOptions {
  runs: RunSource;
  host?: string;
  port?: number;
  /** Require `Authorization: Bearer <apiKey>` on the runs API. */
  apiKey?: string;
  /** Origins whose web pages may read the runs from a browser (cors.ts), or ['*']; none when left out. */
  corsOrigins?: string[];
}

export async function startDashboardServer(o: DashboardOptions): Promise<Listening> {
  let draining = false;
  const routes: Route<WebContext>[] = [
    // no index to search here: the dashboard is the front page
    { methods: ['GET', 'HEAD'], path: '/', open: true, get: () => asset('dashboard.html') },
    { methods: ['GET', 'HEAD'], path: '/health', open: true, get: () => ({ status: 200, body: { status: 'ok' } }) },
    ...WEB_ROUTES,
  ];
  const h = createHandler({
    routes,
    ctx: { runs: o.runs },
    apiKey: o.apiKey,
    corsOrigins: o.corsOrigins,
    maxBodyBytes: 1024,
    metrics: new Metrics(),
    draining: () => draining,
  });
  const drain = (): void => {
    draining = true;
  };
  return listen(h.handler, { inFlight: h.inFlight, drain }, o.port ?? 8080, o.host ?? '127.0.0.1');
}
