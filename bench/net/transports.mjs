// loopwork's two stream transports side by side with their anchors, on the echo workload of issue 4:
// raw node:net, loopwork Protocol on SocketTransport (net.Socket, LOOPWORK_TRANSPORT=socket), loopwork Protocol on
// FdTransport (the fast path, the default with the native addon) and uvloop's Protocol. Same servers and load
// client as `npm run bench -- net` (loopwork-echo.ts picks the transport through createServer), interleaved
// rounds, server on core 0 and client on core 1; prints medians of server CPU-µs per request and of req/s, and
// the ratios; writes bench/results/<time>-transports.json.
//   node bench/net/transports.mjs [--rounds 5] [--duration 3] [--size 1024] [--conns 10] [--unix] [--src]
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machineInfo, pinning, root } from '../lib/env.mjs';
import { freePort, hasCommand, lastJson, runProcess, startProcess } from '../lib/proc.mjs';
import { median } from '../lib/stats.mjs';
import { echoClient } from './load-client.mjs';
import { loopworkArgv, nodeArgv, pythonArgv } from '../lib/systems.mjs';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '3' },
    size: { type: 'string', default: '1024' },
    conns: { type: 'string', default: '10' },
    unix: { type: 'boolean', default: false },
    src: { type: 'boolean', default: false },
  },
});
const ctx = { root, dist: !opt.src };
const SYSTEMS = [
  { id: 'node-net', argv: (t) => nodeArgv('bench/net/node-echo.mjs', 'protocol', t) },
  {
    id: 'loopwork-socket',
    env: { LOOPWORK_TRANSPORT: 'socket' },
    argv: (t) => loopworkArgv(ctx, 'bench/net/loopwork-echo.ts', 'protocol', t),
  },
  {
    id: 'loopwork-fd',
    env: { LOOPWORK_TRANSPORT: 'fd' },
    argv: (t) => loopworkArgv(ctx, 'bench/net/loopwork-echo.ts', 'protocol', t),
  },
  { id: 'uvloop', argv: (t) => pythonArgv('bench/net/asyncio_echo.py', 'uvloop', 'protocol', t) },
];
const have = new Set(['taskset'].filter((c) => hasCommand(c)));
const pin = pinning(have);
let seq = 0;

async function sample(system) {
  const target = opt.unix
    ? `unix:${join(tmpdir(), `lw-transports-${process.pid}-${seq++}.sock`)}`
    : String(await freePort());
  const server = await startProcess([...pin.server, ...system.argv(target)], { cwd: root, env: system.env ?? {} });
  try {
    const client = [
      ...pin.client,
      ...echoClient(root).argv,
      ...['--target', target, '--size', opt.size, '--conns', opt.conns, '--duration', opt.duration, '--warmup', '1'],
      ...['--server-pid', String(server.pid)],
    ];
    const { stdout } = await runProcess(client, { cwd: root, timeoutMs: 120000 });
    return lastJson(stdout);
  } finally {
    await server.stop();
  }
}

const results = Object.fromEntries(SYSTEMS.map((s) => [s.id, []]));
const rounds = Number(opt.rounds);
console.log(
  `${pin.note}; ${opt.size} B × ${opt.conns} connections over ${opt.unix ? 'Unix' : 'TCP'}, ${rounds} rounds`,
);
for (let r = 0; r < rounds; r++) {
  // Rotated order each round: A B C D, B C D A, ...
  const order = SYSTEMS.map((_, i) => SYSTEMS[(i + r) % SYSTEMS.length]);
  for (const s of order) {
    const res = await sample(s);
    results[s.id].push(res);
    console.log(
      `round ${r + 1} ${s.id.padEnd(16)} ${Math.round(res.rate).toString().padStart(7)} req/s  ` +
        `${res.serverCpuUsPerReq.toFixed(2).padStart(6)} CPU-µs/req  server ${res.serverCpuPct.toFixed(0)}%  ` +
        `client ${res.clientCpuPct.toFixed(0)}%`,
    );
  }
}

const summary = {};
for (const s of SYSTEMS) {
  const rows = results[s.id];
  const us = rows.map((x) => x.serverCpuUsPerReq);
  const rate = rows.map((x) => x.rate);
  summary[s.id] = {
    cpuUsPerReq: { median: median(us), min: Math.min(...us), max: Math.max(...us) },
    rate: { median: median(rate), min: Math.min(...rate), max: Math.max(...rate) },
    clientCpuPctMedian: median(rows.map((x) => x.clientCpuPct)),
  };
}
console.log('\nmedians (min–max):');
for (const [id, v] of Object.entries(summary)) {
  const c = v.cpuUsPerReq;
  const q = v.rate;
  console.log(
    `  ${id.padEnd(16)} ${c.median.toFixed(2)} CPU-µs/req (${c.min.toFixed(2)}–${c.max.toFixed(2)})  ` +
      `${Math.round(q.median)} req/s (${Math.round(q.min)}–${Math.round(q.max)})  client CPU ${v.clientCpuPctMedian.toFixed(0)}%`,
  );
}
const ratios = {};
for (const lw of ['loopwork-fd', 'loopwork-socket']) {
  for (const anchor of ['node-net', 'uvloop']) {
    // Work per request: the anchor's CPU-µs over loopwork's, so that > 1 means loopwork does the same for less.
    ratios[`${lw} vs ${anchor} (CPU efficiency)`] = summary[anchor].cpuUsPerReq.median / summary[lw].cpuUsPerReq.median;
    ratios[`${lw} vs ${anchor} (req/s)`] = summary[lw].rate.median / summary[anchor].rate.median;
  }
}
console.log('\nratios (> 1: loopwork ahead):');
for (const [k, v] of Object.entries(ratios)) console.log(`  ${k.padEnd(48)} ${v.toFixed(3)}`);

const out = join(root, 'bench', 'results');
mkdirSync(out, { recursive: true });
const file = join(out, `${new Date().toISOString().replace(/[:.]/g, '-')}-transports.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      machine: machineInfo(),
      options: opt,
      pinning: pin.note,
      systems: SYSTEMS.map((s) => ({ id: s.id, env: s.env ?? {}, argv: s.argv('<target>') })),
      results,
      summary,
      ratios,
    },
    null,
    2,
  ),
);
console.log(`\nwritten to ${file}`);
