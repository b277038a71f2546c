/**
 * Hostile HTTP/1.1 requests: request smuggling shapes, bad framing, bytes that have no place in a head, absurd
 * methods, targets, versions and sizes. Each must get its status, `Connection: close`, and a closed connection.
 * Used by bad-input-http.test.ts and by the soak (bench/soak).
 */

const H = 'Host: x\r\n';

/** A request the HTTP stage must refuse, and the status it must refuse it with. */
export interface Hostile {
  readonly name: string;
  readonly data: string;
  readonly status: number;
}

/** Each request refused by the HTTP stage: the status, then the connection is closed. */
export const CORPUS: readonly Hostile[] = [
  // Request smuggling: two framings, or a framing a proxy could read otherwise.
  {
    name: 'CL+TE',
    data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    status: 400,
  },
  {
    name: 'TE+CL',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`,
    status: 400,
  },
  {
    name: 'duplicate CL, same value',
    data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 2\r\n\r\nab`,
    status: 400,
  },
  {
    name: 'duplicate CL, other value',
    data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 9\r\n\r\nab`,
    status: 400,
  },
  { name: 'CL list', data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 2, 2\r\n\r\nab`, status: 400 },
  { name: 'CL negative', data: `POST /echo HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, status: 400 },
  { name: 'CL plus sign', data: `POST /echo HTTP/1.1\r\n${H}Content-Length: +2\r\n\r\nab`, status: 400 },
  { name: 'CL hex', data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 0x2\r\n\r\nab`, status: 400 },
  { name: 'CL exponent', data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 1e1\r\n\r\n`, status: 400 },
  { name: 'CL empty', data: `POST /echo HTTP/1.1\r\n${H}Content-Length: \r\n\r\n`, status: 400 },
  {
    name: 'CL 20 digits',
    data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\n`,
    status: 413,
  },
  {
    name: 'TE not ending in chunked',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`,
    status: 400,
  },
  { name: 'TE xchunked', data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n`, status: 400 },
  {
    name: 'TE unknown coding',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`,
    status: 501,
  },
  { name: 'TE in HTTP/1.0', data: `POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  // Chunked framing.
  {
    name: 'chunk size overflow',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n`,
    status: 400,
  },
  {
    name: 'chunk size over the body limit',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffff\r\n`,
    status: 413,
  },
  {
    name: 'chunk size not hex',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n`,
    status: 400,
  },
  {
    name: 'chunk size negative',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-1\r\n`,
    status: 400,
  },
  {
    name: 'chunk without CRLF after data',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n`,
    status: 400,
  },
  {
    name: 'chunk extension with NUL',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2;a=\x00\r\nab\r\n0\r\n\r\n`,
    status: 400,
  },
  {
    name: 'chunk extension too long',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2;${'a'.repeat(5000)}\r\nab\r\n0\r\n\r\n`,
    status: 400,
  },
  {
    name: 'chunked body over the limit',
    data: `POST /echo HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${'80000\r\n' + 'a'.repeat(0x80000) + '\r\n'}${'80000\r\n' + 'a'.repeat(0x80000) + '\r\n'}1\r\na\r\n0\r\n\r\n`,
    status: 413,
  },
  // Line endings and bytes that have no place in a head.
  { name: 'bare LF in request line', data: `GET /ok HTTP/1.1\n${H}\r\n`, status: 400 },
  { name: 'bare LF ending the head', data: `GET /ok HTTP/1.1\r\nHost: x\n\n`, status: 400 },
  { name: 'bare CR in a header', data: `GET /ok HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n`, status: 400 },
  { name: 'NUL in a header value', data: `GET /ok HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, status: 400 },
  { name: 'control byte in a header value', data: `GET /ok HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, status: 400 },
  { name: 'DEL in a header value', data: `GET /ok HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, status: 400 },
  { name: 'control byte in a header name', data: `GET /ok HTTP/1.1\r\n${H}X\x01A: b\r\n\r\n`, status: 400 },
  { name: 'NUL in the target', data: `GET /o\x00k HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'obs-fold', data: `GET /ok HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`, status: 400 },
  { name: 'whitespace before the colon', data: `GET /ok HTTP/1.1\r\nHost : x\r\n\r\n`, status: 400 },
  { name: 'header without a colon', data: `GET /ok HTTP/1.1\r\n${H}X-A b\r\n\r\n`, status: 400 },
  { name: 'empty header name', data: `GET /ok HTTP/1.1\r\n${H}: b\r\n\r\n`, status: 400 },
  { name: 'missing Host', data: `GET /ok HTTP/1.1\r\n\r\n`, status: 400 },
  { name: 'duplicate Host', data: `GET /ok HTTP/1.1\r\n${H}${H}\r\n`, status: 400 },
  { name: 'invalid Host', data: `GET /ok HTTP/1.1\r\nHost: a b/c\r\n\r\n`, status: 400 },
  // Absurd methods, targets, versions.
  { name: 'method of 100 letters', data: `${'A'.repeat(100)} /ok HTTP/1.1\r\n${H}\r\n`, status: 501 },
  { name: 'method with a separator', data: `G@T /ok HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'CONNECT', data: `CONNECT x:443 HTTP/1.1\r\n${H}\r\n`, status: 501 },
  { name: 'no target', data: `GET  HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'space in the target', data: `GET /o k HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'target of 9000 bytes', data: `GET /${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n`, status: 414 },
  { name: 'target with a fragment', data: `GET /ok#x HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'asterisk target for GET', data: `GET * HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'HTTP/2.0', data: `GET /ok HTTP/2.0\r\n${H}\r\n`, status: 505 },
  { name: 'HTTP/1.2', data: `GET /ok HTTP/1.2\r\n${H}\r\n`, status: 505 },
  { name: 'HTTX/1.1', data: `GET /ok HTTX/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'lowercase version', data: `GET /ok http/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'HTTP/0.9 request', data: `GET /ok\r\n\r\n`, status: 400 },
  { name: 'TLS ClientHello to the HTTP port', data: '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', status: 400 },
  // Bytes after a response that condemns the connection, in the same packet: dropped, never a second answer
  // (regression: the second error response was written after writeEof, a fatal error on the connection).
  {
    name: 'Expect refused, then a malformed request in the same packet',
    data: `POST /nowhere HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabcBAD\x01\r\n\r\n`,
    status: 404,
  },
  {
    name: 'a bad request, then another in the same packet',
    data: `GET /ok HTTP/1.1\r\n${H}X: \x01\r\n\r\nG@T / HTTP/1.1\r\n\r\n`,
    status: 400,
  },
  // Sizes.
  { name: 'one 20 KiB header', data: `GET /ok HTTP/1.1\r\n${H}X-A: ${'a'.repeat(20 * 1024)}\r\n\r\n`, status: 431 },
  { name: '150 header lines', data: `GET /ok HTTP/1.1\r\n${H}${'X-A: b\r\n'.repeat(150)}\r\n`, status: 431 },
  { name: 'Content-Length of 2 MiB', data: `POST /echo HTTP/1.1\r\n${H}Content-Length: 2097152\r\n\r\n`, status: 413 },
  {
    name: 'Expect: 100-continue over the limit',
    data: `POST /echo HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 2097152\r\n\r\n`,
    status: 413,
  },
  {
    name: 'Expect: 100-continue to no route',
    data: `POST /nowhere HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 3\r\n\r\n`,
    status: 404,
  },
];
