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

/** What waits for the next loop to run in this thread (see {@link whenALoopRuns}). */
let onNextRun: ((loop: RunningLoopLike) => void)[] = [];

/** @internal Sets (or clears, with `null`) the running loop. */
export function setRunningLoop(loop: RunningLoopLike | null): void {
  running = loop;
  if (loop !== null && onNextRun.length > 0) {
    const waiting = onNextRun;
    onNextRun = [];
    for (const start of waiting) start(loop);
  }
}

/**
 * @internal Calls `start` with the next loop that runs in this thread, as it starts: how work made while no
 * loop runs (`loop.runUntilComplete(sleep(1))`) starts where an asyncio coroutine would, in the loop that runs it.
 */
export function whenALoopRuns(start: (loop: RunningLoopLike) => void): void {
  onNextRun.push(start);
}

/** @internal The running loop, or `null`. */
export function peekRunningLoop(): RunningLoopLike | null {
  return running;
}
