/**
 * The search-r3 package API. Others may add exports here; keep one line (or block) per area.
 */
// index and search
export {
  SearchIndex,
  type CreateIndexOptions,
  type OpenIndexOptions,
  type AddOptions,
  type DocumentInput,
  type EncodeProgress,
  type SearchOptions,
  type RankOptions,
  type SearchHit,
  type SearchResult,
} from './search-index/search-index.js';
export { LocalBackend, type EmbeddingBackend } from './search-index/embedding-backend.js';
export { readDocuments, streamDocuments, documentText, type SourceDocument } from './search-index/document-source.js';
export { IndexError } from './search-index/index-error.js';
export type { IndexManifest, VectorDtype, StoreKind, HnswParams } from './search-index/manifest.js';
export type { StoreState, VectorStore, VectorRow, VectorHit } from './search-index/vector-store.js';
// an index's vectors in LanceDB (--store lancedb): index.store, on which createVectorIndex() builds IVF-PQ
export { LanceStore } from './search-index/lance-store.js';
export { reciprocalRankFusion, fuseHybrid, type HybridFusion } from './search-index/rrf.js';
export { chooseFusion, FUSION_GRID, type FusionDevCase, type FusionChoice } from './search-index/fusion-choice.js';
export { readModelFusion, writeModelFusion, type ModelFusion } from './search-index/model-fusion.js';
// serving, LangChain and scale-out
export { SearchR3Embeddings, type SearchR3EmbeddingsParams } from './client/langchain-embeddings.js';
export { SearchR3VectorStore } from './client/langchain-vectorstore.js';
export { RemoteEmbedder, RemoteError, type RemoteOptions } from './client/remote-embedder.js';
export { startSearchServer, createSearchServer, type ServeOptions, type RunningServer } from './serve/server.js';
export { ListenError } from './serve/listen.js';
export {
  WorkerBackend,
  ModelUnavailableError,
  type WorkerBackendOptions,
  type ModelHealth,
} from './serve/model-worker.js';
// the embedding protocol underneath
export {
  Embedder,
  type QueryOptions,
  type QueryEmbedding,
  DEFAULT_TEMPLATES,
  type PromptTemplates,
} from './embed/index.js';
export { loadModelFolder } from './model/model-folder.js';
// the device search-r3's engine computes on: choose it before loading a model (default: the CPU)
export {
  useDevice,
  releaseGpuMemory,
  type DeviceChoice,
  type DeviceReport,
  type GpuMemoryRelease,
} from './tensor/index.js';
export { Tokenizer } from './model/tokenizer.js';
// llama.cpp as the engine (node-llama-cpp; GPU where there is one)
export { LlamaCppEngine, EngineError, type LlamaCppEngineOptions, type LlamaGpu } from './embed/llama-cpp-engine.js';
export { LlamaCppBackend, type LlamaCppBackendOptions, type EngineIdentity } from './search-index/llama-cpp-backend.js';
