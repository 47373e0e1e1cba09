/* Embedding lookup and its scatter-add gradient. */
#include <omp.h>
#include "common.h"

void sr3_embedding_fwd(const float *w, const int32_t *ids, float *out, int64_t count, int64_t dim) {
  const int T = sr3_threads_for((size_t)(count * dim));
#pragma omp parallel for num_threads(T) if (parallel : T > 1) schedule(static)
  for (int64_t i = 0; i < count; i++) memcpy(out + i * dim, w + (int64_t)ids[i] * dim, sizeof(float) * (size_t)dim);
}

void sr3_embedding_bwd(const float *dout, const int32_t *ids, float *dw, int64_t count, int64_t dim) {
  /* Repeated ids collide on rows, so threads split the columns: each adds its column slice of every row in order. */
  int T = sr3_threads_for((size_t)(count * dim));
  if (dim < 32 * T) T = 1;
#pragma omp parallel num_threads(T) if (parallel : T > 1)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t c0 = dim * t / nt / 16 * 16, c1 = t == nt - 1 ? dim : dim * (t + 1) / nt / 16 * 16;
    for (int64_t i = 0; i < count; i++) {
      float *dr = dw + (int64_t)ids[i] * dim;
      const float *sr = dout + i * dim;
#pragma omp simd
      for (int64_t d = c0; d < c1; d++) dr[d] += sr[d];
    }
  }
}
