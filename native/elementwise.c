/*
 * Element-wise kernels and whole-array reductions: flat loops cut into chunks for the pool,
 * vectorised by the compiler (sr3_expf has no libm call, so exp loops vectorise too).
 * Reductions keep one partial per chunk, added in chunk order: the same result for any thread count.
 */
#include <math.h>
#include <stdlib.h>
#include "common.h"

#define EW_GRAIN 16384

typedef struct {
  int op;
  const float *x, *y, *z;
  float *o1, *o2;
  double alpha, beta;
  double *partial;
  uint32_t *flags;
} Ew;

static void unary_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Ew *c = vc;
  const float *x = c->x;
  float *out = c->o1;
  switch (c->op) {
    case U_NEG:
#pragma omp simd
      for (int64_t i = b; i < e; i++) out[i] = -x[i];
      break;
    case U_EXP:
#pragma omp simd
      for (int64_t i = b; i < e; i++) out[i] = sr3_expf(x[i]);
      break;
    case U_LOG:
      for (int64_t i = b; i < e; i++) out[i] = logf(x[i]);
      break;
    case U_SQRT:
#pragma omp simd
      for (int64_t i = b; i < e; i++) out[i] = sqrtf(x[i]);
      break;
    case U_ABS:
#pragma omp simd
      for (int64_t i = b; i < e; i++) out[i] = fabsf(x[i]);
      break;
    case U_SQUARE:
#pragma omp simd
      for (int64_t i = b; i < e; i++) out[i] = x[i] * x[i];
      break;
    default:
#pragma omp simd
      for (int64_t i = b; i < e; i++) out[i] = 1.0f / x[i];
      break;
  }
}

void sr3_unary(int op, const float *x, float *out, size_t n) {
  Ew c = {.op = op, .x = x, .o1 = out};
  sr3_parallel_for((int64_t)n, op == U_LOG ? EW_GRAIN / 8 : EW_GRAIN, unary_chunk, &c);
}

static void axpby_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Ew *c = vc;
  const float *x = c->x;
  float *out = c->o1;
  const double alpha = c->alpha, beta = c->beta;
  /* In double, as the reference does: alpha may be a learning rate or 1/n that floats would round. */
  if (beta == 0) {
#pragma omp simd
    for (int64_t i = b; i < e; i++) out[i] = (float)(alpha * x[i]);
  } else {
#pragma omp simd
    for (int64_t i = b; i < e; i++) out[i] = (float)(alpha * x[i] + beta * out[i]);
  }
}

void sr3_axpby(double alpha, const float *x, double beta, float *out, size_t n) {
  Ew c = {.x = x, .o1 = out, .alpha = alpha, .beta = beta};
  sr3_parallel_for((int64_t)n, EW_GRAIN, axpby_chunk, &c);
}

static void sumsq_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Ew *c = vc;
  const float *x = c->x;
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = b; i < e; i++) s += (double)x[i] * (double)x[i];
  c->partial[b / EW_GRAIN] = s;
}

double sr3_sum_squares(const float *x, size_t n) {
  const int64_t nch = sr3_chunks((int64_t)n, EW_GRAIN);
  double one, *partial = nch <= 1 ? &one : malloc(sizeof(double) * (size_t)nch);
  if (!partial) return NAN;
  Ew c = {.x = x, .partial = partial};
  sr3_parallel_for((int64_t)n, EW_GRAIN, sumsq_chunk, &c);
  double s = 0;
  for (int64_t i = 0; i < nch; i++) s += partial[i];
  if (partial != &one) free(partial);
  return s;
}

static void finite_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Ew *c = vc;
  const uint32_t *u = (const uint32_t *)c->x;
  uint32_t bad = 0;
  /* Exponent all ones = Inf or NaN. */
#pragma omp simd reduction(| : bad)
  for (int64_t i = b; i < e; i++) bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
  if (bad) *c->flags = 1; /* a benign race: every writer stores 1 */
}

int sr3_all_finite(const float *x, size_t n) {
  uint32_t flag = 0;
  Ew c = {.x = x, .flags = &flag};
  sr3_parallel_for((int64_t)n, EW_GRAIN * 4, finite_chunk, &c);
  return flag == 0;
}

enum { K_SILU_F, K_SILU_B, K_SWIGLU_F, K_SWIGLU_B };

static void act_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Ew *c = vc;
  switch (c->op) {
    case K_SILU_F: {
      const float *x = c->x;
      float *y = c->o1;
#pragma omp simd
      for (int64_t i = b; i < e; i++) y[i] = x[i] * sr3_sigmoidf(x[i]);
      break;
    }
    case K_SILU_B: {
      const float *x = c->x, *dy = c->y;
      float *dx = c->o1;
#pragma omp simd
      for (int64_t i = b; i < e; i++) {
        const float s = sr3_sigmoidf(x[i]);
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
      }
      break;
    }
    case K_SWIGLU_F: {
      const float *gate = c->x, *up = c->y;
      float *y = c->o1;
#pragma omp simd
      for (int64_t i = b; i < e; i++) y[i] = gate[i] * sr3_sigmoidf(gate[i]) * up[i];
      break;
    }
    default: {
      const float *gate = c->x, *up = c->y, *dy = c->z;
      float *dgate = c->o1, *dup = c->o2;
#pragma omp simd
      for (int64_t i = b; i < e; i++) {
        const float g = gate[i], s = sr3_sigmoidf(g), d = dy[i];
        dup[i] = d * (g * s);
        dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
      }
      break;
    }
  }
}

void sr3_silu_fwd(const float *x, float *y, size_t n) {
  Ew c = {.op = K_SILU_F, .x = x, .o1 = y};
  sr3_parallel_for((int64_t)n, EW_GRAIN / 2, act_chunk, &c);
}

void sr3_silu_bwd(const float *x, const float *dy, float *dx, size_t n) {
  Ew c = {.op = K_SILU_B, .x = x, .y = dy, .o1 = dx};
  sr3_parallel_for((int64_t)n, EW_GRAIN / 2, act_chunk, &c);
}

void sr3_swiglu_fwd(const float *gate, const float *up, float *y, size_t n) {
  Ew c = {.op = K_SWIGLU_F, .x = gate, .y = up, .o1 = y};
  sr3_parallel_for((int64_t)n, EW_GRAIN / 2, act_chunk, &c);
}

void sr3_swiglu_bwd(const float *gate, const float *up, const float *dy, float *dgate, float *dup, size_t n) {
  Ew c = {.op = K_SWIGLU_B, .x = gate, .y = up, .z = dy, .o1 = dgate, .o2 = dup};
  sr3_parallel_for((int64_t)n, EW_GRAIN / 2, act_chunk, &c);
}
