/**
 * POST /v1/embeddings: OpenAI's embeddings API. Texts get the Search-R3 prompt of their mode (document by
 * default, or query, with reasoning when asked through the `search_r3` extension); token ids (OpenAI's
 * array-of-integers input) are embedded as given, the hidden state at their last token.
 */
import { DEFAULT_MAX_REASONING_TOKENS } from '../../embed/index.js';
import { badRequest } from '../http-error.js';
import {
  checkInputChars,
  checkInputTokens,
  checkReasoningWork,
  checkRequestChars,
  checkRequestTokens,
} from '../input-limits.js';
import {
  checkFieldsKnown,
  checkInputCount,
  encodingFormat,
  flagField,
  parseTextInput,
  parseTokenInput,
  queryOptions,
  reasoningField,
  refuseField,
} from '../request-fields.js';
import type { ServerContext } from '../server-context.js';
import { type EmbedJob, inputParam } from '../worker-protocol.js';

interface EmbeddingExtension {
  mode: 'document' | 'query';
  reasoning: 'on' | 'off';
}

/**
 * OpenAI's fields of an embeddings request, and the extension: `user` (who asks) is taken and not used, and any
 * other field is refused by name (checkFieldsKnown).
 */
const EMBEDDING_FIELDS = new Set(['model', 'input', 'encoding_format', 'dimensions', 'user', 'search_r3']);

/** The fields of the `search_r3` extension: any other is refused, as a misspelt one would go unnoticed. */
const EXTENSION_FIELDS = new Set([
  'mode',
  'reasoning',
  'max_reasoning_tokens',
  'temperature',
  'top_p',
  'seed',
  'truncate',
]);

interface EmbeddingItem {
  object: string;
  index: number;
  embedding: string | number[];
}

function encodeVectors(vectors: readonly Float32Array[], format: 'float' | 'base64'): EmbeddingItem[] {
  return vectors.map((v, i) => ({
    object: 'embedding',
    index: i,
    embedding:
      format === 'base64' ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
  }));
}

export async function embeddings(
  ctx: ServerContext,
  body: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<unknown> {
  const { model, limits, tokenChars } = ctx;
  ctx.checkModel(body.model);
  checkFieldsKnown(body, EMBEDDING_FIELDS, '/v1/embeddings', [...EMBEDDING_FIELDS].join(', '));
  if (body.model === undefined || body.model === null) {
    throw badRequest("'model' is required.", 'model', 'missing_required_parameter');
  }
  if (body.dimensions !== undefined && body.dimensions !== null && body.dimensions !== model.dimension) {
    const why = `this model's vectors have ${model.dimension} and cannot be shortened`;
    throw refuseField(
      body.dimensions,
      'dimensions',
      'number',
    )(`'dimensions' must be ${model.dimension} or left out: ${why}.`);
  }
  const tokenInput = parseTokenInput(body.input);
  if (tokenInput) return embedTokens(ctx, tokenInput, Array.isArray((body.input as unknown[])[0]), body, signal);
  const texts = parseTextInput(body.input, ctx.maxInputs, body.search_r3 !== undefined && body.search_r3 !== null);
  const format = encodingFormat(body.encoding_format);
  const ext = (body.search_r3 ?? {}) as Partial<EmbeddingExtension> & Record<string, unknown>;
  if (typeof ext !== 'object' || ext === null || Array.isArray(ext)) {
    throw badRequest("'search_r3' must be an object.", 'search_r3', 'invalid_type');
  }
  checkFieldsKnown(ext, EXTENSION_FIELDS, 'the search_r3 extension', [...EXTENSION_FIELDS].join(', '), 'search_r3.');
  const mode = ext.mode ?? 'document';
  if (mode !== 'document' && mode !== 'query')
    throw refuseField(mode, 'search_r3.mode', 'string')("'search_r3.mode' must be 'document' or 'query'.");
  const truncate = flagField(ext, 'truncate', 'search_r3.');
  const reasoning = reasoningField(ext.reasoning, 'search_r3.reasoning');
  if (reasoning === 'on' && mode !== 'query') {
    throw badRequest("reasoning applies to queries: set 'search_r3.mode' to 'query'.", 'search_r3.reasoning');
  }
  const qopts = queryOptions(ext, 'search_r3.');
  const job: EmbedJob = {
    texts,
    mode,
    reasoning: reasoning === 'on',
    query: qopts,
    limits,
    param: 'input',
    listed: Array.isArray(body.input),
    truncate,
  };
  // a text to be cut need not fit the context, only the request's bound (below)
  if (!truncate) {
    texts.forEach((t, i) => checkInputChars(t, inputParam(job, i), limits.perInput, tokenChars, 'search_r3.truncate'));
  }
  checkRequestChars(
    texts.reduce((a, t) => a + t.length, 0),
    limits.perRequest,
    tokenChars,
  );
  const budget = qopts.maxReasoningTokens ?? DEFAULT_MAX_REASONING_TOKENS;
  if (reasoning === 'on') checkReasoningWork(texts.length, budget, ctx.maxReasoning, 'search_r3.max_reasoning_tokens');
  const { results, promptTokens } = await ctx.queue(texts.length, () => model.embed(job, undefined, signal));
  ctx.metrics.inc(
    'search_r3_embedded_inputs_total',
    'Inputs embedded via /v1/embeddings.',
    { mode, reasoning },
    texts.length,
  );
  // what the extension reports of each input: its analysis, and how much of it was cut when cutting was asked
  const reports = results.map((r) => ({
    ...(reasoning === 'on' ? { reasoning: r.reasoning, forced: r.forced, reasoning_tokens: r.tokens.length } : {}),
    ...(truncate ? { truncated_tokens: r.truncated } : {}),
  }));
  return {
    object: 'list',
    data: encodeVectors(
      results.map((r) => r.vector),
      format,
    ),
    model: ctx.modelName,
    // the analyses are tokens the model generated: counted in the total, as /v1/search and chat count them
    usage: {
      prompt_tokens: promptTokens,
      total_tokens: promptTokens + results.reduce((a, r) => a + r.tokens.length, 0),
    },
    ...(reasoning === 'on' || truncate ? { search_r3: reports } : {}),
  };
}

async function embedTokens(
  ctx: ServerContext,
  seqs: number[][],
  listed: boolean,
  body: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<unknown> {
  const { model } = ctx;
  checkInputCount(seqs.length, ctx.maxInputs);
  if (body.search_r3 !== undefined && body.search_r3 !== null) {
    throw badRequest("'search_r3' does not apply to token-id input (it is embedded as given).", 'search_r3');
  }
  const format = encodingFormat(body.encoding_format);
  const vocab = model.info.vocabSize;
  seqs.forEach((ids, i) => {
    // one flat sequence is the input itself, as a single string is
    const param = inputParam({ param: 'input', listed }, i);
    if (ids.length === 0) throw badRequest(`${param} has no tokens.`, param);
    // the per-input limit (--max-tokens, never above the context) binds token ids as it binds texts
    checkInputTokens(ids.length, param, ctx.limits.perInput);
    const bad = ids.findIndex((t) => !(Number.isInteger(t) && t >= 0 && t < vocab));
    if (bad >= 0) {
      throw badRequest(`${param}[${bad}] is ${ids[bad]}, not a token id in [0, ${vocab}).`, param);
    }
  });
  const tokens = seqs.reduce((a, s) => a + s.length, 0);
  checkRequestTokens(tokens, ctx.limits.perRequest);
  const res = await ctx.queue(seqs.length, () => model.embedTokens(seqs, signal));
  ctx.metrics.inc(
    'search_r3_embedded_inputs_total',
    'Inputs embedded via /v1/embeddings.',
    { mode: 'tokens', reasoning: 'off' },
    seqs.length,
  );
  return {
    object: 'list',
    data: encodeVectors(
      res.map((r) => r.vector),
      format,
    ),
    model: ctx.modelName,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}
