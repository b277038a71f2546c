// Echo benchmarks over TCP and Unix sockets: the uvloop benchmark's method with our own load client
// (echo-client.c, or client.mjs without a C compiler: see load-client.mjs), the server pinned to one core and the
// client to the other.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { againstServer, freePort, lastJson, runProcess, startProcess, withNofile } from '../lib/proc.mjs';
import { echoClient } from './load-client.mjs';
import { MODES, echoServer } from './systems.mjs';

const SIZES = { '1KiB': 1024, '10KiB': 10240, '100KiB': 102400 };
const CONNS = [1, 10, 100];
let unixSeq = 0;

/** One sample: start the server, run the client against it, stop the server. */
async function echoSample(system, ctx, { transport, size, conns, depth }) {
  const target =
    transport === 'unix'
      ? `unix:${join(tmpdir(), `loopwork-bench-${process.pid}-${unixSeq++}.sock`)}`
      : String(await freePort());
  const serverArgv = withNofile([...ctx.pin.server, ...system.argv(target)], 65536);
  const server = await startProcess(serverArgv, { cwd: ctx.root });
  const client = echoClient(ctx.root);
  const clientArgv = [
    ...ctx.pin.client,
    ...client.argv,
    ...['--target', target, '--size', String(size), '--conns', String(conns), '--depth', String(depth)],
    ...['--duration', String(ctx.smoke ? 0.5 : (ctx.duration ?? 2)), '--warmup', String(ctx.smoke ? 0.2 : 1)],
    ...['--server-pid', String(server.pid)],
  ];
  try {
    return await againstServer(server, async () => {
      const { stdout } = await runProcess(clientArgv, { cwd: ctx.root, timeoutMs: 120000 });
      const r = lastJson(stdout);
      if (!r) throw new Error(`client printed no result: ${stdout.slice(-200)}`);
      return { value: r.rate, ...r, client: client.name, command: serverArgv, clientCommand: clientArgv };
    });
  } finally {
    if (transport === 'unix') rmSync(target.slice(5), { force: true });
  }
}

/**
 * The goals of a row: those of issue 4 and BENCH.md, which take the uvloop echo benchmark's method, and so apply
 * where it measured: 10 connections (its published report: "1.0KiB, c 10", "10.0KiB, c 10", "100.0KiB, c 10"),
 * one request in flight on each (BENCH.md: "one request in flight per connection"). The 1- and 100-connection
 * rows and the pipelined ones (16 in flight) are measured and shown in RESULTS.md's details, without goals.
 */
function goalsFor(mode, conns, depth) {
  if (conns !== 10 || depth !== 1) return [];
  const lw = `loopwork-${mode}`;
  switch (mode) {
    case 'protocol':
      return [
        { system: lw, vs: 'uvloop-protocol', op: '>=', ratio: 1, text: '≥ uvloop', source: 'BENCH.md, issue 4' },
        { system: lw, vs: 'node-net', op: '>=', ratio: 0.95, text: '≥ 0.95× node:net', source: 'issue 4' },
      ];
    case 'buffered':
      return [
        { system: lw, vs: 'uvloop-buffered', op: '>=', ratio: 1, text: '≥ uvloop', source: 'BENCH.md (protocol mode)' },
      ];
    case 'streams':
      return [{ system: lw, vs: 'uvloop-streams', op: '>=', ratio: 1, text: '≥ uvloop streams', source: 'BENCH.md' }];
    default:
      return [];
  }
}

function echoWorkload(ctx, { transport, mode, sizeName, conns, depth = 1, tier }) {
  const impls = mode === 'protocol' ? ['loopwork', 'node-net', 'uvloop', 'asyncio'] : ['loopwork', 'uvloop', 'asyncio'];
  const systems = impls.map((impl) => echoServer(ctx, impl, mode));
  const pipelined = depth > 1 ? `-p${depth}` : '';
  const size = SIZES[sizeName];
  return {
    id: `net/${transport}-${mode}-${sizeName}-c${conns}${pipelined}`,
    title:
      `${transport === 'tcp' ? 'TCP' : 'Unix-socket'} echo, ${mode} mode, ${sizeName} messages, ${conns} connection${conns > 1 ? 's' : ''}` +
      (depth > 1 ? `, ${depth} requests in flight per connection` : ', one request in flight'),
    metric: { unit: 'req/s', better: 'higher' },
    smoke: tier === 'smoke',
    full: tier === 'full',
    systems,
    goals: goalsFor(mode, conns, depth),
    compare: mode === 'sock' ? systems.filter((s) => s.role === 'anchor').map((s) => s.id) : [],
    params: { transport, mode, size, conns, depth },
    sample: (system, c) => echoSample(system, c, { transport, size, conns, depth }),
  };
}

export default function workloads(ctx) {
  const list = [];
  for (const transport of ['tcp', 'unix']) {
    for (const mode of MODES) {
      for (const sizeName of Object.keys(SIZES)) {
        for (const conns of CONNS) {
          const at1k10 = sizeName === '1KiB' && conns === 10;
          let tier = 'full';
          if (at1k10 && (transport === 'tcp' || mode === 'protocol')) tier = 'smoke';
          else if (transport === 'tcp' && mode === 'protocol') tier = 'default';
          else if (
            conns === 10 &&
            sizeName === '100KiB' &&
            mode !== 'sock' &&
            (transport === 'tcp' || mode === 'protocol')
          )
            tier = 'default';
          list.push(echoWorkload(ctx, { transport, mode, sizeName, conns, tier }));
        }
      }
      for (const conns of [10, 100]) {
        const tier = transport === 'tcp' && mode === 'protocol' && conns === 10 ? 'smoke' : 'full';
        list.push(echoWorkload(ctx, { transport, mode, sizeName: '1KiB', conns, depth: 16, tier }));
      }
    }
  }
  return list;
}
