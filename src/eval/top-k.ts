import { compareIds } from './trec-order.js';

/**
 * Position of each id in strcmp order. Ties between equal scores are broken by these integers instead of string
 * comparisons, in the hot loops of BM25 and dense search.
 */
export function idRanks(ids: readonly string[]): Int32Array {
  const order = Array.from({ length: ids.length }, (_, i) => i).sort((a, b) => compareIds(ids[a]!, ids[b]!));
  const rank = new Int32Array(ids.length);
  order.forEach((doc, r) => { rank[doc] = r; });
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

  constructor(readonly k: number, private readonly idRank: Int32Array) {
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
      this.worse(this.scores[a]!, this.docs[a]!, this.scores[b]!, this.docs[b]!) ? 1 : -1);
    return {
      docs: Int32Array.from(order, (i) => this.docs[i]!),
      scores: Float64Array.from(order, (i) => this.scores[i]!),
    };
  }
}
