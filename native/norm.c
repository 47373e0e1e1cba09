/* RMSNorm forward/backward and rotary embeddings: row loops, rows spread over threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include "common.h"

void sr3_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t dim, double eps) {
  const int T = sr3_threads_for((size_t)(rows * dim * 2));
#pragma omp parallel for num_threads(T) if (parallel : T > 1) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * dim;
    float *yr = y + r * dim;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
    const double rs = 1.0 / sqrt(ss / (double)dim + eps);
    rstd[r] = (float)rs;
#pragma omp simd
    for (int64_t i = 0; i < dim; i++) yr[i] = (float)(xr[i] * rs * w[i]);
  }
}

void sr3_rmsnorm_bwd(const float *dy, const float *x, const float *w, const float *rstd, float *dx, float *dw,
                     int64_t rows, int64_t dim) {
  const int T = sr3_threads_for((size_t)(rows * dim * 3));
  /* dw is a sum over rows: each thread sums its rows into its own buffer, added in thread order. */
  double *part = dw ? calloc((size_t)T * (size_t)dim, sizeof(double)) : NULL;
#pragma omp parallel num_threads(T) if (parallel : T > 1)
  {
    double *pw = part ? part + (size_t)omp_get_thread_num() * (size_t)dim : NULL;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *dyr = dy + r * dim, *xr = x + r * dim;
      float *dxr = dx + r * dim;
      const double rs = rstd[r];
      double dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < dim; i++) dot += (double)dyr[i] * w[i] * xr[i];
      const double c = rs * rs * rs * dot / (double)dim;
#pragma omp simd
      for (int64_t i = 0; i < dim; i++) dxr[i] = (float)(rs * dyr[i] * w[i] - c * xr[i]);
      if (pw) {
#pragma omp simd
        for (int64_t i = 0; i < dim; i++) pw[i] += (double)dyr[i] * xr[i] * rs;
      }
    }
  }
  if (dw) {
    for (int t = 0; t < T; t++)
      for (int64_t i = 0; i < dim; i++) dw[i] = (float)(dw[i] + part[(size_t)t * (size_t)dim + i]);
    free(part);
  }
}

void sr3_rope(const float *x, float *out, const float *cos, const float *sin, const int32_t *pos, int64_t rows,
              int64_t heads, int64_t headDim, int inverse) {
  const int64_t half = headDim / 2;
  const float sgn = inverse ? -1.0f : 1.0f;
  const int T = sr3_threads_for((size_t)(rows * heads * headDim * 2));
#pragma omp parallel for num_threads(T) if (parallel : T > 1) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float *cr = cos + (int64_t)pos[r] * half, *sr = sin + (int64_t)pos[r] * half;
    for (int64_t h = 0; h < heads; h++) {
      const int64_t o = (r * heads + h) * headDim;
      const float *xa = x + o, *xb = x + o + half;
      float *oa = out + o, *ob = out + o + half;
#pragma omp simd
      for (int64_t i = 0; i < half; i++) {
        const float c = cr[i], s = sgn * sr[i], x1 = xa[i], x2 = xb[i];
        oa[i] = x1 * c - x2 * s;
        ob[i] = x2 * c + x1 * s;
      }
    }
  }
}
