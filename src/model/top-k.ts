/**
 * Indices of the k highest scores, best first (ties: lower index first): a vocabulary's top-k logits, a
 * table's best candidates. The k best so far are kept sorted, worst first, so most entries are passed over
 * after one comparison with that worst.
 */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const n = scores.length,
    m = Math.min(k, n);
  const kept: number[] = [];
  const worse = (a: number, b: number): boolean => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  for (let i = 0; i < n; i++) {
    if (kept.length < m) {
      kept.push(i);
      if (kept.length === m) kept.sort((a, b) => (worse(a, b) ? -1 : 1));
      continue;
    }
    if (m === 0 || !worse(kept[0], i)) continue;
    // replace the worst and restore ascending order by insertion (k is small)
    kept[0] = i;
    for (let j = 0; j + 1 < kept.length && worse(kept[j + 1], kept[j]); j++)
      [kept[j], kept[j + 1]] = [kept[j + 1], kept[j]];
  }
  return kept.sort((a, b) => (worse(a, b) ? 1 : -1));
}
