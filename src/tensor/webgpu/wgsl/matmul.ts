/**
 * WGSL for the matrix products (gemm with a float32 or a 16-bit B), widening 16-bit weights, their
 * finite check, and the embedding lookups and gradient. matmul-kernels.ts dispatches them and explains
 * the tile sizes.
 */
import { PRELUDE, flatKernel } from './prelude.js';

/**
 * The tiled gemm's shapes. A workgroup of 16×16 invocations computes a (16·rm)×(16·rn) block of C, each
 * invocation rm×rn outputs, staging tk-deep k-slices of A and B in workgroup memory. matmul-kernels.ts
 * explains the two and when each is used.
 */
export interface GemmTile {
  rm: number;
  rn: number;
  tk: number;
}
export const GEMM_TILES = {
  64: { rm: 4, rn: 4, tk: 16 },
  128: { rm: 8, rn: 8, tk: 8 },
} as const satisfies Record<number, GemmTile>;
export type GemmTileSize = keyof typeof GEMM_TILES;

/** The pipeline name of the tiled gemm for B's storage, a tile size and whether it prefetches. */
export function gemmKernelName(b: 'f32' | 'f16' | 'bf16', size: GemmTileSize, prefetch = false): string {
  const storage = b === 'f32' ? '' : b === 'f16' ? 'F16' : 'Bf16';
  return `gemm${storage}${size === 64 ? '' : 'Large'}${prefetch ? 'Prefetch' : ''}`;
}

/**
 * Exact 16-bit → float32 widening from the bits alone. f16 is decoded with integer operations rather than
 * unpack2x16float: that builtin's handling of f16 subnormals and NaN payloads is left to the driver, and
 * these kernels must widen exactly as the CPU kernels do (every f16 is a float32, subnormals included).
 */
export const WIDEN = /* wgsl */ `
fn f16Bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let mant = h & 0x3ffu;
  // NaNs come out quiet (payload kept, quiet bit set), as F16C converts them in the native kernels.
  if (e == 0x1fu) { return sign | 0x7f800000u | select(0u, 0x400000u | (mant << 13u), mant != 0u); }
  if (e != 0u) { return sign | ((e + 112u) << 23u) | (mant << 13u); }
  if (mant == 0u) { return sign; }
  // A subnormal f16 is mant·2^-24, a normal float32: its leading bit becomes the implicit one.
  let lead = firstLeadingBit(mant);
  return sign | ((lead + 103u) << 23u) | ((mant << (23u - lead)) & 0x7fffffu);
}
fn widen(h: u32, bf16: bool) -> f32 {
  if (bf16) { return bitcast<f32>(h << 16u); }
  return bitcast<f32>(f16Bits(h));
}`;

/**
 * `fn name(e)`: the bits of element e of the 16-bit array `words`, packed two per u32 (the even element in
 * the low half). One function per array, since passing a storage pointer needs an optional WGSL feature.
 */
export const halfAt = (name: string, words: string): string => /* wgsl */ `
fn ${name}(e: u32) -> u32 { return (${words}[e >> 1u] >> ((e & 1u) << 4u)) & 0xffffu; }`;

/**
 * C[z] (+)= op(A[z])·op(B[z]) for the batch entry z = workgroup z + P[9]; with P[10] > 1 the workgroup sums
 * the products of entries z … z + P[10] − 1 into one C (strideC = 0, accumulating). Invocation (tx, ty) of
 * the 16×16 workgroup computes rows rm·ty + r and columns 64q + 4tx + l of the block (quads q of 4
 * contiguous columns), so that per k step it reads its operands as rm/4 + rn/4 vec4s: the 16 invocations
 * of a row read 16 consecutive vec4s of the B tile and one broadcast vec4 of the A tile, which workgroup
 * memory serves without bank conflicts, and they store 64 contiguous floats of C. Against one word per
 * operand (rows ty + 16r, columns tx + 16c), this ran 1.6–1.7× as fast at 64×64 and 1.8–1.9× at 128×128 on
 * lavapipe. Both tiles are held k-major (As[p][i], Bs[p][j]) as vec4s, each k-row padded by one vec4:
 * loads that walk k along consecutive invocations (A untransposed, B transposed) then write to banks 4
 * apart instead of to one. The accumulators are named variables (vec4s along columns) and the loop over
 * them is written out, so that they stay in registers whatever the shader compiler unrolls. Out-of-range
 * elements load as 0, so any m, n and k work; only in-range outputs are stored. With P[12] = 1 (one batch
 * entry whose blocks are too few to fill the GPU) workgroup z sums the z-th P[11] positions of k and
 * writes them to a scratch C at z·m·n, which gemmSplitSum then adds in split order.
 * P: m, n, k, transA, transB, strideA, strideB, strideC, accumulate, batch offset, entries per workgroup,
 * k per split, partial, bias (1: add bias[j] to column j; binding 4 is then the bias, else any buffer).
 */
function gemmSource(b: 'f32' | 'f16' | 'bf16', t: GemmTile, prefetch: boolean): string {
  const half = b !== 'f32';
  const loadB = half ? `widen(halfB(bOff + idx), ${b === 'bf16'})` : 'B[bOff + idx]';
  const tm = 16 * t.rm,
    tn = 16 * t.rn;
  const rows = [...Array(t.rm).keys()],
    quads = [...Array(t.rn / 4).keys()],
    lanes = [0, 1, 2, 3];
  const acc = (r: number, c: number): string => `acc${r}_${c}`;
  const each = (f: (r: number, c: number) => string): string =>
    rows.flatMap((r) => quads.map((c) => f(r, c))).join('\n');
  // the invocation's output row r and column (quad c, lane l), relative to the block, as WGSL
  const rowOf = (r: number): string => `${t.rm}u * ty + ${r}u`;
  const colOf = (c: number, l: number): string => `${64 * c + l}u + 4u * tx`;
  // this k step's operands: a0…a(rm−1), splatted from rm/4 vec4s of A, and b0…b(rn/4−1)
  const operands = [
    ...[...Array(t.rm / 4).keys()].map((j) => `        let aq${j} = As[p * LDA4 + ${t.rm / 4}u * ty + ${j}u];`),
    ...rows.map((r) => `        let a${r} = vec4f(aq${r >> 2}[${r & 3}]);`),
    ...quads.map((c) => `        let b${c} = Bs[p * LDB4 + ${16 * c}u + tx];`),
  ];
  // Staging: each invocation moves TM·TK/256 elements of A and TN·TK/256 of B into workgroup memory,
  // consecutive invocations reading consecutive addresses. Element q's place in the tile (i or j, p), its
  // value at the k-slice starting at k0, and its store:
  const aLoads = (tm * t.tk) / 256,
    bLoads = (tn * t.tk) / 256;
  const aPlace = (q: string): string => `var i: u32;
        var p: u32;
        if (transA) { i = lid % TM; p = lid / TM + ${256 / tm}u * ${q}; }
        else { p = lid % TK; i = lid / TK + ${256 / t.tk}u * ${q}; }`;
  const aValue = (k0: string): string => `let gi = row0 + i;
        let gp = ${k0} + p;
        var v = 0.0;
        if (gi < m && gp < kEnd) {
          if (transA) { v = A[aOff + gp * m + gi]; } else { v = A[aOff + gi * k + gp]; }
        }`;
  const aStore = (v: string): string => `As[p * LDA4 + i / 4u][i % 4u] = ${v};`;
  const bPlace = (q: string): string => `var j: u32;
        var p: u32;
        if (transB) { p = lid % TK; j = lid / TK + ${256 / t.tk}u * ${q}; }
        else { j = lid % TN; p = lid / TN + ${256 / tn}u * ${q}; }`;
  const bValue = (k0: string): string => `let gj = col0 + j;
        let gp = ${k0} + p;
        var v = 0.0;
        if (gj < n && gp < kEnd) {
          var idx: u32;
          if (transB) { idx = gj * k + gp; } else { idx = gp * n + gj; }
          v = ${loadB};
        }`;
  const bStore = (v: string): string => `Bs[p * LDB4 + j / 4u][j % 4u] = ${v};`;
  const count = (n: number): number[] => [...Array(n).keys()];
  // With prefetch, the next k-slice's elements are read into registers (pa*, pb*) before this slice's
  // products, so that their latency overlaps the arithmetic; they go to workgroup memory after it.
  const toRegisters = (k0: string): string =>
    [
      ...count(aLoads).map((q) => `      { ${aPlace(`${q}u`)}\n        ${aValue(k0)}\n        pa${q} = v; }`),
      ...count(bLoads).map((q) => `      { ${bPlace(`${q}u`)}\n        ${bValue(k0)}\n        pb${q} = v; }`),
    ].join('\n');
  const stage = prefetch
    ? {
        head: `${count(aLoads)
          .map((q) => `    var pa${q} = 0.0;`)
          .join('\n')}
${count(bLoads)
  .map((q) => `    var pb${q} = 0.0;`)
  .join('\n')}
${toRegisters('kBegin')}
    for (var k0 = kBegin; k0 < kEnd; k0 += TK) {
${count(aLoads)
  .map((q) => `      { ${aPlace(`${q}u`)}\n        ${aStore(`pa${q}`)} }`)
  .join('\n')}
${count(bLoads)
  .map((q) => `      { ${bPlace(`${q}u`)}\n        ${bStore(`pb${q}`)} }`)
  .join('\n')}`,
        next: `      if (k0 + TK < kEnd) {\n${toRegisters('k0 + TK')}\n      }`,
      }
    : {
        head: `    for (var k0 = kBegin; k0 < kEnd; k0 += TK) {
      for (var q = 0u; q < ${aLoads}u; q++) {
        ${aPlace('q')}
        ${aValue('k0')}
        ${aStore('v')}
      }
      for (var q = 0u; q < ${bLoads}u; q++) {
        ${bPlace('q')}
        ${bValue('k0')}
        ${bStore('v')}
      }`,
        next: '',
      };
  return `${PRELUDE}
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<${half ? 'u32' : 'f32'}>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
${half ? WIDEN + halfAt('halfB', 'B') : ''}
// column j's bias where the product has one (P[13]; never into a split's partial sums)
fn biasAt(j: u32) -> f32 {
  if (pu(13) == 1u) { return bias[j]; }
  return 0.0;
}
const TM = ${tm}u;
const TN = ${tn}u;
const TK = ${t.tk}u;
// vec4s per k-row of each tile, one of them padding
const LDA4 = ${tm / 4 + 1}u;
const LDB4 = ${tn / 4 + 1}u;
var<workgroup> As: array<vec4f, ${t.tk * (tm / 4 + 1)}>;
var<workgroup> Bs: array<vec4f, ${t.tk * (tn / 4 + 1)}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m = pu(0);
  let n = pu(1);
  let k = pu(2);
  let transA = pu(3) == 1u;
  let transB = pu(4) == 1u;
  // a k split (P[12] = 1): workgroup z is the split, which sums its P[11] positions of k into scratch
  let partial = pu(12) == 1u;
  let split = select(0u, wg.z, partial);
  let z0 = select(wg.z, 0u, partial) + pu(9);
  let cOff = select(z0 * pu(7), split * m * n, partial);
  let kBegin = split * pu(11);
  let kEnd = min(k, kBegin + pu(11));
  let row0 = wg.y * TM;
  let col0 = wg.x * TN;
  let tx = lid % 16u;
  let ty = lid / 16u;
${each((r, c) => `  var ${acc(r, c)} = vec4f(0.0);`)}
  for (var z = z0; z < z0 + pu(10); z++) {
    let aOff = z * pu(5);
    let bOff = z * pu(6);
${stage.head}
      workgroupBarrier();
${stage.next}
      for (var p = 0u; p < TK; p++) {
${operands.join('\n')}
${each((r, c) => `        ${acc(r, c)} = fma(a${r}, b${c}, ${acc(r, c)});`)}
      }
      workgroupBarrier();
    }
  }
  let accumulate = pu(8) == 1u && !partial;
${rows
  .map(
    (r) => `  if (row0 + ${rowOf(r)} < m) {
    let at = cOff + (row0 + ${rowOf(r)}) * n + col0;
${quads
  .flatMap((c) =>
    lanes.map((l) => {
      const col = colOf(c, l);
      const v = `${acc(r, c)}[${l}] + biasAt(col0 + ${col})`;
      return (
        `    if (col0 + ${col} < n) ` +
        `{ if (accumulate) { C[at + ${col}] += ${v}; } else { C[at + ${col}] = ${v}; } }`
      );
    }),
  )
  .join('\n')}
  }`,
  )
  .join('\n')}
}`;
}

/** Per-element kernels over a 16-bit array `src` (u32 words) for widening and the finite check. */
function halfFlat(extraDecls: string, body: string): string {
  return flatKernel(
    `@group(0) @binding(1) var<storage, read> src: array<u32>;\n${extraDecls}\n${WIDEN}${halfAt('halfSrc', 'src')}`,
    body,
  );
}

export const matmulKernels: Record<string, string> = {
  ...Object.fromEntries(
    (['f32', 'f16', 'bf16'] as const).flatMap((b) =>
      ([64, 128] as const).flatMap((size) =>
        [false, true].map((prefetch) => [gemmKernelName(b, size, prefetch), gemmSource(b, GEMM_TILES[size], prefetch)]),
      ),
    ),
  ),
  // dst[i] = widen(src[i]). P: n, bf16
  widenHalf: halfFlat(
    '@group(0) @binding(2) var<storage, read_write> dst: array<f32>;',
    '  if (i < pu(0)) { dst[i] = widen(halfSrc(i), pu(1) == 1u); }',
  ),
  // flag[0] = 1 when an element has every exponent bit set (±Inf or NaN). P: n, exponent mask
  halfAllFinite: halfFlat(
    '@group(0) @binding(2) var<storage, read_write> flag: array<f32>;',
    '  if (i < pu(0) && (halfSrc(i) & pu(1)) == pu(1)) { flag[0] = 1.0; }',
  ),
  // out[r, d] = weight[ids[r], d]. P: count·dim, dim
  embeddingForward: flatKernel(
    `@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;`,
    `  if (i >= pu(0)) { return; }
  let dim = pu(1);
  out[i] = weight[u32(ids[i / dim]) * dim + i % dim];`,
  ),
  // As embeddingForward, widening a 16-bit weight. P: count·dim, dim, bf16
  embeddingForwardHalf: halfFlat(
    `@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;`,
    `  if (i >= pu(0)) { return; }
  let dim = pu(1);
  out[i] = widen(halfSrc(u32(ids[i / dim]) * dim + i % dim), pu(2) == 1u);`,
  ),
  // One invocation per (distinct id g, column d) adds, in position order, every dout row whose id is g:
  // no two invocations write one element, and each sum runs in the order the CPU kernels use.
  // byId = [start (distinct + 1) | row (distinct) | position (count)], sorted by (id, position) on the host.
  // P: distinct·dim, dim, distinct ids
  embeddingBackward: flatKernel(
    `@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> byId: array<u32>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;`,
    `  if (i >= pu(0)) { return; }
  let dim = pu(1);
  let g = i / dim;
  let d = i % dim;
  let distinct = pu(2);
  let at = byId[distinct + 1u + g] * dim + d;
  var s = dweight[at];
  for (var j = byId[g]; j < byId[g + 1u]; j++) { s += dout[byId[2u * distinct + 1u + j] * dim + d]; }
  dweight[at] = s;`,
  ),
};
