/**
 * Sending files: `loop.sendfile(transport, file)` and `loop.sockSendfile(sock, file)` (asyncio's `sendfile` and
 * `sock_sendfile`, with `base_events.py`'s fallback and `unix_events.py`'s native path).
 *
 * The native path is zero-copy: the native addon runs `sendfile(2)` on a libuv threadpool thread, straight from
 * the page cache to the socket, while the loop goes on. It needs a regular file and a plain TCP or Unix socket;
 * a transport's write buffer is drained first, its reading is paused, and its `write()` is refused with
 * `unable to write; sendfile is in progress` until the transfer ends. Anywhere else (TLS, a pipe as the source,
 * no addon) the fallback reads the file in blocks and writes them, honouring the transport's write flow control.
 *
 * The file position ends at `offset + bytesSent`, also when the transfer fails or is cancelled, as in asyncio.
 * Setting a file position needs `lseek(2)`, which Node lacks: it is done by letting the kernel advance the
 * position (a transfer reads from it), or, to move it forward, by discarding bytes into `/dev/null`; a position
 * past `offset` cannot be moved back, and is then left as it was.
 *
 * @module
 */
import { fstat, openSync, read as fsRead, readFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import { extendEventLoop } from './base-event-loop.js';
import { SOCK_STREAM } from './dns.js';
import {
  ConnectionError,
  InvalidArgTypeError,
  RuntimeError,
  SendfileNotAvailableError,
  ValueError,
  connectionError,
  osErrorFrom,
} from './errors.js';
import type { OSErrorFields } from './errors.js';
import { checkOptions } from './options.js';
import type { Future } from './futures.js';
import type { SendfileError, SendfileHandle } from './native.js';
import * as native from './native.js';
import type { BaseProtocol } from './protocols.js';
import { Protocol } from './protocols.js';
import type { Socket } from './socket.js';
import { isSocket } from './socket.js';
import { SocketTransport } from './socket-transport.js';
import type { Transport } from './transports.js';
import { FlowControlTransport } from './transports.js';

/** What `sendfile` reads from: a file descriptor, a `fs.promises.FileHandle`, or an object with `fileno()`. */
export type SendfileSource = number | FileHandle | { fileno(): number };

/** Options of `loop.sendfile` and `loop.sockSendfile`. */
export interface SendfileOptions {
  /** Read and write the file when zero-copy `sendfile(2)` cannot be used (default true). */
  fallback?: boolean;
}

/**
 * How a transport can send files (asyncio's `_SendfileMode`): `'native'` tries `sendfile(2)` first,
 * `'fallback'` always reads and writes (TLS), `'unsupported'` refuses (datagram and pipe transports). A
 * transport may declare it as `_sendfileCompatible`.
 */
export type SendfileMode = 'native' | 'fallback' | 'unsupported';

/** Bytes read at a time by the fallback (asyncio reads 16 KiB for transports, 256 KiB for sockets). */
const FALLBACK_BLOCK = 256 * 1024;
const SEEK_SET = 0;
const SEEK_CUR = 1;

// ---------------------------------------------------------------------------------------------------------
// Files and their position

type Lseek = (fd: number, offset: number, whence: number) => number;

/** `lseek(2)`, once the native addon has it. */
function nativeLseek(): Lseek | undefined {
  if (!native.nativeAvailable()) return undefined;
  const fn = (native as unknown as { lseek?: unknown }).lseek;
  return typeof fn === 'function' ? (fn as Lseek) : undefined;
}

function fileFd(file: unknown): number {
  let fd: unknown;
  if (typeof file === 'number') fd = file;
  else if (typeof file === 'object' && file !== null) {
    const f = file as { fd?: unknown; fileno?: unknown };
    fd = typeof f.fileno === 'function' ? (f.fileno as () => unknown).call(file) : f.fd;
  }
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new InvalidArgTypeError(
      `file must be a file descriptor, a FileHandle or an object with fileno(), got ${inspect(file, { depth: 0 })}`,
    );
  }
  return fd;
}

function fstatAsync(fd: number): Promise<Stats> {
  return new Promise((resolve, reject) => fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}

/** The file position of `fd`, or null when it cannot be known. */
function filePosition(fd: number): number | null {
  const lseek = nativeLseek();
  if (lseek !== undefined) return lseek(fd, 0, SEEK_CUR);
  try {
    const m = /^pos:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    return m === null ? null : Number(m[1]);
  } catch {
    return null;
  }
}

let devNull = -1;

/** Advances the file position of `fd` by `n` bytes without reading them into memory (`sendfile` to /dev/null). */
function skipForward(fd: number, n: number): Promise<number> {
  if (devNull < 0) devNull = openSync('/dev/null', 'w');
  return new Promise((resolve) => {
    native.sendfile(devNull, fd, null, n, (err, sent) => resolve(err === null ? sent : -1));
  });
}

/**
 * Moves the file position of `fd` to `pos`.
 *
 * @returns true when the position is now `pos`; false when it cannot be moved there (see the module comment).
 */
async function seekFile(fd: number, pos: number): Promise<boolean> {
  const lseek = nativeLseek();
  if (lseek !== undefined) {
    lseek(fd, pos, SEEK_SET);
    return true;
  }
  const cur = filePosition(fd);
  if (cur === null || cur > pos) return false;
  if (cur === pos) return true;
  if (!native.nativeAvailable()) return false;
  return (await skipForward(fd, pos - cur)) === pos - cur;
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/** The error a transfer ends with, as asyncio raises it; `bytesSent` says how much went out before. */
type SendfileFailure = Error & OSErrorFields & { bytesSent?: number };

/**
 * asyncio's errors for a socket lost during a transfer: `ConnectionError('socket is not connected')` for
 * `ENOTCONN`, `ConnectionAbortedError`/`ConnectionResetError` otherwise, with `code`, `errno` and `syscall`.
 */
function sendfileConnectionError(
  message: string,
  code: 'ECONNRESET' | 'ENOTCONN' | 'ECONNABORTED',
  cause?: unknown,
): SendfileFailure {
  const fields = native.systemError(osConstants.errno[code], 'sendfile');
  const err = osErrorFrom(fields, message, code === 'ENOTCONN' ? ConnectionError : undefined) as SendfileFailure;
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, configurable: true, writable: true });
  return err;
}

function checkSendfileParams(offset: unknown, count: unknown): void {
  if (count !== null && count !== undefined) {
    if (typeof count !== 'number' || !Number.isInteger(count)) {
      throw new InvalidArgTypeError(`count must be a positive integer (got ${inspect(count)})`);
    }
    if (count <= 0) throw new ValueError(`count must be a positive integer (got ${count})`);
  }
  if (typeof offset !== 'number' || !Number.isInteger(offset)) {
    throw new InvalidArgTypeError(`offset must be a non-negative integer (got ${inspect(offset)})`);
  }
  if (offset < 0) throw new ValueError(`offset must be a non-negative integer (got ${offset})`);
}

// ---------------------------------------------------------------------------------------------------------
// The native path

/**
 * Registers `abort` to run when the output goes away mid-transfer (with the error that took it, if any); returns
 * the unregistering function.
 */
type CloseWatch = (abort: (reason: Error | null) => void) => () => void;

/** A transport's own native path (FdTransport's `_sendfileNative`), given the `sendfile(2)` runner. */
type OwnSendfile = (run: (fd: number, watchClose: CloseWatch) => Promise<number>) => Promise<number>;

/**
 * asyncio's `_sock_sendfile_native`: `sendfile(2)` from `file` to `outFd` on the threadpool.
 *
 * @throws SendfileNotAvailableError when the file is no regular file, the addon is missing, or the first
 *   `sendfile(2)` fails (asyncio then falls back); the system error (`EPIPE`, `ECONNRESET`, carrying
 *   `bytesSent`) once bytes went out; CancelledError after the transfer stopped.
 */
async function sendfileNative(
  loop: BaseEventLoop,
  outFd: number,
  file: SendfileSource,
  offset: number,
  count: number | null,
  watchClose: CloseWatch | null,
): Promise<number> {
  const fileno = fileFd(file);
  let st: Stats;
  try {
    st = await fstatAsync(fileno);
  } catch (err) {
    throw new SendfileNotAvailableError('not a regular file', { cause: err });
  }
  if (!st.isFile()) throw new SendfileNotAvailableError('not a regular file');
  if (!native.nativeAvailable()) throw new SendfileNotAvailableError('sendfile syscall is not supported');
  const blocksize = count ?? st.size;
  if (blocksize === 0) return 0; // empty file
  // Nothing to send from there: asyncio moves the file position only when something was sent.
  if (offset >= st.size) return 0;

  // Reading from the file position makes the kernel leave it at offset + bytes sent, whatever happens.
  const positioned = await seekFile(fileno, offset);
  // A duplicate, so that the socket closing meanwhile can never make the worker write into a reused fd number.
  const out = native.dup(outFd);
  const state: { err: SendfileError | null; sent: number; closed: boolean; reason: Error | null } = {
    err: null,
    sent: 0,
    closed: false,
    reason: null,
  };
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const fut = loop.createFuture<void>();
  let handle: SendfileHandle;
  try {
    handle = native.sendfile(out, fileno, positioned ? null : offset, count ?? 0, (err, sent) => {
      try {
        native.close(out);
      } catch {
        // nothing left to release
      }
      state.err = err;
      state.sent = sent;
      finish();
      if (!fut.done() && !loop.isClosed()) fut.setResult(undefined);
    });
  } catch (err) {
    native.close(out);
    throw err;
  }
  const unwatch = watchClose?.((reason) => {
    state.closed = true;
    state.reason = reason;
    handle.cancel();
  });
  try {
    await fut;
  } catch (err) {
    // Cancelled: the transfer must have stopped before anyone writes to the socket again.
    handle.cancel();
    await finished;
    throw err;
  } finally {
    unwatch?.();
  }
  const { err, sent } = state;
  if (err === null) return sent;
  if (state.closed) {
    // The socket went away under the transfer: with the error that took it (a reset peer; Node's own socket reports
    // it as `write EPIPE`, made asyncio's OSError here), or closed by its owner.
    const exc = (
      state.reason === null
        ? sendfileConnectionError('Connection closed during sendfile', 'ECONNABORTED', err)
        : connectionError(state.reason)
    ) as SendfileFailure;
    exc.bytesSent = sent;
    throw exc;
  }
  // Nothing went out: most likely the file cannot be sent this way; asyncio then falls back.
  if (sent === 0) throw new SendfileNotAvailableError('os.sendfile call failed', { cause: err });
  const exc =
    err.code === 'ENOTCONN'
      ? sendfileConnectionError('socket is not connected', 'ENOTCONN', err)
      : (connectionError(err) as SendfileFailure);
  exc.bytesSent = sent;
  throw exc;
}

// ---------------------------------------------------------------------------------------------------------
// The fallback: read blocks, write them

interface Source {
  readonly fd: number;
  /** A regular file or block device: read at explicit positions. Otherwise (pipe, socket) read in sequence. */
  readonly seekable: boolean;
}

async function openSource(file: SendfileSource, offset: number): Promise<Source> {
  const fd = fileFd(file);
  let st: Stats;
  try {
    st = await fstatAsync(fd);
  } catch (err) {
    throw connectionError(err);
  }
  const seekable = st.isFile() || st.isBlockDevice();
  if (!seekable && offset !== 0) throw osErrorFrom(native.systemError(osConstants.errno.ESPIPE, 'lseek'));
  return { fd, seekable };
}

/**
 * Reads up to `size` bytes into `buf` at `position` (null: in sequence); waits for a non-blocking pipe to be
 * readable. Resolves with the number of bytes read, 0 at end of file.
 */
function readBlock(
  loop: BaseEventLoop,
  src: Source,
  buf: Buffer,
  position: number | null,
  size: number,
): Future<number> {
  const fut = loop.createFuture<number>();
  let watching = false;
  const attempt = (): void => {
    if (watching) {
      watching = false;
      loop._removeReader(src.fd);
    }
    fsRead(src.fd, buf, 0, size, position, (err, n) => {
      if (fut.done() || loop.isClosed()) return;
      if (err === null) {
        fut.setResult(n);
      } else if ((err as { code?: unknown }).code === 'EAGAIN' && native.nativeAvailable()) {
        watching = true;
        loop._addReader(src.fd, attempt);
      } else {
        // A file that cannot be read (a directory, an fd opened to write) fails as Python's read does.
        fut.setException(connectionError(err));
      }
    });
  };
  fut.addDoneCallback(() => {
    if (watching) loop._removeReader(src.fd);
    watching = false;
  });
  attempt();
  return fut;
}

/** A block being read: its buffer and the read's outcome (bytes read). */
interface Block {
  readonly buf: Buffer;
  readonly read: Future<number>;
}

/**
 * Reads `file` in blocks and hands each to `send`; returns the bytes sent. The next block of a regular file is
 * read while the previous one is being sent. The file position ends at `offset + total` (asyncio's `finally`).
 *
 * Blocks are reused rather than allocated each time (a gigabyte of fresh buffers keeps the garbage collector
 * busy): a buffer handed to `send` is taken again only once `released()` says every one sent so far is free.
 */
async function copyFile(
  loop: BaseEventLoop,
  file: SendfileSource,
  offset: number,
  count: number | null,
  send: (chunk: Buffer) => Promise<void>,
  released: () => boolean,
): Promise<number> {
  const src = await openSource(file, offset);
  const limit = count ?? Infinity;
  const blockAt = (total: number): number => Math.min(limit - total, FALLBACK_BLOCK);
  const free: Buffer[] = [];
  const sent: Buffer[] = [];
  const start = (total: number): Block => {
    if (sent.length > 0 && released()) free.push(...sent.splice(0));
    const buf = free.pop() ?? Buffer.allocUnsafe(Math.min(FALLBACK_BLOCK, limit));
    return { buf, read: readBlock(loop, src, buf, src.seekable ? offset + total : null, blockAt(total)) };
  };
  let total = 0;
  let next: Block | null = null;
  try {
    while (blockAt(total) > 0) {
      const block: Block = next ?? start(total);
      next = null;
      const n = await block.read;
      if (n === 0) break; // EOF
      if (src.seekable && blockAt(total + n) > 0) next = start(total + n);
      await send(n === block.buf.length ? block.buf : block.buf.subarray(0, n));
      sent.push(block.buf);
      total += n;
    }
    return total;
  } finally {
    next?.read.cancel();
    if (total > 0 && src.seekable) await seekFile(src.fd, offset + total);
  }
}

/**
 * asyncio's `_SendfileFallbackProtocol`: stands in for the transport's protocol while the fallback writes, so
 * that the transport's `pauseWriting`/`resumeWriting` pace the writes; reading is paused meanwhile.
 */
class SendfileFallbackProtocol extends Protocol {
  readonly #transport: Transport & FlowControlTransport;
  readonly #proto: BaseProtocol;
  readonly #shouldResumeReading: boolean;
  readonly #shouldResumeWriting: boolean;
  #writeReady: Future<boolean> | null = null;

  constructor(transport: Transport) {
    super();
    if (!(transport instanceof FlowControlTransport)) {
      throw new InvalidArgTypeError('transport should be _FlowControlMixin instance');
    }
    const t = transport as Transport & FlowControlTransport;
    this.#transport = t;
    this.#proto = t.getProtocol();
    this.#shouldResumeReading = t.isReading();
    this.#shouldResumeWriting = t._protocolPaused;
    t.pauseReading();
    t.setProtocol(this);
    if (this.#shouldResumeWriting) this.#writeReady = t._loop.createFuture<boolean>();
  }

  /** Waits until the transport may be written to again. */
  async drain(): Promise<void> {
    if (this.#transport.isClosing()) throw sendfileConnectionError('Connection closed by peer', 'ECONNRESET');
    const fut = this.#writeReady;
    if (fut === null) return;
    await fut;
  }

  override connectionMade(): void {
    throw new RuntimeError('Invalid state: connection should have been established already.');
  }

  override connectionLost(exc: Error | null): void {
    const fut = this.#writeReady;
    if (fut !== null && !fut.done()) {
      // The peer going away before the whole file was sent is always an error for the sender.
      fut.setException(exc ?? sendfileConnectionError('Connection is closed by peer', 'ECONNRESET'));
      // Reported to whoever awaits it; never as "exception was never retrieved".
      fut.exception();
    }
    this.#proto.connectionLost(exc);
  }

  override pauseWriting(): void {
    if (this.#writeReady !== null) return;
    this.#writeReady = this.#transport._loop.createFuture<boolean>();
  }

  override resumeWriting(): void {
    const fut = this.#writeReady;
    if (fut === null) return;
    if (!fut.done()) fut.setResult(false);
    this.#writeReady = null;
  }

  override dataReceived(): void {
    throw new RuntimeError('Invalid state: reading should be paused');
  }

  override eofReceived(): boolean {
    throw new RuntimeError('Invalid state: reading should be paused');
  }

  /** Gives the transport its protocol back, and its reading and writing state. */
  restore(): void {
    this.#transport.setProtocol(this.#proto);
    if (this.#shouldResumeReading) this.#transport.resumeReading();
    this.#writeReady?.cancel();
    if (this.#shouldResumeWriting) this.#proto.resumeWriting();
  }
}

async function sendfileFallback(
  loop: BaseEventLoop,
  transport: Transport,
  file: SendfileSource,
  offset: number,
  count: number | null,
): Promise<number> {
  const proto = new SendfileFallbackProtocol(transport);
  try {
    return await copyFile(
      loop,
      file,
      offset,
      count,
      async (chunk) => {
        await proto.drain();
        transport.write(chunk);
      },
      // Nothing buffered: every block written so far has gone to the kernel (or the TLS engine).
      () => transport.getWriteBufferSize() === 0,
    );
  } finally {
    proto.restore();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Transports

interface NodeSocketLike {
  readonly writableLength: number;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  readonly encrypted?: boolean;
  readonly _handle?: { fd?: number } | null;
  write(data: Uint8Array, cb: (err?: Error | null) => void): boolean;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close' | 'error', listener: (...args: never[]) => void): unknown;
}

/**
 * How `transport` can send files (asyncio's `_sendfile_compatible`): what it declares, else `'native'` for a
 * plain `SocketTransport`, `'fallback'` for a TLS one (or a transport with an `sslcontext`), `'unsupported'`
 * otherwise (datagram and pipe transports).
 *
 * @param transport - a transport.
 * @returns its mode.
 */
export function sendfileMode(transport: unknown): SendfileMode {
  const declared = (transport as { _sendfileCompatible?: unknown } | null)?._sendfileCompatible;
  if (declared === 'native' || declared === 'fallback' || declared === 'unsupported') return declared;
  if (transport instanceof SocketTransport) {
    const sock = transport._socket as unknown as NodeSocketLike | null;
    return sock?.encrypted === true ? 'fallback' : 'native';
  }
  if (
    transport instanceof FlowControlTransport &&
    typeof (transport as { write?: unknown }).write === 'function' &&
    typeof (transport as { setProtocol?: unknown }).setProtocol === 'function' &&
    (transport as unknown as { getExtraInfo(name: string): unknown }).getExtraInfo('sslcontext') !== undefined
  ) {
    return 'fallback';
  }
  return 'unsupported';
}

/** Resolves once Node has handed every byte written so far to the kernel. */
async function drainNodeSocket(loop: BaseEventLoop, sock: NodeSocketLike): Promise<void> {
  if (sock.writableLength === 0) return;
  const fut = loop.createFuture<void>();
  // Writes complete in order: the callback of an empty write runs once everything before it is out.
  sock.write(Buffer.alloc(0), (err) => {
    if (fut.done() || loop.isClosed()) return;
    if (err) fut.setException(err);
    else fut.setResult(undefined);
  });
  await fut;
}

/** asyncio's `_sendfile_native` for a `SocketTransport`. */
async function sendfileTransportNative(
  loop: BaseEventLoop,
  transport: SocketTransport,
  file: SendfileSource,
  offset: number,
  count: number | null,
): Promise<number> {
  const sock = transport._socket as unknown as NodeSocketLike | null;
  const fd = sock?._handle?.fd;
  if (sock === null || typeof fd !== 'number' || fd < 0 || sock.writableEnded) {
    throw new SendfileNotAvailableError('os.sendfile call failed');
  }
  if (!native.nativeAvailable()) throw new SendfileNotAvailableError('sendfile syscall is not supported');
  if (transport._sendfileActive) throw new RuntimeError('Empty waiter is already set');
  const resumeReading = transport.isReading();
  transport.pauseReading();
  transport._sendfileActive = true;
  try {
    await drainNodeSocket(loop, sock);
    return await sendfileNative(loop, fd, file, offset, count, (abort) => {
      let reason: Error | null = null;
      const onError = (err: Error): void => {
        reason = err;
      };
      const onClose = (): void => abort(reason);
      sock.on('error', onError);
      sock.once('close', onClose);
      return () => {
        sock.off('error', onError);
        sock.off('close', onClose);
      };
    });
  } finally {
    transport._sendfileActive = false;
    if (resumeReading) transport.resumeReading();
  }
}

// ---------------------------------------------------------------------------------------------------------
// The loop methods

/** The keys of {@link SendfileOptions}. */
const SENDFILE_KEYS = ['fallback'];

async function sendfile(
  loop: BaseEventLoop,
  transport: Transport,
  file: SendfileSource,
  offset = 0,
  count: number | null = null,
  options: SendfileOptions = {},
): Promise<number> {
  checkOptions(options, SENDFILE_KEYS, 'sendfile');
  const fallback = options.fallback ?? true;
  if (transport.isClosing()) throw new RuntimeError('Transport is closing');
  checkSendfileParams(offset, count);
  const mode = sendfileMode(transport);
  if (mode === 'unsupported') {
    throw new RuntimeError(`sendfile is not supported for transport ${inspect(transport)}`);
  }
  if (mode === 'native') {
    // A transport on its own fd (FdTransport) drains and hands over the fd itself.
    const own = (transport as { _sendfileNative?: OwnSendfile })._sendfileNative;
    try {
      return await (typeof own === 'function'
        ? own.call(transport, (fd, watchClose) => sendfileNative(loop, fd, file, offset, count, watchClose))
        : sendfileTransportNative(loop, transport as SocketTransport, file, offset, count));
    } catch (err) {
      if (!SendfileNotAvailableError.isInstance(err) || !fallback) throw err;
    }
  }
  if (!fallback) {
    throw new SendfileNotAvailableError(
      `fallback is disabled and native sendfile is not supported for transport ${inspect(transport)}`,
    );
  }
  return await sendfileFallback(loop, transport, file, offset, count);
}

async function sockSendfile(
  loop: BaseEventLoop,
  sock: Socket,
  file: SendfileSource,
  offset = 0,
  count: number | null = null,
  options: SendfileOptions = {},
): Promise<number> {
  checkOptions(options, SENDFILE_KEYS, 'sockSendfile');
  const fallback = options.fallback ?? true;
  if (!isSocket(sock)) {
    throw new InvalidArgTypeError(`sock must be a loopwork Socket, got ${inspect(sock, { depth: 0 })}`);
  }
  if (loop._debug && sock.gettimeout() !== 0) throw new ValueError('the socket must be non-blocking');
  if (sock.type !== SOCK_STREAM) throw new ValueError('only SOCK_STREAM type sockets are supported');
  checkSendfileParams(offset, count);
  try {
    return await sendfileNative(loop, sock._fd('sendfile'), file, offset, count, null);
  } catch (err) {
    if (!SendfileNotAvailableError.isInstance(err) || !fallback) throw err;
  }
  return await copyFile(
    loop,
    file,
    offset,
    count,
    async (chunk) => {
      await loop.sockSendall(sock, chunk);
    },
    // sockSendall resolves once the kernel has every byte.
    () => true,
  );
}

extendEventLoop({
  sendfile(
    this: BaseEventLoop,
    transport: Transport,
    file: SendfileSource,
    offset = 0,
    count: number | null = null,
    options: SendfileOptions = {},
  ): Future<number> {
    return this.createTask(() => sendfile(this, transport, file, offset, count, options));
  },
  sockSendfile(
    this: BaseEventLoop,
    sock: Socket,
    file: SendfileSource,
    offset = 0,
    count: number | null = null,
    options: SendfileOptions = {},
  ): Future<number> {
    return this.createTask(() => sockSendfile(this, sock, file, offset, count, options));
  },
});

declare module './base-event-loop.js' {
  interface BaseEventLoop {
    /**
     * Sends `file` over `transport` (asyncio's `loop.sendfile`); resolves with the bytes sent. Runs as a Task:
     * cancelling it (or the task awaiting it) stops the transfer.
     *
     * A plain TCP or Unix `SocketTransport` sends with zero-copy `sendfile(2)`: its write buffer is drained
     * first, reading pauses, `write()` is refused (`unable to write; sendfile is in progress`) until the
     * transfer ends. A TLS transport, or a file `sendfile(2)` cannot read, is read and written in blocks instead
     * (unless `fallback` is false). The file position ends at `offset + bytesSent`, even on error or cancel.
     *
     * @param transport - a stream transport.
     * @param file - a file descriptor or `FileHandle` of a regular file (the fallback also reads pipes).
     * @param offset - in bytes, where to start reading (default 0).
     * @param count - in bytes, how much to send; null (default) sends until end of file.
     * @param options - `fallback` (default true).
     * @returns the bytes sent (0 for an empty file).
     * @throws RuntimeError `Transport is closing`, `sendfile is not supported for transport ...` (datagram,
     *   pipe); SendfileNotAvailableError when zero-copy is impossible and `fallback` is false (`fallback is
     *   disabled and native sendfile is not supported for transport ...` for TLS); a system error such as
     *   `EPIPE`/`ECONNRESET` (`bytesSent` on it) when the peer goes away midway; ValueError/TypeError for `offset`
     *   and `count`.
     * @example
     * await using fh = await fs.promises.open('big.iso');
     * const sent = await loop.sendfile(transport, fh);
     */
    sendfile(
      transport: Transport,
      file: SendfileSource,
      offset?: number,
      count?: number | null,
      options?: SendfileOptions,
    ): Future<number>;
    /**
     * Sends `file` over a connected stream socket (asyncio's `loop.sock_sendfile`): zero-copy `sendfile(2)` when
     * possible, else (unless `fallback` is false) blocks read and sent with `sockSendall`.
     *
     * @param sock - a non-blocking connected `SOCK_STREAM` {@link Socket}.
     * @param file - a file descriptor or `FileHandle`.
     * @param offset - in bytes (default 0).
     * @param count - in bytes; null (default) until end of file.
     * @param options - `fallback` (default true).
     * @returns the bytes sent.
     * @throws ValueError `only SOCK_STREAM type sockets are supported`, `the socket must be non-blocking` (debug
     *   mode); SendfileNotAvailableError with `fallback: false`; a system error from the socket.
     */
    sockSendfile(
      sock: Socket,
      file: SendfileSource,
      offset?: number,
      count?: number | null,
      options?: SendfileOptions,
    ): Future<number>;
  }
}
