import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Run } from '../../src/eval/run.js';
import { fuseHybrid, fuseHybridRuns, fuseRuns, reciprocalRankFusion } from '../../src/search-index/rrf.js';

/** RRF by its definition, every list weighted 1: what the hybrid computed before weights existed. */
function plainRrf(lists: readonly (readonly string[])[], k: number): { id: string; score: number }[] {
  const scores = new Map<string, number>();
  for (const list of lists) list.forEach((id, r) => scores.set(id, (scores.get(id) ?? 0) + 1 / (k + r + 1)));
  return [...scores]
    .map(([id, score]) => ({ id, score }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Two rankings of 40 overlapping ids, in an order that differs between the lists. */
function lists(): string[][] {
  const ids = Array.from({ length: 40 }, (_, i) => `d${String(i).padStart(2, '0')}`);
  return [ids.filter((_, i) => i % 3 !== 0), [...ids].reverse().filter((_, i) => i % 4 !== 1)];
}

test('weights of 1 are plain RRF to the last bit, and the default hybrid is plain RRF with k = 60', () => {
  const [a, b] = lists();
  for (const k of [0, 10, 60]) {
    assert.deepEqual(reciprocalRankFusion([a!, b!], k, [1, 1]), plainRrf([a!, b!], k));
    assert.deepEqual(reciprocalRankFusion([a!, b!], k), plainRrf([a!, b!], k));
  }
  assert.deepEqual(fuseHybrid(a!, b!), plainRrf([a!, b!], 60));
  // equal weights of 0.5 halve every score: the same ranking as plain RRF
  const half = fuseHybrid(a!, b!, { denseWeight: 0.5, k: 60 });
  assert.deepEqual(
    half,
    plainRrf([a!, b!], 60).map((h) => ({ id: h.id, score: h.score / 2 })),
  );
});

test('a weighted hybrid scores denseWeight / (k + dense rank) + (1 − denseWeight) / (k + BM25 rank)', () => {
  const dense = ['a', 'b', 'c'];
  const bm25 = ['c', 'd'];
  const fused = fuseHybrid(dense, bm25, { denseWeight: 0.25, k: 10 });
  const want = new Map([
    ['a', 0.25 / 11],
    ['b', 0.25 / 12],
    ['c', 0.25 / 13 + 0.75 / 11],
    ['d', 0.75 / 12],
  ]);
  assert.deepEqual(
    fused.map((f) => f.id),
    ['c', 'd', 'a', 'b'],
  );
  for (const f of fused) assert.ok(Math.abs(f.score - want.get(f.id)!) < 1e-15, f.id);
  // dense weight 1: BM25 adds nothing, and the dense order stands
  assert.deepEqual(
    fuseHybrid(dense, bm25, { denseWeight: 1, k: 10 })
      .slice(0, 3)
      .map((f) => f.id),
    dense,
  );
});

test('fuseHybridRuns fuses query by query in trec_eval rank order, as fuseRuns with weights [w, 1 − w]', () => {
  const dense: Run = new Map([
    ['q1', { docIds: ['x', 'y', 'z'], scores: [0.1, 0.9, 0.5] }],
    ['q2', { docIds: ['x'], scores: [1] }],
  ]);
  const bm25: Run = new Map([['q1', { docIds: ['z', 'x'], scores: [3, 2] }]]);
  const fused = fuseHybridRuns(dense, bm25, 2, { denseWeight: 0.7, k: 30 });
  assert.deepEqual(fused, fuseRuns([dense, bm25], 2, 30, [0.7, 1 - 0.7]));
  // q1: dense ranks y, z, x; BM25 z, x. z: 0.7/32 + 0.3/31 and x: 0.7/33 + 0.3/32 both beat y: 0.7/31
  assert.deepEqual(fused.get('q1')!.docIds, ['z', 'x']);
  assert.deepEqual(fused.get('q2')!.docIds, ['x']);
});

test('negative, NaN or missing weights, a negative k and a dense weight outside [0, 1] are refused', () => {
  const [a, b] = lists();
  assert.throws(() => reciprocalRankFusion([a!, b!], 60, [1, -0.1]), /RRF weight -0.1/);
  assert.throws(() => reciprocalRankFusion([a!, b!], 60, [1, NaN]), /RRF weight NaN/);
  assert.throws(() => reciprocalRankFusion([a!, b!], 60, [1]), /1 RRF weights for 2 ranked lists/);
  assert.throws(() => reciprocalRankFusion([a!, b!], -1), /RRF k -1/);
  assert.throws(() => fuseHybrid(a!, b!, { denseWeight: 1.5, k: 60 }), /dense weight 1.5 must lie in \[0, 1\]/);
});
