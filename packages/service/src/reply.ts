/**
 * The reply object a route handler answers with (fastify's shape): `reply.code(201).header('x-a', '1').send(body)`.
 *
 * What `send` does with a body: an `Error` → answered as if thrown (its status, else the reply's 4xx/5xx status,
 * else 500); an object, array, number, boolean → JSON (`application/json; charset=utf-8`);
 * a string → `text/plain; charset=utf-8`; a Buffer or Uint8Array → `application/octet-stream`; an async iterable
 * (a Node `Readable`, an async generator) → streamed, chunked unless a `content-length` header is set, with
 * backpressure (each chunk waits for the connection to drain), and a Node stream destroyed as soon as the client
 * is gone; `null`/`undefined` → no body. A content type set with `header()` or `type()` wins.
 *
 * With `preSerialization` or `onSend` hooks (see the `hooks` module), `send()` returns at once and the response
 * goes out when the hooks are done; `reply.sent` is true from the call on.
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import { isThenable } from '@loopwork/server';
import { ConnectionLostError, MessageValidationError } from './errors.js';
import type { OutgoingHeaderValue, OutgoingHeaders } from './framing/http1-writer.js';
import type { AppHooks, ErrorHandler, OnSendPayload } from './hooks.js';
import type { HttpExchange } from './http1.js';
import type { Request } from './request.js';

/** @internal What a reply needs of its app. */
export interface ReplyHost {
  /** Reports a handler error to the loop's exception handler (one log line). */
  reportError(error: unknown, reply: Reply): void;
  /** The app's hooks (`preSerialization`, `onSend` and `onError` are the reply's). */
  readonly _hooks: AppHooks;
  /** The app's error handler, if it set one. */
  readonly _errorHandler: ErrorHandler | null;
}

/** @internal The body JSON error replies carry. */
export function errorBody(statusCode: number, message?: string, extra?: Record<string, unknown>): string {
  const error = STATUS_CODES[statusCode] ?? 'Error';
  return JSON.stringify({ statusCode, error, message: message ?? error, ...extra });
}

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const BINARY_TYPE = 'application/octet-stream';
// Shared, frozen: the common replies need no headers object of their own.
const JSON_ONLY: OutgoingHeaders = Object.freeze({ 'content-type': JSON_TYPE });
const TEXT_ONLY: OutgoingHeaders = Object.freeze({ 'content-type': TEXT_TYPE });
const BINARY_ONLY: OutgoingHeaders = Object.freeze({ 'content-type': BINARY_TYPE });

type Headers = Record<string, OutgoingHeaderValue>;

function isAsyncIterable(value: object): value is AsyncIterable<unknown> {
  return typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/** True for a body that `send()` serializes to JSON (what `preSerialization` hooks see). */
function isSerializable(payload: unknown): boolean {
  return (
    payload !== undefined &&
    payload !== null &&
    typeof payload !== 'string' &&
    !(payload instanceof Uint8Array) &&
    !(typeof payload === 'object' && isAsyncIterable(payload))
  );
}

/** A body as it goes out, and the content type it gets unless one was set. */
interface Serialized {
  body: OnSendPayload;
  typed: OutgoingHeaders;
}

/**
 * The response being built for one request.
 */
export class Reply {
  /** The status to send; 200 unless set. */
  statusCode = 200;
  /** The request this replies to. */
  readonly request: Request<unknown, unknown, unknown, unknown>;
  /** @internal */
  readonly _host: ReplyHost;
  /** @internal */
  readonly _ex: HttpExchange;
  #headers: Headers | null = null;
  #sent = false;
  #streaming = false;
  /** An error is being answered by the `onError` hooks and the error handler: another one gets the default. */
  #erroring = false;

  /** @internal Replies are made by the app. */
  constructor(host: ReplyHost, exchange: HttpExchange, request: Request<unknown, unknown, unknown, unknown>) {
    this._host = host;
    this._ex = exchange;
    this.request = request;
  }

  /** True once `send()` (or `writeHead()`) was called. */
  get sent(): boolean {
    return this.#sent;
  }

  /** Milliseconds since the first byte of the request arrived. */
  get elapsedTime(): number {
    return (performance.now() / 1000 - this._ex.startTime) * 1000;
  }

  /**
   * Sets the status.
   *
   * @param statusCode - 100–599.
   * @returns this reply.
   * @throws RangeError for a status outside 100–599.
   */
  code(statusCode: number): this {
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) {
      throw new RangeError(`Invalid status code: ${String(statusCode)}`);
    }
    this.statusCode = statusCode;
    return this;
  }

  /** The same as `code()`. */
  status(statusCode: number): this {
    return this.code(statusCode);
  }

  /**
   * Sets a header field (the name is lowercased). `content-length`, `transfer-encoding` and `connection` are
   * the server's: `connection: close` closes the connection after this response, the others are ignored (a
   * `content-length` on a streamed body makes it fixed-length).
   *
   * @param name - the field name.
   * @param value - the value; an array sends one line per element.
   * @returns this reply.
   */
  header(name: string, value: OutgoingHeaderValue): this {
    const lower = name.toLowerCase();
    (this.#headers ??= {})[lower] = value;
    return this;
  }

  /**
   * Sets several header fields.
   *
   * @param fields - names to values.
   * @returns this reply.
   */
  headers(fields: Readonly<Record<string, OutgoingHeaderValue>>): this {
    for (const name of Object.keys(fields)) this.header(name, fields[name]!);
    return this;
  }

  /** A header field set on this reply, or `undefined`. */
  getHeader(name: string): OutgoingHeaderValue | undefined {
    return this.#headers?.[name.toLowerCase()];
  }

  /** The header fields set on this reply. */
  getHeaders(): Readonly<Record<string, OutgoingHeaderValue>> {
    return { ...this.#headers };
  }

  /** True when the field is set. */
  hasHeader(name: string): boolean {
    return this.#headers?.[name.toLowerCase()] !== undefined;
  }

  /** Removes a header field. */
  removeHeader(name: string): this {
    if (this.#headers !== null) delete this.#headers[name.toLowerCase()];
    return this;
  }

  /** Sets `content-type`. */
  type(contentType: string): this {
    return this.header('content-type', contentType);
  }

  /**
   * Redirects: sets `location` and the status (302 by default), and sends an empty body.
   *
   * @param url - where to.
   * @param statusCode - 301, 302, 303, 307 or 308.
   */
  redirect(url: string, statusCode = 302): this {
    return this.code(statusCode).header('location', url).send();
  }

  /**
   * Sends the response (see the module comment for how each kind of body is sent). Only the first call sends;
   * later ones are ignored with a warning in the log.
   *
   * @param payload - the body.
   * @returns this reply.
   */
  send(payload?: unknown): this {
    if (this.#sent) {
      // request.log adds the reqId (a second one here would be a duplicate JSON key).
      this.request.log.warn('Reply was already sent, did you forget to "return reply"?');
      return this;
    }
    if (payload instanceof Error) {
      // An error sent (or returned) is answered as one thrown, as fastify answers it: with its own status, else
      // the 4xx or 5xx status set on the reply, else 500.
      this._handlerFailed(payload);
      return this;
    }
    this.#sent = true;
    const ex = this._ex;
    // Answered already by the server (a handler timeout): whatever comes now is too late.
    if (ex.headersSent || ex.aborted) return this;
    const hooks = this._host._hooks;
    if (hooks.onSend.length > 0 || (hooks.preSerialization.length > 0 && isSerializable(payload))) {
      void this.#sendWithHooks(payload);
      return this;
    }
    const out = this.#serialize(payload);
    if (out !== undefined) this.#respond(out);
    return this;
  }

  /** The body `payload` makes; `undefined` when it cannot be serialized (answered as a handler error then). */
  #serialize(payload: unknown): Serialized | undefined {
    if (payload === undefined || payload === null) return { body: null, typed: JSON_ONLY };
    if (typeof payload === 'string') return { body: payload, typed: TEXT_ONLY };
    if (payload instanceof Uint8Array) return { body: payload, typed: BINARY_ONLY };
    if (typeof payload === 'object' && isAsyncIterable(payload)) return { body: payload, typed: BINARY_ONLY };
    let body: string | null;
    try {
      body = JSON.stringify(payload) ?? null;
    } catch (err) {
      this.#sent = false;
      this._fail(err);
      return undefined;
    }
    return { body, typed: JSON_ONLY };
  }

  /** `send()` with `preSerialization` or `onSend` hooks: each may change the body, and may take its time. */
  async #sendWithHooks(payload: unknown): Promise<void> {
    const hooks = this._host._hooks;
    const request = this.request as Request;
    if (isSerializable(payload)) {
      try {
        for (const hook of hooks.preSerialization) {
          let r = hook(request, this, payload);
          if (isThenable(r)) r = await r;
          if (r !== undefined) payload = r;
        }
      } catch (err) {
        // Nothing is on its way out yet: answered as a handler's error (the onError hooks, the error handler), as
        // fastify answers it.
        this.#sent = false;
        this._handlerFailed(err);
        return;
      }
    }
    const out = this.#serialize(payload);
    if (out === undefined) return;
    try {
      // The hooks see the content type the body goes out with.
      if (out.body !== null && !this.hasHeader('content-type')) {
        this.header('content-type', out.typed['content-type']!);
      }
      for (const hook of hooks.onSend) {
        let r = hook(request, this, out.body);
        if (isThenable(r)) r = await r;
        if (r !== undefined) out.body = checkPayload(r);
      }
    } catch (err) {
      // A hook that fails while the response is being sent: the default answer, with no hook again.
      this._fail(err, true);
      return;
    }
    if (this._ex.headersSent || this._ex.aborted) return;
    this.#respond(out);
  }

  /** Sends a serialized body: a stream is pumped, the rest goes out in one response. */
  #respond({ body, typed }: Serialized): void {
    if (isStream(body)) {
      void this.#stream(body);
      return;
    }
    const ex = this._ex;
    // A 204 or 304 carries no body: it is dropped, as fastify drops it (`reply.code(204).send(x)` sends 204).
    if (body !== null && (this.statusCode === 204 || this.statusCode === 304)) {
      // Nor a content type on a 204, whose type was the dropped body's (fastify's rule; a 304 keeps it, as it
      // describes the representation the client has).
      if (this.statusCode === 204) this.removeHeader('content-type');
      body = null;
    }
    let headers: OutgoingHeaders | null = this.#headers;
    if (this.#headers === null) {
      headers = body === null ? null : typed;
    } else {
      headers = this.#headers;
      if (body !== null && this.#headers['content-type'] === undefined) {
        this.#headers['content-type'] = typed['content-type']!;
      }
      if (this.#serverFields(this.#headers)) headers = { ...this.#headers, ...SERVER_FIELDS_OFF };
    }
    try {
      ex.respond(this.statusCode, headers ?? undefined, body);
    } catch (err) {
      // What HTTP cannot carry (a CR in a header value): nothing was sent.
      this._fail(err, true);
    }
  }

  /** Applies `connection`, `content-length`, `transfer-encoding` set by the user; true when any was. */
  #serverFields(headers: Headers): boolean {
    if (
      headers['connection'] === undefined &&
      headers['content-length'] === undefined &&
      headers['transfer-encoding'] === undefined
    ) {
      return false;
    }
    const conn = headers['connection'];
    if (typeof conn === 'string' && /(^|,)\s*close\s*(,|$)/i.test(conn)) this._ex._close = true;
    return true;
  }

  /**
   * Starts a streamed response: sends the status and headers now; write the body with `write()` and finish with
   * `end()`. Chunked unless a `content-length` header was set.
   *
   * @param statusCode - the status, if not set with `code()`.
   * @returns this reply.
   */
  writeHead(statusCode?: number): this {
    if (statusCode !== undefined) this.code(statusCode);
    if (this.#sent) throw new Error('The reply was already sent');
    this.#sent = true;
    this.#startStream();
    return this;
  }

  #startStream(): void {
    this.#streaming = true;
    const own = this.#headers;
    let headers: OutgoingHeaders | null = own;
    let length: number | undefined;
    if (own !== null) {
      const cl = own['content-length'];
      if (cl !== undefined) length = Number(cl);
      if (own['content-type'] === undefined) own['content-type'] = BINARY_TYPE;
      if (this.#serverFields(own)) headers = { ...own, ...SERVER_FIELDS_OFF };
    }
    this._ex.startResponse(this.statusCode, headers ?? BINARY_ONLY, length);
  }

  /**
   * Writes a piece of a streamed body (after `writeHead()`), waiting for the connection to drain when it must.
   *
   * @param chunk - bytes, or a string sent as UTF-8.
   * @returns a promise that resolves when more may be written (at once unless the connection's write buffer is
   *   full or earlier pipelined responses are still going out); it rejects if the connection is lost.
   */
  write(chunk: string | Uint8Array): Promise<void> {
    if (!this.#streaming) this.writeHead();
    if (this._ex.write(chunk)) return Promise.resolve();
    return this._ex.drain();
  }

  /** Waits until the connection can take more (see `write()`). */
  drain(): Promise<void> {
    return this._ex.drain();
  }

  /**
   * Ends a streamed body.
   *
   * @param chunk - a last piece to write first.
   */
  end(chunk?: string | Uint8Array): void {
    if (!this.#streaming) this.writeHead();
    if (chunk !== undefined) this._ex.write(chunk);
    this._ex.end();
  }

  async #stream(source: AsyncIterable<unknown>): Promise<void> {
    // A Node stream is destroyed when the client goes away, as fastify destroys it: one written only now and then
    // (server-sent events, a tail) would otherwise stay open, with what feeds it, until its next chunk.
    const destroy = (source as { destroy?: unknown }).destroy;
    if (typeof destroy !== 'function') return this.#pump(source);
    const signal = this._ex.signal;
    const onAbort = (): void => void (destroy as () => unknown).call(source);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.#pump(source);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async #pump(source: AsyncIterable<unknown>): Promise<void> {
    const ex = this._ex;
    const it = source[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      // The first chunk comes before the head: a source that fails at once (a file that is not there) is
      // answered with an error status, not a 200 cut short.
      first = await it.next();
    } catch (err) {
      if (!ex.aborted) this._fail(err);
      return;
    }
    try {
      this.#startStream();
      for await (const chunk of continued(first, it)) {
        if (ex.aborted) break;
        const data = typeof chunk === 'string' || chunk instanceof Uint8Array ? chunk : String(chunk);
        if (!ex.write(data)) await ex.drain();
      }
      if (!ex.finished && !ex.aborted) ex.end();
    } catch (err) {
      if (ex.aborted || ConnectionLostError.isInstance(err)) return;
      this._fail(err);
    }
  }

  /**
   * @internal Answers a failed handler: the `onError` hooks are told, then the app's error handler answers, if it
   * set one. Else (or when that fails too) a 4xx `statusCode` (or `status`, which fastify reads too) on the error is
   * answered with its message; anything else is logged (once, through the loop's exception handler) and answered
   * 500 (or its 5xx status) with no detail, with the headers set before the error and through the `onSend` hooks.
   * Once the head went out, the connection is closed instead (the client
   * sees the response cut). `statusIfNone` (400–599) is the status when the error carries none.
   * `alreadyAttempted` (a response that failed on its way out) skips the hooks and the error handler.
   */
  _fail(error: unknown, alreadyAttempted = false, statusIfNone = 500): void {
    const own = errorStatus(error);
    const status = typeof own === 'number' && Number.isInteger(own) && own >= 400 && own <= 599 ? own : statusIfNone;
    const ex = this._ex;
    if (!alreadyAttempted && !this.#erroring && !ex.headersSent && !ex.aborted) {
      const host = this._host;
      if (host._errorHandler !== null || host._hooks.onError.length > 0) {
        this.#erroring = true;
        void this.#handleError(error, status);
        return;
      }
    }
    this.#answerError(error, status, alreadyAttempted);
  }

  /** The default answer to an error (see `_fail`). */
  #answerError(error: unknown, status: number, alreadyAttempted: boolean): void {
    const ex = this._ex;
    const clientError = status < 500;
    if (!clientError || alreadyAttempted) this._host.reportError(error, this);
    if (ex.headersSent) {
      if (!ex.finished) ex.abortConnection();
      return;
    }
    if (ex.aborted) return;
    this.#sent = true;
    if (alreadyAttempted) {
      // The response failed on its way out (an onSend hook, a header HTTP cannot carry): a plain 500, with none of
      // the headers or hooks that may have made it fail.
      const code = status >= 500 ? status : 500;
      this.#headers = null;
      this.statusCode = code;
      ex.respond(code, JSON_ONLY, errorBody(code));
      return;
    }
    this.statusCode = status;
    let body: string;
    if (clientError) {
      const extra = MessageValidationError.isInstance(error)
        ? { issues: (error as MessageValidationError).issues }
        : undefined;
      body = errorBody(status, (error as Error).message, extra);
    } else {
      body = errorBody(status);
    }
    // As fastify's default error handler: the headers set before the error stay (not the body's own), and the
    // answer goes through the onSend hooks as any other.
    this.removeHeader('content-length').header('content-type', JSON_TYPE);
    if (this._host._hooks.onSend.length > 0) void this.#sendWithHooks(body);
    else this.#respond({ body, typed: JSON_ONLY });
  }

  /** The `onError` hooks, then the app's error handler (or the default answer). */
  async #handleError(error: unknown, status: number): Promise<void> {
    const host = this._host;
    const request = this.request as Request;
    // Nothing answers while the hooks run: they are told, they do not reply.
    this.#sent = true;
    for (const hook of host._hooks.onError) {
      try {
        const r = hook(request, this, error);
        if (isThenable(r)) await r;
      } catch (err) {
        host.reportError(err, this);
      }
    }
    this.#sent = false;
    const ex = this._ex;
    if (ex.headersSent || ex.aborted) return;
    const handler = host._errorHandler;
    if (handler === null) {
      this.#answerError(error, status, false);
      return;
    }
    // As fastify: the error's status is set, and the content type is the answer's own to choose.
    this.statusCode = status;
    this.removeHeader('content-type').removeHeader('content-length');
    let result: unknown;
    try {
      result = handler(error, request, this);
    } catch (err) {
      this._handlerFailed(err);
      return;
    }
    this._answer(result);
  }

  /**
   * @internal Answers with what a handler returned: a value is sent (unless the handler sent already), a promise
   * is answered when it settles (a rejection as a thrown error, `undefined` as an empty body if nothing was sent),
   * `undefined` or the reply itself leaves the answer to the handler.
   */
  _answer(result: unknown): void {
    if (result === undefined || result === this) return;
    if (isThenable(result)) {
      result.then(
        (value) => {
          if (value === undefined && !this.#sent) this.send();
          else this._settle(value);
        },
        (err: unknown) => this._handlerFailed(err),
      );
      return;
    }
    if (!this.#sent) this.send(result);
  }

  /**
   * @internal A handler or hook threw, rejected with, or sent `error`: answered with the error's status, else the
   * 4xx or 5xx status set on the reply before it failed, else 500 (as fastify answers).
   */
  _handlerFailed(error: unknown): void {
    if (this.#sent && !this._ex.headersSent && !this._ex.aborted) {
      // Too late: the reply was sent, and is on its way through the onSend hooks. It goes out as it was sent (an
      // error answer now would change the status and headers of a response that has its body already); the
      // error is only logged, as one after the head went out would be.
      this._host.reportError(error, this);
      return;
    }
    this._fail(error, false, this.statusCode >= 400 ? this.statusCode : 500);
  }

  /** @internal A promise-returning handler settled with `value`. */
  _settle(value: unknown): void {
    if (value === this || this.#sent) return;
    this.send(value);
  }
}

/** True for a body that is streamed. */
function isStream(body: OnSendPayload): body is AsyncIterable<unknown> {
  return body !== null && typeof body === 'object' && !(body instanceof Uint8Array);
}

/** An `onSend` hook's body, checked. @throws TypeError for anything but a string, bytes, a stream or `null`. */
function checkPayload(value: OnSendPayload): OnSendPayload {
  if (value === null || typeof value === 'string' || value instanceof Uint8Array) return value;
  if (typeof value === 'object' && isAsyncIterable(value)) return value;
  throw new TypeError(
    `an onSend hook must return a string, bytes, a stream, null or undefined, got ${typeof value as string}`,
  );
}

/** The status an error asks for: its `statusCode`, else its `status` (http-errors and fastify read both). */
function errorStatus(error: unknown): unknown {
  if (error === null || typeof error !== 'object') return undefined;
  const { statusCode, status } = error as { statusCode?: unknown; status?: unknown };
  return statusCode ?? status;
}

/** The chunks of an iterator whose first step was already taken: that one, then the rest. */
async function* continued<T>(first: IteratorResult<T>, it: AsyncIterator<T>): AsyncGenerator<T> {
  if (first.done === true) return;
  yield first.value;
  yield* { [Symbol.asyncIterator]: () => it };
}

const SERVER_FIELDS_OFF = { connection: undefined, 'content-length': undefined, 'transfer-encoding': undefined };
