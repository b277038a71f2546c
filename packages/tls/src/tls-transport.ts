/**
 * The TLS transport (asyncio's `SSLProtocol` with its `_SSLProtocolTransport`, on `node:tls`): a `Transport`
 * whose bytes are encrypted by a `tls.TLSSocket` wrapped around a connected socket.
 *
 * The connection goes through the states of asyncio's SSL protocol, and only forward:
 * `UNWRAPPED -> DO_HANDSHAKE -> WRAPPED -> FLUSHING -> SHUTDOWN -> UNWRAPPED` (any state may fall back to
 * `UNWRAPPED` when the connection is lost or aborted). `FLUSHING` waits for buffered data to be written before
 * close_notify is sent; `SHUTDOWN` waits for the peer's close_notify, at most `sslShutdownTimeout` seconds.
 *
 * The protocol sees asyncio's grammar: `connectionMade` only once the handshake has completed (never if it
 * fails: the waiter gets the error instead), then `dataReceived* [eofReceived] connectionLost`.
 *
 * @module
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { inspect } from 'node:util';
import {
  ConnectionAbortedError,
  ConnectionResetError,
  FlowControlTransport,
  InvalidArgTypeError,
  RuntimeError,
  TimeoutError,
  TransportSocket,
  ValueError,
  checkBytes,
  captureContext,
  connectionError,
  enterOwnScope,
  exitOwnScope,
  ignoreError,
  isBufferedProtocol,
  protocolBuffer,
  writelinesItems,
} from '@loopwork/core';
import type {
  Address,
  BaseEventLoop,
  BaseProtocol,
  BufferedProtocol,
  Context,
  ExtraInfo,
  Future,
  Protocol,
  TimerHandle,
  Transport,
  TransportServer,
} from '@loopwork/core';
import { NotImplementedError } from './errors.js';
import type { SSLContext } from './ssl-context.js';
import { CERT_NONE, defaultClientContext, isSSLContext } from './ssl-context.js';
import { checkSslHandshakeTimeout, checkSslShutdownTimeout } from './ssl-options.js';

/** The states of a TLS connection (asyncio's `SSLProtocolState`). */
export type SSLProtocolState = 'UNWRAPPED' | 'DO_HANDSHAKE' | 'WRAPPED' | 'FLUSHING' | 'SHUTDOWN';

/** Where the application protocol is in its grammar (asyncio's `AppProtocolState`). */
type AppState = 'INIT' | 'CON_MADE' | 'EOF' | 'CON_LOST';

/** Options of {@link createTLSTransport}. */
export interface TLSTransportOptions {
  /** True for the server side of the handshake (default false). */
  serverSide?: boolean;
  /** The host name the server's certificate is checked against and sent with SNI (client side). */
  serverHostname?: string | null;
  /** Seconds the handshake may take (default 60); a connection that takes longer is aborted. */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for the peer's close_notify after ours (default 30), then the connection is aborted. */
  sslShutdownTimeout?: number | null;
  /** Completed once the handshake is done and `connectionMade` has run, or failed with the handshake's error. */
  waiter?: Future<unknown> | null;
  /** A server that counts the connection from now until it is lost. */
  server?: TransportServer | null;
  /**
   * Extra information of the underlying connection (`peername`, `sockname`, `socket`) when `socket` cannot tell
   * (a Unix socket, or a stream that is not a socket); keys given here win over what the socket says.
   */
  extra?: Partial<ExtraInfo> | null;
  /** False for `startTls`: the protocol already saw `connectionMade` (default true). */
  callConnectionMade?: boolean;
}

/** The default high-water mark of a TLS transport's write buffer (asyncio's `FLOW_CONTROL_HIGH_WATER_SSL_WRITE`). */
const SSL_WRITE_HIGH_WATER = 512 * 1024;
/** After this many writes to a closed transport, each further write logs a warning (asyncio's threshold). */
const LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5;

/** The errors a peer's normal goodbye may leave behind once close_notify was exchanged. */
const QUIET_CLOSE_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ERR_SSL_APPLICATION_DATA_AFTER_CLOSE_NOTIFY',
  'ERR_SSL_PROTOCOL_IS_SHUTDOWN',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
]);

const ALLOWED: Record<SSLProtocolState, readonly SSLProtocolState[]> = {
  UNWRAPPED: ['DO_HANDSHAKE'],
  DO_HANDSHAKE: ['WRAPPED'],
  WRAPPED: ['FLUSHING'],
  FLUSHING: ['SHUTDOWN'],
  SHUTDOWN: [],
};

/**
 * Wraps a connected socket in TLS and returns the TLS transport at once; the handshake runs in the background.
 * This is the hand-off `createServer`, `createConnection`, `connectAcceptedSocket` and `startTls` use.
 *
 * `protocol.connectionMade(transport)` is called once the handshake completes; then `waiter` (if given) gets
 * its result. If the handshake fails or takes longer than `sslHandshakeTimeout`, the socket is destroyed, the
 * protocol is not called at all, and `waiter` fails with the error (a `ConnectionAbortedError` for the
 * timeout, Node's TLS error otherwise).
 *
 * @param loop - the event loop.
 * @param protocol - the application protocol.
 * @param socket - a connected `net.Socket` (or any Duplex carrying the TLS records); it belongs to the
 * transport from now on.
 * @param sslcontext - the context; `null` means `createDefaultContext()` on a client (host name checking only
 * with a `serverHostname`).
 * @param options - `serverSide`, `serverHostname`, `sslHandshakeTimeout`/`sslShutdownTimeout` in seconds,
 * `waiter`, `server`, `extra`, `callConnectionMade`.
 * @returns the transport (handshaking).
 * @throws TypeError for a `sslcontext` that is not an `SSLContext`; ValueError for a bad timeout, a server
 * without a context, a context of the wrong side, or host name checking without `serverHostname`.
 */
export function createTLSTransport(
  loop: BaseEventLoop,
  protocol: BaseProtocol,
  socket: Socket | Duplex,
  sslcontext: SSLContext | null,
  options: TLSTransportOptions = {},
): TLSTransport {
  const serverSide = options.serverSide === true;
  const serverHostname = serverSide ? null : options.serverHostname || null;
  let context: SSLContext;
  if (sslcontext === null || sslcontext === undefined) {
    if (serverSide) throw new ValueError('Server side SSL needs a valid SSLContext');
    context = defaultClientContext(serverHostname !== null);
  } else if (!isSSLContext(sslcontext)) {
    throw new InvalidArgTypeError(
      `sslcontext is expected to be an instance of ssl.SSLContext, got ${inspect(sslcontext, { depth: 0 })}`,
    );
  } else context = sslcontext;
  const handshakeTimeout = checkSslHandshakeTimeout(options.sslHandshakeTimeout);
  const shutdownTimeout = checkSslShutdownTimeout(options.sslShutdownTimeout);
  // Built before the socket is touched: a bad context throws here with the socket still the caller's.
  const tlsOptions = serverSide ? context._serverOptions() : context._clientOptions(socket, serverHostname);
  const extra = baseExtra(socket, options.extra ?? null, context);
  const gone = socket.destroyed;
  // asyncio's TLS runs on a socket transport, which turns Nagle's algorithm off (the handshake's flights, the
  // session tickets and close_notify are small writes that would otherwise wait for the peer's delayed ACK).
  // Node ignores this on a Unix socket.
  if (!gone && socket instanceof Socket) socket.setNoDelay(true);
  const sslObject = serverSide ? new tls.TLSSocket(socket, tlsOptions) : tls.connect(tlsOptions);
  const transport = new TLSTransport(loop, protocol, sslObject, context, {
    serverSide,
    serverHostname,
    handshakeTimeout,
    shutdownTimeout,
    waiter: options.waiter ?? null,
    server: options.server ?? null,
    extra,
    callConnectionMade: options.callConnectionMade !== false,
  });
  if (gone) {
    // A client that connected and left before we got the socket: Node would never say anything more about it.
    loop.callSoon(() => transport._onHandshakeComplete(new ConnectionResetError('Connection lost')));
  }
  return transport;
}

/** @internal What `createTLSTransport` hands to the constructor, checked. */
export interface TLSTransportInit {
  serverSide: boolean;
  serverHostname: string | null;
  handshakeTimeout: number;
  shutdownTimeout: number;
  waiter: Future<unknown> | null;
  server: TransportServer | null;
  extra: Partial<Record<string, unknown>>;
  callConnectionMade: boolean;
}

/**
 * A TLS connection as a `Transport` (made by {@link createTLSTransport}, `createServer`/`createConnection`
 * with `ssl`, and `loop.startTls`).
 *
 * - `write()` encrypts and sends; flow control calls `pauseWriting()`/`resumeWriting()` around the high- and
 *   low-water marks of the plaintext not yet handed to the kernel.
 * - `close()` flushes, sends close_notify and waits up to `sslShutdownTimeout` seconds for the peer's; then
 *   `connectionLost(null)` (or a `TimeoutError` "SSL shutdown timed out"). No data is delivered after `close()`.
 * - `writeEof()` throws `NotImplementedError` (TLS has no half-close); `canWriteEof()` is false. When the peer
 *   closes, `eofReceived()` is called and the transport then closes itself whatever it returns.
 * - `getExtraInfo()`: `sslcontext`, `peercert` (Node's `getPeerCertificate()` object, or `null`), `cipher`
 *   (`[name, version, secretBits]`), `compression` (`null`), `ssl_object` (the `tls.TLSSocket`), and from the
 *   underlying socket `peername`, `sockname`, `socket`.
 *
 * Errors of the connection itself (resets, TLS alerts, certificates) reach the protocol through
 * `connectionLost(exc)` and are logged only in debug mode, as asyncio treats `OSError`s; an exception thrown by
 * a protocol callback goes to the loop's exception handler and aborts the connection.
 */
export class TLSTransport extends FlowControlTransport implements Transport {
  /** @internal */
  _protocol: BaseProtocol;
  /** @internal */
  readonly _sslObject: tls.TLSSocket;
  /** @internal */
  readonly _sslcontext: SSLContext;
  /** @internal */
  readonly _serverSide: boolean;
  /** @internal */
  readonly _serverHostname: string | null;
  /** @internal seconds */
  readonly _handshakeTimeout: number;
  /** @internal seconds */
  readonly _shutdownTimeout: number;
  /** @internal */
  _state: SSLProtocolState = 'UNWRAPPED';
  /** @internal */
  _appState: AppState = 'INIT';
  /** @internal true once `close()` or `abort()` was called, or the connection is gone (`isClosing()`). */
  _closed = false;
  /** @internal reading paused by the protocol */
  _paused = false;
  /** @internal */
  _eofReceived = false;
  /** @internal */
  _lost = false;
  /** @internal writes after the connection was closed */
  _connLostWrites = 0;
  /**
   * @internal The context protocol callbacks run in: a copy of the one the transport was made in, never with a
   * current task; `null` while no context variable is in use (see `enterOwnScope`).
   */
  _context: Context | null = captureContext();
  /** @internal */
  _waiter: Future<unknown> | null;
  /** @internal */
  _server: TransportServer | null;
  /** @internal made by `baseExtra` for this transport alone, with every key it will ever have */
  readonly _extra: Partial<Record<string, unknown>>;
  /** @internal */
  readonly _callConnectionMade: boolean;
  /** @internal */
  _handshakeTimer: TimerHandle | null = null;
  /** @internal */
  _shutdownTimer: TimerHandle | null = null;
  /** @internal loop time the handshake started (debug mode). */
  _handshakeStart = 0;
  /** @internal the error the connection will be reported lost with, once known */
  _lostWith: Error | null = null;
  /** @internal */
  _buffered: boolean;
  /** @internal received chunks held back while the loop is not running or reading is paused mid-delivery */
  _pending: Buffer[] = [];
  /** @internal EOF arrived behind `_pending` */
  _pendingEnd = false;
  /** @internal */
  _flushScheduled = false;

  /** @internal Use {@link createTLSTransport}. */
  constructor(
    loop: BaseEventLoop,
    protocol: BaseProtocol,
    sslObject: tls.TLSSocket,
    sslcontext: SSLContext,
    init: TLSTransportInit,
  ) {
    super(loop);
    this._protocol = protocol;
    this._buffered = isBufferedProtocol(protocol);
    this._sslObject = sslObject;
    this._sslcontext = sslcontext;
    this._serverSide = init.serverSide;
    this._serverHostname = init.serverHostname;
    this._handshakeTimeout = init.handshakeTimeout;
    this._shutdownTimeout = init.shutdownTimeout;
    this._waiter = init.waiter;
    this._server = init.server;
    this._extra = init.extra;
    this._callConnectionMade = init.callConnectionMade;
    this._highWater = SSL_WRITE_HIGH_WATER;
    this._lowWater = SSL_WRITE_HIGH_WATER / 4;
    this._onData = this._onData.bind(this);
    this._onDiscard = this._onDiscard.bind(this);
    this._onSecure = this._onSecure.bind(this);
    this._onError = this._onError.bind(this);
    this._onEndEvent = this._onEndEvent.bind(this);
    this._onFinish = this._onFinish.bind(this);
    this._onClose = this._onClose.bind(this);
    this._onWriteDone = this._onWriteDone.bind(this);
    this._flushPending = this._flushPending.bind(this);
    this._server?._attach(this);
    this._startHandshake();
  }

  /** @internal asyncio's SSL transports buffer more before pausing the protocol (512 KiB, low 128 KiB). */
  override _defaultHighWater(): number {
    return SSL_WRITE_HIGH_WATER;
  }

  // ---- the state machine ----------------------------------------------------------------------------------

  /** @internal @throws RuntimeError `cannot switch state from X to Y` for a move the grammar forbids. */
  _setState(state: SSLProtocolState): void {
    if (state !== 'UNWRAPPED' && !ALLOWED[this._state].includes(state)) {
      throw new RuntimeError(`cannot switch state from ${this._state} to ${state}`);
    }
    this._state = state;
  }

  /** @internal */
  _startHandshake(): void {
    this._setState('DO_HANDSHAKE');
    if (this._loop.getDebug()) this._handshakeStart = this._loop.time();
    if (Number.isFinite(this._handshakeTimeout)) {
      this._handshakeTimer = this._loop.callLater(this._handshakeTimeout, () => this._checkHandshakeTimeout());
    }
    const s = this._sslObject;
    s.once(this._serverSide ? 'secure' : 'secureConnect', this._onSecure);
    s.on('error', this._onError);
    s.on('end', this._onEndEvent);
    s.on('finish', this._onFinish);
    s.on('close', this._onClose);
  }

  // Node calls the socket's listeners below in whatever scope is current, even from inside a task's write(): they
  // run in the transport's own context (no current task), and the caller's comes back after.

  /** @internal The socket's `'secure'` (server) or `'secureConnect'` (client). */
  _onSecure(): void {
    this._inOwnScope(this._onHandshakeComplete, null);
  }

  /** @internal The socket's `'error'`. */
  _onError(err: Error): void {
    this._inOwnScope(this._onSocketError, err);
  }

  /** @internal The socket's `'end'`. */
  _onEndEvent(): void {
    this._inOwnScope(this._onEnd, undefined);
  }

  /** @internal The socket's `'finish'`: close_notify is written. */
  _onFinish(): void {
    if (this._state === 'FLUSHING') this._setState('SHUTDOWN');
  }

  /** @internal The socket's `'close'`. */
  _onClose(): void {
    this._inOwnScope(this._connectionLost, this._lostWith);
  }

  /**
   * @internal Takes the transport's listeners off the socket once the connection is gone. Node keeps a closed
   * socket's objects alive until its handles' weak callbacks run in a full GC; without this, the transport, its
   * protocol and all they hold would be kept with them, copied by every scavenge and promoted. A no-op `'error'`
   * listener stays, so that an error Node still emits cannot be thrown.
   */
  _detachSocket(): void {
    const s = this._sslObject;
    s.removeListener(this._serverSide ? 'secure' : 'secureConnect', this._onSecure);
    s.removeListener('error', this._onError);
    s.removeListener('end', this._onEndEvent);
    s.removeListener('finish', this._onFinish);
    s.removeListener('close', this._onClose);
    s.removeListener('data', this._onData);
    s.removeListener('data', this._onDiscard);
    s.on('error', ignoreError);
  }

  /** @internal */
  _checkHandshakeTimeout(): void {
    this._handshakeTimer = null;
    if (this._state !== 'DO_HANDSHAKE') return;
    const msg = `SSL handshake is taking longer than ${this._handshakeTimeout} seconds: aborting the connection`;
    this._onHandshakeComplete(new ConnectionAbortedError(msg));
  }

  /** @internal The handshake is over: with `exc` it failed. */
  _onHandshakeComplete(exc: Error | null): void {
    if (this._state !== 'DO_HANDSHAKE') return;
    if (this._handshakeTimer !== null) {
      this._handshakeTimer.cancel();
      this._handshakeTimer = null;
    }
    const s = this._sslObject;
    if (exc === null && this._serverSide) exc = this._verifyClient();
    if (exc !== null) {
      this._setState('UNWRAPPED');
      if (this._loop.getDebug()) {
        const what = exc.message.includes('certificate') ? ' on verifying the certificate' : '';
        this._loop.logger.debug({ err: exc, transport: this._describe() }, `SSL handshake failed${what}`);
      }
      this._wakeupWaiter(exc);
      this._forceClose(exc);
      return;
    }
    this._setState('WRAPPED');
    if (this._loop.getDebug()) {
      const ms = (this._loop.time() - this._handshakeStart) * 1e3;
      this._loop.logger.debug({ transport: this._describe() }, `SSL handshake took ${ms.toFixed(1)} ms`);
    }
    // A server that asks for no certificate gets none (and Node's call builds an object for nothing).
    const peercert = this._serverSide && this._sslcontext._verifyMode === CERT_NONE ? null : s.getPeerCertificate();
    const cipher = s.getCipher();
    this._extra.peercert = peercert !== null && Object.keys(peercert).length > 0 ? peercert : null;
    this._extra.cipher = cipher ? [cipher.name, cipher.version, secretBitsOf(cipher.name)] : null;
    this._extra.compression = null;
    this._extra.ssl_object = s;
    if (this._loop.isRunning()) this._handshakeDone();
    else if (this._loop.isClosed()) this._forceClose(null);
    // connectionMade runs in the loop, as asyncio's does: when it runs again.
    else this._loop.callSoon(() => this._handshakeDone());
  }

  /** @internal The protocol learns of the connection; reading starts. */
  _handshakeDone(): void {
    if (this._lost) return;
    const s = this._sslObject;
    if (this._callConnectionMade && this._appState === 'INIT') {
      this._appState = 'CON_MADE';
      try {
        this._protocol.connectionMade(this);
      } catch (error) {
        this._fatalError(error, 'Fatal error: protocol.connectionMade() call failed.');
        return;
      }
    } else if (this._appState === 'INIT') this._appState = 'CON_MADE';
    this._wakeupWaiter(null);
    if (this._closed) return;
    s.on('data', this._onData);
    // Whatever pauseReading()/resumeReading() said during the handshake holds from now on.
    if (this._paused) s.pause();
    else s.resume();
  }

  /** @internal A server checks the client's certificate itself: Node's verify callback accepts everything. */
  _verifyClient(): Error | null {
    const mode = this._sslcontext._verifyMode;
    if (mode === CERT_NONE) return null;
    const s = this._sslObject;
    const cert = s.getPeerCertificate();
    if (cert === null || Object.keys(cert).length === 0) {
      // CERT_REQUIRED already failed the handshake in OpenSSL when no certificate came.
      return null;
    }
    const handle = (s as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
    return handle?.verifyError?.() ?? null;
  }

  /** @internal */
  _wakeupWaiter(exc: Error | null): void {
    const w = this._waiter;
    if (w === null) return;
    this._waiter = null;
    if (w.cancelled() || w.done()) return;
    if (exc === null) w.setResult(undefined);
    else w.setException(exc);
  }

  // ---- reading --------------------------------------------------------------------------------------------

  /** @internal */
  _onData(chunk: Buffer): void {
    if (this._pending.length > 0 || !this._loop.isRunning()) {
      // asyncio reads nothing while its loop is not running: keep the bytes for when it runs again.
      this._pending.push(chunk);
      this._sslObject.pause();
      this._scheduleFlush();
      return;
    }
    this._inOwnScope(this._deliver, chunk);
  }

  /**
   * @internal Runs `fn` (a callback Node made) in the transport's own context, with no current task: protocol
   * callbacks see the context the transport was made in, and what they set stays the transport's own.
   */
  _inOwnScope<T>(fn: (this: TLSTransport, arg: T) => void, arg: T): void {
    const outer = enterOwnScope(this);
    try {
      fn.call(this, arg);
    } finally {
      exitOwnScope(this, outer);
    }
  }

  /** @internal */
  _deliver(chunk: Buffer): void {
    try {
      // No readMemoryUsed() here: node:tls allocates these chunks, as for its own servers, and V8 already
      // scavenges them by itself on their external memory; asking for more scavenges only added to the GC time.
      if (this._buffered) this._deliverBuffered(chunk);
      else (this._protocol as Protocol).dataReceived(chunk);
    } catch (error) {
      this._fatalError(error, 'Fatal error: protocol.dataReceived() call failed.');
    }
  }

  /** @internal */
  _scheduleFlush(): void {
    if (this._flushScheduled || this._loop.isClosed()) return;
    this._flushScheduled = true;
    this._loop.callSoon(this._flushPending);
  }

  /** @internal Delivers what was held back, then lets the socket flow again. */
  _flushPending(): void {
    this._flushScheduled = false;
    while (this._pending.length > 0 && !this._paused && this._state === 'WRAPPED') {
      this._deliver(this._pending.shift() as Buffer);
    }
    if (this._state !== 'WRAPPED') this._pending = [];
    if (this._pending.length > 0 || this._paused) return;
    if (this._pendingEnd) {
      this._pendingEnd = false;
      this._onEnd();
    } else if (this._state === 'WRAPPED') this._sslObject.resume();
  }

  /** @internal Copies `chunk` into the buffers a `BufferedProtocol` hands out. */
  _deliverBuffered(chunk: Buffer): void {
    const protocol = this._protocol as BufferedProtocol;
    let offset = 0;
    while (offset < chunk.length && !this._lost) {
      const buf = protocolBuffer(protocol, chunk.length - offset);
      const n = Math.min(buf.length, chunk.length - offset);
      buf.set(chunk.subarray(offset, offset + n));
      offset += n;
      protocol.bufferUpdated(n);
    }
  }

  /** @internal After `close()`: what still arrives is read (to see close_notify) and dropped. */
  _onDiscard(): void {}

  /** @internal The peer sent close_notify (or the socket reached EOF). */
  _onEnd(): void {
    if (this._state === 'DO_HANDSHAKE') {
      this._onHandshakeComplete(new ConnectionResetError('Connection lost'));
      return;
    }
    if (this._eofReceived) return;
    if (this._state === 'WRAPPED' && (this._pending.length > 0 || !this._loop.isRunning())) {
      // After the data held back, when the loop runs.
      this._pendingEnd = true;
      this._scheduleFlush();
      return;
    }
    this._eofReceived = true;
    // Also after close(), as asyncio does when the peer's close_notify answers ours.
    if (this._appState === 'CON_MADE') {
      this._appState = 'EOF';
      try {
        const keepOpen = (this._protocol as Protocol).eofReceived?.();
        if (keepOpen) {
          this._loop.logger.warn('returning true from eofReceived() has no effect when using ssl');
        }
      } catch (error) {
        this._fatalError(error, 'Error calling eofReceived()');
        return;
      }
    }
    this._startShutdown();
  }

  /** True while data is delivered to the protocol. */
  isReading(): boolean {
    return !this._paused && !this._closed;
  }

  /** Stops delivering data until `resumeReading()`; idempotent. */
  pauseReading(): void {
    if (this._closed || this._paused) return;
    this._paused = true;
    this._sslObject.pause();
    if (this._loop.getDebug()) this._loop.logger.debug({ transport: this._describe() }, 'pauses reading');
  }

  /** Resumes delivering data; idempotent. */
  resumeReading(): void {
    if (this._closed || !this._paused) return;
    this._paused = false;
    if (this._pending.length > 0 || this._pendingEnd) this._scheduleFlush();
    else if (this._state === 'WRAPPED') this._sslObject.resume();
    if (this._loop.getDebug()) this._loop.logger.debug({ transport: this._describe() }, 'resumes reading');
  }

  // ---- writing --------------------------------------------------------------------------------------------

  /**
   * Encrypts and sends `data`; never blocks. The bytes must not be changed until the write buffer has drained
   * past them (Node keeps a reference while they wait).
   *
   * @throws TypeError when `data` is not bytes.
   */
  write(data: Uint8Array): void {
    checkBytes(data);
    if (data.length === 0) return;
    if (this._state !== 'WRAPPED' && this._state !== 'DO_HANDSHAKE') {
      if (this._connLostWrites >= LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
        this._loop.logger.warn('SSL connection is closed');
      }
      this._connLostWrites++;
      return;
    }
    this._sslObject.write(data, this._onWriteDone);
    this._maybePauseProtocol();
  }

  /**
   * Writes a list of byte buffers as one batch.
   *
   * @throws TypeError when an item is not bytes; nothing of the list is written then.
   */
  writelines(list: Iterable<Uint8Array>): void {
    const items = writelinesItems(list);
    const s = this._sslObject;
    s.cork();
    try {
      for (const data of items) this.write(data);
    } finally {
      s.uncork();
    }
  }

  /** @internal */
  _onWriteDone(): void {
    if (this._protocolPaused) this._maybeResumeProtocol();
  }

  /** Plaintext bytes not yet encrypted and handed to the kernel. */
  getWriteBufferSize(): number {
    return this._sslObject.writableLength;
  }

  /** @throws NotImplementedError `SSL doesn't support half-closes`. */
  writeEof(): void {
    throw new NotImplementedError("SSL doesn't support half-closes");
  }

  /** False: TLS has no half-close. */
  canWriteEof(): boolean {
    return false;
  }

  // ---- closing --------------------------------------------------------------------------------------------

  /** True once the transport is closing or closed. */
  isClosing(): boolean {
    return this._closed;
  }

  /**
   * Flushes what is buffered, sends close_notify and waits for the peer's (at most `sslShutdownTimeout`
   * seconds); `connectionLost(null)` follows. No more data is delivered.
   */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    this._startShutdown();
  }

  /** Closes at once, dropping buffered data; `connectionLost(null)` follows. */
  abort(): void {
    this._closed = true;
    this._forceClose(null);
  }

  /** @internal asyncio's `_start_shutdown`. */
  _startShutdown(): void {
    if (this._state === 'FLUSHING' || this._state === 'SHUTDOWN' || this._state === 'UNWRAPPED') return;
    if (this._state === 'DO_HANDSHAKE') {
      this._forceClose(null);
      return;
    }
    this._setState('FLUSHING');
    this._closed = true;
    if (Number.isFinite(this._shutdownTimeout)) {
      this._shutdownTimer = this._loop.callLater(this._shutdownTimeout, () => this._checkShutdownTimeout());
    }
    const s = this._sslObject;
    // Keep reading (the protocol gets no more data) so that the peer's close_notify is seen.
    this._pending = [];
    s.removeListener('data', this._onData);
    s.on('data', this._onDiscard);
    s.resume();
    // Node writes what is buffered, then close_notify, then shuts the socket's write side down.
    s.end();
  }

  /** @internal */
  _checkShutdownTimeout(): void {
    this._shutdownTimer = null;
    if (this._state === 'FLUSHING' || this._state === 'SHUTDOWN') {
      this._forceClose(new TimeoutError('SSL shutdown timed out'));
    }
  }

  /** @internal Destroys the socket; the protocol's `connectionLost(exc)` follows. */
  _forceClose(exc: Error | null): void {
    if (this._lost) return;
    this._closed = true;
    if (this._lostWith === null) this._lostWith = exc;
    if (this._state !== 'UNWRAPPED') this._setState('UNWRAPPED');
    this._sslObject.destroy();
    this._connectionLost(this._lostWith);
  }

  /** @internal An error of the connection: never the exception handler's business (asyncio's OSError rule). */
  _onSocketError(error: Error): void {
    // A system error (`read ECONNRESET`) as Python's OSError (`ConnectionResetError`); TLS errors as they are.
    const err = connectionError(error);
    if (this._state === 'DO_HANDSHAKE') {
      this._onHandshakeComplete(err);
      return;
    }
    const code = (err as { code?: unknown }).code;
    const quiet =
      (this._eofReceived || this._state === 'FLUSHING' || this._state === 'SHUTDOWN' || this._lost) &&
      typeof code === 'string' &&
      QUIET_CLOSE_CODES.has(code);
    if (this._loop.getDebug()) {
      this._loop.logger.debug({ err, transport: this._describe() }, 'Fatal error on SSL transport');
    }
    if (this._lostWith === null && !quiet) this._lostWith = err;
  }

  /** @internal An exception from the protocol: reported to the loop, then the connection is aborted. */
  _fatalError(error: unknown, message: string): void {
    const exc = error instanceof Error ? error : new Error(String(error));
    this._loop.callExceptionHandler({ message, exception: exc, transport: this, protocol: this._protocol });
    this._forceClose(exc);
  }

  /** @internal Called once, when the socket is gone (closed, destroyed, or lost). */
  _connectionLost(exc: Error | null): void {
    if (this._lost) return;
    this._lost = true;
    this._closed = true;
    if (this._state !== 'UNWRAPPED') this._setState('UNWRAPPED');
    for (const t of [this._handshakeTimer, this._shutdownTimer]) t?.cancel();
    this._handshakeTimer = null;
    this._shutdownTimer = null;
    if (!this._sslObject.destroyed) this._sslObject.destroy();
    this._detachSocket();
    if (this._waiter !== null) this._wakeupWaiter(exc ?? new ConnectionResetError('Connection lost'));
    const callProtocol = this._appState === 'CON_MADE' || this._appState === 'EOF';
    this._appState = 'CON_LOST';
    const finish = (): void => {
      try {
        if (callProtocol) this._protocol.connectionLost(exc);
      } finally {
        const server = this._server;
        this._server = null;
        server?._detach(this);
      }
    };
    if (this._loop.isClosed()) {
      // Nobody runs callbacks any more; the server still has to forget the connection.
      const server = this._server;
      this._server = null;
      server?._detach(this);
      return;
    }
    this._loop.callSoon(finish);
  }

  // ---- the rest of the Transport --------------------------------------------------------------------------

  /**
   * TLS and connection details: `sslcontext`, `peercert`, `cipher`, `compression`, `ssl_object`, `peername`,
   * `sockname`, `socket`.
   */
  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    const v = this._extra[name];
    return v === undefined ? defaultValue : v;
  }

  /** Sets a new protocol. */
  setProtocol(protocol: BaseProtocol): void {
    this._protocol = protocol;
    this._buffered = isBufferedProtocol(protocol);
  }

  /** The current protocol. */
  getProtocol(): BaseProtocol {
    return this._protocol;
  }

  /** @internal */
  _describe(): string {
    const parts = ['TLSTransport', this._state, this._serverSide ? 'server' : 'client'];
    const peer = this._extra.peername;
    if (Array.isArray(peer)) parts.push(`peer=${String(peer[0])}:${String(peer[1])}`);
    if (this._closed) parts.push('closing');
    parts.push(`read=${this._paused ? 'paused' : 'polling'}`);
    parts.push(`bufsize=${this._lost ? 0 : this.getWriteBufferSize()}`);
    return `<${parts.join(' ')}>`;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._describe();
  }
}

const SECRET_BITS = new Map<string, number>();

/** {@link secretBits}, remembered per cipher (a server meets a handful, once per handshake each). */
function secretBitsOf(name: string): number {
  let bits = SECRET_BITS.get(name);
  if (bits === undefined) SECRET_BITS.set(name, (bits = secretBits(name)));
  return bits;
}

/** Python's `cipher()[2]`: the secret bits of a cipher, from its OpenSSL name. */
function secretBits(name: string): number {
  if (/CHACHA20/i.test(name)) return 256;
  const m = /(?:AES|CAMELLIA|ARIA)[-_]?(\d{3})/i.exec(name);
  if (m !== null) return Number(m[1]);
  if (/3DES|DES-CBC3/i.test(name)) return 112;
  if (/(?:^|[-_])AES(?:[-_]|$)/i.test(name)) return 128;
  return 0;
}

/**
 * A transport's extra information: `peername`, `sockname`, `socket` of the underlying socket, as the plain socket
 * transport shapes them, and `sslcontext`; the TLS keys are filled in by the handshake. Every key is in the
 * literal, so that all these objects share one shape (a spread, or keys added later, cost a few µs per
 * connection).
 */
function baseExtra(
  socket: Socket | Duplex,
  given: Partial<ExtraInfo> | null,
  sslcontext: SSLContext,
): Partial<Record<string, unknown>> {
  const extra: Partial<Record<string, unknown>> = {
    peername: undefined,
    sockname: undefined,
    socket: undefined,
    sslcontext,
    peercert: undefined,
    cipher: undefined,
    compression: undefined,
    ssl_object: undefined,
  };
  if (socket instanceof Socket) {
    const known: { sockname?: Address | null; peername?: Address | null } = {};
    if (given?.sockname !== undefined) known.sockname = given.sockname;
    if (given?.peername !== undefined) known.peername = given.peername;
    const view = new TransportSocket(socket, known);
    // Read now, as asyncio does: they stay readable after the connection is closed. An address the caller gave
    // (a server's accept() returns the peer's) is not asked of the kernel again.
    extra.sockname = known.sockname !== undefined ? known.sockname : view.getsockname();
    extra.peername = known.peername !== undefined ? known.peername : view.getpeername();
    extra.socket = view;
  }
  if (given !== null) for (const key of Object.keys(given)) extra[key] = given[key as keyof ExtraInfo];
  extra.sslcontext = sslcontext;
  return extra;
}
