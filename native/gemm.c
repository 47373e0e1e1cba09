/*
 * Batched sgemm on OpenBLAS. OpenBLAS runs single-threaded; the pool parallelises either over the
 * batch (many independent matrices) or by splitting each matrix into row or column panels, one per
 * thread. Splitting ourselves keeps a single thread pool in the process, and the pool's
 * chunk-claiming lets the calling thread take over a panel whose helper has not started.
 */
#include <cblas.h>
#include <stdlib.h>
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

typedef struct {
  const float *a, *b;
  float *c;
  int64_t batch, m, n, k, strideA, strideB, strideC, chunk;
  int transA, transB, splitRows;
  float beta;
  const float *rowsA; /* skinny path: A of every batch as contiguous m×k rows */
} Gemm;

/*
 * Skinny products (m <= SKINNY_M rows: a few tokens while decoding): OpenBLAS packs all of B whatever
 * m is, which made 1×1536 · 1536×8960 3x slower than streaming B once (8 ms vs 2.7 ms; at m = 8 the
 * two are even, so larger m goes to OpenBLAS). Here each chunk of C's columns streams its part of B
 * exactly once and updates all m rows. Sums go through float partials of KC terms added in double.
 */
#define SKINNY_M 4
#define KC 2048
#define NC 128

static void skinny_chunk(void *vc, int64_t j0, int64_t j1, int tid) {
  (void)tid;
  const Gemm *g = vc;
  const int64_t m = g->m, n = g->n, k = g->k;
  double acc[SKINNY_M][NC];
  float part[SKINNY_M][NC];
  for (int64_t bi = 0; bi < g->batch; bi++) {
    const float *A = g->rowsA + bi * m * k, *B = g->b + bi * g->strideB;
    float *C = g->c + bi * g->strideC;
    for (int64_t jb = j0; jb < j1; jb += NC) {
      const int64_t w = j1 - jb < NC ? j1 - jb : NC;
      if (g->transB) {
        /* B is n×k: each output column is a contiguous row of B, read from memory once and
           kept in L1 for the m dot products. */
        int64_t j = 0;
        for (; j + 2 <= w && m >= 4; j += 2) { /* two rows of B × four rows of A: 6 loads per 8 FMAs */
          const float *b0 = B + (jb + j) * k, *b1 = b0 + k;
          int64_t i = 0;
          for (; i + 4 <= m; i += 4) {
            const float *a0 = A + i * k, *a1 = a0 + k, *a2 = a1 + k, *a3 = a2 + k;
            double d[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t p0 = 0; p0 < k; p0 += KC) {
              const int64_t p1 = p0 + KC < k ? p0 + KC : k;
              float s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3, t0, t1, t2, t3)
              for (int64_t p = p0; p < p1; p++) {
                const float u = b0[p], v = b1[p], x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];
                s0 += x0 * u; s1 += x1 * u; s2 += x2 * u; s3 += x3 * u;
                t0 += x0 * v; t1 += x1 * v; t2 += x2 * v; t3 += x3 * v;
              }
              d[0] += s0; d[1] += s1; d[2] += s2; d[3] += s3; d[4] += t0; d[5] += t1; d[6] += t2; d[7] += t3;
            }
            for (int r = 0; r < 4; r++) { acc[i + r][j] = d[r]; acc[i + r][j + 1] = d[4 + r]; }
          }
          for (; i < m; i++) {
            const float *arow = A + i * k;
            for (int jj = 0; jj < 2; jj++) {
              const float *brow = jj ? b1 : b0;
              double dd = 0;
              for (int64_t p0 = 0; p0 < k; p0 += KC) {
                const int64_t p1 = p0 + KC < k ? p0 + KC : k;
                float s = 0;
#pragma omp simd reduction(+ : s)
                for (int64_t p = p0; p < p1; p++) s += arow[p] * brow[p];
                dd += s;
              }
              acc[i][j + jj] = dd;
            }
          }
        }
        for (; j < w; j++) {
          const float *brow = B + (jb + j) * k;
          int64_t i = 0;
          for (; i + 4 <= m; i += 4) { /* four rows of A per pass over the row of B */
            const float *a0 = A + i * k, *a1 = a0 + k, *a2 = a1 + k, *a3 = a2 + k;
            double d0 = 0, d1 = 0, d2 = 0, d3 = 0;
            for (int64_t p0 = 0; p0 < k; p0 += KC) {
              const int64_t p1 = p0 + KC < k ? p0 + KC : k;
              float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
              for (int64_t p = p0; p < p1; p++) {
                const float bv = brow[p];
                s0 += a0[p] * bv; s1 += a1[p] * bv; s2 += a2[p] * bv; s3 += a3[p] * bv;
              }
              d0 += s0; d1 += s1; d2 += s2; d3 += s3;
            }
            acc[i][j] = d0; acc[i + 1][j] = d1; acc[i + 2][j] = d2; acc[i + 3][j] = d3;
          }
          for (; i < m; i++) {
            const float *arow = A + i * k;
            double d = 0;
            for (int64_t p0 = 0; p0 < k; p0 += KC) {
              const int64_t p1 = p0 + KC < k ? p0 + KC : k;
              float s = 0;
#pragma omp simd reduction(+ : s)
              for (int64_t p = p0; p < p1; p++) s += arow[p] * brow[p];
              d += s;
            }
            acc[i][j] = d;
          }
        }
      } else {
        /* B is k×n: rows of B (this column block) scaled by A's entries and added. */
        for (int64_t i = 0; i < m; i++) for (int64_t j = 0; j < w; j++) acc[i][j] = 0;
        for (int64_t p0 = 0; p0 < k; p0 += KC) {
          const int64_t p1 = p0 + KC < k ? p0 + KC : k;
          for (int64_t i = 0; i < m; i++) for (int64_t j = 0; j < w; j++) part[i][j] = 0;
          for (int64_t p = p0; p < p1; p++) {
            const float *brow = B + p * n + jb;
            for (int64_t i = 0; i < m; i++) {
              const float av = A[i * k + p];
              float *pr = part[i];
#pragma omp simd
              for (int64_t j = 0; j < w; j++) pr[j] += av * brow[j];
            }
          }
          for (int64_t i = 0; i < m; i++) for (int64_t j = 0; j < w; j++) acc[i][j] += part[i][j];
        }
      }
      for (int64_t i = 0; i < m; i++) {
        float *cr = C + i * n + jb;
        if (g->beta != 0) for (int64_t j = 0; j < w; j++) cr[j] = (float)(cr[j] + acc[i][j]);
        else for (int64_t j = 0; j < w; j++) cr[j] = (float)acc[i][j];
      }
    }
  }
}

float *sr3_gather_rows(const float *a, int64_t batch, int64_t m, int64_t k, int64_t strideA, int transA) {
  float *rows = malloc(sizeof(float) * (size_t)(batch * m * k));
  if (!rows) return NULL;
  for (int64_t bi = 0; bi < batch; bi++) {
    const float *ab = a + bi * strideA;
    float *r = rows + bi * m * k;
    if (transA) for (int64_t i = 0; i < m; i++) for (int64_t p = 0; p < k; p++) r[i * k + p] = ab[p * m + i];
    else memcpy(r, ab, sizeof(float) * (size_t)(m * k));
  }
  return rows;
}

static int gemm_skinny(Gemm *g) {
  const int64_t m = g->m, k = g->k;
  float *rows = sr3_gather_rows(g->a, g->batch, m, k, g->strideA, g->transA);
  if (!rows) return 0;
  g->rowsA = rows;
  /* Column chunks of ~256k multiply-adds; batches sharing C stay in order inside a chunk. */
  int64_t grain = (int64_t)(262144.0 / ((double)m * (double)k * (double)g->batch)) / NC * NC;
  if (grain < NC) grain = NC;
  sr3_parallel_for(g->n, grain, skinny_chunk, g);
  free(rows);
  return 1;
}

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
  /* C blocks that partly overlap: each product must see the one before it whole, which panels or column
     chunks of every batch entry do not keep, so the entries run one after another. */
  if (batch > 1 && strideC != 0 && strideC < m * n) {
    for (int64_t bi = 0; bi < batch; bi++)
      sr3_gemm(a + bi * strideA, b + bi * strideB, c + bi * strideC, 1, m, n, k, transA, transB, 0, 0, 0, accumulate);
    return;
  }
  Gemm g = {a, b, c, batch, m, n, k, strideA, strideB, strideC, 0, transA, transB, 0, beta, NULL};
  const double flops = 2.0 * (double)m * (double)n * (double)k * (double)batch;
  if (m <= SKINNY_M && (double)n * (double)k >= 65536.0 && gemm_skinny(&g)) return;
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
