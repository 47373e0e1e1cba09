/**
 * The host pool behind Tensor.release: released activations come back zeroed from the next alloc of their
 * size, storage shared by views is reused only when every tensor over it is released, and tensors a
 * gradient graph may still read are never released.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { HostArrayPool } from '../../src/tensor/host-pool.js';

test('the pool hands back a given array, zeroed, for the next take of its length', () => {
  const pool = new HostArrayPool(1024);
  const a = pool.take(8);
  a.fill(3);
  pool.give(a);
  assert.equal(pool.bytes, 32);
  assert.notEqual(pool.take(4), a, 'another length is a new array');
  const b = pool.take(8);
  assert.equal(b, a);
  assert.deepEqual([...b], new Array(8).fill(0));
  assert.equal(pool.bytes, 0);
  assert.equal(pool.created, 2);
  // for an op that overwrites every value, the array comes back as it was left
  b.fill(5);
  pool.give(b);
  assert.deepEqual([...pool.take(8, false)], new Array(8).fill(5));
});

test('the pool keeps no more than its limit, and no views into larger buffers', () => {
  const pool = new HostArrayPool(40);
  pool.give(new Float32Array(8));
  pool.give(new Float32Array(8)); // 64 bytes would pass the 40-byte limit
  assert.equal(pool.bytes, 32);
  pool.give(new Float32Array(16).subarray(0, 2));
  assert.equal(pool.bytes, 32);
  pool.clear();
  assert.equal(pool.bytes, 0);
});

test('a released tensor’s array is what the next op of that size computes in; using the tensor fails', () => {
  T.noGrad(() => {
    const x = T.tensor([1, 2, 3, 4], [2, 2]);
    const y = T.add(x, x);
    const storage = y.data;
    y.release();
    assert.throws(() => y.data, /freed by release\(\)/);
    const z = T.add(x, x);
    assert.equal(z.data, storage);
    assert.deepEqual([...z.data], [2, 4, 6, 8]);
  });
});

test('storage shared with a view is reused only after the tensor and all its views are released', () => {
  T.noGrad(() => {
    const x = T.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const y = T.add(x, x);
    const v = T.reshape(y, [3, 2]);
    const w = v.detach();
    const storage = y.data;
    T.recycle(y, v);
    assert.equal(w.data, storage, 'the detached view still reads it');
    assert.notEqual(T.add(x, x).data, storage);
    T.recycle(w);
    assert.equal(T.add(x, x).data, storage);
  });
});

test('while gradients are recorded, recycle leaves tensors alone and release refuses a graph’s tensor', () => {
  const p = T.parameter(Float32Array.from([1, 2]), [2]);
  const y = T.mul(p, p);
  T.recycle(y);
  assert.deepEqual([...y.data], [1, 4]);
  assert.throws(() => y.release(), /release: .* part of a gradient graph/);
  T.sum(y).backward();
  assert.deepEqual([...p.readGrad()!], [2, 4]);
});
