/**
 * The shape every framing decoder has: fed the chunks a transport delivers, it calls back with whole messages.
 *
 * @module
 */

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
