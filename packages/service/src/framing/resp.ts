/**
 * RESP2, the Redis protocol: a decoder for what clients send (arrays of bulk strings, and inline commands as
 * redis-server accepts them) and encoders for every reply type.
 *
 * The decoder refuses what redis-server refuses, with redis-server's messages, so that a reply of
 * `-ERR <message>` followed by closing the connection is what redis-cli and redis-benchmark expect. It is
 * stricter in two places: the CRLF after a bulk string's data is checked (redis-server skips two bytes
 * blindly), and an inline command with a NUL byte is refused (redis-server 7 never finds its end).
 *
 * @module
 */
import { ByteAccumulator, EMPTY, limit } from './bytes.js';
import { StreamDecoder } from './decoder.js';
import { FramingEncodeError, RespProtocolError } from './errors.js';

/** Options of {@link RespDecoder}; defaults are redis-server's except where said. */
export interface RespDecoderOptions {
  /** Longest bulk string, in bytes; default 512 MiB (`proto-max-bulk-len`). */
  readonly maxBulkLength?: number;
  /** Most arguments in one command; default 1048576 (redis-server 7 accepts up to 2^31 - 1). */
  readonly maxArrayLength?: number;
  /** Longest inline command, in bytes before its `\n` (a `\r` counts); default 65536 (`PROTO_INLINE_MAX_SIZE`). */
  readonly maxInlineLength?: number;
  /** Most bytes of arguments held for one command; default 1 GiB (`client-query-buffer-limit`). */
  readonly maxCommandSize?: number;
}

const CR = 13;
const LF = 10;

const S_START = 0;
const S_COUNT = 1;
const S_COUNT_LF = 2;
const S_BULK_PREFIX = 3;
const S_BULK_LEN = 4;
const S_BULK_LEN_LF = 5;
const S_BULK_DATA = 6;
const S_BULK_CR = 7;
const S_BULK_LF = 8;
const S_INLINE = 9;

// More digits than this is outside the 64-bit range redis-server parses numbers into.
const MAX_DIGITS = 18;

function protocolError(what: string): never {
  throw new RespProtocolError(`Protocol error: ${what}`);
}

/**
 * Splits a byte stream of client requests into commands, each an array of arguments.
 *
 * @example
 * ```ts
 * const decoder = new RespDecoder((args) => dispatch(args[0]!.toString('latin1').toUpperCase(), args));
 * // dataReceived(data) { try { decoder.feedData(data) } catch (e) { write(encodeError(`ERR ${e.message}`)); close() } }
 * ```
 */
export class RespDecoder extends StreamDecoder {
  readonly #onCommand: (args: Buffer[]) => void;
  readonly #maxBulkLength: number;
  readonly #maxArrayLength: number;
  readonly #maxInlineLength: number;
  readonly #maxCommandSize: number;

  #state = S_START;
  /** The number being read (array count or bulk length), its digit count and sign. */
  #num = 0;
  #digits = 0;
  #negative = false;
  #count = 0;
  #args: Buffer[] = [];
  /** Arguments before this index are copies; those after are views of the chunk being fed. */
  #owned = 0;
  /** Declared bytes of the command's arguments so far, for `maxCommandSize`. */
  #size = 0;
  /** Bytes of the command's complete arguments. */
  #held = 0;
  #bulk = 0;
  readonly #pending = new ByteAccumulator();

  /**
   * Makes a RESP request decoder.
   *
   * @param onCommand - called with each command's arguments (never empty); they may be views of the chunk
   *   being fed.
   * @param options - limits, in bytes and counts.
   * @throws InvalidOptionsError when a limit is not a positive integer.
   */
  constructor(onCommand: (args: Buffer[]) => void, options: RespDecoderOptions = {}) {
    super();
    this.#onCommand = onCommand;
    this.#maxBulkLength = limit('maxBulkLength', options.maxBulkLength, 512 * 1024 * 1024);
    this.#maxArrayLength = limit('maxArrayLength', options.maxArrayLength, 1024 * 1024);
    this.#maxInlineLength = limit('maxInlineLength', options.maxInlineLength, 64 * 1024);
    this.#maxCommandSize = limit('maxCommandSize', options.maxCommandSize, 1024 * 1024 * 1024);
  }

  /** How many bytes of an incomplete command are held. */
  get bufferedBytes(): number {
    return this.#pending.length + this.#held;
  }

  /** Drops a partial command, as redis-server drops it when the client goes away. */
  protected _end(): void {
    this._discard();
  }

  /** Drops the partial command held. */
  protected _discard(): void {
    this.#pending.clear();
    this.#args = [];
    this.#held = 0;
  }

  /**
   * Decodes a chunk, calling `onCommand` for each command it completes.
   *
   * @throws RespProtocolError for a request redis-server would refuse.
   */
  protected _decode(chunk: Buffer): void {
    this.#run(chunk);
    // Arguments that are views of this chunk must not outlive it: the caller may reuse its memory.
    const args = this.#args;
    for (let k = this.#owned; k < args.length; k++) args[k] = Buffer.from(args[k]!);
    this.#owned = args.length;
  }

  #run(b: Buffer): void {
    const len = b.length;
    let i = 0;
    while (i < len) {
      switch (this.#state) {
        case S_START:
          if (b[i] === 0x2a) {
            this.#startNumber(S_COUNT);
            i++;
          } else {
            this.#state = S_INLINE;
            i = this.#inline(b, i, len);
          }
          break;
        case S_COUNT:
        case S_BULK_LEN:
          i = this.#number(b, i, len);
          break;
        case S_COUNT_LF: {
          if (b[i] !== LF) protocolError('invalid multibulk length');
          i++;
          const n = this.#negative ? -this.#num : this.#num;
          // redis-server takes `*0` and `*-1` as nothing to do.
          if (n <= 0) {
            this.#state = S_START;
          } else {
            this.#count = n;
            this.#state = S_BULK_PREFIX;
          }
          break;
        }
        case S_BULK_PREFIX:
          if (b[i] !== 0x24) protocolError(`expected '$', got '${String.fromCharCode(b[i]!)}'`);
          this.#startNumber(S_BULK_LEN);
          i++;
          break;
        case S_BULK_LEN_LF: {
          if (b[i] !== LF) protocolError('invalid bulk length');
          i++;
          const n = this.#num;
          if (this.#size + n > this.#maxCommandSize) protocolError('command too large');
          this.#size += n;
          if (len - i >= n + 2) {
            // The whole argument in this chunk: a view, no copy.
            if (b[i + n] !== CR || b[i + n + 1] !== LF) protocolError("expected '\\r\\n' after bulk data");
            this.#args.push(n === 0 ? EMPTY : b.subarray(i, i + n));
            this.#held += n;
            i += n + 2;
            this.#argDone();
          } else {
            this.#bulk = n;
            this.#state = n === 0 ? S_BULK_CR : S_BULK_DATA;
          }
          break;
        }
        case S_BULK_DATA: {
          const take = Math.min(this.#bulk - this.#pending.length, len - i);
          this.#pending.append(b, i, i + take, this.#bulk);
          i += take;
          if (this.#pending.length === this.#bulk) this.#state = S_BULK_CR;
          break;
        }
        case S_BULK_CR:
          if (b[i] !== CR) protocolError("expected '\\r\\n' after bulk data");
          this.#state = S_BULK_LF;
          i++;
          break;
        case S_BULK_LF:
          if (b[i] !== LF) protocolError("expected '\\r\\n' after bulk data");
          i++;
          this.#args.push(this.#bulk === 0 ? EMPTY : this.#pending.take());
          this.#held += this.#bulk;
          // A bulk that needed the held bytes began in an earlier chunk, so it is the first argument this chunk
          // completes: every argument before it is already a copy.
          this.#owned = this.#args.length;
          this.#argDone();
          break;
        case S_INLINE:
          i = this.#inline(b, i, len);
          break;
      }
    }
  }

  #startNumber(state: number): void {
    this.#state = state;
    this.#num = 0;
    this.#digits = 0;
    this.#negative = false;
  }

  /** An array count or bulk length: redis-server's `string2ll` (optional `-`, no leading zero), then CR. */
  #number(b: Buffer, i: number, len: number): number {
    const isCount = this.#state === S_COUNT;
    const what = isCount ? 'invalid multibulk length' : 'invalid bulk length';
    const max = isCount ? this.#maxArrayLength : this.#maxBulkLength;
    for (; i < len; i++) {
      const c = b[i]!;
      if (c >= 0x30 && c <= 0x39) {
        // A leading zero is only valid as the number 0 itself; "-0" is not valid either.
        if (this.#digits > 0 && this.#num === 0) protocolError(what);
        if (c === 0x30 && this.#digits === 0 && this.#negative) protocolError(what);
        this.#num = this.#num * 10 + (c - 0x30);
        if (++this.#digits > MAX_DIGITS) protocolError(what);
        // Refused as soon as it is too large: nothing of it is ever held.
        if (!this.#negative && this.#num > max) protocolError(what);
      } else if (c === 0x2d && this.#digits === 0 && !this.#negative) {
        this.#negative = true;
      } else if (c === CR && this.#digits > 0) {
        if (!isCount && this.#negative) protocolError(what);
        this.#state = isCount ? S_COUNT_LF : S_BULK_LEN_LF;
        return i + 1;
      } else {
        protocolError(what);
      }
    }
    return i;
  }

  #argDone(): void {
    if (this.#args.length < this.#count) {
      this.#state = S_BULK_PREFIX;
      return;
    }
    const args = this.#args;
    this.#args = [];
    this.#owned = 0;
    this.#size = 0;
    this.#held = 0;
    this.#count = 0;
    this.#state = S_START;
    this.#onCommand(args);
  }

  /** An inline command: one line up to `\n` (a `\r` before it dropped), split as redis-server splits it. */
  #inline(b: Buffer, i: number, len: number): number {
    const pending = this.#pending;
    const nl = b.indexOf(LF, i);
    const end = nl === -1 ? len : nl;
    if (pending.length + (end - i) > this.#maxInlineLength) protocolError('too big inline request');
    if (nl === -1) {
      pending.append(b, i, len, this.#maxInlineLength);
      return len;
    }
    let line: Buffer;
    if (pending.length > 0) {
      pending.append(b, i, nl, this.#maxInlineLength);
      line = pending.take();
    } else {
      line = b.subarray(i, nl);
    }
    // redis-server looks for the `\n` with strchr(), which stops at a NUL: it would wait for a newline it
    // never sees until the inline limit. Refusing at once is the useful version of that.
    if (line.indexOf(0) !== -1) protocolError('NUL byte in inline request');
    const stop = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
    this.#state = S_START;
    const args = splitArgs(line, stop);
    if (args === null) protocolError('unbalanced quotes in request');
    if (args.length > 0) this.#onCommand(args);
    return nl + 1;
  }
}

/** C's isspace(). */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * redis-server's `sdssplitargs`: arguments separated by whitespace, `"…"` with C escapes (`\n`, `\xHH`, …),
 * `'…'` with only `\'`; a closing quote must be followed by whitespace or the end. `end` stands for the C
 * string's NUL (the line has none). Returns null for unbalanced quotes.
 */
function splitArgs(line: Buffer, end: number): Buffer[] | null {
  const at = (p: number): number => (p < end ? line[p]! : 0);
  const args: Buffer[] = [];
  let p = 0;
  for (;;) {
    while (at(p) !== 0 && isSpace(at(p))) p++;
    if (at(p) === 0) return args;
    let inDouble = false;
    let inSingle = false;
    let done = false;
    const start = p;
    let plain = true; // no quote or escape so far: the argument is a view of the line
    const bytes: number[] = [];
    while (!done) {
      const c = at(p);
      if (inDouble) {
        if (c === 0x5c && at(p + 1) === 0x78 && hexValue(at(p + 2)) >= 0 && hexValue(at(p + 3)) >= 0) {
          bytes.push(hexValue(at(p + 2)) * 16 + hexValue(at(p + 3)));
          p += 3;
        } else if (c === 0x5c && at(p + 1) !== 0) {
          p++;
          const e = at(p);
          bytes.push(e === 0x6e ? 10 : e === 0x72 ? 13 : e === 0x74 ? 9 : e === 0x62 ? 8 : e === 0x61 ? 7 : e);
        } else if (c === 0x22) {
          if (at(p + 1) !== 0 && !isSpace(at(p + 1))) return null;
          done = true;
        } else if (c === 0) {
          return null;
        } else {
          bytes.push(c);
        }
      } else if (inSingle) {
        if (c === 0x5c && at(p + 1) === 0x27) {
          p++;
          bytes.push(0x27);
        } else if (c === 0x27) {
          if (at(p + 1) !== 0 && !isSpace(at(p + 1))) return null;
          done = true;
        } else if (c === 0) {
          return null;
        } else {
          bytes.push(c);
        }
      } else if (c === 0x20 || c === LF || c === CR || c === 0x09 || c === 0) {
        done = true;
      } else if (c === 0x22) {
        inDouble = true;
        plain = false;
      } else if (c === 0x27) {
        inSingle = true;
        plain = false;
      } else {
        bytes.push(c);
      }
      if (at(p) !== 0) p++;
    }
    if (plain) {
      // Unquoted: the bytes are exactly the line's, minus the separator that ended it.
      args.push(line.subarray(start, start + bytes.length));
    } else {
      args.push(Buffer.from(bytes));
    }
  }
}

/** A RESP simple string reply (`+OK`), for {@link encodeResp}. */
export class RespSimpleString {
  /**
   * Wraps a simple string reply.
   *
   * @param value - the text, without CR or LF.
   */
  constructor(readonly value: string) {}
}

/** A RESP error reply (`-ERR unknown command`), for {@link encodeResp}. */
export class RespErrorReply {
  /**
   * Wraps an error reply.
   *
   * @param message - the error, starting with its code (`ERR`, `WRONGTYPE`), without CR or LF.
   */
  constructor(readonly message: string) {}
}

/**
 * Any RESP2 reply: strings and bytes are bulk strings, numbers and bigints integers, `null` the null bulk
 * string, arrays arrays; simple strings and errors are wrapped.
 */
export type RespValue =
  string | Uint8Array | number | bigint | null | RespSimpleString | RespErrorReply | readonly RespValue[];

const NO_CRLF = /^[^\r\n]*$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** `+OK\r\n`. */
export const RESP_OK: Buffer = Buffer.from('+OK\r\n');
/** `+PONG\r\n`. */
export const RESP_PONG: Buffer = Buffer.from('+PONG\r\n');
/** The null bulk string, `$-1\r\n` (a missing key). */
export const RESP_NULL: Buffer = Buffer.from('$-1\r\n');
/** The null array, `*-1\r\n`. */
export const RESP_NULL_ARRAY: Buffer = Buffer.from('*-1\r\n');

function line(prefix: string, text: string, what: string): Buffer {
  if (!NO_CRLF.test(text)) throw new FramingEncodeError(`A RESP ${what} cannot contain CR or LF`);
  return Buffer.from(`${prefix}${text}\r\n`, 'utf8');
}

/**
 * Encodes a simple string reply (`+OK`).
 *
 * @param text - the text, without CR or LF.
 * @returns the reply's bytes.
 * @throws FramingEncodeError when the text contains CR or LF.
 */
export function encodeSimpleString(text: string): Buffer {
  return line('+', text, 'simple string');
}

/**
 * Encodes an error reply; the message starts with the error code, as redis-server's do (`ERR unknown command`).
 *
 * @param message - the error, without CR or LF.
 * @returns the reply's bytes.
 * @throws FramingEncodeError when the message contains CR or LF.
 */
export function encodeError(message: string): Buffer {
  return line('-', message, 'error');
}

function integerText(n: number | bigint): string {
  if (typeof n === 'bigint') {
    if (n < INT64_MIN || n > INT64_MAX) throw new FramingEncodeError(`${n} is not a 64-bit integer`);
    return n.toString();
  }
  if (!Number.isSafeInteger(n)) throw new FramingEncodeError(`${n} is not an integer a RESP reply can carry`);
  return String(n);
}

/**
 * Encodes an integer reply (`:42`).
 *
 * @param n - a safe integer, or a bigint in the signed 64-bit range.
 * @returns the reply's bytes.
 * @throws FramingEncodeError for anything else.
 */
export function encodeInteger(n: number | bigint): Buffer {
  return Buffer.from(`:${integerText(n)}\r\n`, 'latin1');
}

/**
 * Encodes a bulk string reply, or the null bulk string for `null`.
 *
 * @param value - bytes, or a string sent as UTF-8, or null.
 * @returns the reply's bytes.
 */
export function encodeBulkString(value: string | Uint8Array | null): Buffer {
  if (value === null) return RESP_NULL;
  const size = typeof value === 'string' ? Buffer.byteLength(value) : value.byteLength;
  const prefix = `$${size}\r\n`;
  const out = Buffer.allocUnsafe(prefix.length + size + 2);
  out.write(prefix, 0, 'latin1');
  if (typeof value === 'string') out.write(value, prefix.length, 'utf8');
  else out.set(value, prefix.length);
  out[out.length - 2] = CR;
  out[out.length - 1] = LF;
  return out;
}

/**
 * Encodes an array reply (of any replies, nested), or the null array for `null`.
 *
 * @param items - the elements.
 * @returns the reply's bytes, in one Buffer.
 * @throws FramingEncodeError for an element that cannot be encoded.
 */
export function encodeArray(items: readonly RespValue[] | null): Buffer {
  if (items === null) return RESP_NULL_ARRAY;
  return encodeResp(items);
}

/**
 * Encodes a command as a client sends it: an array of bulk strings.
 *
 * @param args - the command name and its arguments.
 * @returns the request's bytes.
 */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Buffer {
  return encodeResp(args);
}

/**
 * Encodes any reply into one Buffer (see {@link RespValue} for the mapping of types).
 *
 * @param value - the reply.
 * @returns the reply's bytes.
 * @throws FramingEncodeError for a simple string or error containing CR or LF, or a non-integer number.
 */
export function encodeResp(value: RespValue): Buffer {
  const parts: (string | Uint8Array)[] = [];
  const size = collect(value, parts);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const part of parts) {
    if (typeof part === 'string') at += out.write(part, at, 'utf8');
    else {
      out.set(part, at);
      at += part.byteLength;
    }
  }
  return out;
}

/** Flattens a reply into strings (UTF-8) and bytes; returns the total size in bytes. */
function collect(value: RespValue, parts: (string | Uint8Array)[]): number {
  if (value === null) {
    parts.push('$-1\r\n');
    return 5;
  }
  if (typeof value === 'string') {
    const size = Buffer.byteLength(value);
    const prefix = `$${size}\r\n`;
    parts.push(prefix, value, '\r\n');
    return prefix.length + size + 2;
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    const text = `:${integerText(value)}\r\n`;
    parts.push(text);
    return text.length;
  }
  if (value instanceof Uint8Array) {
    const prefix = `$${value.byteLength}\r\n`;
    parts.push(prefix, value, '\r\n');
    return prefix.length + value.byteLength + 2;
  }
  if (value instanceof RespSimpleString || value instanceof RespErrorReply) {
    const simple = value instanceof RespSimpleString;
    const text = simple ? value.value : value.message;
    if (!NO_CRLF.test(text)) {
      throw new FramingEncodeError(`A RESP ${simple ? 'simple string' : 'error'} cannot contain CR or LF`);
    }
    const whole = `${simple ? '+' : '-'}${text}\r\n`;
    parts.push(whole);
    return Buffer.byteLength(whole);
  }
  const prefix = `*${value.length}\r\n`;
  parts.push(prefix);
  let size = prefix.length;
  for (const item of value) size += collect(item, parts);
  return size;
}
