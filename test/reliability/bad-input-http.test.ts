/**
 * Bad input, end to end over real sockets, against the app's HTTP/1.1 stage (the parser has its own unit fuzzing
 * in packages/service/test/framing; this is the whole path: transport → http1 → app → reply).
 *
 * What it proves, and measures:
 * - a corpus of hostile requests (smuggling shapes, bad framing, control bytes, absurd methods, targets and
 *   sizes) each gets its exact 4xx/5xx status, `Connection: close`, and the server closes the connection;
 * - fast-check fuzzing (random bytes, and valid requests mutated byte by byte, split in random pieces, pipelined)
 *   never crashes the server, never hangs a connection (each is answered and closed within a bound), never
 *   answers 500 or leaks an internal message; a keep-alive client beside it is served after every tenth input;
 * - nothing is logged at error level through all of it (bad input is the client's business).
 * Printed: how many inputs were tried, the status mix, the slowest close, the canary's worst latency.
 * Knobs: RELIABILITY_FUZZ_RUNS (default 400; the mutated-request property runs twice that), RELIABILITY_SEED (fast-check prints the seed of a
 * failing run: set it to replay that run).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import fc from 'fast-check';
import { SECRET } from './fixtures/app.js';
import { CORPUS } from './helpers/http-corpus.js';
import { serveLocal } from './helpers/in-process.js';
import type { LocalServer } from './helpers/in-process.js';
import { ms, percentile } from './helpers/measure.js';
import { RawClient, exchange, statuses } from './helpers/raw-client.js';

const H = 'Host: x\r\n';

/** Replies must never carry what the server knows of itself. */
function assertNoLeak(received: Buffer, what: string): void {
  const text = received.toString('latin1');
  assert.ok(!text.includes(SECRET), `${what}: the internal error reached the client`);
  assert.doesNotMatch(text, /\n\s+at .+:\d+:\d+/, `${what}: a stack trace reached the client`);
}

/** A keep-alive client beside the bad ones: each call sends one request and times its answer. */
async function canary(t: TestContext, server: LocalServer): Promise<() => Promise<number>> {
  const c = await RawClient.connect(server.port, t);
  return async () => {
    const t0 = performance.now();
    c.write(`GET /ok HTTP/1.1\r\n${H}\r\n`);
    const r = await c.response();
    assert.equal(r.status, 200, 'the canary client is served');
    return performance.now() - t0;
  };
}

test('a corpus of hostile requests: each gets its status, Connection: close, and a closed connection', async (t) => {
  const server = await serveLocal(t);
  const ping = await canary(t, server);
  let slowest = 0;
  for (const h of CORPUS) {
    const r = await exchange(server.port, h.data, 5);
    assert.ok(r.closed, `${h.name}: the server closed the connection`);
    slowest = Math.max(slowest, r.ms);
    const got = statuses(r.received);
    assert.deepEqual(got, [h.status], `${h.name}: ${JSON.stringify(r.received.toString('latin1').slice(0, 300))}`);
    assert.match(r.received.toString('latin1'), /\r\nConnection: close\r\n/i, `${h.name}: Connection: close`);
    assertNoLeak(r.received, h.name);
    await ping();
  }
  // The same requests without the client's half-close: the server must close on its own (lingering close).
  let alone = 0;
  for (const h of CORPUS) {
    const r = await exchange(server.port, h.data, 5, { halfClose: false });
    assert.ok(r.closed, `${h.name} (no half-close): the server closed the connection`);
    assert.deepEqual(statuses(r.received), [h.status], h.name);
    alone = Math.max(alone, r.ms);
  }
  assert.deepEqual(server.errors(), [], 'nothing is logged at error level for bad input');
  t.diagnostic(`hostile requests: ${CORPUS.length} shapes x 2 (with and without half-close), all refused and closed`);
  t.diagnostic(`slowest close: ${ms(slowest)} ms with half-close, ${ms(alone)} ms without (lingering close)`);
});

test('requests the app refuses (bad JSON, bad percent-encoding) get 4xx and the connection goes on', async (t) => {
  const server = await serveLocal(t);
  const c = await RawClient.connect(server.port, t);
  const cases: [string, number][] = [
    [`POST /echo HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 3\r\n\r\n{x}`, 400],
    [`GET /ok%zz HTTP/1.1\r\n${H}\r\n`, 400],
    [`GET /nowhere HTTP/1.1\r\n${H}\r\n`, 404],
    [`DELETE /ok HTTP/1.1\r\n${H}\r\n`, 405],
    // Methods are case-sensitive (RFC 9110 §9.1): `get` is a method no route can have, answered 501.
    [`get /ok HTTP/1.1\r\n${H}\r\n`, 501],
    [`BREW /ok HTTP/1.1\r\n${H}\r\n`, 501],
  ];
  for (const [data, status] of cases) {
    c.write(data);
    const r = await c.response();
    assert.equal(r.status, status, data);
    assert.notEqual(r.headers.connection, 'close');
    assertNoLeak(r.body, data);
  }
  c.write(`GET /ok HTTP/1.1\r\n${H}\r\n`);
  assert.equal((await c.response()).status, 200, 'the same connection still serves');
  assert.deepEqual(server.errors(), []);
});

// ---- fuzzing ---------------------------------------------------------------------------------------------------

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH'];
const PATHS = ['/ok', '/echo', '/count', '/nowhere', '/ok?x=1&y=%20', '/ok/', '/%7e', '*'];

/** A well-formed request (its parts drawn by fast-check). */
const validRequest = fc
  .record({
    method: fc.constantFrom(...METHODS),
    path: fc.constantFrom(...PATHS),
    version: fc.constantFrom('1.1', '1.0'),
    headers: fc.array(
      fc.tuple(
        fc.constantFrom('X-A', 'Accept', 'Connection', 'Content-Type', 'Expect', 'Cookie', 'User-Agent'),
        fc.constantFrom('a', 'close', 'keep-alive', 'text/plain', 'application/json', '100-continue', '*/*', ''),
      ),
      { maxLength: 6 },
    ),
    body: fc.option(fc.uint8Array({ maxLength: 300 })),
    chunked: fc.boolean(),
  })
  .map(({ method, path, version, headers, body, chunked }) => {
    let head = `${method} ${path} HTTP/${version}\r\n${version === '1.1' ? H : ''}`;
    for (const [n, v] of headers) head += `${n}: ${v}\r\n`;
    let tail = Buffer.alloc(0);
    if (body !== null) {
      if (chunked && version === '1.1') {
        head += 'Transfer-Encoding: chunked\r\n';
        tail = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
        if (body.length === 0) tail = Buffer.from('0\r\n\r\n');
      } else {
        head += `Content-Length: ${body.length}\r\n`;
        tail = Buffer.from(body);
      }
    }
    return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), tail]);
  });

type Mutation =
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'replace'; at: number; byte: number }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'truncate'; at: number };

/** Bytes a parser is most likely to get wrong, and any byte. */
const nastyByte = fc.oneof(
  fc.constantFrom(0, 9, 10, 13, 32, 58, 59, 0x7f, 0x80, 0xff, 0x2c, 0x22),
  fc.integer({ min: 0, max: 255 }),
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: nastyByte }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), byte: nastyByte }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(input: Buffer, mutations: readonly Mutation[]): Buffer {
  let b = input;
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    switch (m.kind) {
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), Buffer.of(m.byte), b.subarray(at)]);
        break;
      case 'replace':
        b = Buffer.from(b);
        if (b.length > 0) b[at] = m.byte;
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
        break;
      case 'duplicate':
        b = Buffer.concat([b.subarray(0, at + m.length), b.subarray(at)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

/** Statuses an answer to arbitrary bytes may carry: the app's answers, and the parser's refusals. Never 500. */
const ALLOWED = new Set([100, 200, 201, 204, 400, 404, 405, 408, 413, 414, 417, 431, 501, 505]);

interface FuzzTally {
  inputs: number;
  bytes: number;
  byStatus: Map<number, number>;
  slowestMs: number;
  canaryMs: number[];
}

/**
 * Sends one input in `pieces` (split points), half-closes, and checks the server's answer: closed in bounded
 * time, only allowed statuses, nothing internal in it; then the canary is served.
 */
async function sendAndCheck(
  server: LocalServer,
  ping: () => Promise<number>,
  tally: FuzzTally,
  input: Buffer,
  splits: readonly number[],
): Promise<void> {
  const c = await RawClient.connect(server.port);
  const t0 = performance.now();
  let from = 0;
  for (const s of [...splits].map((x) => (input.length === 0 ? 0 : x % input.length)).sort((a, b) => a - b)) {
    if (s <= from) continue;
    c.write(input.subarray(from, s));
    from = s;
    await new Promise<void>((r) => setImmediate(r));
  }
  c.write(input.subarray(from));
  c.socket.end();
  const closed = await c.endedWithin(5);
  const took = performance.now() - t0;
  c.destroy();
  assert.ok(closed, `the server closed within 5 s; input ${JSON.stringify(input.toString('latin1').slice(0, 200))}`);
  tally.inputs++;
  tally.bytes += input.length;
  tally.slowestMs = Math.max(tally.slowestMs, took);
  for (const s of statuses(c.pending)) {
    assert.ok(ALLOWED.has(s), `status ${s} for ${JSON.stringify(input.toString('latin1').slice(0, 200))}`);
    tally.byStatus.set(s, (tally.byStatus.get(s) ?? 0) + 1);
  }
  assertNoLeak(c.pending, 'fuzzed input');
  if (tally.inputs % 10 === 0) tally.canaryMs.push(await ping());
}

function report(t: { diagnostic(m: string): void }, label: string, tally: FuzzTally): void {
  const mix = [...tally.byStatus.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}x${n}`);
  t.diagnostic(`${label}: ${tally.inputs} inputs, ${tally.bytes} bytes, statuses ${mix.join(' ')}`);
  t.diagnostic(
    `${label}: slowest answer+close ${ms(tally.slowestMs)} ms; canary p50 ${ms(percentile(tally.canaryMs, 50))} ms, ` +
      `max ${ms(Math.max(...tally.canaryMs))} ms over ${tally.canaryMs.length} requests`,
  );
}

const RUNS = Number(process.env.RELIABILITY_FUZZ_RUNS ?? 400);

test('fuzz: random bytes are refused and closed, never a crash, hang or 500', async (t) => {
  const server = await serveLocal(t);
  const ping = await canary(t, server);
  const tally: FuzzTally = { inputs: 0, bytes: 0, byStatus: new Map(), slowestMs: 0, canaryMs: [] };
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 2048 }),
        fc.uint8Array({ minLength: 1, maxLength: 4096, size: 'max' }),
        // Printable noise with line breaks: gets further into the parser than uniform bytes.
        fc
          .string({ unit: fc.constantFrom(...'GET /HTTP1.:\r\n \tabc0123456789;,"'.split('')), maxLength: 400 })
          .map((s) => Buffer.from(s, 'latin1')),
      ),
      fc.array(fc.nat(), { maxLength: 4 }),
      (input, splits) => sendAndCheck(server, ping, tally, Buffer.from(input), splits),
    ),
    { numRuns: RUNS, seed: Number(process.env.RELIABILITY_SEED ?? Date.now() % 2 ** 31) },
  );
  assert.deepEqual(server.errors(), [], 'nothing is logged at error level');
  report(t, 'random bytes', tally);
});

test('fuzz: mutated valid requests, split and pipelined, are served or refused, never a crash, hang or 500', async (t) => {
  const server = await serveLocal(t);
  const ping = await canary(t, server);
  const tally: FuzzTally = { inputs: 0, bytes: 0, byStatus: new Map(), slowestMs: 0, canaryMs: [] };
  await fc.assert(
    fc.asyncProperty(
      fc.array(validRequest, { minLength: 1, maxLength: 3 }),
      fc.array(mutation, { maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      (requests, mutations, splits) =>
        sendAndCheck(server, ping, tally, mutate(Buffer.concat(requests), mutations), splits),
    ),
    { numRuns: RUNS * 2, seed: Number(process.env.RELIABILITY_SEED ?? Date.now() % 2 ** 31) },
  );
  assert.deepEqual(server.errors(), [], 'nothing is logged at error level');
  assert.ok((tally.byStatus.get(200) ?? 0) > 0, 'some inputs were served');
  assert.ok((tally.byStatus.get(400) ?? 0) > 0, 'some inputs were refused');
  report(t, 'mutated requests', tally);
});
