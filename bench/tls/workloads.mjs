// TLS (issues 5 and 8): full TLS 1.3 handshakes per second, and bulk echo throughput (MiB/s), loopwork's TLS
// echo server (createServer with `ssl`) against a raw node:tls echo server, with the same load client on the other
// core (tls-client.c, or client.mjs where the C one cannot be built). The certificates (a P-256 CA and a server
// certificate for localhost) are made
// with the openssl CLI once per harness run, in a temporary directory removed at exit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClient } from '../lib/c-client.mjs';
import { againstServer, lastJson, runProcess, startProcess } from '../lib/proc.mjs';
import { loopworkArgv, nodeArgv } from '../lib/systems.mjs';

let certs = null;

/** The server's certificate and key files, made on first use (ECDSA P-256, as a TLS deployment would use). */
export function benchCertificates() {
  if (certs !== null) return certs;
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-bench-tls-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bench CA');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    ...['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'],
    ...['-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'],
  );
  certs = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
  return certs;
}

export function tlsSystems(ctx) {
  return [
    {
      id: 'loopwork-tls',
      label: 'loopwork TLS (createServer ssl)',
      role: 'loopwork',
      requires: ['tsx', 'openssl'],
      argv: ({ cert, key }) => loopworkArgv(ctx, 'bench/tls/loopwork-tls-echo.ts', '0', cert, key),
    },
    {
      id: 'node-tls',
      label: 'raw node:tls',
      role: 'anchor',
      requires: ['openssl'],
      argv: ({ cert, key }) => nodeArgv('bench/tls/node-tls-echo.mjs', '0', cert, key),
    },
  ];
}

/**
 * The load client's argv prefix: tls-client.c (OpenSSL in C), else client.mjs. The Node client does about half
 * the handshakes per CPU-second; in bulk it decrypts the echo and so costs as much CPU per MiB as the server it
 * loads (neither core filled, and the rate measured how the two processes' wake-ups met), where the C client
 * counts the echo's TLS records without decrypting them.
 */
function tlsClient(ctx) {
  const node = { argv: nodeArgv('bench/tls/client.mjs'), name: 'node' };
  return loadClient(ctx.root, { source: 'bench/tls/tls-client.c', libs: ['-lssl', '-lcrypto'], fallback: node.argv });
}

/** One sample: a fresh server on core 0, the load client on core 1 for `duration` seconds after a warm-up. */
export async function tlsSample(system, ctx, { mode, conns, chunk, warmup = 1 }) {
  const serverArgv = [...ctx.pin.server, ...system.argv(benchCertificates())];
  const server = await startProcess(serverArgv, { cwd: ctx.root, ready: /^READY \d+/ });
  const port = server.readyLine.split(' ')[1];
  const client = tlsClient(ctx);
  const clientArgv = [
    ...ctx.pin.client,
    ...client.argv,
    ...[mode, '--port', port, '--conns', String(conns)],
    ...(chunk ? ['--chunk', String(chunk)] : []),
    ...['--duration', String(ctx.smoke ? 0.5 : (ctx.duration ?? 3)), '--warmup', String(ctx.smoke ? 0.3 : warmup)],
    ...['--server-pid', String(server.pid)],
  ];
  return againstServer(server, async () => {
    const { stdout } = await runProcess(clientArgv, { cwd: ctx.root, timeoutMs: 120000 });
    const r = lastJson(stdout);
    if (!r) throw new Error(`client printed no result: ${stdout.slice(-200)}`);
    return { ...r, client: client.name, command: serverArgv, clientCommand: clientArgv };
  });
}

const GOALS = [{ vs: 'node-tls', op: '>=', ratio: 0.95, text: '≥ 0.95× node:tls', source: 'issue 5' }];

export default function workloads(ctx) {
  const systems = tlsSystems(ctx);
  const handshakes = [1, 10].map((conns) => ({
    id: `tls/handshakes-c${conns}`,
    title:
      `Full TLS 1.3 handshakes (ECDSA P-256, X25519, no resumption), ${conns} client${conns > 1 ? 's' : ''} each ` +
      'connecting, handshaking and closing in a loop; server CPU per handshake',
    metric: { unit: 'handshakes/s', better: 'higher', per: 'handshake' },
    smoke: conns === 10,
    systems,
    goals: GOALS,
    params: { mode: 'handshake', conns },
    // 10 s of warm-up: at a few hundred handshakes a second, V8 goes on optimizing both servers' per-connection
    // code (Node's and loopwork's) for 10-14 s (`--trace-opt`: 40-90 functions per 2 s at first, under 10 after
    // 12 s), and on one core those compilations take the server's own CPU. A shorter warm-up counts JIT time.
    sample: (system, c) => tlsSample(system, c, { mode: 'handshake', conns, warmup: 10 }),
  }));
  const bulk = {
    id: 'tls/bulk-c1',
    title:
      'Bulk TLS echo over one connection: 64 KiB writes, 1 MiB in flight; MiB/s echoed back (one way), server CPU per MiB',
    metric: { unit: 'MiB/s', better: 'higher', per: 'MiB' },
    smoke: true,
    systems,
    goals: GOALS,
    params: { mode: 'bulk', conns: 1, chunk: 65536 },
    // 5 s of warm-up: at a few thousand 64 KiB chunks a second, V8 goes on optimizing both servers' write paths
    // (Node's stream internals and loopwork's callbacks) for 3.5-5 s (`--trace-opt`); a 1 s warm-up counted those
    // compilations, which take the server's own core.
    sample: (system, c) => tlsSample(system, c, { mode: 'bulk', conns: 1, chunk: 65536, warmup: 5 }),
  };
  return [...handshakes, bulk];
}
