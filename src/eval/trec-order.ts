/**
 * trec_eval's ranking rule. trec_eval ignores the rank column of a run: it sorts each query's documents by score
 * descending and breaks ties by document id *descending* under strcmp (form_res_rels.c, comp_sim_docno:
 * `strcmp(p2->docno, p1->docno)`). Every metric here ranks documents this way, so a run's own order never matters.
 */

/**
 * strcmp on the UTF-8 bytes of two strings, computed on the JS strings: UTF-8 byte order is code point order, which
 * differs from UTF-16 code unit order only between surrogates (astral characters) and U+E000..U+FFFF.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        // Lift surrogates above the BMP's private-use and later ranges so the order becomes code point order.
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x < y ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** Negative when document (sa, da) ranks above (sb, db) under trec_eval's rule. */
export function compareRanked(sa: number, da: string, sb: number, db: string): number {
  if (sa > sb) return -1;
  if (sa < sb) return 1;
  return compareIds(db, da);
}

/** Indexes of `docIds` in trec_eval's rank order. */
export function trecRankOrder(docIds: readonly string[], scores: ArrayLike<number>): number[] {
  const order = Array.from({ length: docIds.length }, (_, i) => i);
  order.sort((i, j) => compareRanked(scores[i]!, docIds[i]!, scores[j]!, docIds[j]!));
  return order;
}

/** Query ids in the order trec_eval visits (and sums) them: strcmp order. */
export function sortedIds(ids: Iterable<string>): string[] {
  return [...ids].sort(compareIds);
}
