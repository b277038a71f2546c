/**
 * The stream transport on a connected Node socket (asyncio's `_SelectorSocketTransport`): TCP and Unix
 * connections, and the base that TLS reuses on a `tls.TLSSocket`.
 *
 * It lives in core because it needs no server: it wraps a socket that is already connected, whoever made it
 * (`createServer`'s accept, `createConnection`, `connectAcceptedSocket`, `startTls`).
 *
 * The protocol is called in the grammar of `protocols.ts`:
 * `start -> connectionMade [-> dataReceived* | (getBuffer -> bufferUpdated)*] [-> eofReceived?] ->
 * connectionLost -> end`. `connectionMade` is scheduled with `callSoon` when the transport is made, reading starts
 * in the callback after it, and `connectionLost` is called exactly once, with `callSoon`, after the socket is
 * closed. Protocol callbacks run with no current task, in a copy of the context the transport was made in.
 *
 * @module
 */
import type * as net from 'node:net';
import { constants as osConstants } from 'node:os';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import type { BaseSocketTransportOptions, BufferedLike, StreamLike } from './base-socket-transport.js';
import { BaseSocketTransport } from './base-socket-transport.js';
import { enterOwnScope, exitOwnScope } from './context.js';
import { RuntimeError, ValueError, connectionError, ignoreError, osErrorFrom } from './errors.js';
import {
  getpeername,
  getsockname,
  getsockopt,
  getSocketFamily,
  nativeAvailable,
  setsockopt,
  shutdown,
  systemError,
} from './native.js';
import { readMemoryUsed } from './read-memory.js';
import type { Address, BaseProtocol } from './protocols.js';
import { protocolBuffer } from './protocols.js';
import type { ExtraInfo, Transport } from './transports.js';
import { checkBytes } from './transports.js';

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = process.platform === 'linux' ? 10 : process.platform === 'darwin' ? 30 : 23;
const SOCK_STREAM = 1;
const IPPROTO_TCP = 6;

/** Options of `new SocketTransport()`: `waiter`, `extra`, `server`. */
export type SocketTransportOptions = BaseSocketTransportOptions;

interface NodeHandle {
  fd?: number;
  getsockname?: unknown;
}

function handleOf(sock: net.Socket | net.Server): NodeHandle | null {
  return ((sock as unknown as { _handle?: NodeHandle | null })._handle ?? null) as NodeHandle | null;
}

/** The fd of a Node socket or server, or -1 when it has none (closed, or not on this platform). */
function nodeFd(sock: net.Socket | net.Server): number {
  const fd = handleOf(sock)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** An address as Node reports it, in asyncio's shape. */
function addressFromNode(host: string | undefined, port: number | undefined, family?: string | number): Address | null {
  if (host === undefined || port === undefined) return null;
  const v6 = family === 'IPv6' || family === 6 || (family === undefined && host.includes(':'));
  return v6 ? [host, port, 0, 0] : [host, port];
}

/** Formats an address as Python's `repr()` of it: `('127.0.0.1', 8080)`, `'/tmp/sock'`. */
function formatAddress(addr: unknown): string {
  if (Array.isArray(addr)) return `(${addr.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')})`;
  if (Buffer.isBuffer(addr)) return `b'${addr.toString('latin1').replace(/\0/g, '\\x00')}'`;
  if (typeof addr === 'string') return `'${addr.replace(/\0/g, '\\x00')}'`;
  return String(addr);
}

function isUnixSocket(sock: net.Socket): boolean {
  const h = handleOf(sock);
  if (h !== null) return typeof h.getsockname !== 'function';
  return false;
}

/**
 * @internal A socket fd's own address (`'sock'`) or its peer's (`'peer'`), in asyncio's shape; `null` when it has
 * none (not connected), the fd is closed, or the native addon is not there.
 */
export function nativeAddress(fd: number, which: 'sock' | 'peer'): Address | null {
  if (fd < 0 || !nativeAvailable()) return null;
  try {
    return (which === 'sock' ? getsockname(fd) : getpeername(fd)) as Address | null;
  } catch {
    return null;
  }
}

/**
 * A read-only view of a socket, what `getExtraInfo('socket')` and `Server.sockets` give (asyncio's
 * `TransportSocket`): it tells what the socket is without letting anyone close or read it behind the transport's
 * back.
 */
export class TransportSocket {
  /** @internal */
  readonly _sock: net.Socket | net.Server | number | (() => number);
  /** @internal addresses known from elsewhere (a Unix path the socket was bound to). */
  readonly _known: { sockname?: Address | null; peername?: Address | null; family?: number };

  /**
   * @param sock - a Node socket, a Node server, the fd of a socket made by the native addon, or a function that
   *   tells that fd, -1 once it is closed (so that a view kept after the close cannot act on a reused number).
   * @param known - addresses known from elsewhere, used when the socket cannot tell them.
   */
  constructor(
    sock: net.Socket | net.Server | number | (() => number),
    known: { sockname?: Address | null; peername?: Address | null; family?: number } = {},
  ) {
    this._sock = sock;
    this._known = known;
  }

  /** The file descriptor, or -1 once the socket is closed. */
  fileno(): number {
    const s = this._sock;
    if (typeof s === 'number') return s;
    return typeof s === 'function' ? s() : nodeFd(s);
  }

  /** The address family: `AF_INET` (2), `AF_INET6` (10 on Linux) or `AF_UNIX` (1). */
  get family(): number {
    if (this._known.family !== undefined) return this._known.family;
    const s = this._sock;
    if (typeof s === 'number' || typeof s === 'function') {
      try {
        return getSocketFamily(this.fileno());
      } catch {
        return 0;
      }
    }
    const name = this.getsockname();
    if (Array.isArray(name)) return name.length === 4 ? AF_INET6 : AF_INET;
    return AF_UNIX;
  }

  /** The socket type: always `SOCK_STREAM` (1) for the sockets of stream transports and servers. */
  get type(): number {
    return SOCK_STREAM;
  }

  /** The protocol: `IPPROTO_TCP` (6) for TCP, 0 for Unix sockets. */
  get proto(): number {
    return this.family === AF_UNIX ? 0 : IPPROTO_TCP;
  }

  /** The socket's own address, in asyncio's shape; `null` when it cannot be known. */
  getsockname(): Address | null {
    const s = this._sock;
    if (typeof s === 'number' || typeof s === 'function') {
      return nativeAddress(this.fileno(), 'sock') ?? this._known.sockname ?? null;
    }
    if ('remotePort' in s || 'remoteAddress' in s) {
      const sock = s as net.Socket;
      if (!isUnixSocket(sock)) {
        const a = sock.address() as Partial<net.AddressInfo>;
        const addr = addressFromNode(a.address, a.port, a.family);
        if (addr !== null) return addr;
      }
    } else {
      const a = (s as net.Server).address();
      if (typeof a === 'string') return a;
      if (a !== null) return addressFromNode(a.address, a.port, a.family);
    }
    return nativeAddress(this.fileno(), 'sock') ?? this._known.sockname ?? null;
  }

  /** The peer's address, in asyncio's shape; `null` for a listening socket or when it cannot be known. */
  getpeername(): Address | null {
    const s = this._sock;
    if (typeof s === 'number' || typeof s === 'function') {
      return nativeAddress(this.fileno(), 'peer') ?? this._known.peername ?? null;
    }
    if (!('remotePort' in s || 'remoteAddress' in s)) return null;
    const sock = s as net.Socket;
    if (!isUnixSocket(sock)) {
      const addr = addressFromNode(sock.remoteAddress, sock.remotePort, sock.remoteFamily);
      if (addr !== null) return addr;
    }
    return nativeAddress(this.fileno(), 'peer') ?? this._known.peername ?? null;
  }

  /**
   * Reads an integer socket option (`SO_SNDBUF`, `TCP_NODELAY`...): reading cannot disturb the transport.
   *
   * @param level - `SOL_SOCKET`, `IPPROTO_TCP`...
   * @param optname - the option.
   * @returns its value.
   */
  getsockopt(level: number, optname: number): number {
    return getsockopt(this.#open('getsockopt'), level, optname);
  }

  /**
   * Sets an integer socket option (`TCP_NODELAY`, `SO_KEEPALIVE`, `SO_SNDBUF`...).
   *
   * @param level - `SOL_SOCKET`, `IPPROTO_TCP`...
   * @param optname - the option.
   * @param value - the value; booleans are 1 and 0.
   */
  setsockopt(level: number, optname: number, value: number | boolean): void {
    setsockopt(this.#open('setsockopt'), level, optname, value);
  }

  /**
   * Shuts down one or both directions of the connection (asyncio allows it: transports have no API for it).
   *
   * @param how - `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
   */
  shutdown(how: number): void {
    shutdown(this.#open('shutdown'), how);
  }

  /** The fd, or Python's `OSError: [Errno 9] Bad file descriptor` once the socket is closed. */
  #open(syscall: string): number {
    const fd = this.fileno();
    if (fd < 0) throw osErrorFrom(systemError(osConstants.errno.EBADF, syscall));
    return fd;
  }

  /** Always 0: a transport's socket is non-blocking. */
  gettimeout(): number {
    return 0;
  }

  /**
   * Only `settimeout(0)` is accepted: the transport needs its socket non-blocking.
   *
   * @throws ValueError for any other value.
   */
  settimeout(value: number | null): void {
    if (value !== 0) throw new ValueError('settimeout(): only 0 timeout is allowed on transport sockets');
  }

  /**
   * Only `setblocking(false)` is accepted: the transport needs its socket non-blocking.
   *
   * @throws ValueError for `true`.
   */
  setblocking(flag: boolean): void {
    if (flag) throw new ValueError('setblocking(): transport sockets cannot be blocking');
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const fd = this.fileno();
    if (fd < 0 && typeof this._sock !== 'number') return '<TransportSocket [closed]>';
    const parts = [`fd=${fd}`, `family=${this.family}`, `type=${this.type}`, `proto=${this.proto}`];
    const laddr = this.getsockname();
    if (laddr !== null && laddr !== '') parts.push(`laddr=${formatAddress(laddr)}`);
    const raddr = this.getpeername();
    if (raddr !== null && raddr !== '') parts.push(`raddr=${formatAddress(raddr)}`);
    return `<TransportSocket ${parts.join(', ')}>`;
  }
}

/**
 * A stream transport on a connected `net.Socket` (or a subclass of it, such as `tls.TLSSocket`).
 *
 * Made by the loop's connection methods, never by user code. It calls its protocol in asyncio's order (see the
 * module comment), keeps write flow control real (`pauseWriting` above the high-water mark, `resumeWriting` at the
 * low one, measured on the bytes Node has not handed to the kernel yet), turns on `TCP_NODELAY`, and sends an
 * exception thrown by a protocol callback to the loop's exception handler before aborting this connection alone.
 *
 * Subclasses (TLS) may override `_extraInfo` to add keys and `canWriteEof`; `_detach()` hands the socket over.
 */
export class SocketTransport extends BaseSocketTransport implements Transport {
  /** @internal the socket; `null` once the connection is lost or the socket was handed over. */
  _socket: net.Socket | null;
  /** @internal the fd, kept for inspection after close. */
  readonly _fd: number;
  /** @internal the socket is flowing (emitting 'data'). */
  _flowing = false;
  /** @internal received bytes not yet given to the protocol (reading paused mid-chunk, or the loop stopped). */
  _pending: Buffer | null = null;
  /** @internal where the protocol is in `_pending`. */
  _pendingOffset = 0;
  /** @internal EOF arrived while the loop was not running. */
  _pendingEof = false;
  /** @internal a callback that delivers `_pending` is scheduled. */
  _flushScheduled = false;
  /** @internal `close()` waits for Node's buffer to empty before it ends the socket; writes still join it. */
  _flushing = false;
  /** @internal */
  _socketView: TransportSocket | null = null;

  /** @internal Called by Node after each write is handed to the kernel (or failed). */
  readonly _onWritten = (): void => {
    if (this._flushing && this._socket !== null && this._socket.writableLength === 0) {
      this._flushing = false;
      this._socket.end();
    }
    // Aborted or lost: the buffer was dropped, not drained, and asyncio's _force_close never resumes the protocol.
    if (this._protocolPaused && !this._detached && !this._lost) {
      const outer = enterOwnScope(this);
      try {
        this._maybeResumeProtocol();
      } finally {
        exitOwnScope(this, outer);
      }
    }
  };
  /** @internal */
  readonly _onData = (chunk: Buffer): void => {
    if (this._closing) return;
    if (!this._loop._running) {
      this._hold(chunk, 0);
      return;
    }
    const outer = enterOwnScope(this);
    try {
      this._deliver(chunk, 0);
    } finally {
      exitOwnScope(this, outer);
    }
  };
  /** @internal */
  readonly _onEnd = (): void => {
    if (this._closing) return;
    // Node ends a paused stream once its own buffer is empty: the EOF must wait for what we hold back, for
    // resumeReading(), and for the loop to run.
    if (this._pending !== null || this._paused || !this._loop._running) {
      this._pendingEof = true;
      if (!this._paused) this._scheduleFlush();
      return;
    }
    const outer = enterOwnScope(this);
    try {
      this._eofReceived();
    } finally {
      exitOwnScope(this, outer);
    }
  };
  /** @internal */
  readonly _onError = (err: Error): void => {
    if (this._loop._debug) this._loop.logger.debug({ err, transport: inspect(this) }, 'Fatal error on transport');
    if (!this._lost) {
      this._lost = true;
      this._closing = true;
      this._lostExc = connectionError(err);
    }
  };
  /** @internal */
  readonly _onFinish = (): void => {
    if (this._closing && !this._lost) this._destroy(null);
  };
  /** @internal */
  readonly _onClose = (): void => {
    this._lost = true;
    this._closing = true;
    this._scheduleConnectionLost();
  };

  /**
   * Wraps a connected socket. The protocol's `connectionMade` is scheduled with `callSoon`, reading starts right
   * after it, and then `options.waiter` is completed.
   *
   * @param loop - the loop that calls the protocol.
   * @param socket - a connected `net.Socket` (or subclass); the transport owns it from now on.
   * @param protocol - the protocol (`Protocol` or `BufferedProtocol`).
   * @param options - `waiter`, `extra`, `server`.
   */
  constructor(loop: BaseEventLoop, socket: net.Socket, protocol: BaseProtocol, options: SocketTransportOptions = {}) {
    super(loop, protocol, options);
    this._socket = socket;
    this._fd = nodeFd(socket);
    this._readAddresses(socket);
    // Half-closes are the protocol's decision (eofReceived), never Node's.
    socket.allowHalfOpen = true;
    // Nothing is read before connectionMade: pause before a 'data' listener could start the flow.
    socket.pause();
    socket.on('data', this._onData);
    socket.on('end', this._onEnd);
    socket.on('error', this._onError);
    socket.on('finish', this._onFinish);
    socket.on('close', this._onClose);
    if (typeof socket.setNoDelay === 'function' && !isUnixSocket(socket)) socket.setNoDelay(true);
    // The running loop keeps the process alive, as a blocked run_forever() keeps Python's; a forgotten
    // connection must not keep it alive once the loop is done.
    socket.unref();
    this._begin(options.waiter ?? null);
    if (socket.destroyed) {
      // Gone before we got it (a client that connected and left at once): Node's 'close' may be past already.
      this._lost = true;
      this._closing = true;
      if ((socket as net.Socket & { closed?: boolean }).closed === true) this._scheduleConnectionLost();
    }
  }

  // ---- BaseTransport --------------------------------------------------------------------------------------

  /**
   * Optional information about the transport: `'peername'`, `'sockname'`, `'socket'` (a read-only
   * `TransportSocket`), and whatever a subclass adds.
   *
   * @param name - the key.
   * @param defaultValue - returned when the transport has no such information.
   */
  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    const v = this._extraInfo(name);
    return v === undefined ? defaultValue : v;
  }

  /**
   * The value of one extra-info key, or `undefined` when there is none. Subclasses override it to add keys (TLS:
   * `peercert`, `cipher`, `sslcontext`…) and call `super._extraInfo(name)` for the others.
   */
  protected _extraInfo(name: string): unknown {
    if (name === 'socket') {
      if (this._socketView === null) {
        const known: { sockname?: Address | null; peername?: Address | null; family?: number } = {};
        if (this._extra.sockname !== undefined) known.sockname = this._extra.sockname as Address | null;
        if (this._extra.peername !== undefined) known.peername = this._extra.peername as Address | null;
        if (this._socket !== null) {
          this._socketView = new TransportSocket(this._socket, known);
        } else {
          // Closed: asyncio's extra 'socket' stays, a view of a closed socket (fd -1) that still tells its family.
          const name = known.sockname;
          known.family = Array.isArray(name) ? (name.length === 4 ? AF_INET6 : AF_INET) : AF_UNIX;
          this._socketView = new TransportSocket(() => -1, known);
        }
      }
      return this._socketView;
    }
    return this._extra[name];
  }

  /**
   * Closes the transport: no more data is delivered, buffered data is flushed, then the socket is closed and the
   * protocol's `connectionLost(null)` is called. Idempotent.
   */
  close(): void {
    if (this._closing) return;
    this._closing = true;
    this._updateFlow();
    const sock = this._socket;
    if (sock === null) return;
    if (sock.writableLength === 0 && (!sock.writableEnded || sock.writableFinished)) {
      this._destroy(null);
    } else if (!sock.writableEnded) {
      // Flush first: writes made meanwhile join the buffer, as asyncio's do. Once Node has handed everything to
      // the kernel, `_onWritten` ends the socket, and the 'finish' listener closes it.
      this._flushing = true;
    }
  }

  // ---- ReadTransport --------------------------------------------------------------------------------------

  // ---- WriteTransport -------------------------------------------------------------------------------------

  /** The bytes buffered and not yet handed to the kernel. */
  getWriteBufferSize(): number {
    const sock = this._socket;
    return sock === null ? 0 : sock.writableLength;
  }

  /**
   * Writes bytes; never blocks. What the kernel does not take now is buffered, and the protocol's
   * `pauseWriting()` is called when the buffer goes over the high-water mark. After `close()`, writes join the
   * buffer while it is still being flushed, as asyncio's do; once it is empty, or the connection is lost, they are
   * dropped (a warning is logged from the fifth on).
   *
   * @throws TypeError when `data` is not bytes; RuntimeError after `writeEof()`.
   */
  write(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) checkBytes(data, 'write');
    this._checkWritable('write');
    if (data.byteLength === 0) return;
    const sock = this._socket;
    if ((this._closing && !this._flushing) || sock === null || sock.destroyed) {
      this._droppedWrite();
      return;
    }
    sock.write(data, this._onWritten);
    if (!this._protocolPaused && sock.writableLength > this._highWater) this._maybePauseProtocol();
  }

  /**
   * Writes a list of byte buffers, as one `writev` where possible.
   *
   * @throws TypeError when an item is not bytes; RuntimeError after `writeEof()`.
   */
  writelines(list: Iterable<Uint8Array>): void {
    const items = this._writelinesItems(list);
    if (items.length === 0) return;
    const sock = this._socket;
    if ((this._closing && !this._flushing) || sock === null || sock.destroyed) {
      this._droppedWrite();
      return;
    }
    sock.cork();
    for (const item of items) if (item.byteLength > 0) sock.write(item, this._onWritten);
    sock.uncork();
    if (!this._protocolPaused && sock.writableLength > this._highWater) this._maybePauseProtocol();
  }

  /** Closes the write end once buffered data is flushed (a TCP FIN); reading goes on. */
  writeEof(): void {
    if (this._closing || this._eof) return;
    this._eof = true;
    this._socket?.end();
  }

  // ---- internals ------------------------------------------------------------------------------------------

  /**
   * Hands the socket over (for `startTls`): the transport stops touching it, will never call its protocol again,
   * and returns it paused, with any received bytes not yet delivered pushed back into it. Its server (if any)
   * keeps counting it until the socket closes; pass `_server` (read it first) to the new transport.
   *
   * @returns the socket.
   * @throws RuntimeError when the transport is closing or already detached.
   */
  _detach(): net.Socket {
    const sock = this._socket;
    if (sock === null || this._closing) throw new RuntimeError(`transport ${inspect(this)} is closing`);
    sock.removeListener('data', this._onData);
    sock.removeListener('end', this._onEnd);
    sock.removeListener('error', this._onError);
    sock.removeListener('finish', this._onFinish);
    sock.removeListener('close', this._onClose);
    sock.pause();
    if (this._pending !== null) sock.unshift(this._pending.subarray(this._pendingOffset));
    this._pending = null;
    const server = this._markDetached();
    this._socket = null;
    // The connection lives on in the new transport: the server counts this one until the socket is closed, so
    // that waitClosed() cannot slip through between the hand-over and the new transport's attach.
    if (server !== null) sock.once('close', () => server._detach(this));
    return sock;
  }

  /** @internal Delivers what is held back (resumed), or makes the socket flow as the protocol may receive. */
  _updateReading(): void {
    if (!this._paused && !this._closing && (this._pending !== null || this._pendingEof)) this._scheduleFlush();
    else this._updateFlow();
  }

  /** @internal Makes the socket flow exactly when the protocol may receive. */
  _updateFlow(): void {
    const sock = this._socket;
    if (sock === null) return;
    const want = this._readStarted && !this._paused && !this._closing && this._pending === null && !this._pendingEof;
    if (want === this._flowing) return;
    this._flowing = want;
    if (want) sock.resume();
    else sock.pause();
  }

  /** @internal Keeps `chunk[offset:]` for later and stops the flow. */
  _hold(chunk: Buffer, offset: number): void {
    this._pending = chunk;
    this._pendingOffset = offset;
    this._updateFlow();
    if (!this._paused) this._scheduleFlush();
  }

  /** @internal */
  _scheduleFlush(): void {
    if (this._flushScheduled || this._loop.isClosed()) return;
    this._flushScheduled = true;
    this._loop._callSoonInternal(this._flushPending, [], this._context);
  }

  /** @internal Delivers what was held back, then lets the socket flow again. */
  readonly _flushPending = (): void => {
    this._flushScheduled = false;
    if (this._closing) {
      this._pending = null;
      return;
    }
    if (this._paused) return;
    const chunk = this._pending;
    if (chunk !== null) {
      const offset = this._pendingOffset;
      this._pending = null;
      this._pendingOffset = 0;
      this._deliver(chunk, offset);
      if (this._closing || this._pending !== null) return;
    }
    if (this._pendingEof && !this._paused) {
      this._pendingEof = false;
      this._eofReceived();
      return;
    }
    this._updateFlow();
  };

  /** @internal Gives `chunk[offset:]` to the current protocol, in its way. */
  _deliver(chunk: Buffer, offset: number): void {
    if (this._bufferedProto) {
      this._deliverBuffered(chunk, offset);
      return;
    }
    readMemoryUsed(chunk.length - offset);
    try {
      (this._protocol as unknown as StreamLike).dataReceived(offset === 0 ? chunk : chunk.subarray(offset));
    } catch (exc) {
      this._fatalError(exc, 'Fatal error: protocol.dataReceived() call failed.');
    }
  }

  /**
   * @internal BufferedProtocol: copies the chunk into the protocol's buffers (`getBuffer(-1)` then
   * `bufferUpdated(n)`, as many times as the chunk needs). The zero-copy path belongs to the syscall transport.
   */
  _deliverBuffered(chunk: Buffer, offset: number): void {
    const proto = this._protocol as unknown as BufferedLike;
    const end = chunk.length;
    let off = offset;
    while (off < end) {
      let buf: Uint8Array;
      try {
        buf = protocolBuffer(proto, -1);
      } catch (exc) {
        this._fatalError(exc, 'Fatal error: protocol.getBuffer() call failed.');
        return;
      }
      const n = Math.min(buf.byteLength, end - off);
      chunk.copy(buf, 0, off, off + n);
      off += n;
      try {
        proto.bufferUpdated(n);
      } catch (exc) {
        this._fatalError(exc, 'Fatal error: protocol.bufferUpdated() call failed.');
        return;
      }
      if (off >= end || this._closing) return;
      if (this._paused) {
        this._hold(chunk, off);
        return;
      }
      if (this._protocol !== (proto as unknown as BaseProtocol)) {
        this._deliver(chunk, off);
        return;
      }
    }
  }

  /** @internal asyncio's `_read_ready__on_eof`. */
  _eofReceived(): void {
    if (this._loop._debug) this._loop.logger.debug({ transport: inspect(this) }, 'received EOF');
    let keepOpen: unknown;
    try {
      keepOpen = (this._protocol as unknown as StreamLike).eofReceived?.();
    } catch (exc) {
      this._fatalError(exc, 'Fatal error: protocol.eofReceived() call failed.');
      return;
    }
    if (!keepOpen) this.close();
  }

  /** @internal Closes the socket; `connectionLost(exc)` follows its 'close' event. */
  _destroy(exc: Error | null): void {
    if (this._lost) return;
    this._lost = true;
    this._lostExc = exc;
    this._pending = null;
    const sock = this._socket;
    if (sock === null) return;
    if (sock.destroyed) {
      if ((sock as net.Socket & { closed?: boolean }).closed === true) this._scheduleConnectionLost();
      return;
    }
    sock.destroy();
  }

  /** @internal */
  override _finishConnectionLost(): void {
    const sock = this._socket;
    if (sock !== null) {
      sock.removeListener('data', this._onData);
      sock.removeListener('end', this._onEnd);
      sock.removeListener('finish', this._onFinish);
      sock.removeListener('close', this._onClose);
      sock.removeListener('error', this._onError);
      sock.on('error', ignoreError);
      this._socket = null;
    }
    super._finishConnectionLost();
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const info: string[] = [this.constructor.name];
    if (this._socket === null) info.push('closed');
    else if (this._closing) info.push('closing');
    info.push(`fd=${this._fd}`);
    if (this._socket !== null && !this._loop.isClosed()) {
      info.push(`read=${this._flowing ? 'polling' : 'idle'}`);
      const size = this.getWriteBufferSize();
      info.push(`write=<${size > 0 ? 'polling' : 'idle'}, bufsize=${size}>`);
    }
    return `<${info.join(' ')}>`;
  }

  /** @internal asyncio computes both addresses when the transport is made: they stay readable after close. */
  _readAddresses(sock: net.Socket): void {
    const extra = this._extra;
    if (extra.sockname !== undefined && extra.peername !== undefined) return;
    if (isUnixSocket(sock)) {
      if (extra.sockname === undefined) extra.sockname = nativeAddress(this._fd, 'sock');
      if (extra.peername === undefined) extra.peername = nativeAddress(this._fd, 'peer');
      return;
    }
    if (extra.sockname === undefined) {
      const a = sock.address() as Partial<net.AddressInfo>;
      extra.sockname = addressFromNode(a.address, a.port, a.family);
    }
    if (extra.peername === undefined) {
      extra.peername = addressFromNode(sock.remoteAddress, sock.remotePort, sock.remoteFamily);
    }
  }
}
