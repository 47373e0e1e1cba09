/**
 * The environment's corpus embedding table: one L2-normalised row per document (N × d, Float32) and
 * the policy version each row was encoded at. Rows encoded at an older version than the current policy
 * are stale; the refresh policy decides which of them to re-encode.
 */
import os from 'node:os';
import { hostKernels } from '../tensor/index.js';

/** The table does not fit: the message gives the bytes needed and the limit. */
export class TableTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TableTooLargeError';
  }
}

/** Never-encoded rows carry this version. */
export const NEVER = -1;

/**
 * Refuses a table that would not fit `maxBytes` (TableTooLargeError, naming the size and what to change),
 * so that a trainer can tell before it starts, as the table itself does when made.
 */
export function checkTableSize(rows: number, dim: number, maxBytes: number): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(dim) || dim < 1)
    throw new Error(`an embedding table needs at least one row and one dimension, got ${rows} × ${dim}`);
  const need = tableBytes(rows, dim);
  // a typed array holds at most 2^32 − 1 elements on Node 20
  if (need > maxBytes || rows * dim > 2 ** 32 - 1) {
    throw new TableTooLargeError(
      `the environment's embedding table for ${rows} documents × ${dim} dimensions needs ${need} bytes ` +
        `(${fmtGiB(need)}), ` +
        `more than the ${fmtGiB(Math.min(maxBytes, (2 ** 32 - 1) * 4))} allowed; use fewer documents ` +
        `(data.maxDocuments) or raise environment.maxTableBytes`,
    );
  }
}

/** Bytes an N × d table takes: the vectors (4 bytes each) and one Int32 version per row. */
export function tableBytes(rows: number, dim: number): number {
  return rows * dim * 4 + rows * 4;
}

/** Default memory limit for the table: half the machine's memory. */
export function defaultTableLimit(): number {
  return Math.floor(os.totalmem() / 2);
}

const GIB = 1024 ** 3;
const fmtGiB = (b: number): string => `${(b / GIB).toFixed(2)} GiB`;

export class EmbeddingTable {
  readonly vectors: Float32Array;
  readonly versions: Int32Array;

  /**
   * Throws TableTooLargeError, before allocating anything, when the table needs more than maxBytes.
   * `adopt` hands over existing arrays (a checkpoint's, just read) instead of allocating a second copy.
   */
  constructor(
    readonly rows: number,
    readonly dim: number,
    maxBytes = defaultTableLimit(),
    adopt?: { vectors: Float32Array; versions: Int32Array },
  ) {
    checkTableSize(rows, dim, maxBytes);
    if (adopt && (adopt.vectors.length !== rows * dim || adopt.versions.length !== rows)) {
      throw new Error(
        `an embedding table of ${rows} × ${dim} cannot hold ${adopt.vectors.length} values with ` +
          `${adopt.versions.length} versions`,
      );
    }
    this.vectors = adopt?.vectors ?? new Float32Array(rows * dim);
    this.versions = adopt?.versions ?? new Int32Array(rows).fill(NEVER);
  }

  row(i: number): Float32Array {
    return this.vectors.subarray(i * this.dim, (i + 1) * this.dim);
  }

  set(i: number, v: Float32Array, version: number): void {
    if (v.length !== this.dim) throw new Error(`row ${i}: a ${v.length}-d vector for a ${this.dim}-d table`);
    this.vectors.set(v, i * this.dim);
    this.versions[i] = version;
  }

  /** Mean of (current − row version) over all rows: how many policy updates old a row is on average. */
  meanStaleness(current: number): number {
    let s = 0;
    for (let i = 0; i < this.rows; i++) s += current - this.versions[i];
    return s / this.rows;
  }

  /** Rows whose version is not the current one. */
  staleCount(current: number): number {
    let n = 0;
    for (let i = 0; i < this.rows; i++) if (this.versions[i] !== current) n++;
    return n;
  }

  /**
   * Scores of every row against a unit query: cosine similarity (rows are unit length), plus
   * offsetByVersion[version of the row] when given (a correction for stale rows).
   */
  scores(
    q: Float32Array,
    out = new Float32Array(this.rows),
    offsetByVersion: Float32Array | null = null,
  ): Float32Array {
    if (this.rows === 0) return out;
    // one matrix-vector product: (rows × d) · (d × 1), on the CPU whatever device the model uses: the
    // table is host memory that the environment updates row by row, and the product is memory-bound
    hostKernels().gemm({
      a: this.vectors.subarray(0, this.rows * this.dim),
      b: q,
      c: out.subarray(0, this.rows),
      batch: 1,
      m: this.rows,
      n: 1,
      k: this.dim,
      transA: false,
      transB: false,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      accumulate: false,
    });
    if (!offsetByVersion) return out;
    for (let i = 0; i < this.rows; i++) {
      const ver = this.versions[i];
      if (ver >= 0 && ver < offsetByVersion.length) out[i] += offsetByVersion[ver];
    }
    return out;
  }
}
