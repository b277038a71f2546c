/**
 * The event loop on Node.js: `BaseEventLoop`'s platform hooks on Node's own libuv loop. This is the only module
 * that touches `setImmediate`, `setTimeout` and `process.on`.
 *
 * - An iteration starts from one `setImmediate`, so Node polls I/O before it. While handles stay ready, up to 16
 *   more iterations follow at once, within 1 ms, before the next `setImmediate` (see `BaseEventLoop._endIteration`);
 *   after an iteration whose last handles were plain callbacks, the next one starts from a `process.nextTick`
 *   queued by a microtask, so that what they queued as microtasks has run first, as it has before a `setImmediate`.
 * - Within an iteration, plain callbacks run back to back in one JavaScript call. After a handle that resumes a
 *   coroutine, the next handle runs from a `process.nextTick` queued by a microtask queued after it: Node drains
 *   the whole microtask queue (chained continuations included) before it looks at the tick queue again, so the
 *   task step that handle set off has run before the next handle.
 * - One `setTimeout` is armed for the earliest timer deadline; the timers themselves live in the loop's heap.
 * - While the loop runs, a ref'd interval keeps the process alive, as a blocked `run_forever()` keeps Python's.
 * - Unix signals (asyncio's `add_signal_handler`): one `process.on` listener per signal for the whole process,
 *   which queues each loop's handler as a Handle; removing the last handler of a signal removes the listener,
 *   which gives the signal back its default disposition.
 *
 * @module
 */
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import type { EventLoopOptions } from './base-event-loop.js';
import { BaseEventLoop, checkCallback } from './base-event-loop.js';
import type { Callback } from './handles.js';
import { Handle } from './handles.js';
import { captureContext } from './context.js';
import { InvalidArgTypeError, RuntimeError, ValueError } from './errors.js';

/** The longest delay Node's timers take (2 ** 31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RESOLVED = Promise.resolve();

function noop(): void {}

/** Signal number to its name; the first name wins for aliases (`SIGABRT` over `SIGIOT`, `SIGIO` over `SIGPOLL`). */
const SIGNAL_NAMES = new Map<number, NodeJS.Signals>();
for (const [name, num] of Object.entries(osConstants.signals)) {
  if (!SIGNAL_NAMES.has(num)) SIGNAL_NAMES.set(num, name as NodeJS.Signals);
}
const UNCATCHABLE = new Set([osConstants.signals.SIGKILL, osConstants.signals.SIGSTOP]);
/**
 * Signals Node ignores from startup (its writes report `EPIPE`/`EFBIG` instead). libuv resets a signal to its
 * default action when its last listener goes, which for these would end the process at the next write to a
 * closed pipe: their listener stays, which keeps them ignored, Node's own default.
 */
const IGNORED_BY_NODE = new Set([osConstants.signals.SIGPIPE, osConstants.signals.SIGXFSZ]);

/** The process-wide listener of one signal and the loops that have a handler for it. */
interface SignalListener {
  readonly listener: () => void;
  readonly loops: Set<NodeEventLoop>;
}

const signalListeners = new Map<number, SignalListener>();

/** Functions that release what other core modules attached to a loop, called at `close()`. */
const closeHooks: ((loop: NodeEventLoop) => void)[] = [];

/**
 * Validates a signal given as a number or a name (asyncio's `_check_signal`) and returns its number. Node
 * accepts `process.on('SIGFOO')` silently, so the check is against `os.constants.signals`.
 */
function checkSignal(sig: unknown): number {
  if (typeof sig === 'string') {
    const num = (osConstants.signals as Record<string, number | undefined>)[sig];
    if (num === undefined) throw new ValueError(`invalid signal name ${inspect(sig)}`);
    return num;
  }
  if (typeof sig !== 'number' || !Number.isInteger(sig)) {
    throw new InvalidArgTypeError(`sig must be an int or a signal name, not ${inspect(sig, { depth: 0 })}`);
  }
  if (!SIGNAL_NAMES.has(sig)) throw new ValueError(`invalid signal number ${sig}`);
  return sig;
}

/**
 * The loopwork event loop for Node.js. Get one with `newEventLoop()`.
 */
export class NodeEventLoop extends BaseEventLoop {
  #timer: NodeJS.Timeout | null = null;
  #keepAlive: NodeJS.Timeout | null = null;
  readonly #runOnce = (): void => this._runOnce();
  readonly #runNext = (): void => this._runNextHandle();
  readonly #toTick = (): void => process.nextTick(this.#runNext);
  readonly #runDrained = (): void => this._runDrained();
  readonly #toTickDrained = (): void => process.nextTick(this.#runDrained);
  readonly #onTimer = (): void => {
    this.#timer = null;
    this._runTimer();
  };
  /** Signal number to the handle its delivery queues (asyncio's `_signal_handlers`). */
  readonly #signalHandlers = new Map<number, Handle>();

  /** Makes a loop; prefer `newEventLoop()`. */
  constructor(options: EventLoopOptions = {}) {
    super(options);
  }

  /** Monotonic seconds (a float with sub-millisecond precision), from `performance.now()`. */
  time(): number {
    return performance.now() / 1000;
  }

  /** @internal */
  protected _armIteration(): void {
    setImmediate(this.#runOnce);
  }

  /** @internal */
  protected _continueBatch(): void {
    void RESOLVED.then(this.#toTick);
  }

  /** @internal */
  protected _armDrainedIteration(): void {
    void RESOLVED.then(this.#toTickDrained);
  }

  /** @internal */
  protected _armTimer(delay: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    // Round up: Node's timers have millisecond resolution and a timer that fires early is re-armed anyway. At
    // most MAX_TIMER_MS: Node fires a longer one after 1 ms (a loop asleep for 30 days would spin).
    this.#timer = setTimeout(this.#onTimer, Math.min(Math.ceil(delay * 1000), MAX_TIMER_MS));
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
    if (on && this.#keepAlive === null) this.#keepAlive = setInterval(noop, MAX_TIMER_MS);
    else if (!on && this.#keepAlive !== null) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = null;
    }
  }

  /** @internal Releases what core modules attached to the loop (fd watchers), then the signal handlers. */
  protected override _closePlatform(): void {
    super._closePlatform();
    for (const hook of closeHooks) hook(this);
    for (const sig of [...this.#signalHandlers.keys()]) this.removeSignalHandler(sig);
  }

  // ---- Unix signals ----------------------------------------------------------------------------------------

  /**
   * Calls `callback(...args)` on the loop, as a Handle scheduled with `callSoon`, each time the process receives
   * signal `sig` (asyncio's `add_signal_handler`). The callback may use the loop. A loop has one handler per
   * signal: adding another replaces it. The context the callback runs in is a copy of the current one, taken
   * now. Every loop that has a handler for `sig` gets it; the process's default action for `sig` (for most
   * signals, ending the process) no longer happens until the last handler is removed.
   *
   * @param sig - a signal number (`os.constants.signals.SIGTERM`) or name (`'SIGTERM'`).
   * @param callback - a plain function; not an async function.
   * @param args - arguments for `callback`.
   * @throws TypeError for an async function or a promise ("coroutines cannot be used with addSignalHandler()"),
   *   anything else not callable, or a `sig` that is neither an integer nor a string; ValueError for an unknown
   *   signal; RuntimeError when the loop is closed, outside the main thread, or for `SIGKILL`/`SIGSTOP`
   *   ("sig 9 cannot be caught").
   * @example
   * loop.addSignalHandler('SIGTERM', () => loop.stop());
   */
  addSignalHandler<A extends unknown[]>(sig: number | NodeJS.Signals, callback: Callback<A>, ...args: A): void {
    checkCallback(callback, 'addSignalHandler');
    const num = checkSignal(sig);
    this._checkClosed();
    // Node does not deliver signals to worker threads; asyncio refuses a loop outside the main thread too.
    if (!isMainThread) throw new RuntimeError('signal handlers only work in the main thread of the main interpreter');
    if (UNCATCHABLE.has(num)) throw new RuntimeError(`sig ${num} cannot be caught`);

    this.#signalHandlers.set(num, new Handle(callback as Callback, args, this, captureContext()));
    let entry = signalListeners.get(num);
    if (entry === undefined) {
      const loops = new Set<NodeEventLoop>();
      const listener = (): void => {
        for (const loop of [...loops]) loop.#handleSignal(num);
      };
      try {
        process.on(SIGNAL_NAMES.get(num) as NodeJS.Signals, listener);
      } catch (error) {
        this.#signalHandlers.delete(num);
        if ((error as { code?: unknown }).code === 'EINVAL') throw new RuntimeError(`sig ${num} cannot be caught`);
        throw error;
      }
      entry = { listener, loops };
      signalListeners.set(num, entry);
    }
    entry.loops.add(this);
  }

  /**
   * Removes the handler of signal `sig` (asyncio's `remove_signal_handler`). When no loop has a handler for it
   * any more, the signal gets its default disposition back (for `SIGINT`, `Runner`'s, if one runs; `SIGPIPE`
   * and `SIGXFSZ` stay ignored, as Node has them). A handler already queued by a signal that arrived before
   * still runs.
   *
   * @param sig - a signal number or name.
   * @returns true if a handler was removed, false if this loop had none for `sig`.
   * @throws TypeError or ValueError for an invalid `sig`, as `addSignalHandler`.
   */
  removeSignalHandler(sig: number | NodeJS.Signals): boolean {
    const num = checkSignal(sig);
    if (!this.#signalHandlers.delete(num)) return false;
    const entry = signalListeners.get(num);
    if (entry !== undefined) {
      entry.loops.delete(this);
      if (entry.loops.size === 0 && !IGNORED_BY_NODE.has(num)) {
        signalListeners.delete(num);
        process.removeListener(SIGNAL_NAMES.get(num) as NodeJS.Signals, entry.listener);
      }
    }
    return true;
  }

  /** Queues the handler of `sig`, as asyncio's `_handle_signal` does (the same Handle each time). */
  #handleSignal(sig: number): void {
    const handle = this.#signalHandlers.get(sig);
    if (handle === undefined || this._closed) return;
    if (handle.cancelled()) {
      this.removeSignalHandler(sig);
      return;
    }
    this._pushRunnable(handle);
  }
}

/**
 * @internal Registers `hook` to be called with each loop at its `close()`, before its signal handlers are
 * removed (asyncio's selector is closed first too). For core modules that attach resources to loops.
 */
export function onLoopClose(hook: (loop: NodeEventLoop) => void): void {
  closeHooks.push(hook);
}

/**
 * @internal Calls `handler` on SIGINT while it is installed, if nobody else listens for SIGINT; returns the
 * function that uninstalls it (a no-op when it was not installed).
 */
export function onInterrupt(handler: () => void): () => void {
  if (process.listenerCount('SIGINT') > 0) return noop;
  // A loop's own SIGINT handler, added after this one, takes over: asyncio's replaces the Runner's.
  const listener = (): void => {
    if (!signalListeners.has(osConstants.signals.SIGINT)) handler();
  };
  process.on('SIGINT', listener);
  return () => {
    process.removeListener('SIGINT', listener);
  };
}

/** @internal Delivers SIGINT to this process with the default disposition (it ends the process). */
export function raiseInterrupt(): void {
  process.kill(process.pid, 'SIGINT');
}
