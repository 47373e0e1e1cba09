/* Row reductions shared by softmax.c and loss.c: max, Σ exp(x − max), log-sum-exp. */
#ifndef SEARCH_R3_ROWMATH_H
#define SEARCH_R3_ROWMATH_H

#include <math.h>
#include "common.h"

static inline float row_max(const float *x, int64_t n) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  return mx;
}

/*
 * Σ exp(x − mx), optionally storing the terms: float vector sums over chunks of 256 (each lane adds
 * 16 terms, so rounding stays ~1e-7 relative), chunks added in double. Full-width float vectors run
 * twice as fast as converting every term to double.
 */
static inline double exp_sum(const float *x, float mx, float *store, int64_t n) {
  double s = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 256) {
    const int64_t i1 = i0 + 256 < n ? i0 + 256 : n;
    float part = 0;
    if (store) {
#pragma omp simd reduction(+ : part)
      for (int64_t i = i0; i < i1; i++) { const float e = sr3_expf(x[i] - mx); store[i] = e; part += e; }
    } else {
#pragma omp simd reduction(+ : part)
      for (int64_t i = i0; i < i1; i++) part += sr3_expf(x[i] - mx);
    }
    s += part;
  }
  return s;
}

/* log Σ exp(x), -Inf for an empty or all -Inf row. */
static inline double row_lse(const float *x, int64_t n) {
  const float mx = row_max(x, n);
  if (mx == -INFINITY) return -INFINITY;
  return (double)mx + log(exp_sum(x, mx, NULL, n));
}

#endif
