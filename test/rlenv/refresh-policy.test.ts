import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRefresh, stalest, type RefreshSettings } from '../../src/rlenv/refresh-policy.js';

const base: RefreshSettings = { mode: 'local', budget: 100, candidates: 2, neighbours: 1, rolling: 0, fullEvery: 0 };
const versions = (n: number, v = 0): Int32Array => new Int32Array(n).fill(v);
const neighbours = (r: number, k: number): number[] => [r + 10, r + 11].slice(0, k);

test('local refresh names positives, then candidates rank by rank, then graph neighbours', () => {
  const plan = planRefresh(
    {
      step: 1,
      version: 1,
      versions: versions(30),
      positives: [5, 3],
      retrieved: [
        [1, 2, 9],
        [2, 4],
      ],
      neighbours,
    },
    base,
  );
  // candidates: rank 0 of each response (1, 2), then rank 1 (2 seen, 4); neighbours +10 of each
  assert.deepEqual(plan.rows, [5, 3, 1, 2, 4, 11, 12, 14]);
  assert.deepEqual(plan.counts, { positives: 2, candidates: 3, neighbours: 3, rolling: 0, full: 0 });
});

test('the budget cuts in priority order; fresh rows are skipped; rolling adds the stalest beyond the budget', () => {
  const v = versions(30, 2);
  v[1] = 3; // row 1 already encoded by the current policy
  v[20] = 0;
  v[25] = 1;
  v[7] = 0;
  const plan = planRefresh(
    {
      step: 4,
      version: 3,
      versions: v,
      positives: [5],
      retrieved: [
        [1, 2, 9],
        [2, 4],
      ],
      neighbours,
    },
    { ...base, budget: 3, rolling: 3 },
  );
  assert.deepEqual(plan.rows, [5, 2, 4, 7, 20, 25]);
  assert.deepEqual(plan.counts, { positives: 1, candidates: 2, neighbours: 0, rolling: 3, full: 0 });
  assert.deepEqual(stalest(v, 3, new Set([7]), 2), [20, 25]);
});

test('exact mode and the periodic full refresh take every stale row', () => {
  const v = versions(6, 1);
  v[2] = 2;
  const req = { step: 6, version: 2, versions: v, positives: [0], retrieved: [], neighbours };
  assert.deepEqual(planRefresh(req, { ...base, mode: 'exact' }).rows, [0, 1, 3, 4, 5]);
  assert.deepEqual(planRefresh(req, { ...base, fullEvery: 3 }).rows, [0, 1, 3, 4, 5]);
  assert.deepEqual(planRefresh({ ...req, step: 5 }, { ...base, fullEvery: 3 }).rows, [0]);
});
