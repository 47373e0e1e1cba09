/**
 * VectorStore on a usearch HNSW graph in vectors.usearch, saved via a temporary file and a rename, so a
 * kill leaves the previous complete file. After each save, vectors.generation.json records which
 * docs.sqlite generation and table (its identity) the file reflects, its size and its SHA-256. usearch
 * trusts the bytes it loads (a damaged file aborts the process in native code), so a file is hashed
 * before usearch sees it and loaded only when it matches; otherwise the caller rebuilds the graph from
 * docs.sqlite.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { usearch } from '../io/usearch-module.js';
import { nativeWriteSync, writeFileAtomicallySync } from '../io/atomic-file.js';
import type { HnswParams, VectorDtype } from './manifest.js';
import { type StoreState, type VectorHit, type VectorRow, type VectorStore, reflects } from './vector-store.js';

/** How long a reader waits for a commit record to follow its file before calling the file damaged. */
const RECORD_WAIT_MS = 500;

const { Index, MetricKind, ScalarKind, exactSearch } = usearch;
type UIndex = InstanceType<typeof Index>;

export const VECTORS_FILE = 'vectors.usearch';
export const GENERATION_FILE = 'vectors.generation.json';

const SCALAR: Record<VectorDtype, (typeof ScalarKind)[keyof typeof ScalarKind]> = {
  f32: ScalarKind.F32,
  f16: ScalarKind.F16,
  i8: ScalarKind.I8,
};

export interface UsearchStoreOptions {
  dimension: number;
  dtype: VectorDtype;
  hnsw: HnswParams;
  /** Threads for adding (0 = all); search is one query per call, one thread. */
  threads?: number;
  /** false: start empty, never reading the folder (a reader's stand-in for a shared store it cannot open). */
  load?: boolean;
  /** Why the store starts empty when `load` is false. */
  problem?: string;
}

/** What vectors.generation.json says of vectors.usearch (`table` is absent in a record of an older search-r3). */
interface CommitRecord extends StoreState {
  bytes: number;
  sha256: string;
}

type Loaded = { state: StoreState; index: UIndex } | { problem: string };

/** SHA-256 and size of an open file, read in blocks (the file may be larger than memory allows twice). */
function hashFile(fd: number): { sha256: string; bytes: number } {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 22);
  let bytes = 0;
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, bytes);
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    bytes += n;
  }
  return { sha256: h.digest('hex'), bytes };
}

export class UsearchStore implements VectorStore {
  readonly kind = 'local' as const;
  private index: UIndex;
  /** What the graph in memory reflects (generation 0: none, e.g. after clear()). */
  private loaded: StoreState = { generation: 0 };
  /** Why vectors.usearch was not loaded at open (missing, damaged, without checksum), or undefined. */
  readonly problem?: string;

  constructor(
    private readonly dir: string,
    private readonly opts: UsearchStoreOptions,
  ) {
    this.index = this.fresh();
    if (opts.load === false) {
      this.problem = opts.problem;
      return;
    }
    const vectors = path.join(dir, VECTORS_FILE);
    if (!existsSync(vectors) && !existsSync(path.join(dir, GENERATION_FILE))) return; // a new index
    const r = this.readCommitted(true);
    if ('problem' in r) {
      this.problem = r.problem;
      return;
    }
    this.index = r.index;
    this.loaded = r.state;
  }

  private fresh(): UIndex {
    const { dimension, dtype, hnsw } = this.opts;
    return new Index({
      dimensions: dimension,
      metric: MetricKind.Cos,
      quantization: SCALAR[dtype],
      connectivity: hnsw.connectivity,
      expansion_add: hnsw.expansionAdd,
      expansion_search: hnsw.expansionSearch,
      multi: false,
    });
  }

  private readRecord(): CommitRecord | { problem: string } {
    const file = path.join(this.dir, GENERATION_FILE);
    if (!existsSync(file)) return { problem: `${file} is missing` };
    let r: Partial<CommitRecord>;
    try {
      r = JSON.parse(readFileSync(file, 'utf8')) as Partial<CommitRecord>;
    } catch {
      return { problem: `${file} is damaged (not valid JSON)` };
    }
    if (!Number.isInteger(r.generation) || (r.generation as number) < 0)
      return { problem: `${file} is damaged (no generation)` };
    if (r.table !== undefined && typeof r.table !== 'string')
      return { problem: `${file} is damaged (its table is not a string)` };
    if (typeof r.sha256 !== 'string' || !Number.isInteger(r.bytes))
      return { problem: `${path.join(this.dir, VECTORS_FILE)} has no checksum (it was written by an older search-r3)` };
    return r as CommitRecord;
  }

  /**
   * Loads the committed graph if vectors.usearch is exactly the file its record describes. `waitForRecord`:
   * a file that does not match waits a moment for its record (see recordMoves). Only opening needs that;
   * a reload that misses a commit is tried again at the next refresh, and must not stall a server's thread.
   */
  private readCommitted(waitForRecord = false): Loaded {
    const file = path.join(this.dir, VECTORS_FILE);
    const record = this.readRecord();
    if ('problem' in record) return record;
    // A writer replaces the file by rename, never in place: the bytes hashed here are the bytes loaded
    // as long as the path still names the same inode afterwards. If it was replaced meanwhile, read again.
    for (let attempt = 0; attempt < 3; attempt++) {
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch {
        return { problem: `${file} is missing` };
      }
      try {
        const before = fstatSync(fd);
        const { sha256, bytes } = hashFile(fd);
        if (bytes !== record.bytes || sha256 !== record.sha256) {
          if (waitForRecord && this.recordMoves(record.sha256)) return this.readCommitted(true); // committed meanwhile
          return {
            problem: `${file} is damaged (its ${bytes} bytes do not match the checksum recorded in ${GENERATION_FILE})`,
          };
        }
        const index = this.fresh();
        index.load(file);
        const after = statSync(file);
        if (after.ino === before.ino && after.mtimeMs === before.mtimeMs && after.size === before.size)
          return { state: { generation: record.generation, table: record.table }, index };
      } catch (e) {
        return { problem: `${file} cannot be loaded (${(e as Error).message})` };
      } finally {
        closeSync(fd);
      }
    }
    return { problem: `${file} kept changing while it was read; another process is writing it` };
  }

  /**
   * Whether the commit record changes from `sha256` within a moment: a writer renames the new file into place
   * just before it writes the record, so a reader between the two sees a new file and the old record.
   */
  private recordMoves(sha256: string): boolean {
    const pause = new Int32Array(new SharedArrayBuffer(4)); // a cell nobody notifies: Atomics.wait sleeps
    for (let waited = 0; waited <= RECORD_WAIT_MS; waited += 25) {
      const now = this.readRecord();
      if (!('problem' in now) && now.sha256 !== sha256) return true;
      Atomics.wait(pause, 0, 0, 25);
    }
    return false;
  }

  async add(rows: readonly VectorRow[]): Promise<void> {
    if (rows.length === 0) return;
    const d = this.opts.dimension;
    const flat = new Float32Array(rows.length * d);
    rows.forEach((r, i) => flat.set(r.vector, i * d));
    this.index.add(
      BigUint64Array.from(rows, (r) => BigInt(r.key)),
      flat,
      this.opts.threads ?? 0,
    );
    this.loaded = { generation: 0 };
  }

  async remove(keys: readonly number[]): Promise<void> {
    if (keys.length === 0) return;
    this.index.remove(BigUint64Array.from(keys, (k) => BigInt(k)));
    this.loaded = { generation: 0 };
  }

  async search(vector: Float32Array, k: number): Promise<VectorHit[]> {
    return this.searchSync(vector, k);
  }

  /** Synchronous search (the HNSW walk takes well under a millisecond; no reason to defer it). */
  searchSync(vector: Float32Array, k: number): VectorHit[] {
    const n = nativeCount(k, this.index.size());
    if (n === 0) return [];
    const m = this.index.search(vector, n, 1);
    const hits: VectorHit[] = [];
    for (let i = 0; i < m.keys.length; i++) hits.push({ key: Number(m.keys[i]), score: 1 - m.distances[i] });
    return hits;
  }

  async commit(state: StoreState): Promise<void> {
    let record: CommitRecord | undefined;
    writeFileAtomicallySync(path.join(this.dir, VECTORS_FILE), (tmp) => {
      nativeWriteSync(tmp, () => this.index.save(tmp));
      const fd = openSync(tmp, 'r');
      try {
        record = { generation: state.generation, table: state.table, ...hashFile(fd) };
      } finally {
        closeSync(fd);
      }
    });
    writeFileAtomicallySync(path.join(this.dir, GENERATION_FILE), JSON.stringify(record) + '\n');
    this.loaded = { generation: state.generation, table: state.table };
  }

  async committed(): Promise<StoreState> {
    return this.loaded;
  }

  async clear(): Promise<void> {
    this.index = this.fresh();
    this.loaded = { generation: 0 };
  }

  /**
   * Loads what another process committed, if it reflects `state` and the file is intact; else keeps the current graph.
   */
  async reload(state: StoreState): Promise<boolean> {
    const record = this.readRecord();
    if ('problem' in record || !reflects(record, state)) return false;
    const r = this.readCommitted();
    if ('problem' in r || !reflects(r.state, state)) return false;
    this.index = r.index;
    this.loaded = r.state;
    return true;
  }

  async size(): Promise<number> {
    return this.index.size();
  }
  async close(): Promise<void> {
    /* the native index is freed with the object */
  }
}

/**
 * How many results to ask usearch for: k, at most the `size` vectors there are (it allocates room for k), none
 * for k ≤ 0. usearch converts k to an unsigned 64-bit integer in native code, where NaN, a fraction or an
 * unsafe integer aborts the whole process: they are refused here, whatever the caller checked.
 */
function nativeCount(k: number, size: number): number {
  if (!Number.isSafeInteger(k))
    throw new RangeError(`the number of results asked of usearch must be an integer (got ${String(k)}).`);
  return Math.max(0, Math.min(k, size));
}

/**
 * Exact cosine top-k of one query over row-major vectors (usearch's SIMD brute force, one thread:
 * deterministic). The index answers single queries with it rather than with the eval layer's batched
 * search (src/eval/dense-search.ts, which keeps trec_eval's tie order for whole runs): measured per query,
 * 0.27 ms against 1.83 ms at 5,183 × 256 and 1.12 ms against 6.69 ms at 5,400 × 1536, since that kernel
 * works in groups of four queries and copies the documents into its memory on every call.
 */
export function exactCosineSearch(
  data: Float32Array,
  dimension: number,
  query: Float32Array,
  k: number,
): { row: number; score: number }[] {
  const n = nativeCount(k, data.length / dimension);
  if (n === 0) return [];
  const m = exactSearch(data, query, dimension, n, MetricKind.Cos, 1);
  const keys = m.keys as BigUint64Array,
    distances = m.distances as Float32Array;
  const out: { row: number; score: number }[] = [];
  for (let i = 0; i < keys.length; i++) out.push({ row: Number(keys[i]), score: 1 - distances[i] });
  return out;
}
