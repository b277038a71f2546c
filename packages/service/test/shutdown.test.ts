// Graceful shutdown under load, in a child process: with clients hammering the app, SIGTERM; every request the
// app started handling gets its full response, new connections are refused, and the process exits 0 within the
// deadline. Also: an unhandled promise rejection is logged and the app goes on serving.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { startFixture } from './helpers.js';

interface Tally {
  completed: number;
  afterSignal: number;
  errors: Map<string, number>;
}

function get(agent: http.Agent, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => (res.complete ? resolve({ status: res.statusCode!, body }) : reject(new Error('cut'))));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

test('SIGTERM under load: nothing accepted is lost, new connections are refused, exit 0', async (t) => {
  const deadline = 5;
  const app = startFixture(t, 'shutdown-app.ts', [], { DEADLINE: String(deadline) });
  const [, url] = await app.line(/ADDRESS (\S+)/);

  // An unhandled rejection is one log line, and the app keeps serving.
  const agent0 = new http.Agent({ keepAlive: false });
  assert.equal((await get(agent0, `${url}/fire`)).status, 200);
  await app.line(/"msg":"Unhandled promise rejection"/);
  assert.match(app.stdout, /nobody awaits me/);

  const tally: Tally = { completed: 0, afterSignal: 0, errors: new Map() };
  let signalled = false;
  const worker = async (i: number): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    for (;;) {
      try {
        const r = await get(agent, `${url}/${i % 3 === 0 ? 'slow' : 'fast'}`);
        assert.equal(r.status, 200);
        const body = JSON.parse(r.body) as { ok: boolean; pad?: string };
        assert.equal(body.ok, true);
        if (i % 3 === 0) assert.equal(body.pad?.length, 20_000);
        tally.completed++;
        if (signalled) tally.afterSignal++;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        tally.errors.set(code, (tally.errors.get(code) ?? 0) + 1);
        if (signalled) return;
      }
    }
  };
  const workers = Array.from({ length: 24 }, (_, i) => worker(i));
  await new Promise((r) => setTimeout(r, 700));
  const t0 = performance.now();
  signalled = true;
  app.child.kill('SIGTERM');
  // While the slow requests drain, the listener is already closed.
  await new Promise((r) => setTimeout(r, 100));
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(Number(new URL(url!).port), '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED');
  await Promise.all(workers);
  const exit = await app.exited;
  const took = (performance.now() - t0) / 1000;
  const handled = Number(/HANDLED (\d+)/.exec(app.stdout)?.[1]);
  assert.equal(exit.code, 0, app.stderr);
  assert.ok(took < deadline, `exited after ${took}s`);
  assert.ok(tally.completed > 50, `only ${tally.completed} requests done`);
  assert.ok(tally.afterSignal > 0, 'requests in flight at the signal finished after it');
  // Every request the app started handling was answered in full: none was lost.
  assert.equal(tally.completed, handled);
  for (const code of tally.errors.keys()) {
    assert.ok(['ECONNREFUSED', 'ECONNRESET', 'socket hang up', 'EPIPE'].includes(code), `unexpected ${code}`);
  }
  assert.match(app.stdout, /"msg":"received SIGTERM: draining"/);
  assert.match(app.stdout, /"msg":"closed","clean":true|"clean":true,"msg":"closed"/);
});

test('a second SIGTERM (during shutdownDelay) cuts the request in flight at once, and the exit code is 1', async (t) => {
  const app = startFixture(t, 'shutdown-app.ts', [], { DEADLINE: '10', SHUTDOWN_DELAY: '3' });
  const [, url] = await app.line(/ADDRESS (\S+)/);
  const agent = new http.Agent({ keepAlive: false });
  t.after(() => agent.destroy());
  const slow = get(agent, `${url}/slow`).then(
    () => 'answered',
    (err: Error) => err.message,
  );
  await new Promise((r) => setTimeout(r, 100));
  const t0 = performance.now();
  app.child.kill('SIGTERM');
  await app.line(/received SIGTERM: draining/);
  app.child.kill('SIGTERM');
  assert.notEqual(await slow, 'answered');
  const exit = await app.exited;
  // Not after the 3 s delay: the second signal ends it; and what it cut did not finish on its own.
  assert.ok((performance.now() - t0) / 1000 < 2, 'the second signal ends the shutdown delay');
  assert.equal(exit.code, 1, app.stdout);
  assert.match(app.stdout, /"clean":false/);
});

test('workers: 2 processes serve one port; SIGTERM to the primary drains them and exits 0', async (t) => {
  const app = startFixture(t, 'cluster-app.ts');
  const [, url, primaryPid] = await app.line(/ADDRESS (\S+) PRIMARY (\d+)/);
  const pids = new Set<number>();
  const agent = new http.Agent({ keepAlive: false });
  for (let i = 0; i < 40 && pids.size < 2; i++) {
    const r = await get(agent, `${url}/pid`);
    pids.add((JSON.parse(r.body) as { pid: number }).pid);
  }
  assert.equal(pids.size, 2, `answered by ${[...pids].join(', ')}`);
  assert.ok(!pids.has(Number(primaryPid)), 'the primary serves nothing itself');
  app.child.kill('SIGTERM');
  const exit = await app.exited;
  assert.equal(exit.code, 0, app.stderr);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/);
});

test('workers: a crashed worker is logged once by the primary (its pid as `worker`, not a second `pid` key) and replaced', async (t) => {
  const app = startFixture(t, 'cluster-app.ts', [], { LOG: '1', LOOPWORK_LOG_JSON: '1' });
  const [, url, primaryPid] = await app.line(/ADDRESS (\S+) PRIMARY (\d+)/);
  const agent = new http.Agent({ keepAlive: false });
  const victim = (JSON.parse((await get(agent, `${url}/pid`)).body) as { pid: number }).pid;
  process.kill(victim, 'SIGKILL');
  const [line] = await app.line(/^.*"msg":"cluster worker exited".*$/m);
  assert.equal(line.match(/"pid":/g)?.length, 1, line);
  const fields = JSON.parse(line) as { pid: number; worker: number; signal: string };
  assert.deepEqual([fields.pid, fields.worker, fields.signal], [Number(primaryPid), victim, 'SIGKILL']);
  // Its replacement serves beside the other worker.
  await app.line(/("msg":"listening on[\s\S]*){3}/);
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0, app.stderr);
});
