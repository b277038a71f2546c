/**
 * The framing layer of `@loopwork/service`: incremental, allocation-lean decoders and encoders for HTTP/1.1
 * requests and responses, lines, length-prefixed frames and RESP2, with no I/O of their own.
 *
 * Each decoder is fed the chunks `dataReceived(data)` delivers, split anywhere, and calls back with whole
 * messages, or throws its protocol's coded error and then refuses all further input.
 *
 * @module
 */
export { StreamDecoder } from './decoder.js';
export type { FrameDecoder } from './decoder.js';
export {
  FrameTooLongError,
  FrameTruncatedError,
  FramingEncodeError,
  HttpParseError,
  InvalidHttpHeaderError,
  InvalidHttpResponseError,
  LineTooLongError,
  RespProtocolError,
} from './errors.js';
export type { HttpErrorStatus } from './errors.js';
export { Http1Parser } from './http1-parser.js';
export type { Http1ParserHandlers, Http1ParserOptions, ParsedRequest } from './http1-parser.js';
export { CONTINUE, ChunkedEncoder, httpDate, serializeResponse, serializeResponseHead } from './http1-writer.js';
export type {
  OutgoingHeaderValue,
  OutgoingHeaders,
  Response,
  ResponseHead,
  StreamingResponseHead,
} from './http1-writer.js';
export { LineDecoder, encodeLine } from './lines.js';
export type { LineDecoderOptions, LineEncoderOptions } from './lines.js';
export { LengthPrefixedDecoder, LengthPrefixedEncoder, encodeFrame } from './length-prefixed.js';
export type { LengthHeader, LengthPrefixedOptions } from './length-prefixed.js';
export {
  RESP_NULL,
  RESP_NULL_ARRAY,
  RESP_OK,
  RESP_PONG,
  RespDecoder,
  RespErrorReply,
  RespSimpleString,
  encodeArray,
  encodeBulkString,
  encodeCommand,
  encodeError,
  encodeInteger,
  encodeResp,
  encodeSimpleString,
} from './resp.js';
export type { RespDecoderOptions, RespValue } from './resp.js';
