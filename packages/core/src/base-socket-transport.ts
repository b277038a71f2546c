/**
 * What loopwork's two stream-socket transports share, as asyncio's `_SelectorTransport` is shared by its socket
 * transports: the protocol and its kind, the server's count, the closing and connection-lost bookkeeping (the
 * protocol's `connectionLost` called exactly once, from a callback), reading paused and resumed, fatal errors
 * and the warning for writes on a lost connection. `FdTransport` (straight on the fd) and `SocketTransport` (on a
 * `net.Socket`) fill in how bytes move.
 *
 * @module
 */
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import type { Context } from './context.js';
import { captureContext } from './context.js';
import type { Future } from './futures.js';
import type { BaseProtocol } from './protocols.js';
import { isBufferedProtocol } from './protocols.js';
import { RuntimeError, connectionError } from './errors.js';
import type { ExtraInfo, Transport } from './transports.js';
import { FlowControlTransport, writelinesItems } from './transports.js';

/** @internal What a transport calls on a `BufferedProtocol`. */
export interface BufferedLike {
  getBuffer(sizehint: number): Uint8Array;
  bufferUpdated(nbytes: number): void;
  eofReceived(): unknown;
}

/** @internal What a transport calls on a `Protocol`. */
export interface StreamLike {
  dataReceived(data: Buffer): void;
  eofReceived(): unknown;
}

/** After this many writes on a lost connection, each further one logs a warning (asyncio's threshold). */
const LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5;

/**
 * What a transport tells the server that accepted its connection: `Server` counts its live connections this way
 * (asyncio's `Server._attach` / `_detach`), which `waitClosed`, `closeClients` and `abortClients` rely on.
 */
export interface TransportServer {
  /** Called when a transport of this server is made. */
  _attach(transport: Transport): void;
  /** Called once the transport's `connectionLost` has run. */
  _detach(transport: Transport): void;
}

/** Options both socket transports take. */
export interface BaseSocketTransportOptions {
  /** Completed (result `undefined`) in the callback after `connectionMade`, unless it was cancelled. */
  waiter?: Future<unknown> | null;
  /** Extra information that overrides what the transport reads from the socket (e.g. `peername`). */
  extra?: Partial<ExtraInfo> | null;
  /** The server that accepted the connection. */
  server?: TransportServer | null;
}

/**
 * @internal The part of a stream-socket transport that does not depend on how bytes move. Subclasses implement
 * `_updateReading()` (make the socket deliver exactly when the protocol may receive) and `_destroy()` (close the
 * socket; `connectionLost` follows), and call `_begin()` once their socket is set up.
 */
export abstract class BaseSocketTransport extends FlowControlTransport implements Transport {
  /** @internal */
  _protocol: BaseProtocol;
  /** @internal the current protocol is a BufferedProtocol. */
  _bufferedProto: boolean;
  /** @internal */
  _server: TransportServer | null;
  /** @internal */
  readonly _extra: Record<string, unknown>;
  /** @internal close() or abort() was called, or the connection was lost. */
  _closing = false;
  /** @internal pauseReading() is in effect. */
  _paused = false;
  /** @internal reading began (the callback after connectionMade ran). */
  _readStarted = false;
  /** @internal writeEof() was called. */
  _eof = false;
  /** @internal the socket is closed or being closed (asyncio's `_conn_lost` as a flag). */
  _lost = false;
  /** @internal the error the connection was lost with. */
  _lostExc: Error | null = null;
  /** @internal connectionLost is scheduled (or was called). */
  _lostScheduled = false;
  /** @internal writes refused because the connection is lost, for asyncio's warning threshold. */
  _lostWrites = 0;
  /** @internal the socket was handed over by `_detach()`. */
  _detached = false;
  /** @internal set by `loop.sendfile` while `sendfile(2)` owns the socket's writing: `write()` is refused. */
  _sendfileActive = false;
  /**
   * @internal The context protocol callbacks run in: a copy of the one the transport was made in (asyncio's
   * transport callbacks are handles made there), never with a current task; `null` while no context variable was
   * in use (see `enterOwnScope`).
   */
  _context: Context | null = captureContext();

  /** @internal */
  constructor(loop: BaseEventLoop, protocol: BaseProtocol, options: BaseSocketTransportOptions) {
    super(loop);
    this._protocol = protocol;
    this._bufferedProto = isBufferedProtocol(protocol);
    this._server = options.server ?? null;
    this._extra = { ...(options.extra ?? {}) };
  }

  /**
   * Optional information about the transport: `'peername'`, `'sockname'`, `'socket'`, and what a subclass adds.
   *
   * @param name - the key.
   * @param defaultValue - returned when the transport has no such information.
   */
  abstract getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  abstract getExtraInfo(name: string, defaultValue?: unknown): unknown;
  /** Closes the transport once buffered data is flushed; `connectionLost(null)` follows. Idempotent. */
  abstract close(): void;
  /** Writes bytes; never blocks. */
  abstract write(data: Uint8Array): void;
  /** Writes a list of byte buffers. */
  abstract writelines(list: Iterable<Uint8Array>): void;
  /** Closes the write end once buffered data is flushed. */
  abstract writeEof(): void;

  /**
   * @internal What `write()` and `writelines()` refuse alike: writing after `writeEof()`, or while
   * `loop.sendfile` owns the socket.
   */
  _checkWritable(method: 'write' | 'writelines'): void {
    if (this._eof) throw new RuntimeError(`Cannot call ${method}() after writeEof()`);
    if (this._sendfileActive) throw new RuntimeError('unable to write; sendfile is in progress');
  }

  /** @internal `writelines()`'s argument as an array, every item checked to be bytes, then `_checkWritable`. */
  _writelinesItems(list: Iterable<Uint8Array>): Uint8Array[] {
    const items = writelinesItems(list);
    this._checkWritable('writelines');
    return items;
  }

  /**
   * @internal For `_detach()`: from now on the transport is closed to its protocol, and nothing will report it
   * lost (the socket lives on elsewhere). Returns the server it was counted by, which the caller now answers for
   * (`server._detach(this)` once the socket is gone).
   */
  _markDetached(): TransportServer | null {
    this._detached = true;
    this._closing = true;
    this._lost = true;
    this._lostScheduled = true;
    const server = this._server;
    this._server = null;
    return server;
  }

  /** @internal Makes the socket deliver received data exactly when the protocol may receive it. */
  abstract _updateReading(): void;

  /** @internal Closes the socket now (or starts to); `connectionLost(exc)` follows, from a callback. */
  abstract _destroy(exc: Error | null): void;

  /**
   * @internal Once the socket is set up: the server counts the transport, then `connectionMade`, the start of
   * reading and the waiter follow, each with `callSoon`, as asyncio's transports schedule them.
   */
  _begin(waiter: Future<unknown> | null): void {
    this._server?._attach(this);
    const loop = this._loop;
    loop._callSoonInternal(this._connectionMade, [], this._context);
    loop._callSoonInternal(this._startReading, [], this._context);
    if (waiter !== null) loop._callSoonInternal(completeWaiter, [waiter], this._context);
  }

  /** True once `close()` or `abort()` was called, or the connection was lost. */
  isClosing(): boolean {
    return this._closing;
  }

  /** Switches to another protocol; the next received bytes go to it. */
  setProtocol(protocol: BaseProtocol): void {
    this._protocol = protocol;
    this._bufferedProto = isBufferedProtocol(protocol);
  }

  /** The current protocol. */
  getProtocol(): BaseProtocol {
    return this._protocol;
  }

  /** True while the transport delivers received data (not paused, not closing). */
  isReading(): boolean {
    return !this._closing && !this._paused;
  }

  /** Stops delivering received data until `resumeReading()`; the kernel's buffer then fills and the peer slows. */
  pauseReading(): void {
    if (!this.isReading()) return;
    this._paused = true;
    this._updateReading();
    if (this._loop._debug) this._loop.logger.debug({ transport: inspect(this) }, 'pauses reading');
  }

  /** Resumes delivering received data. */
  resumeReading(): void {
    if (this._closing || !this._paused) return;
    this._paused = false;
    this._updateReading();
    if (this._loop._debug) this._loop.logger.debug({ transport: inspect(this) }, 'resumes reading');
  }

  /** True: a socket transport can half-close. */
  canWriteEof(): boolean {
    return true;
  }

  /** Closes the connection at once: buffered data is dropped, `connectionLost(null)` follows. */
  abort(): void {
    this._forceClose(null);
  }

  /** @internal */
  readonly _connectionMade = (): void => {
    if (this._detached) return;
    try {
      this._protocol.connectionMade(this);
    } catch (exc) {
      this._fatalError(exc, 'Fatal error: protocol.connectionMade() call failed.');
    }
  };

  /** @internal */
  readonly _startReading = (): void => {
    this._readStarted = true;
    this._updateReading();
  };

  /** @internal A write on a lost connection: dropped, and from the fifth on a warning (asyncio's log). */
  _droppedWrite(): void {
    if (++this._lostWrites >= LOG_THRESHOLD_FOR_CONNLOST_WRITES) {
      this._loop.logger.warn({ transport: inspect(this) }, 'socket.send() raised exception.');
    }
  }

  /**
   * @internal An error the connection cannot survive: a protocol callback's exception goes to the exception
   * handler (a socket error only to the debug log), and the connection is aborted with it.
   */
  _fatalError(exc: unknown, message = 'Fatal error on transport'): void {
    if (isSystemError(exc)) {
      if (this._loop._debug) this._loop.logger.debug({ err: exc, transport: inspect(this) }, message);
    } else {
      this._loop.callExceptionHandler({
        message,
        exception: exc,
        transport: this,
        protocol: this._protocol,
      });
    }
    this._forceClose(exc instanceof Error ? exc : new Error(String(exc)));
  }

  /**
   * @internal asyncio's `_force_close`. A system error (`read ECONNRESET`) is passed on as Python's OSError
   * (`ConnectionResetError: [Errno 104] Connection reset by peer`).
   */
  _forceClose(exc: Error | null): void {
    if (this._lost) return;
    this._closing = true;
    this._updateReading();
    this._destroy(exc === null ? null : connectionError(exc));
  }

  /** @internal */
  _scheduleConnectionLost(): void {
    if (this._lostScheduled) return;
    this._lostScheduled = true;
    if (this._loop.isClosed()) {
      // Nobody will run the callback: release the server's count at least.
      this._finishConnectionLost();
      return;
    }
    this._loop._callSoonInternal(this._callConnectionLost, [], this._context);
  }

  /** @internal Calls `connectionLost` exactly once; an exception in it is reported as a callback's. */
  readonly _callConnectionLost = (): void => {
    try {
      this._protocol.connectionLost(this._lostExc);
    } finally {
      this._finishConnectionLost();
    }
  };

  /** @internal The protocol has been told: the server stops counting the transport. */
  _finishConnectionLost(): void {
    const server = this._server;
    this._server = null;
    server?._detach(this);
  }
}

function completeWaiter(waiter: Future<unknown>): void {
  if (!waiter.done()) waiter.setResult(undefined);
}

/** asyncio's `isinstance(exc, OSError)`: an error from the system (it has an errno code and a syscall). */
export function isSystemError(exc: unknown): boolean {
  return (
    exc instanceof Error &&
    typeof (exc as { code?: unknown }).code === 'string' &&
    typeof (exc as { syscall?: unknown }).syscall === 'string'
  );
}
