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

/**
 * Token ids of one prompt. Direct prompts end at the embed token (what follows cannot change its hidden
 * state under causal attention); reasoning prompts end with the opening of the assistant turn.
 * Text that does not fit maxLength is cut at the end, and the cut is counted.
 */
export function encodePrompt(
  tok: Tokenizer,
  text: string,
  kind: PromptKind,
  templates: PromptTemplates,
  maxLength: number,
  reasoning = false,
): EncodedPrompt {
  const system =
    kind === 'document' ? templates.documentSystem : reasoning ? templates.reasoningSystem : templates.querySystem;
  const render = (content: string): number[] => {
    const messages = [
      { role: 'system', content: system },
      { role: 'user', content },
    ];
    if (reasoning) return tok.encode(tok.renderChat(messages, { addGenerationPrompt: true }));
    const full = tok.encode(tok.renderChat([...messages, { role: 'assistant', content: templates.directResponse }]));
    return full.slice(0, full.lastIndexOf(embedTokenId(tok)) + 1);
  };
  let ids = render(text);
  let truncated = 0;
  if (ids.length > maxLength) {
    const textIds = tok.encode(text);
    const overhead = ids.length - textIds.length;
    const keep = maxLength - overhead;
    if (keep < 1)
      throw new PromptTooLongError(
        `the ${kind} prompt template alone needs ${overhead} tokens, more than the ${maxLength} left for it; ` +
          `raise maxLength (or the model's context), lower the reasoning budget, or shorten the templates`,
      );
    // decoding a cut may end in half a character; shrink until the re-encoded prompt fits
    for (let k = keep; k >= 1; k--) {
      ids = render(tok.decode(textIds.slice(0, k)));
      if (ids.length <= maxLength) {
        truncated = textIds.length - k;
        break;
      }
    }
  }
  return { ids, embedAt: reasoning ? -1 : ids.length - 1, truncated };
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
