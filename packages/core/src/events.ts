/**
 * Getting an event loop (asyncio's "이벤트 루프 얻기"): `getRunningLoop`, `getEventLoop`, `setEventLoop`,
 * `newEventLoop`.
 *
 * @module
 */
import type { EventLoopOptions } from './base-event-loop.js';
import { BaseEventLoop } from './base-event-loop.js';
import { InvalidArgTypeError, NoRunningLoopError } from './errors.js';
import { registerLoopLookup } from './loop-access.js';
import { NodeEventLoop } from './node-event-loop.js';
import { peekRunningLoop } from './running.js';

/** The loop type `newEventLoop()` returns. */
export type EventLoop = NodeEventLoop;

let currentLoop: BaseEventLoop | null = null;

/**
 * The running event loop of this thread.
 *
 * @throws RuntimeError ("no running event loop") when no loop is running.
 */
export function getRunningLoop(): EventLoop {
  const loop = peekRunningLoop();
  if (loop === null) throw new NoRunningLoopError();
  return loop as EventLoop;
}

/**
 * The running loop, or `null` when none runs (asyncio's `_get_running_loop`).
 */
export function getRunningLoopOrNull(): EventLoop | null {
  return peekRunningLoop() as EventLoop | null;
}

/**
 * The current event loop: the running one, else the one set with `setEventLoop`, else a new loop that becomes
 * the current one (asyncio 3.12's behaviour, without its deprecation warning).
 */
export function getEventLoop(): EventLoop {
  const running = peekRunningLoop();
  if (running !== null) return running as EventLoop;
  if (currentLoop === null || currentLoop.isClosed()) currentLoop = newEventLoop();
  return currentLoop as EventLoop;
}

/**
 * Sets the current event loop of this thread (or clears it with `null`).
 *
 * @throws TypeError when `loop` is not an event loop.
 */
export function setEventLoop(loop: BaseEventLoop | null): void {
  if (loop !== null && !(loop instanceof BaseEventLoop)) {
    throw new InvalidArgTypeError(`loop must be an instance of AbstractEventLoop or None, not '${typeof loop}'`);
  }
  currentLoop = loop;
}

/**
 * Makes a new event loop (not set as current).
 *
 * @param options - `debug` (default from `LOOPWORK_DEBUG`), `logger` (a pino logger).
 */
export function newEventLoop(options: EventLoopOptions = {}): EventLoop {
  return new NodeEventLoop(options);
}

registerLoopLookup(getEventLoop);
