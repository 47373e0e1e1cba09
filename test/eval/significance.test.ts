import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  pairedRandomizationTest,
  pairedTTest,
  regularizedIncompleteBeta,
  studentTTwoSidedP,
} from '../../src/eval/significance.js';

// Reference values from SciPy 1.10.1 (Debian python3-scipy): scipy.stats.ttest_rel, scipy.special.betainc,
// 2 * scipy.stats.t.sf; and the exact sign-flip p-value by enumerating all 2^10 assignments.
const a = [0.72, 0.55, 0.91, 0.33, 0.64, 0.48, 0.8, 0.27, 0.59, 0.7];
const b = [0.65, 0.57, 0.85, 0.3, 0.52, 0.47, 0.71, 0.29, 0.5, 0.66];

const close = (x: number, y: number, rel = 1e-9) => assert.ok(Math.abs(x - y) <= rel * Math.abs(y), `${x} vs ${y}`);

test('regularised incomplete beta matches scipy.special.betainc', () => {
  close(regularizedIncompleteBeta(0.3, 2.5, 0.5), 0.01892712407194565);
  close(regularizedIncompleteBeta(0.9, 10, 3), 0.889130022255);
  close(regularizedIncompleteBeta(0.5, 0.5, 0.5), 0.5000000000000001);
});

test('Student t two-sided p matches scipy.stats.t', () => {
  close(studentTTwoSidedP(2.0, 5), 0.10193947882985828);
  close(studentTTwoSidedP(-0.5, 100), 0.6181735658308867);
  close(studentTTwoSidedP(4.5, 299), 9.742856839915574e-6, 1e-7);
});

test('paired t-test matches scipy.stats.ttest_rel', () => {
  const r = pairedTTest(a, b);
  close(r.t, 3.1210276075037533);
  close(r.p, 0.01229823897733212);
  assert.equal(r.df, 9);
  assert.equal(pairedTTest(a, a).p, 1);
});

test('paired randomisation test: seeded, near the exact sign-flip p, symmetric in a and b', () => {
  const r = pairedRandomizationTest(a, b, { trials: 20000, seed: 1 });
  assert.ok(Math.abs(r.p - 0.01953125) < 0.005, String(r.p)); // exact: 20 of 1024 assignments
  assert.equal(pairedRandomizationTest(a, b, { trials: 20000, seed: 1 }).p, r.p);
  assert.equal(pairedRandomizationTest(b, a, { trials: 20000, seed: 1 }).p, r.p);
  assert.equal(pairedRandomizationTest(a, a, { trials: 100 }).p, 1);
  assert.throws(() => pairedTTest([1, 2], [1]), /differ in length/);
});
