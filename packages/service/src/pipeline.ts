/**
 * Pipelines: a service is a protocol factory made of stages, each a protocol wrapping the next.
 *
 * A pipeline has one layer per stage and ends in an endpoint. The outermost layer gets the connection's bytes;
 * each layer turns what it receives into the messages of the layer inside it (a framing stage: bytes into
 * frames; a codec: frames into values; `validate`: values into checked values), and turns what the inner layer
 * writes back into its own outgoing messages. Every connection gets fresh layers, so a layer may keep
 * per-connection state in its fields.
 *
 * ```
 *  transport ──bytes──▶ [framing] ──frames──▶ [codec] ──values──▶ [validate] ──values──▶ endpoint
 *            ◀─bytes───           ◀─frames───         ◀─values───            ◀─values───
 * ```
 *
 * ## Writing a stage
 *
 * A stage is a function `(inner) => outer`: given the inner layer's {@link MessageProtocol} for a connection, it
 * returns the protocol the layer outside it talks to. Extend {@link StageProtocol}: it is both the outer-facing
 * protocol and the {@link MessageTransport} the inner layer writes to, and passes everything through by default.
 * Override two methods:
 *
 * - `messageReceived(message)`: decode, then call `this.inner.messageReceived(decoded)` once per inner message
 *   (zero, one or many times: a framing stage fed a chunk may complete several frames, or none);
 * - `write(message)`: encode, then call `this.outer.write(encoded)`.
 *
 * and, where it applies, `eofReceived()` (a framing stage with a partial frame at EOF), `connectionLost()` (release
 * per-connection resources) and `shutdown()` (graceful close: finish in-flight work, take no new message).
 * A message the stage cannot decode is the peer's fault, not a crash: refuse it with `this.refuse(error, reply)`
 * (the reply, or `undefined` to close, is sent in turn, after the answers to earlier messages that the endpoint
 * may still be working on), or, when the byte stream itself is beyond repair (a framing error), write an error
 * and close with `this.outer.write(…)` and `this.outer.close()`; never let the exception escape (an escaping
 * exception is reported to the loop's exception handler as a bug and aborts the connection). For example, a line framing stage:
 *
 * ```ts
 * export function lines(options: LineDecoderOptions = {}): Stage<Buffer, Uint8Array, Buffer, string | Uint8Array> {
 *   return (inner) => new LinesProtocol(inner, options);
 * }
 * class LinesProtocol extends StageProtocol<Buffer, Uint8Array, Buffer, string | Uint8Array> {
 *   readonly #decoder: LineDecoder;
 *   constructor(inner: MessageProtocol<Buffer, string | Uint8Array>, options: LineDecoderOptions) {
 *     super(inner);
 *     this.#decoder = new LineDecoder((line) => this.inner.messageReceived(line), options);
 *   }
 *   override messageReceived(chunk: Buffer): void {
 *     try { this.#decoder.feedData(chunk); } catch (err) {
 *       if (!LineTooLongError.isInstance(err)) throw err;
 *       this.outer.write(encodeLine('-ERR line too long')); this.outer.close();
 *     }
 *   }
 *   override write(line: string | Uint8Array): void { this.outer.write(encodeLine(line)); }
 * }
 * ```
 *
 * The call order each layer sees is the transport's grammar, with messages for data:
 * `connectionMade -> messageReceived* -> eofReceived? -> connectionLost`, and `pauseWriting`/`resumeWriting`
 * alternating anywhere in between; `shutdown` may come at any time before `connectionLost`.
 *
 * Backpressure: when the transport's write buffer goes over its high-water mark, every layer's
 * `pauseWriting()` is called, inside out, and `drain()` on any layer's transport returns a promise that resolves
 * once the buffer is below the low-water mark again (at once when it is already). A handler that streams a large
 * reply awaits `drain()` between writes.
 *
 * @module
 */
import type { BaseTransport, ProtocolFactory, Transport } from '@loopwork/server';
import { Protocol } from '@loopwork/server';
import { ConnectionLostError } from './errors.js';

/**
 * The side of a connection a layer writes to: the transport seen through the layers outside it.
 *
 * `Out` is what this layer writes; the layer outside encodes it.
 */
export interface MessageTransport<Out> {
  /**
   * Sends a message; never blocks. Writes after the connection is closing are dropped.
   *
   * @param message - the message, encoded by the layers outside.
   */
  write(message: Out): void;
  /**
   * Waits until the connection's write buffer is below its low-water mark.
   *
   * @returns a promise that resolves at once when writing is not paused, and otherwise at the next
   *   `resumeWriting`; it rejects with `ConnectionLostError` when the connection is closing or lost (what is
   *   written then is dropped).
   */
  drain(): Promise<void>;
  /** True while writing is paused (the write buffer is over its high-water mark). */
  isWritingPaused(): boolean;
  /** Closes the connection once buffered data is flushed. */
  close(): void;
  /** Closes the connection at once, dropping buffered data. */
  abort(): void;
  /** True once the connection is closing or closed. */
  isClosing(): boolean;
  /** Stops delivering received data until `resumeReading()`. */
  pauseReading(): void;
  /** Resumes delivering received data. */
  resumeReading(): void;
  /** Closes the write side once buffered data is flushed, where the transport can (TCP); reading goes on. */
  writeEof(): void;
  /** True when `writeEof()` is possible. */
  canWriteEof(): boolean;
  /** The transport's extra information (`'peername'`, `'sockname'`, `'peercert'`, …). */
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  /** Bytes buffered by the transport and not yet handed to the kernel. */
  getWriteBufferSize(): number;
}

/**
 * One layer of a pipeline for one connection: what the layer outside calls.
 *
 * Call order: `connectionMade -> messageReceived* -> eofReceived? -> connectionLost`, with
 * `pauseWriting`/`resumeWriting` alternating anywhere in between and `shutdown` at most once before
 * `connectionLost`.
 *
 * `In` is what this layer receives, `Out` what it writes.
 */
export interface MessageProtocol<In, Out> {
  /**
   * The connection is made; keep `transport` to write to it.
   *
   * @param transport - the connection as seen from this layer.
   */
  connectionMade(transport: MessageTransport<Out>): void;
  /**
   * A message arrived.
   *
   * @param message - the message, decoded by the layers outside.
   */
  messageReceived(message: In): void;
  /**
   * The peer will send no more.
   *
   * @returns a truthy value to keep the connection open for writing; otherwise it is closed.
   */
  eofReceived?(): boolean | void;
  /**
   * The connection is closed or lost.
   *
   * @param exc - the error it was lost with, or `null`.
   */
  connectionLost(exc: Error | null): void;
  /** The transport's write buffer went over its high-water mark. */
  pauseWriting?(): void;
  /** The transport's write buffer drained below its low-water mark. */
  resumeWriting?(): void;
  /**
   * A message for this layer was refused by a layer outside it (it could not be decoded, or failed validation);
   * `answer()` writes that layer's reply to it (or closes the connection). Call `answer()` when it is that
   * message's turn to be answered, so that replies keep the order of the requests. Without this method the
   * refusing layer answers at once.
   *
   * @param error - why the message was refused.
   * @param answer - writes the reply (through the refusing layer) or closes the connection.
   */
  messageRefused?(error: Error, answer: () => void): void;
  /**
   * Graceful shutdown was asked for (the server is draining): finish what is in progress, take no new work, and
   * close the connection when idle. Without this method the pipeline closes the connection at once (flushing).
   */
  shutdown?(): void;
}

/**
 * A pipeline stage: given the inner layer's protocol for one connection, returns the protocol the outer layer
 * talks to. Called once per connection.
 *
 * `OuterIn`/`OuterOut` are the messages this stage exchanges with the layer outside it (bytes for the first
 * stage), `InnerIn`/`InnerOut` those it exchanges with the layer inside it.
 */
export type Stage<OuterIn, OuterOut, InnerIn, InnerOut> = (
  inner: MessageProtocol<InnerIn, InnerOut>,
) => MessageProtocol<OuterIn, OuterOut>;

/** The innermost layer of a pipeline: makes the protocol that handles one connection's messages. */
export type Endpoint<In, Out> = () => MessageProtocol<In, Out>;

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * The base of a stage's per-connection protocol: the outer layer's protocol and the inner layer's transport at
 * once. By default it passes everything through unchanged; subclasses override `messageReceived` (decode) and
 * `write` (encode), and what else they need.
 */
export abstract class StageProtocol<OuterIn, OuterOut, InnerIn, InnerOut>
  implements MessageProtocol<OuterIn, OuterOut>, MessageTransport<InnerOut>
{
  /** The layer inside this one. */
  protected readonly inner: MessageProtocol<InnerIn, InnerOut>;
  /** The connection as seen by this layer (set by `connectionMade`). */
  protected outer!: MessageTransport<OuterOut>;

  /** @param inner - the layer inside this one. */
  constructor(inner: MessageProtocol<InnerIn, InnerOut>) {
    this.inner = inner;
  }

  /** Keeps the outer transport, then tells the inner layer, with this layer as its transport. */
  connectionMade(transport: MessageTransport<OuterOut>): void {
    this.outer = transport;
    this.inner.connectionMade(this);
  }

  /** Decodes a message of the outer layer and hands the result to `this.inner.messageReceived`. */
  abstract messageReceived(message: OuterIn): void;

  /** Encodes a message of the inner layer and writes the result with `this.outer.write`. */
  abstract write(message: InnerOut): void;

  eofReceived(): boolean | void {
    return this.inner.eofReceived?.();
  }

  /** Passes a refusal inward, so that the endpoint answers it in turn; answers at once if nothing inside can. */
  messageRefused(error: Error, answer: () => void): void {
    if (this.inner.messageRefused !== undefined) this.inner.messageRefused(error, answer);
    else answer();
  }

  /**
   * Refuses the message being received: `reply` (this layer's inner-side message, encoded by `write`) is its
   * answer, or `undefined` to close the connection; either comes in turn, after the replies to earlier
   * messages.
   *
   * @param error - why.
   * @param reply - the answer, or `undefined`.
   */
  protected refuse(error: Error, reply: InnerOut | undefined): void {
    const answer = reply === undefined ? () => this.close() : () => this.write(reply);
    this.messageRefused(error, answer);
  }

  connectionLost(exc: Error | null): void {
    this.inner.connectionLost(exc);
  }

  pauseWriting(): void {
    this.inner.pauseWriting?.();
  }

  resumeWriting(): void {
    this.inner.resumeWriting?.();
  }

  shutdown(): void {
    if (this.inner.shutdown !== undefined) this.inner.shutdown();
    else this.outer.close();
  }

  drain(): Promise<void> {
    return this.outer.drain();
  }

  isWritingPaused(): boolean {
    return this.outer.isWritingPaused();
  }

  close(): void {
    this.outer.close();
  }

  abort(): void {
    this.outer.abort();
  }

  isClosing(): boolean {
    return this.outer.isClosing();
  }

  pauseReading(): void {
    this.outer.pauseReading();
  }

  resumeReading(): void {
    this.outer.resumeReading();
  }

  writeEof(): void {
    this.outer.writeEof();
  }

  canWriteEof(): boolean {
    return this.outer.canWriteEof();
  }

  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return this.outer.getExtraInfo(name, defaultValue);
  }

  getWriteBufferSize(): number {
    return this.outer.getWriteBufferSize();
  }
}

/**
 * @internal What an app's connection accounting is told by the protocols of its listeners.
 */
export interface ConnectionObserver {
  /**
   * A connection is made; return false to park it (it is started later with `_admit()`, or closed).
   *
   * @param conn - the connection's protocol.
   */
  connectionMade(conn: TrackedConnection): boolean;
  /** The connection is gone. */
  connectionLost(conn: TrackedConnection): void;
}

/** @internal A connection as an app's accounting handles it. */
export interface TrackedConnection {
  /** Graceful close (see `PipelineProtocol.shutdown`). */
  shutdown(): void;
  /** Closes at once, dropping buffered data. */
  abort(): void;
  /** Starts a parked connection. */
  _admit(): void;
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

/**
 * The loopwork `Protocol` at the bottom of a pipeline: it adapts the transport to the outermost layer (bytes in,
 * bytes out) and keeps write flow control (`drain()`). Made by the factory {@link pipeline} returns.
 */
export class PipelineProtocol extends Protocol implements MessageTransport<Uint8Array>, TrackedConnection {
  /** The outermost layer. */
  readonly outer: MessageProtocol<Buffer, Uint8Array>;
  /** @internal The app's connection accounting (`maxConnections`, graceful shutdown), if any. */
  _observer: ConnectionObserver | null = null;
  #transport: Transport | null = null;
  #parked = false;
  #writingPaused = false;
  #lost = false;
  #waiters: Waiter[] | null = null;

  /** @param outer - the outermost layer of this connection. */
  constructor(outer: MessageProtocol<Buffer, Uint8Array>) {
    super();
    this.outer = outer;
  }

  override connectionMade(transport: BaseTransport): void {
    this.#transport = transport as Transport;
    this.transport = transport as Transport;
    if (this._observer !== null && !this._observer.connectionMade(this)) {
      // Over the connection limit: nothing is read, and the pipeline is not started, until admitted.
      this.#parked = true;
      this.#transport.pauseReading();
      return;
    }
    this.outer.connectionMade(this);
  }

  /** @internal Starts a connection the observer had parked. */
  _admit(): void {
    if (!this.#parked || this.#lost) return;
    this.#parked = false;
    this.outer.connectionMade(this);
    this.#transport?.resumeReading();
  }

  override dataReceived(data: Buffer): void {
    this.outer.messageReceived(data);
  }

  override eofReceived(): boolean | void {
    return this.outer.eofReceived?.();
  }

  override connectionLost(exc: Error | null): void {
    this.#lost = true;
    const waiters = this.#waiters;
    this.#waiters = null;
    if (waiters !== null) {
      const err = new ConnectionLostError('Connection lost', exc === null ? undefined : { cause: exc });
      for (const w of waiters) w.reject(err);
    }
    try {
      if (!this.#parked) this.outer.connectionLost(exc);
    } finally {
      this._observer?.connectionLost(this);
    }
  }

  override pauseWriting(): void {
    this.#writingPaused = true;
    this.outer.pauseWriting?.();
  }

  override resumeWriting(): void {
    this.#writingPaused = false;
    const waiters = this.#waiters;
    this.#waiters = null;
    if (waiters !== null) for (const w of waiters) w.resolve();
    this.outer.resumeWriting?.();
  }

  /**
   * Asks the pipeline to close gracefully: the outermost layer's `shutdown()` decides when (HTTP/1.1 finishes
   * the requests in progress); without one, the connection is closed at once, flushing what is buffered.
   */
  shutdown(): void {
    if (this.#lost) return;
    if (this.#parked) {
      this.close();
      return;
    }
    if (this.outer.shutdown !== undefined) this.outer.shutdown();
    else this.close();
  }

  write(data: Uint8Array): void {
    this.#transport?.write(data);
  }

  drain(): Promise<void> {
    // Writes to a closing transport are dropped: a writer waiting to send more would wait for nothing.
    if (this.#lost || this.#transport?.isClosing() === true) {
      return Promise.reject(new ConnectionLostError('Connection lost'));
    }
    if (!this.#writingPaused) return RESOLVED;
    return new Promise<void>((resolve, reject) => (this.#waiters ??= []).push({ resolve, reject }));
  }

  isWritingPaused(): boolean {
    return this.#writingPaused;
  }

  close(): void {
    this.#transport?.close();
  }

  abort(): void {
    this.#transport?.abort();
  }

  isClosing(): boolean {
    return this.#lost || (this.#transport?.isClosing() ?? false);
  }

  pauseReading(): void {
    this.#transport?.pauseReading();
  }

  resumeReading(): void {
    this.#transport?.resumeReading();
  }

  writeEof(): void {
    const t = this.#transport;
    if (t !== null && t.canWriteEof()) t.writeEof();
  }

  canWriteEof(): boolean {
    return this.#transport?.canWriteEof() ?? false;
  }

  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    const t = this.#transport;
    return t === null ? defaultValue : t.getExtraInfo(name, defaultValue);
  }

  getWriteBufferSize(): number {
    return this.#transport?.getWriteBufferSize() ?? 0;
  }
}

// The stage types chain: each stage's inner messages are the next one's outer messages. Overloads up to eight
// stages keep the chain checked; the endpoint's messages are the last stage's inner ones.
type S<A, B, C, D> = Stage<A, B, C, D>;
type Bytes = Buffer;
type BytesOut = Uint8Array;

/**
 * Composes stages and an endpoint into a protocol factory that `loop.createServer()` and
 * `loop.createUnixServer()` take: each connection gets a fresh layer of every stage, outermost first.
 *
 * @param layers - the stages, outermost (bytes) first, then the endpoint.
 * @returns a factory of {@link PipelineProtocol}s.
 * @throws TypeError when a layer is not a function.
 * @example
 * ```ts
 * const factory = pipeline(lines({ maxLength: 4096 }), utf8(), json(), validate(Command), handle(onCommand));
 * const server = await loop.createServer(factory, '127.0.0.1', 7000);
 * ```
 */
export function pipeline(endpoint: Endpoint<Bytes, BytesOut>): ProtocolFactory<PipelineProtocol>;
export function pipeline<A, B>(
  s1: S<Bytes, BytesOut, A, B>,
  endpoint: Endpoint<A, B>,
): ProtocolFactory<PipelineProtocol>;
export function pipeline<A, B, C, D>(
  s1: S<Bytes, BytesOut, A, B>,
  s2: S<A, B, C, D>,
  endpoint: Endpoint<C, D>,
): ProtocolFactory<PipelineProtocol>;
export function pipeline<A, B, C, D, E, F>(
  s1: S<Bytes, BytesOut, A, B>,
  s2: S<A, B, C, D>,
  s3: S<C, D, E, F>,
  endpoint: Endpoint<E, F>,
): ProtocolFactory<PipelineProtocol>;
export function pipeline<A, B, C, D, E, F, G, H>(
  s1: S<Bytes, BytesOut, A, B>,
  s2: S<A, B, C, D>,
  s3: S<C, D, E, F>,
  s4: S<E, F, G, H>,
  endpoint: Endpoint<G, H>,
): ProtocolFactory<PipelineProtocol>;
export function pipeline<A, B, C, D, E, F, G, H, I, J>(
  s1: S<Bytes, BytesOut, A, B>,
  s2: S<A, B, C, D>,
  s3: S<C, D, E, F>,
  s4: S<E, F, G, H>,
  s5: S<G, H, I, J>,
  endpoint: Endpoint<I, J>,
): ProtocolFactory<PipelineProtocol>;
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, L>(
  s1: S<Bytes, BytesOut, A, B>,
  s2: S<A, B, C, D>,
  s3: S<C, D, E, F>,
  s4: S<E, F, G, H>,
  s5: S<G, H, I, J>,
  s6: S<I, J, K, L>,
  endpoint: Endpoint<K, L>,
): ProtocolFactory<PipelineProtocol>;
export function pipeline<A, B, C, D, E, F, G, H, I, J, K, L, M, N>(
  s1: S<Bytes, BytesOut, A, B>,
  s2: S<A, B, C, D>,
  s3: S<C, D, E, F>,
  s4: S<E, F, G, H>,
  s5: S<G, H, I, J>,
  s6: S<I, J, K, L>,
  s7: S<K, L, M, N>,
  endpoint: Endpoint<M, N>,
): ProtocolFactory<PipelineProtocol>;
export function pipeline(
  ...layers: (Stage<unknown, unknown, unknown, unknown> | Endpoint<unknown, unknown>)[]
): ProtocolFactory<PipelineProtocol>;
export function pipeline(
  ...layers: (Stage<unknown, unknown, unknown, unknown> | Endpoint<unknown, unknown>)[]
): ProtocolFactory<PipelineProtocol> {
  if (layers.length === 0) throw new TypeError('pipeline() needs at least an endpoint');
  for (const [i, layer] of layers.entries()) {
    if (typeof layer !== 'function') {
      throw new TypeError(`pipeline() layer ${i} must be a stage or an endpoint function, got ${typeof layer}`);
    }
  }
  const endpoint = layers[layers.length - 1] as Endpoint<unknown, unknown>;
  const stages = layers.slice(0, -1) as Stage<unknown, unknown, unknown, unknown>[];
  return () => {
    let proto = endpoint();
    for (let i = stages.length - 1; i >= 0; i--) proto = stages[i]!(proto);
    return new PipelineProtocol(proto as MessageProtocol<Buffer, Uint8Array>);
  };
}
