/**
 * Leaks: after 10,000 connect/request/close cycles of every kind, the server's descriptors and heap are back to
 * their baseline.
 *
 * The app runs in a child (its figures are its own). The cycles, 32 at a time: plain HTTP closed cleanly
 * (`Connection: close`, and keep-alive closed by the client), reset mid-request (RST), aborted before the reply
 * (the handler answers a connection that is gone), aborted mid-reply (a streamed body cut); TLS closed cleanly,
 * reset after the handshake, and abandoned inside the handshake. A warm-up round of the same mix comes first, so
 * that caches filled once (JIT, metrics label sets, pools) are in the baseline.
 *
 * Fails if, once every connection is gone: the open descriptors differ from the baseline at all, or the heap
 * (after two `gc()`) grew by more than 4 MiB (a leak of 420 bytes per cycle would pass that line; one of a
 * transport, a socket or a request object per cycle would not). Prints both figures and the cycle rate.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { certs } from './helpers/certs.js';
import { startServer } from './helpers/child.js';
import type { ServerChild, ServerStats } from './helpers/child.js';
import { mib, ms, pool } from './helpers/measure.js';
import { RawClient } from './helpers/raw-client.js';

const CYCLES = Number(process.env.RELIABILITY_LEAK_CYCLES ?? 10_000);
const HEAP_TOLERANCE = 4 * 1024 * 1024;

type Kind =
  'clean' | 'keep-alive' | 'reset' | 'aborted' | 'cut reply' | 'tls clean' | 'tls reset' | 'tls abandoned handshake';

/** The mix, in twentieths: plain cycles are cheap; a TLS one costs a handshake (1 in 10 cycles is a full one). */
const MIX: Kind[] = [
  ...['clean', 'keep-alive', 'reset', 'aborted', 'cut reply', 'clean', 'reset', 'tls clean'],
  ...['clean', 'keep-alive', 'reset', 'aborted', 'cut reply', 'clean', 'reset', 'tls reset'],
  ...['tls abandoned handshake', 'tls abandoned handshake', 'aborted', 'keep-alive'],
] as Kind[];

function ended(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.once('close', () => resolve());
  });
}

async function cycle(kind: Kind, server: ServerChild, ca: tls.SecureContext | null): Promise<void> {
  const port = server.port;
  switch (kind) {
    case 'clean': {
      const c = await RawClient.connect(port);
      c.write('GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal((await c.response()).status, 200);
      await ended(c.socket);
      return;
    }
    case 'keep-alive': {
      const c = await RawClient.connect(port);
      for (let i = 0; i < 3; i++) {
        c.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal((await c.response()).status, 200);
      }
      c.socket.end();
      await ended(c.socket);
      return;
    }
    case 'reset': {
      const c = await RawClient.connect(port);
      c.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc');
      c.reset();
      return;
    }
    case 'aborted': {
      const c = await RawClient.connect(port);
      c.write('GET /slow?ms=20 HTTP/1.1\r\nHost: x\r\n\r\n');
      c.destroy();
      return;
    }
    case 'cut reply': {
      const c = await RawClient.connect(port);
      c.write(`GET /big?size=${1 << 20} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await c.atLeast(1);
      c.destroy();
      return;
    }
    case 'tls clean':
    case 'tls reset': {
      if (ca === null) return cycle('clean', server, ca);
      const s = tls.connect({ host: '127.0.0.1', port: server.tlsPort!, secureContext: ca, servername: 'localhost' });
      await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
      if (kind === 'tls reset') {
        s.write('GET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
        s.destroy();
        return;
      }
      s.write('GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      await new Promise<void>((resolve) => s.once('close', () => resolve()).once('error', () => resolve()));
      assert.match(got, /^HTTP\/1\.1 200 OK/);
      return;
    }
    case 'tls abandoned handshake': {
      if (ca === null) return cycle('reset', server, ca);
      const c = await RawClient.connect(server.tlsPort!);
      c.write(Buffer.from('1603010200010001fc0303', 'hex'));
      c.reset();
      return;
    }
  }
}

async function settle(server: ServerChild, want: number, seconds: number): Promise<ServerStats> {
  const end = performance.now() + seconds * 1000;
  let s = await server.stats();
  while ((s.active > 0 || s.fds !== want) && performance.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    s = await server.stats();
  }
  return s;
}

test(`${CYCLES} connect/request/close cycles: descriptors and heap return to their baseline`, async (t) => {
  const m = certs();
  const server = await startServer(t, {
    ...(m === null ? {} : { tls: { certfile: m.server.certfile, keyfile: m.server.keyfile, handshakeTimeout: 2 } }),
  });
  // One context for every client connection (a `ca` option would build one per connection).
  const ca = m === null ? null : tls.createSecureContext({ ca: m.ca.cert });
  const counts = new Map<Kind, number>();
  const runCycles = (n: number): Promise<void> =>
    pool(n, 32, async (i) => {
      const kind = MIX[i % MIX.length]!;
      await cycle(kind, server, ca);
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    });
  await runCycles(1000);
  const idle = await settle(server, -1, 3);
  const base = await settle(server, idle.fds, 1);
  counts.clear();
  const t0 = performance.now();
  await runCycles(CYCLES);
  const seconds = (performance.now() - t0) / 1000;
  const after = await settle(server, base.fds, 5);
  const heapGrowth = after.heapUsed - base.heapUsed;
  assert.equal(after.active, 0, 'no connection left open');
  assert.equal(after.fds, base.fds, `descriptors: ${base.fds} before, ${after.fds} after`);
  assert.ok(heapGrowth < HEAP_TOLERANCE, `heap grew ${mib(heapGrowth)} MiB`);
  assert.equal(server.child.exitCode, null);
  assert.deepEqual(
    server.errors().map((e) => e.msg),
    [],
    'no errors logged',
  );
  t.diagnostic(
    `${CYCLES} cycles in ${ms(seconds)} s (${Math.round(CYCLES / seconds)}/s): ` +
      [...counts.entries()].map(([k, v]) => `${k} ×${v}`).join(', ') +
      (ca === null ? ' (no openssl: TLS kinds replaced by plain ones)' : ''),
  );
  t.diagnostic(
    `server after GC: fds ${base.fds} → ${after.fds}; heap ${mib(base.heapUsed)} → ${mib(after.heapUsed)} MiB ` +
      `(${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)} MiB, tolerance ${mib(HEAP_TOLERANCE)} MiB); ` +
      `RSS ${mib(base.rss)} → ${mib(after.rss)} MiB`,
  );
});
