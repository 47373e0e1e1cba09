/** WGSL for fills, element-wise arithmetic, strided copies and whole-array reductions. */
import { FINITE, PRELUDE, flatKernel } from './prelude.js';

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

/**
 * Σx² as q·2^(2e) (see sumSquaresPartial), with bad = 1 once an Inf was seen, 2 once a NaN was. Elements and
 * partial sums are scaled by powers of two taken from the exponent bits, which is exact, and nothing here
 * compares or computes with a non-finite value (WGSL lets a compiler assume there are none).
 */
const SCALED_SQUARES = /* wgsl */ `
struct Scaled { e: i32, q: f32, bad: u32 }
fn combine(a: Scaled, b: Scaled) -> Scaled {
  let e = max(a.e, b.e);
  return Scaled(e, ldexp(a.q, 2 * (a.e - e)) + ldexp(b.q, 2 * (b.e - e)), max(a.bad, b.bad));
}
fn addSquare(s: Scaled, x: f32) -> Scaled {
  let bits = bitcast<u32>(x) & 0x7fffffffu;
  let field = bits >> 23u;
  if (field == 255u) { return Scaled(s.e, s.q, max(s.bad, select(1u, 2u, bits > 0x7f800000u))); }
  // zero and subnormals add nothing float32 could hold beside any normal value
  if (field == 0u) { return s; }
  // |x| = m·2^ex with m in [1, 2)
  let m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
  let ex = i32(field) - 127;
  if (ex > s.e) { return Scaled(ex, ldexp(s.q, 2 * (s.e - ex)) + m * m, s.bad); }
  return Scaled(s.e, s.q + ldexp(m * m, 2 * (ex - s.e)), s.bad);
}
var<workgroup> accE: array<i32, 256>;
var<workgroup> accQ: array<f32, 256>;
var<workgroup> accBad: array<u32, 256>;
fn reduceScaled(lid: u32, s: Scaled) -> Scaled {
  accE[lid] = s.e;
  accQ[lid] = s.q;
  accBad[lid] = s.bad;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) {
      let c = combine(Scaled(accE[lid], accQ[lid], accBad[lid]), Scaled(accE[lid + w], accQ[lid + w], accBad[lid + w]));
      accE[lid] = c.e;
      accQ[lid] = c.q;
      accBad[lid] = c.bad;
    }
    workgroupBarrier();
  }
  return Scaled(accE[0], accQ[0], accBad[0]);
}`;

/**
 * Max with the CPU backends' rules, as (value, index) pairs that fold in any order: a NaN beats every number,
 * and the lower index wins between NaNs and between equal values, so the first NaN, or else the first largest
 * value, comes out. Index EMPTY stands for no value yet. NaN is told by its bits, since WGSL lets a compiler
 * assume comparisons never see one.
 */
const MAX_PAIR = /* wgsl */ `
const EMPTY = 0xffffffffu;
fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
// whether (bm, bi) wins over (am, ai)
fn beats(bm: f32, bi: u32, am: f32, ai: u32) -> bool {
  if (bi == EMPTY) { return false; }
  if (ai == EMPTY) { return true; }
  let an = isNan(am);
  let bn = isNan(bm);
  if (an || bn) { return bn && (!an || bi < ai); }
  return bm > am || (bm == am && bi < ai);
}`;

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
  // Pass 1 of Σx²: each workgroup sums its 256·P[1] elements into partial[3·wg .. 3·wg + 2] as (e, q, bad):
  // Σx² = q·2^(2e), bad = 1 for an Inf, 2 for a NaN. Summing x·2^-e keeps every square near 1, so gradients of
  // 1e20 (whose squares pass float32's 3.4e38) or 1e-30 (whose squares fall below its 1e-45) still have the
  // norm the CPU backends compute in double; powers of two scale exactly. P: n, per-invocation count
  sumSquaresPartial: `${PRELUDE}
${SCALED_SQUARES}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) groups: vec3u) {
  let g = rowId(wg, groups);
  let base = g * 256u * pu(1);
  var s = Scaled(-127, 0.0, 0u);
  for (var k = 0u; k < pu(1); k++) {
    let j = base + k * 256u + lid;
    if (j < pu(0)) { s = addSquare(s, x[j]); }
  }
  let t = reduceScaled(lid, s);
  if (lid == 0u) { partial[3u * g] = f32(t.e); partial[3u * g + 1u] = t.q; partial[3u * g + 2u] = f32(t.bad); }
}`,
  // Pass 2: one workgroup combines the P[0] partials into total[3·P[1] .. 3·P[1] + 2]. P: count, slot
  sumPartials: `${PRELUDE}
${SCALED_SQUARES}
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = Scaled(-127, 0.0, 0u);
  for (var j = lid; j < pu(0); j += 256u) {
    s = combine(s, Scaled(i32(partial[3u * j]), partial[3u * j + 1u], u32(partial[3u * j + 2u])));
  }
  let t = reduceScaled(lid, s);
  let o = 3u * pu(1);
  if (lid == 0u) { total[o] = f32(t.e); total[o + 1u] = t.q; total[o + 2u] = f32(t.bad); }
}`,
  // flag[0] = 1 when any element is NaN or ±Inf (every writer writes the same value). P: n
  allFinite: flatKernel(
    `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> flag: array<f32>;
${FINITE}`,
    '  if (i < pu(0) && !isFinite(x[i])) { flag[0] = 1.0; }',
  ),
  // x viewed as [outer, n, inner] folded into out [outer, lanes, inner]: invocation (o, k, i) sums or maxes
  // x[o, j, i] over j = k, k + lanes, k + 2·lanes, … (adjacent invocations read adjacent addresses for every
  // inner). With lanes = 1 that is the reduction itself; storage-kernels.ts folds the lanes again until it is.
  // For max, arg holds each result's index along n, read through argIn where x is itself such partials.
  // P: outer·lanes·inner, n, inner, op, −Inf (a WGSL constant may not be infinite), lanes, x holds partials
  reduce: flatKernel(
    `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> argIn: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> arg: array<u32>;
${MAX_PAIR}
// folds x[at], the value at index j along n (or, read from partials, at index argIn[at]) into (m, a)
fn maxWith(m: ptr<function, f32>, a: ptr<function, u32>, at: u32, j: u32, partials: bool) {
  let v = x[at];
  let index = select(j, argIn[at], partials);
  if (beats(v, index, *m, *a)) { *m = v; *a = index; }
}`,
    `  if (i >= pu(0)) { return; }
  let n = pu(1);
  let inner = pu(2);
  let lanes = pu(5);
  let k = (i / inner) % lanes;
  // lane k's first value, and the distance between its values
  let first = (i / inner / lanes) * n * inner + k * inner + i % inner;
  let step = lanes * inner;
  // every invocation makes the same number of full rounds (a loop a software adapter runs in lockstep), and
  // the first n % lanes lanes one more
  let rounds = n / lanes;
  let last = k + rounds * lanes;
  if (pu(3) == 0u) {
    var s = 0.0;
    for (var r = 0u; r < rounds; r++) { s += x[first + r * step]; }
    if (last < n) { s += x[first + rounds * step]; }
    out[i] = s;
    return;
  }
  let partials = pu(6) == 1u;
  var m = pf(4);
  var a = EMPTY;
  for (var r = 0u; r < rounds; r++) { maxWith(&m, &a, first + r * step, k + r * lanes, partials); }
  if (last < n) { maxWith(&m, &a, first + rounds * step, last, partials); }
  // as the CPU backends: −Inf at index 0 over no values
  out[i] = m;
  arg[i] = select(a, 0u, a == EMPTY);`,
  ),
};
