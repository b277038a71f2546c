/**
 * The running-loop registry: which loop runs in this thread now (asyncio's `_running_loop`). Kept in a module of
 * its own, without imports, so that every other module may read it without import cycles.
 *
 * @internal
 * @module
 */

/** The minimal shape the registry needs. */
export interface RunningLoopLike {
  isRunning(): boolean;
}

let running: RunningLoopLike | null = null;

/** @internal Sets (or clears, with `null`) the running loop. */
export function setRunningLoop(loop: RunningLoopLike | null): void {
  running = loop;
}

/** @internal The running loop, or `null`. */
export function peekRunningLoop(): RunningLoopLike | null {
  return running;
}
