/**
 * The autodiff engine's contract, as code above it relies on it: gradients of a tensor used several times
 * are summed; leaf gradients accumulate across backward() calls until zeroGrad; noGrad records nothing;
 * retainGraph allows a second backward; without it the graph is dropped and differentiating through it
 * again is a clear error (never silently missing gradients); detach stops gradients; the Tensor
 * constructor rejects data that does not fit its shape. Values are exact small-integer arithmetic, so
 * comparisons are exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';

const arr = (t: T.Tensor | Float32Array | null): number[] => {
  assert.ok(t !== null, 'expected a gradient');
  return Array.from(t instanceof T.Tensor ? t.data : t);
};

/** x [1, 2], W [2, 2] with easy numbers. */
function setup(): { x: T.Tensor; W: T.Tensor } {
  return { x: T.tensor([1, 2], [1, 2], true), W: T.tensor([1, 2, 3, 4], [2, 2], true) };
}

test('a parameter used twice gets the sum of both gradients (y = x·W + x·W doubles dW)', () => {
  const { x, W } = setup();
  T.sum(T.matmul(x, W)).backward();
  const once = arr(W.readGrad()),
    onceX = arr(x.readGrad());
  // d/dW Σ x·W = xᵀ·1 = [[1, 1], [2, 2]]; d/dx = 1·Wᵀ = [3, 7]
  assert.deepEqual(once, [1, 1, 2, 2]);
  assert.deepEqual(onceX, [3, 7]);
  const b = setup();
  T.sum(T.add(T.matmul(b.x, b.W), T.matmul(b.x, b.W))).backward();
  assert.deepEqual(
    arr(b.W.readGrad()),
    once.map((v) => 2 * v),
  );
  assert.deepEqual(
    arr(b.x.readGrad()),
    onceX.map((v) => 2 * v),
  );
});

test('a tensor used in two branches of different ops gets both contributions', () => {
  const x = T.tensor([1, 2, 3], [3], true);
  // L = Σ x² + Σ 3x  →  dL/dx = 2x + 3
  const sq = T.mul(x, x);
  T.sum(T.add(sq, T.scale(x, 3))).backward();
  assert.deepEqual(arr(x.readGrad()), [5, 7, 9]);
  // an intermediate used twice: h = 2x, L = Σ h·h  →  dL/dx = 8x
  const y = T.tensor([1, 2, 3], [3], true);
  const h = T.scale(y, 2);
  T.sum(T.mul(h, h)).backward();
  assert.deepEqual(arr(y.readGrad()), [8, 16, 24]);
  // the same tensor as both operands of a broadcast: x [3] + x viewed [3, 1] → [3, 3]; each element appears 6 times
  const z = T.tensor([1, 2, 3], [3], true);
  T.sum(T.add(z, T.reshape(z, [3, 1]))).backward();
  assert.deepEqual(arr(z.readGrad()), [6, 6, 6]);
});

test('a shared weight reached through a deep chain (tied embedding and LM head) sums both paths', () => {
  // ids pick rows of E, then logits = h·Eᵀ: E gets an embedding gradient and a matmul gradient
  const E = T.tensor([1, 0, 0, 1, 1, 1], [3, 2], true);
  const h = T.embedding(E, Int32Array.from([2]));
  T.sum(T.matmul(h, E, { transB: true })).backward();
  // matmul path: dE = 1ᵀ·h = each row gets h = [1, 1]; embedding path: row 2 gets Σ_j E[j] = [2, 2]
  assert.deepEqual(arr(E.readGrad()), [1, 1, 1, 1, 3, 3]);
});

test('gradients accumulate across backward() calls until zeroGrad', () => {
  const { x, W } = setup();
  const opt = new T.SGD([x, W]);
  T.sum(T.matmul(x, W)).backward();
  T.sum(T.matmul(x, W)).backward();
  assert.deepEqual(arr(W.readGrad()), [2, 2, 4, 4]);
  T.sum(T.scale(T.matmul(x, W), 10)).backward();
  assert.deepEqual(arr(W.readGrad()), [12, 12, 24, 24]);
  opt.zeroGrad();
  assert.equal(W.grad, null);
  assert.equal(x.grad, null);
  T.sum(T.matmul(x, W)).backward();
  assert.deepEqual(arr(W.grad), [1, 1, 2, 2]);
});

test('the accumulated gradient is a copy: later backward passes do not alias an earlier seed', () => {
  const x = T.tensor([1, 2], [2], true);
  const seed = Float32Array.from([5, 7]);
  T.scale(x, 1).backward(seed);
  seed[0] = 100;
  assert.deepEqual(arr(x.readGrad()), [5, 7]);
  T.scale(x, 1).backward(Float32Array.from([1, 1]));
  assert.deepEqual(arr(x.readGrad()), [6, 8]);
});

test('noGrad records nothing: its results track no gradient and backward() on them throws', () => {
  const { x, W } = setup();
  const y = T.noGrad(() => T.sum(T.matmul(x, W)));
  assert.equal(y.item(), 17);
  assert.equal(y.tracksGrad, false);
  assert.equal(y.creator, null);
  assert.throws(
    () => y.backward(),
    (e: unknown) => e instanceof T.TensorError && /does not depend on any tensor that requires grad/.test(e.message),
  );
  assert.equal(W.grad, null);
  // recording resumes after noGrad, also when the block threw
  assert.throws(
    () =>
      T.noGrad(() => {
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(T.isGradEnabled(), true);
  const z = T.sum(T.matmul(x, W));
  assert.equal(z.creator, 'sum');
  z.backward();
  assert.deepEqual(arr(W.grad), [1, 1, 2, 2]);
});

test('noGrad nests and restores the outer setting', () => {
  T.noGrad(() => {
    T.noGrad(() => assert.equal(T.isGradEnabled(), false));
    assert.equal(T.isGradEnabled(), false);
  });
  assert.equal(T.isGradEnabled(), true);
});

test('retainGraph keeps the graph for a second backward, which accumulates the same gradient again', () => {
  const { x, W } = setup();
  const h = T.matmul(x, W);
  const loss = T.sum(T.mul(h, h)); // h = [7, 10]; dL/dW = xᵀ·2h = [[14, 20], [28, 40]]
  loss.backward(undefined, { retainGraph: true });
  assert.deepEqual(arr(W.readGrad()), [14, 20, 28, 40]);
  assert.equal(loss.creator, 'sum');
  loss.backward();
  assert.deepEqual(arr(W.readGrad()), [28, 40, 56, 80]);
  assert.deepEqual(arr(x.readGrad()), [2 * 54, 2 * 122]);
});

test('without retainGraph the graph is dropped: a second backward throws a clear error', () => {
  const { x, W } = setup();
  const loss = T.sum(T.matmul(x, W));
  loss.backward();
  assert.equal(loss.creator, null, 'the node (and the activations its closure holds) is released');
  assert.throws(
    () => loss.backward(),
    (e: unknown) =>
      e instanceof T.TensorError && /freed/.test(e.message) && /retainGraph/.test(e.message) && /sum/.test(e.message),
  );
  assert.deepEqual(arr(W.readGrad()), [1, 1, 2, 2], 'the failed backward added nothing');
});

test('a new loss built on an intermediate whose graph was dropped cannot silently lose gradients', () => {
  // h depends on W1; the first backward frees the graph behind h. A second loss that uses h and W2 must
  // not quietly give W2 its gradient and W1 none: that is the error, as in PyTorch.
  const x = T.tensor([1, 2], [1, 2]);
  const W1 = T.tensor([1, 0, 0, 1], [2, 2], true),
    W2 = T.tensor([1, 1, 1, 1], [2, 2], true);
  const h = T.matmul(x, W1);
  T.sum(h).backward();
  assert.deepEqual(arr(W1.readGrad()), [1, 1, 2, 2]);
  const loss2 = T.sum(T.matmul(h, W2));
  assert.throws(
    () => loss2.backward(),
    (e: unknown) => e instanceof T.TensorError && /freed/.test(e.message) && /matmul/.test(e.message),
  );
  assert.deepEqual(arr(W1.readGrad()), [1, 1, 2, 2], 'W1 received nothing from the failed pass');
  // detaching h says "treat it as a constant": then the second loss is fine and only W2 learns
  W2.grad = null;
  T.sum(T.matmul(h.detach(), W2)).backward();
  assert.deepEqual(arr(W2.grad), [1, 1, 2, 2]);
  assert.deepEqual(arr(W1.readGrad()), [1, 1, 2, 2]);
});

test('detach stops gradients but shares the values', () => {
  const x = T.tensor([1, 2, 3], [3], true);
  const d = x.detach();
  assert.equal(d.tracksGrad, false);
  assert.deepEqual(d.shape, [3]);
  assert.equal(d.data, x.data, 'detach shares the data (no copy)');
  // L = Σ x·stop(x) → dL/dx = stop(x) = x (not 2x)
  T.sum(T.mul(x, d)).backward();
  assert.deepEqual(arr(x.readGrad()), [1, 2, 3]);
  // detaching an intermediate cuts everything upstream of it
  const W = T.tensor([2], [1], true);
  const h = T.mul(x, W);
  x.grad = null;
  T.sum(T.mul(h.detach(), x)).backward();
  assert.deepEqual(arr(x.grad), [2, 4, 6]);
  assert.equal(W.grad, null);
  // a loss made only of detached values has nothing to differentiate
  assert.throws(() => T.sum(h.detach()).backward(), T.TensorError);
});

test('gradients flow only into tensors that require them; constants get none', () => {
  const c = T.tensor([3, 4], [2]);
  const p = T.tensor([1, 1], [2], true);
  T.sum(T.mul(c, p)).backward();
  assert.equal(c.grad, null);
  assert.deepEqual(arr(p.readGrad()), [3, 4]);
});

test('a deep graph (10,000 chained ops) runs backward without overflowing the stack', () => {
  const x = T.tensor([1], [1], true);
  let y = x;
  for (let i = 0; i < 10000; i++) y = T.affine(y, 1, 1e-4);
  T.sum(y).backward();
  assert.deepEqual(arr(x.readGrad()), [1]);
});

test('the Tensor constructor rejects data that does not fit the shape, and invalid shapes', () => {
  const fails = (f: () => unknown, re: RegExp): void => {
    assert.throws(
      f,
      (e: unknown) => e instanceof T.TensorError && e.message.startsWith('tensor:') && re.test(e.message),
    );
  };
  fails(() => new T.Tensor(new Float32Array(5), [2, 3]), /5 elements.*\[2, 3\].*6/);
  fails(() => new T.Tensor(new Float32Array(6), [6, 1, 2]), /\[6, 1, 2\]/);
  fails(() => new T.Tensor(new Float32Array(0), [2, -1]), /\[2, -1\]/);
  fails(() => new T.Tensor(new Float32Array(3), [1.5, 2]), /invalid shape \[1\.5, 2\]/);
  fails(() => T.tensor([1, 2, 3], [2, 2]), /3 elements/);
  // a scalar is shape [] with one element; an empty tensor is fine
  assert.equal(new T.Tensor(Float32Array.from([4]), []).item(), 4);
  assert.equal(new T.Tensor(new Float32Array(0), [0, 3]).size, 0);
  // the shape is frozen: it cannot be changed behind the data's back
  const t = new T.Tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => {
    (t.shape as number[])[0] = 3;
  }, TypeError);
});
