import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { clippedSurrogate, groupAdvantages, grpoLoss, k3, responseMeanWeights } from '../../../src/train/rl/grpo.js';

const close = (a: number, b: number, tol = 1e-6): void => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('advantages are normalised within each group; an all-equal group gets zero, never NaN', () => {
  const a = groupAdvantages([1, 2, 3, 5, 5, 5], 3);
  // group 1: mean 2, sample std 1 → (−1, 0, 1)/(1 + 1e-4)
  [-1, 0, 1].forEach((x, i) => close(a[i], x / (1 + 1e-4), 1e-12));
  assert.deepEqual(a.slice(3), [0, 0, 0]);
  assert.deepEqual(groupAdvantages([0.7], 1), [0]);
  const b = groupAdvantages([0, 0, 0, 1], 4); // mean .25, sample std .5 → (−.25, −.25, −.25, .75)/.5
  [-0.25, -0.25, -0.25, 0.75].forEach((x, i) => close(b[i], x / (0.5 + 1e-4), 1e-12));
  assert.ok(groupAdvantages([1, 1, 1, 1], 4).every((x) => x === 0));
  assert.throws(() => groupAdvantages([1, 2, 3], 2), /groups of 2/);
});

test('clipped surrogate: min(ρA, clip(ρ)A) in all four cases', () => {
  assert.deepEqual(clippedSurrogate(1.5, 1, 0.2), { value: 1.2, clipped: true });
  assert.deepEqual(clippedSurrogate(0.5, 1, 0.2), { value: 0.5, clipped: false });
  const neg = clippedSurrogate(0.5, -1, 0.2);
  close(neg.value, -0.8);
  assert.equal(neg.clipped, true);
  assert.deepEqual(clippedSurrogate(1.5, -1, 0.2), { value: -1.5, clipped: false });
  assert.deepEqual(clippedSurrogate(1.1, 2, 0.2), { value: 2.2, clipped: false });
  assert.deepEqual(clippedSurrogate(3, 0, 0.2), { value: 0, clipped: false });
});

test('k3 KL estimator: exp(ref − logp) − (ref − logp) − 1, zero at equality, never negative', () => {
  close(k3(Math.log(0.5), Math.log(0.25)), 0.5 - Math.log(0.5) - 1, 1e-12); // 0.193147
  close(k3(Math.log(0.25), Math.log(0.5)), 2 - Math.log(2) - 1, 1e-12);
  assert.equal(k3(-1.3, -1.3), 0);
});

test('GRPO loss value and gradient against the hand-derived formula (and finite differences)', () => {
  const old = Float32Array.from([-1.0, -2.0, -0.5, -1.5, -0.7]);
  const shift = [0.3, -0.05, -0.4, 0.1, 0.0]; // ratios e^0.3 = 1.35 (clipped at A>0), e^-0.4 = 0.67 (clipped at A<0)
  const cur = Float32Array.from(old, (v, i) => v + shift[i]);
  const ref = Float32Array.from([-1.2, -1.9, -0.6, -1.0, -0.7]);
  const adv = Float32Array.from([1, 1, -0.5, -0.5, 2]);
  const weights = responseMeanWeights([2, 2, 1]); // mean over each response's tokens, then over 3 responses
  assert.deepEqual(
    Array.from(weights),
    [1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 3].map((x) => Math.fround(x)),
  );
  const beta = 0.1,
    eps = 0.2;
  const expected = (lp: Float32Array): number => {
    let s = 0;
    for (let t = 0; t < 5; t++)
      s += weights[t] * (-clippedSurrogate(Math.exp(lp[t] - old[t]), adv[t], eps).value + beta * k3(lp[t], ref[t]));
    return s;
  };
  const logp = new T.Tensor(Float32Array.from(cur), [5], true);
  const out = grpoLoss({ logp, oldLogp: old, refLogp: ref, advantages: adv, weights, clipEps: eps, beta });
  close(out.loss.item(), expected(cur), 1e-5);
  close(out.clipFraction, 2 / 5);
  out.loss.backward();
  const g = logp.readGrad()!;
  for (let t = 0; t < 5; t++) {
    const r = Math.exp(cur[t] - old[t]);
    const unclipped = !clippedSurrogate(r, adv[t], eps).clipped;
    const analytic = weights[t] * (-(unclipped ? adv[t] * r : 0) + beta * (1 - Math.exp(ref[t] - cur[t])));
    close(g[t], analytic, 1e-5);
    if (t === 0 || t === 2)
      assert.ok(
        Math.abs(g[t] - weights[t] * beta * (1 - Math.exp(ref[t] - cur[t]))) < 1e-6,
        'a clipped token gets only the KL gradient',
      );
    const h = 1e-3,
      up = Float64Array.from(cur),
      dn = Float64Array.from(cur);
    up[t] += h;
    dn[t] -= h;
    close(g[t], (expected(Float32Array.from(up)) - expected(Float32Array.from(dn))) / (2 * h), 2e-3);
  }
});

test(
  'on the first inner epoch (π = π_old) the ratio is 1 and ' +
    'nothing is clipped; zero advantages give no policy gradient',
  () => {
    const lp = Float32Array.from([-0.3, -2.1, -1.1]);
    const logp = new T.Tensor(Float32Array.from(lp), [3], true);
    const out = grpoLoss({
      logp,
      oldLogp: lp,
      refLogp: lp,
      advantages: new Float32Array(3),
      weights: responseMeanWeights([3]),
      clipEps: 0.2,
      beta: 0.04,
    });
    assert.equal(out.loss.item(), 0);
    assert.equal(out.clipFraction, 0);
    close(out.ratio, 1);
    out.loss.backward();
    assert.ok(Array.from(logp.readGrad()!).every((x) => x === 0 && !Number.isNaN(x)));
  },
);
