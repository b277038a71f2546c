/**
 * An app's connection accounting across all its listeners: how many are open (the metrics gauge), the
 * `maxConnections` limit, and graceful shutdown (ask every connection to finish and close, then wait).
 *
 * Over the limit, a new connection is parked: accepted but not read and its pipeline not started, until an
 * open connection ends (the client sees a connection that has not answered yet, as if it waited in the listen
 * backlog). Parked connections beyond `maxParked` are closed at once.
 *
 * Graceful shutdown never drops a connection the server accepted: one whose `connectionMade` comes after the
 * shutdown began (accepted just before the listeners closed) is started and asked at once to finish, as the open
 * ones are (HTTP/1.1 answers its first request with `Connection: close`); parked ones are still admitted as
 * connections end, and asked to finish too.
 *
 * @module
 */
import type { BaseTransport, BufferedProtocol, Protocol, ProtocolFactory, Transport } from '@loopwork/server';
import { BaseProtocol, isBufferedProtocol } from '@loopwork/server';
import type { ConnectionObserver, TrackedConnection } from './pipeline.js';
import { PipelineProtocol } from './pipeline.js';

/** @internal */
export class ConnectionTracker implements ConnectionObserver {
  readonly #active = new Set<TrackedConnection>();
  readonly #parked: TrackedConnection[] = [];
  readonly #max: number;
  readonly #maxParked: number;
  #draining = false;
  #emptyWaiters: (() => void)[] = [];
  /** Connections accepted since the start. */
  accepted = 0;

  /**
   * @param max - the most connections served at once (`Infinity` for no limit).
   * @param maxParked - the most connections parked over the limit; more are closed.
   */
  constructor(max: number, maxParked: number) {
    this.#max = max;
    this.#maxParked = maxParked;
  }

  /** Connections open and served. */
  get active(): number {
    return this.#active.size;
  }

  /** Connections accepted over the limit and waiting. */
  get parked(): number {
    return this.#parked.length;
  }

  connectionMade(conn: TrackedConnection): boolean {
    this.accepted++;
    if (this.#active.size < this.#max) {
      this.#active.add(conn);
      // Accepted before the listeners closed, made after: its client has sent (or is sending) a request to a
      // server that accepted it. Asked to finish once its protocol has started (after this call returns).
      if (this.#draining) queueMicrotask(() => conn.shutdown());
      return true;
    }
    this.#parked.push(conn);
    if (this.#parked.length > this.#maxParked) conn.abort();
    return false;
  }

  connectionLost(conn: TrackedConnection): void {
    if (this.#active.delete(conn)) {
      while (this.#parked.length > 0 && this.#active.size < this.#max) {
        const next = this.#parked.shift()!;
        this.#active.add(next);
        next._admit();
        if (this.#draining) next.shutdown();
      }
    } else {
      const i = this.#parked.indexOf(conn);
      if (i >= 0) this.#parked.splice(i, 1);
    }
    if (this.#active.size === 0 && this.#parked.length === 0) {
      const waiters = this.#emptyWaiters;
      this.#emptyWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Graceful shutdown: the open connections are asked to finish and close; parked ones wait for a place as
   * before, and are asked to finish once admitted (the drain deadline bounds the wait: then the server closes
   * every connection).
   */
  shutdownAll(): void {
    this.#draining = true;
    for (const conn of [...this.#active]) conn.shutdown();
  }

  /** Closes every connection at once. */
  abortAll(): void {
    this.#draining = true;
    for (const conn of [...this.#parked, ...this.#active]) conn.abort();
  }

  /** Resolves once no connection is left. */
  waitEmpty(): Promise<void> {
    if (this.#active.size === 0 && this.#parked.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#emptyWaiters.push(resolve));
  }

  /**
   * Wraps a listener's protocol factory so that its connections are accounted: pipelines report directly;
   * other protocols are wrapped in a forwarding protocol.
   *
   * @param factory - the listener's factory.
   */
  wrap(factory: ProtocolFactory): ProtocolFactory {
    return () => {
      const proto = factory();
      if (proto instanceof PipelineProtocol) {
        proto._observer = this;
        return proto;
      }
      if (isBufferedProtocol(proto)) {
        return new TrackedBuffered(proto as BufferedProtocol, this);
      }
      return new TrackedStream(proto as Protocol, this);
    };
  }
}

interface Shutdownable {
  shutdown?(): void;
}

/** A protocol that receives a byte stream: a `Protocol` or a `BufferedProtocol`. */
type ReceivingProtocol = BaseProtocol & { eofReceived(): boolean | void };

/**
 * Forwards every callback to a connection's own protocol, reporting the connection to the tracker; parked
 * connections are paused and their protocol not told of them until admitted. A subclass forwards what the
 * protocol receives (`dataReceived`, or `getBuffer` and `bufferUpdated`): transports pick how to deliver by
 * the methods the wrapper has, so it has only those of the protocol it wraps.
 */
abstract class TrackedProtocol<P extends ReceivingProtocol> extends BaseProtocol implements TrackedConnection {
  /** The connection's own protocol. */
  protected readonly inner: P;
  readonly #tracker: ConnectionTracker;
  #t: Transport | null = null;
  #parked = false;

  constructor(inner: P, tracker: ConnectionTracker) {
    super();
    this.inner = inner;
    this.#tracker = tracker;
  }

  override connectionMade(transport: BaseTransport): void {
    this.#t = transport as Transport;
    if (!this.#tracker.connectionMade(this)) {
      this.#parked = true;
      this.#t.pauseReading();
      return;
    }
    this.inner.connectionMade(transport);
  }

  _admit(): void {
    if (!this.#parked || this.#t === null) return;
    this.#parked = false;
    this.inner.connectionMade(this.#t);
    this.#t.resumeReading();
  }

  eofReceived(): boolean | void {
    return this.inner.eofReceived();
  }

  override connectionLost(exc: Error | null): void {
    try {
      if (!this.#parked) this.inner.connectionLost(exc);
    } finally {
      this.#tracker.connectionLost(this);
    }
  }

  override pauseWriting(): void {
    this.inner.pauseWriting();
  }

  override resumeWriting(): void {
    this.inner.resumeWriting();
  }

  shutdown(): void {
    const inner = this.inner as P & Shutdownable;
    if (!this.#parked && typeof inner.shutdown === 'function') inner.shutdown();
    else this.#t?.close();
  }

  abort(): void {
    this.#t?.abort();
  }
}

/** Tracks a stream protocol. */
class TrackedStream extends TrackedProtocol<Protocol> {
  dataReceived(data: Buffer): void {
    this.inner.dataReceived(data);
  }
}

/** Tracks a buffered protocol. */
class TrackedBuffered extends TrackedProtocol<BufferedProtocol> {
  getBuffer(sizehint: number): Uint8Array {
    return this.inner.getBuffer(sizehint);
  }

  bufferUpdated(nbytes: number): void {
    this.inner.bufferUpdated(nbytes);
  }
}
