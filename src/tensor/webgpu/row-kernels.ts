/**
 * WebGPU row-wise and element-wise model kernels: RMSNorm, L2 normalisation, rotary embedding, softmax and
 * log-softmax, cross-entropy, SiLU, SwiGLU and AdamW (WGSL in wgsl/rows.ts). Host-side index arrays
 * (positions, targets) are checked here as the native addon checks them, since an index outside a GPU buffer would
 * read garbage instead of failing, then uploaded for the one dispatch.
 */
import type { Kernels } from '../kernels.js';
import { GpuArray } from './gpu-array.js';
import type { GpuDevice } from './gpu-device.js';
import { Params, runFlat, runRows } from './gpu-dispatch.js';
import { intoFresh, uploadHost } from './storage-kernels.js';

type GpuKernels = Kernels<GpuArray, GpuArray>;
export type RowKernels = Pick<
  GpuKernels,
  | 'rmsnormForward'
  | 'rmsnormBackward'
  | 'l2normalizeForward'
  | 'l2normalizeBackward'
  | 'rope'
  | 'softmaxForward'
  | 'softmaxBackward'
  | 'logSoftmaxForward'
  | 'logSoftmaxBackward'
  | 'crossEntropyForward'
  | 'crossEntropyBackward'
  | 'greedyPick'
  | 'samplePick'
  | 'siluForward'
  | 'siluBackward'
  | 'swigluForward'
  | 'swigluBackward'
  | 'adamw'
>;

/**
 * Rows summed per invocation in the first pass of RMSNorm's ∂L/∂w: enough parallel invocations for
 * thousands of rows, few enough partials for the second pass to add quickly.
 */
const DW_ROWS_PER_CHUNK = 32;

/** The longest row a norm kernel walks in one invocation (its Short variant) rather than a workgroup's. */
const SHORT_ROW = 64;

function need(kernel: string, name: string, a: GpuArray, n: number): void {
  if (a.length < n) throw new Error(`${kernel}: ${name} holds ${a.length} values, ${n} are needed`);
}

function checkTargets(kernel: string, targets: Int32Array, rows: number, vocab: number, ignore: number): void {
  if (targets.length < rows) throw new Error(`${kernel}: targets holds ${targets.length} values, ${rows} are needed`);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t !== ignore && (t < 0 || t >= vocab)) {
      throw new Error(
        `${kernel}: targets[${r}] = ${t} is outside the vocabulary [0, ${vocab}) and is not ignoreIndex (${ignore})`,
      );
    }
  }
}

/**
 * The largest float32 ≤ v: for every float32 f, f > v exactly when f > floatBelow(v), so the GPU compares in
 * float32 what the CPU backends compare against v in double.
 */
function floatBelow(v: number): number {
  const f = Math.fround(v);
  if (!(f > v)) return f;
  const bits = new Float32Array([f]),
    word = new Int32Array(bits.buffer);
  // One step towards −Inf: the magnitude shrinks for a positive value and grows for a negative one.
  word[0] += f > 0 ? -1 : 1;
  return bits[0];
}

/** Two outputs, each computed away from every input (and from each other's stand-in). */
function intoFresh2(a: GpuArray, b: GpuArray, inputs: GpuArray[], f: (a: GpuArray, b: GpuArray) => void): void {
  intoFresh(a, inputs, (fa) => intoFresh(b, [...inputs, fa], (fb) => f(fa, fb)));
}

export function rowKernels(dev: GpuDevice): RowKernels {
  /** A norm kernel over rows of length n: an invocation per short row (its row count appended to `p`). */
  const norm = (kernel: string, arrays: GpuArray[], p: Params, rows: number, n: number): void => {
    if (n <= SHORT_ROW) runFlat(dev, `${kernel}Short`, arrays, p.u32(rows), rows);
    else runRows(dev, kernel, arrays, p, rows);
  };
  /** Row-wise (x, y) and (y, dy, dx) kernels over rows of length n. */
  const rows2 = (kernel: string, x: GpuArray, y: GpuArray, rows: number, n: number): void => {
    need(kernel, 'x', x, rows * n);
    need(kernel, 'y', y, rows * n);
    if (rows === 0 || n === 0) return;
    intoFresh(y, [x], (o) => runRows(dev, kernel, [x, o], new Params().u32(n), rows));
  };
  const rows3 = (kernel: string, y: GpuArray, dy: GpuArray, dx: GpuArray, rows: number, n: number): void => {
    need(kernel, 'y', y, rows * n);
    need(kernel, 'dy', dy, rows * n);
    need(kernel, 'dx', dx, rows * n);
    if (rows === 0 || n === 0) return;
    intoFresh(dx, [y, dy], (o) => runRows(dev, kernel, [y, dy, o], new Params().u32(n), rows));
  };

  return {
    rmsnormForward(x, w, y, rstd, rows, dim, eps) {
      need('rmsnormForward', 'x', x, rows * dim);
      need('rmsnormForward', 'y', y, rows * dim);
      need('rmsnormForward', 'w', w, dim);
      need('rmsnormForward', 'rstd', rstd, rows);
      if (rows === 0 || dim === 0) return;
      intoFresh2(y, rstd, [x, w], (fy, fr) =>
        norm('rmsnormForward', [x, w, fy, fr], new Params().u32(dim).f32(eps), rows, dim),
      );
    },

    rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim) {
      const k = 'rmsnormBackward';
      need(k, 'dy', dy, rows * dim);
      need(k, 'x', x, rows * dim);
      need(k, 'dx', dx, rows * dim);
      need(k, 'w', w, dim);
      need(k, 'rstd', rstd, rows);
      if (dw) need(k, 'dw', dw, dim);
      if (rows === 0 || dim === 0) return;
      // ∂L/∂w first: dx may overwrite dy or x.
      if (dw) {
        const chunks = Math.ceil(rows / DW_ROWS_PER_CHUNK);
        const part = new GpuArray(dev, chunks * dim);
        const p = new Params().u32(chunks * dim, dim, rows, DW_ROWS_PER_CHUNK);
        runFlat(dev, 'rmsnormDwPartial', [dy, x, rstd, part], p, chunks * dim);
        runFlat(dev, 'columnSumAdd', [part, dw], new Params().u32(dim, chunks), dim);
        part.free();
      }
      intoFresh(dx, [dy, x, w, rstd], (o) =>
        norm('rmsnormBackward', [dy, x, w, rstd, o], new Params().u32(dim), rows, dim),
      );
    },

    l2normalizeForward(x, y, norms, rows, dim, eps) {
      const k = 'l2normalizeForward';
      need(k, 'x', x, rows * dim);
      need(k, 'y', y, rows * dim);
      need(k, 'norms', norms, rows);
      if (rows === 0) return;
      if (dim === 0) {
        // Empty rows have norm 0, clamped to eps.
        runFlat(dev, 'fill', [norms], new Params().u32(rows).f32(eps), rows);
        return;
      }
      intoFresh2(y, norms, [x], (fy, fn) => norm(k, [x, fy, fn], new Params().u32(dim).f32(eps), rows, dim));
    },

    l2normalizeBackward(g, y, norms, dx, rows, dim, eps) {
      const k = 'l2normalizeBackward';
      need(k, 'g', g, rows * dim);
      need(k, 'y', y, rows * dim);
      need(k, 'dx', dx, rows * dim);
      need(k, 'norms', norms, rows);
      if (rows === 0 || dim === 0) return;
      intoFresh(dx, [g, y, norms], (o) =>
        norm(k, [g, y, norms, o], new Params().u32(dim).f32(floatBelow(eps)), rows, dim),
      );
    },

    rope(x, out, cos, sin, positions, rows, heads, headDim, inverse) {
      if (headDim % 2 !== 0) throw new Error(`rope: headDim must be even, got ${headDim}`);
      const n = rows * heads * headDim,
        half = headDim / 2;
      need('rope', 'x', x, n);
      need('rope', 'out', out, n);
      if (positions.length < rows) throw new Error(`rope: positions holds ${positions.length} values, ${rows} needed`);
      if (n === 0) return;
      const maxPos = Math.floor(Math.min(cos.length, sin.length) / half);
      for (let r = 0; r < rows; r++) {
        if (positions[r] < 0 || positions[r] >= maxPos) {
          throw new Error(
            `rope: positions[${r}] = ${positions[r]} is outside the cos/sin tables (${maxPos} positions)`,
          );
        }
      }
      const pos = uploadHost(dev, positions.subarray(0, rows));
      const params = (): Params => new Params().u32(rows * heads * half, heads, half).f32(inverse ? -1 : 1);
      if (out === x) {
        runFlat(dev, 'ropeInPlace', [x, cos, sin, pos], params(), rows * heads * half);
      } else {
        intoFresh(out, [cos, sin], (o) => runFlat(dev, 'rope', [x, o, cos, sin, pos], params(), rows * heads * half));
      }
      pos.free();
    },

    softmaxForward: (x, y, rows, n) => rows2('softmaxForward', x, y, rows, n),
    softmaxBackward: (y, dy, dx, rows, n) => rows3('softmaxBackward', y, dy, dx, rows, n),
    logSoftmaxForward: (x, y, rows, n) => rows2('logSoftmaxForward', x, y, rows, n),
    logSoftmaxBackward: (y, dy, dx, rows, n) => rows3('logSoftmaxBackward', y, dy, dx, rows, n),

    crossEntropyForward(logits, targets, loss, lse, rows, vocab, ignoreIndex) {
      const k = 'crossEntropyForward';
      need(k, 'logits', logits, rows * vocab);
      need(k, 'loss', loss, rows);
      need(k, 'lse', lse, rows);
      checkTargets(k, targets, rows, vocab, ignoreIndex);
      if (rows === 0) return;
      if (vocab === 0) {
        // Every row is ignored (checkTargets allows nothing else): both outputs are 0.
        for (const o of [loss, lse]) runFlat(dev, 'fill', [o], new Params().u32(rows).f32(0), rows);
        return;
      }
      const t = uploadHost(dev, targets.subarray(0, rows));
      intoFresh2(loss, lse, [logits], (fl, fs) =>
        runRows(dev, k, [logits, t, fl, fs], new Params().u32(vocab).i32(ignoreIndex), rows),
      );
      t.free();
    },

    crossEntropyBackward(logits, targets, lse, scale, dlogits, rows, vocab, ignoreIndex) {
      const k = 'crossEntropyBackward';
      need(k, 'logits', logits, rows * vocab);
      need(k, 'dlogits', dlogits, rows * vocab);
      need(k, 'lse', lse, rows);
      need(k, 'scale', scale, rows);
      checkTargets(k, targets, rows, vocab, ignoreIndex);
      const n = rows * vocab;
      if (n === 0) return;
      const t = uploadHost(dev, targets.subarray(0, rows));
      intoFresh(dlogits, [logits, lse, scale], (o) =>
        runFlat(dev, k, [logits, t, lse, scale, o], new Params().u32(n, vocab).i32(ignoreIndex), n),
      );
      t.free();
    },

    greedyPick(logits, picks, rows, vocab) {
      const k = 'greedyPick';
      need(k, 'logits', logits, rows * vocab);
      need(k, 'picks', picks, 2 * rows);
      // the index travels as a float32, exact below 2^24
      if (vocab > 2 ** 24) throw new Error(`${k}: a vocabulary of ${vocab} is more than 2^24 tokens`);
      if (rows === 0 || vocab === 0) return;
      intoFresh(picks, [logits], (o) => runRows(dev, k, [logits, o], new Params().u32(vocab).f32(-Infinity), rows));
    },

    samplePick(logits, draws, picks, rows, vocab, temperature) {
      const k = 'samplePick';
      need(k, 'logits', logits, rows * vocab);
      need(k, 'picks', picks, 2 * rows);
      if (draws.length < rows) throw new Error(`${k}: draws holds ${draws.length} values, ${rows} are needed`);
      if (!(temperature > 0 && Number.isFinite(temperature))) {
        throw new Error(`${k}: the temperature must be a positive number, not ${temperature}`);
      }
      if (vocab > 2 ** 24) throw new Error(`${k}: a vocabulary of ${vocab} is more than 2^24 tokens`);
      if (rows === 0 || vocab === 0) return;
      const u = uploadHost(dev, draws.subarray(0, rows));
      intoFresh(picks, [logits], (o) =>
        runRows(dev, k, [logits, u, o], new Params().u32(vocab).f32(temperature, -Infinity, NaN), rows),
      );
      u.free();
    },

    siluForward(x, y) {
      need('siluForward', 'y', y, x.length);
      intoFresh(y, [x], (o) => runFlat(dev, 'siluForward', [x, o], new Params().u32(x.length), x.length));
    },
    siluBackward(x, dy, dx) {
      need('siluBackward', 'dy', dy, x.length);
      need('siluBackward', 'dx', dx, x.length);
      intoFresh(dx, [x, dy], (o) => runFlat(dev, 'siluBackward', [x, dy, o], new Params().u32(x.length), x.length));
    },
    swigluForward(gate, up, y) {
      const n = gate.length;
      need('swigluForward', 'up', up, n);
      need('swigluForward', 'y', y, n);
      intoFresh(y, [gate, up], (o) => runFlat(dev, 'swigluForward', [gate, up, o], new Params().u32(n), n));
    },
    swigluBackward(gate, up, dy, dgate, dup) {
      const n = gate.length;
      need('swigluBackward', 'up', up, n);
      need('swigluBackward', 'dy', dy, n);
      need('swigluBackward', 'dgate', dgate, n);
      need('swigluBackward', 'dup', dup, n);
      intoFresh2(dgate, dup, [gate, up, dy], (fg, fu) =>
        runFlat(dev, 'swigluBackward', [gate, up, dy, fg, fu], new Params().u32(n), n),
      );
    },

    adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2) {
      const n = param.length;
      need('adamw', 'grad', grad, n);
      need('adamw', 'm', m, n);
      need('adamw', 'v', v, n);
      if (n === 0) return;
      // The constants are formed in double, as native/optim.c forms them, and rounded once. √v·√(1/bc2) rather
      // than √(v/bc2): v/bc2 passes float32's range (1000·v at the first step) where native's double does not.
      const p = new Params()
        .u32(n)
        .f32(lr, beta1, beta2, eps, 1 - lr * weightDecay, 1 - beta1, 1 - beta2, 1 / bc1, Math.sqrt(1 / bc2));
      const g = [param, m, v].includes(grad) ? new GpuArray(dev, n) : grad;
      if (g !== grad) dev.copy(grad.id, 0, g.id, 0, n * 4);
      runFlat(dev, 'adamw', [param, g, m, v], p, n);
      if (g !== grad) g.free();
    },
  };
}
