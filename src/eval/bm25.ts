import type { Analyzer } from './analyzer.js';
import { byte4ToInt, intToByte4 } from './lucene-small-float.js';
import type { ProgressFn } from './retriever.js';
import { idRanks, TopK } from './top-k.js';
import type { RankedList } from './run.js';

export interface Bm25Options {
  /** Term-frequency saturation (Lucene/Anserini BEIR default 0.9). */
  k1?: number;
  /** Length normalisation (default 0.4). */
  b?: number;
  /** Use Lucene's one-byte document lengths (default true, as Lucene scores); false uses exact lengths. */
  luceneLengths?: boolean;
}

export interface Bm25Document {
  id: string;
  /** The indexed text (BEIR "flat": title + ' ' + text, as Pyserini's BEIR flat indexes). */
  text: string;
}

const fround = Math.fround;

/** A growing list of 32-bit integers (capacity doubled when full). */
class IntList {
  private data = new Int32Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }

  /** The values pushed, without a copy. */
  view(): Int32Array {
    return this.data.subarray(0, this.length);
  }
}

/**
 * An in-memory inverted index scored like Lucene's BM25Similarity (Lucene 8+):
 *   idf = ln(1 + (N - df + 0.5) / (df + 0.5)),  score = Σ_terms boost·idf · tf / (tf + k1·(1 - b + b·dl/avgdl))
 * with N = documents with at least one term, avgdl = total terms / N, dl decoded from Lucene's length byte, float32
 * arithmetic per term as Lucene does, and a query term's boost = how often it occurs in the query (Anserini's
 * bag-of-words query). Lucene's constant (k1 + 1) factor is left out (Lucene 8+ too); it changes no ranking.
 */
export class Bm25Index {
  readonly ids: string[];
  private readonly terms = new Map<string, number>();
  private postingStart!: Int32Array;
  private postingDocs!: Int32Array;
  private postingTfs!: Int32Array;
  private readonly lengths: Int32Array;
  private readonly idRank: Int32Array;
  private readonly k1: number;
  private readonly b: number;
  private readonly luceneLengths: boolean;
  private docCount = 0;
  private totalTerms = 0;

  private constructor(
    ids: string[],
    private readonly analyzer: Analyzer,
    options: Bm25Options,
  ) {
    this.ids = ids;
    this.lengths = new Int32Array(ids.length);
    this.idRank = idRanks(ids);
    this.k1 = options.k1 ?? 0.9;
    this.b = options.b ?? 0.4;
    this.luceneLengths = options.luceneLengths ?? true;
    if (!(this.k1 >= 0) || !(this.b >= 0 && this.b <= 1)) {
      throw new RangeError(`BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1=${this.k1}, b=${this.b})`);
    }
  }

  static build(
    docs: readonly Bm25Document[],
    analyzer: Analyzer,
    options: Bm25Options = {},
    onProgress?: ProgressFn,
  ): Bm25Index {
    return Bm25Index.buildFrom(
      docs.map((d) => d.id),
      (i) => docs[i]!.text,
      analyzer,
      options,
      onProgress,
    );
  }

  /**
   * The index of documents `ids`, document i's text given by `textOf(i)` when it is indexed: a text made for the
   * index (title and body joined) is dropped once analysed, rather than a copy of the whole corpus being held
   * beside the corpus while the index is built.
   */
  static buildFrom(
    ids: string[],
    textOf: (i: number) => string,
    analyzer: Analyzer,
    options: Bm25Options = {},
    onProgress?: ProgressFn,
  ): Bm25Index {
    const index = new Bm25Index(ids, analyzer, options);
    index.indexAll(textOf, onProgress);
    return index;
  }

  get size(): number {
    return this.ids.length;
  }

  get vocabularySize(): number {
    return this.terms.size;
  }

  private indexAll(textOf: (i: number) => string, onProgress?: ProgressFn): void {
    // Postings are collected in document order as (term, doc, tf) in three flat growing typed arrays, then
    // placed by term (a counting sort, each term's documents staying in order): 12 bytes a posting while
    // building, where a JS array per term costs 16 or more and a header per term.
    const terms = new IntList();
    const postDocs = new IntList();
    const postTfs = new IntList();
    const tf = new Map<number, number>();
    const n = this.ids.length;
    for (let d = 0; d < n; d++) {
      const tokens = this.analyzer.analyze(textOf(d));
      tf.clear();
      for (const t of tokens) {
        let id = this.terms.get(t);
        if (id === undefined) {
          id = this.terms.size;
          this.terms.set(t, id);
        }
        tf.set(id, (tf.get(id) ?? 0) + 1);
      }
      for (const [id, count] of tf) {
        terms.push(id);
        postDocs.push(d);
        postTfs.push(count);
      }
      this.lengths[d] = tokens.length;
      if (tokens.length > 0) this.docCount++;
      this.totalTerms += tokens.length;
      if (onProgress && (d % 1000 === 999 || d === n - 1)) onProgress('indexing', d + 1, n);
    }
    const nTerms = this.terms.size;
    const postings = terms.length;
    this.postingStart = new Int32Array(nTerms + 1);
    const termOf = terms.view();
    for (let p = 0; p < postings; p++) this.postingStart[termOf[p]! + 1]!++;
    for (let t = 0; t < nTerms; t++) this.postingStart[t + 1]! += this.postingStart[t]!;
    this.postingDocs = new Int32Array(postings);
    this.postingTfs = new Int32Array(postings);
    const next = this.postingStart.slice(0, nTerms);
    const docOf = postDocs.view();
    const tfOf = postTfs.view();
    for (let p = 0; p < postings; p++) {
      const at = next[termOf[p]!]!++;
      this.postingDocs[at] = docOf[p]!;
      this.postingTfs[at] = tfOf[p]!;
    }
  }

  /** 1 / (k1 · (1 - b + b·dl/avgdl)) per document, in float32 as Lucene's per-norm cache. */
  private normInverse?: Float32Array;

  private norms(): Float32Array {
    if (this.normInverse) return this.normInverse;
    const avgdl = fround(this.docCount > 0 ? this.totalTerms / this.docCount : 1);
    const k1 = fround(this.k1);
    const b = fround(this.b);
    const cache = new Float32Array(256);
    for (let i = 0; i < 256; i++) {
      cache[i] = fround(1 / fround(k1 * fround(fround(1 - b) + fround(fround(b * byte4ToInt(i)) / avgdl))));
    }
    const inv = new Float32Array(this.ids.length);
    for (let d = 0; d < inv.length; d++) {
      const len = this.lengths[d]!;
      inv[d] = this.luceneLengths
        ? cache[intToByte4(len)]!
        : fround(1 / fround(k1 * fround(fround(1 - b) + fround(fround(b * len) / avgdl))));
    }
    return (this.normInverse = inv);
  }

  /** Lucene's idf for a term seen in `df` documents. */
  private idf(df: number): number {
    return fround(Math.log(1 + (this.docCount - df + 0.5) / (df + 0.5)));
  }

  /**
   * The query's score of each document at `positions` (indices into `ids`), computed as search() computes it,
   * so a document search() returns gets the same score here; a document matching no query term scores 0.
   */
  scoreDocuments(query: string, positions: readonly number[]): number[] {
    const inv = this.norms();
    const counts = this.termCounts(query);
    return positions.map((d) => {
      if (!(Number.isInteger(d) && d >= 0 && d < this.ids.length))
        throw new RangeError(`no document at position ${d} (the index holds ${this.ids.length})`);
      let acc = 0;
      for (const [term, boost] of counts) {
        const tf = this.termFrequency(term, d);
        if (tf === 0) continue;
        const weight = fround(boost * this.idf(this.postingStart[term + 1]! - this.postingStart[term]!));
        acc += fround(weight - fround(weight / fround(1 + fround(tf * inv[d]!))));
      }
      return fround(acc);
    });
  }

  /** How often each query term the index knows occurs in the query, in the query's order. */
  private termCounts(query: string): Map<number, number> {
    const counts = new Map<number, number>();
    for (const t of this.analyzer.analyze(query)) {
      const id = this.terms.get(t);
      if (id !== undefined) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  /** How often `term` occurs in document `d` (postings are in document order: a binary search). */
  private termFrequency(term: number, d: number): number {
    let lo = this.postingStart[term]!;
    let hi = this.postingStart[term + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.postingDocs[mid]! < d) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.postingStart[term + 1]! && this.postingDocs[lo] === d ? this.postingTfs[lo]! : 0;
  }

  /** The `k` best documents for a query (only documents matching at least one query term, as Lucene returns). */
  search(query: string, k: number, scratch?: Float64Array): RankedList {
    const inv = this.norms();
    const counts = this.termCounts(query);
    const acc = scratch ?? new Float64Array(this.ids.length);
    const touched: number[] = [];
    for (const [term, boost] of counts) {
      const start = this.postingStart[term]!;
      const end = this.postingStart[term + 1]!;
      const weight = fround(boost * this.idf(end - start));
      for (let p = start; p < end; p++) {
        const d = this.postingDocs[p]!;
        const tf = this.postingTfs[p]!;
        const s = fround(weight - fround(weight / fround(1 + fround(tf * inv[d]!))));
        if (acc[d] === 0) touched.push(d);
        acc[d] = acc[d]! + s;
      }
    }
    const top = new TopK(Math.min(k, touched.length), this.idRank);
    for (const d of touched) {
      top.offer(fround(acc[d]!), d);
      acc[d] = 0;
    }
    const { docs, scores } = top.sorted();
    return { docIds: Array.from(docs, (d) => this.ids[d]!), scores: Array.from(scores) };
  }
}
