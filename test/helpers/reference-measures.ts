/**
 * nDCG@k and recall@k of a run written out plainly from their definitions, as trec_eval computes them
 * (ranking: score descending, ties by document id descending; gain = the graded judgement; discount
 * log2(rank + 1); every judged query counted, a query missing from the run scores 0): an independent
 * computation to check the eval layer's figures against, without its code.
 */
import type { Run } from '../../src/eval/run.js';

type Qrels = ReadonlyMap<string, ReadonlyMap<string, number>>;

function ranked(list: { docIds: readonly string[]; scores: readonly number[] }): string[] {
  const order = list.docIds.map((id, i) => ({ id, score: list.scores[i]! }));
  order.sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return order.map((d) => d.id);
}

export function referenceNdcg(run: Run, qrels: Qrels, k: number): { mean: number; perQuery: Map<string, number> } {
  const perQuery = new Map<string, number>();
  for (const [q, rels] of qrels) {
    const ideal = [...rels.values()]
      .filter((g) => g > 0)
      .sort((a, b) => b - a)
      .slice(0, k);
    const idcg = ideal.reduce((s, g, i) => s + g / Math.log2(i + 2), 0);
    const list = run.get(q);
    const docs = list ? ranked(list).slice(0, k) : [];
    const dcg = docs.reduce((s, d, i) => s + Math.max(0, rels.get(d) ?? 0) / Math.log2(i + 2), 0);
    perQuery.set(q, idcg > 0 ? dcg / idcg : 0);
  }
  const mean = [...perQuery.values()].reduce((a, b) => a + b, 0) / perQuery.size;
  return { mean, perQuery };
}

export function referenceRecall(run: Run, qrels: Qrels, k: number): number {
  let sum = 0;
  for (const [q, rels] of qrels) {
    const relevant = [...rels].filter(([, g]) => g > 0).map(([d]) => d);
    const list = run.get(q);
    const top = new Set(list ? ranked(list).slice(0, k) : []);
    sum += relevant.length > 0 ? relevant.filter((d) => top.has(d)).length / relevant.length : 0;
  }
  return sum / qrels.size;
}
