/**
 * GET /v1/runs: the training runs the dashboard shows, the recipe's evaluation tables, problems found.
 * GET /v1/runs/{id}?from=<byte>&file=<identity>: the run's metrics records from that point of its
 * metrics.jsonl on (see run-source.ts), which the dashboard polls while the run trains.
 */
import { HttpError, badRequest } from '../http-error.js';
import { type Answer, ok } from '../http-handler.js';
import type { WebContext } from '../server-context.js';

function source(ctx: WebContext): NonNullable<WebContext['runs']> {
  if (!ctx.runs) {
    const message =
      'this server shows no training runs; start it with --runs <run folder>, or run search-r3 dashboard <run folder>.';
    throw new HttpError(404, message, 'no_runs');
  }
  return ctx.runs;
}

export function listRuns(ctx: WebContext): Answer {
  return ok(source(ctx).list());
}

export function readRun(ctx: WebContext, id: string, url: URL): Answer {
  const runs = source(ctx);
  const fromText = url.searchParams.get('from') ?? '0';
  const from = Number(fromText);
  if (!/^\d+$/.test(fromText) || !Number.isSafeInteger(from))
    throw badRequest("'from' must be a byte offset (an integer >= 0).", 'from');
  const update = runs.read(id, from, url.searchParams.get('file'));
  if (!update) throw new HttpError(404, `no run '${id}' on this server; GET /v1/runs lists them.`, 'run_not_found');
  return ok(update);
}
