// Loop microbenchmarks: each system is a standalone script printing {"ops": N, "seconds": S}; the harness runs
// it pinned to the server core and reports ops/s. The same workload, with the same counts, in every system:
// node-raw.mjs (Node's own primitives), asyncio_loop.py (CPython asyncio and uvloop), loopwork-loop.ts.
import { lastJson, runProcess } from '../lib/proc.mjs';
import { loopworkArgv, nodeArgv, pythonArgv } from '../lib/systems.mjs';

const loopwork = (ctx) => ({
  id: 'loopwork',
  label: 'loopwork',
  role: 'loopwork',
  requires: ['tsx'],
  argv: (w) => loopworkArgv(ctx, 'bench/core/loopwork-loop.ts', w),
});
const asyncio = {
  id: 'asyncio',
  label: 'CPython asyncio',
  role: 'anchor',
  requires: ['python3'],
  argv: (w) => pythonArgv('bench/core/asyncio_loop.py', 'asyncio', w),
};
const uvloop = {
  id: 'uvloop',
  label: 'uvloop',
  role: 'anchor',
  requires: ['python3', 'uvloop'],
  argv: (w) => pythonArgv('bench/core/asyncio_loop.py', 'uvloop', w),
};
const raw = (id, label) => ({ id, label, role: 'anchor', argv: (w) => nodeArgv('bench/core/node-raw.mjs', w) });

/** One sample: run the script for ~duration seconds after its own warm-up, and report ops/s. */
function sampler(script) {
  return async (system, ctx) => {
    const secs = ctx.smoke ? 0.5 : (ctx.duration ?? 2);
    const warm = ctx.smoke ? 0.1 : 0.5;
    const argv = [...ctx.pin.server, ...system.argv(script), String(secs), String(warm), ctx.smoke ? '0.1' : '1'];
    const { stdout } = await runProcess(argv, { cwd: ctx.root });
    const r = lastJson(stdout);
    if (!r || !(r.ops > 0) || !(r.seconds > 0)) throw new Error(`no result line in: ${stdout.slice(-200)}`);
    return { value: r.ops / r.seconds, ops: r.ops, seconds: r.seconds, command: argv };
  };
}

export default function workloads(ctx) {
  const lw = loopwork(ctx);
  return [
    {
      id: 'core/callsoon-batch',
      title: 'callSoon batch: 1e6 callbacks scheduled, then run',
      metric: { unit: 'callbacks/s', better: 'higher' },
      smoke: true,
      systems: [lw, raw('setImmediate', 'Node setImmediate'), asyncio, uvloop],
      goals: [
        { vs: 'uvloop', op: '>=', ratio: 1, text: '≥ uvloop', source: 'BENCH.md, issue 2' },
        {
          vs: 'setImmediate',
          op: '>=',
          ratio: 1 / 1.25,
          text: 'within 1.25× of setImmediate',
          source: 'BENCH.md (issue 2: 1.5×)',
        },
      ],
      compare: ['asyncio'],
      sample: sampler('callsoon-batch'),
    },
    {
      id: 'core/callsoon-chain',
      title: 'callSoon chained: each of 1e6 callbacks schedules the next',
      metric: { unit: 'callbacks/s', better: 'higher' },
      smoke: true,
      systems: [lw, raw('setImmediate', 'Node setImmediate'), asyncio, uvloop],
      goals: [{ vs: 'uvloop', op: '>=', ratio: 1, text: '≥ uvloop', source: 'issue 2 (faster than uvloop call_soon)' }],
      compare: ['setImmediate', 'asyncio'],
      sample: sampler('callsoon-chain'),
    },
    {
      id: 'core/calllater-cancel',
      title: 'callLater schedule+cancel: 1e5 timers, random delays < 1 s, cancel half, then the rest, one iteration',
      metric: { unit: 'timers/s', better: 'higher' },
      smoke: true,
      systems: [lw, raw('setTimeout', 'Node setTimeout/clearTimeout'), asyncio, uvloop],
      goals: [{ vs: 'asyncio', op: '>=', ratio: 2, text: '≥ 2× asyncio', source: 'BENCH.md' }],
      compare: ['uvloop', 'setTimeout'],
      sample: sampler('calllater-cancel'),
    },
    {
      id: 'core/timers-fire',
      title: 'timers firing: 1e5 timers with delays < 1 ms, scheduled and run until the last fires',
      metric: { unit: 'timers/s', better: 'higher' },
      smoke: true,
      systems: [lw, raw('setTimeout', 'Node setTimeout'), asyncio, uvloop],
      goals: [],
      compare: ['uvloop', 'asyncio', 'setTimeout'],
      sample: sampler('timers-fire'),
    },
    {
      id: 'core/pingpong',
      title: 'task switches: two tasks ping-ponging through futures (1e5 rounds)',
      metric: { unit: 'switches/s', better: 'higher' },
      smoke: true,
      systems: [lw, raw('promises', 'Node plain promises'), asyncio, uvloop],
      goals: [{ vs: 'uvloop', op: '>=', ratio: 1, text: '≥ uvloop', source: 'BENCH.md (task switches)' }],
      compare: ['asyncio', 'promises'],
      sample: sampler('pingpong'),
    },
    {
      id: 'core/sleep0-tasks',
      title: 'sleep(0) task switches: 100 tasks each awaiting sleep(0) 1000 times',
      metric: { unit: 'switches/s', better: 'higher' },
      smoke: true,
      systems: [lw, raw('setImmediate-promise', 'Node await setImmediate promise'), asyncio, uvloop],
      goals: [{ vs: 'uvloop', op: '>=', ratio: 1, text: '≥ uvloop', source: 'BENCH.md' }],
      compare: ['asyncio', 'setImmediate-promise'],
      sample: sampler('sleep0-tasks'),
    },
  ];
}
