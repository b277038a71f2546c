/**
 * Transport interfaces (asyncio's `transports.py`) and the write flow control every writing transport shares.
 *
 * Transports are made by the loop (`createServer`, `createConnection`, `connectReadPipe`, `subprocessExec`…),
 * never by user code. Each one is bound to one protocol and calls it in the order that `protocols.ts` writes down.
 *
 * @module
 */
import type { BaseEventLoop } from './base-event-loop.js';
import { InvalidArgTypeError, ValueError } from './errors.js';
import type { Address, BaseProtocol } from './protocols.js';

/**
 * The keys of `getExtraInfo()`, with asyncio's names and the type of each value.
 */
export interface ExtraInfo {
  /** The remote address of a socket. */
  peername: Address;
  /** The socket's own address. */
  sockname: Address;
  /** The socket (a read-only view of it for transports). */
  socket: unknown;
  /** The peer's certificate (TLS), as Node's `getPeerCertificate()` gives it, or `null`. */
  peercert: unknown;
  /** The cipher in use (TLS): `[name, protocolVersion, secretBits]`. */
  cipher: [string, string, number] | null;
  /** The compression algorithm (TLS); always `null` with OpenSSL 3 builds. */
  compression: string | null;
  /** The `SSLContext` of the connection (TLS). */
  sslcontext: unknown;
  /** The underlying `tls.TLSSocket` (TLS). */
  ssl_object: unknown;
  /** The pipe object (pipe transports). */
  pipe: unknown;
  /** The `ChildProcess` (subprocess transports). */
  subprocess: unknown;
}

/** The base of all transports. */
export interface BaseTransport {
  /**
   * Optional information about the transport or its resources.
   *
   * @param name - one of asyncio's keys (`'peername'`, `'sockname'`, `'socket'`, `'peercert'`, …).
   * @param defaultValue - returned when the information is not available.
   */
  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  /** True when the transport is closing or closed. */
  isClosing(): boolean;
  /**
   * Closes the transport: buffered data is flushed asynchronously, no more data is received, and the protocol's
   * `connectionLost(null)` is called eventually.
   */
  close(): void;
  /** Sets a new protocol; switching is only safe at points the protocol defines. */
  setProtocol(protocol: BaseProtocol): void;
  /** The current protocol. */
  getProtocol(): BaseProtocol;
}

/** A transport that receives data. */
export interface ReadTransport extends BaseTransport {
  /** True while the transport delivers received data. */
  isReading(): boolean;
  /** Stops delivering data to the protocol until `resumeReading()`; idempotent. */
  pauseReading(): void;
  /** Resumes delivering data; idempotent. */
  resumeReading(): void;
}

/** A transport that sends data, with flow control. */
export interface WriteTransport extends BaseTransport {
  /**
   * Sets the write buffer's high- and low-water marks.
   *
   * @param high - bytes; the protocol's `pauseWriting()` is called above it (default 64 KiB).
   * @param low - bytes; `resumeWriting()` is called when the buffer drains to it (default `high / 4`).
   * @throws ValueError unless `high >= low >= 0`.
   */
  setWriteBufferLimits(high?: number | null, low?: number | null): void;
  /** How many bytes are buffered, not yet handed to the kernel. */
  getWriteBufferSize(): number;
  /** The `[low, high]` water marks, in bytes. */
  getWriteBufferLimits(): [low: number, high: number];
  /**
   * Writes bytes; never blocks: what the kernel does not take now is buffered.
   *
   * @throws TypeError when `data` is not bytes (a string is refused, as in asyncio).
   */
  write(data: Uint8Array): void;
  /** Writes a list of byte buffers (as one `writev` where possible). */
  writelines(list: Iterable<Uint8Array>): void;
  /** Closes the write end after flushing buffered data (half-close). */
  writeEof(): void;
  /** True when `writeEof()` is supported. */
  canWriteEof(): boolean;
  /** Closes the transport at once, dropping buffered data; `connectionLost(null)` follows. */
  abort(): void;
}

/** A bidirectional stream transport (a TCP or Unix connection). */
export interface Transport extends ReadTransport, WriteTransport {}

/** A datagram transport (UDP, Unix datagram). */
export interface DatagramTransport extends BaseTransport {
  /**
   * Sends a datagram.
   *
   * @param addr - the destination; omitted for a connected endpoint.
   */
  sendto(data: Uint8Array, addr?: Address | null): void;
  /** Closes at once, dropping buffered datagrams. */
  abort(): void;
  /** How many bytes are buffered. */
  getWriteBufferSize(): number;
}

/** A transport for a child process and its pipes. */
export interface SubprocessTransport extends BaseTransport {
  /** The child's process id. */
  getPid(): number;
  /** The child's return code: `null` while it runs, negative `-N` when a signal N ended it. */
  getReturncode(): number | null;
  /** The transport of the child's pipe `fd` (0, 1, 2), or `null` when it is not a pipe. */
  getPipeTransport(fd: number): WriteTransport | ReadTransport | null;
  /** Sends a signal (a number or name) to the child. */
  sendSignal(signal: number | NodeJS.Signals): void;
  /** Sends SIGTERM to the child. */
  terminate(): void;
  /** Sends SIGKILL to the child. */
  kill(): void;
}

/** The default high-water mark of a write buffer, in bytes (asyncio's 64 KiB). */
export const DEFAULT_HIGH_WATER = 64 * 1024;

/**
 * The write flow control every writing transport shares (asyncio's `_FlowControlMixin`): it calls the
 * protocol's `pauseWriting()` when the buffer goes over the high-water mark and `resumeWriting()` once it drains
 * to the low-water mark; an exception in either goes to the loop's exception handler.
 *
 * Subclasses call `_maybePauseProtocol()` after buffering and `_maybeResumeProtocol()` after draining.
 */
export abstract class FlowControlTransport {
  /** @internal */
  readonly _loop: BaseEventLoop;
  /** @internal */
  _protocolPaused = false;
  /** @internal */
  _highWater = DEFAULT_HIGH_WATER;
  /** @internal */
  _lowWater = DEFAULT_HIGH_WATER / 4;
  /** @internal */
  abstract _protocol: BaseProtocol;

  protected constructor(loop: BaseEventLoop) {
    this._loop = loop;
  }

  /** How many bytes are buffered. */
  abstract getWriteBufferSize(): number;

  /** See `WriteTransport.setWriteBufferLimits`. */
  setWriteBufferLimits(high?: number | null, low?: number | null): void {
    setWriteBufferLimits(this, high, low, this._defaultHighWater());
    this._maybePauseProtocol();
  }

  /** @internal The high-water mark when none is given (asyncio's differs for TLS). */
  _defaultHighWater(): number {
    return DEFAULT_HIGH_WATER;
  }

  /** See `WriteTransport.getWriteBufferLimits`. */
  getWriteBufferLimits(): [low: number, high: number] {
    return [this._lowWater, this._highWater];
  }

  /** @internal */
  _maybePauseProtocol(): void {
    if (this._protocolPaused || this.getWriteBufferSize() <= this._highWater) return;
    this._protocolPaused = true;
    try {
      this._protocol.pauseWriting();
    } catch (exception) {
      this._loop.callExceptionHandler({
        message: 'protocol.pauseWriting() failed',
        exception,
        transport: this,
        protocol: this._protocol,
      });
    }
  }

  /** @internal */
  _maybeResumeProtocol(): void {
    if (!this._protocolPaused || this.getWriteBufferSize() > this._lowWater) return;
    this._protocolPaused = false;
    try {
      this._protocol.resumeWriting();
    } catch (exception) {
      this._loop.callExceptionHandler({
        message: 'protocol.resumeWriting() failed',
        exception,
        transport: this,
        protocol: this._protocol,
      });
    }
  }
}

/**
 * Validates and applies write buffer limits the way asyncio does (`high` defaults to `defaultHigh`, 64 KiB, or
 * `4 * low`; `low` to `high / 4`).
 *
 * @throws ValueError unless `high >= low >= 0`.
 */
export function setWriteBufferLimits(
  target: { _highWater: number; _lowWater: number },
  high?: number | null,
  low?: number | null,
  defaultHigh = DEFAULT_HIGH_WATER,
): void {
  for (const [name, v] of [
    ['high', high],
    ['low', low],
  ] as const) {
    if (v !== undefined && v !== null && (typeof v !== 'number' || Number.isNaN(v))) {
      throw new InvalidArgTypeError(`${name} must be a number, got ${String(v)}`);
    }
  }
  let h: number;
  if (high === undefined || high === null) h = low === undefined || low === null ? defaultHigh : 4 * low;
  else h = high;
  const l = low === undefined || low === null ? Math.floor(h / 4) : low;
  if (!(h >= l && l >= 0)) throw new ValueError(`high (${h}) must be >= low (${l}) must be >= 0`);
  target._highWater = h;
  target._lowWater = l;
}

/** @internal True for what `write()` accepts: a Buffer or any Uint8Array (asyncio's bytes-like). */
export function checkBytes(data: unknown, method = 'write'): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) {
    const got = typeof data === 'string' ? 'str' : data === null ? 'null' : typeof data;
    throw new InvalidArgTypeError(`data argument must be a bytes-like object, not '${got}' (in ${method}())`);
  }
}

/**
 * @internal The items of `writelines(list)`, every one checked before any is written (asyncio's refusal of the
 * whole call when one item is not bytes).
 *
 * @throws TypeError when an item is not bytes.
 */
export function writelinesItems(list: Iterable<Uint8Array>): Uint8Array[] {
  const items = Array.isArray(list) ? (list as Uint8Array[]) : [...list];
  for (const item of items) checkBytes(item, 'writelines');
  return items;
}
