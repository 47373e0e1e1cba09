/*
 * Element-wise kernels and whole-array reductions: flat loops, OpenMP across threads when the array
 * is large enough, vectorised by the compiler (sr3_expf has no libm call, so exp loops vectorise).
 */
#include <math.h>
#include <omp.h>
#include "common.h"

#define PAR_FOR(n) _Pragma("omp parallel for simd num_threads(T) if (parallel : T > 1) schedule(static)")

void sr3_unary(int op, const float *x, float *out, size_t n) {
  const int T = sr3_threads_for(op == U_LOG ? n * 8 : n);
  const int64_t N = (int64_t)n;
  switch (op) {
    case U_NEG: PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = -x[i]; break;
    case U_EXP: PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = sr3_expf(x[i]); break;
    case U_LOG:
#pragma omp parallel for num_threads(T) if (parallel : T > 1) schedule(static)
      for (int64_t i = 0; i < N; i++) out[i] = logf(x[i]);
      break;
    case U_SQRT: PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = sqrtf(x[i]); break;
    case U_ABS: PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = fabsf(x[i]); break;
    case U_SQUARE: PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = x[i] * x[i]; break;
    default: PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = 1.0f / x[i]; break;
  }
}

void sr3_axpby(double alpha, const float *x, double beta, float *out, size_t n) {
  /* In double, as the reference does: alpha may be a learning rate or 1/n that floats would round. */
  const int T = sr3_threads_for(n);
  const int64_t N = (int64_t)n;
  if (beta == 0) {
    PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = (float)(alpha * x[i]);
  } else {
    PAR_FOR(n) for (int64_t i = 0; i < N; i++) out[i] = (float)(alpha * x[i] + beta * out[i]);
  }
}

double sr3_sum_squares(const float *x, size_t n) {
  const int T = sr3_threads_for(n);
  const int64_t N = (int64_t)n;
  double s = 0;
#pragma omp parallel for simd num_threads(T) if (parallel : T > 1) schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < N; i++) s += (double)x[i] * (double)x[i];
  return s;
}

int sr3_all_finite(const float *x, size_t n) {
  const int T = sr3_threads_for(n);
  const int64_t N = (int64_t)n;
  const uint32_t *u = (const uint32_t *)x;
  uint32_t bad = 0;
  /* Exponent all ones = Inf or NaN. */
#pragma omp parallel for simd num_threads(T) if (parallel : T > 1) schedule(static) reduction(| : bad)
  for (int64_t i = 0; i < N; i++) bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
  return bad == 0;
}

void sr3_silu_fwd(const float *x, float *y, size_t n) {
  const int T = sr3_threads_for(n * 4);
  const int64_t N = (int64_t)n;
  PAR_FOR(n) for (int64_t i = 0; i < N; i++) y[i] = x[i] * sr3_sigmoidf(x[i]);
}

void sr3_silu_bwd(const float *x, const float *dy, float *dx, size_t n) {
  const int T = sr3_threads_for(n * 4);
  const int64_t N = (int64_t)n;
  PAR_FOR(n) for (int64_t i = 0; i < N; i++) {
    const float s = sr3_sigmoidf(x[i]);
    dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

void sr3_swiglu_fwd(const float *gate, const float *up, float *y, size_t n) {
  const int T = sr3_threads_for(n * 4);
  const int64_t N = (int64_t)n;
  PAR_FOR(n) for (int64_t i = 0; i < N; i++) y[i] = gate[i] * sr3_sigmoidf(gate[i]) * up[i];
}

void sr3_swiglu_bwd(const float *gate, const float *up, const float *dy, float *dgate, float *dup, size_t n) {
  const int T = sr3_threads_for(n * 4);
  const int64_t N = (int64_t)n;
  PAR_FOR(n) for (int64_t i = 0; i < N; i++) {
    const float g = gate[i], s = sr3_sigmoidf(g), d = dy[i];
    dup[i] = d * (g * s);
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
  }
}
