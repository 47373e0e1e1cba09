/* RMSNorm, L2 normalisation and rotary embeddings: row loops, rows spread over the pool. */
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

/*
 * L2 normalisation. Sums run in double and in order, and products are never fused into an FMA, so the
 * results equal the TS reference (js-kernels.ts) bit for bit: the rows are embeddings, few and short,
 * so the sequential sums cost nothing that matters.
 */
#if defined(__GNUC__) && !defined(__clang__)
#define SR3_NO_FMA __attribute__((optimize("fp-contract=off")))
#else
#define SR3_NO_FMA
#endif

typedef struct {
  const float *x, *g, *y, *normsIn;
  float *out, *norms;
  int64_t dim;
  double eps;
} L2;

static void SR3_NO_FMA l2_fwd_chunk(void *vc, int64_t b, int64_t e, int tid) {
#pragma STDC FP_CONTRACT OFF
  (void)tid;
  const L2 *c = vc;
  const int64_t dim = c->dim;
  for (int64_t r = b; r < e; r++) {
    const float *xr = c->x + r * dim;
    float *yr = c->out + r * dim;
    double s = 0;
    for (int64_t i = 0; i < dim; i++) s += (double)xr[i] * xr[i];
    const double q = sqrt(s), n = q < c->eps ? c->eps : q; /* NaN stays NaN, as Math.max keeps it */
    c->norms[r] = (float)n;
    for (int64_t i = 0; i < dim; i++) yr[i] = (float)(xr[i] / n);
  }
}

void sr3_l2normalize_fwd(const float *x, float *y, float *norms, int64_t rows, int64_t dim, double eps) {
  L2 c = {.x = x, .out = y, .norms = norms, .dim = dim, .eps = eps};
  sr3_parallel_for(rows, sr3_grain(dim * 3, SR3_CHUNK_OPS), l2_fwd_chunk, &c);
}

static void SR3_NO_FMA l2_bwd_chunk(void *vc, int64_t b, int64_t e, int tid) {
#pragma STDC FP_CONTRACT OFF
  (void)tid;
  const L2 *c = vc;
  const int64_t dim = c->dim;
  for (int64_t r = b; r < e; r++) {
    const float *gr = c->g + r * dim, *yr = c->y + r * dim;
    float *dxr = c->out + r * dim;
    const double n = c->normsIn[r];
    /* Below eps the denominator is the constant eps; above it, project out the radial component. */
    double dot = 0;
    if (n > c->eps)
      for (int64_t i = 0; i < dim; i++) dot += (double)gr[i] * yr[i];
    for (int64_t i = 0; i < dim; i++) dxr[i] = (float)((gr[i] - yr[i] * dot) / n);
  }
}

void sr3_l2normalize_bwd(const float *g, const float *y, const float *norms, float *dx, int64_t rows, int64_t dim,
                         double eps) {
  L2 c = {.g = g, .y = y, .normsIn = norms, .out = dx, .dim = dim, .eps = eps};
  sr3_parallel_for(rows, sr3_grain(dim * 4, SR3_CHUNK_OPS), l2_bwd_chunk, &c);
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
