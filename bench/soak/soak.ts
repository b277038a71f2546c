// Soak runs (not in CI): the reliability app (test/reliability/fixtures) under mixed load for minutes, with faults
// and hostile peers injected all along, sampled every 10 s. It prints the figures, and exits 1 when anything
// acknowledged was lost, a request was cut, the server died, or its descriptors or memory did not come back.
//
//   node --expose-gc --conditions=loopwork-source --import tsx bench/soak/soak.ts [--minutes 10] [--workers 16]
//   node --expose-gc --conditions=loopwork-source --import tsx bench/soak/soak.ts --scenario restarts
//
// Scenarios:
//   faults    (default) one instance; load (fast, slow and 256 KiB replies) plus, 4 at a time without pause:
//             hostile requests, random bytes on every protocol, throwing handlers and protocols, unhandled
//             rejections, resets mid-body/reply/handler, slowloris batches, silent and garbage TLS clients,
//             clients that stop reading a large reply; a client counting acknowledged writes throughout.
//   restarts  two reusePort instances, one replaced every 20 s, under load with idempotent resends of requests
//             no instance read: every request handled by any instance must have been answered once.
import { parseArgs } from 'node:util';
import tls from 'node:tls';
import { SECRET } from '../../test/reliability/fixtures/app.js';
import { certs } from '../../test/reliability/helpers/certs.js';
import { startServer } from '../../test/reliability/helpers/child.js';
import type { ServerChild, ServerStats } from '../../test/reliability/helpers/child.js';
import { CORPUS } from '../../test/reliability/helpers/http-corpus.js';
import { startLoad } from '../../test/reliability/helpers/load.js';
import { mib } from '../../test/reliability/helpers/measure.js';
import type { Cleanup } from '../../test/reliability/helpers/measure.js';
import { RawClient, exchange, statuses } from '../../test/reliability/helpers/raw-client.js';

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    workers: { type: 'string', default: '16' },
    scenario: { type: 'string', default: 'faults' },
  },
});
const MINUTES = Number(opt.minutes);
const WORKERS = Number(opt.workers);
const STARTED = performance.now();
const END = STARTED + MINUTES * 60_000;

const cleanups: (() => unknown)[] = [];
const scope: Cleanup = { after: (fn) => void cleanups.push(fn) };
const failures: string[] = [];
const check = (ok: boolean, what: string): void => {
  if (!ok) failures.push(what);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const H = 'Host: x\r\n';

function line(s: ServerStats, extra: string): string {
  return (
    `rss ${mib(s.rss).toFixed(1)} MiB, heap ${mib(s.heapUsed).toFixed(1)} MiB, fds ${s.fds}, ` +
    `active ${s.active}, accepted ${s.accepted}, ${extra}`
  );
}

// ---- scenario: faults ------------------------------------------------------------------------------------------

type Fault = () => Promise<void>;

async function faults(): Promise<void> {
  const m = certs();
  const server = await startServer(scope, {
    messages: true,
    accessLog: false,
    http: { headersTimeout: 2, keepAliveTimeout: 5 },
    ...(m === null ? {} : { tls: { certfile: m.server.certfile, keyfile: m.server.keyfile, handshakeTimeout: 1 } }),
  });
  const ctx = m === null ? null : tls.createSecureContext({ ca: m.ca.cert });
  const base = await server.stats();
  const load = startLoad(scope, server.port, WORKERS, false, ['/ok', '/ok', '/slow?ms=20', `/big?size=${256 * 1024}`], {
    progress: true,
  });
  await load.started;

  const injected = new Map<string, number>();
  let expectedErrors = 0;
  const random = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => (Math.random() * 256) | 0));
  const table: [string, Fault][] = [
    [
      'hostile HTTP request',
      async () => {
        const h = CORPUS[(Math.random() * CORPUS.length) | 0]!;
        const r = await exchange(server.port, h.data, 10);
        check(r.closed && statuses(r.received)[0] === h.status, `hostile ${h.name}: ${statuses(r.received)}`);
      },
    ],
    ['random bytes (HTTP)', async () => void (await exchange(server.port, random(512), 10))],
    ['random bytes (RESP)', async () => void (await exchange(server.respPort!, random(512), 10))],
    ['random bytes (lines)', async () => void (await exchange(server.linesPort!, random(512), 10))],
    ['random bytes (frames)', async () => void (await exchange(server.framesPort!, random(512), 10))],
    [
      'handler throws',
      async () => {
        expectedErrors++;
        const r = await exchange(server.port, `GET /throw HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 10);
        check(statuses(r.received)[0] === 500 && !r.received.includes(SECRET), 'throwing handler: 500, no detail');
      },
    ],
    [
      'unhandled rejection',
      async () => {
        expectedErrors++;
        await exchange(server.port, `GET /reject HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 10);
      },
    ],
    [
      'RESP handler throws',
      async () => {
        expectedErrors++;
        const r = await exchange(server.respPort!, 'BOOM\r\n', 10);
        check(r.received.toString() === '-ERR internal error\r\n', 'BOOM answered');
      },
    ],
    [
      'protocol callback throws',
      async () => {
        expectedErrors++;
        await exchange(server.rawPort!, 'boom', 10, { halfClose: false });
      },
    ],
    [
      'reset mid-reply',
      async () => {
        const c = await RawClient.connect(server.port);
        c.write(`GET /big?size=${16 << 20} HTTP/1.1\r\n${H}\r\n`);
        await c.atLeast(64 * 1024);
        c.reset();
      },
    ],
    [
      'reset mid-body',
      async () => {
        const c = await RawClient.connect(server.port);
        c.write(`POST /echo HTTP/1.1\r\n${H}Content-Length: 100000\r\n\r\n${'a'.repeat(3000)}`);
        await sleep(10);
        c.reset();
      },
    ],
    [
      'reset mid-handler',
      async () => {
        const c = await RawClient.connect(server.port);
        c.write(`GET /slow?ms=50 HTTP/1.1\r\n${H}\r\n`);
        await sleep(10);
        c.reset();
      },
    ],
    [
      'slowloris batch (50)',
      async () => {
        const cs = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(server.port)));
        const head = `GET /ok HTTP/1.1\r\n${H}X-Slow: ${'s'.repeat(300)}`;
        for (let i = 0; cs.some((c) => !c.ended) && i < 200; i++) {
          for (const c of cs) c.write(head[i % head.length]!);
          await sleep(50);
        }
        check(
          cs.every((c) => c.ended),
          'slowloris cut',
        );
        for (const c of cs) c.destroy();
      },
    ],
    [
      'TLS silent and garbage clients',
      async () => {
        if (server.tlsPort === undefined) return;
        const cs = await Promise.all(Array.from({ length: 10 }, () => RawClient.connect(server.tlsPort!)));
        cs.forEach((c, i) => i % 2 === 0 && c.write(random(100)));
        const ended = await Promise.all(cs.map((c) => c.endedWithin(5)));
        check(ended.every(Boolean), 'hostile TLS clients dropped');
        for (const c of cs) c.destroy();
      },
    ],
    [
      'TLS request',
      async () => {
        if (ctx === null || server.tlsPort === undefined) return;
        const s = tls.connect({ host: '127.0.0.1', port: server.tlsPort, secureContext: ctx, servername: 'localhost' });
        await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
        s.end(`GET /ok HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString('latin1')));
        await new Promise<void>((resolve) => s.once('close', () => resolve()));
        check(got.startsWith('HTTP/1.1 200 OK'), 'TLS request served');
      },
    ],
    [
      'client stops reading a large reply',
      async () => {
        const c = await RawClient.connect(server.port);
        c.socket.pause();
        c.write(`GET /big?size=${256 << 20} HTTP/1.1\r\n${H}\r\n`);
        await sleep(2000);
        c.destroy();
      },
    ],
  ];

  // A client counting acknowledged writes all along.
  let acks = 0;
  let ackStop = false;
  const acker = (async () => {
    const c = await RawClient.connect(server.port);
    while (!ackStop) {
      c.write(`POST /count HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`);
      const r = await c.response();
      if (r.status === 200 && (JSON.parse(r.body.toString()) as { n: number }).n === acks + 1) acks++;
      else failures.push(`acknowledged write out of sequence: ${r.status} ${r.body.toString()}`);
      await sleep(5);
    }
    c.destroy();
  })();

  let stop = false;
  const injectors = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const [name, fault] = table[(Math.random() * table.length) | 0]!;
      try {
        await fault();
      } catch (err) {
        failures.push(`${name}: ${String(err)}`);
      }
      injected.set(name, (injected.get(name) ?? 0) + 1);
    }
  });

  const t0 = performance.now();
  console.log(`soak: started in ${((t0 - STARTED) / 1000).toFixed(1)} s`);
  let peakRss = base.rss;
  // The first sample is taken after 10 s of load: what grows after it is what a leak would look like.
  let warm: ServerStats | null = null;
  console.log(`soak: faults scenario, ${MINUTES} min, ${WORKERS} workers; start: ${line(base, '')}`);
  while (performance.now() < END) {
    await sleep(Math.min(10_000, Math.max(0, END - performance.now())));
    const s = await server.stats();
    warm ??= s;
    peakRss = Math.max(peakRss, s.rss);
    const p = load.latest();
    const secs = (performance.now() - t0) / 1000;
    const faultsSoFar = [...injected.values()].reduce((a, b) => a + b, 0);
    console.log(
      `${secs.toFixed(0).padStart(5)} s  ${line(s, `requests ${p?.completed ?? 0} (${((p?.completed ?? 0) / secs).toFixed(0)}/s), ` + `faults ${faultsSoFar}, acked ${acks}`)}`,
    );
    if (server.child.exitCode !== null) break;
  }
  stop = true;
  await Promise.all(injectors);
  ackStop = true;
  await acker;
  const result = await load.stop();
  await sleep(3000);
  const end = await server.stats();
  const seconds = (performance.now() - t0) / 1000;
  const errors = server.errors();

  check(server.child.exitCode === null, 'the server is alive');
  check(result.lost === 0, `load: ${result.lost} requests cut or wrong: ${JSON.stringify(result.errors)}`);
  check(end.acked === acks, `acknowledged writes: client ${acks}, server ${end.acked}`);
  check(end.active === 0, `connections left: ${end.active}`);
  check(end.fds === base.fds, `descriptors: ${base.fds} at start, ${end.fds} at the end`);
  check(errors.length === expectedErrors, `error lines: ${errors.length} for ${expectedErrors} error faults`);
  check(end.heapUsed - base.heapUsed < 16 * 1024 * 1024, `heap grew ${mib(end.heapUsed - base.heapUsed)} MiB`);

  console.log(`\nsoak (faults): ${seconds.toFixed(0)} s`);
  console.log(
    `  load: ${result.completed} requests (${(result.completed / seconds).toFixed(0)}/s), lost ${result.lost}, ` +
      `errors ${JSON.stringify(result.errors)}`,
  );
  console.log(`  acknowledged writes: ${acks} (server: ${end.acked})`);
  console.log(`  faults injected: ${[...injected.entries()].map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  console.log(`  error log lines: ${errors.length} (expected ${expectedErrors})`);
  console.log(
    `  server: rss ${mib(base.rss).toFixed(1)} → ${mib(end.rss).toFixed(1)} MiB (peak ${mib(peakRss).toFixed(1)}), ` +
      `heap ${mib(base.heapUsed).toFixed(1)} → ${mib(end.heapUsed).toFixed(1)} MiB ` +
      `(${mib(end.heapUsed - (warm ?? base).heapUsed).toFixed(2)} MiB since the first sample), ` +
      `fds ${base.fds} → ${end.fds}`,
  );
}

// ---- scenario: restarts ----------------------------------------------------------------------------------------

async function restarts(): Promise<void> {
  const config = { signals: true, reusePort: true, shutdownTimeout: 5, accessLog: false };
  const first = await startServer(scope, config);
  const port = first.port;
  const live: ServerChild[] = [first, await startServer(scope, { ...config, port })];
  const load = startLoad(scope, port, WORKERS, true, ['/ok', '/ok', '/slow?ms=50'], { progress: true });
  await load.started;
  let handled = 0;
  let restartsDone = 0;
  const t0 = performance.now();
  console.log(`soak: restarts scenario, ${MINUTES} min, ${WORKERS} workers, port ${port}`);
  while (performance.now() < END) {
    await sleep(Math.min(20_000, Math.max(0, END - performance.now())));
    const old = live.shift()!;
    live.push(await startServer(scope, { ...config, port }));
    old.child.kill('SIGTERM');
    const exit = await old.exited;
    check(exit.code === 0, `instance exited ${exit.code}`);
    handled += (JSON.parse((await old.line(/^EXIT /)).slice(5)) as { handled: number }).handled;
    restartsDone++;
    const p = load.latest();
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `${secs.toFixed(0).padStart(5)} s  restarts ${restartsDone}, requests ${p?.completed ?? 0}, ` +
        `resent ${p?.retried ?? 0}, lost ${p?.lost ?? 0}`,
    );
  }
  const result = await load.stop();
  for (const s of live) {
    s.child.kill('SIGTERM');
    await s.exited;
    handled += (JSON.parse((await s.line(/^EXIT /)).slice(5)) as { handled: number }).handled;
  }
  check(result.lost === 0, `lost ${result.lost}: ${JSON.stringify(result.errors)}`);
  check(result.completed === handled, `answered ${result.completed}, handled ${handled}`);
  console.log(`\nsoak (restarts): ${((performance.now() - t0) / 1000).toFixed(0)} s, ${restartsDone} restarts`);
  console.log(
    `  ${result.completed} requests answered, ${handled} handled, lost ${result.lost}, resent ${result.retried} ` +
      `never read by any instance (${JSON.stringify(result.retriedFor)})`,
  );
}

try {
  if (opt.scenario === 'restarts') await restarts();
  else await faults();
} catch (err) {
  failures.push(String((err as Error).stack ?? err));
} finally {
  for (const fn of cleanups) await fn();
}
if (failures.length > 0) {
  console.log(`\nFAILED (${failures.length}):`);
  for (const f of [...new Set(failures)].slice(0, 30)) console.log(`  ${f}`);
  process.exit(1);
}
console.log('\nOK: nothing lost, nothing leaked');
process.exit(0);
