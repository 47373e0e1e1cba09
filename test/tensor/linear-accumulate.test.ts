/**
 * linearAccumulate (out += x·Wᵀ + bias in place, inference's residual connection) against linear then add,
 * on every backend, with float32 and bf16 weights, with and without a bias; and its refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { relErr } from '../helpers/rel-err.js';
import { webgpuSkip } from '../helpers/webgpu.js';

const rng = new T.Rng(31);
const randn = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());

// rows 1 (decode: the skinny kernels on a GPU), 37 (the tiled ones), 300 × 1024 inputs (a split k on a GPU)
const SHAPES: [rows: number, k: number, n: number][] = [
  [1, 64, 48],
  [37, 96, 80],
  [3, 1024, 24],
];

function check(backend: T.BackendName): void {
  T.setBackend(backend);
  try {
    for (const [rows, k, n] of SHAPES) {
      for (const dtype of ['f32', 'bf16'] as const) {
        for (const withBias of [false, true]) {
          const x = T.tensor(randn(rows * k), [rows, k]),
            h = randn(rows * n),
            wv = randn(n * k),
            w = new T.Tensor(dtype === 'f32' ? wv : T.HalfArray.from(wv, 'bf16'), [n, k]),
            bias = withBias ? T.tensor(randn(n), [n]) : null;
          const want = T.noGrad(() => T.add(T.tensor(h, [rows, n]), T.linear(x, w, bias)).read());
          const out = T.tensor(h, [rows, n]);
          const got = T.noGrad(() => T.linearAccumulate(out, x, w, bias));
          assert.equal(got, out, 'returns its output');
          const e = relErr(got.read(), want);
          assert.ok(e <= 1e-5, `${backend} ${rows}×${k}→${n} ${dtype}${withBias ? ' with bias' : ''}: relErr ${e}`);
        }
      }
    }
  } finally {
    T.setBackend('native');
  }
}

test('linearAccumulate adds x·Wᵀ + bias onto its output, as linear then add does (js, native)', () => {
  check('js');
  check('native');
});

test('linearAccumulate on WebGPU matches linear then add', { skip: webgpuSkip() }, () => check('webgpu'));

test('linearAccumulate refuses to run while gradients are recorded, and names shapes that do not fit', () => {
  const x = T.tensor(randn(2 * 4), [2, 4]),
    w = T.tensor(randn(3 * 4), [3, 4]),
    out = T.tensor(randn(2 * 3), [2, 3]);
  assert.throws(() => T.linearAccumulate(out, x, w), /only without gradients/);
  assert.throws(
    () => T.noGrad(() => T.linearAccumulate(T.tensor(randn(4), [2, 2]), x, w)),
    /\[2, 2\] \+= \[2, 4\] · \[3, 4\]ᵀ/,
  );
  assert.throws(
    () => T.noGrad(() => T.linearAccumulate(out, x, w, T.tensor(randn(2), [2]))),
    /bias \[2\] is not \[3\]/,
  );
});
