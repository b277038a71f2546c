/**
 * Callback handles (asyncio's `Handle` and `TimerHandle`): what `callSoon`, `callLater` and `callAt` return.
 *
 * @module
 */
import { inspect } from 'node:util';
import { Context, callInContext, contextForDetached, detachRootContext } from './context.js';
import type { BaseEventLoop } from './base-event-loop.js';

/** A callback scheduled on a loop, with its arguments. */
export type Callback<A extends unknown[] = unknown[]> = (...args: A) => unknown;

/**
 * @internal What the loop's ready queue holds: something to run once, unless cancelled first. Handles are the
 * public kind; the loop's own machinery (a Task waking up, `sleep(0)`) queues lighter objects.
 */
export interface Runnable {
  readonly _cancelled: boolean;
  /**
   * Whether running it may resume a coroutine (a task's first step, a waiter's promise settled): the loop then
   * lets every microtask run before the next handle, so that the coroutine runs to its next await in between,
   * as an asyncio task step does. Plain callbacks run back to back.
   */
  readonly _resumes: boolean;
  _run(): void;
}

/**
 * A callback wrapper object returned by `loop.callSoon()` and `loop.callSoonThreadsafe()`.
 *
 * A handle runs its callback at most once, in the context it was scheduled with. `cancel()` before it runs
 * means it never runs.
 */
export class Handle implements Runnable {
  /** @internal */
  _callback: Callback | null;
  /** @internal */
  _args: unknown[] | null;
  /** @internal */
  readonly _loop: BaseEventLoop;
  /**
   * @internal `null` when no context variable was in use when the handle was made (the context it was made in
   * was the empty one): it gets its own context when one is needed (see `_run`, `getContext`).
   */
  _context: Context | null;
  /** @internal */
  _cancelled = false;
  /** @internal See `Runnable._resumes`; set for a task's first step. */
  _resumes = false;
  /** @internal where the handle was created, in debug mode. */
  readonly _sourceTraceback: string | undefined;
  /** @internal its description, kept after cancellation drops the callback. */
  _repr: string | undefined;

  /** @internal handles are made by the loop's scheduling methods. */
  constructor(callback: Callback, args: unknown[], loop: BaseEventLoop, context: Context | null) {
    this._callback = callback;
    this._args = args;
    this._loop = loop;
    this._context = context;
    this._sourceTraceback = loop._debug ? captureStack() : undefined;
  }

  /**
   * Cancels the callback. If it has already run or was cancelled, this does nothing.
   */
  cancel(): void {
    if (this._cancelled) return;
    this._cancelled = true;
    if (this._loop._debug) this._repr = this._describe();
    this._callback = null;
    this._args = null;
  }

  /** True when the handle was cancelled. */
  cancelled(): boolean {
    return this._cancelled;
  }

  /** The `Context` the callback runs in (a copy of the scheduler's unless one was given); always the same one. */
  getContext(): Context {
    // Made while no context variable was in use: a copy of the empty context.
    return (this._context ??= new Context());
  }

  /**
   * @internal Runs the callback in its context. This is where every loop callback is actually called; an
   * exception goes to the loop's exception handler and never stops the loop.
   */
  _run(): void {
    const cb = this._callback;
    if (cb === null) return;
    try {
      const args = this._args as unknown[];
      let ctx = this._context;
      if (ctx === null) ctx = this._context = contextForDetached();
      if (ctx !== null) {
        callInContext(ctx, cb, args);
      } else {
        // No context variable is in use: the callback runs in the root context, which is empty, as its own was.
        // If it sets the first one, the root context becomes its own (what it set must not leak).
        try {
          if (args.length === 0) cb();
          else cb(...args);
        } finally {
          this._context = detachRootContext();
        }
      }
    } catch (exception) {
      const context: ExceptionContextInput = {
        message: `Exception in callback ${this._describe()}`,
        exception,
        handle: this,
      };
      if (this._sourceTraceback !== undefined) context.sourceTraceback = this._sourceTraceback;
      this._loop.callExceptionHandler(context);
    }
  }

  /** @internal A short description: the callback's name and arguments. */
  _describe(): string {
    if (this._repr !== undefined) return this._repr;
    const cb = this._callback;
    if (cb === null) return 'cancelled';
    const name = cb.name || 'anonymous';
    const args = (this._args ?? []).map((a) => inspect(a, { depth: 0, breakLength: Infinity })).join(', ');
    return `${name}(${args})`;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._inspect();
  }

  /** @internal */
  _inspect(): string {
    return `<${this._reprInfo().join(' ')}>`;
  }

  /**
   * @internal asyncio's `_repr_info`: the class, `cancelled`, the callback and its arguments (kept after
   * `cancel()` in debug mode), where the handle was made (debug mode).
   */
  _reprInfo(): string[] {
    const parts = [this.constructor.name];
    if (this._cancelled) parts.push('cancelled');
    if (this._callback !== null || this._repr !== undefined) parts.push(this._describe());
    if (this._sourceTraceback !== undefined) parts.push(`created at ${firstFrame(this._sourceTraceback)}`);
    return parts;
  }
}

/**
 * A handle for a callback scheduled at a time: what `loop.callLater()` and `loop.callAt()` return.
 */
export class TimerHandle extends Handle {
  /** @internal the deadline in loop time (seconds). */
  readonly _when: number;
  /** @internal tie-break: equal deadlines run in scheduling order. */
  readonly _seq: number;
  /** @internal true while the handle is in the loop's timer heap. */
  _scheduled = false;

  /** @internal */
  constructor(
    when: number,
    seq: number,
    callback: Callback,
    args: unknown[],
    loop: BaseEventLoop,
    context: Context | null,
  ) {
    super(callback, args, loop, context);
    this._when = when;
    this._seq = seq;
  }

  /**
   * The scheduled time of the callback, in seconds of loop time (comparable with `loop.time()`).
   */
  when(): number {
    return this._when;
  }

  /** Cancels the callback; a cancelled timer is dropped from the loop's timers lazily. */
  override cancel(): void {
    if (!this._cancelled) this._loop._timerHandleCancelled(this);
    super.cancel();
  }

  /** @internal asyncio's: `when=` follows the class name (and `cancelled`). */
  override _reprInfo(): string[] {
    const parts = super._reprInfo();
    parts.splice(this._cancelled ? 2 : 1, 0, `when=${String(this._when)}`);
    return parts;
  }
}

/** What a caller passes to `callExceptionHandler`; the keys are asyncio's, camelCased. */
export interface ExceptionContextInput {
  /** The error message (always present). */
  message: string;
  /** The exception object, if any. */
  exception?: unknown;
  /** A `Future`. */
  future?: unknown;
  /** A `Task`. */
  task?: unknown;
  /** A `Handle`. */
  handle?: unknown;
  /** A protocol. */
  protocol?: unknown;
  /** A transport. */
  transport?: unknown;
  /** A socket. */
  socket?: unknown;
  /** An async generator. */
  asyncgen?: unknown;
  /** Where the object at fault was created (debug mode). */
  sourceTraceback?: string;
  /** Where the failing handle was created (debug mode). */
  handleTraceback?: string;
  /** Any other key a transport or library adds. */
  [key: string]: unknown;
}

/** @internal The current call stack without the first lines (this helper and its caller). */
export function captureStack(skip = 2): string {
  const stack = new Error().stack ?? '';
  return stack
    .split('\n')
    .slice(skip + 1)
    .join('\n');
}

/** The directory of loopwork's own modules, whose frames are skipped when telling where a handle was made. */
const OWN_DIR = new URL('.', import.meta.url).pathname;

function firstFrame(stack: string): string {
  const lines = stack.split('\n');
  const line = lines.find((l) => !l.includes(OWN_DIR) && !l.includes('(node:')) ?? lines[0] ?? '';
  return line.trim().replace(/^at /, '');
}
