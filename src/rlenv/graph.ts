/**
 * The environment's HNSW graph (usearch, cosine) over the embedding table: candidate retrieval for
 * each response and the neighbourhood of a document, the "local region" a refresh re-encodes.
 * Keys are table rows. Single-threaded add and search, so a seeded run builds the same graph.
 */
import { usearch } from '../io/usearch-module.js';

const { Index, MetricKind, ScalarKind } = usearch;

export interface GraphSettings {
  connectivity: number;
  expansionAdd: number;
  expansionSearch: number;
}

export const DEFAULT_GRAPH: GraphSettings = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 };

export class HnswGraph {
  private readonly index: InstanceType<typeof Index>;

  constructor(
    readonly dim: number,
    s: GraphSettings = DEFAULT_GRAPH,
  ) {
    this.index = new Index({
      dimensions: dim,
      metric: MetricKind.Cos,
      quantization: ScalarKind.F32,
      connectivity: s.connectivity,
      expansion_add: s.expansionAdd,
      expansion_search: s.expansionSearch,
      multi: false,
    });
  }

  get size(): number {
    return this.index.size();
  }

  /** Adds rows, or replaces their vectors when they are already in the graph. */
  upsert(rows: readonly number[], vectors: readonly Float32Array[]): void {
    if (rows.length === 0) return;
    const keys = BigUint64Array.from(rows, (r) => BigInt(r));
    const present = this.index.contains(keys) as boolean[] | boolean;
    const had = Array.isArray(present) ? present : [present];
    const old = keys.filter((_, i) => had[i]);
    if (old.length > 0) this.index.remove(old);
    const mat = new Float32Array(rows.length * this.dim);
    vectors.forEach((v, i) => mat.set(v, i * this.dim));
    this.index.add(keys, mat, 1);
  }

  /** The k nearest rows of each query vector, nearest first. */
  search(queries: readonly Float32Array[], k: number): number[][] {
    const n = Math.min(k, this.size);
    if (n === 0) return queries.map(() => []);
    return queries.map((q) => {
      const m = this.index.search(q, n, 1);
      return Array.from(m.keys)
        .map(Number)
        .filter((_, i) => Number.isFinite(m.distances[i]));
    });
  }

  /** The k nearest other rows of a row (its graph neighbourhood), given the row's current vector. */
  neighbours(row: number, vector: Float32Array, k: number): number[] {
    if (k <= 0) return [];
    return this.search([vector], k + 1)[0]
      .filter((r) => r !== row)
      .slice(0, k);
  }
}
