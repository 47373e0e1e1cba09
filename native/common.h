/*
 * Shared declarations of the native kernels. The kernels are plain C on raw pointers; addon.c
 * validates every argument (lengths, index ranges) before calling them, so nothing here checks bounds.
 * Semantics follow src/tensor/kernels.ts exactly; src/tensor/js-kernels.ts is the reference.
 */
#ifndef SEARCH_R3_COMMON_H
#define SEARCH_R3_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_DIMS 16

/* Thread pool (pool.c): threads used by every parallel loop, gemm included; OpenBLAS itself stays on 1 thread. */
void sr3_set_threads(int n);
int sr3_threads(void);

/* signal-watch.c: SIGINT/SIGTERM/SIGHUP only noted (bit 1 << signo) between watch and unwatch, which puts the
 * previous handlers back and returns the bits; watch returns 0 while another watch is on. */
int sr3_watch_signals(void);
unsigned sr3_caught_signals(void);
unsigned sr3_unwatch_signals(void);
void sr3_exit_now(int code);
/* stderr-capture.c: fd 2 into memory until release, which restores it and returns the text (malloc'd, not
   NUL-terminated; NULL with length 0 when nothing was captured). Capture returns 0 when it did not start:
   not Linux, a capture already active, or a failed call. */
int sr3_capture_stderr(void);
char *sr3_release_stderr(size_t *length);

/* Runs fn(ctx, begin, end, tid) for the chunks [c·grain, min(n, (c+1)·grain)) of [0, n), spread over the
   pool; tid (0 = the calling thread) indexes per-thread scratch. Chunks never depend on the thread count. */
typedef void (*ChunkFn)(void *ctx, int64_t begin, int64_t end, int tid);
void sr3_parallel_for(int64_t n, int64_t grain, ChunkFn fn, void *ctx);
int64_t sr3_chunks(int64_t n, int64_t grain);

/* Grain for loops of cheap work: about `ops` operations per chunk (a chunk should cost >= ~10 µs). */
static inline int64_t sr3_grain(int64_t opsPerItem, int64_t ops) {
  const int64_t per = opsPerItem < 1 ? 1 : opsPerItem;
  const int64_t g = ops / per;
  return g < 1 ? 1 : g;
}
#define SR3_CHUNK_OPS 32768

/*
 * exp in float, vectorisable (no libm call inside loops): range reduction to |r| <= ln2/2 and a
 * degree-7 Taylor polynomial; max relative error 7.9e-8 (measured over [-87, 88]). 0 below
 * -87.3 (about the smallest normal), +Inf above ln(FLT_MAX), NaN stays NaN.
 */
static inline float sr3_expf(float x) {
  const float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
  float xc = x < -87.3f ? -87.3f : (x > 88.72f ? 88.72f : x);
  xc = x == x ? xc : 0.0f; /* NaN: compute anything in range, return x below */
  /* round to nearest via truncation of a positive value (vectorises; floorf does not here) */
  int32_t ni = (int32_t)(xc * LOG2E + 128.5f) - 128;
  float n = (float)ni;
  float r = xc - n * LN2_HI;
  r = r - n * LN2_LO;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t h = ni >> 1;
  union { int32_t i; float f; } s1, s2;
  s1.i = (h + 127) << 23;
  s2.i = (ni - h + 127) << 23;
  float res = p * s1.f * s2.f;
  res = x < -87.3f ? 0.0f : res;
  res = x > 88.7228f ? __builtin_inff() : res;
  res = x == x ? res : x;
  return res;
}

static inline float sr3_sigmoidf(float x) { return 1.0f / (1.0f + sr3_expf(-x)); }

typedef enum { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3 } BinaryOp;
typedef enum { U_NEG = 0, U_EXP = 1, U_LOG = 2, U_SQRT = 3, U_ABS = 4, U_SQUARE = 5, U_RECIP = 6 } UnaryOp;

/* A (m×k, or k×m with transA) of every batch as contiguous m×k rows, in a new buffer (NULL without memory). */
float *sr3_gather_rows(const float *a, int64_t batch, int64_t m, int64_t k, int64_t strideA, int transA);

void sr3_gemm(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n, int64_t k,
              int transA, int transB, int64_t strideA, int64_t strideB, int64_t strideC, int accumulate);

/* B (and the embedding table) held in 16 bits: bf16 != 0 for bfloat16, else IEEE f16 (native/half.c). */
void sr3_gemm_half(const float *a, const uint16_t *b, int bf16, float *c, int64_t batch, int64_t m, int64_t n,
                   int64_t k, int transA, int transB, int64_t strideA, int64_t strideB, int64_t strideC,
                   int accumulate);
void sr3_widen_half(const uint16_t *src, int bf16, float *dst, int64_t n);
int sr3_half_all_finite(const uint16_t *x, int bf16, int64_t n);
void sr3_embedding_fwd_half(const uint16_t *w, int bf16, const int32_t *ids, float *out, int64_t count, int64_t dim);

void sr3_binary(int op, const float *a, const int64_t *sa, const float *b, const int64_t *sb, float *out,
                const int64_t *shape, int nd);
void sr3_copy(const float *src, int64_t srcOff, const int64_t *ss, float *dst, int64_t dstOff, const int64_t *ds,
              const int64_t *shape, int nd, int accumulate);
void sr3_unary(int op, const float *x, float *out, size_t n);
void sr3_axpby(double alpha, const float *x, double beta, float *out, size_t n);
double sr3_sum_squares(const float *x, size_t n);
int sr3_all_finite(const float *x, size_t n);
void sr3_reduce(int op, const float *x, int64_t outer, int64_t n, int64_t inner, float *out, int32_t *argmax);

void sr3_silu_fwd(const float *x, float *y, size_t n);
void sr3_silu_bwd(const float *x, const float *dy, float *dx, size_t n);
void sr3_swiglu_fwd(const float *gate, const float *up, float *y, size_t n);
void sr3_swiglu_bwd(const float *gate, const float *up, const float *dy, float *dgate, float *dup, size_t n);

void sr3_rmsnorm_fwd(const float *x, const float *w, float *y, float *rstd, int64_t rows, int64_t dim, double eps);
void sr3_rmsnorm_bwd(const float *dy, const float *x, const float *w, const float *rstd, float *dx, float *dw,
                     int64_t rows, int64_t dim);
void sr3_l2normalize_fwd(const float *x, float *y, float *norms, int64_t rows, int64_t dim, double eps);
void sr3_l2normalize_bwd(const float *g, const float *y, const float *norms, float *dx, int64_t rows, int64_t dim,
                         double eps);
void sr3_rope(const float *x, float *out, const float *cos, const float *sin, const int32_t *pos,
              int64_t rows, int64_t heads, int64_t headDim, int inverse);

void sr3_softmax_fwd(const float *x, float *y, int64_t rows, int64_t n);
void sr3_softmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t n);
void sr3_logsoftmax_fwd(const float *x, float *y, int64_t rows, int64_t n);
void sr3_logsoftmax_bwd(const float *y, const float *dy, float *dx, int64_t rows, int64_t n);

void sr3_xent_fwd(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t rows, int64_t vocab,
                  int32_t ignore);
void sr3_xent_bwd(const float *logits, const int32_t *targets, const float *lse, const float *scale, float *dlogits,
                  int64_t rows, int64_t vocab, int32_t ignore);

typedef struct {
  /* KS: key/value positions allocated per batch row (>= S; a KV cache with room to grow) */
  int64_t batch, H, G, T, S, KS, D;
  float scale;
  int causal;
  const uint8_t *keyMask;
} AttnShape;
void sr3_attention_fwd(const float *q, const float *k, const float *v, float *out, float *lse, const AttnShape *s);
void sr3_attention_bwd(const float *q, const float *k, const float *v, const float *out, const float *lse,
                       const float *dout, float *dq, float *dk, float *dv, const AttnShape *s);

void sr3_embedding_fwd(const float *w, const int32_t *ids, float *out, int64_t count, int64_t dim);
void sr3_embedding_bwd(const float *dout, const int32_t *ids, float *dw, int64_t count, int64_t dim);

void sr3_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2,
               double eps, double wd, double bc1, double bc2);

#endif
