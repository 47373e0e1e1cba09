/** WGSL for fills, element-wise arithmetic, strided copies and whole-array reductions. */
import { PRELUDE, flatKernel } from './prelude.js';

/** Decomposes flat index `i` over a row-major shape held in P[shapeAt…] and dots it with P[strideAt…]. */
const STRIDED = /* wgsl */ `
fn stridedOffset(i: u32, rank: u32, shapeAt: u32, strideAt: u32) -> u32 {
  var rest = i;
  var off = 0u;
  for (var d = i32(rank) - 1; d >= 0; d--) {
    let n = pu(shapeAt + u32(d));
    off += (rest % n) * pu(strideAt + u32(d));
    rest /= n;
  }
  return off;
}`;

const FINITE = /* wgsl */ `
fn isFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }`;

export const elementwiseKernels: Record<string, string> = {
  // P: n, value
  fill: flatKernel(
    '@group(0) @binding(1) var<storage, read_write> x: array<f32>;',
    '  if (i < pu(0)) { x[i] = pf(1); }',
  ),
  // P: n, rank, op, shape[6], aStrides[6], bStrides[6]
  binary: flatKernel(
    `@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${STRIDED}`,
    `  if (i >= pu(0)) { return; }
  let x = a[stridedOffset(i, pu(1), 3u, 9u)];
  let y = b[stridedOffset(i, pu(1), 3u, 15u)];
  switch pu(2) {
    case 0u: { out[i] = x + y; }
    case 1u: { out[i] = x - y; }
    case 2u: { out[i] = x * y; }
    default: { out[i] = x / y; }
  }`,
  ),
  // P: n, op
  unary: flatKernel(
    `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`,
    `  if (i >= pu(0)) { return; }
  let v = x[i];
  switch pu(1) {
    case 0u: { out[i] = -v; }
    case 1u: { out[i] = exp(v); }
    case 2u: { out[i] = log(v); }
    case 3u: { out[i] = sqrt(v); }
    case 4u: { out[i] = abs(v); }
    case 5u: { out[i] = v * v; }
    default: { out[i] = 1.0 / v; }
  }`,
  ),
  // P: n, alpha, beta (beta = 0 overwrites, so NaN or garbage in out does not leak through)
  axpby: flatKernel(
    `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`,
    `  if (i >= pu(0)) { return; }
  if (pf(2) == 0.0) { out[i] = pf(1) * x[i]; } else { out[i] = pf(1) * x[i] + pf(2) * out[i]; }`,
  ),
  // One invocation per kept destination element, looping over the reduced axes (destination stride 0).
  // P: kept count, kept rank, reduced count, reduced rank, srcOff, dstOff, accumulate,
  //    keptShape[6] @7, keptSrc[6] @13, keptDst[6] @19, redShape[6] @25, redSrc[6] @31
  copy: flatKernel(
    `@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
${STRIDED}`,
    `  if (i >= pu(0)) { return; }
  let s0 = pu(4) + stridedOffset(i, pu(1), 7u, 13u);
  let d = pu(5) + stridedOffset(i, pu(1), 7u, 19u);
  var acc = 0.0;
  var last = 0.0;
  for (var r = 0u; r < pu(2); r++) {
    last = src[s0 + stridedOffset(r, pu(3), 25u, 31u)];
    acc += last;
  }
  if (pu(6) == 1u) { dst[d] += acc; } else { dst[d] = last; }`,
  ),
  // Pass 1 of Σx²: each workgroup sums its 256·P[1] elements into partial[wg]. P: n, per-invocation count
  sumSquaresPartial: `${PRELUDE}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
var<workgroup> acc: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) groups: vec3u) {
  let g = rowId(wg, groups);
  let base = g * 256u * pu(1);
  var s = 0.0;
  for (var k = 0u; k < pu(1); k++) {
    let j = base + k * 256u + lid;
    if (j < pu(0)) { s += x[j] * x[j]; }
  }
  acc[lid] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { acc[lid] += acc[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { partial[g] = acc[0]; }
}`,
  // Pass 2: one workgroup sums the partials into total[P[1]]. P: count, slot
  sumPartials: `${PRELUDE}
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<f32>;
var<workgroup> acc: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var j = lid; j < pu(0); j += 256u) { s += partial[j]; }
  acc[lid] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { acc[lid] += acc[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { total[pu(1)] = acc[0]; }
}`,
  // flag[0] = 1 when any element is NaN or ±Inf (every writer writes the same value). P: n
  allFinite: flatKernel(
    `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> flag: array<f32>;
${FINITE}`,
    '  if (i < pu(0) && !isFinite(x[i])) { flag[0] = 1.0; }',
  ),
  // out[o, i] = Σ or max over n of x[o, j, i]; arg[o, i] = first index of the max. P: outer·inner, n, inner, op
  reduce: flatKernel(
    `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<i32>;`,
    `  if (i >= pu(0)) { return; }
  let n = pu(1);
  let inner = pu(2);
  let base = (i / inner) * n * inner + i % inner;
  if (pu(3) == 0u) {
    var s = 0.0;
    for (var j = 0u; j < n; j++) { s += x[base + j * inner]; }
    out[i] = s;
  } else {
    var m = x[base];
    var a = 0u;
    for (var j = 1u; j < n; j++) {
      let v = x[base + j * inner];
      if (v > m) { m = v; a = j; }
    }
    out[i] = m;
    arg[i] = i32(a);
  }`,
  ),
};
