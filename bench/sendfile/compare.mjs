// Runs the sendfile workload on its own and prints the systems side by side (GiB/s, server CPU seconds, and
// ratios against the stream pipe and asyncio), without touching bench/results.
//   node bench/sendfile/compare.mjs [--rounds N] [--size BYTES]
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { hasCommand } from '../lib/proc.mjs';
import { root } from '../lib/env.mjs';
import { sendfileSample, systems, FILE_SIZE } from './workloads.mjs';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, size: { type: 'string' } } });
const rounds = Number(values.rounds);
const size = values.size ? Number(values.size) : FILE_SIZE;
const pinned = hasCommand('taskset') && cpus().length >= 2;
const ctx = {
  root,
  dist: false,
  pin: pinned ? { server: ['taskset', '-c', '0'], client: ['taskset', '-c', '1'] } : { server: [], client: [] },
};
const list = systems(ctx);
const results = new Map(list.map((s) => [s.id, []]));
console.log(
  `sendfile: ${(size / 2 ** 30).toFixed(2)} GiB, ${rounds} rounds, ${pinned ? 'server core 0, sink core 1' : 'not pinned'}`,
);
for (let round = 0; round < rounds; round++) {
  // Interleaved, and rotated each round (A B C D, B C D A, ...).
  const order = list.map((_, i) => list[(i + round) % list.length]);
  for (const system of order) {
    try {
      const r = await sendfileSample(system, ctx, size);
      results.get(system.id).push(r);
      console.log(
        `  [${round + 1}/${rounds}] ${system.label.padEnd(34)} ${r.value.toFixed(2)} GiB/s  cpu ${r.serverCpuSeconds?.toFixed(2)} s`,
      );
    } catch (e) {
      console.log(`  [${round + 1}/${rounds}] ${system.label.padEnd(34)} failed: ${e.message.split('\n')[0]}`);
    }
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const med = new Map(
  list.map((s) => [
    s.id,
    {
      gib: median(results.get(s.id).map((r) => r.value)),
      cpu: median(results.get(s.id).map((r) => r.serverCpuSeconds)),
    },
  ]),
);
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '–');
console.log(
  `\n${'system'.padEnd(34)} ${'GiB/s'.padStart(7)} ${'CPU s'.padStart(7)}  ${'vs pipe'.padStart(8)} ${'vs asyncio'.padStart(10)}  ${'CPU vs pipe'.padStart(11)}`,
);
for (const s of list) {
  const m = med.get(s.id);
  console.log(
    `${s.label.padEnd(34)} ${m.gib.toFixed(2).padStart(7)} ${m.cpu.toFixed(2).padStart(7)}  ${ratio(m.gib, med.get('node-pipe').gib).padStart(8)} ${ratio(m.gib, med.get('asyncio').gib).padStart(10)}  ${ratio(m.cpu, med.get('node-pipe').cpu).padStart(11)}`,
  );
}
