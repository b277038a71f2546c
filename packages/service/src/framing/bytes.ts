/**
 * Byte helpers shared by the decoders: a growable accumulator, fast latin1 decoding and limit checks.
 * Internal to the framing layer.
 *
 * @module
 * @internal
 */
import { InvalidOptionsError } from '@loopwork/server';

/** A zero-length Buffer shared by everything that has nothing to return; it has no bytes anyone could change. */
export const EMPTY: Buffer = Buffer.alloc(0);

interface Latin1Buffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number): number;
  utf8Write(s: string, offset: number): number;
}

// Buffer#latin1Slice is what toString('latin1') ends in, minus its argument juggling; it is not in the typings.
const hasLatin1Slice = typeof (Buffer.prototype as Partial<Latin1Buffer>).latin1Slice === 'function';

/**
 * Decodes `b[start, end)` as latin1 (one char per byte), which can neither fail nor lose a byte.
 *
 * @param b - the bytes.
 * @param start - first byte index.
 * @param end - index after the last byte.
 * @returns the string.
 */
export function latin1(b: Buffer, start: number, end: number): string {
  return hasLatin1Slice ? (b as Latin1Buffer).latin1Slice(start, end) : b.toString('latin1', start, end);
}

const hasFastWrite = typeof (Buffer.prototype as Partial<Latin1Buffer>).latin1Write === 'function';

/**
 * Writes `s` (chars up to U+00FF) into `b` at `offset`, one byte per char.
 *
 * @param b - the destination, large enough.
 * @param s - the text.
 * @param offset - where to write.
 */
export function writeLatin1(b: Buffer, s: string, offset: number): void {
  if (hasFastWrite) (b as Latin1Buffer).latin1Write(s, offset);
  else b.write(s, offset, 'latin1');
}

/**
 * Writes `s` into `b` at `offset` as UTF-8.
 *
 * @param b - the destination, with `Buffer.byteLength(s)` bytes free at `offset`.
 * @param s - the text.
 * @param offset - where to write.
 */
export function writeUtf8(b: Buffer, s: string, offset: number): void {
  if (hasFastWrite) (b as Latin1Buffer).utf8Write(s, offset);
  else b.write(s, offset, 'utf8');
}

/**
 * Bytes carried over from one chunk to the next: grows by doubling so that a message dribbled in one byte at a
 * time costs linear time and at most twice its size in memory (a list of tiny Buffers would cost far more).
 */
export class ByteAccumulator {
  /** The storage; bytes `[0, length)` are meaningful. */
  buf: Buffer = EMPTY;
  /** How many bytes are held. */
  length = 0;

  /**
   * Copies `src[start, end)` after the held bytes.
   *
   * @param src - the source bytes (not retained).
   * @param start - first byte index in `src`.
   * @param end - index after the last byte in `src`.
   * @param most - the most bytes this accumulator will ever hold, so that growing never allocates past it.
   */
  append(src: Buffer, start: number, end: number, most = Infinity): void {
    const need = this.length + (end - start);
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(most, Math.max(this.buf.length * 2, 256))));
      if (this.length > 0) this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    src.copy(this.buf, this.length, start, end);
    this.length = need;
  }

  /**
   * Hands the held bytes over and starts empty: the caller owns the returned Buffer.
   *
   * @returns the bytes held (a view of the storage, which is then forgotten).
   */
  take(): Buffer {
    const out = this.length === this.buf.length ? this.buf : this.buf.subarray(0, this.length);
    this.buf = EMPTY;
    this.length = 0;
    return out;
  }

  /** Forgets the held bytes and the storage. */
  clear(): void {
    this.buf = EMPTY;
    this.length = 0;
  }
}

/**
 * Checks a size limit from user options: a positive integer, or `Infinity` when `infinite` allows it.
 *
 * @param name - the option's name, for the message.
 * @param value - the value given, or undefined for the default.
 * @param fallback - the default.
 * @param infinite - whether `Infinity` is accepted.
 * @returns the limit.
 * @throws InvalidOptionsError when the value is not acceptable.
 */
export function limit(name: string, value: number | undefined, fallback: number, infinite = false): number {
  if (value === undefined) return fallback;
  if ((Number.isSafeInteger(value) && value > 0) || (infinite && value === Infinity)) return value;
  throw new InvalidOptionsError(`${name} must be a positive integer${infinite ? ' or Infinity' : ''}, got ${value}`);
}

/** A table of the 256 byte values: 1 for the bytes of `chars` and of the inclusive `ranges`, else 0. */
export function byteTable(chars: string, ...ranges: [number, number][]): Uint8Array {
  const t = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  for (const [lo, hi] of ranges) t.fill(1, lo, hi + 1);
  return t;
}

/** RFC 9110 `tchar`: the bytes of a token (method, header name, transfer coding, chunk extension name). */
export const TOKEN: Uint8Array = byteTable("!#$%&'*+-.^_`|~", [0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]);
