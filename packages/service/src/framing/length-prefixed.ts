/**
 * Length-prefixed framing: each frame is an unsigned integer header giving the payload's length in bytes,
 * then the payload.
 *
 * @module
 */
import { InvalidOptionsError } from '@loopwork/server';
import { ByteAccumulator, EMPTY, limit } from './bytes.js';
import { StreamDecoder } from './decoder.js';
import { FramingEncodeError, FrameTooLongError, FrameTruncatedError } from './errors.js';

/** The header's integer: size and byte order. */
export type LengthHeader = 'u8' | 'u16be' | 'u16le' | 'u24be' | 'u24le' | 'u32be' | 'u32le';

/** Options of {@link LengthPrefixedDecoder} and {@link encodeFrame}. */
export interface LengthPrefixedOptions {
  /** The header's integer; default `'u32be'`. */
  readonly header?: LengthHeader;
  /** Largest payload, in bytes; default 1 MiB, or the header's largest value if smaller. */
  readonly maxLength?: number;
}

const DEFAULT_MAX_LENGTH = 1024 * 1024;
const SIZES: Readonly<Record<LengthHeader, number>> = {
  u8: 1,
  u16be: 2,
  u16le: 2,
  u24be: 3,
  u24le: 3,
  u32be: 4,
  u32le: 4,
};

interface Resolved {
  readonly size: number;
  readonly littleEndian: boolean;
  readonly maxLength: number;
}

function resolve(options: LengthPrefixedOptions): Resolved {
  const header = options.header ?? 'u32be';
  if (!Object.hasOwn(SIZES, header)) {
    throw new InvalidOptionsError(`header must be one of ${Object.keys(SIZES).join(', ')}, got ${String(header)}`);
  }
  const size = SIZES[header];
  const capacity = 2 ** (8 * size) - 1;
  const maxLength = limit('maxLength', options.maxLength, Math.min(DEFAULT_MAX_LENGTH, capacity));
  if (maxLength > capacity) {
    throw new InvalidOptionsError(`maxLength ${maxLength} does not fit a ${header} header (at most ${capacity})`);
  }
  return { size, littleEndian: header.endsWith('le'), maxLength };
}

function readLength(b: Buffer, at: number, size: number, littleEndian: boolean): number {
  switch (size) {
    case 1:
      return b[at]!;
    case 2:
      return littleEndian ? b.readUInt16LE(at) : b.readUInt16BE(at);
    case 3:
      return littleEndian ? b.readUIntLE(at, 3) : b.readUIntBE(at, 3);
    default:
      return littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at);
  }
}

/**
 * Splits a byte stream into length-prefixed frames. A length over `maxLength` is refused as soon as its header
 * is read, before any of the payload is held; a stream that ends inside a frame is reported at EOF.
 *
 * @example
 * ```ts
 * const frames = new LengthPrefixedDecoder((frame) => handle(JSON.parse(frame.toString())), { header: 'u32be' });
 * ```
 */
export class LengthPrefixedDecoder extends StreamDecoder {
  readonly #onFrame: (frame: Buffer) => void;
  readonly #size: number;
  readonly #littleEndian: boolean;
  readonly #maxLength: number;
  /** A header split across chunks, and how many of its bytes have come. */
  readonly #header: Buffer;
  #headerHave = 0;
  /** The payload length of the frame in progress, or -1 while reading a header. */
  #need = -1;
  readonly #payload = new ByteAccumulator();

  /**
   * Makes a length-prefixed decoder.
   *
   * @param onFrame - called with each payload; it may be a view of the chunk being fed.
   * @param options - header format and payload limit (bytes).
   * @throws InvalidOptionsError for an unknown header or a `maxLength` the header cannot express.
   */
  constructor(onFrame: (frame: Buffer) => void, options: LengthPrefixedOptions = {}) {
    super();
    const { size, littleEndian, maxLength } = resolve(options);
    this.#onFrame = onFrame;
    this.#size = size;
    this.#littleEndian = littleEndian;
    this.#maxLength = maxLength;
    this.#header = Buffer.alloc(size);
  }

  /** How many bytes of an incomplete frame are held (at most header size + `maxLength`). */
  get bufferedBytes(): number {
    return this.#headerHave + this.#payload.length;
  }

  /**
   * Checks that the stream did not end inside a frame.
   *
   * @throws FrameTruncatedError when it did.
   */
  protected _end(): void {
    if (this.#headerHave === 0 && this.#need === -1) return;
    throw this.#need === -1
      ? new FrameTruncatedError(`Stream ended inside a frame header (${this.#headerHave} of ${this.#size} bytes)`)
      : new FrameTruncatedError(`Stream ended inside a frame (${this.#payload.length} of ${this.#need} bytes)`);
  }

  /** Drops the partial payload held. */
  protected _discard(): void {
    this.#payload.clear();
  }

  /**
   * Decodes a chunk, calling `onFrame` for each frame it completes.
   *
   * @throws FrameTooLongError for a length over `maxLength`.
   */
  protected _decode(chunk: Buffer): void {
    const len = chunk.length;
    const size = this.#size;
    let i = 0;
    while (i < len) {
      if (this.#need === -1) {
        let n: number;
        if (this.#headerHave === 0 && len - i >= size) {
          n = readLength(chunk, i, size, this.#littleEndian);
          i += size;
        } else {
          const take = Math.min(size - this.#headerHave, len - i);
          chunk.copy(this.#header, this.#headerHave, i, i + take);
          this.#headerHave += take;
          i += take;
          if (this.#headerHave < size) return;
          this.#headerHave = 0;
          n = readLength(this.#header, 0, size, this.#littleEndian);
        }
        if (n > this.#maxLength) {
          throw new FrameTooLongError(`Frame length ${n} is over maxLength (${this.#maxLength} bytes)`);
        }
        if (len - i >= n) {
          const frame = n === 0 ? EMPTY : chunk.subarray(i, i + n);
          i += n;
          this.#onFrame(frame);
          continue;
        }
        this.#need = n;
      }
      const take = Math.min(this.#need - this.#payload.length, len - i);
      this.#payload.append(chunk, i, i + take, this.#need);
      i += take;
      if (this.#payload.length === this.#need) {
        this.#need = -1;
        this.#onFrame(this.#payload.take());
      }
    }
  }
}

/**
 * Encodes length-prefixed frames with one header format and limit.
 *
 * @example
 * ```ts
 * const enc = new LengthPrefixedEncoder({ header: 'u16be' });
 * transport.write(enc.encode(JSON.stringify(message)));
 * ```
 */
export class LengthPrefixedEncoder {
  readonly #size: number;
  readonly #littleEndian: boolean;
  readonly #maxLength: number;

  /**
   * Makes an encoder.
   *
   * @param options - header format and payload limit (bytes).
   * @throws InvalidOptionsError for an unknown header or a `maxLength` the header cannot express.
   */
  constructor(options: LengthPrefixedOptions = {}) {
    const { size, littleEndian, maxLength } = resolve(options);
    this.#size = size;
    this.#littleEndian = littleEndian;
    this.#maxLength = maxLength;
  }

  /**
   * Encodes one frame: the header and the payload, in one Buffer.
   *
   * @param payload - the bytes, or a string sent as UTF-8.
   * @returns the bytes to write.
   * @throws FramingEncodeError when the payload is over `maxLength`.
   */
  encode(payload: string | Uint8Array): Buffer {
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    const out = Buffer.allocUnsafe(this.#size + bytes.length);
    this.#writeHeader(out, bytes.length);
    out.set(bytes, this.#size);
    return out;
  }

  /**
   * Encodes only a frame's header, for writing a large payload after it without copying it.
   *
   * @param length - the payload length, in bytes.
   * @returns the header bytes.
   * @throws FramingEncodeError when `length` is not an integer from 0 to `maxLength`.
   */
  encodeHeader(length: number): Buffer {
    const out = Buffer.allocUnsafe(this.#size);
    this.#writeHeader(out, length);
    return out;
  }

  #writeHeader(out: Buffer, n: number): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.#maxLength) {
      throw new FramingEncodeError(`Frame length ${n} is over maxLength (${this.#maxLength} bytes)`);
    }
    if (this.#size === 1) out[0] = n;
    else if (this.#littleEndian) out.writeUIntLE(n, 0, this.#size);
    else out.writeUIntBE(n, 0, this.#size);
  }
}

/**
 * Encodes one frame (a convenience for `new LengthPrefixedEncoder(options).encode(payload)`).
 *
 * @param payload - the bytes, or a string sent as UTF-8.
 * @param options - header format and payload limit (bytes).
 * @returns the header and the payload, in one Buffer.
 * @throws FramingEncodeError when the payload is over `maxLength`.
 */
export function encodeFrame(payload: string | Uint8Array, options: LengthPrefixedOptions = {}): Buffer {
  return new LengthPrefixedEncoder(options).encode(payload);
}
