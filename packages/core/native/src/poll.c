/*
 * fd readiness with libuv's uv_poll_t on the environment's own loop (so it works in worker threads).
 *
 * A poll handle is a JS external over an lw_poll. Its memory is shared by two owners that go away in either
 * order: libuv (until the uv_close callback) and the JS external (until its finalizer). While the poll is
 * open, a strong reference keeps the external alive, so dropping it in JS never frees an open handle;
 * pollStop releases that reference and closes the uv handle. The struct is freed by whichever of the two
 * owners lets go last. At teardown the instance's cleanup hook closes whatever is still open.
 *
 * libuv keeps one watcher per fd per loop: polling an fd that a Node handle (net.Socket...) already watches
 * fails with EEXIST, and must not be worked around.
 */
#include "loopwork.h"

#include <fcntl.h>
#include <stdlib.h>

#define POLL_MAGIC 0x6c77706fu /* "lwpo": tells a poll handle from another external */
#define POLL_EVENTS (UV_READABLE | UV_WRITABLE | UV_DISCONNECT | UV_PRIORITIZED)

typedef struct lw_poll {
  uint32_t magic;
  uv_poll_t handle;
  napi_env env;
  lw_instance *inst;
  napi_ref callback;        /* the JS callback; NULL once closing */
  napi_ref self;            /* strong reference on the external while open */
  napi_async_context async; /* so callbacks run as their own async resource */
  napi_ref resource;        /* that resource; Node holds it weakly, and AsyncLocalStorage keeps its store on it */
  int events;               /* the events asked for */
  struct lw_poll *prev, *next;
  bool closing; /* uv_close was called */
  bool closed;  /* the uv_close callback ran */
  bool finalized;
} lw_poll;

static void on_close(uv_handle_t *handle) {
  lw_poll *p = handle->data;
  lw_instance *inst = p->inst;
  p->closed = true;
  if (p->finalized) free(p);
  lw_instance_release(inst);
}

static void unlink_poll(lw_poll *p) {
  if (p->prev != NULL) p->prev->next = p->next;
  else if (p->inst->polls == p) p->inst->polls = p->next;
  if (p->next != NULL) p->next->prev = p->prev;
  p->prev = p->next = NULL;
}

/* Stops and closes the poll. `js` is false only in a finalizer at teardown, where no Node-API call is made. */
static void close_poll(lw_poll *p, bool js) {
  if (p->closing) return;
  p->closing = true;
  uv_poll_stop(&p->handle);
  unlink_poll(p);
  if (js) {
    napi_delete_reference(p->env, p->callback);
    napi_async_destroy(p->env, p->async);
    napi_delete_reference(p->env, p->resource);
    napi_delete_reference(p->env, p->self);
  }
  p->callback = NULL;
  p->resource = NULL;
  p->self = NULL;
  uv_close((uv_handle_t *)&p->handle, on_close);
}

void lw_poll_close_all(lw_instance *inst) {
  while (inst->polls != NULL) close_poll(inst->polls, true);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  lw_poll *p = data;
  p->finalized = true;
  /* The strong self reference keeps an open poll from being collected, and the teardown hook closes every
   * poll before Node-API finalizes what is left: this is a safety net. */
  if (!p->closing) close_poll(p, false);
  else if (p->closed) free(p);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  lw_poll *p = handle->data;
  if (p->callback == NULL) return;
  if (status == UV_EBADF) {
    /* libuv reports POLLERR as UV_EBADF and stops the handle. A pending socket error (a refused connect, a
     * reset) is readiness to asyncio, whose epoll selector reports EPOLLERR as readable and writable: the
     * next syscall returns the error. So unless the fd is really gone, restart and report the events asked. */
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)handle, &fd) == 0 && fcntl(fd, F_GETFD) != -1 &&
        uv_poll_start(handle, p->events, on_poll) == 0) {
      status = 0;
      events = p->events & (UV_READABLE | UV_WRITABLE);
    }
  }
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value cb, argv[2];
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, p->callback, &cb);
  napi_create_int32(env, status, &argv[0]);
  napi_create_int32(env, events, &argv[1]);
  lw_make_callback(env, p->async, cb, 2, argv);
  napi_close_handle_scope(env, scope);
}

static bool get_poll(napi_env env, napi_value v, lw_poll **out) {
  void *data = NULL;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_external) napi_get_value_external(env, v, &data);
  if (data == NULL || ((lw_poll *)data)->magic != POLL_MAGIC) {
    lw_throw_arg(env, LW_TYPE_ERROR, "handle must be a poll handle returned by pollStart()");
    return false;
  }
  *out = data;
  return true;
}

static bool get_events(napi_env env, napi_value v, int *out) {
  int32_t events;
  if (!lw_int(env, v, "events", &events)) return false;
  if ((events & ~POLL_EVENTS) != 0) {
    lw_throw_arg(env, LW_RANGE_ERROR, "events must be a mask of READABLE, WRITABLE, DISCONNECT, PRIORITIZED");
    return false;
  }
  *out = events;
  return true;
}

/* pollStart(fd, events, callback(status, events)) -> handle */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[3], ext, resource, name;
  napi_valuetype t;
  int fd, events, r;
  uv_loop_t *loop;
  if (!lw_args(env, info, 3, argv, NULL)) return NULL;
  if (!lw_fd(env, argv[0], &fd) || !get_events(env, argv[1], &events)) return NULL;
  napi_typeof(env, argv[2], &t);
  if (t != napi_function) return lw_throw_arg(env, LW_TYPE_ERROR, "callback must be a function");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;

  lw_poll *p = calloc(1, sizeof *p);
  if (p == NULL) return lw_throw_errno(env, ENOMEM, "uv_poll_init");
  p->magic = POLL_MAGIC;
  p->env = env;
  p->inst = lw_instance_of(env);
  r = uv_poll_init(loop, &p->handle, fd);
  if (r < 0) {
    free(p);
    return lw_throw_errno(env, -r, "uv_poll_init");
  }
  p->handle.data = p;
  lw_instance_hold(p->inst);
  if (napi_create_external(env, p, on_finalize, NULL, &ext) != napi_ok) {
    p->finalized = true;
    p->closing = true;
    uv_close((uv_handle_t *)&p->handle, on_close);
    return NULL;
  }
  napi_create_reference(env, ext, 1, &p->self);
  napi_create_reference(env, argv[2], 1, &p->callback);
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "loopwork.poll", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, resource, 1, &p->resource);
  napi_async_init(env, resource, name, &p->async);
  p->next = p->inst->polls;
  if (p->next != NULL) p->next->prev = p;
  p->inst->polls = p;

  p->events = events;
  r = uv_poll_start(&p->handle, events, on_poll);
  if (r < 0) {
    close_poll(p, true);
    return lw_throw_errno(env, -r, "uv_poll_start");
  }
  return ext;
}

/* pollUpdate(handle, events): 0 pauses the poll (it no longer keeps the loop alive). */
static napi_value poll_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  lw_poll *p;
  int events, r;
  if (!lw_args(env, info, 2, argv, NULL)) return NULL;
  if (!get_poll(env, argv[0], &p) || !get_events(env, argv[1], &events)) return NULL;
  if (p->closing) return lw_throw_arg(env, LW_RANGE_ERROR, "the poll handle is stopped");
  r = events == 0 ? uv_poll_stop(&p->handle) : uv_poll_start(&p->handle, events, on_poll);
  if (r < 0) return lw_throw_errno(env, -r, "uv_poll_start");
  p->events = events;
  return lw_undefined(env);
}

/* pollStop(handle): idempotent. */
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  lw_poll *p;
  if (!lw_args(env, info, 1, argv, NULL) || !get_poll(env, argv[0], &p)) return NULL;
  close_poll(p, true);
  return lw_undefined(env);
}

static napi_value poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  lw_poll *p;
  bool ref;
  if (!lw_args(env, info, 2, argv, NULL) || !get_poll(env, argv[0], &p)) return NULL;
  napi_get_value_bool(env, argv[1], &ref);
  if (!p->closing) {
    if (ref) uv_ref((uv_handle_t *)&p->handle);
    else uv_unref((uv_handle_t *)&p->handle);
  }
  return lw_undefined(env);
}

const lw_export lw_poll_exports[] = {
    {"pollStart", poll_start},
    {"pollUpdate", poll_update},
    {"pollStop", poll_stop},
    {"pollSetRef", poll_ref},
    {NULL, NULL},
};
