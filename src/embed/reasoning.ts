/**
 * What every engine does the same way around a query that reasons first: its prompt, cut to leave room
 * for the whole analysis budget and the embed token inside the context (as stage 2 trains it), the
 * tokens that stop the analysis, and how a finished generation reads (the analysis, and whether the
 * model emitted <|embed_token|> or it has to be forced).
 */
import type { Tokenizer } from '../model/tokenizer.js';
import { type EncodedPrompt, type PromptTemplates, assistantEndTokens, embedTokenId, encodePrompt } from './prompts.js';

/** Tokens a query may reason for before <|embed_token|> is forced, unless QueryOptions says otherwise. */
export const DEFAULT_MAX_REASONING_TOKENS = 128;

export interface ReasoningPrompts {
  prompts: EncodedPrompt[];
  /** The analysis budget every query gets, whatever else is in the batch. */
  budget: number;
  /** Generation stops at these: the embed token, then the tokens that end an assistant turn. */
  stopTokens: number[];
}

export function reasoningPrompts(
  tok: Tokenizer,
  texts: readonly string[],
  templates: PromptTemplates,
  maxLength: number,
  maxReasoningTokens = DEFAULT_MAX_REASONING_TOKENS,
): ReasoningPrompts {
  const bare = encodePrompt(tok, '', 'query', templates, maxLength, true).ids.length;
  const budget = Math.max(0, Math.min(maxReasoningTokens, maxLength - 2 - bare));
  const prompts = texts.map((t) => encodePrompt(tok, t, 'query', templates, maxLength - 1 - budget, true));
  return { prompts, budget, stopTokens: [embedTokenId(tok), ...assistantEndTokens(tok).keys()] };
}

export interface Analysis {
  /** The generated tokens before the stop token (the analysis). */
  analysis: number[];
  /** Its text, special tokens left out. */
  reasoning: string;
  /** The model emitted <|embed_token|> itself (else it must be appended: forced). */
  emitted: boolean;
}

/** Reads a generation that ended by a stop token ('stop') or by the budget ('length'). */
export function readAnalysis(tok: Tokenizer, tokens: readonly number[], finish: 'stop' | 'length'): Analysis {
  const emitted = tokens[tokens.length - 1] === embedTokenId(tok);
  const analysis = emitted || finish === 'stop' ? tokens.slice(0, -1) : [...tokens];
  return { analysis, reasoning: tok.decode(analysis, { skipSpecialTokens: true }).trim(), emitted };
}
