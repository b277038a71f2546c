/**
 * What asyncio's `unix_events.py` (with `base_subprocess.py` and the fd-watching part of `selector_events.py`)
 * adds to the loop, on Node:
 *
 * - **Watching file descriptors**: `addReader`, `removeReader`, `addWriter`, `removeWriter`, on libuv's
 *   `uv_poll` through the native addon (one poll per fd; its callbacks are queued as loop Handles). An fd that
 *   a transport owns is refused, as asyncio does: transports register their fd with
 *   {@link registerTransportFd}.
 * - **Pipes**: `connectReadPipe` and `connectWritePipe`, for a file descriptor (polled directly, as asyncio's
 *   `_UnixReadPipeTransport` and `_UnixWritePipeTransport` do) or a Node stream (`process.stdin`, a FIFO's
 *   `fs.ReadStream`, a `net.Socket`).
 * - **Subprocesses**: `subprocessExec` and `subprocessShell` with `PIPE`, `STDOUT`, `DEVNULL`, inheritance, an
 *   fd or a stream for each of the child's stdio; the transport is asyncio's `BaseSubprocessTransport` on
 *   Node's `child_process.spawn`, its pipes the pipe transports above.
 *
 * Signal handling, asyncio's other Unix addition, is in `node-event-loop.ts` (the only module that touches
 * `process.on`). The high-level `createSubprocessExec`/`createSubprocessShell` need the streams API and live
 * with it.
 *
 * Without the native addon, fd watching throws `NativeUnavailableError`, pipes given as fds use Node streams,
 * and subprocess pipes are Node's own (`stderr: STDOUT` with a piped stdout then needs the addon).
 *
 * @module
 */
import type { ChildProcess, SpawnOptions, StdioOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { PassThrough, Stream } from 'node:stream';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import { extendEventLoop } from './base-event-loop.js';
import { captureContext } from './context.js';
import { InvalidArgTypeError, NativeUnavailableError, RuntimeError, ValueError } from './errors.js';
import type { Future } from './futures.js';
import { setResultUnlessCancelled } from './futures.js';
import type { Callback } from './handles.js';
import { Handle } from './handles.js';
import type { PollHandle } from './native.js';
import * as native from './native.js';
import { onLoopClose } from './node-event-loop.js';
import type { BaseProtocol, Protocol, ProtocolFactory, SubprocessProtocol } from './protocols.js';
import { BaseProtocol as BaseProtocolClass } from './protocols.js';
import type { BaseTransport, ExtraInfo, ReadTransport, SubprocessTransport, WriteTransport } from './transports.js';
import { FlowControlTransport, checkBytes } from './transports.js';

// ---------------------------------------------------------------------------------------------------------
// Shared helpers

/** A file descriptor, or an object that has one (`fileno()`), as asyncio's selectors accept. */
export type FileDescriptorLike = number | { fileno(): number };

/** After this many writes to a lost pipe, each further one logs a warning (asyncio's constant). */
const LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5;
/** Errors a pipe transport closes on without calling the exception handler (asyncio's `_FATAL_ERROR_IGNORE`). */
const FATAL_ERROR_IGNORE = new Set(['EPIPE', 'ECONNRESET', 'ECONNABORTED']);

/** Queues `fn(...args)` on the loop with the current context, without `callSoon`'s argument checks. */
function soon(loop: BaseEventLoop, fn: (...args: never[]) => unknown, ...args: unknown[]): Handle {
  return loop._callSoonInternal(fn, args, captureContext());
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function brokenPipeError(): Error {
  return native.systemError(osConstants.errno.EPIPE, 'write');
}

/** Throws `NativeUnavailableError` (saying why) when the native addon cannot be loaded. */
function requireNative(): void {
  // Reading an addon constant loads the addon, or throws the error that says why it cannot be loaded.
  if (!native.nativeAvailable()) void native.constants.AF_UNIX;
}

/** asyncio's `selectors._fileobj_to_fd`. */
function fileobjToFd(fd: unknown): number {
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

function checkCallback(callback: unknown, method: string): void {
  if (typeof callback !== 'function') {
    throw new InvalidArgTypeError(
      `a callable object was expected by ${method}(), got ${inspect(callback, { depth: 0 })}`,
    );
  }
  const name = (callback as { constructor?: { name?: string } }).constructor?.name;
  if (name === 'AsyncFunction' || name === 'AsyncGeneratorFunction') {
    throw new InvalidArgTypeError(`coroutines cannot be used with ${method}()`);
  }
}

function inspectExtra(extra: Record<string, unknown>, name: string, defaultValue: unknown): unknown {
  return Object.prototype.hasOwnProperty.call(extra, name) ? extra[name] : defaultValue;
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
  readonly readRunner: Handle;
  readonly writeRunner: Handle;
  /** What a slow-callback report or an exception context shows for the runners. */
  [inspectSymbol](): string;
}

const inspectSymbol = Symbol.for('nodejs.util.inspect.custom');

const watcherRegistry = new WeakMap<BaseEventLoop, Map<number, FdWatcher>>();
const READ = native.READABLE;
const WRITE = native.WRITABLE;

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

/** Runs the reader or writer Handle of `w`: what the ready queue holds for a ready fd. */
function runWatcher(w: FdWatcher, event: number): void {
  w.queued &= ~event;
  if ((w.suppressed & event) !== 0) {
    w.suppressed &= ~event;
    updatePoll(w);
  }
  const handle = event === READ ? w.reader : w.writer;
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

function addWatcher(loop: BaseEventLoop, fd: number, event: number, callback: Callback, args: unknown[]): Handle {
  loop._checkClosed();
  const handle = new Handle(callback, args, loop, captureContext());
  let map = watcherRegistry.get(loop);
  if (map === undefined) {
    map = new Map();
    watcherRegistry.set(loop, map);
  }
  const w = map.get(fd);
  if (w === undefined) {
    const watcher: FdWatcher = {
      loop,
      fd,
      poll: null,
      mask: 0,
      reader: event === READ ? handle : null,
      writer: event === WRITE ? handle : null,
      queued: 0,
      suppressed: 0,
      readRunner: new Handle(runWatcher as Callback, [], loop, null),
      writeRunner: new Handle(runWatcher as Callback, [], loop, null),
      [inspectSymbol]: () => `<fd ${fd}${watcher.reader ? ' reader' : ''}${watcher.writer ? ' writer' : ''}>`,
    };
    watcher.readRunner._args = [watcher, READ];
    watcher.writeRunner._args = [watcher, WRITE];
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

function removeWatcher(loop: BaseEventLoop, fd: number, event: number): boolean {
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
// What the pipe transports share (asyncio's _UnixReadPipeTransport and _UnixWritePipeTransport, less the pipe)

/** What `connectReadPipe` and `connectWritePipe` take: a file descriptor, an object with one, or a Node stream. */
export type PipeLike = number | { fileno(): number } | Readable | Writable;

/** The protocol a read pipe calls: a `Protocol` (`connectionMade`, `dataReceived`, `eofReceived`, `connectionLost`). */
export type ReadPipeProtocol = BaseProtocol & Pick<Protocol, 'dataReceived' | 'eofReceived'>;

/** Reads of one readiness event, at most (asyncio's `max_size`), into one scratch buffer copied out. */
const MAX_READ = 256 * 1024;

/**
 * The first half of asyncio's `_fatal_error`: an error that only says the other end is gone is logged in debug
 * mode, any other goes to the exception handler. The caller then closes the transport.
 */
function reportFatalError(
  loop: BaseEventLoop,
  transport: BaseTransport & { _describe(): string },
  protocol: BaseProtocol | null,
  exc: Error,
  message: string,
  expected: boolean,
): void {
  if (expected) {
    if (loop.getDebug()) loop.logger.debug({ err: exc, transport: transport._describe() }, message);
  } else {
    loop.callExceptionHandler({ message, exception: exc, transport, protocol });
  }
}

/**
 * How a pipe transport prints: `<Name closed|closing fd=N state…>`, the fd and the state only where known.
 *
 * @param state - words for an open pipe (left out once it is closed).
 */
function describePipe(
  transport: object,
  closed: boolean,
  closing: boolean,
  fd: unknown,
  state: () => readonly string[],
): string {
  const info = [transport.constructor.name];
  if (closed) info.push('closed');
  else if (closing) info.push('closing');
  if (typeof fd === 'number') info.push(`fd=${fd}`);
  if (!closed) info.push(...state());
  return `<${info.join(' ')}>`;
}

/**
 * What the two read pipe transports share: the protocol, `extra`, closing and pausing state, asyncio's
 * `_fatal_error`, `_close` and `_call_connection_lost` order, and the EOF path. A subclass holds the pipe `P`
 * itself (an fd polled through the addon, or a Node stream) and says how to stop reading it, how to queue
 * its callbacks, and how to release it.
 */
abstract class ReadPipeTransportBase<P> implements ReadTransport {
  /** @internal */
  _loop: BaseEventLoop | null;
  /** @internal */
  _pipe: P | null;
  /** @internal */
  _protocol: ReadPipeProtocol | null;
  /** @internal */
  _closing = false;
  /** @internal */
  _paused = false;
  readonly #extra: Record<string, unknown>;

  protected constructor(loop: BaseEventLoop, pipe: P, protocol: ReadPipeProtocol, extra: Record<string, unknown>) {
    this.#extra = extra;
    this._loop = loop;
    this._pipe = pipe;
    this._protocol = protocol;
  }

  abstract pauseReading(): void;

  abstract resumeReading(): void;

  /** @internal Stops reading the pipe for good (the transport is closing). */
  abstract _stopReading(): void;

  /** @internal Queues `fn(...args)` on the loop, in the context this pipe's callbacks run in. */
  abstract _soon(fn: (...args: never[]) => unknown, ...args: unknown[]): void;

  /** @internal Releases the pipe once `connectionLost` was called (the fd is closed, the stream destroyed). */
  abstract _releasePipe(pipe: P): void;

  /** @internal How the transport prints. */
  abstract _describe(): string;

  /** @internal The pipe reached EOF: `eofReceived()`, then `connectionLost(null)` (asyncio's `_read_ready`). */
  _readEof(): void {
    const loop = this._loop;
    const protocol = this._protocol;
    if (loop === null || protocol === null) return;
    if (loop.getDebug()) loop.logger.info({ transport: this._describe() }, 'pipe was closed by peer');
    this._closing = true;
    this._stopReading();
    this._soon(protocol.eofReceived.bind(protocol));
    this._soon(this._callConnectionLost.bind(this), null);
  }

  isReading(): boolean {
    return !this._paused && !this._closing;
  }

  setProtocol(protocol: BaseProtocol): void {
    this._protocol = protocol as ReadPipeProtocol;
  }

  getProtocol(): BaseProtocol {
    return this._protocol as BaseProtocol;
  }

  isClosing(): boolean {
    return this._closing;
  }

  close(): void {
    if (!this._closing) this._close(null);
  }

  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return inspectExtra(this.#extra, name, defaultValue);
  }

  /** @internal */
  _fatalError(exc: Error, message = 'Fatal error on pipe transport'): void {
    const loop = this._loop;
    if (loop === null) return;
    reportFatalError(loop, this, this._protocol, exc, message, errorCode(exc) === 'EIO');
    this._close(exc);
  }

  /** @internal */
  _close(exc: Error | null): void {
    if (this._loop === null) return;
    this._closing = true;
    this._stopReading();
    this._soon(this._callConnectionLost.bind(this), exc);
  }

  /** @internal */
  _callConnectionLost(exc: Error | null): void {
    try {
      this._protocol?.connectionLost(exc);
    } finally {
      if (this._pipe !== null) this._releasePipe(this._pipe);
      this._pipe = null;
      this._protocol = null;
      this._loop = null;
    }
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._describe();
  }
}

/**
 * What the two write pipe transports share: the protocol, `extra`, the closing state and the count of writes
 * after the pipe was lost, `write()`'s checks, the peer-closed path, and asyncio's `_fatal_error`, `_close`
 * and `_call_connection_lost` order. A subclass holds the pipe `P` itself (an fd written through the addon, or
 * a Node stream): how to write to it, how big its buffer is, how to end it, drop it, and release it.
 */
abstract class WritePipeTransportBase<P> extends FlowControlTransport implements WriteTransport {
  /** @internal */
  _pipe: P | null;
  /** @internal */
  _protocol: BaseProtocol;
  /** @internal */
  _connLost = 0;
  /** @internal set by close() or writeEof(). */
  _closing = false;
  /** @internal set once the transport is closed for good (connectionLost scheduled or called). */
  _lost = false;
  readonly #extra: Record<string, unknown>;

  protected constructor(loop: BaseEventLoop, pipe: P, protocol: BaseProtocol, extra: Record<string, unknown>) {
    super(loop);
    this.#extra = extra;
    this._pipe = pipe;
    this._protocol = protocol;
  }

  abstract writeEof(): void;

  /** @internal Writes `data` (not empty) to the open pipe now, or buffers what it does not take. */
  abstract _writeData(data: Uint8Array, pipe: P): void;

  /** @internal Drops the buffered data and stops watching the pipe (the transport is aborted or failed). */
  abstract _abortPipe(): void;

  /** @internal Queues `fn(...args)` on the loop, in the context this pipe's callbacks run in. */
  abstract _soon(fn: (...args: never[]) => unknown, ...args: unknown[]): void;

  /** @internal Releases the pipe once `connectionLost` was called (the fd is closed, the stream destroyed). */
  abstract _releasePipe(pipe: P): void;

  /** @internal How the transport prints. */
  abstract _describe(): string;

  /** @internal Pipe was closed by peer. */
  _readReady(): void {
    if (this._loop.getDebug()) this._loop.logger.info({ transport: this._describe() }, 'pipe was closed by peer');
    if (this.getWriteBufferSize() > 0) this._close(brokenPipeError());
    else this._close(null);
  }

  write(data: Uint8Array): void {
    checkBytes(data);
    if (data.byteLength === 0) return;
    const pipe = this._pipe;
    if (this._connLost > 0 || this._closing || pipe === null) {
      if (this._connLost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
        this._loop.logger.warn('pipe closed by peer or os.write(pipe, data) raised exception.');
      }
      this._connLost++;
      return;
    }
    this._writeData(data, pipe);
  }

  writelines(list: Iterable<Uint8Array>): void {
    const chunks = [...list];
    for (const chunk of chunks) checkBytes(chunk, 'writelines');
    this.write(Buffer.concat(chunks));
  }

  canWriteEof(): boolean {
    return true;
  }

  setProtocol(protocol: BaseProtocol): void {
    this._protocol = protocol;
  }

  getProtocol(): BaseProtocol {
    return this._protocol;
  }

  isClosing(): boolean {
    return this._closing;
  }

  close(): void {
    // writeEof() is all that is needed to close the write pipe.
    if (this._pipe !== null && !this._closing) this.writeEof();
  }

  abort(): void {
    if (this._pipe !== null && !this._lost) this._close(null);
  }

  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return inspectExtra(this.#extra, name, defaultValue);
  }

  /** @internal */
  _fatalError(exc: Error, message = 'Fatal error on pipe transport'): void {
    const code = errorCode(exc);
    reportFatalError(
      this._loop,
      this,
      this._protocol,
      exc,
      message,
      code !== undefined && FATAL_ERROR_IGNORE.has(code),
    );
    this._close(exc);
  }

  /** @internal */
  _close(exc: Error | null): void {
    if (this._lost) return;
    this._closing = true;
    this._lost = true;
    this._abortPipe();
    this._soon(this._callConnectionLost.bind(this), exc);
  }

  /** @internal */
  _callConnectionLost(exc: Error | null): void {
    const pipe = this._pipe;
    if (pipe === null) return;
    this._lost = true;
    try {
      this._protocol.connectionLost(exc);
    } finally {
      this._releasePipe(pipe);
      this._pipe = null;
    }
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._describe();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Pipe transports on a file descriptor, polled through the native addon

/** Closes the pipe a transport got: `close()` on an object, `close(2)` on a bare fd. */
function closePipe(pipe: PipeLike, fd: number): void {
  const close = (pipe as { close?: unknown }).close;
  try {
    if (typeof pipe !== 'number' && typeof close === 'function') (close as () => void).call(pipe);
    else native.close(fd);
  } catch {
    // Already closed by its owner: nothing left to release.
  }
}

let readScratch: Buffer | null = null;

class UnixReadPipeTransport extends ReadPipeTransportBase<PipeLike> {
  /** @internal */
  readonly _fileno: number;
  readonly #readReady = (): void => this._readReady();

  constructor(
    loop: BaseEventLoop,
    pipe: PipeLike,
    fd: number,
    protocol: ReadPipeProtocol,
    waiter: Future<void> | null,
    extra: Record<string, unknown> = {},
  ) {
    super(loop, pipe, protocol, { ...extra, pipe });
    this._fileno = fd;
    const st = fstatSync(fd);
    if (!(st.isFIFO() || st.isSocket() || st.isCharacterDevice())) {
      this._pipe = null;
      this._protocol = null;
      throw new ValueError('Pipe transport is for pipes/sockets only.');
    }
    native.setBlocking(fd, false);
    registerTransportFd(loop, fd, this);
    soon(loop, protocol.connectionMade.bind(protocol), this);
    // Only start reading when connectionMade() has been called.
    soon(loop, this.#startReading.bind(this));
    // Only wake up the waiter when connectionMade() has been called.
    if (waiter !== null) soon(loop, setResultUnlessCancelled, waiter, undefined);
  }

  #startReading(): void {
    if (this._loop !== null && !this._closing && !this._paused) {
      addWatcher(this._loop, this._fileno, READ, this.#readReady, []);
    }
  }

  /** @internal */
  _readReady(): void {
    const loop = this._loop;
    const protocol = this._protocol;
    if (loop === null || protocol === null) return;
    readScratch ??= Buffer.allocUnsafe(MAX_READ);
    let n: number;
    try {
      n = native.read(this._fileno, readScratch, 0, MAX_READ);
    } catch (exc) {
      this._fatalError(exc as Error, 'Fatal read error on pipe transport');
      return;
    }
    if (n < 0) return;
    if (n > 0) {
      protocol.dataReceived(Buffer.from(readScratch.subarray(0, n)));
      return;
    }
    this._readEof();
  }

  pauseReading(): void {
    if (this._closing || this._paused || this._loop === null) return;
    this._paused = true;
    removeWatcher(this._loop, this._fileno, READ);
  }

  resumeReading(): void {
    if (this._closing || !this._paused || this._loop === null) return;
    this._paused = false;
    addWatcher(this._loop, this._fileno, READ, this.#readReady, []);
  }

  /** @internal */
  _stopReading(): void {
    if (this._loop !== null) removeWatcher(this._loop, this._fileno, READ);
  }

  /** @internal */
  _soon(fn: (...args: never[]) => unknown, ...args: unknown[]): void {
    if (this._loop !== null) soon(this._loop, fn, ...args);
  }

  /** @internal */
  _releasePipe(pipe: PipeLike): void {
    if (this._loop !== null) {
      // The poll must stop before the fd is closed.
      removeWatcher(this._loop, this._fileno, READ);
      unregisterTransportFd(this._loop, this._fileno, this);
    }
    closePipe(pipe, this._fileno);
  }

  /** @internal */
  _describe(): string {
    return describePipe(this, this._pipe === null, this._closing, this._fileno, () => [
      this.isReading() ? 'polling' : 'idle',
    ]);
  }
}

class UnixWritePipeTransport extends WritePipeTransportBase<PipeLike> {
  /** @internal */
  readonly _fileno: number;
  /** @internal buffered bytes not yet taken by the kernel, in order. */
  _buffer: Buffer[] = [];
  /** @internal */
  _bufferSize = 0;
  readonly #readReady = (): void => this._readReady();
  readonly #writeReady = (): void => this._writeReady();

  constructor(
    loop: BaseEventLoop,
    pipe: PipeLike,
    fd: number,
    protocol: BaseProtocol,
    waiter: Future<void> | null,
    extra: Record<string, unknown> = {},
  ) {
    super(loop, pipe, protocol, { ...extra, pipe });
    this._fileno = fd;
    const st = fstatSync(fd);
    const isSocket = st.isSocket();
    const isFifo = st.isFIFO();
    if (!(isSocket || isFifo || st.isCharacterDevice())) {
      this._pipe = null;
      throw new ValueError('Pipe transport is only for pipes, sockets and character devices');
    }
    native.setBlocking(fd, false);
    registerTransportFd(loop, fd, this);
    soon(loop, protocol.connectionMade.bind(protocol), this);
    // A readable write end means the other end was closed (a socket reads EOF; a pipe polls POLLERR). Watch it
    // once connectionMade() has been called.
    if (isSocket || isFifo) soon(loop, this.#watchPeer.bind(this));
    if (waiter !== null) soon(loop, setResultUnlessCancelled, waiter, undefined);
  }

  #watchPeer(): void {
    if (!this._lost && this._pipe !== null) addWatcher(this._loop, this._fileno, READ, this.#readReady, []);
  }

  getWriteBufferSize(): number {
    return this._bufferSize;
  }

  /** @internal */
  _writeData(data: Uint8Array): void {
    let rest = data;
    if (this._bufferSize === 0) {
      // Attempt to send it right away first.
      let n: number;
      try {
        n = native.write(this._fileno, data);
      } catch (exc) {
        this._connLost++;
        this._fatalError(exc as Error, 'Fatal write error on pipe transport');
        return;
      }
      if (n === data.byteLength) return;
      if (n > 0) rest = data.subarray(n);
      addWatcher(this._loop, this._fileno, WRITE, this.#writeReady, []);
    }
    // A copy: the caller may reuse its buffer as soon as write() returns.
    this._buffer.push(Buffer.from(rest));
    this._bufferSize += rest.byteLength;
    this._maybePauseProtocol();
  }

  /** @internal */
  _writeReady(): void {
    if (this._bufferSize === 0) return;
    let n: number;
    try {
      n = native.writev(this._fileno, this._buffer);
    } catch (exc) {
      this._buffer = [];
      this._bufferSize = 0;
      this._connLost++;
      // Remove the writer here: _fatalError() does not, the buffer being empty.
      removeWatcher(this._loop, this._fileno, WRITE);
      this._fatalError(exc as Error, 'Fatal write error on pipe transport');
      return;
    }
    if (n < 0) return;
    if (n === this._bufferSize) {
      this._buffer = [];
      this._bufferSize = 0;
      removeWatcher(this._loop, this._fileno, WRITE);
      this._maybeResumeProtocol(); // May append to the buffer.
      if (this._bufferSize === 0 && this._closing) {
        removeWatcher(this._loop, this._fileno, READ);
        this._callConnectionLost(null);
      }
      return;
    }
    this._bufferSize -= n;
    while (n > 0) {
      const head = this._buffer[0] as Buffer;
      if (head.byteLength <= n) {
        this._buffer.shift();
        n -= head.byteLength;
      } else {
        this._buffer[0] = head.subarray(n);
        n = 0;
      }
    }
  }

  writeEof(): void {
    if (this._closing || this._pipe === null) return;
    this._closing = true;
    if (this._bufferSize === 0) {
      removeWatcher(this._loop, this._fileno, READ);
      soon(this._loop, this._callConnectionLost.bind(this), null);
    }
  }

  /** @internal */
  _abortPipe(): void {
    if (this._bufferSize > 0) removeWatcher(this._loop, this._fileno, WRITE);
    this._buffer = [];
    this._bufferSize = 0;
    removeWatcher(this._loop, this._fileno, READ);
  }

  /** @internal */
  _soon(fn: (...args: never[]) => unknown, ...args: unknown[]): void {
    soon(this._loop, fn, ...args);
  }

  /** @internal */
  _releasePipe(pipe: PipeLike): void {
    // The poll must stop before the fd is closed.
    removeWatcher(this._loop, this._fileno, READ);
    removeWatcher(this._loop, this._fileno, WRITE);
    unregisterTransportFd(this._loop, this._fileno, this);
    closePipe(pipe, this._fileno);
  }

  /** @internal */
  _describe(): string {
    return describePipe(this, this._pipe === null, this._closing, this._fileno, () => [
      this._bufferSize > 0 ? 'polling' : 'idle',
      `bufsize=${this._bufferSize}`,
    ]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Pipe transports on a Node stream

function ignoreError(): void {}

/** A stream's fd, where it has one (to print). */
function streamFd(stream: Stream | null): unknown {
  return (stream as { fd?: unknown } | null)?.fd;
}

class StreamReadPipeTransport extends ReadPipeTransportBase<Readable> {
  /** Chunks the stream emitted, delivered by a Handle (so in loop order, and never while paused). */
  #pending: Buffer[] = [];
  #pendingSize = 0;
  /** EOF (`null`) or the stream's error, once the stream ended; delivered after the pending data. */
  #end: Error | null | undefined = undefined;
  #deliverScheduled = false;
  /** The context of the callbacks this transport schedules from stream events (asyncio's reader Handle's). */
  readonly #context = captureContext();
  readonly #onData = (chunk: Buffer | string): void => {
    if (this._closing) return;
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.#pending.push(data);
    this.#pendingSize += data.byteLength;
    // Held back while the loop does not deliver (stopped, or paused): let the stream push back meanwhile.
    if (this.#pendingSize >= MAX_READ) this._pipe?.pause();
    this.#scheduleDeliver();
  };
  readonly #onEnd = (): void => this.#ended(null);
  readonly #onError = (err: Error): void => this.#ended(err);

  constructor(
    loop: BaseEventLoop,
    stream: Readable,
    protocol: ReadPipeProtocol,
    waiter: Future<void> | null,
    extra: Record<string, unknown> = {},
  ) {
    super(loop, stream, protocol, { pipe: stream, ...extra });
    // Read from now on: the chunks wait in #pending and are delivered by Handles queued after connectionMade().
    // Reading late would lose data: Node resumes a child's exited stdio streams whether or not anyone reads.
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    // Destroyed without 'end' (by its owner): the pipe is gone, as after EOF.
    stream.on('close', this.#onEnd);
    stream.on('error', this.#onError);
    this._soon(protocol.connectionMade.bind(protocol), this);
    if (waiter !== null) this._soon(setResultUnlessCancelled, waiter, undefined);
    stream.resume();
    if (stream.readableEnded) this.#ended(null);
  }

  /** @internal */
  _soon(fn: (...args: never[]) => unknown, ...args: unknown[]): void {
    // Stream events may come after the loop was closed: nothing is left to call then.
    if (this._loop !== null && !this._loop.isClosed()) this._loop._callSoonInternal(fn, args, this.#context);
  }

  #ended(err: Error | null): void {
    if (this.#end !== undefined || this._closing) return;
    this.#end = err;
    this.#scheduleDeliver();
  }

  #scheduleDeliver(): void {
    const loop = this._loop;
    if (this.#deliverScheduled || this._paused || loop === null || loop.isClosed()) return;
    this.#deliverScheduled = true;
    this._soon(this.#deliver.bind(this));
  }

  /** One readiness event of asyncio's `_read_ready`: all the data received so far, or else the end. */
  #deliver(): void {
    this.#deliverScheduled = false;
    const protocol = this._protocol;
    if (this._closing || this._paused || this._loop === null || protocol === null) return;
    if (this.#pending.length > 0) {
      const data = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
      this.#pending = [];
      this.#pendingSize = 0;
      this._pipe?.resume();
      if (this.#end !== undefined) this.#scheduleDeliver();
      protocol.dataReceived(data);
      return;
    }
    const end = this.#end;
    if (end === undefined) return;
    if (end !== null) this._fatalError(end, 'Fatal read error on pipe transport');
    else this._readEof();
  }

  pauseReading(): void {
    if (this._closing || this._paused) return;
    this._paused = true;
    this._pipe?.pause();
  }

  resumeReading(): void {
    if (this._closing || !this._paused) return;
    this._paused = false;
    if (this.#pendingSize < MAX_READ) this._pipe?.resume();
    if (this.#pending.length > 0 || this.#end !== undefined) this.#scheduleDeliver();
  }

  /** @internal */
  _stopReading(): void {
    this.#pending = [];
    this.#pendingSize = 0;
    this._pipe?.pause();
  }

  /** @internal */
  _releasePipe(stream: Readable): void {
    stream.off('data', this.#onData);
    stream.off('end', this.#onEnd);
    stream.off('close', this.#onEnd);
    stream.off('error', this.#onError);
    // Errors of a stream being destroyed have nobody left to tell.
    stream.on('error', ignoreError);
    stream.destroy();
  }

  /** @internal */
  _describe(): string {
    return describePipe(this, this._pipe === null, this._closing, streamFd(this._pipe), () => [
      this.isReading() ? 'reading' : 'paused',
    ]);
  }
}

/** A stream that also reads (a socket): reading EOF from it means the other end is closed. */
function isDuplex(stream: Writable): boolean {
  const r = stream as unknown as Partial<Readable>;
  return r.readable === true && typeof r.resume === 'function';
}

class StreamWritePipeTransport extends WritePipeTransportBase<Writable> {
  /** The context of the callbacks this transport schedules from stream events. */
  readonly #context = captureContext();
  readonly #afterWrite = (err?: Error | null): void => {
    if (err == null && !this._lost) this._maybeResumeProtocol();
  };
  readonly #onError = (err: Error): void => {
    if (this._lost) return;
    this._connLost++;
    this._fatalError(err, 'Fatal write error on pipe transport');
  };
  /** The other end closed (a duplex stream read EOF, or the stream was destroyed by its owner). */
  readonly #onPeerClosed = (): void => {
    if (!this._lost) this._readReady();
  };
  readonly #onFinish = (): void => {
    if (!this._lost) {
      this._lost = true;
      this._soon(this._callConnectionLost.bind(this), null);
    }
  };

  constructor(
    loop: BaseEventLoop,
    stream: Writable,
    protocol: BaseProtocol,
    waiter: Future<void> | null,
    extra: Record<string, unknown> = {},
  ) {
    super(loop, stream, protocol, { pipe: stream, ...extra });
    stream.on('error', this.#onError);
    stream.on('close', this.#onPeerClosed);
    this._soon(protocol.connectionMade.bind(protocol), this);
    // A duplex (a socket) that reads EOF was closed by the peer; read it once connectionMade() has been called.
    if (isDuplex(stream)) {
      this._soon(this.#watchPeer.bind(this));
    }
    if (waiter !== null) this._soon(setResultUnlessCancelled, waiter, undefined);
  }

  /** @internal */
  _soon(fn: (...args: never[]) => unknown, ...args: unknown[]): void {
    // Stream events may come after the loop was closed: nothing is left to call then.
    if (!this._loop.isClosed()) this._loop._callSoonInternal(fn, args, this.#context);
  }

  #watchPeer(): void {
    const stream = this._pipe as (Writable & Partial<Readable>) | null;
    if (stream === null || this._lost) return;
    stream.on('end', this.#onPeerClosed);
    stream.resume?.();
  }

  getWriteBufferSize(): number {
    return this._lost || this._pipe === null ? 0 : this._pipe.writableLength;
  }

  /** @internal */
  _writeData(data: Uint8Array, stream: Writable): void {
    // A copy: the caller may reuse its buffer as soon as write() returns.
    stream.write(Buffer.from(data), this.#afterWrite);
    this._maybePauseProtocol();
  }

  writeEof(): void {
    if (this._closing || this._pipe === null) return;
    this._closing = true;
    this._pipe.once('finish', this.#onFinish);
    this._pipe.end();
  }

  /** @internal */
  _abortPipe(): void {
    // Buffered data is dropped now, as asyncio clears its buffer.
    this._pipe?.destroy();
  }

  /** @internal */
  _releasePipe(stream: Writable): void {
    stream.off('error', this.#onError);
    stream.off('close', this.#onPeerClosed);
    stream.off('end', this.#onPeerClosed);
    stream.off('finish', this.#onFinish);
    stream.on('error', ignoreError);
    stream.destroy();
  }

  /** @internal */
  _describe(): string {
    return describePipe(this, this._pipe === null, this._closing, streamFd(this._pipe), () => [
      `bufsize=${this.getWriteBufferSize()}`,
    ]);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Making pipe transports

function isStream(pipe: unknown): pipe is Stream {
  return pipe instanceof Stream;
}

/** A Node stream on a bare fd, for when the addon is missing: a socket or FIFO as a net.Socket, else fs. */
function streamForFd(fd: number, mode: 'read' | 'write'): Readable | Writable {
  const st = fstatSync(fd);
  if (st.isFIFO() || st.isSocket()) {
    return new Socket({ fd, readable: mode === 'read', writable: mode === 'write' });
  }
  if (!st.isCharacterDevice()) {
    throw new ValueError(
      mode === 'read'
        ? 'Pipe transport is for pipes/sockets only.'
        : 'Pipe transport is only for pipes, sockets and character devices',
    );
  }
  return mode === 'read' ? createReadStream('', { fd }) : createWriteStream('', { fd });
}

function makeReadPipeTransport(
  loop: BaseEventLoop,
  pipe: PipeLike,
  protocol: ReadPipeProtocol,
  waiter: Future<void> | null,
  extra?: Record<string, unknown>,
): ReadTransport {
  if (isStream(pipe)) {
    if (typeof (pipe as Partial<Readable>).read !== 'function') {
      throw new InvalidArgTypeError(
        `a readable stream was expected by connectReadPipe(), got ${inspect(pipe, { depth: 0 })}`,
      );
    }
    return new StreamReadPipeTransport(loop, pipe as Readable, protocol, waiter, extra);
  }
  const fd = fileobjToFd(pipe);
  if (native.nativeAvailable()) return new UnixReadPipeTransport(loop, pipe, fd, protocol, waiter, extra);
  return new StreamReadPipeTransport(loop, streamForFd(fd, 'read') as Readable, protocol, waiter, { ...extra, pipe });
}

function makeWritePipeTransport(
  loop: BaseEventLoop,
  pipe: PipeLike,
  protocol: BaseProtocol,
  waiter: Future<void> | null,
  extra?: Record<string, unknown>,
): WriteTransport {
  if (isStream(pipe)) {
    if (typeof (pipe as Partial<Writable>).write !== 'function') {
      throw new InvalidArgTypeError(
        `a writable stream was expected by connectWritePipe(), got ${inspect(pipe, { depth: 0 })}`,
      );
    }
    return new StreamWritePipeTransport(loop, pipe as Writable, protocol, waiter, extra);
  }
  const fd = fileobjToFd(pipe);
  if (native.nativeAvailable()) return new UnixWritePipeTransport(loop, pipe, fd, protocol, waiter, extra);
  return new StreamWritePipeTransport(loop, streamForFd(fd, 'write') as Writable, protocol, waiter, { ...extra, pipe });
}

// ---------------------------------------------------------------------------------------------------------
// Subprocesses (asyncio's base_subprocess.py and _UnixSubprocessTransport)

/** A child's stdio is a new pipe (asyncio's `subprocess.PIPE`). */
export const PIPE = -1;
/** The child's stderr goes where its stdout goes (asyncio's `subprocess.STDOUT`); for `stderr` only. */
export const STDOUT = -2;
/** The child's stdio is `/dev/null` (asyncio's `subprocess.DEVNULL`). */
export const DEVNULL = -3;

/**
 * Where one of the child's stdin, stdout or stderr goes: `PIPE`, `STDOUT` (stderr only), `DEVNULL`, `null`
 * (inherited from this process), a file descriptor (≥ 0) of this process, or a Node stream that has one.
 */
export type StdioSpec = typeof PIPE | typeof STDOUT | typeof DEVNULL | null | number | Stream;

/** Options of `subprocessExec` and `subprocessShell` (asyncio's keyword arguments, camelCased). */
export interface SubprocessOptions {
  /** The child's stdin; `PIPE` by default. */
  stdin?: StdioSpec;
  /** The child's stdout; `PIPE` by default. */
  stdout?: StdioSpec;
  /** The child's stderr; `PIPE` by default; `STDOUT` merges it into stdout. */
  stderr?: StdioSpec;
  /** The child's working directory. */
  cwd?: string | URL | null;
  /** The child's environment; this process's by default. */
  env?: NodeJS.ProcessEnv | null;
  /** Runs the child in a new session (`setsid`), as Popen's `start_new_session`. */
  startNewSession?: boolean;
  /** The user id the child runs as. */
  user?: number | null;
  /** The group id the child runs as. */
  group?: number | null;
  /** The program to run in place of `program` (which stays the child's `argv[0]`); `/bin/sh` for a shell. */
  executable?: string | null;
  /** Must be false: the transport deals in bytes. */
  universalNewlines?: boolean;
  /** Must be false for `subprocessExec` and true (or absent) for `subprocessShell`. */
  shell?: boolean;
  /** Must be 0: the transport does its own buffering. */
  bufsize?: number;
  /** Must be null: the transport deals in bytes. */
  encoding?: string | null;
  /** Must be null: the transport deals in bytes. */
  errors?: string | null;
  /** Must be false: the transport deals in bytes. */
  text?: boolean | null;
}

const SUBPROCESS_OPTIONS = new Set<string>([
  'stdin',
  'stdout',
  'stderr',
  'cwd',
  'env',
  'startNewSession',
  'user',
  'group',
  'executable',
  'universalNewlines',
  'shell',
  'bufsize',
  'encoding',
  'errors',
  'text',
]);

function checkSubprocessOptions(method: string, options: SubprocessOptions, expectShell: boolean): void {
  for (const key of Object.keys(options)) {
    if (!SUBPROCESS_OPTIONS.has(key)) {
      throw new InvalidArgTypeError(`${method}() got an unexpected keyword argument '${key}'`);
    }
  }
  if (options.universalNewlines) throw new ValueError('universal_newlines must be False');
  if (expectShell) {
    if (options.shell !== undefined && !options.shell) throw new ValueError('shell must be True');
  } else if (options.shell) {
    throw new ValueError('shell must be False');
  }
  if (options.bufsize !== undefined && options.bufsize !== 0) throw new ValueError('bufsize must be 0');
  if (options.text) throw new ValueError('text must be False');
  if (options.encoding !== undefined && options.encoding !== null) throw new ValueError('encoding must be None');
  if (options.errors !== undefined && options.errors !== null) throw new ValueError('errors must be None');
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
  return typeof value;
}

/** A parent's end of a child's stdio pipe: an fd of ours (from the addon) or the stream Node made. */
type ParentEnd = number | Readable | Writable;

/** asyncio's `WriteSubprocessPipeProto`: the protocol of the stdin pipe transport. */
class WriteSubprocessPipeProto extends BaseProtocolClass {
  proc: UnixSubprocessTransport | null;
  readonly fd: number;
  pipe: ReadTransport | WriteTransport | null = null;
  disconnected = false;

  constructor(proc: UnixSubprocessTransport, fd: number) {
    super();
    this.proc = proc;
    this.fd = fd;
  }

  override connectionMade(transport: BaseTransport): void {
    this.pipe = transport as ReadTransport | WriteTransport;
  }

  override connectionLost(exc: Error | null): void {
    this.disconnected = true;
    this.proc?._pipeConnectionLost(this.fd, exc);
    this.proc = null;
  }

  override pauseWriting(): void {
    this.proc?._protocol?.pauseWriting();
  }

  override resumeWriting(): void {
    this.proc?._protocol?.resumeWriting();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `<${this.constructor.name} fd=${this.fd} pipe=${inspect(this.pipe)}>`;
  }
}

/** asyncio's `ReadSubprocessPipeProto`: the protocol of the stdout and stderr pipe transports. */
class ReadSubprocessPipeProto extends WriteSubprocessPipeProto {
  dataReceived(data: Buffer): void {
    this.proc?._pipeDataReceived(this.fd, data);
  }

  eofReceived(): void {}
}

type PendingCall = [fn: (...args: never[]) => unknown, args: unknown[]];

/**
 * The transport of a child process (asyncio's `BaseSubprocessTransport` on Node's `child_process`). Made by
 * `loop.subprocessExec()` and `loop.subprocessShell()`.
 *
 * It calls its `SubprocessProtocol` in asyncio's order: `connectionMade` once every pipe is connected, then
 * `pipeDataReceived(fd, data)` for the output of stdout (1) and stderr (2), each pipe's
 * `pipeConnectionLost(fd, exc)` after all of its data, `processExited()` when the process has exited (which
 * may come before the output of pipes that are still open), and `connectionLost(null)` last, once the process
 * has exited and every pipe is closed.
 */
export class UnixSubprocessTransport implements SubprocessTransport {
  /** @internal */
  _closed = false;
  /** @internal */
  _protocol: SubprocessProtocol | null;
  /** @internal */
  _loop: BaseEventLoop | null;
  /** @internal */
  _proc: ChildProcess | null = null;
  /** @internal */
  _pid: number | null = null;
  /** @internal */
  _returncode: number | null = null;
  /** @internal futures of `_wait()`, resolved at connectionLost. */
  _exitWaiters: Future<number>[] | null = [];
  /** @internal protocol calls made before connectionMade, replayed after it. */
  _pendingCalls: PendingCall[] | null = [];
  /** @internal the protocol of each piped fd, null until it is connected. */
  readonly _pipes = new Map<number, WriteSubprocessPipeProto | null>();
  /** @internal */
  _pipesConnected = false;
  /** @internal */
  _finished = false;
  /** @internal the parent's end of each piped fd, until a pipe transport takes it over. */
  readonly _parentEnds: (ParentEnd | null)[] = [null, null, null];
  readonly #extra: Record<string, unknown> = {};
  /** The context the exit is handled in: the one `subprocessExec` was called in. */
  readonly #context = captureContext();

  /** @internal made by `subprocessExec`/`subprocessShell`. */
  constructor(loop: BaseEventLoop, protocol: SubprocessProtocol, stdio: readonly StdioSpec[]) {
    this._loop = loop;
    this._protocol = protocol;
    stdio.forEach((spec, fd) => {
      if (spec === PIPE) this._pipes.set(fd, null);
    });
  }

  /** @internal Spawns the child: asyncio's `_start`. On failure every fd made for it is closed. */
  async _start(args: readonly string[], stdio: readonly StdioSpec[], options: SubprocessOptions): Promise<void> {
    const useNative = native.nativeAvailable();
    const childStdio: (string | number | Stream)[] = [];
    const childEnds: number[] = [];
    const closeEnds = (): void => {
      for (const fd of childEnds) closePipe(fd, fd);
      childEnds.length = 0;
      this._parentEnds.forEach((end, i) => {
        if (typeof end === 'number') closePipe(end, end);
        else end?.destroy();
        this._parentEnds[i] = null;
      });
    };
    try {
      stdio.forEach((spec, fd) => {
        if (spec === PIPE) {
          if (!useNative) {
            childStdio.push('pipe');
            return;
          }
          // stdin is a socket pair, as in asyncio: its write end reads EOF when the child closes it.
          const [parent, child] = fd === 0 ? native.socketpair() : native.pipe();
          this._parentEnds[fd] = parent;
          childEnds.push(child);
          // The addon makes both ends non-blocking; the child expects ordinary blocking stdio.
          native.setBlocking(child, true);
          childStdio.push(child);
        } else if (spec === STDOUT) {
          if (fd !== 2) throw new ValueError('STDOUT can only be used for stderr');
          const out = childStdio[1] as string | number | Stream;
          if (out === 'pipe') {
            throw new NativeUnavailableError(
              'stderr=STDOUT with stdout=PIPE needs one pipe for both, which needs the loopwork native addon ' +
                `(${nativeUnavailableReason()})`,
            );
          }
          childStdio.push(out === 'inherit' ? 1 : out);
        } else if (spec === DEVNULL) {
          childStdio.push('ignore');
        } else if (spec === null || spec === undefined) {
          childStdio.push('inherit');
        } else if (typeof spec === 'number') {
          if (!Number.isInteger(spec) || spec < 0) throw new ValueError(`invalid stdio value ${spec}`);
          childStdio.push(spec);
        } else if (isStream(spec)) {
          childStdio.push(spec);
        } else {
          throw new InvalidArgTypeError(
            `stdin, stdout and stderr must be PIPE, STDOUT, DEVNULL, null, a file descriptor or a stream, ` +
              `not ${inspect(spec, { depth: 0 })}`,
          );
        }
      });
      const spawnOptions: SpawnOptions = {
        stdio: childStdio as StdioOptions,
        argv0: args[0] as string,
        detached: options.startNewSession === true,
      };
      if (options.cwd != null) spawnOptions.cwd = options.cwd;
      if (options.env != null) spawnOptions.env = options.env;
      if (options.user != null) spawnOptions.uid = options.user;
      if (options.group != null) spawnOptions.gid = options.group;
      const proc = spawn(options.executable ?? (args[0] as string), args.slice(1), spawnOptions);
      // Only the child keeps its ends: the parent's copies would hide the child's EOF.
      for (const fd of childEnds) closePipe(fd, fd);
      childEnds.length = 0;
      if (proc.pid === undefined) {
        // Node reports a failed spawn (ENOENT, EACCES...) on the next tick.
        throw await new Promise<Error>((resolve) => proc.once('error', resolve));
      }
      this._proc = proc;
      this._pid = proc.pid;
      this.#extra.subprocess = proc;
      if (!useNative) {
        for (const fd of this._pipes.keys()) {
          const stream = proc.stdio[fd] as Readable | Writable;
          // Node resumes an exited child's output streams even when nobody reads them yet (the pipe transports
          // come a few iterations later): a PassThrough keeps the output until then.
          this._parentEnds[fd] = fd === 0 ? stream : (stream as Readable).pipe(new PassThrough());
        }
      }
    } catch (error) {
      closeEnds();
      throw error;
    }
    const proc = this._proc;
    proc.on('error', (exception: Error) => {
      if (this._loop !== null && !this._loop.isClosed()) {
        this._loop.callExceptionHandler({ message: 'Subprocess error', exception, transport: this });
      }
    });
    proc.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      const returncode = code ?? -(osConstants.signals[signal as NodeJS.Signals] ?? 0);
      const loop = this._loop;
      // asyncio's child watcher: the exit is handled on the loop.
      if (loop !== null && !loop.isClosed()) {
        loop._callSoonInternal(this._processExited.bind(this), [returncode], this.#context);
      } else if (this._returncode === null) this._returncode = returncode;
    });
    // While the loop runs its keep-alive holds the process; the child alone must not.
    proc.unref();
    const loop = this._loop as BaseEventLoop;
    if (loop.getDebug()) loop.logger.debug({ program: args[0], pid: this._pid }, 'process created');
  }

  /** @internal asyncio's `_connect_pipes`: connects the pipe transports, then calls connectionMade. */
  async _connectPipes(waiter: Future<void>): Promise<void> {
    try {
      const loop = this._loop as BaseEventLoop;
      for (const fd of [0, 1, 2]) {
        if (!this._pipes.has(fd)) continue;
        const end = this._parentEnds[fd];
        if (this._closed || end === null || end === undefined) {
          throw new RuntimeError('the subprocess transport was closed while its pipes were being connected');
        }
        // From here the pipe transport owns the end and closes it, whatever happens.
        this._parentEnds[fd] = null;
        let proto: WriteSubprocessPipeProto;
        try {
          proto =
            fd === 0
              ? (await loop.connectWritePipe(() => new WriteSubprocessPipeProto(this, 0), end))[1]
              : (await loop.connectReadPipe(() => new ReadSubprocessPipeProto(this, fd), end))[1];
        } catch (error) {
          // Unless no transport could be made for it at all.
          if (typeof end === 'number' && transportRegistry.get(loop)?.has(end) !== true) closePipe(end, end);
          throw error;
        }
        this._pipes.set(fd, proto);
        if (this._closed) {
          proto.pipe?.close();
          throw new RuntimeError('the subprocess transport was closed while its pipes were being connected');
        }
      }
      const protocol = this._protocol as SubprocessProtocol;
      soon(loop, protocol.connectionMade.bind(protocol), this);
      for (const [fn, args] of this._pendingCalls ?? []) soon(loop, fn, ...args);
      this._pendingCalls = null;
      this._pipesConnected = true;
    } catch (exc) {
      if (!waiter.cancelled()) waiter.setException(exc);
      return;
    }
    if (!waiter.cancelled()) waiter.setResult(undefined);
  }

  /** The child's process id. */
  getPid(): number {
    return this._pid as number;
  }

  /** The child's return code: `null` while it runs, `-N` when signal N ended it. */
  getReturncode(): number | null {
    return this._returncode;
  }

  /**
   * The pipe transport of the child's `fd`: a `WriteTransport` for 0, a `ReadTransport` for 1 and 2.
   *
   * @returns null when that fd is not a pipe (or not connected yet).
   */
  getPipeTransport(fd: number): WriteTransport | ReadTransport | null {
    return this._pipes.get(fd)?.pipe ?? null;
  }

  /**
   * Sends `signal` to the child; nothing happens once it has exited.
   *
   * @param signal - a number or a name, e.g. `'SIGTERM'`.
   * @throws SystemError `ESRCH` (asyncio's `ProcessLookupError`) after the transport was finished.
   */
  sendSignal(signal: number | NodeJS.Signals): void {
    this.#checkProc().kill(signal);
  }

  /** Sends SIGTERM to the child. */
  terminate(): void {
    this.sendSignal('SIGTERM');
  }

  /** Sends SIGKILL to the child. */
  kill(): void {
    this.sendSignal('SIGKILL');
  }

  #checkProc(): ChildProcess {
    if (this._proc === null) throw native.systemError(osConstants.errno.ESRCH, 'kill');
    return this._proc;
  }

  setProtocol(protocol: BaseProtocol): void {
    this._protocol = protocol as SubprocessProtocol;
  }

  getProtocol(): BaseProtocol {
    return this._protocol as BaseProtocol;
  }

  isClosing(): boolean {
    return this._closed;
  }

  /**
   * Closes the pipe transports and kills the child (SIGKILL) if it still runs. `connectionLost` follows once
   * the child has exited and the pipes are closed.
   */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    for (const proto of this._pipes.values()) proto?.pipe?.close();
    this._parentEnds.forEach((end, i) => {
      if (typeof end === 'number') closePipe(end, end);
      else end?.destroy();
      this._parentEnds[i] = null;
    });
    const proc = this._proc;
    if (proc !== null && this._returncode === null && proc.exitCode === null && proc.signalCode === null) {
      if (this._loop?.getDebug() === true) {
        this._loop.logger.warn({ transport: this._describe() }, 'Close running child process: kill');
      }
      try {
        proc.kill('SIGKILL');
      } catch {
        // It may have exited meanwhile.
      }
    }
  }

  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return inspectExtra(this.#extra, name, defaultValue);
  }

  /** @internal */
  _call(fn: (...args: never[]) => unknown, ...args: unknown[]): void {
    if (this._pendingCalls !== null) this._pendingCalls.push([fn, args]);
    else soon(this._loop as BaseEventLoop, fn, ...args);
  }

  /** @internal */
  _pipeConnectionLost(fd: number, exc: Error | null): void {
    const protocol = this._protocol as SubprocessProtocol;
    this._call(protocol.pipeConnectionLost.bind(protocol), fd, exc);
    this._tryFinish();
  }

  /** @internal */
  _pipeDataReceived(fd: number, data: Buffer): void {
    const protocol = this._protocol as SubprocessProtocol;
    this._call(protocol.pipeDataReceived.bind(protocol), fd, data);
  }

  /** @internal */
  _processExited(returncode: number): void {
    if (this._returncode !== null || this._loop === null) return;
    if (this._loop.getDebug()) {
      this._loop.logger.info({ transport: this._describe(), returncode }, 'process exited');
    }
    this._returncode = returncode;
    const protocol = this._protocol as SubprocessProtocol;
    this._call(protocol.processExited.bind(protocol));
    this._tryFinish();
  }

  /**
   * @internal Resolves with the return code once the process has exited and, when its pipes were connected,
   * after `connectionLost` (what `Process.wait()` awaits).
   */
  async _wait(): Promise<number> {
    if (this._returncode !== null) return this._returncode;
    const waiter = (this._loop as BaseEventLoop).createFuture<number>();
    this._exitWaiters?.push(waiter);
    return await waiter;
  }

  /** @internal */
  _tryFinish(): void {
    if (this._finished || this._returncode === null) return;
    if (!this._pipesConnected) {
      // The pipes never got connected (the spawn or _connectPipes failed): nothing else will wake _wait().
      for (const waiter of this._exitWaiters ?? []) if (!waiter.done()) waiter.setResult(this._returncode);
    }
    for (const proto of this._pipes.values()) if (proto === null || !proto.disconnected) return;
    this._finished = true;
    this._call(this._callConnectionLost.bind(this), null);
  }

  /** @internal */
  _callConnectionLost(exc: Error | null): void {
    try {
      this._protocol?.connectionLost(exc);
    } finally {
      for (const waiter of this._exitWaiters ?? []) {
        if (!waiter.cancelled() && !waiter.done()) waiter.setResult(this._returncode as number);
      }
      this._exitWaiters = null;
      this._loop = null;
      this._proc = null;
      this._protocol = null;
    }
  }

  /** @internal */
  _describe(): string {
    const info = [this.constructor.name];
    if (this._closed) info.push('closed');
    if (this._pid !== null) info.push(`pid=${this._pid}`);
    if (this._returncode !== null) info.push(`returncode=${this._returncode}`);
    else if (this._pid !== null) info.push('running');
    else info.push('not started');
    const stdin = this._pipes.get(0);
    if (stdin) info.push(`stdin=${inspect(stdin.pipe)}`);
    const stdout = this._pipes.get(1);
    const stderr = this._pipes.get(2);
    if (stdout) info.push(`stdout=${inspect(stdout.pipe)}`);
    if (stderr) info.push(`stderr=${inspect(stderr.pipe)}`);
    return `<${info.join(' ')}>`;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._describe();
  }
}

function nativeUnavailableReason(): string {
  try {
    requireNative();
    return 'available';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

async function makeSubprocessTransport(
  loop: BaseEventLoop,
  protocol: SubprocessProtocol,
  args: readonly string[],
  options: SubprocessOptions,
): Promise<UnixSubprocessTransport> {
  const stdio: StdioSpec[] = [options.stdin, options.stdout, options.stderr].map((s) => (s === undefined ? PIPE : s));
  const waiter = loop.createFuture<void>();
  const transport = new UnixSubprocessTransport(loop, protocol, stdio);
  try {
    await transport._start(args, stdio, options);
  } catch (error) {
    transport.close();
    throw error;
  }
  loop.createTask(() => transport._connectPipes(waiter));
  try {
    await waiter;
  } catch (error) {
    transport.close();
    await transport._wait();
    throw error;
  }
  return transport;
}

function splitSubprocessArgs(rest: unknown[]): [unknown[], SubprocessOptions] {
  const last = rest[rest.length - 1];
  if (typeof last === 'object' && last !== null && !isStream(last)) {
    const proto: unknown = Object.getPrototypeOf(last);
    if (proto === Object.prototype || proto === null) return [rest.slice(0, -1), last as SubprocessOptions];
  }
  return [rest, {}];
}

// ---------------------------------------------------------------------------------------------------------
// The loop methods

extendEventLoop({
  addReader(this: BaseEventLoop, fd: FileDescriptorLike, callback: Callback, ...args: unknown[]): void {
    requireNative();
    const fileno = ensureFdNoTransport(this, fd);
    checkCallback(callback, 'addReader');
    addWatcher(this, fileno, READ, callback, args);
  },
  removeReader(this: BaseEventLoop, fd: FileDescriptorLike): boolean {
    requireNative();
    return removeWatcher(this, ensureFdNoTransport(this, fd), READ);
  },
  addWriter(this: BaseEventLoop, fd: FileDescriptorLike, callback: Callback, ...args: unknown[]): void {
    requireNative();
    const fileno = ensureFdNoTransport(this, fd);
    checkCallback(callback, 'addWriter');
    addWatcher(this, fileno, WRITE, callback, args);
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

  async connectReadPipe(
    this: BaseEventLoop,
    protocolFactory: ProtocolFactory<ReadPipeProtocol>,
    pipe: PipeLike,
  ): Promise<[ReadTransport, ReadPipeProtocol]> {
    this._checkClosed();
    const protocol = protocolFactory();
    const waiter = this.createFuture<void>();
    const transport = makeReadPipeTransport(this, pipe, protocol, waiter);
    try {
      await waiter;
    } catch (error) {
      transport.close();
      throw error;
    }
    if (this.getDebug()) this.logger.debug({ transport: inspect(transport) }, 'Read pipe connected');
    return [transport, protocol];
  },

  async connectWritePipe(
    this: BaseEventLoop,
    protocolFactory: ProtocolFactory,
    pipe: PipeLike,
  ): Promise<[WriteTransport, BaseProtocol]> {
    this._checkClosed();
    const protocol = protocolFactory();
    const waiter = this.createFuture<void>();
    const transport = makeWritePipeTransport(this, pipe, protocol, waiter);
    try {
      await waiter;
    } catch (error) {
      transport.close();
      throw error;
    }
    if (this.getDebug()) this.logger.debug({ transport: inspect(transport) }, 'Write pipe connected');
    return [transport, protocol];
  },

  async subprocessExec(
    this: BaseEventLoop,
    protocolFactory: ProtocolFactory<SubprocessProtocol>,
    program: string,
    ...rest: unknown[]
  ): Promise<[SubprocessTransport, SubprocessProtocol]> {
    const [args, options] = splitSubprocessArgs(rest);
    checkSubprocessOptions('subprocessExec', options, false);
    const popenArgs = [program, ...args];
    for (const arg of popenArgs) {
      if (typeof arg !== 'string') {
        throw new InvalidArgTypeError(`program arguments must be a bytes or text string, not ${typeName(arg)}`);
      }
    }
    this._checkClosed();
    const protocol = protocolFactory();
    const transport = await makeSubprocessTransport(this, protocol, popenArgs as string[], options);
    return [transport, protocol];
  },

  async subprocessShell(
    this: BaseEventLoop,
    protocolFactory: ProtocolFactory<SubprocessProtocol>,
    cmd: string,
    options: SubprocessOptions = {},
  ): Promise<[SubprocessTransport, SubprocessProtocol]> {
    if (typeof cmd !== 'string') throw new ValueError('cmd must be a string');
    checkSubprocessOptions('subprocessShell', options, true);
    this._checkClosed();
    const protocol = protocolFactory();
    const shellOptions = { ...options, executable: options.executable ?? '/bin/sh' };
    const transport = await makeSubprocessTransport(this, protocol, ['/bin/sh', '-c', cmd], shellOptions);
    return [transport, protocol];
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
     *   closed; ValueError for an invalid fd; NativeUnavailableError when the addon is missing; SystemError
     *   from polling (`EPERM` for a regular file, `EEXIST` for an fd a Node handle watches, `EBADF`).
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

    /**
     * Connects the read end of a pipe to a new protocol (asyncio's `connect_read_pipe`). The transport reads
     * until EOF, then calls `eofReceived()` and `connectionLost(null)`; `pauseReading()`/`resumeReading()`
     * stop and restart delivery. The transport owns the pipe and closes it.
     *
     * Protocol calls: `connectionMade(transport)` on the next iteration, then `dataReceived(data)*`, then
     * `eofReceived()` and `connectionLost(null)`, or `connectionLost(exc)` on an error.
     *
     * @param protocolFactory - makes the `Protocol`.
     * @param pipe - a file descriptor of a pipe, FIFO, socket or character device (polled directly), an
     *   object with `fileno()`, or a Node readable stream (`process.stdin`, a child's `stdout`, an
     *   `fs.ReadStream`, a `net.Socket`). The extra info `'pipe'` is this object.
     * @returns `[transport, protocol]` once `connectionMade` has been called.
     * @throws ValueError for an fd that is not a pipe, socket or character device; RuntimeError when the loop
     *   is closed.
     */
    connectReadPipe<P extends ReadPipeProtocol>(
      protocolFactory: ProtocolFactory<P>,
      pipe: PipeLike,
    ): Promise<[ReadTransport, P]>;
    /**
     * Connects the write end of a pipe to a new protocol (asyncio's `connect_write_pipe`). The transport has
     * write flow control (`pauseWriting()` above the high-water mark, `resumeWriting()` at the low one),
     * `writeEof()` (closes the pipe once the buffer is flushed) and `abort()`. It notices the other end
     * closing (with `connectionLost(null)`, or a broken-pipe error when data was still buffered).
     *
     * @param protocolFactory - makes the protocol.
     * @param pipe - a file descriptor (pipe, FIFO, socket, character device), an object with `fileno()`, or a
     *   Node writable stream.
     * @returns `[transport, protocol]` once `connectionMade` has been called.
     */
    connectWritePipe<P extends BaseProtocol>(
      protocolFactory: ProtocolFactory<P>,
      pipe: PipeLike,
    ): Promise<[WriteTransport, P]>;

    /**
     * Runs `program` with `args` in a child process (asyncio's `subprocess_exec`), without a shell.
     *
     * Each of stdin, stdout, stderr is `PIPE` (the default), `STDOUT` (stderr only: both to one pipe),
     * `DEVNULL`, `null` (inherited), a file descriptor or a stream. The protocol gets `connectionMade`, the
     * output as `pipeDataReceived(fd, data)`, each pipe's `pipeConnectionLost(fd, exc)`, `processExited()`,
     * and `connectionLost(null)` once the process has exited and all pipes are closed; write to stdin through
     * `transport.getPipeTransport(0)`.
     *
     * @param protocolFactory - makes the `SubprocessProtocol`.
     * @param program - the program, looked up in `PATH`.
     * @param args - its arguments (strings), then optionally the {@link SubprocessOptions}.
     * @returns `[transport, protocol]` once the pipes are connected.
     * @throws TypeError "program arguments must be a bytes or text string, not number"; ValueError "shell
     *   must be False", "text must be False", "encoding must be None", "errors must be None",
     *   "universal_newlines must be False", "bufsize must be 0"; Node's spawn error (`ENOENT`, `EACCES`).
     * @example
     * const [transport, protocol] = await loop.subprocessExec(() => new MyProtocol(), 'ls', '-l', { stdin: DEVNULL });
     */
    subprocessExec<P extends SubprocessProtocol>(
      protocolFactory: ProtocolFactory<P>,
      program: string,
      ...args: [...string[]] | [...string[], SubprocessOptions]
    ): Promise<[UnixSubprocessTransport, P]>;
    /**
     * Runs `cmd` with `/bin/sh -c` (asyncio's `subprocess_shell`); as `subprocessExec` otherwise. Quote what
     * comes from users (the shell interprets the whole string).
     *
     * @param cmd - the command line.
     * @throws ValueError "cmd must be a string", "shell must be True", and the others of `subprocessExec`.
     */
    subprocessShell<P extends SubprocessProtocol>(
      protocolFactory: ProtocolFactory<P>,
      cmd: string,
      options?: SubprocessOptions,
    ): Promise<[UnixSubprocessTransport, P]>;
  }
}
