import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CONTINUE,
  ChunkedEncoder,
  Http1Parser,
  InvalidHttpHeaderError,
  httpDate,
  serializeResponse,
  serializeResponseHead,
} from '../../src/framing/index.js';

const text = (b: Buffer): string => b.toString('latin1');

test('a response: status line, headers, Date, Content-Length, body, in one Buffer', () => {
  const out = text(
    serializeResponse({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"a":"é"}' }),
  );
  const date = httpDate();
  assert.equal(
    out,
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nDate: ${date}\r\nContent-Length: 10\r\n\r\n` +
      Buffer.from('{"a":"é"}').toString('latin1'),
  );
});

test('the Date field is an IMF-fixdate, cached within a second, and can be replaced or left out', () => {
  assert.match(httpDate(), /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.equal(httpDate(), httpDate());
  const mine = text(serializeResponse({ status: 204, headers: { DATE: 'Thu, 01 Jan 1970 00:00:00 GMT' } }));
  assert.equal(mine, 'HTTP/1.1 204 No Content\r\nDATE: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n');
  assert.equal(
    text(serializeResponse({ status: 404, date: false })),
    'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n',
  );
});

test('status lines: standard reasons, custom ones, unknown codes', () => {
  assert.ok(text(serializeResponse({ status: 418, date: false })).startsWith("HTTP/1.1 418 I'm a Teapot\r\n"));
  assert.ok(
    text(serializeResponse({ status: 200, statusMessage: 'Fine', date: false })).startsWith('HTTP/1.1 200 Fine\r\n'),
  );
  assert.ok(text(serializeResponse({ status: 599, date: false })).startsWith('HTTP/1.1 599 \r\n'));
  for (const status of [99, 1000, 200.5, NaN]) {
    assert.throws(() => serializeResponse({ status }), { code: 'ERR_LOOPWORK_HTTP_INVALID_RESPONSE' });
  }
});

test('keep-alive: Connection: close when not kept, keep-alive for kept HTTP/1.0 clients', () => {
  assert.match(text(serializeResponse({ status: 200, keepAlive: false, date: false })), /\r\nConnection: close\r\n/);
  assert.match(
    text(serializeResponse({ status: 200, httpVersion: '1.0', date: false })),
    /\r\nConnection: keep-alive\r\n/,
  );
  assert.doesNotMatch(text(serializeResponse({ status: 200, date: false })), /Connection/);
});

test('header values: numbers, arrays as repeated lines, undefined skipped, obs-text kept', () => {
  const out = text(
    serializeResponse({
      status: 200,
      date: false,
      headers: { 'set-cookie': ['a=1', 'b=2'], 'x-n': 42, 'x-skip': undefined, 'x-l': 'caf\xe9' },
    }),
  );
  assert.equal(
    out,
    'HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-n: 42\r\nx-l: caf\xe9\r\nContent-Length: 0\r\n\r\n',
  );
});

test('no header injection: CR, LF, NUL, controls, chars past U+00FF and non-token names are refused', () => {
  const bad: Record<string, string>[] = [
    { 'x-a': 'v\r\nSet-Cookie: evil=1' },
    { 'x-a': 'v\nx' },
    { 'x-a': 'v\rx' },
    { 'x-a': 'v\0x' },
    { 'x-a': 'v\x7fx' },
    { 'x-a': 'v\u0100' },
    { 'x-a': '\u2028' },
    { 'x-a\r\nx-b': 'v' },
    { 'x a': 'v' },
    { 'x:a': 'v' },
    { '': 'v' },
    { 'x\u00e9': 'v' },
  ];
  for (const headers of bad) {
    assert.throws(
      () => serializeResponse({ status: 200, headers }),
      (e) => InvalidHttpHeaderError.isInstance(e) && e instanceof TypeError,
      JSON.stringify(headers),
    );
  }
  assert.throws(() => serializeResponse({ status: 200, headers: { 'x-a': ['ok', 'bad\n'] } }), {
    code: 'ERR_LOOPWORK_HTTP_INVALID_HEADER',
  });
  assert.throws(() => serializeResponse({ status: 200, statusMessage: 'OK\r\nX: y' }), {
    code: 'ERR_LOOPWORK_HTTP_INVALID_HEADER',
  });
});

test('framing fields belong to the writer', () => {
  for (const name of ['Content-Length', 'transfer-encoding', 'CONNECTION']) {
    assert.throws(() => serializeResponse({ status: 200, headers: { [name]: '1' } }), {
      code: 'ERR_LOOPWORK_HTTP_INVALID_HEADER',
    });
  }
});

test('HEAD: the length of the body, not the body', () => {
  const out = text(serializeResponse({ status: 200, body: 'hello', head: true, date: false }));
  assert.equal(out, 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
  const announced = text(serializeResponse({ status: 200, head: true, contentLength: 1234, date: false }));
  assert.equal(announced, 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n');
});

test('1xx, 204 and 304 carry no body and no Content-Length', () => {
  assert.equal(text(serializeResponse({ status: 204, date: false })), 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal(text(serializeResponse({ status: 304, date: false, body: '' })), 'HTTP/1.1 304 Not Modified\r\n\r\n');
  assert.throws(() => serializeResponse({ status: 204, body: 'x' }), { code: 'ERR_LOOPWORK_HTTP_INVALID_RESPONSE' });
  assert.throws(() => serializeResponse({ status: 304, body: Buffer.from('x') }), {
    code: 'ERR_LOOPWORK_HTTP_INVALID_RESPONSE',
  });
});

test('100 Continue', () => {
  assert.equal(text(CONTINUE), 'HTTP/1.1 100 Continue\r\n\r\n');
});

test('binary bodies are copied byte for byte', () => {
  const body = Buffer.from([0, 1, 2, 255, 13, 10]);
  const out = serializeResponse({ status: 200, body, date: false });
  assert.deepEqual(out.subarray(out.length - 6), body);
});

test('streaming heads: chunked, a known length, close-delimited', () => {
  assert.equal(
    text(serializeResponseHead({ status: 200, date: false })),
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
  );
  assert.equal(
    text(serializeResponseHead({ status: 200, date: false, framing: 10 })),
    'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n',
  );
  assert.equal(
    text(serializeResponseHead({ status: 200, date: false, httpVersion: '1.0' })),
    'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n',
  );
  assert.throws(() => serializeResponseHead({ status: 200, httpVersion: '1.0', framing: 'chunked' }), {
    code: 'ERR_LOOPWORK_HTTP_INVALID_RESPONSE',
  });
  assert.throws(() => serializeResponseHead({ status: 200, framing: -1 }), {
    code: 'ERR_LOOPWORK_HTTP_INVALID_RESPONSE',
  });
});

test('ChunkedEncoder: chunks, no empty chunk, the end with trailers, nothing after it', () => {
  const enc = new ChunkedEncoder();
  assert.equal(text(enc.encode('hello')), '5\r\nhello\r\n');
  assert.equal(text(enc.encode(Buffer.alloc(26, 0x61))), `1a\r\n${'a'.repeat(26)}\r\n`);
  assert.equal(enc.encode('').length, 0);
  assert.equal(text(enc.encode('é')), '2\r\n\xc3\xa9\r\n');
  assert.deepEqual(
    enc.encodeParts(Buffer.from('xyz')).map((p) => Buffer.from(p).toString()),
    ['3\r\n', 'xyz', '\r\n'],
  );
  assert.deepEqual(enc.encodeParts(Buffer.alloc(0)), []);
  assert.equal(text(enc.end({ 'x-checksum': 'abc' })), '0\r\nx-checksum: abc\r\n\r\n');
  assert.throws(() => enc.encode('x'), { code: 'ERR_LOOPWORK_HTTP_INVALID_RESPONSE' });
  assert.equal(text(new ChunkedEncoder().end()), '0\r\n\r\n');
  assert.throws(() => new ChunkedEncoder().end({ 'x-a': 'b\r\nc' }), { code: 'ERR_LOOPWORK_HTTP_INVALID_HEADER' });
});

// The writer's output read back by a parser of the same grammar: a request parser needs a request line, so the
// status line is swapped for one; everything after it is the writer's bytes.
function readBack(response: Buffer): {
  headers: Record<string, string>;
  body: string;
  trailers: Record<string, string>;
} {
  const crlf = response.indexOf('\r\n');
  const asRequest = Buffer.concat([Buffer.from('POST / HTTP/1.1\r\nHost: h'), response.subarray(crlf)]);
  let seen: { headers: Record<string, string>; body: string; trailers: Record<string, string> } | undefined;
  new Http1Parser({
    onRequest(req) {
      seen = { headers: { ...req.headers }, body: req.body.toString('latin1'), trailers: { ...req.trailers } };
    },
  }).feedData(asRequest);
  assert.ok(seen);
  return seen;
}

test('property: serialized responses and chunked bodies read back to what was written', () => {
  const name = fc
    .stringMatching(/^[a-z][a-z0-9-]{0,15}$/)
    .filter((n) => !['content-length', 'transfer-encoding', 'connection', 'date', 'host'].includes(n));
  const value = fc.stringMatching(/^[!-~]([ -~]{0,20}[!-~])?$/);
  fc.assert(
    fc.property(
      fc.dictionary(name, value, { maxKeys: 6 }),
      fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }),
      (headers, pieces) => {
        const body = Buffer.concat(pieces);
        const whole = readBack(serializeResponse({ status: 200, headers, body, date: false }));
        assert.equal(whole.body, body.toString('latin1'));
        for (const [k, v] of Object.entries(headers)) assert.equal(whole.headers[k], v);

        const enc = new ChunkedEncoder();
        const streamed = Buffer.concat([
          serializeResponseHead({ status: 200, headers, date: false }),
          ...pieces.map((p) => enc.encode(p)),
          enc.end({ 'x-t': 'done' }),
        ]);
        const back = readBack(streamed);
        assert.equal(back.body, body.toString('latin1'));
        assert.deepEqual(back.trailers, { 'x-t': 'done' });
      },
    ),
    { numRuns: 200 },
  );
});

test('property: no header value the writer accepts can add a line', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 20 }), (value) => {
      let out: Buffer;
      try {
        out = serializeResponse({ status: 200, headers: { 'x-v': value }, date: false });
      } catch (err) {
        assert.ok(InvalidHttpHeaderError.isInstance(err));
        return;
      }
      assert.equal(text(out).split('\r\n').length, 5);
      assert.ok(!text(out).slice(0, -4).replace(/\r\n/g, '').includes('\n'));
    }),
  );
});
