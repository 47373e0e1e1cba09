/** The embed layer: the Search-R3 protocol on top of a Qwen2 model, on our engine or on llama.cpp. */
export {
  Embedder,
  directQueryEmbedding,
  normalize,
  type EmbedderOptions,
  type QueryOptions,
  type QueryEmbedding,
  type EmbedStats,
} from './embedder.js';
export {
  QUERY_OPTION_NAMES,
  QUERY_OPTION_RANGES,
  REASONING_MODES,
  checkQueryOptions,
  checkTexts,
} from './query-options.js';
export {
  DEFAULT_TEMPLATES,
  EMBED_TOKEN,
  PromptTooLongError,
  assistantEndTokens,
  encodePrompt,
  embedTokenId,
  UNCOUNTED_CUT,
  requireEmbedToken,
  type PromptTemplates,
  type PromptKind,
  type EncodedPrompt,
  type PromptOptions,
} from './prompts.js';
export {
  DEFAULT_MAX_REASONING_TOKENS,
  readAnalysis,
  reasoningPrompts,
  type Analysis,
  type ReasoningPrompts,
} from './reasoning.js';
export {
  EngineError,
  LLAMA_GPUS,
  LlamaCppEngine,
  type LlamaCppEngineOptions,
  type LlamaCppFacts,
  type LlamaGpu,
} from './llama-cpp-engine.js';
// The device the engine computes on, for layers that load a model without the tensor layer (a model worker),
// and what they do when it fails (a lost GPU ends a model worker or a queue worker).
export {
  GpuError,
  type GpuSizeRefusal,
  gpuSizeSentence,
  isGpuDeviceFailure,
  shutdownGpu,
  hasGpuThread,
  releaseGpuMemory,
  type GpuMemoryRelease,
  useDevice,
  type DeviceChoice,
  type DeviceReport,
} from '../tensor/index.js';
