/**
 * A WebAssembly SIMD kernel for the one hot loop of dense evaluation: dot products of 4 queries × 2 documents at a
 * time, f32x4 lanes, eight accumulators. Plain JS peaks near 2 GFLOP/s per core on this loop (no vector
 * instructions, a double conversion per load); f32x4 does several times that, which is what puts 300 × 5,183 × 1536
 * under a second on two cores. The module is assembled here from named opcodes (no binary blob, no toolchain); the
 * plain-TS kernel in dense-kernel.ts computes the same thing and is the fallback and the reference in tests.
 *
 *   dots(qPtr, nq, dPtr, nd, dimBytes, outPtr, rowBytes):
 *     for q in 0..nq step 4, d in 0..nd step 2:  out[q+r][d+c] = Σ_i Q[q+r][i]·D[d+c][i]   (r < 4, c < 2)
 *   nq must be a multiple of 4, nd of 2, dimBytes of 16; out rows are rowBytes apart; all in f32.
 */

const I32 = 0x7f;
const V128 = 0x7b;

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (for i32.const). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  add: [0x6a],
  mul: [0x6c],
  geU: [0x4f],
  f32Add: [0x92],
  f32Store: (offset: number) => [0x38, 0x02, ...uleb(offset)],
  v128Load: [0xfd, ...uleb(0x00), 0x02, 0x00], // align 2^2: rows need only 4-byte alignment
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)],
  f32x4Extract: (lane: number) => [0xfd, ...uleb(0x1f), lane],
  f32x4Add: [0xfd, ...uleb(0xe4)],
  f32x4Mul: [0xfd, ...uleb(0xe6)],
};

// Parameters 0..6, then locals.
const [qPtr, nq, dPtr, nd, dimBytes, outPtr, rowBytes] = [0, 1, 2, 3, 4, 5, 6];
const [q, d, i, a0, b0, b1, o] = [7, 8, 9, 10, 11, 12, 13];
const aRow = (r: number) => [a0, 14, 15, 16][r]!; // query row pointers a0..a3
const I32_LOCALS = 10; // 7..16
const acc = (r: number, c: number) => 17 + 2 * r + c; // 17..24
const [x0, x1, y] = [25, 26, 27];
const V128_LOCALS = 11; // 17..27

function dotsBody(): number[] {
  const code: number[] = [];
  const emit = (...parts: (number | number[])[]) => {
    for (const p of parts) Array.isArray(p) ? code.push(...p) : code.push(p);
  };
  /** Horizontal sum of an f32x4 local: (l0 + l1) + (l2 + l3). */
  const hsum = (v: number) =>
    emit(
      op.get(v),
      op.f32x4Extract(0),
      op.get(v),
      op.f32x4Extract(1),
      op.f32Add,
      op.get(v),
      op.f32x4Extract(2),
      op.get(v),
      op.f32x4Extract(3),
      op.f32Add,
      op.f32Add,
    );

  emit(op.i32(0), op.set(q));
  emit(op.block, op.loop); // queries, 4 at a time
  emit(op.get(q), op.get(nq), op.geU, op.brIf(1));
  // a_r = qPtr + (q + r) * dimBytes
  emit(op.get(qPtr), op.get(q), op.get(dimBytes), op.mul, op.add, op.set(a0));
  for (let r = 1; r < 4; r++) emit(op.get(aRow(r - 1)), op.get(dimBytes), op.add, op.set(aRow(r)));
  emit(op.i32(0), op.set(d));
  emit(op.block, op.loop); // documents, 2 at a time
  emit(op.get(d), op.get(nd), op.geU, op.brIf(1));
  emit(op.get(dPtr), op.get(d), op.get(dimBytes), op.mul, op.add, op.set(b0));
  emit(op.get(b0), op.get(dimBytes), op.add, op.set(b1));
  for (let r = 0; r < 4; r++) for (let c = 0; c < 2; c++) emit(op.v128Zero, op.set(acc(r, c)));
  emit(op.i32(0), op.set(i));
  emit(op.block, op.loop); // the shared dimension, 4 floats at a time
  emit(op.get(i), op.get(dimBytes), op.geU, op.brIf(1));
  emit(op.get(b0), op.get(i), op.add, op.v128Load, op.set(x0));
  emit(op.get(b1), op.get(i), op.add, op.v128Load, op.set(x1));
  for (let r = 0; r < 4; r++) {
    emit(op.get(aRow(r)), op.get(i), op.add, op.v128Load, op.set(y));
    emit(op.get(acc(r, 0)), op.get(y), op.get(x0), op.f32x4Mul, op.f32x4Add, op.set(acc(r, 0)));
    emit(op.get(acc(r, 1)), op.get(y), op.get(x1), op.f32x4Mul, op.f32x4Add, op.set(acc(r, 1)));
  }
  emit(op.get(i), op.i32(16), op.add, op.set(i), op.br(0));
  emit(op.end, op.end);
  // o = outPtr + q * rowBytes + d * 4; row r at o + r * rowBytes
  emit(op.get(outPtr), op.get(q), op.get(rowBytes), op.mul, op.add, op.get(d), op.i32(4), op.mul, op.add, op.set(o));
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 2; c++) {
      emit(op.get(o));
      hsum(acc(r, c));
      emit(op.f32Store(4 * c));
    }
    if (r < 3) emit(op.get(o), op.get(rowBytes), op.add, op.set(o));
  }
  emit(op.get(d), op.i32(2), op.add, op.set(d), op.br(0));
  emit(op.end, op.end);
  emit(op.get(q), op.i32(4), op.add, op.set(q), op.br(0));
  emit(op.end, op.end);
  emit(op.end);
  return code;
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

function name(s: string): number[] {
  const bytes = [...Buffer.from(s, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
}

/** The module's bytes: imports env.mem (a memory), exports dots. */
export function dotKernelModuleBytes(): Uint8Array<ArrayBuffer> {
  const type = section(1, [1, 0x60, 7, ...new Array<number>(7).fill(I32), 0]);
  const imports = section(2, [1, ...name('env'), ...name('mem'), 0x02, 0x00, ...uleb(1)]);
  const funcs = section(3, [1, 0]);
  const exports = section(7, [1, ...name('dots'), 0x00, 0]);
  const body = [2, ...uleb(I32_LOCALS), I32, ...uleb(V128_LOCALS), V128, ...dotsBody()];
  const code = section(10, [1, ...uleb(body.length), ...body]);
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...type, ...imports, ...funcs, ...exports, ...code]);
}

export type DotsFn = (
  qPtr: number,
  nq: number,
  dPtr: number,
  nd: number,
  dimBytes: number,
  outPtr: number,
  rowBytes: number,
) => void;

export interface DotKernel {
  memory: WebAssembly.Memory;
  dots: DotsFn;
}

let compiled: WebAssembly.Module | null | undefined;

/** Compiles the kernel once per thread; null where the engine lacks WebAssembly SIMD. */
function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  const bytes = dotKernelModuleBytes();
  compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  return compiled;
}

/** A kernel instance over a memory of at least `bytes` bytes, or null without SIMD support. */
export function createDotKernel(bytes: number): DotKernel | null {
  const mod = module();
  if (!mod) return null;
  const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
  const instance = new WebAssembly.Instance(mod, { env: { mem: memory } });
  return { memory, dots: instance.exports['dots'] as DotsFn };
}
