/*
 * loopwork's native addon: what Node has no public API for (polling any fd, raw non-blocking sockets,
 * sendfile on a worker thread). Plain C on Node-API (NAPI_VERSION 8), Linux only.
 *
 * Conventions shared by every file:
 * - Arguments are checked here only as far as memory safety needs (types, buffer bounds); the TypeScript
 *   wrapper (packages/core/src/native.ts) is the only caller.
 * - A failed syscall throws the error made by the JS error factory that native.ts installs with
 *   setErrorFactory(), so that errno names come from os.constants.errno in one place. EAGAIN on a
 *   non-blocking call is not an error: each function returns its documented sentinel instead.
 */
#ifndef LOOPWORK_H
#define LOOPWORK_H

#ifndef __linux__
#error "the loopwork native addon supports Linux only; the rest of loopwork works without it"
#endif

#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Kinds of error the JS factory makes: factory(kind, errno, text). */
enum lw_error_kind { LW_SYSTEM_ERROR = 0, LW_TYPE_ERROR = 1, LW_RANGE_ERROR = 2 };

struct lw_poll;
struct lw_dispatch;
struct lw_sendfile;

/*
 * Per-environment state (the main thread and every worker thread have their own).
 *
 * Teardown: libuv callbacks of this addon (uv_close, after_work) must all have run before Node unloads the
 * addon from a terminated worker, and must not call Node-API once the environment is going away. An async
 * cleanup hook closes every poll and cancels every transfer, then holds the teardown until `pending` is 0.
 * The struct itself lives until both Node-API has let go of it and `pending` is 0.
 */
typedef struct lw_instance {
  napi_ref error_factory;        /* function (kind, errno, text) -> Error, set by native.ts */
  struct lw_poll *polls;         /* polls not yet stopped */
  struct lw_sendfile *sendfiles; /* transfers not yet completed */
  int pending;                   /* uv handles not yet closed + transfers not yet completed */
  bool tearing_down;             /* the environment is shutting down: libuv callbacks make no Node-API call */
  bool finalized;                /* Node-API has released the instance data */
  napi_async_cleanup_hook_handle cleanup; /* set while the teardown waits for `pending` */
  struct lw_dispatch *dispatch;  /* poll.c: readiness events handed to JS once per poll phase */
} lw_instance;

/* Counts a uv handle or a transfer that a libuv callback will end. */
void lw_instance_hold(lw_instance *inst);
/* Called by that libuv callback; may finish the teardown and free the instance. */
void lw_instance_release(lw_instance *inst);

/* Every exported function has this shape; the return value NULL means "an exception is pending". */
typedef napi_value (*lw_fn)(napi_env env, napi_callback_info info);

/* ---- addon.c: errors and argument helpers ---- */

lw_instance *lw_instance_of(napi_env env);
/* Throws the system error for errno `err` raised by `syscall`; returns NULL for `return lw_throw_errno(...)`. */
napi_value lw_throw_errno(napi_env env, int err, const char *syscall);
/* Throws a TypeError (LW_TYPE_ERROR) or RangeError (LW_RANGE_ERROR) with `message`; returns NULL. */
napi_value lw_throw_arg(napi_env env, enum lw_error_kind kind, const char *message);
/* Calls `cb` from a libuv callback, in `async`'s context, draining microtasks after it; a throw becomes an
 * uncaught exception. Does nothing when JS cannot run. Needs an open handle scope. */
void lw_make_callback(napi_env env, napi_async_context async, napi_value cb, size_t argc, napi_value *argv);

/* Reads up to `max` arguments; missing ones are `undefined`. Returns false with an exception pending. */
bool lw_args(napi_env env, napi_callback_info info, size_t max, napi_value *argv, napi_value *self);
bool lw_int(napi_env env, napi_value v, const char *name, int32_t *out);
bool lw_int64(napi_env env, napi_value v, const char *name, int64_t *out);
/* An optional int: `undefined` gives `dflt`. */
bool lw_int_or(napi_env env, napi_value v, const char *name, int32_t dflt, int32_t *out);
bool lw_fd(napi_env env, napi_value v, int *out);
/* The bytes of a Buffer/TypedArray/DataView. */
bool lw_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
/* The window buf[off, off + len) of argv[i..i+2], bounds-checked. */
bool lw_window(napi_env env, napi_value *argv, uint8_t **data, size_t *len);

/* The result of a non-blocking read or write (errno read right after the call): n, -1 for EAGAIN, or throws. */
napi_value lw_io_result(napi_env env, ssize_t n, const char *syscall);

/* The system calls that move bytes between an fd and a window of a buffer. */
enum lw_transfer { LW_READ, LW_WRITE, LW_SEND, LW_RECV };
/*
 * The whole binding of one of them: read/write take (fd, buf, off, len), send/recv (fd, buf, off, len,
 * flags = 0), and send adds MSG_NOSIGNAL. Retries on EINTR; returns lw_io_result.
 */
napi_value lw_transfer(napi_env env, napi_callback_info info, enum lw_transfer op);
napi_value lw_number(napi_env env, double v);
napi_value lw_undefined(napi_env env);
napi_value lw_null(napi_env env);
napi_value lw_bool(napi_env env, bool v);
napi_value lw_pair(napi_env env, napi_value a, napi_value b);

/* ---- each file registers its functions ---- */

typedef struct lw_export {
  const char *name;
  lw_fn fn;
} lw_export;

extern const lw_export lw_poll_exports[];
extern const lw_export lw_fd_exports[];
extern const lw_export lw_socket_exports[];
extern const lw_export lw_sendfile_exports[];

/* poll.c: closes every poll of the environment, and the dispatcher (teardown). */
void lw_poll_close_all(lw_instance *inst);
/* sendfile.c: cancels every transfer of the environment and releases their JS references (teardown). */
void lw_sendfile_cancel_all(lw_instance *inst);
/* socket.c: sets the socket constants (AF_INET...) on `target`, as the C headers define them. */
void lw_socket_constants(napi_env env, napi_value target);

#endif
