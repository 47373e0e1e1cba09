/**
 * The limits on what one request may ask of the model, each refused with a 400 that names the limit
 * and the serve flag that sets it. Sizes are checked in two steps: first by characters, on the main
 * thread and without tokenizing (a text too long for any tokenization to fit is refused at once), then
 * by exact token counts in the model worker.
 */
import { type HttpError, badRequest } from './http-error.js';

/**
 * Unicode normalization (NFC/NFKC, as Qwen's tokenizer applies) can shrink a text before it is cut into
 * tokens, at most two UTF-16 units into one byte (U+1D400 '𝐀' → 'A'; 'A' + two combining marks → 'Ǻ').
 */
const NORMALIZATION_SLACK = 2;

/** More characters than any text of `tokens` tokens can have, when one token covers at most `longestTokenChars`. */
export function charsBeyond(tokens: number, longestTokenChars: number): number {
  return tokens * longestTokenChars * NORMALIZATION_SLACK;
}

/**
 * What a client can do about an input over the per-input limit: shorten it, or, where the request has a
 * `truncateParam` (texts do, token ids do not), ask for it to be cut.
 */
function shortenOrCut(truncateParam: string | undefined): string {
  return truncateParam ? `shorten it, or set '${truncateParam}' to true to cut it to fit` : 'shorten it';
}

/** Refuses a text that has more characters than `maxTokens` tokens can hold; costs no tokenization. */
export function checkInputChars(
  text: string,
  param: string,
  maxTokens: number,
  longestTokenChars: number,
  truncateParam?: string,
): void {
  if (text.length <= charsBeyond(maxTokens, longestTokenChars)) return;
  const message =
    `${param} has ${text.length} characters, more than any text of at most ${maxTokens} tokens can ` +
    `have; this server accepts at most ${maxTokens} tokens per input (--max-tokens); ${shortenOrCut(truncateParam)}.`;
  throw badRequest(message, param, 'context_length_exceeded');
}

/** Refuses an input of more than `maxTokens` tokens; `truncateParam` names the field that would cut it instead. */
export function checkInputTokens(tokens: number, param: string, maxTokens: number, truncateParam?: string): void {
  if (tokens <= maxTokens) return;
  const message =
    `${param} has ${tokens} tokens; this server accepts at most ${maxTokens} tokens per input (--max-tokens); ` +
    `${shortenOrCut(truncateParam)}.`;
  throw badRequest(message, param, 'context_length_exceeded');
}

/**
 * Refuses a text that its prompt would cut (`cut` tokens of its `tokens`): a request gets what it sent
 * embedded, or an error, unless it asked for cutting (`truncateParam`). `prompt` names what takes the rest
 * of the model's `maxLength` tokens; `lower` is what else the client may lower to make room, if anything.
 */
export function checkPromptRoom(
  param: string,
  tokens: number,
  cut: number,
  room: { maxLength: number; prompt: string; lower?: string; truncateParam: string },
): void {
  if (cut === 0) return;
  const message =
    `${param} has ${tokens} tokens, and ${room.prompt} leaves room for ${tokens - cut} of the model's ` +
    `${room.maxLength}; shorten it${room.lower ? `, lower ${room.lower}` : ''}, or set '${room.truncateParam}' ` +
    'to true to cut it to fit.';
  throw badRequest(message, param, 'context_length_exceeded');
}

/** All inputs of one request together (the field `param`: 'input', or a search's 'query'), by exact token count. */
export function checkRequestTokens(tokens: number, limit: number, param = 'input'): void {
  if (tokens > limit) throw requestTooLarge(`${tokens} tokens`, limit, param);
}

/** All inputs of one request together, by characters: refused before tokenizing when no cut could fit. */
export function checkRequestChars(chars: number, limit: number, longestTokenChars: number, param = 'input'): void {
  if (chars > charsBeyond(limit, longestTokenChars)) {
    throw requestTooLarge(`${chars} characters, more than ${limit} tokens can have,`, limit, param);
  }
}

function requestTooLarge(what: string, limit: number, param: string): HttpError {
  const all = param === 'input' ? ' in all' : '';
  const fewer = param === 'input' ? 'send fewer or shorter inputs per request' : `shorten the ${param}`;
  return badRequest(
    `'${param}' has ${what}${all}; this server accepts at most ${limit} tokens per request ` +
      `(--max-request-tokens); ${fewer}.`,
    param,
    'max_tokens_per_request',
  );
}

/** Queries × analysis budget: what one reasoning request may make the model generate. */
export function checkReasoningWork(queries: number, budget: number, limit: number, param: string): void {
  if (queries * budget <= limit) return;
  const message =
    `${queries} queries × max_reasoning_tokens ${budget} = ${queries * budget} reasoning tokens; this ` +
    `server allows at most ${limit} per request (--max-request-reasoning-tokens); send fewer queries or a smaller ` +
    'budget.';
  throw badRequest(message, param, 'max_reasoning_tokens_per_request');
}

/** The limits the worker applies once it has counted tokens. */
export interface TokenLimits {
  perInput: number;
  perRequest: number;
}
