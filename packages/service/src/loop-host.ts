/**
 * The loop an app runs on: the one given, else the running one, else a background loop the app starts and stops
 * itself, shared by every app of the process that needs one.
 *
 * A background loop is what lets a plain script (or a test) call `await app.listen()` without `run(main)`: the
 * loop runs "forever" beside the caller's own code (loopwork's loop is a scheduler on Node's libuv loop, so both
 * make progress), and is stopped and closed when the last app using it closes.
 *
 * @module
 */
import type { EventLoop } from '@loopwork/server';
import { getRunningLoopOrNull, newEventLoop } from '@loopwork/server';

/** A loop held by an app until it calls `release()`. */
export interface LoopLease {
  readonly loop: EventLoop;
  /** Lets the loop go: a background loop is stopped and closed when its last lease is released. */
  release(): Promise<void>;
}

interface Background {
  loop: EventLoop;
  refs: number;
  running: Promise<void>;
}

let background: Background | null = null;

/**
 * @internal Gets a loop for an app.
 *
 * @param given - the app's `loop` option.
 */
export function acquireLoop(given?: EventLoop | null): LoopLease {
  if (given !== undefined && given !== null) return { loop: given, release: async () => undefined };
  const running = getRunningLoopOrNull();
  if (running !== null && (background === null || running !== background.loop)) {
    return { loop: running, release: async () => undefined };
  }
  if (background === null) {
    const loop = newEventLoop();
    const bg: Background = { loop, refs: 0, running: Promise.resolve() };
    bg.running = loop.runForever();
    background = bg;
  }
  const bg = background;
  bg.refs++;
  let released = false;
  return {
    loop: bg.loop,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      if (--bg.refs > 0) return;
      if (background === bg) background = null;
      bg.loop.stop();
      await bg.running;
      bg.loop.close();
    },
  };
}
