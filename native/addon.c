/*
 * N-API glue: unpacks positional arguments, checks every length and index range against what the
 * kernel will touch, and only then calls the C kernel. A bad argument throws a JS Error that names
 * the kernel; it must never reach a kernel, which does no checking of its own.
 * Typed arrays are used in place (zero copy); napi_get_typedarray_info already returns the data
 * pointer advanced by the view's byte offset, so subarray views work.
 */
#define NAPI_VERSION 8
#include <cblas.h>
#include <math.h>
#include <node_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "common.h"

typedef struct {
  napi_env env;
  const char *kernel;
  int failed;
} Ctx;

typedef struct {
  void *p;
  size_t n;
} Buf;

static void fail(Ctx *c, const char *fmt, ...) {
  if (c->failed) return;
  char msg[512];
  int off = snprintf(msg, sizeof msg, "search-r3 native %s: ", c->kernel);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + off, sizeof msg - (size_t)off, fmt, ap);
  va_end(ap);
  bool pending = false;
  napi_is_exception_pending(c->env, &pending);
  if (!pending) napi_throw_error(c->env, NULL, msg);
  c->failed = 1;
}

static int is_nullish(Ctx *c, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(c->env, v, &t) != napi_ok) return 0;
  return t == napi_null || t == napi_undefined;
}

static Buf typed(Ctx *c, napi_value v, const char *name, napi_typedarray_type want, const char *wantName,
                 int nullable) {
  Buf b = {NULL, 0};
  if (c->failed) return b;
  if (nullable && is_nullish(c, v)) return b;
  bool is = false;
  napi_typedarray_type type;
  size_t len = 0;
  void *data = NULL;
  if (napi_is_typedarray(c->env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(c->env, v, &type, &len, &data, NULL, NULL) != napi_ok || type != want) {
    fail(c, "%s must be a%s %s", name, nullable ? " null or" : "", wantName);
    return b;
  }
  static float empty[1];
  b.p = data ? data : (void *)empty;
  b.n = len;
  return b;
}
#define F32(v, name) typed(&c, v, name, napi_float32_array, "Float32Array", 0)
#define F32_OR_NULL(v, name) typed(&c, v, name, napi_float32_array, "Float32Array", 1)
#define I32(v, name) typed(&c, v, name, napi_int32_array, "Int32Array", 0)
#define I32_OR_NULL(v, name) typed(&c, v, name, napi_int32_array, "Int32Array", 1)
#define U16(v, name) typed(&c, v, name, napi_uint16_array, "Uint16Array", 0)
#define U8_OR_NULL(v, name) typed(&c, v, name, napi_uint8_array, "Uint8Array", 1)

static double num(Ctx *c, napi_value v, const char *name) {
  double d = 0;
  if (c->failed) return 0;
  if (napi_get_value_double(c->env, v, &d) != napi_ok) fail(c, "%s must be a number", name);
  return d;
}

#define INT_LIMIT 4503599627370496.0 /* 2^52: larger element counts are refused (all offsets stay exact in int64) */

static int64_t integer(Ctx *c, napi_value v, const char *name, double lo, double hi) {
  const double d = num(c, v, name);
  if (c->failed) return 0;
  if (!(d >= lo && d <= hi) || floor(d) != d) {
    fail(c, "%s must be an integer in [%.0f, %.0f], got %g", name, lo, hi, d);
    return 0;
  }
  return (int64_t)d;
}
/* Sizes: non-negative and small enough that sgemm's int arguments and our products cannot overflow. */
#define SIZE(v, name) integer(&c, v, name, 0, 2147483647.0)

static int boolean(Ctx *c, napi_value v) {
  napi_value b;
  bool r = false;
  if (c->failed) return 0;
  if (napi_coerce_to_bool(c->env, v, &b) != napi_ok || napi_get_value_bool(c->env, b, &r) != napi_ok) return 0;
  return r;
}

/* An array-like of integers (Array or typed array); returns its length (at most MAX_DIMS). */
static int int_list(Ctx *c, napi_value v, const char *name, int64_t *out, double lo) {
  if (c->failed) return 0;
  napi_value lenv;
  uint32_t n = 0;
  double dn = 0;
  napi_valuetype t;
  if (napi_typeof(c->env, v, &t) != napi_ok || t != napi_object ||
      napi_get_named_property(c->env, v, "length", &lenv) != napi_ok ||
      napi_get_value_double(c->env, lenv, &dn) != napi_ok) {
    fail(c, "%s must be an array of integers", name);
    return 0;
  }
  if (!(dn >= 0 && dn <= MAX_DIMS)) { fail(c, "%s has %g entries; at most %d axes are supported", name, dn, MAX_DIMS); return 0; }
  n = (uint32_t)dn;
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(c->env, v, i, &e) != napi_ok) { fail(c, "%s[%u] is unreadable", name, i); return 0; }
    char label[64];
    snprintf(label, sizeof label, "%s[%u]", name, i);
    out[i] = integer(c, e, label, lo, 2147483647.0);
    if (c->failed) return 0;
  }
  return (int)n;
}

static void need(Ctx *c, Buf b, const char *name, __int128 needed) {
  if (c->failed) return;
  if ((__int128)b.n < needed)
    fail(c, "%s has length %zu but needs at least %lld", name, b.n, (long long)needed);
}

static void same_len(Ctx *c, Buf b, const char *name, Buf ref, const char *refName) {
  if (c->failed) return;
  if (b.n != ref.n) fail(c, "%s has length %zu but %s has %zu; they must match", name, b.n, refName, ref.n);
}

/* The strided view (off, strides, shape) must lie inside buf. */
static void strided_in(Ctx *c, Buf b, const char *name, int64_t off, const int64_t *st, const int64_t *shape, int nd) {
  if (c->failed) return;
  __int128 lo = off, hi = off;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 0) return; /* empty: nothing is touched */
    const __int128 span = (__int128)st[d] * (shape[d] - 1);
    if (span < 0) lo += span; else hi += span;
  }
  if (lo < 0 || hi >= (__int128)b.n)
    fail(c, "%s is indexed from %lld to %lld but has length %zu", name, (long long)lo, (long long)hi, b.n);
}

#define ARGS(N, NAME)                                                      \
  Ctx c = {env, NAME, 0};                                                  \
  size_t argc = N;                                                         \
  napi_value argv[N > 0 ? N : 1];                                          \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL; \
  if (argc < N) { fail(&c, "expected %d arguments, got %zu", N, argc); return NULL; }

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* ---------------------------------------------------------------- gemm */

/* The ten sizes and flags after a gemm's buffers: batch, m, n, k, transA, transB, three strides, accumulate. */
typedef struct {
  int64_t batch, m, n, k, sA, sB, sC;
  int tA, tB, acc;
} GemmShape;

/* Reads the shape from argv[at..at+9] and checks that a, b and c hold what it touches. */
static GemmShape gemm_shape(Ctx *c, napi_value *argv, int at, Buf a, Buf b, Buf cc) {
  GemmShape s = {0};
  s.batch = integer(c, argv[at], "batch", 0, 2147483647.0);
  s.m = integer(c, argv[at + 1], "m", 0, 2147483647.0);
  s.n = integer(c, argv[at + 2], "n", 0, 2147483647.0);
  s.k = integer(c, argv[at + 3], "k", 0, 2147483647.0);
  s.tA = boolean(c, argv[at + 4]);
  s.tB = boolean(c, argv[at + 5]);
  s.sA = integer(c, argv[at + 6], "strideA", 0, 2147483647.0);
  s.sB = integer(c, argv[at + 7], "strideB", 0, 2147483647.0);
  s.sC = integer(c, argv[at + 8], "strideC", 0, 2147483647.0);
  s.acc = boolean(c, argv[at + 9]);
  if (c->failed || s.batch <= 0 || s.m <= 0 || s.n <= 0) return s;
  const __int128 last = s.batch - 1;
  if (s.k > 0) {
    need(c, a, "a", last * s.sA + (__int128)s.m * s.k);
    need(c, b, "b", last * s.sB + (__int128)s.k * s.n);
  }
  need(c, cc, "c", last * s.sC + (__int128)s.m * s.n);
  return s;
}

static napi_value Gemm(napi_env env, napi_callback_info info) {
  ARGS(13, "gemm");
  Buf a = F32(argv[0], "a"), b = F32(argv[1], "b"), cc = F32(argv[2], "c");
  const GemmShape s = gemm_shape(&c, argv, 3, a, b, cc);
  if (c.failed) return NULL;
  sr3_gemm(a.p, b.p, cc.p, s.batch, s.m, s.n, s.k, s.tA, s.tB, s.sA, s.sB, s.sC, s.acc);
  return undefined(env);
}

/* B, or the table, in 16 bits: the dtype argument is true for bfloat16, false for IEEE f16. */
static napi_value GemmHalf(napi_env env, napi_callback_info info) {
  ARGS(14, "gemmHalf");
  Buf a = F32(argv[0], "a"), b = U16(argv[1], "b"), cc = F32(argv[3], "c");
  const int bf16 = boolean(&c, argv[2]);
  const GemmShape s = gemm_shape(&c, argv, 4, a, b, cc);
  if (c.failed) return NULL;
  sr3_gemm_half(a.p, b.p, bf16, cc.p, s.batch, s.m, s.n, s.k, s.tA, s.tB, s.sA, s.sB, s.sC, s.acc);
  return undefined(env);
}

static napi_value WidenHalf(napi_env env, napi_callback_info info) {
  ARGS(3, "widenHalf");
  Buf src = U16(argv[0], "src"), dst = F32(argv[2], "dst");
  const int bf16 = boolean(&c, argv[1]);
  same_len(&c, dst, "dst", src, "src");
  if (c.failed) return NULL;
  sr3_widen_half(src.p, bf16, dst.p, (int64_t)src.n);
  return undefined(env);
}

static napi_value HalfAllFinite(napi_env env, napi_callback_info info) {
  ARGS(2, "halfAllFinite");
  Buf x = U16(argv[0], "x");
  const int bf16 = boolean(&c, argv[1]);
  if (c.failed) return NULL;
  napi_value r;
  napi_get_boolean(env, sr3_half_all_finite(x.p, bf16, (int64_t)x.n), &r);
  return r;
}

/* ---------------------------------------------------------------- strided */

static napi_value Binary(napi_env env, napi_callback_info info) {
  ARGS(7, "binary");
  const int64_t op = integer(&c, argv[0], "op", 0, 3);
  Buf a = F32(argv[1], "a"), b = F32(argv[3], "b"), out = F32(argv[5], "out");
  int64_t sa[MAX_DIMS], sb[MAX_DIMS], shape[MAX_DIMS];
  const int nd = int_list(&c, argv[6], "shape", shape, 0);
  const int na = int_list(&c, argv[2], "aStrides", sa, -2147483647.0);
  const int nb = int_list(&c, argv[4], "bStrides", sb, -2147483647.0);
  if (c.failed) return NULL;
  if (na != nd || nb != nd) { fail(&c, "aStrides and bStrides need %d entries (one per axis of shape), got %d and %d", nd, na, nb); return NULL; }
  __int128 total = 1;
  for (int d = 0; d < nd; d++) total *= shape[d];
  if (total > (__int128)INT_LIMIT) { fail(&c, "shape has too many elements"); return NULL; }
  need(&c, out, "out", total);
  strided_in(&c, a, "a", 0, sa, shape, nd);
  strided_in(&c, b, "b", 0, sb, shape, nd);
  if (c.failed) return NULL;
  sr3_binary((int)op, a.p, sa, b.p, sb, out.p, shape, nd);
  return undefined(env);
}

static napi_value Copy(napi_env env, napi_callback_info info) {
  ARGS(8, "copy");
  Buf src = F32(argv[0], "src"), dst = F32(argv[3], "dst");
  const int64_t so = SIZE(argv[1], "srcOff"), dOff = SIZE(argv[4], "dstOff");
  int64_t ss[MAX_DIMS], ds[MAX_DIMS], shape[MAX_DIMS];
  const int nd = int_list(&c, argv[6], "shape", shape, 0);
  const int ns = int_list(&c, argv[2], "srcStrides", ss, -2147483647.0);
  const int nds = int_list(&c, argv[5], "dstStrides", ds, -2147483647.0);
  const int acc = boolean(&c, argv[7]);
  if (c.failed) return NULL;
  if (ns != nd || nds != nd) { fail(&c, "srcStrides and dstStrides need %d entries (one per axis of shape), got %d and %d", nd, ns, nds); return NULL; }
  __int128 total = 1;
  for (int d = 0; d < nd; d++) total *= shape[d];
  if (total > (__int128)INT_LIMIT) { fail(&c, "shape has too many elements"); return NULL; }
  strided_in(&c, src, "src", so, ss, shape, nd);
  strided_in(&c, dst, "dst", dOff, ds, shape, nd);
  if (c.failed) return NULL;
  sr3_copy(src.p, so, ss, dst.p, dOff, ds, shape, nd, acc);
  return undefined(env);
}

/* ---------------------------------------------------------------- element-wise */

static napi_value Unary(napi_env env, napi_callback_info info) {
  ARGS(3, "unary");
  const int64_t op = integer(&c, argv[0], "op", 0, 6);
  Buf x = F32(argv[1], "x"), out = F32(argv[2], "out");
  same_len(&c, out, "out", x, "x");
  if (c.failed) return NULL;
  sr3_unary((int)op, x.p, out.p, x.n);
  return undefined(env);
}

static napi_value Axpby(napi_env env, napi_callback_info info) {
  ARGS(4, "axpby");
  const double alpha = num(&c, argv[0], "alpha"), beta = num(&c, argv[2], "beta");
  Buf x = F32(argv[1], "x"), out = F32(argv[3], "out");
  same_len(&c, out, "out", x, "x");
  if (c.failed) return NULL;
  sr3_axpby(alpha, x.p, beta, out.p, x.n);
  return undefined(env);
}

static napi_value SumSquares(napi_env env, napi_callback_info info) {
  ARGS(1, "sumSquares");
  Buf x = F32(argv[0], "x");
  if (c.failed) return NULL;
  napi_value r;
  napi_create_double(env, sr3_sum_squares(x.p, x.n), &r);
  return r;
}

static napi_value AllFinite(napi_env env, napi_callback_info info) {
  ARGS(1, "allFinite");
  Buf x = F32(argv[0], "x");
  if (c.failed) return NULL;
  napi_value r;
  napi_get_boolean(env, sr3_all_finite(x.p, x.n), &r);
  return r;
}

static napi_value Reduce(napi_env env, napi_callback_info info) {
  ARGS(7, "reduce");
  const int64_t op = integer(&c, argv[0], "op", 0, 1);
  Buf x = F32(argv[1], "x"), out = F32(argv[5], "out"), arg = I32_OR_NULL(argv[6], "argmax");
  const int64_t outer = SIZE(argv[2], "outer"), n = SIZE(argv[3], "n"), inner = SIZE(argv[4], "inner");
  if (c.failed) return NULL;
  need(&c, x, "x", (__int128)outer * n * inner);
  need(&c, out, "out", (__int128)outer * inner);
  if (arg.p) need(&c, arg, "argmax", (__int128)outer * inner);
  if (c.failed) return NULL;
  sr3_reduce((int)op, x.p, outer, n, inner, out.p, op == 1 ? arg.p : NULL);
  return undefined(env);
}

static napi_value SiluForward(napi_env env, napi_callback_info info) {
  ARGS(2, "siluForward");
  Buf x = F32(argv[0], "x"), y = F32(argv[1], "y");
  same_len(&c, y, "y", x, "x");
  if (c.failed) return NULL;
  sr3_silu_fwd(x.p, y.p, x.n);
  return undefined(env);
}

static napi_value SiluBackward(napi_env env, napi_callback_info info) {
  ARGS(3, "siluBackward");
  Buf x = F32(argv[0], "x"), dy = F32(argv[1], "dy"), dx = F32(argv[2], "dx");
  same_len(&c, dy, "dy", x, "x");
  same_len(&c, dx, "dx", x, "x");
  if (c.failed) return NULL;
  sr3_silu_bwd(x.p, dy.p, dx.p, x.n);
  return undefined(env);
}

static napi_value SwigluForward(napi_env env, napi_callback_info info) {
  ARGS(3, "swigluForward");
  Buf g = F32(argv[0], "gate"), u = F32(argv[1], "up"), y = F32(argv[2], "y");
  same_len(&c, u, "up", g, "gate");
  same_len(&c, y, "y", g, "gate");
  if (c.failed) return NULL;
  sr3_swiglu_fwd(g.p, u.p, y.p, g.n);
  return undefined(env);
}

static napi_value SwigluBackward(napi_env env, napi_callback_info info) {
  ARGS(5, "swigluBackward");
  Buf g = F32(argv[0], "gate"), u = F32(argv[1], "up"), dy = F32(argv[2], "dy"), dg = F32(argv[3], "dgate"),
      du = F32(argv[4], "dup");
  same_len(&c, u, "up", g, "gate");
  same_len(&c, dy, "dy", g, "gate");
  same_len(&c, dg, "dgate", g, "gate");
  same_len(&c, du, "dup", g, "gate");
  if (c.failed) return NULL;
  sr3_swiglu_bwd(g.p, u.p, dy.p, dg.p, du.p, g.n);
  return undefined(env);
}

static napi_value Adamw(napi_env env, napi_callback_info info) {
  ARGS(11, "adamw");
  Buf p = F32(argv[0], "param"), g = F32(argv[1], "grad"), m = F32(argv[2], "m"), v = F32(argv[3], "v");
  const double lr = num(&c, argv[4], "lr"), b1 = num(&c, argv[5], "beta1"), b2 = num(&c, argv[6], "beta2"),
               eps = num(&c, argv[7], "eps"), wd = num(&c, argv[8], "weightDecay"), bc1 = num(&c, argv[9], "bc1"),
               bc2 = num(&c, argv[10], "bc2");
  same_len(&c, g, "grad", p, "param");
  same_len(&c, m, "m", p, "param");
  same_len(&c, v, "v", p, "param");
  if (c.failed) return NULL;
  sr3_adamw(p.p, g.p, m.p, v.p, p.n, lr, b1, b2, eps, wd, bc1, bc2);
  return undefined(env);
}

/* ---------------------------------------------------------------- rows */

static napi_value RmsnormForward(napi_env env, napi_callback_info info) {
  ARGS(7, "rmsnormForward");
  Buf x = F32(argv[0], "x"), w = F32(argv[1], "w"), y = F32(argv[2], "y"), rstd = F32(argv[3], "rstd");
  const int64_t rows = SIZE(argv[4], "rows"), dim = SIZE(argv[5], "dim");
  const double eps = num(&c, argv[6], "eps");
  need(&c, x, "x", (__int128)rows * dim);
  need(&c, y, "y", (__int128)rows * dim);
  need(&c, w, "w", dim);
  need(&c, rstd, "rstd", rows);
  if (c.failed) return NULL;
  sr3_rmsnorm_fwd(x.p, w.p, y.p, rstd.p, rows, dim, eps);
  return undefined(env);
}

static napi_value RmsnormBackward(napi_env env, napi_callback_info info) {
  ARGS(8, "rmsnormBackward");
  Buf dy = F32(argv[0], "dy"), x = F32(argv[1], "x"), w = F32(argv[2], "w"), rstd = F32(argv[3], "rstd"),
      dx = F32(argv[4], "dx"), dw = F32_OR_NULL(argv[5], "dw");
  const int64_t rows = SIZE(argv[6], "rows"), dim = SIZE(argv[7], "dim");
  need(&c, dy, "dy", (__int128)rows * dim);
  need(&c, x, "x", (__int128)rows * dim);
  need(&c, dx, "dx", (__int128)rows * dim);
  need(&c, w, "w", dim);
  need(&c, rstd, "rstd", rows);
  if (dw.p) need(&c, dw, "dw", dim);
  if (c.failed) return NULL;
  sr3_rmsnorm_bwd(dy.p, x.p, w.p, rstd.p, dx.p, dw.p, rows, dim);
  return undefined(env);
}

static napi_value L2normalizeForward(napi_env env, napi_callback_info info) {
  ARGS(6, "l2normalizeForward");
  Buf x = F32(argv[0], "x"), y = F32(argv[1], "y"), norms = F32(argv[2], "norms");
  const int64_t rows = SIZE(argv[3], "rows"), dim = SIZE(argv[4], "dim");
  const double eps = num(&c, argv[5], "eps");
  need(&c, x, "x", (__int128)rows * dim);
  need(&c, y, "y", (__int128)rows * dim);
  need(&c, norms, "norms", rows);
  if (c.failed) return NULL;
  sr3_l2normalize_fwd(x.p, y.p, norms.p, rows, dim, eps);
  return undefined(env);
}

static napi_value L2normalizeBackward(napi_env env, napi_callback_info info) {
  ARGS(7, "l2normalizeBackward");
  Buf g = F32(argv[0], "g"), y = F32(argv[1], "y"), norms = F32(argv[2], "norms"), dx = F32(argv[3], "dx");
  const int64_t rows = SIZE(argv[4], "rows"), dim = SIZE(argv[5], "dim");
  const double eps = num(&c, argv[6], "eps");
  need(&c, g, "g", (__int128)rows * dim);
  need(&c, y, "y", (__int128)rows * dim);
  need(&c, dx, "dx", (__int128)rows * dim);
  need(&c, norms, "norms", rows);
  if (c.failed) return NULL;
  sr3_l2normalize_bwd(g.p, y.p, norms.p, dx.p, rows, dim, eps);
  return undefined(env);
}

static napi_value Rope(napi_env env, napi_callback_info info) {
  ARGS(9, "rope");
  Buf x = F32(argv[0], "x"), out = F32(argv[1], "out"), cs = F32(argv[2], "cos"), sn = F32(argv[3], "sin"),
      pos = I32(argv[4], "positions");
  const int64_t rows = SIZE(argv[5], "rows"), heads = SIZE(argv[6], "heads"), hd = SIZE(argv[7], "headDim");
  const int inv = boolean(&c, argv[8]);
  if (c.failed) return NULL;
  if (hd % 2) { fail(&c, "headDim must be even, got %lld", (long long)hd); return NULL; }
  need(&c, x, "x", (__int128)rows * heads * hd);
  need(&c, out, "out", (__int128)rows * heads * hd);
  need(&c, pos, "positions", rows);
  if (c.failed) return NULL;
  const int64_t half = hd / 2;
  if (half > 0 && rows > 0 && heads > 0) {
    const int64_t maxPos = (int64_t)((cs.n < sn.n ? cs.n : sn.n) / (size_t)half);
    const int32_t *pp = pos.p;
    for (int64_t r = 0; r < rows; r++)
      if (pp[r] < 0 || pp[r] >= maxPos) {
        fail(&c, "positions[%lld] = %d is outside the cos/sin tables (%lld positions)", (long long)r, pp[r], (long long)maxPos);
        return NULL;
      }
  }
  sr3_rope(x.p, out.p, cs.p, sn.p, pos.p, rows, heads, hd, inv);
  return undefined(env);
}

typedef void (*RowFn)(const float *, const float *, float *, int64_t, int64_t);

static napi_value rows2(napi_env env, napi_callback_info info, const char *name, int three, const char *n0,
                        const char *n1, const char *n2, void *fn) {
  /* forward: (x, y, rows, n); backward: (y, dy, dx, rows, n) */
  Ctx c = {env, name, 0};
  const size_t want = three ? 5 : 4;
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < want) { fail(&c, "expected %zu arguments, got %zu", want, argc); return NULL; }
  const int ri = three ? 3 : 2;
  Buf a = F32(argv[0], n0), b = F32(argv[1], n1);
  Buf d = three ? F32(argv[2], n2) : b;
  const int64_t rows = SIZE(argv[ri], "rows"), n = SIZE(argv[ri + 1], "n");
  need(&c, a, n0, (__int128)rows * n);
  need(&c, b, n1, (__int128)rows * n);
  if (three) need(&c, d, n2, (__int128)rows * n);
  if (c.failed) return NULL;
  if (three) ((RowFn)fn)(a.p, b.p, d.p, rows, n);
  else ((void (*)(const float *, float *, int64_t, int64_t))fn)(a.p, b.p, rows, n);
  return undefined(env);
}

static napi_value SoftmaxForward(napi_env env, napi_callback_info info) {
  return rows2(env, info, "softmaxForward", 0, "x", "y", NULL, (void *)sr3_softmax_fwd);
}
static napi_value SoftmaxBackward(napi_env env, napi_callback_info info) {
  return rows2(env, info, "softmaxBackward", 1, "y", "dy", "dx", (void *)sr3_softmax_bwd);
}
static napi_value LogSoftmaxForward(napi_env env, napi_callback_info info) {
  return rows2(env, info, "logSoftmaxForward", 0, "x", "y", NULL, (void *)sr3_logsoftmax_fwd);
}
static napi_value LogSoftmaxBackward(napi_env env, napi_callback_info info) {
  return rows2(env, info, "logSoftmaxBackward", 1, "y", "dy", "dx", (void *)sr3_logsoftmax_bwd);
}

static void check_targets(Ctx *c, Buf t, int64_t rows, int64_t vocab, int32_t ignore) {
  need(c, t, "targets", rows);
  if (c->failed) return;
  const int32_t *tp = t.p;
  for (int64_t r = 0; r < rows; r++)
    if (tp[r] != ignore && (tp[r] < 0 || tp[r] >= vocab)) {
      fail(c, "targets[%lld] = %d is outside the vocabulary [0, %lld) and is not ignoreIndex (%d)", (long long)r, tp[r],
           (long long)vocab, ignore);
      return;
    }
}

static napi_value CrossEntropyForward(napi_env env, napi_callback_info info) {
  ARGS(7, "crossEntropyForward");
  Buf lg = F32(argv[0], "logits"), t = I32(argv[1], "targets"), loss = F32(argv[2], "loss"), lse = F32(argv[3], "lse");
  const int64_t rows = SIZE(argv[4], "rows"), vocab = SIZE(argv[5], "vocab");
  const int32_t ig = (int32_t)integer(&c, argv[6], "ignoreIndex", -2147483648.0, 2147483647.0);
  need(&c, lg, "logits", (__int128)rows * vocab);
  need(&c, loss, "loss", rows);
  need(&c, lse, "lse", rows);
  check_targets(&c, t, rows, vocab, ig);
  if (c.failed) return NULL;
  sr3_xent_fwd(lg.p, t.p, loss.p, lse.p, rows, vocab, ig);
  return undefined(env);
}

static napi_value CrossEntropyBackward(napi_env env, napi_callback_info info) {
  ARGS(8, "crossEntropyBackward");
  Buf lg = F32(argv[0], "logits"), t = I32(argv[1], "targets"), lse = F32(argv[2], "lse"), sc = F32(argv[3], "scale"),
      dl = F32(argv[4], "dlogits");
  const int64_t rows = SIZE(argv[5], "rows"), vocab = SIZE(argv[6], "vocab");
  const int32_t ig = (int32_t)integer(&c, argv[7], "ignoreIndex", -2147483648.0, 2147483647.0);
  need(&c, lg, "logits", (__int128)rows * vocab);
  need(&c, dl, "dlogits", (__int128)rows * vocab);
  need(&c, lse, "lse", rows);
  need(&c, sc, "scale", rows);
  check_targets(&c, t, rows, vocab, ig);
  if (c.failed) return NULL;
  sr3_xent_bwd(lg.p, t.p, lse.p, sc.p, dl.p, rows, vocab, ig);
  return undefined(env);
}

/* ---------------------------------------------------------------- attention */

static void attn_shape(Ctx *c, napi_value *argv, AttnShape *s) {
  s->batch = integer(c, argv[0], "batch", 0, 2147483647.0);
  s->H = integer(c, argv[1], "queryHeads", 0, 2147483647.0);
  s->G = integer(c, argv[2], "kvHeads", 0, 2147483647.0);
  s->T = integer(c, argv[3], "queryLen", 0, 2147483647.0);
  s->S = integer(c, argv[4], "keyLen", 0, 2147483647.0);
  s->D = integer(c, argv[5], "headDim", 0, 2147483647.0);
  s->scale = (float)num(c, argv[6], "scale");
  s->causal = boolean(c, argv[7]);
  Buf m = typed(c, argv[8], "keyMask", napi_uint8_array, "Uint8Array", 1);
  s->keyMask = m.p;
  s->KS = integer(c, argv[9], "keyStride", 0, 2147483647.0);
  if (c->failed) return;
  if (s->G == 0 || s->H % s->G != 0) {
    fail(c, "queryHeads (%lld) must be a positive multiple of kvHeads (%lld)", (long long)s->H, (long long)s->G);
    return;
  }
  if (s->KS < s->S) {
    fail(c, "keyStride (%lld) must be at least keyLen (%lld)", (long long)s->KS, (long long)s->S);
    return;
  }
  if (m.p) need(c, m, "keyMask", (__int128)s->batch * s->S);
}

static void attn_sizes(Ctx *c, const AttnShape *s, Buf *qlike, const char **qn, int nq, Buf *klike, const char **kn,
                       int nk, Buf lse) {
  const __int128 qs = (__int128)s->batch * s->T * s->H * s->D, ks = (__int128)s->batch * s->KS * s->G * s->D;
  for (int i = 0; i < nq; i++) need(c, qlike[i], qn[i], qs);
  for (int i = 0; i < nk; i++) need(c, klike[i], kn[i], ks);
  need(c, lse, "lse", (__int128)s->batch * s->H * s->T);
}

static napi_value AttentionForward(napi_env env, napi_callback_info info) {
  ARGS(15, "attentionForward");
  Buf ql[2] = {F32(argv[0], "q"), F32(argv[3], "out")};
  Buf kl[2] = {F32(argv[1], "k"), F32(argv[2], "v")};
  Buf lse = F32(argv[4], "lse");
  AttnShape s;
  attn_shape(&c, argv + 5, &s);
  if (c.failed) return NULL;
  const char *qn[2] = {"q", "out"}, *kn[2] = {"k", "v"};
  attn_sizes(&c, &s, ql, qn, 2, kl, kn, 2, lse);
  if (c.failed) return NULL;
  sr3_attention_fwd(ql[0].p, kl[0].p, kl[1].p, ql[1].p, lse.p, &s);
  return undefined(env);
}

static napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  ARGS(19, "attentionBackward");
  Buf ql[4] = {F32(argv[0], "q"), F32(argv[3], "out"), F32(argv[5], "dout"), F32(argv[6], "dq")};
  Buf kl[4] = {F32(argv[1], "k"), F32(argv[2], "v"), F32(argv[7], "dk"), F32(argv[8], "dv")};
  Buf lse = F32(argv[4], "lse");
  AttnShape s;
  attn_shape(&c, argv + 9, &s);
  if (c.failed) return NULL;
  const char *qn[4] = {"q", "out", "dout", "dq"}, *kn[4] = {"k", "v", "dk", "dv"};
  attn_sizes(&c, &s, ql, qn, 4, kl, kn, 4, lse);
  if (c.failed) return NULL;
  sr3_attention_bwd(ql[0].p, kl[0].p, kl[1].p, ql[1].p, lse.p, ql[2].p, ql[3].p, kl[2].p, kl[3].p, &s);
  return undefined(env);
}

/* ---------------------------------------------------------------- embedding */

static void check_ids(Ctx *c, Buf ids, int64_t rowsAvail, const char *table) {
  const int32_t *ip = ids.p;
  for (size_t i = 0; i < ids.n; i++)
    if (ip[i] < 0 || ip[i] >= rowsAvail) {
      fail(c, "ids[%zu] = %d is outside %s (%lld rows)", i, ip[i], table, (long long)rowsAvail);
      return;
    }
}

static napi_value EmbeddingForward(napi_env env, napi_callback_info info) {
  ARGS(4, "embeddingForward");
  Buf w = F32(argv[0], "weight"), ids = I32(argv[1], "ids"), out = F32(argv[2], "out");
  const int64_t dim = SIZE(argv[3], "dim");
  if (c.failed || dim == 0) return c.failed ? NULL : undefined(env);
  need(&c, out, "out", (__int128)ids.n * dim);
  check_ids(&c, ids, (int64_t)(w.n / (size_t)dim), "weight");
  if (c.failed) return NULL;
  sr3_embedding_fwd(w.p, ids.p, out.p, (int64_t)ids.n, dim);
  return undefined(env);
}

static napi_value EmbeddingForwardHalf(napi_env env, napi_callback_info info) {
  ARGS(5, "embeddingForwardHalf");
  Buf w = U16(argv[0], "weight"), ids = I32(argv[2], "ids"), out = F32(argv[3], "out");
  const int bf16 = boolean(&c, argv[1]);
  const int64_t dim = SIZE(argv[4], "dim");
  if (c.failed || dim == 0) return c.failed ? NULL : undefined(env);
  need(&c, out, "out", (__int128)ids.n * dim);
  check_ids(&c, ids, (int64_t)(w.n / (size_t)dim), "weight");
  if (c.failed) return NULL;
  sr3_embedding_fwd_half(w.p, bf16, ids.p, out.p, (int64_t)ids.n, dim);
  return undefined(env);
}

static napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  ARGS(4, "embeddingBackward");
  Buf dout = F32(argv[0], "dout"), ids = I32(argv[1], "ids"), dw = F32(argv[2], "dweight");
  const int64_t dim = SIZE(argv[3], "dim");
  if (c.failed || dim == 0) return c.failed ? NULL : undefined(env);
  need(&c, dout, "dout", (__int128)ids.n * dim);
  check_ids(&c, ids, (int64_t)(dw.n / (size_t)dim), "dweight");
  if (c.failed) return NULL;
  sr3_embedding_bwd(dout.p, ids.p, dw.p, (int64_t)ids.n, dim);
  return undefined(env);
}

/* ---------------------------------------------------------------- threads */

static napi_value SetNumThreads(napi_env env, napi_callback_info info) {
  ARGS(1, "setNumThreads");
  const int64_t n = integer(&c, argv[0], "n", 1, 1024);
  if (c.failed) return NULL;
  sr3_set_threads((int)n);
  return undefined(env);
}

static napi_value NumThreads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_int32(env, sr3_threads(), &r);
  return r;
}

static napi_value BlasConfig(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &r);
  return r;
}

/* ---------------------------------------------------------------- stderr */

static napi_value CaptureStderr(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_get_boolean(env, sr3_capture_stderr() != 0, &r);
  return r;
}

static napi_value ReleaseStderr(napi_env env, napi_callback_info info) {
  (void)info;
  size_t length = 0;
  char *text = sr3_release_stderr(&length);
  napi_value r;
  napi_create_string_utf8(env, text ? text : "", length, &r);
  free(text);
  return r;
}

/* ---------------------------------------------------------------- stop signals */

static napi_value WatchSignals(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_get_boolean(env, sr3_watch_signals() != 0, &r);
  return r;
}

static napi_value CaughtSignals(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_uint32(env, sr3_caught_signals(), &r);
  return r;
}

static napi_value UnwatchSignals(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_uint32(env, sr3_unwatch_signals(), &r);
  return r;
}

static napi_value ExitNow(napi_env env, napi_callback_info info) {
  ARGS(1, "exitNow");
  int32_t code = 1;
  napi_get_value_int32(env, argv[0], &code);
  sr3_exit_now(code);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  /* OpenBLAS stays on the calling thread: gemm.c splits the work over our pool (pool.c). */
  openblas_set_num_threads(1);
  const char *t = getenv("SEARCH_R3_THREADS");
  if (t && *t) {
    const long n = strtol(t, NULL, 10);
    if (n >= 1) sr3_set_threads((int)n);
  }
  const struct { const char *name; napi_callback fn; } fns[] = {
      {"gemm", Gemm}, {"gemmHalf", GemmHalf}, {"widenHalf", WidenHalf}, {"embeddingForwardHalf", EmbeddingForwardHalf},
      {"halfAllFinite", HalfAllFinite},
      {"binary", Binary}, {"copy", Copy}, {"unary", Unary}, {"axpby", Axpby},
      {"sumSquares", SumSquares}, {"allFinite", AllFinite}, {"reduce", Reduce},
      {"siluForward", SiluForward}, {"siluBackward", SiluBackward},
      {"swigluForward", SwigluForward}, {"swigluBackward", SwigluBackward}, {"adamw", Adamw},
      {"rmsnormForward", RmsnormForward}, {"rmsnormBackward", RmsnormBackward},
      {"l2normalizeForward", L2normalizeForward}, {"l2normalizeBackward", L2normalizeBackward}, {"rope", Rope},
      {"softmaxForward", SoftmaxForward}, {"softmaxBackward", SoftmaxBackward},
      {"logSoftmaxForward", LogSoftmaxForward}, {"logSoftmaxBackward", LogSoftmaxBackward},
      {"crossEntropyForward", CrossEntropyForward}, {"crossEntropyBackward", CrossEntropyBackward},
      {"attentionForward", AttentionForward}, {"attentionBackward", AttentionBackward},
      {"embeddingForward", EmbeddingForward}, {"embeddingBackward", EmbeddingBackward},
      {"setNumThreads", SetNumThreads}, {"numThreads", NumThreads}, {"blasConfig", BlasConfig},
      {"captureStderr", CaptureStderr}, {"releaseStderr", ReleaseStderr},
      {"watchSignals", WatchSignals}, {"caughtSignals", CaughtSignals}, {"unwatchSignals", UnwatchSignals},
      {"exitNow", ExitNow},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, f) != napi_ok) return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
