/*
 * Kernels that read frozen weights held in 16 bits (IEEE f16 or bfloat16) and widen them to float32
 * as they go: gemm with such a B (linear layers and the LM head), the embedding lookup, a plain widen.
 *
 * Widening is exact (every f16 and bf16 value is a float32), so these kernels compute what the float32
 * kernels compute on the widened weight, up to the order of the sums.
 *   - bf16 is the top half of a float32: a 16-bit shift.
 *   - f16 goes through F16C (_mm512_cvtph_ps / _mm256_cvtph_ps) where the CPU has it, else a bit-exact
 *     scalar conversion.
 * Products of a few rows (decoding, short prompts: m <= SKINNY_M) stream the weight once, widening in registers.
 * Larger products (prefill, embedding documents, training) run our own AVX-512 gemm on packed blocks,
 * widening B as it is packed; without AVX-512 they widen one panel of B at a time and run OpenBLAS sgemm.
 */
#include <cblas.h>
#include <immintrin.h>
#include <stdlib.h>
#include "common.h"

static inline float f16_to_f32(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);
  else if (exp != 0) bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  else if (mant == 0) bits = sign;
  else {
    int e = -14;
    while ((mant & 0x400) == 0) { mant <<= 1; e--; }
    bits = sign | ((uint32_t)(e + 127) << 23) | ((mant & 0x3ff) << 13);
  }
  union { uint32_t u; float f; } v = {bits};
  return v.f;
#endif
}

static inline float bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v = {(uint32_t)h << 16};
  return v.f;
}

static inline float widen1(uint16_t h, int bf16) { return bf16 ? bf16_to_f32(h) : f16_to_f32(h); }

#if defined(__AVX512F__)
/* 16 values from 16-bit patterns at p. */
static inline __m512 load16(const uint16_t *p, int bf16) {
  const __m256i h = _mm256_loadu_si256((const __m256i *)p);
  if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}
#endif

/* dst[0..n) = widened src[0..n). */
static void widen_run(const uint16_t *src, int bf16, float *dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16(src + i, bf16));
#endif
  if (bf16)
    for (; i < n; i++) dst[i] = bf16_to_f32(src[i]);
  else
    for (; i < n; i++) dst[i] = f16_to_f32(src[i]);
}

typedef struct {
  const uint16_t *src;
  int bf16;
  float *dst;
} Widen;

static void widen_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Widen *w = vc;
  widen_run(w->src + b, w->bf16, w->dst + b, e - b);
}

void sr3_widen_half(const uint16_t *src, int bf16, float *dst, int64_t n) {
  Widen w = {src, bf16, dst};
  sr3_parallel_for(n, 1 << 16, widen_chunk, &w);
}

typedef struct {
  const uint16_t *x;
  uint16_t mask;
  _Atomic int *bad;
} Finite;

static void finite_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Finite *f = vc;
  uint32_t bad = 0;
  /* exponent all ones = Inf or NaN */
#pragma omp simd reduction(| : bad)
  for (int64_t i = b; i < e; i++) bad |= (uint32_t)((f->x[i] & f->mask) == f->mask);
  if (bad) *f->bad = 1;
}

int sr3_half_all_finite(const uint16_t *x, int bf16, int64_t n) {
  _Atomic int bad = 0;
  Finite f = {x, bf16 ? 0x7f80 : 0x7c00, &bad};
  sr3_parallel_for(n, 1 << 18, finite_chunk, &f);
  return bad == 0;
}

/* ---------------------------------------------------------------- embedding */

typedef struct {
  const uint16_t *w;
  int bf16;
  const int32_t *ids;
  float *out;
  int64_t dim;
} EmbHalf;

static void emb_half_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const EmbHalf *c = vc;
  for (int64_t i = b; i < e; i++) widen_run(c->w + (int64_t)c->ids[i] * c->dim, c->bf16, c->out + i * c->dim, c->dim);
}

void sr3_embedding_fwd_half(const uint16_t *w, int bf16, const int32_t *ids, float *out, int64_t count, int64_t dim) {
  EmbHalf c = {w, bf16, ids, out, dim};
  sr3_parallel_for(count, sr3_grain(dim, SR3_CHUNK_OPS), emb_half_chunk, &c);
}

/* ---------------------------------------------------------------- gemm */

typedef struct {
  const float *a;
  const uint16_t *b;
  float *c;
  int bf16, transA, transB;
  int64_t batch, m, n, k, strideA, strideB, strideC;
  float beta;
  const float *rowsA; /* skinny path: A of every batch as contiguous m×k rows */
} GemmHalf;

/* Products of up to this many rows stream the weight once, without packing: packing B costs as much as
   the arithmetic of about a dozen rows (measured at the 1.5B shapes: streaming wins at 16 rows by ~10%,
   packing at 12 by ~5%). */
#define SKINNY_M 16
/* Weights streamed by a decode product are prefetched this many elements (2 KB) ahead: the hardware
   prefetcher alone left 10-25% of the memory bandwidth unused (measured on the 1.5B shapes). */
#define PREFETCH 1024

/* One row of A against a row of B: four independent sums keep the FMA units busy while B streams in. */
static float dot1(const float *a, int64_t k, const uint16_t *b, int bf16) {
  int64_t p = 0;
  float s = 0;
#if defined(__AVX512F__)
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  for (; p + 64 <= k; p += 64) {
    _mm_prefetch((const char *)(b + p + PREFETCH), _MM_HINT_T0);
    _mm_prefetch((const char *)(b + p + PREFETCH + 32), _MM_HINT_T0);
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + p), load16(b + p, bf16), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + p + 16), load16(b + p + 16, bf16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + p + 32), load16(b + p + 32, bf16), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + p + 48), load16(b + p + 48, bf16), s3);
  }
  for (; p + 16 <= k; p += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + p), load16(b + p, bf16), s0);
  s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
#endif
  for (; p < k; p++) s += a[p] * widen1(b[p], bf16);
  return s;
}

/* Past this k, a row of A (4k bytes) crowds L1 and one-row dots reload it from L2 for every weight row;
   below it, one row at a time streams as fast (measured at the Qwen2.5-1.5B shapes). */
#define DOT4_MIN_K 4096

/* One row of A against four rows of B (ldb apart): each 16 values of A are loaded once for four weights,
   and four weight streams are in flight at once. Decoding reads every weight once per token, so this is
   where a token's time goes; A alone (the down projection's 8960 floats) no longer fits in L1. */
static void dot4(const float *a, int64_t k, const uint16_t *b, int64_t ldb, int bf16, float *out) {
  int64_t p = 0;
  float s[4] = {0, 0, 0, 0};
#if defined(__AVX512F__)
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  for (; p + 16 <= k; p += 16) {
    if ((p & 31) == 0)
      for (int r = 0; r < 4; r++) _mm_prefetch((const char *)(b + r * ldb + p + PREFETCH), _MM_HINT_T0);
    const __m512 x = _mm512_loadu_ps(a + p);
    s0 = _mm512_fmadd_ps(x, load16(b + p, bf16), s0);
    s1 = _mm512_fmadd_ps(x, load16(b + ldb + p, bf16), s1);
    s2 = _mm512_fmadd_ps(x, load16(b + 2 * ldb + p, bf16), s2);
    s3 = _mm512_fmadd_ps(x, load16(b + 3 * ldb + p, bf16), s3);
  }
  s[0] = _mm512_reduce_add_ps(s0);
  s[1] = _mm512_reduce_add_ps(s1);
  s[2] = _mm512_reduce_add_ps(s2);
  s[3] = _mm512_reduce_add_ps(s3);
#endif
  for (; p < k; p++)
    for (int r = 0; r < 4; r++) {
      const uint16_t h = b[r * ldb + p];
      s[r] += a[p] * widen1(h, bf16);
    }
  for (int r = 0; r < 4; r++) out[r] = s[r];
}

#define ROWS_A 6 /* rows of A per pass of block4: 6 × 4 = 24 accumulators */

/* Four rows of B (k apart) against `rows` rows of A (a constant where inlined): out[i·4 + r] = a_i · b_r. */
static inline __attribute__((always_inline)) void block4_rows(const float *A, int rows, int64_t k, const uint16_t *b,
                                                                int bf16, int prefetch, float *out) {
  int64_t p = 0;
#if defined(__AVX512F__)
  __m512 acc[ROWS_A][4];
  for (int i = 0; i < rows; i++)
    for (int r = 0; r < 4; r++) acc[i][r] = _mm512_setzero_ps();
  for (; p + 16 <= k; p += 16) {
    if (prefetch && (p & 31) == 0)
      for (int r = 0; r < 4; r++) _mm_prefetch((const char *)(b + r * k + p + PREFETCH), _MM_HINT_T0);
    const __m512 w0 = load16(b + p, bf16), w1 = load16(b + k + p, bf16), w2 = load16(b + 2 * k + p, bf16),
                 w3 = load16(b + 3 * k + p, bf16);
    for (int i = 0; i < rows; i++) {
      const __m512 a = _mm512_loadu_ps(A + i * k + p);
      acc[i][0] = _mm512_fmadd_ps(a, w0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, w1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(a, w2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(a, w3, acc[i][3]);
    }
  }
  for (int i = 0; i < rows; i++)
    for (int r = 0; r < 4; r++) out[i * 4 + r] = _mm512_reduce_add_ps(acc[i][r]);
#else
  (void)prefetch;
  for (int i = 0; i < rows * 4; i++) out[i] = 0;
#endif
  for (; p < k; p++)
    for (int r = 0; r < 4; r++) {
      const float w = widen1(b[r * k + p], bf16);
      for (int i = 0; i < rows; i++) out[i * 4 + r] += A[i * k + p] * w;
    }
}

/*
 * Four rows of B against m rows of A (k floats each), ROWS_A rows at a time: out[i·4 + r] = a_i · b_r. Each
 * widened weight vector feeds ROWS_A × 4 independent multiply-adds; the first pass streams the weight rows
 * in (prefetched), later passes find them in L1/L2.
 */
static void block4(const float *A, int64_t m, int64_t k, const uint16_t *b, int bf16, float *out) {
  for (int64_t i0 = 0; i0 < m; i0 += ROWS_A) {
    const float *a = A + i0 * k;
    float *o = out + i0 * 4;
    const int pf = i0 == 0;
    switch (m - i0 < ROWS_A ? (int)(m - i0) : ROWS_A) {
      case 1: block4_rows(a, 1, k, b, bf16, pf, o); break;
      case 2: block4_rows(a, 2, k, b, bf16, pf, o); break;
      case 3: block4_rows(a, 3, k, b, bf16, pf, o); break;
      case 4: block4_rows(a, 4, k, b, bf16, pf, o); break;
      case 5: block4_rows(a, 5, k, b, bf16, pf, o); break;
      default: block4_rows(a, ROWS_A, k, b, bf16, pf, o); break;
    }
  }
}

/* Columns j0..j1 of C for every batch, B stored n×k (a linear layer's weight): one pass over its rows. */
static void skinny_chunk(void *vc, int64_t j0, int64_t j1, int tid) {
  (void)tid;
  const GemmHalf *g = vc;
  const int64_t m = g->m, n = g->n, k = g->k;
  float d[SKINNY_M * 4];
  for (int64_t bi = 0; bi < g->batch; bi++) {
    const float *A = g->rowsA + bi * m * k;
    const uint16_t *B = g->b + bi * g->strideB;
    float *C = g->c + bi * g->strideC;
    int64_t j = j0;
    if (m > 1 || k > DOT4_MIN_K)
      for (; j + 4 <= j1; j += 4) {
        if (m == 1) dot4(A, k, B + j * k, k, g->bf16, d);
        else block4(A, m, k, B + j * k, g->bf16, d);
        for (int64_t i = 0; i < m; i++)
          for (int r = 0; r < 4; r++) {
            float *cij = C + i * n + j + r;
            *cij = g->beta != 0 ? *cij + d[i * 4 + r] : d[i * 4 + r];
          }
      }
    for (; j < j1; j++)
      for (int64_t i = 0; i < m; i++) {
        const float v = dot1(A + i * k, k, B + j * k, g->bf16);
        C[i * n + j] = g->beta != 0 ? C[i * n + j] + v : v;
      }
  }
}

static int gemm_half_skinny(GemmHalf *g) {
  const int64_t m = g->m, k = g->k;
  float *rows = NULL;
  if (g->transA || (g->batch > 1 && g->strideA != m * k)) {
    rows = sr3_gather_rows(g->a, g->batch, m, k, g->strideA, g->transA);
    if (!rows) return 0;
  }
  g->rowsA = rows ? rows : g->a; /* A is already contiguous rows (decoding): read in place */
  /* column chunks of ~256k multiply-adds, whole cache lines of C */
  int64_t grain = (int64_t)(262144.0 / ((double)m * (double)k * (double)g->batch)) / 16 * 16;
  if (grain < 16) grain = 16;
  sr3_parallel_for(g->n, grain, skinny_chunk, g);
  free(rows);
  return 1;
}

#if defined(__AVX512F__)
/*
 * Larger products: our own AVX-512 gemm on packed blocks, B widened straight into its packed layout. Widening
 * a panel and calling sgemm on it would write and re-read a float32 copy of B, and run whichever kernels
 * OpenBLAS picked for the CPU (its AVX2 ones where OPENBLAS_CORETYPE asks for them, as on machines where its
 * AVX-512 detection is distrusted): 1.8x slower at 512 rows here. The arithmetic is float32 multiply-adds of
 * exactly widened weights, summed in k order within each KC block.
 *
 * Blocking (GotoBLAS/BLIS order): a thread owns a panel of C's columns; for each KC slice of k it packs
 * that slice of its B columns (KC × panel, L2) into NR-wide micro-panels, then for each MC rows of A packs
 * them (MC × KC) into MR-tall micro-panels, and the micro-kernel adds MR × NR tiles of C from one of each:
 * MR × NR / 16 = 24 accumulators in registers, the B micro-panel (KC × NR, 24 KB) staying in L1.
 */
#define MR 12
#define NR 32
#define KC 192
#define MC 96
/* Packing reads NR rows of B at once, too many streams for the hardware prefetcher: each row is prefetched
   this many elements ahead (64-384 measured; 128 was best, and 3x faster than none at 8 rows of A). */
#define PACK_PREFETCH 128
#define PANEL_MAX 1024 /* columns of B a thread packs at once: KC × PANEL_MAX floats = 768 KB, within L2 */

/* Lanes [0, count) of a 16-lane mask. */
static inline __mmask16 first_lanes(int64_t count) {
  return count >= 16 ? (__mmask16)0xffff : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

/* C[rows×cols] (+)= Ap (kc × MR, packed) · Bp (kc × NR, packed); rows ≤ MR, cols ≤ NR; add: keep C's values. */
static void micro_kernel(int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc, int rows, int cols,
                         int add) {
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; p++, ap += MR, bp += NR) {
    const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      const __m512 a = _mm512_set1_ps(ap[r]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __mmask16 m0 = first_lanes(cols), m1 = first_lanes(cols - 16);
  for (int r = 0; r < rows; r++) {
    float *cr = c + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (add) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
  }
}

/* Widens the low (hi = 0) or high 16 bits of each 32-bit lane. */
static inline __m512 widen_lanes(__m512i v, int hi, int bf16) {
  if (bf16) return _mm512_castsi512_ps(hi ? _mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u))
                                          : _mm512_slli_epi32(v, 16));
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hi ? _mm512_srli_epi32(v, 16) : v));
}

/*
 * One NR-wide micro-panel from B stored n×k (transB: a column of the product is a row of B): rows p of the
 * panel are strided across jw rows of B. A 32-bit gather from 16 rows at offset p brings W[j][p] and
 * W[j][p+1] of each, so two gathers fill two packed rows; an odd last p is copied one value at a time.
 */
static void pack_b_strided(const uint16_t *B, int64_t k, int bf16, int64_t jw, int64_t kc, float *d) {
  const __m512i idx0 = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)k));
  const __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32(16 * (int)k));
  const __mmask16 m0 = first_lanes(jw), m1 = first_lanes(jw - 16);
  const __m512i zero = _mm512_setzero_si512();
  int64_t p = 0;
  for (; p + 2 <= kc; p += 2) {
    if ((p & 31) == 0)
      for (int64_t c = 0; c < jw; c++) _mm_prefetch((const char *)(B + c * k + p + PACK_PREFETCH), _MM_HINT_T0);
    const __m512i g0 = _mm512_mask_i32gather_epi32(zero, m0, idx0, B + p, 2);
    const __m512i g1 = _mm512_mask_i32gather_epi32(zero, m1, idx1, B + p, 2);
    _mm512_store_ps(d + p * NR, widen_lanes(g0, 0, bf16));
    _mm512_store_ps(d + p * NR + 16, widen_lanes(g1, 0, bf16));
    _mm512_store_ps(d + (p + 1) * NR, widen_lanes(g0, 1, bf16));
    _mm512_store_ps(d + (p + 1) * NR + 16, widen_lanes(g1, 1, bf16));
  }
  for (; p < kc; p++)
    for (int64_t c = 0; c < NR; c++) d[p * NR + c] = c < jw ? widen1(B[c * k + p], bf16) : 0;
}

/* Rows p0..p0+kc of B's columns j0..j0+w, widened, as NR-wide micro-panels (zero past w): dst[(jr·kc + p)·NR + c]. */
static void pack_b(const GemmHalf *g, const uint16_t *B, int64_t j0, int64_t w, int64_t p0, int64_t kc, float *dst) {
  for (int64_t jr = 0; jr < w; jr += NR) {
    float *d = dst + jr * kc;
    const int64_t jw = w - jr < NR ? w - jr : NR;
    if (g->transB) pack_b_strided(B + (j0 + jr) * g->k + p0, g->k, g->bf16, jw, kc, d);
    else /* B is k×n: a row of B holds NR consecutive columns */
      for (int64_t p = 0; p < kc; p++) {
        widen_run(B + (p0 + p) * g->n + j0 + jr, g->bf16, d + p * NR, jw);
        for (int64_t c = jw; c < NR; c++) d[p * NR + c] = 0;
      }
  }
}

/* Rows i0..i0+mc, columns p0..p0+kc of A as MR-tall micro-panels (zero past mc): dst[(ir·kc + p)·MR + r]. */
static void pack_a(const GemmHalf *g, const float *A, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    float *d = dst + ir * kc;
    const int64_t rows = mc - ir < MR ? mc - ir : MR;
    for (int64_t r = 0; r < MR; r++) {
      const int64_t i = i0 + ir + r;
      if (r >= rows)
        for (int64_t p = 0; p < kc; p++) d[p * MR + r] = 0;
      else if (g->transA) /* A is k×m */
        for (int64_t p = 0; p < kc; p++) d[p * MR + r] = A[(p0 + p) * g->m + i];
      else
        for (int64_t p = 0; p < kc; p++) d[p * MR + r] = A[i * g->k + p0 + p];
    }
  }
}

/* The calling thread's packing buffers; they live as long as the thread. */
static __thread float *t_pack = NULL;

static float *pack_buffers(void) {
  if (!t_pack) t_pack = aligned_alloc(64, sizeof(float) * (size_t)(KC * PANEL_MAX + MC * KC));
  return t_pack;
}

/* Columns j0..j1 of C for every batch (batches in order, so a shared C adds up in order). */
static void panel_chunk(void *vc, int64_t j0, int64_t j1, int tid) {
  (void)tid;
  const GemmHalf *g = vc;
  const int64_t m = g->m, k = g->k, w = j1 - j0;
  float *bp = pack_buffers();
  if (!bp) abort(); /* out of memory for 1 MB of packing: nothing sensible is left to do */
  float *ap = bp + KC * PANEL_MAX;
  for (int64_t bi = 0; bi < g->batch; bi++) {
    const float *A = g->a + bi * g->strideA;
    float *C = g->c + bi * g->strideC + j0;
    for (int64_t p0 = 0; p0 < k; p0 += KC) {
      const int64_t kc = k - p0 < KC ? k - p0 : KC;
      const int add = p0 > 0 || g->beta != 0;
      pack_b(g, g->b + bi * g->strideB, j0, w, p0, kc, bp);
      for (int64_t i0 = 0; i0 < m; i0 += MC) {
        const int64_t mc = m - i0 < MC ? m - i0 : MC;
        pack_a(g, A, i0, mc, p0, kc, ap);
        for (int64_t jr = 0; jr < w; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR)
            micro_kernel(kc, ap + ir * kc, bp + jr * kc, C + (i0 + ir) * g->n + jr, g->n,
                         (int)(mc - ir < MR ? mc - ir : MR), (int)(w - jr < NR ? w - jr : NR), add);
      }
    }
  }
}

/* Panels of at most PANEL_MAX columns, at least one per thread, whole micro-panels. */
static int64_t panel_width(int64_t n) {
  const int T = sr3_threads();
  int64_t width = ((n + T - 1) / T + NR - 1) / NR * NR;
  return width > PANEL_MAX ? PANEL_MAX : width;
}
#else
/* Without AVX-512: widen one panel of B at a time into a per-thread buffer and run OpenBLAS sgemm on it. */
#define NC 64
static __thread float *t_panel = NULL;
static __thread size_t t_panelCap = 0;

static float *panel_buffer(size_t floats) {
  if (floats > t_panelCap) {
    free(t_panel);
    t_panel = malloc(sizeof(float) * floats);
    t_panelCap = t_panel ? floats : 0;
  }
  return t_panel;
}

static void panel_chunk(void *vc, int64_t j0, int64_t j1, int tid) {
  (void)tid;
  const GemmHalf *g = vc;
  const int64_t m = g->m, n = g->n, k = g->k, w = j1 - j0;
  float *s = panel_buffer((size_t)(w * k));
  if (!s) abort(); /* out of memory for a panel of a few MB: nothing sensible is left to do */
  for (int64_t bi = 0; bi < g->batch; bi++) {
    const uint16_t *B = g->b + bi * g->strideB;
    if (bi == 0 || g->strideB != 0) {
      if (g->transB) widen_run(B + j0 * k, g->bf16, s, w * k);
      else for (int64_t p = 0; p < k; p++) widen_run(B + p * n + j0, g->bf16, s + p * w, w);
    }
    const float *A = g->a + bi * g->strideA;
    const CBLAS_TRANSPOSE ta = g->transA ? CblasTrans : CblasNoTrans, tb = g->transB ? CblasTrans : CblasNoTrans;
    cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)w, (int)k, 1.0f, A, (int)(g->transA ? m : k), s,
                (int)(g->transB ? k : w), g->beta, g->c + bi * g->strideC + j0, (int)n);
  }
}

/* Panels of ~1M widened floats (4 MB), at least NC columns, and at least one panel per thread. */
static int64_t panel_width(int64_t n, int64_t k) {
  const int T = sr3_threads();
  int64_t width = (int64_t)(1048576 / k) / 16 * 16;
  const int64_t perThread = ((n + T - 1) / T + 15) / 16 * 16;
  if (width > perThread) width = perThread;
  return width < NC ? NC : width;
}
#endif

void sr3_gemm_half(const float *a, const uint16_t *b, int bf16, float *c, int64_t batch, int64_t m, int64_t n,
                   int64_t k, int transA, int transB, int64_t strideA, int64_t strideB, int64_t strideC,
                   int accumulate) {
  if (batch <= 0 || m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t bi = 0; bi < batch; bi++) memset(c + bi * strideC, 0, sizeof(float) * (size_t)(m * n));
    return;
  }
  /* C blocks that partly overlap: each product must see the one before it whole, which column panels of
     every batch entry do not keep, so the entries run one after another. */
  if (batch > 1 && strideC != 0 && strideC < m * n) {
    for (int64_t bi = 0; bi < batch; bi++)
      sr3_gemm_half(a + bi * strideA, b + bi * strideB, bf16, c + bi * strideC, 1, m, n, k, transA, transB, 0, 0, 0,
                    accumulate);
    return;
  }
  GemmHalf g = {a, b, c, bf16, transA, transB, batch, m, n, k, strideA, strideB, strideC,
                accumulate ? 1.0f : 0.0f, NULL};
  if (m <= SKINNY_M && transB && gemm_half_skinny(&g)) return;
#if defined(__AVX512F__)
  sr3_parallel_for(n, panel_width(n), panel_chunk, &g);
#else
  sr3_parallel_for(n, panel_width(n, k), panel_chunk, &g);
#endif
}
