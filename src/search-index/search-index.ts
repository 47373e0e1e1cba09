/**
 * The programmatic index: documents in (staged, then encoded in resumable chunks), documents out
 * (dense HNSW search, optionally fused with BM25). The CLI `index`/`search` commands and the server
 * are thin layers over this class.
 */
import { DOCUMENTS_PER_COMMIT } from './commit-chunk.js';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { QueryOptions } from '../embed/index.js';
import { createAnalyzer } from '../eval/analyzer.js';
import { Bm25Index } from '../eval/bm25.js';
import { readBm25File, writeBm25File, type Bm25FileKey, type Bm25FileRead } from '../eval/bm25-file.js';
import { documentText, storedDocument, type SourceDocument } from './document-source.js';
import {
  DOCS_FILE,
  DocumentTable,
  type PendingDocument,
  type StageCounts,
  type StoredDocument,
} from './document-table.js';
import { type EmbeddingBackend, failedInputs } from './embedding-backend.js';
import { CallsUnderWay } from './calls-under-way.js';
import { IndexError } from './index-error.js';
import { checkPathArgument } from '../io/option-checks.js';
import {
  checkAddOptions,
  checkChunkSize,
  checkEncodedChunk,
  checkDocuments,
  checkExactSearch,
  checkIds,
  documentChecker,
  checkOpenOptions,
  checkQueryVector,
  checkRankOptions,
  checkSearch,
} from './api-checks.js';
import {
  type HnswParams,
  type IndexManifest,
  type ManifestRead,
  type StoreKind,
  type VectorDtype,
  DEFAULT_HNSW,
  FORMAT,
  FORMAT_VERSION,
  MANIFEST_FILE,
  incompatibility,
  sealManifest,
  foreignManifest,
  tryReadManifest,
  unsealManifest,
  writeManifest,
} from './manifest.js';
import { HYBRID_CANDIDATES, fuseHybrid } from './rrf.js';
import { UsearchStore, exactCosineSearch } from './usearch-store.js';
import { type StoreState, type VectorHit, type VectorRow, type VectorStore, reflects } from './vector-store.js';
import { WriteLock } from './write-lock.js';
import { readVectorSnapshot, type VectorSnapshot } from './vector-snapshot.js';
import { makeFolderSync } from '../io/make-folder.js';
import { fileSystemCause } from '../io/file-system-cause.js';

export interface CreateIndexOptions {
  dtype?: VectorDtype;
  hnsw?: Partial<HnswParams>;
  store?: StoreKind;
  /** LanceDB URI (local path, s3://…; store 'lancedb' when store is left out); default <index>/vectors.lance. */
  storeUri?: string;
}

export interface OpenIndexOptions {
  /**
   * The model that embeds queries and new documents; checked against the manifest. Optional for read-only use with
   * vectors.
   */
  backend?: EmbeddingBackend;
  /** Create the index when the folder has none (needs backend). Implies `writable`. */
  create?: CreateIndexOptions;
  /**
   * Open for adding, updating and deleting documents. Without it (or `create`) the index opens
   * read-only: nothing in its folder is created or changed, and damaged parts are rebuilt in memory.
   * A folder that holds no index is refused either way, and left as it was (`create` makes one).
   */
  writable?: boolean;
  /** Threads usearch may use when adding vectors (0 = all). */
  threads?: number;
  /**
   * Save the BM25 index that hybrid search builds as bm25.bin in the folder, for the next open to read rather than
   * build again (when the folder may be written; a failure is one note, never a failed search). On by default for a
   * writable index; a read-only one creates nothing unless asked (the CLI's `search` and `serve` ask).
   */
  saveBm25?: boolean;
}

export interface EncodeProgress {
  done: number;
  total: number;
  chunks: number;
}

export interface AddOptions {
  /** Documents encoded and committed together: a kill loses at most this many documents' work. Default 256. */
  documentsPerCommit?: number;
  /** @deprecated the former name of documentsPerCommit. */
  chunkSize?: number;
  onProgress?: (p: EncodeProgress) => void;
  /**
   * Called after each chunk is durably committed (sqlite + vector store), and awaited. A write or close() of
   * the index started from it waits for this call to end (writes run one at a time): do not await one here.
   */
  onChunkCommitted?: (p: EncodeProgress) => void | Promise<void>;
}

export interface AddResult {
  /** Documents that were new, changed or repaired (encoded again because their row was damaged). */
  staged: number;
  /** Documents encoded by this call, including those a killed earlier run left pending. */
  encoded: number;
  counts: StageCounts;
  /** Ids of damaged rows (failing their checksums) that were not given again, so were deleted. */
  removedDamaged?: string[];
  /** Documents whose text was cut to the model's context while encoding (undefined when the backend cannot tell). */
  truncated?: number;
}

export interface SearchOptions extends QueryOptions {
  k?: number;
  /**
   * Fuse the dense ranking with BM25 by reciprocal rank: with the model's stored fusion (EmbeddingBackend.fusion,
   * chosen on dev splits), else equal weights and k = 60.
   */
  hybrid?: boolean;
  /** Candidates taken from each ranking before fusion (default max(HYBRID_CANDIDATES, 4k)). */
  candidates?: number;
  /** Rank by exact cosine over every vector (true) or by the HNSW graph (false); default: exact for small indexes. */
  exact?: boolean;
}

/** searchVector's options: SearchOptions' ranking, the query text hybrid search needs, and exact search forced. */
export interface RankOptions {
  k?: number;
  hybrid?: boolean;
  candidates?: number;
  queryText?: string;
  exact?: boolean;
}

export interface SearchHit extends StoredDocument {
  score: number;
  /** Cosine similarity, when the document came from the dense ranking. */
  denseScore?: number;
  bm25Score?: number;
}

export interface SearchResult {
  hits: SearchHit[];
  reasoning: string;
  forced: boolean;
  /** Tokens cut from the query to fit its prompt in the model's cut length (0: it fitted whole). */
  truncated: number;
  /** Milliseconds spent embedding the query and searching. */
  embedMs: number;
  searchMs: number;
}

/**
 * Below this many multiply-adds (documents × dimension) a query is answered by exact search over the
 * f32 vectors: it costs about a millisecond there, is exact, and does not depend on how the HNSW graph
 * happened to be built (a resumed index then ranks exactly as an uninterrupted one).
 */
export const EXACT_SEARCH_WORK = 1 << 23;

/** The BM25 index of hybrid search, saved (see bm25-file.ts). */
export const BM25_FILE = 'bm25.bin';

/**
 * How to make an index, for a folder SearchIndex.open found none in: its callers are programs as well as the CLI.
 * readIndexManifest, which the CLI calls first, names the command only.
 */
const BUILD_ONE = "build one with 'search-r3 index', or in code with SearchIndex.open(dir, { backend, create: {} })";
const REBUILD = (dir: string): string => `rebuild it with 'search-r3 index --input <your documents> --out ${dir}'`;

export class SearchIndex {
  /**
   * The BM25 index of hybrid search, the docs.sqlite generation it reflects, and whether bm25.bin holds it (a
   * write this instance followed in it is saved at close).
   */
  private bm25?: { generation: number; index: Bm25Index; saved: boolean };
  private readonly analyzer = createAnalyzer();
  /**
   * How many times this instance built its BM25 index from every indexed text: at the first hybrid search (or
   * warmHybrid) when bm25.bin does not hold the current generation, then only after another process wrote; its own
   * commits are applied document by document. A diagnostic (tests read it), not a setting.
   */
  bm25Builds = 0;
  /** How many times it read its BM25 index from bm25.bin instead. A diagnostic, as bm25Builds. */
  bm25Loads = 0;
  /** Whether a writer has looked for a bm25.bin to keep current (once: see followSavedBm25). */
  private bm25FileSought = false;
  /** Whether bm25.bin could not be read (not for its content: permissions, I/O): it is then never saved over. */
  private bm25Unreadable = false;
  /** Whether something was said about bm25.bin already: once is enough, a reader may build many times. */
  private bm25Noted = false;
  private exactCache?: VectorSnapshot;
  private countCache?: { generation: number; documents: number };
  private lock?: WriteLock;
  /** The docs.sqlite generation the in-memory vector store reflects. */
  private storeGeneration = 0;
  /** A shared store that lags docs.sqlite and may not be rebuilt from here: dense search goes exact instead. */
  private storeStale = false;
  /** A write of this instance is between its docs.sqlite commit and its store's (see followInStore). */
  private storeFollowing = false;
  private closed = false;
  private closing?: Promise<void>;
  /** The writes called so far, settled or not: the next one starts when they have (see serialized). */
  private writes: Promise<unknown> = Promise.resolve();
  /** The reads under way that await the vector store (see reading). */
  private readonly reads = new CallsUnderWay();

  private constructor(
    readonly dir: string,
    private manifest: IndexManifest,
    readonly docs: DocumentTable,
    readonly store: VectorStore,
    readonly backend: EmbeddingBackend | undefined,
    readonly readOnly: boolean,
    private readonly noteList: string[],
    private readonly saveBm25: boolean,
  ) {}

  /**
   * What was found damaged or missing and how it was worked around, one sentence each: at open, and later what
   * hybrid search found of bm25.bin (damaged, or not writable).
   */
  get notes(): readonly string[] {
    return this.noteList;
  }

  /**
   * Opens (or with `create`, creates) the index in `dir`. Refuses a backend whose model or prompts differ
   * from the index's. A reader never writes (but bm25.bin with `saveBm25`); a missing or damaged part is one
   * IndexError naming it, or is rebuilt from docs.sqlite (in memory for a reader) and reported in `notes`.
   */
  static async open(dir: string, opts: OpenIndexOptions = {}): Promise<SearchIndex> {
    checkPathArgument(dir, 'the index folder', (m) => new IndexError(m));
    checkOpenOptions(opts);
    const { backend } = opts;
    // a new index takes its dimension and prompts from the model: without one, refused before its folder is made
    if (opts.create !== undefined && !backend && !holdsIndexFiles(dir)) throw new IndexError(CREATE_NEEDS_MODEL);
    const writable = opts.writable === true || opts.create !== undefined;
    prepareFolder(dir, opts.create !== undefined);
    const notes: string[] = [];
    const read = tryReadManifest(dir);
    if (writable && 'problem' in read && read.problem === 'damaged' && foreignManifest(dir))
      throw new IndexError(
        `${path.join(dir, MANIFEST_FILE)} is another program's file, not a search-r3 index manifest (it lacks the ` +
          'fields of one), and an index would write over it; give the index a folder of its own, or move the ' +
          'file away.',
      );
    if (writable) refuseBeforeWriting(dir, read, opts);
    const docs = openDocuments(dir, read, writable, opts.create !== undefined, notes);
    let store: VectorStore | undefined;
    try {
      const manifest = resolveManifest(dir, read, docs, opts, notes);
      refuseMismatch(dir, manifest, opts);
      store = await openStore(dir, manifest, !writable, opts.threads);
      if (store.problem) {
        const done = writable
          ? 'rebuilding it from docs.sqlite'
          : 'the search graph was rebuilt in memory from docs.sqlite (the next search-r3 index run on this folder ' +
            'rewrites the file)';
        notes.push(`${store.problem}; ${done}.`);
      }
      const saveBm25 = opts.saveBm25 ?? writable;
      const index = new SearchIndex(dir, manifest, docs, store, backend, !writable, notes, saveBm25);
      await index.reconcile();
      return index;
    } catch (e) {
      await store?.close();
      docs.close();
      throw e;
    }
  }

  get info(): Readonly<IndexManifest> {
    return this.manifest;
  }
  get dimension(): number {
    return this.manifest.dimension;
  }

  /**
   * A kill between the sqlite commit and the vector-store commit leaves the store behind, a docs.sqlite copied
   * in or restored leaves it reflecting another table (or generation), and a damaged store file is not loaded at
   * all: rebuild it from docs.sqlite. A reader, or a writer while another process holds the write lock (it will
   * commit the store itself), rebuilds a local graph in memory only and leaves a shared LanceDB table alone
   * (dense search then reads docs.sqlite exactly).
   */
  private async reconcile(): Promise<void> {
    const docs = this.docsState(this.docs.generation());
    this.storeGeneration = docs.generation;
    if (reflects(await this.store.committed(), docs) && !this.store.problem) return;
    let lock: WriteLock | undefined = this.lock;
    if (!lock && !this.readOnly) {
      try {
        lock = WriteLock.acquire(this.dir);
      } catch (e) {
        if (!(e instanceof IndexError)) throw e;
      }
    }
    if (!lock && this.store.kind !== 'local') {
      this.storeStale = true;
      return;
    }
    try {
      await this.store.clear();
      for (const rows of this.docs.indexedVectors()) await this.store.add(rows);
      if (!lock) return;
      await this.store.commit(docs);
      this.writeCounts();
    } finally {
      // taken for the rebuild only: held on, it would refuse this process's next writer of the folder
      if (lock !== this.lock) lock?.release();
    }
  }

  /** What a vector store must reflect to stand for docs.sqlite at `generation`: that and the table's identity. */
  private docsState(generation: number): StoreState {
    return { generation, table: this.docs.identity() };
  }

  private writeCounts(): void {
    this.manifest = {
      ...this.manifest,
      counts: { documents: this.docs.indexedCount(), pending: this.docs.pendingCount() },
      updatedAt: new Date().toISOString(),
    };
    writeManifest(this.dir, this.manifest);
  }

  /**
   * Runs the write `f` once every write called before it has settled, so that writes on this index run one
   * at a time in call order: two encoding loops would each take the same pending chunk, and a commit's two
   * steps (docs.sqlite, then the vector store) must not interleave with another's. Reads run meanwhile and see
   * what is committed. A write still waiting when the index is closed is refused.
   */
  private serialized<T>(f: () => Promise<T>): Promise<T> {
    const run = this.writes.then(() => {
      this.requireOpen();
      return f();
    });
    this.writes = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs the read `f`, which awaits the vector store and then reads docs.sqlite, as one that close() waits for:
   * a LanceDB search is answered asynchronously, and docs.sqlite closed meanwhile would fail the rest of the read
   * with SQLite's own error. Refused, as every use is, once the index is closed.
   */
  private reading<T>(f: () => Promise<T>): Promise<T> {
    this.requireOpen();
    return this.reads.track(f());
  }

  /**
   * Adds new documents and updates changed ones (same id, other content); unchanged ones cost nothing.
   * Then encodes everything pending, including what a killed earlier run left. A changed document is
   * searched as it was until the commit of its chunk replaces its text and vector together. Calls made
   * while one runs wait for it (see serialized), so the counts of each are its own. The documents may come
   * as a stream (see stageDocuments).
   */
  async addDocuments(docs: DocumentInput, opts: AddOptions = {}): Promise<AddResult> {
    this.requireOpen();
    checkDocumentInput(docs);
    checkAddOptions(opts);
    return this.serialized(async () => {
      const staged = await this.stage(docs);
      const { encoded, truncated } = await this.encodeAll(opts);
      return { ...staged, encoded, ...(truncated === undefined ? {} : { truncated }) };
    });
  }

  /**
   * The first half of addDocuments: records new and changed documents as pending (encoded later, here or
   * by queue workers; what search returns changes only when they are committed) and deletes damaged rows.
   * An array is checked whole before anything is written. A stream (an async iterable, such as a corpus read
   * line by line) is staged in slices as it is read, so that a corpus need not be held in memory: a document
   * it refuses stops the staging there, the slices before it staying pending.
   */
  async stageDocuments(docs: DocumentInput): Promise<Omit<AddResult, 'encoded' | 'truncated'>> {
    this.requireOpen();
    checkDocumentInput(docs);
    return this.serialized(() => this.stage(docs));
  }

  private async stage(input: DocumentInput): Promise<Omit<AddResult, 'encoded' | 'truncated'>> {
    this.lockForWriting();
    // an array in the form that is hashed and stored, and an id that would not come back as given refused,
    // before anything is written (the table stages in slices, one transaction each)
    const stored = Array.isArray(input)
      ? input.map((d, i) => storedDocument(d, `document ${i + 1} of ${input.length} given`))
      : undefined;
    // rows that fail their checksums cannot be trusted and go; those given again are staged and encoded anew
    const damaged = new Set(this.docs.damagedIds());
    const damagedGiven = new Set<string>(); // only these ids: a streamed corpus's ids are not all held
    if (damaged.size > 0) await this.deleteNow([...damaged]);
    const counts: StageCounts = { added: 0, changed: 0, unchanged: 0, resumed: 0, repaired: 0 };
    for await (const slice of stageSlices(stored ?? (input as AsyncIterable<SourceDocument>))) {
      for (const d of slice) if (damaged.has(d.id)) damagedGiven.add(d.id);
      const c = this.docs.stage(slice, damaged);
      for (const k of Object.keys(counts) as (keyof StageCounts)[]) counts[k] += c[k];
      // between slices (each its own transaction) timers, I/O and signal handlers get a turn
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const unrecoverable = [...damaged].filter((id) => !damagedGiven.has(id));
    this.writeCounts();
    return {
      staged: counts.added + counts.changed + counts.repaired,
      counts,
      ...(unrecoverable.length > 0 ? { removedDamaged: unrecoverable } : {}),
    };
  }

  /** Encodes pending documents in fixed-order chunks, committing each (sqlite, then vector store). */
  async encodePending(opts: AddOptions = {}): Promise<number> {
    this.requireOpen();
    checkAddOptions(opts);
    return this.serialized(async () => (await this.encodeAll(opts)).encoded);
  }

  private async encodeAll(opts: AddOptions): Promise<{ encoded: number; truncated?: number }> {
    this.lockForWriting();
    const pending = this.docs.pendingCount();
    if (pending === 0) return { encoded: 0, truncated: 0 };
    const backend = this.requireBackend('encoding documents');
    const chunkSize = Math.max(1, opts.documentsPerCommit ?? opts.chunkSize ?? DOCUMENTS_PER_COMMIT);
    let done = 0,
      chunks = 0;
    let truncated: number | undefined = 0;
    opts.onProgress?.({ done, total: pending, chunks });
    for (;;) {
      if (this.closed) throw this.closedWhileEncoding(done);
      const chunk = this.docs.nextPending(chunkSize);
      if (chunk.length === 0) break;
      const texts = chunk.map(documentText);
      const encoded = await (
        backend.encodeDocuments
          ? backend.encodeDocuments(texts)
          : backend.embedDocuments(texts).then((vectors) => ({ vectors, truncated: undefined }))
      ).catch((e: unknown) => {
        throw namingDocuments(e, chunk);
      });
      const { vectors } = encoded;
      truncated =
        truncated === undefined || encoded.truncated === undefined ? undefined : truncated + encoded.truncated;
      await this.commitChunk(chunk, vectors);
      done += chunk.length;
      chunks++;
      this.writeCounts();
      opts.onProgress?.({ done, total: pending, chunks });
      await opts.onChunkCommitted?.({ done, total: pending, chunks });
    }
    return { encoded: done, truncated };
  }

  /** close() lets the chunk being encoded commit, then stops the loop: what is left stays pending. */
  private closedWhileEncoding(done: number): IndexError {
    return new IndexError(
      `the index ${this.dir} was closed while documents were encoded: ${done} were committed and ` +
        `${this.docs.pendingCount()} stay pending; open it again and call encodePending() (or run ` +
        `'search-r3 index' on it) to encode them.`,
    );
  }

  /**
   * Every pending document in the fixed encoding order, cut into the chunks encodePending would encode
   * one by one: chunks encoded elsewhere (queue workers) and given to commitEncoded then hold exactly the
   * vectors an uninterrupted local run would store.
   */
  pendingChunks(documentsPerCommit: number): PendingDocument[][] {
    this.requireOpen();
    checkChunkSize(documentsPerCommit);
    const all = this.docs.nextPending(this.docs.pendingCount());
    const size = documentsPerCommit;
    return Array.from({ length: Math.ceil(all.length / size) }, (_, i) => all.slice(i * size, (i + 1) * size));
  }

  /** Stores the vectors of one chunk of pendingChunks, encoded elsewhere by this index's model. */
  async commitEncoded(chunk: readonly PendingDocument[], vectors: readonly Float32Array[]): Promise<void> {
    this.requireOpen();
    checkEncodedChunk(chunk, vectors, this.dimension);
    return this.serialized(async () => {
      this.lockForWriting();
      await this.commitChunk(chunk, vectors);
      this.writeCounts();
    });
  }

  /**
   * Writes the vector store once (its commit record, unchanged), so a store this process cannot write is
   * found before any work is handed out rather than after it is done.
   */
  async checkStoreWritable(): Promise<void> {
    this.requireOpen();
    return this.serialized(async () => {
      this.lockForWriting();
      try {
        await this.store.commit(this.docsState(this.storeGeneration));
      } catch (e) {
        throw storeError(
          this.manifest.store === 'lancedb' ? lanceUri(this.dir, this.manifest.storeUri) : this.dir,
          e,
          'written',
        );
      }
    });
  }

  /**
   * sqlite first (a chunk's texts and vectors replace the indexed ones in one transaction), then the vector
   * store: a kill between the two leaves a store that reconcile() rebuilds.
   */
  private async commitChunk(chunk: readonly PendingDocument[], vectors: readonly Float32Array[]): Promise<void> {
    if (vectors.length !== chunk.length || vectors.some((v) => v.length !== this.dimension)) {
      throw new IndexError(
        `the model returned ${vectors.length} vectors of dimension ${vectors[0]?.length} for ` +
          `${chunk.length} documents; expected dimension ${this.dimension}.`,
      );
    }
    this.followSavedBm25();
    const before = this.bm25Before(chunk.map((d) => d.id));
    const { generation, added, removed } = this.docs.commitVectors(chunk, vectors);
    const byId = new Map(chunk.map((d) => [d.id, d]));
    const indexed = added.map((a) => ({ id: a.id, text: documentText(byId.get(a.id)!) }));
    this.followInBm25(
      before,
      generation,
      indexed.map((d) => d.id),
      indexed,
    );
    await this.followInStore(generation, removed, added);
  }

  /**
   * What the BM25 index needs to follow a write of `ids`, read before docs.sqlite changes: the texts those
   * documents are indexed with, for removing them (their terms are analysed again from the stored text rather
   * than kept per document, which would double the postings' memory). Undefined when there is no BM25 index
   * to follow (never built, or behind docs.sqlite already: it is then rebuilt at the next hybrid search).
   */
  private bm25Before(ids: readonly string[]): { generation: number; oldTexts: Map<string, string> } | undefined {
    if (!this.bm25 || this.bm25.generation !== this.docs.generation()) return undefined;
    return { generation: this.bm25.generation, oldTexts: this.docs.indexedTextsOf(ids) };
  }

  /**
   * The BM25 index's half of a write that made docs.sqlite's `generation` from `before`'s: each of `gone` (ids
   * replaced or deleted) that was indexed is removed, each of `added` added, synchronously right after the
   * sqlite commit so no search sees one half without the other. Scores stay those of a fresh build
   * (Bm25Index.add/remove keep N, df and lengths exact). A generation that is not the next one (another writer
   * in between) or a text that does not match its postings leaves the index to be rebuilt from docs.sqlite.
   */
  private followInBm25(
    before: { generation: number; oldTexts: Map<string, string> } | undefined,
    generation: number,
    gone: readonly string[],
    added: readonly { id: string; text: string }[],
  ): void {
    const bm25 = this.bm25;
    if (!before || !bm25 || bm25.generation !== before.generation) return;
    if (generation !== before.generation + 1) {
      this.bm25 = undefined;
      return;
    }
    try {
      for (const id of gone) {
        const text = before.oldTexts.get(id);
        if (text !== undefined) bm25.index.remove(id, text);
      }
      for (const doc of added) bm25.index.add(doc);
      this.bm25 = { generation, index: bm25.index, saved: false };
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.bm25 = undefined;
    }
  }

  /**
   * The vector store's half of a write whose docs.sqlite half made `generation`. refresh() meanwhile leaves
   * the store to this write: it catches up when the write ends, and a write that fails leaves it behind,
   * which the next refresh() finds.
   */
  private async followInStore(
    generation: number,
    removed: readonly number[],
    added: readonly VectorRow[],
  ): Promise<void> {
    this.storeFollowing = true;
    try {
      await this.store.remove(removed);
      await this.store.add(added);
      await this.store.commit(this.docsState(generation));
      this.storeGeneration = generation;
    } finally {
      this.storeFollowing = false;
    }
  }

  /** Removes documents by id; returns the ids that existed. Waits for the writes called before it (serialized). */
  async deleteDocuments(ids: readonly string[]): Promise<string[]> {
    this.requireOpen();
    checkIds(ids);
    return this.serialized(() => this.deleteNow(ids));
  }

  private async deleteNow(ids: readonly string[]): Promise<string[]> {
    this.lockForWriting();
    this.followSavedBm25();
    const before = this.bm25Before(ids);
    const { generation, keys, deleted } = this.docs.delete(ids);
    if (deleted.length === 0) return [];
    this.followInBm25(before, generation, deleted, []);
    await this.followInStore(generation, keys, []);
    this.writeCounts();
    return deleted;
  }

  /**
   * Picks up what another process (a running `search-r3 index`) committed since this index was opened:
   * docs.sqlite is read live; the vector store is re-read once its file has caught up with docs.sqlite
   * (the writer saves it right after each sqlite commit). Returns whether anything changed. Cheap when
   * nothing did (one sqlite read), so a server calls it before searches, throttled. A write of this instance
   * still saving its store is not another's: its store is left to it (it would not be found caught up yet).
   */
  async refresh(): Promise<boolean> {
    return this.reading(() => this.takeUpCommits());
  }

  private async takeUpCommits(): Promise<boolean> {
    const g = this.docs.generation();
    if (g === this.storeGeneration || this.storeFollowing) return false;
    // false while the writer is between its two commits (or its file is damaged): exact search covers the gap
    if (!(await this.store.reload(this.docsState(g)))) {
      this.storeStale = true;
      return false;
    }
    this.storeGeneration = g;
    this.storeStale = false;
    return true;
  }

  getDocument(id: string): (StoredDocument & { status: string; vector: Float32Array | null }) | undefined {
    this.requireOpen();
    return this.docs.get(id);
  }

  documentIds(): string[] {
    this.requireOpen();
    return this.docs.allIds();
  }

  /**
   * Embeds the query (with reasoning when asked) and ranks documents. One read from its call on, so that a
   * close() while the query is still embedding waits for the answer rather than refusing it halfway.
   */
  async search(query: string, opts: SearchOptions = {}): Promise<SearchResult> {
    return this.reading(async () => {
      checkSearch(query, opts);
      const backend = this.requireBackend('searching by text');
      const t0 = performance.now();
      const [q] = await backend.embedQueries([query], opts);
      const t1 = performance.now();
      const hits = await this.rank(q.vector, { ...opts, queryText: query });
      const searchMs = performance.now() - t1;
      return { hits, reasoning: q.reasoning, forced: q.forced, truncated: q.truncated, embedMs: t1 - t0, searchMs };
    });
  }

  /** Ranks documents for an already embedded query; `queryText` is needed for hybrid search. */
  async searchVector(vector: Float32Array, opts: RankOptions = {}): Promise<SearchHit[]> {
    checkQueryVector(vector);
    checkRankOptions(opts);
    return this.reading(() => this.rank(vector, opts));
  }

  /** Ranks for search() and searchVector(), which have checked `opts`. */
  private async rank(vector: Float32Array, opts: RankOptions): Promise<SearchHit[]> {
    const k = opts.k ?? 10;
    this.checkDimension(vector);
    const exact = opts.exact ?? (this.storeStale || this.documentCount() * this.dimension <= EXACT_SEARCH_WORK);
    const denseSearch = (n: number): Promise<VectorHit[]> =>
      exact ? Promise.resolve(this.exactHits(vector, n)) : this.store.search(vector, n);
    if (!opts.hybrid) {
      const dense = await denseSearch(k);
      const docs = this.docs.byKeys(dense.map((h) => h.key));
      return dense
        .filter((h) => docs.has(h.key))
        .map((h) => ({ ...docs.get(h.key)!, score: h.score, denseScore: h.score }));
    }
    if (opts.queryText === undefined) throw new IndexError('hybrid search needs the query text for BM25.');
    // 4k past 2^53 is no integer to the stores (k is any safe integer); no list holds that many documents anyway
    const depth = Math.max(opts.candidates ?? HYBRID_CANDIDATES, Math.min(4 * k, Number.MAX_SAFE_INTEGER));
    const dense = await denseSearch(depth);
    const denseDocs = this.docs.byKeys(dense.map((h) => h.key));
    const denseIds = dense
      .filter((h) => denseDocs.has(h.key))
      .map((h) => ({ id: denseDocs.get(h.key)!.id, score: h.score }));
    const lexical = this.bm25Index().search(opts.queryText, depth);
    const fused = fuseHybrid(
      denseIds.map((h) => h.id),
      lexical.docIds,
      this.backend?.fusion,
    ).slice(0, k);
    const denseScore = new Map(denseIds.map((h) => [h.id, h.score]));
    const bm25Score = new Map(lexical.docIds.map((id, i) => [id, lexical.scores[i]]));
    return fused.map((f) => {
      const doc = this.docs.get(f.id);
      if (!doc)
        throw new IndexError(
          `${this.docs.file} is damaged (document '${f.id}' is ranked but cannot be read); ${REBUILD(this.dir)}.`,
        );
      const { status: _s, vector: _v, ...stored } = doc;
      return {
        ...stored,
        score: f.score,
        ...(denseScore.has(f.id) ? { denseScore: denseScore.get(f.id) } : {}),
        ...(bm25Score.has(f.id) ? { bm25Score: bm25Score.get(f.id) } : {}),
      };
    });
  }

  private documentCount(): number {
    const g = this.docs.generation();
    if (!this.countCache || this.countCache.generation !== g)
      this.countCache = { generation: g, documents: this.docs.indexedCount() };
    return this.countCache.documents;
  }

  /** Exact cosine top-k over the f32 vectors of docs.sqlite (kept in memory while the index is small or asked for). */
  exactSearch(vector: Float32Array, k: number): VectorHit[] {
    this.requireOpen();
    checkExactSearch(vector, k);
    this.checkDimension(vector);
    return this.exactHits(vector, k);
  }

  private checkDimension(vector: Float32Array): void {
    if (vector.length !== this.dimension)
      throw new IndexError(
        `the query vector has ${vector.length} dimensions; the index holds ${this.dimension}-d vectors.`,
      );
  }

  /** exactSearch for a search under way, which close() waits for: it may end after close() was called. */
  private exactHits(vector: Float32Array, k: number): VectorHit[] {
    const { keys, data } = this.vectorSnapshot();
    return exactCosineSearch(data, this.dimension, vector, k).map((h) => ({ key: keys[h.row], score: h.score }));
  }

  /**
   * Every indexed document's exact f32 vector (row-major, `dim` floats per row) with its id and store key, read
   * from docs.sqlite once per generation: what exact search and whole-index evaluation rank against.
   */
  indexedVectors(): { ids: string[]; keys: number[]; dim: number; data: Float32Array } {
    this.requireOpen();
    return this.vectorSnapshot();
  }

  private vectorSnapshot(): { ids: string[]; keys: number[]; dim: number; data: Float32Array } {
    const g = this.docs.generation();
    if (!this.exactCache || this.exactCache.generation !== g) {
      const source = { generation: () => this.docs.generation(), rows: () => this.docs.indexedVectors() };
      this.exactCache = readVectorSnapshot(source, this.dimension, this.documentCount());
    }
    const { keys, ids, data } = this.exactCache;
    return { ids, keys, dim: this.dimension, data };
  }

  /**
   * The BM25 index over the indexed documents. This instance's own writes keep it current (followInBm25); a
   * generation it did not make (another process's commits, taken up by refresh()) is read from bm25.bin when that
   * holds it, else rebuilt from every indexed text, since docs.sqlite keeps no record of which documents a commit
   * changed, so the difference is not known. A build is saved to bm25.bin for the next open.
   */
  private bm25Index(): Bm25Index {
    const g = this.docs.generation();
    if (!this.bm25 || this.bm25.generation !== g) {
      this.bm25 = this.loadBm25(g);
      if (!this.bm25) {
        // saved only if docs.sqlite is still at g once built (storeBm25): a commit during the build would leave
        // newer texts under g's number
        this.bm25 = { generation: g, index: Bm25Index.build(this.docs.indexedTexts(), this.analyzer), saved: false };
        this.bm25Builds++;
        this.storeBm25();
      }
    }
    return this.bm25.index;
  }

  private get bm25File(): string {
    return path.join(this.dir, BM25_FILE);
  }

  /**
   * What bm25.bin must reflect to stand for docs.sqlite at `generation`, the current one: the table itself (its
   * identity: a table made anew counts generations from 0 again), its generation and document count. Undefined for
   * a table without an identity (none of this version's writers opened it yet): bm25.bin is then neither read nor
   * saved, since a file could not be told from one saved for the table it replaced.
   */
  private bm25Key(generation: number): Bm25FileKey | undefined {
    const table = this.docs.identity();
    if (table === undefined) return undefined;
    return { generation, source: `${this.manifest.createdAt} ${table}`, documents: this.documentCount() };
  }

  /**
   * The index bm25.bin holds for `generation`, or undefined (missing, stale, damaged or unreadable: the last two
   * said once). A file that cannot be read at all (another user's, say) is left as it is: see storeBm25.
   */
  private loadBm25(generation: number): { generation: number; index: Bm25Index; saved: boolean } | undefined {
    const key = this.bm25Key(generation);
    if (!key) return undefined;
    let read: Bm25FileRead;
    try {
      read = readBm25File(this.bm25File, key, this.analyzer);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (typeof err?.code === 'string') {
        this.bm25Unreadable = true;
        this.noteBm25(
          `${this.bm25File} could not be read (${err.code}: ${err.message}); BM25 was rebuilt from docs.sqlite and ` +
            'the file left as it is (check its owner and permissions)',
        );
        return undefined;
      }
      // an error without a system code comes from the content, which a rebuild saved over it mends
      read = { damaged: err instanceof Error ? err.message : String(e) };
    }
    if ('index' in read) {
      this.bm25Loads++;
      return { generation, index: read.index, saved: true };
    }
    if ('damaged' in read)
      this.noteBm25(`${this.bm25File} is damaged (${read.damaged}); BM25 was rebuilt from docs.sqlite`);
    return undefined;
  }

  /**
   * Saves the BM25 index as bm25.bin when it is current and not saved yet, and this instance saves it. A folder that
   * cannot be written is said once and not tried again: hybrid search goes on from memory either way.
   */
  private storeBm25(): void {
    const bm25 = this.bm25;
    // a file this process cannot read is not one it may judge stale, nor replace: it may be another user's
    if (!this.saveBm25 || !bm25 || bm25.saved || this.bm25Unreadable) return;
    try {
      const key = this.bm25Key(bm25.generation);
      if (!key || bm25.generation !== this.docs.generation()) return;
      writeBm25File(this.bm25File, bm25.index, key, this.analyzer);
      bm25.saved = true;
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      this.noteBm25(
        `${this.bm25File} could not be saved (${why}); hybrid search builds BM25 from docs.sqlite at each open ` +
          'until it can',
      );
      bm25.saved = true; // not tried again
    }
  }

  private noteBm25(sentence: string): void {
    if (this.bm25Noted) return;
    this.bm25Noted = true;
    this.noteList.push(sentence);
  }

  /**
   * Before this instance's first write: when bm25.bin holds the current generation, it is read so that the write
   * is followed in it and the file saved current at close, and the next hybrid search does not build. Without the
   * file (no hybrid search used this folder) a write pays nothing for BM25.
   */
  private followSavedBm25(): void {
    if (this.bm25 || this.bm25FileSought || !this.saveBm25) return;
    this.bm25FileSought = true;
    if (existsSync(this.bm25File)) this.bm25 = this.loadBm25(this.docs.generation());
  }

  /** Builds the BM25 index now (the server does it at start so the first hybrid query is not slow). */
  warmHybrid(): void {
    this.requireOpen();
    this.bm25Index();
  }

  /**
   * documents: what search ranks; pending: documents waiting for their vectors; outdated: the pending ones
   * that are changes of indexed documents, searched as they were before the change meanwhile.
   */
  stats(): { documents: number; pending: number; outdated: number; generation: number } {
    this.requireOpen();
    return {
      documents: this.docs.indexedCount(),
      pending: this.docs.pendingCount(),
      outdated: this.docs.outdatedCount(),
      generation: this.docs.generation(),
    };
  }

  /**
   * Taken by the first write and held until close(); readers (search, a server) never take it. A writer may
   * take it before its first write, so that a second writer is refused before it reports anything.
   */
  lockForWriting(): void {
    this.requireOpen();
    if (this.readOnly)
      throw new IndexError(
        `${this.dir} was opened read-only; open it with { writable: true } to add or delete documents.`,
      );
    this.lock ??= WriteLock.acquire(this.dir);
  }

  private requireBackend(what: string): EmbeddingBackend {
    if (!this.backend) throw new IndexError(`${what} needs a model; open the index with a backend.`);
    return this.backend;
  }

  /** A closed index's sqlite connection and vector store are gone: one sentence instead of their own errors. */
  private requireOpen(): void {
    if (this.closed)
      throw new IndexError(
        `the index ${this.dir} was closed; open it again with SearchIndex.open(${JSON.stringify(this.dir)}) to use it.`,
      );
  }

  /**
   * Releases the files and the write lock; every other method refuses from the call on. A write under way ends
   * first: an encoding loop commits the chunk it is encoding and then stops (its call fails, saying what stays
   * pending); writes still waiting are refused. Searches under way are answered first. Closing twice waits for
   * the same close.
   */
  close(): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      try {
        await Promise.all([this.writes, this.reads.settled()]);
        this.storeBm25();
        await this.store.close();
        this.docs.close();
      } finally {
        this.lock?.release();
      }
    })();
    return this.closing;
  }
}

/**
 * A backend error about some of a chunk's texts (a remote request that failed), with the ids of their documents
 * put in front of its message: what a user looks for in the input. Its class stays, and so how it is reported.
 */
function namingDocuments(e: unknown, chunk: readonly { id: string }[]): unknown {
  const range = failedInputs(e);
  if (!(e instanceof Error) || range === undefined) return e;
  const ids = chunk.slice(range.start, range.end).map((d) => JSON.stringify(d.id));
  if (ids.length === 0) return e;
  const shown = ids.length > 5 ? `${ids.slice(0, 5).join(', ')} and ${ids.length - 5} more` : ids.join(', ');
  e.message = `encoding document${ids.length > 1 ? 's' : ''} ${shown}: ${e.message}`;
  return e;
}

/** A vector store that LanceDB (or the file system under it) refuses, as one sentence. */
function storeError(where: string, e: unknown, what: 'read' | 'written'): IndexError {
  const why = (e instanceof Error ? e.message : String(e)).split(/\s+Caused by:|\n/)[0];
  return new IndexError(
    `the vector store ${where} cannot be ${what} (${why}); give a store location this process may ` +
      `${what === 'read' ? 'read' : 'write'}, or fix its permissions.`,
  );
}

/** Where a LanceDB store keeps its table: the URI given when the index was created, or <index>/vectors.lance. */
function lanceUri(dir: string, uri: string | undefined): string {
  const own = path.join(dir, 'vectors.lance');
  // index.json of an older search-r3 kept the default as `<--out as typed>/vectors.lance`, relative to the folder
  // it ran in: the index folder's own table is meant, not whatever that path names from where this one runs
  const olderDefault = uri !== undefined && !uri.includes('://') && !path.isAbsolute(uri);
  return uri === undefined || (olderDefault && path.basename(uri) === 'vectors.lance' && existsSync(own)) ? own : uri;
}

/**
 * A store path that an index.json of an older search-r3 kept as typed, relative to the folder its run started in
 * (which nothing records), when it names nothing from here: the sentence saying so, else null. Connecting there
 * would make a new, empty table in whatever folder this process runs in, and the index folder is no better a
 * guess (the path was typed from its parent as often as from inside it).
 */
function unplacedStore(dir: string, m: IndexManifest, uri: string): string | null {
  const relative = m.storeUri !== undefined && uri === m.storeUri && !uri.includes('://') && !path.isAbsolute(uri);
  if (!relative || existsSync(uri) || path.resolve(uri) === path.resolve(dir, 'vectors.lance')) return null;
  const file = path.join(dir, MANIFEST_FILE);
  return (
    `${file}: field 'storeUri' is '${uri}', a path an older search-r3 kept relative to the folder the index was ` +
    `made from, and nothing is there from ${process.cwd()}; run this from that folder, or set 'storeUri' to the ` +
    `LanceDB folder's absolute path (and remove the file's 'checksum', which the edit no longer matches)`
  );
}

/**
 * A store location as index.json keeps it: a local path made absolute, since the index is opened from other
 * folders than the one it was created from (a relative one would name another table there, or none). The
 * default is not kept at all: it is the index folder's own, wherever the folder is copied or moved.
 */
function recordedUri(uri: string): string {
  return uri.includes('://') ? uri : path.resolve(uri);
}

/** Two store locations that name the same table (a local path as given or resolved; a URL as it is). */
function sameLocation(a: string, b: string): boolean {
  return a === b || (!a.includes('://') && !b.includes('://') && path.resolve(a) === path.resolve(b));
}

/** The store `c` asks for: as given, else LanceDB when it gives a store URI, else `otherwise`. */
function askedStore(c: CreateIndexOptions, otherwise: StoreKind): StoreKind {
  return c.store ?? (c.storeUri !== undefined ? 'lancedb' : otherwise);
}

function storeName(kind: StoreKind, uri: string): string {
  return kind === 'local' ? 'a local HNSW file (vectors.usearch)' : `the LanceDB table at ${uri}`;
}

/**
 * The vector store that `c` asks for, said against the index's (fixed when it was created, as its dtype), or
 * undefined when they agree. A local store has no URI: one given beside it is not looked at.
 */
function storeChange(dir: string, m: IndexManifest, c: CreateIndexOptions): string | undefined {
  const kind = askedStore(c, m.store);
  const have = lanceUri(dir, m.storeUri);
  const want = c.storeUri ?? have;
  if (kind === m.store && (kind === 'local' || sameLocation(want, have))) return undefined;
  return `the index keeps its vectors in ${storeName(m.store, have)}, not in ${storeName(kind, want)}`;
}

function backendSource(b: EmbeddingBackend): string {
  const s = (b as { source?: unknown }).source;
  return typeof s === 'string' ? s : b.modelId;
}

const CREATE_NEEDS_MODEL = 'creating an index needs a model (backend) to fix its dimension and prompts.';

/** Whether `dir` holds an index's manifest or documents (damaged or not): `create` then opens, not creates. */
function holdsIndexFiles(dir: string): boolean {
  return existsSync(path.join(dir, MANIFEST_FILE)) || existsSync(path.join(dir, DOCS_FILE));
}

/** Refuses a file where the index folder should be. */
function refuseFile(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new IndexError(`${dir} is a file, not an index folder; give a new folder or an existing index.`);
}

/** Refuses a file where the index folder should be; creates the folder for a new index. */
function prepareFolder(dir: string, create: boolean): void {
  refuseFile(dir);
  if (!create) return;
  try {
    makeFolderSync(dir);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const known = fileSystemCause(err, { creating: err.syscall === 'mkdir' });
    const where =
      typeof err.path === 'string' && path.resolve(err.path) !== path.resolve(dir) ? ` (at ${err.path})` : '';
    const why = known
      ? `: ${known.cause} (${known.code}); ${known.remedy}, or give another folder`
      : ` (${err.code ?? err.message}); give a folder that can be created and written`;
    throw new IndexError(`cannot create the index folder ${dir}${where}${why}.`);
  }
}

/**
 * docs.sqlite for reading (it must exist and hold documents: it is the one part that cannot be rebuilt
 * from the others) or for writing (created when missing; a writer then encodes every document again).
 */
function openDocuments(
  dir: string,
  read: ManifestRead,
  writable: boolean,
  create: boolean,
  notes: string[],
): DocumentTable {
  const file = path.join(dir, DOCS_FILE);
  const state = !existsSync(file) ? 'missing' : statSync(file).size === 0 ? 'empty' : 'present';
  const manifest = 'manifest' in read ? read.manifest : undefined;
  // an empty docs.sqlite without a manifest is what an index run killed before its first commit leaves: no
  // index yet, rather than one that lost its documents. Refused before a writer creates docs.sqlite: a refused
  // open leaves the folder as it was.
  if (!create && state !== 'present' && !('manifest' in read)) {
    const both = read.problem === 'missing' && state === 'missing';
    throw new IndexError(
      `${both ? read.message : `${read.message}, and ${file} is ${state}`}; this is not ` +
        `a search-r3 index (${BUILD_ONE}).`,
    );
  }
  if (writable) {
    if (state !== 'present' && manifest && manifest.counts.documents + manifest.counts.pending > 0) {
      notes.push(`${file} was ${state}; the index is rebuilt: every document given is encoded again.`);
    }
    return DocumentTable.openForWriting(file);
  }
  if (state !== 'present')
    throw new IndexError(`${file} is ${state}: the index has lost its documents; ${REBUILD(dir)}.`);
  const docs = DocumentTable.openReadOnly(file, noWriterRuns(dir));
  if (manifest && manifest.counts.documents > 0 && docs.indexedCount() === 0 && docs.pendingCount() === 0) {
    docs.close();
    throw new IndexError(
      `${file} holds no documents but ${MANIFEST_FILE} records ${manifest.counts.documents}: the document ` +
        `store was emptied or replaced; ${REBUILD(dir)}.`,
    );
  }
  return docs;
}

/**
 * Whether a reader may roll back the journal a killed writer left in `dir`: no live process holds the write
 * lock. (SQLite itself never rolls back the transaction of a writer that is running.)
 */
function noWriterRuns(dir: string): () => boolean {
  return () => WriteLock.holder(dir) === undefined;
}

const MANIFEST_COPY = 'manifest';

/** Refuses a model, vector type or store other than the index's: its vectors cannot be mixed or moved. */
function refuseMismatch(dir: string, manifest: IndexManifest, opts: OpenIndexOptions): void {
  const file = path.join(dir, MANIFEST_FILE);
  const why = opts.backend && incompatibility(manifest, opts.backend);
  if (why)
    throw new IndexError(
      `${file}: ${why}; vectors from different models cannot be mixed (use the index's model or build a new index).`,
    );
  if (opts.create?.dtype && opts.create.dtype !== manifest.dtype)
    throw new IndexError(
      `${file}: the index stores ${manifest.dtype} vectors, not ${opts.create.dtype}; build a new index to change it.`,
    );
  const otherStore = opts.create && storeChange(dir, manifest, opts.create);
  if (otherStore) throw new IndexError(`${file}: ${otherStore}; build a new index to change it.`);
}

/**
 * A writer's refusals that need no write, made before docs.sqlite is opened for writing: that open upgrades an
 * older table (schema, journal) and resolveManifest rewrites a lost index.json, so a writer refused after them
 * would leave the folder changed. Where index.json is lost, the copy in docs.sqlite is read without writing.
 */
function refuseBeforeWriting(dir: string, read: ManifestRead, opts: OpenIndexOptions): void {
  if ('manifest' in read) return refuseMismatch(dir, read.manifest, opts);
  const file = path.join(dir, DOCS_FILE);
  if (!existsSync(file) || !statSync(file).isFile() || statSync(file).size === 0) return;
  const docs = DocumentTable.openToLook(file);
  if (!docs) return;
  try {
    const copy = docs.info(MANIFEST_COPY);
    if (copy !== undefined) refuseMismatch(dir, unsealManifest(copy, manifestCopyName(docs.file)), opts);
    else if (docs.indexedCount() + docs.pendingCount() > 0) throw modelUnknown(read, docs.file);
  } finally {
    docs.close();
  }
}

function manifestCopyName(docsFile: string): string {
  return `${docsFile} (its copy of ${MANIFEST_FILE})`;
}

/** An index from before docs.sqlite kept a copy of index.json, which is lost: which model made it is unknown. */
function modelUnknown(read: { message: string }, docsFile: string): IndexError {
  return new IndexError(
    `${read.message}, and ${docsFile} keeps no copy of it (an index from an older search-r3), so the model ` +
      `of its vectors is unknown; build a new index in another folder.`,
  );
}

/**
 * The manifest to use: index.json when intact, else the copy docs.sqlite keeps (rewritten to index.json
 * by a writer), else a new one for a new index. A writer stores the copy when docs.sqlite lacks it.
 */
function resolveManifest(
  dir: string,
  read: ManifestRead,
  docs: DocumentTable,
  opts: OpenIndexOptions,
  notes: string[],
): IndexManifest {
  const writable = !docs.readOnly;
  const copyText = docs.info(MANIFEST_COPY);
  if ('manifest' in read) {
    if (writable && copyText === undefined) docs.setInfo(MANIFEST_COPY, sealManifest(identity(read.manifest)));
    return read.manifest;
  }
  const empty = docs.indexedCount() + docs.pendingCount() === 0;
  if (copyText !== undefined) {
    const copy = unsealManifest(copyText, manifestCopyName(docs.file));
    const manifest: IndexManifest = {
      ...copy,
      counts: { documents: docs.indexedCount(), pending: docs.pendingCount() },
      updatedAt: new Date().toISOString(),
    };
    if (writable) writeManifest(dir, manifest);
    notes.push(
      `${read.message}; ${writable ? 'rewrote it from' : 'used'} the copy kept in ` +
        `docs.sqlite${writable ? '' : ' (the next search-r3 index run on this folder rewrites the file)'}.`,
    );
    return manifest;
  }
  if (opts.create && empty) {
    const manifest = newManifest(dir, opts);
    writeManifest(dir, manifest);
    docs.setInfo(MANIFEST_COPY, sealManifest(identity(manifest)));
    return manifest;
  }
  if (!writable || empty)
    throw new IndexError(
      `${read.message}; ${read.problem === 'missing' ? 'this is not a search-r3 index' : 'the index cannot be used'} ` +
        `(${BUILD_ONE}).`,
    );
  throw modelUnknown(read, docs.file);
}

/**
 * The manifest of the index in `dir` without opening the index (to find its model): index.json, or the
 * copy docs.sqlite keeps when index.json is missing or damaged. Reads only.
 */
export function readIndexManifest(dir: string): IndexManifest {
  refuseFile(dir);
  const read = tryReadManifest(dir);
  if ('manifest' in read) return read.manifest;
  const file = path.join(dir, DOCS_FILE);
  if (existsSync(file) && statSync(file).isFile() && statSync(file).size > 0) {
    const docs = DocumentTable.openReadOnly(file, noWriterRuns(dir));
    try {
      const copy = docs.info(MANIFEST_COPY);
      if (copy !== undefined) return unsealManifest(copy, manifestCopyName(file));
    } finally {
      docs.close();
    }
  }
  throw new IndexError(
    read.problem === 'missing'
      ? `${read.message}; this is not a search-r3 index (build one with 'search-r3 index').`
      : `${read.message}.`,
  );
}

/** The manifest's fixed part: what docs.sqlite keeps a copy of (counts are read from the table itself). */
function identity(m: IndexManifest): IndexManifest {
  return { ...m, counts: { documents: 0, pending: 0 }, updatedAt: m.createdAt };
}

function newManifest(dir: string, opts: OpenIndexOptions): IndexManifest {
  const backend = opts.backend;
  if (!backend) throw new IndexError(CREATE_NEEDS_MODEL);
  const create = opts.create ?? {};
  const now = new Date().toISOString();
  const store = askedStore(create, 'local');
  return {
    format: FORMAT,
    version: FORMAT_VERSION,
    model: { id: backend.modelId, source: backendSource(backend) },
    templates: { ...backend.templates },
    maxLength: backend.maxLength,
    dimension: backend.dimension,
    dtype: create.dtype ?? 'f32',
    metric: 'cos',
    documentText: 'title-newline-text',
    store,
    ...(store === 'lancedb' && create.storeUri !== undefined ? { storeUri: recordedUri(create.storeUri) } : {}),
    hnsw: { ...DEFAULT_HNSW, ...create.hnsw },
    counts: { documents: 0, pending: 0 },
    createdAt: now,
    updatedAt: now,
  };
}

async function openStore(dir: string, m: IndexManifest, readOnly: boolean, threads?: number): Promise<VectorStore> {
  const local = { dimension: m.dimension, dtype: m.dtype, hnsw: m.hnsw, threads };
  if (m.store === 'lancedb') {
    const uri = lanceUri(dir, m.storeUri);
    const unplaced = unplacedStore(dir, m, uri);
    if (unplaced !== null && !readOnly) throw new IndexError(`${unplaced}.`);
    // connecting creates a local folder: a reader that finds none searches a graph of its own instead
    if (readOnly && !uri.includes('://') && !existsSync(uri))
      return new UsearchStore(dir, { ...local, load: false, problem: unplaced ?? `${uri} is missing` });
    const { LanceStore } = await import('./lance-store.js');
    try {
      return await LanceStore.open(uri, m.dimension);
    } catch (e) {
      throw storeError(uri, e, readOnly ? 'read' : 'written');
    }
  }
  return new UsearchStore(dir, local);
}

/** Documents to add: an array, or a stream of them (staged as it is read). */
export type DocumentInput = readonly SourceDocument[] | AsyncIterable<SourceDocument>;

/** Documents staged per docs.sqlite transaction. */
const STAGE_SLICE = 10_000;

function checkDocumentInput(docs: unknown): void {
  const stream = typeof docs === 'object' && docs !== null && Symbol.asyncIterator in docs;
  if (!stream) checkDocuments(docs);
}

/**
 * The documents in slices of STAGE_SLICE: an array's as they are; a stream's checked as checkDocuments checks
 * an array (positions counted over the whole stream) and made the form that is stored, one slice held at a time.
 */
async function* stageSlices(docs: DocumentInput): AsyncGenerator<SourceDocument[]> {
  if (Array.isArray(docs)) {
    for (let i = 0; i < docs.length; i += STAGE_SLICE) yield docs.slice(i, i + STAGE_SLICE);
    return;
  }
  const check = documentChecker();
  let slice: SourceDocument[] = [];
  let i = 0;
  for await (const d of docs as AsyncIterable<SourceDocument>) {
    check(d, i);
    slice.push(storedDocument(d, `document ${i + 1} given`));
    i++;
    if (slice.length === STAGE_SLICE) {
      yield slice;
      slice = [];
    }
  }
  if (slice.length > 0) yield slice;
}
