/**
 * `run()` and `Runner` (asyncio's `runners.py`): run a coroutine on a new loop, then tidy up — cancel what is
 * left, close async generators, shut down the default executor, close the loop.
 *
 * @module
 */
import type { EventLoopOptions } from './base-event-loop.js';
import type { BaseEventLoop } from './base-event-loop.js';
import type { Context } from './context.js';
import { copyContext } from './context.js';
import { InvalidArgTypeError, RuntimeError, makeError } from './errors.js';
import { newEventLoop, setEventLoop } from './events.js';
import type { Future } from './futures.js';
import { isFuture } from './futures.js';
import { onInterrupt, raiseInterrupt } from './node-event-loop.js';
import { peekRunningLoop } from './running.js';
import type { Task } from './tasks.js';
import { allTasks, gather } from './tasks.js';

/** Thrown by `Runner.run()` when SIGINT cancelled the main task (Python's `KeyboardInterrupt`). */
export const KeyboardInterrupt = makeError('ERR_LOOPWORK_KEYBOARD_INTERRUPT', 'KeyboardInterrupt', Error);

/** How long `close()` waits for the default executor, in seconds (asyncio's `THREAD_JOIN_TIMEOUT`). */
const THREAD_JOIN_TIMEOUT = 300;

/** Options of `Runner` and `run()`. */
export interface RunnerOptions {
  /** Debug mode for the loop. */
  debug?: boolean;
  /** Makes the loop; by default `newEventLoop()` (and the loop is set as the current one while the runner lives). */
  loopFactory?: (() => BaseEventLoop) | null;
}

/** What `Runner.run()` and `run()` accept. */
export type Main<T> = (() => PromiseLike<T>) | PromiseLike<T> | Future<T>;

/**
 * Runs coroutines on one loop that it creates lazily and closes at the end (asyncio's `Runner`).
 *
 * @example
 * ```ts
 * await using runner = new Runner();
 * await runner.run(main);
 * ```
 */
export class Runner {
  #state: 'created' | 'initialized' | 'closed' = 'created';
  #loop: BaseEventLoop | null = null;
  #context: Context | null = null;
  #setEventLoop = false;
  readonly #debug: boolean | undefined;
  readonly #loopFactory: (() => BaseEventLoop) | null;
  #interruptCount = 0;

  constructor(options: RunnerOptions = {}) {
    this.#debug = options.debug;
    this.#loopFactory = options.loopFactory ?? null;
  }

  /** The runner's loop (created on first use). */
  getLoop(): BaseEventLoop {
    this.#lazyInit();
    return this.#loop as BaseEventLoop;
  }

  /**
   * Runs `main` on the runner's loop as a Task and returns its result. SIGINT (Ctrl-C) cancels the task, which
   * then ends with `KeyboardInterrupt`; a second SIGINT ends the process.
   *
   * @param main - a coroutine function, a promise, or a Future.
   * @param options - `context` the task runs in (by default the runner's own context).
   * @throws RuntimeError when called from a running loop.
   */
  async run<T>(main: Main<T>, options: { context?: Context } = {}): Promise<T> {
    if (typeof main !== 'function' && !isFuture(main) && typeof (main as { then?: unknown })?.then !== 'function') {
      throw new InvalidArgTypeError('An asyncio.Future, a coroutine or an awaitable is required');
    }
    if (peekRunningLoop() !== null) {
      throw new RuntimeError('Runner.run() cannot be called from a running event loop');
    }
    this.#lazyInit();
    const loop = this.#loop as BaseEventLoop;
    const coro = isFuture(main) ? async (): Promise<T> => await (main as Future<T>) : (main as () => PromiseLike<T>);
    const task: Task<T> = loop.createTask(coro, { context: options.context ?? this.#context });
    this.#interruptCount = 0;
    const uninstall = onInterrupt(() => this.#onInterrupt(task));
    try {
      return await loop.runUntilComplete(task);
    } catch (error) {
      if (this.#interruptCount > 0 && task.cancelled() && task.uncancel() === 0) {
        throw new KeyboardInterrupt('', { cause: error });
      }
      throw error;
    } finally {
      uninstall();
    }
  }

  /**
   * Cancels the tasks left, closes async generators, shuts down the default executor, and closes the loop.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#state !== 'initialized') return;
    const loop = this.#loop as BaseEventLoop;
    try {
      await cancelAllTasks(loop);
      await loop.runUntilComplete(loop.shutdownAsyncgens());
      await loop.runUntilComplete(loop.shutdownDefaultExecutor(THREAD_JOIN_TIMEOUT));
    } finally {
      if (this.#setEventLoop) setEventLoop(null);
      loop.close();
      this.#loop = null;
      this.#state = 'closed';
    }
  }

  /** Closes the runner (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #lazyInit(): void {
    if (this.#state === 'closed') throw new RuntimeError('Runner is closed');
    if (this.#state === 'initialized') return;
    if (this.#loopFactory === null) {
      const options: EventLoopOptions = {};
      if (this.#debug !== undefined) options.debug = this.#debug;
      this.#loop = newEventLoop(options);
      setEventLoop(this.#loop);
      this.#setEventLoop = true;
    } else {
      this.#loop = this.#loopFactory();
      if (this.#debug !== undefined) this.#loop.setDebug(this.#debug);
    }
    this.#context = copyContext();
    this.#state = 'initialized';
  }

  #onInterrupt(task: Task<unknown>): void {
    this.#interruptCount++;
    if (this.#interruptCount === 1 && !task.done()) {
      task.cancel();
      // Wake the loop up in case it waits on nothing that would notice the cancellation.
      (this.#loop as BaseEventLoop).callSoon(() => undefined);
      return;
    }
    raiseInterrupt();
  }
}

/**
 * Runs `main` on a new event loop and returns its result, then cancels the tasks left, closes async generators,
 * shuts down the default executor, and closes the loop (asyncio's `run`).
 *
 * @param main - a coroutine function (`async () => …`), a promise, or a Future.
 * @param options - `debug`: debug mode; `loopFactory`: makes the loop.
 * @throws RuntimeError when a loop is already running in this thread.
 * @example
 * ```ts
 * await run(async () => {
 *   await sleep(1);
 *   console.log('hello');
 * });
 * ```
 */
export async function run<T>(main: Main<T>, options: RunnerOptions = {}): Promise<T> {
  if (peekRunningLoop() !== null) {
    throw new RuntimeError('run() cannot be called from a running event loop');
  }
  const runner = new Runner(options);
  try {
    return await runner.run(main);
  } finally {
    await runner.close();
  }
}

async function cancelAllTasks(loop: BaseEventLoop): Promise<void> {
  const toCancel = allTasks(loop);
  if (toCancel.size === 0) return;
  for (const t of toCancel) t.cancel();
  await loop.runUntilComplete(gather(...toCancel, { returnExceptions: true }));
  for (const t of toCancel) {
    if (t.cancelled()) continue;
    const exception = t.exception();
    if (exception !== null) {
      loop.callExceptionHandler({ message: 'unhandled exception during run() shutdown', exception, task: t });
    }
  }
}
