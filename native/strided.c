/*
 * Strided loops: binary ops with broadcasting and the generic strided copy. Both first drop size-1
 * axes and merge axes that are contiguous with their neighbour in every operand, so the common
 * cases (same-shape contiguous, row broadcast, transpose of the last two axes) become one or two
 * flat loops; the innermost axis runs as a tight loop specialised on its strides.
 */
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

typedef struct {
  int op, nd;
  const float *a, *b;
  float *out;
  float *dst;
  const float *src;
  int64_t L, ia, ib, acc;
  int64_t shape[MAX_DIMS], sa[MAX_DIMS], sb[MAX_DIMS];
} Strided;

/* Offsets of row r (all axes but the last) in both operands. */
static void row_start(const Strided *c, int64_t r, int64_t *idx, int64_t *oa, int64_t *ob) {
  *oa = 0; *ob = 0;
  for (int d = c->nd - 2; d >= 0; d--) {
    idx[d] = r % c->shape[d];
    r /= c->shape[d];
    *oa += idx[d] * c->sa[d];
    *ob += idx[d] * c->sb[d];
  }
}

static inline void row_next(const Strided *c, int64_t *idx, int64_t *oa, int64_t *ob) {
  for (int d = c->nd - 2; d >= 0; d--) {
    *oa += c->sa[d]; *ob += c->sb[d];
    if (++idx[d] < c->shape[d]) break;
    *oa -= c->sa[d] * c->shape[d]; *ob -= c->sb[d] * c->shape[d];
    idx[d] = 0;
  }
}

static void binary_chunk(void *vc, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  const Strided *c = vc;
  int64_t idx[MAX_DIMS], oa, ob;
  row_start(c, r0, idx, &oa, &ob);
  for (int64_t r = r0; r < r1; r++) {
    bin_inner(c->op, c->a + oa, c->ia, c->b + ob, c->ib, c->out + r * c->L, c->L);
    row_next(c, idx, &oa, &ob);
  }
}

void sr3_binary(int op, const float *a, const int64_t *sa_in, const float *b, const int64_t *sb_in, float *out,
                const int64_t *shape_in, int nd) {
  Strided c = {.op = op, .a = a, .b = b, .out = out};
  int64_t so[MAX_DIMS];
  int64_t total = 1;
  for (int d = 0; d < nd; d++) { c.shape[d] = shape_in[d]; c.sa[d] = sa_in[d]; c.sb[d] = sb_in[d]; total *= c.shape[d]; }
  if (total == 0) return;
  { int64_t st = 1; for (int d = nd - 1; d >= 0; d--) { so[d] = st; st *= c.shape[d]; } }
  nd = coalesce(c.shape, c.sa, c.sb, so, nd);
  if (nd == 0) { bin_inner(op, a, 0, b, 0, out, 1); return; }
  c.nd = nd;
  c.L = c.shape[nd - 1]; c.ia = c.sa[nd - 1]; c.ib = c.sb[nd - 1];
  sr3_parallel_for(total / c.L, sr3_grain(c.L, SR3_CHUNK_OPS), binary_chunk, &c);
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

static void copy_chunk(void *vc, int64_t r0, int64_t r1, int tid) {
  (void)tid;
  const Strided *c = vc;
  int64_t idx[MAX_DIMS], os, od;
  row_start(c, r0, idx, &os, &od);
  for (int64_t r = r0; r < r1; r++) {
    copy_inner(c->src + os, c->ia, c->dst + od, c->ib, c->L, (int)c->acc);
    row_next(c, idx, &os, &od);
  }
}

void sr3_copy(const float *src, int64_t srcOff, const int64_t *ss_in, float *dst, int64_t dstOff, const int64_t *ds_in,
              const int64_t *shape_in, int nd, int accumulate) {
  /* sa = source strides, sb = destination strides */
  Strided c = {.src = src + srcOff, .dst = dst + dstOff, .acc = accumulate};
  int64_t total = 1;
  for (int d = 0; d < nd; d++) { c.shape[d] = shape_in[d]; c.sa[d] = ss_in[d]; c.sb[d] = ds_in[d]; total *= c.shape[d]; }
  if (total == 0) return;
  nd = coalesce(c.shape, c.sa, c.sb, NULL, nd);
  if (nd == 0) { copy_inner(c.src, 0, c.dst, 0, 1, accumulate); return; }
  c.nd = nd;
  c.L = c.shape[nd - 1]; c.ia = c.sa[nd - 1]; c.ib = c.sb[nd - 1];
  const int64_t rows = total / c.L;
  /* Rows may run in parallel only when no two of them write the same element. */
  if (!injective(c.shape, c.sb, nd)) { copy_chunk(&c, 0, rows, 0); return; }
  sr3_parallel_for(rows, sr3_grain(c.L, SR3_CHUNK_OPS), copy_chunk, &c);
}
