/*
 * Cross-entropy over vocabulary rows (the training loss): forward writes loss and log-sum-exp per row,
 * backward writes scale·(softmax − onehot); rows whose target is ignoreIndex give 0.
 */
#include "rowmath.h"

typedef struct {
  const float *logits, *lseIn, *scale;
  const int32_t *targets;
  float *loss, *lse, *dlogits;
  int64_t vocab;
  int32_t ignore;
} Xent;

static void xent_fwd_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Xent *c = vc;
  for (int64_t r = b; r < e; r++) {
    const int32_t t = c->targets[r];
    if (t == c->ignore) { c->loss[r] = 0; c->lse[r] = 0; continue; }
    const float *lr = c->logits + r * c->vocab;
    const double l = row_lse(lr, c->vocab);
    c->lse[r] = (float)l;
    c->loss[r] = (float)(l - lr[t]);
  }
}

static void xent_bwd_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Xent *c = vc;
  const int64_t vocab = c->vocab;
  for (int64_t r = b; r < e; r++) {
    const int32_t t = c->targets[r];
    float *dr = c->dlogits + r * vocab;
    if (t == c->ignore) { memset(dr, 0, sizeof(float) * (size_t)vocab); continue; }
    const float *lr = c->logits + r * vocab;
    const float l = c->lseIn[r], s = c->scale[r];
#pragma omp simd
    for (int64_t i = 0; i < vocab; i++) dr[i] = s * sr3_expf(lr[i] - l);
    dr[t] = (float)((double)dr[t] - s);
  }
}

void sr3_xent_fwd(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t rows, int64_t vocab,
                  int32_t ignore) {
  Xent c = {.logits = logits, .targets = targets, .loss = loss, .lse = lse, .vocab = vocab, .ignore = ignore};
  sr3_parallel_for(rows, sr3_grain(vocab * 4, SR3_CHUNK_OPS), xent_fwd_chunk, &c);
}

void sr3_xent_bwd(const float *logits, const int32_t *targets, const float *lse, const float *scale, float *dlogits,
                  int64_t rows, int64_t vocab, int32_t ignore) {
  Xent c = {.logits = logits, .lseIn = lse, .scale = scale, .targets = targets, .dlogits = dlogits, .vocab = vocab,
            .ignore = ignore};
  sr3_parallel_for(rows, sr3_grain(vocab * 4, SR3_CHUNK_OPS), xent_bwd_chunk, &c);
}
