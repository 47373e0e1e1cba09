/*
 * reduce: x viewed as [outer, n, inner], summed (in double) or maxed over n. Work is cut into
 * (outer row, tile of inner) items so both "reduce the last axis" and "reduce a middle axis" spread
 * over the pool; a single long row (outer = inner = 1) is split into chunks with partial sums instead.
 */
#include <math.h>
#include <stdlib.h>
#include "common.h"

#define TILE 256

static void sum_item(const float *x, int64_t n, int64_t inner, int64_t o, int64_t i0, int64_t i1, float *out) {
  const float *base = x + o * n * inner;
  if (inner == 1) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; j++) s += base[j];
    out[o] = (float)s;
    return;
  }
  double acc[TILE];
  const int64_t w = i1 - i0;
  for (int64_t i = 0; i < w; i++) acc[i] = 0;
  for (int64_t j = 0; j < n; j++) {
    const float *row = base + j * inner + i0;
#pragma omp simd
    for (int64_t i = 0; i < w; i++) acc[i] += row[i];
  }
  for (int64_t i = 0; i < w; i++) out[o * inner + i0 + i] = (float)acc[i];
}

/* First NaN wins; otherwise the first index of the largest value; -Inf and index 0 when n = 0. */
static void max_item(const float *x, int64_t n, int64_t inner, int64_t o, int64_t i0, int64_t i1, float *out,
                     int32_t *argmax) {
  const float *base = x + o * n * inner;
  float best[TILE];
  int32_t arg[TILE];
  const int64_t w = i1 - i0;
  for (int64_t i = 0; i < w; i++) { best[i] = -INFINITY; arg[i] = 0; }
  for (int64_t j = 0; j < n; j++) {
    const float *row = base + j * inner + i0;
    for (int64_t i = 0; i < w; i++) {
      const float v = row[i];
      if (!isnan(best[i]) && (v > best[i] || isnan(v))) { best[i] = v; arg[i] = (int32_t)j; }
    }
  }
  for (int64_t i = 0; i < w; i++) {
    out[o * inner + i0 + i] = best[i];
    if (argmax) argmax[o * inner + i0 + i] = arg[i];
  }
}

typedef struct {
  int op;
  const float *x;
  int64_t n, inner, tiles;
  float *out;
  int32_t *argmax;
  double *partial;
} Red;

static void red_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Red *c = vc;
  for (int64_t it = b; it < e; it++) {
    const int64_t o = it / c->tiles, t = it % c->tiles;
    const int64_t i0 = c->inner == 1 ? 0 : t * TILE;
    const int64_t i1 = c->inner == 1 ? 1 : (i0 + TILE < c->inner ? i0 + TILE : c->inner);
    if (c->op == 0) sum_item(c->x, c->n, c->inner, o, i0, i1, c->out);
    else max_item(c->x, c->n, c->inner, o, i0, i1, c->out, c->argmax);
  }
}

#define LONG_GRAIN 65536

static void long_sum_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Red *c = vc;
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = b; j < e; j++) s += c->x[j];
  c->partial[b / LONG_GRAIN] = s;
}

void sr3_reduce(int op, const float *x, int64_t outer, int64_t n, int64_t inner, float *out, int32_t *argmax) {
  if (outer <= 0 || inner <= 0) return;
  if (op == 0 && outer == 1 && inner == 1 && n > 2 * LONG_GRAIN) {
    /* one long row: per-chunk partial sums, added in order */
    const int64_t nch = sr3_chunks(n, LONG_GRAIN);
    double *partial = malloc(sizeof(double) * (size_t)nch);
    if (partial) {
      Red c = {.x = x, .partial = partial};
      sr3_parallel_for(n, LONG_GRAIN, long_sum_chunk, &c);
      double s = 0;
      for (int64_t i = 0; i < nch; i++) s += partial[i];
      out[0] = (float)s;
      free(partial);
      return;
    }
  }
  const int64_t tiles = inner == 1 ? 1 : (inner + TILE - 1) / TILE;
  const int64_t perItem = n * (inner == 1 ? 1 : (inner < TILE ? inner : TILE));
  Red c = {.op = op, .x = x, .n = n, .inner = inner, .tiles = tiles, .out = out, .argmax = argmax};
  sr3_parallel_for(outer * tiles, sr3_grain(perItem, SR3_CHUNK_OPS), red_chunk, &c);
}
