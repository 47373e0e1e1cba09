/**
 * Reading the fields of OpenAI-shaped request bodies: each problem is a 400 whose `param` names the field.
 * Pure functions: no model, no I/O.
 */
import { QUERY_OPTION_RANGES, type QueryOptions, REASONING_MODES } from '../embed/index.js';
import { checkChoice, checkNumber } from '../io/option-checks.js';
import type { ChatMessage } from '../model/chat-template.js';
import { type HttpError, badRequest } from './http-error.js';
import { type ChatJob, MAX_COMPLETION_TOKENS, type MaxTokensField, inputParam } from './worker-protocol.js';

/** 'missing_required_parameter' when the field is absent (or null, "not given"), else 'invalid_type'. */
export const missingOrType = (v: unknown): string =>
  v === undefined || v === null ? 'missing_required_parameter' : 'invalid_type';

/**
 * The refusal of field `param`, whose values are JSON `type`s: 'invalid_type' for a value of another type ("5"
 * for a number), 'invalid_value' for one of the right type out of range or not among the choices.
 */
export const refuseField =
  (v: unknown, param: string, type: 'number' | 'string') =>
  (message: string): HttpError =>
    badRequest(message, param, typeof v === type ? 'invalid_value' : 'invalid_type');

/** The server's bound on an analysis's length and its temperature, within what the library takes (work per request). */
const SERVED_MAX = { maxReasoningTokens: 4096, temperature: 5 } as const;

/**
 * A request field read as the library's option `option` (the same range, narrowed by SERVED_MAX); null is "not
 * given", as OpenAI's own clients send it for an unset field. `param` is the field as the request names it.
 */
function rangeField(v: unknown, param: string, option: keyof typeof QUERY_OPTION_RANGES): number | undefined {
  if (v === null) return undefined;
  const cap = (SERVED_MAX as Partial<Record<string, number>>)[option];
  const range = { ...QUERY_OPTION_RANGES[option], ...(cap !== undefined ? { max: cap } : {}) };
  return checkNumber(v, `'${param}'`, range, refuseField(v, param, 'number'));
}

/** The sampling fields of a query (`prefix` names where they sit, e.g. 'search_r3.'). */
export function queryOptions(fields: Record<string, unknown>, prefix: string): QueryOptions {
  return {
    maxReasoningTokens: rangeField(fields.max_reasoning_tokens, `${prefix}max_reasoning_tokens`, 'maxReasoningTokens'),
    temperature: rangeField(fields.temperature, `${prefix}temperature`, 'temperature'),
    topP: rangeField(fields.top_p, `${prefix}top_p`, 'topP'),
    seed: rangeField(fields.seed, `${prefix}seed`, 'seed'),
  };
}

/** The field `param` as a reasoning mode ('on' or 'off', as the library takes it); 'off' when left out or null. */
export function reasoningField(v: unknown, param: string): 'on' | 'off' {
  return checkChoice(v ?? undefined, `'${param}'`, REASONING_MODES, refuseField(v, param, 'string')) ?? 'off';
}

/** An optional boolean field: false when left out or null (OpenAI's clients send null for an unset field). */
export function flagField(fields: Record<string, unknown>, k: string, prefix = ''): boolean {
  const v = fields[k];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw badRequest(`'${prefix}${k}' must be a boolean.`, `${prefix}${k}`, 'invalid_type');
  return v;
}

/** OpenAI's token-id input: one sequence (integers) or several (arrays of integers); null when it is not token ids. */
export function parseTokenInput(input: unknown): number[][] | null {
  if (!Array.isArray(input) || input.length === 0) return null;
  if (input.every((x) => typeof x === 'number')) return [input as number[]];
  if (input.every((x) => Array.isArray(x) && x.every((y) => typeof y === 'number'))) return input as number[][];
  return null;
}

/**
 * The texts of /v1/embeddings: a string or a non-empty array of strings, at most `maxInputs`. An empty string
 * is refused, as OpenAI refuses it, unless the request speaks search-r3's protocol (`withPrompt`): each text is
 * then embedded inside its Search-R3 prompt, which an empty text leaves non-empty, as in-process encoding does.
 */
export function parseTextInput(input: unknown, maxInputs: number, withPrompt: boolean): string[] {
  let texts: string[];
  if (typeof input === 'string') texts = [input];
  else if (Array.isArray(input) && input.every((x) => typeof x === 'string')) texts = input as string[];
  else {
    const message = "'input' is required and must be a string, an array of strings, or token ids.";
    throw badRequest(message, 'input', missingOrType(input));
  }
  checkInputCount(texts.length, maxInputs);
  const listed = Array.isArray(input);
  const empty = withPrompt ? -1 : texts.indexOf('');
  if (empty >= 0) {
    const param = inputParam({ param: 'input', listed }, empty);
    const message =
      `${param} is an empty string; send "search_r3": {} to embed it in the Search-R3 prompt ` +
      "(as search-r3's own clients do), or leave it out.";
    throw badRequest(message, param);
  }
  return texts;
}

export function checkInputCount(n: number, maxInputs: number): void {
  if (n === 0) throw badRequest("'input' must not be empty.", 'input');
  if (n > maxInputs) {
    throw badRequest(`'input' has ${n} items; at most ${maxInputs} per request.`, 'input', 'too_many_inputs');
  }
}

export function encodingFormat(v: unknown): 'float' | 'base64' {
  const format = v ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw refuseField(format, 'encoding_format', 'string')("'encoding_format' must be 'float' or 'base64'.");
  }
  return format;
}

const MESSAGE_SHAPE =
  '{"role": "system" | "developer" | "user" | "assistant", "content": string or [{"type": "text", "text": string}]}';

/**
 * A message's content: a string, or OpenAI's array of content parts, whose text parts are joined by newlines (as
 * vLLM joins them); a part of another kind (an image, audio, a file) is refused, as the model reads text alone.
 */
function messageContent(content: unknown, at: string): string | null {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  return content
    .map((part: unknown, j) => {
      const p = (typeof part === 'object' && part !== null ? part : {}) as { type?: unknown; text?: unknown };
      if (p.type === 'text' && typeof p.text === 'string') return p.text;
      const param = `${at}.content[${j}]`;
      if (typeof p.type === 'string' && p.type !== 'text') {
        const message = `${param} is a '${p.type}' part; this server's model reads text alone: send text parts.`;
        throw badRequest(message, param, 'unsupported_parameter');
      }
      throw badRequest(`${param} must be {"type": "text", "text": string}.`, param);
    })
    .join('\n');
}

/**
 * Each message's role and content, and nothing else: the server takes no tools, and a message's other fields
 * (name, tool_calls, ...) would otherwise reach the chat template, which renders them (or fails on them), and
 * cross to the model worker, whatever their depth. `developer` is OpenAI's newer name for `system`.
 */
function parseMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw badRequest("'messages' must be a non-empty array.", 'messages', missingOrType(messages));
  }
  return messages.map((m: unknown, i): ChatMessage => {
    const x = (typeof m === 'object' && m !== null ? m : {}) as { role?: unknown; content?: unknown };
    const role = x.role === 'developer' ? 'system' : x.role;
    const content = messageContent(x.content, `messages[${i}]`);
    if (!['system', 'user', 'assistant'].includes(role as string) || content === null) {
      throw badRequest(`messages[${i}] must be ${MESSAGE_SHAPE}.`, `messages[${i}]`);
    }
    return { role: role as string, content };
  });
}

/** The fields of a chat request the server reads (parseChatFields, parseChatDelivery). */
const CHAT_FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'seed',
  'stop',
  'n',
  'stream',
  'stream_options',
  'logprobs',
  'top_logprobs',
]);

/** OpenAI's fields that leave the answer as it is (who asks, what is kept of it, billing): taken and not used. */
const INERT_CHAT_FIELDS = new Set([
  'user',
  'metadata',
  'store',
  'service_tier',
  'safety_identifier',
  'prompt_cache_key',
  'parallel_tool_calls',
]);

const isEmptyObject = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;

/**
 * OpenAI's fields that change the answer in ways this server does not (penalties, structured output, tools,
 * other modalities): taken only at the value that asks for nothing (`neutral`, written as `shown`), refused
 * otherwise, as an answer that ignored them would pass for one that honoured them.
 */
const UNSUPPORTED_CHAT_FIELDS: Record<string, { neutral: (v: unknown) => boolean; shown: string } | null> = {
  presence_penalty: { neutral: (v) => v === 0, shown: '0' },
  frequency_penalty: { neutral: (v) => v === 0, shown: '0' },
  logit_bias: { neutral: isEmptyObject, shown: '{}' },
  response_format: { neutral: (v) => JSON.stringify(v) === '{"type":"text"}', shown: '{"type": "text"}' },
  tools: { neutral: (v) => Array.isArray(v) && v.length === 0, shown: '[]' },
  tool_choice: { neutral: (v) => v === 'none', shown: '"none"' },
  functions: { neutral: (v) => Array.isArray(v) && v.length === 0, shown: '[]' },
  function_call: { neutral: (v) => v === 'none', shown: '"none"' },
  modalities: { neutral: (v) => JSON.stringify(v) === '["text"]', shown: '["text"]' },
  reasoning_effort: null,
  verbosity: null,
  audio: null,
  prediction: null,
  web_search_options: null,
};

/**
 * Refuses the fields of a request to `endpoint` that are not `known`, in one sentence naming them all (`param`
 * the first), as OpenAI refuses a field its API does not have: one misspelt or meant for another server would
 * otherwise be ignored, and the answer pass for one that honoured it. `takes` lists what it has, where that
 * list is short enough to help; `prefix` names where the fields sit in the request (e.g. 'search_r3.'). null is
 * a field not given.
 */
export function checkFieldsKnown(
  body: Record<string, unknown>,
  known: ReadonlySet<string>,
  endpoint: string,
  takes?: string,
  prefix = '',
): void {
  const unknown = Object.keys(body)
    .filter((k) => body[k] !== undefined && body[k] !== null && !known.has(k))
    .map((k) => prefix + k);
  if (unknown.length === 0) return;
  const names = unknown.map((k) => `'${k}'`);
  const one = names.length === 1;
  const list = one ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  const which = takes === undefined ? '' : `, which takes ${takes}`;
  const [are, them] = one ? ['is not a field', 'it'] : ['are not fields', 'them'];
  throw badRequest(`${list} ${are} of ${endpoint}${which}; leave ${them} out.`, unknown[0], 'unknown_parameter');
}

/** Every field of OpenAI's chat completions that the server knows: read, taken unused, or refused by name. */
const KNOWN_CHAT_FIELDS = new Set([...CHAT_FIELDS, ...INERT_CHAT_FIELDS, ...Object.keys(UNSUPPORTED_CHAT_FIELDS)]);

/**
 * Refuses a chat request's field that the server would leave unused though it changes the answer, and a field
 * OpenAI's API does not have (as OpenAI refuses it), each by name. null is a field not given.
 */
function checkChatFieldsKnown(body: Record<string, unknown>): void {
  checkFieldsKnown(body, KNOWN_CHAT_FIELDS, 'chat completions');
  for (const [k, v] of Object.entries(body)) {
    if (v === undefined || v === null || CHAT_FIELDS.has(k) || INERT_CHAT_FIELDS.has(k)) continue;
    const rule = UNSUPPORTED_CHAT_FIELDS[k];
    if (rule?.neutral(v)) continue;
    const or = rule ? ` or set it to ${rule.shown}` : '';
    throw badRequest(`'${k}' is not supported by this server: leave it out${or}.`, k, 'unsupported_parameter');
  }
}

function parseStops(stop: unknown): string[] {
  const stops = stop === undefined || stop === null ? [] : typeof stop === 'string' ? [stop] : stop;
  const strings = Array.isArray(stops) && stops.every((x) => typeof x === 'string');
  if (!strings || stops.length > 4 || stops.includes('')) {
    throw badRequest("'stop' must be a string or up to 4 strings.", 'stop', strings ? 'invalid_value' : 'invalid_type');
  }
  return stops as string[];
}

/** How a chat completion is answered: whole, or streamed as server-sent events with usage at the end or not. */
export interface ChatDelivery {
  stream: boolean;
  includeUsage: boolean;
}

/** OpenAI's `stream` and `stream_options` (whose `include_usage` adds a last chunk with the usage). */
export function parseChatDelivery(body: Record<string, unknown>): ChatDelivery {
  const stream = flagField(body, 'stream');
  const options = body.stream_options;
  if (options === undefined || options === null) return { stream, includeUsage: false };
  if (!stream) throw badRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw badRequest("'stream_options' must be an object.", 'stream_options', 'invalid_type');
  }
  return { stream, includeUsage: flagField(options as Record<string, unknown>, 'include_usage', 'stream_options.') };
}

/** The fields of /v1/chat/completions that the server supports (one choice), but for how it is delivered. */
export function parseChatFields(body: Record<string, unknown>): ChatJob {
  // null is "not given", as OpenAI's own clients send it for an unset field
  const sent = (v: unknown): boolean => v !== undefined && v !== null;
  checkChatFieldsKnown(body);
  const messages = parseMessages(body.messages);
  if (sent(body.n) && body.n !== 1) throw refuseField(body.n, 'n', 'number')("only 'n': 1 is supported.");
  // the answer has no log-probabilities to give: asking for them is refused rather than answered without
  if (flagField(body, 'logprobs')) {
    const message = "'logprobs' is not supported: leave it out or set it to false.";
    throw badRequest(message, 'logprobs', 'unsupported_parameter');
  }
  if (sent(body.top_logprobs)) {
    throw badRequest("'top_logprobs' is not supported: leave it out.", 'top_logprobs', 'unsupported_parameter');
  }
  // each of the two that is sent must be valid; max_completion_tokens, the newer name, wins, and an error about
  // the completion's length names the field it came from
  const limit = (field: MaxTokensField): number | undefined => {
    const v = body[field];
    if (!sent(v)) return undefined;
    const range = { integer: true, min: 1, max: MAX_COMPLETION_TOKENS };
    return checkNumber(v, `'${field}'`, range, refuseField(v, field, 'number'));
  };
  const newer = limit('max_completion_tokens');
  const older = limit('max_tokens');
  const maxTokensField: MaxTokensField = newer !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const q = queryOptions({ temperature: body.temperature ?? 1, top_p: body.top_p, seed: body.seed }, '');
  const stops = parseStops(body.stop);
  return {
    messages,
    maxTokens: newer ?? older,
    maxTokensField,
    stops,
    temperature: q.temperature!,
    topP: q.topP,
    seed: q.seed,
  };
}
