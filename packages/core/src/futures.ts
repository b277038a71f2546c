/**
 * `Future`: asyncio's low-level awaitable, bound to a loop (asyncio's `futures.py`).
 *
 * A Future is a thenable: `await fut` works in any async function. Done callbacks are never called directly: they
 * are scheduled with `loop.callSoon` when the future completes, in the order they were added. When a Task awaits
 * a Future, the Task records it, so that `task.cancel()` cancels exactly the Future the task is suspended on.
 *
 * @module
 */
import { inspect } from 'node:util';
import type { Context } from './context.js';
import { captureContext, currentScopeTask } from './context.js';
import { CancelledError, InvalidArgTypeError, InvalidStateError, RuntimeError } from './errors.js';
import type { BaseEventLoop } from './base-event-loop.js';
import { captureStack } from './handles.js';
import { getEventLoopForFuture } from './loop-access.js';

/** @internal Future states, as asyncio's strings. */
export const enum FutureState {
  PENDING = 0,
  CANCELLED = 1,
  FINISHED = 2,
}

const STATE_NAMES = ['PENDING', 'CANCELLED', 'FINISHED'] as const;
const NO_EXCEPTION: unique symbol = Symbol('no exception');
const BRAND = Symbol.for('loopwork.future');

/** A done callback: called with the future once it is done. */
export type DoneCallback<F> = (future: F) => unknown;

interface CallbackEntry {
  /** `null` for a `then()` waiter, which is queued itself (`arg`). */
  fn: ((arg: never) => unknown) | null;
  arg: unknown;
  context: Context | null;
  /** The user's callback, for `removeDoneCallback` (the entry's fn may be a wrapper). */
  key: unknown;
}

/** The part of a Task a Future needs to know about when the task awaits it. */
export interface AwaitingTask {
  _loop: BaseEventLoop;
  _futWaiter: Future<unknown> | null;
  _mustCancel: boolean;
  _makeCancelledError(): Error;
}

/** An exception set on a future that nobody has looked at yet; reported when the future is collected. */
class Unretrieved {
  reported = false;
  constructor(
    readonly loop: BaseEventLoop,
    readonly exception: unknown,
    /** What names the future without inspecting its exception (that is only done if it is reported). */
    readonly label: string,
    readonly kind: 'Future' | 'Task',
    readonly sourceTraceback: string | undefined,
  ) {}

  report(): void {
    if (this.reported) return;
    this.reported = true;
    this.loop._unretrieved.delete(this);
    const context: Record<string, unknown> & { message: string } = {
      message: `${this.kind} exception was never retrieved`,
      exception: this.exception,
      // asyncio's key for a Task too. The future is gone (this runs once it is collected): its description.
      future: `<${this.label} finished exception=${inspect(this.exception, { depth: 0 }).split('\n')[0]}>`,
    };
    if (this.sourceTraceback !== undefined) context.sourceTraceback = this.sourceTraceback;
    this.loop.callExceptionHandler(context);
  }
}

const unretrievedRegistry = new FinalizationRegistry<Unretrieved>((u) => u.report());

/** Options of `new Future()`. */
export interface FutureOptions {
  /** The loop the future belongs to; by default the current event loop (`getEventLoop()`). */
  loop?: BaseEventLoop;
}

/**
 * An object that will hold a result or an exception later (asyncio's `Future`).
 *
 * Not thread-safe. `result()` and `exception()` throw `InvalidStateError` until the future is done; done callbacks
 * run through `loop.callSoon`; `await fut` gives the result or throws the exception (or a `CancelledError`).
 *
 * @typeParam T - the type of the result.
 */
export class Future<T = unknown> implements PromiseLike<T> {
  /** @internal */
  _state: FutureState = FutureState.PENDING;
  /** @internal */
  _result: T | undefined = undefined;
  /** @internal */
  _exception: unknown = NO_EXCEPTION;
  /** @internal */
  _loop: BaseEventLoop;
  /** @internal */
  _callbacks: CallbackEntry[] = [];
  /** @internal */
  _cancelMessage: string | undefined = undefined;
  /** @internal */
  _unretrieved: Unretrieved | null = null;
  /** @internal */
  _sourceTraceback: string | undefined;

  /**
   * Makes a pending future. Prefer `loop.createFuture()`, which lets a loop provide its own implementation.
   */
  constructor(options: FutureOptions = {}) {
    this._loop = options.loop ?? getEventLoopForFuture();
    this._sourceTraceback = this._loop._debug ? captureStack() : undefined;
  }

  /**
   * Cancels the future and schedules its callbacks.
   *
   * @param msg - the message of the `CancelledError` that awaiting code will see.
   * @returns `false` when the future is already done or cancelled, else `true`.
   */
  cancel(msg?: string): boolean {
    this._markRetrieved();
    if (this._state !== FutureState.PENDING) return false;
    this._state = FutureState.CANCELLED;
    this._cancelMessage = msg;
    this._scheduleCallbacks();
    return true;
  }

  /** True when the future was cancelled. */
  cancelled(): boolean {
    return this._state === FutureState.CANCELLED;
  }

  /** True when the future is done: it has a result or an exception, or was cancelled. */
  done(): boolean {
    return this._state !== FutureState.PENDING;
  }

  /**
   * The result of the future.
   *
   * @throws `CancelledError` when it was cancelled; `InvalidStateError` ("Result is not ready.") when it is not
   * done; the future's exception when it has one.
   */
  result(): T {
    if (this._state === FutureState.CANCELLED) throw this._makeCancelledError();
    if (this._state !== FutureState.FINISHED) throw new InvalidStateError('Result is not ready.');
    this._markRetrieved();
    if (this._exception !== NO_EXCEPTION) throw this._exception;
    return this._result as T;
  }

  /**
   * The exception set on the future, or `null` when it finished with a result.
   *
   * @throws `CancelledError` when it was cancelled; `InvalidStateError` ("Exception is not set.") when it is not
   * done.
   */
  exception(): unknown {
    if (this._state === FutureState.CANCELLED) throw this._makeCancelledError();
    if (this._state !== FutureState.FINISHED) throw new InvalidStateError('Exception is not set.');
    this._markRetrieved();
    return this._exception === NO_EXCEPTION ? null : this._exception;
  }

  /**
   * Adds a callback to run when the future is done; if it is already done, the callback is scheduled now.
   *
   * Callbacks are called in the order in which they are registered, each exactly once, through `loop.callSoon`.
   *
   * @param fn - called with the future.
   * @param options - `context`: the `Context` to run `fn` in (by default a copy of the current one).
   */
  addDoneCallback(fn: DoneCallback<this>, options: { context?: Context } = {}): void {
    if (typeof fn !== 'function') {
      throw new InvalidArgTypeError(`a callable object was expected by addDoneCallback(), got ${inspect(fn)}`);
    }
    const context = options.context ?? captureContext();
    if (this._state !== FutureState.PENDING) {
      this._loop._callSoonInternal(fn as (arg: unknown) => unknown, [this], context);
    } else {
      this._callbacks.push({ fn: fn as (arg: never) => unknown, arg: this, context, key: fn });
    }
  }

  /**
   * Removes every registration of `fn` from the callbacks.
   *
   * @returns how many callbacks were removed.
   */
  removeDoneCallback(fn: DoneCallback<this>): number {
    const before = this._callbacks.length;
    this._callbacks = this._callbacks.filter((e) => e.key !== fn);
    return before - this._callbacks.length;
  }

  /**
   * Marks the future done with `result` and schedules its callbacks.
   *
   * @throws `InvalidStateError` when the future is already done.
   */
  setResult(result: T): void {
    if (this._state !== FutureState.PENDING) {
      throw new InvalidStateError(`${STATE_NAMES[this._state]}: ${this._describe()}`);
    }
    this._result = result;
    this._state = FutureState.FINISHED;
    this._scheduleCallbacks();
  }

  /**
   * Marks the future done with an exception and schedules its callbacks.
   *
   * An exception that nobody retrieves (through `result()`, `exception()` or `await`) is reported to the loop's
   * exception handler ("Future exception was never retrieved") when the future is garbage-collected or the loop
   * is closed.
   *
   * @param exception - the error; an error class is instantiated without arguments, as asyncio does.
   * @throws `InvalidStateError` when the future is already done.
   */
  setException(exception: unknown): void {
    if (this._state !== FutureState.PENDING) {
      throw new InvalidStateError(`${STATE_NAMES[this._state]}: ${this._describe()}`);
    }
    if (typeof exception === 'function') exception = new (exception as new () => unknown)();
    this._exception = exception;
    this._state = FutureState.FINISHED;
    this._scheduleCallbacks();
    // V8 keeps an error's stack frames, with their receivers (this future, its task), until `stack` is read:
    // read it now, or the error that the registry holds would keep the future alive, never to be reported.
    if (exception instanceof Error) void exception.stack;
    const u = new Unretrieved(this._loop, exception, this._label(), this._kind(), this._sourceTraceback);
    this._unretrieved = u;
    this._loop._unretrieved.add(u);
    unretrievedRegistry.register(this, u, u);
  }

  /** The loop the future is bound to. */
  getLoop(): BaseEventLoop {
    return this._loop;
  }

  /**
   * Makes the future awaitable: `onfulfilled` gets the result, `onrejected` the exception or a `CancelledError`.
   * Both are called from a loop callback, never synchronously; for a future already done while its loop does not
   * run (or is closed), from a microtask.
   */
  then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    const task = currentScopeTask() as AwaitingTask | null;
    if (task !== null && (task === (this as unknown) || task._loop !== this._loop)) {
      // asyncio's Task.__step refuses both: the task would wait forever.
      const t = (task as unknown as Future<unknown>)._describe();
      const why =
        task === (this as unknown)
          ? `Task cannot await on itself: ${t}`
          : `Task ${t} got Future ${this._describe()} attached to a different loop`;
      return Promise.reject(new RuntimeError(why)).then(onfulfilled, onrejected);
    }
    let resolve!: (v: R1 | R2 | PromiseLike<R1 | R2>) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<R1 | R2>((a, b) => {
      resolve = a;
      reject = b;
    });
    const waiter = new ThenWaiter<T, R1, R2>(this, task, onfulfilled, onrejected, resolve, reject);
    if (this._state === FutureState.PENDING) {
      this._callbacks.push({ fn: null, arg: waiter, context: null, key: waiter });
    } else if (this._loop._running) {
      this._loop._pushRunnable(waiter);
    } else {
      // Done, and awaited by code beside a loop that does not run (`await task` after `runUntilComplete(task)`,
      // or after `close()`): no iteration may ever come to deliver the outcome, and no task step is to be ordered
      // with it, so a microtask delivers it.
      queueMicrotask(() => waiter._run());
    }
    if (task !== null) {
      // asyncio's Task.__step: the task now waits on this future; a cancel() requested while the task was not
      // suspended on a future is carried out on the first future it awaits.
      task._futWaiter = this as Future<unknown>;
      if (task._mustCancel && this.cancel((task as unknown as { _cancelMessage?: string })._cancelMessage)) {
        task._mustCancel = false;
      }
    }
    return promise;
  }

  /** @internal */
  _scheduleCallbacks(): void {
    const callbacks = this._callbacks;
    if (callbacks.length === 0) return;
    this._callbacks = [];
    const loop = this._loop;
    for (const e of callbacks) {
      if (e.fn === null) loop._pushRunnable(e.arg as ThenWaiter<unknown, unknown, unknown>);
      else loop._callSoonInternal(e.fn as (arg: unknown) => unknown, [e.arg], e.context);
    }
  }

  /** @internal */
  _markRetrieved(): void {
    const u = this._unretrieved;
    if (u === null) return;
    this._unretrieved = null;
    u.reported = true;
    this._loop._unretrieved.delete(u);
    unretrievedRegistry.unregister(u);
  }

  /** @internal The error awaiting code sees when the future was cancelled. */
  _makeCancelledError(): Error {
    return new CancelledError(this._cancelMessage ?? '');
  }

  /** @internal What names this future in reports, without its state. */
  _label(): string {
    return 'Future';
  }

  /** @internal */
  _kind(): 'Future' | 'Task' {
    return 'Future';
  }

  /** @internal the state and what it holds, e.g. `finished result=42`. */
  _stateDescription(): string {
    const state = STATE_NAMES[this._state].toLowerCase();
    if (this._state !== FutureState.FINISHED) return state;
    if (this._exception !== NO_EXCEPTION)
      return `${state} exception=${inspect(this._exception, { depth: 0 }).split('\n')[0]}`;
    return `${state} result=${inspect(this._result, { depth: 0, breakLength: Infinity })}`;
  }

  /** @internal */
  _describe(): string {
    return `<Future ${this._stateDescription()}>`;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._describe();
  }

  /** @internal brand for `isFuture` across installed copies. */
  get [BRAND](): true {
    return true;
  }
}

/** The pending `then()` of one awaiter; queued on the loop itself (no Handle) when the future is done. */
class ThenWaiter<T, R1, R2> {
  readonly _cancelled = false;
  readonly _resumes = true;
  constructor(
    readonly future: Future<T>,
    readonly task: AwaitingTask | null,
    readonly onfulfilled: ((value: T) => R1 | PromiseLike<R1>) | null | undefined,
    readonly onrejected: ((reason: unknown) => R2 | PromiseLike<R2>) | null | undefined,
    readonly resolve: (v: R1 | R2 | PromiseLike<R1 | R2>) => void,
    readonly reject: (e: unknown) => void,
  ) {}

  fulfil(value: T): void {
    const f = this.onfulfilled;
    if (typeof f !== 'function') return this.resolve(value as unknown as R1);
    try {
      this.resolve(f(value));
    } catch (e) {
      this.reject(e);
    }
  }

  /** Delivers the future's outcome (or the task's pending cancellation) to the awaiter. */
  _run(): void {
    wakeThenWaiter(this as ThenWaiter<unknown, unknown, unknown>);
  }

  fail(reason: unknown): void {
    const f = this.onrejected;
    if (typeof f !== 'function') return this.reject(reason);
    try {
      this.resolve(f(reason));
    } catch (e) {
      this.reject(e);
    }
  }
}

function wakeThenWaiter(w: ThenWaiter<unknown, unknown, unknown>): void {
  const fut = w.future;
  const task = w.task;
  if (task !== null) {
    if (task._futWaiter === fut) task._futWaiter = null;
    if (task._mustCancel) {
      // A cancel() arrived while the future was already done: the task sees CancelledError here, as asyncio's
      // __step throws it into the coroutine whatever the future's outcome; a cancelled future's own
      // CancelledError (below) is that error already, with the first cancel()'s message, as asyncio keeps it.
      task._mustCancel = false;
      if (!fut.cancelled()) {
        fut._markRetrieved();
        return w.fail(task._makeCancelledError());
      }
    }
  }
  if (fut._state === FutureState.CANCELLED) return w.fail(fut._makeCancelledError());
  if (fut._exception !== NO_EXCEPTION) {
    fut._markRetrieved();
    return w.fail(fut._exception);
  }
  w.fulfil(fut._result);
}

/** Where a promise loopwork returns keeps how to cancel the work behind it (see {@link cancellablePromise}). */
const CANCEL = Symbol.for('loopwork.promise.cancel');

/** How to cancel the work behind a promise: cancel the loop Future it waits on now; false if there is none. */
export type PromiseCanceller = (msg?: string) => boolean;

/**
 * @internal Marks a promise loopwork returns (`sleep()`, a stream's `readline()`, `drain()`…) as cancellable.
 * JavaScript runs such a promise's code at once, in its caller's task, so a Task made from the promise later
 * (`waitFor(reader.readline(), 1)`, `gather`, `ensureFuture`) has no await of its own to interrupt; its
 * `cancel()` calls `cancel` instead, which cancels the loop Future the work waits on, as cancelling asyncio's
 * task running that coroutine would.
 *
 * @returns `promise`.
 */
export function cancellablePromise<T>(promise: Promise<T>, cancel: PromiseCanceller): Promise<T> {
  (promise as Promise<T> & { [CANCEL]?: PromiseCanceller })[CANCEL] = cancel;
  return promise;
}

/** @internal A promise of `fut`'s outcome, cancellable (see {@link cancellablePromise}) by cancelling `fut`. */
export function cancellableWait<T>(fut: Future<T>): Promise<T> {
  return cancellablePromise(outcomeOf(fut), (msg) => fut.cancel(msg));
}

async function outcomeOf<T>(fut: Future<T>): Promise<T> {
  return await fut;
}

/** @internal The canceller of a promise marked by {@link cancellablePromise}, if any. */
export function promiseCanceller(promise: PromiseLike<unknown>): PromiseCanceller | undefined {
  return (promise as PromiseLike<unknown> & { [CANCEL]?: PromiseCanceller })[CANCEL];
}

/**
 * True for a promise or any other object or function with a `then()` method (what `await` treats as one): the
 * awaitables a Task accepts.
 *
 * @param value - anything.
 */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * True when `obj` is a loopwork Future or Task (from any installed copy of loopwork).
 */
export function isFuture(obj: unknown): obj is Future<unknown> {
  return typeof obj === 'object' && obj !== null && (obj as Record<symbol, unknown>)[BRAND] === true;
}

/** @internal Sets `result` on `fut` unless it was cancelled meanwhile (asyncio's `_set_result_unless_cancelled`). */
export function setResultUnlessCancelled<T>(fut: Future<T>, result: T): void {
  if (!fut.cancelled()) fut.setResult(result);
}

/** @internal Copies the outcome of `source` into `dest` (asyncio's `_copy_future_state`). */
export function copyFutureState<T>(source: Future<T>, dest: Future<T>): void {
  if (dest.cancelled()) return;
  if (source.cancelled()) {
    dest.cancel(source._cancelMessage);
    return;
  }
  const exc = source.exception();
  if (exc !== null) dest.setException(exc);
  else dest.setResult(source.result());
}
