/**
 * POST /v1/search: embeds the query in the model worker (reasoning first when asked) and ranks the
 * served index's documents, dense or fused with BM25. Hits have the fields `search-r3 search --json` prints;
 * `"highlight": true` adds each hit's snippet with the query's terms marked, and a query the server has
 * judgments for (serve --qrels) gets each hit's grade and the ranking's nDCG@10.
 *
 * POST /v1/search/stream: the same request, answered as server-sent events: `reasoning` events with the
 * analysis so far while the model generates it, then one `result` event with /v1/search's answer (or one
 * `error` event in OpenAI's error shape).
 */
import type http from 'node:http';
import { DEFAULT_MAX_REASONING_TOKENS, type QueryOptions } from '../../embed/index.js';
import { reasoningJson, searchHitJson } from '../../search-index/search-json.js';
import type { SearchIndex } from '../../search-index/search-index.js';
import { HttpError, badRequest } from '../http-error.js';
import { eventWriter, lateError } from '../event-stream.js';
import { checkInputChars, checkReasoningWork, checkRequestChars } from '../input-limits.js';
import type { ProgressListener } from '../model-worker.js';
import {
  checkFieldsKnown,
  flagField,
  missingOrType,
  queryOptions,
  reasoningField,
  refuseField,
} from '../request-fields.js';
import { checkNumber } from '../../io/option-checks.js';
import type { ServerContext } from '../server-context.js';
import { queryTerms, snippet } from '../snippet.js';
import type { EmbedJob } from '../worker-protocol.js';

interface SearchRequest {
  index: SearchIndex;
  query: string;
  k: number;
  reasoning: 'on' | 'off';
  hybrid: boolean;
  highlight: boolean;
  truncate: boolean;
  qopts: QueryOptions;
}

/** The fields of a search request: any other is refused by name, as a misspelt one would go unnoticed. */
const SEARCH_FIELDS = new Set([
  'model',
  'query',
  'k',
  'reasoning',
  'hybrid',
  'highlight',
  'truncate',
  'max_reasoning_tokens',
  'temperature',
  'top_p',
  'seed',
]);

/**
 * Checks the request's fields and limits (400s name the field) before any model work; `endpoint` is the path
 * the request came to, which a refused field is said not to be a field of.
 */
function parseSearch(ctx: ServerContext, body: Record<string, unknown>, endpoint: string): SearchRequest {
  const { index, limits } = ctx;
  if (!index)
    throw new HttpError(404, 'this server has no index; start it with --index to use /v1/search.', 'no_index');
  ctx.checkModel(body.model);
  checkFieldsKnown(body, SEARCH_FIELDS, endpoint, [...SEARCH_FIELDS].join(', '));
  if (typeof body.query !== 'string' || body.query.trim() === '') {
    const code = typeof body.query === 'string' ? 'invalid_value' : missingOrType(body.query);
    throw badRequest("'query' is required and must be a non-empty string.", 'query', code);
  }
  const k = checkNumber(
    body.k ?? 10,
    "'k'",
    { integer: true, min: 1, max: ctx.maxK },
    refuseField(body.k, 'k', 'number'),
  )!;
  const reasoning = reasoningField(body.reasoning, 'reasoning');
  const [hybrid, highlight, truncate] = ['hybrid', 'highlight', 'truncate'].map((k) => flagField(body, k));
  const qopts: QueryOptions = queryOptions(body, '');
  const query = body.query;
  // a query to be cut need not fit the context, only the request's bound
  if (truncate) checkRequestChars(query.length, limits.perRequest, ctx.tokenChars, 'query');
  else checkInputChars(query, 'query', limits.perInput, ctx.tokenChars, 'truncate');
  if (reasoning === 'on') {
    const budget = qopts.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS;
    checkReasoningWork(1, budget, ctx.maxReasoning, 'max_reasoning_tokens');
  }
  return { index, query, k, reasoning, hybrid, highlight, truncate, qopts };
}

async function runSearch(
  ctx: ServerContext,
  r: SearchRequest,
  onProgress?: ProgressListener,
  signal?: AbortSignal,
): Promise<unknown> {
  await ctx.refreshIndex();
  const t0 = performance.now();
  const job: EmbedJob = {
    texts: [r.query],
    mode: 'query',
    reasoning: r.reasoning === 'on',
    query: r.qopts,
    limits: ctx.limits,
    param: 'query',
    truncate: r.truncate,
  };
  const {
    results: [q],
    promptTokens,
  } = await ctx.queue(1, () => ctx.model.embed(job, onProgress, signal));
  const t1 = performance.now();
  const searchOpts = { k: r.k, hybrid: r.hybrid, queryText: r.query };
  const hits = await ctx.fromIndex(() => r.index.searchVector(q.vector, searchOpts));
  const t2 = performance.now();
  const judged = ctx.judgments?.judge(
    r.query,
    hits.map((h) => h.id),
  );
  const terms = r.highlight ? queryTerms(r.query) : null;
  return {
    object: 'search.result',
    model: ctx.modelName,
    query: r.query,
    ...reasoningJson(r.reasoning, q),
    ...(r.truncate ? { truncated_tokens: q.truncated } : {}),
    data: hits.map((h, i) => ({
      ...searchHitJson(h, i + 1),
      ...(terms ? { snippet: snippet(h.text, terms) } : {}),
      ...(judged ? { grade: judged.grades[i] } : {}),
    })),
    ...(judged
      ? {
          judgments: {
            source: ctx.judgments!.name,
            query_id: judged.query_id,
            relevant: judged.relevant,
            ndcg_at_10: judged.ndcg_at_10,
          },
        }
      : {}),
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens + q.tokens.length },
    timings: { embed_ms: t1 - t0, search_ms: t2 - t1 },
  };
}

export function search(ctx: ServerContext, body: Record<string, unknown>, signal?: AbortSignal): Promise<unknown> {
  return runSearch(ctx, parseSearch(ctx, body, '/v1/search'), undefined, signal);
}

const event = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

export async function searchStream(
  ctx: ServerContext,
  body: Record<string, unknown>,
  res: http.ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  const r = parseSearch(ctx, body, '/v1/search/stream');
  const write = eventWriter(res, () => ctx.draining);
  try {
    const onProgress: ProgressListener = (_input, reasoning) => write(event('reasoning', { reasoning }));
    const answer = await runSearch(ctx, r, onProgress, signal);
    write(event('result', answer));
  } catch (e) {
    const err = lateError(e, res, signal);
    write(event('error', { status: err.status, ...err.body() }));
  }
  res.end();
}
