import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mineHardNegatives, type Ranker } from '../../../src/train/sft/mine.js';
import { bm25Ranker, falseNegativeThreshold } from '../../../src/train/sft/mine.js';
import { Bm25Index } from '../../../src/eval/bm25.js';
import { createAnalyzer } from '../../../src/eval/analyzer.js';

test('mining keeps the rank window, skips positives, and drops candidates scoring near the positive', () => {
  // pool i scores 1 − i/100 for every query: doc 0 is the positive; doc 1 (0.99) is within 0.95 × 1.0
  const pool = Array.from({ length: 30 }, (_, i) => `doc ${i}`);
  const rank: Ranker = (_q, _p, k) => {
    const docs = pool.map((_, i) => i).slice(0, k);
    return { docs, scores: docs.map((i) => 1 - i / 100), positiveScores: [1] };
  };
  const ex = [{ query: 'q', positives: ['doc 0'], negatives: [] }];
  // window ranks 2..10 (ranks count non-positives: rank 1 = doc 1, rank 10 = doc 10); filter ≥ 0.95 drops docs 2..5
  const { mined, stats } = mineHardNegatives(ex, pool, rank, {
    fromRank: 2,
    toRank: 10,
    negatives: 100,
    falseNegativeRatio: 0.95,
    seed: 1,
  });
  assert.deepEqual([...mined[0].negatives].sort(), ['doc 10', 'doc 6', 'doc 7', 'doc 8', 'doc 9']);
  assert.equal(stats.filteredAsFalseNegative, 4);
  const few = mineHardNegatives(ex, pool, rank, {
    fromRank: 2,
    toRank: 10,
    negatives: 2,
    falseNegativeRatio: null,
    seed: 1,
  });
  assert.equal(few.mined[0].negatives.length, 2);
  assert.ok(
    few.mined[0].negatives.every((n) =>
      ['doc 2', 'doc 3', 'doc 4', 'doc 5', 'doc 6', 'doc 7', 'doc 8', 'doc 9', 'doc 10'].includes(n),
    ),
  );
  // negatives the data already gives stay first and are not drawn again: the 3 drawn are new ones
  const given = [{ query: 'q', positives: ['doc 0'], negatives: ['doc 6', 'doc 7', 'other'] }];
  const more = mineHardNegatives(given, pool, rank, {
    fromRank: 2,
    toRank: 10,
    negatives: 3,
    falseNegativeRatio: 0.95,
    seed: 1,
  });
  assert.deepEqual(more.mined[0].negatives.slice(0, 3), ['doc 6', 'doc 7', 'other']);
  assert.deepEqual(more.mined[0].negatives.slice(3).sort(), ['doc 10', 'doc 8', 'doc 9']);
  assert.equal(more.stats.negatives, 3);
});

test('BM25 mining over a pool returns lexically close non-positives', () => {
  const pool = [
    'the cat sat on the mat',
    'a cat and a dog',
    'cats chase mice',
    'stock markets fell',
    'the mat was red',
  ];
  const { mined } = mineHardNegatives(
    [{ query: 'cat on a mat', positives: [pool[0]], negatives: [] }],
    pool,
    bm25Ranker(pool),
    { fromRank: 1, toRank: 2, negatives: 5, falseNegativeRatio: 1e9, seed: 0 },
  );
  assert.equal(mined[0].negatives.length, 2);
  assert.ok(!mined[0].negatives.includes(pool[0]) && !mined[0].negatives.includes('stock markets fell'));
});

test("mining with the model's own embeddings: exact cosine order, positive scores known, filter applied", async () => {
  const { tinyModel } = await import('../../helpers/tiny-model.js');
  const { modelRanker } = await import('../../../src/train/sft/mine.js');
  const { model, tokenizer } = tinyModel(3);
  const pool = ['red apples', 'green apples', 'blue sky', 'deep sea', 'tall trees', 'old books'];
  // embedding the pool up front is the long part of mining: its progress is reported as eval reports it
  const seen: string[] = [];
  const rank = await modelRanker(model, tokenizer, pool, { onProgress: (s, d, t) => seen.push(`${s} ${d}/${t}`) });
  assert.equal(seen.at(-1), 'encoding documents 6/6');
  const r = rank('apples', ['red apples'], 6);
  assert.equal(r.docs.length, 6);
  assert.ok(
    r.scores.every((s, i) => i === 0 || r.scores[i - 1] >= s),
    'best first',
  );
  assert.equal(r.positiveScores.length, 1);
  assert.equal(r.positiveScores[0], r.scores[r.docs.indexOf(0)], "the positive's score is its cosine in the ranking");
  const { mined, stats } = mineHardNegatives(
    [{ query: 'apples', positives: ['red apples'], negatives: [] }],
    pool,
    rank,
    { fromRank: 1, toRank: 5, negatives: 5, falseNegativeRatio: 0.999, seed: 0 },
  );
  const kept = mined[0].negatives.length;
  assert.equal(kept + stats.filteredAsFalseNegative, 5, 'every window candidate is either kept or filtered');
  assert.ok(!mined[0].negatives.includes('red apples'));
});

test('BM25 mining filters by the positive even when BM25 ranks it below the window', () => {
  // six candidates hold both query terms; the positive holds one, in a long text: it ranks last
  const pool = [
    'alpha tail tail tail tail tail tail tail tail tail tail tail tail',
    ...Array.from({ length: 6 }, (_, i) => `alpha beta note${i}`),
  ];
  const ex = [{ query: 'alpha beta', positives: [pool[0]], negatives: [] }];
  const o = { fromRank: 1, toRank: 3, negatives: 8, falseNegativeRatio: 0.95, seed: 0 };
  const rank = bm25Ranker(pool);
  const r = rank(ex[0].query, ex[0].positives, o.toRank + 1);
  assert.ok(!r.docs.includes(0), 'the positive is outside the ranked top');
  assert.equal(r.positiveScores.length, 1);
  assert.ok(r.positiveScores[0] > 0 && r.scores.every((s) => s > r.positiveScores[0]));
  const { mined, stats } = mineHardNegatives(ex, pool, rank, o);
  // every candidate in the window outscores the positive: all are likely false negatives
  assert.deepEqual(mined[0].negatives, []);
  assert.equal(stats.filteredAsFalseNegative, 3);
  const off = mineHardNegatives(ex, pool, rank, { ...o, falseNegativeRatio: null });
  assert.equal(off.mined[0].negatives.length, 3);
  assert.equal(off.stats.filteredAsFalseNegative, 0);
});

test('Bm25Index.scoreDocuments gives each document the score search gives it, 0 without a shared term', () => {
  const docs = ['the cat sat on the mat', 'a cat and a dog', 'cats chase mice', 'stock markets fell', 'mat mat cat'];
  const index = Bm25Index.build(
    docs.map((text, i) => ({ id: String(i), text })),
    createAnalyzer(),
  );
  const query = 'cat on a mat mat';
  const list = index.search(query, docs.length);
  const exact = index.scoreDocuments(
    query,
    list.docIds.map((id) => Number(id)),
  );
  assert.deepEqual(exact, list.scores);
  assert.deepEqual(index.scoreDocuments(query, [3]), [0]);
  assert.throws(() => index.scoreDocuments(query, [5]), /no document at position 5/);
});

test('the false-negative threshold: ratio × best, ÷ ratio when negative, none when off or unscored', () => {
  assert.equal(falseNegativeThreshold([2, 4], 0.5), 2);
  assert.equal(falseNegativeThreshold([-0.5], 0.5), -1);
  assert.equal(falseNegativeThreshold([0], 0), 0);
  assert.equal(falseNegativeThreshold([-0.5, 0], null), Infinity);
  assert.equal(falseNegativeThreshold([], 0.95), Infinity);
});
