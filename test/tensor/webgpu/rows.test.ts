/**
 * WebGPU row-wise and element-wise model kernels (RMSNorm, L2 normalisation, RoPE, softmax, log-softmax,
 * cross-entropy, greedy picks, SiLU, SwiGLU, AdamW) against the native ones (relErr ≤ 1e-4, see
 * harness.ts), on awkward shapes and with outputs aliasing inputs where the interface allows it; sampled
 * picks against sampling.ts's host draw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../src/tensor/index.js';
import { sampleToken } from '../../../src/model/sampling.js';
import { jsKernels } from '../../../src/tensor/js-kernels.js';
import type { Kernels } from '../../../src/tensor/kernels.js';
import { decodeF64, encodeF32, runTorch } from '../../helpers/torch.js';
import { F32_TOL, down, ref, relErr, seeded, skipWithoutGpu, up, wg } from './harness.js';

const opt = { skip: skipWithoutGpu };
const r = seeded(11);

function close(got: Float32Array, want: Float32Array, what: string): void {
  const e = relErr(got, want);
  assert.ok(e <= F32_TOL, `${what}: relErr ${e}`);
}

/** Rows × length pairs: single elements, lengths below, at and above one workgroup, and Qwen's vocabulary. */
const ROW_SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [37, 256],
  [3, 1000],
  [2, 151936],
];

test('rmsnorm forward and backward, y aliasing x, dx aliasing dy, dw accumulated and null', opt, () => {
  for (const [rows, dim] of [
    [1, 1],
    [3, 7],
    // the longest row one invocation walks (SHORT_ROW), and the shortest a workgroup reduces
    [5, 64],
    [5, 65],
    [37, 256],
    [70, 1000],
  ]) {
    const x = r.randn(rows * dim, 2),
      w = r.randn(dim),
      dy = r.randn(rows * dim),
      dw0 = r.randn(dim);
    const y = new Float32Array(rows * dim),
      rstd = new Float32Array(rows);
    ref.rmsnormForward(x, w, y, rstd, rows, dim, 1e-6);
    const dx = new Float32Array(rows * dim),
      dw = Float32Array.from(dw0);
    ref.rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim);

    const gx = up(x),
      gw = up(w),
      gy = wg().alloc(rows * dim),
      grstd = wg().alloc(rows);
    wg().rmsnormForward(gx, gw, gy, grstd, rows, dim, 1e-6);
    const shape = `${rows}×${dim}`;
    close(down(gy), y, `forward y ${shape}`);
    close(down(grstd), rstd, `forward rstd ${shape}`);
    const gdy = up(dy),
      gdx = wg().alloc(rows * dim),
      gdw = up(dw0);
    wg().rmsnormBackward(gdy, gx, gw, grstd, gdx, gdw, rows, dim);
    if (dim === 1) {
      // With one column y = sign(x)·w, so dx is 0 up to eps: both sides hold only the rounding left by
      // cancelling rs·dy·w against itself, measured here against the size of that term.
      const term = Math.max(...dy.map((d, i) => Math.abs(rstd[i] * d * w[0])));
      const diff = Math.max(...down(gdx).map((g, i) => Math.abs(g - dx[i])));
      assert.ok(diff <= F32_TOL * term, `backward dx ${shape}: ${diff} beside terms of ${term}`);
    } else close(down(gdx), dx, `backward dx ${shape}`);
    close(down(gdw), dw, `backward dw ${shape}`);

    const inPlace = up(x),
      grstd2 = wg().alloc(rows);
    wg().rmsnormForward(inPlace, gw, inPlace, grstd2, rows, dim, 1e-6);
    close(down(inPlace), y, `forward in place ${shape}`);
    const dyInPlace = up(dy);
    wg().rmsnormBackward(dyInPlace, gx, gw, grstd, dyInPlace, null, rows, dim);
    if (dim > 1) close(down(dyInPlace), dx, `backward dx aliasing dy, dw null ${shape}`);
  }
});

/**
 * max|got − want| over row r against `scale` (0 only where both rows are exactly equal): per row, so a row
 * of tiny values is measured against its own size and not beside its neighbours'.
 */
function rowErr(got: Float32Array, want: Float32Array, r: number, dim: number, scale: number): number {
  let diff = 0;
  for (let i = r * dim; i < (r + 1) * dim; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
  return diff === 0 ? 0 : diff / scale;
}
const rowMax = (a: Float32Array, r: number, dim: number): number =>
  Math.max(0, ...a.subarray(r * dim, (r + 1) * dim).map(Math.abs));

test('l2normalize forward and backward: zero, tiny and huge rows, outputs aliasing inputs', opt, () => {
  for (const rows of [1, 3, 37])
    for (const dim of [1, 7, 64, 65, 256, 1000])
      for (const eps of [1e-12, 1e-30]) {
        const x = r.randn(rows * dim),
          g = r.randn(rows * dim);
        // Row 1: zeros (norm 0 < eps, dx = g / eps). Row 2: ~1e-25, whose float32 squares are 0: below eps
        // = 1e-12, above eps = 1e-30. Row 3: ~1e25, whose float32 squares are Inf.
        if (rows > 1) x.fill(0, dim, 2 * dim);
        if (rows > 2) for (let i = 2 * dim; i < 3 * dim; i++) x[i] *= 1e-25;
        if (rows > 3) for (let i = 3 * dim; i < 4 * dim; i++) x[i] *= 1e25;
        // Row 4: norm eps / 2, clamped; y is half a unit vector, so the radial part dx leaves out is not small.
        if (rows > 4) {
          const row = x.subarray(4 * dim, 5 * dim);
          const k = eps / 2 / Math.hypot(...row);
          row.forEach((v, i) => (row[i] = v * k));
        }
        const y = new Float32Array(rows * dim),
          norms = new Float32Array(rows),
          dx = new Float32Array(rows * dim);
        ref.l2normalizeForward(x, y, norms, rows, dim, eps);
        ref.l2normalizeBackward(g, y, norms, dx, rows, dim, eps);

        const gx = up(x),
          gy = wg().alloc(rows * dim),
          gn = wg().alloc(rows);
        wg().l2normalizeForward(gx, gy, gn, rows, dim, eps);
        const gdx = wg().alloc(rows * dim);
        wg().l2normalizeBackward(up(g), gy, gn, gdx, rows, dim, eps);
        // The backward pass again from the native y and norms, and into g: only the backward kernel measured.
        const gdx2 = up(g);
        wg().l2normalizeBackward(gdx2, up(y), up(norms), gdx2, rows, dim, eps);
        const inPlace = up(x);
        wg().l2normalizeForward(inPlace, inPlace, wg().alloc(rows), rows, dim, eps);

        const [ny, nn, ndx, ndx2, nip] = [down(gy), down(gn), down(gdx), down(gdx2), down(inPlace)];
        for (let row = 0; row < rows; row++) {
          const what = `${rows}×${dim} eps=${eps} row ${row}`;
          const ne = Math.abs(nn[row] - norms[row]) / norms[row];
          assert.ok(ne <= F32_TOL, `${what}: norm ${nn[row]} against ${norms[row]}`);
          const ys = rowMax(y, row, dim);
          assert.ok(rowErr(ny, y, row, dim, ys) <= F32_TOL, `${what}: y relErr ${rowErr(ny, y, row, dim, ys)}`);
          assert.ok(rowErr(nip, y, row, dim, ys) <= F32_TOL, `${what}: y in place`);
          // dx's terms are g / norm before the radial part cancels (all of it, with one column): measured
          // against their size.
          const ds = Math.max(rowMax(dx, row, dim), rowMax(g, row, dim) / norms[row]);
          assert.ok(rowErr(ndx, dx, row, dim, ds) <= F32_TOL, `${what}: dx relErr ${rowErr(ndx, dx, row, dim, ds)}`);
          assert.ok(rowErr(ndx2, dx, row, dim, ds) <= F32_TOL, `${what}: dx aliasing g, from the native y`);
        }
        assert.deepEqual(down(gx), x, `${rows}×${dim}: x untouched`);
      }
  // Rows of length 0 have norm 0, clamped to eps.
  const gn = up(r.randn(2));
  wg().l2normalizeForward(wg().alloc(0), wg().alloc(0), gn, 2, 0, 1e-12);
  assert.deepEqual(down(gn), Float32Array.of(1e-12, 1e-12));
});

test('rope forward and inverse, into another array and in place, against native', opt, () => {
  for (const [rows, heads, headDim, maxPos] of [
    [1, 1, 2, 1],
    [3, 2, 8, 5],
    [37, 3, 64, 40],
  ]) {
    const half = headDim / 2;
    const x = r.randn(rows * heads * headDim),
      cos = r.randn(maxPos * half),
      sin = r.randn(maxPos * half),
      pos = r.ints(rows, maxPos);
    const gcos = up(cos),
      gsin = up(sin);
    for (const inverse of [false, true]) {
      const want = new Float32Array(x.length);
      ref.rope(x, want, cos, sin, pos, rows, heads, headDim, inverse);
      const what = `${rows}×${heads}×${headDim} inverse=${inverse}`;
      const gx = up(x),
        out = wg().alloc(x.length);
      wg().rope(gx, out, gcos, gsin, pos, rows, heads, headDim, inverse);
      close(down(out), want, what);
      assert.deepEqual(down(gx), x, `${what}: x untouched`);
      wg().rope(gx, gx, gcos, gsin, pos, rows, heads, headDim, inverse);
      close(down(gx), want, `${what} in place`);
    }
  }
  assert.throws(
    () => wg().rope(up(r.randn(4)), wg().alloc(4), up(r.randn(2)), up(r.randn(2)), Int32Array.of(1), 1, 1, 4, false),
    /outside the cos\/sin tables/,
  );
});

test('softmax and log-softmax forward and backward, up to a 151,936-long row, in place too', opt, () => {
  for (const [rows, n] of ROW_SHAPES) {
    const x = r.randn(rows * n, 3),
      dy = r.randn(rows * n);
    if (n >= 7) x[1] = x[n + 2 < x.length ? n + 2 : 2] = -Infinity; // masked entries
    for (const [fwd, bwd] of [
      ['softmaxForward', 'softmaxBackward'],
      ['logSoftmaxForward', 'logSoftmaxBackward'],
    ] as const) {
      const what = `${fwd} ${rows}×${n}`;
      const y = new Float32Array(x.length),
        dx = new Float32Array(x.length);
      ref[fwd](x, y, rows, n);
      ref[bwd](y, dy, dx, rows, n);
      const gx = up(x),
        gy = wg().alloc(x.length);
      wg()[fwd](gx, gy, rows, n);
      close(down(gy), y, what);
      const gdx = wg().alloc(x.length);
      wg()[bwd](gy, up(dy), gdx, rows, n);
      // The backward pass from the native y, so only the backward kernel is measured.
      const gdx2 = up(dy);
      wg()[bwd](up(y), gdx2, gdx2, rows, n);
      close(down(gdx2), dx, `${bwd} ${rows}×${n}, dx aliasing dy`);
      close(down(gdx), dx, `${bwd} ${rows}×${n} from the GPU's y`);
      wg()[fwd](gx, gx, rows, n);
      close(down(gx), y, `${what} in place`);
    }
  }
});

test('more rows than one grid dimension holds (65,535 workgroups) fold into a second', opt, () => {
  const rows = 65537,
    n = 2;
  const x = r.randn(rows * n),
    y = new Float32Array(x.length);
  ref.logSoftmaxForward(x, y, rows, n);
  const gy = wg().alloc(x.length);
  wg().logSoftmaxForward(up(x), gy, rows, n);
  close(down(gy), y, `${rows}×${n}`);
});

test('cross-entropy forward and backward with ignored rows, per-row scale, up to a 151,936 vocabulary', opt, () => {
  const ignore = -100;
  for (const [rows, vocab] of [...ROW_SHAPES, [37, 1000]]) {
    const logits = r.randn(rows * vocab, 4),
      targets = r.ints(rows, vocab),
      scale = r.randn(rows);
    for (let i = 1; i < rows; i += 3) targets[i] = ignore;
    const loss = new Float32Array(rows),
      lse = new Float32Array(rows),
      dl = new Float32Array(rows * vocab);
    ref.crossEntropyForward(logits, targets, loss, lse, rows, vocab, ignore);
    ref.crossEntropyBackward(logits, targets, lse, scale, dl, rows, vocab, ignore);
    const what = `${rows}×${vocab}`;
    const gl = up(logits),
      gloss = up(r.randn(rows)),
      glse = up(r.randn(rows));
    wg().crossEntropyForward(gl, targets, gloss, glse, rows, vocab, ignore);
    close(down(gloss), loss, `forward loss ${what}`);
    close(down(glse), lse, `forward lse ${what}`);
    const gdl = up(r.randn(rows * vocab));
    wg().crossEntropyBackward(gl, targets, glse, up(scale), gdl, rows, vocab, ignore);
    close(down(gdl), dl, `backward ${what}`);
    wg().crossEntropyBackward(gl, targets, glse, up(scale), gl, rows, vocab, ignore);
    close(down(gl), dl, `backward ${what}, dlogits aliasing logits`);
  }
  assert.throws(
    () => wg().crossEntropyForward(up(r.randn(4)), Int32Array.of(4), wg().alloc(1), wg().alloc(1), 1, 4, -100),
    /outside the vocabulary/,
  );
});

test('silu and swiglu forward and backward, outputs aliasing inputs', opt, () => {
  for (const n of [1, 7, 256, 1000]) {
    const x = r.randn(n, 4),
      u = r.randn(n),
      dy = r.randn(n);
    if (n >= 7) {
      x[0] = -100;
      x[1] = 100;
    }
    const y = new Float32Array(n),
      dx = new Float32Array(n);
    ref.siluForward(x, y);
    ref.siluBackward(x, dy, dx);
    const gy = wg().alloc(n);
    wg().siluForward(up(x), gy);
    close(down(gy), y, `silu ${n}`);
    const gx = up(x);
    wg().siluForward(gx, gx);
    close(down(gx), y, `silu ${n} in place`);
    const gdy = up(dy);
    wg().siluBackward(up(x), gdy, gdy);
    close(down(gdy), dx, `silu backward ${n}, dx aliasing dy`);

    const sy = new Float32Array(n),
      dg = new Float32Array(n),
      du = new Float32Array(n);
    ref.swigluForward(x, u, sy);
    ref.swigluBackward(x, u, dy, dg, du);
    const gu = up(u);
    wg().swigluForward(up(x), gu, gu);
    close(down(gu), sy, `swiglu ${n}, y aliasing up`);
    const gg = up(x),
      gu2 = up(u);
    wg().swigluBackward(gg, gu2, up(dy), gg, gu2);
    close(down(gg), dg, `swiglu backward dgate ${n}, aliasing gate`);
    close(down(gu2), du, `swiglu backward dup ${n}, aliasing up`);
  }
});

/** Equal where `want` is not finite (NaN to NaN, ±Inf to itself), within F32_TOL of max|want| elsewhere. */
function agrees(got: Float32Array, want: Float64Array, what: string): void {
  const scale = want.reduce((m, v) => (Number.isFinite(v) ? Math.max(m, Math.abs(v)) : m), 1e-6);
  want.forEach((w, i) => {
    const ok = Number.isFinite(w) ? Math.abs(got[i] - w) <= F32_TOL * scale : Object.is(got[i], w);
    assert.ok(ok, `${what}[${i}]: ${got[i]}, PyTorch ${w}`);
  });
}

/**
 * silu and swiglu of `x` (swiglu's up `u`), forward and backward, on every backend against PyTorch's values
 * (computed in float64, or in float32 with `float32`), compared by `agree`.
 */
function siluAgainstTorch(
  x: Float32Array,
  u: Float32Array,
  agree: (got: Float32Array, want: Float64Array, what: string) => void,
  float32 = false,
): void {
  const n = x.length;
  const ones = new Float32Array(n).fill(1);
  const input = (data: Float32Array) => ({ shape: [n], data: encodeF32(data), grad: true });
  const torch = runTorch<{ results: { out: string; grads: string[] }[] }>('ops.py', {
    cases: [
      { op: 'silu', R: encodeF32(ones), inputs: [input(x)] },
      { op: 'swiglu', R: encodeF32(ones), inputs: [input(x), input(u)] },
    ],
    float32,
  }).results.map((r) => ({ out: decodeF64(r.out), grads: r.grads.map(decodeF64) }));
  /** Backend `k` against PyTorch: host inputs uploaded, fresh outputs read back. */
  const check = <B>(
    name: string,
    k: Kernels<B, unknown>,
    upload: (a: Float32Array) => B,
    fresh: () => B,
    read: (b: B) => Float32Array,
  ): void => {
    const [y, dx, sy, dg, du] = [fresh(), fresh(), fresh(), fresh(), fresh()];
    k.siluForward(upload(x), y);
    agree(read(y), torch[0].out, `${name} silu`);
    k.siluBackward(upload(x), upload(ones), dx);
    agree(read(dx), torch[0].grads[0], `${name} silu backward`);
    k.swigluForward(upload(x), upload(u), sy);
    agree(read(sy), torch[1].out, `${name} swiglu`);
    k.swigluBackward(upload(x), upload(u), upload(ones), dg, du);
    agree(read(dg), torch[1].grads[0], `${name} swiglu backward dgate`);
    agree(read(du), torch[1].grads[1], `${name} swiglu backward dup`);
  };
  const copy = (a: Float32Array): Float32Array => Float32Array.from(a);
  check('js', jsKernels, copy, () => new Float32Array(n), copy);
  check('native', ref, copy, () => new Float32Array(n), copy);
  check('webgpu', wg(), up, () => wg().alloc(n), down);
}

test('silu and swiglu of ±Inf and NaN: every backend gives the values of PyTorch, forward and backward', opt, () => {
  siluAgainstTorch(
    Float32Array.of(-Infinity, Infinity, NaN, -100, 100, 0, -1.5, 2),
    Float32Array.of(2, -3, 1, 0.5, 0.5, 1, -1, 4),
    agrees,
  );
});

test("silu and swiglu where exp(−x) overflows f32: every backend gives PyTorch's signed zeros exactly", opt, () => {
  // PyTorch's float32 exp(−x) is Inf past 88.7228, so sigmoid is 0 and silu −0 rather than about −3e-37
  const identical = (got: Float32Array, want: Float64Array, what: string): void =>
    want.forEach((w, i) => assert.ok(Object.is(got[i], w), `${what}[${i}]: ${got[i]}, PyTorch ${w}`));
  siluAgainstTorch(
    Float32Array.of(-88.73, -89, -100, -103, -1e4, -3e38),
    Float32Array.of(2, -3, 0.5, 1, -1, 4),
    identical,
    true,
  );
});

test('adamw: several steps in place match native', opt, () => {
  for (const n of [1, 7, 1000]) {
    const param = r.randn(n),
      m = new Float32Array(n),
      v = new Float32Array(n);
    const gp = up(param),
      gm = up(m),
      gv = up(v);
    const param0 = Float32Array.from(param);
    const [lr, b1, b2, eps, wd] = [1e-2, 0.9, 0.999, 1e-8, 0.1];
    for (let step = 1; step <= 5; step++) {
      const grad = r.randn(n, 0.1 * step);
      const bc1 = 1 - b1 ** step,
        bc2 = 1 - b2 ** step;
      ref.adamw(param, grad, m, v, lr, b1, b2, eps, wd, bc1, bc2);
      wg().adamw(gp, up(grad), gm, gv, lr, b1, b2, eps, wd, bc1, bc2);
    }
    close(down(gp), param, `param ${n}`);
    // The updates themselves, which are small beside the parameters.
    const delta = (p: Float32Array): Float32Array => p.map((x, i) => x - param0[i]);
    close(delta(down(gp)), delta(param), `param update ${n}`);
    close(down(gm), m, `m ${n}`);
    close(down(gv), v, `v ${n}`);
  }
});

test('adamw steps on gradients of 1e20 (v/bc2 past float32 at the first step) as native', opt, () => {
  const n = 64,
    param = r.randn(n),
    grad = r.randn(n, 1e20),
    m = new Float32Array(n),
    v = new Float32Array(n);
  const gp = up(param),
    gm = up(m),
    gv = up(v);
  ref.adamw(param, grad, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001);
  wg().adamw(gp, up(grad), gm, gv, 1e-2, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.001);
  close(down(gp), param, 'param');
  close(down(gv), v, 'v');
});

test(
  'greedyPick: the first largest logit (NaN never, 0 for a row with nothing above −Inf) and its log-probability',
  opt,
  () => {
    for (const [rows, vocab] of ROW_SHAPES) {
      const x = r.randn(rows * vocab, 3);
      if (vocab >= 1000) {
        // row 0: the largest value three times, twice in one invocation's stride (700, 956: it keeps its first)
        // and once in another invocation's (vocab − 1): the lowest index wins
        x[700] = 50;
        x[956] = 50;
        x[vocab - 1] = 50;
        // row 1: a NaN, never chosen (its log-probability is NaN, as on the host); row 2: nothing above −Inf
        x[vocab + 5] = NaN;
        if (rows > 2) x.fill(-Infinity, 2 * vocab, 3 * vocab);
      }
      const lse = new Float32Array(rows),
        loss = new Float32Array(rows);
      ref.crossEntropyForward(x, new Int32Array(rows), loss, lse, rows, vocab, -100);
      const picks = wg().alloc(2 * rows);
      wg().greedyPick!(up(x), picks, rows, vocab);
      const got = down(picks);
      for (let row = 0; row < rows; row++) {
        const o = row * vocab;
        let best = 0,
          bv = -Infinity;
        for (let j = 0; j < vocab; j++) if (x[o + j] > bv) [bv, best] = [x[o + j], j];
        assert.equal(got[2 * row], best, `${rows}×${vocab} row ${row}: index`);
        const want = x[o + best] - lse[row];
        if (Number.isNaN(want)) {
          assert.ok(Number.isNaN(got[2 * row + 1]), `${rows}×${vocab} row ${row}: NaN log-probability`);
          continue;
        }
        const tol = F32_TOL * Math.max(1, Math.abs(want));
        assert.ok(Math.abs(got[2 * row + 1] - want) <= tol, `row ${row}: ${got[2 * row + 1]} vs ${want}`);
      }
      if (vocab >= 1000) assert.equal(got[0], 700, 'the tie goes to the lowest index');
    }
  },
);

/** The host's running probability up to and including token `tok` of a row, in double, as sampling.ts. */
function hostMassThrough(row: Float32Array, t: number, tok: number): { through: number; total: number } {
  const lse = new Float32Array(1);
  ref.crossEntropyForward(
    row.map((v) => v / t),
    Int32Array.of(0),
    new Float32Array(1),
    lse,
    1,
    row.length,
    -100,
  );
  let through = 0,
    total = 0;
  for (let i = 0; i < row.length; i++) {
    const p = Math.exp(row[i] / t - lse[0]);
    total += p;
    if (i <= tok) through += p;
  }
  return { through, total };
}

test(
  'samplePick draws the token sampling.ts draws from the same uniform, with its log-probability; ' +
    'masked (−Inf) and NaN logits are never drawn, a row with nothing finite gives 0',
  opt,
  () => {
    let compared = 0,
      boundary = 0;
    const shapes: [number, number][] = [...ROW_SHAPES, [64, 16384]];
    for (const [rows, vocab] of shapes) {
      for (const t of [0.7, 1, 1.5]) {
        const x = r.randn(rows * vocab, 3);
        const special = vocab >= 1000 && rows >= 3;
        if (special) {
          x.fill(-Infinity, 0, 600); // row 0: its first 600 tokens masked; a draw of 0 takes token 600
          x[vocab + 3] = NaN; // row 1: one NaN, probability 0 on the device
          x.fill(-Infinity, 2 * vocab, 3 * vocab); // row 2: nothing finite
        }
        const hostRng = new Rng(rows * 7 + vocab),
          draws = Float32Array.from({ length: rows }, () => hostRng.next());
        if (special) draws[0] = 0;
        const picks = wg().alloc(2 * rows);
        wg().samplePick!(up(x), draws, picks, rows, vocab, t);
        const got = down(picks);
        const what = (row: number): string => `${rows}×${vocab} t=${t} row ${row}`;
        for (let row = 0; row < rows; row++) {
          const tok = got[2 * row],
            lp = got[2 * row + 1];
          const o = row * vocab,
            logits = x.subarray(o, o + vocab);
          if (special && row === 2) {
            assert.equal(tok, 0, what(row));
            assert.ok(Number.isNaN(lp), what(row));
            continue;
          }
          assert.ok(Number.isInteger(tok) && tok >= 0 && tok < vocab && Number.isFinite(logits[tok]), what(row));
          if (special && row === 0) assert.equal(tok, 600, `${what(row)}: a draw of 0 takes the first possible token`);
          // the host's draw takes the same uniform from a stream that yields it
          const want = sampleToken(logits, 0, vocab, { temperature: t }, { next: () => draws[row] } as unknown as Rng);
          compared++;
          if (want.token !== tok) {
            // allowed only where the draw is within float32 rounding of the boundary between the two tokens
            const { through, total } = hostMassThrough(logits, t, Math.min(tok, want.token));
            assert.ok(Math.abs(through - draws[row] * total) <= 1e-5, `${what(row)}: ${tok} instead of ${want.token}`);
            boundary++;
            continue;
          }
          assert.ok(Math.abs(lp - want.logprob) <= F32_TOL * Math.max(1, Math.abs(want.logprob)), what(row));
        }
      }
    }
    assert.ok(boundary <= 1, `${boundary} of ${compared} draws differ from the host's`);
  },
);

test(
  'rmsnorm of rows whose squares pass float32 (|x| ≈ 1e20) normalises them as native, forward and backward',
  opt,
  () => {
    // rows a workgroup reduces, and rows one invocation walks (SHORT_ROW)
    for (const dim of [300, 40]) {
      const rows = 3;
      // a row near 1e20, one near 1e30 beside a row of ordinary values
      const x = Float32Array.from(r.randn(rows * dim), (v, i) => v * [1e20, 1, 1e30][Math.floor(i / dim)]);
      const w = r.randn(dim),
        dy = r.randn(rows * dim),
        dw0 = r.randn(dim);
      const y = new Float32Array(rows * dim),
        rstd = new Float32Array(rows),
        dx = new Float32Array(rows * dim),
        dw = Float32Array.from(dw0);
      ref.rmsnormForward(x, w, y, rstd, rows, dim, 1e-6);
      ref.rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim);
      const gy = wg().alloc(rows * dim),
        grstd = wg().alloc(rows),
        gdx = wg().alloc(rows * dim),
        gdw = up(dw0);
      wg().rmsnormForward(up(x), up(w), gy, grstd, rows, dim, 1e-6);
      wg().rmsnormBackward(up(dy), up(x), up(w), grstd, gdx, gdw, rows, dim);
      close(down(gy), y, `y, dim ${dim}`);
      close(down(grstd), rstd, `rstd, dim ${dim}`);
      // each row's gradient on its own scale: relErr would take those of about rs ≈ 1e-20 and 1e-30 as zeros
      const got = down(gdx);
      for (let row = 0; row < rows; row++) {
        const at = (a: Float32Array): Float32Array => a.slice(row * dim, (row + 1) * dim).map((v) => v / rstd[row]);
        close(at(got), at(dx), `dx of row ${row}, dim ${dim}`);
      }
      close(down(gdw), dw, `dw, dim ${dim}`);
    }
  },
);
