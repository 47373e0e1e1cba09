/* Embedding lookup and its scatter-add gradient. */
#include "common.h"

typedef struct {
  const float *w, *dout;
  const int32_t *ids;
  float *out, *dw;
  int64_t count, dim;
} Emb;

static void emb_fwd_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Emb *c = vc;
  for (int64_t i = b; i < e; i++)
    memcpy(c->out + i * c->dim, c->w + (int64_t)c->ids[i] * c->dim, sizeof(float) * (size_t)c->dim);
}

void sr3_embedding_fwd(const float *w, const int32_t *ids, float *out, int64_t count, int64_t dim) {
  Emb c = {.w = w, .ids = ids, .out = out, .dim = dim};
  sr3_parallel_for(count, sr3_grain(dim, SR3_CHUNK_OPS), emb_fwd_chunk, &c);
}

/* Repeated ids collide on rows, so chunks split the columns: each adds its column slice of every row in order. */
static void emb_bwd_chunk(void *vc, int64_t c0, int64_t c1, int tid) {
  (void)tid;
  const Emb *c = vc;
  for (int64_t i = 0; i < c->count; i++) {
    float *dr = c->dw + (int64_t)c->ids[i] * c->dim;
    const float *sr = c->dout + i * c->dim;
#pragma omp simd
    for (int64_t d = c0; d < c1; d++) dr[d] += sr[d];
  }
}

void sr3_embedding_bwd(const float *dout, const int32_t *ids, float *dw, int64_t count, int64_t dim) {
  Emb c = {.dout = dout, .ids = ids, .dw = dw, .count = count, .dim = dim};
  int64_t grain = sr3_grain(count, SR3_CHUNK_OPS);
  grain = grain < 64 ? 64 : (grain + 15) / 16 * 16; /* whole cache lines per chunk */
  sr3_parallel_for(dim, grain, emb_bwd_chunk, &c);
}
