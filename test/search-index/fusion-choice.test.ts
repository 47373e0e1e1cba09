import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Qrels } from '../../src/eval/qrels.js';
import { evaluateRun } from '../../src/eval/measures.js';
import type { Run } from '../../src/eval/run.js';
import { chooseFusion, FUSION_GRID, type FusionDevCase } from '../../src/search-index/fusion-choice.js';
import { fuseHybridRuns } from '../../src/search-index/rrf.js';

/** A run from rankings (ids best first), scored by descending rank so trec_eval's order is the given one. */
function run(rankings: Record<string, string[]>): Run {
  return new Map(
    Object.entries(rankings).map(([q, ids]) => [q, { docIds: ids, scores: ids.map((_, i) => ids.length - i) }]),
  );
}

/** One relevant document per query. */
function qrels(relevant: Record<string, string>): Qrels {
  return new Map(Object.entries(relevant).map(([q, d]) => [q, new Map([[d, 1]])]));
}

/** nDCG@10 of a query whose one relevant document is ranked second. */
const SECOND = 1 / Math.log2(3);

/**
 * Two queries pulling the dense weight w opposite ways (scores w/(k + dense rank) + (1 − w)/(k + BM25 rank)):
 *   q1: dense [r1, x1], BM25 [x1, r1]. r1 leads iff w/(k+1) + (1−w)/(k+2) > w/(k+2) + (1−w)/(k+1), i.e. w > 0.5;
 *       at w = 0.5 the scores are equal and trec_eval's tie rule (ids descending) puts x1 first.
 *   q2: dense [m1, r2], BM25 [r2, m2, m1]. r2 leads m1 iff (1−w)(1/(k+1) − 1/(k+3)) > w(1/(k+1) − 1/(k+2)),
 *       i.e. w < 2(k+2)/(3k+7): 0.649 for k = 10, 0.665 for k = 100; r2 always beats m2.
 * So only w = 0.6 puts both relevant documents first, for every k, and k = 60 wins the tie among them.
 */
const OPPOSED: FusionDevCase = {
  split: 'dev',
  dense: run({ q1: ['r1', 'x1'], q2: ['m1', 'r2'] }),
  bm25: run({ q1: ['x1', 'r1'], q2: ['r2', 'm2', 'm1'] }),
  qrels: qrels({ q1: 'r1', q2: 'r2' }),
};

test('the chooser finds the one dense weight that ranks every relevant document first', () => {
  const c = chooseFusion([OPPOSED]);
  assert.deepEqual(c.fusion, { denseWeight: 0.6, k: 60 });
  assert.equal(c.ndcg10, 1);
  assert.equal(c.candidates.length, FUSION_GRID.denseWeights.length * FUSION_GRID.ks.length);
  for (const x of c.candidates) {
    const q1 = x.denseWeight > 0.5 ? 1 : SECOND;
    const q2 = x.denseWeight < 0.65 ? 1 : SECOND;
    assert.ok(Math.abs(x.ndcg10 - (q1 + q2) / 2) < 1e-12, `${x.denseWeight}, ${x.k}: ${x.ndcg10}`);
  }
});

test('k decides when the weights are fixed: small k favours a first place over two middling ranks', () => {
  // equal weights: r (dense 1, BM25 7) vs m (dense 3, BM25 4). k = 10: 1/11 + 1/17 = 0.14973 > 1/13 + 1/14 =
  // 0.14835; k = 30: 0.05929 < 0.05971; k = 60 and 100 favour m too. Every other document scores below both.
  const c = chooseFusion(
    [
      {
        split: 'train',
        dense: run({ q: ['r', 'd2', 'm'] }),
        bm25: run({ q: ['b1', 'b2', 'b3', 'm', 'b5', 'b6', 'r'] }),
        qrels: qrels({ q: 'r' }),
      },
    ],
    { denseWeights: [0.5], ks: FUSION_GRID.ks },
  );
  assert.deepEqual(c.fusion, { denseWeight: 0.5, k: 10 });
  assert.deepEqual(
    c.candidates.map((x) => x.k),
    [10, 30, 60, 100],
  );
  c.candidates.forEach((x, i) => assert.ok(Math.abs(x.ndcg10 - (i === 0 ? 1 : SECOND)) < 1e-12, `k ${x.k}`));
});

test('when every grid point scores the same, the choice is equal weights and k = 60', () => {
  const c = chooseFusion([
    { split: 'dev', dense: run({ q: ['r', 'a'] }), bm25: run({ q: ['r', 'b'] }), qrels: qrels({ q: 'r' }) },
  ]);
  assert.deepEqual(c.fusion, { denseWeight: 0.5, k: 60 });
  assert.ok(c.candidates.every((x) => x.ndcg10 === 1));
});

test('a tie across the tenth place is scored as trec_eval orders it, as the full fused run would be', () => {
  // dense weight 1: the BM25-only documents b and r both score 0 after d1…d9. The fusion lists b (the smaller id)
  // tenth; trec_eval orders ties by id descending, so r is tenth in the ranking it scores.
  const dense = run({ q: ['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9'] });
  const bm25 = run({ q: ['b', 'r'] });
  const judged = qrels({ q: 'r' });
  const c = chooseFusion([{ split: 'dev', dense, bm25, qrels: judged }], { denseWeights: [1], ks: [60] });
  assert.ok(Math.abs(c.ndcg10 - 1 / Math.log2(11)) < 1e-12, String(c.ndcg10));
  const full = fuseHybridRuns(dense, bm25, 1000, c.fusion);
  assert.equal(c.ndcg10, evaluateRun(full, judged, { cutoffs: [10], complete: true }).all['ndcg_cut_10']);
});

test('several dev cases count equally: the mean of their means', () => {
  const allTied: FusionDevCase = {
    split: 'dev',
    dense: run({ a: ['r', 'x'], b: ['r', 'y'], c: ['r', 'z'] }),
    bm25: run({ a: ['r'], b: ['r'], c: ['r'] }),
    qrels: qrels({ a: 'r', b: 'r', c: 'r' }),
  };
  const c = chooseFusion([OPPOSED, allTied]);
  assert.deepEqual(c.fusion, { denseWeight: 0.6, k: 60 });
  const plain = c.candidates.find((x) => x.denseWeight === 0.5 && x.k === 60)!;
  assert.ok(Math.abs(plain.ndcg10 - ((SECOND + 1) / 2 + 1) / 2) < 1e-12);
});

test('choosing on a test split is refused, whatever its case or spacing, before anything is fused', () => {
  for (const split of ['test', 'Test', ' TEST '])
    assert.throws(
      () =>
        chooseFusion([
          { ...OPPOSED, split: 'dev' },
          { ...OPPOSED, split },
        ]),
      (e: unknown) => e instanceof RangeError && /never on 'test'/.test(e.message),
    );
  assert.throws(() => chooseFusion([]), /at least one dev case/);
  assert.throws(() => chooseFusion([{ ...OPPOSED, qrels: new Map() }]), /'dev' dev case has no judged query/);
});
