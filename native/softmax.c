/* Row-wise softmax and log-softmax, forward and backward; sums in double (see rowmath.h). */
#include "rowmath.h"

typedef struct {
  int kind;
  const float *a, *b;
  float *out;
  int64_t n;
} Rows;

enum { SM_F, SM_B, LSM_F, LSM_B };

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

static void rows_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Rows *c = vc;
  const int64_t n = c->n;
  for (int64_t r = b; r < e; r++) {
    switch (c->kind) {
      case SM_F: softmax_fwd_row(c->a + r * n, c->out + r * n, n); break;
      case SM_B: softmax_bwd_row(c->a + r * n, c->b + r * n, c->out + r * n, n); break;
      case LSM_F: logsoftmax_fwd_row(c->a + r * n, c->out + r * n, n); break;
      default: logsoftmax_bwd_row(c->a + r * n, c->b + r * n, c->out + r * n, n); break;
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
