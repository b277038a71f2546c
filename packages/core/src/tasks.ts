/**
 * `Task` and the high-level helpers around it (asyncio's `tasks.py`): `sleep`, `gather`, `wait`, `waitFor`,
 * `shield`, `asCompleted`, `ensureFuture`, `currentTask`, `allTasks`.
 *
 * @module
 */
import { inspect } from 'node:util';
import type { Context } from './context.js';
import { copyContext, currentScopeTask, runInScope } from './context.js';
import {
  CancelledError,
  InvalidArgTypeError,
  NoRunningLoopError,
  RuntimeError,
  TimeoutError,
  ValueError,
  isCancelledError,
} from './errors.js';
import {
  Future,
  FutureState,
  cancellablePromise,
  cancellableWait,
  isFuture,
  isThenable,
  promiseCanceller,
  setResultUnlessCancelled,
} from './futures.js';
import type { BaseEventLoop } from './base-event-loop.js';
import type { TimerHandle } from './handles.js';
import { getEventLoopForFuture } from './loop-access.js';
import { splitOptions } from './options.js';
import { peekRunningLoop, whenALoopRuns } from './running.js';
import { timeout as timeoutContext } from './timeouts.js';

/**
 * What a Task drives: a coroutine function (`() => Promise<T>`, started on the loop's next iteration inside the
 * task, as asyncio starts a task) or an already started promise (whose code runs in its creator's context, and
 * which can only be cancelled when it settles).
 */
export type Coroutine<T> = (() => PromiseLike<T>) | PromiseLike<T>;

/** Anything `await`-able that the helpers accept: a Future or Task, a promise, or a coroutine function. */
export type Awaitable<T> = Future<T> | PromiseLike<T> | (() => PromiseLike<T>);

/** Options of `new Task()`. */
export interface TaskOptions {
  /** The loop; by default the current event loop. */
  loop?: BaseEventLoop;
  /** The task's name; by default `Task-N`. */
  name?: string | null;
  /** The context the coroutine runs in; by default a copy of the current context. */
  context?: Context | null;
}

let taskCounter = 0;

/**
 * A Future that runs a coroutine (asyncio's `Task`).
 *
 * `cancel()` makes the coroutine see a `CancelledError` at the loop Future it is suspended on (its `finally`
 * blocks run); if it is suspended on a native promise instead, the cancellation is delivered at its next await of
 * a loop Future, and `signal` is aborted at once for native APIs that take an `AbortSignal`.
 *
 * @typeParam T - the type of the coroutine's result.
 */
export class Task<T = unknown> extends Future<T> {
  /** @internal */
  readonly _coro: Coroutine<T>;
  /** @internal */
  _name: string;
  /** @internal */
  readonly _context: Context;
  /** @internal the Future the coroutine is suspended on (asyncio's `_fut_waiter`). */
  _futWaiter: Future<unknown> | null = null;
  /** @internal a cancel() is pending until the next await of a loop Future. */
  _mustCancel = false;
  /** @internal */
  _numCancelsRequested = 0;
  /** @internal */
  _abort: AbortController | null = null;
  /**
   * @internal Reported as "Task was destroyed but it is pending!" when its loop closes first (asyncio's
   * `_log_destroy_pending`; false for the task `runUntilComplete` made).
   */
  _logDestroyPending = true;

  /**
   * Schedules the coroutine to run on the loop. Prefer `loop.createTask()` (which honours the task factory) or
   * `createTask()`.
   *
   * @throws TypeError when `coro` is neither a function nor a thenable, or is a Future (a Task of its own
   *   already: asyncio's `create_task` refuses one too).
   */
  constructor(coro: Coroutine<T>, options: TaskOptions = {}) {
    super(options.loop === undefined ? {} : { loop: options.loop });
    if ((typeof coro !== 'function' && !isThenable(coro)) || isFuture(coro)) {
      throw new InvalidArgTypeError(`a coroutine was expected, got ${inspect(coro, { depth: 0 })}`);
    }
    this._coro = coro;
    this._name = options.name == null ? `Task-${++taskCounter}` : String(options.name);
    this._context = options.context ?? copyContext();
    this._loop._checkClosed();
    this._loop._tasks.add(this as Task<unknown>);
    if (typeof coro === 'function') {
      this._loop._callSoonInternal(startTask, [this], this._context)._resumes = true;
      return;
    }
    // A promise is handled now, not at the first step: one that fails before then (or after the task was
    // cancelled unstarted) would otherwise be an unhandled rejection, which ends a Node process.
    const step: PromiseStep = { started: false, settled: false, ok: false, value: undefined };
    try {
      coro.then(
        (value) => promiseSettled(this as Task<unknown>, step, true, value),
        (error: unknown) => promiseSettled(this as Task<unknown>, step, false, error),
      );
    } catch (error) {
      // A thenable whose then() throws: the task fails with that at its first step.
      promiseSettled(this as Task<unknown>, step, false, error);
    }
    this._loop._callSoonInternal(startPromiseTask, [this, step], this._context)._resumes = true;
  }

  /** The task's name. */
  getName(): string {
    return this._name;
  }

  /** Renames the task. */
  setName(value: unknown): void {
    this._name = String(value);
  }

  /** The coroutine function or promise the task runs. */
  getCoro(): Coroutine<T> {
    return this._coro;
  }

  /** The `Context` the coroutine runs in. */
  getContext(): Context {
    return this._context;
  }

  /**
   * An `AbortSignal` aborted when the task is cancelled, for native APIs that cannot be interrupted otherwise
   * (`fetch`, `fs.promises`, `timers/promises`).
   */
  get signal(): AbortSignal {
    if (this._abort === null) {
      this._abort = new AbortController();
      if (this._numCancelsRequested > 0 || this.cancelled()) this._abort.abort(this._makeCancelledError());
    }
    return this._abort.signal;
  }

  /**
   * Requests that the task be cancelled: its coroutine sees a `CancelledError` at its current await.
   *
   * @param msg - the message of that `CancelledError`.
   * @returns `false` when the task is already done, else `true` (the coroutine may still catch the error).
   */
  override cancel(msg?: string): boolean {
    this._markRetrieved();
    if (this.done()) return false;
    this._numCancelsRequested++;
    if (this._abort !== null && !this._abort.signal.aborted) this._abort.abort(new CancelledError(msg ?? ''));
    if (this._futWaiter !== null && this._futWaiter.cancel(msg)) {
      // Leave _futWaiter: it may be a Task that catches the cancellation, to be cancelled again later.
      return true;
    }
    // A started promise that loopwork made (sleep(), a stream read…): cancel the Future its work waits on.
    const coro = this._coro;
    if (typeof coro !== 'function' && promiseCanceller(coro)?.(msg) === true) return true;
    this._mustCancel = true;
    this._cancelMessage = msg;
    return true;
  }

  /** How many cancellation requests are pending (`cancel()` calls minus `uncancel()` calls). */
  cancelling(): number {
    return this._numCancelsRequested;
  }

  /**
   * Decrements the count of pending cancellation requests (asyncio.timeout and TaskGroup use it to tell their own
   * cancellation from another).
   *
   * @returns the remaining count.
   */
  uncancel(): number {
    if (this._numCancelsRequested > 0) {
      this._numCancelsRequested--;
      if (this._numCancelsRequested === 0) this._mustCancel = false;
    }
    return this._numCancelsRequested;
  }

  /** Refused: a task's result comes from its coroutine. */
  override setResult(_result: T): never {
    throw new RuntimeError('Task does not support set_result operation');
  }

  /** Refused: a task's exception comes from its coroutine. */
  override setException(_exception: unknown): never {
    throw new RuntimeError('Task does not support set_exception operation');
  }

  /** @internal */
  override _label(): string {
    const coro = this._coro;
    return `Task name='${this._name}' coro=<${typeof coro === 'function' ? `${coro.name || 'anonymous'}()` : 'promise'}>`;
  }

  /** @internal */
  override _kind(): 'Task' {
    return 'Task';
  }

  /** @internal */
  override _describe(): string {
    const coro = this._coro;
    const coroName = typeof coro === 'function' ? `${coro.name || 'anonymous'}()` : 'promise';
    let s = `<Task ${this._stateDescription()} name='${this._name}' coro=<${coroName}>`;
    if (this._futWaiter !== null) s += ` wait_for=${this._futWaiter._describe()}`;
    return `${s}>`;
  }

  /** @internal */
  _complete(value: T): void {
    this._futWaiter = null;
    this._loop._tasks.delete(this as Task<unknown>);
    if (this._state !== FutureState.PENDING) return;
    if (this._mustCancel) {
      // Asked to cancel while the coroutine had no loop Future to be interrupted at: asyncio ends it cancelled.
      this._mustCancel = false;
      Future.prototype.cancel.call(this, this._cancelMessage);
    } else {
      Future.prototype.setResult.call(this, value);
    }
  }

  /** @internal */
  _fail(error: unknown): void {
    this._futWaiter = null;
    this._loop._tasks.delete(this as Task<unknown>);
    if (this._state !== FutureState.PENDING) return;
    if (isCancelledError(error)) {
      this._mustCancel = false;
      Future.prototype.cancel.call(this, (error as Error).message || this._cancelMessage);
    } else {
      Future.prototype.setException.call(this, error);
    }
  }
}

/** Where the promise of a Task made from a promise is: whether the task took its first step, and the outcome. */
interface PromiseStep {
  started: boolean;
  settled: boolean;
  ok: boolean;
  value: unknown;
}

/** The first step of a Task made from a promise: from now on the promise's outcome is the task's. */
function startPromiseTask(task: Task<unknown>, step: PromiseStep): void {
  if (task._state !== FutureState.PENDING) return;
  step.started = true;
  if (task._mustCancel) task._complete(undefined);
  else if (step.settled) settleTask(task, step);
}

function promiseSettled(task: Task<unknown>, step: PromiseStep, ok: boolean, value: unknown): void {
  step.settled = true;
  step.ok = ok;
  step.value = value;
  if (step.started) settleTask(task, step);
}

function settleTask(task: Task<unknown>, step: PromiseStep): void {
  if (step.ok) task._complete(step.value);
  else task._fail(step.value);
}

function startTask(task: Task<unknown>): void {
  if (task._state !== FutureState.PENDING) return;
  if (task._mustCancel) {
    // Cancelled before its first step: the coroutine never runs, as asyncio throws into an unstarted coroutine.
    task._complete(undefined);
    return;
  }
  const coro = task._coro as () => PromiseLike<unknown>;
  let promise: PromiseLike<unknown>;
  try {
    promise = runInScope(task._context, task, coro);
    if (!isThenable(promise)) {
      throw new InvalidArgTypeError(
        `a coroutine function must return a promise, ${task._name}'s returned ${inspect(promise, { depth: 0 })}`,
      );
    }
  } catch (error) {
    task._fail(error);
    return;
  }
  promise.then(
    (value) => task._complete(value),
    (error: unknown) => task._fail(error),
  );
}

/**
 * The Task whose coroutine is running now, or `null` outside any task (e.g. in a plain callback).
 *
 * @param loop - only return a task of this loop; by default the running loop.
 * @throws RuntimeError ("no running event loop") without `loop` when no loop is running, as asyncio's.
 */
export function currentTask(loop?: BaseEventLoop): Task<unknown> | null {
  if (loop === undefined && peekRunningLoop() === null) throw new NoRunningLoopError();
  const task = currentScopeTask() as Task<unknown> | null;
  if (task === null || task.done()) return null;
  if (loop !== undefined && task._loop !== loop) return null;
  return task;
}

/**
 * The set of tasks of `loop` (by default the running loop) that are not done yet.
 *
 * @throws RuntimeError ("no running event loop") without `loop` when no loop is running, as asyncio's.
 */
export function allTasks(loop?: BaseEventLoop): Set<Task<unknown>> {
  const l = loop ?? (peekRunningLoop() as BaseEventLoop | null);
  if (l === null) throw new NoRunningLoopError();
  const out = new Set<Task<unknown>>();
  for (const t of l._tasks) if (!t.done()) out.add(t);
  return out;
}

/**
 * Wraps an awaitable in a Future: a Future or Task is returned as is; a promise or coroutine function becomes a
 * Task on `loop` (asyncio's `ensure_future`).
 *
 * @throws `ValueError` when a Future of another loop is given with an explicit `loop`.
 */
export function ensureFuture<T>(aw: Awaitable<T>, loop?: BaseEventLoop): Future<T> {
  if (isFuture(aw)) {
    if (loop !== undefined && aw._loop !== loop) {
      throw new ValueError('The future belongs to a different loop than the one specified as the loop argument');
    }
    return aw as Future<T>;
  }
  if (typeof aw === 'function' || isThenable(aw)) {
    const l = loop ?? getEventLoopForFuture();
    return l.createTask(aw as Coroutine<T>);
  }
  throw new InvalidArgTypeError('An asyncio.Future, a coroutine or an awaitable is required');
}

function runningOrCurrentLoop(): BaseEventLoop {
  return (peekRunningLoop() as BaseEventLoop | null) ?? getEventLoopForFuture();
}

/**
 * Suspends the current task for `delay` seconds, then returns `result`.
 *
 * `sleep(0)` yields to the loop for exactly one iteration, letting other tasks and callbacks run.
 *
 * @param delay - seconds (a negative delay is 0).
 * @param result - what the promise resolves to.
 * @returns a promise that rejects with `TypeError` when `delay` is not a number, `ValueError` when it is NaN.
 */
export function sleep<T = undefined>(delay: number, result?: T): Promise<T> {
  if (typeof delay !== 'number') {
    // asyncio's sleep(None) or sleep('1') fails ('<=' not supported); null or undefined must not mean sleep(0).
    return Promise.reject(new InvalidArgTypeError(`delay must be a number, got ${inspect(delay, { depth: 0 })}`));
  }
  if (delay > 0) return sleepFor(delay, result as T);
  if (Number.isNaN(delay)) return Promise.reject(new ValueError('Invalid delay: NaN (NaN)'));
  const loop = peekRunningLoop() as BaseEventLoop | null;
  // No loop runs (`loop.runUntilComplete(sleep(0))`): yield in the next loop that runs, as sleepFor() does.
  if (loop === null)
    return new Promise<T>((resolve) => whenALoopRuns((l) => resolve(yieldIn(l as BaseEventLoop, result as T))));
  return yieldIn(loop, result as T);
}

function yieldIn<T>(loop: BaseEventLoop, result: T): Promise<T> {
  const task = currentScopeTask() as Task<unknown> | null;
  // The task waits on no Future now (asyncio's bare yield): one it only called then() on before is not what
  // cancel() must interrupt; the cancellation is delivered by the Yield.
  if (task !== null) task._futWaiter = null;
  return new Promise<T>((resolve, reject) => {
    loop._pushRunnable(new Yield(task, resolve, reject, result));
  });
}

/**
 * `sleep(0)`: resumes the awaiting task on the next iteration, as asyncio's bare `yield` does — or delivers the
 * task's pending cancellation there.
 */
class Yield<T> {
  readonly _cancelled = false;
  readonly _resumes = true;
  constructor(
    readonly task: Task<unknown> | null,
    readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
    readonly result: T,
  ) {}

  _run(): void {
    const task = this.task;
    if (task !== null && task._mustCancel) {
      task._mustCancel = false;
      this.reject(task._makeCancelledError());
    } else {
      this.resolve(this.result);
    }
  }
}

function sleepFor<T>(delay: number, result: T): Promise<T> {
  const loop = peekRunningLoop() as BaseEventLoop | null;
  if (loop !== null) return sleepIn(loop, delay, result);
  // No loop runs (`loop.runUntilComplete(sleep(1))`): the sleep starts in the next loop that runs, as asyncio's
  // coroutine starts in the loop whose task runs it.
  let started: Promise<T> | null = null;
  const sleeping = new Promise<T>((resolve, reject) => {
    whenALoopRuns((l) => {
      started = sleepIn(l as BaseEventLoop, delay, result);
      started.then(resolve, reject);
    });
  });
  return cancellablePromise(sleeping, (msg) => (started === null ? false : promiseCanceller(started)?.(msg) === true));
}

function sleepIn<T>(loop: BaseEventLoop, delay: number, result: T): Promise<T> {
  const fut = loop.createFuture<T>();
  const h = loop.callLater(delay, setResultUnlessCancelled, fut, result);
  return cancellablePromise(sleepOn(fut, h), (msg) => fut.cancel(msg));
}

async function sleepOn<T>(fut: Future<T>, h: TimerHandle): Promise<T> {
  try {
    return await fut;
  } finally {
    h.cancel();
  }
}

/** Options of `gather()`. */
export interface GatherOptions {
  /** Put exceptions (and `CancelledError`s) in the results array instead of rejecting with the first. */
  returnExceptions?: boolean;
}

const GATHER_KEYS = new Set(['returnExceptions']);

/**
 * Runs awaitables concurrently and resolves with the array of their results, in order (asyncio's `gather`).
 *
 * Promises and coroutine functions are wrapped in Tasks. Without `returnExceptions`, the first exception rejects
 * the returned Future and the others keep running. Cancelling the returned Future cancels every child.
 *
 * @example
 * ```ts
 * const [a, b] = await gather(fetchA(), () => fetchB(), { returnExceptions: true });
 * ```
 */
export function gather<T extends readonly unknown[]>(
  ...aws: { [K in keyof T]: Awaitable<T[K]> }
): GatheringFuture<{ -readonly [K in keyof T]: T[K] }>;
export function gather<T extends readonly unknown[]>(
  ...args: [...aws: { [K in keyof T]: Awaitable<T[K]> }, options: GatherOptions]
): GatheringFuture<{ -readonly [K in keyof T]: T[K] | Error }>;
export function gather(...args: unknown[]): GatheringFuture<unknown[]> {
  const [aws, opts] = splitOptions<GatherOptions>(args, GATHER_KEYS);
  const returnExceptions = opts.returnExceptions === true;
  if (aws.length === 0) {
    const loop = runningOrCurrentLoop();
    const outer = new GatheringFuture<unknown[]>([], loop);
    outer.setResult([]);
    return outer;
  }
  const children: Future<unknown>[] = [];
  const seen = new Map<unknown, Future<unknown>>();
  let loop: BaseEventLoop | undefined;
  for (const aw of aws) {
    let fut = seen.get(aw);
    if (fut === undefined) {
      fut = ensureFuture(aw as Awaitable<unknown>, loop);
      loop ??= fut._loop;
      seen.set(aw, fut);
    }
    children.push(fut);
  }
  const outer = new GatheringFuture<unknown[]>(children, loop as BaseEventLoop);
  // An awaitable passed twice is one child: count distinct futures, as asyncio does.
  const total = seen.size;
  let finished = 0;
  const onChildDone = (fut: Future<unknown>): void => {
    finished++;
    if (outer.done()) {
      if (!fut.cancelled()) fut.exception(); // mark retrieved: the outer already failed or was cancelled
      return;
    }
    if (!returnExceptions) {
      if (fut.cancelled()) {
        outer.setException(fut._makeCancelledError());
        return;
      }
      const exc = fut.exception();
      if (exc !== null) {
        outer.setException(exc);
        return;
      }
    }
    if (finished === total) {
      const results = children.map((c) => {
        if (c.cancelled()) return new CancelledError(c._cancelMessage ?? '');
        const e = c.exception();
        return e !== null ? e : c.result();
      });
      if (outer._cancelRequested) outer.setException(fut._makeCancelledError());
      else outer.setResult(results);
    }
  };
  for (const c of new Set(children)) c.addDoneCallback(onChildDone);
  return outer;
}

/** The Future `gather()` returns: cancelling it cancels its children. */
export class GatheringFuture<T> extends Future<T> {
  /** @internal */
  _cancelRequested = false;
  /** @internal */
  readonly _children: Future<unknown>[];

  /** @internal */
  constructor(children: Future<unknown>[], loop: BaseEventLoop) {
    super({ loop });
    this._children = children;
  }

  /** Cancels every child that is not done; the gathered future then fails with `CancelledError`. */
  override cancel(msg?: string): boolean {
    if (this.done()) return false;
    let ret = false;
    for (const c of this._children) if (c.cancel(msg)) ret = true;
    if (ret) this._cancelRequested = true;
    return ret;
  }
}

/** `wait()`'s `returnWhen`: return when any future finishes or is cancelled. */
export const FIRST_COMPLETED = 'FIRST_COMPLETED';
/** `wait()`'s `returnWhen`: return when any future finishes by raising (or all finish). */
export const FIRST_EXCEPTION = 'FIRST_EXCEPTION';
/** `wait()`'s `returnWhen`: return when all futures finish or are cancelled (the default). */
export const ALL_COMPLETED = 'ALL_COMPLETED';

/** Options of `wait()`. */
export interface WaitOptions {
  /** Seconds to wait at most; `null` waits without limit. Futures not done by then are returned as pending. */
  timeout?: number | null;
  /** `FIRST_COMPLETED`, `FIRST_EXCEPTION` or `ALL_COMPLETED` (the default). */
  returnWhen?: typeof FIRST_COMPLETED | typeof FIRST_EXCEPTION | typeof ALL_COMPLETED;
}

/**
 * Waits for Futures and Tasks until the `returnWhen` condition (asyncio's `wait`); never raises `TimeoutError`.
 *
 * @returns `[done, pending]`, two Sets.
 * @throws `ValueError` for an empty set or a bad `returnWhen`; `TypeError` for a promise or coroutine function
 * (wrap them in tasks explicitly, as asyncio requires since 3.11).
 */
export async function wait<T>(
  fs: Iterable<Future<T>>,
  options: WaitOptions = {},
): Promise<[Set<Future<T>>, Set<Future<T>>]> {
  const set = new Set(fs);
  if (set.size === 0) throw new ValueError('Set of Tasks/Futures is empty.');
  const returnWhen = options.returnWhen ?? ALL_COMPLETED;
  if (returnWhen !== FIRST_COMPLETED && returnWhen !== FIRST_EXCEPTION && returnWhen !== ALL_COMPLETED) {
    throw new ValueError(`Invalid return_when value: ${String(returnWhen)}`);
  }
  for (const f of set) {
    if (!isFuture(f)) throw new InvalidArgTypeError('Passing coroutines is forbidden, use tasks explicitly.');
  }
  // Without a running loop (`loop.runUntilComplete(wait([task]))`), the futures' loop: asyncio's coroutine runs in
  // the loop that runs it; the current event loop may be another one, which never runs.
  const loop = (peekRunningLoop() as BaseEventLoop | null) ?? (set.values().next().value as Future<T>)._loop;
  const timeout = options.timeout ?? null;
  const waiter = loop.createFuture<null>();
  let timer: { cancel(): void } | null = null;
  if (timeout !== null) timer = loop.callLater(timeout, setResultUnlessCancelled, waiter, null);
  let counter = set.size;
  const onDone = (f: Future<T>): void => {
    counter--;
    if (
      counter <= 0 ||
      returnWhen === FIRST_COMPLETED ||
      (returnWhen === FIRST_EXCEPTION && !f.cancelled() && f.exception() !== null)
    ) {
      timer?.cancel();
      if (!waiter.done()) waiter.setResult(null);
    }
  };
  // As asyncio's _wait: a callback on every future, done ones included (theirs are scheduled at once), so that
  // wait() always yields to the loop, even when the condition already holds: a loop around wait() on a done task
  // must not starve the other tasks.
  for (const f of set) f.addDoneCallback(onDone);
  try {
    await waiter;
  } finally {
    timer?.cancel();
    for (const f of set) f.removeDoneCallback(onDone);
  }
  const done = new Set<Future<T>>();
  const pending = new Set<Future<T>>();
  for (const f of set) (f.done() ? done : pending).add(f);
  return [done, pending];
}

/**
 * Waits for `aw` to complete, at most `timeout` seconds; on timeout the awaitable is cancelled and
 * `TimeoutError` is thrown (asyncio's `wait_for`, 3.12 semantics, built on `timeout()`).
 *
 * The deadline runs in a Task of its own, as asyncio's `wait_for` coroutine runs in the task that awaits it:
 * JavaScript starts `waitFor()` in its caller, whose promise may go to `createTask()` or `gather()` instead of
 * being awaited, and the caller must not be the task the deadline cancels. The returned promise is cancellable
 * (see `cancellablePromise`): cancelling a task that awaits it, or a Task made from it, cancels the wait.
 *
 * @param timeout - seconds, or `null` to wait without limit.
 * @returns a promise of `aw`'s result; it rejects with `TimeoutError` at the deadline, with `TypeError` when
 * `timeout` is neither a number nor null.
 */
export function waitFor<T>(aw: Awaitable<T>, timeout: number | null): Promise<T> {
  if (timeout !== null && typeof timeout !== 'number') {
    // asyncio's `timeout <= 0` fails for these; a string compared with 0 here would time out at once, or never.
    const error = new InvalidArgTypeError(`timeout must be a number or null, got ${inspect(timeout, { depth: 0 })}`);
    return Promise.reject(error);
  }
  const loop = peekRunningLoop() as BaseEventLoop | null;
  if (loop === null) {
    // No loop runs (`loop.runUntilComplete(waitFor(sleep(1), 0.5))`): the wait starts in the next loop that runs,
    // as asyncio's coroutine starts in the loop whose task runs it.
    let started: Promise<T> | null = null;
    const waiting = new Promise<T>((resolve, reject) => {
      whenALoopRuns(() => {
        started = waitFor(aw, timeout);
        started.then(resolve, reject);
      });
    });
    return cancellablePromise(waiting, (msg) => (started === null ? false : promiseCanceller(started)?.(msg) === true));
  }
  if (timeout === null || timeout <= 0) return waitWithoutDeadline(aw, timeout);
  // The awaitable becomes a Future now, in the caller: a promise already rejected is handled at once, not at the
  // wait's first step (Node would report it unhandled meanwhile).
  const fut = ensureFuture(aw);
  const wait = new Task(() => timeoutContext(timeout, async () => await fut), { loop });
  // A wait cancelled before its first step never awaited `fut`: cancel it as the wait would have.
  wait.addDoneCallback(() => {
    if (!fut.done()) fut.cancel();
  });
  return cancellableWait(wait);
}

/** `waitFor` without a deadline (`null`), or with one already past: nothing to cancel but `aw` itself. */
async function waitWithoutDeadline<T>(aw: Awaitable<T>, timeout: number | null): Promise<T> {
  if (timeout === null) return await ensureFuture(aw);
  const fut = ensureFuture(aw);
  if (fut.done()) return fut.result();
  await cancelAndWait(fut);
  try {
    return fut.result();
  } catch (exc) {
    if (isCancelledError(exc)) throw new TimeoutError('', { cause: exc });
    throw exc;
  }
}

async function cancelAndWait(fut: Future<unknown>): Promise<void> {
  const loop = fut._loop;
  const waiter = loop.createFuture<null>();
  const cb = (): void => {
    if (!waiter.done()) waiter.setResult(null);
  };
  fut.addDoneCallback(cb);
  try {
    fut.cancel();
    await waiter;
  } finally {
    fut.removeDoneCallback(cb);
  }
}

/**
 * Protects an awaitable from cancellation: cancelling the returned Future does not cancel `aw`
 * (asyncio's `shield`). If `aw` itself is cancelled, the returned Future is cancelled too.
 */
export function shield<T>(aw: Awaitable<T>): Future<T> {
  const inner = ensureFuture(aw);
  if (inner.done()) return inner;
  const loop = inner._loop;
  const outer = loop.createFuture<T>();
  const innerDone = (f: Future<T>): void => {
    if (outer.cancelled()) {
      if (!f.cancelled()) f.exception(); // mark retrieved
      return;
    }
    if (f.cancelled()) outer.cancel();
    else {
      const exc = f.exception();
      if (exc !== null) outer.setException(exc);
      else outer.setResult(f.result());
    }
  };
  const outerDone = (): void => {
    if (!inner.done()) inner.removeDoneCallback(innerDone);
  };
  inner.addDoneCallback(innerDone);
  outer.addDoneCallback(outerDone);
  return outer;
}

/** What `asCompleted()` returns: iterate it for awaitables of results, or async-iterate it for done Futures. */
export interface AsCompletedIterator<T> extends Iterable<Promise<T>>, AsyncIterable<Future<T>> {}

/**
 * Runs awaitables concurrently and gives them back as they complete (asyncio's `as_completed`, 3.13 form).
 *
 * `for (const next of asCompleted(aws)) await next` gives results in completion order; `for await (const fut of
 * asCompleted(aws))` gives the done Futures or Tasks themselves.
 *
 * @param options - `timeout`: seconds after which the remaining awaits throw `TimeoutError`.
 */
export function asCompleted<T>(
  aws: Iterable<Awaitable<T>>,
  options: { timeout?: number | null } = {},
): AsCompletedIterator<T> {
  const loop = runningOrCurrentLoop();
  const todo = new Set<Future<T>>();
  for (const aw of new Set(aws)) todo.add(ensureFuture(aw, loop));
  const total = todo.size;
  const doneQueue: ({ f: Future<T> } | null)[] = [];
  const waiters: ((f: { f: Future<T> } | null) => void)[] = [];
  let timer: { cancel(): void } | null = null;
  const push = (f: Future<T> | null): void => {
    const box = f === null ? null : { f };
    const w = waiters.shift();
    if (w !== undefined) w(box);
    else doneQueue.push(box);
  };
  const onCompletion = (f: Future<T>): void => {
    if (!todo.has(f)) return;
    todo.delete(f);
    push(f);
    if (todo.size === 0) timer?.cancel();
  };
  const onTimeout = (): void => {
    for (const f of todo) f.removeDoneCallback(onCompletion);
    const n = todo.size;
    todo.clear();
    for (let i = 0; i < n; i++) push(null);
  };
  for (const f of todo) f.addDoneCallback(onCompletion);
  if (todo.size > 0 && options.timeout !== undefined && options.timeout !== null) {
    timer = loop.callLater(options.timeout, onTimeout);
  }
  // Futures are thenables: box them so that promises do not adopt their outcome.
  const next = (): Promise<{ f: Future<T> }> => {
    const ready = doneQueue.shift();
    const got =
      ready !== undefined
        ? Promise.resolve(ready)
        : new Promise<{ f: Future<T> } | null>((resolve) => waiters.push(resolve));
    return got.then((box) => {
      if (box === null) throw new TimeoutError('');
      return box;
    });
  };
  return {
    *[Symbol.iterator](): Iterator<Promise<T>> {
      for (let i = 0; i < total; i++) yield next().then((box) => box.f.result());
    },
    // Not an async generator: `yield` in one awaits its operand, and a Future must be handed over as itself.
    [Symbol.asyncIterator](): AsyncIterator<Future<T>> {
      let i = 0;
      return {
        next: async (): Promise<IteratorResult<Future<T>>> => {
          if (i >= total) return { done: true, value: undefined };
          i++;
          return { done: false, value: (await next()).f };
        },
      };
    },
  };
}

/**
 * @internal Runs `work` in a Task of `loop` and returns a promise of its outcome, marked cancellable (see
 * `cancellablePromise`): `waitFor(loop.createConnection(…), 5)` then cancels the work at its current await, as
 * asyncio's `wait_for` cancels the coroutine, and a task awaiting the promise passes its cancellation on.
 */
export function runCancellable<T>(loop: BaseEventLoop, work: () => Promise<T>): Promise<T> {
  return cancellableWait(new Task(work, { loop }));
}
