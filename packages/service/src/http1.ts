/**
 * HTTP/1.1 as a pipeline stage on loopwork transports: `http1(options)` turns a connection's bytes into
 * {@link HttpExchange}s (a request and the means to answer it) for the layer inside, and writes the answers back
 * in the order the requests came (pipelining), one `write` per complete response.
 *
 * The connection's life: keep-alive (HTTP/1.1 default, `Connection: keep-alive` for 1.0), `Expect: 100-continue`
 * answered when the request's turn comes, bodies in `Content-Length` or chunked framing both ways, `HEAD`
 * answered with the head of what `GET` would send. Anything the parser refuses (limits: 413/414/431; smuggling
 * shapes: 400; CONNECT: 501; other versions: 505) is answered with that status and `Connection: close` after the
 * responses before it, and the connection is closed once the client has read it (lingering close: our side is
 * shut for writing and what the client still sends is read and dropped, for at most `lingerTimeout`).
 *
 * Timeouts (seconds): an idle keep-alive connection is closed after `keepAliveTimeout`; a request head that takes
 * more than `headersTimeout` from its first byte (slowloris) and a request not fully received within
 * `requestTimeout` get 408 and the connection is closed; a handler that has not started its response within
 * `handlerTimeout` gets 503 for it and the connection is closed after. One timer per connection, re-armed lazily.
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import type { BaseEventLoop, TimerHandle } from '@loopwork/server';
import { getRunningLoop } from '@loopwork/server';
import { HttpParseError } from './framing/errors.js';
import type { Http1ParserOptions, ParsedRequest } from './framing/http1-parser.js';
import { Http1Parser } from './framing/http1-parser.js';
import type { OutgoingHeaders } from './framing/http1-writer.js';
import { CONTINUE, ChunkedEncoder, serializeResponse, serializeResponseHead } from './framing/http1-writer.js';
import { ConnectionLostError } from './errors.js';
import type { MessageProtocol, MessageTransport, Stage } from './pipeline.js';

/** Options of {@link http1}. Limits are in bytes, timeouts in seconds; `null` or `Infinity` turns a timeout off. */
export interface Http1Options {
  /** Largest request head, in bytes; default 16384; 431 past it. */
  readonly maxHeaderSize?: number;
  /** Most header lines in a head; default 100; 431 past it. */
  readonly maxHeaderCount?: number;
  /** Longest request-target, in bytes; default 8192; 414 past it. */
  readonly maxUrlLength?: number;
  /** Largest request body after chunked decoding, in bytes; default 1048576 (1 MiB); 413 past it. */
  readonly maxBodySize?: number;
  /** Seconds an idle keep-alive connection stays open; default 5. */
  readonly keepAliveTimeout?: number | null;
  /** Seconds from the first byte of a request head to its end (slowloris); default 60; 408 past it. */
  readonly headersTimeout?: number | null;
  /** Seconds from the first byte of a request to the end of its body; default 300; 408 past it. */
  readonly requestTimeout?: number | null;
  /** Seconds from a request's arrival to the start of its response; default none; 503 past it. */
  readonly handlerTimeout?: number | null;
  /** Seconds to keep reading (and dropping) after an error response, so the client can read it; default 2. */
  readonly lingerTimeout?: number;
  /** Requests received and not yet answered before reading pauses (pipelining depth); default 64. */
  readonly maxPipelined?: number;
}

/** The layer inside `http1`: an endpoint (or stage) that receives {@link HttpExchange}s. */
export interface HttpHandlerProtocol extends MessageProtocol<HttpExchange, never> {
  /**
   * A request asks for `100 Continue` before sending its body (it is complete but for the body): return `null`
   * to let it come, or a status (417, 404, 413, …) to answer at once and close the connection without reading
   * the body, or a {@link ContinueRefusal} to give that answer headers (`Allow` on a 405) and a message.
   * Without this method every such request gets `100 Continue`.
   *
   * @param request - the request head.
   */
  expectContinue?(request: ParsedRequest): number | ContinueRefusal | null;
}

/** The answer to a request whose `Expect: 100-continue` is refused: its status, headers and message. */
export interface ContinueRefusal {
  /** The status (4xx or 5xx). */
  readonly status: number;
  /** Headers for the answer, e.g. `allow` on a 405. */
  readonly headers?: OutgoingHeaders;
  /** The `message` of the JSON error body. */
  readonly message?: string;
}

const DEFAULTS = {
  keepAliveTimeout: 5,
  headersTimeout: 60,
  requestTimeout: 300,
  lingerTimeout: 2,
  maxPipelined: 64,
};

interface ResolvedOptions {
  readonly parser: Http1ParserOptions;
  readonly keepAliveTimeout: number;
  readonly headersTimeout: number;
  readonly requestTimeout: number;
  readonly handlerTimeout: number;
  readonly lingerTimeout: number;
  readonly maxPipelined: number;
}

function seconds(name: string, value: number | null | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === null) return Infinity;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number of seconds or null, got ${String(value)}`);
  }
  return value;
}

/** @internal Checks and completes `http1` options. */
export function resolveHttp1Options(options: Http1Options): ResolvedOptions {
  const parser: { -readonly [K in keyof Http1ParserOptions]: Http1ParserOptions[K] } = { body: 'stream' };
  if (options.maxHeaderSize !== undefined) parser.maxHeaderSize = options.maxHeaderSize;
  if (options.maxHeaderCount !== undefined) parser.maxHeaderCount = options.maxHeaderCount;
  if (options.maxUrlLength !== undefined) parser.maxUrlLength = options.maxUrlLength;
  if (options.maxBodySize !== undefined) parser.maxBodySize = options.maxBodySize;
  // Let the parser check the limits now, not at the first connection.
  new Http1Parser({ onRequest() {} }, parser);
  const maxPipelined = options.maxPipelined ?? DEFAULTS.maxPipelined;
  if (!Number.isInteger(maxPipelined) || maxPipelined < 1) {
    throw new RangeError(`maxPipelined must be a positive integer, got ${String(maxPipelined)}`);
  }
  return {
    parser,
    keepAliveTimeout: seconds('keepAliveTimeout', options.keepAliveTimeout, DEFAULTS.keepAliveTimeout),
    headersTimeout: seconds('headersTimeout', options.headersTimeout, DEFAULTS.headersTimeout),
    requestTimeout: seconds('requestTimeout', options.requestTimeout, DEFAULTS.requestTimeout),
    handlerTimeout: seconds('handlerTimeout', options.handlerTimeout, Infinity),
    lingerTimeout: seconds('lingerTimeout', options.lingerTimeout, DEFAULTS.lingerTimeout),
    maxPipelined,
  };
}

/**
 * The HTTP/1.1 framing stage: bytes in, {@link HttpExchange}s to the inner layer, responses out.
 *
 * @param options - limits and timeouts.
 * @returns the stage, for {@link pipeline}.
 * @throws RangeError for an invalid limit or timeout.
 * @example
 * ```ts
 * const factory = pipeline(http1({ maxBodySize: 65536 }), () => new MyHttpHandler());
 * await loop.createServer(factory, '127.0.0.1', 8080);
 * ```
 */
export function http1(options: Http1Options = {}): Stage<Buffer, Uint8Array, HttpExchange, never> {
  const resolved = resolveHttp1Options(options);
  return (inner) => new Http1Connection(inner as HttpHandlerProtocol, resolved);
}

const EMPTY = Buffer.alloc(0);
/** Pipelined responses up to this many bytes in all are copied into one buffer for one write. */
const BATCH_COPY_LIMIT = 64 * 1024;
/** A batch of responses this large is written at once, even mid-chunk. */
const BATCH_FLUSH_LIMIT = 64 * 1024;
/**
 * Seconds an idle keep-alive connection stays readable after a graceful shutdown began: long enough for a
 * request already sent to arrive (a round trip, a busy peer), short enough not to hold the shutdown.
 */
const IDLE_SHUTDOWN_GRACE = 1;
const RESOLVED: Promise<void> = Promise.resolve();

// Exchange states.
const PENDING = 0; // no response yet
const STREAMING = 1; // head sent (or queued), body being written
const DONE = 2; // the response is complete (perhaps still queued behind earlier ones)

/** How an exchange ended, as its `onFinish` callback is told. */
export type ExchangeOutcome = 'completed' | 'aborted';

/**
 * One request on a connection and its response.
 *
 * Answer with `respond()` (a whole response, one write) or with `startResponse()`, `write()`* and `end()` (a
 * streamed body, chunked unless the length is given). The response goes out when every earlier request on the
 * connection has been answered; until then it is held in memory (so a streaming handler should `await drain()`,
 * which also waits for its turn). Whatever is answered after the connection is lost is dropped.
 */
export class HttpExchange {
  /** The request head (its `body` is empty: the body is {@link HttpExchange.body}). */
  readonly request: ParsedRequest;
  /** The request body: empty when there is none. */
  body: Buffer = EMPTY;
  /** Loop time (seconds) when the first byte of the request arrived. */
  readonly startTime: number;
  /** The status sent (0 until the response starts). */
  status = 0;
  /** For the inner layer's own use (the app keeps its request state here). */
  context: unknown = undefined;
  /**
   * Called once when the exchange ends: its response fully handed to the transport (`'completed'`), or the
   * connection lost before that (`'aborted'`).
   */
  onFinish: ((exchange: HttpExchange, outcome: ExchangeOutcome) => void) | null = null;

  /** @internal */
  _state = PENDING;
  /** @internal output held while an earlier exchange is still answering. */
  _held: Uint8Array[] | null = null;
  /** @internal the response closes the connection. */
  _close = false;
  /** @internal 100 Continue is owed when this exchange's turn comes. */
  _continue = false;
  /** @internal the body is not read (answered before it came): drop it. */
  _dropBody = false;
  /** @internal the request is complete and was handed to the inner layer. */
  _dispatched = false;
  /** @internal loop time of the dispatch. */
  _dispatchedAt = 0;
  /** @internal body pieces while it arrives. */
  _chunks: Buffer[] | null = null;
  /** @internal */
  _encoder: ChunkedEncoder | null = null;
  /** @internal the response carries no body on the wire (HEAD, 1xx, 204, 304). */
  _bodiless = false;
  /** @internal remaining bytes of a fixed-length streamed body, or -1. */
  _remaining = -1;
  /** @internal waiters of `drain()` for this exchange's turn. */
  _turnWaiters: (() => void)[] | null = null;
  /** @internal */
  _abort: AbortController | null = null;
  /** @internal */
  readonly _conn: Http1Connection;

  /** @internal Exchanges are made by the `http1` stage. */
  constructor(conn: Http1Connection, request: ParsedRequest, startTime: number) {
    this._conn = conn;
    this.request = request;
    this.startTime = startTime;
  }

  /** True once a response was started (its head sent or queued). */
  get headersSent(): boolean {
    return this._state !== PENDING;
  }

  /** True once the response is complete. */
  get finished(): boolean {
    return this._state === DONE;
  }

  /** True once the connection is lost: nothing answered now reaches the client. */
  get aborted(): boolean {
    return this._conn._lost;
  }

  /** The connection, as the inner layer sees it (for `getExtraInfo('peername')`, …). */
  get transport(): MessageTransport<never> {
    return this._conn;
  }

  /** Aborted when the connection is lost before the response is complete. */
  get signal(): AbortSignal {
    this._abort ??= new AbortController();
    if (this._conn._lost && this._state !== DONE) this._abort.abort(new ConnectionLostError('Connection lost'));
    return this._abort.signal;
  }

  /**
   * Sends a whole response in one write: the head with its `Content-Length`, then the body (not for HEAD).
   *
   * @param status - the status code.
   * @param headers - header fields (not `Content-Length`, `Transfer-Encoding` or `Connection`, which are the
   *   stage's).
   * @param body - the body: a string is sent as UTF-8.
   * @throws InvalidStateError-like `Error` when a response was already started; the writer's
   *   InvalidHttpHeaderError / InvalidHttpResponseError for what HTTP cannot carry (nothing is sent then).
   */
  respond(status: number, headers?: OutgoingHeaders, body?: string | Uint8Array | null): void {
    if (this._state !== PENDING) throw new Error('The response was already started');
    const conn = this._conn;
    const req = this.request;
    const keepAlive = conn._keepAliveFor(this);
    const bytes = serializeResponse({
      status,
      headers,
      body,
      keepAlive,
      httpVersion: req.httpVersion,
      head: req.method === 'HEAD',
    });
    this.status = status;
    this._close = !keepAlive;
    this._state = DONE;
    conn._output(this, bytes);
    conn._finished(this);
  }

  /**
   * Starts a streamed response: sends the head; the body follows with `write()` and ends with `end()`.
   *
   * @param status - the status code.
   * @param headers - header fields, as for `respond()`.
   * @param length - the body's length in bytes when known (no chunked framing then); by default the body is
   *   chunked (HTTP/1.1) or ends with the connection (HTTP/1.0).
   * @throws as `respond()`.
   */
  startResponse(status: number, headers?: OutgoingHeaders, length?: number): void {
    if (this._state !== PENDING) throw new Error('The response was already started');
    const conn = this._conn;
    const req = this.request;
    let keepAlive = conn._keepAliveFor(this);
    const bodiless = req.method === 'HEAD' || status < 200 || status === 204 || status === 304;
    const framing: number | 'chunked' | 'close' = length ?? (req.httpVersion === '1.0' ? 'close' : 'chunked');
    if (framing === 'close') keepAlive = false;
    const head = serializeResponseHead({ status, headers, keepAlive, httpVersion: req.httpVersion, framing });
    this.status = status;
    this._close = !keepAlive;
    this._state = STREAMING;
    this._bodiless = bodiless;
    if (!bodiless) {
      if (framing === 'chunked') this._encoder = new ChunkedEncoder();
      else if (typeof framing === 'number') this._remaining = framing;
    }
    conn._output(this, head);
  }

  /**
   * Writes a piece of a streamed body. Never blocks: await `drain()` to respect backpressure.
   *
   * @param chunk - bytes, or a string sent as UTF-8.
   * @returns false when the writer should wait for `drain()` (writing is paused, or it is not this response's
   *   turn yet), true otherwise.
   * @throws Error when no streamed response was started, or past the announced length.
   */
  write(chunk: string | Uint8Array): boolean {
    if (this._state !== STREAMING) throw new Error('write() needs a streamed response (startResponse) not ended yet');
    const conn = this._conn;
    // A closing connection sends nothing more: the writer learns it from drain(), which rejects.
    if (!conn._writable()) return false;
    if (this._bodiless) return true;
    const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (data.byteLength === 0) return true;
    if (this._encoder !== null) {
      conn._output(this, this._encoder.encode(data));
    } else {
      if (this._remaining >= 0) {
        if (data.byteLength > this._remaining) throw new Error('write() past the announced Content-Length');
        this._remaining -= data.byteLength;
      }
      conn._output(this, data);
    }
    return conn._turn(this) && !conn.isWritingPaused();
  }

  /**
   * Ends a streamed body (with trailer fields, for a chunked one).
   *
   * @param trailers - trailer fields (chunked bodies only; ignored otherwise).
   * @throws Error when no streamed response was started, or when a fixed-length body is short (the connection is
   *   then closed after what was written, since the client cannot tell where the response ends).
   */
  end(trailers?: OutgoingHeaders): void {
    if (this._state !== STREAMING) throw new Error('end() needs a streamed response (startResponse) not ended yet');
    const conn = this._conn;
    this._state = DONE;
    let short = false;
    if (!this._bodiless) {
      if (this._encoder !== null) conn._output(this, this._encoder.end(trailers));
      else if (this._remaining > 0) short = true;
    }
    if (short) this._close = true;
    conn._finished(this);
    if (short) throw new Error(`end() with ${this._remaining} bytes of the announced Content-Length not written`);
  }

  /**
   * Waits until it is this response's turn on the connection and the write buffer is below its low-water mark.
   *
   * @returns a promise; it rejects with `ConnectionLostError` when the connection is lost first.
   */
  drain(): Promise<void> {
    const conn = this._conn;
    if (!conn._writable()) return Promise.reject(new ConnectionLostError('Connection lost'));
    if (conn._turn(this)) return conn.isWritingPaused() ? conn.drain() : RESOLVED;
    return new Promise<void>((resolve) => (this._turnWaiters ??= []).push(resolve)).then(() => this.drain());
  }

  /** Closes the connection at once (a streamed response that cannot be completed: the client sees it cut). */
  abortConnection(): void {
    this._conn.abort();
  }
}

/**
 * The per-connection protocol of the `http1` stage. It is the inner layer's transport (`MessageTransport<never>`:
 * answers go through the exchanges).
 *
 * @internal
 */
export class Http1Connection implements MessageProtocol<Buffer, Uint8Array>, MessageTransport<never> {
  readonly #inner: HttpHandlerProtocol;
  readonly #opts: ResolvedOptions;
  readonly #parser: Http1Parser;
  #outer!: MessageTransport<Uint8Array>;
  #loop!: BaseEventLoop;
  /** Exchanges in request order, from the one answering now (index 0). */
  readonly #queue: HttpExchange[] = [];
  /** The exchange whose body is arriving. */
  #receiving: HttpExchange | null = null;
  /** Loop time when the head being received began, or -1. */
  #headStart = -1;
  /** Loop time when the connection went idle. */
  #idleSince = 0;
  #expectContinue = false;
  #timer: TimerHandle | null = null;
  #readingPaused = false;
  /** The transport's write buffer is over its high-water mark: no request is read until it drains. */
  #writePaused = false;
  /** The client half-closed behind requests the parser holds back (paused): the end is handled after them. */
  #eofHeld = false;
  #draining = false;
  /** Loop time when an idle connection that was asked to shut down is closed (see `shutdown()`). */
  #idleGraceEnd = Infinity;
  /** Whether the client has sent anything yet. */
  #spoken = false;
  /** The client half-closed: answer what it sent, then close. */
  #eof = false;
  #lingering = false;
  #closing = false;
  /** Output gathered while a chunk is parsed, or `null` outside `messageReceived`. */
  #batch: Uint8Array[] | null = null;
  #batchBytes = 0;
  /** @internal */
  _lost = false;

  constructor(inner: HttpHandlerProtocol, opts: ResolvedOptions) {
    this.#inner = inner;
    this.#opts = opts;
    this.#parser = new Http1Parser(this, opts.parser);
  }

  // ---- MessageProtocol (from the transport) -------------------------------------------------------------

  connectionMade(transport: MessageTransport<Uint8Array>): void {
    this.#outer = transport;
    this.#loop = getRunningLoop();
    this.#idleSince = this.#loop.time();
    this.#arm(this.#idleSince + this.#opts.keepAliveTimeout);
    this.#inner.connectionMade(this);
  }

  messageReceived(data: Buffer): void {
    if (this.#lingering || this.#closing) return;
    this.#spoken = true;
    if (this.#headStart < 0 && this.#receiving === null) {
      this.#headStart = this.#loop.time();
      if (this.#opts.headersTimeout !== Infinity) this.#arm(this.#headStart + this.#opts.headersTimeout);
    }
    // Responses completed while this chunk is parsed (pipelined requests with synchronous handlers) go out
    // in one write.
    this.#batch = [];
    try {
      this.#parser.feedData(data);
    } catch (err) {
      this.#parseError(err);
      return;
    } finally {
      this.#flush();
    }
    if (this.#receiving === null) {
      // Between requests when the chunk ended on a request boundary; else the next head began in this chunk.
      // Requests the parser holds back (the client does not read its responses) are the server's wait, not the
      // client's: no head clock runs for them until they are parsed.
      if (this.#parser.idle || this.#parser.heldBytes > 0) this.#headStart = -1;
      else if (this.#headStart < 0) this.#headStart = this.#loop.time();
    }
  }

  eofReceived(): boolean {
    if (this.#lingering) {
      this.#closeOuter();
      return false;
    }
    if (this.#parser.heldBytes > 0) {
      // Requests the parser holds back (paused) come first; the end is handled once they are read.
      this.#eofHeld = true;
      return true;
    }
    try {
      this.#parser.feedEof();
    } catch {
      // A request cut short by the client: there is nobody left to answer it.
      const ex = this.#receiving;
      this.#receiving = null;
      if (ex !== null && !ex._dispatched && this.#queue[this.#queue.length - 1] === ex) this.#queue.pop();
    }
    this.#headStart = -1;
    this.#eof = true;
    // Answer what was asked before the client half-closed.
    if (this.#queue.length > 0) return true;
    this.#closing = true;
    return false;
  }

  connectionLost(_exc: Error | null): void {
    this._lost = true;
    this.#timer?.cancel();
    this.#timer = null;
    const queue = this.#queue.splice(0);
    for (const ex of queue) {
      if (ex._state !== DONE || ex._held !== null) {
        ex._abort?.abort(new ConnectionLostError('Connection lost'));
        const waiters = ex._turnWaiters;
        ex._turnWaiters = null;
        if (waiters !== null) for (const w of waiters) w();
        ex._held = null;
        const cb = ex.onFinish;
        ex.onFinish = null;
        if (cb !== null && ex._dispatched) cb(ex, 'aborted');
      }
    }
    this.#inner.connectionLost(_exc);
  }

  /**
   * The responses back up (a client that sends and does not read): no further request is read, pipelined ones
   * included, until they drain, as Node's http server pauses its socket; memory stays bounded by the transport's
   * high-water mark plus one response.
   */
  pauseWriting(): void {
    this.#writePaused = true;
    // Pipelined requests already received stop at the next request boundary too.
    this.#parser.pause();
    this.#pauseReading();
    this.#inner.pauseWriting?.();
  }

  resumeWriting(): void {
    this.#writePaused = false;
    this.#resumeIfRoom();
    this.#inner.resumeWriting?.();
  }

  /**
   * Graceful close: requests already received (and the one arriving) are answered, the last with
   * `Connection: close` (unless its response was already made, with keep-alive, and held behind a slower one:
   * the connection then counts as idle, below); no further request is read. A connection nothing was received on yet is kept for its
   * first request (answered, with `Connection: close`), or until the keep-alive timeout: an HTTP client speaks
   * first, so that request is on its way to a server that accepted the connection. An idle keep-alive
   * connection is kept readable for `IDLE_SHUTDOWN_GRACE` seconds (at most until its keep-alive deadline): a
   * client cannot know yet that the server is closing, so a request it sent meanwhile is answered, with
   * `Connection: close`, instead of meeting a closed connection; one that stays idle is closed then.
   */
  shutdown(): void {
    if (this.#draining || this._lost) return;
    this.#draining = true;
    const midRequest = this.#receiving !== null || this.#headStart >= 0;
    if (midRequest) return;
    if (this.#queue.length > 0) this.#pauseReading();
    else if (this.#spoken) this.#idleUnderShutdown();
  }

  /** An idle connection under shutdown stays readable for `IDLE_SHUTDOWN_GRACE` seconds (see `shutdown()`). */
  #idleUnderShutdown(): void {
    this.#idleGraceEnd = this.#loop.time() + IDLE_SHUTDOWN_GRACE;
    this.#resumeReading();
    this.#arm(Math.min(this.#idleSince + this.#opts.keepAliveTimeout, this.#idleGraceEnd));
  }

  // ---- Http1ParserHandlers ------------------------------------------------------------------------------

  /** @internal */
  onExpectContinue(): void {
    this.#expectContinue = true;
  }

  /** @internal The head is complete (streaming mode: the body follows). */
  onRequest(req: ParsedRequest): void {
    if (this.#closing) return;
    const start = this.#headStart >= 0 ? this.#headStart : this.#loop.time();
    const ex = new HttpExchange(this, req, start);
    this.#queue.push(ex);
    this.#receiving = ex;
    if (this.#expectContinue) {
      this.#expectContinue = false;
      const refusal = this.#inner.expectContinue?.(req) ?? null;
      if (refusal === null) {
        ex._continue = true;
        if (this.#queue[0] === ex) this.#sendContinue(ex);
      } else {
        // Answered without the body: the body will not come (or is dropped), so the connection must end.
        ex._dropBody = true;
        ex._close = true;
        const { status, headers, message } = typeof refusal === 'number' ? { status: refusal } : refusal;
        this.#errorResponse(ex, status, message ?? 'The request was refused before its body was sent', headers);
      }
    }
  }

  /** @internal */
  onBody(chunk: Buffer): void {
    const ex = this.#receiving;
    if (ex === null || ex._dropBody) return;
    (ex._chunks ??= []).push(chunk);
  }

  /** @internal The request is complete. */
  onRequestEnd(): void {
    const ex = this.#receiving;
    if (ex === null) return;
    this.#receiving = null;
    this.#headStart = -1;
    const chunks = ex._chunks;
    ex._chunks = null;
    if (chunks !== null) ex.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    if (this.#draining) this.#pauseReading();
    if (ex._dropBody || ex._state === DONE) return;
    if (this.#queue.length >= this.#opts.maxPipelined) this.#pauseReading();
    ex._dispatched = true;
    if (this.#opts.handlerTimeout !== Infinity) {
      ex._dispatchedAt = this.#loop.time();
      this.#arm(ex._dispatchedAt + this.#opts.handlerTimeout);
    }
    this.#inner.messageReceived(ex);
  }

  // ---- responses -----------------------------------------------------------------------------------------

  /** @internal Whether `ex`'s response may keep the connection open. */
  _keepAliveFor(ex: HttpExchange): boolean {
    if (!ex.request.keepAlive || ex._close || this.#closing) return false;
    if (!this.#draining && !this.#eof) return true;
    // Draining, or the client sends no more: the last request received closes the connection.
    const q = this.#queue;
    return !(q[q.length - 1] === ex && this.#receiving === null && this.#headStart < 0);
  }

  /** @internal True when `ex` is the exchange answering now. */
  _turn(ex: HttpExchange): boolean {
    return this.#queue[0] === ex;
  }

  /** Writes now, or adds to the batch of the chunk being parsed. */
  #send(bytes: Uint8Array): void {
    const batch = this.#batch;
    if (batch === null) this.#outer.write(bytes);
    else {
      batch.push(bytes);
      this.#batchBytes += bytes.byteLength;
      // A large batch goes out now: the transport then says if it backs up, and parsing stops (pauseWriting).
      if (this.#batchBytes >= BATCH_FLUSH_LIMIT) {
        this.#flush();
        this.#batch = [];
      }
    }
  }

  /** Writes the batch: one write (a copy when small, else the pieces in turn). */
  #flush(): void {
    const batch = this.#batch;
    if (batch === null) return;
    this.#batch = null;
    const size = this.#batchBytes;
    this.#batchBytes = 0;
    if (batch.length === 0 || this._lost) return;
    if (batch.length === 1) this.#outer.write(batch[0]!);
    else if (size <= BATCH_COPY_LIMIT) this.#outer.write(Buffer.concat(batch, size));
    else for (const b of batch) this.#outer.write(b);
  }

  #closeOuter(): void {
    this.#flush();
    this.#outer.close();
  }

  /** @internal True while what is written still goes out (the connection is not lost or closing). */
  _writable(): boolean {
    return !this._lost && !this.#outer.isClosing();
  }

  /** @internal Output of `ex`: written now when it is its turn, held otherwise. */
  _output(ex: HttpExchange, bytes: Uint8Array): void {
    if (!this._writable()) return;
    if (this.#queue[0] === ex) this.#send(bytes);
    else (ex._held ??= []).push(bytes);
  }

  /** @internal `ex`'s response is complete: move on to the next ones whose turn it is. */
  _finished(ex: HttpExchange): void {
    if (this._lost || this.#queue[0] !== ex) return;
    const queue = this.#queue;
    let head: HttpExchange | undefined = ex;
    while (head !== undefined && head._state === DONE) {
      queue.shift();
      const close = head._close;
      const cb = head.onFinish;
      head.onFinish = null;
      if (cb !== null) cb(head, 'completed');
      if (close) {
        this.#closeAfterResponse();
        return;
      }
      head = queue[0];
      if (head !== undefined) this.#startTurn(head);
    }
    this.#resumeIfRoom();
    if (queue.length === 0 && this.#receiving === null) {
      if (this.#closing || this.#eof) {
        this.#closeOuter();
        return;
      }
      if (this.#draining && this.#headStart < 0) {
        // The last response went out with keep-alive (it was complete, held behind an earlier one, before the
        // shutdown began): the client may send another request, so the connection is now an idle one under
        // shutdown, readable for the grace period, its next request answered with `Connection: close`.
        this.#idleSince = this.#loop.time();
        this.#idleUnderShutdown();
        return;
      }
      if (this.#headStart < 0) {
        this.#idleSince = this.#loop.time();
        this.#arm(this.#idleSince + this.#opts.keepAliveTimeout);
      }
    }
  }

  /** An exchange becomes the one answering: what it held goes out, 100 Continue if owed, waiters wake. */
  #startTurn(ex: HttpExchange): void {
    if (ex._continue) this.#sendContinue(ex);
    const held = ex._held;
    if (held !== null) {
      ex._held = null;
      if (held.length === 1) this.#send(held[0]!);
      else for (const b of held) this.#send(b);
    }
    const waiters = ex._turnWaiters;
    if (waiters !== null) {
      ex._turnWaiters = null;
      for (const w of waiters) w();
    }
  }

  #sendContinue(ex: HttpExchange): void {
    ex._continue = false;
    // Only while the body is still to come: a request whose body arrived anyway needs no interim response.
    if (this.#receiving === ex && ex._state === PENDING) this.#send(CONTINUE);
  }

  /** Answers `ex` (or a new placeholder exchange) with an error status and closes the connection after it. */
  #errorResponse(ex: HttpExchange | null, status: number, message: string, headers?: OutgoingHeaders): void {
    let target = ex;
    if (target === null || target._state !== PENDING) {
      target = new HttpExchange(this, PLACEHOLDER_REQUEST, this.#loop.time());
      this.#queue.push(target);
    }
    target._close = true;
    // Lingering: what the client still sends is read and dropped, so that closing does not reset the
    // connection under the response.
    this.#lingering = true;
    const body = JSON.stringify({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
    target.respond(status, headers === undefined ? JSON_HEADERS : { ...JSON_HEADERS, ...headers }, body);
  }

  #parseError(err: unknown): void {
    if (!HttpParseError.isInstance(err)) throw err;
    // Bytes after a response that ends the connection (parsed from the same chunk) are leftovers to drop: a
    // second answer would be written after writeEof.
    if (this.#closing || this.#lingering) return;
    const status = (err as InstanceType<typeof HttpParseError>).status;
    const ex = this.#receiving;
    this.#receiving = null;
    this.#headStart = -1;
    // A body cut by a parse error (bad chunk framing, too large) belongs to a request that will not be handled.
    if (ex !== null && ex._state === PENDING) {
      ex._dropBody = true;
      this.#errorResponse(ex, status, err.message);
    } else {
      this.#errorResponse(null, status, err.message);
    }
  }

  #closeAfterResponse(): void {
    this.#closing = true;
    // Abandon what was pipelined after a response that closes the connection.
    for (const ex of this.#queue.splice(0)) {
      const cb = ex.onFinish;
      ex.onFinish = null;
      if (cb !== null && ex._dispatched) cb(ex, 'aborted');
    }
    if (this.#lingering && this.#outer.canWriteEof()) {
      // Shut our side: the client reads the response and closes; until then its bytes are dropped.
      this.#flush();
      this.#outer.writeEof();
      this.#arm(this.#loop.time() + this.#opts.lingerTimeout, true);
    } else {
      this.#closeOuter();
    }
  }

  #pauseReading(): void {
    if (this.#readingPaused) return;
    this.#readingPaused = true;
    this.#outer.pauseReading();
  }

  /** Reading goes on when nothing else holds it: not draining, and room in the pipeline (see `maxPipelined`). */
  #resumeIfRoom(): void {
    if (!this.#draining && this.#queue.length < this.#opts.maxPipelined) this.#resumeReading();
  }

  /** Reading goes on (unless the responses still back up), first with what the parser held back. */
  #resumeReading(): void {
    if (!this.#readingPaused || this.#writePaused || this._lost) return;
    this.#readingPaused = false;
    this.#parser.resume();
    this.#outer.resumeReading();
    if (this.#parser.heldBytes > 0) {
      // Not from inside a handler's call chain: the parser is not reentrant.
      this.#loop.callSoon(() => {
        if (this._lost || this.#closing || this.#readingPaused) return;
        if (this.#parser.heldBytes > 0) this.messageReceived(EMPTY);
        if (this.#eofHeld && this.#parser.heldBytes === 0 && !this.#readingPaused) {
          this.#eofHeld = false;
          if (!this.eofReceived()) this.#closeOuter();
        }
      });
    }
  }

  // ---- the timer -----------------------------------------------------------------------------------------

  /** Makes sure the timer fires no later than `when` (loop time); `force` re-arms it for exactly `when`. */
  #arm(when: number, force = false): void {
    if (when === Infinity || this._lost) return;
    const timer = this.#timer;
    if (timer !== null) {
      if (!force && timer.when() <= when) return;
      timer.cancel();
    }
    this.#timer = this.#loop.callAt(when, this.#onTimer);
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    if (this._lost) return;
    const now = this.#loop.time();
    const o = this.#opts;
    if (this.#lingering) {
      if (this.#closing) this.#closeOuter();
      else this.#arm(now + o.lingerTimeout);
      return;
    }
    let next = Infinity;
    if (this.#receiving !== null) {
      const deadline = this.#receiving.startTime + o.requestTimeout;
      if (now >= deadline) return this.#timeout(408, 'Request timeout: the request was not received in time');
      next = deadline;
    } else if (this.#headStart >= 0) {
      const deadline = this.#headStart + Math.min(o.headersTimeout, o.requestTimeout);
      if (now >= deadline) return this.#timeout(408, 'Request timeout: the request head was not received in time');
      next = deadline;
    } else if (this.#queue.length === 0 && this.#parser.heldBytes === 0) {
      // Idle (requests held back for a slow reader are not idleness).
      const deadline = Math.min(this.#idleSince + o.keepAliveTimeout, this.#idleGraceEnd);
      if (now >= deadline) {
        this.#closing = true;
        this.#closeOuter();
        return;
      }
      next = deadline;
    }
    const head = this.#queue[0];
    if (o.handlerTimeout !== Infinity && head !== undefined && head._dispatched && head._state === PENDING) {
      const deadline = head._dispatchedAt + o.handlerTimeout;
      if (now >= deadline) {
        head._close = true;
        const body = JSON.stringify({
          statusCode: 503,
          error: 'Service Unavailable',
          message: 'The request took too long to handle',
        });
        head.respond(503, JSON_HEADERS, body);
        return;
      }
      next = Math.min(next, deadline);
    }
    // Nothing due: check again at the next deadline, or after a keep-alive period while busy.
    this.#arm(next === Infinity ? now + Math.min(o.keepAliveTimeout, o.headersTimeout, 60) : next);
  };

  #timeout(status: number, message: string): void {
    const ex = this.#receiving;
    this.#receiving = null;
    this.#headStart = -1;
    if (ex !== null) ex._dropBody = true;
    this.#errorResponse(ex, status, message);
  }

  // ---- MessageTransport<never> (for the inner layer) -----------------------------------------------------

  write(_message: never): void {
    throw new Error('HTTP handlers answer through the exchange (respond/startResponse), not write()');
  }

  drain(): Promise<void> {
    return this.#outer.drain();
  }

  isWritingPaused(): boolean {
    return this.#outer.isWritingPaused();
  }

  close(): void {
    if (this.#queue.length === 0) this.#closeOuter();
    else this.shutdown();
  }

  abort(): void {
    this.#outer.abort();
  }

  isClosing(): boolean {
    return this._lost || this.#closing || this.#outer.isClosing();
  }

  pauseReading(): void {
    this.#outer.pauseReading();
  }

  resumeReading(): void {
    this.#outer.resumeReading();
  }

  writeEof(): void {
    this.#outer.writeEof();
  }

  canWriteEof(): boolean {
    return this.#outer.canWriteEof();
  }

  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return this.#outer.getExtraInfo(name, defaultValue);
  }

  getWriteBufferSize(): number {
    return this.#outer.getWriteBufferSize();
  }

  /** True while no request is in progress or waiting for its answer. */
  get idle(): boolean {
    return this.#queue.length === 0 && this.#receiving === null && this.#headStart < 0;
  }
}

const JSON_HEADERS: OutgoingHeaders = Object.freeze({ 'content-type': 'application/json; charset=utf-8' });

/** The request an error response stands for when the parser could not make one. */
const PLACEHOLDER_REQUEST: ParsedRequest = Object.freeze({
  method: 'GET',
  url: '',
  path: '',
  query: '',
  httpVersion: '1.1',
  headers: Object.freeze({}),
  rawHeaders: Object.freeze([]),
  trailers: Object.freeze({}),
  rawTrailers: Object.freeze([]),
  body: EMPTY,
  contentLength: null,
  chunked: false,
  keepAlive: false,
  expectContinue: false,
  upgrade: false,
}) as ParsedRequest;
