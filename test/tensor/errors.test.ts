/**
 * Bad input raises a TensorError that names the op and the shapes involved; it never crashes the process
 * or returns garbage. Covers shape mismatches, out-of-range indices, NaN/Inf produced in a forward or a
 * backward pass (the finite check), use of a freed tensor, and backward() on a non-scalar without a seed.
 * Checks that touch kernels (the finite checks) run on every available backend.
 * (Native kernels called directly with wrong-length arrays are covered by native-kernels.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';

const backends: T.BackendName[] = T.nativeKernels() ? ['js', 'native'] : ['js'];

function onEach(name: string, f: () => void): void {
  for (const b of backends) {
    test(`${name} (${b} backend)`, () => {
      T.setBackend(b);
      try {
        f();
      } finally {
        T.setBackend('js');
      }
    });
  }
}

/** Asserts that f throws a TensorError whose message starts with `op:` and contains every fragment. */
function throwsTensorError(f: () => unknown, op: string, fragments: string[]): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof T.TensorError, `expected a TensorError, got ${String(e)}`);
    assert.ok(e.message.startsWith(`${op}:`), `message should name the op '${op}': ${e.message}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message should mention '${f}': ${e.message}`);
    return true;
  });
}

const rng = new T.Rng(7);
const r = (shape: number[], requiresGrad = false): T.Tensor => T.randn(shape, rng, 1, requiresGrad);

test('matmul with mismatched inner dimensions names both shapes', () => {
  throwsTensorError(() => T.matmul(r([2, 3]), r([4, 5])), 'matmul', ['[2, 3]', '[4, 5]', '3', '4']);
  // the transposed operand is marked, so the message reads like the product that was asked for
  throwsTensorError(() => T.matmul(r([2, 3]), r([5, 4]), { transB: true }), 'matmul', ['[2, 3]', '[5, 4]ᵀ']);
  throwsTensorError(() => T.linear(r([2, 7, 3]), r([6, 4])), 'matmul', ['[2, 7, 3]', '[6, 4]ᵀ']);
  throwsTensorError(() => T.linear(r([2, 3]), r([6, 3]), r([4])), 'matmul', ['bias [4]', '6 columns']);
});

test('add of shapes that do not broadcast names both shapes', () => {
  throwsTensorError(() => T.add(r([2, 3]), r([4, 3])), 'add', ['[2, 3]', '[4, 3]', 'broadcast']);
  throwsTensorError(() => T.mul(r([5, 2, 3]), r([2, 4])), 'mul', ['[5, 2, 3]', '[2, 4]']);
  // broadcasting that is legal still works
  assert.deepEqual(T.add(r([2, 1, 3]), r([4, 1])).shape, [2, 4, 3]);
});

test('reshape to a different number of elements names both shapes', () => {
  throwsTensorError(() => T.reshape(r([2, 3]), [4, 2]), 'reshape', ['[2, 3]', '[4, 2]']);
  throwsTensorError(() => T.reshape(r([2, 3]), [4, -1]), 'reshape', ['[2, 3]', '[4, -1]']);
});

test('attention whose query heads are not a multiple of the KV heads names q, k and v shapes', () => {
  const q = r([1, 4, 3, 8]),
    k = r([1, 4, 2, 8]),
    v = r([1, 4, 2, 8]);
  throwsTensorError(() => T.attention(q, k, v, { causal: true }), 'attention', [
    '3 query heads',
    '2 key/value heads',
    '[1, 4, 3, 8]',
    '[1, 4, 2, 8]',
  ]);
  throwsTensorError(
    () => T.attention(r([1, 4, 4, 8]), r([1, 4, 2, 6]), r([1, 4, 2, 6]), { causal: true }),
    'attention',
    ['[1, 4, 4, 8]', '[1, 4, 2, 6]'],
  );
});

test('rmsnorm with a weight that does not match the last axis names both shapes', () => {
  throwsTensorError(() => T.rmsnorm(r([2, 5, 8]), r([6]), 1e-6), 'rmsnorm', ['[6]', '[2, 5, 8]']);
});

test('crossEntropy with a target outside the vocabulary names the target, the row and the logits shape', () => {
  const logits = r([2, 3, 10]);
  throwsTensorError(() => T.crossEntropy(logits, Int32Array.from([1, 2, 3, 4, 10, 0])), 'crossEntropy', [
    'target 10',
    'row 4',
    '[2, 3, 10]',
  ]);
  throwsTensorError(() => T.crossEntropy(logits, Int32Array.from([1, 2, -5, 4, 5, 0])), 'crossEntropy', [
    'target -5',
    '[2, 3, 10]',
  ]);
  throwsTensorError(() => T.crossEntropy(logits, Int32Array.from([1, 2, 3])), 'crossEntropy', [
    '3 targets',
    '[2, 3, 10]',
  ]);
  // the ignore index is not "out of range"
  assert.ok(Number.isFinite(T.crossEntropy(logits, Int32Array.from([1, -100, 3, 4, 5, 0])).item()));
});

test('embedding with an id outside the vocabulary names the id, its position and the weight shape', () => {
  const w = r([16, 4]);
  throwsTensorError(() => T.embedding(w, Int32Array.from([0, 3, 16])), 'embedding', ['id 16', 'position 2', '[16, 4]']);
  throwsTensorError(() => T.embedding(w, Int32Array.from([-1])), 'embedding', ['id -1', '[16, 4]']);
});

onEach('NaN produced in a forward pass (log of a negative) names log and the shapes', () => {
  const x = T.tensor([1, -2, 3], [3], true);
  x.name = 'x';
  throwsTensorError(() => T.log(x), 'log', ['NaN or Inf', 'x[3]']);
  // the same NaN inside a larger expression still names the op that produced it, not a later one
  throwsTensorError(() => T.sum(T.mul(T.log(T.affine(x, 1, -2)), x)), 'log', ['NaN or Inf']);
  // Inf in a forward pass: exp overflow
  throwsTensorError(() => T.exp(T.tensor([1, 100], [2])), 'exp', ['NaN or Inf', '[2]']);
});

onEach('Inf produced in a backward pass (sqrt at 0) is raised by backward() naming sqrt', () => {
  const x = T.tensor([4, 0, 1], [3], true);
  x.name = 'x';
  const loss = T.sum(T.sqrt(x)); // forward is finite: sqrt(0) = 0
  assert.equal(loss.item(), 3);
  throwsTensorError(() => loss.backward(), 'sqrt', ['backward', 'NaN or Inf', 'x[3]']);
  // division by zero in the backward of div: ∂(a/b)/∂b = −a/b² with a finite forward a/b
  const a = T.tensor([0, 1], [2], true),
    b = T.tensor([0.5, 1e-30], [2], true);
  const q = T.div(a, b);
  throwsTensorError(() => T.sum(q).backward(), 'div', ['backward', 'NaN or Inf']);
});

onEach('the finite check is what raises: with it off, NaN passes through silently', () => {
  const prev = T.isFiniteCheckEnabled();
  T.setFiniteCheck(false);
  try {
    assert.ok(Number.isNaN(T.log(T.tensor([-1], [1])).item()));
  } finally {
    T.setFiniteCheck(prev);
  }
  assert.throws(() => T.log(T.tensor([-1], [1])), T.TensorError);
});

test('use of a freed tensor names the tensor, its shape and who freed it', () => {
  const w = T.randn([3, 4], rng, 1, true);
  w.name = 'layer.weight';
  w.free('the KV-cache eviction');
  assert.ok(w.isFreed);
  throwsTensorError(() => w.data, 'tensor', ['freed', 'layer.weight[3, 4]', 'the KV-cache eviction']);
  // as an op input: the op reads its data and gets the same error, not garbage
  throwsTensorError(() => T.matmul(r([2, 3]), w), 'tensor', ['layer.weight[3, 4]', 'the KV-cache eviction']);
  throwsTensorError(() => w.item(), 'item', ['[3, 4]']);
  // shape and size stay readable for messages
  assert.deepEqual(w.shape, [3, 4]);
  assert.equal(w.size, 12);
  const y = T.add(r([2]), r([2]));
  y.free();
  throwsTensorError(() => y.toArray(), 'tensor', ['tensor[2]', 'free()']);
});

test('backward on a non-scalar without a seed names the tensor and its shape', () => {
  const x = r([2, 3], true);
  const y = T.scale(x, 2);
  throwsTensorError(() => y.backward(), 'backward', ['seed', '<affine>[2, 3]']);
  throwsTensorError(() => y.backward(new Float32Array(5)), 'backward', ['seed has 5 elements', '[2, 3]']);
  // with a seed of the right size it works
  y.backward(new Float32Array(6).fill(1));
  assert.deepEqual(Array.from(x.readGrad()!), [2, 2, 2, 2, 2, 2]);
  // a tensor that depends on nothing trainable cannot be differentiated
  throwsTensorError(() => T.sum(r([3])).backward(), 'backward', ['does not depend on any tensor that requires grad']);
});
