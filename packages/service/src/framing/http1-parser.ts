/**
 * An incremental, strict HTTP/1.1 request parser (RFC 9112) fed the chunks a transport delivers, split anywhere.
 *
 * Grammar of the handler calls for each request on a connection:
 * `[onExpectContinue] -> onRequest -> onBody* -> onRequestEnd` in streaming mode and
 * `[onExpectContinue] -> onRequest -> onRequestEnd` in buffered mode (the body is on the request).
 *
 * Strictness is the point: anything a proxy in front of us could read differently (request smuggling) is refused
 * with a status and the connection is to be closed: bare CR or LF, obs-fold, whitespace before a colon, both
 * Content-Length and Transfer-Encoding, a duplicate or non-decimal Content-Length, a Transfer-Encoding whose final
 * coding is not `chunked`, a malformed chunk size or extension, a missing or duplicate Host.
 *
 * Cost model: the head is validated in one pass over its bytes with table lookups (which finds its structure as
 * it goes), then decoded once to a latin1 string; names, values and the target are substrings of it, made only
 * when asked for. Bodies are views of the input when they arrive whole.
 *
 * @module
 */
import { ByteAccumulator, EMPTY, TOKEN as TOKEN_TABLE, byteTable, latin1, limit } from './bytes.js';
import { HttpParseError } from './errors.js';
import { StreamDecoder } from './decoder.js';
import type { HttpErrorStatus } from './errors.js';

/** Options of {@link Http1Parser}; every limit is in bytes and refuses the request with the status named. */
export interface Http1ParserOptions {
  /** Largest request head (request line, header lines and their CRLFs), in bytes; default 16384; 431 past it. */
  readonly maxHeaderSize?: number;
  /** Most header lines in a head (and, separately, in a trailer section); default 100; 431 past it. */
  readonly maxHeaderCount?: number;
  /** Longest request-target, in bytes; default 8192; 414 past it. */
  readonly maxUrlLength?: number;
  /** Largest body (after chunked decoding), in bytes; default 1048576 (1 MiB), `Infinity` allowed; 413 past it. */
  readonly maxBodySize?: number;
  /**
   * `'buffer'` (default): the body is collected and set on the request before `onRequest`.
   * `'stream'`: `onRequest` comes as soon as the head is parsed and the body follows in `onBody` calls.
   */
  readonly body?: 'buffer' | 'stream';
}

/** What the parser calls; every callback runs synchronously inside `feedData`. */
export interface Http1ParserHandlers {
  /**
   * A request: complete with its body in buffered mode, its head only in streaming mode.
   *
   * @param req - the request.
   */
  onRequest(req: ParsedRequest): void;
  /**
   * A piece of the body (streaming mode only), after chunked decoding. The Buffer may be a view of the chunk
   * given to `feedData`: copy it if that memory is going to be reused.
   *
   * @param chunk - the bytes, never empty.
   * @param req - the request they belong to.
   */
  onBody?(chunk: Buffer, req: ParsedRequest): void;
  /**
   * The request is complete (its trailers, if any, are on it). Called in both modes, after `onRequest`.
   *
   * @param req - the request.
   */
  onRequestEnd?(req: ParsedRequest): void;
  /**
   * The head asks for `100 Continue` (an HTTP/1.1 request with `Expect: 100-continue` and a body): the client
   * waits for it before sending the body. Answer with `CONTINUE`, or with a final status and close.
   *
   * @param req - the request, whose body has not been read.
   */
  onExpectContinue?(req: ParsedRequest): void;
}

/** A request as the parser delivers it: the head parsed and checked, the rest of the work done lazily. */
export interface ParsedRequest {
  /** The method token, case kept (`GET`). */
  readonly method: string;
  /** The request-target exactly as sent (`/a/b?x=1`, `*`, `http://h/p`), decoded as latin1. */
  readonly url: string;
  /** The path part of the target (before `?`; for the absolute form, after the authority). */
  readonly path: string;
  /** The query part of the target, without `?`; empty when there is none. */
  readonly query: string;
  /** `'1.1'` or `'1.0'`. */
  readonly httpVersion: '1.0' | '1.1';
  /**
   * The header fields with lowercase names. Repeated fields are joined with `, ` (`; ` for `cookie`), except the
   * fields Node keeps the first of (`content-type`, `authorization`, `user-agent`, …), which keep the first.
   */
  readonly headers: Readonly<Record<string, string>>;
  /** The header lines as sent: `[name, value, name, value, …]`, names in their case, values without OWS. */
  readonly rawHeaders: readonly string[];
  /** Trailer fields of a chunked body, as `headers`; empty otherwise (or until the body has been read). */
  readonly trailers: Readonly<Record<string, string>>;
  /** Trailer lines as sent, as `rawHeaders`. */
  readonly rawTrailers: readonly string[];
  /** The body in buffered mode (empty when there is none, and in streaming mode); may be a view of the input. */
  readonly body: Buffer;
  /** The declared Content-Length, or `null` (chunked, or no body). */
  readonly contentLength: number | null;
  /** Whether the body is chunked. */
  readonly chunked: boolean;
  /** Whether the connection may serve another request after this one (HTTP/1.1 default, `Connection`). */
  readonly keepAlive: boolean;
  /** Whether the client waits for `100 Continue` before sending the body. */
  readonly expectContinue: boolean;
  /** Whether the client asks to switch protocols (`Connection: upgrade` and an `Upgrade` field). */
  readonly upgrade: boolean;
}

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
const DEFAULT_MAX_HEADER_COUNT = 100;
const DEFAULT_MAX_URL_LENGTH = 8 * 1024;
const DEFAULT_MAX_BODY_SIZE = 1024 * 1024;
// RFC 9112 §3: a method longer than any implemented SHOULD get 501; no registered method is this long.
const MAX_METHOD_LENGTH = 32;
// The chunk-size line (size and extensions) has no bound in the grammar; Node caps extensions at 16 KiB after
// CVE-2024-22019. Extensions carry nothing we use, so a small cap costs nothing.
const MAX_CHUNK_LINE = 4096;

// A module-local binding: the tables are read per byte, and a loader may turn imports into getters.
const TOKEN = TOKEN_TABLE;
/** Request-target bytes: visible ASCII except `#` (no fragment in a request), and obs-text, decoded as latin1. */
const TARGET = byteTable('', [0x21, 0x22], [0x24, 0x7e], [0x80, 0xff]);
/** Field value bytes: VCHAR, SP, HTAB, obs-text; no other control byte, no DEL, no NUL. */
const VALUE = byteTable('\t', [0x20, 0x7e], [0x80, 0xff]);
/** Host bytes (RFC 3986 reg-name, IP-literal and port): unreserved, sub-delims, `%`, `:`, `[`, `]`. */
const HOST = byteTable("-._~!$&'()*+,;=%:[]", [0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]);
/** quoted-string text (qdtext) of a chunk extension value. */
const QDTEXT = byteTable('\t !', [0x23, 0x5b], [0x5d, 0x7e], [0x80, 0xff]);
/** Bytes that may follow a backslash in a quoted-string. */
const QPAIR = byteTable('\t', [0x20, 0x7e], [0x80, 0xff]);
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX[0x41 + i] = HEX[0x61 + i] = 10 + i;

// Parser states. The head states double as the trailer-section states (`inTrailers`).
const S_IDLE = 0; // between requests: optional empty lines (RFC 9112 §2.2)
const S_IDLE_LF = 1;
const S_METHOD = 2;
const S_TARGET = 3;
const S_VERSION = 4;
const S_REQ_LF = 5;
const S_FIELD_START = 6;
const S_FIELD_NAME = 7;
const S_FIELD_OWS = 8;
const S_FIELD_VALUE = 9;
const S_FIELD_LF = 10;
const S_FIELDS_END_LF = 11;
const S_BODY = 12;
const S_CHUNK_SIZE = 13;
const S_CHUNK_BWS = 14; // whitespace after the size or a value: only `;` may follow
const S_CHUNK_EXT_BWS = 15; // after `;`
const S_CHUNK_EXT_NAME = 16;
const S_CHUNK_EXT_NAME_BWS = 17; // whitespace after a name: `=` or `;` must follow
const S_CHUNK_EXT_EQ_BWS = 18; // after `=`
const S_CHUNK_EXT_TOKEN = 19;
const S_CHUNK_EXT_QUOTED = 20;
const S_CHUNK_EXT_QUOTED_ESC = 21;
const S_CHUNK_EXT_VALUE_END = 27; // after a closing quote
const S_CHUNK_SIZE_LF = 22;
const S_CHUNK_DATA = 23;
const S_CHUNK_DATA_CR = 24;
const S_CHUNK_DATA_LF = 25;
const S_CLOSED = 26; // a `Connection: close` request was read: what follows is not ours to parse

const LOWER_HOST = lowerBytes('host');
const LOWER_EXPECT = lowerBytes('expect');
const LOWER_UPGRADE = lowerBytes('upgrade');
const LOWER_CONNECTION = lowerBytes('connection');
const LOWER_CONTENT_LENGTH = lowerBytes('content-length');
const LOWER_TRANSFER_ENCODING = lowerBytes('transfer-encoding');
const LOWER_KEEP_ALIVE = lowerBytes('keep-alive');
const LOWER_CLOSE = lowerBytes('close');
const LOWER_100_CONTINUE = lowerBytes('100-continue');

function lowerBytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** Case-insensitive comparison of field bytes with a lowercase ASCII word of the same length. */
function isName(b: Buffer, at: number, name: Uint8Array): boolean {
  for (let j = 0; j < name.length; j++) {
    // `| 0x20` folds A-Z onto a-z; the only other bytes it maps onto a letter, `-` or a digit are control
    // bytes, which no validated name or value contains.
    if ((b[at + j]! | 0x20) !== name[j]) return false;
  }
  return true;
}

// Node discards repeats of these instead of joining them (lib/_http_incoming.js); the parser itself refuses
// repeated host and content-length.
const KEEP_FIRST = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

type FieldMap = Record<string, string>;
const NO_FIELDS: Readonly<FieldMap> = Object.freeze({});
const NO_LINES: readonly string[] = Object.freeze([]);
const NO_OFFSETS: readonly number[] = NO_LINES as readonly never[];

// Well-known request field names, by length. A name found here is used as the key as it is: an interned
// string, where a fresh slice would have to be lowercased and then hashed into the string table by V8.
const KNOWN_NAMES: (string[] | undefined)[] = [];
for (const name of [
  'accept',
  'accept-encoding',
  'accept-language',
  'authorization',
  'cache-control',
  'connection',
  'content-length',
  'content-type',
  'cookie',
  'host',
  'if-modified-since',
  'if-none-match',
  'origin',
  'pragma',
  'referer',
  'sec-fetch-dest',
  'sec-fetch-mode',
  'sec-fetch-site',
  'te',
  'transfer-encoding',
  'upgrade',
  'upgrade-insecure-requests',
  'user-agent',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id',
]) {
  (KNOWN_NAMES[name.length] ??= []).push(name);
}

function fieldName(text: string, start: number, end: number): string {
  const candidates = KNOWN_NAMES[end - start];
  if (candidates !== undefined) {
    next: for (const known of candidates) {
      for (let j = 0; j < known.length; j++) {
        // The same fold as isName: the text holds token bytes only.
        if ((text.charCodeAt(start + j) | 0x20) !== known.charCodeAt(j)) continue next;
      }
      return known;
    }
  }
  return text.slice(start, end).toLowerCase();
}

function fieldMap(text: string, offs: readonly number[], n: number): FieldMap {
  // A plain object, as Node's `req.headers`: twice as fast to fill as a null-prototype one. Names that collide
  // with Object.prototype (`constructor`, `__proto__`) become own properties all the same, below.
  const map: FieldMap = {};
  for (let k = 0; k < 4 * n; k += 4) {
    const name = fieldName(text, offs[k]!, offs[k + 1]!);
    const value = text.slice(offs[k + 2], offs[k + 3]);
    const seen: unknown = map[name];
    if (typeof seen !== 'string') {
      if (seen === undefined) map[name] = value;
      else Object.defineProperty(map, name, { value, writable: true, enumerable: true, configurable: true });
    } else if (name === 'cookie') {
      map[name] = `${seen}; ${value}`;
    } else if (!KEEP_FIRST.has(name)) {
      map[name] = `${seen}, ${value}`;
    }
  }
  return map;
}

function rawFields(text: string, offs: readonly number[], n: number): string[] {
  const raw = new Array<string>(2 * n);
  for (let k = 0; k < n; k++) {
    raw[2 * k] = text.slice(offs[4 * k], offs[4 * k + 1]);
    raw[2 * k + 1] = text.slice(offs[4 * k + 2], offs[4 * k + 3]);
  }
  return raw;
}

/** The request object: fields the parser decided eagerly, the rest derived from the head text on demand. */
class Request implements ParsedRequest {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: '1.0' | '1.1';
  readonly contentLength: number | null;
  readonly chunked: boolean;
  readonly keepAlive: boolean;
  readonly expectContinue: boolean;
  readonly upgrade: boolean;
  body: Buffer = EMPTY;
  #head: string;
  #offs: readonly number[];
  #count: number;
  #headers: FieldMap | undefined = undefined;
  #raw: string[] | undefined = undefined;
  #trailers: FieldMap | undefined = undefined;
  #rawTrailers: readonly string[] | undefined = undefined;
  #trailerText = '';
  #trailerOffs: readonly number[] = NO_OFFSETS;
  #trailerCount = 0;
  #pathEnd = -1;
  #pathStart = 0;

  constructor(
    method: string,
    url: string,
    httpVersion: '1.0' | '1.1',
    head: string,
    offs: number[],
    count: number,
    contentLength: number | null,
    chunked: boolean,
    keepAlive: boolean,
    expectContinue: boolean,
    upgrade: boolean,
  ) {
    this.method = method;
    this.url = url;
    this.httpVersion = httpVersion;
    this.#head = head;
    this.#offs = offs;
    this.#count = count;
    this.contentLength = contentLength;
    this.chunked = chunked;
    this.keepAlive = keepAlive;
    this.expectContinue = expectContinue;
    this.upgrade = upgrade;
  }

  get rawHeaders(): readonly string[] {
    return (this.#raw ??= rawFields(this.#head, this.#offs, this.#count));
  }

  get headers(): Readonly<FieldMap> {
    return (this.#headers ??= fieldMap(this.#head, this.#offs, this.#count));
  }

  get trailers(): Readonly<FieldMap> {
    if (this.#trailerCount === 0) return NO_FIELDS;
    return (this.#trailers ??= fieldMap(this.#trailerText, this.#trailerOffs, this.#trailerCount));
  }

  get rawTrailers(): readonly string[] {
    if (this.#trailerCount === 0) return NO_LINES;
    return (this.#rawTrailers ??= rawFields(this.#trailerText, this.#trailerOffs, this.#trailerCount));
  }

  /** Records the trailer section (the parser's call, once the chunked body has ended). */
  setTrailers(text: string, offs: readonly number[], count: number): void {
    this.#trailerText = text;
    this.#trailerOffs = offs;
    this.#trailerCount = count;
  }

  #split(): void {
    const url = this.url;
    let start = 0;
    if (url.charCodeAt(0) !== 0x2f && url !== '*') {
      // absolute-form: the path starts at the first `/` after `scheme://authority`.
      const auth = url.indexOf('//');
      const slash = auth === -1 ? -1 : url.indexOf('/', auth + 2);
      const q = url.indexOf('?');
      start = slash === -1 || (q !== -1 && q < slash) ? -1 : slash;
    }
    const q = url.indexOf('?', start === -1 ? 0 : start);
    this.#pathStart = start;
    this.#pathEnd = q === -1 ? url.length : q;
  }

  get path(): string {
    if (this.#pathEnd === -1) this.#split();
    return this.#pathStart === -1 ? '/' : this.url.slice(this.#pathStart, this.#pathEnd);
  }

  get query(): string {
    if (this.#pathEnd === -1) this.#split();
    return this.url.slice(this.#pathEnd + 1);
  }
}

function fail(message: string, status: HttpErrorStatus = 400): never {
  throw new HttpParseError(message, status);
}

/**
 * Parses the HTTP/1.1 requests of one connection, incrementally: the same requests and the same errors come out
 * whatever way the byte stream is split into chunks.
 *
 * After an error, and after a request that does not keep the connection alive, the parser takes no more
 * requests: an error is thrown again by every later call, and bytes after a `Connection: close` request are
 * ignored. After `feedEof`, `feedData` throws `InvalidStateError`. Not reentrant: handlers must not call
 * `feedData` or `feedEof` on the parser that called them.
 *
 * @example
 * ```ts
 * const parser = new Http1Parser({
 *   onRequest(req) { transport.write(serializeResponse({ status: 200, body: 'hi', keepAlive: req.keepAlive })); },
 * });
 * // in dataReceived(data):
 * try { parser.feedData(data); } catch (err) { if (HttpParseError.isInstance(err)) reply(err.status); close(); }
 * ```
 */
export class Http1Parser extends StreamDecoder {
  readonly #handlers: Http1ParserHandlers;
  readonly #maxHeaderSize: number;
  readonly #maxHeaderCount: number;
  readonly #maxUrlLength: number;
  readonly #maxBodySize: number;
  readonly #streaming: boolean;

  #state = S_IDLE;
  #inTrailers = false;
  /** The head (or trailer section) bytes carried over while it arrives in pieces; empty on the fast path. */
  readonly #pending = new ByteAccumulator();
  /** Index in the current chunk where the head in progress starts (fast path only). */
  #base = 0;
  // Positions relative to the start of the head: the request line, then 4 per field line
  // (name start, name end, value start, value end).
  #methodEnd = 0;
  #targetEnd = 0;
  #offs: number[] = [];
  #count = 0;

  #req: Request | null = null;
  #remaining = 0;
  #bodySize = 0;
  readonly #body = new ByteAccumulator();
  #bodyView: Buffer | null = null;
  #chunkLine = 0;
  #chunkDigits = 0;
  /** Set by `pause()`: parsing stops at the next request boundary. */
  #paused = false;
  /** The bytes after that boundary, kept (copied) until parsing goes on. */
  #held: Buffer | null = null;

  /**
   * Makes a parser for one connection.
   *
   * @param handlers - called for each request, synchronously inside `feedData`.
   * @param options - limits (bytes) and body mode.
   * @throws InvalidOptionsError when a limit is not a positive integer.
   */
  constructor(handlers: Http1ParserHandlers, options: Http1ParserOptions = {}) {
    super();
    this.#handlers = handlers;
    this.#maxHeaderSize = limit('maxHeaderSize', options.maxHeaderSize, DEFAULT_MAX_HEADER_SIZE);
    this.#maxHeaderCount = limit('maxHeaderCount', options.maxHeaderCount, DEFAULT_MAX_HEADER_COUNT);
    this.#maxUrlLength = limit('maxUrlLength', options.maxUrlLength, DEFAULT_MAX_URL_LENGTH);
    this.#maxBodySize = limit('maxBodySize', options.maxBodySize, DEFAULT_MAX_BODY_SIZE, true);
    this.#streaming = options.body === 'stream';
  }

  /** How many bytes the parser holds between calls (a partial head, a partial buffered body). */
  get bufferedBytes(): number {
    return this.#pending.length + this.#body.length + (this.#held?.length ?? 0);
  }

  /** True between requests: nothing of a next request has been received. */
  get idle(): boolean {
    return !this._failed && this.#held === null && (this.#state === S_IDLE || this.#state === S_CLOSED);
  }

  /** The bytes held back by `pause()`, not parsed yet. */
  get heldBytes(): number {
    return this.#held?.length ?? 0;
  }

  /**
   * Stops parsing at the next request boundary (at once when between requests): what follows it, in this chunk
   * and the next ones, is kept, unparsed, until `resume()` and the next `feedData()` (an empty chunk will do).
   * This is how a connection stops taking pipelined requests while its responses back up.
   */
  pause(): void {
    this.#paused = true;
  }

  /** Ends a pause: the next `feedData()` parses the bytes held back first. */
  resume(): void {
    this.#paused = false;
  }

  /**
   * Checks that the stream did not end inside a request.
   *
   * @throws HttpParseError (400) when it did.
   */
  protected _end(): void {
    if (this.#held !== null) throw new HttpParseError('Incomplete request', 400);
    const state = this.#state;
    this.#state = S_CLOSED;
    if (state !== S_IDLE && state !== S_IDLE_LF && state !== S_CLOSED) {
      throw new HttpParseError('Incomplete request', 400);
    }
  }

  /** Drops the partial head and body held. */
  protected _discard(): void {
    this.#pending.clear();
    this.#body.clear();
    this.#held = null;
  }

  /**
   * Parses a chunk of the byte stream, calling the handlers for what it completes. The chunk is not retained,
   * though Buffers handed to the handlers may be views of it.
   *
   * @throws HttpParseError for a request to refuse (answer with its `status` and close); any error thrown by a
   *   handler is rethrown.
   */
  protected _decode(data: Buffer): void {
    let chunk = data;
    const held = this.#held;
    if (held !== null) {
      this.#held = null;
      chunk = chunk.length === 0 ? held : Buffer.concat([held, chunk]);
    }
    const len = chunk.length;
    let i = 0;
    if (this.#state >= S_METHOD && this.#state <= S_FIELDS_END_LF) {
      if (this.#pending.length > 0) {
        i = this.#resumeFields(chunk);
        if (i < 0) return;
      } else {
        this.#base = 0;
      }
    }
    while (i < len) {
      switch (this.#state) {
        case S_IDLE: {
          if (this.#paused) {
            // A copy: the chunk is the caller's.
            this.#held = Buffer.from(chunk.subarray(i));
            return;
          }
          const c = chunk[i]!;
          if (c === CR) {
            this.#state = S_IDLE_LF;
            i++;
          } else if (c === LF) {
            fail('Bare LF where CRLF is required');
          } else {
            this.#base = i;
            this.#state = S_METHOD;
            this.#inTrailers = false;
            i = this.#fields(chunk, i, len);
          }
          break;
        }
        case S_IDLE_LF:
          if (chunk[i] !== LF) fail('Bare CR where CRLF is required');
          this.#state = S_IDLE;
          i++;
          break;
        case S_METHOD:
        case S_TARGET:
        case S_VERSION:
        case S_REQ_LF:
        case S_FIELD_START:
        case S_FIELD_NAME:
        case S_FIELD_OWS:
        case S_FIELD_VALUE:
        case S_FIELD_LF:
        case S_FIELDS_END_LF:
          i = this.#fields(chunk, i, len);
          break;
        case S_BODY:
          i = this.#bodyBytes(chunk, i, len);
          break;
        case S_CHUNK_DATA:
          i = this.#bodyBytes(chunk, i, len);
          if (this.#remaining === 0) this.#state = S_CHUNK_DATA_CR;
          break;
        case S_CHUNK_DATA_CR:
          if (chunk[i] !== CR) fail('Invalid chunk: CRLF expected after the data');
          this.#state = S_CHUNK_DATA_LF;
          i++;
          break;
        case S_CHUNK_DATA_LF:
          if (chunk[i] !== LF) fail('Invalid chunk: CRLF expected after the data');
          this.#state = S_CHUNK_SIZE;
          this.#chunkLine = 0;
          this.#chunkDigits = 0;
          this.#remaining = 0;
          i++;
          break;
        case S_CLOSED:
          return;
        default:
          i = this.#chunkHeader(chunk, i, len);
      }
    }
  }

  /** Parses head or trailer bytes on the fast path (in `chunk`); returns where parsing goes on in `chunk`. */
  #fields(chunk: Buffer, i: number, len: number): number {
    const base = this.#base;
    const stop = Math.min(len, base + this.#maxHeaderSize);
    // 0 from #quickHead means "not the common case": the state machine reads the head again and judges it.
    const end =
      (i === base && this.#state === S_METHOD ? this.#quickHead(chunk, base, stop) : 0) ||
      this.#scan(chunk, i, stop, base);
    if (end >= 0) {
      this.#fieldsDone(chunk, base, end);
      return end;
    }
    if (stop < len) this.#tooLarge();
    this.#pending.append(chunk, base, len, this.#maxHeaderSize);
    return len;
  }

  /** Goes on with a head or trailer section that began in an earlier chunk; returns -1 when it is still partial. */
  #resumeFields(chunk: Buffer): number {
    const pending = this.#pending;
    const held = pending.length;
    const take = Math.min(chunk.length, this.#maxHeaderSize - held);
    pending.append(chunk, 0, take, this.#maxHeaderSize);
    const end = this.#scan(pending.buf, held, held + take, 0);
    if (end >= 0) {
      const buf = pending.buf;
      pending.clear();
      this.#fieldsDone(buf, 0, end);
      return end - held;
    }
    if (take < chunk.length) this.#tooLarge();
    return -1;
  }

  #tooLarge(): never {
    if (this.#inTrailers) fail('Trailer section too large', 431);
    if (this.#state <= S_TARGET) fail('URI too long', 414);
    fail('Request header fields too large', 431);
  }

  /**
   * A whole, well-formed request head in `b[base, stop)`, read in straight-line code: the common case, without
   * the state machine's dispatch. Returns the index after the head, or 0 for anything else (a partial head, an
   * unusual one, an invalid one), which the state machine then reads again from the start and judges. So this
   * accepts nothing the state machine refuses, and the tests compare the two on every input they try.
   */
  #quickHead(b: Buffer, base: number, stop: number): number {
    let i = base;
    while (i < stop && TOKEN[b[i]!] === 1) i++;
    const methodEnd = i - base;
    if (i >= stop || b[i] !== SP || methodEnd === 0 || methodEnd > MAX_METHOD_LENGTH) return 0;
    const targetStart = ++i;
    while (i < stop && TARGET[b[i]!] === 1) i++;
    if (i >= stop || b[i] !== SP || i === targetStart || i - targetStart > this.#maxUrlLength) return 0;
    const targetEnd = i - base;
    i++;
    if (
      i + 10 > stop ||
      b[i] !== 0x48 ||
      b[i + 1] !== 0x54 ||
      b[i + 2] !== 0x54 ||
      b[i + 3] !== 0x50 ||
      b[i + 4] !== 0x2f ||
      b[i + 5] !== 0x31 ||
      b[i + 6] !== 0x2e ||
      (b[i + 7] !== 0x31 && b[i + 7] !== 0x30) ||
      b[i + 8] !== CR ||
      b[i + 9] !== LF
    ) {
      return 0;
    }
    i += 10;
    const offs: number[] = [];
    const max = this.#maxHeaderCount;
    let count = 0;
    for (;;) {
      if (i >= stop) return 0;
      if (b[i] === CR) {
        if (i + 1 >= stop || b[i + 1] !== LF) return 0;
        this.#methodEnd = methodEnd;
        this.#targetEnd = targetEnd;
        this.#offs = offs;
        this.#count = count;
        return i + 2;
      }
      if (TOKEN[b[i]!] !== 1 || count === max) return 0;
      const nameStart = i++;
      while (i < stop && TOKEN[b[i]!] === 1) i++;
      if (i >= stop || b[i] !== COLON) return 0;
      const nameEnd = i++;
      while (i < stop && (b[i] === SP || b[i] === HTAB)) i++;
      const valueStart = i;
      while (i < stop && VALUE[b[i]!] === 1) i++;
      if (i + 1 >= stop || b[i] !== CR || b[i + 1] !== LF) return 0;
      let valueEnd = i;
      while (valueEnd > valueStart && (b[valueEnd - 1] === SP || b[valueEnd - 1] === HTAB)) valueEnd--;
      offs.push(nameStart - base, nameEnd - base, valueStart - base, valueEnd - base);
      count++;
      i += 2;
    }
  }

  /**
   * The head/trailer state machine over `b[i, stop)`; positions are recorded relative to `base`, where the
   * section starts in `b`. Returns the index after the section's final LF, or -1 when `stop` came first.
   */
  #scan(b: Buffer, i: number, stop: number, base: number): number {
    let state = this.#state;
    const offs = this.#offs;
    while (i < stop) {
      switch (state) {
        case S_METHOD: {
          while (i < stop && TOKEN[b[i]!] === 1) i++;
          if (i - base > MAX_METHOD_LENGTH) fail('Method not implemented', 501);
          if (i === stop) break;
          if (b[i] !== SP || i === base) fail('Invalid method');
          this.#methodEnd = i - base;
          state = S_TARGET;
          i++;
          break;
        }
        case S_TARGET: {
          const start = base + this.#methodEnd + 1;
          while (i < stop && TARGET[b[i]!] === 1) i++;
          if (i - start > this.#maxUrlLength) fail('URI too long', 414);
          if (i === stop) break;
          if (b[i] !== SP || i === start) fail('Invalid request target');
          this.#targetEnd = i - base;
          state = S_VERSION;
          i++;
          break;
        }
        case S_VERSION: {
          const start = base + this.#targetEnd + 1;
          while (i < stop && i - start < 8 && b[i] !== CR && b[i] !== LF) i++;
          if (i === stop) break;
          if (b[i] !== CR) fail(b[i] === LF ? 'Bare LF where CRLF is required' : 'Invalid HTTP version');
          if (i - start !== 8) fail('Invalid HTTP version');
          this.#checkVersion(b, start);
          state = S_REQ_LF;
          i++;
          break;
        }
        case S_REQ_LF:
        case S_FIELD_LF:
          if (b[i] !== LF) fail('Bare CR where CRLF is required');
          if (state === S_FIELD_LF) this.#count++;
          state = S_FIELD_START;
          i++;
          break;
        case S_FIELD_START: {
          const c = b[i]!;
          if (TOKEN[c] === 1) {
            if (this.#count === this.#maxHeaderCount) {
              fail(this.#inTrailers ? 'Too many trailer fields' : 'Too many header fields', 431);
            }
            offs.push(i - base, 0, 0, 0);
            state = S_FIELD_NAME;
            i++;
          } else if (c === CR) {
            state = S_FIELDS_END_LF;
            i++;
          } else if (c === SP || c === HTAB) {
            fail('Obsolete line folding is not accepted');
          } else {
            fail(c === LF ? 'Bare LF where CRLF is required' : 'Invalid header name');
          }
          break;
        }
        case S_FIELD_NAME: {
          while (i < stop && TOKEN[b[i]!] === 1) i++;
          if (i === stop) break;
          const c = b[i];
          if (c !== COLON) fail(c === SP || c === HTAB ? 'Whitespace before the colon' : 'Invalid header name');
          offs[4 * this.#count + 1] = i - base;
          state = S_FIELD_OWS;
          i++;
          break;
        }
        case S_FIELD_OWS: {
          while (i < stop && (b[i] === SP || b[i] === HTAB)) i++;
          if (i === stop) break;
          offs[4 * this.#count + 2] = i - base;
          state = S_FIELD_VALUE;
          break;
        }
        case S_FIELD_VALUE: {
          while (i < stop && VALUE[b[i]!] === 1) i++;
          if (i === stop) break;
          const c = b[i];
          if (c !== CR) fail(c === LF ? 'Bare LF where CRLF is required' : 'Invalid header value');
          const k = 4 * this.#count;
          const start = base + offs[k + 2]!;
          let end = i;
          while (end > start && (b[end - 1] === SP || b[end - 1] === HTAB)) end--;
          offs[k + 3] = end - base;
          state = S_FIELD_LF;
          i++;
          break;
        }
        case S_FIELDS_END_LF:
          if (b[i] !== LF) fail('Bare CR where CRLF is required');
          this.#state = state;
          return i + 1;
      }
    }
    this.#state = state;
    return -1;
  }

  #checkVersion(b: Buffer, at: number): void {
    // "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3).
    const ok = b[at] === 0x48 && b[at + 1] === 0x54 && b[at + 2] === 0x54 && b[at + 3] === 0x50 && b[at + 4] === 0x2f;
    const major = b[at + 5]! - 0x30;
    const minor = b[at + 7]! - 0x30;
    if (!ok || b[at + 6] !== 0x2e || major < 0 || major > 9 || minor < 0 || minor > 9) {
      fail('Invalid HTTP version');
    }
    if (major !== 1 || minor > 1) fail('HTTP version not supported', 505);
  }

  /** A head or a trailer section is complete in `b[base, end)`. */
  #fieldsDone(b: Buffer, base: number, end: number): void {
    const offs = this.#offs;
    const count = this.#count;
    this.#offs = [];
    this.#count = 0;
    if (this.#inTrailers) {
      const req = this.#req!;
      if (count > 0) req.setTrailers(latin1(b, base, end), offs, count);
      this.#complete();
    } else {
      this.#headDone(b, base, end, offs, count);
    }
  }

  #headDone(b: Buffer, base: number, end: number, offs: number[], count: number): void {
    const methodEnd = this.#methodEnd;
    const targetEnd = this.#targetEnd;
    const minor = b[base + targetEnd + 8]! - 0x30;
    let host = -1;
    let contentLength = -1;
    let te = -1;
    let tes = 0;
    let connections = 0;
    let expects = 0;
    let upgradeField = false;
    for (let k = 0; k < 4 * count; k += 4) {
      const at = base + offs[k]!;
      switch (offs[k + 1]! - offs[k]!) {
        case 4:
          if (isName(b, at, LOWER_HOST)) {
            if (host !== -1) fail('Duplicate Host header');
            host = k;
          }
          break;
        case 6:
          if (isName(b, at, LOWER_EXPECT)) expects++;
          break;
        case 7:
          if (isName(b, at, LOWER_UPGRADE)) upgradeField = true;
          break;
        case 10:
          if (isName(b, at, LOWER_CONNECTION)) connections++;
          break;
        case 14:
          if (isName(b, at, LOWER_CONTENT_LENGTH)) {
            if (contentLength !== -1) fail('Duplicate Content-Length');
            contentLength = k;
          }
          break;
        case 17:
          if (isName(b, at, LOWER_TRANSFER_ENCODING)) {
            te = k;
            tes++;
          }
          break;
      }
    }

    if (host === -1) {
      if (minor === 1) fail('Missing Host header');
    } else {
      for (let j = base + offs[host + 2]!, e = base + offs[host + 3]!; j < e; j++) {
        if (HOST[b[j]!] !== 1) fail('Invalid Host header');
      }
    }

    const text = latin1(b, base, end);
    let length: number | null = null;
    let chunked = false;
    if (te !== -1) {
      if (contentLength !== -1) fail('Both Content-Length and Transfer-Encoding');
      // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
      if (minor === 0) fail('Transfer-Encoding in an HTTP/1.0 request');
      let codings = '';
      for (let k = 0; k < 4 * count && tes > 0; k += 4) {
        if (offs[k + 1]! - offs[k]! === 17 && isName(b, base + offs[k]!, LOWER_TRANSFER_ENCODING)) {
          codings += (codings === '' ? '' : ',') + text.slice(offs[k + 2], offs[k + 3]);
          tes--;
        }
      }
      checkTransferEncoding(codings);
      chunked = true;
    } else if (contentLength !== -1) {
      length = this.#contentLength(b, base + offs[contentLength + 2]!, base + offs[contentLength + 3]!);
    }

    let close = false;
    let keepAlive = false;
    let upgrade = false;
    for (let k = 0; k < 4 * count && connections > 0; k += 4) {
      if (offs[k + 1]! - offs[k]! !== 10 || !isName(b, base + offs[k]!, LOWER_CONNECTION)) continue;
      connections--;
      const vs = base + offs[k + 2]!;
      const vl = base + offs[k + 3]! - vs;
      // The two values nearly every client sends, compared in place; anything else is split as a list.
      if (vl === 10 && isName(b, vs, LOWER_KEEP_ALIVE)) keepAlive = true;
      else if (vl === 5 && isName(b, vs, LOWER_CLOSE)) close = true;
      else {
        for (const option of text.slice(offs[k + 2], offs[k + 3]).split(',')) {
          const o = option.trim().toLowerCase();
          if (o === 'close') close = true;
          else if (o === 'keep-alive') keepAlive = true;
          else if (o === 'upgrade') upgrade = true;
        }
      }
    }

    const method = methodName(b, base, methodEnd, text);
    if (method === 'CONNECT') fail('CONNECT is not implemented', 501);
    const url = text.slice(methodEnd + 1, targetEnd);
    checkTargetForm(b, base + methodEnd + 1, base + targetEnd, method);
    const expectContinue = expects > 0 && minor === 1 && this.#expectsContinue(b, base, text, offs, count, expects);
    const req = new Request(
      method,
      url,
      minor === 1 ? '1.1' : '1.0',
      text,
      offs,
      count,
      length,
      chunked,
      minor === 1 ? !close : keepAlive && !close,
      expectContinue,
      upgrade && upgradeField,
    );
    this.#req = req;
    this.#bodySize = 0;
    this.#bodyView = null;
    const hasBody = chunked || (length !== null && length > 0);
    if (chunked) {
      this.#state = S_CHUNK_SIZE;
      this.#chunkLine = 0;
      this.#chunkDigits = 0;
      this.#remaining = 0;
    } else if (hasBody) {
      this.#state = S_BODY;
      this.#remaining = length!;
    }
    if (hasBody && expectContinue) this.#handlers.onExpectContinue?.(req);
    if (this.#streaming) this.#handlers.onRequest(req);
    if (!hasBody) this.#complete();
  }

  /**
   * Whether an Expect field line lists `100-continue`. Expect is a list (RFC 9110 §10.1.1), over one or more
   * lines: a client that sends `100-continue, x-foo` waits for 100 Continue all the same, as Node answers it.
   */
  #expectsContinue(b: Buffer, base: number, text: string, offs: number[], count: number, expects: number): boolean {
    for (let k = 0; k < 4 * count && expects > 0; k += 4) {
      if (offs[k + 1]! - offs[k]! !== 6 || !isName(b, base + offs[k]!, LOWER_EXPECT)) continue;
      expects--;
      // The value nearly every client sends, compared in place; anything else is split as a list.
      if (offs[k + 3]! - offs[k + 2]! === 12 && isName(b, base + offs[k + 2]!, LOWER_100_CONTINUE)) return true;
      for (const member of text.slice(offs[k + 2], offs[k + 3]).split(',')) {
        if (member.trim().toLowerCase() === '100-continue') return true;
      }
    }
    return false;
  }

  #contentLength(b: Buffer, start: number, end: number): number {
    // 1*DIGIT and nothing else: no sign, no hex, no list (`1, 1`), no whitespace inside.
    if (start === end) fail('Invalid Content-Length');
    let n = 0;
    for (let j = start; j < end; j++) {
      const d = b[j]! - 0x30;
      if (d < 0 || d > 9) fail('Invalid Content-Length');
      n = n * 10 + d;
    }
    if (n > this.#maxBodySize) fail('Payload too large', 413);
    if (n > Number.MAX_SAFE_INTEGER) fail('Invalid Content-Length');
    return n;
  }

  /** Body bytes of a Content-Length body or of a chunk's data. */
  #bodyBytes(chunk: Buffer, i: number, len: number): number {
    const n = Math.min(this.#remaining, len - i);
    const end = i + n;
    this.#remaining -= n;
    const req = this.#req!;
    if (this.#streaming) {
      this.#handlers.onBody?.(chunk.subarray(i, end), req);
    } else if (this.#bodyView === null && this.#body.length === 0 && this.#remaining === 0 && !req.chunked) {
      // The whole body in one chunk: a view, no copy.
      this.#bodyView = chunk.subarray(i, end);
    } else {
      this.#body.append(chunk, i, end, req.contentLength ?? this.#maxBodySize);
    }
    if (this.#remaining === 0 && this.#state === S_BODY) this.#complete();
    return end;
  }

  /** The chunk-size line: size, extensions, CRLF (RFC 9112 §7.1), byte by byte: it is short. */
  #chunkHeader(b: Buffer, i: number, len: number): number {
    let state = this.#state;
    const start = i;
    const stop = Math.min(len, i + MAX_CHUNK_LINE - this.#chunkLine);
    for (; i < stop; i++) {
      const c = b[i]!;
      switch (state) {
        case S_CHUNK_SIZE: {
          const d = HEX[c]!;
          if (d >= 0) {
            // Past 2^49 one more digit would leave the range of exact integers.
            if (this.#remaining >= 0x2000000000000) fail('Chunk size overflow');
            this.#remaining = this.#remaining * 16 + d;
            this.#chunkDigits++;
            break;
          }
          if (this.#chunkDigits === 0) fail('Invalid chunk size');
          if (c === CR) state = S_CHUNK_SIZE_LF;
          else if (c === SP || c === HTAB) state = S_CHUNK_BWS;
          else if (c === 0x3b) state = S_CHUNK_EXT_BWS;
          else fail('Invalid chunk size');
          break;
        }
        case S_CHUNK_BWS:
          if (c === 0x3b) state = S_CHUNK_EXT_BWS;
          else if (c !== SP && c !== HTAB) fail('Invalid chunk extension');
          break;
        case S_CHUNK_EXT_BWS:
          if (TOKEN[c] === 1) state = S_CHUNK_EXT_NAME;
          else if (c !== SP && c !== HTAB) fail('Invalid chunk extension');
          break;
        case S_CHUNK_EXT_NAME:
          if (TOKEN[c] === 1) break;
          if (c === 0x3d) state = S_CHUNK_EXT_EQ_BWS;
          else if (c === 0x3b) state = S_CHUNK_EXT_BWS;
          else if (c === SP || c === HTAB) state = S_CHUNK_EXT_NAME_BWS;
          else if (c === CR) state = S_CHUNK_SIZE_LF;
          else fail('Invalid chunk extension');
          break;
        case S_CHUNK_EXT_NAME_BWS:
          if (c === 0x3d) state = S_CHUNK_EXT_EQ_BWS;
          else if (c === 0x3b) state = S_CHUNK_EXT_BWS;
          else if (c !== SP && c !== HTAB) fail('Invalid chunk extension');
          break;
        case S_CHUNK_EXT_EQ_BWS:
          if (TOKEN[c] === 1) state = S_CHUNK_EXT_TOKEN;
          else if (c === 0x22) state = S_CHUNK_EXT_QUOTED;
          else if (c !== SP && c !== HTAB) fail('Invalid chunk extension');
          break;
        case S_CHUNK_EXT_TOKEN:
        case S_CHUNK_EXT_VALUE_END:
          // After a value, token or quoted, the same bytes may follow; only a token goes on with more of it.
          if (state === S_CHUNK_EXT_TOKEN && TOKEN[c] === 1) break;
          if (c === 0x3b) state = S_CHUNK_EXT_BWS;
          else if (c === SP || c === HTAB) state = S_CHUNK_BWS;
          else if (c === CR) state = S_CHUNK_SIZE_LF;
          else fail('Invalid chunk extension');
          break;
        case S_CHUNK_EXT_QUOTED:
          if (c === 0x22) state = S_CHUNK_EXT_VALUE_END;
          else if (c === 0x5c) state = S_CHUNK_EXT_QUOTED_ESC;
          else if (QDTEXT[c] !== 1) fail('Invalid chunk extension');
          break;
        case S_CHUNK_EXT_QUOTED_ESC:
          if (QPAIR[c] !== 1) fail('Invalid chunk extension');
          state = S_CHUNK_EXT_QUOTED;
          break;
        case S_CHUNK_SIZE_LF:
          if (c !== LF) fail('Bare CR where CRLF is required');
          return this.#chunkSizeDone(i + 1);
      }
    }
    this.#chunkLine += i - start;
    if (i < len) fail('Chunk extensions too long');
    this.#state = state;
    return i;
  }

  #chunkSizeDone(i: number): number {
    const size = this.#remaining;
    if (this.#bodySize + size > this.#maxBodySize) fail('Payload too large', 413);
    this.#bodySize += size;
    if (size === 0) {
      this.#state = S_FIELD_START;
      this.#inTrailers = true;
      this.#base = i;
    } else {
      this.#state = S_CHUNK_DATA;
    }
    return i;
  }

  #complete(): void {
    const req = this.#req!;
    this.#req = null;
    this.#state = req.keepAlive ? S_IDLE : S_CLOSED;
    this.#inTrailers = false;
    if (!this.#streaming) {
      if (this.#bodyView !== null) req.body = this.#bodyView;
      else if (this.#body.length > 0) req.body = this.#body.take();
      this.#bodyView = null;
      this.#handlers.onRequest(req);
    }
    this.#handlers.onRequestEnd?.(req);
  }
}

function methodName(b: Buffer, base: number, length: number, text: string): string {
  // The usual methods as literals: interned strings, compared by pointer downstream.
  const c = b[base];
  if (length === 3) {
    if (c === 0x47 && b[base + 1] === 0x45 && b[base + 2] === 0x54) return 'GET';
    if (c === 0x50 && b[base + 1] === 0x55 && b[base + 2] === 0x54) return 'PUT';
  } else if (length === 4) {
    if (c === 0x50 && text.startsWith('POST')) return 'POST';
    if (c === 0x48 && text.startsWith('HEAD')) return 'HEAD';
  }
  return text.slice(0, length);
}

/** RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT only) or asterisk-form (OPTIONS only). */
function checkTargetForm(b: Buffer, start: number, end: number, method: string): void {
  const c = b[start];
  if (c === 0x2f) return;
  if (c === 0x2a) {
    if (end - start !== 1 || method !== 'OPTIONS') fail('Invalid request target');
    return;
  }
  // absolute-form: scheme ":" hier-part, scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  let j = start;
  const first = b[j]! | 0x20;
  if (first < 0x61 || first > 0x7a) fail('Invalid request target');
  for (j++; j < end; j++) {
    const x = b[j]!;
    const lower = x | 0x20;
    if ((lower >= 0x61 && lower <= 0x7a) || (x >= 0x30 && x <= 0x39) || x === 0x2b || x === 0x2d || x === 0x2e) {
      continue;
    }
    if (x === COLON && j + 1 < end) return;
    break;
  }
  fail('Invalid request target');
}

/** The only request framing accepted with Transfer-Encoding: a list whose one `chunked` coding is the last. */
function checkTransferEncoding(value: string): void {
  const codings = value.split(',');
  let unknown = false;
  for (let k = 0; k < codings.length; k++) {
    const item = codings[k]!.replace(/^[ \t]+|[ \t]+$/g, '');
    const semi = item.indexOf(';');
    const name = (semi === -1 ? item : item.slice(0, semi)).replace(/[ \t]+$/, '');
    if (name === '' || !isToken(name)) fail('Invalid Transfer-Encoding');
    const isChunked = name.toLowerCase() === 'chunked';
    if (isChunked && (k !== codings.length - 1 || semi !== -1)) fail('Invalid Transfer-Encoding');
    if (!isChunked) unknown = true;
  }
  // RFC 9112 §6.3: a final coding other than chunked means the length cannot be known: 400 and close.
  const last = codings[codings.length - 1]!.trim().toLowerCase();
  if (last !== 'chunked') fail('Transfer-Encoding must end with chunked');
  if (unknown) fail('Transfer-Encoding not implemented', 501);
}

function isToken(s: string): boolean {
  for (let j = 0; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c > 0xff || TOKEN[c] !== 1) return false;
  }
  return true;
}
