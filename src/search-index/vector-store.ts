/**
 * Where the searchable vectors live. docs.sqlite is always the source of truth (texts, metadata, the
 * exact f32 vector of every document); a VectorStore is the search structure built from it: a usearch
 * HNSW file on local disk (usearch-store.ts) or a LanceDB table on a local path or object storage
 * (lance-store.ts). Each commit carries the docs.sqlite generation and table it reflects; on open, a store
 * that lags (a run killed between the two commits), reflects another table (a docs.sqlite copied in or
 * restored) or cannot be trusted (a damaged file) is rebuilt from docs.sqlite: by a writer on disk, by a
 * reader in memory only.
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

/** What a store commit reflects: docs.sqlite's generation and its table's identity (DocumentTable.identity). */
export interface StoreState {
  generation: number;
  /** Undefined: not recorded (a store committed before stores recorded it, or a table without an identity). */
  table?: string;
}

/**
 * Whether a store committed as `store` holds the vectors of docs.sqlite at `docs`. Generations alone do not tell
 * tables apart: another index's docs.sqlite copied in, or one made anew, can be at the very generation of the
 * store, whose keys would then name other documents. A store that recorded no table was committed before stores
 * recorded one, and is matched on its generation as it always was (its next commit records the table): distrusting
 * them would re-add every vector of every index on upgrade, for a mix-up that only files copied by hand make.
 */
export function reflects(store: StoreState, docs: StoreState): boolean {
  return store.generation === docs.generation && (store.table === undefined || store.table === docs.table);
}

export interface VectorStore {
  readonly kind: 'local' | 'lancedb';
  add(rows: readonly VectorRow[]): Promise<void>;
  remove(keys: readonly number[]): Promise<void>;
  search(vector: Float32Array, k: number): Promise<VectorHit[]>;
  /** Persists everything added and removed so far as the state of docs.sqlite at `state`. */
  commit(state: StoreState): Promise<void>;
  /** What the store's content reflects (generation 0: new, unreadable, or changed since its commit). */
  committed(): Promise<StoreState>;
  /** Takes up what another process committed, if it reflects `state` (see reflects); false when not (yet). */
  reload(state: StoreState): Promise<boolean>;
  /** Why the store's saved content was not used at open (a damaged file), or undefined. */
  readonly problem?: string;
  /** Drops every vector (before a rebuild). */
  clear(): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}
