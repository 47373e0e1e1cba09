/* RMSNorm forward/backward and rotary embeddings: row loops, rows spread over the pool. */
#include <math.h>
#include <stdlib.h>
#include "common.h"

typedef struct {
  const float *x, *w, *dy, *rstdIn, *cos, *sin;
  const int32_t *pos;
  float *y, *rstd, *dx;
  double *dwPart;
  int64_t dim, heads, headDim, grain;
  double eps;
  float sgn;
} Norm;

static void rms_fwd_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Norm *c = vc;
  const int64_t dim = c->dim;
  for (int64_t r = b; r < e; r++) {
    const float *xr = c->x + r * dim, *w = c->w;
    float *yr = c->y + r * dim;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
    const double rs = 1.0 / sqrt(ss / (double)dim + c->eps);
    c->rstd[r] = (float)rs;
#pragma omp simd
    for (int64_t i = 0; i < dim; i++) yr[i] = (float)(xr[i] * rs * w[i]);
  }
}

void sr3_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t dim, double eps) {
  Norm c = {.x = x, .w = w, .y = y, .rstd = rstd, .dim = dim, .eps = eps};
  sr3_parallel_for(rows, sr3_grain(dim * 3, SR3_CHUNK_OPS), rms_fwd_chunk, &c);
}

static void rms_bwd_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Norm *c = vc;
  const int64_t dim = c->dim;
  const float *w = c->w;
  double *pw = c->dwPart ? c->dwPart + (b / c->grain) * dim : NULL;
  if (pw) for (int64_t i = 0; i < dim; i++) pw[i] = 0;
  for (int64_t r = b; r < e; r++) {
    const float *dyr = c->dy + r * dim, *xr = c->x + r * dim;
    float *dxr = c->dx + r * dim;
    const double rs = c->rstdIn[r];
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < dim; i++) dot += (double)dyr[i] * w[i] * xr[i];
    const double k = rs * rs * rs * dot / (double)dim;
#pragma omp simd
    for (int64_t i = 0; i < dim; i++) dxr[i] = (float)(rs * dyr[i] * w[i] - k * xr[i]);
    if (pw) {
#pragma omp simd
      for (int64_t i = 0; i < dim; i++) pw[i] += (double)dyr[i] * xr[i] * rs;
    }
  }
}

void sr3_rmsnorm_bwd(const float *dy, const float *x, const float *w, const float *rstd, float *dx, float *dw,
                     int64_t rows, int64_t dim) {
  /* dw sums over rows: one partial per chunk, added in chunk order (same result for any thread count). */
  const int64_t grain = sr3_grain(dim * 6, SR3_CHUNK_OPS), nch = sr3_chunks(rows, grain);
  double *part = dw && nch > 0 ? malloc(sizeof(double) * (size_t)(nch * dim)) : NULL;
  Norm c = {.dy = dy, .x = x, .w = w, .rstdIn = rstd, .dx = dx, .dwPart = part, .dim = dim, .grain = grain};
  sr3_parallel_for(rows, grain, rms_bwd_chunk, &c);
  if (part) {
    for (int64_t i = 0; i < dim; i++) {
      double s = 0;
      for (int64_t t = 0; t < nch; t++) s += part[t * dim + i];
      dw[i] = (float)(dw[i] + s);
    }
    free(part);
  }
}

static void rope_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Norm *c = vc;
  const int64_t heads = c->heads, headDim = c->headDim, half = headDim / 2;
  const float sgn = c->sgn;
  for (int64_t r = b; r < e; r++) {
    const float *cr = c->cos + (int64_t)c->pos[r] * half, *sr = c->sin + (int64_t)c->pos[r] * half;
    for (int64_t h = 0; h < heads; h++) {
      const int64_t o = (r * heads + h) * headDim;
      const float *xa = c->x + o, *xb = c->x + o + half;
      float *oa = c->y + o, *ob = c->y + o + half;
#pragma omp simd
      for (int64_t i = 0; i < half; i++) {
        const float cs = cr[i], sn = sgn * sr[i], x1 = xa[i], x2 = xb[i];
        oa[i] = x1 * cs - x2 * sn;
        ob[i] = x2 * cs + x1 * sn;
      }
    }
  }
}

void sr3_rope(const float *x, float *out, const float *cos, const float *sin, const int32_t *pos, int64_t rows,
              int64_t heads, int64_t headDim, int inverse) {
  Norm c = {.x = x, .y = out, .cos = cos, .sin = sin, .pos = pos, .heads = heads, .headDim = headDim,
            .sgn = inverse ? -1.0f : 1.0f};
  sr3_parallel_for(rows, sr3_grain(heads * headDim * 3, SR3_CHUNK_OPS), rope_chunk, &c);
}
