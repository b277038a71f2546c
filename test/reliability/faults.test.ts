/**
 * Faults: what goes wrong inside the server, or under it, while it serves.
 *
 * What it proves, and measures:
 * - handlers that throw (sync and async), a promise rejected with nobody awaiting it, a protocol callback that
 *   throws, a message handler that throws, peers that reset mid-body, mid-reply and mid-handler: the process keeps
 *   serving, each fault is one log line with its context (request id, route, peer), clients see no internal
 *   detail, and every write the server acknowledged meanwhile is still there (a client counting acknowledged
 *   `POST /count` sees the server's count equal its own, with no number given twice);
 * - EADDRINUSE: a second listener on a taken port fails with a clear OSError and the first serves on;
 * - EMFILE: with its descriptor limit lowered (prlimit), the server logs the exhaustion once, keeps serving the
 *   connections it has, and accepts and serves the waiting ones once descriptors are freed: none is lost;
 * - a full disk (a tmpfs out of inodes) for a Unix socket path: listen fails with ENOSPC naming the path, the app
 *   serves on, and listens there once space is freed.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createApp, native } from '@loopwork/service';
import { SECRET } from './fixtures/app.js';
import { startServer } from './helpers/child.js';
import type { LogLine, ServerChild } from './helpers/child.js';
import { serveLocal } from './helpers/in-process.js';
import { ms, within } from './helpers/measure.js';
import { RawClient, exchange } from './helpers/raw-client.js';

const H = 'Host: x\r\n';

/** One request on a new connection; resolves with the response. */
async function request(port: number, data: string): Promise<{ status: number; body: string }> {
  const c = await RawClient.connect(port);
  try {
    c.write(data);
    const r = await c.response();
    return { status: r.status, body: r.body.toString() };
  } finally {
    c.destroy();
  }
}

/**
 * A client that keeps writing (`POST /count`) while faults happen, and counts what the server acknowledged.
 */
function acker(port: number): { stop(): Promise<number[]> } {
  let stopping = false;
  const acks: number[] = [];
  const run = (async () => {
    const c = await RawClient.connect(port);
    while (!stopping) {
      c.write(`POST /count HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`);
      const r = await c.response();
      assert.equal(r.status, 200);
      acks.push((JSON.parse(r.body.toString()) as { n: number }).n);
      await new Promise((r) => setTimeout(r, 2));
    }
    c.destroy();
  })();
  return {
    async stop() {
      stopping = true;
      await run;
      return acks;
    },
  };
}

function byMsg(lines: LogLine[], msg: string): LogLine[] {
  return lines.filter((l) => l.msg === msg);
}

async function resetMidBody(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  c.write(`POST /echo HTTP/1.1\r\n${H}Content-Length: 100000\r\n\r\n${'a'.repeat(5000)}`);
  await new Promise((r) => setTimeout(r, 20));
  c.reset();
}

async function resetMidReply(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  c.write(`GET /big?size=${64 * 1024 * 1024} HTTP/1.1\r\n${H}\r\n`);
  assert.ok(await c.atLeast(1024 * 1024), 'the reply was streaming');
  c.reset();
}

/** Resets while the handler runs: once the server reports the handler started, before it answers (300 ms). */
async function resetInHandler(server: ServerChild): Promise<void> {
  const started = (await server.stats()).slow;
  const c = await RawClient.connect(server.port);
  c.write(`GET /slow?ms=300 HTTP/1.1\r\n${H}\r\n`);
  const end = performance.now() + 3000;
  while ((await server.stats()).slow === started && performance.now() < end) await new Promise((r) => setTimeout(r, 5));
  assert.equal(c.pending.length, 0, 'reset before the answer');
  c.reset();
}

test('faults while serving: each logged once with context, the process serves on, nothing acknowledged lost', async (t) => {
  const server: ServerChild = await startServer(t, { messages: true, http: { keepAliveTimeout: 30 } });
  const port = server.port;
  const ack = acker(port);
  const tally: Record<string, number> = {};
  const count = (k: string): void => void (tally[k] = (tally[k] ?? 0) + 1);

  for (let i = 0; i < 5; i++) {
    for (const path of ['/throw', '/throw-async']) {
      const r = await request(port, `GET ${path} HTTP/1.1\r\n${H}\r\n`);
      assert.equal(r.status, 500);
      assert.deepEqual(JSON.parse(r.body), {
        statusCode: 500,
        error: 'Internal Server Error',
        message: 'Internal Server Error',
      });
      count('handler throws');
    }
  }
  for (let i = 0; i < 3; i++) {
    assert.equal((await request(port, `GET /reject HTTP/1.1\r\n${H}\r\n`)).status, 200);
    count('unhandled rejection');
  }
  const rawOk = await RawClient.connect(server.rawPort!, t);
  for (let i = 0; i < 3; i++) {
    const r = await exchange(server.rawPort!, 'boom', 5, { halfClose: false });
    assert.ok(r.closed, 'a protocol that throws loses its connection');
    assert.equal(r.received.length, 0);
    rawOk.write(`still here ${i}`);
    assert.ok(await rawOk.waitFor(`still here ${i}`), 'other connections of that listener go on');
    count('protocol callback throws');
  }
  for (let i = 0; i < 3; i++) {
    const r = await exchange(server.respPort!, 'BOOM\r\nPING\r\n', 5);
    assert.equal(r.received.toString(), '-ERR internal error\r\n+PONG\r\n');
    count('message handler throws');
  }
  for (let i = 0; i < 5; i++) {
    await resetMidBody(port);
    count('reset mid-body');
    await resetMidReply(port);
    count('reset mid-reply');
    await resetInHandler(server);
    count('reset mid-handler');
  }
  // Let the last handlers finish (they answer a connection that is gone).
  await new Promise((r) => setTimeout(r, 400));
  const acks = await ack.stop();
  const stats = await server.stats();

  // Nothing acknowledged was lost: the server's count is the client's, and no number was given twice.
  assert.equal(stats.acked, acks.length, 'the server counted every acknowledged write');
  assert.equal(new Set(acks).size, acks.length);
  assert.equal(acks.at(-1), acks.length);
  assert.equal((await request(port, `GET /count HTTP/1.1\r\n${H}\r\n`)).body, JSON.stringify({ n: acks.length }));

  const logs = server.logs();
  const errors = server.errors();
  const handlerErrors = byMsg(errors, 'Error in request handler');
  assert.equal(handlerErrors.length, 10, 'each failing handler is logged once');
  for (const e of handlerErrors) {
    assert.match(String(e.reqId), /^req-\d+$/);
    assert.match(String(e.request), /^GET \/throw(-async)?$/);
    assert.match(String(e.route), /^\/throw(-async)?$/);
    assert.match(String(e.peer), /^127\.0\.0\.1:\d+$/);
    assert.equal((e.err as { message?: string }).message, SECRET);
  }
  const rejections = byMsg(errors, 'Unhandled promise rejection');
  assert.equal(rejections.length, 3, 'each unhandled rejection is logged once');
  for (const e of rejections) assert.equal((e.err as { message?: string }).message, 'nobody awaits me');
  const fatal = byMsg(errors, 'Fatal error: protocol.dataReceived() call failed.');
  assert.equal(fatal.length, 3, 'each throwing protocol callback is logged once');
  for (const e of fatal) {
    assert.match(String(e.peer), /^127\.0\.0\.1:\d+$/);
    assert.ok(typeof e.protocol === 'string' && typeof e.transport === 'string');
  }
  const messageErrors = byMsg(errors, 'Error in message handler');
  assert.equal(messageErrors.length, 3);
  for (const e of messageErrors) assert.equal(e.command, 'BOOM');
  assert.equal(errors.length, 19, `no other error lines: ${JSON.stringify(errors.map((e) => e.msg))}`);
  // A peer reset is not an error: the requests it cut are access-logged once each as aborted, with their url.
  const aborted = byMsg(logs, 'request aborted');
  assert.equal(aborted.length, 10, JSON.stringify(aborted));
  assert.equal(aborted.filter((l) => String((l.req as { url: string }).url).startsWith('/big')).length, 5);
  assert.equal(aborted.filter((l) => String((l.req as { url: string }).url).startsWith('/slow')).length, 5);
  assert.equal(server.output().stderr.trim(), '', 'nothing on stderr');
  assert.doesNotMatch(server.output().stdout, /^CRASH /m);
  assert.equal((await request(port, `GET /ok HTTP/1.1\r\n${H}\r\n`)).status, 200, 'still serving');
  const faults = Object.values(tally).reduce((a, b) => a + b, 0);
  t.diagnostic(
    `faults survived: ${faults} (${Object.entries(tally)
      .map(([k, v]) => `${k} ×${v}`)
      .join(', ')})`,
  );
  t.diagnostic(
    `log: ${errors.length} error lines for 19 faults that are errors, ${aborted.length} "request aborted" lines for 10 cut requests`,
  );
  t.diagnostic(`acknowledged writes during the faults: ${acks.length}; on the server after: ${stats.acked}; lost 0`);
});

test('EADDRINUSE: a second listener on a taken port fails clearly; the first serves on', async (t) => {
  const first = await serveLocal(t);
  const second = createApp({ logger: false, signals: false });
  await assert.rejects(second.listen({ port: first.port, host: '127.0.0.1' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'EADDRINUSE');
    assert.match(err.message, new RegExp(`address \\('127\\.0\\.0\\.1', ${first.port}\\)`));
    assert.match(err.message, /address already in use/);
    return true;
  });
  // The failed app is back to new: it can listen elsewhere.
  const url = await second.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => second.close({ deadline: 1 }));
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await request(first.port, `GET /ok HTTP/1.1\r\n${H}\r\n`)).status, 200);
  assert.deepEqual(first.errors(), []);
});

test('EMFILE: out of descriptors, the server logs once, serves what it has, then serves the waiting ones', async (t) => {
  if (spawnSync('prlimit', ['--version']).status !== 0) {
    t.skip('prlimit (util-linux) is missing');
    return;
  }
  if (!native.nativeAvailable()) {
    // net.Server's listener sheds connections on EMFILE (libuv closes them at once): there is no pause to test.
    t.skip("loopwork's native addon is not built: listeners are net.Servers");
    return;
  }
  const server = await startServer(t, { http: { keepAliveTimeout: 30 } });
  const base = (await server.stats()).fds;
  const SPARE = 10;
  execFileSync('prlimit', [`--pid=${server.pid}`, `--nofile=${base + SPARE}:${base + SPARE}`]);
  // Twice as many clients as spare descriptors, each sending its request at once.
  const clients = await Promise.all(Array.from({ length: 2 * SPARE }, () => RawClient.connect(server.port, t)));
  const answered = new Map<RawClient, Promise<number>>();
  const served = new Set<RawClient>();
  for (const c of clients) {
    c.write(`GET /ok HTTP/1.1\r\n${H}\r\n`);
    const status = c.response().then((r) => {
      if (r.status === 200) served.add(c);
      return r.status;
    });
    status.catch(() => undefined);
    answered.set(c, status);
  }
  const first = await server.line(/socket\.accept\(\) out of system resource/, 5);
  const t0 = performance.now();
  // Those it has descriptors for are answered (within 5 s on a loaded machine; 100 ms more for stragglers).
  for (let waited = 0; served.size < SPARE - 3 && waited < 5000; waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 100));
  const before = [...served];
  assert.ok(before.length >= SPARE - 3 && before.length < clients.length, `${before.length} served before`);
  // At the limit, the connections it holds are still served.
  for (const c of before) {
    c.write(`GET /ok HTTP/1.1\r\n${H}\r\n`);
    assert.equal((await c.response()).status, 200);
  }
  // Free the descriptors: the waiting clients are accepted at the next retry and answered.
  for (const c of before) c.destroy();
  const waiting = clients.filter((c) => !before.includes(c));
  const statuses = await within(
    Promise.all(waiting.map((c) => answered.get(c)!)),
    5,
    'the waiting clients being served',
  );
  assert.ok(statuses.every((s) => s === 200));
  const resumedAfter = performance.now() - t0;
  const lines = server.logs().filter((l) => l.msg === 'socket.accept() out of system resource');
  // Once per accept retry (1 s) while exhausted: once here, unless this machine took over a second to free them.
  assert.ok(
    lines.length >= 1 && lines.length <= Math.max(1, Math.ceil(resumedAfter / 1000) - 1),
    `${lines.length} lines`,
  );
  assert.equal((lines[0]!.err as { code?: string }).code, 'EMFILE');
  assert.ok(typeof lines[0]!.socket === 'string', 'with the listening socket');
  assert.ok(first.includes('EMFILE'));
  assert.equal(server.child.exitCode, null, 'the server is alive');
  assert.equal(server.errors().length, lines.length, JSON.stringify(server.errors().map((e) => e.msg)));
  t.diagnostic(
    `EMFILE at ${base + SPARE} descriptors: ${before.length} clients served while exhausted, ` +
      `${waiting.length} waited and were served ${ms(resumedAfter)} ms after the first error (accept retry 1 s); ` +
      `${lines.length} log line(s); 0 connections lost`,
  );
});

test('a full disk for the Unix socket path: listen fails with the path, the app serves on, then listens', async (t) => {
  const app = await serveLocal(t);
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-full-'));
  let how: string;
  let expected: string;
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,nr_inodes=3', 'tmpfs', dir]).status === 0;
  let freeSpace = (): void => undefined;
  if (mounted) {
    // One hook, in order: the app's socket file goes with the mount.
    t.after(() => {
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    });
    // The root directory takes one inode; fill the others.
    for (let i = 0; ; i++) {
      try {
        writeFileSync(join(dir, `fill-${i}`), '');
      } catch {
        freeSpace = () => rmSync(join(dir, `fill-0`));
        break;
      }
    }
    how = 'a tmpfs with no inode left';
    expected = 'ENOSPC';
  } else {
    // Not allowed to mount (not root): a directory that does not exist yet gives the same kind of failure.
    rmdirSync(dir);
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    freeSpace = () => mkdirSync(dir);
    how = 'mount refused (not root?): a missing directory instead';
    expected = 'ENOENT';
  }
  const path = join(dir, 'admin.sock');
  const admin = createApp({ logger: false, signals: false });
  await assert.rejects(admin.listen({ unix: path }), (err: Error & { code?: string }) => {
    assert.equal(err.code, expected);
    assert.ok(err.message.includes(path), err.message);
    return true;
  });
  assert.equal((await request(app.port, `GET /ok HTTP/1.1\r\n${H}\r\n`)).status, 200, 'the app serves on');
  freeSpace();
  await admin.listen({ unix: path });
  t.after(() => admin.close({ deadline: 1 }));
  assert.ok(statSync(path).isSocket());
  const s = net.connect(path);
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  s.write(`GET /healthz HTTP/1.1\r\n${H}\r\n`);
  const reply = await new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
  s.destroy();
  assert.match(reply, /^HTTP\/1\.1 200 OK/);
  t.diagnostic(`full disk: ${how}: listen failed with ${expected} and the path; served after space was freed`);
});
