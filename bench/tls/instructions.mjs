// Instructions per TLS handshake and per echoed MiB: loopwork's TLS echo server against raw node:tls, each run
// under valgrind's callgrind, which counts the instructions every thread of the server executes, and those of its
// main thread (the event loop; the others are V8's garbage collection and compilation and libuv's thread pool).
// Unlike CPU time, the count does not depend on what else the shared machine is doing, where CPU-time rounds on
// this VM scatter by ±10–30 %. It leaves out the kernel (syscalls) and the cost of cache misses: it says how much
// work each server does, not how long the work takes.
//
//   node bench/tls/instructions.mjs [handshake] [bulk] [--rounds N] [--warmup S] [--duration S]
//
// Needs `valgrind` (Debian: apt-get install valgrind) and the built packages (`npm run build`). Under callgrind
// the server runs 30 to 50 times slower, so it is given a long warm-up before the counters are zeroed
// (`callgrind_control -z`): its JIT tiers up, and its start-up garbage collections run, at that pace too. The
// default, 300 s, is about 8 s of the server's time at full speed, which the handshake counts need: after 40 s,
// loopwork's came out 1.04–1.11× node:tls's, from optimizing compilations still running (its per-connection code
// is more JavaScript than node:tls's, so it has more to compile); after 300 s, 0.96× and 1.05× in two samples,
// and on the main thread 1.00× and 1.02×.
// The load client (bench/tls/client.mjs, at full speed) then runs for `--duration` seconds and the counters are
// dumped (`callgrind_control -d`). Prints a line per sample, the medians, and one JSON line, also written to
// bench/results/<time>-tls-instructions.json. Not part of `npm run bench`: a round of both modes takes about
// 25 minutes.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { machineInfo } from '../lib/env.mjs';
import { againstServer, hasCommand, lastJson, runProcess, startProcess } from '../lib/proc.mjs';
import { nodeArgv } from '../lib/systems.mjs';
import { median } from '../lib/stats.mjs';
import { benchCertificates, tlsSystems } from './workloads.mjs';

const USAGE = 'usage: node bench/tls/instructions.mjs [handshake] [bulk] [--rounds N] [--warmup S] [--duration S]';
const root = resolve(import.meta.dirname, '../..');

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string', default: '1' },
      warmup: { type: 'string', default: '300' },
      duration: { type: 'string', default: '40' },
      help: { type: 'boolean', default: false },
    },
  });
} catch (e) {
  console.error(`${e.message}\n${USAGE}`);
  process.exit(2);
}
const { values: opt, positionals } = args;
const modes = positionals.length > 0 ? positionals : ['handshake', 'bulk'];
const numbers = [opt.rounds, opt.warmup, opt.duration].map(Number);
const bad = modes.some((m) => m !== 'handshake' && m !== 'bulk') || numbers.some((n) => !(n > 0));
if (opt.help || bad || !Number.isInteger(numbers[0])) {
  (opt.help ? console.log : console.error)(USAGE);
  process.exit(opt.help ? 0 : 2);
}
const [rounds, warmup, duration] = numbers;
for (const command of ['valgrind', 'callgrind_control']) {
  if (!hasCommand(command)) {
    console.error(`${command} is missing (Debian: apt-get install valgrind)`);
    process.exit(2);
  }
}

const UNITS = { handshake: 'handshake', bulk: 'MiB' };

/** The instructions the server executed per operation in one sample: all its threads, and its main thread alone. */
async function sample(system, mode, dir) {
  const out = join(dir, `${system.id}-${mode}`);
  const valgrind = ['valgrind', '--tool=callgrind', '--smc-check=all-non-file', '--dump-instr=no'];
  // One dump file a thread: thread 1 is the main thread, where the event loop runs; the others are V8's and
  // libuv's helpers (garbage collection, compilation, the thread pool).
  const argv = [
    ...valgrind,
    '--separate-threads=yes',
    `--callgrind-out-file=${out}`,
    ...system.argv(benchCertificates()),
  ];
  const server = await startProcess(argv, { cwd: root, ready: /^READY \d+/, timeoutMs: 180000 });
  const port = server.readyLine.split(' ')[1];
  const client = (seconds) => [
    ...nodeArgv('bench/tls/client.mjs', mode, '--port', port, '--conns', mode === 'bulk' ? '1' : '10'),
    ...['--duration', String(seconds), '--warmup', '0.01'],
  ];
  return againstServer(server, async () => {
    await runProcess(client(warmup), { cwd: root });
    execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
    const { stdout } = await runProcess(client(duration), { cwd: root });
    execFileSync('callgrind_control', ['-d', String(server.pid)], { stdio: 'ignore' });
    const ops = lastJson(stdout)?.ops;
    if (!(ops > 0)) throw new Error(`the client counted nothing: ${stdout.slice(-200)}`);
    // The dump asked for is the first one (`<out>.1-<thread>`); the files without a number are written at exit.
    const dumps = readdirSync(dir).filter((name) => name.startsWith(`${system.id}-${mode}.1-`));
    let all = 0;
    let main = null;
    for (const name of dumps) {
      const totals = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, name), 'utf8'));
      if (totals === null) continue;
      all += Number(totals[1]);
      if (name.endsWith('-01')) main = Number(totals[1]);
    }
    if (main === null) throw new Error(`no callgrind dump of the main thread for ${system.id}`);
    for (const name of readdirSync(dir)) if (name.startsWith(`${system.id}-${mode}`)) rmSync(join(dir, name));
    return { all: all / ops, main: main / ops };
  });
}

const dir = mkdtempSync(join(tmpdir(), 'loopwork-callgrind-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const systems = tlsSystems({ root, dist: true });
const result = {};
const M = (n) => (n / 1e6).toFixed(3);
for (const mode of modes) {
  const per = Object.fromEntries(systems.map((s) => [s.id, []]));
  for (let round = 0; round < rounds; round++) {
    // Interleaved, A B then B A, as the harness does.
    const order = round % 2 === 0 ? systems : [...systems].reverse();
    for (const system of order) {
      const ir = await sample(system, mode, dir);
      per[system.id].push(ir);
      console.log(
        `  ${mode} [${round + 1}/${rounds}] ${system.label.padEnd(32)} ${M(ir.all)} M instr/${UNITS[mode]}, ` +
          `main thread ${M(ir.main)} M`,
      );
    }
  }
  const medians = (key) => systems.map((s) => median(per[s.id].map((ir) => ir[key])));
  const [lw, anchor] = medians('all');
  const [lwMain, anchorMain] = medians('main');
  result[mode] = {
    unit: `instructions/${UNITS[mode]}`,
    loopwork: lw,
    nodeTls: anchor,
    ratio: lw / anchor,
    mainThread: { loopwork: lwMain, nodeTls: anchorMain, ratio: lwMain / anchorMain },
    samples: per,
  };
  console.log(
    `${mode}: loopwork ${M(lw)} M, node:tls ${M(anchor)} M, ratio ${(lw / anchor).toFixed(3)}×; ` +
      `main thread ${M(lwMain)} M against ${M(anchorMain)} M, ${(lwMain / anchorMain).toFixed(3)}×`,
  );
}
console.log(JSON.stringify(result));
const results = join(root, 'bench', 'results');
mkdirSync(results, { recursive: true });
const file = join(results, `${new Date().toISOString().replace(/[:.]/g, '-')}-tls-instructions.json`);
writeFileSync(
  file,
  `${JSON.stringify({ machine: machineInfo(), options: { rounds, warmup, duration, modes }, result }, null, 2)}\n`,
);
console.log(`wrote ${file}`);
