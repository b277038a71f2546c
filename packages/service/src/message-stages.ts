/**
 * The message-protocol stages: framing stages that turn a connection's bytes into messages and messages back
 * into bytes (`lines()`, `lengthPrefixed()`, `resp()`), and `route()`, the endpoint that dispatches each message
 * to a handler by its command (or path) key.
 *
 * ```ts
 * const store = new Map<string, Buffer>();
 * const factory = pipeline(resp(), route<RespCommand, RespReply>({
 *   PING: () => new RespSimpleString('PONG'),
 *   GET: (ctx) => store.get(ctx.message[1]!.toString('latin1')) ?? null,
 * }));
 * await app.listen({ http: { port: 8080 }, tcp: { port: 6380, protocol: factory } });
 * ```
 *
 * What the peer gets wrong is answered, never a crash:
 * - a framing error (a line over `maxLength`, a frame length over `maxLength`, a request redis-server would
 *   refuse) is answered with the protocol's error reply where it has one (`ERR …` for lines, `-ERR Protocol
 *   error: …` for RESP), then that connection is closed; other connections go on;
 * - a handler that throws or rejects gets an error reply for its message (`-ERR …`, `ERR …`, `{"error":…}`) and
 *   the connection goes on; unless the error is a {@link CommandError} (the client's mistake, its message is the
 *   reply), the error is reported to the loop's exception handler (one line in the app's pino log) and the client
 *   only sees `internal error`.
 *
 * Replies written while a chunk of input is being decoded are gathered and written once at its end, so a
 * pipelined burst of N requests costs one `write` rather than N.
 *
 * @module
 */
import FindMyWay from 'find-my-way';
import pino from 'pino';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { getRunningLoopOrNull, isThenable, makeError } from '@loopwork/server';
import { describeIssues, zodIssues } from './codecs.js';
import type { StageErrorHandler } from './codecs.js';
import { MessageValidationError } from './errors.js';
import type { FrameDecoder } from './framing/decoder.js';
import { FrameTooLongError, FrameTruncatedError, LineTooLongError, RespProtocolError } from './framing/errors.js';
import type { LengthHeader } from './framing/length-prefixed.js';
import { LengthPrefixedDecoder, LengthPrefixedEncoder } from './framing/length-prefixed.js';
import { LineDecoder, encodeLine } from './framing/lines.js';
import type { RespDecoderOptions, RespValue } from './framing/resp.js';
import { RespDecoder, RespErrorReply, encodeBulkString, encodeError, encodeResp } from './framing/resp.js';
import { handle } from './handle.js';
import { formatPeer } from './logging.js';
import type { MessageContext } from './handle.js';
import type { Endpoint, MessageProtocol, Stage } from './pipeline.js';
import { StageProtocol } from './pipeline.js';

/**
 * zod, as the framework uses it: schemas for `command()`, `validate()` and the app's routes, from the same copy
 * of zod that checks them (an app need not depend on zod itself).
 */
export { z } from 'zod';

// ---- framing stages ------------------------------------------------------------------------------------------

const LF = 10;
const CR = 13;

/** Replies gathered while decoding one chunk are written early once they reach this size, to bound memory. */
const BATCH_LIMIT = 64 * 1024;
/** Replies up to this size are copied into the shared slab; larger ones are written as they are. */
const SMALL_REPLY = 2048;
const SLAB_SIZE = 64 * 1024;

// One slab shared by every connection, as Node's Buffer pool: replies gathered during a chunk are encoded (or
// copied) into it one after the other, and the batch is written as one view of it. Space is only ever handed out
// forward, so a view given to a socket is never overwritten; a full slab is dropped for a new one (the views keep
// it alive until written). Sharing it costs an idle connection nothing.
let slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabPos = 0;

function loopLogger(): Logger | null {
  const loop = getRunningLoopOrNull();
  return loop === null ? null : loop.logger;
}

/**
 * The base of the byte-level framing stages: feeds each chunk to a decoder, gathers the replies written meanwhile
 * into one write, answers a framing error with the protocol's error reply and closes, and never lets an encoding
 * error of a reply escape into the decoder.
 */
abstract class FramingProtocol<InnerIn, InnerOut> extends StageProtocol<Buffer, Uint8Array, InnerIn, InnerOut> {
  /** Replies written while a chunk is decoded; `null` outside of decoding. */
  #batch: Uint8Array[] | null = null;
  #batchBytes = 0;
  /** This batch's bytes at the end of the slab, not yet in `#batch`: `[#segStart, #segEnd)` of `#segSlab`. */
  #segSlab: Buffer | null = null;
  #segStart = 0;
  #segEnd = 0;
  /** A framing error ended this connection: later input is ignored. */
  #failed = false;

  /** The decoder of this connection; it calls `this.inner.messageReceived` for each message. */
  protected abstract readonly decoder: FrameDecoder;

  /** True for the decoder's own errors: the peer's bytes cannot be framed. */
  protected abstract isFramingError(err: unknown): boolean;

  /** The bytes to send before closing on a framing error, or `undefined` to just close. */
  protected abstract framingErrorReply(err: Error): Uint8Array | undefined;

  /** Encodes one message of the inner layer; throws for a message the framing cannot carry. */
  protected abstract encode(message: InnerOut): Uint8Array;

  /** The bytes to send in place of a reply that could not be encoded, or `undefined` to close the connection. */
  protected abstract encodeErrorReply(err: Error): Uint8Array | undefined;

  override messageReceived(chunk: Buffer): void {
    if (this.#failed) return;
    this.#batch = [];
    try {
      this.decoder.feedData(chunk);
    } catch (err) {
      if (!this.isFramingError(err)) throw err;
      this.#framingFailed(err as Error);
    } finally {
      this.#flush();
      this.#batch = null;
    }
  }

  override eofReceived(): boolean | void {
    if (this.#failed) return false;
    this.#batch = [];
    try {
      this.decoder.feedEof();
    } catch (err) {
      if (!this.isFramingError(err)) throw err;
      this.#framingFailed(err as Error);
      return false;
    } finally {
      this.#flush();
      this.#batch = null;
    }
    return this.inner.eofReceived?.();
  }

  override write(message: InnerOut): void {
    let bytes: Uint8Array;
    try {
      bytes = this.encode(message);
    } catch (err) {
      this.#encodeFailed(err);
      return;
    }
    this.emit(bytes);
  }

  /** True while replies are gathered (a chunk is being decoded): `reserve()` may be used. */
  protected get batching(): boolean {
    return this.#batch !== null;
  }

  /**
   * Makes room for `n` bytes of this batch in the slab (only while `batching`); write them at the returned
   * offset of `this.slab` (read it after this call: a full slab is replaced).
   */
  protected reserve(n: number): number {
    if (slabPos + n > slab.length) {
      this.#cut();
      slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n));
      slabPos = 0;
    } else if (this.#segSlab !== slab || this.#segEnd !== slabPos) {
      // Another connection took the space after our bytes: our run of bytes ends there.
      this.#cut();
    }
    if (this.#segSlab === null) {
      this.#segSlab = slab;
      this.#segStart = slabPos;
    }
    const at = slabPos;
    slabPos += n;
    this.#segEnd = slabPos;
    this.#batchBytes += n;
    return at;
  }

  /** The slab `reserve()` hands out room in. */
  protected get slab(): Buffer {
    return slab;
  }

  /** Ends the run of slab bytes: it becomes one item of the batch. */
  #cut(): void {
    const s = this.#segSlab;
    if (s === null) return;
    this.#segSlab = null;
    if (this.#segEnd > this.#segStart) this.#batch!.push(s.subarray(this.#segStart, this.#segEnd));
  }

  /** Sends encoded bytes: gathered while batching, else written at once. */
  protected emit(bytes: Uint8Array): void {
    const batch = this.#batch;
    if (batch === null) {
      this.outer.write(bytes);
      return;
    }
    const n = bytes.byteLength;
    if (n <= SMALL_REPLY) {
      const at = this.reserve(n);
      slab.set(bytes, at);
    } else {
      this.#cut();
      batch.push(bytes);
      this.#batchBytes += n;
    }
    this.checkBatch();
  }

  /** Writes the batch early once it is large (call after writing into `reserve()`d room). */
  protected checkBatch(): void {
    if (this.#batchBytes >= BATCH_LIMIT) this.#flush();
  }

  /** Writes what was gathered, in one write where it is small; decoding goes on gathering. */
  #flush(): void {
    const batch = this.#batch;
    if (batch === null) return;
    this.#cut();
    if (batch.length === 0) return;
    const total = this.#batchBytes;
    this.#batchBytes = 0;
    if (batch.length === 1) this.outer.write(batch[0]!);
    else if (total <= BATCH_LIMIT) this.outer.write(Buffer.concat(batch, total));
    else for (const b of batch) this.outer.write(b);
    batch.length = 0;
  }

  #framingFailed(err: Error): void {
    this.#failed = true;
    loopLogger()?.warn(
      {
        peer: formatPeer(this.outer.getExtraInfo('peername', null)),
        code: (err as { code?: unknown }).code,
        reason: err.message,
      },
      'framing error: closing the connection',
    );
    const reply = this.framingErrorReply(err);
    if (reply !== undefined) this.emit(reply);
    this.close();
  }

  #encodeFailed(err: unknown): void {
    const loop = getRunningLoopOrNull();
    loop?.callExceptionHandler({ message: 'Cannot encode a reply', exception: err, transport: this.outer });
    const reply = err instanceof Error ? this.encodeErrorReply(err) : undefined;
    if (reply === undefined) this.close();
    else this.emit(reply);
  }

  // Everything that lets the inner layer observe or end the connection sees the gathered replies first.

  override close(): void {
    this.#flush();
    this.outer.close();
  }

  override abort(): void {
    if (this.#batch !== null) this.#batch.length = 0;
    this.#segSlab = null;
    this.#batchBytes = 0;
    this.outer.abort();
  }

  override drain(): Promise<void> {
    this.#flush();
    return this.outer.drain();
  }

  override isWritingPaused(): boolean {
    this.#flush();
    return this.outer.isWritingPaused();
  }

  override writeEof(): void {
    this.#flush();
    this.outer.writeEof();
  }

  override getWriteBufferSize(): number {
    return this.outer.getWriteBufferSize() + this.#batchBytes;
  }
}

/** Options of {@link lines}. */
export interface LinesOptions {
  /** Longest line received, in bytes, terminator not counted; default 65536. */
  readonly maxLength?: number;
  /** The terminator of the lines written; default `'\n'` (received lines may end in `\n` or `\r\n`). */
  readonly eol?: '\n' | '\r\n';
  /**
   * The line to send before closing when a received line is too long, or when a reply cannot be sent as lines
   * (`undefined`: close without a reply, and for a reply, close). Default `ERR <message>`.
   */
  readonly onError?: StageErrorHandler<string | Uint8Array>;
}

function defaultLineError(error: Error): string {
  return `ERR ${oneLine(error.message)}`;
}

/**
 * A framing stage for line protocols: each line received (ended by `\n`, a `\r` before it dropped) is a message,
 * as bytes (put `utf8()` after it for text); each message written is sent as a line. A message written with
 * `\n` in it is sent as several lines (a `\r` before each `\n` is dropped), so a multi-line reply is one write.
 *
 * A line over `maxLength` is a framing error: the `onError` reply (`ERR Line is longer than maxLength (…)`) is
 * sent and the connection closed. At EOF an unterminated last line is delivered.
 *
 * @param options - `maxLength` (bytes), `eol`, `onError`.
 * @returns the stage.
 * @throws InvalidOptionsError when `maxLength` is not a positive integer.
 * @example
 * ```ts
 * pipeline(lines({ maxLength: 1024 }), utf8(), route({ stats: () => JSON.stringify(stats()) }));
 * ```
 */
export function lines(options: LinesOptions = {}): Stage<Buffer, Uint8Array, Buffer, string | Uint8Array> {
  const decoderOptions = options.maxLength === undefined ? {} : { maxLength: options.maxLength };
  // Validate the options now, not at the first connection.
  new LineDecoder(() => undefined, decoderOptions);
  const eol = options.eol ?? '\n';
  const onError = 'onError' in options ? options.onError : defaultLineError;
  return (inner) => new LinesProtocol(inner, decoderOptions, eol, onError);
}

class LinesProtocol extends FramingProtocol<Buffer, string | Uint8Array> {
  protected readonly decoder: LineDecoder;
  readonly #eol: '\n' | '\r\n';
  readonly #onError: StageErrorHandler<string | Uint8Array> | undefined;

  constructor(
    inner: MessageProtocol<Buffer, string | Uint8Array>,
    options: { maxLength?: number },
    eol: '\n' | '\r\n',
    onError: StageErrorHandler<string | Uint8Array> | undefined,
  ) {
    super(inner);
    this.decoder = new LineDecoder((line) => this.inner.messageReceived(line), options);
    this.#eol = eol;
    this.#onError = onError;
  }

  protected isFramingError(err: unknown): boolean {
    return LineTooLongError.isInstance(err);
  }

  protected framingErrorReply(err: Error): Uint8Array | undefined {
    return this.#reply(err);
  }

  protected encodeErrorReply(err: Error): Uint8Array | undefined {
    return this.#reply(err);
  }

  #reply(err: Error): Uint8Array | undefined {
    const reply = this.#onError?.(err);
    if (reply === undefined) return undefined;
    return encodeLine(typeof reply === 'string' ? oneLine(reply) : reply, { eol: this.#eol });
  }

  protected encode(message: string | Uint8Array): Uint8Array {
    const eol = this.#eol;
    const bytes = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
    if (bytes.indexOf(LF) === -1) return encodeLine(bytes, { eol });
    // Several lines in one message (a codec such as utf8() may sit between: look at the bytes).
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const parts: Buffer[] = [];
    let start = 0;
    for (let nl = view.indexOf(LF); nl !== -1; nl = view.indexOf(LF, start)) {
      parts.push(encodeLine(view.subarray(start, nl > start && view[nl - 1] === CR ? nl - 1 : nl), { eol }));
      start = nl + 1;
    }
    parts.push(encodeLine(view.subarray(start), { eol }));
    return Buffer.concat(parts);
  }
}

/** Options of {@link lengthPrefixed}. */
export interface LengthPrefixedStageOptions {
  /** The header's integer; default `'u32be'`. */
  readonly header?: LengthHeader;
  /** Largest payload, in bytes, both ways; default 1 MiB (or the header's largest value if smaller). */
  readonly maxLength?: number;
  /**
   * The payload of a frame to send before closing, when a received frame is over `maxLength` or the stream ends
   * inside one, and in place of a reply over `maxLength`; `undefined` (the default) closes without a reply.
   */
  readonly onError?: StageErrorHandler<string | Uint8Array>;
}

/**
 * A framing stage for length-prefixed frames: each frame received (an unsigned integer header giving the
 * payload's length, then the payload) is a message, as bytes; each message written is sent as one frame.
 *
 * A header announcing more than `maxLength` bytes is a framing error found before any payload is held: the
 * `onError` frame (none by default) is sent and the connection closed, as when the peer ends the stream inside a
 * frame.
 *
 * @param options - `header`, `maxLength` (bytes), `onError`.
 * @returns the stage.
 * @throws InvalidOptionsError for an unknown header or a `maxLength` the header cannot express.
 * @example
 * ```ts
 * pipeline(lengthPrefixed({ header: 'u32be', maxLength: 1 << 20 }), json(), validate(Request), route(methods));
 * ```
 */
export function lengthPrefixed(
  options: LengthPrefixedStageOptions = {},
): Stage<Buffer, Uint8Array, Buffer, string | Uint8Array> {
  const framing = {
    ...(options.header === undefined ? {} : { header: options.header }),
    ...(options.maxLength === undefined ? {} : { maxLength: options.maxLength }),
  };
  // One encoder for every connection (it has no state); it checks the options now.
  const encoder = new LengthPrefixedEncoder(framing);
  const onError = options.onError;
  return (inner) => new LengthPrefixedProtocol(inner, framing, encoder, onError);
}

class LengthPrefixedProtocol extends FramingProtocol<Buffer, string | Uint8Array> {
  protected readonly decoder: LengthPrefixedDecoder;
  readonly #encoder: LengthPrefixedEncoder;
  readonly #onError: StageErrorHandler<string | Uint8Array> | undefined;

  constructor(
    inner: MessageProtocol<Buffer, string | Uint8Array>,
    options: { header?: LengthHeader; maxLength?: number },
    encoder: LengthPrefixedEncoder,
    onError: StageErrorHandler<string | Uint8Array> | undefined,
  ) {
    super(inner);
    this.decoder = new LengthPrefixedDecoder((frame) => this.inner.messageReceived(frame), options);
    this.#encoder = encoder;
    this.#onError = onError;
  }

  protected isFramingError(err: unknown): boolean {
    return FrameTooLongError.isInstance(err) || FrameTruncatedError.isInstance(err);
  }

  protected framingErrorReply(err: Error): Uint8Array | undefined {
    return this.#reply(err);
  }

  protected encodeErrorReply(err: Error): Uint8Array | undefined {
    return this.#reply(err);
  }

  #reply(err: Error): Uint8Array | undefined {
    const reply = this.#onError?.(err);
    if (reply === undefined) return undefined;
    try {
      return this.#encoder.encode(reply);
    } catch {
      return undefined;
    }
  }

  protected encode(message: string | Uint8Array): Uint8Array {
    return this.#encoder.encode(message);
  }
}

/** A command received by {@link resp}: its name and arguments, as bytes (never empty). */
export type RespCommand = Buffer[];

/**
 * Bytes that are already a complete RESP reply, written as they are: for replies sent often, encoded once
 * (`new RespRaw(RESP_OK)`). A plain `Buffer` reply is a bulk string instead.
 */
export class RespRaw {
  /** @param bytes - the encoded reply (`+OK\r\n`). */
  constructor(readonly bytes: Uint8Array) {}
}

/** What a handler behind {@link resp} may reply: any RESP2 value (see `RespValue`), or pre-encoded bytes. */
export type RespReply = RespValue | RespRaw;

/** Options of {@link resp}: the decoder's limits (see `RespDecoderOptions`; redis-server's defaults). */
export type RespOptions = RespDecoderOptions;

/**
 * A framing stage for RESP2, the Redis protocol, server side: each command received (an array of bulk strings,
 * or an inline command as typed into telnet) is a message, its arguments as Buffers; each reply written is
 * encoded as RESP (`string`/`Buffer` → bulk string, `number`/`bigint` → integer, `null` → null bulk string,
 * arrays → arrays, `RespSimpleString`, `RespErrorReply`, `RespRaw`).
 *
 * A request redis-server would refuse is answered with redis-server's `-ERR Protocol error: …` and the connection
 * closed; a reply that cannot be encoded (a float, a simple string with CR) is replaced by `-ERR …` and reported
 * to the loop's exception handler.
 *
 * @param options - decoder limits (bytes, counts).
 * @returns the stage.
 * @throws InvalidOptionsError when a limit is not a positive integer.
 * @example
 * ```ts
 * pipeline(resp(), route<RespCommand, RespReply>({ PING: () => new RespSimpleString('PONG') }));
 * ```
 */
export function resp(options: RespOptions = {}): Stage<Buffer, Uint8Array, RespCommand, RespReply> {
  new RespDecoder(() => undefined, options);
  return (inner) => new RespProtocol(inner, options);
}

class RespProtocol extends FramingProtocol<RespCommand, RespReply> {
  protected readonly decoder: RespDecoder;

  constructor(inner: MessageProtocol<RespCommand, RespReply>, options: RespOptions) {
    super(inner);
    this.decoder = new RespDecoder((args) => this.inner.messageReceived(args), options);
  }

  protected isFramingError(err: unknown): boolean {
    return RespProtocolError.isInstance(err);
  }

  protected framingErrorReply(err: Error): Uint8Array {
    return encodeError(`ERR ${oneLine(err.message)}`);
  }

  protected encodeErrorReply(err: Error): Uint8Array {
    return encodeError(`ERR ${oneLine(err.message)}`);
  }

  override write(reply: RespReply): void {
    // The common replies of a pipelined burst go straight into the slab, with no Buffer of their own.
    if (this.batching) {
      if (reply instanceof RespRaw) {
        this.emit(reply.bytes);
        return;
      }
      if (reply instanceof Uint8Array && reply.byteLength <= SMALL_REPLY) {
        this.#bulk(reply);
        return;
      }
    }
    super.write(reply);
  }

  /** `$<length>\r\n<bytes>\r\n` into the slab (at most SMALL_REPLY bytes: four digits). */
  #bulk(value: Uint8Array): void {
    const len = value.byteLength;
    const digits = len < 10 ? 1 : len < 100 ? 2 : len < 1000 ? 3 : 4;
    const at = this.reserve(len + digits + 5);
    const s = this.slab;
    s[at] = 0x24;
    for (let i = digits, n = len; i >= 1; i--, n = (n / 10) | 0) s[at + i] = 0x30 + (n % 10);
    let p = at + digits + 1;
    s[p++] = CR;
    s[p++] = LF;
    s.set(value, p);
    p += len;
    s[p++] = CR;
    s[p] = LF;
    this.checkBatch();
  }

  protected encode(reply: RespReply): Uint8Array {
    if (reply instanceof RespRaw) return reply.bytes;
    if (reply instanceof Uint8Array) return encodeBulkString(reply);
    return encodeResp(reply);
  }
}

// ---- route ---------------------------------------------------------------------------------------------------

/**
 * An error a handler throws to answer its message with an error reply made of this message, as the client's
 * mistake: it is not logged. For RESP a message that starts with an upper-case code (`WRONGTYPE …`) is sent as it
 * is, others get `ERR ` before them.
 *
 * @example
 * ```ts
 * if (!/^-?\d+$/.test(text)) throw new CommandError('value is not an integer or out of range');
 * ```
 */
export const CommandError = makeError('ERR_LOOPWORK_COMMAND', 'CommandError', Error);

/** How `route()` reads keys and shapes error replies: RESP commands, text lines, or JSON objects. */
export type MessageFormat = 'resp' | 'text' | 'json';

/**
 * What a route handler gets: the message, its key, the checked input, and the connection.
 *
 * `Input` is the type of `input`: the route's schema output, or by default the command's arguments (RESP: the
 * arguments after the name, as UTF-8 strings; text: the words after the first) or the message (JSON).
 */
export interface CommandContext<In, Out, Input = unknown> {
  /** The message as the stages before `route()` delivered it. */
  readonly message: In;
  /** The key of the route that matched, as written in the routes table (`'GET'`, `'/users/:id'`). */
  readonly command: string;
  /** The input: the schema's output when the route has a schema, else the default input (see above). */
  readonly input: Input;
  /** The parameters of a path route (`/users/:id` → `{ id }`); empty for command routes. */
  readonly params: Readonly<Record<string, string | undefined>>;
  /** The connection: `state` (per connection, empty at first), `peer`, `transport`, `write`, `drain`, `close`. */
  readonly connection: MessageContext<Out>;
  /** The loop's logger (the app's pino logger while it listens). */
  readonly log: Logger;
  /**
   * Writes a message now, ahead of the handler's reply (for a handler that answers with several messages).
   *
   * @param message - the message.
   */
  write(message: Out): void;
  /**
   * Waits until the connection's write buffer is below its low-water mark: a handler writing a large reply in
   * pieces awaits it between pieces (see `MessageTransport.drain`).
   */
  drain(): Promise<void>;
  /** Closes the connection once the replies so far are flushed; later messages are not handled. */
  close(): void;
}

/**
 * A route handler: returns the reply (or a promise of it), or `undefined` for none.
 *
 * @param ctx - the message and its connection.
 */
export type CommandHandler<In, Out, Input = unknown> = (
  ctx: CommandContext<In, Out, Input>,
) => Out | undefined | void | PromiseLike<Out | undefined | void>;

/** A route with a schema, made by {@link command}. */
export interface CommandRoute<In, Out> {
  /** The zod schema of the route's input. */
  readonly schema: z.ZodType;
  /** The handler, called with the schema's output as `ctx.input`. */
  readonly handler: CommandHandler<In, Out, never>;
}

/**
 * The routes of {@link route}: a key (a command name, or a path pattern starting with `/`) to a handler or a
 * {@link command}.
 */
export type MessageRoutes<In, Out> =
  | Readonly<Record<string, CommandHandler<In, Out> | CommandRoute<In, Out>>>
  | ReadonlyMap<string, CommandHandler<In, Out> | CommandRoute<In, Out>>;

/**
 * A route whose input is checked by a zod schema first: a message the schema refuses is answered with every
 * problem zod found (RESP `-ERR Invalid arguments for 'SET': …`, JSON `{error, message, issues}`), and the handler
 * is not called.
 *
 * @param schema - the schema of the default input (see {@link CommandContext}).
 * @param handler - the handler; `ctx.input` is the schema's output.
 * @returns the route, for a routes table.
 * @example
 * ```ts
 * route({ SET: command(z.tuple([z.string(), z.string()]), (ctx) => { store.set(...ctx.input); return OK; }) });
 * ```
 */
export function command<S extends z.ZodType, In = unknown, Out = unknown>(
  schema: S,
  handler: CommandHandler<In, Out, z.output<S>>,
): CommandRoute<In, Out> {
  if (schema === null || typeof schema !== 'object' || typeof schema.safeParse !== 'function') {
    throw new TypeError('command() needs a zod schema');
  }
  if (typeof handler !== 'function') throw new TypeError('command() needs a handler function');
  return { schema, handler: handler as CommandHandler<In, Out, never> };
}

/** Options of {@link route}. */
export interface MessageRouteOptions<In, Out> {
  /**
   * How keys are read and error replies shaped; by default from each message: an array is a RESP command, a
   * string or Buffer a text line, anything else a JSON object.
   */
  readonly format?: MessageFormat;
  /**
   * The key of a message; default: RESP, the command name; text, the first word; JSON, the `keyField` property.
   * A key starting with `/` is matched against the path routes (find-my-way), others against the command names.
   */
  readonly key?: (message: In) => string | undefined;
  /** The property holding a JSON message's key; default `'method'`. */
  readonly keyField?: string;
  /** Whether command names are case-sensitive; default false (RESP and most line protocols ignore case). */
  readonly caseSensitive?: boolean;
  /** The handler for a message no route matches; default an `unknown command` error reply. */
  readonly notFound?: CommandHandler<In, Out>;
  /**
   * The reply to a message whose handler threw or rejected, or that was refused before it ran (a
   * `MessageValidationError` from a route's schema, a `CommandError` for a message without a key); `undefined`
   * closes the connection. Default: by format (see the module docs).
   */
  readonly onError?: (error: unknown, ctx: CommandContext<In, Out>) => Out | undefined;
  /** Called when a connection is made (to fill `connection.state`, or greet with `connection.write`). */
  readonly onConnect?: (connection: MessageContext<Out>) => void;
  /** Called when the connection is closed or lost. */
  readonly onDisconnect?: (connection: MessageContext<Out>, exc: Error | null) => void;
  /** How many received messages may wait for a slow handler before reading pauses; default 64. */
  readonly maxQueued?: number;
}

interface RouteEntry<In, Out> {
  readonly name: string;
  readonly handler: CommandHandler<In, Out, unknown>;
  readonly schema: z.ZodType | null;
}

type PathRouter = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;

const NO_PARAMS: Readonly<Record<string, string | undefined>> = Object.freeze({});
const WORDS = /\S+/g;
const UNSET: unique symbol = Symbol('unset');
/** The logger of a handler run outside a loop (a test driving a pipeline by hand). */
let fallbackLogger: Logger | null = null;

/** Error replies never carry a line break: it would end a line reply early, and RESP refuses it. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

function inferFormat(message: unknown): MessageFormat {
  if (Array.isArray(message)) return 'resp';
  if (typeof message === 'string' || message instanceof Uint8Array) return 'text';
  return 'json';
}

function textOf(message: unknown): string {
  return typeof message === 'string' ? message : Buffer.from(message as Uint8Array).toString('utf8');
}

class RouteCtx<In, Out> implements CommandContext<In, Out, unknown> {
  readonly message: In;
  readonly command: string;
  readonly params: Readonly<Record<string, string | undefined>>;
  readonly connection: MessageContext<Out>;
  readonly format: MessageFormat;
  #input: unknown = UNSET;

  constructor(
    message: In,
    command: string,
    params: Readonly<Record<string, string | undefined>>,
    connection: MessageContext<Out>,
    format: MessageFormat,
  ) {
    this.message = message;
    this.command = command;
    this.params = params;
    this.connection = connection;
    this.format = format;
  }

  get input(): unknown {
    // Computed on first use: a RESP handler that reads `message` directly pays nothing for it.
    if (this.#input === UNSET) this.#input = this.defaultInput();
    return this.#input;
  }

  set input(value: unknown) {
    this.#input = value;
  }

  defaultInput(): unknown {
    const m = this.message as unknown;
    if (this.format === 'resp') {
      const args = m as readonly unknown[];
      const out: string[] = [];
      for (let i = 1; i < args.length; i++) {
        const a = args[i];
        out.push(
          a instanceof Uint8Array ? Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('utf8') : String(a),
        );
      }
      return out;
    }
    if (this.format === 'text') return (textOf(m).match(WORDS) ?? []).slice(1);
    return m;
  }

  get log(): Logger {
    return loopLogger() ?? (fallbackLogger ??= pino({ name: 'loopwork' }));
  }

  write(message: Out): void {
    this.connection.write(message);
  }

  drain(): Promise<void> {
    return this.connection.drain();
  }

  close(): void {
    this.connection.close();
  }
}

/**
 * The endpoint of a message pipeline that dispatches each message by its key: a command name (a `Map` lookup,
 * case-insensitive by default: RESP and line protocols) or, for keys starting with `/`, a path pattern matched
 * by find-my-way (`/users/:id`, params in `ctx.params`). Handlers run one message at a time per connection and
 * their replies keep the order of the messages (pipelining); a sync handler is answered in the same callback.
 *
 * Errors never end the server: a message with no route gets an `unknown command` reply, one that the route's
 * schema refuses gets the list of problems, and a handler that throws or rejects gets an error reply for its
 * message (and, unless it threw a {@link CommandError}, one line through the loop's exception handler).
 *
 * @param routes - key → handler (or {@link command} with a schema).
 * @param options - format, key extraction, case, fallbacks, connection hooks.
 * @returns the endpoint, for {@link pipeline}'s last argument.
 * @throws TypeError for a route that is not a handler; find-my-way's error for an invalid path pattern.
 * @example
 * ```ts
 * const admin = pipeline(lines(), utf8(), route<string, string>({
 *   stats: () => JSON.stringify(stats()),
 *   drain: (ctx) => { setTimeout(drain); return 'OK draining'; },
 * }));
 * ```
 */
export function route<In, Out>(
  routes: MessageRoutes<In, Out>,
  options: MessageRouteOptions<In, Out> = {},
): Endpoint<In, Out> {
  const caseSensitive = options.caseSensitive ?? false;
  const keyField = options.keyField ?? 'method';
  const commands = new Map<string, RouteEntry<In, Out>>();
  let paths: PathRouter | null = null;
  const entries = routes instanceof Map ? [...routes.entries()] : Object.entries(routes);
  for (const [name, value] of entries as [string, CommandHandler<In, Out> | CommandRoute<In, Out>][]) {
    const entry: RouteEntry<In, Out> =
      typeof value === 'function'
        ? { name, handler: value as CommandHandler<In, Out, unknown>, schema: null }
        : value !== null && typeof value === 'object' && typeof value.handler === 'function'
          ? { name, handler: value.handler as CommandHandler<In, Out, unknown>, schema: value.schema }
          : invalidRoute(name);
    if (name.startsWith('/')) {
      paths ??= FindMyWay({ caseSensitive, ignoreTrailingSlash: false });
      paths.on('GET', name, () => undefined, entry);
    } else {
      commands.set(caseSensitive ? name : name.toUpperCase(), entry);
    }
  }
  const notFound: RouteEntry<In, Out> | null =
    options.notFound === undefined
      ? null
      : { name: '', handler: options.notFound as CommandHandler<In, Out, unknown>, schema: null };
  const keyOf = options.key;
  const onError = options.onError;

  /** Path params of the last `lookup()` that matched a path route. */
  let params: Readonly<Record<string, string | undefined>> = NO_PARAMS;

  function lookup(key: string): RouteEntry<In, Out> | undefined {
    params = NO_PARAMS;
    if (key.startsWith('/')) {
      const found = paths?.find('GET', key);
      if (found === null || found === undefined || found.store === null) return undefined;
      params = found.params;
      return found.store as RouteEntry<In, Out>;
    }
    return commands.get(key) ?? (caseSensitive ? undefined : commands.get(key.toUpperCase()));
  }

  // RESP command names are looked up by their bytes, with no string made: a table by length, compared with the
  // upper-case name (ASCII letters folded unless case-sensitive).
  const byLength = new Map<number, { bytes: Buffer; entry: RouteEntry<In, Out> }[]>();
  for (const [name, entry] of commands) {
    const bytes = Buffer.from(name, 'latin1');
    let list = byLength.get(bytes.length);
    if (list === undefined) byLength.set(bytes.length, (list = []));
    list.push({ bytes, entry });
  }

  function lookupBytes(name: Uint8Array): RouteEntry<In, Out> | undefined {
    const list = byLength.get(name.length);
    if (list === undefined) return undefined;
    outer: for (const { bytes, entry } of list) {
      for (let i = 0; i < name.length; i++) {
        let c = name[i]!;
        if (!caseSensitive && c >= 0x61 && c <= 0x7a) c -= 0x20;
        if (c !== bytes[i]) continue outer;
      }
      return entry;
    }
    return undefined;
  }

  function keyFor(message: In, format: MessageFormat): string | undefined {
    if (keyOf !== undefined) return keyOf(message);
    if (format === 'resp') {
      const name = (message as unknown as readonly unknown[])[0];
      if (name instanceof Uint8Array)
        return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString('latin1');
      return typeof name === 'string' ? name : undefined;
    }
    if (format === 'text') {
      const m = /\S+/.exec(textOf(message));
      return m === null ? undefined : m[0];
    }
    const value =
      message !== null && typeof message === 'object' ? (message as Record<string, unknown>)[keyField] : undefined;
    return typeof value === 'string' ? value : undefined;
  }

  /** A message refused before its handler ran (no key, arguments the schema refuses): the client's mistake. */
  function refused(err: Error, ctx: RouteCtx<In, Out>): Out | undefined {
    if (onError !== undefined) return callOnError(err, ctx);
    return errorReply(ctx.format, err, ctx.message) as Out;
  }

  function callOnError(err: unknown, ctx: RouteCtx<In, Out>): Out | undefined {
    let reply: Out | undefined;
    try {
      reply = onError!(err, ctx);
    } catch (e) {
      getRunningLoopOrNull()?.callExceptionHandler({ message: 'Error in route onError', exception: e });
    }
    if (reply === undefined) ctx.close();
    return reply;
  }

  function failed(err: unknown, ctx: RouteCtx<In, Out>): Out | undefined {
    if (!CommandError.isInstance(err)) {
      getRunningLoopOrNull()?.callExceptionHandler({
        message: 'Error in message handler',
        exception: err,
        command: ctx.command,
        transport: ctx.connection.transport,
        peer: ctx.connection.peer,
      });
    }
    if (onError !== undefined) return callOnError(err, ctx);
    return errorReply(ctx.format, err, ctx.message) as Out;
  }

  function dispatch(message: In, connection: MessageContext<Out>): ReturnType<CommandHandler<In, Out>> {
    const format = options.format ?? inferFormat(message);
    let entry: RouteEntry<In, Out> | undefined;
    let ctx: RouteCtx<In, Out>;
    const first = format === 'resp' && keyOf === undefined ? (message as unknown as unknown[])[0] : undefined;
    if (first instanceof Uint8Array) entry = lookupBytes(first);
    if (entry !== undefined) {
      ctx = new RouteCtx(message, entry.name, NO_PARAMS, connection, format);
    } else {
      const key = keyFor(message, format);
      if (key === undefined || key === '') {
        const missing = format === 'json' ? `The message has no "${keyField}"` : 'empty command';
        return refused(new CommandError(missing), new RouteCtx(message, '', NO_PARAMS, connection, format));
      }
      entry = lookup(key);
      if (entry !== undefined) {
        ctx = new RouteCtx(message, entry.name, params, connection, format);
      } else if (notFound !== null) {
        entry = notFound;
        ctx = new RouteCtx(message, key, NO_PARAMS, connection, format);
      } else {
        return errorReply(format, unknownCommand(format, key, message), message) as Out;
      }
    }
    let result: ReturnType<CommandHandler<In, Out>>;
    try {
      // A schema that throws (a transform or refinement with a bug) fails as its handler would.
      if (entry.schema !== null) {
        const checked = entry.schema.safeParse(ctx.defaultInput());
        if (!checked.success) {
          const issues = zodIssues(checked.error.issues);
          const text = describeIssues(`Invalid arguments for '${entry.name}'`, issues);
          return refused(new MessageValidationError(text, issues), ctx);
        }
        ctx.input = checked.data;
      }
      result = entry.handler(ctx);
    } catch (err) {
      return failed(err, ctx);
    }
    if (isThenable(result)) return result.then(undefined, (err: unknown) => failed(err, ctx));
    return result;
  }

  return handle<In, Out>(dispatch, {
    ...(options.onConnect === undefined ? {} : { onConnect: options.onConnect }),
    ...(options.onDisconnect === undefined ? {} : { onDisconnect: options.onDisconnect }),
    ...(options.maxQueued === undefined ? {} : { maxQueued: options.maxQueued }),
  });
}

function invalidRoute(name: string): never {
  throw new TypeError(`route ${JSON.stringify(name)} must be a handler function or command(schema, handler)`);
}

function unknownCommand(format: MessageFormat, key: string, message: unknown): Error {
  if (format === 'resp') {
    // redis-server's wording, which clients and people recognise.
    const args = (message as readonly unknown[]).slice(1, 21).map((a) => `'${oneLine(textOf(a as Uint8Array))}' `);
    return new CommandError(`ERR unknown command '${oneLine(key)}', with args beginning with: ${args.join('')}`);
  }
  if (format === 'json') return new CommandError(`Unknown method '${key}'`);
  return new CommandError(`unknown command '${oneLine(key)}'`);
}

/**
 * The reply to a refused message, in the format of its protocol: the message of a {@link CommandError} or a
 * `MessageValidationError` (with its `issues` in JSON), `internal error` for anything else.
 */
function errorReply(format: MessageFormat, err: unknown, message: unknown): unknown {
  const invalid = MessageValidationError.isInstance(err);
  const known = invalid || CommandError.isInstance(err);
  const text = known ? (err as Error).message : 'internal error';
  if (format === 'resp') {
    const line = oneLine(text);
    return new RespErrorReply(/^[A-Z][A-Z_]* /.test(line) ? line : `ERR ${line}`);
  }
  if (format === 'text') return `ERR ${oneLine(text)}`;
  if (!known) return withId({ error: 'InternalError', message: 'Internal error' }, message);
  const body: Record<string, unknown> = { error: (err as Error).name, message: text };
  if (invalid) body.issues = (err as InstanceType<typeof MessageValidationError>).issues;
  return withId(body, message);
}

/** A JSON reply carries the request's `id`, when it has one, so that a client can match replies to requests. */
function withId(body: Record<string, unknown>, message: unknown): Record<string, unknown> {
  if (message !== null && typeof message === 'object' && 'id' in message) {
    return { id: (message as { id: unknown }).id, ...body };
  }
  return body;
}
