/**
 * BSD sockets as Python's `socket` module has them (`socket.socket`, `socket.socketpair`,
 * `socket.create_server`), on loopwork's native addon: the `sock` that the loop's `sock*` methods work on and that
 * `createServer`, `createConnection`, `createDatagramEndpoint`... accept.
 *
 * A {@link Socket} is blocking when made, as Python's is: its calls wait in the kernel, which stalls the whole
 * event loop. Call `setblocking(false)` (or `settimeout(0)`) before handing it to the loop; a non-blocking call
 * that cannot complete now throws the error Python raises as `BlockingIOError` (`code` `EAGAIN`, or
 * `EINPROGRESS` for `connect`). Failed system calls throw Node-style system errors (`code`, negative `errno`,
 * `syscall`). Linux only, as the addon is.
 *
 * @module
 */
import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import { inspect } from 'node:util';
import { AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM } from './dns.js';
import { InvalidArgTypeError, ValueError } from './errors.js';
import type { SocketAddress, SocketAddressLike, SystemError } from './native.js';
import * as native from './native.js';

export type { IPv4Address, IPv6Address, SocketAddress, SocketAddressLike, UnixAddress } from './native.js';

// Linux's values, as Python's `socket` module exports them (a test checks them against the C headers).

/** `SOCK_SEQPACKET`: a reliable, ordered, message-keeping socket (Unix). */
export const SOCK_SEQPACKET = 5;
/** Or'ed into a socket type: the socket is made non-blocking. */
export const SOCK_NONBLOCK = 0o4000;
/** Or'ed into a socket type: close-on-exec (loopwork's sockets always are). */
export const SOCK_CLOEXEC = 0o2000000;
/** The socket-level options' level. */
export const SOL_SOCKET = 1;
/** Allow binding an address in `TIME_WAIT`. */
export const SO_REUSEADDR = 2;
/** The socket's type (read only). */
export const SO_TYPE = 3;
/** The pending error, cleared when read (read only). */
export const SO_ERROR = 4;
/** Allow sending datagrams to broadcast addresses. */
export const SO_BROADCAST = 6;
/** The send buffer size, in bytes. */
export const SO_SNDBUF = 7;
/** The receive buffer size, in bytes. */
export const SO_RCVBUF = 8;
/** Send keep-alive probes on an idle connection. */
export const SO_KEEPALIVE = 9;
/** Linger on close (needs a `struct linger`: not settable through `setsockopt` here). */
export const SO_LINGER = 13;
/** Let several sockets bind the same address and port; the kernel spreads connections or datagrams. */
export const SO_REUSEPORT = 15;
/** Whether the socket listens (read only). */
export const SO_ACCEPTCONN = 30;
/** The socket's protocol (read only). */
export const SO_PROTOCOL = 38;
/** The socket's family (read only). */
export const SO_DOMAIN = 39;
/** The IPv4 options' level. */
export const IPPROTO_IP = 0;
/** The IPv6 options' level. */
export const IPPROTO_IPV6 = 41;
/** Disable Nagle's algorithm. */
export const TCP_NODELAY = 1;
/** Hold partial frames until uncorked. */
export const TCP_CORK = 3;
/** Seconds of idleness before keep-alive probes start. */
export const TCP_KEEPIDLE = 4;
/** Seconds between keep-alive probes. */
export const TCP_KEEPINTVL = 5;
/** Unanswered probes before the connection is dropped. */
export const TCP_KEEPCNT = 6;
/** Send ACKs at once. */
export const TCP_QUICKACK = 12;
/** An IPv6 socket takes IPv6 only (no IPv4-mapped addresses). */
export const IPV6_V6ONLY = 26;
/** `shutdown()`: no more receiving. */
export const SHUT_RD = 0;
/** `shutdown()`: no more sending (a TCP FIN). */
export const SHUT_WR = 1;
/** `shutdown()`: both directions. */
export const SHUT_RDWR = 2;
/** Out-of-band data. */
export const MSG_OOB = 1;
/** Look at the data without taking it. */
export const MSG_PEEK = 2;
/** The datagram was longer than the buffer (also: return its real length). */
export const MSG_TRUNC = 0x20;
/** This call only is non-blocking. */
export const MSG_DONTWAIT = 0x40;
/** Wait for the whole buffer. */
export const MSG_WAITALL = 0x100;
/** No `SIGPIPE` on a closed connection (loopwork always sets it). */
export const MSG_NOSIGNAL = 0x4000;
/** The largest listen backlog the kernel takes. */
export const SOMAXCONN = 4096;

const TYPE_FLAGS = SOCK_NONBLOCK | SOCK_CLOEXEC;
/** Python's default `listen()` backlog: `min(SOMAXCONN, 128)`. */
const DEFAULT_BACKLOG = 128;
/** Receives up to this size go through one reused buffer and are copied out at their real length. */
const SCRATCH_SIZE = 64 * 1024;
const BRAND = Symbol.for('loopwork.socket');

let scratch: Buffer | null = null;

function scratchFor(size: number): Buffer | null {
  if (size > SCRATCH_SIZE) return null;
  scratch ??= Buffer.allocUnsafe(SCRATCH_SIZE);
  return scratch;
}

/** `EAGAIN`/`EINPROGRESS`... as a thrown error: what Python raises as `BlockingIOError`. */
function errnoError(name: 'EAGAIN' | 'EINPROGRESS' | 'EBADF', syscall: string): SystemError {
  return native.systemError(osConstants.errno[name], syscall);
}

const FAMILY_NAMES: Record<number, string> = {
  [AF_UNSPEC]: 'AF_UNSPEC',
  [AF_UNIX]: 'AF_UNIX',
  [AF_INET]: 'AF_INET',
  [AF_INET6]: 'AF_INET6',
};
const TYPE_NAMES: Record<number, string> = {
  [SOCK_STREAM]: 'SOCK_STREAM',
  [SOCK_DGRAM]: 'SOCK_DGRAM',
  [SOCK_RAW]: 'SOCK_RAW',
  [SOCK_SEQPACKET]: 'SOCK_SEQPACKET',
};

/** @internal Formats an address as Python's `repr()` does: `('127.0.0.1', 8080)`, `'/tmp/sock'`, `b'\x00name'`. */
export function formatSocketAddress(addr: unknown): string {
  if (Array.isArray(addr)) return `(${addr.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')})`;
  if (Buffer.isBuffer(addr)) return `b'${addr.toString('latin1').replace(/\0/g, '\\x00')}'`;
  if (typeof addr === 'string') return `'${addr.replace(/\0/g, '\\x00')}'`;
  return String(addr);
}

function checkInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new InvalidArgTypeError(`${what} must be an integer, got ${inspect(value, { depth: 0 })}`);
  }
  return value;
}

function checkView(data: unknown, what: string): ArrayBufferView {
  if (!ArrayBuffer.isView(data)) {
    throw new InvalidArgTypeError(
      `${what} argument must be a bytes-like object (Buffer, TypedArray, DataView), not ${inspect(data, { depth: 0 })}`,
    );
  }
  return data;
}

/** Copies `n` received bytes out of the scratch buffer (or trims a fresh one). */
function takeReceived(buf: Buffer, n: number, fresh: boolean): Buffer {
  if (fresh) return n === buf.length ? buf : buf.subarray(0, n);
  const out = Buffer.allocUnsafe(n);
  buf.copy(out, 0, 0, n);
  return out;
}

/** Set by `Socket._fromFd` for the constructor: an fd whose family, type and protocol are known. */
let adopting: { fd: number; family: number; type: number; proto: number; blocking: boolean } | null = null;

/**
 * A socket: Python's `socket.socket` over loopwork's native addon.
 *
 * Made blocking (as Python makes it) unless the type includes {@link SOCK_NONBLOCK}. Every method on a closed
 * socket throws `EBADF`. `close()` is idempotent; `using sock = new Socket()` closes it at the end of the block.
 *
 * @example
 * const sock = new Socket(AF_INET, SOCK_STREAM);
 * sock.setblocking(false);
 * await loop.sockConnect(sock, ['127.0.0.1', 8080]);
 * await loop.sockSendall(sock, Buffer.from('ping'));
 * const reply = await loop.sockRecv(sock, 1024);
 * sock.close();
 */
export class Socket implements Disposable {
  #fd: number;
  readonly #family: number;
  readonly #type: number;
  readonly #proto: number;
  #blocking: boolean;

  /**
   * Creates a socket, or wraps an existing socket descriptor.
   *
   * @param family - `AF_INET` (default), `AF_INET6` or `AF_UNIX`; read from the socket when `fileno` is given.
   * @param type - `SOCK_STREAM` (default), `SOCK_DGRAM`..., optionally or'ed with `SOCK_NONBLOCK`; read from the
   *   socket when `fileno` is given.
   * @param proto - 0 (default: the family's usual protocol); read from the socket when `fileno` is given.
   * @param fileno - an open socket descriptor to take over (the `Socket` then owns it and closes it); its
   *   blocking mode is kept.
   * @throws SystemError from `socket(2)` (`EAFNOSUPPORT`...), or `ENOTSOCK` for a `fileno` that is no socket.
   */
  constructor(family?: number | null, type?: number | null, proto?: number | null, fileno?: number | null) {
    if (adopting !== null) {
      const a = adopting;
      adopting = null;
      this.#fd = a.fd;
      this.#family = a.family;
      this.#type = a.type;
      this.#proto = a.proto;
      this.#blocking = a.blocking;
      return;
    }
    if (fileno !== undefined && fileno !== null) {
      const fd = checkInt(fileno, 'fileno');
      if (fd < 0) throw new ValueError(`negative file descriptor`);
      this.#family = family ?? native.getSocketFamily(fd);
      this.#type = (type ?? native.getSocketType(fd)) & ~TYPE_FLAGS;
      this.#proto = proto ?? native.getSocketProtocol(fd);
      this.#blocking = native.getBlocking(fd);
      this.#fd = fd;
      return;
    }
    const fam = checkInt(family ?? AF_INET, 'family');
    const typ = checkInt(type ?? SOCK_STREAM, 'type');
    const pro = checkInt(proto ?? 0, 'proto');
    const fd = native.socket(fam, typ & ~TYPE_FLAGS, pro);
    this.#fd = fd;
    this.#family = fam;
    this.#type = typ & ~TYPE_FLAGS;
    // Python reports the protocol the kernel chose (`proto=6` for TCP only when asked); keep what was asked.
    this.#proto = pro;
    this.#blocking = (typ & SOCK_NONBLOCK) === 0;
    try {
      if (this.#blocking) native.setBlocking(fd, true);
    } catch (err) {
      native.close(fd);
      throw err;
    }
  }

  /** @internal Wraps an fd whose family, type and protocol are known (an accepted connection). */
  static _fromFd(fd: number, family: number, type: number, proto: number, blocking: boolean): Socket {
    adopting = { fd, family, type, proto, blocking };
    return new Socket();
  }

  /** The address family: `AF_INET`, `AF_INET6`, `AF_UNIX`. */
  get family(): number {
    return this.#family;
  }

  /** The socket type, without the `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags: `SOCK_STREAM`, `SOCK_DGRAM`... */
  get type(): number {
    return this.#type;
  }

  /** The protocol number given when the socket was made (0 for the family's default). */
  get proto(): number {
    return this.#proto;
  }

  /** The file descriptor, or -1 once the socket is closed or detached. */
  fileno(): number {
    return this.#fd;
  }

  /** @internal The fd, or EBADF as Python raises it on a closed socket. */
  _fd(syscall: string): number {
    const fd = this.#fd;
    if (fd < 0) throw errnoError('EBADF', syscall);
    return fd;
  }

  /**
   * Binds the socket to an address.
   *
   * @param address - `[host, port]` for IPv4/IPv6 (numeric host, `''` for any), `[host, port, flowinfo,
   *   scopeId]` for IPv6, a path or a `Buffer` (`'\0name'`: abstract) for Unix.
   * @throws SystemError `EADDRINUSE`, `EACCES`...; ValueError for a host name that is not numeric.
   */
  bind(address: SocketAddressLike): void {
    native.bind(this._fd('bind'), address);
  }

  /**
   * Makes the socket accept connections.
   *
   * @param backlog - the queue length; `min(SOMAXCONN, 128)` by default, as in Python.
   */
  listen(backlog?: number): void {
    const n = backlog === undefined ? DEFAULT_BACKLOG : Math.max(0, checkInt(backlog, 'backlog'));
    native.listen(this._fd('listen'), n);
  }

  /**
   * Accepts a connection. The new socket is blocking (Python's default), whatever this one is.
   *
   * @returns `[socket, address]`: the connection and the peer's address.
   * @throws SystemError `EAGAIN` when non-blocking and none is waiting; `ECONNABORTED`, `EMFILE`...
   */
  accept(): [Socket, SocketAddress | null] {
    const got = native.accept(this._fd('accept'));
    if (got === null) throw errnoError('EAGAIN', 'accept');
    const [fd, address] = got;
    try {
      native.setBlocking(fd, true);
    } catch (err) {
      native.close(fd);
      throw err;
    }
    return [Socket._fromFd(fd, this.#family, this.#type, this.#proto, true), address];
  }

  /**
   * Connects to a remote address. A blocking socket waits until connected; a non-blocking one throws
   * `EINPROGRESS` while the connection goes on (wait until writable, then read `SO_ERROR`; or use
   * `loop.sockConnect`).
   *
   * @param address - as {@link bind} takes it.
   * @throws SystemError `ECONNREFUSED`, `ENOENT` (Unix path), `EINPROGRESS`...
   */
  connect(address: SocketAddressLike): void {
    if (native.connect(this._fd('connect'), address) !== 0) throw errnoError('EINPROGRESS', 'connect');
  }

  /**
   * `connect()` that returns the error number instead of throwing it (Python's `connect_ex`).
   *
   * @param address - as {@link bind} takes it.
   * @returns 0 when connected, `EINPROGRESS` (115) while a non-blocking connect goes on, else the errno.
   */
  connectEx(address: SocketAddressLike): number {
    try {
      return native.connect(this._fd('connect'), address) === 0 ? 0 : osConstants.errno.EINPROGRESS;
    } catch (err) {
      const errno = (err as { errno?: unknown }).errno;
      if (typeof errno === 'number' && typeof (err as { syscall?: unknown }).syscall === 'string') {
        return Math.abs(errno);
      }
      throw err;
    }
  }

  /**
   * Sends bytes on a connected socket.
   *
   * @param data - the bytes.
   * @param flags - `MSG_*` flags.
   * @returns how many bytes were sent, maybe fewer than given.
   * @throws SystemError `EAGAIN` when non-blocking and the send buffer is full; `EPIPE`, `ECONNRESET`...
   */
  send(data: ArrayBufferView, flags = 0): number {
    const view = checkView(data, 'send()');
    const n = native.send(this._fd('send'), view, 0, view.byteLength, flags);
    if (n < 0) throw errnoError('EAGAIN', 'send');
    return n;
  }

  /**
   * Sends all of `data`. A blocking socket waits as long as it takes; a non-blocking one throws `EAGAIN` as soon
   * as the send buffer is full (after sending what fit), as Python's does.
   *
   * @param data - the bytes.
   * @param flags - `MSG_*` flags.
   * @throws SystemError `EAGAIN`, `EPIPE`, `ECONNRESET`...
   */
  sendall(data: ArrayBufferView, flags = 0): void {
    const view = checkView(data, 'sendall()');
    const fd = this._fd('send');
    let pos = 0;
    while (pos < view.byteLength) {
      const n = native.send(fd, view, pos, view.byteLength - pos, flags);
      if (n < 0) throw errnoError('EAGAIN', 'send');
      pos += n;
    }
  }

  /**
   * Sends a datagram to `address` (Python's `sendto(data, address)` and `sendto(data, flags, address)`).
   *
   * @returns the bytes sent.
   * @throws SystemError `EAGAIN` when non-blocking and the buffer is full; ValueError for a non-numeric host.
   */
  sendto(data: ArrayBufferView, address: SocketAddressLike): number;
  sendto(data: ArrayBufferView, flags: number, address: SocketAddressLike): number;
  sendto(data: ArrayBufferView, flagsOrAddress: number | SocketAddressLike, maybeAddress?: SocketAddressLike): number {
    const view = checkView(data, 'sendto()');
    const [flags, address] =
      typeof flagsOrAddress === 'number' ? [flagsOrAddress, maybeAddress] : [0, flagsOrAddress as SocketAddressLike];
    if (address === undefined) throw new InvalidArgTypeError('sendto() takes an address');
    const n = native.sendto(this._fd('sendto'), view, 0, view.byteLength, address, flags);
    if (n < 0) throw errnoError('EAGAIN', 'sendto');
    return n;
  }

  /**
   * Receives at most `bufsize` bytes.
   *
   * @param bufsize - the most to take.
   * @param flags - `MSG_*` flags (`MSG_PEEK`...).
   * @returns the bytes; an empty buffer when the peer has closed its end.
   * @throws SystemError `EAGAIN` when non-blocking and nothing has arrived; ValueError for a negative size.
   */
  recv(bufsize: number, flags = 0): Buffer {
    if (checkInt(bufsize, 'bufsize') < 0) throw new ValueError('negative buffersize in recv');
    const fd = this._fd('recv');
    // Python answers b'' without the syscall: recv(2) of 0 bytes would wait for data (EAGAIN).
    if (bufsize === 0) return Buffer.alloc(0);
    const shared = scratchFor(bufsize);
    const buf = shared ?? Buffer.allocUnsafe(bufsize);
    const n = native.recv(fd, buf, 0, bufsize, flags);
    if (n < 0) throw errnoError('EAGAIN', 'recv');
    return takeReceived(buf, n, shared === null);
  }

  /**
   * Receives into `buffer` (Python's `recv_into`).
   *
   * @param buffer - where the bytes go.
   * @param nbytes - the most to take; 0 (default) for the whole buffer.
   * @param flags - `MSG_*` flags.
   * @returns how many bytes were received; 0 when the peer has closed its end.
   * @throws SystemError `EAGAIN` when non-blocking and nothing has arrived; ValueError when `nbytes` is negative
   *   or larger than the buffer.
   */
  recvInto(buffer: ArrayBufferView, nbytes = 0, flags = 0): number {
    const view = checkView(buffer, 'recvInto()');
    const len = this.#intoLength(view, nbytes, 'recv_into');
    const fd = this._fd('recv');
    if (len === 0) return 0;
    const n = native.recv(fd, view, 0, len, flags);
    if (n < 0) throw errnoError('EAGAIN', 'recv');
    return n;
  }

  /**
   * Receives a datagram.
   *
   * @param bufsize - the most to take (the rest of a longer datagram is lost).
   * @param flags - `MSG_*` flags.
   * @returns `[bytes, senderAddress]`.
   * @throws SystemError `EAGAIN` when non-blocking and nothing has arrived.
   */
  recvfrom(bufsize: number, flags = 0): [Buffer, SocketAddress | null] {
    if (checkInt(bufsize, 'bufsize') < 0) throw new ValueError('negative buffersize in recvfrom');
    const fd = this._fd('recvfrom');
    const shared = scratchFor(bufsize);
    const buf = shared ?? Buffer.allocUnsafe(bufsize);
    const got = native.recvfrom(fd, buf, 0, bufsize, flags);
    if (got === null) throw errnoError('EAGAIN', 'recvfrom');
    return [takeReceived(buf, got[0], shared === null), got[1]];
  }

  /**
   * Receives a datagram into `buffer` (Python's `recvfrom_into`).
   *
   * @param buffer - where the bytes go.
   * @param nbytes - the most to take; 0 (default) for the whole buffer.
   * @param flags - `MSG_*` flags.
   * @returns `[nbytes, senderAddress]`.
   * @throws SystemError `EAGAIN` when non-blocking and nothing has arrived.
   */
  recvfromInto(buffer: ArrayBufferView, nbytes = 0, flags = 0): [number, SocketAddress | null] {
    const view = checkView(buffer, 'recvfromInto()');
    const len = this.#intoLength(view, nbytes, 'recvfrom_into');
    const got = native.recvfrom(this._fd('recvfrom'), view, 0, len, flags);
    if (got === null) throw errnoError('EAGAIN', 'recvfrom');
    return got;
  }

  #intoLength(view: ArrayBufferView, nbytes: number, method: string): number {
    checkInt(nbytes, 'nbytes');
    if (nbytes < 0) throw new ValueError(`negative buffersize in ${method}`);
    if (nbytes > view.byteLength) throw new ValueError(`nbytes is greater than the length of the buffer`);
    return nbytes === 0 ? view.byteLength : nbytes;
  }

  /**
   * Sets an integer socket option.
   *
   * @param level - `SOL_SOCKET`, `IPPROTO_TCP`, `IPPROTO_IPV6`...
   * @param optname - `SO_REUSEADDR`, `SO_REUSEPORT`, `TCP_NODELAY`, `SO_KEEPALIVE`, `SO_SNDBUF`...
   * @param value - the value; `true`/`false` are 1 and 0.
   */
  setsockopt(level: number, optname: number, value: number | boolean): void {
    native.setsockopt(this._fd('setsockopt'), level, optname, value);
  }

  /**
   * Reads an integer socket option.
   *
   * @returns its value (booleans read as 0 or 1; `SO_SNDBUF` as the kernel doubled it).
   */
  getsockopt(level: number, optname: number): number {
    return native.getsockopt(this._fd('getsockopt'), level, optname);
  }

  /** The socket's own address (`''` for an unbound Unix socket). */
  getsockname(): SocketAddress | null {
    return native.getsockname(this._fd('getsockname'));
  }

  /**
   * The connected peer's address.
   *
   * @throws SystemError `ENOTCONN` when not connected.
   */
  getpeername(): SocketAddress | null {
    return native.getpeername(this._fd('getpeername'));
  }

  /**
   * Sets blocking (`true`) or non-blocking (`false`) mode: `setblocking(false)` is `settimeout(0)`,
   * `setblocking(true)` is `settimeout(null)`.
   */
  setblocking(flag: boolean): void {
    native.setBlocking(this._fd('setblocking'), Boolean(flag));
    this.#blocking = Boolean(flag);
  }

  /** True when the socket is in blocking mode. */
  getblocking(): boolean {
    return this.#blocking;
  }

  /**
   * Python's `settimeout`: `0` makes the socket non-blocking, `null` blocking. A positive timeout (blocking
   * calls with a deadline) is not supported: calls in the event loop's thread must not wait.
   *
   * @param value - seconds: 0 or null.
   * @throws ValueError for a negative or positive timeout.
   */
  settimeout(value: number | null): void {
    if (value === null) {
      this.setblocking(true);
      return;
    }
    if (typeof value !== 'number' || Number.isNaN(value)) {
      throw new InvalidArgTypeError(`Timeout value must be a number or null, got ${inspect(value, { depth: 0 })}`);
    }
    if (value < 0) throw new ValueError('Timeout value out of range');
    if (value > 0) {
      throw new ValueError(
        `settimeout(${value}): only 0 (non-blocking) and null (blocking) are supported; use the loop's sock* ` +
          'methods with waitFor() for a deadline',
      );
    }
    this.setblocking(false);
  }

  /** Python's `gettimeout`: 0 for a non-blocking socket, null for a blocking one (seconds). */
  gettimeout(): number | null {
    return this.#blocking ? null : 0;
  }

  /**
   * Shuts down one or both directions of the connection.
   *
   * @param how - `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
   */
  shutdown(how: number): void {
    native.shutdown(this._fd('shutdown'), how);
  }

  /**
   * Closes the socket. Calling it again does nothing. An `ECONNRESET` from `close(2)` is ignored, as Python does.
   */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    try {
      native.close(fd);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ECONNRESET') throw err;
    }
  }

  /**
   * Lets go of the descriptor without closing it: the socket is closed from now on, the caller owns the fd.
   *
   * @returns the fd (-1 if the socket was already closed).
   */
  detach(): number {
    const fd = this.#fd;
    this.#fd = -1;
    return fd;
  }

  /** A new socket on a duplicate of the descriptor (same connection, same blocking mode). */
  dup(): Socket {
    const fd = native.dup(this._fd('dup'));
    return Socket._fromFd(fd, this.#family, this.#type, this.#proto, this.#blocking);
  }

  /** `using sock = ...`: closes the socket. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal Python's `repr()`: `<Socket fd=5, family=AF_INET, type=SOCK_STREAM, proto=0, laddr=(...)>`. */
  [inspect.custom](): string {
    const fd = this.#fd;
    const parts = [
      `fd=${fd}`,
      `family=${FAMILY_NAMES[this.#family] ?? this.#family}`,
      `type=${TYPE_NAMES[this.#type] ?? this.#type}`,
      `proto=${this.#proto}`,
    ];
    if (fd >= 0) {
      try {
        const laddr = native.getsockname(fd);
        if (laddr !== null && laddr !== '') parts.push(`laddr=${formatSocketAddress(laddr)}`);
      } catch {
        // not bound, or no socket any more: nothing to show
      }
      try {
        const raddr = native.getpeername(fd);
        if (raddr !== null && raddr !== '') parts.push(`raddr=${formatSocketAddress(raddr)}`);
      } catch {
        // not connected
      }
    }
    return `<Socket${fd < 0 ? ' [closed]' : ''} ${parts.join(', ')}>`;
  }
}

Object.defineProperty(Socket.prototype, BRAND, { value: true });

/**
 * True when `value` is a {@link Socket} (from this or another installed copy of loopwork).
 *
 * @param value - anything.
 * @returns whether it is a loopwork socket.
 */
export function isSocket(value: unknown): value is Socket {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

/**
 * Makes a pair of connected sockets (Python's `socket.socketpair`), both blocking.
 *
 * @param family - `AF_UNIX` (default).
 * @param type - `SOCK_STREAM` (default) or `SOCK_DGRAM`, optionally or'ed with `SOCK_NONBLOCK`.
 * @param proto - 0.
 * @returns the two ends.
 */
export function socketpair(family = AF_UNIX, type = SOCK_STREAM, proto = 0): [Socket, Socket] {
  const base = type & ~TYPE_FLAGS;
  const blocking = (type & SOCK_NONBLOCK) === 0;
  const [a, b] = native.socketpair(family, base, proto);
  try {
    if (blocking) {
      native.setBlocking(a, true);
      native.setBlocking(b, true);
    }
  } catch (err) {
    native.close(a);
    native.close(b);
    throw err;
  }
  return [Socket._fromFd(a, family, base, proto, blocking), Socket._fromFd(b, family, base, proto, blocking)];
}

/** Options of {@link createServerSocket} (Python's `socket.create_server` keyword arguments). */
export interface CreateServerSocketOptions {
  /** `AF_INET` (default) or `AF_INET6`. */
  family?: number;
  /** The listen backlog; `min(SOMAXCONN, 128)` by default. */
  backlog?: number | null;
  /** Set `SO_REUSEPORT`, so that other sockets (other processes) may listen on the same port. */
  reusePort?: boolean;
  /** An `AF_INET6` socket that also takes IPv4 connections (`IPV6_V6ONLY` off). */
  dualstackIpv6?: boolean;
}

/**
 * Makes a TCP socket bound to `address` and listening (Python's `socket.create_server`): `SO_REUSEADDR` on,
 * `SO_REUSEPORT` with `reusePort`, IPv6 sockets IPv6-only unless `dualstackIpv6`. The socket is blocking, as
 * Python's; set it non-blocking before using it with the loop.
 *
 * @param address - `[host, port]`; the host numeric, `''` for any.
 * @param options - see {@link CreateServerSocketOptions}.
 * @returns the listening socket.
 * @throws SystemError `EADDRINUSE`... with message `<strerror> (while attempting to bind on address (...))`;
 *   ValueError `dualstack_ipv6 requires AF_INET6 family`.
 * @example
 * const sock = createServerSocket(['127.0.0.1', 0], { reusePort: true });
 */
export function createServerSocket(
  address: readonly [host: string, port: number],
  options: CreateServerSocketOptions = {},
): Socket {
  const family = options.family ?? AF_INET;
  if (options.dualstackIpv6 === true && family !== AF_INET6) {
    throw new ValueError('dualstack_ipv6 requires AF_INET6 family');
  }
  const sock = new Socket(family, SOCK_STREAM);
  try {
    sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    if (options.reusePort === true) sock.setsockopt(SOL_SOCKET, SO_REUSEPORT, 1);
    if (family === AF_INET6) sock.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, options.dualstackIpv6 === true ? 0 : 1);
    try {
      sock.bind(address);
    } catch (err) {
      const e = err as SystemError;
      if (typeof e.syscall === 'string') {
        e.message = `${e.message} (while attempting to bind on address ${formatSocketAddress([...address])})`;
      }
      throw e;
    }
    sock.listen(options.backlog ?? undefined);
    return sock;
  } catch (err) {
    sock.close();
    throw err;
  }
}

/**
 * @internal The address family and numeric form of an IP host, or null when it is a name to resolve.
 *
 * @param host - a host.
 * @returns `AF_INET`, `AF_INET6` or null.
 */
export function numericHostFamily(host: string): number | null {
  const bare = host.includes('%') ? host.slice(0, host.indexOf('%')) : host;
  const v = isIP(bare);
  return v === 4 ? AF_INET : v === 6 ? AF_INET6 : null;
}
