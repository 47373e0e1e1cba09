/**
 * The web pages, served by the same process and port as the API, with no file from anywhere else:
 *   GET /          the search playground (needs an index)
 *   GET /runs      the training-run dashboard
 *   GET /web/{f}   their scripts and styles, bundled into dist/web by `npm run build` (scripts/build-web.mjs)
 * The pages hold no data, so they are served without the API key; every call they make sends it.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HttpError } from '../http-error.js';
import type { Answer, Route } from '../http-handler.js';
import type { WebContext } from '../server-context.js';
import { listRuns, readRun } from './runs.js';

/** dist/web, beside dist/src where this module runs from. */
const WEB_DIR = fileURLToPath(new URL('../../../web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
};

/** Scripts only from this server; uPlot sizes its canvas through inline style attributes. */
const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "connect-src 'self'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

let assets: Map<string, { body: Buffer; type: string }> | null = null;

/** The built files, read once: a fixed set, so a path can only name one of them. */
function loadAssets(): Map<string, { body: Buffer; type: string }> {
  if (assets) return assets;
  if (!existsSync(WEB_DIR)) {
    throw new HttpError(503, 'the web pages are not built; run npm run build in the search-r3 package.', 'no_pages');
  }
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of readdirSync(WEB_DIR)) {
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (type) files.set(name, { body: readFileSync(WEB_DIR + name), type });
  }
  return (assets = files);
}

export function asset(name: string): Answer {
  const a = loadAssets().get(name);
  if (!a) throw new HttpError(404, `no file /web/${name}.`, 'not_found');
  return { status: 200, body: a.body, contentType: a.type, headers: HEADERS };
}

export const WEB_ROUTES: readonly Route<WebContext>[] = [
  { methods: ['GET', 'HEAD'], path: '/', open: true, get: () => asset('playground.html') },
  { methods: ['GET', 'HEAD'], path: '/runs', open: true, get: () => asset('dashboard.html') },
  { methods: ['GET', 'HEAD'], path: '/web/', open: true, get: (_ctx, name) => asset(name) },
  { methods: ['GET'], path: '/v1/runs', get: (ctx) => listRuns(ctx) },
  { methods: ['GET'], path: '/v1/runs/', get: (ctx, id, _a, url) => readRun(ctx, id, url) },
];
