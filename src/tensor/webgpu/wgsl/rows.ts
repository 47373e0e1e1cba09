/**
 * WGSL for the model's row-wise kernels (RMSNorm, L2 normalisation, softmax, log-softmax, cross-entropy:
 * one workgroup per row, each invocation striding by 256 over the row, then a workgroup reduction; the
 * norms walk short rows in one invocation each, see RowScheme) and its element-wise ones (rotary embedding,
 * SiLU, SwiGLU, AdamW: flat). Formulas follow native/norm.c, softmax.c, loss.c, elementwise.c and optim.c;
 * sums are float32 here (WGSL has no f64), which stays well inside 1e-4 of the native double sums even over
 * a 151,936-long vocabulary row.
 */
import { FINITE, PRELUDE, flatKernel } from './prelude.js';

/**
 * Workgroup sum and max over one value per invocation. The result comes back through
 * workgroupUniformLoad, so callers may branch on it before a later barrier, and `red` is free for the
 * next reduction once it returns (that load ends with a barrier).
 */
const REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, 256>;
var<workgroup> result: f32;
fn wgSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { red[lid] += red[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { result = red[0]; }
  return workgroupUniformLoad(&result);
}
fn wgMax(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { red[lid] = select(red[lid], red[lid + w], red[lid + w] > red[lid]); }
    workgroupBarrier();
  }
  if (lid == 0u) { result = red[0]; }
  return workgroupUniformLoad(&result);
}
fn isNegInf(x: f32) -> bool { return bitcast<u32>(x) == 0xff800000u; }`;

/** A kernel with one workgroup per row; the body sees `row` (uniform) and `lid`. */
function rowKernel(decls: string, body: string): string {
  return `${PRELUDE}
${REDUCE}
${decls}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) groups: vec3u) {
  let row = rowId(wg, groups);
${body}
}`;
}

/**
 * How a norm kernel covers a row: a workgroup of 256 invocations striding over it and reducing in workgroup
 * memory, or one invocation walking it alone. Short rows (a small model's hidden size) take the second: with
 * a few values per invocation, the first spends its time at its eight barriers, most of all on a CPU's
 * Vulkan (lavapipe), where a workgroup is emulated. A kernel is written once over a scheme: `each` opens a
 * loop over the row's j, `sum`/`max` reduce one value per invocation to the row's, `once` guards the
 * write of the row's own value (its rstd or norm).
 */
interface RowScheme {
  each: string;
  sum: (v: string) => string;
  max: (v: string) => string;
  once: string;
}
const STRIDED: RowScheme = {
  each: 'for (var j = lid; j < n; j += 256u)',
  sum: (v) => `wgSum(${v}, lid)`,
  max: (v) => `wgMax(${v}, lid)`,
  once: 'if (lid == 0u) ',
};
const ALONE: RowScheme = { each: 'for (var j = 0u; j < n; j++)', sum: (v) => v, max: (v) => v, once: '' };

/**
 * `name` (a workgroup per row) and `${name}Short` (an invocation per row, the row count in parameter
 * `rowsAt`, after the others) from one body.
 */
function normKernels(
  name: string,
  decls: string,
  body: (r: RowScheme) => string,
  rowsAt: number,
): Record<string, string> {
  return {
    [name]: rowKernel(decls, body(STRIDED)),
    [`${name}Short`]: flatKernel(decls, `  if (i >= pu(${rowsAt})) { return; }\n  let row = i;\n${body(ALONE)}`),
  };
}

/**
 * `mx` (the row's max, starting from its first element so no -Inf literal is needed; rows are never
 * empty here) and `total` = Σ exp(x − mx) over row `o`…`o + n` of buffer `b`, as native/rowmath.h does.
 */
const maxAndExpSum = (b: string): string => /* wgsl */ `
  var m = ${b}[o];
  for (var j = lid; j < n; j += 256u) { let v = ${b}[o + j]; m = select(m, v, v > m); }
  let mx = wgMax(m, lid);
  var s = 0.0;
  for (var j = lid; j < n; j += 256u) { s += exp(${b}[o + j] - mx); }
  let total = wgSum(s, lid);`;

/** log Σ exp of the row: −Inf for a row that is all −Inf (row_lse). */
const LSE = /* wgsl */ `
  var lse = mx + log(total);
  if (isNegInf(mx)) { lse = mx; }`;

/**
 * sigmoid with exp's argument clamped so it never overflows (WGSL leaves overflow indeterminate), and 0 where
 * float32's exp(−x) is Inf (native sr3_expf, PyTorch): silu there is −0 as theirs is, not x times a
 * clamped sigmoid's 3e-39.
 */
const SIGMOID = /* wgsl */ `
fn sigmoid(x: f32) -> f32 {
  if (-x > 88.7228) { return 0.0; }
  return 1.0 / (1.0 + exp(clamp(-x, -87.3, 88.72)));
}`;

/**
 * silu(x) = x·sigmoid(x) and its derivative, with PyTorch's (and the CPU backends') values where x is not
 * finite: silu(+Inf) = +Inf, silu(−Inf) = −Inf·0 = NaN, silu'(±Inf) = NaN. The clamped sigmoid never reaches
 * 0 or 1, and WGSL lets a compiler assume arithmetic never meets Inf or NaN, so these come from x's bits
 * (quiet bit set, as the CPU's −Inf·0 gives), never from arithmetic.
 */
const SILU = /* wgsl */ `${SIGMOID}
${FINITE}
fn quietNan(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) | 0x7fc00000u); }
fn silu(x: f32) -> f32 {
  if (isFinite(x)) { return x * sigmoid(x); }
  return select(quietNan(x), x, bitcast<u32>(x) == 0x7f800000u);
}
fn siluGrad(x: f32) -> f32 {
  if (!isFinite(x)) { return quietNan(x); }
  let s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}`;

const ro = (binding: number, name: string, type = 'f32'): string =>
  `@group(0) @binding(${binding}) var<storage, read> ${name}: array<${type}>;`;
const rw = (binding: number, name: string, type = 'f32'): string =>
  `@group(0) @binding(${binding}) var<storage, read_write> ${name}: array<${type}>;`;

/**
 * Rotary embedding over [rows, heads, headDim]: invocation i rotates the pair (k, k + half) of one head,
 * so reading both before writing both makes the in-place variant (one read_write buffer) safe.
 * P: rows·heads·half, heads, half, sign (−1 for the inverse rotation)
 */
function rope(inPlace: boolean): string {
  const out = inPlace ? 'x' : 'out';
  const b = inPlace ? 1 : 2;
  const decls = [
    inPlace ? rw(1, 'x') : `${ro(1, 'x')}\n${rw(2, 'out')}`,
    ro(b + 1, 'cosT'),
    ro(b + 2, 'sinT'),
    ro(b + 3, 'pos', 'i32'),
  ].join('\n');
  return flatKernel(
    decls,
    `  if (i >= pu(0)) { return; }
  let half = pu(2);
  let k = i % half;
  let rh = i / half;
  let t = u32(pos[rh / pu(1)]) * half + k;
  let c = cosT[t];
  let s = pf(3) * sinT[t];
  let o = rh * 2u * half + k;
  let x1 = x[o];
  let x2 = x[o + half];
  ${out}[o] = x1 * c - x2 * s;
  ${out}[o + half] = x2 * c + x1 * s;`,
  );
}

export const rowKernels: Record<string, string> = {
  // y = x·rstd·w, rstd = 1/sqrt(mean(x²) + eps). P: dim, eps (, rows)
  ...normKernels(
    'rmsnormForward',
    [ro(1, 'x'), ro(2, 'w'), rw(3, 'y'), rw(4, 'rstd')].join('\n'),
    (r) => `  let n = pu(0);
  let o = row * n;
  var s = 0.0;
  ${r.each} { let v = x[o + j]; s += v * v; }
  let ms = ${r.sum('s')} / f32(n);
  var rs = 1.0 / sqrt(ms + pf(1));
  if (bitcast<u32>(ms) == 0x7f800000u) {
    // squares of |x| above about 1.8e19 overflow float32 where the native double sums do not: such a row is
    // summed again divided by its largest |x| (one holding ±Inf keeps rs = 0, as in double)
    var m = 0.0;
    ${r.each} { m = max(m, abs(x[o + j])); }
    let mx = ${r.max('m')};
    if (bitcast<u32>(mx) != 0x7f800000u) {
      var q = 0.0;
      ${r.each} { let v = x[o + j] / mx; q += v * v; }
      rs = 1.0 / (mx * sqrt(${r.sum('q')} / f32(n) + pf(1) / mx / mx));
    }
  }
  ${r.once}{ rstd[row] = rs; }
  ${r.each} { y[o + j] = x[o + j] * rs * w[j]; }`,
    2,
  ),
  // dx = rs·dy∘w − x·rs³·mean(dy∘w∘x), taken as rs·(dy∘w − (x·rs)·mean(dy∘w∘(x·rs))): x·rs is near 1 where rs³
  // alone would underflow (rs ≈ 1e-20 for |x| ≈ 1e20). P: dim (, rows)
  ...normKernels(
    'rmsnormBackward',
    [ro(1, 'dy'), ro(2, 'x'), ro(3, 'w'), ro(4, 'rstd'), rw(5, 'dx')].join('\n'),
    (r) => `  let n = pu(0);
  let o = row * n;
  let rs = rstd[row];
  var s = 0.0;
  ${r.each} { s += dy[o + j] * w[j] * (x[o + j] * rs); }
  let k = ${r.sum('s')} / f32(n);
  ${r.each} { dx[o + j] = rs * (dy[o + j] * w[j] - k * (x[o + j] * rs)); }`,
    1,
  ),
  // RMSNorm's ∂L/∂w, pass 1: part[c, j] = Σ over rows r of chunk c of dy[r, j]·x[r, j]·rstd[r].
  // P: chunks·dim, dim, rows, rows per chunk
  rmsnormDwPartial: flatKernel(
    [ro(1, 'dy'), ro(2, 'x'), ro(3, 'rstd'), rw(4, 'part')].join('\n'),
    `  if (i >= pu(0)) { return; }
  let dim = pu(1);
  let j = i % dim;
  let r0 = (i / dim) * pu(3);
  let r1 = min(r0 + pu(3), pu(2));
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += dy[r * dim + j] * (x[r * dim + j] * rstd[r]); }
  part[i] = s;`,
  ),
  // Pass 2, in a fixed order (deterministic): out[j] += Σ_c part[c, j]. P: dim, chunks
  columnSumAdd: flatKernel(
    [ro(1, 'part'), rw(2, 'out')].join('\n'),
    `  if (i >= pu(0)) { return; }
  var s = 0.0;
  for (var c = 0u; c < pu(1); c++) { s += part[c * pu(0) + i]; }
  out[i] += s;`,
  ),
  // y = x / max(‖x‖, eps), norms[r] = max(‖x‖, eps), with ‖x‖ = max|x|·‖x / max|x|‖: float32 squares of
  // values below about 1e-19 are subnormal (0 on GPUs that flush them) and above 1.8e19 overflow, where the
  // native double sums do neither. A row of zeros (divided by 1, not 0) and a row holding ±Inf (norm Inf,
  // as in double) are left unscaled. P: dim, eps (, rows)
  ...normKernels(
    'l2normalizeForward',
    [ro(1, 'x'), rw(2, 'y'), rw(3, 'norms')].join('\n'),
    (r) => `  let n = pu(0);
  let o = row * n;
  var m = 0.0;
  ${r.each} { m = max(m, abs(x[o + j])); }
  let mx = ${r.max('m')};
  let d = select(mx, 1.0, mx == 0.0 || bitcast<u32>(mx) == 0x7f800000u);
  var s = 0.0;
  ${r.each} { let v = x[o + j] / d; s += v * v; }
  let q = d * sqrt(${r.sum('s')});
  let nrm = select(q, pf(1), q < pf(1));
  ${r.once}{ norms[row] = nrm; }
  ${r.each} { y[o + j] = x[o + j] / nrm; }`,
    2,
  ),
  // dx = (g − y·Σ g∘y) / norm, or g / norm where the forward clamped the norm to eps (norm ≤ P[1]).
  // P: dim, the largest float32 ≤ eps (so the comparison is the native one against eps in double) (, rows)
  ...normKernels(
    'l2normalizeBackward',
    [ro(1, 'g'), ro(2, 'y'), ro(3, 'norms'), rw(4, 'dx')].join('\n'),
    (r) => `  let n = pu(0);
  let o = row * n;
  let nrm = norms[row];
  var s = 0.0;
  ${r.each} { s += g[o + j] * y[o + j]; }
  let dot = select(0.0, ${r.sum('s')}, nrm > pf(1));
  ${r.each} { dx[o + j] = (g[o + j] - y[o + j] * dot) / nrm; }`,
    2,
  ),
  rope: rope(false),
  ropeInPlace: rope(true),
  // P: n
  softmaxForward: rowKernel(
    [ro(1, 'x'), rw(2, 'y')].join('\n'),
    `  let n = pu(0);
  let o = row * n;
${maxAndExpSum('x')}
  let inv = 1.0 / total;
  for (var j = lid; j < n; j += 256u) { y[o + j] = exp(x[o + j] - mx) * inv; }`,
  ),
  // dx = y∘(dy − Σ dy∘y). P: n
  softmaxBackward: rowKernel(
    [ro(1, 'y'), ro(2, 'dy'), rw(3, 'dx')].join('\n'),
    `  let n = pu(0);
  let o = row * n;
  var s = 0.0;
  for (var j = lid; j < n; j += 256u) { s += dy[o + j] * y[o + j]; }
  let d = wgSum(s, lid);
  for (var j = lid; j < n; j += 256u) { dx[o + j] = y[o + j] * (dy[o + j] - d); }`,
  ),
  // P: n
  logSoftmaxForward: rowKernel(
    [ro(1, 'x'), rw(2, 'y')].join('\n'),
    `  let n = pu(0);
  let o = row * n;
${maxAndExpSum('x')}
${LSE}
  for (var j = lid; j < n; j += 256u) { y[o + j] = x[o + j] - lse; }`,
  ),
  // dx = dy − exp(y)·Σ dy. P: n
  logSoftmaxBackward: rowKernel(
    [ro(1, 'y'), ro(2, 'dy'), rw(3, 'dx')].join('\n'),
    `  let n = pu(0);
  let o = row * n;
  var s = 0.0;
  for (var j = lid; j < n; j += 256u) { s += dy[o + j]; }
  let d = wgSum(s, lid);
  for (var j = lid; j < n; j += 256u) { dx[o + j] = dy[o + j] - exp(y[o + j]) * d; }`,
  ),
  // loss[r] = lse(logits[r]) − logits[r, t]; both 0 where t = ignoreIndex. P: vocab, ignoreIndex
  crossEntropyForward: rowKernel(
    [ro(1, 'logits'), ro(2, 'targets', 'i32'), rw(3, 'loss'), rw(4, 'lseOut')].join('\n'),
    `  let t = targets[row];
  if (t == pi(1)) {
    if (lid == 0u) { loss[row] = 0.0; lseOut[row] = 0.0; }
    return;
  }
  let n = pu(0);
  let o = row * n;
${maxAndExpSum('logits')}
${LSE}
  if (lid == 0u) { lseOut[row] = lse; loss[row] = lse - logits[o + u32(t)]; }`,
  ),
  // picks[2r] = the row's first largest logit's index (NaN never largest; 0 when none is above −Inf, as
  // sampling.ts's argmax), picks[2r + 1] = that logit − log Σ exp(row): its log-probability.
  // P: vocab, −Inf (WGSL has no literal for it)
  greedyPick: rowKernel(
    [ro(1, 'logits'), rw(2, 'picks'), 'var<workgroup> redIndex: array<u32, 256>;'].join('\n'),
    `  let n = pu(0);
  let o = row * n;
  var best = pf(1);
  var at = 0u;
  for (var j = lid; j < n; j += 256u) {
    let v = logits[o + j];
    // NaN skipped by its bits: WGSL lets an implementation assume there is none, so no comparison may
    if ((bitcast<u32>(v) & 0x7fffffffu) <= 0x7f800000u && v > best) { best = v; at = j; }
  }
  red[lid] = best;
  redIndex[lid] = at;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) {
      let v = red[lid + w];
      let i = redIndex[lid + w];
      if (v > red[lid] || (v == red[lid] && i < redIndex[lid])) { red[lid] = v; redIndex[lid] = i; }
    }
    workgroupBarrier();
  }
  let mx = red[0];
  let index = redIndex[0];
  workgroupBarrier();
  // the row's largest value is the log-sum-exp's shift too: one more pass over the row, not two
  var s = 0.0;
  for (var j = lid; j < n; j += 256u) { s += exp(logits[o + j] - mx); }
  let total = wgSum(s, lid);
${LSE}
  if (lid == 0u) { picks[2u * row] = f32(index); picks[2u * row + 1u] = mx - lse; }`,
  ),
  // A draw from softmax(row / t), as sampling.ts's drawInIdOrder: the first token, in id order, at which
  // the running sum of probabilities passes draws[r]·(their total); where rounding leaves it short of that,
  // the last token with any probability. picks[2r] = the token, picks[2r + 1] = its log-probability. Each
  // invocation owns a contiguous segment of the row; one invocation adds the segments' sums in order, so
  // the running sum is a fixed order of float32 additions (the same token every run). A value that is not
  // finite has probability 0 (tested by its bits: WGSL may assume there are no NaN or Inf); a row with no
  // finite value gives token 0 and a NaN log-probability. P: vocab, t, −Inf, NaN (no literals for them)
  samplePick: rowKernel(
    [
      ro(1, 'logits'),
      ro(2, 'draws'),
      rw(3, 'picks'),
      'var<workgroup> parts: array<f32, 256>;',
      'var<workgroup> redIndex: array<u32, 256>;',
      'fn finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) < 0x7f800000u; }',
    ].join('\n'),
    `  let n = pu(0);
  let o = row * n;
  let t = pf(1);
  var m = pf(2);
  for (var j = lid; j < n; j += 256u) {
    let v = logits[o + j];
    if (finite(v) && v / t > m) { m = v / t; }
  }
  let mx = wgMax(m, lid);
  if (isNegInf(mx)) {
    if (lid == 0u) { picks[2u * row] = 0.0; picks[2u * row + 1u] = pf(3); }
    return;
  }
  var s = 0.0;
  for (var j = lid; j < n; j += 256u) {
    let v = logits[o + j];
    if (finite(v)) { s += exp(v / t - mx); }
  }
  let lse = mx + log(wgSum(s, lid));
  let span = (n + 255u) / 256u;
  let lo = min(lid * span, n);
  let hi = min(lo + span, n);
  var part = 0.0;
  for (var j = lo; j < hi; j++) {
    let v = logits[o + j];
    if (finite(v)) { part += exp(v / t - lse); }
  }
  parts[lid] = part;
  workgroupBarrier();
  if (lid == 0u) {
    var acc = 0.0;
    for (var i = 0u; i < 256u; i++) { let p = parts[i]; parts[i] = acc; acc += p; }
    result = acc;
  }
  // a draw just below 1 rounds to 1 in float32: kept below it, as the host's draw is
  let goal = min(draws[row], 0.99999994) * workgroupUniformLoad(&result);
  // the first crossing in this segment, and the segment's last token with any probability (1-based)
  var cum = parts[lid];
  var at = 0xffffffffu;
  var last = 0u;
  for (var j = lo; j < hi; j++) {
    let v = logits[o + j];
    if (!finite(v)) { continue; }
    let p = exp(v / t - lse);
    if (p > 0.0) {
      last = j + 1u;
      cum += p;
      if (cum > goal) { at = j; break; }
    }
  }
  redIndex[lid] = at;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (lid < w) { redIndex[lid] = min(redIndex[lid], redIndex[lid + w]); }
    workgroupBarrier();
  }
  var index = workgroupUniformLoad(&redIndex[0]);
  if (index == 0xffffffffu) {
    redIndex[lid] = last;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
      if (lid < w) { redIndex[lid] = max(redIndex[lid], redIndex[lid + w]); }
      workgroupBarrier();
    }
    index = max(workgroupUniformLoad(&redIndex[0]), 1u) - 1u;
  }
  if (lid == 0u) { picks[2u * row] = f32(index); picks[2u * row + 1u] = logits[o + index] / t - lse; }`,
  ),
  // dlogits[r] = scale[r]·(exp(logits[r] − lse[r]) − onehot(t)); 0 for ignored rows.
  // P: rows·vocab, vocab, ignoreIndex
  crossEntropyBackward: flatKernel(
    [ro(1, 'logits'), ro(2, 'targets', 'i32'), ro(3, 'lse'), ro(4, 'scale'), rw(5, 'dlogits')].join('\n'),
    `  if (i >= pu(0)) { return; }
  let r = i / pu(1);
  let t = targets[r];
  if (t == pi(2)) { dlogits[i] = 0.0; return; }
  let s = scale[r];
  var d = s * exp(logits[i] - lse[r]);
  if (u32(t) == i % pu(1)) { d -= s; }
  dlogits[i] = d;`,
  ),
  // P: n
  siluForward: flatKernel(`${ro(1, 'x')}\n${rw(2, 'y')}\n${SILU}`, '  if (i < pu(0)) { y[i] = silu(x[i]); }'),
  // P: n
  siluBackward: flatKernel(
    `${ro(1, 'x')}\n${ro(2, 'dy')}\n${rw(3, 'dx')}\n${SILU}`,
    '  if (i < pu(0)) { dx[i] = dy[i] * siluGrad(x[i]); }',
  ),
  // P: n
  swigluForward: flatKernel(
    `${ro(1, 'gate')}\n${ro(2, 'up')}\n${rw(3, 'y')}\n${SILU}`,
    '  if (i < pu(0)) { y[i] = silu(gate[i]) * up[i]; }',
  ),
  // P: n
  swigluBackward: flatKernel(
    [ro(1, 'gate'), ro(2, 'up'), ro(3, 'dy'), rw(4, 'dgate'), rw(5, 'dup'), SILU].join('\n'),
    `  if (i >= pu(0)) { return; }
  let g = gate[i];
  let d = dy[i];
  dup[i] = d * silu(g);
  dgate[i] = d * up[i] * siluGrad(g);`,
  ),
  // AdamW in place. P: n, lr, beta1, beta2, eps, decay = 1 − lr·wd, 1 − beta1, 1 − beta2, 1/bc1, √(1/bc2)
  adamw: flatKernel(
    [rw(1, 'param'), ro(2, 'grad'), rw(3, 'm'), rw(4, 'v')].join('\n'),
    `  if (i >= pu(0)) { return; }
  let g = grad[i];
  let mi = pf(2) * m[i] + pf(6) * g;
  let vi = pf(3) * v[i] + pf(7) * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = param[i] * pf(5) - pf(1) * (mi * pf(8)) / (sqrt(vi) * pf(9) + pf(4));`,
  ),
};
