/*
 * Fused softmax attention, forward and backward, on [batch, len, heads, headDim] layouts.
 * Each (batch, head) works through blocks of QB queries: scores = scale·Q_blk·Kᵀ and the products
 * with V are single-threaded sgemm calls that read Q/K/V in place through leading dimensions (no
 * gathering); masking and the softmax are plain loops. With causal masking a block only touches the
 * keys its last query may see. A batch row of K and V may hold more positions than the S attended
 * (KS, a KV cache with room to grow). The pool splits (batch, head) in the forward pass and (batch, kv head)
 * in the backward pass, so the dK/dV sums of a query-head group stay within one thread.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include "common.h"

#define QB 64

/* Keys visible to query i: positions 0..lim-1, clamped to [0, S]. */
static inline int64_t key_limit(const AttnShape *s, int64_t i) {
  if (!s->causal) return s->S;
  int64_t lim = s->S - s->T + i + 1;
  return lim < 0 ? 0 : (lim > s->S ? s->S : lim);
}

/* In place on a row of raw scores: masked / out-of-limit keys to -Inf. Returns the row max. */
static inline float mask_row(float *p, int64_t sEff, int64_t lim, const uint8_t *mask) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < sEff; j++) {
    const int ok = j < lim && (!mask || mask[j]);
    const float v = ok ? p[j] : -INFINITY;
    p[j] = v;
    mx = v > mx ? v : mx;
  }
  return mx;
}

static void sgemm(int tA, int tB, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

typedef struct {
  const float *q, *k, *v, *out, *lse, *dout;
  float *outW, *lseW, *dq, *dk, *dv;
  const AttnShape *s;
} Attn;

static void attn_fwd_chunk(void *vc, int64_t i0b, int64_t i1b, int tid) {
  (void)tid;
  const Attn *c = vc;
  const AttnShape *s = c->s;
  const float *q = c->q, *k = c->k, *v = c->v;
  float *out = c->outW, *lse = c->lseW;
  const int64_t H = s->H, G = s->G, T = s->T, S = s->S, KS = s->KS, D = s->D, group = H / G;
  const int64_t ldq = H * D, ldk = G * D;
  float *P = malloc(sizeof(float) * (size_t)(QB * (S > 0 ? S : 1)));
  if (!P) return;
  for (int64_t bh = i0b; bh < i1b; bh++) {
    const int64_t b = bh / H, h = bh % H, g = h / group;
    const float *qb = q + (b * T * H + h) * D, *kb = k + (b * KS * G + g) * D, *vb = v + (b * KS * G + g) * D;
    float *ob = out + (b * T * H + h) * D, *lb = lse + (b * H + h) * T;
    const uint8_t *mask = s->keyMask ? s->keyMask + b * S : NULL;
    for (int64_t i0 = 0; i0 < T; i0 += QB) {
      const int64_t nb = T - i0 < QB ? T - i0 : QB;
      const int64_t sEff = key_limit(s, i0 + nb - 1);
      if (sEff > 0 && D > 0) sgemm(0, 1, nb, sEff, D, s->scale, qb + i0 * ldq, ldq, kb, ldk, 0.0f, P, sEff);
      else memset(P, 0, sizeof(float) * (size_t)(nb * sEff));
      for (int64_t r = 0; r < nb; r++) {
        float *p = P + r * sEff;
        const float mx = mask_row(p, sEff, key_limit(s, i0 + r), mask);
        if (mx == -INFINITY) {
          for (int64_t j = 0; j < sEff; j++) p[j] = 0;
          lb[i0 + r] = -INFINITY;
          continue;
        }
        double sum = 0;
        for (int64_t j0 = 0; j0 < sEff; j0 += 256) {
          const int64_t j1 = j0 + 256 < sEff ? j0 + 256 : sEff;
          float part = 0;
#pragma omp simd reduction(+ : part)
          for (int64_t j = j0; j < j1; j++) { const float e = sr3_expf(p[j] - mx); p[j] = e; part += e; }
          sum += part;
        }
        const float inv = (float)(1.0 / sum);
#pragma omp simd
        for (int64_t j = 0; j < sEff; j++) p[j] *= inv;
        lb[i0 + r] = (float)((double)mx + log(sum));
      }
      if (D == 0) continue;
      if (sEff > 0) sgemm(0, 0, nb, D, sEff, 1.0f, P, sEff, vb, ldk, 0.0f, ob + i0 * ldq, ldq);
      else for (int64_t r = 0; r < nb; r++) memset(ob + (i0 + r) * ldq, 0, sizeof(float) * (size_t)D);
    }
  }
  free(P);
}

void sr3_attention_fwd(const float *q, const float *k, const float *v, float *out, float *lse, const AttnShape *s) {
  Attn c = {.q = q, .k = k, .v = v, .outW = out, .lseW = lse, .s = s};
  const int64_t items = s->batch * s->H;
  if ((double)items * s->T * (s->S + 1) * (s->D + 1) < SR3_CHUNK_OPS) attn_fwd_chunk(&c, 0, items, 0);
  else sr3_parallel_for(items, 1, attn_fwd_chunk, &c);
}

static void attn_bwd_chunk(void *vc, int64_t i0b, int64_t i1b, int tid) {
  (void)tid;
  const Attn *c = vc;
  const AttnShape *s = c->s;
  const float *q = c->q, *k = c->k, *v = c->v, *out = c->out, *lse = c->lse, *dout = c->dout;
  float *dq = c->dq, *dk = c->dk, *dv = c->dv;
  const int64_t H = s->H, G = s->G, T = s->T, S = s->S, KS = s->KS, D = s->D, group = H / G;
  const int64_t ldq = H * D, ldk = G * D;
  const size_t cells = (size_t)(QB * (S > 0 ? S : 1));
  float *P = malloc(sizeof(float) * cells), *dP = malloc(sizeof(float) * cells);
  if (!P || !dP) { free(P); free(dP); return; }
  for (int64_t bg = i0b; bg < i1b; bg++) {
    const int64_t b = bg / G, g = bg % G;
    const float *kb = k + (b * KS * G + g) * D, *vb = v + (b * KS * G + g) * D;
    float *dkb = dk + (b * KS * G + g) * D, *dvb = dv + (b * KS * G + g) * D;
    const uint8_t *mask = s->keyMask ? s->keyMask + b * S : NULL;
    for (int64_t j = 0; j < KS; j++) {
      memset(dkb + j * ldk, 0, sizeof(float) * (size_t)D);
      memset(dvb + j * ldk, 0, sizeof(float) * (size_t)D);
    }
    for (int64_t h = g * group; h < (g + 1) * group; h++) {
      const float *qb = q + (b * T * H + h) * D, *ob = out + (b * T * H + h) * D, *dob = dout + (b * T * H + h) * D;
      float *dqb = dq + (b * T * H + h) * D;
      const float *lb = lse + (b * H + h) * T;
      for (int64_t i0 = 0; i0 < T; i0 += QB) {
        const int64_t nb = T - i0 < QB ? T - i0 : QB;
        const int64_t sEff = key_limit(s, i0 + nb - 1);
        if (sEff == 0 || D == 0) {
          for (int64_t r = 0; r < nb; r++) memset(dqb + (i0 + r) * ldq, 0, sizeof(float) * (size_t)D);
          continue;
        }
        sgemm(0, 1, nb, sEff, D, s->scale, qb + i0 * ldq, ldq, kb, ldk, 0.0f, P, sEff);
        sgemm(0, 1, nb, sEff, D, 1.0f, dob + i0 * ldq, ldq, vb, ldk, 0.0f, dP, sEff);
        for (int64_t r = 0; r < nb; r++) {
          float *p = P + r * sEff, *dp = dP + r * sEff;
          const float l = lb[i0 + r];
          if (l == -INFINITY) {
            for (int64_t j = 0; j < sEff; j++) { p[j] = 0; dp[j] = 0; }
            continue;
          }
          mask_row(p, sEff, key_limit(s, i0 + r), mask);
          const float *dor = dob + (i0 + r) * ldq, *orow = ob + (i0 + r) * ldq;
          double delta = 0;
#pragma omp simd reduction(+ : delta)
          for (int64_t d = 0; d < D; d++) delta += (double)dor[d] * orow[d];
          const float df = (float)delta, sc = s->scale;
#pragma omp simd
          for (int64_t j = 0; j < sEff; j++) {
            const float pj = sr3_expf(p[j] - l);
            p[j] = pj;
            dp[j] = pj * (dp[j] - df) * sc;
          }
        }
        /* dV += Pᵀ·dO, dK += dSᵀ·Q, dQ = dS·K */
        sgemm(1, 0, sEff, D, nb, 1.0f, P, sEff, dob + i0 * ldq, ldq, 1.0f, dvb, ldk);
        sgemm(1, 0, sEff, D, nb, 1.0f, dP, sEff, qb + i0 * ldq, ldq, 1.0f, dkb, ldk);
        sgemm(0, 0, nb, D, sEff, 1.0f, dP, sEff, kb, ldk, 0.0f, dqb + i0 * ldq, ldq);
      }
    }
  }
  free(P);
  free(dP);
}

void sr3_attention_bwd(const float *q, const float *k, const float *v, const float *out, const float *lse,
                       const float *dout, float *dq, float *dk, float *dv, const AttnShape *s) {
  Attn c = {.q = q, .k = k, .v = v, .out = out, .lse = lse, .dout = dout, .dq = dq, .dk = dk, .dv = dv, .s = s};
  const int64_t items = s->batch * s->G;
  if ((double)s->batch * s->H * s->T * (s->S + 1) * (s->D + 1) < SR3_CHUNK_OPS) attn_bwd_chunk(&c, 0, items, 0);
  else sr3_parallel_for(items, 1, attn_bwd_chunk, &c);
}
