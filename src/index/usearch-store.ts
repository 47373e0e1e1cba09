/**
 * VectorStore on a usearch HNSW graph in vectors.usearch (saved via a temporary file and a rename, so a
 * kill leaves the previous complete file). The generation of each save is kept in a small JSON file
 * written after the rename; a file whose generation does not match is rebuilt by the caller.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import usearch from 'usearch';
import type { HnswParams, VectorDtype } from './manifest.js';
import type { VectorHit, VectorRow, VectorStore } from './vector-store.js';

const { Index, MetricKind, ScalarKind, exactSearch } = usearch;
type UIndex = InstanceType<typeof Index>;

export const VECTORS_FILE = 'vectors.usearch';
const GENERATION_FILE = 'vectors.generation.json';

const SCALAR: Record<VectorDtype, (typeof ScalarKind)[keyof typeof ScalarKind]> = { f32: ScalarKind.F32, f16: ScalarKind.F16, i8: ScalarKind.I8 };

export interface UsearchStoreOptions {
  dimension: number;
  dtype: VectorDtype;
  hnsw: HnswParams;
  /** Threads for adding (0 = all); search is one query per call, one thread. */
  threads?: number;
}

export class UsearchStore implements VectorStore {
  readonly kind = 'local' as const;
  private index: UIndex;

  constructor(private readonly dir: string, private readonly opts: UsearchStoreOptions) {
    this.index = this.fresh();
    const file = path.join(dir, VECTORS_FILE);
    if (existsSync(file)) {
      try { this.index.load(file); } catch { this.index = this.fresh(); rmSync(path.join(dir, GENERATION_FILE), { force: true }); }
    }
  }

  private fresh(): UIndex {
    const { dimension, dtype, hnsw } = this.opts;
    return new Index({
      dimensions: dimension, metric: MetricKind.Cos, quantization: SCALAR[dtype],
      connectivity: hnsw.connectivity, expansion_add: hnsw.expansionAdd, expansion_search: hnsw.expansionSearch, multi: false,
    });
  }

  async add(rows: readonly VectorRow[]): Promise<void> {
    if (rows.length === 0) return;
    const d = this.opts.dimension;
    const flat = new Float32Array(rows.length * d);
    rows.forEach((r, i) => flat.set(r.vector, i * d));
    this.index.add(BigUint64Array.from(rows, (r) => BigInt(r.key)), flat, this.opts.threads ?? 0);
  }

  async remove(keys: readonly number[]): Promise<void> {
    if (keys.length > 0) this.index.remove(BigUint64Array.from(keys, (k) => BigInt(k)));
  }

  async search(vector: Float32Array, k: number): Promise<VectorHit[]> {
    return this.searchSync(vector, k);
  }

  /** Synchronous search (the HNSW walk takes well under a millisecond; no reason to defer it). */
  searchSync(vector: Float32Array, k: number): VectorHit[] {
    if (this.index.size() === 0 || k <= 0) return [];
    const m = this.index.search(vector, k, 1);
    const hits: VectorHit[] = [];
    for (let i = 0; i < m.keys.length; i++) hits.push({ key: Number(m.keys[i]), score: 1 - m.distances[i] });
    return hits;
  }

  async commit(generation: number): Promise<void> {
    const file = path.join(this.dir, VECTORS_FILE);
    const tmp = path.join(this.dir, `.${VECTORS_FILE}.${process.pid}.tmp`);
    this.index.save(tmp);
    renameSync(tmp, file);
    const gtmp = path.join(this.dir, `.${GENERATION_FILE}.${process.pid}.tmp`);
    writeFileSync(gtmp, JSON.stringify({ generation }) + '\n');
    renameSync(gtmp, path.join(this.dir, GENERATION_FILE));
  }

  async committedGeneration(): Promise<number> {
    const file = path.join(this.dir, GENERATION_FILE);
    if (!existsSync(file) || !existsSync(path.join(this.dir, VECTORS_FILE))) return 0;
    try { return Number((JSON.parse(readFileSync(file, 'utf8')) as { generation: number }).generation) || 0; } catch { return 0; }
  }

  async clear(): Promise<void> { this.index = this.fresh(); }

  /** Re-reads vectors.usearch (written by another process); keeps the current graph if the file cannot be read. */
  async reload(): Promise<void> {
    const next = this.fresh();
    next.load(path.join(this.dir, VECTORS_FILE));
    this.index = next;
  }
  async size(): Promise<number> { return this.index.size(); }
  async close(): Promise<void> { /* the native index is freed with the object */ }
}

/** Exact cosine top-k of one query over row-major vectors (usearch's SIMD brute force, one thread: deterministic). */
export function exactCosineSearch(data: Float32Array, dimension: number, query: Float32Array, k: number): { row: number; score: number }[] {
  const n = data.length / dimension;
  if (n === 0 || k <= 0) return [];
  const m = exactSearch(data, query, dimension, Math.min(k, n), MetricKind.Cos, 1);
  const keys = m.keys as BigUint64Array, distances = m.distances as Float32Array;
  const out: { row: number; score: number }[] = [];
  for (let i = 0; i < keys.length; i++) out.push({ row: Number(keys[i]), score: 1 - distances[i] });
  return out;
}
