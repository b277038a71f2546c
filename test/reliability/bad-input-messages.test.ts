/**
 * Bad input for the message pipelines, end to end over real sockets: RESP (`resp()` + `route()`), lines
 * (`lines()` + `utf8()` + `route()`) and length-prefixed JSON (`lengthPrefixed()` + `json()` + `route()`).
 *
 * What it proves, and measures:
 * - a corpus per protocol (oversized lengths, truncated frames, invalid UTF-8, invalid JSON, unknown commands,
 *   handlers that throw) gets the protocol's own error reply, and the connection is closed exactly when the
 *   framing is lost (otherwise it goes on serving the next message);
 * - fast-check fuzzing (random bytes, and valid traffic mutated) never crashes, never hangs a connection, always
 *   answers in well-formed frames of the protocol, never leaks an internal message; a client beside it is served;
 * - a handler that throws is logged once, with its command and peer; nothing else reaches the error log.
 * Printed: inputs tried per protocol, bytes, slowest answer+close.
 * Knobs: RELIABILITY_FUZZ_RUNS (default 400 per property), RELIABILITY_SEED (fast-check prints the seed of a
 * failing run: set it to replay that run).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import fc from 'fast-check';
import { SECRET } from './fixtures/app.js';
import { serveLocal } from './helpers/in-process.js';
import type { LocalServer } from './helpers/in-process.js';
import { ms } from './helpers/measure.js';
import { RawClient, exchange } from './helpers/raw-client.js';

// ---- reading each protocol's replies ---------------------------------------------------------------------------

/** Splits RESP replies; throws on anything that is not a complete, well-formed RESP2 reply. */
function respReplies(b: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  const line = (): string => {
    const e = b.indexOf('\r\n', i);
    if (e < 0) throw new Error(`incomplete RESP line at ${i}: ${JSON.stringify(b.subarray(i).toString('latin1'))}`);
    const s = b.subarray(i, e).toString('latin1');
    i = e + 2;
    return s;
  };
  const value = (): string => {
    const l = line();
    const type = l[0];
    if (type === '+' || type === '-' || type === ':') return l;
    if (type === '$') {
      const n = Number(l.slice(1));
      if (n === -1) return l;
      if (!Number.isInteger(n) || n < 0 || i + n + 2 > b.length) throw new Error(`bad bulk ${l}`);
      const s = b.subarray(i, i + n).toString('latin1');
      if (b.subarray(i + n, i + n + 2).toString() !== '\r\n') throw new Error('bulk without CRLF');
      i += n + 2;
      return `$${s}`;
    }
    if (type === '*') {
      const n = Number(l.slice(1));
      const items: string[] = [];
      for (let k = 0; k < n; k++) items.push(value());
      return `*[${items.join(',')}]`;
    }
    throw new Error(`not a RESP reply: ${JSON.stringify(l)}`);
  };
  while (i < b.length) out.push(value());
  return out;
}

/** Splits line replies; throws on a last line without its terminator. */
function lineReplies(b: Buffer): string[] {
  if (b.length === 0) return [];
  const text = b.toString('utf8');
  if (!text.endsWith('\n')) throw new Error(`a reply line without its end: ${JSON.stringify(text.slice(-100))}`);
  return text.slice(0, -1).split('\n');
}

/** Splits u32be frames and parses each as JSON; throws on a partial frame or a payload that is not JSON. */
function frameReplies(b: Buffer): unknown[] {
  const out: unknown[] = [];
  let i = 0;
  while (i < b.length) {
    if (i + 4 > b.length) throw new Error('partial frame header');
    const n = b.readUInt32BE(i);
    if (i + 4 + n > b.length) throw new Error('partial frame');
    out.push(JSON.parse(b.subarray(i + 4, i + 4 + n).toString('utf8')));
    i += 4 + n;
  }
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function frame(payload: string | Buffer): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([u32(p.length), p]);
}

function resp(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const v = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
    parts.push(Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// ---- the corpus ----------------------------------------------------------------------------------------------

interface Case<R> {
  readonly name: string;
  readonly data: Buffer;
  readonly replies: R[];
  /** Whether the server closes before the client half-closes (the framing is lost). */
  readonly closes: boolean;
}

const RESP_CASES: Case<string>[] = [
  {
    name: 'bulk length of 12 digits',
    data: Buffer.from('*1\r\n$999999999999\r\n'),
    replies: ['-ERR Protocol error: invalid bulk length'],
    closes: true,
  },
  {
    name: 'bulk length over maxBulkLength',
    data: Buffer.from('*1\r\n$2000000\r\n'),
    replies: ['-ERR Protocol error: invalid bulk length'],
    closes: true,
  },
  {
    name: 'bulk length not a number',
    data: Buffer.from('*1\r\n$x\r\n'),
    replies: ['-ERR Protocol error: invalid bulk length'],
    closes: true,
  },
  {
    name: 'negative bulk length',
    data: Buffer.from('*1\r\n$-1\r\n'),
    replies: ['-ERR Protocol error: invalid bulk length'],
    closes: true,
  },
  {
    name: 'array of 99999999',
    data: Buffer.from('*99999999\r\n'),
    replies: ['-ERR Protocol error: invalid multibulk length'],
    closes: true,
  },
  {
    name: 'array length missing',
    data: Buffer.from('*\r\n'),
    replies: ['-ERR Protocol error: invalid multibulk length'],
    closes: true,
  },
  {
    name: 'bulk longer than announced',
    data: Buffer.from('*1\r\n$3\r\nabcdef\r\n'),
    replies: ["-ERR Protocol error: expected '\\r\\n' after bulk data"],
    closes: true,
  },
  {
    name: 'inline of 70000 bytes',
    data: Buffer.from('a'.repeat(70000)),
    replies: ['-ERR Protocol error: too big inline request'],
    closes: true,
  },
  {
    name: 'unbalanced quotes',
    data: Buffer.from('SET "a b\r\n'),
    replies: ['-ERR Protocol error: unbalanced quotes in request'],
    closes: true,
  },
  { name: 'truncated command', data: Buffer.from('*2\r\n$3\r\nGET\r\n$3\r\nab'), replies: [], closes: false },
  {
    name: 'unknown command, then PING',
    data: Buffer.from('FOO bar\r\nPING\r\n'),
    replies: ["-ERR unknown command 'FOO', with args beginning with: 'bar' ", '+PONG'],
    closes: false,
  },
  {
    name: 'handler throws, then PING',
    data: Buffer.from('BOOM\r\nPING\r\n'),
    replies: ['-ERR internal error', '+PONG'],
    closes: false,
  },
  {
    name: 'binary value (not UTF-8)',
    data: Buffer.concat([resp('SET', 'k', Buffer.of(0xff, 0xfe, 0)), resp('GET', 'k')]),
    replies: ['+OK', '$\xff\xfe\x00'],
    closes: false,
  },
  { name: 'empty array, then PING', data: Buffer.from('*0\r\nPING\r\n'), replies: ['+PONG'], closes: false },
];

const LINE_CASES: Case<string>[] = [
  {
    name: 'line of 2000 bytes',
    data: Buffer.from(`ECHO ${'a'.repeat(2000)}\nPING\n`),
    replies: ['ERR Line is longer than maxLength (1024 bytes)'],
    closes: true,
  },
  {
    name: 'line without end over the limit',
    data: Buffer.from('a'.repeat(5000)),
    replies: ['ERR Line is longer than maxLength (1024 bytes)'],
    closes: true,
  },
  {
    name: 'invalid UTF-8',
    data: Buffer.concat([Buffer.from('ECHO '), Buffer.of(0xc3, 0x28), Buffer.from('\nPING\n')]),
    replies: [],
    closes: true,
  },
  {
    name: 'overlong UTF-8 encoding of /',
    data: Buffer.concat([Buffer.from('ECHO '), Buffer.of(0xc0, 0xaf), Buffer.from('\n')]),
    replies: [],
    closes: true,
  },
  {
    name: 'unknown command, then PING',
    data: Buffer.from('FOO\nPING\n'),
    replies: ["ERR unknown command 'FOO'", 'PONG'],
    closes: false,
  },
  {
    name: 'handler throws, then PING',
    data: Buffer.from('BOOM\nPING\n'),
    replies: ['ERR internal error', 'PONG'],
    closes: false,
  },
  {
    name: 'empty lines',
    data: Buffer.from('\n\nPING\n'),
    replies: ['ERR empty command', 'ERR empty command', 'PONG'],
    closes: false,
  },
  {
    name: 'unterminated last line at EOF',
    data: Buffer.from('PING\nECHO a b'),
    replies: ['PONG', 'a b'],
    closes: false,
  },
];

const FRAME_CASES: Case<unknown>[] = [
  { name: 'length 0xffffffff', data: Buffer.concat([u32(0xffffffff), Buffer.from('abc')]), replies: [], closes: true },
  {
    name: 'length just over maxLength',
    data: Buffer.concat([u32(64 * 1024 + 1), Buffer.from('abc')]),
    replies: [],
    closes: true,
  },
  { name: 'truncated payload at EOF', data: Buffer.concat([u32(100), Buffer.from('abc')]), replies: [], closes: false },
  { name: 'truncated header at EOF', data: Buffer.of(0, 0), replies: [], closes: false },
  {
    name: 'invalid UTF-8, then a good message',
    data: Buffer.concat([frame(Buffer.of(0x22, 0xff, 0x22)), frame('{"method":"echo","id":2,"params":1}')]),
    replies: [
      { error: 'MessageDecodeError', message: 'Invalid JSON (not valid UTF-8)' },
      { id: 2, result: 1 },
    ],
    closes: false,
  },
  {
    name: 'invalid JSON, then a good message',
    data: Buffer.concat([frame('{x'), frame('{"method":"echo","id":2,"params":1}')]),
    replies: [
      { error: 'MessageDecodeError', message: "Invalid JSON: Expected property name or '}' in JSON at position 1" },
      { id: 2, result: 1 },
    ],
    closes: false,
  },
  {
    name: 'empty payload',
    data: frame(''),
    replies: [{ error: 'MessageDecodeError', message: 'Invalid JSON: Unexpected end of JSON input' }],
    closes: false,
  },
  {
    name: 'no method',
    data: frame('{"id":3}'),
    replies: [{ id: 3, error: 'CommandError', message: 'The message has no "method"' }],
    closes: false,
  },
  {
    name: 'unknown method',
    data: frame('{"id":4,"method":"nope"}'),
    replies: [{ id: 4, error: 'CommandError', message: "Unknown method 'nope'" }],
    closes: false,
  },
  {
    name: 'handler throws',
    data: frame('{"id":5,"method":"boom"}'),
    replies: [{ id: 5, error: 'InternalError', message: 'Internal error' }],
    closes: false,
  },
  {
    // JSON.parse takes 20000 levels; the echoed value is too deep for JSON.stringify: an error reply, not a
    // dead connection, and the next message is still answered.
    name: 'a reply that cannot be encoded (too deep), then a good message',
    data: Buffer.concat([
      frame(`{"method":"echo","id":6,"params":${'['.repeat(20000)}${']'.repeat(20000)}}`),
      frame('{"method":"echo","id":7,"params":1}'),
    ]),
    replies: [
      { error: 'InternalError', message: 'Internal error' },
      { id: 7, result: 1 },
    ],
    closes: false,
  },
];

async function runCorpus<R>(
  t: TestContext,
  label: string,
  port: number,
  cases: readonly Case<R>[],
  parse: (b: Buffer) => R[],
): Promise<void> {
  let slowest = 0;
  for (const c of cases) {
    // Without half-close first: a lost framing must close the connection from the server's side.
    const alone = await exchange(port, c.data, c.closes ? 5 : 0.3, { halfClose: false });
    assert.equal(alone.closed, c.closes, `${label} ${c.name}: closed by the server: ${alone.closed}`);
    const r = await exchange(port, c.data, 5);
    assert.ok(r.closed, `${label} ${c.name}: closed after the client's EOF`);
    slowest = Math.max(slowest, r.ms);
    assert.ok(!r.received.toString('latin1').includes(SECRET), `${label} ${c.name}: leaked an internal message`);
    assert.deepEqual(parse(r.received), c.replies, `${label} ${c.name}`);
  }
  t.diagnostic(`${label}: ${cases.length} hostile inputs answered as the protocol says; slowest ${ms(slowest)} ms`);
}

test('RESP: oversized lengths, truncated frames, bad quoting, throwing handlers', async (t) => {
  const server = await serveLocal(t, { messages: true });
  await runCorpus(t, 'RESP', server.respPort!, RESP_CASES, respReplies);
  const errors = server.errors();
  // Each corpus case runs twice (with and without half-close): BOOM was handled twice, and logged twice.
  assert.equal(errors.length, 2, JSON.stringify(errors));
  for (const e of errors) {
    assert.equal(e.msg, 'Error in message handler');
    assert.equal(e.command, 'BOOM');
    assert.match(String(e.peer), /^127\.0\.0\.1:\d+$/);
  }
});

test('lines: overlong lines, invalid UTF-8, empty and unterminated lines, throwing handlers', async (t) => {
  const server = await serveLocal(t, { messages: true });
  await runCorpus(t, 'lines', server.linesPort!, LINE_CASES, lineReplies);
  assert.deepEqual(
    server.errors().map((e) => [e.msg, e.command]),
    [
      ['Error in message handler', 'BOOM'],
      ['Error in message handler', 'BOOM'],
    ],
  );
});

test('length-prefixed JSON: oversized and truncated frames, invalid UTF-8 and JSON, unencodable replies', async (t) => {
  const server = await serveLocal(t, { messages: true });
  await runCorpus(t, 'frames', server.framesPort!, FRAME_CASES, frameReplies);
  const errors = server.errors().map((e) => e.msg);
  assert.deepEqual(
    errors.filter((m) => m !== 'Cannot encode a reply'),
    ['Error in message handler', 'Error in message handler'],
  );
  assert.equal(errors.filter((m) => m === 'Cannot encode a reply').length, 2, 'each unencodable reply logged once');
});

// ---- fuzzing ---------------------------------------------------------------------------------------------------

const RUNS = Number(process.env.RELIABILITY_FUZZ_RUNS ?? 400);

interface Protocol {
  readonly name: string;
  readonly port: (s: LocalServer) => number;
  /** Valid traffic to mutate. */
  readonly valid: fc.Arbitrary<Buffer>;
  /** Parses the replies; throws when they are not well-formed. */
  readonly parse: (b: Buffer) => unknown[];
  /** A request and its answer, for the client served beside the fuzzing. */
  readonly ping: [Buffer, string];
}

const word = fc.string({ unit: fc.constantFrom(...'abcxyz019 "\'\\'.split('')), maxLength: 12 });
const PROTOCOLS: Protocol[] = [
  {
    name: 'RESP',
    port: (s) => s.respPort!,
    valid: fc
      .array(
        fc.oneof(
          fc
            .tuple(
              fc.constantFrom('PING', 'ECHO', 'SET', 'GET', 'INCR', 'ping', 'NOPE'),
              fc.array(word, { maxLength: 3 }),
            )
            .map(([c, args]) => resp(c, ...args)),
          fc
            .tuple(fc.constantFrom('PING', 'ECHO', 'SET', 'GET'), fc.array(word, { maxLength: 3 }))
            .map(([c, args]) => Buffer.from(`${[c, ...args].join(' ')}\r\n`, 'latin1')),
        ),
        { minLength: 1, maxLength: 4 },
      )
      .map((parts) => Buffer.concat(parts)),
    parse: respReplies,
    ping: [Buffer.from('PING\r\n'), '+PONG\r\n'],
  },
  {
    name: 'lines',
    port: (s) => s.linesPort!,
    valid: fc
      .array(fc.tuple(fc.constantFrom('PING', 'ECHO', 'NOPE', 'echo'), fc.array(word, { maxLength: 3 })), {
        minLength: 1,
        maxLength: 4,
      })
      .map((cmds) => Buffer.from(cmds.map(([c, a]) => `${[c, ...a].join(' ')}\n`).join(''), 'utf8')),
    parse: lineReplies,
    ping: [Buffer.from('PING\n'), 'PONG\n'],
  },
  {
    name: 'frames',
    port: (s) => s.framesPort!,
    valid: fc
      .array(
        fc.record({ method: fc.constantFrom('echo', 'nope'), id: fc.nat(), params: fc.jsonValue({ maxDepth: 3 }) }),
        { minLength: 1, maxLength: 3 },
      )
      .map((msgs) => Buffer.concat(msgs.map((m) => frame(JSON.stringify(m))))),
    parse: frameReplies,
    ping: [frame('{"method":"echo","id":0,"params":"ping"}'), '{"id":0,"result":"ping"}'],
  },
];

function mutate(input: Buffer, edits: readonly [number, number, number][]): Buffer {
  let b = input;
  for (const [kind, pos, byte] of edits) {
    const at = b.length === 0 ? 0 : pos % b.length;
    if (kind === 0) b = Buffer.concat([b.subarray(0, at), Buffer.of(byte), b.subarray(at)]);
    else if (kind === 1) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + (byte % 6))]);
    else if (kind === 2) b = b.subarray(0, at);
    else {
      b = Buffer.from(b);
      if (b.length > 0) b[at] = byte;
    }
  }
  return b;
}

const edit = fc.tuple(
  fc.integer({ min: 0, max: 3 }),
  fc.nat(),
  fc.oneof(
    fc.constantFrom(0, 10, 13, 0x22, 0x2a, 0x24, 0x2d, 0x3a, 0x5c, 0xff, 0xc3, 0x80),
    fc.integer({ min: 0, max: 255 }),
  ),
);

for (const p of PROTOCOLS) {
  test(`fuzz ${p.name}: random and mutated traffic is answered in well-formed frames and closed, never a crash`, async (t) => {
    const server = await serveLocal(t, { messages: true });
    const port = p.port(server);
    const canary = await RawClient.connect(port, t);
    let inputs = 0;
    let bytes = 0;
    let slowest = 0;
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 1024 }).map((a) => Buffer.from(a)),
          fc.tuple(p.valid, fc.array(edit, { maxLength: 3 })).map(([v, e]) => mutate(v, e)),
        ),
        async (input) => {
          const r = await exchange(port, input, 5);
          assert.ok(r.closed, `${p.name}: closed within 5 s; input ${JSON.stringify(input.toString('latin1'))}`);
          inputs++;
          bytes += input.length;
          slowest = Math.max(slowest, r.ms);
          assert.ok(!r.received.toString('latin1').includes(SECRET));
          answered += p.parse(r.received).length;
          if (inputs % 10 === 0) {
            const [req, want] = p.ping;
            canary.write(req);
            assert.ok(await canary.waitFor(want), `${p.name}: the client beside the fuzzing is served`);
            canary.consume();
          }
        },
      ),
      { numRuns: RUNS, seed: Number(process.env.RELIABILITY_SEED ?? Date.now() % 2 ** 31) },
    );
    assert.deepEqual(server.errors(), [], 'nothing is logged at error level');
    t.diagnostic(
      `${p.name}: ${inputs} inputs, ${bytes} bytes, ${answered} replies, slowest answer+close ${ms(slowest)} ms`,
    );
  });
}
