// The TLS load client.
//   node bench/tls/client.mjs handshake --port P --conns 4 --duration 3 --warmup 1 [--server-pid PID]
//     full TLS 1.3 handshakes (no resumption), `conns` in flight: connect, handshake, close (close_notify both
//     ways), next.
//   node bench/tls/client.mjs bulk --port P --conns 1 --duration 3 --warmup 1 [--chunk 65536] [--server-pid PID]
//     each connection streams data to the echo server with 1 MiB in flight and counts what comes back.
// Prints one JSON line: { value, unit, ops, serverCpuSeconds, serverCpuPct, serverCpuUsPerReq (per handshake or per
// MiB), clientCpuPct, errors, firstError }; exits 1 when nothing was counted.
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { cpuSeconds } from '../lib/proc.mjs';

const { positionals, values: opt } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string' },
    conns: { type: 'string', default: '4' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    chunk: { type: 'string', default: '65536' },
    'server-pid': { type: 'string' },
  },
});
const mode = positionals[0] ?? 'handshake';
const port = Number(opt.port);
const conns = Number(opt.conns);
const chunk = Buffer.alloc(Number(opt.chunk), 'x');
const WINDOW = 1024 * 1024;
// Full handshakes: no session is ever offered back, and certificates are not verified (client CPU is the limit).
const options = { host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3' };

const serverCpu = () => (opt['server-pid'] ? cpuSeconds(opt['server-pid']) : null);

let running = true;
let counting = false;
let ops = 0;
let bytes = 0;
let errors = 0;
let firstError = null;
const onError = (e) => {
  errors++;
  firstError ??= `${e.code ?? ''} ${e.message}`.trim();
};

function handshakeLoop() {
  if (!running) return;
  let failed = false;
  const s = tls.connect(options, () => {
    if (counting) ops++;
    // end(), not destroy(): the client's Finished must reach the server, whose handshake completes only then.
    s.end();
  });
  s.on('error', (e) => {
    onError(e);
    failed = true;
  });
  s.on('close', () => (failed ? setImmediate(handshakeLoop) : handshakeLoop()));
  s.resume();
}

function bulkConn() {
  let inflight = 0;
  let draining = false;
  const s = tls.connect(options, () => pump());
  const onDrain = () => {
    draining = false;
    pump();
  };
  function pump() {
    while (running && !draining && inflight < WINDOW) {
      inflight += chunk.length;
      if (!s.write(chunk)) {
        draining = true;
        s.once('drain', onDrain);
      }
    }
  }
  s.on('data', (d) => {
    inflight -= d.length;
    if (counting) bytes += d.length;
    pump();
  });
  s.on('error', onError);
  return s;
}

const sockets = [];
for (let i = 0; i < conns; i++) {
  if (mode === 'handshake') handshakeLoop();
  else sockets.push(bulkConn());
}
await new Promise((r) => setTimeout(r, Number(opt.warmup) * 1000));
const cpu0 = process.cpuUsage();
const s0 = serverCpu();
const t0 = performance.now();
counting = true;
await new Promise((r) => setTimeout(r, Number(opt.duration) * 1000));
counting = false;
const seconds = (performance.now() - t0) / 1000;
const s1 = serverCpu();
const cpu = process.cpuUsage(cpu0);
running = false;
for (const s of sockets) s.destroy();
const count = mode === 'handshake' ? ops : bytes / (1024 * 1024);
const serverCpuSeconds = s0 !== null && s1 !== null ? s1 - s0 : null;
console.log(
  JSON.stringify({
    mode,
    value: count / seconds,
    unit: mode === 'handshake' ? 'handshakes/s' : 'MiB/s',
    ops: count,
    seconds,
    serverCpuSeconds,
    serverCpuPct: serverCpuSeconds === null ? null : (serverCpuSeconds / seconds) * 100,
    serverCpuUsPerReq: serverCpuSeconds !== null && count > 0 ? (serverCpuSeconds * 1e6) / count : null,
    clientCpuPct: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
    errors,
    firstError,
  }),
);
if (count === 0) console.error(`Error: nothing counted in ${seconds.toFixed(1)} s (${errors} errors: ${firstError})`);
process.exit(count > 0 ? 0 : 1);
