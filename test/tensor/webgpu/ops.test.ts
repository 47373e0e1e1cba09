/**
 * Every op of the tensor layer (the cases ops-grad.test.ts checks against PyTorch) forward and backward
 * on WebGPU against the native backend, through the same autodiff: relErr ≤ 1e-4 for the output and
 * every input's gradient (see harness.ts for relErr). The loss is Σ out·R for a fixed random R.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/tensor/index.js';
import { type OpCase, makeInputs, opCases } from '../op-cases.js';
import { F32_TOL, relErr, skipWithoutGpu } from './harness.js';

interface Result {
  out: Float32Array;
  grads: (Float32Array | null)[];
}

function runOn(backend: T.BackendName, c: OpCase, inputs: Float32Array[]): Result {
  T.setBackend(backend);
  try {
    const xs = inputs.map((d, i) => new T.Tensor(Float32Array.from(d), c.inputs[i].shape, c.inputs[i].grad ?? true));
    const out = c.run(xs, c);
    const r = makeInputs({ ...c, inputs: [{ shape: [...out.shape] }] }, 999)[0];
    T.sum(T.mul(out, new T.Tensor(r, out.shape))).backward();
    return {
      out: Float32Array.from(out.read()),
      grads: xs.map((x) => (x.grad ? Float32Array.from(x.readGrad()!) : null)),
    };
  } finally {
    T.setBackend('native');
  }
}

const skip = skipWithoutGpu;
for (const c of opCases) {
  test(`${c.name} on WebGPU matches native, forward and backward`, { skip }, () => {
    const inputs = makeInputs(c, 1);
    const want = runOn('native', c, inputs),
      got = runOn('webgpu', c, inputs);
    assert.ok(relErr(got.out, want.out) <= F32_TOL, `output: relErr ${relErr(got.out, want.out)}`);
    want.grads.forEach((g, i) => {
      if (g === null) return assert.equal(got.grads[i], null);
      const e = relErr(got.grads[i]!, g);
      assert.ok(e <= F32_TOL, `gradient of input ${i}: relErr ${e}`);
    });
  });
}

test('l2normalize on WebGPU stays on the GPU: no read back, no upload, forward or backward', { skip }, () => {
  const k = T.webgpuKernels()!;
  T.setBackend('webgpu');
  const dev = k.gpu,
    read = dev.read;
  let reads = 0;
  try {
    const data = new Float32Array(5 * 33).map((_, i) => Math.sin(i));
    const xs = new T.Tensor(data, [5, 33], true);
    const seed = k.fromHost(new Float32Array(data.length).fill(1));
    const before = dev.stats().staged;
    dev.read = (...args) => {
      reads++;
      return read.apply(dev, args);
    };
    T.l2normalize(xs).backward(seed);
    dev.read = read;
    // Everything queued has run by the time stats answers.
    assert.equal(dev.stats().staged - before, 0, 'bytes uploaded');
    assert.equal(reads, 0, 'reads');
  } finally {
    dev.read = read;
    T.setBackend('native');
  }
});
