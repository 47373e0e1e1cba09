/*
 * Batched sgemm on OpenBLAS. OpenBLAS runs single-threaded; we parallelise with OpenMP either over
 * the batch (many independent matrices) or by splitting each matrix into row or column panels, one
 * per thread. Splitting ourselves keeps a single thread pool in the process.
 */
#include <cblas.h>
#include <omp.h>
#include "common.h"

static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* C block (rows i0..i1, cols j0..j1) of one matrix; lda/ldb/ldc are the full matrices' leading dims. */
static void block(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k, int transA, int transB,
                  int64_t i0, int64_t i1, int64_t j0, int64_t j1, float beta) {
  if (i1 <= i0 || j1 <= j0) return;
  const float *ab = transA ? a + i0 : a + i0 * k;
  const float *bb = transB ? b + j0 * k : b + j0;
  if (i1 - i0 == 1) {
    /* One row of C (decoding a single token): sgemv streams B once; OpenBLAS 0.3.21's sgemm would pack
       all of B first, doubling the memory traffic that bounds this case. */
    const int incx = transA ? (int)max64(1, m) : 1;
    if (transB)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(j1 - j0), (int)k, 1.0f, bb, (int)max64(1, k), ab, incx, beta, c + i0 * n + j0, 1);
    else
      cblas_sgemv(CblasRowMajor, CblasTrans, (int)k, (int)(j1 - j0), 1.0f, bb, (int)max64(1, n), ab, incx, beta, c + i0 * n + j0, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              (int)(i1 - i0), (int)(j1 - j0), (int)k, 1.0f, ab, (int)max64(1, transA ? m : k), bb,
              (int)max64(1, transB ? k : n), beta, c + i0 * n + j0, (int)max64(1, n));
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
  const double flops = 2.0 * (double)m * (double)n * (double)k * (double)batch;
  int T = sr3_threads();
  if (flops < 2e6) T = 1;
  if (T == 1) {
    for (int64_t bi = 0; bi < batch; bi++)
      block(a + bi * strideA, b + bi * strideB, c + bi * strideC, m, n, k, transA, transB, 0, m, 0, n, beta);
    return;
  }
  /* When batches share (or overlap in) C, e.g. strideC = 0 summing into one C, they must run in order: split each matrix. */
  const int byBatch = strideC >= m * n && (batch >= 2 * T || batch % T == 0);
  if (byBatch) {
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
    for (int64_t bi = 0; bi < batch; bi++)
      block(a + bi * strideA, b + bi * strideB, c + bi * strideC, m, n, k, transA, transB, 0, m, 0, n, beta);
    return;
  }
  /* Panels along the longer side of C, multiples of 16 so each thread's panel stays vector-aligned. */
  const int splitRows = m >= n;
  const int64_t len = splitRows ? m : n;
  int64_t chunk = (len + T - 1) / T;
  chunk = (chunk + 15) / 16 * 16;
#pragma omp parallel num_threads(T)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t lo = t * chunk, hi = lo + chunk < len ? lo + chunk : len;
    /* Each thread owns the same panel of every C, so batches that share C still add up in order. */
    for (int64_t bi = 0; bi < batch && lo < hi; bi++) {
      const float *ab = a + bi * strideA, *bb = b + bi * strideB;
      float *cb = c + bi * strideC;
      if (splitRows) block(ab, bb, cb, m, n, k, transA, transB, lo, hi, 0, n, beta);
      else block(ab, bb, cb, m, n, k, transA, transB, 0, m, lo, hi, beta);
    }
  }
}
