/**
 * Slow and hostile peers against the app in a child process (so that its memory and descriptors are its own).
 *
 * What it proves, and measures:
 * - slowloris: 300 connections dribbling a request head one byte at a time are all cut with 408 by
 *   `headersTimeout`, and clients dribbling empty lines by `keepAliveTimeout`, while a normal client keeps its
 *   latency (p50/p99 before and during the attack are printed);
 * - a client that asks for a 1 GiB streamed reply and does not read keeps the server's RSS growth under 64 MiB,
 *   while stalled and then while it reads it all (every byte arrives);
 * - a client flooding an endless header is answered 431 after the header limit and cut; the server's RSS does
 *   not follow the flood;
 * - TLS clients that connect and send nothing, stall inside their ClientHello, or send garbage records are dropped
 *   (by the handshake timeout, or at once), with nothing in the error log and every descriptor given back.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { test } from 'node:test';
import { certs } from './helpers/certs.js';
import { startServer } from './helpers/child.js';
import type { ServerChild } from './helpers/child.js';
import { mib, ms, percentile, rssOf, within } from './helpers/measure.js';
import { RawClient, connect, statuses } from './helpers/raw-client.js';

/** Times `n` sequential requests on one keep-alive connection; returns the latencies in ms. */
async function latencies(port: number, seconds: number): Promise<number[]> {
  const c = await RawClient.connect(port);
  const out: number[] = [];
  const end = performance.now() + seconds * 1000;
  try {
    while (performance.now() < end) {
      const t0 = performance.now();
      c.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
      const r = await c.response();
      assert.equal(r.status, 200);
      out.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    c.destroy();
  }
  return out;
}

async function waitFds(server: ServerChild, atMost: number, seconds: number): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let fds = (await server.stats()).fds;
  while (fds > atMost && performance.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    fds = (await server.stats()).fds;
  }
  return fds;
}

test('slowloris: 300 dribbling connections are cut by headersTimeout; a normal client keeps its latency', async (t) => {
  const HEADERS_TIMEOUT = 1.5;
  const KEEP_ALIVE = 1.5;
  const server = await startServer(t, { http: { headersTimeout: HEADERS_TIMEOUT, keepAliveTimeout: KEEP_ALIVE } });
  const before = await latencies(server.port, 0.6);

  const head = `GET /ok HTTP/1.1\r\nHost: x\r\nUser-Agent: ${'s'.repeat(400)}\r\n`;
  const slow = await Promise.all(Array.from({ length: 300 }, () => RawClient.connect(server.port, t)));
  // A second kind: empty lines forever (a parser may skip them before a request line without starting a head).
  const blank = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(server.port, t)));
  const t0 = performance.now();
  const cutAt = new Map<RawClient, number>();
  for (const c of [...slow, ...blank]) void c.endedWithin(10).then(() => cutAt.set(c, performance.now() - t0));
  let i = 0;
  const dribble = setInterval(() => {
    for (const c of slow) c.write(head[i % head.length]!);
    for (const c of blank) c.write('\r\n');
    i++;
  }, 50);
  t.after(() => clearInterval(dribble));
  const during = await latencies(server.port, HEADERS_TIMEOUT + 0.3);
  await within(
    Promise.all([...slow, ...blank].map((c) => c.endedWithin(HEADERS_TIMEOUT + 3))),
    HEADERS_TIMEOUT + 4,
    'the slow clients being cut',
  );
  clearInterval(dribble);

  const stillOpen = [...slow, ...blank].filter((c) => !c.ended).length;
  assert.equal(stillOpen, 0, 'every slow client was cut');
  for (const c of slow) assert.deepEqual(statuses(c.pending), [408], 'a slowloris client is answered 408');
  const slowCuts = slow.map((c) => cutAt.get(c)!);
  const blankCuts = blank.map((c) => cutAt.get(c)!);
  assert.ok(Math.max(...slowCuts) < (HEADERS_TIMEOUT + 1.5) * 1000, `cut after ${Math.max(...slowCuts)} ms`);
  assert.ok(Math.max(...blankCuts) < (KEEP_ALIVE + 1.5) * 1000, `blank lines cut after ${Math.max(...blankCuts)} ms`);
  const p99 = percentile(during, 99);
  // Generous for a shared 2-core CI machine: the point is that the normal client is never stuck behind them.
  assert.ok(p99 < 250, `normal client p99 ${p99} ms during the attack`);
  assert.deepEqual(server.errors(), [], 'slow clients are not errors');
  t.diagnostic(
    `normal client: p50 ${ms(percentile(before, 50))} ms, p99 ${ms(percentile(before, 99))} ms before; ` +
      `p50 ${ms(percentile(during, 50))} ms, p99 ${ms(p99)} ms during 320 slow connections (${during.length} requests)`,
  );
  t.diagnostic(
    `slowloris cut (408) after ${ms(percentile(slowCuts, 50))}–${ms(Math.max(...slowCuts))} ms (headersTimeout ` +
      `${HEADERS_TIMEOUT}s); blank-line dribblers cut after ≤ ${ms(Math.max(...blankCuts))} ms (keepAliveTimeout ${KEEP_ALIVE}s)`,
  );
});

test('a client that does not read a 1 GiB reply keeps the server RSS growth under 64 MiB', async (t) => {
  const SIZE = 1024 * 1024 * 1024;
  const server = await startServer(t, {});
  const base = (await server.stats()).rss;
  const c = await connect(server.port, t);
  c.pause();
  c.write(`GET /big?size=${SIZE} HTTP/1.1\r\nHost: x\r\n\r\n`);
  // Stalled: the server writes until the socket buffers are full, then waits for them to drain.
  let peak = 0;
  const sample = setInterval(() => (peak = Math.max(peak, rssOf(server.pid))), 25);
  t.after(() => clearInterval(sample));
  await new Promise((r) => setTimeout(r, 1500));
  const stalled = rssOf(server.pid) - base;
  // Now read it all, and count.
  let received = 0;
  let headEnd = -1;
  let head = Buffer.alloc(0);
  const t0 = performance.now();
  await within(
    new Promise<void>((resolve, reject) => {
      c.on('data', (d: Buffer) => {
        if (headEnd < 0) {
          head = Buffer.concat([head, d]);
          headEnd = head.indexOf('\r\n\r\n');
          if (headEnd >= 0) received = head.length - headEnd - 4;
        } else received += d.length;
        if (received >= SIZE) resolve();
      });
      c.on('error', reject);
      c.on('close', () => (received >= SIZE ? resolve() : reject(new Error(`closed after ${received} bytes`))));
      c.resume();
    }),
    60,
    'reading 1 GiB',
  );
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sample);
  const growth = peak - base;
  assert.match(head.toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head.toString('latin1'), /\r\nContent-Length: 1073741824\r\n/i);
  assert.equal(received, SIZE, 'every byte arrived');
  assert.ok(growth < 64 * 1024 * 1024, `server RSS grew ${mib(growth)} MiB`);
  t.diagnostic(
    `1 GiB reply: server RSS +${mib(stalled)} MiB while the client stalled 1.5 s, peak +${mib(growth)} MiB ` +
      `(limit 64 MiB); read in ${ms(seconds)} s (${ms(SIZE / 1048576 / seconds)} MiB/s)`,
  );
});

test('an endless header is answered 431 and cut; the server does not buffer the flood', async (t) => {
  const server = await startServer(t, {});
  const base = (await server.stats()).rss;
  const c = await RawClient.connect(server.port, t);
  c.write('GET /ok HTTP/1.1\r\nHost: x\r\nX-Flood: ');
  const piece = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  let peak = 0;
  // Write as fast as the server takes it, until it closes (lingering close reads and drops for 2 s at most).
  const t0 = performance.now();
  while (!c.ended && sent < 256 * 1024 * 1024) {
    if (!c.socket.write(piece)) await new Promise((r) => c.socket.once('drain', r).once('close', r));
    sent += piece.length;
    if ((sent & (4 * 1024 * 1024 - 1)) === 0) peak = Math.max(peak, rssOf(server.pid));
  }
  assert.ok(await c.endedWithin(5), 'the server closed the flooding connection');
  const took = (performance.now() - t0) / 1000;
  assert.deepEqual(statuses(c.pending), [431]);
  const growth = Math.max(peak, rssOf(server.pid)) - base;
  assert.ok(growth < 32 * 1024 * 1024, `server RSS grew ${mib(growth)} MiB`);
  assert.deepEqual(server.errors(), []);
  t.diagnostic(
    `header flood: ${mib(sent)} MiB sent before the server closed (after ${ms(took)} s, lingering close ≤ 2 s); ` +
      `server RSS +${mib(growth)} MiB`,
  );
});

test('TLS: silent, stalled and garbage clients are dropped by the handshake timeout, quietly, no fd leaked', async (t) => {
  const material = certs();
  if (material === null) {
    t.skip('openssl is missing: cannot make the certificates');
    return;
  }
  const TIMEOUT = 0.5;
  const server = await startServer(t, {
    tls: { certfile: material.server.certfile, keyfile: material.server.keyfile, handshakeTimeout: TIMEOUT },
  });
  const port = server.tlsPort!;
  const agent = new https.Agent({ keepAlive: false, ca: material.ca.cert });
  t.after(() => agent.destroy());
  const get = (): Promise<number> =>
    new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/ok', agent, servername: 'localhost' }, (res) => {
          res.resume().on('end', () => resolve(res.statusCode!));
        })
        .on('error', reject);
    });
  assert.equal(await get(), 200);
  const baseFds = (await server.stats()).fds;

  type Kind = 'silent' | 'stalled hello' | 'garbage record' | 'random bytes';
  const clients: { kind: Kind; c: RawClient; t0: number }[] = [];
  // A ClientHello record header announcing 512 bytes, and a few of them: the server waits for the rest.
  const partialHello = Buffer.from('1603010200010001fc0303', 'hex');
  const garbageRecord = Buffer.concat([Buffer.from('1703030040', 'hex'), Buffer.alloc(64, 0x5a)]);
  for (let i = 0; i < 40; i++) {
    for (const kind of ['silent', 'stalled hello', 'garbage record', 'random bytes'] as Kind[]) {
      const c = await RawClient.connect(port, t);
      if (kind === 'stalled hello') c.write(partialHello);
      if (kind === 'garbage record') c.write(garbageRecord);
      if (kind === 'random bytes') c.write(Buffer.from(Array.from({ length: 200 }, () => (Math.random() * 256) | 0)));
      clients.push({ kind, c, t0: performance.now() });
    }
  }
  // Served meanwhile.
  for (let i = 0; i < 5; i++) assert.equal(await get(), 200);
  const dropped = new Map<Kind, number[]>();
  await within(
    Promise.all(
      clients.map(async ({ kind, c, t0 }) => {
        assert.ok(await c.endedWithin(TIMEOUT + 3), `${kind} client dropped`);
        (dropped.get(kind) ?? dropped.set(kind, []).get(kind)!).push(performance.now() - t0);
      }),
    ),
    TIMEOUT + 5,
    'dropping the hostile TLS clients',
  );
  for (const kind of ['silent', 'stalled hello'] as Kind[]) {
    const times = dropped.get(kind)!;
    assert.ok(Math.min(...times) >= TIMEOUT * 1000 * 0.9, `${kind}: dropped after ${Math.min(...times)} ms`);
  }
  const fds = await waitFds(server, baseFds, 3);
  assert.equal(fds, baseFds, 'every descriptor was given back');
  assert.deepEqual(server.errors(), [], 'nothing in the error log');
  const { stderr } = server.output();
  assert.equal(stderr.trim(), '', 'nothing on stderr');
  assert.equal(await get(), 200);
  const line = [...dropped.entries()]
    .map(([k, v]) => `${k} ×${v.length} after ${ms(percentile(v, 50))}–${ms(Math.max(...v))} ms`)
    .join('; ');
  t.diagnostic(`TLS handshake timeout ${TIMEOUT}s: ${line}`);
  t.diagnostic(`server fds ${baseFds} before, ${fds} after 160 hostile TLS connections; 0 error lines`);
});
