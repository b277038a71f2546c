/**
 * How modules below the loop (futures, tasks) find "the current event loop" without importing the loop's
 * implementation, which would make an import cycle. `events.ts` registers the real lookup when it loads.
 *
 * @internal
 * @module
 */
import type { BaseEventLoop } from './base-event-loop.js';

let lookup: (() => BaseEventLoop) | null = null;

/** @internal Registers the function that returns the current event loop (`getEventLoop`). */
export function registerLoopLookup(fn: () => BaseEventLoop): void {
  lookup = fn;
}

/** @internal The current event loop, for objects made without an explicit `loop`. */
export function getEventLoopForFuture(): BaseEventLoop {
  if (lookup === null) throw new Error('loopwork: events module not loaded');
  return lookup();
}
