/*
 * Strided loops: binary ops with broadcasting and the generic strided copy. Both first drop size-1
 * axes and merge axes that are contiguous with their neighbour in every operand, so the common
 * cases (same-shape contiguous, row broadcast, transpose of the last two axes) become one or two
 * flat loops; the innermost axis runs as a tight loop specialised on its strides.
 */
#include <omp.h>
#include <stdlib.h>
#include "common.h"

/* Merges axes in place; returns the new rank. s1/s2 (s2 may be NULL) are strides of the operands. */
static int coalesce(int64_t *shape, int64_t *s1, int64_t *s2, int64_t *s3, int nd) {
  int o = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    if (o > 0 && s1[o - 1] == s1[d] * shape[d] && (!s2 || s2[o - 1] == s2[d] * shape[d]) &&
        (!s3 || s3[o - 1] == s3[d] * shape[d])) {
      shape[o - 1] *= shape[d];
      s1[o - 1] = s1[d];
      if (s2) s2[o - 1] = s2[d];
      if (s3) s3[o - 1] = s3[d];
      continue;
    }
    shape[o] = shape[d];
    s1[o] = s1[d];
    if (s2) s2[o] = s2[d];
    if (s3) s3[o] = s3[d];
    o++;
  }
  return o;
}

#define BIN_LOOP(EXPR)                                                              \
  do {                                                                              \
    if (ia == 1 && ib == 1) { for (int64_t i = 0; i < L; i++) { float x = a[i], y = b[i]; o[i] = EXPR; } }      \
    else if (ia == 1 && ib == 0) { const float y = b[0]; for (int64_t i = 0; i < L; i++) { float x = a[i]; o[i] = EXPR; } } \
    else if (ia == 0 && ib == 1) { const float x = a[0]; for (int64_t i = 0; i < L; i++) { float y = b[i]; o[i] = EXPR; } } \
    else { for (int64_t i = 0; i < L; i++) { float x = a[i * ia], y = b[i * ib]; o[i] = EXPR; } }              \
  } while (0)

static void bin_inner(int op, const float *a, int64_t ia, const float *b, int64_t ib, float *o, int64_t L) {
  switch (op) {
    case OP_ADD: BIN_LOOP(x + y); break;
    case OP_SUB: BIN_LOOP(x - y); break;
    case OP_MUL: BIN_LOOP(x * y); break;
    default: BIN_LOOP(x / y); break;
  }
}

void sr3_binary(int op, const float *a, const int64_t *sa_in, const float *b, const int64_t *sb_in, float *out,
                const int64_t *shape_in, int nd) {
  int64_t shape[MAX_DIMS], sa[MAX_DIMS], sb[MAX_DIMS], so[MAX_DIMS];
  int64_t total = 1;
  for (int d = 0; d < nd; d++) { shape[d] = shape_in[d]; sa[d] = sa_in[d]; sb[d] = sb_in[d]; total *= shape[d]; }
  if (total == 0) return;
  { int64_t st = 1; for (int d = nd - 1; d >= 0; d--) { so[d] = st; st *= shape[d]; } }
  nd = coalesce(shape, sa, sb, so, nd);
  if (nd == 0) { bin_inner(op, a, 0, b, 0, out, 1); return; }
  const int64_t L = shape[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1];
  const int64_t rows = total / L;
  const int T = rows > 1 ? sr3_threads_for((size_t)total) : 1;
#pragma omp parallel num_threads(T) if (parallel : T > 1)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    int64_t idx[MAX_DIMS], oa = 0, ob = 0;
    int64_t rem = r0;
    for (int d = nd - 2; d >= 0; d--) { idx[d] = rem % shape[d]; rem /= shape[d]; oa += idx[d] * sa[d]; ob += idx[d] * sb[d]; }
    for (int64_t r = r0; r < r1; r++) {
      bin_inner(op, a + oa, ia, b + ob, ib, out + r * L, L);
      for (int d = nd - 2; d >= 0; d--) {
        oa += sa[d]; ob += sb[d];
        if (++idx[d] < shape[d]) break;
        oa -= sa[d] * shape[d]; ob -= sb[d] * shape[d];
        idx[d] = 0;
      }
    }
  }
}

static void copy_inner(const float *s, int64_t is, float *d, int64_t id, int64_t L, int acc) {
  if (is == 1 && id == 1) {
    if (acc) for (int64_t i = 0; i < L; i++) d[i] += s[i];
    else memmove(d, s, sizeof(float) * (size_t)L); /* src and dst may overlap (in-place shifts) */
  } else if (id == 1) {
    if (acc) for (int64_t i = 0; i < L; i++) d[i] += s[i * is];
    else for (int64_t i = 0; i < L; i++) d[i] = s[i * is];
  } else if (id == 0) {
    /* Summing an axis into one element (sum-to-shape): add in order, like the reference. */
    if (acc) { float v = d[0]; for (int64_t i = 0; i < L; i++) v += s[i * is]; d[0] = v; }
    else d[0] = s[(L - 1) * is];
  } else {
    if (acc) for (int64_t i = 0; i < L; i++) d[i * id] += s[i * is];
    else for (int64_t i = 0; i < L; i++) d[i * id] = s[i * is];
  }
}

static int cmp_abs(const void *x, const void *y) {
  int64_t a = llabs(((const int64_t *)x)[0]), b = llabs(((const int64_t *)y)[0]);
  return a < b ? -1 : a > b;
}

/* True when no two indices write the same destination element (then rows may run in parallel). */
static int injective(const int64_t *shape, const int64_t *ds, int nd) {
  int64_t p[MAX_DIMS][2];
  for (int d = 0; d < nd; d++) { if (ds[d] == 0) return 0; p[d][0] = ds[d]; p[d][1] = shape[d]; }
  qsort(p, (size_t)nd, sizeof p[0], cmp_abs);
  int64_t extent = 0; /* largest offset reachable by the axes so far */
  for (int d = 0; d < nd; d++) {
    if (llabs(p[d][0]) <= extent) return 0;
    extent += llabs(p[d][0]) * (p[d][1] - 1);
  }
  return 1;
}

void sr3_copy(const float *src, int64_t srcOff, const int64_t *ss_in, float *dst, int64_t dstOff, const int64_t *ds_in,
              const int64_t *shape_in, int nd, int accumulate) {
  int64_t shape[MAX_DIMS], ss[MAX_DIMS], ds[MAX_DIMS];
  int64_t total = 1;
  for (int d = 0; d < nd; d++) { shape[d] = shape_in[d]; ss[d] = ss_in[d]; ds[d] = ds_in[d]; total *= shape[d]; }
  if (total == 0) return;
  nd = coalesce(shape, ss, ds, NULL, nd);
  src += srcOff; dst += dstOff;
  if (nd == 0) { copy_inner(src, 0, dst, 0, 1, accumulate); return; }
  const int64_t L = shape[nd - 1], is = ss[nd - 1], id = ds[nd - 1];
  const int64_t rows = total / L;
  int T = rows > 1 ? sr3_threads_for((size_t)total) : 1;
  if (T > 1 && !injective(shape, ds, nd)) T = 1;
#pragma omp parallel num_threads(T) if (parallel : T > 1)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    int64_t idx[MAX_DIMS], os = 0, od = 0;
    int64_t rem = r0;
    for (int d = nd - 2; d >= 0; d--) { idx[d] = rem % shape[d]; rem /= shape[d]; os += idx[d] * ss[d]; od += idx[d] * ds[d]; }
    for (int64_t r = r0; r < r1; r++) {
      copy_inner(src + os, is, dst + od, id, L, accumulate);
      for (int d = nd - 2; d >= 0; d--) {
        os += ss[d]; od += ds[d];
        if (++idx[d] < shape[d]) break;
        os -= ss[d] * shape[d]; od -= ds[d] * shape[d];
        idx[d] = 0;
      }
    }
  }
}
