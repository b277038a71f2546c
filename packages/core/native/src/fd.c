/*
 * Plain descriptors: pipes, socketpairs, eventfd, blocking mode, read/write/writev.
 * Every descriptor made here is non-blocking and close-on-exec. Reads and writes return -1 on EAGAIN.
 */
#include "loopwork.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static napi_value fd_pair(napi_env env, int fds[2]) {
  napi_value a, b;
  napi_create_int32(env, fds[0], &a);
  napi_create_int32(env, fds[1], &b);
  return lw_pair(env, a, b);
}

/* pipe() -> [readFd, writeFd] */
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return lw_throw_errno(env, errno, "pipe");
  return fd_pair(env, fds);
}

/* socketpair(family = AF_UNIX, type = SOCK_STREAM, proto = 0) -> [a, b] */
static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t family, type, proto;
  int fds[2];
  if (!lw_args(env, info, 3, argv, NULL)) return NULL;
  if (!lw_int_or(env, argv[0], "family", AF_UNIX, &family) || !lw_int_or(env, argv[1], "type", SOCK_STREAM, &type) ||
      !lw_int_or(env, argv[2], "proto", 0, &proto))
    return NULL;
  if (socketpair(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto, fds) < 0)
    return lw_throw_errno(env, errno, "socketpair");
  return fd_pair(env, fds);
}

/* eventfd(initval = 0, semaphore = false) -> fd */
static napi_value js_eventfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t initval;
  bool semaphore = false;
  if (!lw_args(env, info, 2, argv, NULL) || !lw_int_or(env, argv[0], "initval", 0, &initval)) return NULL;
  napi_get_value_bool(env, argv[1], &semaphore);
  int fd = eventfd((unsigned)initval, EFD_NONBLOCK | EFD_CLOEXEC | (semaphore ? EFD_SEMAPHORE : 0));
  if (fd < 0) return lw_throw_errno(env, errno, "eventfd");
  return lw_number(env, fd);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  /* On Linux the fd is released even when close() fails with EINTR: never retry, it could close a reused fd. */
  if (close(fd) < 0 && errno != EINTR) return lw_throw_errno(env, errno, "close");
  return lw_undefined(env);
}

/* dup(fd) -> a new close-on-exec fd for the same open file. */
static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r < 0) return lw_throw_errno(env, errno, "dup");
  return lw_number(env, r);
}

static napi_value js_set_blocking(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd, flags;
  bool blocking = false;
  if (!lw_args(env, info, 2, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  napi_get_value_bool(env, argv[1], &blocking);
  if ((flags = fcntl(fd, F_GETFL)) < 0) return lw_throw_errno(env, errno, "fcntl");
  int want = blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK;
  if (want != flags && fcntl(fd, F_SETFL, want) < 0) return lw_throw_errno(env, errno, "fcntl");
  return lw_undefined(env);
}

static napi_value js_get_blocking(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd, flags;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  if ((flags = fcntl(fd, F_GETFL)) < 0) return lw_throw_errno(env, errno, "fcntl");
  return lw_bool(env, (flags & O_NONBLOCK) == 0);
}

/* read(fd, buf, off, len) -> n (0 = EOF, -1 = EAGAIN) */
static napi_value js_read(napi_env env, napi_callback_info info) { return lw_transfer(env, info, LW_READ); }

/* write(fd, buf, off, len) -> n (-1 = EAGAIN) */
static napi_value js_write(napi_env env, napi_callback_info info) { return lw_transfer(env, info, LW_WRITE); }

/* writev(fd, buffers) -> n (-1 = EAGAIN). Past IOV_MAX buffers, only the first IOV_MAX are written. */
static napi_value js_writev(napi_env env, napi_callback_info info) {
  napi_value argv[2], item;
  struct iovec iov[IOV_MAX];
  uint32_t count, i;
  bool is_array = false;
  int fd;
  ssize_t n;
  if (!lw_args(env, info, 2, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return lw_throw_arg(env, LW_TYPE_ERROR, "buffers must be an array of Buffers");
  napi_get_array_length(env, argv[1], &count);
  if (count > IOV_MAX) count = IOV_MAX;
  for (i = 0; i < count; i++) {
    uint8_t *p;
    size_t len;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || !lw_bytes(env, item, "buffers[i]", &p, &len))
      return NULL;
    iov[i].iov_base = p;
    iov[i].iov_len = len;
  }
  do n = writev(fd, iov, (int)count);
  while (n < 0 && errno == EINTR);
  return lw_io_result(env, n, "writev");
}

/*
 * pageOffset(buf) -> the address of the view's first byte modulo 4096 (a page on x86-64). The kernel's copy to
 * user memory (rep movsb) slows down several times over when the destination sits a few bytes past the source
 * modulo 4096 (4K aliasing), so reads go to 4 KiB-aligned destinations.
 */
static napi_value js_page_offset(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint8_t *p;
  size_t len;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_bytes(env, argv[0], "buffer", &p, &len)) return NULL;
  return lw_number(env, (double)((uintptr_t)p & 4095));
}

const lw_export lw_fd_exports[] = {
    {"pipe", js_pipe},
    {"socketpair", js_socketpair},
    {"eventfd", js_eventfd},
    {"close", js_close},
    {"dup", js_dup},
    {"setBlocking", js_set_blocking},
    {"getBlocking", js_get_blocking},
    {"read", js_read},
    {"write", js_write},
    {"writev", js_writev},
    {"pageOffset", js_page_offset},
    {NULL, NULL},
};
