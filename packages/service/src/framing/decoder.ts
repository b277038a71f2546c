/**
 * The shape every framing decoder has: fed the chunks a transport delivers, it calls back with whole messages.
 *
 * @module
 */
import { InvalidStateError } from '@loopwork/server';

/**
 * An incremental decoder: `feedData` may be given the byte stream split anywhere, and the messages and errors
 * that come out are the same whatever the split.
 *
 * Call order: `feedData* -> feedEof?`. After an error every call throws that error again; after `feedEof`,
 * `feedData` throws `InvalidStateError`. Buffers handed to callbacks may be views of the chunk being fed: copy
 * them to keep them past the callback when the caller reuses that chunk's memory. The decoder never keeps a
 * reference to a chunk after `feedData` returns (it copies what it must carry over).
 */
export interface FrameDecoder {
  /**
   * Decodes a chunk, calling back synchronously for each message it completes.
   *
   * @param chunk - the next bytes of the stream.
   * @throws the protocol's coded error for bytes it cannot frame; whatever a callback throws.
   */
  feedData(chunk: Buffer): void;
  /**
   * Tells the decoder that the stream has ended.
   *
   * @throws the protocol's coded error when the stream ends inside a message.
   */
  feedEof(): void;
  /** How many bytes the decoder holds between calls; never more than its limits allow. */
  readonly bufferedBytes: number;
}

/**
 * The part of {@link FrameDecoder}'s contract that every decoder shares, for a decoder to extend: the call
 * order (`feedData* -> feedEof?`, `InvalidStateError` for data after the end, a second `feedEof` ignored) and
 * the sticky error (once `_decode` or `_end` throws, what the decoder holds is dropped and every later call throws
 * that error again). A subclass says only how to decode.
 */
export abstract class StreamDecoder implements FrameDecoder {
  #error: unknown = null;
  #eof = false;

  /** How many bytes the decoder holds between calls. */
  abstract get bufferedBytes(): number;

  /**
   * Decodes a chunk, calling back for each message it completes.
   *
   * @param chunk - the next bytes of the stream.
   * @throws the decoder's coded error for bytes it cannot frame, or what a callback throws; then every later
   *   call throws it again.
   */
  feedData(chunk: Buffer): void {
    if (this.#error !== null) throw this.#error;
    if (this.#eof) throw new InvalidStateError('feedData() after feedEof()');
    try {
      this._decode(chunk);
    } catch (err) {
      this.#fail(err);
    }
  }

  /**
   * Ends the stream; a second call does nothing.
   *
   * @throws the decoder's coded error when the stream ends inside a message (or its earlier error).
   */
  feedEof(): void {
    if (this.#error !== null) throw this.#error;
    if (this.#eof) return;
    this.#eof = true;
    try {
      this._end();
    } catch (err) {
      this.#fail(err);
    }
  }

  /** True once the decoder has thrown (it refuses everything from then on). */
  protected get _failed(): boolean {
    return this.#error !== null;
  }

  /** Decodes `chunk`, calling back for each message it completes; throws for bytes it cannot frame. */
  protected abstract _decode(chunk: Buffer): void;

  /** The stream has ended: delivers what it completes, or throws when it ends inside a message. */
  protected abstract _end(): void;

  /** Drops whatever the decoder holds (it has failed). */
  protected abstract _discard(): void;

  #fail(err: unknown): never {
    this.#error = err;
    this._discard();
    throw err;
  }
}
