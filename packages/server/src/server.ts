/**
 * The `Server` object (asyncio's `base_events.Server`) and the listening sockets behind it.
 *
 * A server owns one listening socket per bound address. Where loopwork's native addon is available, a listening
 * socket is a raw socket the server polls and accepts from itself (asyncio's `_accept_connection`: accepting pauses
 * for a second when the process is out of descriptors); otherwise it is a `net.Server`. A plain connection accepted
 * from a native socket stays on its fd, in an `FdTransport` (unless `LOOPWORK_TRANSPORT=socket`); the others become
 * a `SocketTransport` (or a TLS transport) on a `net.Socket`.
 *
 * @module
 */
import fs from 'node:fs';
import type net from 'node:net';
import { inspect } from 'node:util';
import type {
  Address,
  BaseEventLoop,
  Context,
  Future,
  BaseProtocol,
  ExtraInfo,
  ProtocolFactory,
  TimerHandle,
  Transport,
  TransportServer,
} from '@loopwork/core';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  FdTransport,
  RuntimeError,
  SocketTransport,
  TransportSocket,
  copyContext,
  enterScope,
  exitScope,
  fdTransportEnabled,
  isCancelledError,
  native,
  netSocketOf,
  sleep,
} from '@loopwork/core';
import { formatAddress, fromNodeAddress } from './addresses.js';
import { closeConnected } from './create-connection.js';
import type { SSLContextLike } from './ssl.js';
import { tlsTransportFactory } from './ssl.js';

/** Seconds accepting pauses after the process ran out of descriptors or memory (asyncio's `ACCEPT_RETRY_DELAY`). */
const ACCEPT_RETRY_DELAY = 1;
/** accept() errors that mean "out of resources": asyncio pauses accepting on them instead of spinning. */
const RESOURCE_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** @internal One listening socket of a `Server`. */
export interface Listener {
  /** True for a Unix socket. */
  readonly unix: boolean;
  /** The server it accepts for (set by the `Server` constructor). */
  server: Server | null;
  /** The bound address. */
  sockname(): Address | null;
  /** A read-only view of the socket. */
  view(): TransportSocket;
  /** Starts accepting (asyncio's `listen` + `_start_serving`); idempotent. While paused, it only listens. */
  start(backlog: number): void;
  /** Stops taking connections from the socket, which keeps listening; idempotent. */
  pause(): void;
  /** Takes connections again after `pause()`; idempotent. */
  resume(): void;
  /** Stops accepting and closes the socket (removing a Unix socket file that is still ours). */
  close(): void;
}

/** How a Unix listening socket's file is cleaned up at close (asyncio's `cleanup_socket`). */
interface UnixCleanup {
  path: string | Buffer;
  inode: number;
}

function removeUnixSocketFile(loop: BaseEventLoop, cleanup: UnixCleanup | null): void {
  if (cleanup === null) return;
  try {
    // Only if it is still the file we bound: someone may have replaced it with their own socket meanwhile.
    if (fs.statSync(cleanup.path).ino === cleanup.inode) fs.unlinkSync(cleanup.path);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return;
    loop.logger.error(
      { err, path: formatAddress(cleanup.path) },
      `Unable to clean up listening UNIX socket ${formatAddress(cleanup.path)}: ${String(err)}`,
    );
  }
}

function reportAcceptError(listener: Listener, loop: BaseEventLoop, err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && RESOURCE_ERRORS.has(code)) {
    loop.callExceptionHandler({
      message: 'socket.accept() out of system resource',
      exception: err,
      socket: listener.view(),
    });
    return true;
  }
  loop.callExceptionHandler({ message: 'Error on accepting a connection', exception: err, socket: listener.view() });
  return false;
}

/**
 * The local address of a connection accepted on `listener` as fd `fd`: the listener's own address, unless it listens
 * on a wildcard one (then the fd is asked, a syscall; a net.Socket would build its whole address object for it).
 */
function acceptedSockname(listener: Listener, fd: number): Address | null {
  const own = listener.sockname();
  if (Array.isArray(own) && own[0] !== '0.0.0.0' && own[0] !== '::') return [...own] as Address;
  return native.getsockname(fd) as Address | null;
}

/**
 * @internal A listening socket made by the native addon: the server polls it and accepts connections itself, as
 * asyncio's selector loop does, and hands each accepted fd to Node as a `net.Socket`.
 */
export class NativeListener implements Listener {
  readonly fd: number;
  readonly unix: boolean;
  server: Server | null = null;
  #poll: native.PollHandle | null = null;
  #retry: TimerHandle | null = null;
  #backlog = 100;
  #closed = false;
  #started = false;
  #paused = false;
  #sockname: Address | null;
  readonly #cleanup: UnixCleanup | null;

  /**
   * @param fd - a bound (or listening) stream socket; the listener owns it.
   * @param options - `unix`, and `cleanup` (the path and inode to remove at close).
   */
  constructor(fd: number, options: { unix: boolean; cleanup?: UnixCleanup | null }) {
    this.fd = fd;
    this.unix = options.unix;
    this.#cleanup = options.cleanup ?? null;
    let name: Address | null = null;
    try {
      name = native.getsockname(fd) as Address | null;
    } catch {
      name = null;
    }
    this.#sockname = name;
  }

  sockname(): Address | null {
    return this.#sockname;
  }

  view(): TransportSocket {
    // Told the fd at each call: -1 once closed, so that a view kept after close() acts on no other socket.
    return new TransportSocket(() => (this.#closed ? -1 : this.fd), { sockname: this.#sockname });
  }

  start(backlog: number): void {
    if (this.#closed || this.#started) return;
    this.#started = true;
    this.#backlog = backlog;
    native.listen(this.fd, backlog);
    this.#watch();
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    // The socket keeps listening: the kernel queues new connections in its backlog until resume().
    if (this.#poll !== null && this.#retry === null && !this.#closed) native.pollUpdate(this.#poll, 0);
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // A pending retry after EMFILE watches again when it fires.
    if (this.#started && this.#retry === null) this.#watch();
  }

  #watch(): void {
    this.#retry = null;
    if (this.#closed || this.#paused) return;
    if (this.#poll === null) {
      this.#poll = native.pollStart(this.fd, native.READABLE, this.#onReadable);
      // The loop keeps the process alive while it runs; a forgotten server must not keep it alive after.
      native.pollUnref(this.#poll);
    } else {
      native.pollUpdate(this.#poll, native.READABLE);
    }
  }

  readonly #onReadable = (status: number): void => {
    const server = this.server;
    if (this.#closed || server === null) return;
    const loop = server._loop;
    if (loop.isClosed()) {
      this.#stopPolling();
      return;
    }
    if (status < 0) {
      reportAcceptError(this, loop, native.systemError(status, 'uv_poll'));
      return;
    }
    // One readiness event may stand for many waiting connections: take up to a backlog's worth (bpo-27906).
    // pauseServing() from a protocol factory stops the batch: the rest waits in the backlog.
    for (let i = 0; i < this.#backlog && !this.#paused; i++) {
      let accepted: [number, native.SocketAddress | null] | null;
      try {
        accepted = native.accept(this.fd);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'ECONNABORTED' || code === 'EINTR') return;
        if (reportAcceptError(this, loop, err) && this.#poll !== null && !this.#closed) {
          // Linux keeps reporting the fd as ready: stop watching it for a while instead of spinning.
          native.pollUpdate(this.#poll, 0);
          this.#retry = loop.callLater(ACCEPT_RETRY_DELAY, () => this.#watch());
        }
        return;
      }
      if (accepted === null) return;
      const [fd, peer] = accepted;
      try {
        server._accept(this, fd, (peer ?? null) as Address | null);
      } catch (err) {
        // Never let one connection's failure escape into Node as an uncaught exception.
        closeConnected(fd);
        reportAcceptError(this, loop, err);
      }
      if (this.#closed) return;
    }
  };

  #stopPolling(): void {
    this.#retry?.cancel();
    this.#retry = null;
    if (this.#poll !== null) {
      native.pollStop(this.#poll);
      this.#poll = null;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopPolling();
    const loop = this.server?._loop;
    if (loop !== undefined) removeUnixSocketFile(loop, this.#cleanup);
    try {
      native.close(this.fd);
    } catch {
      // closed behind our back: nothing left to release
    }
  }
}

/**
 * @internal A listening `net.Server` (no native addon, a cluster worker sharing the primary's socket, or a
 * `net.Server` handed in as `sock`). Connections that arrive before serving starts wait, paused, until it does.
 */
export class NodeListener implements Listener {
  readonly netServer: net.Server;
  readonly unix: boolean;
  server: Server | null = null;
  #serving = false;
  #paused = false;
  #closed = false;
  #queue: net.Socket[] = [];
  #lastResourceReport = -Infinity;
  readonly #cleanup: UnixCleanup | null;

  /**
   * @param netServer - a listening server; the listener owns it (its other 'connection' listeners are removed).
   * @param options - `unix`, and `cleanup` (the path and inode to remove at close).
   */
  constructor(netServer: net.Server, options: { unix: boolean; cleanup?: UnixCleanup | null }) {
    this.netServer = netServer;
    this.unix = options.unix;
    this.#cleanup = options.cleanup ?? null;
    // What net.createServer({pauseOnConnect, allowHalfOpen}) would have set: no reading before connectionMade,
    // and half-closes decided by the protocol.
    Object.assign(netServer, { pauseOnConnect: true, allowHalfOpen: true });
    netServer.removeAllListeners('connection');
    netServer.on('connection', this.#onConnection);
    netServer.on('error', this.#onError);
    netServer.unref();
  }

  sockname(): Address | null {
    return fromNodeAddress(this.netServer.address());
  }

  view(): TransportSocket {
    return new TransportSocket(this.netServer, { sockname: this.sockname() });
  }

  start(): void {
    if (this.#closed || this.#serving) return;
    this.#serving = true;
    this.#flush();
  }

  /**
   * A Node listening handle cannot stop accepting: while paused, Node still accepts, and the connections wait
   * here, unread, as they do before serving starts.
   */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#serving) this.#flush();
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#serving && !this.#paused) this.#hand(this.#queue.shift() as net.Socket);
  }

  readonly #onConnection = (sock: net.Socket): void => {
    if (this.#closed) {
      sock.destroy();
      return;
    }
    if (!this.#serving || this.#paused) {
      this.#queue.push(sock);
      return;
    }
    this.#hand(sock);
  };

  #hand(sock: net.Socket): void {
    const server = this.server;
    if (server === null || server._loop.isClosed()) {
      sock.destroy();
      return;
    }
    try {
      server._accept(this, sock, null);
    } catch (err) {
      // Never let one connection's failure escape into Node as an uncaught exception.
      sock.destroy();
      reportAcceptError(this, server._loop, err);
    }
  }

  readonly #onError = (err: Error): void => {
    const loop = this.server?._loop;
    if (loop === undefined || loop.isClosed()) return;
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && RESOURCE_ERRORS.has(code)) {
      // libuv already sheds connections on EMFILE; a Node listening handle cannot pause, so report at most once
      // per retry delay instead of once per refused connection.
      const now = loop.time();
      if (now - this.#lastResourceReport < ACCEPT_RETRY_DELAY) return;
      this.#lastResourceReport = now;
    }
    reportAcceptError(this, loop, err);
  };

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#serving = false;
    const loop = this.server?._loop;
    if (loop !== undefined) removeUnixSocketFile(loop, this.#cleanup);
    this.netServer.close();
    for (const sock of this.#queue) sock.destroy();
    this.#queue = [];
  }
}

/**
 * A server listening on one or more sockets (asyncio's `Server`), returned by `loop.createServer()` and
 * `loop.createUnixServer()`.
 *
 * `close()` stops listening; connections already accepted stay open until they end (or `closeClients()` /
 * `abortClients()` ends them). `waitClosed()` returns once the server is closed AND its last connection is gone.
 * `await using server = await loop.createServer(...)` closes it and waits at the end of the block.
 */
export class Server implements TransportServer, AsyncDisposable {
  /** @internal */
  readonly _loop: BaseEventLoop;
  /** @internal `null` once closed. */
  _listeners: Listener[] | null;
  /** @internal the live connections. */
  readonly _clients = new Set<Transport>();
  /** @internal futures of `waitClosed()` callers; `null` once woken (closed and no connection left). */
  _waiters: Future<void>[] | null = [];
  /** @internal */
  readonly _protocolFactory: ProtocolFactory;
  /** @internal */
  readonly _backlog: number;
  /** @internal */
  readonly _sslContext: SSLContextLike | null;
  /** @internal seconds */
  readonly _sslHandshakeTimeout: number | null;
  /** @internal seconds */
  readonly _sslShutdownTimeout: number | null;
  /** @internal */
  _serving = false;
  /** @internal `pauseServing()` is in effect. */
  _acceptPaused = false;
  /** @internal */
  _servingForeverFut: Future<void> | null = null;
  /**
   * @internal The context connections are accepted in: a copy of the one serving started in (asyncio's accept
   * callback is a handle made there), so protocols see the context variables set before, and no current task.
   */
  _context: Context | null = null;

  /** @internal Servers are made by `loop.createServer()` and `loop.createUnixServer()`. */
  constructor(
    loop: BaseEventLoop,
    listeners: Listener[],
    protocolFactory: ProtocolFactory,
    sslContext: SSLContextLike | null,
    backlog: number,
    sslHandshakeTimeout: number | null,
    sslShutdownTimeout: number | null,
  ) {
    this._loop = loop;
    this._listeners = listeners;
    this._protocolFactory = protocolFactory;
    this._sslContext = sslContext;
    this._backlog = backlog;
    this._sslHandshakeTimeout = sslHandshakeTimeout;
    this._sslShutdownTimeout = sslShutdownTimeout;
    for (const l of listeners) l.server = this;
  }

  /** The loop the server runs on. */
  getLoop(): BaseEventLoop {
    return this._loop;
  }

  /** True while the server accepts new connections. */
  isServing(): boolean {
    return this._serving;
  }

  /**
   * Read-only views of the listening sockets (asyncio's `TransportSocket`s); empty once the server is closed.
   */
  get sockets(): readonly TransportSocket[] {
    const listeners = this._listeners;
    return listeners === null ? [] : Object.freeze(listeners.map((l) => l.view()));
  }

  /**
   * Stops listening: the listening sockets are closed (a Unix socket file that is still ours is removed);
   * connections already accepted stay open. A pending `serveForever()` is cancelled. Idempotent.
   */
  close(): void {
    const listeners = this._listeners;
    if (listeners === null) return;
    this._listeners = null;
    for (const l of listeners) l.close();
    this._serving = false;
    const fut = this._servingForeverFut;
    if (fut !== null && !fut.done()) {
      fut.cancel();
      this._servingForeverFut = null;
    }
    if (this._clients.size === 0) this._wakeup();
  }

  /** Closes every connection of this server gracefully (each flushes, then closes). */
  closeClients(): void {
    for (const t of [...this._clients]) t.close();
  }

  /** Closes every connection of this server at once, dropping what they have buffered. */
  abortClients(): void {
    for (const t of [...this._clients]) (t as Transport & { abort(): void }).abort();
  }

  /**
   * Starts accepting connections (for a server made with `startServing: false`); idempotent. Resolves after one
   * loop iteration, once the listening sockets are being watched.
   */
  async startServing(): Promise<void> {
    this._startServing();
    await sleep(0);
  }

  /**
   * Stops accepting new connections without closing the listening sockets (accept backpressure, e.g. for a
   * connection limit): connections that arrive meanwhile wait in the kernel's listen queue (up to `backlog`; past
   * it the kernel refuses or drops them) and are accepted at `resumeServing()`. Connections already accepted go
   * on. `isServing()` stays true. Idempotent; also before serving starts (serving then starts paused), and a no-op
   * once closed.
   *
   * With a `net.Server` underneath (no native addon, a `node:cluster` worker, a `net.Server` passed as `sock`), Node
   * keeps accepting on its own: its connections are held, unread and without a protocol, until `resumeServing()`,
   * so they still take a file descriptor each.
   */
  pauseServing(): void {
    const listeners = this._listeners;
    if (listeners === null || this._acceptPaused) return;
    this._acceptPaused = true;
    for (const l of listeners) l.pause();
  }

  /** Accepts connections again after `pauseServing()`, the queued ones first. Idempotent. */
  resumeServing(): void {
    const listeners = this._listeners;
    if (listeners === null || !this._acceptPaused) return;
    this._acceptPaused = false;
    for (const l of listeners) l.resume();
  }

  /** True while `pauseServing()` is in effect. */
  isServingPaused(): boolean {
    return this._acceptPaused && this._listeners !== null;
  }

  /**
   * Accepts connections until cancelled (asyncio's `serve_forever`): cancelling the awaiting task closes the
   * server and waits for its connections to end; `close()` ends it too, with a `CancelledError`.
   *
   * @throws RuntimeError when the server is closed or another `serveForever()` is already running;
   * CancelledError when cancelled or closed.
   */
  async serveForever(): Promise<void> {
    if (this._servingForeverFut !== null) {
      throw new RuntimeError(`server ${inspect(this)} is already being awaited on serveForever()`);
    }
    if (this._listeners === null) throw new RuntimeError(`server ${inspect(this)} is closed`);
    this._startServing();
    const fut = this._loop.createFuture<void>();
    this._servingForeverFut = fut;
    try {
      await fut;
    } catch (error) {
      if (isCancelledError(error)) {
        try {
          this.close();
          await this.waitClosed();
        } finally {
          // eslint-disable-next-line no-unsafe-finally
          throw error;
        }
      }
      throw error;
    } finally {
      if (this._servingForeverFut === fut) this._servingForeverFut = null;
    }
  }

  /**
   * Waits until the server is closed and every connection it accepted is gone (Python 3.12.1+ semantics): it
   * waits while the server listens, and while connections remain after `close()`.
   */
  async waitClosed(): Promise<void> {
    const waiters = this._waiters;
    if (waiters === null) return;
    const waiter = this._loop.createFuture<void>();
    waiters.push(waiter);
    await waiter;
  }

  /** `await using`: closes the server and waits for it (`close()` then `waitClosed()`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.waitClosed();
  }

  /** @internal */
  _startServing(): void {
    if (this._serving || this._listeners === null) return;
    this._serving = true;
    this._context ??= copyContext();
    for (const l of this._listeners) l.start(this._backlog);
    if (this._loop._debug) this._loop.logger.info({ server: inspect(this) }, 'Server is serving');
  }

  /** @internal Whether accepted connections stay on their fd (FdTransport) rather than go to a net.Socket. */
  _onFd(): boolean {
    return this._sslContext === null && fdTransportEnabled();
  }

  /** @internal A transport of this server was made. */
  _attach(transport: Transport): void {
    this._clients.add(transport);
  }

  /** @internal A transport of this server lost its connection. */
  _detach(transport: Transport): void {
    this._clients.delete(transport);
    if (this._clients.size === 0 && this._listeners === null) this._wakeup();
  }

  /** @internal */
  _wakeup(): void {
    const waiters = this._waiters;
    this._waiters = null;
    if (waiters === null) return;
    for (const w of waiters) if (!w.done()) w.setResult(undefined);
  }

  /**
   * @internal asyncio's `_accept_connection2`: a protocol for the accepted socket and a transport binding them.
   * Nothing here can stop the server: a failing protocol factory or TLS set-up closes that connection alone.
   */
  _accept(listener: Listener, accepted: net.Socket | number, peername: Address | null): void {
    if (this._loop.isClosed()) {
      closeConnected(accepted);
      return;
    }
    // The protocol factory and the transport's set-up run in the server's context, whatever Node calls us in.
    const outer = enterScope(this._context);
    try {
      this._acceptInContext(listener, accepted, peername);
    } finally {
      exitScope(outer);
    }
  }

  /** @internal The body of {@link Server._accept}, in the server's context. */
  _acceptInContext(listener: Listener, accepted: net.Socket | number, peername: Address | null): void {
    const loop = this._loop;
    if (loop._debug) {
      loop.logger.debug({ server: inspect(this), peername: formatAddress(peername) }, 'got a new connection');
    }
    const extra: Partial<ExtraInfo> = {};
    if (peername !== null) extra.peername = peername;
    if (listener.unix) {
      const name = listener.sockname();
      if (name !== null) extra.sockname = name;
      if (peername === null && !native.nativeAvailable()) extra.peername = '';
    }
    let protocol: BaseProtocol;
    try {
      protocol = this._protocolFactory();
    } catch (exception) {
      closeConnected(accepted);
      loop.callExceptionHandler({ message: 'Error on transport creation for incoming connection', exception });
      return;
    }
    if (typeof accepted === 'number' && this._onFd()) {
      let family = AF_INET;
      if (listener.unix) family = AF_UNIX;
      else if (Array.isArray(peername) && peername.length === 4) family = AF_INET6;
      try {
        new FdTransport(loop, accepted, protocol, { server: this, extra, family });
      } catch (exception) {
        // The fd is still ours when the transport could not be made (as for a net.Socket below).
        closeConnected(accepted);
        loop.callExceptionHandler({
          message: 'Error on transport creation for incoming connection',
          exception,
          protocol,
        });
      }
      return;
    }
    if (typeof accepted === 'number' && !listener.unix && extra.sockname === undefined) {
      const name = acceptedSockname(listener, accepted);
      if (name !== null) extra.sockname = name;
    }
    // A plain connection stays on its fd (FdTransport, above); TLS needs a net.Socket under node:tls.
    const sock = typeof accepted === 'number' ? netSocketOf(accepted) : accepted;
    const ssl = this._sslContext !== null;
    // A TLS transport whose handshake fails closes itself; the waiter only reports the failure, which asyncio does
    // in debug mode alone. So it is made in debug mode only (a future and a loop iteration less per connection).
    const waiter = ssl && loop._debug ? loop.createFuture<unknown>() : null;
    let transport: Transport;
    try {
      transport = ssl
        ? tlsTransportFactory()(loop, protocol, sock, this._sslContext, {
            serverSide: true,
            serverHostname: null,
            sslHandshakeTimeout: this._sslHandshakeTimeout,
            sslShutdownTimeout: this._sslShutdownTimeout,
            waiter,
            server: this,
            extra,
          })
        : new SocketTransport(loop, sock, protocol, { server: this, extra });
    } catch (exception) {
      // The fd is the net.Socket's now: closing it by number could close a descriptor reused since.
      sock.destroy();
      loop.callExceptionHandler({
        message: 'Error on transport creation for incoming connection',
        exception,
        protocol,
      });
      return;
    }
    if (waiter === null) return;
    waiter.addDoneCallback(() => {
      if (waiter.cancelled()) {
        transport.close();
        return;
      }
      const exception = waiter.exception();
      if (exception === null || exception === undefined) return;
      transport.close();
      // A failed handshake is the client's business: asyncio only tells in debug mode.
      loop.callExceptionHandler({
        message: 'Error on transport creation for incoming connection',
        exception,
        protocol,
        transport,
      });
    });
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const socks = this._listeners === null ? [] : this._listeners.map((l) => inspect(l.view()));
    return `<Server sockets=[${socks.join(', ')}]>`;
  }
}
