import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';

test('dropout zeroes about p of the elements, scales the rest by 1/(1−p), and routes gradients the same way', () => {
  const n = 20000,
    p = 0.3;
  const x = T.randn([n], new T.Rng(1), 1, true);
  const y = T.dropout(x, p, new T.Rng(2));
  let zeros = 0;
  for (let i = 0; i < n; i++) {
    if (y.data[i] === 0) zeros++;
    else assert.ok(Math.abs(y.data[i] - x.data[i] / (1 - p)) < 1e-6);
  }
  // binomial(n, p): 5 standard deviations ≈ 0.016
  assert.ok(Math.abs(zeros / n - p) < 0.016, `zero fraction ${zeros / n}`);
  T.sum(y).backward();
  for (let i = 0; i < n; i++) assert.equal(x.readGrad()![i], y.data[i] === 0 ? 0 : Math.fround(1 / (1 - p)));
});

test('dropout is reproducible by seed, the identity at p = 0, and refuses p ≥ 1', () => {
  const x = T.randn([100], new T.Rng(1));
  assert.deepEqual(T.dropout(x, 0.5, new T.Rng(9)).data, T.dropout(x, 0.5, new T.Rng(9)).data);
  assert.notDeepEqual(T.dropout(x, 0.5, new T.Rng(9)).data, T.dropout(x, 0.5, new T.Rng(10)).data);
  assert.equal(T.dropout(x, 0, new T.Rng(1)), x);
  assert.throws(() => T.dropout(x, 1, new T.Rng(1)), /below 1/);
});
