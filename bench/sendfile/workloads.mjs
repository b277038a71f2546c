// Serving a 1 GiB file to a socket sink on the other core (issue 6): loopwork's zero-copy sendfile, loopwork's
// read-and-write fallback, Node's fs.createReadStream().pipe(socket), CPython asyncio's loop.sendfile. Each sample
// starts the server (core 0), runs the sink (core 1: bench/sendfile/sink.mjs, which reads into one reused buffer),
// and reports GiB/s (sink-timed) and the server's CPU seconds for the transfer (utime + stime from /proc).
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { againstServer, cpuSeconds, freePort, lastJson, runProcess, startProcess } from '../lib/proc.mjs';
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
  const clientArgv = [...ctx.pin.client, ...nodeArgv('bench/sendfile/sink.mjs', port, String(size))];
  return againstServer(server, async () => {
    const cpu0 = cpuSeconds(server.pid);
    const { stdout } = await runProcess(clientArgv, { cwd: ctx.root, timeoutMs: 300000 });
    const cpu1 = cpuSeconds(server.pid);
    const r = lastJson(stdout);
    if (!r) throw new Error(`sink printed no result: ${stdout.slice(-200)}`);
    return {
      value: r.gibPerSecond,
      seconds: r.seconds,
      serverCpuSeconds: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0,
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
