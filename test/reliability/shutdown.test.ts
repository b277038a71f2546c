/**
 * Graceful shutdown under load, with the app and the load generator in processes of their own.
 *
 * What it proves, and measures:
 * - SIGTERM while 24 workers hammer the app (fast and 150 ms requests): every request the app began to handle
 *   is answered in full (the app's count of handled requests equals the client's count of complete responses),
 *   new connections are refused at once, and the process exits 0 within its shutdown deadline;
 * - a rolling restart of two instances sharing a port with `reusePort` (each replaced in turn while the load
 *   runs) loses no request: every request handled by any instance was answered once, and no connection the
 *   kernel completed went unread. That needs `net.ipv4.tcp_migrate_req=1` (Linux 5.14+): without it, Linux
 *   resets the connections still queued on a reuseport listener that closes; with it, they move to another
 *   listener of the group. The test sets it for its duration when it can (root, a writable /proc/sys) and puts
 *   the old value back; when it cannot, it says so and checks only that such connections were never read. A
 *   draining instance keeps its idle keep-alive connections readable for a grace second, answering a request
 *   already on its way with `Connection: close`, so no client has to resend one (RFC 9112 §9.3.1 would let it):
 *   resends are counted, and with tcp_migrate_req there must be none.
 * - a rolling restart of two instances behind Debian's nginx (keep-alive to the upstreams, `proxy_next_upstream
 *   error timeout`), each stopped with SIGTERM and replaced on its port in turn under load: no request fails at
 *   the client, none is handled twice, every instance exits 0 (skipped, saying so, when nginx is not installed).
 * Printed: requests served, in flight at the signal, time to exit, refused after, resent and why, nginx retries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { native } from '@loopwork/service';
import { startServer } from './helpers/child.js';
import type { ServerChild } from './helpers/child.js';
import { startLoad } from './helpers/load.js';
import type { Load, LoadResult } from './helpers/load.js';
import { findNginx, startNginx } from './helpers/nginx.js';
import { ms, within } from './helpers/measure.js';
import { tryConnect } from './helpers/raw-client.js';
import { setSysctl } from './helpers/sysctl.js';

/** The counters a child printed at exit. */
async function exitCounters(server: ServerChild): Promise<{ code: number; handled: number }> {
  const line = await server.line(/^EXIT /, 20);
  return JSON.parse(line.slice(5)) as { code: number; handled: number };
}

test('SIGTERM under load: every accepted request answered, new connections refused, exit 0 in time', async (t) => {
  const DEADLINE = 5;
  const server = await startServer(t, { signals: true, shutdownTimeout: DEADLINE });
  const load = startLoad(t, server.port, 24, false, ['/ok', '/ok', '/ok', '/slow?ms=150']);
  await load.started;
  await new Promise((r) => setTimeout(r, 1500));
  const t0 = performance.now();
  load.mark();
  server.child.kill('SIGTERM');
  // The listener closes at once: poll until a connect is refused (a few ms), then check it stays refused.
  let refusedAfter = -1;
  for (let i = 0; i < 100; i++) {
    if ((await tryConnect(server.port)) === 'ECONNREFUSED') {
      refusedAfter = performance.now() - t0;
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(refusedAfter >= 0 && refusedAfter < 500, `new connections refused after ${refusedAfter} ms`);
  const result = await within(load.done, DEADLINE + 5, 'the load generator seeing the server gone');
  const exit = await within(server.exited, DEADLINE + 5, 'the server exiting');
  const took = (performance.now() - t0) / 1000;
  const counters = await exitCounters(server);
  assert.equal(exit.code, 0, server.output().stderr);
  assert.ok(took < DEADLINE, `exited after ${took} s`);
  assert.equal(result.lost, 0, `requests cut or failed: ${JSON.stringify(result.errors)}`);
  assert.equal(result.completed, counters.handled, 'every request the app handled was answered in full');
  assert.ok(result.completedAfterMark > 0, 'requests in flight at the signal were answered after it');
  for (const code of Object.keys(result.errors)) {
    assert.ok(['ECONNREFUSED', 'ECONNRESET', 'socket hang up', 'EPIPE'].includes(code), `unexpected ${code}`);
  }
  assert.deepEqual(server.errors(), []);
  t.diagnostic(
    `SIGTERM under 24 workers: ${result.completed} requests answered (${result.completedAfterMark} after the ` +
      `signal), handled ${counters.handled}, lost 0; refused new connections after ${ms(refusedAfter)} ms; ` +
      `exit 0 after ${ms(took)} s (deadline ${DEADLINE} s); never read: ${JSON.stringify(result.errors)}`,
  );
});

/**
 * The end of a rolling restart: the load runs on the replacements for half a second and stops, then each
 * replacement is stopped (exit 0) and its count of handled requests added to `handled`.
 */
/** SIGTERMs an instance, waits (at most 10 s) for it to exit 0, and records how many requests it handled. */
async function stopInstance(s: ServerChild, what: string, handled: number[]): Promise<void> {
  s.child.kill('SIGTERM');
  const exit = await within(s.exited, 10, `the ${what} instance exiting`);
  assert.equal(exit.code, 0, s.output().stderr);
  handled.push((await exitCounters(s)).handled);
}

async function finishRestart(
  load: Load,
  replacements: readonly ServerChild[],
  handled: number[],
): Promise<{ result: LoadResult; total: number }> {
  await new Promise((r) => setTimeout(r, 500));
  const result = await load.stop();
  for (const s of replacements) await stopInstance(s, 'new', handled);
  return { result, total: handled.reduce((a, b) => a + b, 0) };
}

/** Node's own listen() takes `reusePort` from 22.12 and 23.1 on. */
const NODE_REUSE_PORT = ((): boolean => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
})();

test('rolling restart of two reusePort instances under load loses no request', async (t) => {
  if (!native.nativeAvailable() && !NODE_REUSE_PORT) {
    t.skip("reusePort needs loopwork's native addon on this Node");
    return;
  }
  const migrate = setSysctl(t, 'net.ipv4.tcp_migrate_req', '1');
  if (!migrate.set) {
    t.diagnostic(
      `zero loss on new connections NOT checked: ${migrate.why}; a closing reuseport listener resets the ` +
        'connections queued on it (set net.ipv4.tcp_migrate_req=1 for zero-loss rolling restarts)',
    );
  }
  const first = await startServer(t, { signals: true, reusePort: true, shutdownTimeout: 5 });
  const port = first.port;
  const second = await startServer(t, { signals: true, reusePort: true, port, shutdownTimeout: 5 });
  const load = startLoad(t, port, 16, true, ['/ok', '/ok', '/slow?ms=100']);
  await load.started;
  const servers: ServerChild[] = [first, second];
  const handled: number[] = [];
  const restartTimes: number[] = [];
  // Replace each instance in turn: start the new one on the shared port, then drain the old one.
  for (const old of [first, second]) {
    await new Promise((r) => setTimeout(r, 500));
    const fresh = await startServer(t, { signals: true, reusePort: true, port, shutdownTimeout: 5 });
    servers.push(fresh);
    const t0 = performance.now();
    await stopInstance(old, 'old', handled);
    restartTimes.push(performance.now() - t0);
  }
  const { result, total } = await finishRestart(load, servers.slice(2), handled);
  assert.equal(result.lost, 0, `lost: ${JSON.stringify(result.errors)}`);
  // A request handled twice (once by a dying instance whose answer was cut, once resent) would show here.
  assert.equal(result.completed, total, 'every request any instance handled was answered once');
  if (migrate.set) {
    // Every connection the kernel completed was served: none reset in a closing listener's queue, none accepted
    // and then closed unread by a draining instance.
    assert.equal(result.retriedOnNew, 0, `failed on new connections: ${JSON.stringify(result.retriedFor)}`);
    // Nor any request on a kept-alive connection that a draining instance closed as idle.
    assert.equal(result.retried, 0, `resent: ${JSON.stringify(result.retriedFor)}`);
  }
  for (const s of servers) assert.deepEqual(s.errors(), []);
  t.diagnostic(
    `rolling restart (2 instances, each replaced under 16 workers, tcp_migrate_req ` +
      `${migrate.set ? '1' : 'unset'}): ${result.completed} requests answered, handled ${handled.join(' + ')} = ` +
      `${total}; lost 0; resent ${result.retried} that no instance had read (${JSON.stringify(result.retriedFor)}); ` +
      `old instances drained in ${restartTimes.map((x) => ms(x)).join(', ')} ms`,
  );
});

test('rolling restart of two instances behind nginx under load: no request fails, every instance exits 0', async (t) => {
  const nginx = findNginx();
  if (nginx === null) {
    t.skip('nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)');
    return;
  }
  const first = await startServer(t, { signals: true, shutdownTimeout: 5 });
  const second = await startServer(t, { signals: true, shutdownTimeout: 5 });
  const proxy = await startNginx(t, nginx, [first.port, second.port]);
  // No client-side resend: nginx must carry every request to an instance that answers it.
  const load = startLoad(t, proxy.port, 16, false, ['/ok', '/ok', '/slow?ms=100']);
  await load.started;
  const servers: ServerChild[] = [first, second];
  const handled: number[] = [];
  const restartTimes: number[] = [];
  // Stop each instance in turn (the other carries the load meanwhile), then start its replacement on its port.
  for (const old of [first, second]) {
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    await stopInstance(old, 'old', handled);
    servers.push(await startServer(t, { signals: true, shutdownTimeout: 5, port: old.port }));
    restartTimes.push(performance.now() - t0);
  }
  const { result, total } = await finishRestart(load, servers.slice(2), handled);
  assert.deepEqual(result.errors, {}, 'no request failed at the client');
  assert.equal(result.lost, 0);
  assert.equal(result.completed, total, 'every request an instance handled was answered once');
  assert.ok(handled[2]! > 0 && handled[3]! > 0, `the replacements served: ${handled.join(', ')}`);
  for (const s of servers) assert.deepEqual(s.errors(), []);
  // nginx logs each upstream failure it went past: refused (an instance down or being replaced), or another (a
  // kept-alive connection a draining instance closed before reading the request on it).
  const failures = proxy
    .errorLog()
    .split('\n')
    .filter((l) => l.includes('upstream'));
  const refusedByUpstream = failures.filter((l) => l.includes('Connection refused')).length;
  if (process.env.SHOW_NGINX === '1') console.log(failures.filter((l) => !l.includes('Connection refused')).join('\n'));
  t.diagnostic(
    `behind nginx (2 instances, each stopped and replaced under 16 workers): ${result.completed} requests ` +
      `answered, handled ${handled.join(' + ')} = ${total}; failed 0; nginx sent to the other instance ` +
      `${refusedByUpstream} refused and ${failures.length - refusedByUpstream} closed unread; each stopped and ` +
      `replaced in ${restartTimes.map((x) => ms(x)).join(', ')} ms`,
  );
});
