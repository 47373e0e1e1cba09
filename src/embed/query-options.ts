/**
 * What a query's options (QueryOptions) accept, checked where a query enters: the Embedder, the index's search,
 * the LangChain embeddings and the remote backend refuse a bad one in one sentence naming it, before any model
 * work, rather than failing inside the sampler or rendering the prompt. The server reads the same options from
 * its requests and narrows two of them to bound its work (serve/request-fields.ts).
 */
import {
  type NumberRange,
  type Refuse,
  NON_NEGATIVE_INTEGER,
  NON_NEGATIVE_NUMBER,
  POSITIVE_INTEGER,
  SEED_RANGE,
  UNIT_INTERVAL,
  checkChoice,
  checkNumber,
  checkOptionsObject,
  refusal,
} from '../io/option-checks.js';
import type { EmbedderOptions, QueryOptions } from './embedder.js';

export const REASONING_MODES = ['on', 'off'] as const;

type NumericQueryOption = 'maxReasoningTokens' | 'temperature' | 'topP' | 'seed';

/** The numbers each numeric query option takes. */
export const QUERY_OPTION_RANGES: Readonly<Record<NumericQueryOption, NumberRange>> = {
  maxReasoningTokens: NON_NEGATIVE_INTEGER,
  temperature: NON_NEGATIVE_NUMBER,
  topP: UNIT_INTERVAL,
  seed: SEED_RANGE,
};

/** Every option a QueryOptions may hold: what a caller that takes query options among its own accepts of them. */
export const QUERY_OPTION_NAMES: readonly (keyof QueryOptions)[] = [
  'reasoning',
  ...(Object.keys(QUERY_OPTION_RANGES) as NumericQueryOption[]),
];

/** The refusal of the embed layer: a value outside what the option accepts. */
const refuseRange: Refuse = (message) => new RangeError(message);

/**
 * Refuses query options that are not what QueryOptions says they are, each in one sentence naming it (after
 * `prefix`, where the options sit in a larger object: 'query.').
 */
export function checkQueryOptions(opts: unknown, fail: Refuse = refuseRange, prefix = ''): QueryOptions {
  const o = checkOptionsObject(opts, prefix ? `'${prefix.slice(0, -1)}'` : 'the query options', fail);
  checkChoice(o.reasoning, `'${prefix}reasoning'`, REASONING_MODES, fail);
  for (const [k, r] of Object.entries(QUERY_OPTION_RANGES)) checkNumber(o[k], `'${prefix}${k}'`, r, fail);
  return o as QueryOptions;
}

/** Refuses texts to embed that are not an array of strings (`what`: 'query', 'document'), naming the first. */
export function checkTexts(texts: unknown, what: string, fail: Refuse = refuseRange): readonly string[] {
  if (!Array.isArray(texts)) throw fail(refusal(`the ${what} texts`, 'an array of strings', texts));
  // an indexed loop: forEach skips the holes of a sparse array (['a', , 'b']), whose vectors would be holes
  for (let i = 0; i < texts.length; i++) {
    if (typeof texts[i] !== 'string') throw fail(refusal(`${what} text [${i}]`, 'a string', texts[i]));
  }
  return texts as readonly string[];
}

/**
 * Refuses an Embedder's options that are not what EmbedderOptions says: a maxLength that is no number made every
 * vector NaN, and a batchTokens that is none failed inside the forward pass.
 */
export function checkEmbedderOptions(opts: unknown, fail: Refuse = refuseRange): EmbedderOptions {
  const o = checkOptionsObject(opts, 'the embedder options', fail);
  checkNumber(o.maxLength, "'maxLength'", POSITIVE_INTEGER, fail);
  checkNumber(o.batchTokens, "'batchTokens'", POSITIVE_INTEGER, fail);
  const templates = checkOptionsObject(o.templates, "'templates'", fail);
  for (const [k, v] of Object.entries(templates))
    if (v !== undefined && typeof v !== 'string') throw fail(refusal(`'templates.${k}'`, 'a string', v));
  return o as EmbedderOptions;
}
