/**
 * Fused softmax attention in WGSL, forward and backward, on the layouts of kernels.ts's AttentionShape:
 * q, out, dout [batch, queryLen, queryHeads, headDim]; k, v [batch, keyStride, kvHeads, headDim]; lse
 * [batch, queryHeads, queryLen]. Query head h reads kv head h / (queryHeads / kvHeads) in place.
 *
 * Design. Each kernel comes in variants for headDim buckets MAXD ∈ {16, 32, 64, 128}: a row of q, k or v
 * is held in invocation-private arrays of MAXD/4 vec4s (zero past headDim). The loops over a row run either
 * to the constant MAXD/4 ("Unrolled": a GPU compiler can unroll them and keep the rows in registers) or to
 * the runtime ⌈headDim/4⌉ (the same code otherwise; a CPU Vulkan such as lavapipe compiles the unrolled
 * variants several times more slowly, so it gets these). Workgroups have 64 invocations and two tiles of
 * workgroup memory of 512 vec4s each (16 KiB, the WebGPU default limit).
 *
 * - attentionForward: one workgroup per (batch, head, block of QR queries). Invocation t owns query row
 *   t / KL and key lane t % KL (QR·KL = 64; KL > 1 only for short queryLen, so that decoding one query
 *   still spreads its keys over several invocations). Keys are streamed through the tiles BK = 2048/MAXD
 *   at a time (K in one tile, V in the other); each invocation keeps an online softmax (running max m,
 *   sum l, output o) over its lane's keys, rescaling o only when the max grows. The lanes of a row are
 *   merged at the end through workgroup memory (the row max, then the rescaled sums, up to 8 vec4s of each
 *   invocation per round). lse is stored as bits, −Inf as 0xff800000: WGSL has no infinite constant and
 *   lets implementations assume that arithmetic never meets one, so no shader computes with −Inf.
 *   A workgroup covers one head's keys alone: decoding a batch of one runs queryHeads workgroups, each
 *   streaming every key (splitting the keys over workgroups, as flash-decoding does, is not done).
 * - attentionDelta: per query row, lse and D = Σ dout∘out into one `aux` buffer of (lse, D) pairs; the
 *   key mask is copied behind them, so each backward kernel binds at most 8 storage buffers (the default
 *   maxStorageBuffersPerShaderStage).
 * - attentionBackwardQuery: dq, laid out like the forward pass (keys streamed through the tiles, lanes
 *   summed at the end): dq_i = Σ_j dS_ij k_j with P_ij = exp(s_ij − lse_i) and
 *   dS_ij = P_ij (dout_i·v_j − D_i)·scale.
 * - attentionBackwardKey: one workgroup per (batch, kv head, block of 64 key positions), one invocation per
 *   key; queries of every head of the kv head's group are streamed through the tiles (q in one, dout in the
 *   other), so dk_j = Σ dS_ij q_i and dv_j = Σ P_ij dout_i over the whole group are sums inside one
 *   invocation: no float atomics, no races. Blocks cover all keyStride positions, so rows past keyLen (and
 *   masked keys) get zeros, as on the CPU.
 * Keys a query cannot see (causal limit, mask) are skipped; a row that sees none gets lse −Inf, output 0,
 * and contributes nothing to the gradients.
 */
import { PRELUDE } from './prelude.js';

/** headDim buckets; a shape's headDim runs on the smallest bucket that holds it. */
export const ATTENTION_DIMS = [16, 32, 64, 128] as const;
/** vec4s per tile (two tiles of 8 KiB). */
const TILE4 = 512;
/** Invocations per workgroup of every attention kernel. */
export const ATTENTION_WORKGROUP = 64;

/** Rows (keys or queries) a tile holds for the bucket maxd. */
export function attentionTileRows(maxd: number): number {
  return (TILE4 * 4) / maxd;
}

/** The registry name of a tiled kernel for headDim bucket maxd, with loops over a row unrolled or not. */
export function attentionKernelName(kind: string, maxd: number, unrolled: boolean): string {
  return `${kind}${maxd}${unrolled ? 'Unrolled' : ''}`;
}

/*
 * Parameters shared by the three tiled kernels:
 * 0 batch, 1 queryHeads, 2 kvHeads, 3 queryLen, 4 keyLen, 5 keyStride, 6 headDim, 7 scale (f32), 8 causal,
 * 9 useMask, 10 maskOff (where the mask starts in its buffer), 11 rows (queries or keys) per workgroup,
 * 12 lanes per row, 13 blocks per (batch, head) or, in attentionBackwardKey, per (batch, kv head).
 */
const SHAPE = /* wgsl */ `
const NEG_INF_BITS = 0xff800000u;
// Below every real score: the running max before any key is seen.
const NO_SCORE = -3.0e38;
// Keys visible to query i: positions 0..keyLimit(i)-1 (queries are the last queryLen of keyLen).
fn keyLimit(i: u32) -> u32 {
  if (pu(8) == 0u) { return pu(4); }
  return u32(clamp(i32(pu(4)) - i32(pu(3)) + i32(i) + 1, 0, i32(pu(4))));
}`;

/** A vec4 of `name` from flat index base (element d0 of a row of length D); zero past D. */
function loader(name: string): string {
  return /* wgsl */ `
fn ld_${name}(base: u32, d0: u32, D: u32) -> vec4f {
  if (d0 + 4u <= D) { return vec4f(${name}[base], ${name}[base + 1u], ${name}[base + 2u], ${name}[base + 3u]); }
  var r = vec4f(0.0);
  for (var u = 0u; u < 4u; u++) { if (d0 + u < D) { r[u] = ${name}[base + u]; } }
  return r;
}`;
}

/** Stores the first D − d0 components of x at flat index base of `name`. */
function storer(name: string): string {
  return /* wgsl */ `
fn st_${name}(base: u32, d0: u32, D: u32, x: vec4f) {
  for (var u = 0u; u < 4u; u++) { if (d0 + u < D) { ${name}[base + u] = x[u]; } }
}`;
}

function consts(maxd: number): string {
  const d4 = maxd / 4;
  return /* wgsl */ `
const D4 = ${d4}u;
const BK = ${attentionTileRows(maxd)}u;
const TILE4 = ${TILE4}u;
// vec4s per invocation per round when lanes are merged through tile a (64·CH ≤ TILE4).
const CH = ${Math.min(8, d4)}u;
var<workgroup> ta: array<vec4f, TILE4>;
var<workgroup> tb: array<vec4f, TILE4>;`;
}

function entry(unrolled: boolean): string {
  return /* wgsl */ `
@compute @workgroup_size(${ATTENTION_WORKGROUP})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32,
        @builtin(num_workgroups) groups: vec3u) {
  let B = pu(0); let H = pu(1); let G = pu(2); let T = pu(3); let S = pu(4); let KS = pu(5); let D = pu(6);
  let scale = pf(7);
  let ND4 = ${unrolled ? 'D4' : '(D + 3u) / 4u'};`;
}

/**
 * The skeleton of the query-block kernels (forward and dq): the workgroup's rows, keys streamed through
 * the tiles (K in ta, V in tb), `perKey` run for each key the row sees, then the lanes of each row summed
 * (after `merge` has computed the factor `a` each lane's acc is scaled by and `inv`, the row's final factor)
 * and stored with `store`.
 */
function queryBlockKernel(o: {
  maxd: number;
  unrolled: boolean;
  decls: string;
  keyKept: string;
  init: string;
  perKey: string;
  merge: string;
  store: string;
}): string {
  return `${PRELUDE}
${o.decls}
${consts(o.maxd)}
${SHAPE}
fn keyKept(b: u32, j: u32) -> bool { return pu(9) == 0u || ${o.keyKept} != 0; }
${entry(o.unrolled)}
  let QR = pu(11); let KL = pu(12); let blocks = pu(13);
  let wid = rowId(wg, groups);
  if (wid >= B * H * blocks) { return; }
  let qb = wid % blocks; let bh = wid / blocks; let h = bh % H; let b = bh / H; let g = h / (H / G);
  let r = t / KL; let lane = t % KL;
  let i = qb * QR + r;
  let rowOk = i < T;
  // Keys any row of the block may see: the tiles stop there for the whole workgroup.
  let kEnd = keyLimit(min(qb * QR + QR, T) - 1u);
  let qo = ((b * T + i) * H + h) * D;
  var acc: array<vec4f, D4>;
${o.init}
  let kvRow = b * KS * G + g;
  for (var j0 = 0u; j0 < kEnd; j0 += BK) {
    for (var e = t; e < TILE4; e += ${ATTENTION_WORKGROUP}u) {
      let j = j0 + e / D4; let d0 = 4u * (e % D4);
      var kx = vec4f(0.0); var vx = vec4f(0.0);
      if (j < kEnd) { let at = (kvRow + j * G) * D + d0; kx = ld_k(at, d0, D); vx = ld_v(at, d0, D); }
      ta[e] = kx; tb[e] = vx;
    }
    workgroupBarrier();
    for (var jj = lane; jj < BK; jj += KL) {
      let j = j0 + jj;
      if (j < lim && keyKept(b, j)) {
        let kt = jj * D4;
${o.perKey}
      }
    }
    workgroupBarrier();
  }
${o.merge}
  for (var c0 = 0u; c0 < D4; c0 += CH) {
    for (var x = 0u; x < CH; x++) { ta[t * CH + x] = acc[c0 + x] * a; }
    workgroupBarrier();
    for (var x = lane; x < CH; x += KL) {
      var sum = vec4f(0.0);
      for (var u = 0u; u < KL; u++) { sum += ta[(r * KL + u) * CH + x]; }
      let d0 = 4u * (c0 + x);
      if (rowOk) { ${o.store}(qo + d0, d0, D, sum * inv); }
    }
    workgroupBarrier();
  }
}`;
}

function forward(maxd: number, unrolled: boolean): string {
  return queryBlockKernel({
    maxd,
    unrolled,
    decls: /* wgsl */ `
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<i32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<u32>;
${loader('q')}${loader('k')}${loader('v')}${storer('out')}`,
    keyKept: 'mask[pu(10) + b * pu(4) + j]',
    init: /* wgsl */ `
  let lim = select(0u, keyLimit(i), rowOk);
  var qv: array<vec4f, D4>;
  if (rowOk) { for (var c = 0u; c < ND4; c++) { qv[c] = ld_q(qo + 4u * c, 4u * c, D); } }
  var m = NO_SCORE;
  var l = 0.0;`,
    perKey: /* wgsl */ `
        var s = 0.0;
        for (var c = 0u; c < ND4; c++) { s += dot(qv[c], ta[kt + c]); }
        s *= scale;
        if (s > m) {
          let grow = exp(m - s);
          l *= grow;
          for (var c = 0u; c < ND4; c++) { acc[c] *= grow; }
          m = s;
        }
        let p = exp(s - m);
        l += p;
        for (var c = 0u; c < ND4; c++) { acc[c] += p * tb[kt + c]; }`,
    // The row's max and sum over its lanes, through tb (free once the key loop is done).
    merge: /* wgsl */ `
  tb[t] = vec4f(m, l, 0.0, 0.0);
  workgroupBarrier();
  var M = NO_SCORE;
  for (var u = 0u; u < KL; u++) { M = max(M, tb[r * KL + u].x); }
  var L = 0.0;
  for (var u = 0u; u < KL; u++) { let e = tb[r * KL + u]; L += e.y * exp(e.x - M); }
  let a = exp(m - M);
  let inv = select(0.0, 1.0 / L, L > 0.0);
  if (rowOk && lane == 0u) { lse[(b * H + h) * T + i] = select(NEG_INF_BITS, bitcast<u32>(M + log(L)), L > 0.0); }`,
    store: 'st_out',
  });
}

function backwardQuery(maxd: number, unrolled: boolean): string {
  return queryBlockKernel({
    maxd,
    unrolled,
    decls: /* wgsl */ `
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> aux: array<u32>;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
${loader('q')}${loader('k')}${loader('v')}${loader('dout')}${storer('dq')}`,
    keyKept: 'aux[pu(10) + b * pu(4) + j]',
    init: /* wgsl */ `
  let row = (b * H + h) * T + i;
  var lseBits = NEG_INF_BITS;
  var delta = 0.0;
  if (rowOk) { lseBits = aux[2u * row]; delta = bitcast<f32>(aux[2u * row + 1u]); }
  let lim = select(0u, keyLimit(i), lseBits != NEG_INF_BITS);
  let lseRow = select(0.0, bitcast<f32>(lseBits), lseBits != NEG_INF_BITS);
  var qv: array<vec4f, D4>;
  var dov: array<vec4f, D4>;
  if (rowOk) {
    for (var c = 0u; c < ND4; c++) { qv[c] = ld_q(qo + 4u * c, 4u * c, D); dov[c] = ld_dout(qo + 4u * c, 4u * c, D); }
  }`,
    perKey: /* wgsl */ `
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < ND4; c++) { s += dot(qv[c], ta[kt + c]); dp += dot(dov[c], tb[kt + c]); }
        let ds = exp(s * scale - lseRow) * (dp - delta) * scale;
        for (var c = 0u; c < ND4; c++) { acc[c] += ds * ta[kt + c]; }`,
    merge: /* wgsl */ `
  let a = 1.0;
  let inv = 1.0;`,
    store: 'st_dq',
  });
}

function backwardKey(maxd: number, unrolled: boolean): string {
  return `${PRELUDE}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read> aux: array<u32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dv: array<f32>;
${loader('q')}${loader('k')}${loader('v')}${loader('dout')}${storer('dk')}${storer('dv')}
${consts(maxd)}
${SHAPE}
${entry(unrolled)}
  let KR = pu(11); let blocks = pu(13);
  let wid = rowId(wg, groups);
  if (wid >= B * G * blocks) { return; }
  let kb = wid % blocks; let bg = wid / blocks; let g = bg % G; let b = bg / G;
  let group = H / G;
  let j = kb * KR + t;
  let keyOk = j < S && (pu(9) == 0u || aux[pu(10) + b * S + j] != 0u);
  let ko = ((b * KS + j) * G + g) * D;
  var kv: array<vec4f, D4>;
  var vv: array<vec4f, D4>;
  var dk4: array<vec4f, D4>;
  var dv4: array<vec4f, D4>;
  if (keyOk) {
    for (var c = 0u; c < ND4; c++) { kv[c] = ld_k(ko + 4u * c, 4u * c, D); vv[c] = ld_v(ko + 4u * c, 4u * c, D); }
  }
  // The first query that sees the block's first key (causal: key j is visible from query j − (S − T) on).
  let j0 = kb * KR;
  var iStart = 0u;
  if (j0 >= S) { iStart = T; } else if (pu(8) != 0u) { iStart = u32(max(i32(j0) - (i32(S) - i32(T)), 0)); }
  if (iStart < T) { iStart = iStart / BK * BK; } else { iStart = T; }
  for (var hh = 0u; hh < group; hh++) {
    let h = g * group + hh;
    for (var i0 = iStart; i0 < T; i0 += BK) {
      for (var e = t; e < TILE4; e += ${ATTENTION_WORKGROUP}u) {
        let i = i0 + e / D4; let d0 = 4u * (e % D4);
        var qx = vec4f(0.0); var dx = vec4f(0.0);
        if (i < T) { let at = ((b * T + i) * H + h) * D + d0; qx = ld_q(at, d0, D); dx = ld_dout(at, d0, D); }
        ta[e] = qx; tb[e] = dx;
      }
      workgroupBarrier();
      if (keyOk) {
        for (var ii = 0u; ii < BK; ii++) {
          let i = i0 + ii;
          if (i >= T || j >= keyLimit(i)) { continue; }
          let row = (b * H + h) * T + i;
          let lseBits = aux[2u * row];
          if (lseBits == NEG_INF_BITS) { continue; }
          let delta = bitcast<f32>(aux[2u * row + 1u]);
          let qt = ii * D4;
          var s = 0.0;
          var dp = 0.0;
          for (var c = 0u; c < ND4; c++) { s += dot(ta[qt + c], kv[c]); dp += dot(tb[qt + c], vv[c]); }
          let p = exp(s * scale - bitcast<f32>(lseBits));
          let ds = p * (dp - delta) * scale;
          for (var c = 0u; c < ND4; c++) { dv4[c] += p * tb[qt + c]; dk4[c] += ds * ta[qt + c]; }
        }
      }
      workgroupBarrier();
    }
  }
  if (j < KS) {
    for (var c = 0u; c < ND4; c++) { st_dk(ko + 4u * c, 4u * c, D, dk4[c]); st_dv(ko + 4u * c, 4u * c, D, dv4[c]); }
  }
}`;
}

export const attentionKernels: Record<string, string> = {
  // Per query row (flat, 256 a group): aux[2r] = lse bits, aux[2r+1] = Σ dout∘out. P: rows, heads, queryLen, headDim
  attentionDelta: `${PRELUDE}
@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<u32>;
@group(0) @binding(4) var<storage, read_write> aux: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) groups: vec3u) {
  let row = flatId(wg, lid, groups);
  if (row >= pu(0)) { return; }
  let H = pu(1); let T = pu(2); let D = pu(3);
  let i = row % T; let bh = row / T; let h = bh % H; let b = bh / H;
  let o = ((b * T + i) * H + h) * D;
  var s = 0.0;
  for (var d = 0u; d < D; d++) { s += dout[o + d] * out[o + d]; }
  aux[2u * row] = lse[row];
  aux[2u * row + 1u] = bitcast<u32>(s);
}`,
  ...Object.fromEntries(
    ATTENTION_DIMS.flatMap((d) =>
      [false, true].flatMap((unrolled) => [
        [attentionKernelName('attentionForward', d, unrolled), forward(d, unrolled)],
        [attentionKernelName('attentionBackwardQuery', d, unrolled), backwardQuery(d, unrolled)],
        [attentionKernelName('attentionBackwardKey', d, unrolled), backwardKey(d, unrolled)],
      ]),
    ),
  ),
};
