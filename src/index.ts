/**
 * The search-r3 package API. Others may add exports here; keep one line (or block) per area.
 */
// index and search
export { SearchIndex, type CreateIndexOptions, type OpenIndexOptions, type AddOptions, type EncodeProgress, type SearchOptions, type SearchHit, type SearchResult } from './index/search-index.js';
export { LocalBackend, type EmbeddingBackend } from './index/embedding-backend.js';
export { readDocuments, documentText, type SourceDocument } from './index/document-source.js';
export { IndexError } from './index/index-error.js';
export type { IndexManifest, VectorDtype, StoreKind, HnswParams } from './index/manifest.js';
export type { VectorStore, VectorRow, VectorHit } from './index/vector-store.js';
export { reciprocalRankFusion } from './index/rrf.js';
// serving, LangChain and scale-out
export { SearchR3Embeddings, type SearchR3EmbeddingsParams } from './serve/langchain-embeddings.js';
export { SearchR3VectorStore } from './serve/langchain-vectorstore.js';
export { RemoteEmbedder, RemoteError, type RemoteOptions } from './serve/remote-embedder.js';
export { startSearchServer, createSearchServer, type ServeOptions, type RunningServer } from './serve/server.js';
export {
  WorkerBackend, ModelUnavailableError, type WorkerBackendOptions, type ModelHealth,
} from './serve/model-worker.js';
// the embedding protocol underneath
export { Embedder, type QueryOptions, type QueryEmbedding, DEFAULT_TEMPLATES, type PromptTemplates } from './embed/index.js';
export { loadModelFolder } from './model/model-folder.js';
export { Tokenizer } from './model/tokenizer.js';
