/**
 * Protocol classes (asyncio's `protocols.py`): what a transport calls when something happens on a connection.
 *
 * Subclass one and override what you need; every method has a do-nothing default. The order of the calls is a
 * grammar the transports keep:
 *
 * - `Protocol`: `start -> connectionMade [-> dataReceived*] [-> eofReceived?] -> connectionLost -> end`
 * - `BufferedProtocol`: `start -> connectionMade [-> getBuffer -> bufferUpdated]* [-> eofReceived?] ->
 *   connectionLost -> end`
 * - `DatagramProtocol`: `start -> connectionMade [-> datagramReceived | errorReceived]* -> connectionLost -> end`
 * - `SubprocessProtocol`: `start -> connectionMade [-> pipeDataReceived(fd)*] [-> pipeConnectionLost(fd)]* [->
 *   processExited] -> end`, where all of a pipe's data comes before that pipe's `pipeConnectionLost`, and
 *   `processExited` may come before the pipes' data and `pipeConnectionLost` (asyncio documents the same).
 *
 * `pauseWriting`/`resumeWriting` may come in between, any number of times, always alternating.
 *
 * @module
 */
import { InvalidArgTypeError, RuntimeError, typeName } from './errors.js';
import type { BaseTransport, DatagramTransport, SubprocessTransport, Transport } from './transports.js';

/** A network address as asyncio gives it: `[host, port]`, `[host, port, flowinfo, scopeId]`, or a Unix path. */
export type Address =
  [host: string, port: number] | [host: string, port: number, flowinfo: number, scopeId: number] | string | Buffer;

/** The base of all protocols. */
export class BaseProtocol {
  /**
   * Called when a connection is made.
   *
   * @param transport - the transport of the connection; keep it to write and close.
   */
  connectionMade(transport: BaseTransport): void {
    void transport;
  }

  /**
   * Called when the connection is lost or closed.
   *
   * @param exc - the error that ended it, or `null` for a regular EOF or a close.
   */
  connectionLost(exc: Error | null): void {
    void exc;
  }

  /** Called when the transport's write buffer goes over the high-water mark: stop writing. */
  pauseWriting(): void {}

  /** Called when the transport's write buffer drains below the low-water mark: writing may go on. */
  resumeWriting(): void {}
}

/** A protocol for streaming connections (TCP, Unix sockets, pipes). */
export class Protocol extends BaseProtocol {
  /** The transport, once `connectionMade` ran (set by the default `connectionMade`). */
  declare transport?: Transport;

  /**
   * Called when data is received.
   *
   * @param data - the bytes received; the protocol owns the Buffer.
   */
  dataReceived(data: Buffer): void {
    void data;
  }

  /**
   * Called when the other end signals it won't send any more data (EOF).
   *
   * @returns a truthy value to keep the transport open for writing (half-close); otherwise the transport closes
   * itself.
   */
  eofReceived(): boolean | void {
    return undefined;
  }
}

/**
 * A streaming protocol that gives the transport its own buffer to receive into (zero-copy).
 */
export class BufferedProtocol extends BaseProtocol {
  /**
   * Called to get a buffer to receive into.
   *
   * @param sizehint - a recommended minimal size in bytes, or -1 for any size.
   * @returns a non-empty buffer the transport writes into.
   */
  getBuffer(sizehint: number): Uint8Array {
    void sizehint;
    throw new Error('BufferedProtocol.getBuffer() must be implemented');
  }

  /**
   * Called when the buffer got data.
   *
   * @param nbytes - how many bytes were written into the buffer from its start.
   */
  bufferUpdated(nbytes: number): void {
    void nbytes;
  }

  /** As `Protocol.eofReceived`. */
  eofReceived(): boolean | void {
    return undefined;
  }
}

/**
 * Whether a stream transport hands `protocol` its bytes through `getBuffer()`/`bufferUpdated()` rather than
 * `dataReceived()`: a `BufferedProtocol`, or any object with a `getBuffer` method (asyncio checks the class; a
 * plain object implementing the interface is accepted here too). Every stream transport asks this one question.
 */
export function isBufferedProtocol(protocol: BaseProtocol): boolean {
  return (
    protocol instanceof BufferedProtocol ||
    typeof (protocol as unknown as { getBuffer?: unknown }).getBuffer === 'function'
  );
}

/**
 * @internal The buffer a `BufferedProtocol` hands out for the next bytes (asyncio's check: an empty one is an
 * error).
 *
 * @throws RuntimeError `getBuffer() returned an empty buffer`; TypeError when it returned no Uint8Array (asyncio's
 * `recv_into()` refuses what is no writable buffer); what `getBuffer` throws.
 */
export function protocolBuffer(protocol: Pick<BufferedProtocol, 'getBuffer'>, sizehint: number): Uint8Array {
  const buf: unknown = protocol.getBuffer(sizehint);
  if (!(buf instanceof Uint8Array)) {
    throw new InvalidArgTypeError(`getBuffer() must return a Uint8Array, not ${typeName(buf)}`);
  }
  if (buf.byteLength === 0) throw new RuntimeError('getBuffer() returned an empty buffer');
  return buf;
}

/** A protocol for datagram (UDP, Unix datagram) endpoints. */
export class DatagramProtocol extends BaseProtocol {
  /**
   * Called when a datagram is received.
   *
   * @param data - the datagram's bytes.
   * @param addr - the sender's address.
   */
  datagramReceived(data: Buffer, addr: Address): void {
    void data;
    void addr;
  }

  /**
   * Called when a previous send or receive operation failed (e.g. ICMP port unreachable).
   */
  errorReceived(exc: Error): void {
    void exc;
  }
}

/** A protocol for a child process and its pipes. */
export class SubprocessProtocol extends BaseProtocol {
  /**
   * Called when the child writes to its stdout or stderr.
   *
   * @param fd - 1 for stdout, 2 for stderr.
   * @param data - the bytes.
   */
  pipeDataReceived(fd: number, data: Buffer): void {
    void fd;
    void data;
  }

  /**
   * Called when one of the child's pipes is closed.
   *
   * @param fd - 0, 1 or 2.
   * @param exc - the error, or `null`.
   */
  pipeConnectionLost(fd: number, exc: Error | null): void {
    void fd;
    void exc;
  }

  /** Called when the child process has exited. */
  processExited(): void {}
}

/** A function that makes a protocol for each new connection (asyncio's `protocol_factory`). */
export type ProtocolFactory<P extends BaseProtocol = BaseProtocol> = () => P;

export type { BaseTransport, DatagramTransport, SubprocessTransport, Transport };
