// HTTP hello-world JSON: loopwork's service against fastify 5 and plain node:http, loaded by wrk (-t1 -c100, no
// pipelining) and by autocannon (-c 100 -p 10). Server CPU per request from /proc; the client's own CPU from
// the shell that waited for it (cutime + cstime).
import { existsSync } from 'node:fs';
import {
  SystemFailure,
  againstServer,
  childCpuSecondsFromStat,
  cpuSeconds,
  freePort,
  runProcess,
  startProcess,
} from '../lib/proc.mjs';
import { loopworkArgv, nodeArgv } from '../lib/systems.mjs';

/** Runs argv under a shell that prints its children's CPU time (from /proc/$$/stat) on stderr afterwards. */
function withChildCpu(argv) {
  const script = '"$@"; rc=$?; echo "CHILDSTAT $(cat /proc/$$/stat)" >&2; exit $rc';
  return ['sh', '-c', script, 'sh', ...argv];
}

function clientCpuPct(stderr, seconds) {
  const line = stderr.split('\n').find((l) => l.startsWith('CHILDSTAT '));
  return line ? (childCpuSecondsFromStat(line.slice(10)) / seconds) * 100 : null;
}

const usOf = (v, unit) => Number(v) * { us: 1, ms: 1000, s: 1e6 }[unit];

function parseWrk(out) {
  const reqs = /(\d+) requests in ([\d.]+)(us|ms|s)/.exec(out);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    return m ? usOf(m[1], m[2]) : null;
  };
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (!reqs || !rate) throw new Error(`cannot parse wrk output: ${out.slice(-300)}`);
  return {
    requests: Number(reqs[1]),
    seconds: usOf(reqs[2], reqs[3]) / 1e6,
    rate: Number(rate[1]),
    p50us: pct(50),
    p99us: pct(99),
    errors: (errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
  };
}

function parseAutocannon(out) {
  const line = out
    .split('\n')
    .reverse()
    .find((l) => l.trim().startsWith('{'));
  if (!line) throw new Error(`cannot parse autocannon output: ${out.slice(-300)}`);
  const j = JSON.parse(line);
  return {
    requests: j.requests.total,
    seconds: j.duration,
    rate: j.requests.total / j.duration,
    p50us: j.latency.p50 * 1000,
    p99us: j.latency.p99 * 1000,
    errors: j.errors + j.timeouts + j.non2xx,
  };
}

const AUTOCANNON = 'node_modules/autocannon/autocannon.js';

const clients = {
  wrk: {
    label: 'wrk -t1 -c100',
    requires: ['wrk'],
    argv: (url, secs, latency) => ['wrk', '-t1', '-c100', `-d${secs}s`, ...(latency ? ['--latency'] : []), url],
    parse: parseWrk,
  },
  autocannon: {
    label: 'autocannon -c 100 -p 10',
    requires: ['autocannon'],
    argv: (url, secs) => [...nodeArgv(AUTOCANNON), '-c', '100', '-p', '10', '-d', String(secs), '-j', '-n', url],
    parse: parseAutocannon,
  },
};

async function httpSample(system, ctx, client) {
  if (client === clients.autocannon && !existsSync(`${ctx.root}${AUTOCANNON}`)) {
    throw new SystemFailure('missing', 'ANCHOR MISSING: autocannon (root devDependency) is not installed');
  }
  const port = String(await freePort());
  const url = `http://127.0.0.1:${port}/`;
  const serverArgv = [...ctx.pin.server, ...system.argv(port)];
  const server = await startProcess(serverArgv, { cwd: ctx.root });
  return againstServer(server, async () => {
    const secs = ctx.smoke ? 1 : (ctx.duration ?? 3);
    await runProcess([...ctx.pin.client, ...client.argv(url, 1, false)], { cwd: ctx.root }); // warm-up
    const clientArgv = [...ctx.pin.client, ...client.argv(url, secs, true)];
    const cpu0 = cpuSeconds(server.pid);
    const t0 = performance.now();
    const { stdout, stderr } = await runProcess(withChildCpu(clientArgv), { cwd: ctx.root });
    const wall = (performance.now() - t0) / 1000;
    const cpu1 = cpuSeconds(server.pid);
    const r = client.parse(stdout);
    const serverCpuSeconds = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
    return {
      value: r.rate,
      ...r,
      serverCpuSeconds,
      serverCpuPct: serverCpuSeconds === null ? null : (serverCpuSeconds / wall) * 100,
      serverCpuUsPerReq: serverCpuSeconds === null || !r.requests ? null : (serverCpuSeconds / r.requests) * 1e6,
      clientCpuPct: clientCpuPct(stderr, wall),
      command: serverArgv,
      clientCommand: clientArgv,
    };
  });
}

export default function workloads(ctx) {
  const systems = [
    {
      id: 'loopwork',
      label: 'loopwork service',
      role: 'loopwork',
      requires: ['tsx'],
      argv: (port) => loopworkArgv(ctx, 'bench/http/loopwork-hello.ts', port),
    },
    {
      id: 'fastify',
      label: 'fastify 5',
      role: 'anchor',
      requires: ['fastify'],
      argv: (port) => nodeArgv('bench/http/fastify-hello.mjs', port),
    },
    {
      id: 'node-http',
      label: 'node:http',
      role: 'anchor',
      argv: (port) => nodeArgv('bench/http/node-hello.mjs', port),
    },
  ];
  return Object.entries(clients).map(([name, client]) => ({
    id: `http/hello-${name}`,
    title: `HTTP hello-world JSON, ${client.label}`,
    metric: { unit: 'req/s', better: 'higher' },
    smoke: true,
    systems: systems.map((s) => ({ ...s, requires: [...(s.requires ?? []), ...client.requires] })),
    goals: [
      { vs: 'fastify', op: '>=', ratio: 1.5, stretch: 2, text: '≥ 1.5× fastify (stretch 2×)', source: 'BENCH.md' },
    ],
    compare: ['node-http'],
    sample: (system, c) => httpSample(system, c, client),
  }));
}
