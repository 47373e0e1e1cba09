/* Row-wise softmax / log-softmax and the cross-entropy loss over vocabulary rows. Sums in double. */
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
static double row_lse(const float *x, int64_t n) {
  const float mx = row_max(x, n);
  if (mx == -INFINITY) return -INFINITY;
  return (double)mx + log(exp_sum(x, mx, NULL, n));
}


typedef struct {
  int kind;
  const float *a, *b, *lseIn, *scale;
  const int32_t *targets;
  float *out, *loss, *lse;
  int64_t n;
  int32_t ignore;
} Rows;

enum { SM_F, SM_B, LSM_F, LSM_B, XE_F, XE_B };

static void softmax_fwd_row(const float *xr, float *yr, int64_t n) {
  const float mx = row_max(xr, n);
  const double inv = 1.0 / exp_sum(xr, mx, yr, n);
#pragma omp simd
  for (int64_t i = 0; i < n; i++) yr[i] = (float)(yr[i] * inv);
}

static void softmax_bwd_row(const float *yr, const float *dyr, float *dxr, int64_t n) {
  double dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t i = 0; i < n; i++) dot += (double)dyr[i] * yr[i];
  const float d = (float)dot;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dxr[i] = yr[i] * (dyr[i] - d);
}

static void logsoftmax_fwd_row(const float *xr, float *yr, int64_t n) {
  const float l = (float)row_lse(xr, n);
#pragma omp simd
  for (int64_t i = 0; i < n; i++) yr[i] = xr[i] - l;
}

static void logsoftmax_bwd_row(const float *yr, const float *dyr, float *dxr, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += dyr[i];
  const float sf = (float)s;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dxr[i] = dyr[i] - sr3_expf(yr[i]) * sf;
}

static void xent_fwd_row(const Rows *c, int64_t r) {
  const int32_t t = c->targets[r];
  if (t == c->ignore) { c->loss[r] = 0; c->lse[r] = 0; return; }
  const float *lr = c->a + r * c->n;
  const double l = row_lse(lr, c->n);
  c->lse[r] = (float)l;
  c->loss[r] = (float)(l - lr[t]);
}

static void xent_bwd_row(const Rows *c, int64_t r) {
  const int64_t vocab = c->n;
  const int32_t t = c->targets[r];
  float *dr = c->out + r * vocab;
  if (t == c->ignore) { memset(dr, 0, sizeof(float) * (size_t)vocab); return; }
  const float *lr = c->a + r * vocab;
  const float l = c->lseIn[r], s = c->scale[r];
#pragma omp simd
  for (int64_t i = 0; i < vocab; i++) dr[i] = s * sr3_expf(lr[i] - l);
  dr[t] = (float)((double)dr[t] - s);
}

static void rows_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Rows *c = vc;
  const int64_t n = c->n;
  for (int64_t r = b; r < e; r++) {
    switch (c->kind) {
      case SM_F: softmax_fwd_row(c->a + r * n, c->out + r * n, n); break;
      case SM_B: softmax_bwd_row(c->a + r * n, c->b + r * n, c->out + r * n, n); break;
      case LSM_F: logsoftmax_fwd_row(c->a + r * n, c->out + r * n, n); break;
      case LSM_B: logsoftmax_bwd_row(c->a + r * n, c->b + r * n, c->out + r * n, n); break;
      case XE_F: xent_fwd_row(c, r); break;
      default: xent_bwd_row(c, r); break;
    }
  }
}

static void run_rows(Rows *c, int64_t rows) { sr3_parallel_for(rows, sr3_grain(c->n * 4, SR3_CHUNK_OPS), rows_chunk, c); }

void sr3_softmax_fwd(const float *x, float *y, int64_t rows, int64_t n) {
  Rows c = {.kind = SM_F, .a = x, .out = y, .n = n};
  run_rows(&c, rows);
}

void sr3_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t n) {
  Rows c = {.kind = SM_B, .a = y, .b = dy, .out = dx, .n = n};
  run_rows(&c, rows);
}

void sr3_logsoftmax_fwd(const float *x, float *y, int64_t rows, int64_t n) {
  Rows c = {.kind = LSM_F, .a = x, .out = y, .n = n};
  run_rows(&c, rows);
}

void sr3_logsoftmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t n) {
  Rows c = {.kind = LSM_B, .a = y, .b = dy, .out = dx, .n = n};
  run_rows(&c, rows);
}

void sr3_xent_fwd(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t rows, int64_t vocab,
                  int32_t ignore) {
  Rows c = {.kind = XE_F, .a = logits, .targets = targets, .loss = loss, .lse = lse, .n = vocab, .ignore = ignore};
  run_rows(&c, rows);
}

void sr3_xent_bwd(const float *logits, const int32_t *targets, const float *lse, const float *scale, float *dlogits,
                  int64_t rows, int64_t vocab, int32_t ignore) {
  Rows c = {.kind = XE_B, .a = logits, .targets = targets, .lseIn = lse, .scale = scale, .out = dlogits, .n = vocab,
            .ignore = ignore};
  run_rows(&c, rows);
}
