/*
 * BSD sockets on raw fds, with asyncio's address shapes in both directions:
 *   AF_INET  [host, port]
 *   AF_INET6 [host, port, flowinfo, scopeId]   (flowinfo and scopeId are optional on input)
 *   AF_UNIX  a string path; a Buffer for an abstract name (first byte NUL) or a non-UTF-8 path;
 *            '' for an unnamed socket.
 * Hosts are numeric: resolving names is the job of the loop's getaddrinfo, never of a syscall wrapper.
 * The family of an input address is the socket's own (SO_DOMAIN), so that [host, port] works for both IPs.
 */
#include "loopwork.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- addresses ---- */

static napi_value str(napi_env env, const char *s, size_t len) {
  napi_value v;
  napi_create_string_utf8(env, s, len, &v);
  return v;
}

static napi_value int_value(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

/* A sockaddr as an asyncio address; null when there is none (len 0) or the family is unknown. */
static napi_value addr_to_js(napi_env env, const struct sockaddr_storage *ss, socklen_t len) {
  char host[INET6_ADDRSTRLEN];
  napi_value arr;
  if (len == 0) return lw_null(env);
  switch (ss->ss_family) {
  case AF_INET: {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return lw_pair(env, str(env, host, NAPI_AUTO_LENGTH), int_value(env, ntohs(a->sin_port)));
  }
  case AF_INET6: {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    napi_create_array_with_length(env, 4, &arr);
    napi_set_element(env, arr, 0, str(env, host, NAPI_AUTO_LENGTH));
    napi_set_element(env, arr, 1, int_value(env, ntohs(a->sin6_port)));
    napi_set_element(env, arr, 2, int_value(env, ntohl(a->sin6_flowinfo)));
    napi_set_element(env, arr, 3, int_value(env, a->sin6_scope_id));
    return arr;
  }
  case AF_UNIX: {
    const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n > sizeof a->sun_path) n = sizeof a->sun_path;
    if (n > 0 && a->sun_path[0] == '\0') {
      /* Abstract name: every byte counts, NULs included, so it stays bytes (as in Python). */
      napi_value buf;
      napi_create_buffer_copy(env, n, a->sun_path, NULL, &buf);
      return buf;
    }
    return str(env, a->sun_path, strnlen(a->sun_path, n));
  }
  default:
    return lw_null(env);
  }
}

static bool bad_address(napi_env env, enum lw_error_kind kind, const char *fmt, const char *arg) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, arg);
  lw_throw_arg(env, kind, msg);
  return false;
}

static bool unix_from_js(napi_env env, napi_value v, struct sockaddr_storage *ss, socklen_t *len) {
  struct sockaddr_un *a = (struct sockaddr_un *)ss;
  napi_valuetype t;
  size_t n;
  a->sun_family = AF_UNIX;
  napi_typeof(env, v, &t);
  if (t == napi_string) {
    napi_get_value_string_utf8(env, v, NULL, 0, &n);
    if (n >= sizeof a->sun_path) return bad_address(env, LW_RANGE_ERROR, "AF_UNIX path too long%s", "");
    napi_get_value_string_utf8(env, v, a->sun_path, sizeof a->sun_path, &n);
  } else {
    uint8_t *p;
    bool is_buffer = false;
    napi_is_buffer(env, v, &is_buffer);
    if (!is_buffer) napi_is_typedarray(env, v, &is_buffer);
    if (!is_buffer) return bad_address(env, LW_TYPE_ERROR, "AF_UNIX address must be a string or a Buffer%s", "");
    if (!lw_bytes(env, v, "address", &p, &n)) return false;
    /* A path needs room for its terminating NUL; an abstract name does not have one. */
    if (n > sizeof a->sun_path || (n == sizeof a->sun_path && p[0] != '\0'))
      return bad_address(env, LW_RANGE_ERROR, "AF_UNIX path too long%s", "");
    memcpy(a->sun_path, p, n);
  }
  /* As Python: the length without a NUL; an empty address asks Linux to autobind an abstract name. */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  return true;
}

static bool inet_from_js(napi_env env, napi_value v, int family, struct sockaddr_storage *ss, socklen_t *len) {
  const char *shape = family == AF_INET ? "AF_INET address must be [host, port]%s"
                                        : "AF_INET6 address must be [host, port, flowinfo?, scopeId?]%s";
  bool is_array = false;
  uint32_t count = 0;
  napi_value item;
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t hostlen;
  int32_t port;
  int64_t flowinfo = 0, scope = 0;
  napi_is_array(env, v, &is_array);
  if (is_array) napi_get_array_length(env, v, &count);
  if (!is_array || count < 2 || count > (family == AF_INET ? 2u : 4u)) return bad_address(env, LW_TYPE_ERROR, shape, "");
  napi_get_element(env, v, 0, &item);
  if (napi_get_value_string_utf8(env, item, host, sizeof host, &hostlen) != napi_ok)
    return bad_address(env, LW_TYPE_ERROR, shape, "");
  if (hostlen >= sizeof host - 1) return bad_address(env, LW_RANGE_ERROR, "invalid host: '%s'", host);
  napi_get_element(env, v, 1, &item);
  if (!lw_int(env, item, "port", &port)) return false;
  if (port < 0 || port > 65535) return bad_address(env, LW_RANGE_ERROR, "port must be 0-65535%s", "");

  if (family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (hostlen == 0) a->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "<broadcast>") == 0) a->sin_addr.s_addr = htonl(INADDR_BROADCAST);
    else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
      return bad_address(env, LW_RANGE_ERROR, "AF_INET host must be a numeric IPv4 address, got '%s'", host);
    *len = sizeof *a;
    return true;
  }

  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  if (count > 2) {
    napi_get_element(env, v, 2, &item);
    if (!lw_int64(env, item, "flowinfo", &flowinfo)) return false;
    if (flowinfo < 0 || flowinfo > 0xfffff) return bad_address(env, LW_RANGE_ERROR, "flowinfo must be 0-1048575%s", "");
  }
  if (count > 3) {
    napi_get_element(env, v, 3, &item);
    if (!lw_int64(env, item, "scopeId", &scope)) return false;
    if (scope < 0 || scope > UINT32_MAX) return bad_address(env, LW_RANGE_ERROR, "scopeId must be a uint32%s", "");
  }
  /* 'fe80::1%eth0': the zone names the scope when scopeId is not given. */
  char *zone = strchr(host, '%');
  if (zone != NULL) {
    *zone++ = '\0';
    if (scope == 0) {
      char *end;
      scope = strtoul(zone, &end, 10);
      if (*zone == '\0' || *end != '\0') scope = if_nametoindex(zone);
      if (scope == 0) return bad_address(env, LW_RANGE_ERROR, "unknown IPv6 zone: '%s'", zone);
    }
  }
  a->sin6_family = AF_INET6;
  a->sin6_port = htons((uint16_t)port);
  a->sin6_flowinfo = htonl((uint32_t)flowinfo);
  a->sin6_scope_id = (uint32_t)scope;
  if (host[0] == '\0') a->sin6_addr = in6addr_any;
  else if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
    return bad_address(env, LW_RANGE_ERROR, "AF_INET6 host must be a numeric IPv6 address, got '%s'", host);
  *len = sizeof *a;
  return true;
}

/* The address `v` for the socket `fd`, in the socket's family; false with an exception pending. */
static bool addr_from_js(napi_env env, int fd, napi_value v, const char *syscall, struct sockaddr_storage *ss,
                         socklen_t *len) {
  int family;
  socklen_t optlen = sizeof family;
  memset(ss, 0, sizeof *ss);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &optlen) < 0) {
    lw_throw_errno(env, errno, syscall);
    return false;
  }
  if (family == AF_UNIX) return unix_from_js(env, v, ss, len);
  if (family == AF_INET || family == AF_INET6) return inet_from_js(env, v, family, ss, len);
  lw_throw_errno(env, EAFNOSUPPORT, syscall);
  return false;
}

/* ---- calls ---- */

/* socket(family, type, proto = 0) -> fd, non-blocking and close-on-exec. */
static napi_value js_socket(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t family, type, proto;
  if (!lw_args(env, info, 3, argv, NULL)) return NULL;
  if (!lw_int(env, argv[0], "family", &family) || !lw_int(env, argv[1], "type", &type) ||
      !lw_int_or(env, argv[2], "proto", 0, &proto))
    return NULL;
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) return lw_throw_errno(env, errno, "socket");
  return lw_number(env, fd);
}

static napi_value js_bind(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_storage ss;
  socklen_t len;
  int fd;
  if (!lw_args(env, info, 2, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  if (!addr_from_js(env, fd, argv[1], "bind", &ss, &len)) return NULL;
  if (bind(fd, (struct sockaddr *)&ss, len) < 0) return lw_throw_errno(env, errno, "bind");
  return lw_undefined(env);
}

static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int32_t backlog;
  if (!lw_args(env, info, 2, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  if (!lw_int_or(env, argv[1], "backlog", SOMAXCONN, &backlog)) return NULL;
  if (listen(fd, backlog) < 0) return lw_throw_errno(env, errno, "listen");
  return lw_undefined(env);
}

/* accept(fd) -> [fd, address] (non-blocking, close-on-exec), or null on EAGAIN. */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1], newfd;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd, r;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  do r = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return lw_null(env);
    return lw_throw_errno(env, errno, "accept");
  }
  napi_create_int32(env, r, &newfd);
  return lw_pair(env, newfd, addr_to_js(env, &ss, len));
}

/* connect(fd, address) -> 0 connected, 1 in progress (wait for writable, then read getSocketError). */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_storage ss;
  socklen_t len;
  int fd;
  if (!lw_args(env, info, 2, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  if (!addr_from_js(env, fd, argv[1], "connect", &ss, &len)) return NULL;
  if (connect(fd, (struct sockaddr *)&ss, len) == 0) return lw_number(env, 0);
  /* EINTR: the connection goes on asynchronously. EAGAIN: a Unix socket's backlog is full. asyncio waits for
   * writability in all three cases. */
  if (errno == EINPROGRESS || errno == EINTR || errno == EAGAIN) return lw_number(env, 1);
  return lw_throw_errno(env, errno, "connect");
}

static napi_value get_int_opt(napi_env env, napi_callback_info info, int level, int name, const char *syscall) {
  napi_value argv[1];
  int fd, value = 0;
  socklen_t len = sizeof value;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, level, name, &value, &len) < 0) return lw_throw_errno(env, errno, syscall);
  return lw_number(env, value);
}

/* getSocketError(fd) -> the pending errno (SO_ERROR, cleared by reading it), 0 if none. */
static napi_value js_get_socket_error(napi_env env, napi_callback_info info) {
  return get_int_opt(env, info, SOL_SOCKET, SO_ERROR, "getsockopt");
}
static napi_value js_get_socket_type(napi_env env, napi_callback_info info) {
  return get_int_opt(env, info, SOL_SOCKET, SO_TYPE, "getsockopt");
}
static napi_value js_get_socket_family(napi_env env, napi_callback_info info) {
  return get_int_opt(env, info, SOL_SOCKET, SO_DOMAIN, "getsockopt");
}
static napi_value js_get_socket_protocol(napi_env env, napi_callback_info info) {
  return get_int_opt(env, info, SOL_SOCKET, SO_PROTOCOL, "getsockopt");
}

static napi_value js_shutdown(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int32_t how;
  if (!lw_args(env, info, 2, argv, NULL) || !lw_fd(env, argv[0], &fd) || !lw_int(env, argv[1], "how", &how))
    return NULL;
  if (shutdown(fd, how) < 0) return lw_throw_errno(env, errno, "shutdown");
  return lw_undefined(env);
}

/* send(fd, buf, off, len, flags = 0) -> n, or -1 on EAGAIN. MSG_NOSIGNAL is always added. */
static napi_value js_send(napi_env env, napi_callback_info info) { return lw_transfer(env, info, LW_SEND); }

/* recv(fd, buf, off, len, flags = 0) -> n (0 = EOF), or -1 on EAGAIN. */
static napi_value js_recv(napi_env env, napi_callback_info info) { return lw_transfer(env, info, LW_RECV); }

/* sendto(fd, buf, off, len, address, flags = 0) -> n, or -1 on EAGAIN. */
static napi_value js_sendto(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  struct sockaddr_storage ss;
  socklen_t alen;
  uint8_t *p;
  size_t len;
  int fd;
  int32_t flags;
  ssize_t n;
  if (!lw_args(env, info, 6, argv, NULL) || !lw_fd(env, argv[0], &fd) || !lw_window(env, argv + 1, &p, &len) ||
      !lw_int_or(env, argv[5], "flags", 0, &flags))
    return NULL;
  if (!addr_from_js(env, fd, argv[4], "sendto", &ss, &alen)) return NULL;
  do n = sendto(fd, p, len, flags | MSG_NOSIGNAL, (struct sockaddr *)&ss, alen);
  while (n < 0 && errno == EINTR);
  return lw_io_result(env, n, "sendto");
}

/* recvfrom(fd, buf, off, len, flags = 0) -> [n, address], or null on EAGAIN. */
static napi_value js_recvfrom(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  struct sockaddr_storage ss;
  socklen_t alen = sizeof ss;
  uint8_t *p;
  size_t len;
  int fd;
  int32_t flags;
  ssize_t n;
  if (!lw_args(env, info, 5, argv, NULL) || !lw_fd(env, argv[0], &fd) || !lw_window(env, argv + 1, &p, &len) ||
      !lw_int_or(env, argv[4], "flags", 0, &flags))
    return NULL;
  do n = recvfrom(fd, p, len, flags, (struct sockaddr *)&ss, &alen);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return lw_null(env);
    return lw_throw_errno(env, errno, "recvfrom");
  }
  return lw_pair(env, lw_number(env, (double)n), addr_to_js(env, &ss, alen));
}

/* setsockopt(fd, level, name, value): integer options. */
static napi_value js_setsockopt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  int32_t level, name, value;
  if (!lw_args(env, info, 4, argv, NULL) || !lw_fd(env, argv[0], &fd) || !lw_int(env, argv[1], "level", &level) ||
      !lw_int(env, argv[2], "name", &name) || !lw_int(env, argv[3], "value", &value))
    return NULL;
  int v = value;
  if (setsockopt(fd, level, name, &v, sizeof v) < 0) return lw_throw_errno(env, errno, "setsockopt");
  return lw_undefined(env);
}

/* getsockopt(fd, level, name) -> int */
static napi_value js_getsockopt(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd, value = 0;
  int32_t level, name;
  socklen_t len = sizeof value;
  if (!lw_args(env, info, 3, argv, NULL) || !lw_fd(env, argv[0], &fd) || !lw_int(env, argv[1], "level", &level) ||
      !lw_int(env, argv[2], "name", &name))
    return NULL;
  if (getsockopt(fd, level, name, &value, &len) < 0) return lw_throw_errno(env, errno, "getsockopt");
  return lw_number(env, value);
}

static napi_value js_getsockname(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return lw_throw_errno(env, errno, "getsockname");
  return addr_to_js(env, &ss, len);
}

static napi_value js_getpeername(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd;
  if (!lw_args(env, info, 1, argv, NULL) || !lw_fd(env, argv[0], &fd)) return NULL;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return lw_throw_errno(env, errno, "getpeername");
  return addr_to_js(env, &ss, len);
}

const lw_export lw_socket_exports[] = {
    {"socket", js_socket},
    {"bind", js_bind},
    {"listen", js_listen},
    {"accept", js_accept},
    {"connect", js_connect},
    {"getSocketError", js_get_socket_error},
    {"getSocketType", js_get_socket_type},
    {"getSocketFamily", js_get_socket_family},
    {"getSocketProtocol", js_get_socket_protocol},
    {"shutdown", js_shutdown},
    {"send", js_send},
    {"recv", js_recv},
    {"sendto", js_sendto},
    {"recvfrom", js_recvfrom},
    {"setsockopt", js_setsockopt},
    {"getsockopt", js_getsockopt},
    {"getsockname", js_getsockname},
    {"getpeername", js_getpeername},
    {NULL, NULL},
};

#define CONSTANT(name) {#name, name}

static const struct {
  const char *name;
  int value;
} constants[] = {
    CONSTANT(AF_UNSPEC),    CONSTANT(AF_INET),       CONSTANT(AF_INET6),     CONSTANT(AF_UNIX),
    CONSTANT(SOCK_STREAM),  CONSTANT(SOCK_DGRAM),    CONSTANT(SOCK_RAW),     CONSTANT(SOCK_SEQPACKET),
    CONSTANT(SOL_SOCKET),   CONSTANT(SO_REUSEADDR),  CONSTANT(SO_REUSEPORT), CONSTANT(SO_KEEPALIVE),
    CONSTANT(SO_BROADCAST), CONSTANT(SO_ERROR),      CONSTANT(SO_TYPE),      CONSTANT(SO_SNDBUF),
    CONSTANT(SO_RCVBUF),    CONSTANT(SO_LINGER),     CONSTANT(SO_DOMAIN),    CONSTANT(SO_PROTOCOL),
    CONSTANT(SO_ACCEPTCONN), CONSTANT(IPPROTO_IP),   CONSTANT(IPPROTO_TCP),  CONSTANT(IPPROTO_UDP),
    CONSTANT(IPPROTO_IPV6), CONSTANT(TCP_NODELAY),   CONSTANT(TCP_KEEPIDLE), CONSTANT(TCP_KEEPINTVL),
    CONSTANT(TCP_KEEPCNT),  CONSTANT(TCP_QUICKACK),  CONSTANT(TCP_CORK),     CONSTANT(IPV6_V6ONLY),
    CONSTANT(SHUT_RD),      CONSTANT(SHUT_WR),       CONSTANT(SHUT_RDWR),    CONSTANT(MSG_PEEK),
    CONSTANT(MSG_DONTWAIT), CONSTANT(MSG_WAITALL),   CONSTANT(MSG_OOB),      CONSTANT(MSG_TRUNC),
    CONSTANT(MSG_NOSIGNAL), CONSTANT(SOMAXCONN),
};

void lw_socket_constants(napi_env env, napi_value target) {
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    napi_value v;
    napi_create_int32(env, constants[i].value, &v);
    napi_set_named_property(env, target, constants[i].name, v);
  }
}
