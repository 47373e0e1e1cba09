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
  SEED_RANGE,
  UNIT_INTERVAL,
  checkChoice,
  checkNumber,
  checkOptionsObject,
  refusal,
} from '../io/option-checks.js';
import type { QueryOptions } from './embedder.js';

export const REASONING_MODES = ['on', 'off'] as const;

type NumericQueryOption = 'maxReasoningTokens' | 'temperature' | 'topP' | 'seed';

/** The numbers each numeric query option takes. */
export const QUERY_OPTION_RANGES: Readonly<Record<NumericQueryOption, NumberRange>> = {
  maxReasoningTokens: NON_NEGATIVE_INTEGER,
  temperature: NON_NEGATIVE_NUMBER,
  topP: UNIT_INTERVAL,
  seed: SEED_RANGE,
};

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
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw fail(refusal(`${what} text [${i}]`, 'a string', t));
  });
  return texts as readonly string[];
}
