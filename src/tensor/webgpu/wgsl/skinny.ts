/**
 * WGSL for products with at most 8 rows of A (decoding a few tokens): C (+)= op(A)·op(B) streamed from B
 * once, with no tiles. matmul-kernels.ts chooses between these and the tiled gemm and explains why.
 *
 * Every kernel here takes the same parameters:
 *   P: m, n, k, transA, strideA, strideB, strideC, accumulate, batch offset, entries per workgroup,
 *      k per split, partial (1: write split s's sums to C[s·m·n + i·n + j], no accumulate, batch 1),
 *      column groups, workgroups in use, log2 of the columns per group (skinnyN only), bias (1: add
 *      bias[j] to column j; binding 4 is then the bias, else any buffer)
 * A workgroup's flat index is split · column groups + column group; grid folding may add workgroups
 * past the last, which return at once. Rows of A are a compile-time bound MR ∈ {1, 2, 4, 8} (the
 * accumulators stay in registers) and the m ≤ MR actual rows a runtime guard.
 */
import { PRELUDE, flatKernel } from './prelude.js';
import { WIDEN, halfAt } from './matmul.js';

export type SkinnyB = 'f32' | 'f16' | 'bf16';

/** The most rows of A the skinny kernels take. */
export const SKINNY_MAX_M = 8;
/** Columns of C one skinnyT workgroup owns (its accumulators are vec4f). */
export const SKINNY_T_COLS = 4;
/** The most columns of C one skinnyN workgroup owns (a power of two; fewer when n is smaller). */
export const SKINNY_N_COLS = 32;
/** Subgroups a 256-invocation workgroup may hold: WebGPU's smallest subgroup size is 4. */
const MAX_SUBGROUPS = 64;

/** The compile-time row bound for m rows. */
export function skinnyRows(m: number): number {
  return m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8;
}

/** Registry name of a skinny kernel: T for a transposed B (rows of W along k), N for B stored k×n. */
export function skinnyKernelName(trans: 'T' | 'N', rows: number, b: SkinnyB, subgroups: boolean): string {
  return `skinny${trans}${rows}${b}${subgroups ? 'Subgroups' : ''}`;
}

/** Bindings, element loaders and the parameter reads every skinny kernel starts with. */
function head(b: SkinnyB, rows: number, subgroups: boolean): string {
  const half = b !== 'f32';
  return `${subgroups ? 'enable subgroups;' : ''}
${PRELUDE}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<${half ? 'u32' : 'f32'}>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
${half ? WIDEN + halfAt('halfB', 'B') : ''}
const MR = ${rows}u;
fn bAt(e: u32) -> f32 { return ${half ? `widen(halfB(e), ${b === 'bf16'})` : 'B[e]'}; }
fn aAt(aOff: u32, i: u32, p: u32, m: u32, k: u32, transA: bool) -> f32 {
  if (transA) { return A[aOff + p * m + i]; }
  return A[aOff + i * k + p];
}
// v, the sum for column j, plus its bias where there is one (never into a split's partial sums)
fn store(at: u32, j: u32, v: f32) {
  var x = v;
  if (pu(15) == 1u) { x += bias[j]; }
  if (pu(7) == 1u && pu(11) == 0u) { C[at] = C[at] + x; } else { C[at] = x; }
}`;
}

/**
 * transB: B[j·k + p] (W stored out × in), the decode case. A workgroup owns 4 columns and all 256
 * invocations walk k together, each taking 2 consecutive positions of every step, so the 256 invocations
 * read 512 consecutive elements of each W row (coalesced) and each A element loaded feeds all 4 columns.
 * Every invocation then holds MR × 4 partial sums, reduced over the workgroup either in workgroup memory
 * (two rows at a time) or, with subgroups, by subgroupAdd and then, per output, an ordered sum of the
 * subgroups' totals. Subgroups are indexed by subgroup_id, not by local index, since neither WGSL nor
 * Vulkan ties one to the other.
 */
const SHARED_T = `var<workgroup> red: array<vec4f, 512>;
var<workgroup> mid: array<vec4f, 32>;`;

function skinnyT(b: SkinnyB, rows: number, subgroups: boolean): string {
  const reduce = subgroups
    ? /* wgsl */ `
  for (var i = 0u; i < MR; i++) {
    if (i >= m) { break; }
    let t = subgroupAdd(acc[i]);
    if (subgroupElect()) { part[sid * MR + i] = t; }
  }
  workgroupBarrier();
  if (lid < m * 4u && j0 + lid % 4u < n) {
    let i = lid / 4u;
    let c = lid % 4u;
    var s = 0.0;
    for (var g = 0u; g < nsg; g++) { s += part[g * MR + i][c]; }
    store(cOff + i * n + j0 + c, j0 + c, s);
  }`
    : /* wgsl */ `
  // Two rows per round. Per row, 16 invocations each add 16 of the 256 partials, then one adds their 16
  // sums: two barriers a round where a tree takes nine, and barriers are dear (on a CPU Vulkan above all).
  for (var i0 = 0u; i0 < MR; i0 += 2u) {
    if (i0 >= m) { break; }
    red[lid] = acc[i0];
    red[256u + lid] = acc[min(i0 + 1u, MR - 1u)];
    workgroupBarrier();
    if (lid < 32u) {
      var s = vec4f(0.0);
      for (var u = 0u; u < 256u; u += 16u) { s += red[(lid / 16u) * 256u + lid % 16u + u]; }
      mid[lid] = s;
    }
    workgroupBarrier();
    let i = i0 + lid / 4u;
    if (lid < 8u && i < m && j0 + lid % 4u < n) {
      var s = 0.0;
      for (var t = 0u; t < 16u; t++) { s += mid[(lid / 4u) * 16u + t][lid % 4u]; }
      store(cOff + i * n + j0 + lid % 4u, j0 + lid % 4u, s);
    }
  }`;
  const builtins = subgroups ? ',\n        @builtin(subgroup_id) sid: u32, @builtin(num_subgroups) nsg: u32' : '';
  return `${head(b, rows, subgroups)}
${subgroups ? `var<workgroup> part: array<vec4f, ${MAX_SUBGROUPS} * MR>;` : SHARED_T}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lid: u32${builtins}) {
  let flat = rowId(wg, groups);
  if (flat >= pu(13)) { return; }
  let m = pu(0);
  let n = pu(1);
  let k = pu(2);
  let transA = pu(3) == 1u;
  let split = flat / pu(12);
  let j0 = (flat % pu(12)) * 4u;
  let kBegin = split * pu(10);
  let kEnd = min(k, kBegin + pu(10));
  let z0 = wg.z + pu(8);
  var acc: array<vec4f, MR>;
  for (var z = z0; z < z0 + pu(9); z++) {
    let aOff = z * pu(4);
    // Columns past n read row n − 1, a valid one, and their sums are dropped.
    let r = min(vec4u(j0) + vec4u(0u, 1u, 2u, 3u), vec4u(n - 1u)) * k + vec4u(z * pu(5));
    for (var p = kBegin + 2u * lid; p < kEnd; p += 512u) {
      let q = p + 1u;
      let two = q < kEnd;
      let w0 = vec4f(bAt(r.x + p), bAt(r.y + p), bAt(r.z + p), bAt(r.w + p));
      var w1 = vec4f(0.0);
      if (two) { w1 = vec4f(bAt(r.x + q), bAt(r.y + q), bAt(r.z + q), bAt(r.w + q)); }
      for (var i = 0u; i < MR; i++) {
        if (i < m) {
          var a1 = 0.0;
          if (two) { a1 = aAt(aOff, i, q, m, k, transA); }
          acc[i] = fma(vec4f(a1), w1, fma(vec4f(aAt(aOff, i, p, m, k, transA)), w0, acc[i]));
        }
      }
    }
  }
  let cOff = select(z0 * pu(6), split * m * n, pu(11) == 1u);
${reduce}
}`;
}

/**
 * B stored k×n: B[p·n + j]. A workgroup owns J = 2^P[14] consecutive columns (J ≤ 32) and 256 / J slices
 * of k; invocation (column jj, slice s) sums positions p ≡ s (mod 256 / J), so the J invocations of a
 * slice read J consecutive elements of a B row. The slices' sums are then added by a tree in workgroup
 * memory (subgroups would add across columns here, so this kernel has no subgroup variant).
 */
function skinnyN(b: SkinnyB, rows: number): string {
  return `${head(b, rows, false)}
var<workgroup> red: array<f32, 256 * MR>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let flat = rowId(wg, groups);
  if (flat >= pu(13)) { return; }
  let m = pu(0);
  let n = pu(1);
  let k = pu(2);
  let transA = pu(3) == 1u;
  let logJ = pu(14);
  let J = 1u << logJ;
  let S = 256u >> logJ;
  let jj = lid & (J - 1u);
  let s = lid >> logJ;
  let split = flat / pu(12);
  let j = (flat % pu(12)) * J + jj;
  let jc = min(j, n - 1u);
  let kBegin = split * pu(10);
  let kEnd = min(k, kBegin + pu(10));
  let z0 = wg.z + pu(8);
  var acc: array<f32, MR>;
  for (var z = z0; z < z0 + pu(9); z++) {
    let aOff = z * pu(4);
    let bOff = z * pu(5) + jc;
    for (var p = kBegin + s; p < kEnd; p += S) {
      let w = bAt(bOff + p * n);
      for (var i = 0u; i < MR; i++) {
        if (i < m) { acc[i] = fma(aAt(aOff, i, p, m, k, transA), w, acc[i]); }
      }
    }
  }
  for (var i = 0u; i < MR; i++) { red[i * 256u + lid] = acc[i]; }
  workgroupBarrier();
  for (var h = S >> 1u; h > 0u; h >>= 1u) {
    if (s < h) {
      for (var i = 0u; i < MR; i++) { red[i * 256u + lid] += red[i * 256u + lid + h * J]; }
    }
    workgroupBarrier();
  }
  let cOff = select(z0 * pu(6), split * m * n, pu(11) == 1u);
  if (s == 0u && j < n) {
    for (var i = 0u; i < m; i++) { store(cOff + i * n + j, j, red[i * 256u + lid]); }
  }
}`;
}

const sources: Record<string, string> = {
  // C[i] (+)= Σ_s part[s·count + i], splits in order, + bias[i mod n] with a bias.
  // P: count, splits, accumulate, n, bias (1: binding 3 is the bias)
  gemmSplitSum: flatKernel(
    `@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;`,
    `  let count = pu(0);
  if (i >= count) { return; }
  var s = 0.0;
  for (var t = 0u; t < pu(1); t++) { s += part[t * count + i]; }
  if (pu(4) == 1u) { s += bias[i % pu(3)]; }
  if (pu(2) == 1u) { C[i] = C[i] + s; } else { C[i] = s; }`,
  ),
};
for (const b of ['f32', 'f16', 'bf16'] as const) {
  for (const rows of [1, 2, 4, 8]) {
    sources[skinnyKernelName('T', rows, b, false)] = skinnyT(b, rows, false);
    sources[skinnyKernelName('T', rows, b, true)] = skinnyT(b, rows, true);
    sources[skinnyKernelName('N', rows, b, false)] = skinnyN(b, rows);
  }
}

export const skinnyKernels: Record<string, string> = sources;
