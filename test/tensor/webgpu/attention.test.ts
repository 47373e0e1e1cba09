/** WebGPU fused attention, forward and backward, against the native kernels (relErr ≤ 1e-4, see harness.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionShape } from '../../../src/tensor/kernels.js';
import { type AttentionKernels, attentionKernels } from '../../../src/tensor/webgpu/attention-kernels.js';
import { F32_TOL, down, ref, relErr, seeded, skipWithoutGpu, up, wg } from './harness.js';

const opt = { skip: skipWithoutGpu };
const r = seeded(11);

interface Case {
  batch?: number;
  heads: [number, number];
  queryLen: number;
  keyLen: number;
  keyStride?: number;
  headDim: number;
  causal: boolean;
  /** Per batch row, the keys that are padding. */
  padded?: (b: number, j: number) => boolean;
}

function shapeOf(c: Case): AttentionShape {
  const batch = c.batch ?? 2;
  let keyMask: Uint8Array | null = null;
  if (c.padded) {
    keyMask = new Uint8Array(batch * c.keyLen);
    for (let b = 0; b < batch; b++)
      for (let j = 0; j < c.keyLen; j++) keyMask[b * c.keyLen + j] = c.padded(b, j) ? 0 : 1;
  }
  return {
    batch,
    queryHeads: c.heads[0],
    kvHeads: c.heads[1],
    queryLen: c.queryLen,
    keyLen: c.keyLen,
    keyStride: c.keyStride ?? c.keyLen,
    headDim: c.headDim,
    scale: 1 / Math.sqrt(c.headDim),
    causal: c.causal,
    keyMask,
  };
}

/** Runs forward and backward on both backends; returns the GPU's lse for further checks. */
function check(c: Case, gpu: AttentionKernels = wg()): Float32Array {
  const s = shapeOf(c);
  const { batch: B, queryHeads: H, kvHeads: G, queryLen: T, headDim: D } = s;
  const KS = s.keyStride!;
  const q = r.randn(B * T * H * D),
    k = r.randn(B * KS * G * D),
    v = r.randn(B * KS * G * D),
    dout = r.randn(B * T * H * D);
  const out = new Float32Array(q.length),
    lse = new Float32Array(B * H * T);
  ref.attentionForward(q, k, v, out, lse, s);
  const gq = up(q),
    gk = up(k),
    gv = up(v);
  const gout = wg().alloc(q.length),
    glse = wg().alloc(lse.length);
  wg().fill(gout, 7);
  gpu.attentionForward(gq, gk, gv, gout, glse, s);
  const name = JSON.stringify({ ...c, padded: c.padded !== undefined });
  const gotLse = down(glse);
  assert.ok(relErr(down(gout), out) <= F32_TOL, `out ${name}: ${relErr(down(gout), out)}`);
  assert.ok(relErr(gotLse, lse) <= F32_TOL, `lse ${name}: ${relErr(gotLse, lse)}`);

  const dq = new Float32Array(q.length),
    dk = new Float32Array(k.length),
    dv = new Float32Array(v.length);
  ref.attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, s);
  const gdq = wg().alloc(q.length),
    gdk = wg().alloc(k.length),
    gdv = wg().alloc(v.length);
  // the kernels overwrite: stale values must not survive
  for (const g of [gdq, gdk, gdv]) wg().fill(g, 7);
  gpu.attentionBackward(gq, gk, gv, gout, glse, up(dout), gdq, gdk, gdv, s);
  for (const [what, got, want] of [
    ['dq', down(gdq), dq],
    ['dk', down(gdk), dk],
    ['dv', down(gdv), dv],
  ] as const) {
    assert.ok(relErr(got, want) <= F32_TOL, `${what} ${name}: ${relErr(got, want)}`);
  }
  return gotLse;
}

test('causal self-attention, GQA 4/2, headDim 8, two query blocks', opt, () => {
  check({ heads: [4, 2], queryLen: 70, keyLen: 70, headDim: 8, causal: true });
});

test('non-causal, GQA 6/1, headDim 64, keys in a cache with room to grow', opt, () => {
  check({ heads: [6, 1], queryLen: 19, keyLen: 45, keyStride: 52, headDim: 64, causal: false });
});

test('causal with a KV cache (queryLen < keyLen < keyStride), 2/2 heads, headDim 128', opt, () => {
  check({ heads: [2, 2], queryLen: 7, keyLen: 40, keyStride: 47, headDim: 128, causal: true });
});

test('padding masks: left padding, and a batch row whose keys are all padding', opt, () => {
  const lse = check({
    heads: [4, 2],
    queryLen: 12,
    keyLen: 30,
    keyStride: 33,
    headDim: 64,
    causal: false,
    padded: (b, j) => b === 1 || j < 4,
  });
  // batch row 1 sees no key: lse −Inf (out and the gradients 0 are compared with the native ones above)
  assert.ok(lse.subarray(4 * 12).every((x) => x === -Infinity));
});

test('causal with left padding: the first queries of a row see only padding', opt, () => {
  const lse = check({
    heads: [6, 1],
    queryLen: 20,
    keyLen: 20,
    headDim: 128,
    causal: true,
    padded: (b, j) => j < (b === 0 ? 2 : 5),
  });
  for (let h = 0; h < 6; h++) {
    for (let i = 0; i < 20; i++)
      assert.equal(lse[(6 + h) * 20 + i] === -Infinity, i < 5, `batch 1 head ${h} query ${i}`);
  }
});

test('decoding: one query against a long cached key range, headDim 64 and 128', opt, () => {
  check({ heads: [6, 1], queryLen: 1, keyLen: 300, keyStride: 320, headDim: 64, causal: true });
  check({
    heads: [4, 2],
    queryLen: 1,
    keyLen: 257,
    keyStride: 260,
    headDim: 128,
    causal: true,
    padded: (_, j) => j < 3,
  });
});

test('headDim that is not a multiple of 4, and a prefill of a few queries', opt, () => {
  check({ heads: [2, 2], queryLen: 3, keyLen: 9, headDim: 6, causal: true });
  check({ heads: [4, 2], queryLen: 5, keyLen: 5, headDim: 30, causal: false });
});

test('the kernels with constant loop bounds (the default on hardware GPUs) agree too', opt, () => {
  const unrolled = attentionKernels(wg().gpu, true);
  check(
    { heads: [4, 2], queryLen: 70, keyLen: 70, headDim: 8, causal: true, padded: (b, j) => b === 1 && j < 3 },
    unrolled,
  );
  check({ heads: [6, 1], queryLen: 1, keyLen: 150, keyStride: 160, headDim: 12, causal: true }, unrolled);
});

test('headDim above 128 is refused with a clear error', opt, () => {
  const s = shapeOf({ batch: 1, heads: [1, 1], queryLen: 1, keyLen: 1, headDim: 160, causal: false });
  const x = wg().alloc(160);
  assert.throws(
    () => wg().attentionForward(x, x, x, wg().alloc(160), wg().alloc(1), s),
    /heads of up to 128 dimensions, not 160: use --device cpu/,
  );
});
