/**
 * Pipes (asyncio's `_UnixReadPipeTransport` and `_UnixWritePipeTransport`, from `unix_events.py`):
 * `connectReadPipe` and `connectWritePipe`, for a file descriptor (polled directly, as asyncio's are) or a Node
 * stream (`process.stdin`, a FIFO's `fs.ReadStream`, a `net.Socket`). A subprocess's pipes (unix-events.ts) are
 * these transports too.
 *
 * Without the native addon, pipes given as fds use Node streams.
 *
 * @module
 */
import { createReadStream, createWriteStream, fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { Stream } from 'node:stream';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import { extendEventLoop } from './base-event-loop.js';
import { captureContext } from './context.js';
import {
  InvalidArgTypeError,
  OSError,
  ValueError,
  connectionError,
  ignoreError,
  osErrorFrom,
  withOSErrors,
} from './errors.js';
import type { Future } from './futures.js';
import { setResultUnlessCancelled } from './futures.js';
import type { Handle } from './handles.js';
import * as native from './native.js';
import {
  READ,
  WRITE,
  addWatcher,
  fileobjToFd,
  registerTransportFd,
  removeWatcher,
  unregisterTransportFd,
} from './fd-watchers.js';
import { readMemoryUsed } from './read-memory.js';
import type { BaseProtocol, Protocol, ProtocolFactory } from './protocols.js';
import type { BaseTransport, ExtraInfo, ReadTransport, WriteTransport } from './transports.js';
import { FlowControlTransport, checkBytes, writelinesItems } from './transports.js';

// ---------------------------------------------------------------------------------------------------------
// Shared helpers

/** After this many writes to a lost pipe, each further one logs a warning (asyncio's constant). */
const LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5;

/** @internal Queues `fn(...args)` on the loop with the current context, without `callSoon`'s argument checks. */
export function soon(loop: BaseEventLoop, fn: (...args: never[]) => unknown, ...args: unknown[]): Handle {
  return loop._callSoonInternal(fn, args, captureContext());
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** asyncio's `BrokenPipeError()` for a pipe whose reader left while data was still to be written. */
function brokenPipeError(): Error {
  return osErrorFrom(native.systemError(osConstants.errno.EPIPE, 'write'));
}

/** @internal */
export function inspectExtra(extra: Record<string, unknown>, name: string, defaultValue: unknown): unknown {
  return Object.prototype.hasOwnProperty.call(extra, name) ? extra[name] : defaultValue;
}

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
  _fatalError(error: Error, message = 'Fatal error on pipe transport'): void {
    const loop = this._loop;
    if (loop === null) return;
    const exc = connectionError(error);
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
    this.write(Buffer.concat(writelinesItems(list)));
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
  _fatalError(error: Error, message = 'Fatal error on pipe transport'): void {
    // A system error (`write EPIPE`) as Python's OSError (`BrokenPipeError: [Errno 32] Broken pipe`). asyncio's
    // write pipe reports none of them (a reader gone, a tty hung up with EIO...) to the exception handler.
    const exc = connectionError(error);
    reportFatalError(this._loop, this, this._protocol, exc, message, OSError.isInstance(exc));
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

/** @internal Closes the pipe a transport got: `close()` on an object, `close(2)` on a bare fd. */
export function closePipe(pipe: PipeLike, fd: number): void {
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
    const st = withOSErrors(() => fstatSync(fd));
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
      readMemoryUsed(n);
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
    const st = withOSErrors(() => fstatSync(fd));
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
      readMemoryUsed(data.length);
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

/** @internal True for a Node stream (as opposed to an fd or an object with `fileno()`). */
export function isStream(pipe: unknown): pipe is Stream {
  return pipe instanceof Stream;
}

/** A Node stream on a bare fd, for when the addon is missing: a socket or FIFO as a net.Socket, else fs. */
function streamForFd(fd: number, mode: 'read' | 'write'): Readable | Writable {
  const st = withOSErrors(() => fstatSync(fd));
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
// The loop methods

extendEventLoop({
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
});

declare module './base-event-loop.js' {
  interface BaseEventLoop {
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
  }
}
