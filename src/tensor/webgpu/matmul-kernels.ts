/**
 * WebGPU matrix products, 16-bit weight widening and the embedding kernels (WGSL in wgsl/matmul.ts).
 *
 * gemm tiles: a 256-invocation workgroup computes a 64×64 block of C, staging 16-deep k-slices of A
 * and B in workgroup memory (2 × 16 × 68 floats, 8.7 KB), and each invocation keeps 4×4 outputs in
 * registers. Per k step an invocation then does 16 multiply-adds for 2 vec4 reads of workgroup memory,
 * and each element fetched from global memory feeds 64 of them. 64×64 keeps a model's smaller products
 * (n = 896, a few hundred rows) spread over enough workgroups to fill a large GPU's ~130
 * multiprocessors, and 8.7 KB with 256 invocations lets several workgroups share one of them to hide
 * memory latency. 4×4 per invocation needs 16 accumulators, which every WebGPU target holds in registers.
 * Large products take a 128×128 block instead (8×8 per invocation, 8-deep k-slices, 8.4 KB): 64
 * multiply-adds for 4 vec4 reads, half the workgroup-memory words per multiply-add, and each element
 * fetched feeds 128 of them — what a discrete GPU's float32 rate needs, since with the small block the
 * workgroup-memory reads, not the arithmetic, bound the kernel (on lavapipe too: 1.8–2.1× at 256³–1024³,
 * `npm run bench:gpu`). 64 accumulators cost registers and a block covers four times the outputs, so a
 * product takes it only when it still has LARGE_TILE_MIN_GROUPS such blocks, about one wave of two
 * workgroups per multiprocessor on a ~130-multiprocessor GPU. MatmulOptions.tile forces either block.
 *
 * Products with at most 8 rows of A (decoding: a few tokens times every weight matrix) go instead to the
 * skinny kernels of wgsl/skinny.ts: a tile would leave ≥ 7/8 of its rows empty, and n/64 workgroups (14 for
 * n = 896) cannot fill a large GPU. They stream B once, coalesced, and are meant to be bound by memory: for
 * a transposed B (linear(x, W), W stored out × in) a workgroup owns 4 columns (224 workgroups for n = 896)
 * and its 256 invocations walk k along the W rows; for B stored k × n it owns up to 32 columns and 256/32
 * slices of k. Partial sums are reduced in workgroup memory, or — transposed B only, and only when the
 * device has the `subgroups` feature and WGSL's `subgroup_id` (GpuDevice.facts, read once when the kernels
 * are made) — by subgroupAdd, which needs one barrier where workgroup memory needs two per pair of rows.
 * A skinny product of one batch entry that still has fewer than 256 workgroups splits k (each split keeps
 * ≥ 1024 of it, at most 64 splits): every split writes its sums to scratch and a second pass adds them in
 * split order, with no float atomics (WGSL has none) and no order left to the scheduler. MatmulOptions
 * forces either reduction, the tiled kernel, or a split count; the tests run every path on lavapipe.
 * A tiled product of one batch entry with too few blocks for a large GPU and a long k (the LM head's dh:
 * a chunk of rows × 896 columns over k = 151,936 words, 14 blocks) splits k the same way, the split being
 * the workgroup's z.
 *
 * 16-bit B (gemmHalf) is widened to float32 as it is read (as a tile is staged, or as it is streamed), so
 * products and sums are float32 and `shader-f16` is not needed.
 */
import { type GemmArgs, type GemmHalfArgs, type Kernels, checkBias } from '../kernels.js';
import { GpuArray } from './gpu-array.js';
import type { GpuDevice } from './gpu-device.js';
import { Params, grid, runFlat } from './gpu-dispatch.js';
import { GEMM_TILES, type GemmTileSize, gemmKernelName } from './wgsl/matmul.js';
import {
  SKINNY_MAX_M,
  SKINNY_N_COLS,
  SKINNY_T_COLS,
  type SkinnyB,
  skinnyKernelName,
  skinnyRows,
} from './wgsl/skinny.js';
import { download, intoFresh, uploadHost } from './storage-kernels.js';

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

/** How matmulKernels serves products with few rows of A (see the top comment). */
export interface MatmulOptions {
  /**
   * Products with m ≤ 8: 'auto' streams them with the skinny kernels, reducing with subgroup operations
   * where the device has them; 'shared' and 'subgroups' force a reduction ('subgroups' throws where the
   * device lacks them); 'off' sends every product to the tiled kernel.
   */
  skinny?: 'auto' | 'shared' | 'subgroups' | 'off';
  /** Workgroups along k for a product of one batch entry: 'auto', or a count (tests force one). */
  splitK?: 'auto' | number;
  /** The tiled kernel's block of C: 'auto' (see the top comment), or 64 or 128 for every tiled product. */
  tile?: 'auto' | GemmTileSize;
  /**
   * Whether the tiled kernel reads the next k-slice into registers before this slice's products (the
   * classic latency hiding of GPU gemms), else after them; default PREFETCH. bench:gpu times both.
   */
  prefetch?: boolean;
}

/**
 * Off until a GPU run says it pays: on lavapipe (no memory latency to hide) it changes nothing measurable,
 * and on a discrete GPU its extra registers may cost the occupancy that hides latency as well.
 */
const PREFETCH = false;

/** A product takes the 128×128 tile (where 'auto' may) only with at least this many such blocks. */
const LARGE_TILE_MIN_GROUPS = 256;

/** Skinny products aim for this many workgroups (≈ 2 per multiprocessor of a large GPU) by splitting k… */
const SPLIT_TARGET_GROUPS = 256;
/** …as long as each split keeps at least this much of k, so the second pass stays small beside the first. */
const SPLIT_MIN_K = 1024;
const MAX_SPLITS = 64;

/**
 * The subgroup reduction indexes subgroups by subgroup_id (nothing ties them to local_invocation_index) and
 * holds at most 64 per workgroup, which subgroups of ≥ 4 invocations guarantee.
 */
function subgroupsUsable(dev: GpuDevice): boolean {
  const f = dev.facts;
  return f.features.includes('subgroups') && f.languageFeatures.includes('subgroup_id') && f.subgroupMinSize >= 4;
}

function splitsFor(groups: number, k: number, splitK: 'auto' | number): number {
  if (splitK !== 'auto') return Math.max(1, Math.min(Math.floor(splitK), k));
  if (groups >= SPLIT_TARGET_GROUPS) return 1;
  return Math.max(1, Math.min(Math.ceil(SPLIT_TARGET_GROUPS / groups), Math.floor(k / SPLIT_MIN_K), MAX_SPLITS));
}

/**
 * The k splits of a product over `groups` workgroups (only a product of one batch entry splits) and the k
 * each split covers, a whole number of `granule` positions; the last split may be shorter.
 */
function kSplits(
  groups: number,
  k: number,
  batch: number,
  splitK: 'auto' | number,
  granule: number,
): { splits: number; kChunk: number } {
  const wanted = batch === 1 ? splitsFor(groups, k, splitK) : 1;
  if (wanted <= 1) return { splits: 1, kChunk: k };
  const kChunk = granule * Math.ceil(k / (granule * wanted));
  return { splits: Math.ceil(k / kChunk), kChunk };
}

/** One product's kernel, grid and the parameters its WGSL reads after the shared ones. */
interface Plan {
  kernel: string;
  groups: [number, number];
  /**
   * Parameters of a dispatch whose first batch entry is z0; perGroup > 1 sums that many entries into one C
   * per workgroup; partial writes each k split's sums to a scratch C; bias adds the bias (binding 4).
   */
  params(z0: number, perGroup: number, partial: boolean, bias: boolean): Params;
  /** k splits (1: none); partial sums then go through gemmSplitSum. */
  splits: number;
  /** Whether a split is the workgroup's z (tiled) rather than part of its x/y (skinny). */
  splitAlongZ: boolean;
}

/** Outputs a product's blocks of one size cover, padding included. */
const padded = (m: number, n: number, side: number): number => Math.ceil(m / side) * side * Math.ceil(n / side) * side;

/**
 * The tiled kernel's block for a product: the large one where it still spreads over enough workgroups and
 * pads about as little as the small one (a chunk of 55 rows would leave most of a 128-row block empty).
 */
function tileFor(args: GemmArgs<GpuArray> | GemmHalfArgs<GpuArray, GpuArray>): GemmTileSize {
  const { m, n } = args;
  const entries = args.strideC === 0 ? 1 : args.batch;
  const blocks = (padded(m, n, 128) / 128 ** 2) * entries;
  return blocks >= LARGE_TILE_MIN_GROUPS && padded(m, n, 128) <= 1.125 * padded(m, n, 64) ? 128 : 64;
}

function tiledPlan(
  b: SkinnyB,
  args: GemmArgs<GpuArray> | GemmHalfArgs<GpuArray, GpuArray>,
  size: GemmTileSize,
  prefetch: boolean,
  splitK: 'auto' | number,
  name: string,
): Plan {
  const { batch, m, n, k, transA, transB, strideA, strideB, strideC, accumulate } = args;
  const { rm, rn, tk } = GEMM_TILES[size];
  const gx = Math.ceil(n / (16 * rn)),
    gy = Math.ceil(m / (16 * rm));
  if (gx > MAX_GROUPS || gy > MAX_GROUPS) {
    throw new RangeError(`${name}: ${m}×${n} outputs need more than ${MAX_GROUPS} workgroups along one side`);
  }
  // whole k-slices per split, so that no slice straddles two
  const { splits, kChunk } = kSplits(gx * gy, k, batch, splitK, tk);
  return {
    kernel: gemmKernelName(b, size, prefetch),
    groups: [gx, gy],
    splits,
    splitAlongZ: true,
    params: (z0, perGroup, partial, bias) =>
      new Params()
        .u32(m, n, k, transA ? 1 : 0, transB ? 1 : 0, strideA, strideB, strideC)
        .u32(accumulate ? 1 : 0, z0, perGroup, kChunk, partial ? 1 : 0, bias ? 1 : 0),
  };
}

function skinnyPlan(
  b: SkinnyB,
  args: GemmArgs<GpuArray> | GemmHalfArgs<GpuArray, GpuArray>,
  subgroups: boolean,
  splitK: 'auto' | number,
): Plan {
  const { batch, m, n, k, transA, transB, strideA, strideB, strideC, accumulate } = args;
  const rows = skinnyRows(m);
  // skinnyN's columns per group: a power of two, no more than n needs.
  const logJ = Math.min(Math.log2(SKINNY_N_COLS), Math.ceil(Math.log2(n)));
  const colGroups = Math.ceil(n / (transB ? SKINNY_T_COLS : 2 ** logJ));
  // Even chunks keep the pairs skinnyT walks k by within one chunk.
  const { splits, kChunk } = kSplits(colGroups, k, batch, splitK, 2);
  const used = colGroups * splits;
  const [gx, gy] = grid(used);
  return {
    kernel: skinnyKernelName(transB ? 'T' : 'N', rows, b, transB && subgroups),
    groups: [gx, gy],
    splits,
    splitAlongZ: false,
    params: (z0, perGroup, partial, bias) =>
      new Params()
        .u32(m, n, k, transA ? 1 : 0, strideA, strideB, strideC, accumulate ? 1 : 0, z0, perGroup)
        .u32(splits > 1 ? kChunk : k, partial ? 1 : 0, colGroups, used, logJ, bias ? 1 : 0),
  };
}

function gemmOn(
  dev: GpuDevice,
  plan: (args: GemmArgs<GpuArray> | GemmHalfArgs<GpuArray, GpuArray>) => Plan,
  args: GemmArgs<GpuArray> | GemmHalfArgs<GpuArray, GpuArray>,
  name: string,
): void {
  const { a, b, c, batch, m, n, k, strideA, strideB, strideC, accumulate } = args;
  const bias = args.bias ?? null;
  // WebGPU refuses one buffer bound for reading and writing in a dispatch, and a product written over its
  // own input is never what a caller means: say so here rather than as a GPU validation error.
  if (c === a || c === b || c === bias) throw new Error(`${name}: the output c is also an input`);
  checkBias(args);
  if (batch <= 0 || m <= 0 || n <= 0 || (k <= 0 && accumulate && !bias)) return;
  if (bias) need(name, bias, 'bias', n);
  // a product without a bias binds A in its place (read-only, so the alias is allowed), which the kernel
  // then never reads
  const biasId = (bias ?? a).id;
  const last = batch - 1;
  if (k > 0) {
    need(name, a, 'a', last * strideA + m * k);
    need(name, b, 'b', last * strideB + k * n);
  }
  need(name, c, 'c', last * strideC + m * n);
  const p = plan(args);
  if (p.splits > 1) {
    // Each split's sums into scratch, then one pass adds them in split order: no float atomics.
    const part = new GpuArray(dev, p.splits * m * n);
    const groups: [number, number, number] = [...p.groups, p.splitAlongZ ? p.splits : 1];
    dev.run(p.kernel, [a.id, b.id, part.id, a.id], p.params(0, 1, true, false).buffer, groups);
    const sum = new Params().u32(m * n, p.splits, accumulate ? 1 : 0, n, bias ? 1 : 0);
    runFlat(dev, 'gemmSplitSum', [part, c, bias ?? part], sum, m * n);
    part.free();
    return;
  }
  const dispatch = (z0: number, entries: number, perGroup: number): void => {
    const params = p.params(z0, perGroup, false, bias !== null);
    dev.run(p.kernel, [a.id, b.id, c.id, biasId], params.buffer, [...p.groups, entries]);
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

export function matmulKernels(dev: GpuDevice, options: MatmulOptions = {}): MatmulKernels {
  const mode = options.skinny ?? 'auto';
  if (mode === 'subgroups' && !subgroupsUsable(dev)) {
    throw new Error(
      'skinny products with subgroups need the subgroups feature and subgroup_id, which this device lacks',
    );
  }
  const subgroups = mode === 'subgroups' || (mode === 'auto' && subgroupsUsable(dev));
  const splitK = options.splitK ?? 'auto';
  const tile = options.tile ?? 'auto';
  const prefetch = options.prefetch ?? PREFETCH;
  const planFor =
    (b: SkinnyB) =>
    (args: GemmArgs<GpuArray> | GemmHalfArgs<GpuArray, GpuArray>): Plan =>
      mode !== 'off' && args.m <= SKINNY_MAX_M
        ? skinnyPlan(b, args, subgroups, splitK)
        : tiledPlan(
            b,
            args,
            tile === 'auto' ? tileFor(args) : tile,
            prefetch,
            splitK,
            b === 'f32' ? 'gemm' : 'gemmHalf',
          );
  const plans = { f32: planFor('f32'), f16: planFor('f16'), bf16: planFor('bf16') };
  const halfKernel = (x: GpuArray, name: string): void => {
    if (!isHalf(x)) throw new TypeError(`${name}: expected a 16-bit (f16 or bf16) array, got ${x.dtype}`);
  };
  return {
    gemm(args) {
      if (isHalf(args.b)) throw new TypeError('gemm: b is 16-bit; use gemmHalf');
      gemmOn(dev, plans.f32, args, 'gemm');
    },
    gemmHalf(args) {
      halfKernel(args.b, 'gemmHalf');
      gemmOn(dev, args.b.dtype === 'bf16' ? plans.bf16 : plans.f16, args, 'gemmHalf');
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
      const g = uploadHost(dev, ids);
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
      const g = uploadHost(dev, ids);
      const p = new Params().u32(ids.length * dim, dim, weight.dtype === 'bf16' ? 1 : 0);
      runFlat(dev, 'embeddingForwardHalf', [weight, g, out], p, ids.length * dim);
      g.free();
    },
    embeddingBackward(dout, ids, dweight, dim) {
      if (dim === 0 || ids.length === 0) return;
      need('embeddingBackward', dout, 'dout', ids.length * dim);
      checkIds('embeddingBackward', ids, Math.floor(dweight.length / dim), 'dweight');
      const { groups, distinct } = groupIds(ids);
      const g = uploadHost(dev, groups);
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
