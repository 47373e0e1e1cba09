/**
 * Where the searchable vectors live. docs.sqlite is always the source of truth (texts, metadata, the
 * exact f32 vector of every document); a VectorStore is the search structure built from it: a usearch
 * HNSW file on local disk (usearch-store.ts) or a LanceDB table on a local path or object storage
 * (lance-store.ts). Each commit carries the docs.sqlite generation it reflects; on open, a store that
 * lags (a run killed between the two commits) or cannot be trusted (a damaged file) is rebuilt from
 * docs.sqlite: by a writer on disk, by a reader in memory only.
 */
export interface VectorRow {
  /** The row key (docs.key), unique for the life of the index; an updated document gets a new key. */
  key: number;
  /** The document id, kept beside the vector so a store can be read on its own. */
  id: string;
  vector: Float32Array;
}

export interface VectorHit {
  key: number;
  /** Cosine similarity (higher is better). */
  score: number;
}

export interface VectorStore {
  readonly kind: 'local' | 'lancedb';
  add(rows: readonly VectorRow[]): Promise<void>;
  remove(keys: readonly number[]): Promise<void>;
  search(vector: Float32Array, k: number): Promise<VectorHit[]>;
  /** Persists everything added and removed so far as the state of docs.sqlite generation `generation`. */
  commit(generation: number): Promise<void>;
  /** The docs.sqlite generation the store's content reflects (0: new, unreadable, or changed since its commit). */
  generation(): Promise<number>;
  /** Takes up what another process committed as `generation`; false when that is not (yet) what the store holds. */
  reload(generation: number): Promise<boolean>;
  /** Why the store's saved content was not used at open (a damaged file), or undefined. */
  readonly problem?: string;
  /** Drops every vector (before a rebuild). */
  clear(): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}
