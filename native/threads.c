/*
 * One thread pool for everything: OpenMP. OpenBLAS is pinned to one thread (set in addon.c at load),
 * and gemm splits work across OpenMP threads itself, so two pools never spin against each other on
 * a small machine.
 */
#include <omp.h>
#include "common.h"

static int g_threads = 0;

void sr3_set_threads(int n) { g_threads = n < 1 ? 1 : n; }

int sr3_threads(void) {
  if (g_threads <= 0) g_threads = omp_get_num_procs();
  return g_threads;
}

int sr3_threads_for(size_t work) {
  int t = sr3_threads();
  /* Below ~64k cheap operations (~20 µs) waking a sleeping thread costs more than it saves. */
  if (t <= 1 || work < 65536) return 1;
  size_t most = work / 32768;
  return most < (size_t)t ? (int)most : t;
}
