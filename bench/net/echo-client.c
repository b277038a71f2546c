/*
 * The echo load client in C: the same method and output as client.mjs (the uvloop benchmark's: messages of
 * --size bytes ending in '\n', --depth requests in flight per connection, a fixed --duration after a --warmup),
 * for when the Node client would saturate its core before the server saturates its own. One thread, epoll.
 * It counts the bytes of each echo and never looks at them: over TCP it reads with MSG_TRUNC, which discards them
 * in the kernel instead of copying them out (tcp(7)), so that at 100 KiB the client's core does not fill before
 * the server's does (it did with uvloop, at 92-96 %). Over Unix sockets it reads them into a scratch buffer.
 *
 *   cc -O2 -o echo-client bench/net/echo-client.c -lm
 *   echo-client --target <port | unix:/path> --size N --conns N --depth N --duration S --warmup S --server-pid P
 *
 * Prints one JSON line: requests, seconds, rate, mibps, p50us, p99us, clientCpuPct, serverCpuSeconds,
 * serverCpuPct, serverCpuUsPerReq, errors. Exits 1 when nothing was counted or a connection failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/load-client.h"

/* The latency histogram of histogram.mjs: one bucket per µs below 128, then 64 sub-buckets per power of two. */
#define SUB 64
#define LINEAR (2 * SUB)
#define NBUCKETS (LINEAR + 25 * SUB)

static double counts[NBUCKETS];
static double total;

static int bucket_of(uint32_t v) {
  if (v < LINEAR) return (int)v;
  int e = 31 - __builtin_clz(v);
  uint32_t m = v >> (e - 6);
  int b = LINEAR + (e - 7) * SUB + (int)(m - SUB);
  return b < NBUCKETS ? b : NBUCKETS - 1;
}

static double lowest_of(int b) {
  if (b < LINEAR) return b;
  int e = (b - LINEAR) / SUB + 7;
  int m = (b - LINEAR) % SUB + SUB;
  return ldexp(m, e - 6);
}

static void record(double us) {
  uint32_t v = us <= 0 ? 0 : us >= 2147483647.0 ? 2147483647u : (uint32_t)us;
  counts[bucket_of(v)]++;
  total++;
}

static double percentile(double p) {
  double want = ceil(p / 100 * total), seen = 0;
  for (int b = 0; b < NBUCKETS; b++) {
    seen += counts[b];
    if (seen >= want && counts[b] > 0) return lowest_of(b);
  }
  return lowest_of(NBUCKETS - 1);
}

struct conn {
  int fd;
  size_t received;  /* bytes of the oldest outstanding response so far */
  size_t unsent;    /* bytes of queued requests not yet written */
  size_t sent_off;  /* offset in the message of the next byte to write */
  double *sent_at;  /* ring of send times, one per request in flight */
  int head, tail;
  int want_out;     /* EPOLLOUT is registered */
};

static size_t size;
static int depth;
static char *message;
static int epfd;
static int running = 1, counting = 0;
static long long completed;

static void set_out(struct conn *c, int on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = on;
}

static void flush(struct conn *c) {
  while (c->unsent > 0) {
    size_t n = size - c->sent_off;
    if (n > c->unsent) n = c->unsent;
    ssize_t w = send(c->fd, message + c->sent_off, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      fail(strerror(errno));
      return;
    }
    c->unsent -= (size_t)w;
    c->sent_off = (c->sent_off + (size_t)w) % size;
  }
  set_out(c, c->unsent > 0);
}

static void send_request(struct conn *c, double at) {
  c->sent_at[c->tail] = at;
  c->tail = (c->tail + 1) % depth;
  c->unsent += size;
}

static char readbuf[256 * 1024];
/* MSG_TRUNC over TCP (see the top of the file), 0 over Unix sockets. */
static int recv_flags;

static void on_readable(struct conn *c) {
  for (;;) {
    ssize_t n = recv(c->fd, readbuf, sizeof readbuf, recv_flags);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      if (running) fail(strerror(errno));
      return;
    }
    if (n == 0) {
      if (running) fail("server closed a connection");
      epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
      return;
    }
    c->received += (size_t)n;
    int sent = 0;
    while (c->received >= size) {
      c->received -= size;
      double t = now_us();
      double t0 = c->sent_at[c->head];
      c->head = (c->head + 1) % depth;
      if (counting) {
        completed++;
        record(t - t0);
      }
      if (running) {
        send_request(c, t);
        sent = 1;
      }
    }
    if (sent) flush(c);
    if ((size_t)n < sizeof readbuf) return;
  }
}

static int open_conn(const char *target) {
  int fd;
  if (strncmp(target, "unix:", 5) == 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", target + 5);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return -1;
  } else {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(target))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void on_event(const struct epoll_event *ev) {
  struct conn *c = ev->data.ptr;
  if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
  if (ev->events & EPOLLOUT) flush(c);
}

/* Runs the event loop until `until` (µs, monotonic). */
static void run_until(double until) { epoll_until(epfd, until, on_event); }

int main(int argc, char **argv) {
  const char *target = "25000";
  struct options o = {.conns = 10, .duration = 3, .warmup = 1};
  size = 1024;
  depth = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (common_option(k, v, &o)) continue;
    if (!strcmp(k, "--target")) target = v;
    else if (!strcmp(k, "--size")) size = (size_t)atol(v);
    else if (!strcmp(k, "--depth")) depth = atoi(v);
    else {
      fprintf(stderr, "echo-client: unknown option %s\n", k);
      return 2;
    }
  }
  if (size == 0 || o.conns <= 0 || depth <= 0) {
    fprintf(stderr, "echo-client: --size, --conns and --depth must be positive\n");
    return 2;
  }
  message = malloc(size);
  memset(message, 'x', size);
  message[size - 1] = '\n';
  epfd = epoll_create1(EPOLL_CLOEXEC);
  recv_flags = strncmp(target, "unix:", 5) == 0 ? 0 : MSG_TRUNC;
  struct conn *conns = calloc((size_t)o.conns, sizeof *conns);
  for (int i = 0; i < o.conns; i++) {
    struct conn *c = &conns[i];
    c->fd = open_conn(target);
    if (c->fd < 0) {
      fprintf(stderr, "client: cannot connect to %s: %s\n", target, strerror(errno));
      return 1;
    }
    c->sent_at = calloc((size_t)depth, sizeof(double));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  }
  double start = now_us();
  for (int i = 0; i < o.conns; i++) {
    for (int k = 0; k < depth; k++) send_request(&conns[i], start);
    flush(&conns[i]);
  }
  struct window w;
  measure(&o, run_until, &counting, &completed, &w);
  running = 0;
  long long done = completed;
  for (int i = 0; i < o.conns; i++) close(conns[i].fd);

  char p50[32] = "null", p99[32] = "null";
  if (total > 0) {
    snprintf(p50, sizeof p50, "%.0f", percentile(50));
    snprintf(p99, sizeof p99, "%.0f", percentile(99));
  }
  if (done == 0 || errors > 0) {
    fprintf(stderr, "client: %lld responses, %lld errors%s%s%s\n", done, errors, first_error[0] ? " (" : "",
            first_error, first_error[0] ? ")" : "");
  }
  printf("{\"requests\":%lld,\"seconds\":%.6f,\"rate\":%.3f,\"mibps\":%.3f,\"p50us\":%s,\"p99us\":%s,"
         "\"clientCpuPct\":%.3f,\"serverCpuSeconds\":%s,\"serverCpuPct\":%s,\"serverCpuUsPerReq\":%s,"
         "\"errors\":%lld,\"client\":\"c\"}\n",
         done, w.seconds, done / w.seconds, done * (double)size / w.seconds / 1048576, p50, p99, w.client_pct,
         w.server_s, w.server_pct, w.server_per_op, errors);
  return done == 0 || errors > 0 ? 1 : 0;
}
