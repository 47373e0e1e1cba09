/**
 * WebGPU matrix products, 16-bit weight widening and the embedding kernels (WGSL in wgsl/matmul.ts).
 *
 * gemm tiles: a 256-invocation workgroup computes a 64×64 block of C, staging 16-deep k-slices of A
 * and B in workgroup memory (2 × 16 × 65 floats, 8.3 KB), and each invocation keeps 4×4 outputs in
 * registers. Per k step an invocation then does 16 multiply-adds for 8 workgroup-memory reads, and
 * each element fetched from global memory feeds 64 of them. 64×64 rather than 128×128 keeps a model's
 * smaller products (n = 896, a few hundred rows) spread over enough workgroups to fill a large GPU's
 * ~130 multiprocessors, and 8.3 KB with 256 invocations lets several workgroups share one of them to
 * hide memory latency. 4×4 per invocation needs 16 accumulators, which every WebGPU target holds in
 * registers. Known gaps: a product with a handful of rows (decoding one token) wastes most of each
 * tile's arithmetic, and one with a long k but few outputs (k = 10⁵, m·n ≤ 64²) runs on one workgroup;
 * a skinny (row-streaming) and a split-k variant would serve those.
 *
 * 16-bit B (gemmHalf) is widened to float32 as a tile is staged, so products and sums are float32 and
 * `shader-f16` is not needed.
 */
import type { GemmArgs, GemmHalfArgs, Kernels } from '../kernels.js';
import { GpuArray } from './gpu-array.js';
import type { GpuDevice } from './gpu-device.js';
import { Params, runFlat } from './gpu-dispatch.js';
import { TILE_M, TILE_N } from './wgsl/matmul.js';
import { download, intoFresh, uploadInts } from './storage-kernels.js';

type GpuKernels = Kernels<GpuArray, GpuArray>;
export type MatmulKernels = Pick<
  GpuKernels,
  | 'gemm'
  | 'gemmHalf'
  | 'widenHalf'
  | 'halfAllFinite'
  | 'embeddingForward'
  | 'embeddingForwardHalf'
  | 'embeddingBackward'
>;

/** The most workgroups a dispatch may have along one dimension (WebGPU's default limit). */
const MAX_GROUPS = 65535;

function need(kernel: string, x: GpuArray, name: string, elements: number): void {
  if (x.length < elements) {
    throw new RangeError(`${kernel}: ${name} is indexed up to ${elements} elements but has length ${x.length}`);
  }
}

function isHalf(x: GpuArray): boolean {
  return x.dtype === 'f16' || x.dtype === 'bf16';
}

function checkIds(kernel: string, ids: Int32Array, rows: number, table: string): void {
  for (let i = 0; i < ids.length; i++) {
    if (!(ids[i] >= 0 && ids[i] < rows)) {
      throw new RangeError(`${kernel}: ids[${i}] = ${ids[i]} is outside ${table} (${rows} rows)`);
    }
  }
}

function gemmOn(
  dev: GpuDevice,
  kernel: string,
  args: GemmArgs<GpuArray> | GemmHalfArgs<GpuArray, GpuArray>,
  name: string,
): void {
  const { a, b, c, batch, m, n, k, transA, transB, strideA, strideB, strideC, accumulate } = args;
  // WebGPU refuses one buffer bound for reading and writing in a dispatch, and a product written over its
  // own input is never what a caller means: say so here rather than as a GPU validation error.
  if (c === a || c === b) throw new Error(`${name}: the output c is also an input`);
  if (batch <= 0 || m <= 0 || n <= 0 || (k <= 0 && accumulate)) return;
  const last = batch - 1;
  if (k > 0) {
    need(name, a, 'a', last * strideA + m * k);
    need(name, b, 'b', last * strideB + k * n);
  }
  need(name, c, 'c', last * strideC + m * n);
  const gx = Math.ceil(n / TILE_N),
    gy = Math.ceil(m / TILE_M);
  if (gx > MAX_GROUPS || gy > MAX_GROUPS) {
    throw new RangeError(`${name}: ${m}×${n} outputs need more than ${MAX_GROUPS} workgroups along one side`);
  }
  const dispatch = (z0: number, entries: number, perGroup: number): void => {
    const p = new Params().u32(m, n, k, transA ? 1 : 0, transB ? 1 : 0, strideA, strideB, strideC);
    p.u32(accumulate ? 1 : 0, z0, perGroup);
    dev.run(kernel, [a.id, b.id, c.id], p.buffer, [gx, gy, entries]);
  };
  if (batch === 1 || strideC >= m * n) {
    for (let z0 = 0; z0 < batch; z0 += MAX_GROUPS) dispatch(z0, Math.min(MAX_GROUPS, batch - z0), 1);
  } else if (strideC === 0) {
    // Every entry writes the one C, as on the CPU in batch order: accumulating sums all products into it
    // (each workgroup loops over the batch); overwriting leaves only the last entry's product.
    if (accumulate) dispatch(0, 1, batch);
    else dispatch(last, 1, 1);
  } else {
    // Entries whose C blocks partly overlap: one dispatch each, in order, as on the CPU.
    for (let z = 0; z < batch; z++) dispatch(z, 1, 1);
  }
}

/** Distinct ids with the positions holding each, as one u32 array for the embeddingBackward kernel. */
function groupIds(ids: Int32Array): { groups: Int32Array; distinct: number } {
  const count = ids.length;
  // (id, position) pairs as exact float64 keys (id·count + position < 2^53), sorted numerically.
  const keys = new Float64Array(count);
  for (let i = 0; i < count; i++) keys[i] = ids[i] * count + i;
  keys.sort();
  const sortedIds = new Int32Array(count),
    positions = new Int32Array(count);
  let distinct = 0;
  for (let j = 0; j < count; j++) {
    positions[j] = keys[j] % count;
    sortedIds[j] = (keys[j] - positions[j]) / count;
    if (j === 0 || sortedIds[j] !== sortedIds[j - 1]) distinct++;
  }
  // [start (distinct + 1) | row (distinct) | position (count)]
  const groups = new Int32Array(2 * distinct + 1 + count);
  groups.set(positions, 2 * distinct + 1);
  for (let j = 0, g = 0; j < count; j++) {
    if (j > 0 && sortedIds[j] === sortedIds[j - 1]) continue;
    groups[g] = j;
    groups[distinct + 1 + g] = sortedIds[j];
    g++;
  }
  groups[distinct] = count;
  return { groups, distinct };
}

export function matmulKernels(dev: GpuDevice): MatmulKernels {
  const halfKernel = (x: GpuArray, name: string): void => {
    if (!isHalf(x)) throw new TypeError(`${name}: expected a 16-bit (f16 or bf16) array, got ${x.dtype}`);
  };
  return {
    gemm(args) {
      if (isHalf(args.b)) throw new TypeError('gemm: b is 16-bit; use gemmHalf');
      gemmOn(dev, 'gemm', args, 'gemm');
    },
    gemmHalf(args) {
      halfKernel(args.b, 'gemmHalf');
      gemmOn(dev, args.b.dtype === 'bf16' ? 'gemmBf16' : 'gemmF16', args, 'gemmHalf');
    },
    widenHalf(src, dst) {
      halfKernel(src, 'widenHalf');
      if (dst.length !== src.length)
        throw new RangeError(`widenHalf: dst has ${dst.length} elements, src ${src.length}`);
      runFlat(dev, 'widenHalf', [src, dst], new Params().u32(src.length, src.dtype === 'bf16' ? 1 : 0), src.length);
    },
    halfAllFinite(x) {
      halfKernel(x, 'halfAllFinite');
      if (x.length === 0) return true;
      const flag = new GpuArray(dev, 1);
      const exponent = x.dtype === 'bf16' ? 0x7f80 : 0x7c00;
      runFlat(dev, 'halfAllFinite', [x, flag], new Params().u32(x.length, exponent), x.length);
      const bad = download(flag)[0] !== 0;
      flag.free();
      return !bad;
    },
    embeddingForward(weight, ids, out, dim) {
      if (dim === 0 || ids.length === 0) return;
      need('embeddingForward', out, 'out', ids.length * dim);
      checkIds('embeddingForward', ids, Math.floor(weight.length / dim), 'weight');
      const g = uploadInts(dev, ids);
      intoFresh(out, [weight], (o) => {
        if (o !== out) dev.copy(out.id, 0, o.id, 0, out.length * 4);
        runFlat(dev, 'embeddingForward', [weight, g, o], new Params().u32(ids.length * dim, dim), ids.length * dim);
      });
      g.free();
    },
    embeddingForwardHalf(weight, ids, out, dim) {
      halfKernel(weight, 'embeddingForwardHalf');
      if (dim === 0 || ids.length === 0) return;
      need('embeddingForwardHalf', out, 'out', ids.length * dim);
      checkIds('embeddingForwardHalf', ids, Math.floor(weight.length / dim), 'weight');
      const g = uploadInts(dev, ids);
      const p = new Params().u32(ids.length * dim, dim, weight.dtype === 'bf16' ? 1 : 0);
      runFlat(dev, 'embeddingForwardHalf', [weight, g, out], p, ids.length * dim);
      g.free();
    },
    embeddingBackward(dout, ids, dweight, dim) {
      if (dim === 0 || ids.length === 0) return;
      need('embeddingBackward', dout, 'dout', ids.length * dim);
      checkIds('embeddingBackward', ids, Math.floor(dweight.length / dim), 'dweight');
      const { groups, distinct } = groupIds(ids);
      const g = uploadInts(dev, groups);
      intoFresh(dweight, [dout], (o) => {
        if (o !== dweight) dev.copy(dweight.id, 0, o.id, 0, dweight.length * 4);
        runFlat(
          dev,
          'embeddingBackward',
          [dout, g, o],
          new Params().u32(distinct * dim, dim, distinct),
          distinct * dim,
        );
      });
      g.free();
    },
  };
}
