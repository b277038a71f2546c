/**
 * `loop.createDatagramEndpoint()` and the datagram transports (asyncio's `create_datagram_endpoint` and
 * `_SelectorDatagramTransport`): UDP on `node:dgram`, Unix datagram sockets on the native addon's raw sockets.
 *
 * The protocol is called in the grammar of `protocols.ts`:
 * `start -> connectionMade [-> datagramReceived | errorReceived]* -> connectionLost -> end`. `connectionMade` is
 * scheduled with `callSoon` when the transport is made, datagrams are delivered from the callback after it, and
 * `connectionLost` is called once, with `callSoon`, after `close()` (once the queued datagrams are sent) or
 * `abort()`. Protocol callbacks run with no current task.
 *
 * @module
 */
import dgram from 'node:dgram';
import { lstatSync, unlinkSync } from 'node:fs';
import { inspect } from 'node:util';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  AF_UNSPEC,
  FlowControlTransport,
  IPPROTO_UDP,
  InvalidArgTypeError,
  OSError,
  TransportSocket,
  SOCK_DGRAM,
  SOCK_STREAM,
  ValueError,
  captureContext,
  checkBytes,
  checkOptions,
  connectionError,
  enterOwnScope,
  exitOwnScope,
  extendEventLoop,
  gaiErrorFrom,
  nativeAddress,
  isSocket,
  native,
} from '@loopwork/core';
import type {
  Socket as CoreSocket,
  Address,
  BaseEventLoop,
  BaseProtocol,
  Context,
  DatagramProtocol,
  DatagramTransport,
  ExtraInfo,
  Future,
  ProtocolFactory,
} from '@loopwork/core';
import { ensureResolved, formatAddress, normalizeFamily } from './addresses.js';
import { SocketOptionUnavailableError } from './errors.js';

/** What a datagram in the transport's queue counts for besides its bytes (asyncio's `_header_size`). */
const HEADER_SIZE = 8;
/** After this many `sendto()` calls on a lost endpoint, each further one logs a warning (asyncio's threshold). */
const LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5;
/** The largest datagram read in one go (asyncio's `max_size`). */
const MAX_SIZE = 256 * 1024;

/** A local or remote address of a datagram endpoint: `[host, port]` for IP, a path (or abstract name) for Unix. */
export type DatagramAddress = readonly [host: string | null, port: number | string] | string | Buffer;

/** Options of `loop.createDatagramEndpoint()` (asyncio's keyword arguments). */
export interface DatagramEndpointOptions {
  /** Where to bind: `[host, port]` (resolved with `getaddrinfo`), or a path with `family: AF_UNIX`. */
  localAddr?: DatagramAddress | null;
  /** Where to connect: `[host, port]` (resolved with `getaddrinfo`), or a path with `family: AF_UNIX`. */
  remoteAddr?: DatagramAddress | null;
  /** `AF_INET`, `AF_INET6`, `AF_UNIX`, or 0 (default) for what the addresses resolve to; Node's 4 and 6 too. */
  family?: number;
  /** The protocol, for `getaddrinfo` (default 0). */
  proto?: number;
  /** `getaddrinfo` flags (default 0). */
  flags?: number;
  /** Refused: `SO_REUSEADDR` lets other users steal a UDP port's datagrams. Use `reusePort`. */
  reuseAddress?: boolean | null;
  /** Sets `SO_REUSEPORT`, so that several endpoints (each with the flag) bind the same address. */
  reusePort?: boolean | null;
  /** Sets `SO_BROADCAST`; with `remoteAddr`, the socket is not connected and datagrams go to that address. */
  allowBroadcast?: boolean | null;
  /**
   * An existing datagram socket for the transport to own: a `dgram.Socket`, a loopwork `Socket` (detached: the
   * transport takes its fd), or the fd of a datagram socket (e.g.
   * one made with the native addon, which is how Unix datagram sockets made elsewhere come in). Excludes every
   * other option.
   */
  sock?: dgram.Socket | number | CoreSocket | null;
}

declare module '@loopwork/core' {
  interface BaseEventLoop {
    /**
     * Creates a datagram endpoint (asyncio's `loop.create_datagram_endpoint`): a UDP socket (or a Unix datagram
     * socket with `family: AF_UNIX`), bound to `localAddr` and connected to `remoteAddr` when given, and its
     * transport calling the protocol the factory makes.
     *
     * Each address family the addresses resolve to is tried in turn; the first error is thrown when none works.
     *
     * @param protocolFactory - makes the `DatagramProtocol`.
     * @param options - `localAddr`, `remoteAddr`, `family`, `proto`, `flags`, `reusePort`, `allowBroadcast`,
     * `sock`.
     * @returns `[transport, protocol]` once `connectionMade` has been called.
     * @throws ValueError `Passing \`reuseAddress: true\` is no longer supported, …`, `unexpected address
     * family`, `can not get address information`, `socket modifier keyword arguments can not be used when sock
     * is specified. (…)`, `A datagram socket was expected, got …`; TypeError `2-tuple is expected`, `string is
     * expected`; the resolver's error; the socket's error (`EADDRINUSE`…).
     * @example
     * ```ts
     * const [transport, protocol] = await loop.createDatagramEndpoint(() => new EchoProtocol(), {
     *   localAddr: ['127.0.0.1', 9999],
     * });
     * ```
     */
    createDatagramEndpoint<P extends DatagramProtocol>(
      protocolFactory: ProtocolFactory<P>,
      options?: DatagramEndpointOptions,
    ): Promise<[DatagramSocketTransport, P]>;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Transports

interface DatagramCallbacks {
  datagramReceived(data: Buffer, addr: Address): void;
  errorReceived(exc: Error): void;
}

function sameAddress(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => v === b[i]);
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

function completeWaiter(waiter: Future<unknown>): void {
  if (!waiter.cancelled()) waiter.setResult(undefined);
}

/**
 * A read-only view of a datagram transport's socket (what `getExtraInfo('socket')` gives, as asyncio's
 * `TransportSocket`): what the socket is, and its options (`getsockopt`/`setsockopt`, e.g. `SO_RCVBUF`), without
 * a way to close or read it behind the transport's back.
 */
export class DatagramTransportSocket extends TransportSocket {
  /** @internal */
  readonly _transport: DatagramSocketTransport;

  /** @internal */
  constructor(transport: DatagramSocketTransport, family: number) {
    // The family is known (TransportSocket's `family` reads it from there); the fd is asked at each call.
    super(() => transport._fileno(), { family });
    this._transport = transport;
  }

  /** Always `SOCK_DGRAM`. */
  override get type(): number {
    return SOCK_DGRAM;
  }

  /** `IPPROTO_UDP` for UDP, 0 for Unix sockets. */
  override get proto(): number {
    return this.family === AF_UNIX ? 0 : IPPROTO_UDP;
  }

  /** The socket's own address. */
  override getsockname(): Address | null {
    return (this._transport.getExtraInfo('sockname') as Address | undefined) ?? null;
  }

  /** The connected peer's address, or `null` when the socket is not connected. */
  override getpeername(): Address | null {
    return (this._transport.getExtraInfo('peername') as Address | null | undefined) ?? null;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const parts = [`fd=${this.fileno()}`, `family=${this.family}`, `type=${this.type}`, `proto=${this.proto}`];
    const laddr = this.getsockname();
    if (laddr !== null && laddr !== '') parts.push(`laddr=${formatAddress(laddr)}`);
    const raddr = this.getpeername();
    if (raddr !== null && raddr !== '') parts.push(`raddr=${formatAddress(raddr)}`);
    return `<DatagramTransportSocket ${parts.join(', ')}>`;
  }
}

/**
 * A datagram transport (asyncio's `_SelectorDatagramTransport`): made by `loop.createDatagramEndpoint()`, never
 * by user code.
 *
 * `sendto()` never waits: what the kernel does not take at once is queued, and the protocol's `pauseWriting()` is
 * called when the queue passes the high-water mark (each datagram counts its bytes plus 8), `resumeWriting()` when
 * it drains to the low one. A failed send or receive (e.g. `ECONNREFUSED` on a connected socket after an ICMP
 * port unreachable) goes to the protocol's `errorReceived()` and the endpoint stays open.
 */
export abstract class DatagramSocketTransport extends FlowControlTransport implements DatagramTransport {
  /** @internal */
  _protocol: BaseProtocol;
  /** @internal false once `connectionLost` was called, until `setProtocol`. */
  _protocolConnected = true;
  /** @internal the default destination (the `remoteAddr`), which `sendto` refuses to differ from. */
  readonly _address: Address | null;
  /** @internal */
  _closing = false;
  /** @internal nonzero once `connectionLost` is scheduled; counts the sends refused after that. */
  _connLost = 0;
  /** @internal */
  readonly _extra: Record<string, unknown>;
  /** @internal */
  readonly _family: number;
  /**
   * @internal The context protocol callbacks run in: a copy of the one the endpoint was made in, never with a
   * current task; `null` while no context variable is in use (see `enterOwnScope`).
   */
  _context: Context | null = captureContext();

  /** @internal */
  constructor(
    loop: BaseEventLoop,
    protocol: BaseProtocol,
    family: number,
    address: Address | null,
    extra: Record<string, unknown>,
  ) {
    super(loop);
    this._protocol = protocol;
    this._family = family;
    this._address = address;
    this._extra = extra;
    this._extra.socket = new DatagramTransportSocket(this, family);
  }

  /** @internal Starts the protocol and reading in asyncio's order; call at the end of the constructor. */
  _start(waiter: Future<unknown> | null): void {
    this._loop.callSoon(() => {
      if (this._protocolConnected && !this._connLost) this._protocol.connectionMade(this);
    });
    this._loop.callSoon(() => this._startReading());
    if (waiter !== null) this._loop.callSoon(completeWaiter, waiter);
  }

  /**
   * Optional information: `'sockname'`, `'peername'` (`null` when not connected), `'socket'` (a read-only
   * {@link DatagramTransportSocket}).
   *
   * @param name - the key.
   * @param defaultValue - returned when there is no such information.
   */
  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return name in this._extra ? this._extra[name] : defaultValue;
  }

  /** True once `close()` or `abort()` was called. */
  isClosing(): boolean {
    return this._closing;
  }

  /** Switches to another protocol. */
  setProtocol(protocol: BaseProtocol): void {
    this._protocol = protocol;
    this._protocolConnected = true;
  }

  /** The current protocol. */
  getProtocol(): BaseProtocol {
    return this._protocol;
  }

  /** Bytes queued and not yet handed to the kernel, each datagram counting 8 more. */
  abstract override getWriteBufferSize(): number;

  /**
   * Sends a datagram; never waits.
   *
   * @param data - the datagram's bytes (an empty one is sent too).
   * @param addr - the destination; omitted (or equal to it) for an endpoint made with `remoteAddr`.
   * @throws TypeError when `data` is not bytes, or when there is no destination; ValueError ("Invalid address:
   * must be None or …") when `addr` differs from the endpoint's `remoteAddr`.
   */
  sendto(data: Uint8Array, addr?: Address | null): void {
    checkBytes(data, 'sendto');
    let dest: Address | null = addr ?? null;
    if (this._address !== null) {
      if (dest !== null && !sameAddress(dest, this._address)) {
        throw new ValueError(`Invalid address: must be None or ${formatAddress(this._address)}`);
      }
      dest = this._address;
    }
    if (this._connLost) {
      if (this._address !== null) {
        if (this._connLost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES)
          this._loop.logger.warn('socket.send() raised exception.');
        this._connLost++;
      }
      return;
    }
    if (dest === null && this._extra.peername == null) {
      throw new InvalidArgTypeError('sendto() needs an address: the endpoint has no remote address');
    }
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this._send(buf, dest);
  }

  /**
   * Closes the endpoint: no more datagrams are delivered, the queued ones are still sent, then the protocol's
   * `connectionLost(null)` is called. Idempotent.
   */
  close(): void {
    if (this._closing) return;
    this._closing = true;
    this._stopReading();
    if (this._queueEmpty()) {
      this._connLost++;
      this._loop.callSoon(() => this._callConnectionLost(null));
    }
  }

  /** Closes the endpoint at once, dropping queued datagrams; `connectionLost(null)` follows. */
  abort(): void {
    this._forceClose(null);
  }

  /** @internal */
  _fatalError(exc: unknown, message = 'Fatal error on transport'): void {
    if (isOSError(exc)) {
      if (this._loop.getDebug()) this._loop.logger.debug({ err: exc, transport: inspect(this) }, message);
    } else {
      this._loop.callExceptionHandler({ message, exception: exc, transport: this, protocol: this._protocol });
    }
    this._forceClose(exc instanceof Error ? exc : new Error(String(exc)));
  }

  /** @internal */
  _forceClose(error: Error | null): void {
    if (this._connLost) return;
    const exc = error === null ? null : connectionError(error);
    this._clearQueue();
    if (!this._closing) {
      this._closing = true;
      this._stopReading();
    }
    this._connLost++;
    this._loop.callSoon(() => this._callConnectionLost(exc));
  }

  /** @internal */
  _callConnectionLost(exc: Error | null): void {
    try {
      if (this._protocolConnected) {
        this._protocolConnected = false;
        this._protocol.connectionLost(exc);
      }
    } finally {
      this._closeSocket();
    }
  }

  /** @internal Calls the protocol with no current task; its exception goes to the exception handler. */
  _callProtocol(method: 'datagramReceived' | 'errorReceived', a: unknown, b?: unknown): void {
    const outer = enterOwnScope(this);
    const protocol = this._protocol as unknown as DatagramCallbacks;
    try {
      if (method === 'datagramReceived') protocol.datagramReceived(a as Buffer, b as Address);
      else protocol.errorReceived(datagramError(a as Error));
    } catch (exception) {
      this._loop.callExceptionHandler({
        message: `Exception in callback ${this.constructor.name}: protocol.${method}() call failed`,
        exception,
        transport: this,
        protocol: this._protocol,
      });
    } finally {
      exitOwnScope(this, outer);
    }
  }

  /** @internal */
  abstract _send(data: Buffer, addr: Address | null): void;
  /** @internal */
  abstract _startReading(): void;
  /** @internal */
  abstract _stopReading(): void;
  /** @internal */
  abstract _queueEmpty(): boolean;
  /** @internal */
  abstract _clearQueue(): void;
  /** @internal */
  abstract _closeSocket(): void;
  /** @internal */
  abstract _fileno(): number;

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const parts = [this.constructor.name];
    const fd = this._fileno();
    if (fd < 0) parts.push('closed');
    else if (this._closing) parts.push('closing');
    parts.push(`fd=${fd}`);
    const sockname = this._extra.sockname;
    if (sockname !== undefined && sockname !== null) parts.push(`laddr=${formatAddress(sockname)}`);
    if (this._address !== null) parts.push(`raddr=${formatAddress(this._address)}`);
    parts.push(`bufsize=${fd < 0 ? 0 : this.getWriteBufferSize()}`);
    return `<${parts.join(' ')}>`;
  }
}

/**
 * The error `errorReceived` gets: a system error (`recvmsg ECONNREFUSED`) as Python's OSError
 * (`ConnectionRefusedError`); a failed lookup of the host name a datagram was sent to (dgram looks it up) as the
 * `gaierror` asyncio's `sendto()` gets from `socket.getaddrinfo`.
 */
function datagramError(err: Error): Error {
  const { syscall, hostname } = err as { syscall?: unknown; hostname?: unknown };
  if (syscall === 'getaddrinfo' && typeof hostname === 'string') {
    return gaiErrorFrom(err, 'getaddrinfo', hostname) as Error;
  }
  return connectionError(err);
}

function isOSError(err: unknown): boolean {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    (typeof (err as { syscall?: unknown }).syscall === 'string' || OSError.isInstance(err))
  );
}

function fromRinfo(rinfo: dgram.RemoteInfo): Address {
  return rinfo.family === 'IPv6' ? [rinfo.address, rinfo.port, 0, 0] : [rinfo.address, rinfo.port];
}

function udpAddressOf(info: { address: string; family: string; port: number }): Address {
  return info.family === 'IPv6' ? [info.address, info.port, 0, 0] : [info.address, info.port];
}

/**
 * The datagram transport of a UDP socket, on `node:dgram`. The send queue is libuv's: what it holds is what the
 * kernel has not taken yet.
 */
export class UDPTransport extends DatagramSocketTransport {
  /** @internal */
  _sock: dgram.Socket | null;
  /** @internal */
  _fd: number;
  /** @internal datagrams started being delivered (the callback after connectionMade ran). */
  _reading = false;
  /** @internal events that came while they could not be delivered (before reading began, or the loop stopped). */
  _pending: ([Buffer, Address] | Error)[] = [];
  /** @internal */
  _flushScheduled = false;
  /**
   * @internal sends dgram has not completed: besides libuv's queue, a send may wait for dgram to bind the socket
   * or to look a host name up, and `close()` must not drop it (asyncio's `sendto()` has sent it on return).
   */
  _inFlight = 0;

  /** @internal */
  readonly _onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this._event([msg, fromRinfo(rinfo)]);
  };
  /** @internal Node reports a failed receive (`recvmsg ECONNREFUSED`…) as an 'error' event. */
  readonly _onError = (err: Error): void => {
    this._event(err);
  };

  /** @internal */
  constructor(
    loop: BaseEventLoop,
    sock: dgram.Socket,
    protocol: BaseProtocol,
    address: Address | null,
    waiter: Future<unknown> | null,
  ) {
    const family = (sock as unknown as { type?: string }).type === 'udp6' ? AF_INET6 : AF_INET;
    const extra: Record<string, unknown> = {};
    try {
      extra.sockname = udpAddressOf(sock.address());
    } catch {
      // Not bound yet: the kernel binds it on the first send, as asyncio's socket reports ('0.0.0.0', 0).
      extra.sockname = family === AF_INET6 ? ['::', 0, 0, 0] : ['0.0.0.0', 0];
    }
    try {
      extra.peername = udpAddressOf(sock.remoteAddress());
    } catch {
      extra.peername = null;
    }
    super(loop, protocol, family, address, extra);
    this._sock = sock;
    this._fd = udpFd(sock);
    // The running loop keeps the process alive; a forgotten endpoint must not once the loop is done.
    sock.unref();
    sock.on('message', this._onMessage);
    sock.on('error', this._onError);
    this._start(waiter);
  }

  /** @internal */
  _event(ev: [Buffer, Address] | Error): void {
    // A closed loop can run nothing: what arrives now is dropped, as a datagram nobody reads.
    if (this._closing || this._loop.isClosed()) return;
    if (!this._reading || !this._loop._running || this._pending.length > 0) {
      this._pending.push(ev);
      this._scheduleFlush();
      return;
    }
    this._deliver(ev);
  }

  /** @internal */
  _deliver(ev: [Buffer, Address] | Error): void {
    if (ev instanceof Error) this._callProtocol('errorReceived', ev);
    else this._callProtocol('datagramReceived', ev[0], ev[1]);
  }

  /** @internal */
  _scheduleFlush(): void {
    if (this._flushScheduled || !this._reading) return;
    this._flushScheduled = true;
    this._loop.callSoon(() => {
      this._flushScheduled = false;
      // Only what was pending when the callback began: later events keep their order behind it.
      const pending = this._pending;
      this._pending = [];
      for (let i = 0; i < pending.length; i++) {
        if (this._closing) return;
        this._deliver(pending[i]!);
      }
    });
  }

  /** @internal */
  _startReading(): void {
    if (this._closing) return;
    this._reading = true;
    if (this._pending.length > 0) this._scheduleFlush();
  }

  /** @internal */
  _stopReading(): void {
    this._reading = false;
    this._pending = [];
  }

  /** Bytes queued and not yet handed to the kernel, each datagram counting 8 more. */
  getWriteBufferSize(): number {
    const sock = this._sock;
    if (sock === null) return 0;
    try {
      return sock.getSendQueueSize() + HEADER_SIZE * sock.getSendQueueCount();
    } catch {
      return 0;
    }
  }

  /** @internal */
  _queueEmpty(): boolean {
    return this._inFlight === 0;
  }

  /** @internal libuv's queue is dropped when the socket closes. */
  _clearQueue(): void {}

  /** @internal */
  _send(data: Buffer, addr: Address | null): void {
    const sock = this._sock;
    if (sock === null) return;
    const done = (err: Error | null): void => {
      this._inFlight--;
      this._sent(err);
    };
    if (this._extra.peername != null) {
      sock.send(data, done);
    } else {
      if (!Array.isArray(addr) || addr.length < 2) {
        throw new InvalidArgTypeError(`a UDP address is [host, port], got ${inspect(addr, { depth: 0 })}`);
      }
      const [host, port] = addr as readonly [string, number];
      // dgram sends after looking the host up, a later turn even for a numeric one: the caller may reuse its
      // buffer as soon as sendto() returns.
      sock.send(Buffer.from(data), port, host, done);
    }
    this._inFlight++;
    this._maybePauseProtocol();
  }

  /** @internal A send completed (or failed). */
  _sent(err: Error | null): void {
    if (this._connLost || this._loop.isClosed()) return;
    if (err !== null) this._callProtocol('errorReceived', err);
    const outer = enterOwnScope(this);
    try {
      this._maybeResumeProtocol();
    } finally {
      exitOwnScope(this, outer);
    }
    if (this._closing && this._queueEmpty()) {
      this._connLost++;
      this._loop.callSoon(() => this._callConnectionLost(null));
    }
  }

  /** @internal */
  _closeSocket(): void {
    const sock = this._sock;
    if (sock === null) return;
    this._sock = null;
    this._fd = -1;
    sock.off('message', this._onMessage);
    sock.off('error', this._onError);
    // An error Node may still report on the way out must not become an uncaught 'error' event.
    sock.on('error', () => undefined);
    try {
      sock.close();
    } catch {
      // Closed already.
    }
  }

  /** @internal */
  _fileno(): number {
    return this._fd;
  }
}

/** The fd of a dgram socket, from its internal state (its `_handle` getter is deprecated), or -1. */
function udpFd(sock: dgram.Socket): number {
  for (const sym of Object.getOwnPropertySymbols(sock)) {
    const state = (sock as unknown as Record<symbol, { handle?: { fd?: unknown } | null } | undefined>)[sym];
    const fd = typeof state === 'object' && state !== null ? state.handle?.fd : undefined;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  return -1;
}

/**
 * The datagram transport of a socket owned by the native addon (Unix datagram sockets): asyncio's selector
 * transport, line for line — readiness from libuv, `recvfrom`/`sendto` syscalls, and its own queue of datagrams
 * the kernel could not take yet.
 */
export class NativeDatagramTransport extends DatagramSocketTransport {
  /** @internal */
  _fd: number;
  /** @internal */
  _poll: native.PollHandle | null = null;
  /** @internal the events polled for now. */
  _events = 0;
  /** @internal datagrams waiting for the socket to be writable. */
  _buffer: [Buffer, Address | null][] = [];
  /** @internal */
  _bufferSize = 0;
  /** @internal the loop was stopped when the fd became ready: polling waits for it to run again. */
  _parked = false;
  /** @internal the receive buffer, reused. */
  _rbuf: Buffer | null = null;

  /** @internal */
  readonly _onPoll = (status: number, events: number): void => {
    if (this._fd < 0) return;
    if (!this._loop._running) {
      // Level-triggered readiness would spin while the loop is stopped: wait for it to run again.
      this._park();
      return;
    }
    const outer = enterOwnScope(this);
    try {
      if (status < 0) {
        this._fatalError(native.systemError(status, 'uv_poll'), 'Fatal error on datagram transport');
        return;
      }
      if (events & native.READABLE) this._readReady();
      if (events & native.WRITABLE && this._fd >= 0) this._sendtoReady();
    } finally {
      exitOwnScope(this, outer);
    }
  };

  /** @internal */
  constructor(
    loop: BaseEventLoop,
    fd: number,
    protocol: BaseProtocol,
    address: Address | null,
    waiter: Future<unknown> | null,
  ) {
    const family = native.getSocketFamily(fd);
    const extra: Record<string, unknown> = {
      sockname: nativeAddress(fd, 'sock'),
      peername: nativeAddress(fd, 'peer'),
    };
    super(loop, protocol, family, address, extra);
    this._fd = fd;
    this._start(waiter);
  }

  /** @internal */
  _updatePoll(): void {
    if (this._fd < 0 || this._parked) return;
    if (this._poll === null) {
      if (this._events === 0) return;
      this._poll = native.pollStart(this._fd, this._events, this._onPoll);
      // The running loop keeps the process alive; a forgotten endpoint must not once the loop is done.
      native.pollUnref(this._poll);
    } else {
      native.pollUpdate(this._poll, this._events);
    }
  }

  /** @internal */
  _park(): void {
    if (this._parked || this._poll === null) return;
    this._parked = true;
    native.pollUpdate(this._poll, 0);
    // A closed loop never runs again: the poll stays paused (and no longer keeps the process alive).
    if (this._loop.isClosed()) return;
    this._loop.callSoon(() => {
      this._parked = false;
      this._updatePoll();
    });
  }

  /** @internal */
  _startReading(): void {
    if (this._closing) return;
    this._events |= native.READABLE;
    this._updatePoll();
  }

  /** @internal */
  _stopReading(): void {
    this._events &= ~native.READABLE;
    this._updatePoll();
  }

  /** @internal */
  _readReady(): void {
    if (this._connLost) return;
    const buf = (this._rbuf ??= Buffer.allocUnsafe(MAX_SIZE));
    let got: [number, native.SocketAddress | null] | null;
    try {
      got = native.recvfrom(this._fd, buf, 0, MAX_SIZE);
    } catch (exc) {
      if (isOSError(exc)) this._callProtocol('errorReceived', exc);
      else this._fatalError(exc, 'Fatal read error on datagram transport');
      return;
    }
    if (got === null) return;
    // Copied: the receive buffer is reused, the protocol owns what it gets.
    const data = Buffer.from(buf.subarray(0, got[0]));
    // An unnamed sender (an unbound Unix socket) has no address: '' as for an unnamed socket's own name.
    this._callProtocol('datagramReceived', data, (got[1] ?? '') as Address);
  }

  /** Bytes queued and not yet handed to the kernel, each datagram counting 8 more. */
  getWriteBufferSize(): number {
    return this._bufferSize;
  }

  /** @internal */
  _queueEmpty(): boolean {
    return this._buffer.length === 0;
  }

  /** @internal */
  _clearQueue(): void {
    if (this._buffer.length === 0) return;
    this._buffer = [];
    this._bufferSize = 0;
    this._events &= ~native.WRITABLE;
    this._updatePoll();
  }

  /** @internal Sends now, or -1 when the kernel's buffer is full. */
  _sendOne(data: Buffer, addr: Address | null): number {
    if (this._extra.peername != null) return native.send(this._fd, data, 0, data.length);
    return native.sendto(this._fd, data, 0, data.length, toNativeAddress(addr));
  }

  /** @internal */
  _send(data: Buffer, addr: Address | null): void {
    if (this._buffer.length === 0) {
      try {
        if (this._sendOne(data, addr) >= 0) return;
        this._events |= native.WRITABLE;
        this._updatePoll();
      } catch (exc) {
        if (isOSError(exc)) this._callProtocol('errorReceived', exc);
        else this._fatalError(exc, 'Fatal write error on datagram transport');
        return;
      }
    }
    // Copied: the caller may reuse its buffer once sendto() returns.
    this._buffer.push([Buffer.from(data), addr]);
    this._bufferSize += data.length + HEADER_SIZE;
    this._maybePauseProtocol();
  }

  /** @internal */
  _sendtoReady(): void {
    while (this._buffer.length > 0) {
      const [data, addr] = this._buffer.shift()!;
      this._bufferSize -= data.length + HEADER_SIZE;
      try {
        if (this._sendOne(data, addr) < 0) {
          this._buffer.unshift([data, addr]);
          this._bufferSize += data.length + HEADER_SIZE;
          break;
        }
      } catch (exc) {
        if (isOSError(exc)) this._callProtocol('errorReceived', exc);
        else this._fatalError(exc, 'Fatal write error on datagram transport');
        return;
      }
    }
    this._maybeResumeProtocol();
    if (this._buffer.length === 0) {
      this._events &= ~native.WRITABLE;
      this._updatePoll();
      if (this._closing && !this._connLost) {
        this._connLost++;
        this._callConnectionLost(null);
      }
    }
  }

  /** @internal */
  _closeSocket(): void {
    if (this._fd < 0) return;
    if (this._poll !== null) native.pollStop(this._poll);
    this._poll = null;
    try {
      native.close(this._fd);
    } catch {
      // Closed already.
    }
    this._fd = -1;
  }

  /** @internal */
  _fileno(): number {
    return this._fd;
  }
}

function toNativeAddress(addr: Address | null): native.SocketAddressLike {
  if (addr === null) throw new InvalidArgTypeError('sendto() needs an address: the endpoint has no remote address');
  if (typeof addr === 'string' && addr.startsWith('\0')) return Buffer.from(addr, 'utf8');
  return addr as native.SocketAddressLike;
}

// ---------------------------------------------------------------------------------------------------------
// createDatagramEndpoint

function describeOptions(opts: Record<string, unknown>): string {
  return Object.entries(opts)
    .filter(([, v]) => v !== undefined && v !== null && v !== false && v !== 0 && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? formatAddress(v) : String(v)}`)
    .join(', ');
}

function bindUdp(sock: dgram.Socket, options: dgram.BindOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      sock.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      sock.off('error', onError);
      resolve();
    };
    sock.once('error', onError);
    // bind({fd}) emits 'listening' before it returns: the listeners are in place first.
    sock.once('listening', onListening);
    sock.bind(options);
  });
}

function connectUdp(sock: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    sock.connect(port, host, (err?: Error) => (err ? reject(err) : resolve()));
  });
}

function hostPort(addr: Address | readonly unknown[]): [string, number] {
  const a = addr as readonly unknown[];
  return [String(a[0]), Number(a[1])];
}

/** Sets `SO_REUSEPORT` on a native socket, with asyncio's errors. */
function setReusePort(fd: number): void {
  try {
    native.setsockopt(fd, native.constants.SOL_SOCKET, native.constants.SO_REUSEPORT, 1);
  } catch (err) {
    throw new ValueError('reusePort not supported by socket module, SO_REUSEPORT defined but not implemented.', {
      cause: err,
    });
  }
}

/** A UDP socket of `family`, bound and connected as asked. */
async function openUdpSocket(
  family: number,
  local: Address | null,
  remote: Address | null,
  reusePort: boolean,
  allowBroadcast: boolean,
): Promise<dgram.Socket> {
  const sock = dgram.createSocket({ type: family === AF_INET6 ? 'udp6' : 'udp4' });
  try {
    let bound = false;
    if (reusePort) {
      // Node 20's dgram cannot set SO_REUSEPORT, which must come before bind(): the addon makes and binds the
      // socket, and dgram adopts the fd.
      if (!native.nativeAvailable()) {
        throw new SocketOptionUnavailableError(
          'reusePort needs SO_REUSEPORT, which needs the loopwork native addon on this Node version',
        );
      }
      const fd = native.socket(family, SOCK_DGRAM, 0);
      try {
        setReusePort(fd);
        if (allowBroadcast) native.setsockopt(fd, native.constants.SOL_SOCKET, native.constants.SO_BROADCAST, 1);
        const [host, port] = local === null ? [family === AF_INET6 ? '::' : '0.0.0.0', 0] : hostPort(local);
        native.bind(fd, [host, port]);
      } catch (err) {
        native.close(fd);
        throw err;
      }
      await bindUdp(sock, { fd });
      bound = true;
    } else if (local !== null) {
      const [host, port] = hostPort(local);
      await bindUdp(sock, { address: host, port, exclusive: true });
      bound = true;
    }
    if (allowBroadcast && !reusePort) {
      // SO_BROADCAST needs the socket's fd, which Node makes when binding.
      if (!bound) await bindUdp(sock, { port: 0, exclusive: true });
      sock.setBroadcast(true);
    }
    if (remote !== null && !allowBroadcast) {
      const [host, port] = hostPort(remote);
      await connectUdp(sock, port, host);
    }
    return sock;
  } catch (err) {
    try {
      sock.close();
    } catch {
      // Never bound: nothing to close.
    }
    throw connectionError(err);
  }
}

function unixAddress(addr: DatagramAddress | null | undefined): string | Buffer | null {
  if (addr === null || addr === undefined) return null;
  if (typeof addr === 'string' || Buffer.isBuffer(addr)) return addr;
  throw new InvalidArgTypeError('string is expected');
}

/** Removes a stale socket file at `path`, as asyncio does before binding a Unix datagram socket. */
function removeStaleSocket(loop: BaseEventLoop, path: string | Buffer): void {
  if (path.length === 0 || path[0] === 0 || path[0] === '\0') return;
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return;
    loop.logger.error({ err }, `Unable to check or remove stale UNIX socket ${formatAddress(path)}`);
  }
}

/** A Unix datagram socket (native), bound and connected as asked. */
function openUnixDatagramSocket(local: string | Buffer | null, remote: string | Buffer | null): number {
  // Without the addon this throws NativeUnavailableError, which says why and how to build it.
  const fd = native.socket(AF_UNIX, SOCK_DGRAM, 0);
  try {
    if (local !== null && local.length > 0) native.bind(fd, toNativeAddress(local));
    if (remote !== null) native.connect(fd, toNativeAddress(remote));
    return fd;
  } catch (err) {
    native.close(fd);
    throw connectionError(err);
  }
}

/** The keys of {@link DatagramEndpointOptions}. */
const DATAGRAM_KEYS = [
  'localAddr',
  'remoteAddr',
  'family',
  'proto',
  'flags',
  'reuseAddress',
  'reusePort',
  'allowBroadcast',
  'sock',
];

async function createDatagramEndpoint<P extends DatagramProtocol>(
  this: BaseEventLoop,
  protocolFactory: ProtocolFactory<P>,
  options: DatagramEndpointOptions = {},
): Promise<[DatagramSocketTransport, P]> {
  if (typeof protocolFactory !== 'function') {
    throw new InvalidArgTypeError(`protocolFactory must be a function, got ${inspect(protocolFactory, { depth: 0 })}`);
  }
  checkOptions(options, DATAGRAM_KEYS, 'createDatagramEndpoint');
  const {
    localAddr = null,
    remoteAddr = null,
    proto = 0,
    flags = 0,
    reuseAddress,
    reusePort = null,
    allowBroadcast = null,
    sock = null,
  } = options;
  const family = normalizeFamily(options.family);
  if (reuseAddress) {
    throw new ValueError(
      'Passing `reuseAddress: true` is no longer supported, as the usage of SO_REUSEPORT in UDP poses a ' +
        'significant security concern.',
    );
  }

  let makeTransport: (protocol: P, waiter: Future<unknown>) => DatagramSocketTransport;
  // Closes the socket when no transport is made after all (the protocol factory threw).
  let discard: () => void;
  if (sock !== null) {
    // A loopwork Socket is adopted through its fd, and lets go of it once adopting succeeded.
    const adopted = isSocket(sock) ? sock.fileno() : sock;
    ({ makeTransport, discard } = adoptSocket(this, adopted, {
      localAddr,
      remoteAddr,
      family,
      proto,
      flags,
      reusePort,
      allowBroadcast,
    }));
    if (isSocket(sock)) sock.detach();
  } else if (!localAddr && !remoteAddr) {
    if (family === AF_UNSPEC) throw new ValueError('unexpected address family');
    if (family === AF_UNIX) {
      const fd = openUnixDatagramSocket(null, null);
      discard = () => closeAny(fd);
      makeTransport = (protocol, waiter) => new NativeDatagramTransport(this, fd, protocol, null, waiter);
    } else {
      const s = await openUdpSocket(family, null, null, reusePort === true, allowBroadcast === true);
      discard = () => closeAny(s);
      makeTransport = (protocol, waiter) => new UDPTransport(this, s, protocol, null, waiter);
    }
  } else if (family === AF_UNIX) {
    const local = unixAddress(localAddr);
    const remote = unixAddress(remoteAddr);
    if (local !== null) removeStaleSocket(this, local);
    const fd = openUnixDatagramSocket(local, remote);
    discard = () => closeAny(fd);
    makeTransport = (protocol, waiter) => new NativeDatagramTransport(this, fd, protocol, remote, waiter);
  } else {
    // The addresses of each family, local and remote (asyncio keys them by (family, proto); over IP a datagram
    // socket's protocol is always UDP, so the family alone says which pairs go together).
    const byFamily = new Map<number, [Address | null, Address | null]>();
    for (const [idx, addr] of [
      [0, localAddr],
      [1, remoteAddr],
    ] as const) {
      if (addr === null || addr === undefined) continue;
      if (!Array.isArray(addr) || addr.length !== 2) throw new InvalidArgTypeError('2-tuple is expected');
      const [host, port] = addr as readonly [string | null, number | string];
      const infos = await ensureResolved(this, host, port, { family, type: SOCK_DGRAM, proto, flags });
      if (infos.length === 0) throw new OSError('getaddrinfo() returned empty list');
      for (const [fam, , , , address] of infos) {
        let pair = byFamily.get(fam);
        if (pair === undefined) byFamily.set(fam, (pair = [null, null]));
        if (pair[idx] === null) pair[idx] = address;
      }
    }
    const pairs = [...byFamily].filter(([, [l, r]]) => !((localAddr && l === null) || (remoteAddr && r === null)));
    if (pairs.length === 0) throw new ValueError('can not get address information');
    const errors: unknown[] = [];
    let opened: [dgram.Socket, Address | null] | null = null;
    for (const [fam, [local, remote]] of pairs) {
      try {
        const s = await openUdpSocket(fam, local, remote, reusePort === true, allowBroadcast === true);
        opened = [s, remote];
        break;
      } catch (err) {
        if (!isOSError(err)) throw err;
        errors.push(err);
      }
    }
    if (opened === null) throw errors[0];
    const [s, rAddr] = opened;
    discard = () => closeAny(s);
    makeTransport = (protocol, waiter) => new UDPTransport(this, s, protocol, rAddr, waiter);
  }

  let protocol: P;
  try {
    protocol = protocolFactory();
  } catch (err) {
    discard();
    throw err;
  }
  const waiter = this.createFuture<unknown>();
  const transport = makeTransport(protocol, waiter);
  if (this.getDebug()) {
    this.logger.debug(
      `Datagram endpoint localAddr=${formatAddress(localAddr)} remoteAddr=${formatAddress(remoteAddr)} created: ` +
        `(${inspect(transport)}, ${inspect(protocol, { depth: 0 })})`,
    );
  }
  try {
    await waiter;
  } catch (err) {
    transport.close();
    throw err;
  }
  return [transport, protocol];
}

function closeAny(sock: dgram.Socket | number): void {
  try {
    if (typeof sock === 'number') native.close(sock);
    else sock.close();
  } catch {
    // Closed already, or never bound.
  }
}

/** What makes the transport of a socket handed in with `sock`, and what closes the socket if none is made. */
interface Adopted<P> {
  makeTransport: (protocol: P, waiter: Future<unknown>) => DatagramSocketTransport;
  discard: () => void;
}

/** Adopts a socket handed in with `sock`, after asyncio's checks. */
function adoptSocket<P extends DatagramProtocol>(
  loop: BaseEventLoop,
  sock: dgram.Socket | number,
  opts: Record<string, unknown>,
): Adopted<P> {
  let kind: 'udp' | 'unix';
  if (typeof sock === 'number') {
    const type = native.getSocketType(sock);
    if (type !== SOCK_DGRAM) {
      throw new ValueError(`A datagram socket was expected, got <socket fd=${sock}, type=${type}>`);
    }
    kind = native.getSocketFamily(sock) === AF_UNIX ? 'unix' : 'udp';
  } else if (sock instanceof dgram.Socket) {
    kind = 'udp';
  } else {
    const type = (sock as { type?: unknown } | null)?.type;
    if (type === SOCK_STREAM || typeof (sock as { write?: unknown } | null)?.write === 'function') {
      throw new ValueError(`A datagram socket was expected, got ${inspect(sock, { depth: 0 })}`);
    }
    throw new InvalidArgTypeError(
      `sock must be a dgram.Socket or a file descriptor, got ${inspect(sock, { depth: 0 })}`,
    );
  }
  const problems = describeOptions(opts);
  if (problems !== '') {
    throw new ValueError(`socket modifier keyword arguments can not be used when sock is specified. (${problems})`);
  }
  // A connected UDP socket stays on its fd: dgram would not know that it is connected (its own connect() refuses
  // an fd libuv sees connected), and the native transport is asyncio's, for any family.
  if (kind === 'unix' || (typeof sock === 'number' && nativeAddress(sock, 'peer') !== null)) {
    const fd = sock as number;
    return {
      makeTransport: (protocol, waiter) => new NativeDatagramTransport(loop, fd, protocol, null, waiter),
      discard: () => closeAny(fd),
    };
  }
  const s = typeof sock === 'number' ? dgramOfFd(sock) : sock;
  return {
    makeTransport: (protocol, waiter) => new UDPTransport(loop, s, protocol, null, waiter),
    discard: () => closeAny(s),
  };
}

/** A UDP socket made elsewhere, adopted by dgram (which closes the fd from now on). */
function dgramOfFd(fd: number): dgram.Socket {
  const s = dgram.createSocket({ type: native.getSocketFamily(fd) === AF_INET6 ? 'udp6' : 'udp4' });
  let adoptErr: unknown = null;
  s.once('error', (e) => (adoptErr = e));
  s.bind({ fd });
  if (adoptErr !== null) throw adoptErr;
  return s;
}

extendEventLoop({
  createDatagramEndpoint: createDatagramEndpoint as unknown as (this: BaseEventLoop, ...args: never[]) => unknown,
});
