/**
 * Getting an event loop (asyncio's "Obtaining the Event Loop"): `getRunningLoop`, `getEventLoop`, `setEventLoop`,
 * `newEventLoop`, and the event-loop policy behind the last three (`getEventLoopPolicy`, `setEventLoopPolicy`).
 *
 * @module
 */
import type { EventLoopOptions } from './base-event-loop.js';
import { BaseEventLoop } from './base-event-loop.js';
import { InvalidArgTypeError, NoRunningLoopError, typeName } from './errors.js';
import { registerLoopLookup } from './loop-access.js';
import { NodeEventLoop } from './node-event-loop.js';
import { peekRunningLoop } from './running.js';

/** The loop type `newEventLoop()` returns. */
export type EventLoop = NodeEventLoop;

/** asyncio's `SelectorEventLoop`: the event loop of this platform, {@link NodeEventLoop}. */
export const SelectorEventLoop = NodeEventLoop;
/** asyncio's `SelectorEventLoop`: {@link NodeEventLoop}. */
export type SelectorEventLoop = NodeEventLoop;
/** asyncio's `AbstractEventLoop`: {@link BaseEventLoop}, the base of every loop. */
export const AbstractEventLoop = BaseEventLoop;
/** asyncio's `AbstractEventLoop`: {@link BaseEventLoop}. */
export type AbstractEventLoop = BaseEventLoop;

/**
 * What `getEventLoop()`, `setEventLoop()` and `newEventLoop()` ask (asyncio's `AbstractEventLoopPolicy`): install
 * a subclass with {@link setEventLoopPolicy} to change which loops they make or keep.
 */
export abstract class AbstractEventLoopPolicy {
  /** The current loop when none is running (`getEventLoop()`). */
  abstract getEventLoop(): BaseEventLoop;
  /** Sets (or clears, with `null`) the current loop (`setEventLoop()`). */
  abstract setEventLoop(loop: BaseEventLoop | null): void;
  /** Makes a new loop (`newEventLoop()`, and `run()`/`Runner`'s loop). */
  abstract newEventLoop(options?: EventLoopOptions): BaseEventLoop;
}

/**
 * The default policy (asyncio's `DefaultEventLoopPolicy`): new loops are {@link NodeEventLoop}s, and the current
 * loop is the one set, or a new one made (and set) when there is none or it was closed (asyncio 3.12's behaviour,
 * without its deprecation warning).
 */
export class DefaultEventLoopPolicy extends AbstractEventLoopPolicy {
  #loop: BaseEventLoop | null = null;

  /** The current loop, made when there is none (or it was closed). */
  getEventLoop(): BaseEventLoop {
    if (this.#loop === null || this.#loop.isClosed()) this.#loop = this.newEventLoop();
    return this.#loop;
  }

  /**
   * Sets (or clears) the current loop.
   *
   * @throws TypeError when `loop` is not an event loop.
   */
  setEventLoop(loop: BaseEventLoop | null): void {
    if (loop !== null && !(loop instanceof BaseEventLoop)) {
      throw new InvalidArgTypeError(`loop must be an instance of AbstractEventLoop or None, not '${typeName(loop)}'`);
    }
    this.#loop = loop;
  }

  /**
   * A new {@link NodeEventLoop}.
   *
   * @param options - `debug`, `logger`.
   */
  newEventLoop(options: EventLoopOptions = {}): BaseEventLoop {
    return new NodeEventLoop(options);
  }
}

let policy: AbstractEventLoopPolicy | null = null;

/** The event-loop policy in use (a {@link DefaultEventLoopPolicy} until another is set). */
export function getEventLoopPolicy(): AbstractEventLoopPolicy {
  if (policy === null) policy = new DefaultEventLoopPolicy();
  return policy;
}

/**
 * Installs an event-loop policy; `null` goes back to a new default one.
 *
 * @throws TypeError when `newPolicy` is not an {@link AbstractEventLoopPolicy}.
 */
export function setEventLoopPolicy(newPolicy: AbstractEventLoopPolicy | null): void {
  if (newPolicy !== null && !(newPolicy instanceof AbstractEventLoopPolicy)) {
    throw new InvalidArgTypeError(
      `policy must be an instance of AbstractEventLoopPolicy or None, not '${typeName(newPolicy)}'`,
    );
  }
  policy = newPolicy;
}

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
 * The current event loop: the running one, else the policy's (by default the one set with `setEventLoop`, else a
 * new loop that becomes the current one: asyncio 3.12's behaviour, without its deprecation warning).
 */
export function getEventLoop(): EventLoop {
  const running = peekRunningLoop();
  if (running !== null) return running as EventLoop;
  return getEventLoopPolicy().getEventLoop() as EventLoop;
}

/**
 * Sets the current event loop of this thread (or clears it with `null`), through the policy.
 *
 * @throws TypeError when `loop` is not an event loop.
 */
export function setEventLoop(loop: BaseEventLoop | null): void {
  getEventLoopPolicy().setEventLoop(loop);
}

/**
 * Makes a new event loop (not set as current), through the policy: by default a {@link NodeEventLoop}.
 *
 * @param options - `debug` (default from `LOOPWORK_DEBUG`), `logger` (a pino logger).
 */
export function newEventLoop(options: EventLoopOptions = {}): EventLoop {
  return getEventLoopPolicy().newEventLoop(options) as EventLoop;
}

registerLoopLookup(getEventLoop);
