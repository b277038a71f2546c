// The Node primitives the loop sits on, running the same workloads as loopwork-loop.ts and asyncio_loop.py.
//   node bench/core/node-raw.mjs <workload> <seconds> <warmup-seconds> [scale]
// Prints one JSON line: {"ops": N, "seconds": S}. The workloads are described in bench/README.md.
import { performance } from 'node:perf_hooks';

const [name, seconds = '2', warmup = '0.5', scaleArg = '1'] = process.argv.slice(2);
/** Batch sizes are multiplied by `scale` (the smoke run uses 0.1). */
const size = (n) => Math.max(2, Math.round(n * Number(scaleArg)));

/** Park–Miller: the same sequence in every system's script. */
function delays(n, scale) {
  let s = 42;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 48271) % 2147483647;
    out[i] = (s / 2147483647) * scale;
  }
  return out;
}

/** Every callback does a little work: it counts. */
const sink = { calls: 0 };
const cb = () => {
  sink.calls++;
};

const workloads = {
  // setImmediate: 1e6 callbacks queued, then run.
  async 'callsoon-batch'() {
    const n = size(1_000_000);
    await new Promise((resolve) => {
      for (let i = 0; i < n; i++) setImmediate(cb);
      setImmediate(resolve);
    });
    return n;
  },
  // setImmediate: each callback queues the next (one loop iteration each), 1e6 in a chain.
  async 'callsoon-chain'() {
    const n = size(1_000_000);
    await new Promise((resolve) => {
      let left = n;
      const step = () => {
        if (--left > 0) setImmediate(step);
        else resolve();
      };
      setImmediate(step);
    });
    return n;
  },
  // setTimeout/clearTimeout: 1e5 timers with delays in [0, 1 s), cancel the even ones, then the odd ones,
  // then one loop iteration.
  async 'calllater-cancel'() {
    const n = size(100_000);
    const d = cancelDelays;
    const hs = new Array(n);
    for (let i = 0; i < n; i++) hs[i] = setTimeout(cb, d[i] * 1000);
    for (let i = 0; i < n; i += 2) clearTimeout(hs[i]);
    for (let i = 1; i < n; i += 2) clearTimeout(hs[i]);
    await new Promise((resolve) => setImmediate(resolve));
    return n;
  },
  // setTimeout: 1e5 timers with delays in [0, 1 ms), until the last has fired.
  async 'timers-fire'() {
    const n = size(100_000);
    const d = fireDelays;
    await new Promise((resolve) => {
      let left = n;
      const fire = () => {
        if (--left === 0) resolve();
      };
      for (let i = 0; i < n; i++) setTimeout(fire, d[i] * 1000);
    });
    return n;
  },
  // Plain promises: two async functions hand a baton back and forth, 1e5 rounds (2e5 switches).
  async pingpong() {
    const n = size(100_000);
    const waiters = [null, null];
    const player = async (me, other) => {
      for (let i = 0; i < n; i++) {
        const p = new Promise((resolve) => {
          waiters[me] = resolve;
        });
        const w = waiters[other];
        waiters[other] = null;
        if (w) w();
        await p;
      }
      const w = waiters[other];
      waiters[other] = null;
      if (w) w();
    };
    await Promise.all([player(0, 1), player(1, 0)]);
    return 2 * n;
  },
  // 100 async functions each yielding to the event loop 1000 times through a setImmediate promise.
  async 'sleep0-tasks'() {
    const tasks = 100;
    const m = size(1000);
    const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));
    const worker = async () => {
      for (let i = 0; i < m; i++) await yieldToLoop();
    };
    const all = [];
    for (let t = 0; t < tasks; t++) all.push(worker());
    await Promise.all(all);
    return tasks * m;
  },
};

const cancelDelays = delays(100_000, 1);
const fireDelays = delays(100_000, 0.001);

async function measure(batch, secs) {
  let ops = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    ops += await batch();
    elapsed = (performance.now() - t0) / 1000;
  } while (elapsed < secs);
  return { ops, seconds: elapsed };
}

const batch = workloads[name];
if (!batch) {
  console.error(`unknown workload ${name}; known: ${Object.keys(workloads).join(', ')}`);
  process.exit(2);
}
await measure(batch, Number(warmup));
const result = await measure(batch, Number(seconds));
console.log(JSON.stringify(result));
