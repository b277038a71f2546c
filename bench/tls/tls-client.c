/*
 * The TLS load client in C, with the same methods and output as `client.mjs`, for when the Node client would
 * spend as much CPU as the server it loads (TLS costs both sides about the same) and so measure itself:
 * - handshake: each of --conns connections in a loop: connect, full TLS 1.3 handshake with no resumption and no
 *   verification, close_notify, wait for the server's close, next;
 * - bulk: each of --conns connections streams --chunk-byte writes to the echo server with 1 MiB in flight, and
 *   counts what comes back (MiB/s, server CPU per MiB). The echo is counted, not decrypted: once the handshake is
 *   over, the client reads the socket itself and adds up the plaintext lengths of the TLS records that arrive
 *   (record length less the 16-byte tag and the content-type byte of TLS 1.3). TLS costs the same per MiB on both
 *   sides, so a client that also decrypted would fill its core together with the server's, and the rate would
 *   measure how the two processes' wake-ups meet rather than the server.
 * One thread, epoll, OpenSSL.
 *
 *   cc -O2 -o tls-client bench/tls/tls-client.c -lssl -lcrypto
 *   tls-client handshake|bulk --port P --conns N --duration S --warmup S --server-pid PID [--chunk BYTES]
 *
 * Prints one JSON line: mode, value (handshakes/s or MiB/s), unit, ops, seconds, serverCpuSeconds, serverCpuPct,
 * serverCpuUsPerReq (per handshake or per MiB), clientCpuPct, errors, firstError. Exits 1 when nothing was counted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/load-client.h"

enum state { HANDSHAKE, CLOSING, STREAMING };

struct conn {
  int fd;
  SSL *ssl;
  enum state state;
  uint32_t events;   /* what epoll watches for this connection */
  long long inflight; /* bulk: bytes written and not yet echoed back */
  int record_left;    /* bulk: bytes of the current TLS record still to come */
  int header_have;    /* bulk: bytes of the next record's 5-byte header read so far */
  unsigned char header[5];
};

#define WINDOW (1 << 20)

static SSL_CTX *ctx;
static int epfd, port, bulk;
static int running = 1, counting = 0;
static long long completed; /* handshakes, or whole MiB echoed back */
static long long received;  /* bulk: bytes echoed back while counting */
static char *chunk;
static int chunk_len = 65536;

static void watch(struct conn *c, uint32_t events) {
  if (c->events == events) return;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->events = events;
}

/* Starts the connection's next handshake (a new socket, connecting). Returns 0, or -1 when connect fails. */
static int start(struct conn *c) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    close(c->fd);
    return -1;
  }
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_connect_state(c->ssl);
  SSL_set_tlsext_host_name(c->ssl, "localhost");
  c->state = HANDSHAKE;
  c->events = EPOLLOUT;
  struct epoll_event ev = {.events = c->events, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
  return 0;
}

static void finish(struct conn *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  SSL_free(c->ssl);
  close(c->fd);
  c->ssl = NULL;
  c->fd = -1;
  if (running && start(c) < 0) fail(strerror(errno));
}

/*
 * After an OpenSSL call returned `result` <= 0: waits for what it asked for, or ends the connection (its close
 * once closing, else an error, counted) and starts the next one.
 */
static void wait_for(struct conn *c, int result) {
  int err = SSL_get_error(c->ssl, result);
  if (err == SSL_ERROR_WANT_READ) {
    watch(c, EPOLLIN);
    return;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    watch(c, EPOLLOUT);
    return;
  }
  /* Closing: the server's close_notify (or its FIN, with SSL_OP_IGNORE_UNEXPECTED_EOF) ends the connection. */
  if (running && !(c->state == CLOSING && err == SSL_ERROR_ZERO_RETURN)) {
    unsigned long e = ERR_peek_error();
    fail(e != 0 ? ERR_reason_error_string(e) : err == SSL_ERROR_SYSCALL ? strerror(errno) : "TLS error");
  }
  ERR_clear_error();
  finish(c);
}

/* Bulk: the plaintext bytes of the application-data records in `n` bytes read off the socket. */
static long long plaintext_in(struct conn *c, const unsigned char *p, ssize_t n) {
  long long plain = 0;
  while (n > 0) {
    if (c->record_left > 0) {
      int take = n < c->record_left ? (int)n : c->record_left;
      c->record_left -= take;
      p += take;
      n -= take;
      continue;
    }
    c->header[c->header_have++] = *p++;
    n--;
    if (c->header_have < 5) continue;
    c->header_have = 0;
    c->record_left = (c->header[3] << 8) | c->header[4];
    /* 23: application data (TLS 1.3 disguises every encrypted record as such; after the handshake they are the
     * echo, but for a rare session ticket, counted as a few bytes of echo). */
    if (c->header[0] == 23 && c->record_left > 17) plain += c->record_left - 17;
  }
  return plain;
}

/* Bulk: counts what the server echoed, then writes while less than WINDOW is in flight. */
static void stream(struct conn *c) {
  static unsigned char buf[1 << 18];
  for (;;) {
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      fail(n == 0 ? "the server closed the connection" : strerror(errno));
      finish(c);
      return;
    }
    long long plain = plaintext_in(c, buf, n);
    c->inflight -= plain;
    if (counting) {
      received += plain;
      completed = received >> 20;
    }
  }
  uint32_t events = EPOLLIN;
  while (running && c->inflight < WINDOW) {
    /* A write that must wait is retried with the same buffer, as OpenSSL requires. */
    int r = SSL_write(c->ssl, chunk, chunk_len);
    if (r <= 0) {
      int err = SSL_get_error(c->ssl, r);
      if (err == SSL_ERROR_WANT_WRITE) events |= EPOLLOUT;
      else if (err != SSL_ERROR_WANT_READ) {
        wait_for(c, r);
        return;
      }
      break;
    }
    c->inflight += r;
  }
  watch(c, events);
}

/* Moves the connection on as far as the socket allows. */
static void step(struct conn *c) {
  if (c->state == STREAMING) {
    stream(c);
    return;
  }
  if (c->state == HANDSHAKE) {
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      wait_for(c, r);
      return;
    }
    if (bulk) {
      c->state = STREAMING;
      c->inflight = 0;
      c->record_left = 0;
      c->header_have = 0;
      stream(c);
      return;
    }
    if (counting) completed++;
    c->state = CLOSING;
    SSL_shutdown(c->ssl); /* sends close_notify after the Finished */
  }
  /* Reads (and drops) the session tickets, then the server's close_notify. */
  char buf[4096];
  for (;;) {
    int r = SSL_read(c->ssl, buf, sizeof buf);
    if (r <= 0) {
      wait_for(c, r);
      return;
    }
  }
}

static void on_event(const struct epoll_event *ev) { step(ev->data.ptr); }

/* Runs the event loop until `until` (µs, monotonic). */
static void run_until(double until) { epoll_until(epfd, until, on_event); }

int main(int argc, char **argv) {
  struct options o = {.conns = 4, .duration = 3, .warmup = 1};
  if (argc < 2 || (strcmp(argv[1], "handshake") != 0 && strcmp(argv[1], "bulk") != 0)) {
    fprintf(stderr, "tls-client: the mode is handshake or bulk\n");
    return 2;
  }
  bulk = strcmp(argv[1], "bulk") == 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (common_option(k, v, &o)) continue;
    if (!strcmp(k, "--port")) port = atoi(v);
    else if (!strcmp(k, "--chunk")) chunk_len = atoi(v);
    else {
      fprintf(stderr, "tls-client: unknown option %s\n", k);
      return 2;
    }
  }
  if (port <= 0 || o.conns <= 0 || chunk_len <= 0) {
    fprintf(stderr, "tls-client: --port, --conns and --chunk must be positive\n");
    return 2;
  }
  chunk = malloc((size_t)chunk_len);
  memset(chunk, 'x', (size_t)chunk_len);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  struct conn *conns = calloc((size_t)o.conns, sizeof *conns);
  for (int i = 0; i < o.conns; i++) {
    if (start(&conns[i]) < 0) {
      fprintf(stderr, "tls-client: cannot connect to port %d: %s\n", port, strerror(errno));
      return 1;
    }
  }
  struct window w;
  measure(&o, run_until, &counting, &completed, &w);
  running = 0;
  double done = bulk ? received / 1048576.0 : (double)completed;
  if (bulk && done > 0 && strcmp(w.server_s, "null") != 0) {
    /* per MiB, from the exact byte count (measure() divided by whole MiB) */
    snprintf(w.server_per_op, sizeof w.server_per_op, "%.4f", atof(w.server_s) / done * 1e6);
  }

  char first[260] = "null";
  if (first_error[0] != 0) {
    for (char *p = first_error; *p; p++)
      if (*p == '"' || *p == '\\') *p = ' ';
    snprintf(first, sizeof first, "\"%s\"", first_error);
  }
  printf("{\"mode\":\"%s\",\"value\":%.3f,\"unit\":\"%s\",\"ops\":%.3f,\"seconds\":%.6f,"
         "\"serverCpuSeconds\":%s,\"serverCpuPct\":%s,\"serverCpuUsPerReq\":%s,\"clientCpuPct\":%.3f,"
         "\"errors\":%lld,\"firstError\":%s,\"client\":\"c\"}\n",
         bulk ? "bulk" : "handshake", done / w.seconds, bulk ? "MiB/s" : "handshakes/s", done, w.seconds, w.server_s,
         w.server_pct, w.server_per_op, w.client_pct, errors, first);
  return done == 0 ? 1 : 0;
}
