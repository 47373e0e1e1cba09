/**
 * Every op's forward value and gradient, checked three ways on the same inputs:
 *  - against PyTorch autograd (float64 on the same float32 inputs): relErr ≤ 1e-4;
 *  - against directional finite differences of our own forward (Ridders' extrapolated central differences
 *    from h = 0.1 (1e-2 around kinks), loss accumulated in float64): |fd − g·v| / Σ|g∘v| ≤ 1e-4 per direction;
 *  - native backend against the TS backend: relErr ≤ 1e-5.
 * relErr = max|a − b| / max(max|b|, 1e-6) (test/helpers/torch.ts). The loss is Σ out·R for a fixed
 * random R, so that every output element carries a distinct gradient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { decodeF64, encodeF32, relErr, runTorch } from '../helpers/torch.js';
import { type OpCase, makeInputs, opCases } from './op-cases.js';

interface Result {
  out: Float32Array;
  shape: number[];
  grads: (Float32Array | null)[];
}

function runCase(c: OpCase, inputs: Float32Array[], R: Float32Array | null): Result & { R: Float32Array } {
  const xs = inputs.map((d, i) => new T.Tensor(Float32Array.from(d), c.inputs[i].shape, c.inputs[i].grad ?? true));
  const out = c.run(xs, c);
  const r = R ?? makeInputs({ ...c, inputs: [{ shape: [...out.shape] }] }, 999)[0];
  const loss = T.sum(T.mul(out, new T.Tensor(r, out.shape)));
  loss.backward();
  return { out: out.data, shape: [...out.shape], grads: xs.map((x) => x.readGrad()), R: r };
}

/** Σ out·R in float64, without recording a graph. */
function lossAt(c: OpCase, inputs: Float32Array[], R: Float32Array): number {
  return T.noGrad(() => {
    const out = c.run(
      inputs.map((d, i) => new T.Tensor(d, c.inputs[i].shape)),
      c,
    ).data;
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * R[i];
    return s;
  });
}

/**
 * d/dt loss(x + t·v) at t = 0 by Ridders' method: central differences at shrinking steps, extrapolated
 * to step 0 in a tableau, keeping the estimate whose neighbours agree best. Float32 forward passes
 * make a single step size either too noisy or too coarse; the tableau finds the balance per op.
 */
function directionalFD(
  c: OpCase,
  inputs: Float32Array[],
  R: Float32Array,
  which: number,
  v: Float32Array,
  h0: number,
): number {
  const central = (h: number): number => {
    const at = (t: number): number =>
      lossAt(
        c,
        inputs.map((d, i) => (i === which ? d.map((x, j) => x + t * v[j]) : d)),
        R,
      );
    return (at(h) - at(-h)) / (2 * h);
  };
  const con = 1.4,
    con2 = con * con,
    ntab = 10;
  const a: number[][] = Array.from({ length: ntab }, () => new Array<number>(ntab).fill(0));
  let h = h0,
    best = NaN,
    err = Infinity;
  a[0][0] = central(h);
  for (let i = 1; i < ntab; i++) {
    h /= con;
    a[0][i] = central(h);
    let fac = con2;
    for (let j = 1; j <= i; j++) {
      a[j][i] = (a[j - 1][i] * fac - a[j - 1][i - 1]) / (fac - 1);
      fac *= con2;
      const e = Math.max(Math.abs(a[j][i] - a[j - 1][i]), Math.abs(a[j][i] - a[j - 1][i - 1]));
      if (e <= err) {
        err = e;
        best = a[j][i];
      }
    }
    if (Math.abs(a[i][i] - a[i - 1][i - 1]) >= 2 * err) break;
  }
  return best;
}

const native = T.nativeKernels();
const allowNoNative = process.env.SEARCH_R3_ALLOW_NO_NATIVE === '1';

test(
  'the native backend is available (CI installs OpenBLAS and builds the addon)',
  { skip: allowNoNative && !native },
  () => {
    assert.ok(native, `native backend unavailable: ${T.nativeBackendError()}`);
  },
);

const torchCases = opCases.map((c, i) => {
  const inputs = makeInputs(c, 1000 + i);
  T.setBackend('js');
  const ours = runCase(c, inputs, null);
  return { c, inputs, ours };
});

const torch = runTorch<{ results: { out: string; shape: number[]; grads: (string | null)[] }[] }>('ops.py', {
  cases: torchCases.map(({ c, inputs, ours }) => ({
    op: c.op,
    ints: c.ints ?? {},
    params: c.params ?? {},
    R: encodeF32(ours.R),
    inputs: inputs.map((d, i) => ({ shape: c.inputs[i].shape, data: encodeF32(d), grad: c.inputs[i].grad ?? true })),
  })),
});

torchCases.forEach(({ c, inputs, ours }, idx) => {
  test(`${c.name}: forward and gradients match PyTorch (relErr ≤ 1e-4)`, () => {
    const ref = torch.results[idx];
    assert.deepEqual(ours.shape, ref.shape, 'output shape');
    const eo = relErr(ours.out, decodeF64(ref.out));
    assert.ok(eo <= 1e-4, `forward relErr ${eo}`);
    ours.grads.forEach((g, i) => {
      if (ref.grads[i] === null) return;
      assert.ok(g, `input ${i} got no gradient`);
      const eg = relErr(g, decodeF64(ref.grads[i]!));
      assert.ok(eg <= 1e-4, `gradient of input ${i}: relErr ${eg}`);
    });
  });

  test(`${c.name}: gradients match finite differences (≤ 1e-4)`, () => {
    T.setBackend('js');
    const rng = new T.Rng(77 + idx);
    inputs.forEach((d, i) => {
      const g = ours.grads[i];
      if (!g) return;
      for (let rep = 0; rep < 2; rep++) {
        const v = d.map(() => rng.normal());
        let ad = 0,
          mag = 0;
        for (let j = 0; j < v.length; j++) {
          ad += g[j] * v[j];
          mag += Math.abs(g[j] * v[j]);
        }
        const fd = directionalFD(c, inputs, ours.R, i, v, c.fdStep ?? 0.1);
        // relative to Σ|g·v|, the size of the terms of gradient·v (it may cancel to near 0)
        const err = Math.abs(fd - ad) / Math.max(mag, 1e-6);
        assert.ok(
          err <= 1e-4,
          `input ${i}, direction ${rep}: finite difference ${fd} vs gradient·v ${ad} (rel ${err})`,
        );
      }
    });
  });

  test(`${c.name}: native backend matches the TS backend (relErr ≤ 1e-5)`, { skip: !native }, () => {
    try {
      T.setBackend('native');
      const nat = runCase(c, inputs, ours.R);
      const eo = relErr(nat.out, ours.out);
      assert.ok(eo <= 1e-5, `forward relErr ${eo}`);
      nat.grads.forEach((g, i) => {
        if (!ours.grads[i]) return;
        const eg = relErr(g!, ours.grads[i]!);
        assert.ok(eg <= 1e-5, `gradient of input ${i}: relErr ${eg}`);
      });
    } finally {
      T.setBackend('js');
    }
  });
});
