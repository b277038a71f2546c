/**
 * The platform-independent event loop (asyncio's `base_events.py`): the ready queue, the timers, running and
 * stopping, futures and tasks, the exception handler and debug mode.
 *
 * What depends on the platform is left to a subclass through a few hooks (`_armIteration`, `_continueBatch`,
 * `_armTimer`, `_disarmTimer`, `_keepAlive`, `time`); `NodeEventLoop` fills them in on Node's own loop.
 *
 * An iteration is asyncio's `_run_once`: due timers join the ready queue, then exactly the handles ready at that
 * moment run, in order; handles scheduled meanwhile wait for the next iteration. After a handle that resumes a
 * coroutine (a task's first step, a waiter's wake-up, `sleep(0)`) the platform drains every microtask, so that
 * the coroutine runs to its next await before the next handle, as an asyncio task step does; plain callbacks
 * run back to back, and what they queue as microtasks runs before the next iteration. Between two iterations
 * the platform polls I/O. An idle loop arms nothing but its earliest timer.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import pino from 'pino';
import type { Logger } from 'pino';
import type { Context } from './context.js';
import { Context as ContextClass, captureContext, currentScopeTask, enterScope } from './context.js';
import { Deque } from './deque.js';
import {
  InvalidArgTypeError,
  LoopClosedError,
  LoopRunningError,
  LoopStoppedError,
  RuntimeError,
  ValueError,
} from './errors.js';
import { Future, isFuture, isThenable } from './futures.js';
import type { Callback, ExceptionContextInput } from './handles.js';
import { Handle, TimerHandle } from './handles.js';
import type { Runnable } from './handles.js';
import { isOptionsObject } from './options.js';
import { peekRunningLoop, setRunningLoop } from './running.js';
import type { Coroutine } from './tasks.js';
import { Task, ensureFuture, gather } from './tasks.js';
import { TimerHeap } from './timer-heap.js';
import { setAsyncgenFirstiter } from './asyncgens.js';

/** The context passed to an exception handler: asyncio's keys, camelCased, `message` always present. */
export type ExceptionContext = ExceptionContextInput;

/** A custom exception handler: `(loop, context) => void`. */
export type ExceptionHandler = (loop: BaseEventLoop, context: ExceptionContext) => void;

/** Options of `createTask()`. */
export interface CreateTaskOptions {
  /** The task's name. */
  name?: string | null;
  /** The context the task's coroutine runs in (by default a copy of the current one). */
  context?: Context | null;
}

/** A task factory: `(loop, coro, {name, context}) => Task`, installed with `setTaskFactory`. */
export type TaskFactory = <T>(loop: BaseEventLoop, coro: Coroutine<T>, options: CreateTaskOptions) => Task<T>;

/**
 * An executor: what `runInExecutor` submits work to (the analogue of `concurrent.futures.Executor`).
 */
export interface Executor {
  /** Runs `fn(...args)` somewhere else and resolves with its result. */
  submit<A extends unknown[], R>(fn: (...args: A) => R | PromiseLike<R>, ...args: A): PromiseLike<R>;
  /** Stops accepting work; with `wait`, resolves once the running work is finished. */
  shutdown(options?: { wait?: boolean; cancelFutures?: boolean }): PromiseLike<void>;
}

/** Options of a new event loop. */
export interface EventLoopOptions {
  /** Debug mode (by default from the `LOOPWORK_DEBUG` environment variable). */
  debug?: boolean;
  /** The pino logger the default exception handler and debug mode write to (by default JSON lines on stderr). */
  logger?: Logger;
}

const CONTEXT_OPTION = new Set(['context']);
/** Rebuild the timer heap when more than this many timers are in it and over half are cancelled. */
const MIN_SCHEDULED_TIMER_HANDLES = 100;
const MIN_CANCELLED_TIMER_HANDLES_FRACTION = 0.5;
/** The resolution of `time()` (seconds): a timer due within it is run. */
const CLOCK_RESOLUTION = 1e-6;

const slowCallbackChannel = channel('loopwork:loop:slow-callback');

let defaultLogger: Logger | null = null;

/** @internal The logger loops use when none is given: JSON lines on stderr, written synchronously. */
export function getDefaultLogger(): Logger {
  defaultLogger ??= pino({ name: 'loopwork' }, pino.destination({ fd: 2, sync: true }));
  return defaultLogger;
}

function debugFromEnv(): boolean {
  const v = process.env.LOOPWORK_DEBUG;
  return v !== undefined && v !== '' && v !== '0';
}

/**
 * Removes a trailing `{ context }` options object from `args` (in place) and returns the context a callback
 * scheduled with these arguments runs in: the given one, or a capture of the current one.
 */
function takeContextOption(args: unknown[]): Context | null {
  if (args.length === 0) return captureContext();
  const last = args[args.length - 1];
  if (typeof last === 'object' && isOptionsObject(last, CONTEXT_OPTION)) {
    args.pop();
    return (last as { context?: Context }).context ?? captureContext();
  }
  return captureContext();
}

/**
 * @internal Refuses what a loop method cannot schedule, with asyncio's messages: a non-callable, and a coroutine
 * (an async function, or an already started one: a promise).
 */
export function checkCallback(callback: unknown, method: string): void {
  if (typeof callback !== 'function') {
    // A started coroutine (a promise): asyncio's message for a coroutine object.
    if (isThenable(callback)) throw new InvalidArgTypeError(`coroutines cannot be used with ${method}()`);
    throw new InvalidArgTypeError(
      `a callable object was expected by ${method}(), got ${inspect(callback, { depth: 0 })}`,
    );
  }
  const ctor: unknown = callback.constructor;
  if (ctor === Function) return; // the common case, without reading `name`
  const name =
    ctor === AsyncFunction || ctor === AsyncGeneratorFunction
      ? 'async'
      : (ctor as { name?: unknown } | undefined)?.name;
  if (name === 'async' || name === 'AsyncFunction' || name === 'AsyncGeneratorFunction') {
    throw new InvalidArgTypeError(`coroutines cannot be used with ${method}()`);
  }
}

/**
 * While handles are ready at the end of an iteration, the next one starts at once, without a round trip through
 * the platform (which polls I/O, as asyncio's `select(0)` does between two iterations), at most this many times
 * in a row and for at most `POLL_INTERVAL` seconds: a chain of callbacks or of task switches costs a few
 * hundred nanoseconds per iteration instead of a whole turn of Node's loop, and I/O still waits at most that long.
 * What plain callbacks queued as microtasks still runs before the next iteration (see `_armDrainedIteration`).
 */
const ITERATIONS_PER_POLL = 16;
/** How long iterations may run back to back before I/O is polled again (see `ITERATIONS_PER_POLL`), seconds. */
const POLL_INTERVAL = 0.001;

const AsyncFunction: unknown = (async () => {}).constructor;
const AsyncGeneratorFunction: unknown = async function* () {}.constructor;

/**
 * The event loop's platform-independent part. Use `newEventLoop()` to get a loop.
 */
export abstract class BaseEventLoop {
  /** @internal */
  readonly _ready = new Deque<Runnable>();
  /** @internal */
  readonly _scheduled = new TimerHeap<TimerHandle>();
  /** @internal */
  _timerCancelledCount = 0;
  /** @internal */
  _timerSeq = 0;
  /** @internal an iteration is armed on the platform and has not started yet. */
  _iterationArmed = false;
  /** @internal handles of the current iteration still to run (0 between iterations). */
  _ntodo = 0;
  /** @internal true while an iteration runs its handles. */
  _inIteration = false;
  /** @internal iterations started back to back since the platform last polled I/O (see `_endIteration`). */
  _unpolled = 0;
  /** @internal `time()` when the platform last started an iteration, after polling I/O. */
  _polledAt = 0;
  /**
   * @internal a plain callback ran since the microtask queue was last drained: what it queued as microtasks (a
   * coroutine awaiting a promise it resolved) has not run yet.
   */
  _undrained = false;
  /** @internal the deadline the platform timer is armed for, or Infinity. */
  _timerArmedFor = Infinity;
  /** @internal */
  _closed = false;
  /** @internal */
  _stopping = false;
  /** @internal */
  _running = false;
  /** @internal */
  _debug: boolean;
  /** @internal */
  _exceptionHandler: ExceptionHandler | null = null;
  /** @internal */
  _taskFactory: TaskFactory | null = null;
  /** @internal */
  _defaultExecutor: Executor | null = null;
  /** @internal */
  _executorShutdownCalled = false;
  /** @internal async generators first iterated while this loop ran (for `shutdownAsyncgens`). */
  readonly _asyncgens = new Set<AsyncGenerator<unknown, unknown, unknown>>();
  /** @internal */
  _asyncgensShutdownCalled = false;
  /** @internal tasks not done yet (kept strongly: a pending task is never garbage-collected). */
  readonly _tasks = new Set<Task<unknown>>();
  /** @internal exceptions set on futures and not retrieved yet. */
  readonly _unretrieved = new Set<{ report(): void }>();
  /** @internal */
  _logger: Logger | null;
  /** @internal resolves the promise of the current `runForever()`. */
  _runResolve: (() => void) | null = null;
  /** @internal */
  _previousFirstiter: ((agen: AsyncGenerator<unknown, unknown, unknown>) => void) | null = null;

  /**
   * A callback that runs longer than this many seconds is logged in debug mode (0.1 s by default).
   */
  slowCallbackDuration = 0.1;
  /** @internal In debug mode, the handle that resumed a coroutine whose step runs now, and when it started. */
  _debugStep: { handle: Runnable; start: number } | null = null;
  /** @internal In debug mode, the handle running now (asyncio's `_current_handle`), or the one whose step runs. */
  _currentHandle: Runnable | null = null;

  constructor(options: EventLoopOptions = {}) {
    this._debug = options.debug ?? debugFromEnv();
    this._logger = options.logger ?? null;
  }

  // ---- platform hooks -------------------------------------------------------------------------------------

  /** The loop's clock: monotonic seconds (a float), the time base of `callAt` and `TimerHandle.when()`. */
  abstract time(): number;
  /** @internal Arms an iteration: a platform callback that calls `_runOnce()` after polling I/O. */
  protected abstract _armIteration(): void;
  /**
   * @internal Calls `_runNextHandle()` once every microtask queued so far, and those they queue, has run,
   * without polling I/O in between.
   */
  protected abstract _continueBatch(): void;
  /**
   * @internal Calls `_runDrained()` once every microtask queued so far, and those they queue, has run, without
   * polling I/O in between.
   */
  protected abstract _armDrainedIteration(): void;
  /** @internal Arms the platform timer to call `_runTimer()` in `delay` seconds, replacing any armed one. */
  protected abstract _armTimer(delay: number): void;
  /** @internal Disarms the platform timer. */
  protected abstract _disarmTimer(): void;
  /** @internal Keeps the process alive while the loop runs (`true`), or lets it go (`false`). */
  protected abstract _keepAlive(on: boolean): void;
  /** @internal Releases platform resources at `close()` (signal handlers, watchers). */
  protected _closePlatform(): void {}

  // ---- the logger -----------------------------------------------------------------------------------------

  /** The pino logger of this loop (the default exception handler and debug mode write to it). */
  get logger(): Logger {
    return this._logger ?? getDefaultLogger();
  }

  set logger(value: Logger) {
    this._logger = value;
  }

  // ---- running and stopping -------------------------------------------------------------------------------

  /**
   * Runs the loop until `stop()` is called (asyncio's `run_forever`). The promise resolves when the loop stops.
   *
   * If `stop()` was called before, the loop runs one iteration (the callbacks ready now) and stops.
   *
   * @throws RuntimeError (rejects) when the loop is closed, already running, or another loop is running.
   */
  async runForever(): Promise<void> {
    this._checkClosed();
    this._checkRunning();
    const done = new Promise<void>((resolve) => {
      this._runResolve = resolve;
    });
    this._running = true;
    setRunningLoop(this);
    this._previousFirstiter = setAsyncgenFirstiter((agen) => this._asyncgenFirstiter(agen));
    this._keepAlive(true);
    this._wake();
    await done;
  }

  /**
   * Runs the loop until `future` is done and returns its result (asyncio's `run_until_complete`).
   *
   * @param future - a Future or Task, a promise, or a coroutine function (wrapped in a Task).
   * @returns the future's result.
   * @throws the future's exception; `RuntimeError` ("Event loop stopped before Future completed.") when
   * `stop()` ended the loop first; `ValueError` for a Future of another loop.
   */
  async runUntilComplete<T>(future: Future<T> | PromiseLike<T> | (() => PromiseLike<T>)): Promise<T> {
    this._checkClosed();
    this._checkRunning();
    const newTask = !isFuture(future);
    const fut = ensureFuture(future, this);
    // A task made here and left pending by stop() is not reported when the loop closes, as asyncio's.
    if (newTask && fut instanceof Task) fut._logDestroyPending = false;
    const onDone = (): void => {
      fut._loop.stop();
    };
    fut.addDoneCallback(onDone);
    try {
      await this.runForever();
    } catch (error) {
      if (newTask && fut.done() && !fut.cancelled()) fut.exception();
      throw error;
    } finally {
      fut.removeDoneCallback(onDone);
    }
    if (!fut.done()) throw new LoopStoppedError();
    return fut.result();
  }

  /**
   * Stops the loop: the current iteration finishes (every callback ready when it began runs), then
   * `runForever()` resolves. Callbacks scheduled meanwhile wait for the next run. Called from outside the loop's
   * callbacks (JavaScript code beside a running loop) while the loop is idle, it wakes the loop, which runs one
   * iteration and stops: asyncio can only be stopped from another thread with `call_soon_threadsafe(loop.stop)`,
   * which does the same.
   */
  stop(): void {
    this._stopping = true;
    this._wake();
  }

  /** True while the loop runs. */
  isRunning(): boolean {
    return this._running;
  }

  /** True once the loop was closed. */
  isClosed(): boolean {
    return this._closed;
  }

  /**
   * Closes the loop: pending callbacks and timers are dropped, the default executor is shut down without
   * waiting. Idempotent; irreversible. Exceptions set on futures and never retrieved are reported now.
   *
   * @throws RuntimeError when the loop is running.
   */
  close(): void {
    if (this._running) throw new RuntimeError('Cannot close a running event loop');
    if (this._closed) return;
    if (this._debug) this.logger.debug({ loop: this._describe() }, 'Close event loop');
    this._closed = true;
    this._ready.clear();
    for (const t of this._scheduled.drain()) t._scheduled = false;
    this._timerCancelledCount = 0;
    this._disarmTimer();
    this._closePlatform();
    this._executorShutdownCalled = true;
    const executor = this._defaultExecutor;
    this._defaultExecutor = null;
    if (executor !== null) void Promise.resolve(executor.shutdown({ wait: false })).catch(() => undefined);
    for (const u of [...this._unretrieved]) u.report();
    for (const t of this._tasks) {
      if (t.done() || !t._logDestroyPending) continue;
      this.callExceptionHandler({ message: 'Task was destroyed but it is pending!', task: t });
    }
    this._tasks.clear();
  }

  /**
   * Closes every async generator that one of this loop's tasks first iterated and that is not finished (asyncio's
   * `shutdown_asyncgens`): each one's `finally` blocks run. Errors go to the exception handler.
   */
  async shutdownAsyncgens(): Promise<void> {
    this._asyncgensShutdownCalled = true;
    if (this._asyncgens.size === 0) return;
    const closing = [...this._asyncgens];
    this._asyncgens.clear();
    // Tasks of this loop explicitly: this method may be called (and so start) before the loop runs.
    const closers = closing.map((agen) => this.createTask(() => agen.return(undefined)));
    const results = await gather(...closers, { returnExceptions: true });
    results.forEach((result, i) => {
      if (result instanceof Error) {
        this.callExceptionHandler({
          message: `an error occurred during closing of asynchronous generator ${inspect(closing[i])}`,
          exception: result,
          asyncgen: closing[i],
        });
      }
    });
  }

  /**
   * Shuts down the default executor and waits for its running work (asyncio's `shutdown_default_executor`).
   *
   * @param timeout - seconds to wait at most (`null`: no limit); past it, a `RuntimeWarning` is emitted and the
   * promise resolves.
   * @throws RuntimeError when the loop is closed.
   */
  async shutdownDefaultExecutor(timeout: number | null = null): Promise<void> {
    this._executorShutdownCalled = true;
    const executor = this._defaultExecutor;
    if (executor === null) return;
    this._defaultExecutor = null;
    const joined = Promise.resolve(executor.shutdown({ wait: true })).then(() => true);
    if (timeout === null) {
      await joined;
      return;
    }
    let timer: Handle | null = null;
    const expired = new Promise<boolean>((resolve) => {
      timer = this.callLater(timeout, resolve, false);
    });
    const ok = await Promise.race([joined, expired]);
    (timer as Handle | null)?.cancel();
    if (!ok) {
      process.emitWarning(
        `The executor did not finishing joining its threads within ${timeout} seconds.`,
        'RuntimeWarning',
      );
    }
  }

  // ---- scheduling callbacks -------------------------------------------------------------------------------

  /**
   * Schedules `callback(...args)` to run on the next iteration of the loop.
   *
   * Callbacks run in the order they were scheduled, each exactly once. Options go in a trailing plain object:
   * `{ context }` runs the callback in that `Context` (by default a copy of the current one). For keyword
   * arguments, as asyncio does with `functools.partial`, pass a closure: `loop.callSoon(() => f(x, { y }))`.
   *
   * @returns a `Handle` that can cancel the callback.
   * @throws RuntimeError when the loop is closed; TypeError when `callback` is not a function or is an async
   * function.
   */
  callSoon<A extends unknown[]>(callback: Callback<A>, ...args: [...A] | [...A, { context?: Context }]): Handle {
    this._checkClosed();
    checkCallback(callback, 'callSoon');
    const context = takeContextOption(args);
    const handle = new Handle(callback as Callback, args, this, context);
    this._ready.push(handle);
    if (this._running && !this._iterationArmed && !this._inIteration) this._wake();
    return handle;
  }

  /**
   * `callSoon` for callers outside the loop's thread. JavaScript objects cannot be shared between threads, so a
   * loop can only be reached from its own thread: this is `callSoon`, kept for asyncio's API.
   */
  callSoonThreadsafe<A extends unknown[]>(
    callback: Callback<A>,
    ...args: [...A] | [...A, { context?: Context }]
  ): Handle {
    return this.callSoon(callback, ...args);
  }

  /**
   * Schedules `callback(...args)` to run after `delay` seconds.
   *
   * Callbacks scheduled for the same time run in the order they were scheduled. Options as in `callSoon`.
   *
   * @param delay - seconds (a float); zero or negative means as soon as possible, in deadline order.
   * @returns a `TimerHandle` that can cancel the callback.
   * @throws TypeError when `delay` is null or not a number.
   */
  callLater<A extends unknown[]>(
    delay: number,
    callback: Callback<A>,
    ...args: [...A] | [...A, { context?: Context }]
  ): TimerHandle {
    if (delay === null || delay === undefined) throw new InvalidArgTypeError('delay must not be None');
    if (typeof delay !== 'number') throw new InvalidArgTypeError(`delay must be a number, got ${inspect(delay)}`);
    if (Number.isNaN(delay)) throw new ValueError('delay must not be NaN');
    return this._callAt(this.time() + delay, callback as Callback, args, 'callLater');
  }

  /**
   * Schedules `callback(...args)` to run at the loop time `when` (seconds, as `loop.time()`).
   *
   * @throws TypeError when `when` is null or not a number.
   */
  callAt<A extends unknown[]>(
    when: number,
    callback: Callback<A>,
    ...args: [...A] | [...A, { context?: Context }]
  ): TimerHandle {
    if (when === null || when === undefined) throw new InvalidArgTypeError('when cannot be None');
    if (typeof when !== 'number') throw new InvalidArgTypeError(`when must be a number, got ${inspect(when)}`);
    if (Number.isNaN(when)) throw new ValueError('when must not be NaN');
    return this._callAt(when, callback as Callback, args, 'callAt');
  }

  /** @internal */
  _callAt(when: number, callback: Callback, args: unknown[], method: string): TimerHandle {
    this._checkClosed();
    checkCallback(callback, method);
    const context = takeContextOption(args);
    const timer = new TimerHandle(when, this._timerSeq++, callback, args, this, context);
    timer._scheduled = true;
    this._scheduled.push(timer);
    if (this._running && !this._iterationArmed && !this._inIteration && when < this._timerArmedFor) {
      this._armTimerFor(when);
    }
    return timer;
  }

  /** @internal `callSoon` for the loop's own machinery: no checks, arguments as an array. */
  _callSoonInternal(callback: (...args: never[]) => unknown, args: unknown[], context: Context | null): Handle {
    this._checkClosed();
    const handle = new Handle(callback as Callback, args, this, context);
    this._ready.push(handle);
    if (this._running && !this._iterationArmed && !this._inIteration) this._wake();
    return handle;
  }

  /** @internal A timer was cancelled: count it, so the heap is swept when most of it is cancelled. */
  _timerHandleCancelled(timer: TimerHandle): void {
    if (timer._scheduled) this._timerCancelledCount++;
  }

  // ---- the iteration machinery (the only place where callbacks are actually called) -------------------------

  /** @internal A handle was queued: make sure an iteration will run it (when the loop runs). */
  _wake(): void {
    if (this._running && !this._iterationArmed && !this._inIteration) {
      this._iterationArmed = true;
      this._armIteration();
    }
  }

  /** @internal One iteration (asyncio's `_run_once`). Called by the platform after it polled I/O. */
  _runOnce(): void {
    this._iterationArmed = false;
    this._undrained = false;
    this._unpolled = 0;
    this._polledAt = this.time();
    this._iterate();
  }

  /** @internal The next iteration, started back to back once the microtasks were drained (see `_endIteration`). */
  _runDrained(): void {
    this._iterationArmed = false;
    this._undrained = false;
    this._iterate();
  }

  /** @internal Starts an iteration: due timers join the ready queue, then the handles ready now run. */
  _iterate(): void {
    if (!this._running || this._inIteration) return;
    // Whatever async context armed this iteration, its callbacks start from the root one.
    enterScope(null);
    this._processTimers();
    this._ntodo = this._ready.length;
    this._inIteration = true;
    this._runNextHandle();
  }

  /**
   * @internal Runs the next handle of the current iteration, or ends the iteration. This is the only place where
   * callbacks are actually called.
   */
  _runNextHandle(): void {
    const ready = this._ready;
    const step = this._debugStep;
    if (step !== null) {
      // The coroutine step a handle resumed has run to its next await: time it with its handle, as asyncio times
      // a task's __step.
      this._debugStep = null;
      this._currentHandle = null;
      const dt = this.time() - step.start;
      if (dt >= this.slowCallbackDuration) this._reportSlowCallback(step.handle, dt);
    }
    while (this._ntodo > 0) {
      this._ntodo--;
      const handle = ready.shift() as Runnable;
      if (handle._cancelled) continue;
      if (this._debug) {
        const t0 = this.time();
        this._currentHandle = handle;
        handle._run();
        if (handle._resumes) {
          this._debugStep = { handle, start: t0 };
        } else {
          this._currentHandle = null;
          const dt = this.time() - t0;
          if (dt >= this.slowCallbackDuration) this._reportSlowCallback(handle, dt);
        }
      } else {
        handle._run();
      }
      // A coroutine it resumed runs to its next await before the next handle (asyncio's task step).
      if (handle._resumes) {
        this._undrained = false;
        this._continueBatch();
        return;
      }
      this._undrained = true;
    }
    this._endIteration();
  }

  /** @internal */
  _endIteration(): void {
    this._inIteration = false;
    if (this._stopping) {
      this._finishRun();
      return;
    }
    if (this._ready.length > 0) {
      if (this._unpolled < ITERATIONS_PER_POLL && this.time() - this._polledAt < POLL_INTERVAL) {
        this._unpolled++;
        if (this._undrained) {
          // What plain callbacks queued as microtasks runs before the next iteration, as when I/O is polled in
          // between: a coroutine awaiting a promise one of them resolved goes on now, not 16 iterations later.
          this._iterationArmed = true;
          this._armDrainedIteration();
        } else {
          this._iterate();
        }
        return;
      }
      this._iterationArmed = true;
      this._armIteration();
    } else {
      this._armNextTimer();
    }
  }

  /** @internal The platform timer fired. */
  _runTimer(): void {
    this._timerArmedFor = Infinity;
    if (!this._running || this._iterationArmed || this._inIteration) return;
    this._iterationArmed = true;
    this._armIteration();
  }

  /** @internal Moves every due timer to the ready queue, dropping cancelled ones. */
  _processTimers(): void {
    const heap = this._scheduled;
    if (heap.length === 0) return;
    if (
      heap.length > MIN_SCHEDULED_TIMER_HANDLES &&
      this._timerCancelledCount / heap.length > MIN_CANCELLED_TIMER_HANDLES_FRACTION
    ) {
      heap.filter((t) => {
        if (t._cancelled) t._scheduled = false;
        return !t._cancelled;
      });
      this._timerCancelledCount = 0;
    }
    const end = this.time() + CLOCK_RESOLUTION;
    for (let t = heap.peek(); t !== undefined; t = heap.peek()) {
      if (t._cancelled) {
        heap.pop();
        t._scheduled = false;
        this._timerCancelledCount--;
        continue;
      }
      if (t._when > end) break;
      heap.pop();
      t._scheduled = false;
      this._ready.push(t);
    }
  }

  /** @internal */
  _armNextTimer(): void {
    const heap = this._scheduled;
    let next = heap.peek();
    while (next !== undefined && next._cancelled) {
      heap.pop();
      next._scheduled = false;
      this._timerCancelledCount--;
      next = heap.peek();
    }
    // A platform timer armed for a timer that was cancelled since is left to fire: the iteration it wakes finds
    // nothing due and arms for the next one. Re-arming on every cancelled head (a handshake or read timeout,
    // cancelled on success) would cost a clearTimeout/setTimeout pair per connection.
    if (next !== undefined && next._when < this._timerArmedFor) this._armTimerFor(next._when);
  }

  /** @internal */
  _armTimerFor(when: number): void {
    const delay = when - this.time();
    if (delay <= 0) {
      // Already due: the next iteration takes it, with no platform timer in between.
      this._wake();
      return;
    }
    this._timerArmedFor = when;
    this._armTimer(delay);
  }

  /** @internal */
  _finishRun(): void {
    this._stopping = false;
    this._running = false;
    if (peekRunningLoop() === this) setRunningLoop(null);
    setAsyncgenFirstiter(this._previousFirstiter);
    this._previousFirstiter = null;
    this._disarmTimer();
    this._timerArmedFor = Infinity;
    this._keepAlive(false);
    const resolve = this._runResolve;
    this._runResolve = null;
    resolve?.();
  }

  /** @internal Queues one of the loop's own runnables (lighter than a Handle) for the next iteration. */
  _pushRunnable(r: Runnable): void {
    this._checkClosed();
    this._ready.push(r);
    if (this._running && !this._iterationArmed && !this._inIteration) this._wake();
  }

  /** @internal */
  _reportSlowCallback(handle: Runnable, seconds: number): void {
    // A task's wake-up is named by its task, as asyncio names a step by its Task.
    const task = (handle as { task?: unknown }).task;
    const message = `Executing ${inspect(task ?? handle)} took ${seconds.toFixed(3)} seconds`;
    const h = handle as Partial<Handle>;
    this.logger.warn({ handle: h._describe?.() ?? inspect(handle), seconds, createdAt: h._sourceTraceback }, message);
    if (slowCallbackChannel.hasSubscribers) slowCallbackChannel.publish({ loop: this, handle, seconds });
  }

  /** @internal */
  _asyncgenFirstiter(agen: AsyncGenerator<unknown, unknown, unknown>): void {
    // Unlike a Python thread, a Node process runs code that is not the loop's (Node's own streams, a test
    // runner): only generators first iterated by one of this loop's tasks are the loop's to close.
    const task = currentScopeTask() as { _loop?: unknown } | null;
    if (task === null || task._loop !== this) return;
    if (this._asyncgensShutdownCalled) {
      process.emitWarning(
        `asynchronous generator ${inspect(agen)} was scheduled after loop.shutdownAsyncgens() call`,
        'ResourceWarning',
      );
    }
    this._asyncgens.add(agen);
  }

  // ---- futures and tasks ----------------------------------------------------------------------------------

  /** Creates a Future attached to this loop. */
  createFuture<T = unknown>(): Future<T> {
    return new Future<T>({ loop: this });
  }

  /**
   * Schedules a coroutine as a Task on this loop (through the task factory, if one is set).
   *
   * @param coro - a coroutine function (started on the next iteration) or a started promise.
   * @param options - `name` of the task; `context` it runs in (by default a copy of the current one).
   * @throws RuntimeError when the loop is closed.
   */
  createTask<T>(coro: Coroutine<T>, options: CreateTaskOptions = {}): Task<T> {
    this._checkClosed();
    if (this._taskFactory === null) {
      return new Task(coro, { loop: this, name: options.name ?? null, context: options.context ?? null });
    }
    const task = this._taskFactory(this, coro, options);
    if (options.name !== undefined && options.name !== null) task.setName(options.name);
    return task;
  }

  /**
   * Sets the factory `createTask` uses, or `null` for the default `Task`.
   *
   * @throws TypeError when `factory` is neither a function nor null.
   */
  setTaskFactory(factory: TaskFactory | null): void {
    if (factory !== null && typeof factory !== 'function') {
      throw new InvalidArgTypeError('task factory must be a callable or None');
    }
    this._taskFactory = factory;
  }

  /** The task factory, or `null` when the default one is used. */
  getTaskFactory(): TaskFactory | null {
    return this._taskFactory;
  }

  // ---- error handling -------------------------------------------------------------------------------------

  /**
   * Sets the loop's exception handler: `handler(loop, context)`, or `null` for the default one.
   *
   * @throws TypeError when `handler` is neither a function nor null.
   */
  setExceptionHandler(handler: ExceptionHandler | null): void {
    if (handler !== null && typeof handler !== 'function') {
      throw new InvalidArgTypeError(`A callable object or None is expected, got ${inspect(handler, { depth: 0 })}`);
    }
    this._exceptionHandler = handler;
  }

  /** The current exception handler, or `null` when the default one is used. */
  getExceptionHandler(): ExceptionHandler | null {
    return this._exceptionHandler;
  }

  /**
   * The default exception handler: logs the context through the loop's pino logger, one structured line with
   * `message`, the exception as `err`, and the other keys. In debug mode, called while a callback runs, it adds
   * `handleTraceback`: where that callback's handle was made (unless the context has a `sourceTraceback`).
   */
  defaultExceptionHandler(context: ExceptionContext): void {
    const message = context.message || 'Unhandled exception in event loop';
    // Called while a handle runs (debug mode): where that handle was made, unless the context says where its
    // object was (asyncio adds `handle_traceback` the same way, to the context itself).
    const current = this._currentHandle as { _sourceTraceback?: unknown } | null;
    if (context.sourceTraceback === undefined && typeof current?._sourceTraceback === 'string') {
      context.handleTraceback = current._sourceTraceback;
    }
    const fields: Record<string, unknown> = {};
    for (const key of Object.keys(context).sort()) {
      if (key === 'message' || key === 'exception') continue;
      const value = context[key];
      fields[key] = typeof value === 'string' ? value : inspect(value, { depth: 1, breakLength: Infinity });
    }
    if (context.exception !== undefined) fields.err = context.exception;
    this.logger.error(fields, message);
  }

  /**
   * Calls the loop's exception handler with `context` (asyncio's `call_exception_handler`).
   *
   * A custom handler called on behalf of a Task or a Handle (the context's `task`, else `future`, else `handle`)
   * runs in that object's `Context`. An exception thrown by a custom handler is itself logged by the default
   * handler ("Unhandled error in exception handler"); nothing thrown here ever reaches the caller.
   *
   * @param context - `message` and any of `exception`, `future`, `task`, `handle`, `protocol`, `transport`,
   * `socket`, `asyncgen`.
   */
  callExceptionHandler(context: ExceptionContext): void {
    if (this._exceptionHandler === null) {
      try {
        this.defaultExceptionHandler(context);
      } catch (error) {
        fallbackLog('Exception in default exception handler', error);
      }
      return;
    }
    try {
      // On behalf of a Task or a Handle, the handler runs in its context (asyncio 3.12).
      const ctx = contextOf(context.task ?? context.future ?? context.handle);
      if (ctx !== null) ctx.run(this._exceptionHandler, this, context);
      else this._exceptionHandler(this, context);
    } catch (exception) {
      try {
        this.defaultExceptionHandler({ message: 'Unhandled error in exception handler', exception, context });
      } catch (error) {
        fallbackLog(
          'Exception in default exception handler while handling an unexpected error in custom exception handler',
          error,
        );
      }
    }
  }

  // ---- debug mode -----------------------------------------------------------------------------------------

  /** True when debug mode is on. */
  getDebug(): boolean {
    return this._debug;
  }

  /** Turns debug mode on or off: slow callbacks are logged, handles and futures remember where they were made. */
  setDebug(enabled: boolean): void {
    this._debug = Boolean(enabled);
  }

  // ---- checks ---------------------------------------------------------------------------------------------

  /** @internal @throws RuntimeError "Event loop is closed". */
  _checkClosed(): void {
    if (this._closed) throw new LoopClosedError();
  }

  /** @internal */
  _checkRunning(): void {
    if (this._running) throw new LoopRunningError('This event loop is already running');
    if (peekRunningLoop() !== null) {
      throw new LoopRunningError('Cannot run the event loop while another loop is running');
    }
  }

  /** @internal */
  _describe(): string {
    return `<${this.constructor.name} running=${this._running} closed=${this._closed} debug=${this._debug}>`;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._describe();
  }
}

/** The `Context` of a Task or Handle (what has `getContext()`), or null. */
function contextOf(thing: unknown): Context | null {
  if (typeof thing !== 'object' || thing === null) return null;
  const getContext = (thing as { getContext?: unknown }).getContext;
  if (typeof getContext !== 'function') return null;
  const ctx: unknown = getContext.call(thing);
  return ctx instanceof ContextClass ? ctx : null;
}

function fallbackLog(message: string, error: unknown): void {
  try {
    getDefaultLogger().error({ err: error }, message);
  } catch {
    process.stderr.write(`${message}: ${inspect(error)}\n`);
  }
}

/**
 * Adds methods to every event loop. The packages above core (`@loopwork/server`, `@loopwork/tls`) and core's own
 * system modules add asyncio's other loop methods this way (each module also declares them on `BaseEventLoop`
 * by TypeScript module augmentation), so that one loop object carries the whole surface, as in asyncio.
 *
 * @param methods - method name to implementation (`this` is the loop).
 * @throws TypeError when a method of that name already exists and is not an extension.
 */
export function extendEventLoop(methods: Record<string, (this: BaseEventLoop, ...args: never[]) => unknown>): void {
  const proto = BaseEventLoop.prototype as unknown as Record<string, unknown>;
  for (const [name, fn] of Object.entries(methods)) {
    const existing = proto[name] as { [EXTENSION]?: true } | undefined;
    if (existing !== undefined && existing[EXTENSION] !== true) {
      throw new InvalidArgTypeError(`event loop method ${name}() already exists`);
    }
    Object.defineProperty(fn, EXTENSION, { value: true });
    Object.defineProperty(proto, name, { value: fn, writable: true, configurable: true, enumerable: false });
  }
}

const EXTENSION = Symbol('loopwork.loop-extension');
