/*
 * sendfile(2) on the libuv threadpool, with cancellation.
 *
 * The worker thread loops on sendfile(); when the socket is full (EAGAIN) it waits with poll(POLLOUT) in
 * slices of SLICE_MS so that a cancel request, a flag it reads between slices, is seen within that time.
 * The JS thread gets (errno, bytesSent): errno 0 on success, ECANCELED when cancelled; bytesSent counts what
 * went out before any error.
 *
 * uv_queue_work rather than napi_async_work: Node waits for every napi_async_work before it runs cleanup
 * hooks, so a transfer stuck on a peer that never reads would hang a worker's termination; this way the
 * teardown hook cancels it first (see lw_instance).
 *
 * The job is shared by the work (until after_work) and the JS handle (until finalized); the last of the two
 * frees it. Both run on the JS thread, so that count needs no atomics; `cancelled` is read by the worker
 * thread and is atomic.
 */
#include "loopwork.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/sendfile.h>

#define SENDFILE_MAGIC 0x6c777366u /* "lwsf" */
#define SLICE_MS 100
/* Bytes per sendfile() call: bounds how long a call on a blocking fd can hold off a cancel. */
#define CHUNK ((size_t)1 << 20)

typedef struct lw_sendfile {
  uint32_t magic;
  uv_work_t req;
  napi_env env;
  lw_instance *inst;
  napi_ref callback; /* NULL once released */
  napi_ref resource; /* the async resource, held (Node holds it weakly) */
  napi_async_context async;
  struct lw_sendfile *prev, *next; /* in inst->sendfiles until completed */
  int out_fd, in_fd;
  int64_t offset; /* < 0: use and advance in_fd's file position */
  int64_t count;  /* 0: until EOF */
  int64_t sent;
  int error;
  atomic_int cancelled;
  bool done; /* after_work ran */
  int owners;
} lw_sendfile;

static void release(lw_sendfile *job) {
  if (--job->owners == 0) free(job);
}

static void unlink_job(lw_sendfile *job) {
  if (job->prev != NULL) job->prev->next = job->next;
  else if (job->inst->sendfiles == job) job->inst->sendfiles = job->next;
  if (job->next != NULL) job->next->prev = job->prev;
  job->prev = job->next = NULL;
}

static void release_js(lw_sendfile *job) {
  if (job->callback == NULL) return;
  napi_delete_reference(job->env, job->callback);
  napi_async_destroy(job->env, job->async);
  napi_delete_reference(job->env, job->resource);
  job->callback = NULL;
}

static void cancel(lw_sendfile *job) {
  atomic_store(&job->cancelled, 1);
  /* Not started yet: dropped from the queue (after_work gets UV_ECANCELED); else the flag stops it. */
  uv_cancel((uv_req_t *)&job->req);
}

void lw_sendfile_cancel_all(lw_instance *inst) {
  for (lw_sendfile *job = inst->sendfiles; job != NULL; job = job->next) {
    cancel(job);
    release_js(job); /* after_work will find the environment gone */
  }
}

/* Worker thread: no Node-API here. */
static void execute(uv_work_t *req) {
  lw_sendfile *job = req->data;
  off_t off = (off_t)job->offset;
  off_t *offp = job->offset < 0 ? NULL : &off;
  while (job->count == 0 || job->sent < job->count) {
    if (atomic_load(&job->cancelled)) {
      job->error = ECANCELED;
      return;
    }
    size_t want = CHUNK;
    if (job->count != 0 && (uint64_t)(job->count - job->sent) < want) want = (size_t)(job->count - job->sent);
    ssize_t n = sendfile(job->out_fd, job->in_fd, offp, want);
    if (n > 0) {
      job->sent += n;
    } else if (n == 0) {
      return; /* end of file */
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      struct pollfd pfd = {.fd = job->out_fd, .events = POLLOUT};
      int r = poll(&pfd, 1, SLICE_MS);
      if (r < 0 && errno != EINTR) {
        job->error = errno;
        return;
      }
      if (r > 0 && (pfd.revents & POLLNVAL)) {
        job->error = EBADF;
        return;
      }
      /* POLLERR/POLLHUP: the next sendfile() reports the actual error (EPIPE, ECONNRESET...). */
    } else if (errno != EINTR) {
      job->error = errno;
      return;
    }
  }
}

static void after_work(uv_work_t *req, int status) {
  lw_sendfile *job = req->data;
  lw_instance *inst = job->inst;
  job->done = true;
  unlink_job(job);
  if (status == UV_ECANCELED) job->error = ECANCELED; /* cancelled before it started */
  if (!inst->tearing_down && job->callback != NULL) {
    napi_env env = job->env;
    napi_handle_scope scope;
    napi_value cb, argv[2];
    napi_open_handle_scope(env, &scope);
    napi_get_reference_value(env, job->callback, &cb);
    napi_create_int32(env, job->error, &argv[0]);
    napi_create_int64(env, job->sent, &argv[1]);
    lw_make_callback(env, job->async, cb, 2, argv);
    release_js(job);
    napi_close_handle_scope(env, scope);
  }
  release(job);
  lw_instance_release(inst);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  release(data);
}

/* sendfile(outFd, inFd, offset, count, callback(errno, bytesSent)) -> handle for sendfileCancel(). */
static napi_value js_sendfile(napi_env env, napi_callback_info info) {
  napi_value argv[5], ext, resource, name;
  napi_valuetype t;
  uv_loop_t *loop;
  int out_fd, in_fd, r;
  int64_t offset, count;
  if (!lw_args(env, info, 5, argv, NULL)) return NULL;
  if (!lw_fd(env, argv[0], &out_fd) || !lw_fd(env, argv[1], &in_fd) || !lw_int64(env, argv[2], "offset", &offset) ||
      !lw_int64(env, argv[3], "count", &count))
    return NULL;
  if (count < 0) return lw_throw_arg(env, LW_RANGE_ERROR, "count must be >= 0");
  napi_typeof(env, argv[4], &t);
  if (t != napi_function) return lw_throw_arg(env, LW_TYPE_ERROR, "callback must be a function");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;

  lw_sendfile *job = calloc(1, sizeof *job);
  if (job == NULL) return lw_throw_errno(env, ENOMEM, "sendfile");
  job->magic = SENDFILE_MAGIC;
  job->req.data = job;
  job->env = env;
  job->inst = lw_instance_of(env);
  job->out_fd = out_fd;
  job->in_fd = in_fd;
  job->offset = offset;
  job->count = count;
  job->owners = 1;
  if (napi_create_external(env, job, on_finalize, NULL, &ext) != napi_ok) {
    free(job);
    return NULL;
  }
  r = uv_queue_work(loop, &job->req, execute, after_work);
  if (r < 0) return lw_throw_errno(env, -r, "uv_queue_work");
  job->owners++;
  lw_instance_hold(job->inst);
  napi_create_reference(env, argv[4], 1, &job->callback);
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &job->resource);
  napi_create_string_utf8(env, "loopwork.sendfile", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &job->async);
  job->next = job->inst->sendfiles;
  if (job->next != NULL) job->next->prev = job;
  job->inst->sendfiles = job;
  return ext;
}

/* sendfileCancel(handle): stops the transfer; its callback gets ECANCELED. No effect once completed. */
static napi_value js_sendfile_cancel(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_valuetype t;
  void *data = NULL;
  if (!lw_args(env, info, 1, argv, NULL)) return NULL;
  napi_typeof(env, argv[0], &t);
  if (t == napi_external) napi_get_value_external(env, argv[0], &data);
  if (data == NULL || ((lw_sendfile *)data)->magic != SENDFILE_MAGIC)
    return lw_throw_arg(env, LW_TYPE_ERROR, "handle must be a handle returned by sendfile()");
  lw_sendfile *job = data;
  if (!job->done) cancel(job);
  return lw_undefined(env);
}

/* sendfileCancelAll(): cancels every transfer of this thread. For process.exit(), which joins the threadpool
 * without running cleanup hooks: a transfer waiting on a peer that never reads would hang it. */
static napi_value js_sendfile_cancel_all(napi_env env, napi_callback_info info) {
  for (lw_sendfile *job = lw_instance_of(env)->sendfiles; job != NULL; job = job->next) cancel(job);
  return lw_undefined(env);
}

const lw_export lw_sendfile_exports[] = {
    {"sendfile", js_sendfile},
    {"sendfileCancel", js_sendfile_cancel},
    {"sendfileCancelAll", js_sendfile_cancel_all},
    {NULL, NULL},
};
