// Serving a 1 GiB file to a socket sink on the other core (issue 6): loopwork's zero-copy sendfile, loopwork's
// read-and-write fallback, Node's fs.createReadStream().pipe(socket), CPython asyncio's loop.sendfile. Each sample
// starts the server (core 0), runs the sink (core 1), and reports GiB/s and the server's CPU seconds (utime + stime
// from /proc), both as the sink measured them around the transfer it times, the second one it takes. The sink is
// bench/sendfile/sink.c, which has the kernel discard what arrives (MSG_TRUNC), or sink.mjs where it cannot be
// built; sink.mjs copies every byte out, filled its core at about 4 GiB/s while the zero-copy servers' cores were
// about half busy, and so measured itself.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClient } from '../lib/c-client.mjs';
import { againstServer, freePort, lastJson, runProcess, startProcess } from '../lib/proc.mjs';
import { loopworkArgv, nodeArgv, pythonArgv } from '../lib/systems.mjs';

export const FILE_SIZE = 2 ** 30;

/** The 1 GiB file (random bytes, made once per boot in the temp dir), read once so that it is in the page cache. */
export function benchFile(size = FILE_SIZE) {
  const path = join(tmpdir(), `loopwork-sendfile-${size}.bin`);
  if (!existsSync(path) || statSync(path).size !== size) {
    const r = spawnSync('sh', ['-c', `head -c ${size} /dev/urandom > '${path}.tmp' && mv '${path}.tmp' '${path}'`]);
    if (r.status !== 0) throw new Error(`cannot make ${path}: ${r.stderr}`);
  }
  spawnSync('sh', ['-c', `cat '${path}' > /dev/null`]);
  return path;
}

export function systems(ctx) {
  const script = (name) => `bench/sendfile/${name}`;
  return [
    {
      id: 'loopwork-zero-copy',
      label: 'loopwork sendfile (zero-copy)',
      role: 'loopwork',
      argv: (port, file) => loopworkArgv(ctx, script('loopwork-sendfile.ts'), 'zero-copy', port, file),
    },
    {
      id: 'loopwork-fallback',
      label: 'loopwork sendfile (fallback)',
      role: 'loopwork',
      argv: (port, file) => loopworkArgv(ctx, script('loopwork-sendfile.ts'), 'fallback', port, file),
    },
    {
      id: 'node-pipe',
      label: 'node createReadStream().pipe()',
      role: 'anchor',
      argv: (port, file) => nodeArgv(script('node-pipe.mjs'), port, file),
    },
    {
      id: 'asyncio',
      label: 'asyncio loop.sendfile',
      role: 'anchor',
      requires: ['python3'],
      argv: (port, file) => pythonArgv(script('asyncio_sendfile.py'), port, file),
    },
  ];
}

/** One transfer: start the server, run the sink against it, stop the server. */
export async function sendfileSample(system, ctx, size = FILE_SIZE) {
  const file = benchFile(size);
  const port = String(await freePort());
  const serverArgv = [...ctx.pin.server, ...system.argv(port, file)];
  const server = await startProcess(serverArgv, { cwd: ctx.root });
  const sink = loadClient(ctx.root, { source: 'bench/sendfile/sink.c', fallback: nodeArgv('bench/sendfile/sink.mjs') });
  // One untimed transfer first: the servers are fresh processes, and a transfer of a tenth of a second right after
  // start-up may run beside the JIT's and GC's own threads on the server's core (without it, loopwork's rates split
  // into two groups, 7.2-7.8 and 9.8-10.4 GiB/s; with it, A/Bs of 6 and 8 rounds had loopwork and asyncio within
  // 1-2 %). The transfers stay short, so single rounds still range widely on this VM (7.1-12.5 GiB/s in one run).
  const warmups = ctx.smoke ? '0' : '1';
  const clientArgv = [...ctx.pin.client, ...sink.argv, port, String(size), warmups, String(server.pid)];
  return againstServer(server, async () => {
    const { stdout } = await runProcess(clientArgv, { cwd: ctx.root, timeoutMs: 300000 });
    const r = lastJson(stdout);
    if (!r) throw new Error(`sink printed no result: ${stdout.slice(-200)}`);
    return {
      value: r.gibPerSecond,
      seconds: r.seconds,
      serverCpuSeconds: r.serverCpuSeconds,
      client: sink.name,
      command: serverArgv,
      clientCommand: clientArgv,
    };
  });
}

export default function workloads(ctx) {
  return [
    {
      id: 'sendfile/1GiB',
      title: 'Serving a 1 GiB file to a socket sink on the other core',
      metric: { unit: 'GiB/s', better: 'higher' },
      smoke: false,
      systems: systems(ctx),
      goals: [
        {
          system: 'loopwork-zero-copy',
          vs: 'node-pipe',
          op: '>=',
          ratio: 1.5,
          text: '≥ 1.5× stream pipe',
          source: 'issue 6',
        },
        { system: 'loopwork-zero-copy', vs: 'asyncio', op: '>=', ratio: 1, text: '≥ asyncio', source: 'issue 6' },
      ],
      compare: ['loopwork-fallback'],
      sample: (system, c) => sendfileSample(system, c),
    },
  ];
}
