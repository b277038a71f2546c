/*
 * Module registration, per-environment state, errors, argument helpers, and the one binding of
 * read/write/send/recv.
 */
#include "loopwork.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void maybe_free(lw_instance *inst) {
  if (inst->finalized && inst->pending == 0) free(inst);
}

void lw_instance_hold(lw_instance *inst) {
  inst->pending++;
}

void lw_instance_release(lw_instance *inst) {
  if (--inst->pending > 0) return;
  if (inst->cleanup != NULL) {
    napi_async_cleanup_hook_handle h = inst->cleanup;
    inst->cleanup = NULL;
    napi_remove_async_cleanup_hook(h);
  }
  maybe_free(inst);
}

/* The environment is shutting down: close and cancel everything, and keep it waiting until libuv is done. */
static void instance_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  lw_instance *inst = arg;
  inst->tearing_down = true;
  inst->cleanup = handle;
  lw_poll_close_all(inst);
  lw_sendfile_cancel_all(inst);
  lw_instance_hold(inst); /* so that a count already at 0 still ends the hook */
  lw_instance_release(inst);
}

static void instance_finalize(napi_env env, void *data, void *hint) {
  lw_instance *inst = data;
  if (inst->error_factory != NULL) napi_delete_reference(env, inst->error_factory);
  inst->error_factory = NULL;
  inst->finalized = true;
  maybe_free(inst);
}

lw_instance *lw_instance_of(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

/* ---- errors ---- */

static napi_value make_error(napi_env env, enum lw_error_kind kind, int err, const char *text) {
  lw_instance *inst = lw_instance_of(env);
  napi_value factory = NULL, result = NULL, argv[3], global, msg;
  if (inst != NULL && inst->error_factory != NULL) napi_get_reference_value(env, inst->error_factory, &factory);
  if (factory != NULL) {
    napi_create_int32(env, (int32_t)kind, &argv[0]);
    napi_create_int32(env, err, &argv[1]);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &argv[2]);
    napi_get_global(env, &global);
    if (napi_call_function(env, global, factory, 3, argv, &result) != napi_ok) return NULL;
    return result;
  }
  /* No factory (the addon loaded without native.ts): a plain error that still carries errno and syscall. */
  char buf[256];
  if (kind == LW_SYSTEM_ERROR) {
    snprintf(buf, sizeof buf, "%s %s", text, strerror(err));
  } else {
    snprintf(buf, sizeof buf, "%s", text);
  }
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
  if (kind == LW_TYPE_ERROR) {
    napi_create_type_error(env, NULL, msg, &result);
  } else if (kind == LW_RANGE_ERROR) {
    napi_create_range_error(env, NULL, msg, &result);
  } else {
    napi_value v;
    napi_create_error(env, NULL, msg, &result);
    napi_create_int32(env, -err, &v);
    napi_set_named_property(env, result, "errno", v);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, result, "syscall", v);
  }
  return result;
}

napi_value lw_throw_errno(napi_env env, int err, const char *syscall) {
  napi_value e = make_error(env, LW_SYSTEM_ERROR, err, syscall);
  if (e != NULL) napi_throw(env, e);
  return NULL;
}

napi_value lw_throw_arg(napi_env env, enum lw_error_kind kind, const char *message) {
  napi_value e = make_error(env, kind, 0, message);
  if (e != NULL) napi_throw(env, e);
  return NULL;
}

/* setErrorFactory(fn): fn(kind, errno, text) makes every error the addon throws. */
static napi_value set_error_factory(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_valuetype t;
  if (!lw_args(env, info, 1, argv, NULL)) return NULL;
  napi_typeof(env, argv[0], &t);
  if (t != napi_function) return lw_throw_arg(env, LW_TYPE_ERROR, "the error factory must be a function");
  lw_instance *inst = lw_instance_of(env);
  if (inst->error_factory != NULL) napi_delete_reference(env, inst->error_factory);
  napi_create_reference(env, argv[0], 1, &inst->error_factory);
  return lw_undefined(env);
}

void lw_make_callback(napi_env env, napi_async_context async, napi_value cb, size_t argc, napi_value *argv) {
  napi_value recv, result;
  bool pending = false;
  napi_get_global(env, &recv);
  /* napi_make_callback (not napi_call_function): it enters the async context and drains the nextTick and
   * microtask queues afterwards, as Node's own I/O callbacks do. */
  if (napi_make_callback(env, async, recv, cb, argc, argv, &result) == napi_ok) return;
  /* Nothing up the stack can catch it: report it as Node reports a throw from an I/O callback. When JS may
   * not run (a worker being terminated), the call fails with no exception pending and is dropped. */
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

/* ---- arguments ---- */

bool lw_args(napi_env env, napi_callback_info info, size_t max, napi_value *argv, napi_value *self) {
  size_t argc = max;
  if (napi_get_cb_info(env, info, &argc, argv, self, NULL) != napi_ok) return false;
  /* Node-API fills missing arguments with undefined. */
  return true;
}

bool lw_int(napi_env env, napi_value v, const char *name, int32_t *out) {
  if (napi_get_value_int32(env, v, out) == napi_ok) return true;
  char buf[128];
  snprintf(buf, sizeof buf, "%s must be a number", name);
  lw_throw_arg(env, LW_TYPE_ERROR, buf);
  return false;
}

bool lw_int64(napi_env env, napi_value v, const char *name, int64_t *out) {
  if (napi_get_value_int64(env, v, out) == napi_ok) return true;
  char buf[128];
  snprintf(buf, sizeof buf, "%s must be a number", name);
  lw_throw_arg(env, LW_TYPE_ERROR, buf);
  return false;
}

bool lw_int_or(napi_env env, napi_value v, const char *name, int32_t dflt, int32_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined) {
    *out = dflt;
    return true;
  }
  return lw_int(env, v, name, out);
}

bool lw_fd(napi_env env, napi_value v, int *out) {
  int32_t fd;
  if (!lw_int(env, v, "fd", &fd)) return false;
  if (fd < 0) {
    lw_throw_arg(env, LW_RANGE_ERROR, "fd must be a non-negative integer");
    return false;
  }
  *out = fd;
  return true;
}

bool lw_bytes(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  /* Node's napi_get_buffer_info accepts any ArrayBufferView (Buffer, Uint8Array, DataView...). */
  void *p = NULL;
  if (napi_get_buffer_info(env, v, &p, len) == napi_ok) {
    *data = p;
    return true;
  }
  char buf[128];
  snprintf(buf, sizeof buf, "%s must be a Buffer, TypedArray or DataView", name);
  lw_throw_arg(env, LW_TYPE_ERROR, buf);
  return false;
}

bool lw_window(napi_env env, napi_value *argv, uint8_t **data, size_t *len) {
  uint8_t *p;
  size_t size;
  int64_t off, n;
  if (!lw_bytes(env, argv[0], "buffer", &p, &size)) return false;
  if (!lw_int64(env, argv[1], "offset", &off) || !lw_int64(env, argv[2], "length", &n)) return false;
  if (off < 0 || n < 0 || (uint64_t)off + (uint64_t)n > size) {
    lw_throw_arg(env, LW_RANGE_ERROR, "offset and length are out of the buffer's bounds");
    return false;
  }
  *data = p + off;
  *len = (size_t)n;
  return true;
}

/* ---- values ---- */

napi_value lw_io_result(napi_env env, ssize_t n, const char *syscall) {
  if (n >= 0) return lw_number(env, (double)n);
  if (errno == EAGAIN || errno == EWOULDBLOCK) return lw_number(env, -1);
  return lw_throw_errno(env, errno, syscall);
}

napi_value lw_transfer(napi_env env, napi_callback_info info, enum lw_transfer op) {
  static const char *const names[] = {"read", "write", "send", "recv"};
  const bool sock = op == LW_SEND || op == LW_RECV;
  napi_value argv[5];
  uint8_t *p;
  size_t len;
  int fd;
  int32_t flags = 0;
  ssize_t n;
  if (!lw_args(env, info, sock ? 5 : 4, argv, NULL) || !lw_fd(env, argv[0], &fd) ||
      !lw_window(env, argv + 1, &p, &len) || (sock && !lw_int_or(env, argv[4], "flags", 0, &flags)))
    return NULL;
  do {
    switch (op) {
    case LW_READ: n = read(fd, p, len); break;
    case LW_WRITE: n = write(fd, p, len); break;
    case LW_SEND: n = send(fd, p, len, flags | MSG_NOSIGNAL); break;
    default: n = recv(fd, p, len, flags); break;
    }
  } while (n < 0 && errno == EINTR);
  return lw_io_result(env, n, names[op]);
}

napi_value lw_number(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

napi_value lw_undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

napi_value lw_null(napi_env env) {
  napi_value r;
  napi_get_null(env, &r);
  return r;
}

napi_value lw_bool(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}

napi_value lw_pair(napi_env env, napi_value a, napi_value b) {
  napi_value r;
  napi_create_array_with_length(env, 2, &r);
  napi_set_element(env, r, 0, a);
  napi_set_element(env, r, 1, b);
  return r;
}

/* ---- registration ---- */

static void export_all(napi_env env, napi_value exports, const lw_export *list) {
  for (; list->name != NULL; list++) {
    napi_value fn;
    napi_create_function(env, list->name, NAPI_AUTO_LENGTH, list->fn, NULL, &fn);
    napi_set_named_property(env, exports, list->name, fn);
  }
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  lw_instance *inst = calloc(1, sizeof *inst);
  if (inst == NULL) {
    napi_throw_error(env, NULL, "loopwork: out of memory");
    return NULL;
  }
  if (napi_set_instance_data(env, inst, instance_finalize, NULL) != napi_ok) {
    free(inst);
    return NULL;
  }
  napi_add_async_cleanup_hook(env, instance_cleanup, inst, NULL);

  napi_value fn, constants;
  napi_create_function(env, "setErrorFactory", NAPI_AUTO_LENGTH, set_error_factory, NULL, &fn);
  napi_set_named_property(env, exports, "setErrorFactory", fn);
  export_all(env, exports, lw_poll_exports);
  export_all(env, exports, lw_fd_exports);
  export_all(env, exports, lw_socket_exports);
  export_all(env, exports, lw_sendfile_exports);
  napi_create_object(env, &constants);
  lw_socket_constants(env, constants);
  napi_set_named_property(env, exports, "constants", constants);
  return exports;
}
