import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Http1Parser, HttpParseError } from '../../src/framing/index.js';
import type { Http1ParserOptions, ParsedRequest } from '../../src/framing/index.js';
import { cut, cutPoints, feedScribbled, splits } from './helpers.js';

interface Seen {
  method: string;
  url: string;
  path: string;
  query: string;
  httpVersion: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  trailers: Record<string, string>;
  body: string;
  keepAlive: boolean;
  expectContinue: boolean;
  contentLength: number | null;
  chunked: boolean;
  upgrade: boolean;
}

interface Outcome {
  requests: Seen[];
  events: string[];
  error: { status: number; message: string } | null;
  maxBuffered: number;
}

function snapshot(req: ParsedRequest, body: string): Seen {
  return {
    method: req.method,
    url: req.url,
    path: req.path,
    query: req.query,
    httpVersion: req.httpVersion,
    headers: { ...req.headers },
    rawHeaders: [...req.rawHeaders],
    trailers: { ...req.trailers },
    body,
    keepAlive: req.keepAlive,
    expectContinue: req.expectContinue,
    contentLength: req.contentLength,
    chunked: req.chunked,
    upgrade: req.upgrade,
  };
}

/** Feeds `chunks` (then EOF when `eof`), recording requests, the order of callbacks, and the error if any. */
function run(chunks: readonly Buffer[], options: Http1ParserOptions = {}, eof = false): Outcome {
  const out: Outcome = { requests: [], events: [], error: null, maxBuffered: 0 };
  let body: Buffer[] = [];
  const parser = new Http1Parser(
    {
      onRequest(req) {
        out.events.push(`request ${req.method} ${req.url}`);
        if (options.body !== 'stream') out.requests.push(snapshot(req, req.body.toString('latin1')));
      },
      onBody(chunk) {
        assert.ok(chunk.length > 0);
        body.push(Buffer.from(chunk));
      },
      onRequestEnd(req) {
        out.events.push('end');
        if (options.body === 'stream') out.requests.push(snapshot(req, Buffer.concat(body).toString('latin1')));
        body = [];
      },
      onExpectContinue(req) {
        out.events.push(`continue ${req.url}`);
      },
    },
    options,
  );
  try {
    feedScribbled((c) => {
      parser.feedData(c);
      out.maxBuffered = Math.max(out.maxBuffered, parser.bufferedBytes);
    }, chunks);
    if (eof) parser.feedEof();
  } catch (err) {
    assert.ok(HttpParseError.isInstance(err), `not an HttpParseError: ${String(err)}`);
    assert.equal(err.code, 'ERR_LOOPWORK_HTTP_PARSE');
    out.error = { status: (err as HttpParseError).status, message: err.message };
    // Stopped for good: the same error again, whatever comes next.
    assert.throws(
      () => parser.feedData(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')),
      (e) => e === err,
    );
    assert.throws(
      () => parser.feedEof(),
      (e) => e === err,
    );
  }
  return out;
}

const one = (s: string, options?: Http1ParserOptions): Outcome => run([Buffer.from(s, 'latin1')], options, true);

// One byte at a time never takes the straight-line path for whole heads (#quickHead), so comparing it with a
// whole-chunk feed checks that path against the state machine on every input.
const bytewise = (data: Buffer): Buffer[] => Array.from(data, (_, i) => data.subarray(i, i + 1));

test('a GET: method, target, version, headers, keep-alive', () => {
  const o = one('GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n');
  assert.equal(o.error, null);
  assert.equal(o.requests.length, 1);
  const r = o.requests[0]!;
  assert.equal(r.method, 'GET');
  assert.equal(r.url, '/a/b?x=1&y=2');
  assert.equal(r.path, '/a/b');
  assert.equal(r.query, 'x=1&y=2');
  assert.equal(r.httpVersion, '1.1');
  assert.deepEqual(r.headers, { host: 'example.com', 'user-agent': 'curl/8', accept: '*/*' });
  assert.deepEqual(r.rawHeaders, ['Host', 'example.com', 'User-Agent', 'curl/8', 'Accept', '*/*']);
  assert.equal(r.body, '');
  assert.equal(r.keepAlive, true);
  assert.equal(r.contentLength, null);
  assert.equal(r.chunked, false);
  assert.deepEqual(o.events, ['request GET /a/b?x=1&y=2', 'end']);
});

test('field values lose their surrounding whitespace, keep inner whitespace and obs-text', () => {
  const o = one('GET / HTTP/1.1\r\nHost: h\r\nX-A: \t a  b \t\r\nX-B:\r\nX-C:c\r\nX-D: caf\xe9\r\n\r\n');
  assert.deepEqual(o.requests[0]!.rawHeaders, ['Host', 'h', 'X-A', 'a  b', 'X-B', '', 'X-C', 'c', 'X-D', 'caf\xe9']);
});

test('repeated fields: joined with ", ", cookies with "; ", singletons keep the first', () => {
  const o = one(
    'GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b\r\nCookie: x=1\r\nCookie: y=2\r\n' +
      'Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\n',
  );
  assert.deepEqual(o.requests[0]!.headers, {
    host: 'h',
    accept: 'a, b',
    cookie: 'x=1; y=2',
    'content-type': 'text/plain',
  });
});

test('fields named like Object.prototype members are own string properties', () => {
  const o = one('GET / HTTP/1.1\r\nHost: h\r\n__proto__: p\r\nConstructor: c\r\nToString: t\r\n\r\n');
  const h = o.requests[0]!.headers;
  assert.equal(Object.getOwnPropertyDescriptor(h, '__proto__')?.value, 'p');
  assert.equal(h['constructor'], 'c');
  assert.equal(h['tostring'], 't');
});

test('well-known names in any case come out lowercase', () => {
  const o = one('GET / HTTP/1.1\r\nHOST: h\r\nuSeR-aGeNt: u\r\nX-Custom-Thing: v\r\n\r\n');
  assert.deepEqual(o.requests[0]!.headers, { host: 'h', 'user-agent': 'u', 'x-custom-thing': 'v' });
});

test('a Content-Length body', () => {
  const o = one('POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world');
  assert.equal(o.requests[0]!.body, 'hello world');
  assert.equal(o.requests[0]!.contentLength, 11);
});

test('a chunked body with extensions and trailers', () => {
  const o = one(
    'POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5;name=value\r\nhello\r\n1 ; a ; b = "q\\"x" ;c=d\r\n \r\nA\r\n0123456789\r\n000\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n',
  );
  assert.equal(o.error, null);
  const r = o.requests[0]!;
  assert.equal(r.body, 'hello 0123456789');
  assert.equal(r.chunked, true);
  assert.equal(r.contentLength, null);
  assert.deepEqual(r.trailers, { 'x-sum': '42', 'x-other': 'y' });
});

test('Transfer-Encoding is matched case-insensitively and may be split over lines', () => {
  const a = one('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\na\r\n0\r\n\r\n');
  assert.equal(a.requests[0]!.body, 'a');
});

test('pipelined requests in one chunk, in order', () => {
  const o = one(
    'GET /1 HTTP/1.1\r\nHost: h\r\n\r\n' +
      'POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc' +
      'POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n' +
      'GET /4 HTTP/1.1\r\nHost: h\r\n\r\n',
  );
  assert.deepEqual(
    o.requests.map((r) => [r.url, r.body]),
    [
      ['/1', ''],
      ['/2', 'abc'],
      ['/3', 'de'],
      ['/4', ''],
    ],
  );
});

test('empty lines before a request line are ignored (RFC 9112 §2.2)', () => {
  const o = one('\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n');
  assert.equal(o.requests.length, 1);
});

test('keep-alive: HTTP/1.1 by default, HTTP/1.0 on request, Connection: close ends the connection', () => {
  const cases: [string, boolean][] = [
    ['GET / HTTP/1.1\r\nHost: h\r\n\r\n', true],
    ['GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n', false],
    ['GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n', false],
    ['GET / HTTP/1.0\r\n\r\n', false],
    ['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', true],
    ['GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n', true],
    ['GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n', false],
  ];
  for (const [input, keepAlive] of cases) assert.equal(one(input).requests[0]!.keepAlive, keepAlive, input);
});

test('after a request that closes the connection, what follows is ignored', () => {
  const o = one('GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\ngarbage\0');
  assert.equal(o.error, null);
  assert.deepEqual(
    o.requests.map((r) => r.url),
    ['/1'],
  );
});

test('Expect: 100-continue: flagged, and announced before the body is read', () => {
  const o = one('PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok');
  assert.equal(o.requests[0]!.expectContinue, true);
  assert.deepEqual(o.events, ['continue /u', 'request PUT /u', 'end']);
  // Not without a body, and never for HTTP/1.0 (RFC 9110 §10.1.1).
  assert.deepEqual(one('GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n').events, ['request GET /', 'end']);
  assert.equal(
    one('PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx').requests[0]!.expectContinue,
    false,
  );
});

test('Expect is a list: 100-continue among other expectations, or on a later line, is flagged all the same', () => {
  // RFC 9110 §10.1.1: the client waits for 100 Continue whatever else it expects; Node's server sends it.
  for (const fields of ['Expect: x-foo, 100-continue\r\n', 'Expect: x-foo\r\nExpect: 100-CONTINUE \r\n']) {
    const o = one(`PUT /u HTTP/1.1\r\nHost: h\r\n${fields}Content-Length: 2\r\n\r\nok`);
    assert.equal(o.requests[0]!.expectContinue, true, fields);
    assert.deepEqual(o.events, ['continue /u', 'request PUT /u', 'end']);
  }
  const other = one('PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continued\r\nContent-Length: 2\r\n\r\nok');
  assert.equal(other.requests[0]!.expectContinue, false);
});

test('HEAD, OPTIONS *, absolute-form and upgrade requests', () => {
  assert.equal(one('HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n').requests[0]!.method, 'HEAD');
  const star = one('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n').requests[0]!;
  assert.deepEqual([star.url, star.path, star.query], ['*', '*', '']);
  const abs = one('GET http://example.com:8080/p/q?z=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n').requests[0]!;
  assert.deepEqual([abs.path, abs.query], ['/p/q', 'z=1']);
  assert.equal(one('GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n').requests[0]!.path, '/');
  const up = one('GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n').requests[0]!;
  assert.equal(up.upgrade, true);
  assert.equal(one('GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n').requests[0]!.upgrade, false);
});

test('any token is a method; the usual ones are interned', () => {
  assert.equal(one('PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n').requests[0]!.method, 'PROPFIND');
  assert.equal(one("M-!#$%&'*+.^_`|~ / HTTP/1.1\r\nHost: h\r\n\r\n").requests[0]!.method, "M-!#$%&'*+.^_`|~");
  assert.equal(one('get / HTTP/1.1\r\nHost: h\r\n\r\n').requests[0]!.method, 'get');
});

test('streaming mode: the head first, then the body in pieces, then the end', () => {
  const o = run(
    [
      Buffer.from('POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab'),
      Buffer.from('c\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n'),
    ],
    { body: 'stream' },
  );
  assert.equal(o.error, null);
  assert.deepEqual(o.events, ['request POST /s', 'end']);
  assert.equal(o.requests[0]!.body, 'abcde');
  assert.deepEqual(o.requests[0]!.trailers, { t: '1' });
});

test('streaming mode hands out body bytes as they come, without holding them', () => {
  const o = run(
    [
      Buffer.from('POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n'),
      Buffer.alloc(60000, 1),
      Buffer.alloc(40000, 2),
    ],
    { body: 'stream', maxBodySize: 200000 },
  );
  assert.equal(o.error, null);
  assert.equal(o.requests[0]!.body.length, 100000);
  assert.equal(o.maxBuffered, 0);
});

test('buffered bodies split over chunks are assembled', () => {
  const head = 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n';
  const o = run([Buffer.from(head + '01234'), Buffer.from('56'), Buffer.from('789GET / HTTP/1.1\r\nHost: h\r\n\r\n')]);
  assert.deepEqual(
    o.requests.map((r) => r.body),
    ['0123456789', ''],
  );
});

test('feedEof: fine between requests, an error inside one', () => {
  assert.equal(run([Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n')], {}, true).error, null);
  assert.equal(run([Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n\r')], {}, true).error, null);
  for (const partial of [
    'G',
    'GET / HTTP/1.1\r\nHost: h\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab',
  ]) {
    assert.deepEqual(run([Buffer.from(partial)], {}, true).error, { status: 400, message: 'Incomplete request' });
  }
});

test('the parser is idle between requests only', () => {
  const p = new Http1Parser({ onRequest() {} });
  assert.equal(p.idle, true);
  p.feedData(Buffer.from('GET / HTTP/1.1\r\n'));
  assert.equal(p.idle, false);
  p.feedData(Buffer.from('Host: h\r\n\r\n'));
  assert.equal(p.idle, true);
});

// Every way of splitting these gives the same requests as feeding them whole.
const VALID = [
  'GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A:  v  \r\n\r\n',
  '\r\nPOST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.0\r\n\r\n',
  'POST /c HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n4;a="b;\\"c"\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n',
  'PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nxGET /f HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nignored',
];

test('every split of valid messages gives the same requests, in buffered and streaming modes', () => {
  for (const body of ['buffer', 'stream'] as const) {
    for (const text of VALID) {
      const data = Buffer.from(text, 'latin1');
      const whole = run([data], { body }, true);
      assert.equal(whole.error, null, text);
      assert.ok(whole.requests.length > 0);
      for (const chunks of splits(data)) {
        assert.deepEqual({ ...run(chunks, { body }, true), maxBuffered: 0 }, { ...whole, maxBuffered: 0 }, text);
      }
    }
  }
});

// [what, input, status]
const HOSTILE: [string, string, number][] = [
  ['CL and TE', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['TE and CL', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n', 400],
  ['duplicate CL, same value', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx', 400],
  ['duplicate CL, other value', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nxx', 400],
  ['CL list', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\nx', 400],
  ['CL with plus sign', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx', 400],
  ['CL negative', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n', 400],
  ['CL hex', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x1\r\n\r\nx', 400],
  ['CL empty', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n', 400],
  ['CL with inner space', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n', 400],
  ['CL decimal point', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1.0\r\n\r\n', 400],
  ['CL over the limit', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n', 413],
  ['CL enormous', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n', 413],
  ['TE gzip only', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n', 400],
  ['TE chunked not last', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400],
  ['TE chunked twice', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n', 400],
  [
    'TE chunked twice on two lines',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
    400,
  ],
  ['TE unknown before chunked', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501],
  ['TE identity', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n', 400],
  ['TE empty element', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked\r\n\r\n', 400],
  ['TE with parameters on chunked', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n', 400],
  ['TE misspelled', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunk\r\n\r\n', 400],
  ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['TE value with vertical tab', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0bchunked\r\n\r\n', 400],
  ['TE name with space before colon', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n', 400],
  [
    'chunk size overflow',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n',
    400,
  ],
  ['chunk size over the limit', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n', 413],
  [
    'chunks over the limit in total',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n80000\r\n' + 'x'.repeat(0x80000) + '\r\n80001\r\n',
    413,
  ],
  ['chunk size negative', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n', 400],
  ['chunk size with 0x', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n0\r\n\r\n', 400],
  ['chunk size empty', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n', 400],
  ['chunk size bare LF', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n', 400],
  [
    'chunk size trailing space',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n',
    400,
  ],
  ['chunk data too long', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n', 400],
  ['chunk data bare LF', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\n0\r\n\r\n', 400],
  [
    'chunk extension without name',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;\r\na\r\n0\r\n\r\n',
    400,
  ],
  [
    'chunk extension with CTL',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a\x01\r\na\r\n0\r\n\r\n',
    400,
  ],
  [
    'chunk extension with bare LF',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\nc\r\na\r\n0\r\n\r\n',
    400,
  ],
  [
    'chunk extension unterminated quote',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a="b\r\na\r\n0\r\n\r\n',
    400,
  ],
  [
    'chunk extension junk after quote',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a="b"c\r\na\r\n0\r\n\r\n',
    400,
  ],
  [
    'chunk extensions too long',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a=' + 'b'.repeat(5000) + '\r\n',
    400,
  ],
  [
    'chunk size leading zeros too long',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' + '0'.repeat(5000) + '1\r\n',
    400,
  ],
  [
    'trailer with obs-fold',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n',
    400,
  ],
  ['trailer with bare LF', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\n\r\n', 400],
  [
    'trailers too many',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n' + 'A: b\r\n'.repeat(101) + '\r\n',
    431,
  ],
  ['bare LF after the request line', 'GET / HTTP/1.1\nHost: h\r\n\r\n', 400],
  ['bare LF after a field', 'GET / HTTP/1.1\r\nHost: h\n\r\n', 400],
  ['bare LF ending the head', 'GET / HTTP/1.1\r\nHost: h\r\n\n', 400],
  ['bare LF only', 'GET / HTTP/1.1\nHost: h\n\n', 400],
  ['bare LF before the request', '\nGET / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['bare CR in a value', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n', 400],
  ['bare CR after the request line', 'GET / HTTP/1.1\rHost: h\r\n\r\n', 400],
  ['bare CR ending the head', 'GET / HTTP/1.1\r\nHost: h\r\n\rX', 400],
  ['bare CR before the request', '\rGET / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n', 400],
  ['obs-fold with a tab', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n', 400],
  ['first field line starts with a space', 'GET / HTTP/1.1\r\n Host: h\r\n\r\n', 400],
  ['space before the colon', 'GET / HTTP/1.1\r\nHost : h\r\n\r\n', 400],
  ['tab before the colon', 'GET / HTTP/1.1\r\nHost\t: h\r\n\r\n', 400],
  ['field without colon', 'GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n', 400],
  ['empty field name', 'GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n', 400],
  ['field name with a slash', 'GET / HTTP/1.1\r\nHost: h\r\nX/Y: v\r\n\r\n', 400],
  ['field name with obs-text', 'GET / HTTP/1.1\r\nHost: h\r\nX\xe9: v\r\n\r\n', 400],
  ['field name with NUL', 'GET / HTTP/1.1\r\nHost: h\r\nX\0: v\r\n\r\n', 400],
  ['field value with NUL', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n', 400],
  ['field value with a control byte', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\x1bb\r\n\r\n', 400],
  ['field value with DEL', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n', 400],
  ['missing Host in HTTP/1.1', 'GET / HTTP/1.1\r\nX: y\r\n\r\n', 400],
  ['duplicate Host', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
  ['duplicate Host in HTTP/1.0', 'GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n', 400],
  ['Host with a slash', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 400],
  ['Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
  ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: user@a\r\n\r\n', 400],
  ['method with a slash', 'GE/T / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['method with NUL', 'G\0ET / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['method with obs-text', 'G\xc9T / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['empty method', ' / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['absurdly long method', 'A'.repeat(100) + ' / HTTP/1.1\r\nHost: h\r\n\r\n', 501],
  ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 501],
  ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['tab after the method', 'GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['space inside the target', 'GET /a b HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['tab inside the target', 'GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['NUL inside the target', 'GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['control byte inside the target', 'GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['DEL inside the target', 'GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['fragment in the target', 'GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['relative target', 'GET a/b HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['asterisk for GET', 'GET * HTTP/1.1\r\nHost: h\r\n\r\n', 400],
  ['HTTP/0.9 request line', 'GET /\r\n\r\n', 400],
  ['URI too long', 'GET /' + 'a'.repeat(8192) + ' HTTP/1.1\r\nHost: h\r\n\r\n', 414],
  ['URI too long, endless', 'GET /' + 'a'.repeat(20000), 414],
  ['version lowercase', 'GET / http/1.1\r\nHost: h\r\n\r\n', 400],
  ['version with trailing space', 'GET / HTTP/1.1 \r\nHost: h\r\n\r\n', 400],
  ['version short', 'GET / HTTP/1\r\nHost: h\r\n\r\n', 400],
  ['version junk', 'GET / HTTP/1.x\r\nHost: h\r\n\r\n', 400],
  ['version 2.0', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 505],
  ['version 1.2', 'GET / HTTP/1.2\r\nHost: h\r\n\r\n', 505],
  ['version 0.9', 'GET / HTTP/0.9\r\nHost: h\r\n\r\n', 505],
  ['too many fields', 'GET / HTTP/1.1\r\nHost: h\r\n' + 'X: y\r\n'.repeat(100) + '\r\n', 431],
  ['head too large', 'GET / HTTP/1.1\r\nHost: h\r\nX: ' + 'y'.repeat(16384) + '\r\n\r\n', 431],
  ['head too large, endless', 'GET / HTTP/1.1\r\nHost: h\r\nX: ' + 'y'.repeat(20000), 431],
  ['garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 400],
];

test('hostile requests: the exact status, then no further input', () => {
  for (const [what, input, status] of HOSTILE) {
    const data = Buffer.from(input, 'latin1');
    const whole = run([data], {}, true);
    assert.equal(whole.error?.status, status, `${what}: ${JSON.stringify(whole.error)}`);
    assert.deepEqual(whole.requests, [], what);
    const slow = run(bytewise(data), {}, true);
    assert.deepEqual(slow.error, whole.error, `${what}, one byte at a time`);
    // Never more than a head, or a body within its limit, is held.
    assert.ok(slow.maxBuffered <= 1024 * 1024, what);
  }
});

test('a hostile request after valid ones: the valid ones are served first', () => {
  const o = one(
    'GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /bad HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\nGET /never HTTP/1.1\r\n\r\n',
  );
  assert.deepEqual(
    o.requests.map((r) => r.url),
    ['/ok'],
  );
  assert.equal(o.error?.status, 400);
});

test('limits are options', () => {
  const opts = { maxHeaderSize: 64, maxHeaderCount: 2, maxUrlLength: 8, maxBodySize: 4 };
  assert.equal(one('GET /1234567 HTTP/1.1\r\nHost: h\r\n\r\n', opts).error, null);
  assert.equal(one('GET /12345678 HTTP/1.1\r\nHost: h\r\n\r\n', opts).error?.status, 414);
  assert.equal(one('GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nC: d\r\n\r\n', opts).error?.status, 431);
  assert.equal(one('GET / HTTP/1.1\r\nHost: h\r\nA: ' + 'b'.repeat(40) + '\r\n\r\n', opts).error?.status, 431);
  assert.equal(one('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd', opts).error, null);
  assert.equal(one('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde', opts).error?.status, 413);
  const chunked = 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n';
  assert.equal(one(chunked + '2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n', opts).error, null);
  assert.equal(one(chunked + '2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n', opts).error?.status, 413);
  assert.equal(
    run([Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99\r\n\r\n')], { maxBodySize: Infinity }).error,
    null,
  );
  // A head of exactly maxHeaderSize bytes is accepted.
  const exact = 'GET / HTTP/1.1\r\nHost: h\r\nA: ' + 'b'.repeat(64 - 32) + '\r\n\r\n';
  assert.equal(exact.length, 64);
  assert.equal(one(exact, opts).error, null);
  assert.equal(one(exact.replace('A: b', 'A: bb'), opts).error?.status, 431);
  assert.throws(() => new Http1Parser({ onRequest() {} }, { maxHeaderSize: 0 }), {
    code: 'ERR_LOOPWORK_INVALID_OPTIONS',
  });
  assert.throws(() => new Http1Parser({ onRequest() {} }, { maxUrlLength: 1.5 }), {
    code: 'ERR_LOOPWORK_INVALID_OPTIONS',
  });
});

test('a handler that throws stops the parser', () => {
  const boom = new Error('boom');
  const p = new Http1Parser({
    onRequest() {
      throw boom;
    },
  });
  assert.throws(
    () => p.feedData(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n')),
    (e) => e === boom,
  );
  assert.throws(
    () => p.feedData(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n')),
    (e) => e === boom,
  );
});

test('feedData after feedEof is refused', () => {
  const p = new Http1Parser({ onRequest() {} });
  p.feedEof();
  p.feedEof();
  assert.throws(() => p.feedData(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n')), {
    code: 'ERR_LOOPWORK_INVALID_STATE',
  });
});

const ALLOWED = new Set([400, 413, 414, 431, 501, 505]);

test('property: arbitrary bytes, any chunking: the same outcome, a coded error at worst, bounded buffering', () => {
  const prefixes = [
    '',
    'GET / HTTP/1.1\r\nHost: h\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n',
  ];
  const opts = { maxHeaderSize: 256, maxBodySize: 512, maxUrlLength: 64, maxHeaderCount: 8 };
  fc.assert(
    fc.property(
      fc.constantFrom(...prefixes),
      fc.uint8Array({ maxLength: 600 }),
      cutPoints,
      fc.constantFrom<'buffer' | 'stream'>('buffer', 'stream'),
      (prefix, bytes, points, body) => {
        const data = Buffer.concat([Buffer.from(prefix, 'latin1'), bytes]);
        const whole = run([data], { ...opts, body }, true);
        const split = run(cut(data, points), { ...opts, body }, true);
        if (whole.error !== null) assert.ok(ALLOWED.has(whole.error.status));
        assert.deepEqual({ ...split, maxBuffered: 0 }, { ...whole, maxBuffered: 0 });
        assert.ok(split.maxBuffered <= 512 && whole.maxBuffered <= 512);
      },
    ),
    { numRuns: 400 },
  );
});

test('property: mutated valid requests: the same outcome fed whole, split, or byte by byte', () => {
  const base = Buffer.from(VALID.join(''), 'latin1');
  const interesting = fc.constantFrom(0, 9, 10, 13, 32, 34, 35, 44, 58, 59, 61, 0x7f, 0x80, 0xff, 0x41, 0x30);
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.oneof(interesting, fc.nat({ max: 255 })) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      byte: fc.oneof(interesting, fc.nat({ max: 255 })),
    }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
  );
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), cutPoints, (mutations, points) => {
      let data = Buffer.from(base);
      for (const m of mutations) {
        const at = m.at % data.length;
        if (m.kind === 'set') data[at] = m.byte;
        else if (m.kind === 'insert')
          data = Buffer.concat([data.subarray(0, at), Buffer.of(m.byte), data.subarray(at)]);
        else data = Buffer.concat([data.subarray(0, at), data.subarray(at + 1)]);
      }
      const whole = run([data], {}, true);
      if (whole.error !== null) assert.ok(ALLOWED.has(whole.error.status));
      for (const chunks of [cut(data, points), bytewise(data)]) {
        assert.deepEqual({ ...run(chunks, {}, true), maxBuffered: 0 }, { ...whole, maxBuffered: 0 });
      }
    }),
    { numRuns: 1000 },
  );
});

const tchar = fc.constantFrom(
  ..."!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split(''),
);
const token = fc.string({ unit: tchar, minLength: 1, maxLength: 12 });
const pathChar = fc.constantFrom(..."abcXYZ019-._~!$&'()*+,;=:@%/".split(''));
const fieldValue = fc
  .string({
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .filter((c) => c !== 0x7f)
      .map((c) => String.fromCharCode(c)),
    maxLength: 30,
  })
  .map((s) => s.trim());
const reserved = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'expect', 'upgrade']);

const validRequest = fc.record({
  method: token.filter((m) => m.toUpperCase() !== 'CONNECT'),
  path: fc.string({ unit: pathChar, maxLength: 40 }),
  query: fc.option(fc.string({ unit: pathChar, maxLength: 20 }), { nil: undefined }),
  headers: fc.array(
    fc.tuple(
      token.filter((n) => !reserved.has(n.toLowerCase())),
      fieldValue,
    ),
    { maxLength: 8 },
  ),
  body: fc.option(
    fc.record({
      data: fc.uint8Array({ maxLength: 300 }),
      chunked: fc.boolean(),
      sizes: fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 10 }),
      ext: fc.boolean(),
    }),
    { nil: undefined },
  ),
  close: fc.boolean(),
});

type ValidRequest = typeof validRequest extends fc.Arbitrary<infer T> ? T : never;

function serialize(r: ValidRequest): string {
  const url = `/${r.path}${r.query === undefined ? '' : `?${r.query}`}`;
  let head = `${r.method} ${url} HTTP/1.1\r\nHost: example.com\r\n`;
  for (const [n, v] of r.headers) head += `${n}: ${v}\r\n`;
  if (r.close) head += 'Connection: close\r\n';
  if (r.body === undefined) return `${head}\r\n`;
  const data = Buffer.from(r.body.data).toString('latin1');
  if (!r.body.chunked) return `${head}Content-Length: ${data.length}\r\n\r\n${data}`;
  let out = `${head}Transfer-Encoding: chunked\r\n\r\n`;
  let at = 0;
  let k = 0;
  while (at < data.length) {
    const size = Math.min(r.body.sizes[k++ % Math.max(1, r.body.sizes.length)] ?? 16, data.length - at);
    out += `${size.toString(16)}${r.body.ext ? ';x="y"' : ''}\r\n${data.slice(at, at + size)}\r\n`;
    at += size;
  }
  return `${out}0\r\n\r\n`;
}

test('property: generated valid requests parse to what was sent, whatever the chunking', () => {
  fc.assert(
    fc.property(fc.array(validRequest, { minLength: 1, maxLength: 4 }), cutPoints, (requests, points) => {
      const text = requests.map(serialize).join('');
      const data = Buffer.from(text, 'latin1');
      const o = run(cut(data, points), {}, true);
      assert.equal(o.error, null);
      const upTo = requests.findIndex((r) => r.close);
      const expected = upTo === -1 ? requests : requests.slice(0, upTo + 1);
      assert.equal(o.requests.length, expected.length);
      expected.forEach((r, k) => {
        const got = o.requests[k]!;
        assert.equal(got.method, r.method);
        assert.equal(got.path, `/${r.path}`);
        assert.equal(got.query, r.query ?? '');
        assert.equal(got.keepAlive, !r.close);
        assert.equal(got.body, r.body === undefined ? '' : Buffer.from(r.body.data).toString('latin1'));
        const raw = got.rawHeaders.slice(2, 2 + 2 * r.headers.length);
        assert.deepEqual(raw, r.headers.flat());
      });
      assert.deepEqual({ ...run(bytewise(data), {}, true), maxBuffered: 0 }, { ...o, maxBuffered: 0 });
      const streamed = run(cut(data, points), { body: 'stream' }, true);
      assert.deepEqual(
        streamed.requests.map((r) => r.body),
        o.requests.map((r) => r.body),
      );
    }),
    { numRuns: 300 },
  );
});

test('micro-benchmark: 200-byte GETs, pipelined, all parsed', (t) => {
  const req = Buffer.from(
    'GET /api/users/123?fields=name,email HTTP/1.1\r\nHost: localhost:3000\r\n' +
      'User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: application/json\r\n' +
      'Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n',
  );
  let count = 0;
  let hosts = 0;
  const parser = new Http1Parser({
    onRequest(r) {
      count++;
      if (r.url === '/api/users/123?fields=name,email' && r.keepAlive) hosts++;
    },
  });
  const n = 50_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) parser.feedData(req);
  const ns = Number(process.hrtime.bigint() - start) / n;
  assert.equal(count, n);
  assert.equal(hosts, n);
  t.diagnostic(`${req.length}-byte GET: ${ns.toFixed(0)} ns/request (informational, not asserted)`);
});

test('pause() stops at the next request boundary; what follows is kept, in order, for after resume()', () => {
  const targets: string[] = [];
  const parser = new Http1Parser({ onRequest: (req) => void targets.push(req.url) });
  const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
  parser.pause();
  parser.feedData(Buffer.from(get('/a') + get('/b'))); // paused between requests: nothing is parsed
  assert.deepEqual(targets, []);
  parser.resume();
  parser.feedData(Buffer.from(get('/c').slice(0, 10)));
  assert.deepEqual(targets, ['/a', '/b']);
  parser.pause();
  const rest = Buffer.from(get('/c').slice(10) + get('/d') + 'GET /e');
  parser.feedData(rest);
  rest.fill(0); // the caller's chunk: the parser kept a copy
  assert.deepEqual(targets, ['/a', '/b', '/c'], 'the request under way completes');
  parser.feedData(Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.ok(parser.heldBytes > 0 && !parser.idle);
  parser.resume();
  parser.feedData(Buffer.alloc(0));
  assert.deepEqual(targets, ['/a', '/b', '/c', '/d', '/e']);
  assert.equal(parser.heldBytes, 0);
  assert.ok(parser.idle);
});
