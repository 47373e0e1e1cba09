/**
 * POST /v1/search: embeds the query in the model worker (reasoning first when asked) and ranks the
 * served index's documents, dense or fused with BM25. Hits have the fields `search-r3 search --json` prints.
 */
import { DEFAULT_MAX_REASONING_TOKENS, type QueryOptions } from '../../embed/index.js';
import { searchHitJson } from '../../search-index/search-json.js';
import { HttpError, badRequest } from '../http-error.js';
import { checkInputChars, checkReasoningWork } from '../input-limits.js';
import { queryOptions } from '../request-fields.js';
import type { ServerContext } from '../server-context.js';
import type { EmbedJob } from '../worker-protocol.js';

export async function search(ctx: ServerContext, body: Record<string, unknown>): Promise<unknown> {
  const { index, limits } = ctx;
  if (!index)
    throw new HttpError(404, 'this server has no index; start it with --index to use /v1/search.', 'no_index');
  ctx.checkModel(body.model);
  if (typeof body.query !== 'string' || body.query.trim() === '') {
    const code = body.query === undefined ? 'missing_required_parameter' : 'invalid_type';
    throw badRequest("'query' is required and must be a non-empty string.", 'query', code);
  }
  const k = body.k ?? 10;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > ctx.maxK)
    throw badRequest(`'k' must be an integer in [1, ${ctx.maxK}].`, 'k');
  const reasoning = body.reasoning ?? 'off';
  if (reasoning !== 'on' && reasoning !== 'off') throw badRequest("'reasoning' must be 'on' or 'off'.", 'reasoning');
  if (body.hybrid !== undefined && typeof body.hybrid !== 'boolean') {
    throw badRequest("'hybrid' must be a boolean.", 'hybrid', 'invalid_type');
  }
  const qopts: QueryOptions = queryOptions(body, '');
  const query = body.query;
  checkInputChars(query, 'query', limits.perInput, ctx.tokenChars);
  if (reasoning === 'on') {
    const budget = qopts.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS;
    checkReasoningWork(1, budget, ctx.maxReasoning, 'max_reasoning_tokens');
  }
  await ctx.refreshIndex();
  const t0 = performance.now();
  const job: EmbedJob = {
    texts: [query],
    mode: 'query',
    reasoning: reasoning === 'on',
    query: qopts,
    limits,
    param: 'query',
  };
  const {
    results: [q],
    promptTokens,
  } = await ctx.queue(1, () => ctx.model.embed(job));
  const t1 = performance.now();
  const searchOpts = { k, hybrid: body.hybrid === true, queryText: query };
  const hits = await ctx.fromIndex(() => index.searchVector(q.vector, searchOpts));
  const t2 = performance.now();
  return {
    object: 'search.result',
    model: ctx.modelName,
    query,
    ...(reasoning === 'on' ? { reasoning: q.reasoning, forced: q.forced } : {}),
    data: hits.map((h, i) => searchHitJson(h, i + 1)),
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens + q.tokens.length },
    timings: { embed_ms: t1 - t0, search_ms: t2 - t1 },
  };
}
