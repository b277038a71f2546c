/*
 * fd readiness with libuv's uv_poll_t on the environment's own loop (so it works in worker threads).
 *
 * Events are not handed to JS one by one. Each ready poll appends (id, status, events) to a queue shared with
 * JS (an Int32Array), and a uv_check handle calls the JS dispatcher once with the count, right after libuv's
 * poll phase: one Node-API callback (one async-context switch, one microtask and nextTick drain) per loop turn
 * instead of one per ready fd. The check handle is started after Node's own, so it runs before Node's
 * setImmediate callbacks, where an fd callback used to run too: the order of I/O callbacks and immediates is
 * unchanged. A full queue is handed over at once, from the poll phase. JS maps ids to callbacks, and drops the
 * events of a poll stopped or paused since they were queued (as libuv does within one poll phase).
 *
 * A poll handle is a JS external over an lw_poll. Its memory is shared by two owners that go away in either
 * order: libuv (until the uv_close callback) and the JS external (until its finalizer). While the poll is
 * open, a strong reference keeps the external alive, so dropping it in JS never frees an open handle;
 * pollStop releases that reference and closes the uv handle. The struct is freed by whichever of the two
 * owners lets go last. At teardown the instance's cleanup hook closes whatever is still open.
 *
 * libuv keeps one watcher per fd per loop: polling an fd that a Node handle (net.Socket...) already watches
 * fails with EEXIST, and must not be worked around.
 *
 * libuv tells epoll about a started or changed watcher only in its next poll phase, and aborts the process if
 * epoll_ctl fails then: an fd closed right after `addReader` (which asyncio, registering at once, takes
 * quietly) would kill it. So the polls started or changed since the last poll phase are kept on a list, and a
 * uv_prepare handle, which runs just before that phase, stops those whose fd is no longer open.
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
  int32_t id;   /* what the dispatcher is told; JS maps it to the callback */
  napi_ref self; /* strong reference on the external while open */
  int events;   /* the events asked for */
  struct lw_poll *prev, *next;
  bool closing; /* uv_close was called */
  bool closed;  /* the uv_close callback ran */
  bool finalized;
  bool dirty;                 /* on the dispatcher's list of polls to check before the poll phase */
  struct lw_poll *next_dirty; /* the next on that list */
} lw_poll;

/* The per-environment dispatcher: the JS function, the queue it reads, and the check handle that calls it. */
typedef struct lw_dispatch {
  uv_check_t check;
  uv_prepare_t prepare; /* checks the fds of the polls on `dirty` before libuv's poll phase */
  napi_env env;
  lw_instance *inst;
  napi_ref fn;              /* dispatch(count) */
  napi_ref queue_ref;       /* the Int32Array */
  int32_t *queue;           /* its elements: (id, status, events) triples */
  uint32_t capacity;        /* in triples */
  uint32_t queued;          /* triples waiting */
  napi_async_context async; /* the async resource the dispatcher runs as */
  napi_ref resource;
  lw_poll *dirty; /* polls started or changed since the last poll phase */
  int handles;    /* uv handles not closed yet (check, prepare): freed when none is left */
  bool closing;
} lw_dispatch;

/* Hands the queued events to JS (nothing when JS may no longer run). */
static void flush(lw_dispatch *d) {
  uint32_t n = d->queued;
  if (n == 0) return;
  if (d->closing || d->inst->tearing_down) {
    d->queued = 0;
    return;
  }
  napi_env env = d->env;
  napi_handle_scope scope;
  napi_value cb, argv[1];
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, d->fn, &cb);
  napi_create_uint32(env, n, &argv[0]);
  lw_make_callback(env, d->async, cb, 1, argv);
  /* JS read the triples during the call; none was added meanwhile (JS cannot run libuv's poll phase). */
  d->queued = 0;
  napi_close_handle_scope(env, scope);
}

static void on_check(uv_check_t *handle) {
  flush(handle->data);
}

static void on_dispatch_close(uv_handle_t *handle) {
  lw_dispatch *d = handle->data;
  if (--d->handles > 0) return;
  lw_instance *inst = d->inst;
  free(d);
  lw_instance_release(inst);
}

/* Puts a poll started or changed now on the list checked before the next poll phase. */
static void mark_dirty(lw_poll *p) {
  lw_dispatch *d = p->inst->dispatch;
  if (p->dirty || d == NULL) return;
  p->dirty = true;
  p->next_dirty = d->dirty;
  d->dirty = p;
}

/* Takes a poll off that list (it is closing). */
static void unmark_dirty(lw_poll *p) {
  lw_dispatch *d = p->inst->dispatch;
  if (!p->dirty) return;
  p->dirty = false;
  if (d == NULL) return;
  for (lw_poll **at = &d->dirty; *at != NULL; at = &(*at)->next_dirty) {
    if (*at == p) {
      *at = p->next_dirty;
      break;
    }
  }
  p->next_dirty = NULL;
}

/* Before the poll phase: a poll whose fd was closed since it was started or changed is stopped (see above). */
static void on_prepare(uv_prepare_t *handle) {
  lw_dispatch *d = handle->data;
  lw_poll *p = d->dirty;
  d->dirty = NULL;
  while (p != NULL) {
    lw_poll *next = p->next_dirty;
    p->dirty = false;
    p->next_dirty = NULL;
    uv_os_fd_t fd;
    if (!p->closing && uv_is_active((uv_handle_t *)&p->handle) && uv_fileno((uv_handle_t *)&p->handle, &fd) == 0 &&
        fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      uv_poll_stop(&p->handle);
    }
    p = next;
  }
}

static void close_dispatch(lw_instance *inst) {
  lw_dispatch *d = inst->dispatch;
  if (d == NULL) return;
  inst->dispatch = NULL;
  d->closing = true;
  napi_delete_reference(d->env, d->fn);
  napi_delete_reference(d->env, d->queue_ref);
  napi_async_destroy(d->env, d->async);
  napi_delete_reference(d->env, d->resource);
  for (lw_poll *p = d->dirty; p != NULL; p = p->next_dirty) p->dirty = false;
  d->dirty = NULL;
  uv_check_stop(&d->check);
  uv_prepare_stop(&d->prepare);
  uv_close((uv_handle_t *)&d->check, on_dispatch_close);
  uv_close((uv_handle_t *)&d->prepare, on_dispatch_close);
}

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
  unmark_dirty(p);
  uv_poll_stop(&p->handle);
  unlink_poll(p);
  if (js) napi_delete_reference(p->env, p->self);
  p->self = NULL;
  uv_close((uv_handle_t *)&p->handle, on_close);
}

void lw_poll_close_all(lw_instance *inst) {
  while (inst->polls != NULL) close_poll(inst->polls, true);
  close_dispatch(inst);
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
  lw_dispatch *d = p->inst->dispatch;
  if (p->closing || d == NULL) return;
  if (status == UV_EBADF) {
    /* libuv reports POLLERR as UV_EBADF and stops the handle. A pending socket error (a refused connect, a
     * reset) is readiness to asyncio, whose epoll selector reports EPOLLERR as readable and writable: the
     * next syscall returns the error. So unless the fd is really gone, restart and report the events asked. */
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)handle, &fd) == 0 && fcntl(fd, F_GETFD) != -1 &&
        uv_poll_start(handle, p->events, on_poll) == 0) {
      mark_dirty(p);
      status = 0;
      events = p->events & (UV_READABLE | UV_WRITABLE);
    }
  }
  if (d->queued == d->capacity) flush(d);
  int32_t *slot = d->queue + 3 * (size_t)d->queued++;
  slot[0] = p->id;
  slot[1] = status;
  slot[2] = events;
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

/* pollSetDispatch(dispatch(count), queue: Int32Array): once per environment, before any pollStart. */
static napi_value poll_set_dispatch(napi_env env, napi_callback_info info) {
  napi_value argv[2], resource, name, buffer;
  napi_valuetype t;
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  bool is_typed = false;
  uv_loop_t *loop;
  lw_instance *inst = lw_instance_of(env);
  if (!lw_args(env, info, 2, argv, NULL)) return NULL;
  if (inst->dispatch != NULL) return lw_throw_arg(env, LW_RANGE_ERROR, "the poll dispatcher is already set");
  napi_typeof(env, argv[0], &t);
  if (t != napi_function) return lw_throw_arg(env, LW_TYPE_ERROR, "dispatch must be a function");
  napi_is_typedarray(env, argv[1], &is_typed);
  if (is_typed) napi_get_typedarray_info(env, argv[1], &type, &length, &data, &buffer, &offset);
  if (!is_typed || type != napi_int32_array || length < 3) {
    return lw_throw_arg(env, LW_TYPE_ERROR, "queue must be an Int32Array of at least 3 elements");
  }
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  lw_dispatch *d = calloc(1, sizeof *d);
  if (d == NULL) return lw_throw_errno(env, ENOMEM, "pollSetDispatch");
  d->env = env;
  d->inst = inst;
  d->queue = data;
  d->capacity = (uint32_t)(length / 3);
  uv_check_init(loop, &d->check);
  d->check.data = d;
  uv_prepare_init(loop, &d->prepare);
  d->prepare.data = d;
  d->handles = 2;
  lw_instance_hold(inst);
  napi_create_reference(env, argv[0], 1, &d->fn);
  napi_create_reference(env, argv[1], 1, &d->queue_ref);
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "loopwork.poll", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, resource, 1, &d->resource);
  napi_async_init(env, resource, name, &d->async);
  /* Started after Node's immediate check handle, so run before it (libuv runs the latest started first). */
  uv_check_start(&d->check, on_check);
  uv_unref((uv_handle_t *)&d->check);
  uv_prepare_start(&d->prepare, on_prepare);
  uv_unref((uv_handle_t *)&d->prepare);
  inst->dispatch = d;
  return lw_undefined(env);
}

/* pollStart(fd, events, id) -> handle; the dispatcher is told `id` when the fd is ready. */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[3], ext;
  int fd, events, r;
  int32_t id;
  uv_loop_t *loop;
  if (!lw_args(env, info, 3, argv, NULL)) return NULL;
  if (!lw_fd(env, argv[0], &fd) || !get_events(env, argv[1], &events) || !lw_int(env, argv[2], "id", &id)) {
    return NULL;
  }
  if (lw_instance_of(env)->dispatch == NULL) {
    return lw_throw_arg(env, LW_RANGE_ERROR, "pollSetDispatch() must be called before pollStart()");
  }
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;

  lw_poll *p = calloc(1, sizeof *p);
  if (p == NULL) return lw_throw_errno(env, ENOMEM, "uv_poll_init");
  p->magic = POLL_MAGIC;
  p->env = env;
  p->inst = lw_instance_of(env);
  p->id = id;
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
  p->next = p->inst->polls;
  if (p->next != NULL) p->next->prev = p;
  p->inst->polls = p;

  p->events = events;
  r = uv_poll_start(&p->handle, events, on_poll);
  if (r < 0) {
    close_poll(p, true);
    return lw_throw_errno(env, -r, "uv_poll_start");
  }
  mark_dirty(p);
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
  if (events != 0) mark_dirty(p);
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
    {"pollSetDispatch", poll_set_dispatch},
    {"pollStart", poll_start},
    {"pollUpdate", poll_update},
    {"pollStop", poll_stop},
    {"pollSetRef", poll_ref},
    {NULL, NULL},
};
