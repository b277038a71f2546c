/**
 * Line framing: messages separated by `\n`, a `\r` before it dropped, each at most `maxLength` bytes.
 *
 * @module
 */
import { ByteAccumulator, limit } from './bytes.js';
import { StreamDecoder } from './decoder.js';
import { FramingEncodeError, LineTooLongError } from './errors.js';

/** Options of {@link LineDecoder}. */
export interface LineDecoderOptions {
  /** Longest line, in bytes, terminator not counted; default 65536 (asyncio's stream limit). */
  readonly maxLength?: number;
}

const LF = 10;
const CR = 13;
const DEFAULT_MAX_LENGTH = 64 * 1024;

/**
 * Splits a byte stream into lines: each `\n` ends one, and a `\r` right before it is dropped (so both `\n` and
 * `\r\n` work); a line longer than `maxLength` is an error found before more than `maxLength + 1` bytes of it
 * are held. At EOF an unterminated last line is delivered as it is, as asyncio's `readline()` returns it.
 *
 * @example
 * ```ts
 * const lines = new LineDecoder((line) => handle(line.toString('utf8')), { maxLength: 1024 });
 * // dataReceived(data) { lines.feedData(data) }  eofReceived() { lines.feedEof() }
 * ```
 */
export class LineDecoder extends StreamDecoder {
  readonly #onLine: (line: Buffer) => void;
  readonly #maxLength: number;
  readonly #pending = new ByteAccumulator();

  /**
   * Makes a line decoder.
   *
   * @param onLine - called with each line, terminator removed; it may be a view of the chunk being fed.
   * @param options - the length limit, in bytes.
   * @throws InvalidOptionsError when `maxLength` is not a positive integer.
   */
  constructor(onLine: (line: Buffer) => void, options: LineDecoderOptions = {}) {
    super();
    this.#onLine = onLine;
    this.#maxLength = limit('maxLength', options.maxLength, DEFAULT_MAX_LENGTH);
  }

  /** How many bytes of an unterminated line are held (at most `maxLength + 1`). */
  get bufferedBytes(): number {
    return this.#pending.length;
  }

  /**
   * Decodes a chunk, calling `onLine` for each line it completes.
   *
   * @throws LineTooLongError when a line exceeds `maxLength`.
   */
  protected _decode(chunk: Buffer): void {
    const len = chunk.length;
    const max = this.#maxLength;
    const pending = this.#pending;
    let i = 0;
    if (pending.length > 0) {
      const nl = chunk.indexOf(LF);
      if (nl === -1) {
        this.#hold(chunk, 0);
        return;
      }
      if (pending.length + nl > max + 1) this.#tooLong();
      pending.append(chunk, 0, nl, max + 1);
      let line = pending.take();
      if (line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      if (line.length > max) this.#tooLong();
      i = nl + 1;
      this.#onLine(line);
    }
    while (i < len) {
      const nl = chunk.indexOf(LF, i);
      if (nl === -1) {
        this.#hold(chunk, i);
        return;
      }
      const end = nl > i && chunk[nl - 1] === CR ? nl - 1 : nl;
      if (end - i > max) this.#tooLong();
      const line = chunk.subarray(i, end);
      i = nl + 1;
      this.#onLine(line);
    }
  }

  /**
   * Delivers an unterminated last line.
   *
   * @throws LineTooLongError when it exceeds `maxLength`.
   */
  protected _end(): void {
    if (this.#pending.length === 0) return;
    const line = this.#pending.take();
    // Held bytes are at most maxLength + 1, the extra one only when it is a `\r` that may precede a `\n`.
    if (line.length > this.#maxLength) this.#tooLong();
    this.#onLine(line);
  }

  /** Drops the unterminated line held. */
  protected _discard(): void {
    this.#pending.clear();
  }

  /** Keeps `chunk[from:]`, the start of a line, unless it already proves the line too long. */
  #hold(chunk: Buffer, from: number): void {
    const held = this.#pending.length + chunk.length - from;
    // maxLength bytes of line, plus one if it is a `\r` that the next chunk's `\n` would make a terminator.
    if (held > this.#maxLength + 1 || (held === this.#maxLength + 1 && chunk[chunk.length - 1] !== CR)) {
      this.#tooLong();
    }
    this.#pending.append(chunk, from, chunk.length, this.#maxLength + 1);
  }

  #tooLong(): never {
    throw new LineTooLongError(`Line is longer than maxLength (${this.#maxLength} bytes)`);
  }
}

/** Options of {@link encodeLine}. */
export interface LineEncoderOptions {
  /** The terminator; default `'\n'`. */
  readonly eol?: '\n' | '\r\n';
  /** Longest line accepted, in bytes, terminator not counted; default unlimited. */
  readonly maxLength?: number;
}

/**
 * Encodes one line: its bytes and the terminator, in one Buffer.
 *
 * @param line - the text (sent as UTF-8) or bytes, without terminator.
 * @param options - terminator and limit.
 * @returns the bytes to write.
 * @throws FramingEncodeError when the line contains `\n`, ends with `\r` (it would be read back without it), or
 *   exceeds `maxLength`.
 */
export function encodeLine(line: string | Uint8Array, options: LineEncoderOptions = {}): Buffer {
  const eol = options.eol ?? '\n';
  const bytes = typeof line === 'string' ? Buffer.from(line, 'utf8') : line;
  if (bytes.indexOf(LF) !== -1) throw new FramingEncodeError('A line cannot contain "\\n"');
  if (bytes.length > 0 && bytes[bytes.length - 1] === CR) {
    throw new FramingEncodeError('A line cannot end with "\\r"');
  }
  if (options.maxLength !== undefined && bytes.length > options.maxLength) {
    throw new FramingEncodeError(`Line is longer than maxLength (${options.maxLength} bytes)`);
  }
  const out = Buffer.allocUnsafe(bytes.length + eol.length);
  out.set(bytes, 0);
  if (eol.length === 2) out[bytes.length] = CR;
  out[out.length - 1] = LF;
  return out;
}
