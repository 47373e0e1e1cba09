import { compareIds } from './trec-order.js';

/**
 * Position of each id in strcmp order. Ties between equal scores are broken by these integers instead of string
 * comparisons, in the hot loops of BM25 and dense search.
 */
export function idRanks(ids: readonly string[]): Int32Array {
  const order = Array.from({ length: ids.length }, (_, i) => i).sort((a, b) => compareIds(ids[a]!, ids[b]!));
  const rank = new Int32Array(ids.length);
  order.forEach((doc, r) => {
    rank[doc] = r;
  });
  return rank;
}

/**
 * The k best (score, document) pairs seen so far, as a binary min-heap whose root is the worst kept pair. "Better"
 * is trec_eval's order: higher score, then larger document id, so a cut at k keeps what trec_eval would rank first.
 */
export class TopK {
  readonly scores: Float64Array;
  readonly docs: Int32Array;
  size = 0;

  constructor(
    readonly k: number,
    private readonly idRank: Int32Array,
  ) {
    this.scores = new Float64Array(k);
    this.docs = new Int32Array(k);
  }

  /** True when (s1, d1) ranks below (s2, d2). */
  private worse(s1: number, d1: number, s2: number, d2: number): boolean {
    return s1 < s2 || (s1 === s2 && this.idRank[d1]! < this.idRank[d2]!);
  }

  /** Smallest score kept once full (-Infinity before): callers may skip anything strictly below it. */
  threshold(): number {
    return this.size < this.k ? -Infinity : this.scores[0]!;
  }

  offer(score: number, doc: number): void {
    const { scores, docs } = this;
    if (this.k === 0) return;
    if (this.size < this.k) {
      // Sift up from the new leaf.
      let i = this.size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.worse(score, doc, scores[p]!, docs[p]!)) break;
        scores[i] = scores[p]!;
        docs[i] = docs[p]!;
        i = p;
      }
      scores[i] = score;
      docs[i] = doc;
      return;
    }
    if (!this.worse(scores[0]!, docs[0]!, score, doc)) return;
    // Replace the root and sift down.
    const n = this.size;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.worse(scores[r]!, docs[r]!, scores[l]!, docs[l]!)) c = r;
      if (!this.worse(scores[c]!, docs[c]!, score, doc)) break;
      scores[i] = scores[c]!;
      docs[i] = docs[c]!;
      i = c;
    }
    scores[i] = score;
    docs[i] = doc;
  }

  /** The kept pairs, best first. */
  sorted(): { docs: Int32Array; scores: Float64Array } {
    const order = Array.from({ length: this.size }, (_, i) => i).sort((a, b) =>
      this.worse(this.scores[a]!, this.docs[a]!, this.scores[b]!, this.docs[b]!) ? 1 : -1,
    );
    return {
      docs: Int32Array.from(order, (i) => this.docs[i]!),
      scores: Float64Array.from(order, (i) => this.scores[i]!),
    };
  }
}

/**
 * Top-k for float32 scores (dense search), faster than the heap when k is large. A float32 value widened to a
 * double leaves the low 29 mantissa bits zero; storing the document's id rank there makes every (score, document)
 * a distinct double that orders exactly as trec_eval does (higher score first, then larger id), so selection is
 * plain numeric work: append candidates, and when more than k are held, quickselect the k-th and drop the rest.
 */
const LOW_BITS = 0x1fffffff;
const keyF64 = new Float64Array(1);
const keyU32 = new Uint32Array(keyF64.buffer);
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1; // index of the low word

export const MAX_PACKED_DOCS = LOW_BITS + 1;

export function packKey(score: number, idRank: number): number {
  keyF64[0] = score + 0; // -0 ties with +0, as in C comparisons
  keyU32[LOW] = (keyU32[LOW]! & ~LOW_BITS) | (keyF64[0] >= 0 ? idRank : LOW_BITS - idRank);
  return keyF64[0];
}

export function unpackScore(key: number): number {
  keyF64[0] = key;
  keyU32[LOW] = keyU32[LOW]! & ~LOW_BITS;
  return keyF64[0];
}

export function unpackRank(key: number): number {
  keyF64[0] = key;
  const low = keyU32[LOW]! & LOW_BITS;
  return key >= 0 ? low : LOW_BITS - low;
}

/** Moves the k largest of a[0..n) to a[0..k) (any order) by quickselect; returns nothing. */
function selectLargest(a: Float64Array, n: number, k: number): void {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else return;
  }
}

export class PackedTopK {
  private buf: Float64Array;
  private size = 0;
  /** Keys at or below this cannot enter (the k-th best key once k are held). */
  private floor = -Infinity;

  constructor(
    readonly k: number,
    capacity: number,
  ) {
    this.buf = new Float64Array(Math.max(k, 1) + Math.max(capacity, 1));
  }

  /** Smallest float32 score that may still enter. */
  get minScore(): number {
    return this.floor === -Infinity ? -Infinity : unpackScore(this.floor);
  }

  offer(key: number): void {
    if (key <= this.floor || this.k === 0) return;
    if (this.size === this.buf.length) this.compact();
    this.buf[this.size++] = key;
  }

  private compact(): void {
    if (this.size <= this.k) return;
    selectLargest(this.buf, this.size, this.k);
    this.size = this.k;
    let min = Infinity;
    for (let i = 0; i < this.k; i++) if (this.buf[i]! < min) min = this.buf[i]!;
    this.floor = min;
  }

  /** Kept keys, best first. */
  sorted(): Float64Array {
    this.compact();
    return this.buf.slice(0, this.size).sort().reverse();
  }
}
