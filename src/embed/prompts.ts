/**
 * The Search-R3 prompt protocol: a chat whose assistant turn ends in <|embed_token|>; the final hidden
 * state at that token is the embedding. Documents and direct queries have the assistant turn written
 * for them ("The embedding is <|embed_token|>."); queries with reasoning let the model write its
 * analysis first and emit the token itself.
 */
import path from 'node:path';
import { ModelFileError } from '../model/model-file-error.js';
import type { Tokenizer } from '../model/tokenizer.js';

export const EMBED_TOKEN = '<|embed_token|>';

export interface PromptTemplates {
  /** System prompt for queries embedded directly. */
  querySystem: string;
  /** System prompt for queries that reason before embedding. */
  reasoningSystem: string;
  /** System prompt for documents. */
  documentSystem: string;
  /** The assistant turn written for direct embedding; must contain the embed token once. */
  directResponse: string;
}

/** Defaults as published for Search-R3 (DESIGN.md §1); the reasoning prompt is ours. */
export const DEFAULT_TEMPLATES: PromptTemplates = {
  querySystem: 'Please represent user queries.',
  reasoningSystem: `Please represent user queries. Analyse the query briefly, then end with ${EMBED_TOKEN}.`,
  documentSystem: 'Please represent documents.',
  directResponse: `The embedding is ${EMBED_TOKEN}.`,
};

export type PromptKind = 'query' | 'document';

export interface EncodedPrompt {
  ids: number[];
  /** Index of the embed token in ids (direct prompts), or -1 (reasoning prompts end before the answer). */
  embedAt: number;
  /** Tokens of the text cut to fit the context. */
  truncated: number;
}

/** The templates leave no room for any text: a setting to change, told to the user as one sentence. */
export class PromptTooLongError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptTooLongError';
  }
}

export interface PromptOptions {
  /**
   * Count the tokens a cut takes off exactly, which means encoding all of a long text. Off, `truncated` of a
   * cut text is only some positive number (a lower bound), and a long text is encoded no further than its
   * prompt needs. Default true.
   */
  countCut?: boolean;
}

/** For callers that only ask whether a text was cut (truncated > 0), not by how much. */
export const UNCOUNTED_CUT: Readonly<PromptOptions> = { countCut: false };

/**
 * Token ids of one prompt. Direct prompts end at the embed token (what follows cannot change its hidden
 * state under causal attention); reasoning prompts end with the opening of the assistant turn.
 * Text that does not fit maxLength is cut at the end, and the cut is counted.
 *
 * What it gives is defined by encoding the whole rendered chat and the whole text: a text too long is cut to
 * its first `maxLength − overhead` tokens, overhead being what the chat adds to the text's own tokens (then
 * shortened while a decoded cut re-encodes longer). A long text is not encoded whole for that: see
 * longTextShape, which gets the same numbers from its two ends and a prefix.
 */
export function encodePrompt(
  tok: Tokenizer,
  text: string,
  kind: PromptKind,
  templates: PromptTemplates,
  maxLength: number,
  reasoning = false,
  options: PromptOptions = {},
): EncodedPrompt {
  const system =
    kind === 'document' ? templates.documentSystem : reasoning ? templates.reasoningSystem : templates.querySystem;
  const chat = (content: string): string => {
    const messages = [
      { role: 'system', content: system },
      { role: 'user', content },
    ];
    if (reasoning) return tok.renderChat(messages, { addGenerationPrompt: true });
    return tok.renderChat([...messages, { role: 'assistant', content: templates.directResponse }]);
  };
  const prompt = (ids: number[]): number[] => (reasoning ? ids : ids.slice(0, ids.lastIndexOf(embedTokenId(tok)) + 1));
  const render = (content: string): number[] => {
    const ids = prompt(tok.encode(chat(content)));
    if (ids.length === 0)
      throw new ModelFileError(tok.chatTemplateFile, emptyPromptProblem(kind, reasoning, templates));
    return ids;
  };
  const countCut = options.countCut ?? true;
  const shape =
    longTextShape(tok, text, chat, prompt, maxLength, countCut) ?? wholeTextShape(tok, text, render, maxLength);
  if ('fits' in shape) return { ids: shape.fits, embedAt: at(shape.fits), truncated: 0 };
  const keep = maxLength - shape.overhead;
  if (keep < 1)
    throw new PromptTooLongError(
      `the ${kind} prompt template alone needs ${shape.overhead} tokens, more than the ${maxLength} left for it; ` +
        "raise maxLength (--max-length on the command line; at most the model's context), lower the reasoning " +
        'budget, or shorten the templates',
    );
  // decoding a cut may end in half a character; shrink until the re-encoded prompt fits
  let ids: number[] = [];
  for (let k = keep; k >= 1; k--) {
    ids = render(tok.decode(shape.head.slice(0, k)));
    if (ids.length <= maxLength) return { ids, embedAt: at(ids), truncated: shape.total() - k };
  }
  // not even one token of text fits once decoded: the shortest try, though longer than maxLength
  return { ids, embedAt: at(ids), truncated: 0 };

  function at(ids: number[]): number {
    return reasoning ? -1 : ids.length - 1;
  }
}

/**
 * Why a chat template that gives an empty prompt cannot be used: a direct prompt ends at the embed token of the
 * assistant turn, so a template that leaves that turn out gives no token to embed at (and nothing at all before
 * it); one that renders nothing gives reasoning nothing to start from.
 */
function emptyPromptProblem(kind: PromptKind, reasoning: boolean, templates: PromptTemplates): string {
  const every = "use a chat template that renders every message, as Qwen2.5-Instruct's does";
  if (reasoning) return `chat_template renders a ${kind} prompt as no text at all; ${every}.`;
  const turn = `the assistant turn (${JSON.stringify(templates.directResponse)})`;
  return `chat_template leaves out ${turn}, so a ${kind} prompt has no ${EMBED_TOKEN} to embed at; ${every}.`;
}

/**
 * What encodePrompt needs of a text and its rendered prompt: the prompt itself when it fits, else `overhead`
 * (the prompt's tokens less the text's), `head` (the text's first tokens, more than maxLength − overhead) and
 * `total` (the text's token count; where it is not counted, some number above maxLength − overhead).
 */
type TextShape = { fits: number[] } | { overhead: number; head: number[]; total: () => number };

function wholeTextShape(
  tok: Tokenizer,
  text: string,
  render: (content: string) => number[],
  maxLength: number,
): TextShape {
  const ids = render(text);
  if (ids.length <= maxLength) return { fits: ids };
  const textIds = tok.encode(text);
  return { overhead: ids.length - textIds.length, head: textIds, total: () => textIds.length };
}

/** Texts shorter than this many characters per token of the context are encoded whole: that is cheap. */
const LONG_TEXT_CHARS_PER_TOKEN = 8;
/** How near its start and its end a long text needs a cut (characters), so that its two ends stay short. */
const END_CHARS = 4096;

/**
 * The TextShape of a long text without encoding all of it, or null (encode it whole) when the tokenizer has
 * no cut rules, the text has too few cuts, or the chat template does not put the text into the chat as it is.
 *
 * With the rendered chat r = A + text + B, a cut c0 near the text's start and one c2 near its end (c0 < c2,
 * each a cut in r too): encode(r) = encode(A + text[0, c0)) ++ encode(text[c0, c2)) ++ encode(text[c2, end) + B)
 * and encode(text) = encode(text[0, c0)) ++ encode(text[c0, c2)) ++ encode(text[c2, end)); the middle is the same
 * string, so the overhead is what the chat adds to the two short ends. The prompt cuts the assistant turn at
 * its embed token, which lies in B.
 */
function longTextShape(
  tok: Tokenizer,
  text: string,
  chat: (content: string) => string,
  prompt: (ids: number[]) => number[],
  maxLength: number,
  countCut: boolean,
): TextShape | null {
  if (text.length <= maxLength * LONG_TEXT_CHARS_PER_TOKEN) return null;
  const c2 = tok.previousCut(text, text.length - 1, text.length - END_CHARS);
  const c0 = c2 > 0 ? tok.nextCut(text.slice(0, c2), 1, END_CHARS) : -1;
  if (c0 < 0) return null;
  const marker = '\u0000search-r3 text\u0000';
  const probe = chat(marker);
  const i = probe.indexOf(marker);
  if (i < 0 || probe.indexOf(marker, i + 1) >= 0) return null;
  const [before, after] = [probe.slice(0, i), probe.slice(i + marker.length)];
  const r = chat(text);
  const verbatim =
    r.length === before.length + text.length + after.length &&
    r.startsWith(before) &&
    r.endsWith(after) &&
    r.startsWith(text, before.length);
  if (!verbatim) return null;
  if (!tok.isCut(r, before.length + c2) || !tok.isCut(r.slice(0, before.length + c2), before.length + c0)) return null;
  const start = text.slice(0, c0);
  const end = text.slice(c2);
  const endOfPrompt = prompt(tok.encode(end + after));
  if (endOfPrompt.length === 0) return null;
  const overhead =
    tok.encode(before + start).length - tok.encode(start).length + endOfPrompt.length - tok.encode(end).length;
  const keep = maxLength - overhead;
  const head = tok.encodeHead(text, Math.max(keep, 0) + 1);
  // all of the text's tokens are in head: the prompt fits
  if (head.length <= keep) return { fits: prompt(tok.encode(r)) };
  return { overhead, head, total: () => (countCut ? tok.countTokens(text) : head.length) };
}

/** The chat format's tokens that close an assistant turn (Qwen2: <|im_end|>, and <|endoftext|> after it). */
const TURN_END_TOKENS = ['<|im_end|>', '<|endoftext|>'];

/**
 * The tokens that end an assistant turn, id → name: those of TURN_END_TOKENS the vocabulary has, then the
 * tokenizer's EOS ('' when it is none of them), each once. Generation stops at any of them; the name lets
 * a server say which stop ended a completion.
 */
export function assistantEndTokens(tok: Tokenizer): ReadonlyMap<number, string> {
  const ends = new Map<number, string>();
  for (const t of TURN_END_TOKENS) {
    const id = tok.tokenToId(t);
    if (id !== undefined) ends.set(id, t);
  }
  if (tok.eosTokenId !== null && !ends.has(tok.eosTokenId)) ends.set(tok.eosTokenId, '');
  return ends;
}

export function embedTokenId(tok: Tokenizer): number {
  const id = tok.tokenToId(EMBED_TOKEN);
  if (id === undefined)
    throw new Error(
      `the tokenizer has no ${EMBED_TOKEN}; add it first (search-r3 adds it when preparing a model for training)`,
    );
  return id;
}

/** The embed token's id in a model folder's tokenizer; a folder without one is refused, with what to do. */
export function requireEmbedToken(tok: Tokenizer, dir: string): number {
  const id = tok.tokenToId(EMBED_TOKEN);
  if (id !== undefined) return id;
  const how =
    `stage 1 (search-r3 train sft) adds it and trains it, or search-r3 add-embed-token --model ${dir} ` +
    'adds it untrained';
  const why = `has no ${EMBED_TOKEN}, so this folder is not a Search-R3 model yet`;
  throw new ModelFileError(path.join(dir, 'tokenizer.json'), `${why}; ${how}.`);
}
