/* Row-wise softmax / log-softmax and the cross-entropy loss over vocabulary rows. Sums in double. */
#include <math.h>
#include <omp.h>
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
static double row_lse(const float *x, int64_t n) {
  const float mx = row_max(x, n);
  if (mx == -INFINITY) return -INFINITY;
  return (double)mx + log(exp_sum(x, mx, NULL, n));
}

#define ROWS_PAR(work) const int T = sr3_threads_for((size_t)(work)); _Pragma("omp parallel for num_threads(T) if (parallel : T > 1) schedule(static)")

void sr3_softmax_fwd(const float *x, float *y, int64_t rows, int64_t n) {
  ROWS_PAR(rows * n * 4)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *yr = y + r * n;
    const float mx = row_max(xr, n);
    const double inv = 1.0 / exp_sum(xr, mx, yr, n);
#pragma omp simd
    for (int64_t i = 0; i < n; i++) yr[i] = (float)(yr[i] * inv);
  }
}

void sr3_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t n) {
  ROWS_PAR(rows * n * 2)
  for (int64_t r = 0; r < rows; r++) {
    const float *yr = y + r * n, *dyr = dy + r * n;
    float *dxr = dx + r * n;
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n; i++) dot += (double)dyr[i] * yr[i];
    const float d = (float)dot;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dxr[i] = yr[i] * (dyr[i] - d);
  }
}

void sr3_logsoftmax_fwd(const float *x, float *y, int64_t rows, int64_t n) {
  ROWS_PAR(rows * n * 4)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *yr = y + r * n;
    const float l = (float)row_lse(xr, n);
#pragma omp simd
    for (int64_t i = 0; i < n; i++) yr[i] = xr[i] - l;
  }
}

void sr3_logsoftmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t n) {
  ROWS_PAR(rows * n * 4)
  for (int64_t r = 0; r < rows; r++) {
    const float *yr = y + r * n, *dyr = dy + r * n;
    float *dxr = dx + r * n;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += dyr[i];
    const float sf = (float)s;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dxr[i] = dyr[i] - sr3_expf(yr[i]) * sf;
  }
}

void sr3_xent_fwd(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t rows, int64_t vocab,
                  int32_t ignore) {
  ROWS_PAR(rows * vocab * 4)
  for (int64_t r = 0; r < rows; r++) {
    const int32_t t = targets[r];
    if (t == ignore) { loss[r] = 0; lse[r] = 0; continue; }
    const float *lr = logits + r * vocab;
    const double l = row_lse(lr, vocab);
    lse[r] = (float)l;
    loss[r] = (float)(l - lr[t]);
  }
}

void sr3_xent_bwd(const float *logits, const int32_t *targets, const float *lse, const float *scale, float *dlogits,
                  int64_t rows, int64_t vocab, int32_t ignore) {
  ROWS_PAR(rows * vocab * 4)
  for (int64_t r = 0; r < rows; r++) {
    const int32_t t = targets[r];
    float *dr = dlogits + r * vocab;
    if (t == ignore) { memset(dr, 0, sizeof(float) * (size_t)vocab); continue; }
    const float *lr = logits + r * vocab;
    const float l = lse[r], s = scale[r];
#pragma omp simd
    for (int64_t i = 0; i < vocab; i++) dr[i] = s * sr3_expf(lr[i] - l);
    dr[t] = (float)((double)dr[t] - s);
  }
}
