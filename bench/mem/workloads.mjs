// Memory: the server's resident set with 10,000 idle connections (each has made one round trip), read from
// /proc/<pid>/status. The clients are a few Node processes on the client core, with a raised open-files limit.
import { SystemFailure, errorSummary, freePort, rssBytes, sleep, startProcess, withNofile } from '../lib/proc.mjs';
import { nodeArgv } from '../lib/systems.mjs';
import { echoServer } from '../net/systems.mjs';

const NOFILE = 65536;

async function idleSample(system, ctx, count) {
  const port = String(await freePort());
  const serverArgv = withNofile([...ctx.pin.server, ...system.argv(port)], NOFILE);
  const server = await startProcess(serverArgv, { cwd: ctx.root });
  const clients = [];
  try {
    await sleep(300);
    const baseline = rssBytes(server.pid);
    const processes = count > 2000 ? 2 : 1;
    const per = Math.ceil(count / processes);
    const clientArgv = withNofile(
      [...ctx.pin.client, ...nodeArgv('bench/mem/idle-client.mjs', port, String(per))],
      NOFILE,
    );
    for (let i = 0; i < processes; i++) {
      clients.push(await startProcess(clientArgv, { cwd: ctx.root, timeoutMs: 120000 }));
    }
    await sleep(1000);
    const rss = rssBytes(server.pid);
    if (rss === null || baseline === null) {
      throw new SystemFailure('failed', `server died: ${errorSummary(server.stderr, server.stdout)}`);
    }
    return {
      value: rss / 1048576,
      connections: per * processes,
      baselineMiB: baseline / 1048576,
      perConnKiB: (rss - baseline) / (per * processes) / 1024,
      command: serverArgv,
      clientCommand: clientArgv,
    };
  } finally {
    for (const c of clients) await c.stop();
    await server.stop();
  }
}

export default function workloads(ctx) {
  const count = ctx.smoke ? 1000 : 10000;
  const systems = ['loopwork', 'node-net', 'uvloop', 'asyncio'].map((impl) => echoServer(ctx, impl, 'protocol'));
  return [
    {
      id: 'mem/idle-10k',
      title: `RSS of an echo server holding ${count.toLocaleString('en')} idle TCP connections`,
      metric: { unit: 'MiB', better: 'lower' },
      smoke: true,
      systems,
      goals: [
        {
          system: 'loopwork-protocol',
          vs: 'node-net',
          op: '<=',
          ratio: 1.2,
          text: '≤ 1.2× node:net',
          source: 'BENCH.md',
        },
      ],
      compare: ['uvloop-protocol', 'asyncio-protocol'],
      params: { connections: count },
      sample: (system, c) => idleSample(system, c, count),
    },
  ];
}
