/*
 * The receiving end of the sendfile benchmark in C (sink.mjs is the fallback where no C compiler is found):
 * connects to the server under test and counts what arrives until the server closes. It reads with MSG_TRUNC,
 * so that the kernel discards the bytes instead of copying them out: a sink that copies 1 GiB fills its own core
 * before a zero-copy server fills its own, and then measured itself (BENCH.md). First it takes `warm-up` whole
 * transfers untimed. Prints {"bytes", "seconds", "gibPerSecond", "serverCpuSeconds"} of the last one, timed from
 * the connect to the end of the stream, with the CPU time the server process used meanwhile (null without its
 * pid), as sink.mjs does.
 *   sink <port> [expected bytes] [warm-up transfers] [server pid]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The clock and the server's CPU time; the rest of the header is for the load clients. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../lib/load-client.h"

/* One transfer: connect, count until the server closes. Returns the bytes, or -1 (reported) on an error. */
static long long transfer(int port, double *seconds) {
  static char buffer[4 << 20];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    fprintf(stderr, "sink: cannot connect to %d: %s\n", port, strerror(errno));
    return -1;
  }
  double t0 = now_us();
  long long bytes = 0;
  for (;;) {
    /* With MSG_TRUNC, TCP discards up to that many bytes and returns how many (tcp(7)): nothing is copied. */
    ssize_t n = recv(fd, buffer, sizeof buffer, MSG_TRUNC);
    if (n > 0) {
      bytes += n;
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      fprintf(stderr, "sink: %s\n", strerror(errno));
      close(fd);
      return -1;
    }
  }
  *seconds = (now_us() - t0) / 1e6;
  close(fd);
  return bytes;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 25100;
  long long expected = argc > 2 ? atoll(argv[2]) : 0;
  int warmups = argc > 3 ? atoi(argv[3]) : 0;
  const char *server_pid = argc > 4 ? argv[4] : NULL;
  double seconds = 0, cpu0 = -1, cpu1 = -1;
  long long bytes = 0;
  for (int i = 0; i <= warmups; i++) {
    cpu0 = server_cpu(server_pid);
    bytes = transfer(port, &seconds);
    cpu1 = server_cpu(server_pid);
    if (bytes < 0) return 1;
    if (expected > 0 && bytes != expected) {
      fprintf(stderr, "sink: got %lld bytes, expected %lld\n", bytes, expected);
      return 1;
    }
  }
  char cpu[32] = "null";
  if (cpu0 >= 0 && cpu1 >= 0) snprintf(cpu, sizeof cpu, "%.3f", cpu1 - cpu0);
  printf("{\"bytes\": %lld, \"seconds\": %.6f, \"gibPerSecond\": %.6f, \"serverCpuSeconds\": %s}\n", bytes,
         seconds, bytes / 1073741824.0 / seconds, cpu);
  return 0;
}
