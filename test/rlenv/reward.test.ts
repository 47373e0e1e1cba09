import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  dcgAtK,
  idealDcgAtK,
  rankOf,
  rankingReward,
  reciprocalRank,
  responseReward,
  DEFAULT_REWARD,
} from '../../src/rlenv/reward.js';
import { evaluateRun } from '../../src/eval/measures.js';
import { Rng } from '../../src/tensor/index.js';

const close = (a: number, b: number, tol = 1e-9): void => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('rank of a row: descending scores, ties broken by the lower row', () => {
  const s = [0.9, 0.1, 0.5, 0.7, 0.3];
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((r) => rankOf(s, r)),
    [1, 5, 3, 2, 4],
  );
  assert.deepEqual([rankOf([0.5, 0.5, 0.5], 0), rankOf([0.5, 0.5, 0.5], 2)], [1, 3]);
  // a NaN score (a response or document embedding that is not finite) ranks last, and earns no reward
  const withNaN = [0.2, NaN, 0.9, NaN, -1];
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((r) => rankOf(withNaN, r)),
    [2, 4, 1, 5, 3],
  );
  assert.equal(rankingReward([0.1, NaN, 0.3], [{ row: 1, grade: 1 }], 'dcg', 2), 0);
});

test('DCG@k, nDCG@k and reciprocal rank against hand-computed values', () => {
  const s = [0.9, 0.1, 0.5, 0.7, 0.3];
  const pos = [
    { row: 2, grade: 1 },
    { row: 4, grade: 2 },
  ]; // ranks 3 and 4
  const dcg = 1 / Math.log2(4) + 2 / Math.log2(5); // 0.5 + 0.861353 = 1.361353
  close(dcgAtK([3, 4], [1, 2], 10), dcg);
  close(rankingReward(s, pos, 'dcg', 10), 1.3613531161467862, 1e-12);
  close(idealDcgAtK([1, 2], 10), 2 + 1 / Math.log2(3));
  close(rankingReward(s, pos, 'ndcg', 10), dcg / (2 + 1 / Math.log2(3)));
  close(rankingReward(s, pos, 'dcg', 3), 0.5); // only the rank-3 positive counts
  close(rankingReward(s, pos, 'rr', 0), 1 / 3);
  assert.equal(rankingReward(s, pos, 'rr', 2), 0);
  assert.equal(reciprocalRank([], 0), 0);
  close(rankingReward([0.2, 0.9], [{ row: 1, grade: 1 }], 'ndcg', 10), 1);
});

test('nDCG@10 equals trec_eval ndcg_cut_10 (eval layer) on random rankings', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const n = 40,
      scores = Array.from({ length: n }, () => rng.next());
    const positives = [...new Set([rng.int(n), rng.int(n), rng.int(n)])].map((row) => ({ row, grade: 1 + rng.int(2) }));
    const run = new Map([['q', { docIds: scores.map((_, i) => `d${i}`), scores }]]);
    const qrels = new Map([['q', new Map(positives.map((p) => [`d${p.row}`, p.grade]))]]);
    const ev = evaluateRun(run, qrels, { cutoffs: [10] });
    close(rankingReward(scores, positives, 'ndcg', 10), ev.all.ndcg_cut_10, 1e-6);
  }
});

test('format and length penalties', () => {
  const s = { ...DEFAULT_REWARD, formatPenalty: 0.5, lengthPenalty: 0.2 };
  close(responseReward(1, false, 0, 64, s), 1);
  close(responseReward(1, true, 0, 64, s), 0.5);
  close(responseReward(1, false, 32, 64, s), 0.9);
});
