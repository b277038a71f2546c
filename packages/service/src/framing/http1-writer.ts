/**
 * HTTP/1.1 response serialization: a status line, header lines and a body in one Buffer, ready for one write.
 *
 * The writer owns the framing: it computes `Content-Length` (or writes chunked or close-delimited heads), adds
 * `Date` (cached per second) and `Connection` as keep-alive requires, and refuses anything that could split a
 * response or inject a header (CR, LF, NUL and other control bytes, non-token names, characters past U+00FF).
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import { EMPTY, writeLatin1, writeUtf8 } from './bytes.js';
import { InvalidHttpHeaderError, InvalidHttpResponseError } from './errors.js';

/** A header value: strings are sent as latin1, numbers in decimal, arrays as one line per element. */
export type OutgoingHeaderValue = string | number | readonly string[];

/** Response header fields; `undefined` values are skipped. Names are sent with the case they have here. */
export type OutgoingHeaders = Readonly<Record<string, OutgoingHeaderValue | undefined>>;

/** What goes in a response head. */
export interface ResponseHead {
  /** The status code, 100–999. */
  readonly status: number;
  /** The reason phrase; defaults to the standard one for the status (`OK`), or none. */
  readonly statusMessage?: string | undefined;
  /**
   * Header fields. `Content-Length`, `Transfer-Encoding` and `Connection` are the writer's and are refused here
   * (use `keepAlive`, and `contentLength` for a HEAD response); a `Date` given here replaces the writer's.
   */
  readonly headers?: OutgoingHeaders | undefined;
  /** Whether the connection stays open after this response; default true. False sends `Connection: close`. */
  readonly keepAlive?: boolean | undefined;
  /** The request's HTTP version: a kept-alive `'1.0'` connection gets `Connection: keep-alive`. Default `'1.1'`. */
  readonly httpVersion?: '1.0' | '1.1' | undefined;
  /** Whether to add the `Date` field (RFC 9110 §6.6.1: an origin server with a clock must); default true. */
  readonly date?: boolean | undefined;
}

/** A complete response: a head and a body known in advance. */
export interface Response extends ResponseHead {
  /** The body: a string is sent as UTF-8. None for 1xx, 204 and 304. */
  readonly body?: string | Uint8Array | null | undefined;
  /** True when answering a HEAD request: the head announces the body's length but the body is not sent. */
  readonly head?: boolean | undefined;
  /** With `head` and no body: the length to announce (the size of what a GET would have sent), in bytes. */
  readonly contentLength?: number | undefined;
}

/** A response head for a body written afterwards. */
export interface StreamingResponseHead extends ResponseHead {
  /**
   * How the body is delimited: a byte count, `'chunked'` (use a {@link ChunkedEncoder}; HTTP/1.1 clients only),
   * or `'close'` (the body ends when the connection closes; forces `Connection: close`). Default `'chunked'` for
   * HTTP/1.1 requests and `'close'` for HTTP/1.0 ones.
   */
  readonly framing?: number | 'chunked' | 'close' | undefined;
}

/** The interim response to `Expect: 100-continue`: write it, then read the body. */
export const CONTINUE: Buffer = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values and reason phrases: HTAB, SP, VCHAR, obs-text; so no CR, LF, NUL, DEL, nothing past U+00FF.
const VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;

let dateText = '';
let dateExpires = 0;

/**
 * The current time as an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`), formatted once per second.
 *
 * @returns the IMF-fixdate of the current second.
 */
export function httpDate(): string {
  const now = Date.now();
  if (now >= dateExpires) {
    dateText = new Date(now).toUTCString();
    dateExpires = now - (now % 1000) + 1000;
  }
  return dateText;
}

const statusLines: (string | undefined)[] = [];

function statusLine(status: number, message: string | undefined): string {
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new InvalidHttpResponseError(`Invalid status code: ${String(status)}`);
  }
  if (message === undefined) {
    return (statusLines[status] ??= `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`);
  }
  if (!VALUE_RE.test(message)) throw new InvalidHttpHeaderError(`Invalid character in statusMessage`);
  return `HTTP/1.1 ${status} ${message}\r\n`;
}

/** Appends the user's header lines to `head`; tells whether they carried a Date. */
function headerLines(headers: OutgoingHeaders, into: { head: string }): boolean {
  let head = into.head;
  let hasDate = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (!TOKEN_RE.test(name)) throw new InvalidHttpHeaderError(`Invalid header name: ${JSON.stringify(name)}`);
    // Only the names whose length matches are lowercased: most names cost one comparison here.
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'date') hasDate = true;
        break;
      case 10:
      case 14:
      case 17: {
        const lower = name.toLowerCase();
        if (lower === 'connection' || lower === 'content-length' || lower === 'transfer-encoding') {
          throw new InvalidHttpHeaderError(
            `The ${name} header is set by the writer (use keepAlive, contentLength or framing)`,
          );
        }
      }
    }
    if (typeof value === 'string') {
      if (!VALUE_RE.test(value)) throw new InvalidHttpHeaderError(`Invalid character in header "${name}"`);
      head += `${name}: ${value}\r\n`;
    } else if (typeof value === 'number') {
      head += `${name}: ${value}\r\n`;
    } else {
      for (const item of value) {
        if (typeof item !== 'string' || !VALUE_RE.test(item)) {
          throw new InvalidHttpHeaderError(`Invalid character in header "${name}"`);
        }
        head += `${name}: ${item}\r\n`;
      }
    }
  }
  into.head = head;
  return hasDate;
}

function hasNoBody(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

/** The head text up to, not including, the framing fields and the final CRLF. */
function headText(res: ResponseHead): string {
  let head = statusLine(res.status, res.statusMessage);
  let hasDate = false;
  if (res.headers !== undefined) {
    const into = { head };
    hasDate = headerLines(res.headers, into);
    head = into.head;
  }
  if (res.date !== false && !hasDate) head += `Date: ${httpDate()}\r\n`;
  if (res.keepAlive === false) head += 'Connection: close\r\n';
  else if (res.httpVersion === '1.0') head += 'Connection: keep-alive\r\n';
  return head;
}

/**
 * Serializes a whole response into one Buffer: the head with its `Content-Length`, then the body.
 *
 * @param res - the response.
 * @returns the bytes to write.
 * @throws InvalidHttpHeaderError for a name or value that cannot be sent as given, or a framing field.
 * @throws InvalidHttpResponseError for a status outside 100–999 or a body where the status allows none.
 * @example
 * ```ts
 * transport.write(serializeResponse({ status: 200, headers: { 'content-type': 'application/json' }, body }));
 * ```
 */
export function serializeResponse(res: Response): Buffer {
  let head = headText(res);
  const body = res.body;
  const status = res.status;
  let length = 0;
  if (body !== undefined && body !== null) {
    length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  }
  if (hasNoBody(status)) {
    if (length > 0) throw new InvalidHttpResponseError(`A ${status} response has no body`);
    // 304 may announce the length a 200 would have had; 1xx and 204 must not carry the field at all.
    if (status === 304 && res.contentLength !== undefined) head += `Content-Length: ${res.contentLength}\r\n`;
  } else {
    if (res.head === true && (body === undefined || body === null) && res.contentLength !== undefined) {
      length = checkLength(res.contentLength);
    }
    head += `Content-Length: ${length}\r\n`;
  }
  head += '\r\n';
  const send = res.head === true || hasNoBody(status) ? 0 : length;
  // One allocation (from Node's pool when small) and one write syscall for the whole response.
  const out = Buffer.allocUnsafe(head.length + send);
  writeLatin1(out, head, 0);
  if (send > 0) {
    if (typeof body === 'string') writeUtf8(out, body, head.length);
    else out.set(body!, head.length);
  }
  return out;
}

function checkLength(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidHttpResponseError(`Invalid content length: ${n}`);
  return n;
}

/**
 * Serializes a response head for a body written afterwards (with a {@link ChunkedEncoder} for `'chunked'`).
 *
 * @param res - the head and how its body is delimited.
 * @returns the head's bytes.
 * @throws InvalidHttpHeaderError, InvalidHttpResponseError as {@link serializeResponse}, and for `'chunked'`
 *   towards an HTTP/1.0 client.
 */
export function serializeResponseHead(res: StreamingResponseHead): Buffer {
  const framing = res.framing ?? (res.httpVersion === '1.0' ? 'close' : 'chunked');
  let head = headText(framing === 'close' && res.keepAlive !== false ? { ...res, keepAlive: false } : res);
  if (!hasNoBody(res.status)) {
    if (framing === 'chunked') {
      if (res.httpVersion === '1.0') throw new InvalidHttpResponseError('HTTP/1.0 clients do not read chunked');
      head += 'Transfer-Encoding: chunked\r\n';
    } else if (framing !== 'close') {
      head += `Content-Length: ${checkLength(framing)}\r\n`;
    }
  }
  return Buffer.from(`${head}\r\n`, 'latin1');
}

const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/**
 * Encodes a body in chunked transfer coding (RFC 9112 §7.1), chunk by chunk, then the last chunk and trailers.
 *
 * @example
 * ```ts
 * const enc = new ChunkedEncoder();
 * transport.write(serializeResponseHead({ status: 200, framing: 'chunked' }));
 * transport.write(enc.encode('hello'));
 * transport.write(enc.end());
 * ```
 */
export class ChunkedEncoder {
  #ended = false;

  /**
   * Frames one chunk into a single Buffer (a copy). An empty input gives an empty Buffer: a zero-size chunk
   * would end the body.
   *
   * @param data - the bytes, or a string sent as UTF-8.
   * @returns the framed chunk.
   * @throws InvalidHttpResponseError after `end()`.
   */
  encode(data: string | Uint8Array): Buffer {
    this.#check();
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (size === 0) return EMPTY;
    const prefix = `${size.toString(16)}\r\n`;
    const out = Buffer.allocUnsafe(prefix.length + size + 2);
    writeLatin1(out, prefix, 0);
    if (typeof data === 'string') writeUtf8(out, data, prefix.length);
    else out.set(data, prefix.length);
    out[out.length - 2] = 13;
    out[out.length - 1] = 10;
    return out;
  }

  /**
   * Frames one chunk without copying it, as the pieces to hand to `writelines` (for large chunks).
   *
   * @param data - the bytes.
   * @returns the size line, the data itself and the CRLF; empty for empty data.
   * @throws InvalidHttpResponseError after `end()`.
   */
  encodeParts(data: Uint8Array): Uint8Array[] {
    this.#check();
    if (data.byteLength === 0) return [];
    return [Buffer.from(`${data.byteLength.toString(16)}\r\n`, 'latin1'), data, CRLF];
  }

  /**
   * Ends the body: the last chunk and the trailer fields, if any.
   *
   * @param trailers - trailer fields, checked as headers are.
   * @returns the bytes that end the body.
   * @throws InvalidHttpHeaderError for an invalid trailer field; InvalidHttpResponseError after `end()`.
   */
  end(trailers?: OutgoingHeaders): Buffer {
    this.#check();
    this.#ended = true;
    if (trailers === undefined) return LAST_CHUNK;
    const into = { head: '0\r\n' };
    headerLines(trailers, into);
    return Buffer.from(`${into.head}\r\n`, 'latin1');
  }

  #check(): void {
    if (this.#ended) throw new InvalidHttpResponseError('The chunked body has ended');
  }
}
