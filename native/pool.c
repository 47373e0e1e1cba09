/*
 * Our own thread pool, built for a small machine shared with other work.
 *
 * A parallel loop is cut into fixed chunks; the calling thread and the helpers *claim* chunks from
 * an atomic counter. The caller never waits for a helper that has not started: if a helper is
 * descheduled (another process holds the core), the caller simply claims every chunk itself and
 * the loop runs at 1-thread speed instead of stalling for a scheduler time slice. OpenMP cannot do
 * this (its barrier waits for every team member), and under load that made 2 threads 2-5x slower
 * than 1. The caller only waits for chunks a helper has already claimed and is running.
 *
 * Chunk boundaries depend only on the loop size and grain, never on the thread count, so kernels
 * that keep per-chunk partial sums give bit-identical results for any number of threads.
 *
 * The pool is process-global: helpers are started once and live for the process, whichever JS thread
 * (main or worker) first ran a parallel loop. The addon is linked with -z nodelete (binding.gyp) so
 * that a worker thread ending does not unmap the code the helpers run. A second JS thread that finds
 * the pool busy runs its loop alone.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

#define MAX_THREADS 256
/* Pause loops a helper polls for the next job before sleeping (SEARCH_R3_SPIN overrides). */
#define DEFAULT_SPIN 4000
static int g_spin = -1;

static struct {
  /* job descriptor, written by the caller before the job is published */
  ChunkFn fn;
  void *ctx;
  int64_t n, grain;
  /* publication: generation in the high 32 bits of both words */
  _Atomic uint64_t limit; /* gen << 32 | number of chunks */
  _Atomic uint64_t claim; /* gen << 32 | next chunk to claim */
  _Atomic int64_t done;   /* chunks finished in the current job */
  _Atomic uint32_t gen;   /* futex word the helpers sleep on */
  _Atomic int sleepers;
  _Atomic int participants; /* helpers with tid < participants take part */
  _Atomic int busy;         /* a caller owns the pool (a second JS thread runs its loop serially) */
  int started;
  pthread_mutex_t startLock;
} P = {.startLock = PTHREAD_MUTEX_INITIALIZER};

static int g_threads = 0;

void sr3_set_threads(int n) { g_threads = n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : n); }

int sr3_threads(void) {
  if (g_threads <= 0) {
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    sr3_set_threads(n);
  }
  return g_threads;
}

static void run_chunks(int tid) {
  for (;;) {
    uint64_t v = atomic_load_explicit(&P.claim, memory_order_acquire);
    const uint64_t l = atomic_load_explicit(&P.limit, memory_order_acquire);
    if ((v >> 32) != (l >> 32)) {
      /* the caller is between publishing the two words, or a newer job replaced this one */
      if ((uint32_t)(v >> 32) != atomic_load_explicit(&P.gen, memory_order_acquire)) return;
      _mm_pause();
      continue;
    }
    const uint32_t idx = (uint32_t)v, nch = (uint32_t)l;
    if (idx >= nch) return;
    /* Success means chunk idx of this very job is ours, so the job cannot finish (and its
       descriptor cannot change) before we report it done. */
    if (!atomic_compare_exchange_weak_explicit(&P.claim, &v, v + 1, memory_order_acq_rel, memory_order_relaxed)) continue;
    const int64_t b = (int64_t)idx * P.grain, e = b + P.grain < P.n ? b + P.grain : P.n;
    P.fn(P.ctx, b, e, tid);
    atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
  }
}

static void *helper_main(void *arg) {
  const int tid = (int)(intptr_t)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals belong to node's threads */
  uint32_t seen = atomic_load(&P.gen);
  const int spin = g_spin;
  for (;;) {
    uint32_t g;
    int spins = 0;
    while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen) {
      if (spins++ < spin) { _mm_pause(); continue; }
      atomic_fetch_add(&P.sleepers, 1);
      syscall(SYS_futex, &P.gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
      atomic_fetch_sub(&P.sleepers, 1);
      spins = 0;
    }
    seen = g;
    if (tid < atomic_load_explicit(&P.participants, memory_order_relaxed)) run_chunks(tid);
  }
  return NULL;
}

/* Starts helpers 1..want-1 (once each; they live for the process). Returns how many exist. */
static int ensure_helpers(int want) {
  if (P.started >= want - 1) return P.started;
  pthread_mutex_lock(&P.startLock);
  if (g_spin < 0) {
    const char *e = getenv("SEARCH_R3_SPIN");
    g_spin = e && *e ? atoi(e) : DEFAULT_SPIN;
    if (g_spin < 0) g_spin = 0;
  }
  while (P.started < want - 1) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int ok = pthread_create(&t, &attr, helper_main, (void *)(intptr_t)(P.started + 1)) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) break;
    P.started++;
  }
  pthread_mutex_unlock(&P.startLock);
  return P.started;
}

int64_t sr3_chunks(int64_t n, int64_t grain) { return n <= 0 ? 0 : (n + grain - 1) / grain; }

void sr3_parallel_for(int64_t n, int64_t grain, ChunkFn fn, void *ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t nch = sr3_chunks(n, grain);
  const int T = sr3_threads();
  int expect = 0;
  if (T <= 1 || nch <= 1 || nch > UINT32_MAX ||
      !atomic_compare_exchange_strong(&P.busy, &expect, 1)) {
    for (int64_t c = 0; c < nch; c++) fn(ctx, c * grain, c * grain + grain < n ? c * grain + grain : n, 0);
    return;
  }
  const int helpers = ensure_helpers(T);
  P.fn = fn;
  P.ctx = ctx;
  P.n = n;
  P.grain = grain;
  atomic_store_explicit(&P.done, 0, memory_order_relaxed);
  atomic_store_explicit(&P.participants, helpers + 1 < T ? helpers + 1 : T, memory_order_relaxed);
  const uint32_t g = atomic_load_explicit(&P.gen, memory_order_relaxed) + 1;
  atomic_store_explicit(&P.limit, ((uint64_t)g << 32) | (uint64_t)nch, memory_order_release);
  atomic_store_explicit(&P.claim, (uint64_t)g << 32, memory_order_release);
  atomic_store(&P.gen, g); /* seq_cst: ordered before reading sleepers below */
  if (atomic_load(&P.sleepers) > 0) syscall(SYS_futex, &P.gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  run_chunks(0);
  /* Remaining chunks are running on helpers right now; wait for them (yield if one was preempted). */
  for (int spins = 0; atomic_load_explicit(&P.done, memory_order_acquire) < nch; spins++) {
    if (spins < 20000) _mm_pause();
    else sched_yield();
  }
  atomic_store(&P.busy, 0);
}
