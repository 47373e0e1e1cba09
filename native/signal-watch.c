/*
 * Notes the stop signals (SIGINT, SIGTERM, SIGHUP) that arrive while the main thread blocks in
 * Atomics.wait for the GPU thread. Node hands a signal to its JavaScript listeners through the event
 * loop, which a blocked thread never reaches: a Ctrl-C during a long GPU read would wait for the read.
 * While watching, these signals only set a bit here (libuv's handler, or Node's default one, is set
 * aside); the waiting code polls the bits between short waits, puts the previous handlers back and then
 * delivers the signal itself. One watch at a time: a second is refused while one is on. A signal whose
 * handler is SIG_IGN is left ignored: noting it would stop a process that was meant to outlive it (Node
 * resets every ignored signal it inherits but SIGPIPE and SIGXFSZ to the default at startup; native code
 * may still set one).
 *
 * sr3_exit_now ends a process that a signal stops while the GPU thread still computes: Node's teardown of
 * that thread would abort inside Dawn, and waiting for the GPU can take minutes on a software adapter.
 */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

static const int watched[] = {SIGINT, SIGTERM, SIGHUP};
#define WATCHED (sizeof watched / sizeof watched[0])

static atomic_int watching;
static atomic_uint caught;
static struct sigaction previous[WATCHED];
static int replaced[WATCHED];

static void on_signal(int signal) { atomic_fetch_or(&caught, 1u << signal); }

int sr3_watch_signals(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&watching, &expected, 1)) return 0;
  atomic_store(&caught, 0);
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < WATCHED; i++) {
    replaced[i] = sigaction(watched[i], NULL, &previous[i]) == 0 &&
                  ((previous[i].sa_flags & SA_SIGINFO) || previous[i].sa_handler != SIG_IGN) &&
                  sigaction(watched[i], &action, &previous[i]) == 0;
  }
  return 1;
}

unsigned sr3_caught_signals(void) { return atomic_load(&caught); }

unsigned sr3_unwatch_signals(void) {
  if (!atomic_load(&watching)) return 0;
  for (size_t i = 0; i < WATCHED; i++)
    if (replaced[i]) sigaction(watched[i], &previous[i], NULL);
  const unsigned bits = atomic_exchange(&caught, 0);
  atomic_store(&watching, 0);
  return bits;
}

/* Ends the process at once: no exit handlers, no destructors, no teardown of other threads. */
void sr3_exit_now(int code) { _exit(code); }
