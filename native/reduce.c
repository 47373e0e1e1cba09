/*
 * reduce: x viewed as [outer, n, inner], summed (in double) or maxed over n. Work is cut into
 * (outer row, tile of inner) items so both "reduce the last axis" and "reduce a middle axis" spread
 * over threads; a single long row (outer = inner = 1) is split across threads instead.
 */
#include <math.h>
#include <omp.h>
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

void sr3_reduce(int op, const float *x, int64_t outer, int64_t n, int64_t inner, float *out, int32_t *argmax) {
  if (outer <= 0 || inner <= 0) return;
  const int64_t total = outer * n * inner;
  if (op == 0 && outer == 1 && inner == 1 && total > 65536) {
    const int T = sr3_threads_for((size_t)total);
    double s = 0;
#pragma omp parallel for simd num_threads(T) if (parallel : T > 1) schedule(static) reduction(+ : s)
    for (int64_t j = 0; j < n; j++) s += x[j];
    out[0] = (float)s;
    return;
  }
  const int64_t tiles = inner == 1 ? 1 : (inner + TILE - 1) / TILE;
  const int64_t items = outer * tiles;
  const int T = items > 1 ? sr3_threads_for((size_t)total) : 1;
#pragma omp parallel for num_threads(T) if (parallel : T > 1) schedule(static)
  for (int64_t it = 0; it < items; it++) {
    const int64_t o = it / tiles, t = it % tiles;
    const int64_t i0 = inner == 1 ? 0 : t * TILE;
    const int64_t i1 = inner == 1 ? 1 : (i0 + TILE < inner ? i0 + TILE : inner);
    if (op == 0) sum_item(x, n, inner, o, i0, i1, out);
    else max_item(x, n, inner, o, i0, i1, out, argmax);
  }
}
