/**
 * The event loop on Node.js: `BaseEventLoop`'s platform hooks on Node's own libuv loop. This is the only module
 * that touches `setImmediate`, `setTimeout` and `process.on`.
 *
 * - A tick is one `setImmediate`: Node runs the immediates queued before its check phase began, draining
 *   microtasks after each one, and leaves the ones queued meanwhile for its next turn — exactly the shape of an
 *   asyncio iteration.
 * - One `setTimeout` is armed for the earliest timer deadline; the timers themselves live in the loop's heap.
 * - While the loop runs, a ref'd interval keeps the process alive, as a blocked `run_forever()` keeps Python's.
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { EventLoopOptions } from './base-event-loop.js';
import { BaseEventLoop } from './base-event-loop.js';

const KEEP_ALIVE_INTERVAL_MS = 2 ** 31 - 1;

function noop(): void {}

/**
 * The loopwork event loop for Node.js. Get one with `newEventLoop()`.
 */
export class NodeEventLoop extends BaseEventLoop {
  #timer: NodeJS.Timeout | null = null;
  #keepAlive: NodeJS.Timeout | null = null;
  readonly #tick = (): void => this._runTick();
  readonly #boundary = (): void => this._runBoundary();
  readonly #onTimer = (): void => {
    this.#timer = null;
    this._runTimer();
  };

  /** Makes a loop; prefer `newEventLoop()`. */
  constructor(options: EventLoopOptions = {}) {
    super(options);
  }

  /** Monotonic seconds (a float with sub-millisecond precision), from `performance.now()`. */
  time(): number {
    return performance.now() / 1000;
  }

  /** @internal */
  protected _armTick(): void {
    setImmediate(this.#tick);
  }

  /** @internal */
  protected _armBoundary(): void {
    setImmediate(this.#boundary);
  }

  /** @internal */
  protected _armTimer(delay: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    // Round up: Node's timers have millisecond resolution and a timer that fires early is re-armed anyway.
    this.#timer = setTimeout(this.#onTimer, Math.ceil(delay * 1000));
  }

  /** @internal */
  protected _disarmTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /** @internal */
  protected _keepAlive(on: boolean): void {
    if (on && this.#keepAlive === null) this.#keepAlive = setInterval(noop, KEEP_ALIVE_INTERVAL_MS);
    else if (!on && this.#keepAlive !== null) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = null;
    }
  }
}

/**
 * @internal Calls `handler` on SIGINT while it is installed, if nobody else listens for SIGINT; returns the
 * function that uninstalls it (a no-op when it was not installed).
 */
export function onInterrupt(handler: () => void): () => void {
  if (process.listenerCount('SIGINT') > 0) return noop;
  process.on('SIGINT', handler);
  return () => {
    process.removeListener('SIGINT', handler);
  };
}

/** @internal Delivers SIGINT to this process with the default disposition (it ends the process). */
export function raiseInterrupt(): void {
  process.kill(process.pid, 'SIGINT');
}
