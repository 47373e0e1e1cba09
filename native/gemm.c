/*
 * Batched sgemm on OpenBLAS. OpenBLAS runs single-threaded; the pool parallelises either over the
 * batch (many independent matrices) or by splitting each matrix into row or column panels, one per
 * thread. Splitting ourselves keeps a single thread pool in the process, and the pool's
 * chunk-claiming lets the calling thread take over a panel whose helper has not started.
 */
#include <cblas.h>
#include "common.h"

static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* C block (rows i0..i1, cols j0..j1) of one matrix; lda/ldb/ldc are the full matrices' leading dims. */
static void block(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k, int transA, int transB,
                  int64_t i0, int64_t i1, int64_t j0, int64_t j1, float beta) {
  if (i1 <= i0 || j1 <= j0) return;
  const float *ab = transA ? a + i0 : a + i0 * k;
  const float *bb = transB ? b + j0 * k : b + j0;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              (int)(i1 - i0), (int)(j1 - j0), (int)k, 1.0f, ab, (int)max64(1, transA ? m : k), bb,
              (int)max64(1, transB ? k : n), beta, c + i0 * n + j0, (int)max64(1, n));
}

typedef struct {
  const float *a, *b;
  float *c;
  int64_t batch, m, n, k, strideA, strideB, strideC, chunk;
  int transA, transB, splitRows;
  float beta;
} Gemm;

static void batch_chunk(void *vc, int64_t b0, int64_t b1, int tid) {
  (void)tid;
  const Gemm *g = vc;
  for (int64_t bi = b0; bi < b1; bi++)
    block(g->a + bi * g->strideA, g->b + bi * g->strideB, g->c + bi * g->strideC, g->m, g->n, g->k, g->transA,
          g->transB, 0, g->m, 0, g->n, g->beta);
}

/* One panel of every batch matrix: batches that share C still add up in order within the panel. */
static void panel_chunk(void *vc, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const Gemm *g = vc;
  for (int64_t bi = 0; bi < g->batch; bi++) {
    const float *ab = g->a + bi * g->strideA, *bb = g->b + bi * g->strideB;
    float *cb = g->c + bi * g->strideC;
    if (g->splitRows) block(ab, bb, cb, g->m, g->n, g->k, g->transA, g->transB, lo, hi, 0, g->n, g->beta);
    else block(ab, bb, cb, g->m, g->n, g->k, g->transA, g->transB, 0, g->m, lo, hi, g->beta);
  }
}

void sr3_gemm(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n, int64_t k, int transA,
              int transB, int64_t strideA, int64_t strideB, int64_t strideC, int accumulate) {
  if (batch <= 0 || m <= 0 || n <= 0) return;
  const float beta = accumulate ? 1.0f : 0.0f;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t bi = 0; bi < batch; bi++) memset(c + bi * strideC, 0, sizeof(float) * (size_t)(m * n));
    return;
  }
  Gemm g = {a, b, c, batch, m, n, k, strideA, strideB, strideC, 0, transA, transB, 0, beta};
  const double flops = 2.0 * (double)m * (double)n * (double)k * (double)batch;
  const int T = sr3_threads();
  if (T == 1 || flops < 2e6) { batch_chunk(&g, 0, batch, 0); return; }
  /* When batches share (or overlap in) C, e.g. strideC = 0 summing into one C, they must run in order. */
  if (strideC >= m * n && (batch >= 2 * T || batch % T == 0)) {
    const double per = 2.0 * (double)m * (double)n * (double)k;
    sr3_parallel_for(batch, per >= 1e6 ? 1 : (int64_t)(1e6 / per), batch_chunk, &g); /* >= ~1 MFLOP per chunk */
    return;
  }
  /* Panels along the longer side of C, multiples of 16 so each panel stays vector-aligned. */
  g.splitRows = m >= n;
  const int64_t len = g.splitRows ? m : n;
  int64_t chunk = (len + T - 1) / T;
  chunk = (chunk + 15) / 16 * 16;
  sr3_parallel_for(len, chunk, panel_chunk, &g);
}
