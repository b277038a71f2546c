/**
 * Running coroutines with staggered start times and taking the first to finish (asyncio's `staggered.py`), the
 * engine of Happy Eyeballs in `createConnection`.
 *
 * @module
 */
import type { BaseEventLoop, Task, TimerHandle } from '@loopwork/core';
import { CancelledError, Future, getEventLoop } from '@loopwork/core';

/** What {@link staggeredRace} returns: `[winnerResult, winnerIndex, exceptions]`. */
export type StaggeredRaceResult<T> = [winnerResult: T | null, winnerIndex: number | null, exceptions: unknown[]];

/**
 * Runs coroutine functions with staggered start times and returns the first to succeed (asyncio's
 * `staggered_race`).
 *
 * The first one starts at once. From then on, whenever the one started last fails, or `delay` seconds pass, the
 * next one starts. When one succeeds, all the others are cancelled; when all fail, the race is lost. Each function
 * must only return when it succeeded and throw otherwise.
 *
 * @param coroFns - coroutine functions, started in order.
 * @param delay - seconds between starts; `null` runs them one after the other (the next after a failure).
 * @param options - `loop`: the loop (by default the current one).
 * @returns `[winnerResult, winnerIndex, exceptions]`: the winner's result and index (`null`, `null` when none
 * won), and for each function started its exception (`null` for the winner), in order.
 * @throws CancelledError when the caller is cancelled; the running attempts are cancelled with it.
 */
export async function staggeredRace<T>(
  coroFns: Iterable<() => PromiseLike<T>>,
  delay: number | null,
  options: { loop?: BaseEventLoop | null } = {},
): Promise<StaggeredRaceResult<T>> {
  const loop = options.loop ?? getEventLoop();
  const iterator = coroFns[Symbol.iterator]();
  const exceptions: unknown[] = [];
  const running = new Set<Task<T>>();
  const finished = new Future<void>({ loop });
  let winnerIndex: number | null = null;
  let winnerResult: T | null = null;
  let exhausted = false;
  let latest = -1;
  let timer: TimerHandle | null = null;

  const settle = (): void => {
    if (!finished.done() && running.size === 0 && (winnerIndex !== null || exhausted)) finished.setResult(undefined);
  };

  const startNext = (): void => {
    timer?.cancel();
    timer = null;
    if (winnerIndex !== null || finished.done()) return;
    const next = iterator.next();
    if (next.done === true) {
      exhausted = true;
      settle();
      return;
    }
    const index = exceptions.length;
    exceptions.push(null);
    latest = index;
    const fn = next.value;
    const task = loop.createTask<T>(() => Promise.resolve(fn()));
    running.add(task);
    task.addDoneCallback(() => {
      running.delete(task);
      if (task.cancelled()) {
        exceptions[index] = new CancelledError();
      } else {
        const exc = task.exception();
        if (exc !== null && exc !== undefined) {
          exceptions[index] = exc;
          // Only the failure of the attempt started last starts the next one (asyncio waits on its event only).
          if (index === latest) startNext();
        } else if (winnerIndex === null) {
          winnerIndex = index;
          winnerResult = task.result();
          timer?.cancel();
          timer = null;
          for (const other of running) other.cancel();
        }
      }
      settle();
    });
    if (delay !== null) timer = loop.callLater(delay, startNext);
  };

  startNext();
  try {
    await finished;
  } catch (error) {
    (timer as TimerHandle | null)?.cancel();
    for (const t of running) t.cancel();
    throw error;
  }
  return [winnerResult, winnerIndex, exceptions];
}
