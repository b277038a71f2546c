import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  RESP_NULL,
  RESP_NULL_ARRAY,
  RESP_OK,
  RESP_PONG,
  RespDecoder,
  RespErrorReply,
  RespProtocolError,
  RespSimpleString,
  encodeArray,
  encodeBulkString,
  encodeCommand,
  encodeError,
  encodeInteger,
  encodeResp,
  encodeSimpleString,
} from '../../src/framing/index.js';
import type { RespDecoderOptions } from '../../src/framing/index.js';
import { cut, cutPoints, feedScribbled, splits } from './helpers.js';

interface Outcome {
  commands: string[][];
  error: string | null;
  maxBuffered: number;
}

function run(chunks: readonly Buffer[], options?: RespDecoderOptions): Outcome {
  const out: Outcome = { commands: [], error: null, maxBuffered: 0 };
  const decoder = new RespDecoder((args) => {
    assert.ok(args.length > 0);
    out.commands.push(args.map((a) => a.toString('latin1')));
  }, options);
  try {
    feedScribbled((c) => {
      decoder.feedData(c);
      out.maxBuffered = Math.max(out.maxBuffered, decoder.bufferedBytes);
    }, chunks);
    decoder.feedEof();
  } catch (err) {
    assert.ok(RespProtocolError.isInstance(err), String(err));
    assert.equal(err.code, 'ERR_LOOPWORK_RESP_PROTOCOL');
    out.error = err.message;
    assert.throws(
      () => decoder.feedData(Buffer.from('*1\r\n$4\r\nPING\r\n')),
      (e) => e === err,
    );
  }
  return out;
}

const all = (s: string, options?: RespDecoderOptions): Outcome => run([Buffer.from(s, 'latin1')], options);

test('arrays of bulk strings, pipelined, binary-safe', () => {
  const o = all('*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\na\r\nb\0\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$0\r\n\r\n');
  assert.equal(o.error, null);
  assert.deepEqual(o.commands, [['SET', 'key', 'a\r\nb\0'], ['GET', 'key'], ['']]);
});

test('*0 and *-1 are nothing to do, as in redis-server', () => {
  assert.deepEqual(all('*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n').commands, [['PING']]);
});

test('inline commands as redis-server splits them', () => {
  const o = all(
    'PING\r\nSET a b\nECHO "hello world" \'it\\\'s\' "\\x41\\n\\t\\"q\\"" x"y z"\r\n   \r\n\r\n  GET   k  \r\n' +
      '"" \'\'\r\n',
  );
  assert.equal(o.error, null);
  assert.deepEqual(o.commands, [
    ['PING'],
    ['SET', 'a', 'b'],
    ['ECHO', 'hello world', "it's", 'A\n\t"q"', 'xy z'],
    ['GET', 'k'],
    ['', ''],
  ]);
});

test('every split gives the same commands', () => {
  const data = Buffer.from(
    '*2\r\n$4\r\nECHO\r\n$12\r\nhello\r\nworld\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nSET "a b" c\r\n',
    'latin1',
  );
  const whole = run([data]);
  assert.equal(whole.error, null);
  assert.equal(whole.commands.length, 4);
  for (const chunks of splits(data)) assert.deepEqual({ ...run(chunks), maxBuffered: 0 }, { ...whole, maxBuffered: 0 });
});

test('inline splitting matches redis-server 7.0 (replies to ECHO recorded from a real server)', () => {
  const cases: [string, string[] | string][] = [
    ['ECHO "hello world"', ['hello world']],
    ["ECHO 'it\\'s'", ["it's"]],
    ['ECHO "\\x41\\n\\t\\"q\\""', ['A\n\t"q"']],
    ['ECHO x"y z"', ['xy z']],
    ['ECHO ""', ['']],
    ['ECHO "\\z"', ['z']],
    ['ECHO "\\x4"', ['x4']],
    ["ECHO 'a\\nb'", ['a\\nb']],
    ['ECHO a\x0bb', ['a\x0bb']],
    ['ECHO "a"\x0b', ['a']],
    ['ECHO "a"b', 'Protocol error: unbalanced quotes in request'],
    ["ECHO 'a", 'Protocol error: unbalanced quotes in request'],
  ];
  for (const [line, expected] of cases) {
    const o = all(`${line}\r\n`);
    if (typeof expected === 'string') assert.equal(o.error, expected, line);
    else assert.deepEqual(o.commands, [['ECHO', ...expected]], line);
  }
});

// [input, redis-server's message]
const HOSTILE: [string, string][] = [
  ['*1\r\n+PING\r\n', "Protocol error: expected '$', got '+'"],
  ['*1\r\n:1\r\n', "Protocol error: expected '$', got ':'"],
  ['*x\r\n', 'Protocol error: invalid multibulk length'],
  ['*1x\r\n', 'Protocol error: invalid multibulk length'],
  ['*\r\n', 'Protocol error: invalid multibulk length'],
  ['*01\r\n', 'Protocol error: invalid multibulk length'],
  ['*+1\r\n', 'Protocol error: invalid multibulk length'],
  ['*1 \r\n', 'Protocol error: invalid multibulk length'],
  ['*1\n$4\r\nPING\r\n', 'Protocol error: invalid multibulk length'],
  ['*1048577\r\n', 'Protocol error: invalid multibulk length'],
  ['*99999999999999999999999\r\n', 'Protocol error: invalid multibulk length'],
  ['*1\r\n$-1\r\n', 'Protocol error: invalid bulk length'],
  ['*1\r\n$x\r\n', 'Protocol error: invalid bulk length'],
  ['*1\r\n$\r\n', 'Protocol error: invalid bulk length'],
  ['*1\r\n$04\r\nPING\r\n', 'Protocol error: invalid bulk length'],
  ['*1\r\n$-0\r\n', 'Protocol error: invalid bulk length'],
  ['*1\r\n$536870913\r\n', 'Protocol error: invalid bulk length'],
  ['*1\r\n$4\r\nPINGxx', "Protocol error: expected '\\r\\n' after bulk data"],
  ['*1\r\n$4\r\nPING\n\r', "Protocol error: expected '\\r\\n' after bulk data"],
  ['*1\r\n$0\r\nx\r\n', "Protocol error: expected '\\r\\n' after bulk data"],
  ['SET "a b\r\n', 'Protocol error: unbalanced quotes in request'],
  ["SET 'a\r\n", 'Protocol error: unbalanced quotes in request'],
  ['SET "a"b\r\n', 'Protocol error: unbalanced quotes in request'],
  ['SET "a\0"\r\n', 'Protocol error: NUL byte in inline request'],
  ['A\0B C\r\n', 'Protocol error: NUL byte in inline request'],
  ['x'.repeat(65537), 'Protocol error: too big inline request'],
  ['x'.repeat(65537) + '\r\n', 'Protocol error: too big inline request'],
];

test('hostile requests: redis-server messages, in every split, then no further input', () => {
  for (const [input, message] of HOSTILE) {
    const data = Buffer.from(input, 'latin1');
    const whole = run([data]);
    assert.equal(whole.error, message, JSON.stringify(input));
    if (data.length < 100) {
      for (const chunks of splits(data)) assert.equal(run(chunks).error, message, JSON.stringify(input));
    }
  }
});

test('limits are options and refuse before holding', () => {
  const opts = { maxBulkLength: 10, maxArrayLength: 3, maxInlineLength: 8, maxCommandSize: 15 };
  assert.equal(all('*3\r\n$10\r\n0123456789\r\n$5\r\n01234\r\n$0\r\n\r\n', opts).error, null);
  assert.equal(all('*1\r\n$11\r\n', opts).error, 'Protocol error: invalid bulk length');
  assert.equal(all('*4\r\n', opts).error, 'Protocol error: invalid multibulk length');
  assert.equal(all('*2\r\n$10\r\n0123456789\r\n$6\r\n', opts).error, 'Protocol error: command too large');
  assert.equal(all('1234567\r\n12345678\n', opts).error, null);
  assert.equal(all('12345678\r\n', opts).error, 'Protocol error: too big inline request');
  assert.throws(() => new RespDecoder(() => {}, { maxBulkLength: 0 }), { code: 'ERR_LOOPWORK_INVALID_OPTIONS' });
});

test('a partial command at EOF is dropped; feedData after feedEof is refused', () => {
  assert.deepEqual(all('*2\r\n$4\r\nECHO\r\n$2\r\nh').commands, []);
  const d = new RespDecoder(() => {});
  d.feedEof();
  assert.throws(() => d.feedData(Buffer.from('PING\r\n')), { code: 'ERR_LOOPWORK_INVALID_STATE' });
});

test('a large argument dribbled in is held once, not once per chunk', () => {
  const d = new RespDecoder((args) => assert.equal(args[1]!.length, 100_000));
  d.feedData(Buffer.from('*2\r\n$3\r\nSET\r\n$100000\r\n'));
  for (let i = 0; i < 1000; i++) d.feedData(Buffer.alloc(100, 0x61));
  assert.ok(d.bufferedBytes >= 100_000 && d.bufferedBytes <= 100_003);
  d.feedData(Buffer.from('\r\n'));
  assert.equal(d.bufferedBytes, 0);
});

test('encoders: every RESP2 reply type', () => {
  const s = (b: Buffer): string => b.toString('latin1');
  assert.equal(s(encodeSimpleString('OK')), '+OK\r\n');
  assert.equal(s(encodeError('ERR unknown command')), '-ERR unknown command\r\n');
  assert.equal(s(encodeInteger(42)), ':42\r\n');
  assert.equal(s(encodeInteger(-7)), ':-7\r\n');
  assert.equal(s(encodeInteger(2n ** 63n - 1n)), ':9223372036854775807\r\n');
  assert.equal(s(encodeBulkString('é')), '$2\r\n\xc3\xa9\r\n');
  assert.equal(s(encodeBulkString(Buffer.from([0, 13, 10]))), '$3\r\n\0\r\n\r\n');
  assert.equal(s(encodeBulkString('')), '$0\r\n\r\n');
  assert.equal(s(encodeBulkString(null)), '$-1\r\n');
  assert.equal(s(encodeArray(null)), '*-1\r\n');
  assert.equal(s(encodeArray([])), '*0\r\n');
  assert.equal(
    s(encodeArray(['a', null, 1, [new RespSimpleString('OK'), new RespErrorReply('ERR x')], Buffer.from('b')])),
    '*5\r\n$1\r\na\r\n$-1\r\n:1\r\n*2\r\n+OK\r\n-ERR x\r\n$1\r\nb\r\n',
  );
  assert.equal(s(encodeCommand(['GET', 'k'])), '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n');
  assert.deepEqual([RESP_OK, RESP_PONG, RESP_NULL, RESP_NULL_ARRAY].map(s), [
    '+OK\r\n',
    '+PONG\r\n',
    '$-1\r\n',
    '*-1\r\n',
  ]);
});

test('encoders refuse what cannot be sent', () => {
  for (const f of [
    () => encodeSimpleString('a\r\nb'),
    () => encodeError('ERR\n'),
    () => encodeResp(new RespSimpleString('x\ry')),
    () => encodeResp([new RespErrorReply('x\ny')]),
    () => encodeInteger(1.5),
    () => encodeInteger(2 ** 60),
    () => encodeInteger(2n ** 63n),
    () => encodeResp(NaN),
  ]) {
    assert.throws(f, { code: 'ERR_LOOPWORK_FRAMING_ENCODE' });
  }
});

test('property: encoded commands decode to the same arguments, whatever the chunking', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 6 }), { maxLength: 10 }),
      cutPoints,
      (commands, points) => {
        const data = Buffer.concat(commands.map((c) => encodeCommand(c)));
        const o = run(cut(data, points));
        assert.equal(o.error, null);
        assert.deepEqual(
          o.commands,
          commands.map((c) => c.map((a) => Buffer.from(a).toString('latin1'))),
        );
      },
    ),
  );
});

test('property: inline commands of plain words decode to those words', () => {
  const word = fc.stringMatching(/^[A-Za-z0-9:_.-]{1,12}$/);
  fc.assert(
    fc.property(
      fc.array(fc.array(word, { minLength: 1, maxLength: 5 }), { maxLength: 8 }),
      cutPoints,
      (lines, points) => {
        const data = Buffer.from(lines.map((l) => `${l.join(' ')}\r\n`).join(''));
        assert.deepEqual(run(cut(data, points)).commands, lines);
      },
    ),
  );
});

test('property: arbitrary bytes, any chunking: the same outcome, bounded buffering', () => {
  const opts = { maxBulkLength: 64, maxArrayLength: 8, maxInlineLength: 64, maxCommandSize: 128 };
  fc.assert(
    fc.property(
      fc.constantFrom('', '*3\r\n$3\r\nSET\r\n', '*2\r\n$'),
      fc.uint8Array({ maxLength: 300 }),
      cutPoints,
      (prefix, bytes, points) => {
        const data = Buffer.concat([Buffer.from(prefix), bytes]);
        const whole = run([data], opts);
        const split = run(cut(data, points), opts);
        assert.deepEqual({ ...split, maxBuffered: 0 }, { ...whole, maxBuffered: 0 });
        assert.ok(split.maxBuffered <= 128 + 64);
      },
    ),
    { numRuns: 500 },
  );
});

test('pipelined GETs as redis-benchmark -P 16 sends them are decoded in one pass', () => {
  const one = encodeCommand(['GET', 'key:000000000042']);
  const batch = Buffer.concat(Array.from({ length: 16 }, () => one));
  let n = 0;
  const d = new RespDecoder((args) => {
    if (args.length === 2 && args[1]!.length === 16) n++;
  });
  for (let i = 0; i < 1000; i++) d.feedData(batch);
  assert.equal(n, 16_000);
  assert.equal(d.bufferedBytes, 0);
});
