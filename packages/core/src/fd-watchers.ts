/**
 * Watching file descriptors (asyncio's `add_reader`/`add_writer`, from `selector_events.py`): `addReader`,
 * `removeReader`, `addWriter`, `removeWriter`, on libuv's `uv_poll` through the native addon (one poll per fd;
 * its callbacks are queued as loop Handles). An fd that a transport owns is refused, as asyncio does: transports
 * register their fd with {@link registerTransportFd}.
 *
 * Without the native addon, fd watching throws `NativeUnavailableError`.
 *
 * @module
 */
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import { checkCallback, extendEventLoop } from './base-event-loop.js';
import { captureContext } from './context.js';
import { RuntimeError, ValueError, withOSErrors } from './errors.js';
import type { Callback, ExceptionContextInput, Runnable } from './handles.js';
import { Handle } from './handles.js';
import type { PollHandle } from './native.js';
import * as native from './native.js';
import { onLoopClose } from './node-event-loop.js';
import type { BaseTransport } from './transports.js';

// ---------------------------------------------------------------------------------------------------------
// Shared helpers

/** A file descriptor, or an object that has one (`fileno()`), as asyncio's selectors accept. */
export type FileDescriptorLike = number | { fileno(): number };

/** @internal Throws `NativeUnavailableError` (saying why) when the native addon cannot be loaded. */
export function requireNative(): void {
  // Reading an addon constant loads the addon, or throws the error that says why it cannot be loaded.
  if (!native.nativeAvailable()) void native.constants.AF_UNIX;
}

/** @internal asyncio's `selectors._fileobj_to_fd`. */
export function fileobjToFd(fd: unknown): number {
  let fileno: unknown = fd;
  if (typeof fd !== 'number') {
    const method = (fd as { fileno?: unknown } | null)?.fileno;
    if (typeof method !== 'function') throw new ValueError(`Invalid file object: ${inspect(fd, { depth: 0 })}`);
    fileno = (method as () => unknown).call(fd);
  }
  if (typeof fileno !== 'number' || !Number.isInteger(fileno) || fileno < 0) {
    throw new ValueError(`Invalid file descriptor: ${inspect(fileno, { depth: 0 })}`);
  }
  return fileno;
}

// ---------------------------------------------------------------------------------------------------------
// The fd → transport registry (asyncio's `loop._transports`)

const transportRegistry = new WeakMap<BaseEventLoop, Map<number, BaseTransport>>();

/**
 * @internal Records that `transport` owns `fd` on `loop`: `addReader`/`addWriter`/`remove*` then refuse the fd
 * ("File descriptor N is used by transport T") until the transport is closing or unregisters it. Every
 * transport that polls its fd itself, or hands it to a Node handle, registers it.
 *
 * @param loop - the transport's loop.
 * @param fd - the file descriptor.
 * @param transport - its owner.
 */
export function registerTransportFd(loop: BaseEventLoop, fd: number, transport: BaseTransport): void {
  let map = transportRegistry.get(loop);
  if (map === undefined) {
    map = new Map();
    transportRegistry.set(loop, map);
  }
  map.set(fd, transport);
}

/**
 * @internal Forgets that `transport` owns `fd` (call it before the fd is closed).
 *
 * @param loop - the transport's loop.
 * @param fd - the file descriptor.
 * @param transport - when given, the entry is removed only if it is this transport's.
 */
export function unregisterTransportFd(loop: BaseEventLoop, fd: number, transport?: BaseTransport): void {
  const map = transportRegistry.get(loop);
  if (map === undefined) return;
  if (transport === undefined || map.get(fd) === transport) map.delete(fd);
}

/** @internal True when a transport owns `fd` on `loop`. */
export function fdHasTransport(loop: BaseEventLoop, fd: number): boolean {
  return transportRegistry.get(loop)?.has(fd) === true;
}

/** @internal asyncio's `_ensure_fd_no_transport` (the `sock*` methods call it too). */
export function ensureFdNoTransport(loop: BaseEventLoop, fd: unknown): number {
  const fileno = fileobjToFd(fd);
  const transport = transportRegistry.get(loop)?.get(fileno);
  if (transport !== undefined && !transport.isClosing()) {
    throw new RuntimeError(`File descriptor ${inspect(fd, { depth: 0 })} is used by transport ${inspect(transport)}`);
  }
  return fileno;
}

// ---------------------------------------------------------------------------------------------------------
// Watching file descriptors

/** One polled fd and the reader and writer Handles registered for it (asyncio's selector key). */
interface FdWatcher {
  readonly loop: BaseEventLoop;
  readonly fd: number;
  poll: PollHandle | null;
  /** The events the poll waits for now. */
  mask: number;
  reader: Handle | null;
  writer: Handle | null;
  /** Events whose Handle is in the ready queue and has not run yet. */
  queued: number;
  /** Events left out of `mask` because they fired again while queued (the loop is not running). */
  suppressed: number;
  /** What the ready queue holds when the fd is readable (made once, with the watcher). */
  readRunner: WatcherRunner;
  /** What the ready queue holds when the fd is writable. */
  writeRunner: WatcherRunner;
  /** What a slow-callback report or an exception context shows for the runners. */
  [inspectSymbol](): string;
}

const inspectSymbol = Symbol.for('nodejs.util.inspect.custom');

const watcherRegistry = new WeakMap<BaseEventLoop, Map<number, FdWatcher>>();
/** @internal The event of a read watcher. */
export const READ = native.READABLE;
/** @internal The event of a write watcher. */
export const WRITE = native.WRITABLE;

function wantedMask(w: FdWatcher): number {
  return ((w.reader !== null ? READ : 0) | (w.writer !== null ? WRITE : 0)) & ~w.suppressed;
}

function updatePoll(w: FdWatcher): void {
  const mask = wantedMask(w);
  if (w.poll !== null && mask !== w.mask) native.pollUpdate(w.poll, mask);
  w.mask = mask;
}

function queueEvent(w: FdWatcher, event: number): void {
  if ((w.queued & event) !== 0) {
    // Fired again before its Handle ran: the loop is stopped. Stop polling for it until the Handle runs, so
    // that a level-triggered fd does not spin Node's loop meanwhile.
    w.suppressed |= event;
    updatePoll(w);
    return;
  }
  w.queued |= event;
  const runner = event === READ ? w.readRunner : w.writeRunner;
  w.loop._pushRunnable(runner);
}

function onPollEvent(w: FdWatcher, status: number, events: number): void {
  if (status < 0) {
    // libuv stopped the poll (POLLERR: e.g. the read end of a pipe we write to is closed). A selector reports
    // such an fd as both readable and writable; so do we, and the callbacks find the error themselves.
    if (w.poll !== null) native.pollStop(w.poll);
    w.poll = null;
    events = READ | WRITE;
  }
  if ((events & READ) !== 0 && w.reader !== null) queueEvent(w, READ);
  if ((events & WRITE) !== 0 && w.writer !== null) queueEvent(w, WRITE);
}

/**
 * What the ready queue holds for a ready fd: runs the reader or writer Handle of the watcher. A slow-callback
 * report (debug mode) names the Handle it ran, as asyncio's names the reader's Handle.
 */
class WatcherRunner implements Runnable {
  readonly _cancelled = false;
  readonly _resumes = false;
  /** The reader or writer Handle it ran last. */
  ran: Handle | null = null;

  constructor(
    readonly watcher: FdWatcher,
    readonly event: number,
  ) {}

  _run(): void {
    try {
      runWatcher(this.watcher, this.event, this);
    } catch (exception) {
      const context: ExceptionContextInput = { message: `Exception in callback ${this._describe()}`, exception };
      if (this.ran !== null) context.handle = this.ran;
      this.watcher.loop.callExceptionHandler(context);
    }
  }

  /** @internal What a slow-callback report shows: the Handle it ran. */
  _describe(): string {
    return this.ran?._describe() ?? inspect(this.watcher);
  }

  /** @internal Where the Handle it ran was made (debug mode). */
  get _sourceTraceback(): string | undefined {
    return this.ran?._sourceTraceback;
  }

  [inspectSymbol](): string {
    return this.ran !== null ? inspect(this.ran) : inspect(this.watcher);
  }
}

/** Runs the reader or writer Handle of `w` for `runner`. */
function runWatcher(w: FdWatcher, event: number, runner: WatcherRunner): void {
  w.queued &= ~event;
  if ((w.suppressed & event) !== 0) {
    w.suppressed &= ~event;
    updatePoll(w);
  }
  const handle = event === READ ? w.reader : w.writer;
  runner.ran = handle;
  if (handle !== null) {
    if (handle.cancelled()) {
      removeWatcher(w.loop, w.fd, event);
    } else {
      handle._run();
    }
  }
  if (w.poll === null && (w.reader !== null || w.writer !== null) && watcherRegistry.get(w.loop)?.get(w.fd) === w) {
    restartPoll(w);
  }
}

/** After a poll error, polls again while callbacks are registered (a selector would keep reporting the fd). */
function restartPoll(w: FdWatcher): void {
  try {
    startPoll(w);
  } catch (exception) {
    w.loop.callExceptionHandler({ message: `Cannot poll file descriptor ${w.fd} again`, exception });
  }
}

function startPoll(w: FdWatcher): void {
  const mask = wantedMask(w);
  const poll = native.pollStart(w.fd, mask, (status, events) => onPollEvent(w, status, events));
  // While the loop runs its keep-alive holds the process; a poll alone must not keep a stopped loop's process.
  native.pollUnref(poll);
  w.poll = poll;
  w.mask = mask;
}

/** @internal Registers `callback(...args)` for `event` on `fd` (replacing one already there); the Handle. */
export function addWatcher(
  loop: BaseEventLoop,
  fd: number,
  event: number,
  callback: Callback,
  args: unknown[],
): Handle {
  loop._checkClosed();
  const handle = new Handle(callback, args, loop, captureContext());
  let map = watcherRegistry.get(loop);
  if (map === undefined) {
    map = new Map();
    watcherRegistry.set(loop, map);
  }
  const w = map.get(fd);
  if (w === undefined) {
    // The runners, which refer to the watcher, are set right below.
    const watcher = {
      loop,
      fd,
      poll: null,
      mask: 0,
      reader: event === READ ? handle : null,
      writer: event === WRITE ? handle : null,
      queued: 0,
      suppressed: 0,
      [inspectSymbol]: () => `<fd ${fd}${watcher.reader ? ' reader' : ''}${watcher.writer ? ' writer' : ''}>`,
    } as FdWatcher;
    watcher.readRunner = new WatcherRunner(watcher, READ);
    watcher.writeRunner = new WatcherRunner(watcher, WRITE);
    startPoll(watcher);
    map.set(fd, watcher);
    return handle;
  }
  const old = event === READ ? w.reader : w.writer;
  if (event === READ) w.reader = handle;
  else w.writer = handle;
  old?.cancel();
  if (w.poll === null) restartPoll(w);
  else updatePoll(w);
  return handle;
}

/** @internal Stops watching `fd` for `event`; whether it was watched. */
export function removeWatcher(loop: BaseEventLoop, fd: number, event: number): boolean {
  if (loop.isClosed()) return false;
  const map = watcherRegistry.get(loop);
  const w = map?.get(fd);
  if (map === undefined || w === undefined) return false;
  const old = event === READ ? w.reader : w.writer;
  if (event === READ) w.reader = null;
  else w.writer = null;
  old?.cancel();
  if (w.reader === null && w.writer === null) {
    // Stopped now, not later: the caller may close the fd right after.
    if (w.poll !== null) native.pollStop(w.poll);
    w.poll = null;
    map.delete(fd);
  } else {
    updatePoll(w);
  }
  return old !== null;
}

onLoopClose((loop) => {
  const map = watcherRegistry.get(loop);
  if (map === undefined) return;
  for (const w of map.values()) {
    if (w.poll !== null) native.pollStop(w.poll);
    w.poll = null;
    w.reader?.cancel();
    w.writer?.cancel();
    w.reader = null;
    w.writer = null;
  }
  map.clear();
});

// ---------------------------------------------------------------------------------------------------------
// The loop methods

extendEventLoop({
  addReader(this: BaseEventLoop, fd: FileDescriptorLike, callback: Callback, ...args: unknown[]): void {
    requireNative();
    const fileno = ensureFdNoTransport(this, fd);
    checkCallback(callback, 'addReader');
    // A system error from polling (EBADF, EPERM for a regular file) is the OSError asyncio's selector raises.
    withOSErrors(() => addWatcher(this, fileno, READ, callback, args));
  },
  removeReader(this: BaseEventLoop, fd: FileDescriptorLike): boolean {
    requireNative();
    return removeWatcher(this, ensureFdNoTransport(this, fd), READ);
  },
  addWriter(this: BaseEventLoop, fd: FileDescriptorLike, callback: Callback, ...args: unknown[]): void {
    requireNative();
    const fileno = ensureFdNoTransport(this, fd);
    checkCallback(callback, 'addWriter');
    withOSErrors(() => addWatcher(this, fileno, WRITE, callback, args));
  },
  removeWriter(this: BaseEventLoop, fd: FileDescriptorLike): boolean {
    requireNative();
    return removeWatcher(this, ensureFdNoTransport(this, fd), WRITE);
  },
  _addReader(this: BaseEventLoop, fd: number, callback: Callback, ...args: unknown[]): Handle {
    return addWatcher(this, fd, READ, callback, args);
  },
  _removeReader(this: BaseEventLoop, fd: number): boolean {
    return removeWatcher(this, fd, READ);
  },
  _addWriter(this: BaseEventLoop, fd: number, callback: Callback, ...args: unknown[]): Handle {
    return addWatcher(this, fd, WRITE, callback, args);
  },
  _removeWriter(this: BaseEventLoop, fd: number): boolean {
    return removeWatcher(this, fd, WRITE);
  },
});

declare module './base-event-loop.js' {
  interface BaseEventLoop {
    /**
     * Starts watching `fd` for read availability and calls `callback(...args)` (as a loop Handle, in the context
     * current now) each time it is readable, until `removeReader(fd)` (asyncio's `add_reader`). Replaces the
     * reader already registered for `fd`, if any. Polls with libuv's `uv_poll` (the native addon): never watch
     * an fd a Node handle (`net.Socket`, a stream) owns.
     *
     * @param fd - a file descriptor (pipe, socket, FIFO, eventfd, tty…; not a regular file), or an object with
     *   `fileno()`.
     * @param callback - a plain function; its exceptions go to the loop's exception handler.
     * @param args - arguments for `callback`.
     * @throws RuntimeError "File descriptor N is used by transport T" for a transport's fd, or when the loop is
     *   closed; ValueError for an invalid fd; NativeUnavailableError when the addon is missing; OSError from
     *   polling, with the system error's `code` (`PermissionError` for a regular file, `EEXIST` for an fd a Node
     *   handle watches, `EBADF` for one that is not open).
     * @example
     * loop.addReader(fd, () => { const n = read(fd, buf); … });
     */
    addReader<A extends unknown[]>(fd: FileDescriptorLike, callback: Callback<A>, ...args: A): void;
    /**
     * Stops watching `fd` for read availability (asyncio's `remove_reader`).
     *
     * @returns true if `fd` was watched for reading; false otherwise (and on a closed loop).
     * @throws RuntimeError for an fd a transport owns; NativeUnavailableError when the addon is missing.
     */
    removeReader(fd: FileDescriptorLike): boolean;
    /**
     * Starts watching `fd` for write availability and calls `callback(...args)` each time it is writable
     * (asyncio's `add_writer`); as `addReader` otherwise.
     */
    addWriter<A extends unknown[]>(fd: FileDescriptorLike, callback: Callback<A>, ...args: A): void;
    /**
     * Stops watching `fd` for write availability (asyncio's `remove_writer`).
     *
     * @returns true if `fd` was watched for writing.
     */
    removeWriter(fd: FileDescriptorLike): boolean;
    /** @internal `addReader` for transports: no transport check; returns the registered Handle. */
    _addReader(fd: number, callback: Callback, ...args: unknown[]): Handle;
    /** @internal */
    _removeReader(fd: number): boolean;
    /** @internal `addWriter` for transports: no transport check; returns the registered Handle. */
    _addWriter(fd: number, callback: Callback, ...args: unknown[]): Handle;
    /** @internal */
    _removeWriter(fd: number): boolean;
  }
}
