/**
 * `loop.startTls()`: upgrades a live connection to TLS (asyncio's `loop.start_tls`), for STARTTLS-style
 * protocols.
 *
 * A plain `SocketTransport` hands its socket over with `_detach()` and the TLS transport wraps that socket
 * directly (no copy on the way). Any other stream transport (a TLS transport, for TLS inside TLS, or a transport
 * without a Node socket) is wrapped through a Duplex stream fed by a protocol installed on it, which is how
 * asyncio layers its SSL protocol on the old transport.
 *
 * @module
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { inspect } from 'node:util';
import { InvalidArgTypeError, Protocol, checkOptions, extendEventLoop } from '@loopwork/core';
import type { BaseEventLoop, BaseProtocol, ExtraInfo, Transport, TransportServer } from '@loopwork/core';
import { isSSLContext } from './ssl-context.js';
import type { SSLContext } from './ssl-context.js';
import { checkSslHandshakeTimeout, checkSslShutdownTimeout } from './ssl-options.js';
import { createTLSTransport } from './tls-transport.js';
import type { TLSTransport } from './tls-transport.js';

/** The keys of {@link StartTlsOptions}. */
const START_TLS_KEYS = ['serverSide', 'serverHostname', 'sslHandshakeTimeout', 'sslShutdownTimeout'];

/** Options of `loop.startTls()`. */
export interface StartTlsOptions {
  /** True to take the server side of the handshake (default false). */
  serverSide?: boolean;
  /** The host name to check the server's certificate against and to send with SNI (client side). */
  serverHostname?: string | null;
  /** Seconds the handshake may take (default 60). */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for the peer's close_notify when closing (default 30). */
  sslShutdownTimeout?: number | null;
}

declare module '@loopwork/core' {
  interface BaseEventLoop {
    /**
     * Upgrades an existing connection to TLS (asyncio's `loop.start_tls`) and returns the new transport once the
     * handshake has completed; the protocol must use it from then on, and the old transport must never be used
     * again. A socket transport is detached at once (it reports `isClosing()`, and closing it does nothing to
     * the TLS connection); any other transport goes on carrying the TLS records underneath, as in asyncio.
     * `protocol.connectionMade` is not called again; the protocol may receive data before this returns. On the
     * server side, bytes a stream's protocol received but its reader has not read yet (a ClientHello that came
     * right behind the last plain line) go to the TLS layer, as in asyncio since gh-142352.
     *
     * @param transport - a stream transport, e.g. from `createConnection` or a server's `connectionMade`.
     * @param protocol - the protocol that will receive the decrypted data.
     * @param sslcontext - an `SSLContext`.
     * @param options - `serverSide`, `serverHostname`, `sslHandshakeTimeout`/`sslShutdownTimeout` in seconds.
     * @returns the TLS transport.
     * @throws TypeError `sslcontext is expected to be an instance of ssl.SSLContext, got …`, or when the transport
     * cannot be upgraded; the handshake's error (the connection is then closed); `ConnectionAbortedError` when
     * the handshake takes longer than `sslHandshakeTimeout`.
     * @example
     * ```ts
     * transport.write(Buffer.from('220 go ahead\r\n'));
     * const tlsTransport = await loop.startTls(transport, protocol, serverContext, { serverSide: true });
     * ```
     */
    startTls(
      transport: Transport,
      protocol: BaseProtocol,
      sslcontext: SSLContext,
      options?: StartTlsOptions,
    ): Promise<Transport>;
  }
}

/**
 * A protocol that reads ahead of its user, as a stream's `StreamReaderProtocol` does: on the server side,
 * `startTls` takes the bytes it still holds unread, which may be the client's first TLS records (a ClientHello
 * that came in the same segment as a PROXY header or a STARTTLS line), and hands them to the TLS layer before
 * what the socket has (asyncio's gh-142352).
 */
interface ReadAheadProtocol {
  /** @internal Removes and returns the bytes received but not read yet, or `null`. */
  _takeUnread(): Buffer | null;
}

function takeUnread(protocol: BaseProtocol): Buffer | null {
  const p = protocol as Partial<ReadAheadProtocol>;
  return typeof p._takeUnread === 'function' ? p._takeUnread() : null;
}

interface Detachable extends Transport {
  _detach(): Socket;
  _server?: TransportServer | null;
}

function isDetachable(transport: Transport): transport is Detachable {
  return typeof (transport as Partial<Detachable>)._detach === 'function';
}

function isStreamTransport(transport: unknown): transport is Transport {
  const t = transport as Partial<Transport> | null;
  return (
    typeof t === 'object' &&
    t !== null &&
    typeof t.write === 'function' &&
    typeof t.setProtocol === 'function' &&
    typeof t.pauseReading === 'function' &&
    typeof t.resumeReading === 'function' &&
    typeof t.isClosing === 'function'
  );
}

async function startTls(
  this: BaseEventLoop,
  transport: Transport,
  protocol: BaseProtocol,
  sslcontext: SSLContext,
  options: StartTlsOptions = {},
): Promise<Transport> {
  checkOptions(options, START_TLS_KEYS, 'startTls');
  if (!isSSLContext(sslcontext)) {
    throw new InvalidArgTypeError(
      `sslcontext is expected to be an instance of ssl.SSLContext, got ${inspect(sslcontext, { depth: 0 })}`,
    );
  }
  if (!isStreamTransport(transport) || transport.isClosing()) {
    throw new InvalidArgTypeError(`transport ${inspect(transport, { depth: 0 })} is not supported by startTls()`);
  }
  const serverSide = options.serverSide === true;
  const sslHandshakeTimeout = checkSslHandshakeTimeout(options.sslHandshakeTimeout);
  const sslShutdownTimeout = checkSslShutdownTimeout(options.sslShutdownTimeout);
  const serverHostname = options.serverHostname ?? null;
  // Checked before the connection is touched, so that a wrong context leaves the old transport usable.
  if (serverSide) sslcontext._serverOptions();
  else sslcontext._clientOptions(undefined, serverHostname);

  const extra: Partial<Record<keyof ExtraInfo, unknown>> = {};
  for (const key of ['peername', 'sockname', 'socket'] as const) {
    const v: unknown = transport.getExtraInfo(key);
    if (v !== undefined) extra[key] = v;
  }
  let socket: Socket | Duplex;
  let server: TransportServer | null = null;
  if (isDetachable(transport)) {
    // Taken now, synchronously, as asyncio pauses the old transport at once: nothing more reaches the old
    // protocol, and bytes already received stay in the socket for the TLS layer.
    server = transport._server ?? null;
    const sock = transport._detach();
    socket = sock;
    // In front of what the old transport held back (which `_detach` put back into the socket).
    const unread = serverSide ? takeUnread(protocol) : null;
    if (unread !== null) sock.unshift(unread);
    if (sock.writableLength > 0) {
      // What the old transport still had to send goes out before the first TLS record.
      await new Promise<void>((resolve) => sock.write(Buffer.alloc(0), () => resolve()));
    }
  } else {
    const duplex = new TransportDuplex(transport);
    const unread = serverSide ? takeUnread(protocol) : null;
    if (unread !== null) duplex.unshift(unread);
    socket = duplex;
  }

  const waiter = this.createFuture<unknown>();
  const tlsOptions = {
    serverSide,
    serverHostname,
    sslHandshakeTimeout,
    sslShutdownTimeout,
    waiter,
    server,
    extra: extra as Partial<ExtraInfo>,
    callConnectionMade: false,
  };
  const tlsTransport: TLSTransport = createTLSTransport(this, protocol, socket, sslcontext, tlsOptions);
  try {
    await waiter;
  } catch (error) {
    tlsTransport.abort();
    throw error;
  }
  return tlsTransport;
}

extendEventLoop({ startTls } as unknown as Record<string, (this: BaseEventLoop, ...args: never[]) => unknown>);

/**
 * A Duplex stream over a loopwork transport: what node:tls wraps when the transport has no Node socket to hand
 * over. Its protocol replaces the transport's; flow control holds both ways.
 */
class TransportDuplex extends Duplex {
  readonly _transport: Transport;
  _readPaused = false;
  _writePaused = false;
  _pendingWrite: (() => void) | null = null;

  constructor(transport: Transport) {
    super({ allowHalfOpen: true });
    this._transport = transport;
    transport.pauseReading();
    transport.setProtocol(new DuplexFeeder(this));
    transport.resumeReading();
  }

  override _read(): void {
    if (this._readPaused) {
      this._readPaused = false;
      this._transport.resumeReading();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._transport.write(chunk);
    if (this._writePaused) this._pendingWrite = () => callback();
    else callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this._transport.canWriteEof()) this._transport.writeEof();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this._transport.isClosing()) {
      if (error === null) this._transport.close();
      else this._transport.abort();
    }
    callback(error);
  }
}

/** The protocol a {@link TransportDuplex} installs on its transport: it feeds the stream. */
class DuplexFeeder extends Protocol {
  constructor(readonly duplex: TransportDuplex) {
    super();
  }
  override dataReceived(data: Buffer): void {
    if (!this.duplex.push(data)) {
      this.duplex._readPaused = true;
      this.duplex._transport.pauseReading();
    }
  }
  override eofReceived(): boolean {
    this.duplex.push(null);
    // Our close_notify may still have to go out: keep the write side open where there is one to keep (a TLS
    // transport underneath, TLS in TLS, has none and closes itself whatever this returns).
    return this.duplex._transport.canWriteEof();
  }
  override connectionLost(exc: Error | null): void {
    if (exc !== null) this.duplex.destroy(exc);
    else {
      this.duplex.push(null);
      this.duplex.destroy();
    }
  }
  override pauseWriting(): void {
    this.duplex._writePaused = true;
  }
  override resumeWriting(): void {
    this.duplex._writePaused = false;
    const cb = this.duplex._pendingWrite;
    this.duplex._pendingWrite = null;
    cb?.();
  }
}
