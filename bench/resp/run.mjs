#!/usr/bin/env node
// RESP benchmark: `redis-benchmark -t get,set -P 16` against the flagship's Redis-protocol port and against a real
// redis-server, side by side in one run, with the ratio (goal: loopwork ≥ 0.5× redis-server).
//   node bench/resp/run.mjs [--rounds 3] [--requests 1000000] [--pipeline 16] [--clients 50] [--src]
// Each sample is a fresh server pinned to core 0 (`taskset -c 0`) with redis-benchmark on core 1; the systems are
// interleaved (A B, then B A, …). SET is measured on a fresh server; GET after a SET pass has stored the key, so that
// GET finds a value. Server CPU per request comes from /proc/<pid>/stat around each measured run; the client's CPU
// too (≥ 90 % means redis-benchmark saturated its core, and the req/s is a lower bound).
// Prints a table and one JSON line with every sample. Also registered with the harness (`npm run bench -- resp`,
// see ./workloads.mjs), which uses the same `respSample`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureRequirements, pinning, root } from '../lib/env.mjs';
import {
  againstServer,
  childCpuSecondsFromStat,
  cpuSeconds,
  freePort,
  runProcess,
  startProcess,
} from '../lib/proc.mjs';
import { median } from '../lib/stats.mjs';
import { loopworkArgv } from '../lib/systems.mjs';

/** The flagship serving RESP on `port` (and HTTP on a free port; no TLS; its state in a temporary directory). */
function flagshipArgv(ctx, port, stateDir) {
  return loopworkArgv(
    ctx,
    'apps/examples/src/flagship.ts',
    '--port',
    '0',
    '--resp-port',
    String(port),
    '--no-tls',
    '--state-dir',
    stateDir,
    '--log-level',
    'warn',
  );
}

/** The systems: the flagship and redis-server, each a command line and the stdout line that says it is ready. */
export function respSystems(ctx) {
  return [
    {
      id: 'loopwork-kv',
      label: 'loopwork flagship (RESP)',
      role: 'loopwork',
      requires: ['tsx', 'redis-benchmark'],
      ready: /^\s+resp\s+tcp:\/\//,
      argv: (port, stateDir) => flagshipArgv(ctx, port, stateDir),
    },
    {
      id: 'redis-server',
      label: 'redis-server',
      role: 'anchor',
      requires: ['redis-server', 'redis-benchmark'],
      ready: /Ready to accept connections/,
      argv: (port) => [
        'redis-server',
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
    },
  ];
}

/** Runs argv under a shell that prints its children's CPU time (from /proc/$$/stat) on stderr afterwards. */
function withChildCpu(argv) {
  const script = '"$@"; rc=$?; echo "CHILDSTAT $(cat /proc/$$/stat)" >&2; exit $rc';
  return ['sh', '-c', script, 'sh', ...argv];
}

/** redis-benchmark's `--csv` line of one test: `"SET","123456.79",…` → requests per second. */
function parseCsv(out, test) {
  for (const line of out.split('\n')) {
    const cells = line.split(',').map((c) => c.replace(/^"|"$/g, ''));
    if (cells[0] === test && Number(cells[1]) > 0) {
      return { rate: Number(cells[1]), p50ms: Number(cells[4]) || null, p99ms: Number(cells[6]) || null };
    }
  }
  throw new Error(`cannot parse redis-benchmark output for ${test}: ${out.slice(-300)}`);
}

function benchmarkArgv(opt, port, test, requests) {
  return [
    'redis-benchmark',
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-t',
    test.toLowerCase(),
    '-P',
    String(opt.pipeline),
    '-c',
    String(opt.clients),
    '-n',
    String(requests),
    '--csv',
  ];
}

/**
 * One sample of `test` ('SET' or 'GET') against a fresh server of `system`.
 *
 * @param system - one of `respSystems()`.
 * @param ctx - `{ root, pin: {server, client}, dist }`.
 * @param opt - `{ test, requests, pipeline, clients }`.
 */
export async function respSample(system, ctx, opt) {
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), 'loopwork-bench-resp-'));
  const serverArgv = [...ctx.pin.server, ...system.argv(port, stateDir)];
  try {
    const server = await startProcess(serverArgv, { cwd: ctx.root, ready: system.ready });
    return await againstServer(server, async () => {
      // Warm-up (the JIT, the connections' buffers); for GET it also stores the key GET then reads.
      const warm = Math.max(50000, Math.round(opt.requests / 10));
      await runProcess([...ctx.pin.client, ...benchmarkArgv(opt, port, 'SET', warm)], { cwd: ctx.root });
      if (opt.test === 'GET') {
        await runProcess([...ctx.pin.client, ...benchmarkArgv(opt, port, 'GET', warm)], { cwd: ctx.root });
      }
      const clientArgv = [...ctx.pin.client, ...benchmarkArgv(opt, port, opt.test, opt.requests)];
      const cpu0 = cpuSeconds(server.pid);
      const t0 = performance.now();
      const { stdout, stderr } = await runProcess(withChildCpu(clientArgv), { cwd: ctx.root });
      const wall = (performance.now() - t0) / 1000;
      const cpu1 = cpuSeconds(server.pid);
      const r = parseCsv(stdout, opt.test);
      const childLine = stderr.split('\n').find((l) => l.startsWith('CHILDSTAT '));
      const serverCpuSeconds = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null;
      return {
        value: r.rate,
        requests: opt.requests,
        p50us: r.p50ms === null ? undefined : r.p50ms * 1000,
        p99us: r.p99ms === null ? undefined : r.p99ms * 1000,
        serverCpuSeconds,
        serverCpuPct: serverCpuSeconds === null ? null : (serverCpuSeconds / wall) * 100,
        serverCpuUsPerReq: serverCpuSeconds === null ? null : (serverCpuSeconds / opt.requests) * 1e6,
        clientCpuPct: childLine ? (childCpuSecondsFromStat(childLine.slice(10)) / wall) * 100 : null,
        command: serverArgv,
        clientCommand: clientArgv,
      };
    });
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---- standalone ----------------------------------------------------------------------------------------------

async function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      requests: { type: 'string', default: '1000000' },
      pipeline: { type: 'string', default: '16' },
      clients: { type: 'string', default: '50' },
      src: { type: 'boolean', default: false },
    },
  });
  const env = ensureRequirements();
  const pin = pinning(env.have);
  const ctx = { root, pin, dist: !values.src };
  const opt = { requests: Number(values.requests), pipeline: Number(values.pipeline), clients: Number(values.clients) };
  const rounds = Number(values.rounds);
  console.log(
    `RESP: redis-benchmark -t get,set -P ${opt.pipeline} -c ${opt.clients} -n ${opt.requests}, ${rounds} rounds; ${pin.note}`,
  );
  const systems = respSystems(ctx);
  const samples = [];
  for (const test of ['SET', 'GET']) {
    for (let round = 0; round < rounds; round++) {
      const order = systems.map((_, i) => systems[(i + round) % systems.length]);
      for (const system of order) {
        const absent = system.requires.filter((r) => !env.have.has(r));
        const head = `  ${test} [${round + 1}/${rounds}] ${system.label.padEnd(26)}`;
        if (absent.length > 0) {
          console.log(`${head} MISSING: ${absent.join(', ')}`);
          continue;
        }
        try {
          const s = await respSample(system, ctx, { ...opt, test });
          samples.push({ test, system: system.id, round: round + 1, ...s });
          const client = s.clientCpuPct === null ? '' : `, client ${s.clientCpuPct.toFixed(0)} %`;
          const saturated = s.clientCpuPct !== null && s.clientCpuPct >= 90 ? ' SATURATED' : '';
          console.log(
            `${head} ${Math.round(s.value).toLocaleString('en-US').padStart(10)} req/s  ` +
              `server ${s.serverCpuUsPerReq?.toFixed(2) ?? '?'} CPU-µs/req (${s.serverCpuPct?.toFixed(0) ?? '?'} %)${client}${saturated}`,
          );
        } catch (e) {
          console.log(`${head} FAILED: ${(e?.message ?? String(e)).split('\n')[0]}`);
        }
      }
    }
  }
  const med = (test, system, key) => {
    const v = samples.filter((s) => s.test === test && s.system === system && s[key] != null).map((s) => s[key]);
    return v.length === 0 ? null : median(v);
  };
  const fmt = (v, digits = 0) => (v === null ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: digits }));
  console.log(`\n${'median'.padEnd(28)}${'SET req/s'.padStart(12)}${'GET req/s'.padStart(12)}   CPU-µs/req SET / GET`);
  for (const system of systems) {
    const cpu = `${fmt(med('SET', system.id, 'serverCpuUsPerReq'), 2)} / ${fmt(med('GET', system.id, 'serverCpuUsPerReq'), 2)}`;
    console.log(
      `${system.label.padEnd(28)}${fmt(med('SET', system.id, 'value')).padStart(12)}${fmt(med('GET', system.id, 'value')).padStart(12)}   ${cpu}`,
    );
  }
  const ratio = (test) => {
    const a = med(test, 'loopwork-kv', 'value');
    const b = med(test, 'redis-server', 'value');
    return a === null || b === null ? null : a / b;
  };
  const cpuRatio = (test) => {
    const a = med(test, 'loopwork-kv', 'serverCpuUsPerReq');
    const b = med(test, 'redis-server', 'serverCpuUsPerReq');
    return a === null || b === null || a === 0 ? null : b / a;
  };
  const rs = ratio('SET');
  const rg = ratio('GET');
  const show = (r) => (r === null ? '—' : `${r.toFixed(2)}×`);
  console.log(
    `${'loopwork ÷ redis-server'.padEnd(28)}${show(rs).padStart(12)}${show(rg).padStart(12)}   ` +
      `(by CPU per request: ${show(cpuRatio('SET'))} / ${show(cpuRatio('GET'))})`,
  );
  const met = rs !== null && rg !== null && rs >= 0.5 && rg >= 0.5;
  console.log(
    `goal ≥ 0.5× redis-server (issue 7): ${rs === null || rg === null ? 'not measured' : met ? 'MET' : 'not met'}`,
  );
  console.log(JSON.stringify({ bench: 'resp', opt, rounds, samples, ratio: { SET: rs, GET: rg } }));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.chdir(fileURLToPath(new URL('../..', import.meta.url)));
  await main();
}
