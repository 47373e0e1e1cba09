import type { Analyzer } from './analyzer.js';
import { byte4ToInt, intToByte4 } from './lucene-small-float.js';
import type { ProgressFn } from './retriever.js';
import { idRanks, TopK } from './top-k.js';
import type { RankedList } from './run.js';
import { compareIds } from './trec-order.js';

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
 * Postings collected in document order as (term, doc, tf) in three flat growing typed arrays while an index is
 * built, then placed by term (a counting sort, each term's documents staying in order): 12 bytes a posting while
 * building, where a JS array per term costs 16 or more and a header per term.
 */
class PostingLists {
  readonly terms = new IntList();
  readonly docs = new IntList();
  readonly tfs = new IntList();
  /** One document's term counts, reused from document to document. */
  readonly tf = new Map<number, number>();
}

/** `a` with room for at least `n` values (doubled when it grows, so appends cost O(1) amortised). */
function ensureLength(a: Int32Array, n: number): Int32Array {
  if (n <= a.length) return a;
  const grown = new Int32Array(Math.max(n, 2 * a.length, 16));
  grown.set(a);
  return grown;
}

/** `a` with room for at least `n` bytes (doubled when it grows). */
function growBytes(a: Uint8Array, n: number): Uint8Array {
  if (n <= a.length) return a;
  const grown = new Uint8Array(Math.max(n, 2 * a.length, 16));
  grown.set(a);
  return grown;
}

/**
 * A whole index as plain arrays, for saving it and reading it back (bm25-file.ts): the built postings with every
 * change folded in, each document's exact length, and each document's place in id order (the tie-break).
 */
export interface Bm25State {
  k1: number;
  b: number;
  luceneLengths: boolean;
  /** Each document position's id. */
  ids: string[];
  /** Each term id's term. */
  terms: string[];
  /** Term t's postings are at [postingStart[t], postingStart[t + 1]), in document order. */
  postingStart: Int32Array;
  postingDocs: Int32Array;
  postingTfs: Int32Array;
  lengths: Int32Array;
  idRank: Int32Array;
}

/** Postings of documents added after the index was built or last compacted, in document order. */
interface AddedPostings {
  docs: number[];
  tfs: number[];
}

/**
 * An in-memory inverted index scored like Lucene's BM25Similarity (Lucene 8+):
 *   idf = ln(1 + (N - df + 0.5) / (df + 0.5)),  score = Σ_terms boost·idf · tf / (tf + k1·(1 - b + b·dl/avgdl))
 * with N = documents with at least one term, avgdl = total terms / N, dl decoded from Lucene's length byte, float32
 * arithmetic per term as Lucene does, and a query term's boost = how often it occurs in the query (Anserini's
 * bag-of-words query). Lucene's constant (k1 + 1) factor is left out (Lucene 8+ too); it changes no ranking.
 *
 * Documents can be added and removed after the build (a live search index follows its commits this way rather
 * than building again). N, each term's df, the total length and every live posting stay exactly those of a fresh
 * build over the live documents, and ties are broken by id, never by a document's position, so search() and
 * scoreDocuments() give what a fresh build gives, bit for bit. Like Lucene's segments, an added document's
 * postings go to a per-term list beside the built ones and a removed one stays in place, skipped, until compact()
 * (run by search() once they are a quarter of the built postings) folds both into the built arrays again.
 */
export class Bm25Index {
  /** Each document position's id; a removed document keeps its position (skipped) until the next compaction. */
  ids: string[];
  private readonly terms = new Map<string, number>();
  private postingStart!: Int32Array;
  private postingDocs!: Int32Array;
  private postingTfs!: Int32Array;
  /** Documents in df (per term id): kept rather than read off postingStart, since removals and additions move it. */
  private df!: Int32Array;
  private lengths: Int32Array;
  /** Each length in Lucene's one byte, so the norms after a change are a table look-up per document. */
  private lengthBytes: Uint8Array;
  /** Each position's place in id order (TopK's tie-break); stale for removed positions, which are never ranked. */
  private idRank: Int32Array;
  /** Live positions in id order, made from idRank when the index is first changed (a built-once index needs none). */
  private byId?: Int32Array;
  /** 1 at a removed document's position (as long as ids, or longer). */
  private removed: Uint8Array;
  /** Whether ids is this index's own array (buildFrom's is the caller's, copied before the first add). */
  private ownIds = false;
  private removedCount = 0;
  /** Postings of removed documents still in the arrays, and postings in `added`: compaction's measure. */
  private stalePostings = 0;
  private addedPostings = 0;
  private readonly added = new Map<number, AddedPostings>();
  /** Positions added since byId was last made, by id (so remove() finds them before the next search). */
  private readonly unordered = new Map<string, number>();
  private readonly k1: number;
  private readonly b: number;
  private readonly luceneLengths: boolean;
  private docCount = 0;
  private totalTerms = 0;

  private constructor(
    ids: string[],
    private readonly analyzer: Analyzer,
    options: Bm25Options,
    idRank?: Int32Array,
  ) {
    this.ids = ids;
    this.lengths = new Int32Array(ids.length);
    this.lengthBytes = new Uint8Array(ids.length);
    this.removed = new Uint8Array(ids.length);
    this.idRank = idRank ?? idRanks(ids);
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
    const postings = new PostingLists();
    const n = ids.length;
    for (let d = 0; d < n; d++) {
      index.indexDocument(d, textOf(d), postings);
      if (onProgress && (d % 1000 === 999 || d === n - 1)) onProgress('indexing', d + 1, n);
    }
    index.placePostings(postings);
    return index;
  }

  /**
   * The index of the documents `docs` yields, read once: each text is dropped once analysed, so a corpus streamed
   * from its file is never held whole (only its ids, lengths and postings are). Progress counts documents
   * against `total` when the caller knows it beforehand, against Infinity (ProgressFn) until the end otherwise.
   */
  static async buildFromStream(
    docs: AsyncIterable<Bm25Document>,
    analyzer: Analyzer,
    options: Bm25Options = {},
    onProgress?: ProgressFn,
    total?: number,
  ): Promise<Bm25Index> {
    const index = new Bm25Index([], analyzer, options);
    index.ownIds = true;
    const postings = new PostingLists();
    let n = 0;
    for await (const doc of docs) {
      index.ids.push(doc.id);
      index.indexDocument(n++, doc.text, postings);
      if (onProgress && n % 1000 === 0) onProgress('indexing', n, Math.max(n, total ?? Infinity));
    }
    index.lengths = index.lengths.slice(0, n);
    index.lengthBytes = index.lengthBytes.slice(0, n);
    index.removed = new Uint8Array(n);
    index.idRank = idRanks(index.ids);
    index.placePostings(postings);
    onProgress?.('indexing', n, n);
    return index;
  }

  /**
   * The index as plain arrays (changes folded in first: compact()). The arrays are the index's own, not copies:
   * write them out before the index changes again.
   */
  state(): Bm25State {
    if (this.removedCount > 0 || this.added.size > 0) this.compact();
    else this.settleOrder();
    const n = this.ids.length;
    return {
      k1: this.k1,
      b: this.b,
      luceneLengths: this.luceneLengths,
      ids: this.ids,
      terms: [...this.terms.keys()],
      postingStart: this.postingStart,
      postingDocs: this.postingDocs,
      postingTfs: this.postingTfs,
      lengths: this.lengths.subarray(0, n),
      idRank: this.idRank.subarray(0, n),
    };
  }

  /**
   * The index `state()` gave, scoring as the index it was taken from, bit for bit. Its arrays are taken, not
   * copied. A state that no index could have given (postings out of order or out of range, lengths that are not
   * the sum of their postings, ranks that are not the ids' order) is refused with a RangeError saying which part.
   */
  static restore(state: Bm25State, analyzer: Analyzer): Bm25Index {
    checkState(state);
    const { k1, b, luceneLengths } = state;
    const index = new Bm25Index(state.ids, analyzer, { k1, b, luceneLengths }, state.idRank);
    index.ownIds = true;
    state.terms.forEach((t, i) => index.terms.set(t, i));
    if (index.terms.size !== state.terms.length) throw new RangeError('a term is listed twice');
    [index.postingStart, index.postingDocs, index.postingTfs] = [
      state.postingStart,
      state.postingDocs,
      state.postingTfs,
    ];
    const nTerms = state.terms.length;
    index.df = new Int32Array(nTerms);
    for (let t = 0; t < nTerms; t++) index.df[t] = state.postingStart[t + 1]! - state.postingStart[t]!;
    index.lengths = state.lengths;
    for (let d = 0; d < state.ids.length; d++) {
      const len = state.lengths[d]!;
      index.lengthBytes[d] = intToByte4(len);
      if (len > 0) index.docCount++;
      index.totalTerms += len;
    }
    return index;
  }

  /** Live documents. */
  get size(): number {
    return this.ids.length - this.removedCount;
  }

  /** Terms seen in at least one live document. */
  get vocabularySize(): number {
    let n = 0;
    for (let t = 0; t < this.terms.size; t++) if (this.df[t]! > 0) n++;
    return n;
  }

  /** How often each term of `text` occurs in it, in first-occurrence order. */
  private analyzedCounts(text: string): { counts: Map<string, number>; length: number } {
    const tokens = this.analyzer.analyze(text);
    const counts = new Map<string, number>();
    for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    return { counts, length: tokens.length };
  }

  /** Adds a document; its id must not be in the index (remove() the old version of a changed document first). */
  add(doc: Bm25Document): void {
    if (this.positionOf(doc.id) !== undefined)
      throw new RangeError(`document '${doc.id}' is already in the BM25 index; remove it before adding it again`);
    const { counts, length } = this.analyzedCounts(doc.text);
    const d = this.ids.length;
    if (!this.ownIds) [this.ids, this.ownIds] = [[...this.ids], true];
    this.ids.push(doc.id);
    this.lengths = ensureLength(this.lengths, d + 1);
    this.removed = growBytes(this.removed, d + 1);
    this.lengthBytes = growBytes(this.lengthBytes, d + 1);
    this.lengthBytes[d] = intToByte4(length);
    this.lengths[d] = length;
    for (const [t, tf] of counts) {
      let term = this.terms.get(t);
      if (term === undefined) {
        term = this.terms.size;
        this.terms.set(t, term);
        this.df = ensureLength(this.df, term + 1);
      }
      this.df[term]!++;
      let list = this.added.get(term);
      if (!list) this.added.set(term, (list = { docs: [], tfs: [] }));
      list.docs.push(d);
      list.tfs.push(tf);
    }
    this.addedPostings += counts.size;
    if (length > 0) this.docCount++;
    this.totalTerms += length;
    this.unordered.set(doc.id, d);
    this.normInverse = undefined;
  }

  /**
   * Removes the document `id`, given the text it was indexed from: its terms are analysed again rather than kept
   * per document (that would double the postings' memory), and checked against its postings, so a text other than
   * the indexed one is refused (RangeError) before anything changes.
   */
  remove(id: string, text: string): void {
    const d = this.positionOf(id);
    if (d === undefined) throw new RangeError(`document '${id}' is not in the BM25 index`);
    const { counts, length } = this.analyzedCounts(text);
    const terms: number[] = [];
    for (const [t, tf] of counts) {
      const term = this.terms.get(t);
      if (term === undefined || this.termFrequency(term, d) !== tf) break;
      terms.push(term);
    }
    // every term's count matches and they add up to the indexed length: the document has no other posting
    if (terms.length !== counts.size || length !== this.lengths[d])
      throw new RangeError(`document '${id}' was indexed from another text than the one given to remove it`);
    for (const term of terms) this.df[term]!--;
    this.removed[d] = 1;
    this.removedCount++;
    this.stalePostings += terms.length;
    if (length > 0) this.docCount--;
    this.totalTerms -= length;
    this.unordered.delete(id);
    this.normInverse = undefined;
  }

  /** The live position of `id`, or undefined. */
  private positionOf(id: string): number | undefined {
    const pending = this.unordered.get(id);
    if (pending !== undefined) return pending;
    const byId = this.orderById();
    let lo = 0;
    let hi = byId.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareIds(this.ids[byId[mid]!]!, id) < 0) lo = mid + 1;
      else hi = mid;
    }
    const d = byId[lo];
    return d !== undefined && this.ids[d] === id && !this.isRemoved(d) ? d : undefined;
  }

  private isRemoved(d: number): boolean {
    return this.removed[d] === 1;
  }

  /** byId, made from idRank the first time it is needed. */
  private orderById(): Int32Array {
    if (!this.byId) {
      const byId = new Int32Array(this.idRank.length);
      this.idRank.forEach((r, d) => (byId[r] = d));
      this.byId = byId;
    }
    return this.byId;
  }

  /**
   * Brings byId and idRank up to date with the adds and removals since they were made: the added ids are sorted
   * and placed by binary search among the others, O(live documents) integer work, no sort of every id.
   */
  private settleOrder(): void {
    if (this.unordered.size === 0 && !(this.byId && this.byId.length !== this.size)) return;
    const all = this.orderById();
    const old = new Int32Array(all.length);
    let kept = 0;
    for (let i = 0; i < all.length; i++) if (this.removed[all[i]!] !== 1) old[kept++] = all[i]!;
    const oldLive = old.subarray(0, kept);
    const fresh = [...this.unordered.values()].sort((a, b) => compareIds(this.ids[a]!, this.ids[b]!));
    const byId = new Int32Array(kept + fresh.length);
    let from = 0;
    let out = 0;
    for (const d of fresh) {
      let lo = from;
      let hi = kept;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareIds(this.ids[oldLive[mid]!]!, this.ids[d]!) < 0) lo = mid + 1;
        else hi = mid;
      }
      byId.set(oldLive.subarray(from, lo), out);
      out += lo - from;
      byId[out++] = d;
      from = lo;
    }
    byId.set(oldLive.subarray(from), out);
    this.byId = byId;
    this.idRank = ensureLength(this.idRank, this.ids.length);
    for (let r = 0; r < byId.length; r++) this.idRank[byId[r]!] = r;
    this.unordered.clear();
  }

  /**
   * Folds added postings into the built arrays and drops removed documents (positions are renumbered, in order),
   * from the postings alone: no text is analysed again.
   */
  compact(): void {
    this.settleOrder();
    const slots = this.ids.length;
    const nTerms = this.terms.size;
    const builtTerms = this.postingStart.length - 1;
    const renumber = new Int32Array(slots);
    let live = 0;
    for (let d = 0; d < slots; d++) renumber[d] = this.isRemoved(d) ? -1 : live++;
    const start = new Int32Array(nTerms + 1);
    for (let t = 0; t < nTerms; t++) start[t + 1] = start[t]! + this.df[t]!;
    const docs = new Int32Array(start[nTerms]!);
    const tfs = new Int32Array(start[nTerms]!);
    let at = 0;
    const keep = (d: number, tf: number): void => {
      if (renumber[d]! < 0) return;
      docs[at] = renumber[d]!;
      tfs[at++] = tf;
    };
    for (let t = 0; t < nTerms; t++) {
      if (t < builtTerms)
        for (let p = this.postingStart[t]!; p < this.postingStart[t + 1]!; p++)
          keep(this.postingDocs[p]!, this.postingTfs[p]!);
      const list = this.added.get(t);
      if (list) list.docs.forEach((d, i) => keep(d, list.tfs[i]!));
    }
    const ids: string[] = new Array<string>(live);
    const lengths = new Int32Array(live);
    const lengthBytes = new Uint8Array(live);
    const idRank = new Int32Array(live);
    for (let d = 0; d < slots; d++) {
      const n = renumber[d]!;
      if (n < 0) continue;
      ids[n] = this.ids[d]!;
      lengths[n] = this.lengths[d]!;
      lengthBytes[n] = this.lengthBytes[d]!;
      idRank[n] = this.idRank[d]!;
    }
    this.byId = this.orderById().map((d) => renumber[d]!);
    [this.ids, this.lengths, this.lengthBytes, this.idRank, this.ownIds] = [ids, lengths, lengthBytes, idRank, true];
    [this.postingStart, this.postingDocs, this.postingTfs] = [start, docs, tfs];
    this.removed = new Uint8Array(live);
    this.removedCount = 0;
    this.stalePostings = 0;
    this.addedPostings = 0;
    this.added.clear();
    this.normInverse = undefined;
  }

  /** Order and compaction brought up to date before ranking. */
  private settle(): void {
    if (this.stalePostings + this.addedPostings > this.postingDocs.length / 4 + 65536) this.compact();
    else this.settleOrder();
  }

  /** Analyses document `d` (the next position), recording its length and its postings in `p`. */
  private indexDocument(d: number, text: string, p: PostingLists): void {
    const tokens = this.analyzer.analyze(text);
    const tf = p.tf;
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
      p.terms.push(id);
      p.docs.push(d);
      p.tfs.push(count);
    }
    this.lengths = ensureLength(this.lengths, d + 1);
    this.lengthBytes = growBytes(this.lengthBytes, d + 1);
    this.lengths[d] = tokens.length;
    this.lengthBytes[d] = intToByte4(tokens.length);
    if (tokens.length > 0) this.docCount++;
    this.totalTerms += tokens.length;
  }

  /** Places the postings collected in document order by term: the built arrays and each term's df. */
  private placePostings(p: PostingLists): void {
    const nTerms = this.terms.size;
    const postings = p.terms.length;
    this.postingStart = new Int32Array(nTerms + 1);
    const termOf = p.terms.view();
    for (let q = 0; q < postings; q++) this.postingStart[termOf[q]! + 1]!++;
    for (let t = 0; t < nTerms; t++) this.postingStart[t + 1]! += this.postingStart[t]!;
    this.postingDocs = new Int32Array(postings);
    this.postingTfs = new Int32Array(postings);
    this.df = new Int32Array(nTerms);
    for (let t = 0; t < nTerms; t++) this.df[t] = this.postingStart[t + 1]! - this.postingStart[t]!;
    const next = this.postingStart.slice(0, nTerms);
    const docOf = p.docs.view();
    const tfOf = p.tfs.view();
    for (let q = 0; q < postings; q++) {
      const at = next[termOf[q]!]!++;
      this.postingDocs[at] = docOf[q]!;
      this.postingTfs[at] = tfOf[q]!;
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
    if (this.luceneLengths) {
      for (let d = 0; d < inv.length; d++) inv[d] = cache[this.lengthBytes[d]!]!;
    } else {
      for (let d = 0; d < inv.length; d++) {
        const len = this.lengths[d]!;
        inv[d] = fround(1 / fround(k1 * fround(fround(1 - b) + fround(fround(b * len) / avgdl))));
      }
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
      if (!(Number.isInteger(d) && d >= 0 && d < this.ids.length) || this.isRemoved(d))
        throw new RangeError(`no document at position ${d} (the index holds ${this.ids.length})`);
      let acc = 0;
      for (const [term, boost] of counts) {
        const tf = this.termFrequency(term, d);
        if (tf === 0) continue;
        const weight = fround(boost * this.idf(this.df[term]!));
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

  /** How often `term` occurs in document `d` (postings, built and added, are in document order). */
  private termFrequency(term: number, d: number): number {
    if (term < this.postingStart.length - 1) {
      const end = this.postingStart[term + 1]!;
      const i = firstAtLeast(this.postingDocs, this.postingStart[term]!, end, d);
      if (i < end && this.postingDocs[i] === d) return this.postingTfs[i]!;
    }
    const list = this.added.get(term);
    if (!list) return 0;
    const i = firstAtLeast(list.docs, 0, list.docs.length, d);
    return list.docs[i] === d ? list.tfs[i]! : 0;
  }

  /** The `k` best documents for a query (only documents matching at least one query term, as Lucene returns). */
  search(query: string, k: number, scratch?: Float64Array): RankedList {
    this.settle();
    const inv = this.norms();
    const counts = this.termCounts(query);
    // positions run to ids.length, which counts removed documents too (size does not)
    const acc = scratch && scratch.length >= this.ids.length ? scratch : new Float64Array(this.ids.length);
    const touched: number[] = [];
    const removed = this.removed;
    const anyRemoved = this.removedCount > 0;
    const builtTerms = this.postingStart.length - 1;
    for (const [term, boost] of counts) {
      const weight = fround(boost * this.idf(this.df[term]!));
      const start = term < builtTerms ? this.postingStart[term]! : 0;
      const end = term < builtTerms ? this.postingStart[term + 1]! : 0;
      for (let p = start; p < end; p++) {
        const d = this.postingDocs[p]!;
        if (anyRemoved && removed[d] === 1) continue;
        const tf = this.postingTfs[p]!;
        const s = fround(weight - fround(weight / fround(1 + fround(tf * inv[d]!))));
        if (acc[d] === 0) touched.push(d);
        acc[d] = acc[d]! + s;
      }
      const list = this.added.get(term);
      if (!list) continue;
      for (let i = 0; i < list.docs.length; i++) {
        const d = list.docs[i]!;
        if (removed[d] === 1) continue;
        const s = fround(weight - fround(weight / fround(1 + fround(list.tfs[i]! * inv[d]!))));
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

/** Throws a RangeError naming the first part of `s` that no Bm25Index.state() could have given. */
function checkState(s: Bm25State): void {
  const n = s.ids.length;
  const nTerms = s.terms.length;
  const postings = s.postingDocs.length;
  const fail = (what: string): never => {
    throw new RangeError(what);
  };
  if (!(s.k1 >= 0) || !(s.b >= 0 && s.b <= 1)) fail(`the BM25 parameters are out of range (k1=${s.k1}, b=${s.b})`);
  if (s.postingStart.length !== nTerms + 1 || s.postingTfs.length !== postings)
    fail('the posting arrays do not match the term list');
  if (s.lengths.length !== n || s.idRank.length !== n) fail('the document arrays do not match the id list');
  if (s.postingStart[0] !== 0 || s.postingStart[nTerms] !== postings)
    fail('the posting offsets do not span the postings');
  const sums = new Float64Array(n);
  for (let t = 0; t < nTerms; t++) {
    const start = s.postingStart[t]!;
    const end = s.postingStart[t + 1]!;
    if (end < start) fail(`term ${t}'s postings end before they start`);
    let last = -1;
    for (let p = start; p < end; p++) {
      const d = s.postingDocs[p]!;
      const tf = s.postingTfs[p]!;
      if (d <= last || d >= n || tf < 1) fail(`term ${t}'s postings are out of order or out of range`);
      sums[d] = sums[d]! + tf;
      last = d;
    }
  }
  for (let d = 0; d < n; d++) if (s.lengths[d] !== sums[d]) fail(`document ${d}'s length is not its postings' sum`);
  const at = new Int32Array(n).fill(-1);
  for (let d = 0; d < n; d++) {
    const r = s.idRank[d]!;
    if (!(r >= 0 && r < n) || at[r] !== -1) fail('the id ranks are not a permutation');
    at[r] = d;
  }
  for (let r = 1; r < n; r++)
    if (compareIds(s.ids[at[r - 1]!]!, s.ids[at[r]!]!) >= 0) fail('the id ranks are not the ids in order');
}

/** The first index in [lo, hi) of the ascending `xs` whose value is at least `x` (hi when none is). */
function firstAtLeast(xs: ArrayLike<number>, lo: number, hi: number, x: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
