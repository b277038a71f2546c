/**
 * `timeout()` and `timeoutAt()`: a deadline over a block of async code (asyncio's `timeouts.py`).
 *
 * asyncio writes `async with asyncio.timeout(10): ...`. JavaScript's `await using` cannot turn the block's
 * `CancelledError` into a `TimeoutError`, so the block is a function: `await timeout(10, async (cm) => ...)`.
 *
 * @module
 */
import type { Handle } from './handles.js';
import { inspect } from 'node:util';
import { InvalidArgTypeError, RuntimeError, TimeoutError, isCancelledError } from './errors.js';
import { currentTask } from './tasks.js';
import type { Task } from './tasks.js';
import { peekRunningLoop } from './running.js';
import type { BaseEventLoop } from './base-event-loop.js';

type State = 'created' | 'active' | 'expiring' | 'expired' | 'finished';

/**
 * A deadline on the task that enters it. When the deadline passes, the task is cancelled; the block then ends
 * with `TimeoutError` instead of `CancelledError` (unless someone else also cancelled the task).
 */
export class Timeout {
  #state: State = 'created';
  #when: number | null;
  #handle: Handle | null = null;
  #task: Task<unknown> | null = null;
  #cancelling = 0;

  /**
   * @param when - the deadline in loop time (seconds, as `loop.time()`), or `null` for none.
   */
  constructor(when: number | null) {
    this.#when = when;
  }

  /** The current deadline (loop time, seconds), or `null`. */
  when(): number | null {
    return this.#when;
  }

  /**
   * Moves the deadline.
   *
   * @param when - the new deadline in loop time (seconds), or `null` to remove it.
   * @throws RuntimeError when the timeout is not active.
   */
  reschedule(when: number | null): void {
    if (this.#state !== 'active') {
      if (this.#state === 'created') throw new RuntimeError('Timeout has not been entered');
      throw new RuntimeError(`Cannot change state of ${this.#state} Timeout`);
    }
    this.#when = when;
    this.#handle?.cancel();
    this.#handle = null;
    if (when === null) return;
    const loop = (this.#task as Task<unknown>).getLoop();
    this.#handle =
      when <= loop.time() ? loop.callSoon(() => this.#onTimeout()) : loop.callAt(when, () => this.#onTimeout());
  }

  /** True when the deadline passed (the block was, or is being, cancelled by this timeout). */
  expired(): boolean {
    return this.#state === 'expiring' || this.#state === 'expired';
  }

  /**
   * Enters the timeout on the current task (asyncio's `__aenter__`). Prefer `run()`.
   *
   * @throws RuntimeError when already entered or outside a task.
   */
  enter(): this {
    if (this.#state !== 'created') throw new RuntimeError('Timeout has already been entered');
    const task = currentTask();
    if (task === null) throw new RuntimeError('Timeout should be used inside a task');
    this.#state = 'active';
    this.#task = task;
    this.#cancelling = task.cancelling();
    this.reschedule(this.#when);
    return this;
  }

  /**
   * Leaves the timeout (asyncio's `__aexit__`) with the block's error, if any, and returns the error to throw
   * (a `TimeoutError` in place of this timeout's `CancelledError`), or `undefined`.
   */
  exit(error?: unknown): unknown {
    this.#handle?.cancel();
    this.#handle = null;
    if (this.#state === 'expiring') {
      this.#state = 'expired';
      const task = this.#task as Task<unknown>;
      if (task.uncancel() <= this.#cancelling && error !== undefined && isCancelledError(error)) {
        return new TimeoutError('', { cause: error });
      }
    } else if (this.#state === 'active') {
      this.#state = 'finished';
    }
    return error;
  }

  /**
   * Runs `body` under this deadline and returns its result.
   *
   * @throws TimeoutError when the deadline passed first; whatever `body` throws otherwise.
   */
  async run<T>(body: (timeout: this) => PromiseLike<T> | T): Promise<T> {
    this.enter();
    let result: T;
    try {
      result = await body(this);
    } catch (error) {
      throw this.exit(error);
    }
    const error = this.exit();
    if (error !== undefined) throw error;
    return result;
  }

  #onTimeout(): void {
    (this.#task as Task<unknown>).cancel();
    this.#state = 'expiring';
    this.#handle = null;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const when = this.#state === 'active' ? ` when=${String(this.#when)}` : '';
    return `<Timeout [${this.#state}]${when}>`;
  }
}

function loopTime(): number {
  const loop = peekRunningLoop() as BaseEventLoop | null;
  if (loop === null) throw new RuntimeError('no running event loop');
  return loop.time();
}

/**
 * A `Timeout` `delay` seconds from now (asyncio's `timeout`); with `body`, runs it under the deadline.
 *
 * @param delay - seconds, or `null` for no deadline (it can be set later with `reschedule`).
 * @throws TypeError when `delay` is neither a number nor null; RuntimeError when no loop is running.
 * @example
 * ```ts
 * const data = await timeout(5, async () => await reader.read(100));
 * ```
 */
export function timeout(delay: number | null): Timeout;
export function timeout<T>(delay: number | null, body: (timeout: Timeout) => PromiseLike<T> | T): Promise<T>;
export function timeout<T>(
  delay: number | null,
  body?: (timeout: Timeout) => PromiseLike<T> | T,
): Timeout | Promise<T> {
  if (delay !== null && typeof delay !== 'number') {
    // asyncio's loop.time() + delay fails for these; `+` would concatenate a string here.
    throw new InvalidArgTypeError(`delay must be a number or null, got ${inspect(delay, { depth: 0 })}`);
  }
  const t = new Timeout(delay === null ? null : loopTime() + delay);
  return body === undefined ? t : t.run(body);
}

/**
 * A `Timeout` at the absolute loop time `when` (asyncio's `timeout_at`); with `body`, runs it under the deadline.
 *
 * @param when - a deadline in loop time (seconds, as `loop.time()`), or `null`.
 */
export function timeoutAt(when: number | null): Timeout;
export function timeoutAt<T>(when: number | null, body: (timeout: Timeout) => PromiseLike<T> | T): Promise<T>;
export function timeoutAt<T>(
  when: number | null,
  body?: (timeout: Timeout) => PromiseLike<T> | T,
): Timeout | Promise<T> {
  const t = new Timeout(when);
  return body === undefined ? t : t.run(body);
}
