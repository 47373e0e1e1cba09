/*
 * Captures what this process writes to stderr (fd 2) for a while: Dawn (the WebGPU package) prints its
 * warnings there from native code while an adapter is requested, where no JavaScript can intercept them.
 * fd 2 is pointed at an anonymous memory file and pointed back on release, which returns the text so
 * that the caller can keep what a user must see. Linux only (memfd_create); elsewhere capturing never
 * starts and stderr is left alone.
 *
 * The capture is process-wide: a second one while another is active is refused (its writes land in the
 * first one's file), so stderr is always restored to where it was. A process that aborts or exits while
 * capturing (a driver that fails inside Dawn) writes what was caught to the real stderr first, so its
 * last words are not lost.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include "common.h"

#ifdef __linux__
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static atomic_int capturing;
static int original = -1; /* where fd 2 pointed before the capture */
static int memory = -1;   /* the file fd 2 points to while capturing */
static struct sigaction previous_abort;

/* Copies what was caught to the real stderr and points fd 2 back: only async-signal-safe calls. */
static void spill(void) {
  if (memory < 0 || original < 0) return;
  char buffer[4096];
  off_t at = 0;
  for (;;) {
    const ssize_t n = pread(memory, buffer, sizeof buffer, at);
    if (n <= 0) break;
    ssize_t put = 0;
    while (put < n) {
      const ssize_t w = write(original, buffer + put, (size_t)(n - put));
      if (w <= 0) break;
      put += w;
    }
    at += n;
  }
  dup2(original, 2);
  memory = original = -1;
}

static void on_abort(int signal) {
  spill();
  sigaction(SIGABRT, &previous_abort, NULL);
  raise(signal);
}

static void at_exit(void) {
  if (atomic_load(&capturing)) spill();
}

/* dup2 retried while interrupted or busy (a file being opened in another thread); 0 when it took. */
static int point_fd(int from, int to) {
  for (int attempt = 0; attempt < 100; attempt++) {
    if (dup2(from, to) >= 0) return 0;
    if (errno != EINTR && errno != EBUSY) return -1;
  }
  return -1;
}

int sr3_capture_stderr(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&capturing, &expected, 1)) return 0;
  fflush(stderr);
  const int file = memfd_create("search-r3-stderr", MFD_CLOEXEC);
  const int saved = file < 0 ? -1 : fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (file < 0 || saved < 0 || dup2(file, 2) < 0) {
    if (file >= 0) close(file);
    if (saved >= 0) close(saved);
    atomic_store(&capturing, 0);
    return 0;
  }
  memory = file;
  original = saved;
  static int exit_hook;
  if (!exit_hook) exit_hook = atexit(at_exit) == 0;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_abort;
  sigemptyset(&action.sa_mask);
  sigaction(SIGABRT, &action, &previous_abort);
  return 1;
}

char *sr3_release_stderr(size_t *length) {
  *length = 0;
  if (memory < 0) return NULL;
  fflush(stderr);
  /* fd 2 left on the memory file would swallow stderr for good: keep capturing rather than lose it */
  if (point_fd(original, 2) < 0) return NULL;
  sigaction(SIGABRT, &previous_abort, NULL);
  close(original);
  const off_t size = lseek(memory, 0, SEEK_END);
  char *text = malloc(size > 0 ? (size_t)size : 1);
  size_t got = 0;
  while (text && got < (size_t)(size > 0 ? size : 0)) {
    const ssize_t n = pread(memory, text + got, (size_t)size - got, (off_t)got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(memory);
  memory = original = -1;
  atomic_store(&capturing, 0);
  *length = text ? got : 0;
  return text;
}
#else
int sr3_capture_stderr(void) { return 0; }

char *sr3_release_stderr(size_t *length) {
  *length = 0;
  return NULL;
}
#endif
