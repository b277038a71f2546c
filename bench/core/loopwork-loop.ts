// loopwork's event loop running the same workloads as node-raw.mjs and asyncio_loop.py.
//   node --conditions=loopwork-source --import tsx bench/core/loopwork-loop.ts <workload> <seconds> <warmup> [scale]
// Prints one JSON line: {"ops": N, "seconds": S}. The workloads are described in bench/README.md.
import { performance } from 'node:perf_hooks';
import { loadPackage, usingSource, type Core, type EventLoop, type Future } from '../lib/loopwork.js';

const [name = '', seconds = '2', warmup = '0.5', scaleArg = '1'] = process.argv.slice(2);
/** Batch sizes are multiplied by `scale` (the smoke run uses 0.1). */
const size = (n: number): number => Math.max(2, Math.round(n * Number(scaleArg)));
const { newEventLoop, sleep } = await loadPackage<Core>('core', ['newEventLoop', 'sleep']);

/** Park–Miller: the same sequence in every system's script. */
function delays(n: number, scale: number): Float64Array {
  let s = 42;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 48271) % 2147483647;
    out[i] = (s / 2147483647) * scale;
  }
  return out;
}

const cancelDelays = delays(100_000, 1);
const fireDelays = delays(100_000, 0.001);
/** Every callback does a little work: it counts. */
const sink = { calls: 0 };
const cb = (): void => {
  sink.calls++;
};

type Workload = (loop: EventLoop) => Promise<number>;

const workloads: Record<string, Workload> = {
  async 'callsoon-batch'(loop) {
    const n = size(1_000_000);
    const fut = loop.createFuture<void>();
    for (let i = 0; i < n; i++) loop.callSoon(cb);
    loop.callSoon(() => fut.setResult(undefined));
    await loop.runUntilComplete(fut);
    return n;
  },
  async 'callsoon-chain'(loop) {
    const n = size(1_000_000);
    const fut = loop.createFuture<void>();
    let left = n;
    const step = (): void => {
      if (--left > 0) loop.callSoon(step);
      else fut.setResult(undefined);
    };
    loop.callSoon(step);
    await loop.runUntilComplete(fut);
    return n;
  },
  async 'calllater-cancel'(loop) {
    const n = size(100_000);
    const fut = loop.createFuture<void>();
    const hs = new Array<ReturnType<EventLoop['callLater']>>(n);
    for (let i = 0; i < n; i++) hs[i] = loop.callLater(cancelDelays[i]!, cb);
    for (let i = 0; i < n; i += 2) hs[i]!.cancel();
    for (let i = 1; i < n; i += 2) hs[i]!.cancel();
    loop.callSoon(() => fut.setResult(undefined));
    await loop.runUntilComplete(fut);
    return n;
  },
  async 'timers-fire'(loop) {
    const n = size(100_000);
    const fut = loop.createFuture<void>();
    let left = n;
    const fire = (): void => {
      if (--left === 0) fut.setResult(undefined);
    };
    for (let i = 0; i < n; i++) loop.callLater(fireDelays[i]!, fire);
    await loop.runUntilComplete(fut);
    return n;
  },
  async pingpong(loop) {
    const n = size(100_000);
    const waiters: (Future<void> | null)[] = [null, null];
    const done = loop.createFuture<void>();
    let left = 2;
    const player = async (me: number, other: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const f = loop.createFuture<void>();
        waiters[me] = f;
        const w = waiters[other];
        waiters[other] = null;
        if (w) w.setResult(undefined);
        await f;
      }
      const w = waiters[other];
      waiters[other] = null;
      if (w) w.setResult(undefined);
      if (--left === 0) done.setResult(undefined);
    };
    loop.createTask(() => player(0, 1));
    loop.createTask(() => player(1, 0));
    await loop.runUntilComplete(done);
    return 2 * n;
  },
  async 'sleep0-tasks'(loop) {
    const tasks = 100;
    const m = size(1000);
    const done = loop.createFuture<void>();
    let left = tasks;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < m; i++) await sleep(0);
      if (--left === 0) done.setResult(undefined);
    };
    for (let t = 0; t < tasks; t++) loop.createTask(worker);
    await loop.runUntilComplete(done);
    return tasks * m;
  },
};

async function measure(batch: Workload, loop: EventLoop, secs: number): Promise<{ ops: number; seconds: number }> {
  let ops = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    ops += await batch(loop);
    elapsed = (performance.now() - t0) / 1000;
  } while (elapsed < secs);
  return { ops, seconds: elapsed };
}

const batch = workloads[name];
if (!batch) {
  console.error(`unknown workload ${name}; known: ${Object.keys(workloads).join(', ')}`);
  process.exit(2);
}
const loop = newEventLoop();
await measure(batch, loop, Number(warmup));
const result = await measure(batch, loop, Number(seconds));
loop.close();
console.log(JSON.stringify({ ...result, build: usingSource ? 'src' : 'dist' }));
