/*
 * What the C load clients share (echo-client.c, tls-client.c): their common options, the clock, the counted
 * window with the CPU time of the client itself and of the server it loads (from /proc/<pid>/stat, as proc.mjs
 * reads it), and the first error kept for the report. Header-only: each client is one compilation unit.
 */
#ifndef LOOPWORK_BENCH_LOAD_CLIENT_H
#define LOOPWORK_BENCH_LOAD_CLIENT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long long errors;
static char first_error[200];

/* Counts a failure; the first one's text goes into the report. */
static void fail(const char *what) {
  errors++;
  if (first_error[0] == 0) snprintf(first_error, sizeof first_error, "%s", what);
}

/* Monotonic time in µs. */
static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The CPU seconds (user + system) process `pid` has used so far, or -1 without a pid or a readable stat. */
static double server_cpu(const char *pid) {
  if (pid == NULL) return -1;
  char path[64], text[2048];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[len] = 0;
  char *p = strrchr(text, ')');
  if (p == NULL) return -1;
  p += 2;
  /* fields after ") ": state(0) ... utime(11) stime(12) */
  unsigned long long utime = 0, stime = 0;
  for (int i = 0; i < 13 && p != NULL; i++) {
    if (i == 11) utime = strtoull(p, NULL, 10);
    if (i == 12) stime = strtoull(p, NULL, 10);
    p = strchr(p, ' ');
    if (p != NULL) p++;
  }
  return (double)(utime + stime) / sysconf(_SC_CLK_TCK);
}

/* The CPU seconds this process has used so far. */
static double own_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Waits on `epfd` until `until` (µs, monotonic), handing each event to `on_event`. */
static void epoll_until(int epfd, double until, void (*on_event)(const struct epoll_event *)) {
  struct epoll_event events[256];
  for (;;) {
    double left = until - now_us();
    if (left <= 0) return;
    int n = epoll_wait(epfd, events, 256, (int)(left / 1000) + 1);
    for (int i = 0; i < n; i++) on_event(&events[i]);
  }
}

/* The options every client takes. */
struct options {
  int conns;
  double duration, warmup; /* seconds */
  const char *server_pid;  /* NULL: no server CPU in the report */
};

/* Reads the common option `k` with value `v` into `o`; 0 when `k` is not one of them. */
static int common_option(const char *k, const char *v, struct options *o) {
  if (!strcmp(k, "--conns")) o->conns = atoi(v);
  else if (!strcmp(k, "--duration")) o->duration = atof(v);
  else if (!strcmp(k, "--warmup")) o->warmup = atof(v);
  else if (!strcmp(k, "--server-pid")) o->server_pid = v;
  else return 0;
  return 1;
}

/* The counted window: its length, the client's CPU %, and the server's figures as JSON values ("null" unknown). */
struct window {
  double seconds, client_pct;
  char server_s[32], server_pct[32], server_per_op[32];
};

/*
 * Runs the client's loop (`run_until(deadline_us)`) through the warm-up, then counts for the duration with
 * `*counting` set; `*done` is the count when it ends. Fills `w`.
 */
static void measure(const struct options *o, void (*run_until)(double), int *counting, const long long *done,
                    struct window *w) {
  run_until(now_us() + o->warmup * 1e6);
  *counting = 1;
  double cpu0 = own_cpu(), srv0 = server_cpu(o->server_pid), t0 = now_us();
  run_until(t0 + o->duration * 1e6);
  double t1 = now_us(), srv1 = server_cpu(o->server_pid), cpu1 = own_cpu();
  *counting = 0;
  w->seconds = (t1 - t0) / 1e6;
  w->client_pct = (cpu1 - cpu0) / w->seconds * 100;
  strcpy(w->server_s, "null");
  strcpy(w->server_pct, "null");
  strcpy(w->server_per_op, "null");
  if (srv0 >= 0 && srv1 >= 0) {
    snprintf(w->server_s, sizeof w->server_s, "%.6f", srv1 - srv0);
    snprintf(w->server_pct, sizeof w->server_pct, "%.3f", (srv1 - srv0) / w->seconds * 100);
    if (*done > 0) snprintf(w->server_per_op, sizeof w->server_per_op, "%.4f", (srv1 - srv0) / (double)*done * 1e6);
  }
}

#endif
