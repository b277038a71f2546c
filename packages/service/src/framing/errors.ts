/**
 * The errors of the framing layer: one small class per protocol, each with a stable `code`.
 *
 * A decoder that throws one of these has stopped for good: every later `feedData`/`feedEof` throws the same
 * error again, so that a protocol can never resume parsing after a byte stream it could not frame.
 *
 * @module
 */
import { makeError } from '@loopwork/server';

/** The HTTP statuses a request parser answers with: the request is refused and the connection is closed. */
export type HttpErrorStatus = 400 | 413 | 414 | 431 | 501 | 505;

/**
 * A request the HTTP/1.1 parser refuses; answer with `status` and close the connection.
 *
 * @example
 * ```ts
 * throw new HttpParseError('Invalid Content-Length', 400);
 * ```
 */
export class HttpParseError extends makeError<[message: string, status: HttpErrorStatus]>(
  'ERR_LOOPWORK_HTTP_PARSE',
  'HttpParseError',
  Error,
  (message) => message,
) {
  /** The status to answer with (400, 413, 414, 431, 501 or 505); the connection is to be closed after it. */
  readonly status: HttpErrorStatus;
  constructor(message: string, status: HttpErrorStatus) {
    super(message, status);
    this.status = status;
  }
}

/** A response header name or value that cannot be sent as given (CR, LF, NUL, a non-token name, …). */
export const InvalidHttpHeaderError = makeError('ERR_LOOPWORK_HTTP_INVALID_HEADER', 'TypeError', TypeError);

/** A response that HTTP/1.1 cannot express: a status outside 100–999, a body on a 204 or 304, … */
export const InvalidHttpResponseError = makeError('ERR_LOOPWORK_HTTP_INVALID_RESPONSE', 'RangeError', RangeError);

/** A line longer than the decoder's `maxLength` (the terminator not counted). */
export const LineTooLongError = makeError('ERR_LOOPWORK_LINE_TOO_LONG', 'LineTooLongError', Error);

/** A length-prefixed frame whose announced length exceeds `maxLength`; refused before any payload is buffered. */
export const FrameTooLongError = makeError('ERR_LOOPWORK_FRAME_TOO_LONG', 'FrameTooLongError', Error);

/** The stream ended inside a length-prefixed frame (in its header or its payload). */
export const FrameTruncatedError = makeError('ERR_LOOPWORK_FRAME_TRUNCATED', 'FrameTruncatedError', Error);

/**
 * A RESP request that redis-server would refuse; the message is redis-server's wording
 * (`Protocol error: invalid bulk length`), ready to send back as `-ERR <message>` before closing.
 */
export const RespProtocolError = makeError('ERR_LOOPWORK_RESP_PROTOCOL', 'RespProtocolError', Error);

/** A value the encoder of a framing cannot represent (a newline inside a line, a payload over the header's range). */
export const FramingEncodeError = makeError('ERR_LOOPWORK_FRAMING_ENCODE', 'RangeError', RangeError);
