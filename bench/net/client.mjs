// The echo load client (the uvloop benchmark's method): each connection sends a message of `size` bytes ending
// in "\n" and waits for all of it to come back before sending the next (or keeps `depth` messages in flight when
// pipelining), for a fixed duration after a warm-up. Reports req/s, MiB/s, p50/p99 latency, its own CPU use and,
// given the server's pid, the server's CPU time per request from /proc.
//   node bench/net/client.mjs --target <port|unix:/path> --size 1024 --conns 10 --duration 3 --warmup 1
//                             [--depth 1] [--server-pid PID]
// Prints one JSON line.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { LatencyHistogram } from '../lib/histogram.mjs';

const { values: opt } = parseArgs({
  options: {
    target: { type: 'string', default: '25000' },
    size: { type: 'string', default: '1024' },
    conns: { type: 'string', default: '10' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    depth: { type: 'string', default: '1' },
    'server-pid': { type: 'string' },
  },
});
const size = Number(opt.size);
const nconns = Number(opt.conns);
const depth = Number(opt.depth);
const unix = opt.target.startsWith('unix:') ? opt.target.slice(5) : null;
const serverPid = opt['server-pid'];

const message = Buffer.alloc(size, 'x');
message[size - 1] = 0x0a;
const readBuffer = Buffer.allocUnsafe(256 * 1024); // one buffer for every socket: the bytes are only counted
const hist = new LatencyHistogram();
let running = true;
let counting = false;
let completed = 0;
let errors = 0;
let firstError = null;

function serverCpu() {
  if (!serverPid) return null;
  try {
    const text = readFileSync(`/proc/${serverPid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // CLK_TCK is 100 on Linux
  } catch {
    return null;
  }
}

class Conn {
  constructor() {
    this.received = 0;
    this.sentAt = new Float64Array(depth);
    this.head = 0;
    this.tail = 0;
    this.sock = null;
  }

  send(now) {
    this.sentAt[this.tail] = now;
    this.tail = (this.tail + 1) % depth;
    this.sock.write(message);
  }

  onRead(n) {
    this.received += n;
    while (this.received >= size) {
      this.received -= size;
      const now = performance.now();
      const t0 = this.sentAt[this.head];
      this.head = (this.head + 1) % depth;
      if (counting) {
        completed++;
        hist.record((now - t0) * 1000);
      }
      if (running) this.send(now);
    }
    return true;
  }
}

function open(conn) {
  return new Promise((resolve, reject) => {
    const where = unix ? { path: unix } : { host: '127.0.0.1', port: Number(opt.target), noDelay: true };
    const sock = connect({
      ...where,
      onread: { buffer: readBuffer, callback: (n) => conn.onRead(n) },
    });
    conn.sock = sock;
    sock.once('connect', () => resolve(conn));
    sock.on('error', (e) => {
      errors++;
      firstError ??= e.message;
      reject(e);
    });
    sock.on('close', () => {
      if (running) {
        errors++;
        firstError ??= 'server closed a connection';
      }
    });
  });
}

const conns = [];
try {
  for (let i = 0; i < nconns; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(nconns, i + 50); j++) batch.push(open(new Conn()));
    conns.push(...(await Promise.all(batch)));
  }
} catch (e) {
  console.error(`client: cannot connect to ${opt.target}: ${e.message}`);
  process.exit(1);
}

const wait = (s) => new Promise((r) => setTimeout(r, s * 1000));
const now0 = performance.now();
for (const c of conns) for (let k = 0; k < depth; k++) c.send(now0);
await wait(Number(opt.warmup));

counting = true;
const cpu0 = process.cpuUsage();
const srv0 = serverCpu();
const t0 = performance.now();
await wait(Number(opt.duration));
const t1 = performance.now();
const srv1 = serverCpu();
const cpu1 = process.cpuUsage(cpu0);
counting = false;
running = false;
const done = completed;
for (const c of conns) c.sock.destroy();

const seconds = (t1 - t0) / 1000;
const serverCpuSeconds = srv0 !== null && srv1 !== null ? srv1 - srv0 : null;
const result = {
  requests: done,
  seconds,
  rate: done / seconds,
  mibps: (done * size) / seconds / 1048576,
  p50us: hist.percentile(50),
  p99us: hist.percentile(99),
  clientCpuPct: ((cpu1.user + cpu1.system) / 1000 / (t1 - t0)) * 100,
  serverCpuSeconds,
  serverCpuPct: serverCpuSeconds === null ? null : (serverCpuSeconds / seconds) * 100,
  serverCpuUsPerReq: serverCpuSeconds === null || done === 0 ? null : (serverCpuSeconds / done) * 1e6,
  errors,
};
if (done === 0 || errors > 0) {
  console.error(`client: ${done} responses, ${errors} errors${firstError ? ` (${firstError})` : ''}`);
  console.log(JSON.stringify(result));
  process.exit(1);
}
console.log(JSON.stringify(result));
process.exit(0);
