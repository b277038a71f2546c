/**
 * `handle(fn)`: the endpoint of a message pipeline, calling a handler for each message and writing its replies in
 * the order the messages came.
 *
 * @module
 */
import { getRunningLoopOrNull, isThenable } from '@loopwork/server';
import type { Endpoint, MessageProtocol, MessageTransport } from './pipeline.js';

/** What a message handler gets besides the message: its connection, and state that lives as long as it. */
export interface MessageContext<Out> {
  /** The connection as seen from the endpoint: `write`, `drain`, `close`, `getExtraInfo`, … */
  readonly transport: MessageTransport<Out>;
  /** Per-connection state, for the handler's own use; empty at first. */
  readonly state: Record<string, unknown>;
  /** The peer's address (`[host, port]` for TCP, a path for Unix sockets), or `null`. */
  readonly peer: unknown;
  /**
   * Writes a message now, ahead of the handler's returned reply (for handlers that answer with several messages).
   *
   * @param message - the message.
   */
  write(message: Out): void;
  /** Waits until the connection's write buffer has drained (see `MessageTransport.drain`). */
  drain(): Promise<void>;
  /** Closes the connection once the replies so far are flushed. */
  close(): void;
}

/**
 * A message handler: returns the reply to write (or `undefined` for none), directly or as a promise.
 *
 * @param message - the message, decoded by the stages.
 * @param ctx - the connection's context.
 */
export type MessageHandler<In, Out> = (
  message: In,
  ctx: MessageContext<Out>,
) => Out | undefined | void | PromiseLike<Out | undefined | void>;

/** Options of {@link handle}. */
export interface HandleOptions<Out> {
  /** Called when a connection is made (to fill `ctx.state`, or greet with `ctx.write`). */
  readonly onConnect?: (ctx: MessageContext<Out>) => void;
  /** Called when the connection is closed or lost. */
  readonly onDisconnect?: (ctx: MessageContext<Out>, exc: Error | null) => void;
  /**
   * The reply to a message whose handler threw or rejected; `undefined` (the default) closes the connection.
   * Either way the error is reported to the loop's exception handler (the app's logger).
   */
  readonly onError?: (error: unknown, ctx: MessageContext<Out>) => Out | undefined;
  /** How many received messages may wait for a slow handler before reading pauses; default 64. */
  readonly maxQueued?: number;
}

/**
 * Makes the endpoint of a message pipeline: `handler(message, ctx)` is called for each message, one at a time per
 * connection, and what it returns is written back. A handler that returns a value (not a promise) is answered in
 * the same callback; one that returns a promise holds the messages after it until it settles, so replies keep
 * the order of the requests (pipelining). An `undefined` result writes nothing.
 *
 * @param handler - the message handler.
 * @param options - connection hooks and error policy.
 * @returns the endpoint, for {@link pipeline}'s last argument.
 * @example
 * ```ts
 * const factory = pipeline(lines(), utf8(), handle((line: string) => `you said: ${line}`));
 * ```
 */
export function handle<In, Out>(handler: MessageHandler<In, Out>, options: HandleOptions<Out> = {}): Endpoint<In, Out> {
  if (typeof handler !== 'function') throw new TypeError('handle() needs a handler function');
  const maxQueued = options.maxQueued ?? 64;
  if (!Number.isInteger(maxQueued) || maxQueued < 1) throw new RangeError('maxQueued must be a positive integer');
  return () => new HandlerProtocol(handler, options, maxQueued);
}

/** A refused message in the queue: its answer is written when its turn comes. */
class Refusal {
  constructor(readonly answer: () => void) {}
}

class HandlerProtocol<In, Out> implements MessageProtocol<In, Out>, MessageContext<Out> {
  readonly state: Record<string, unknown> = {};
  transport!: MessageTransport<Out>;
  readonly #handler: MessageHandler<In, Out>;
  readonly #options: HandleOptions<Out>;
  readonly #maxQueued: number;
  /** Messages (and refusals to answer) waiting for the handler of an earlier one to settle. */
  #queue: (In | Refusal)[] = [];
  #busy = false;
  #readingPaused = false;
  /** The transport's write buffer is over its high-water mark: messages wait, and reading stops. */
  #writePaused = false;
  #closing = false;
  #lost = false;

  constructor(handler: MessageHandler<In, Out>, options: HandleOptions<Out>, maxQueued: number) {
    this.#handler = handler;
    this.#options = options;
    this.#maxQueued = maxQueued;
  }

  get peer(): unknown {
    return this.transport.getExtraInfo('peername', null);
  }

  connectionMade(transport: MessageTransport<Out>): void {
    this.transport = transport;
    this.#options.onConnect?.(this);
  }

  messageReceived(message: In): void {
    if (this.#closing) return;
    this.#enqueue(message);
  }

  messageRefused(_error: Error, answer: () => void): void {
    if (this.#closing) return;
    this.#enqueue(new Refusal(answer));
  }

  #enqueue(message: In | Refusal): void {
    if (this.#busy || this.#writePaused) {
      this.#queue.push(message);
      if (!this.#readingPaused && this.#queue.length >= this.#maxQueued) {
        this.#readingPaused = true;
        this.transport.pauseReading();
      }
      return;
    }
    this.#run(message);
  }

  /** Runs the handler on one message; while its promise is pending, later messages queue. */
  #run(message: In | Refusal): void {
    if (message instanceof Refusal) {
      message.answer();
      return;
    }
    let result: ReturnType<MessageHandler<In, Out>>;
    try {
      result = this.#handler(message, this);
    } catch (err) {
      this.#failed(err);
      return;
    }
    if (isThenable(result)) {
      this.#busy = true;
      (result as PromiseLike<Out | undefined | void>).then(
        (reply) => this.#settled(reply),
        (err: unknown) => {
          this.#failed(err);
          this.#next();
        },
      );
      return;
    }
    if (result !== undefined) this.transport.write(result as Out);
  }

  #settled(reply: Out | undefined | void): void {
    if (!this.#lost && reply !== undefined) this.transport.write(reply as Out);
    this.#next();
  }

  #next(): void {
    this.#busy = false;
    this.#pump();
  }

  /** Runs the queued messages while no handler is pending and the peer reads; reading follows. */
  #pump(): void {
    while (!this.#busy && !this.#writePaused && this.#queue.length > 0 && !this.#lost) {
      this.#run(this.#queue.shift()!);
    }
    if (this.#lost) return;
    if (this.#readingPaused && !this.#writePaused && this.#queue.length < this.#maxQueued / 2) {
      this.#readingPaused = false;
      this.transport.resumeReading();
    }
    if (!this.#busy && this.#queue.length === 0 && this.#closing) this.transport.close();
  }

  /**
   * The peer does not read what is written (a client that sends and never reads): messages wait and reading
   * stops, so that its replies cannot fill the server's memory; both go on when the buffer drains.
   */
  pauseWriting(): void {
    this.#writePaused = true;
    if (!this.#readingPaused && !this.#lost) {
      this.#readingPaused = true;
      this.transport.pauseReading();
    }
  }

  resumeWriting(): void {
    this.#writePaused = false;
    if (!this.#busy) this.#pump();
  }

  #failed(err: unknown): void {
    const loop = getRunningLoopOrNull();
    loop?.callExceptionHandler({
      message: 'Error in message handler',
      exception: err,
      transport: this.transport,
      peer: this.peer,
    });
    if (this.#lost) return;
    const reply = this.#options.onError?.(err, this);
    if (reply === undefined) {
      this.#queue = [];
      this.#closing = true;
      this.transport.close();
    } else {
      this.transport.write(reply);
    }
  }

  eofReceived(): boolean {
    // Answer what was asked before closing: keep the write side open while handlers are running.
    this.#closing = true;
    return this.#busy || this.#queue.length > 0;
  }

  connectionLost(exc: Error | null): void {
    this.#lost = true;
    this.#queue = [];
    this.#options.onDisconnect?.(this, exc);
  }

  shutdown(): void {
    this.#closing = true;
    this.transport.pauseReading();
    if (!this.#busy) this.transport.close();
  }

  write(message: Out): void {
    this.transport.write(message);
  }

  drain(): Promise<void> {
    return this.transport.drain();
  }

  close(): void {
    this.#closing = true;
    this.transport.close();
  }
}
