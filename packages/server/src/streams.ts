/**
 * Streams (asyncio's `streams.py`): `async`/`await` reading and writing on a connection, without protocols and
 * callbacks. `openConnection` and `startServer` (and their Unix twins) wire a {@link StreamReader} and a
 * {@link StreamWriter} onto a transport through a {@link StreamReaderProtocol}.
 *
 * Flow control holds both ways: the reader pauses the transport when more than twice its `limit` is buffered
 * and resumes it once a read brings it back to `limit`; the writer's `drain()` waits while the transport's
 * write buffer is over its high-water mark.
 *
 * @module
 */
import { inspect } from 'node:util';
import {
  ConnectionResetError,
  cancellablePromise,
  runCancellable,
  IncompleteReadError,
  InvalidArgTypeError,
  LimitOverrunError,
  Protocol,
  RuntimeError,
  ValueError,
  checkBytes,
  checkOptions,
  getEventLoop,
  getRunningLoop,
  isFuture,
  isThenable,
  sleep,
} from '@loopwork/core';
import type { BaseEventLoop, ExtraInfo, Future, Transport } from '@loopwork/core';
import type { SSLContext, StartTlsOptions } from '@loopwork/tls';
import type { CreateConnectionOptions, CreateUnixConnectionOptions } from './create-connection.js';
import { isOptionsArg } from './create-connection.js';
import type { CreateServerOptions, CreateUnixServerOptions } from './create-server.js';
import type { Server } from './server.js';

/** The default buffer limit of a {@link StreamReader}, in bytes (asyncio's 64 KiB). */
const DEFAULT_LIMIT = 2 ** 16;

const EMPTY = Buffer.alloc(0);
/** What `drain()` returns when there is nothing to wait for. */
const DRAINED: Promise<void> = Promise.resolve();

/** Options of `new StreamReader()`. */
export interface StreamReaderOptions {
  /**
   * The buffer limit in bytes (default 64 KiB): the longest line `readline()`/`readuntil()` return, and half the
   * buffered size at which the transport is paused.
   */
  limit?: number;
  /** The loop; by default the current event loop. */
  loop?: BaseEventLoop;
}

/** A separator for {@link StreamReader.readuntil}: bytes, a string (UTF-8), or a list of them. */
export type Separator = string | Uint8Array | readonly (string | Uint8Array)[];

/**
 * A stream of bytes received on a connection, read with `await` (asyncio's `StreamReader`).
 *
 * Only one read may wait for data at a time. A read that is cancelled loses no data: what arrived stays in the
 * buffer for the next read. `for await (const line of reader)` iterates over lines until EOF.
 */
export class StreamReader implements AsyncIterable<Buffer> {
  /** @internal */
  readonly _limit: number;
  /** @internal */
  readonly _loop: BaseEventLoop;
  /** @internal received bytes not read yet, in order; never holds an empty chunk. */
  _chunks: Buffer[] = [];
  /** @internal total bytes in `_chunks`. */
  _len = 0;
  /** @internal */
  _eof = false;
  /** @internal the future a read waits on (asyncio's `_waiter`). */
  _waiter: Future<void> | null = null;
  /** @internal */
  _exception: unknown = null;
  /** @internal */
  _transport: Transport | null = null;
  /** @internal */
  _paused = false;

  /**
   * @param options - `limit` in bytes (default 64 KiB), `loop`.
   * @throws ValueError ("Limit cannot be <= 0") when `limit` is not positive.
   */
  constructor(options: StreamReaderOptions = {}) {
    const limit = options.limit ?? DEFAULT_LIMIT;
    if (typeof limit !== 'number' || Number.isNaN(limit)) {
      throw new InvalidArgTypeError(`limit must be a number, got ${inspect(limit, { depth: 0 })}`);
    }
    if (limit <= 0) throw new ValueError('Limit cannot be <= 0');
    // `read()` reads `limit`-sized blocks: a fraction of a byte would corrupt the buffer's count.
    if (!Number.isInteger(limit) && limit !== Infinity) {
      throw new InvalidArgTypeError(`limit must be an integer, got ${limit}`);
    }
    this._limit = limit;
    this._loop = options.loop ?? getEventLoop();
  }

  /** The exception set by `setException()`, or `null`. */
  exception(): unknown {
    return this._exception;
  }

  /**
   * Makes every later read throw `exc`, and wakes a waiting read with it (the transport calls this when the
   * connection is lost with an error).
   */
  setException(exc: unknown): void {
    this._exception = exc;
    const waiter = this._waiter;
    if (waiter !== null) {
      this._waiter = null;
      if (!waiter.cancelled()) waiter.setException(exc);
    }
  }

  /** @internal Wakes a read waiting for data or EOF. */
  _wakeupWaiter(): void {
    const waiter = this._waiter;
    if (waiter !== null) {
      this._waiter = null;
      if (!waiter.cancelled()) waiter.setResult(undefined);
    }
  }

  /**
   * Sets the transport whose reading is paused and resumed with the buffer's size.
   *
   * @throws RuntimeError when a transport is already set.
   */
  setTransport(transport: Transport): void {
    if (this._transport !== null) throw new RuntimeError('Transport already set');
    this._transport = transport;
  }

  /**
   * @internal For `startTls`: flow control pauses and resumes the TLS transport from now on. The old transport
   * no longer carries the data (it was handed over), so pausing it would hold nothing back.
   */
  _replaceTransport(transport: Transport): void {
    this._transport = transport;
    this._paused = false;
    this._maybePauseTransport();
  }

  /** @internal Pauses the transport once more than twice the limit is buffered (asyncio's `feed_data`). */
  _maybePauseTransport(): void {
    const transport = this._transport;
    if (transport !== null && !this._paused && this._len > 2 * this._limit) {
      if (typeof transport.pauseReading !== 'function') {
        // A transport that cannot pause: buffer everything, and stop trying.
        this._transport = null;
      } else {
        transport.pauseReading();
        this._paused = true;
      }
    }
  }

  /** @internal */
  _maybeResumeTransport(): void {
    if (this._paused && this._len <= this._limit) {
      this._paused = false;
      this._transport?.resumeReading();
    }
  }

  /** Signals the end of the stream: reads return what is buffered, then empty buffers. */
  feedEof(): void {
    this._eof = true;
    this._wakeupWaiter();
  }

  /** True when EOF was fed and the buffer is empty. */
  atEof(): boolean {
    return this._eof && this._len === 0;
  }

  /**
   * Appends received bytes to the buffer (the protocol calls this); pauses the transport's reading when more
   * than twice the limit is buffered. The reader keeps `data` without copying it: the caller gives it up.
   *
   * @throws RuntimeError after `feedEof()`; TypeError when `data` is not bytes.
   */
  feedData(data: Uint8Array): void {
    if (this._eof) throw new RuntimeError('feedData after feedEof');
    checkBytes(data, 'feedData');
    if (data.byteLength === 0) return;
    const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this._chunks.push(chunk);
    this._len += chunk.length;
    this._wakeupWaiter();
    this._maybePauseTransport();
  }

  /**
   * @internal Waits until `feedData()` or `feedEof()` is called; resumes a paused transport first, or a read of
   * more than the limit would wait forever.
   */
  async _waitForData(funcName: string): Promise<void> {
    const waiter = this._newWaiter(funcName);
    try {
      await waiter;
    } finally {
      if (this._waiter === waiter) this._waiter = null;
    }
  }

  /**
   * @internal A read's promise, marked as cancellable when the read waits for data (see `cancellablePromise`):
   * `waitFor(reader.readline(), 1)` then cancels the read at its wait, as asyncio's `wait_for` does, and the
   * data stays buffered for the next read.
   */
  _cancellable(read: Promise<Buffer>): Promise<Buffer> {
    return this._waiter === null ? read : cancellablePromise(read, this._cancelWait);
  }

  /** @internal Cancels the wait of the read in progress. */
  readonly _cancelWait = (msg?: string): boolean => this._waiter?.cancel(msg) ?? false;

  /** @internal The future `_waitForData` awaits, made current; `read()` awaits it itself (one promise less). */
  _newWaiter(funcName: string): Future<void> {
    // Two reads waiting at once could not tell which one gets the next data.
    if (this._waiter !== null) {
      throw new RuntimeError(`${funcName}() called while another coroutine is already waiting for incoming data`);
    }
    if (this._eof) throw new RuntimeError('_waitForData after EOF');
    if (this._paused) {
      this._paused = false;
      this._transport?.resumeReading();
    }
    const waiter = this._loop.createFuture<void>();
    this._waiter = waiter;
    return waiter;
  }

  /**
   * Reads one line, up to and including `\n`.
   *
   * @returns the line with its `\n`; at EOF the last partial line without it, or an empty buffer when nothing
   * is left.
   * @throws ValueError when the line is longer than the limit: the line is dropped from the buffer if its end
   * was found, else the whole buffer is dropped. The exception set on the stream, if any.
   */
  readline(): Promise<Buffer> {
    return this._cancellable(this._readline());
  }

  /** @internal */
  async _readline(): Promise<Buffer> {
    const seplen = 1;
    try {
      return await this._readuntil(NEWLINE);
    } catch (e) {
      if (IncompleteReadError.isInstance(e)) return (e as IncompleteReadError).partial;
      if (LimitOverrunError.isInstance(e)) {
        const consumed = (e as LimitOverrunError).consumed;
        if (this._byteAt(consumed) === 0x0a) this._discard(consumed + seplen);
        else this._discard(this._len);
        this._maybeResumeTransport();
        throw new ValueError((e as Error).message, { cause: e });
      }
      throw e;
    }
  }

  /**
   * Reads until one of the separators is found, and returns the data with the separator at its end.
   *
   * With a list of separators the shortest result that ends with any of them wins.
   *
   * @param separator - bytes or a string (UTF-8), or a list of them; default `'\n'`.
   * @returns the data up to and including the separator; both are removed from the buffer.
   * @throws IncompleteReadError at EOF before a separator: `partial` holds what was buffered (now removed), and
   * `expected` is `null`. LimitOverrunError when the data before the separator, or the data scanned without
   * finding one, is longer than the limit: the data stays in the buffer, `consumed` says how far. ValueError for
   * an empty separator or list.
   */
  readuntil(separator: Separator = NEWLINE): Promise<Buffer> {
    return this._cancellable(this._readuntil(separator));
  }

  /** @internal */
  async _readuntil(separator: Separator): Promise<Buffer> {
    const seps = normalizeSeparators(separator);
    const minSeplen = seps[0]!.length;
    const maxSeplen = seps[seps.length - 1]!.length;
    if (this._exception !== null) throw this._exception;

    // `offset`: how many bytes from the start are known to hold no start of a separator. Everything but the
    // last `maxSeplen - 1` bytes scanned is safe to skip on the next pass; the rest may be a separator's head.
    let offset = 0;
    let matchStart = -1;
    let matchEnd = -1;
    for (;;) {
      const buflen = this._len;
      if (buflen - offset >= minSeplen) {
        [matchStart, matchEnd] = this._findFirst(seps, offset);
        if (matchEnd !== -1) break;
        offset = Math.max(0, buflen + 1 - maxSeplen);
        if (offset > this._limit) {
          throw new LimitOverrunError('Separator is not found, and chunk exceed the limit', offset);
        }
      }
      // A last chunk may complete a separator after EOF was fed: look at the buffer before at EOF.
      if (this._eof) throw new IncompleteReadError(this._consume(this._len), null);
      await this._waitForData('readuntil');
    }
    if (matchStart > this._limit) {
      throw new LimitOverrunError('Separator is found, but chunk is longer than limit', matchStart);
    }
    const chunk = this._consume(matchEnd);
    this._maybeResumeTransport();
    return chunk;
  }

  /**
   * Reads up to `n` bytes.
   *
   * @param n - the most bytes to return; `-1` (default) reads until EOF; `0` returns an empty buffer at once.
   * @returns as soon as at least one byte is buffered, at most `n` of them (not bounded by the limit); an empty
   * buffer at EOF.
   * @throws TypeError when `n` is not an integer; the exception set on the stream, if any.
   */
  read(n = -1): Promise<Buffer> {
    try {
      checkSize(n, 'read');
    } catch (exc) {
      return Promise.reject(exc as Error);
    }
    return this._cancellable(this._read(n));
  }

  /** @internal */
  async _read(n: number): Promise<Buffer> {
    if (this._exception !== null) throw this._exception;
    if (n === 0) return EMPTY;
    if (n < 0) {
      // Reading limit-sized blocks, not waiting for EOF with everything buffered: a paused transport would
      // never deliver the EOF.
      const blocks: Buffer[] = [];
      for (;;) {
        const block = await this._read(this._limit);
        if (block.length === 0) break;
        blocks.push(block);
      }
      return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks);
    }
    if (this._len === 0 && !this._eof) {
      const waiter = this._newWaiter('read');
      try {
        await waiter;
      } finally {
        if (this._waiter === waiter) this._waiter = null;
      }
    }
    const data = this._consume(Math.min(n, this._len));
    this._maybeResumeTransport();
    return data;
  }

  /**
   * Reads exactly `n` bytes.
   *
   * @returns `n` bytes (not bounded by the limit); an empty buffer for `n = 0`.
   * @throws IncompleteReadError at EOF before `n` bytes: `partial` holds them (now removed from the buffer),
   * `expected` is `n`. ValueError ("readexactly size can not be less than zero") for a negative `n`; TypeError
   * when `n` is not an integer.
   */
  readexactly(n: number): Promise<Buffer> {
    try {
      checkSize(n, 'readexactly');
    } catch (exc) {
      return Promise.reject(exc as Error);
    }
    return this._cancellable(this._readexactly(n));
  }

  /** @internal */
  async _readexactly(n: number): Promise<Buffer> {
    if (n < 0) throw new ValueError('readexactly size can not be less than zero');
    if (this._exception !== null) throw this._exception;
    if (n === 0) return EMPTY;
    while (this._len < n) {
      if (this._eof) throw new IncompleteReadError(this._consume(this._len), n);
      await this._waitForData('readexactly');
    }
    const data = this._consume(n);
    this._maybeResumeTransport();
    return data;
  }

  /** Iterates over lines (`readline()`) until it returns an empty buffer. */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: async (): Promise<IteratorResult<Buffer>> => {
        const line = await this.readline();
        return line.length === 0 ? { done: true, value: undefined } : { done: false, value: line };
      },
    };
  }

  // ---- the chunked buffer --------------------------------------------------------------------------------

  /** @internal The buffered bytes, as one Buffer (for tests and debugging). */
  get _buffer(): Buffer {
    return this._chunks.length === 1 ? this._chunks[0]! : Buffer.concat(this._chunks, this._len);
  }

  /** @internal Removes and returns the first `n` (≤ `_len`) bytes, copying only when they span chunks. */
  _consume(n: number): Buffer {
    if (n === 0) return EMPTY;
    const chunks = this._chunks;
    const first = chunks[0]!;
    this._len -= n;
    if (first.length === n) {
      chunks.shift();
      return first;
    }
    if (first.length > n) {
      chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = chunks[0]!;
      const take = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, take);
      filled += take;
      if (take === c.length) chunks.shift();
      else chunks[0] = c.subarray(take);
    }
    return out;
  }

  /** @internal Drops the first `n` (≤ `_len`) bytes. */
  _discard(n: number): void {
    if (n >= this._len) {
      this._chunks = [];
      this._len = 0;
      return;
    }
    this._consume(n);
  }

  /** @internal The byte at `index`, or -1 past the end. */
  _byteAt(index: number): number {
    if (index < 0 || index >= this._len) return -1;
    for (const c of this._chunks) {
      if (index < c.length) return c[index]!;
      index -= c.length;
    }
    return -1;
  }

  /**
   * @internal Finds the separator match that ends first at or after `offset`: `[start, end]`, or `[-1, -1]`.
   *
   * The bytes from `offset` on are made one chunk, split off the chunk they begin in, so that each byte is
   * copied about once however long the line grows (joining the whole buffer on every pass would be quadratic).
   */
  _findFirst(seps: readonly Buffer[], offset: number): [number, number] {
    const chunks = this._chunks;
    let i = 0;
    let pos = offset;
    while (i < chunks.length && pos >= chunks[i]!.length) {
      pos -= chunks[i]!.length;
      i++;
    }
    if (i >= chunks.length) return [-1, -1];
    if (i < chunks.length - 1) {
      const head = chunks[i]!;
      const tail = Buffer.concat([head.subarray(pos), ...chunks.slice(i + 1)]);
      if (pos > 0) {
        chunks.splice(i, chunks.length - i, head.subarray(0, pos), tail);
        i++;
      } else {
        chunks.splice(i, chunks.length - i, tail);
      }
      pos = 0;
    }
    const hay = chunks[i]!;
    let bestStart = -1;
    let bestEnd = -1;
    for (const sep of seps) {
      const at = hay.indexOf(sep, pos);
      if (at === -1) continue;
      const end = at + sep.length;
      // Sorted shortest first, and only a strictly earlier end replaces: the shortest separator wins ties.
      if (bestEnd === -1 || end < bestEnd) {
        bestStart = at;
        bestEnd = end;
      }
    }
    if (bestEnd === -1) return [-1, -1];
    const base = offset - pos;
    return [base + bestStart, base + bestEnd];
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const info = ['StreamReader'];
    if (this._len > 0) info.push(`${this._len} bytes`);
    if (this._eof) info.push('eof');
    if (this._limit !== DEFAULT_LIMIT) info.push(`limit=${this._limit}`);
    if (this._waiter !== null) info.push(`waiter=${inspect(this._waiter)}`);
    if (this._exception !== null) info.push(`exception=${inspect(this._exception, { depth: 0 })}`);
    if (this._transport !== null) info.push(`transport=${inspect(this._transport, { depth: 0 })}`);
    if (this._paused) info.push('paused');
    return `<${info.join(' ')}>`;
  }
}

const NEWLINE = Buffer.from('\n');

/**
 * Refuses a size that is not an integer (Python's slices take integers only): a fraction of a byte, or NaN,
 * would leave the buffer's count out of step with its bytes.
 */
function checkSize(n: unknown, method: string): void {
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new InvalidArgTypeError(`${method}() size must be an integer, got ${inspect(n, { depth: 0 })}`);
  }
}

function toSeparatorBytes(sep: unknown): Buffer {
  if (typeof sep === 'string') return Buffer.from(sep, 'utf8');
  if (sep instanceof Uint8Array) {
    return Buffer.isBuffer(sep) ? sep : Buffer.from(sep.buffer, sep.byteOffset, sep.byteLength);
  }
  throw new InvalidArgTypeError(`separator must be bytes or a string, not ${inspect(sep, { depth: 0 })}`);
}

/** The separators as Buffers, shortest first (so that the shortest wins when two end at the same byte). */
function normalizeSeparators(separator: Separator): Buffer[] {
  const seps = Array.isArray(separator)
    ? (separator as readonly unknown[]).map(toSeparatorBytes).sort((a, b) => a.length - b.length)
    : [toSeparatorBytes(separator)];
  if (seps.length === 0) throw new ValueError('Separator should contain at least one element');
  if (seps[0]!.length === 0) throw new ValueError('Separator should be at least one-byte string');
  return seps;
}

/**
 * The flow control a {@link StreamWriter}'s `drain()` relies on (asyncio's `FlowControlMixin`): a protocol that
 * remembers whether its transport paused writing, and wakes every `drain()` when it resumes or the connection is
 * lost. A subclass that overrides `pauseWriting`, `resumeWriting` or `connectionLost` must call the super method.
 */
export class FlowControlMixin extends Protocol {
  /** @internal */
  readonly _loop: BaseEventLoop;
  /** @internal */
  _paused = false;
  /** @internal */
  readonly _drainWaiters = new Set<Future<void>>();
  /** @internal The waiter the latest `_drainHelper()` made (what `drain()` marks its promise cancellable with). */
  _newestDrainWaiter: Future<void> | null = null;
  /** @internal */
  _connectionLost = false;

  /** @param loop - the loop; by default the current event loop. */
  constructor(loop?: BaseEventLoop | null) {
    super();
    this._loop = loop ?? getEventLoop();
  }

  /** Records that the transport's write buffer is over its high-water mark. */
  override pauseWriting(): void {
    if (this._paused) throw new RuntimeError('pauseWriting() called while already paused');
    this._paused = true;
    if (this._loop.getDebug()) this._loop.logger.debug(`${inspect(this)} pauses writing`);
  }

  /** Wakes every `drain()` waiting for the write buffer to drain. */
  override resumeWriting(): void {
    if (!this._paused) throw new RuntimeError('resumeWriting() called while not paused');
    this._paused = false;
    if (this._loop.getDebug()) this._loop.logger.debug(`${inspect(this)} resumes writing`);
    for (const waiter of this._drainWaiters) if (!waiter.done()) waiter.setResult(undefined);
  }

  /** Wakes a paused `drain()`: with `exc` when there is one, else normally. */
  override connectionLost(exc: Error | null): void {
    this._connectionLost = true;
    if (!this._paused) return;
    for (const waiter of this._drainWaiters) {
      if (waiter.done()) continue;
      if (exc === null) waiter.setResult(undefined);
      else waiter.setException(exc);
    }
  }

  /**
   * @internal Waits while writing is paused (asyncio's `_drain_helper`).
   *
   * @throws ConnectionResetError ("Connection lost") when the connection is already lost; the connection's
   * error when it is lost while waiting.
   */
  async _drainHelper(): Promise<void> {
    if (this._connectionLost) throw new ConnectionResetError('Connection lost');
    if (!this._paused) return;
    const waiter = this._loop.createFuture<void>();
    this._drainWaiters.add(waiter);
    this._newestDrainWaiter = waiter;
    try {
      await waiter;
    } finally {
      this._drainWaiters.delete(waiter);
    }
  }

  /** @internal The future `StreamWriter.waitClosed()` awaits. */
  _getCloseWaiter(_stream: StreamWriter): Future<void> {
    throw new RuntimeError(`${this.constructor.name} has no close waiter`);
  }
}

/**
 * What `startServer` calls for each new connection: a plain function, or an async one that is run as a Task
 * (an exception it throws goes to the loop's exception handler and closes the connection).
 */
export type ClientConnectedCallback = (reader: StreamReader, writer: StreamWriter) => void | PromiseLike<void>;

/** Options of `new StreamReaderProtocol()`. */
export interface StreamReaderProtocolOptions {
  /** The loop; by default the current event loop. */
  loop?: BaseEventLoop;
}

/**
 * The protocol between a transport and a {@link StreamReader} (asyncio's `StreamReaderProtocol`): it feeds the
 * received data and EOF to the reader, and, for a server, makes the {@link StreamWriter} and calls the
 * client-connected callback.
 */
export class StreamReaderProtocol extends FlowControlMixin {
  /** @internal */
  _streamReader: StreamReader | null;
  /** @internal */
  _streamWriter: StreamWriter | null = null;
  /**
   * @internal the task running an async client-connected callback, or the Future (a Task, say) the callback
   * returned.
   */
  _task: Future<unknown> | null = null;
  /** @internal */
  _transport: Transport | null = null;
  /** @internal */
  readonly _clientConnectedCb: ClientConnectedCallback | null;
  /** @internal */
  _overSsl = false;
  /** @internal */
  readonly _closed: Future<void>;

  /**
   * @param streamReader - the reader to feed, or `null`.
   * @param clientConnectedCb - for a server: called with the reader and a new writer when the connection is
   * made.
   * @param options - `loop`.
   */
  constructor(
    streamReader: StreamReader | null,
    clientConnectedCb: ClientConnectedCallback | null = null,
    options: StreamReaderProtocolOptions = {},
  ) {
    super(options.loop);
    if (clientConnectedCb !== null && typeof clientConnectedCb !== 'function') {
      throw new InvalidArgTypeError(`clientConnectedCb must be a function, got ${inspect(clientConnectedCb)}`);
    }
    this._streamReader = streamReader;
    this._clientConnectedCb = clientConnectedCb;
    this._closed = this._loop.createFuture<void>();
  }

  /** @internal For `startTls`: the writer now writes to, and the reader pauses, a new transport. */
  _replaceWriter(writer: StreamWriter): void {
    const transport = writer.transport;
    this._streamWriter = writer;
    this._transport = transport;
    this._overSsl = transport.getExtraInfo('sslcontext') != null;
    this._streamReader?._replaceTransport(transport);
  }

  /**
   * @internal For a server-side `loop.startTls()`: removes and returns what the reader holds unread, which may
   * be the client's first TLS records (a ClientHello that came in the same segment as the last plain line).
   */
  _takeUnread(): Buffer | null {
    const reader = this._streamReader;
    if (reader === null || reader._len === 0) return null;
    return reader._consume(reader._len);
  }

  /** Hands the transport to the reader and, for a server, calls the client-connected callback. */
  override connectionMade(transport: Transport): void {
    this._transport = transport;
    const reader = this._streamReader;
    if (reader !== null) reader.setTransport(transport);
    this._overSsl = transport.getExtraInfo('sslcontext') != null;
    const cb = this._clientConnectedCb;
    if (cb === null) return;
    const writer = new StreamWriter(transport, this, reader, this._loop);
    this._streamWriter = writer;
    let task: Future<unknown>;
    if (isAsyncFunction(cb)) {
      // Started by the task, as asyncio starts the coroutine the callback returns: it runs as that task.
      task = this._loop.createTask(() => cb(reader as StreamReader, writer) as PromiseLike<void>);
    } else {
      const res = cb(reader as StreamReader, writer);
      if (!isThenable(res)) return;
      // A Future (a Task the callback made, say) is watched as it is: only a promise needs a task of its own.
      task = isFuture(res) ? res : this._loop.createTask(res);
    }
    this._task = task;
    task.addDoneCallback((t) => {
      if (t.cancelled()) {
        transport.close();
        return;
      }
      const exception = t.exception();
      if (exception !== null) {
        this._loop.callExceptionHandler({
          message: 'Unhandled exception in client_connected_cb',
          exception,
          transport,
        });
        transport.close();
      }
    });
  }

  /** Feeds EOF (or the error) to the reader and settles `waitClosed()`. */
  override connectionLost(exc: Error | null): void {
    const reader = this._streamReader;
    if (reader !== null) {
      if (exc === null) reader.feedEof();
      else reader.setException(exc);
    }
    if (!this._closed.done()) {
      if (exc === null) this._closed.setResult(undefined);
      else {
        this._closed.setException(exc);
        // asyncio retrieves it when the protocol is collected: nobody has to await waitClosed() to avoid a
        // "never retrieved" report.
        this._closed.exception();
      }
    }
    super.connectionLost(exc);
    this._streamReader = null;
    this._streamWriter = null;
    this._task = null;
    this._transport = null;
  }

  /** Feeds the data to the reader. */
  override dataReceived(data: Buffer): void {
    this._streamReader?.feedData(data);
  }

  /** Feeds EOF to the reader and keeps the transport open for writing (half-close), except over TLS. */
  override eofReceived(): boolean {
    this._streamReader?.feedEof();
    // TLS cannot half-close: returning true there would only earn a warning.
    return !this._overSsl;
  }

  /** @internal */
  override _getCloseWaiter(_stream: StreamWriter): Future<void> {
    return this._closed;
  }
}

function isAsyncFunction(fn: unknown): boolean {
  const name = (fn as { constructor?: { name?: string } }).constructor?.name;
  return name === 'AsyncFunction';
}

/** Options of {@link StreamWriter.startTls}. */
export interface StreamStartTlsOptions {
  /** The host name to check the server's certificate against (client side). */
  serverHostname?: string | null;
  /** Seconds to wait for the TLS handshake (default 60). */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for the TLS shutdown (default 30). */
  sslShutdownTimeout?: number | null;
}

/**
 * The writing half of a stream connection (asyncio's `StreamWriter`): a transport plus `drain()` for flow
 * control, `waitClosed()`, and `startTls()`.
 *
 * Write, then `await writer.drain()`: `drain()` returns at once while the transport's buffer is under its
 * high-water mark and waits otherwise, so a slow peer slows the writer down instead of growing memory.
 */
export class StreamWriter {
  /** @internal */
  _transport: Transport;
  /** @internal */
  readonly _protocol: FlowControlMixin;
  /** @internal */
  readonly _reader: StreamReader | null;
  /** @internal */
  readonly _loop: BaseEventLoop;

  /**
   * Made by `openConnection`/`startServer`; make one yourself only around your own transport and protocol.
   *
   * @param transport - the connection's transport.
   * @param protocol - the transport's protocol (a {@link FlowControlMixin}, usually a
   * {@link StreamReaderProtocol}).
   * @param reader - the connection's reader, whose exception `drain()` reports, or `null`.
   * @param loop - the loop.
   */
  constructor(transport: Transport, protocol: FlowControlMixin, reader: StreamReader | null, loop: BaseEventLoop) {
    if (reader !== null && !(reader instanceof StreamReader)) {
      throw new InvalidArgTypeError('reader must be a StreamReader or null');
    }
    this._transport = transport;
    this._protocol = protocol;
    this._reader = reader;
    this._loop = loop;
  }

  /** The underlying transport. */
  get transport(): Transport {
    return this._transport;
  }

  /**
   * Writes bytes; never waits (follow with `await drain()`).
   *
   * @throws TypeError when `data` is not bytes.
   */
  write(data: Uint8Array): void {
    this._transport.write(data);
  }

  /** Writes a list of byte buffers; never waits. */
  writelines(data: Iterable<Uint8Array>): void {
    this._transport.writelines(data);
  }

  /** Closes the write end after the buffered data is sent (half-close). */
  writeEof(): void {
    this._transport.writeEof();
  }

  /** True when the transport supports `writeEof()`. */
  canWriteEof(): boolean {
    return this._transport.canWriteEof();
  }

  /** Closes the stream: buffered data is still sent; `waitClosed()` tells when the connection is gone. */
  close(): void {
    this._transport.close();
  }

  /** True when the stream is closing or closed. */
  isClosing(): boolean {
    return this._transport.isClosing();
  }

  /**
   * Waits until the connection is closed (call it after `close()`).
   *
   * @throws the error the connection was lost with, if any.
   */
  async waitClosed(): Promise<void> {
    await this._protocol._getCloseWaiter(this);
  }

  /**
   * Information about the transport (`'peername'`, `'sockname'`, `'socket'`, `'sslcontext'`, `'peercert'`…).
   *
   * @param name - the key.
   * @param defaultValue - returned when the transport has no such information.
   */
  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return this._transport.getExtraInfo(name, defaultValue);
  }

  /**
   * Waits until it is appropriate to write again: returns at once unless the transport's write buffer is over
   * its high-water mark, then waits until it drains to the low-water mark.
   *
   * @throws the reader's exception (the connection's error); ConnectionResetError ("Connection lost") when the
   * connection is gone; the connection's error when it is lost while waiting.
   */
  drain(): Promise<void> {
    const protocol = this._protocol;
    // Nothing to wait for (the usual case): a settled promise, without an async function's own promise and
    // awaits. asyncio's drain() does not yield to the loop then either.
    if (!protocol._paused && !protocol._connectionLost && !this._transport.isClosing()) {
      if (this._reader === null || this._reader.exception() === null) return DRAINED;
    }
    protocol._newestDrainWaiter = null;
    const drained = this._drain();
    // Waiting: cancellable at its wait (`waitFor(writer.drain(), 1)`; see `cancellablePromise`).
    const waiter = protocol._newestDrainWaiter as Future<void> | null;
    return waiter === null ? drained : cancellablePromise(drained, (msg) => waiter.cancel(msg));
  }

  /** @internal `drain()` when it may have to wait or throw. */
  async _drain(): Promise<void> {
    if (this._reader !== null) {
      const exc = this._reader.exception();
      if (exc !== null) throw exc;
    }
    if (this._transport.isClosing()) {
      // Let connectionLost() run: without this, `write(); await drain()` in a loop on a closed connection
      // would never give the loop a turn, and never see the error.
      await sleep(0);
    }
    await this._protocol._drainHelper();
  }

  /**
   * Upgrades the connection to TLS (the server side for a `startServer` connection, else the client side):
   * drains, then hands the transport to `loop.startTls()`; the writer and its reader then speak TLS.
   *
   * @param sslcontext - an `SSLContext` from `@loopwork/tls`.
   * @param options - `serverHostname`, `sslHandshakeTimeout` and `sslShutdownTimeout` in seconds.
   * @throws RuntimeError when `loop.startTls` is not installed (import `@loopwork/tls`); the handshake's error.
   */
  async startTls(sslcontext: SSLContext, options: StreamStartTlsOptions = {}): Promise<void> {
    checkOptions(options, ['serverHostname', 'sslHandshakeTimeout', 'sslShutdownTimeout'], 'startTls');
    if (typeof (this._loop as { startTls?: unknown }).startTls !== 'function') {
      throw new RuntimeError(
        'StreamWriter.startTls() needs loop.startTls(), which @loopwork/tls installs; it is not available',
      );
    }
    const protocol = this._protocol;
    if (!(protocol instanceof StreamReaderProtocol)) {
      throw new RuntimeError('StreamWriter.startTls() needs a StreamReaderProtocol');
    }
    const serverSide = protocol._clientConnectedCb !== null;
    await this.drain();
    const tlsOptions: StartTlsOptions = { serverSide };
    if (options.serverHostname !== undefined) tlsOptions.serverHostname = options.serverHostname;
    if (options.sslHandshakeTimeout !== undefined) tlsOptions.sslHandshakeTimeout = options.sslHandshakeTimeout;
    if (options.sslShutdownTimeout !== undefined) tlsOptions.sslShutdownTimeout = options.sslShutdownTimeout;
    this._transport = await this._loop.startTls(this._transport, protocol, sslcontext, tlsOptions);
    protocol._replaceWriter(this);
  }

  /**
   * `await using writer`: closes the stream and waits until it is closed. An error the connection was lost
   * with is not thrown here (the connection is gone either way).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this._transport.isClosing()) this._transport.close();
    try {
      await this.waitClosed();
    } catch {
      // The connection's error was the reader's to report.
    }
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const info = ['StreamWriter', `transport=${inspect(this._transport, { depth: 0 })}`];
    if (this._reader !== null) info.push(`reader=${inspect(this._reader)}`);
    return `<${info.join(' ')}>`;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Opening connections and starting servers

/** The stream options every opening function adds to its loop method's options. */
export interface StreamOptions {
  /** The {@link StreamReader}'s buffer limit in bytes (default 64 KiB). */
  limit?: number;
}

/** Options of {@link openConnection}: `limit` and every option of `loop.createConnection()`. */
export interface OpenConnectionOptions extends StreamOptions, CreateConnectionOptions {}
/** Options of {@link startServer}: `limit` and every option of `loop.createServer()`. */
export interface StartServerOptions extends StreamOptions, CreateServerOptions {}
/** Options of {@link openUnixConnection}: `limit` and every option of `loop.createUnixConnection()`. */
export interface OpenUnixConnectionOptions extends StreamOptions, CreateUnixConnectionOptions {}
/** Options of {@link startUnixServer}: `limit` and every option of `loop.createUnixServer()`. */
export interface StartUnixServerOptions extends StreamOptions, CreateUnixServerOptions {}

/**
 * Splits `(a?, b?, options?)` or `(options)` into the positional arguments, the loop method's options (without
 * `limit`), and the limit.
 */
function splitStreamArgs<O extends StreamOptions>(
  args: readonly unknown[],
  positional: number,
): { positional: unknown[] | null; options: Omit<O, 'limit'>; limit: number | undefined } {
  const first = args[0];
  if (args.length === 1 && isOptionsArg(first)) {
    const { limit, ...rest } = first as O;
    return { positional: null, options: rest, limit };
  }
  const opts = (args[positional] ?? {}) as O;
  const { limit, ...rest } = opts;
  return { positional: args.slice(0, positional), options: rest, limit };
}

function readerOptions(loop: BaseEventLoop, limit: number | undefined): StreamReaderOptions {
  return limit === undefined ? { loop } : { loop, limit };
}

/**
 * Opens a TCP connection and returns its reader and writer (asyncio's `open_connection`).
 *
 * @param host - the host to connect to (a name or a numeric address).
 * @param port - the port.
 * @param options - `limit` (the reader's buffer limit in bytes, default 64 KiB) and every option of
 * `loop.createConnection()` (`ssl`, `family`, `localAddr`, `happyEyeballsDelay`, `sock`…).
 * @returns `[reader, writer]`.
 * @throws what `loop.createConnection()` throws (`ECONNREFUSED`, the resolver's error…).
 * @example
 * ```ts
 * const [reader, writer] = await openConnection('127.0.0.1', 8888);
 * writer.write(Buffer.from('hello\n'));
 * console.log(String(await reader.readline()));
 * writer.close();
 * await writer.waitClosed();
 * ```
 */
export function openConnection(
  host?: string | null,
  port?: number | string | null,
  options?: OpenConnectionOptions,
): Promise<[StreamReader, StreamWriter]>;
export function openConnection(options: OpenConnectionOptions): Promise<[StreamReader, StreamWriter]>;
export function openConnection(...args: unknown[]): Promise<[StreamReader, StreamWriter]> {
  // In a Task of its own, cancellable (`waitFor(openConnection(host, port), 5)`; see `runCancellable`).
  return inRunningLoop((loop) => openConnectionIn(loop, args));
}

/**
 * `work` in a Task of the running loop, its promise cancellable (see `runCancellable`); rejected when no loop
 * runs, as a coroutine's error comes when it is awaited.
 */
function inRunningLoop<T>(work: (loop: BaseEventLoop) => Promise<T>): Promise<T> {
  let loop: BaseEventLoop;
  try {
    loop = getRunningLoop();
  } catch (exc) {
    return Promise.reject(exc as Error);
  }
  return runCancellable(loop, () => work(loop));
}

async function openConnectionIn(loop: BaseEventLoop, args: unknown[]): Promise<[StreamReader, StreamWriter]> {
  const { positional, options, limit } = splitStreamArgs<OpenConnectionOptions>(args, 2);
  const reader = new StreamReader(readerOptions(loop, limit));
  const protocol = new StreamReaderProtocol(reader, null, { loop });
  const [transport] =
    positional === null
      ? await loop.createConnection(() => protocol, options)
      : await loop.createConnection(
          () => protocol,
          positional[0] as string | null | undefined,
          positional[1] as number | string | null | undefined,
          options,
        );
  return [reader, new StreamWriter(transport, protocol, reader, loop)];
}

/**
 * Starts a TCP server that calls `clientConnectedCb(reader, writer)` for each connection (asyncio's
 * `start_server`).
 *
 * The callback may be a plain function or an async one; an async one runs as a Task, and an exception it throws
 * goes to the loop's exception handler and closes that connection (the server goes on).
 *
 * @param clientConnectedCb - called with each connection's reader and writer.
 * @param host - where to listen: a host, a list of hosts, or `null`/`''` for every interface.
 * @param port - the port; 0 for a free one.
 * @param options - `limit` (each reader's buffer limit in bytes, default 64 KiB) and every option of
 * `loop.createServer()` (`ssl`, `backlog`, `reusePort`, `sock`, `startServing`…).
 * @returns the `Server`.
 * @throws what `loop.createServer()` throws (`EADDRINUSE`…).
 * @example
 * ```ts
 * const server = await startServer(async (reader, writer) => {
 *   for await (const line of reader) writer.write(line);
 *   writer.close();
 * }, '127.0.0.1', 8888);
 * await server.serveForever();
 * ```
 */
export async function startServer(
  clientConnectedCb: ClientConnectedCallback,
  host?: string | Iterable<string> | null,
  port?: number | string | null,
  options?: StartServerOptions,
): Promise<Server>;
export async function startServer(
  clientConnectedCb: ClientConnectedCallback,
  options: StartServerOptions,
): Promise<Server>;
export async function startServer(clientConnectedCb: ClientConnectedCallback, ...args: unknown[]): Promise<Server> {
  const loop = getRunningLoop();
  checkCallback(clientConnectedCb);
  const { positional, options, limit } = splitStreamArgs<StartServerOptions>(args, 2);
  const factory = (): StreamReaderProtocol =>
    new StreamReaderProtocol(new StreamReader(readerOptions(loop, limit)), clientConnectedCb, { loop });
  if (positional === null) return loop.createServer(factory, options);
  return loop.createServer(
    factory,
    positional[0] as string | Iterable<string> | null | undefined,
    positional[1] as number | string | null | undefined,
    options,
  );
}

/**
 * Opens a Unix socket connection and returns its reader and writer (asyncio's `open_unix_connection`).
 *
 * @param path - the socket's path (a `Buffer` or a string starting with `\0` for an abstract name).
 * @param options - `limit` (bytes, default 64 KiB) and every option of `loop.createUnixConnection()`.
 * @returns `[reader, writer]`.
 * @throws what `loop.createUnixConnection()` throws (`ENOENT`, `ECONNREFUSED`…).
 */
export function openUnixConnection(
  path?: string | Buffer | URL | null,
  options?: OpenUnixConnectionOptions,
): Promise<[StreamReader, StreamWriter]>;
export function openUnixConnection(options: OpenUnixConnectionOptions): Promise<[StreamReader, StreamWriter]>;
export function openUnixConnection(...args: unknown[]): Promise<[StreamReader, StreamWriter]> {
  // In a Task of its own, cancellable, as openConnection.
  return inRunningLoop((loop) => openUnixConnectionIn(loop, args));
}

async function openUnixConnectionIn(loop: BaseEventLoop, args: unknown[]): Promise<[StreamReader, StreamWriter]> {
  const { positional, options, limit } = splitStreamArgs<OpenUnixConnectionOptions>(args, 1);
  const reader = new StreamReader(readerOptions(loop, limit));
  const protocol = new StreamReaderProtocol(reader, null, { loop });
  const [transport] =
    positional === null
      ? await loop.createUnixConnection(() => protocol, options)
      : await loop.createUnixConnection(
          () => protocol,
          positional[0] as string | Buffer | URL | null | undefined,
          options,
        );
  return [reader, new StreamWriter(transport, protocol, reader, loop)];
}

/**
 * Starts a Unix socket server that calls `clientConnectedCb(reader, writer)` for each connection (asyncio's
 * `start_unix_server`); the callback as in {@link startServer}.
 *
 * @param clientConnectedCb - called with each connection's reader and writer.
 * @param path - the socket's path (a `Buffer` or a string starting with `\0` for an abstract name).
 * @param options - `limit` (bytes, default 64 KiB) and every option of `loop.createUnixServer()` (`mode`: the
 * socket file's permission bits, which it never exceeds, e.g. `0o600` for an admin socket).
 * @returns the `Server`.
 * @throws what `loop.createUnixServer()` throws (`EADDRINUSE`, a refused `mode`…).
 */
export async function startUnixServer(
  clientConnectedCb: ClientConnectedCallback,
  path?: string | Buffer | URL | null,
  options?: StartUnixServerOptions,
): Promise<Server>;
export async function startUnixServer(
  clientConnectedCb: ClientConnectedCallback,
  options: StartUnixServerOptions,
): Promise<Server>;
export async function startUnixServer(clientConnectedCb: ClientConnectedCallback, ...args: unknown[]): Promise<Server> {
  const loop = getRunningLoop();
  checkCallback(clientConnectedCb);
  const { positional, options, limit } = splitStreamArgs<StartUnixServerOptions>(args, 1);
  const factory = (): StreamReaderProtocol =>
    new StreamReaderProtocol(new StreamReader(readerOptions(loop, limit)), clientConnectedCb, { loop });
  if (positional === null) return loop.createUnixServer(factory, options);
  return loop.createUnixServer(factory, positional[0] as string | Buffer | URL | null | undefined, options);
}

function checkCallback(cb: unknown): void {
  if (typeof cb !== 'function') {
    throw new InvalidArgTypeError(`clientConnectedCb must be a function, got ${inspect(cb, { depth: 0 })}`);
  }
}
