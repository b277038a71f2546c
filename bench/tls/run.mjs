// TLS benchmark: loopwork's TLS echo server against a raw node:tls echo server, side by side in one run.
//   node bench/tls/run.mjs [--rounds 5] [--duration 3] [--handshake-conns 4] [--bulk-conns 1] [--dist]
// Workloads: full TLS 1.3 handshakes per second, and bulk echo throughput (MiB/s). The systems are interleaved
// (A B, then B A, …), each sample a fresh server pinned to core 0 with the load client on core 1; the table shows
// the medians, min–max, server CPU per operation, and loopwork / node:tls ratios (goal ≥ 0.95×).
// Prints the table and one JSON line with every sample (for the harness).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { hasCommand, lastJson, runProcess, startProcess } from '../lib/proc.mjs';
import { median } from '../lib/stats.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    'handshake-conns': { type: 'string', default: '4' },
    'bulk-conns': { type: 'string', default: '1' },
    dist: { type: 'boolean', default: false },
  },
});

const dir = mkdtempSync(join(tmpdir(), 'loopwork-bench-tls-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
function openssl(args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}
// A P-256 CA and server certificate, as a TLS deployment would use (ECDSA signatures, X25519 key exchange).
openssl(
  ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key'].concat([
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=bench CA',
  ]),
);
openssl(
  ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key'].concat([
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  ]),
);
writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
openssl(
  ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'].concat([
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  ]),
);
const cert = join(dir, 'server.pem');
const key = join(dir, 'server.key');

const pinned = hasCommand('taskset') && cpus().length >= 2;
const pin = (core, argv) => (pinned ? ['taskset', '-c', String(core), ...argv] : argv);
const tsx = opt.dist ? ['--import', 'tsx'] : ['--conditions=loopwork-source', '--import', 'tsx'];
const systems = {
  'node:tls': () => [process.execPath, join(here, 'node-tls-echo.mjs'), '0', cert, key],
  loopwork: () => [process.execPath, ...tsx, join(here, 'loopwork-tls-echo.ts'), '0', cert, key],
};
const workloads = [
  { id: 'tls/handshakes', mode: 'handshake', conns: opt['handshake-conns'], unit: 'handshakes/s', op: 'handshake' },
  { id: 'tls/bulk-echo', mode: 'bulk', conns: opt['bulk-conns'], unit: 'MiB/s', op: 'MiB' },
];

const rounds = Number(opt.rounds);
const samples = [];
console.log(
  `TLS benchmark: ${rounds} rounds × ${opt.duration} s, ${pinned ? 'server core 0, client core 1' : 'unpinned'}`,
);
for (const w of workloads) {
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ['node:tls', 'loopwork'] : ['loopwork', 'node:tls'];
    for (const name of order) {
      const server = await startProcess(pin(0, systems[name]()), { cwd: root, ready: /^READY \d+/ });
      try {
        const port = server.readyLine.split(' ')[1];
        const { stdout } = await runProcess(
          pin(1, [
            ...[process.execPath, join(here, 'client.mjs'), w.mode, '--port', port, '--conns', w.conns],
            ...['--duration', opt.duration, '--warmup', opt.warmup, '--server-pid', String(server.pid)],
          ]),
          { cwd: root },
        );
        const result = lastJson(stdout);
        samples.push({ workload: w.id, system: name, round: r, ...result });
        process.stdout.write(`  ${w.id} ${name.padEnd(8)} round ${r + 1}: ${result.value.toFixed(1)} ${w.unit}\n`);
      } finally {
        await server.stop();
      }
    }
  }
}

const fmt = (v, d = 1) => (v === null || v === undefined ? '—' : v.toFixed(d));
console.log('\n| workload | system | median | min–max | server CPU-µs/op | client CPU % | loopwork / node:tls |');
console.log('|---|---|---|---|---|---|---|');
const ratios = {};
for (const w of workloads) {
  const med = {};
  for (const name of Object.keys(systems)) {
    const s = samples.filter((x) => x.workload === w.id && x.system === name);
    const values = s.map((x) => x.value);
    med[name] = median(values);
    const cpu = median(s.map((x) => x.serverCpuUsPerOp));
    const ratio = name === 'loopwork' && med['node:tls'] ? med.loopwork / med['node:tls'] : null;
    if (ratio !== null) ratios[w.id] = ratio;
    console.log(
      `| ${w.id} | ${name} | ${fmt(med[name])} ${w.unit} | ${fmt(Math.min(...values))}–${fmt(Math.max(...values))} ` +
        `| ${fmt(cpu)} | ${fmt(median(s.map((x) => x.clientCpuPct)), 0)} | ${ratio === null ? '' : `${ratio.toFixed(2)}×`} |`,
    );
  }
}
for (const [id, ratio] of Object.entries(ratios)) {
  console.log(
    `${id}: loopwork at ${ratio.toFixed(2)}× raw node:tls (goal ≥ 0.95×: ${ratio >= 0.95 ? 'met' : 'NOT met'})`,
  );
}
console.log(JSON.stringify({ bench: 'tls', pinned, rounds, duration: Number(opt.duration), ratios, samples }));
