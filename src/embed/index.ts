/** The embed layer: the Search-R3 protocol on top of a Qwen2 model. */
export {
  Embedder,
  normalize,
  DEFAULT_MAX_REASONING_TOKENS,
  type EmbedderOptions,
  type QueryOptions,
  type QueryEmbedding,
  type EmbedStats,
} from './embedder.js';
export {
  DEFAULT_TEMPLATES,
  EMBED_TOKEN,
  PromptTooLongError,
  assistantEndTokens,
  encodePrompt,
  embedTokenId,
  type PromptTemplates,
  type PromptKind,
  type EncodedPrompt,
} from './prompts.js';
