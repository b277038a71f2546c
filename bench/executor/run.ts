// Executor round trips: `loop.runInExecutor(pool, fn, x)` against the same pool's `submit(fn, x)` called
// directly, side by side in one run, for loopwork's ThreadPoolExecutor and ProcessPoolExecutor (and piscina's
// bare `run()` as a reference for the thread pool). A standalone script, not a test:
//   node --conditions=loopwork-source --import tsx bench/executor/run.ts [seconds=1] [rounds=3] [--json]
// Modes: `seq` has one call in flight (latency bound); `window` keeps 16 calls per worker in flight
// (throughput bound). Each cell is the median of `rounds` interleaved samples of `seconds` each.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type {
  BaseEventLoop,
  PoolExecutor,
  ProcessPoolExecutor,
  ThreadPoolExecutor,
} from '../../packages/core/src/index.js';
import { loadPackage } from '../lib/loopwork.js';

interface CoreExecutors {
  newEventLoop(): BaseEventLoop;
  ThreadPoolExecutor: typeof ThreadPoolExecutor;
  ProcessPoolExecutor: typeof ProcessPoolExecutor;
}

interface PiscinaPool {
  run(task: unknown, options?: { name?: string }): Promise<unknown>;
  destroy(): Promise<void>;
}

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const json = process.argv.includes('--json');
const seconds = Number(args[0] ?? '1');
const rounds = Number(args[1] ?? '3');
const WORKERS = 2;
const WINDOW = 16 * WORKERS;

const core = await loadPackage<CoreExecutors>('core', ['newEventLoop', 'ThreadPoolExecutor', 'ProcessPoolExecutor']);

/** The work: as small as it gets, so that the figures are the cost of the round trip itself. */
const increment = (x: number): number => x + 1;

type Call = (x: number) => PromiseLike<unknown>;

/** Calls `call` for `seconds` with `inFlight` calls outstanding; returns calls per second. */
async function measure(call: Call, inFlight: number, secs: number): Promise<number> {
  let n = 0;
  const end = performance.now() + secs * 1e3;
  const lane = async (): Promise<void> => {
    while (performance.now() < end) {
      await call(n);
      n++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, lane));
  return n / ((performance.now() - t0) / 1e3);
}

interface System {
  name: string;
  /** Measures one sample of `mode`. */
  sample(inFlight: number, secs: number): Promise<number>;
}

const loop = core.newEventLoop();

function bare(pool: PoolExecutor): System['sample'] {
  return (inFlight, secs) => measure((x) => pool.submit(increment, x), inFlight, secs);
}

function viaLoop(pool: PoolExecutor): System['sample'] {
  // `runUntilComplete` runs the loop for the whole sample: each call's Future is set on the loop, as in an app.
  return (inFlight, secs) =>
    loop.runUntilComplete(() => measure((x) => loop.runInExecutor(pool, increment, x), inFlight, secs));
}

const threads = new core.ThreadPoolExecutor({ maxWorkers: WORKERS });
const processes = new core.ProcessPoolExecutor({ maxWorkers: WORKERS });

let piscina: PiscinaPool | null = null;
try {
  // piscina is a dependency of @loopwork/core: resolve it from there.
  const req = createRequire(fileURLToPath(new URL('../../packages/core/package.json', import.meta.url)));
  const { Piscina } = req('piscina') as { Piscina: new (options: object) => PiscinaPool };
  piscina = new Piscina({
    filename: fileURLToPath(new URL('./piscina-worker.mjs', import.meta.url)),
    minThreads: WORKERS,
    maxThreads: WORKERS,
    idleTimeout: Infinity,
  });
} catch (error) {
  console.error(`piscina not available, its row is left out: ${(error as Error).message}`);
}

const groups: { label: string; bare: System; loop: System }[] = [
  {
    label: 'ThreadPoolExecutor',
    bare: { name: 'pool.submit', sample: bare(threads) },
    loop: { name: 'runInExecutor', sample: viaLoop(threads) },
  },
  {
    label: 'ProcessPoolExecutor',
    bare: { name: 'pool.submit', sample: bare(processes) },
    loop: { name: 'runInExecutor', sample: viaLoop(processes) },
  },
];

const modes = [
  { mode: 'seq', inFlight: 1 },
  { mode: 'window', inFlight: WINDOW },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

// Warm-up: start the workers, compile the function in each, let the JIT settle.
for (const g of groups) {
  await g.bare.sample(WINDOW, 0.3);
  await g.loop.sample(WINDOW, 0.3);
}
if (piscina !== null) await measure((x) => (piscina as PiscinaPool).run(x), WINDOW, 0.3);

interface Row {
  pool: string;
  mode: string;
  bare: number;
  loop: number;
  ratio: number;
  piscina?: number;
}
const rows: Row[] = [];
for (const g of groups) {
  for (const { mode, inFlight } of modes) {
    const b: number[] = [];
    const l: number[] = [];
    const p: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // Interleaved, alternating which goes first.
      if (r % 2 === 0) {
        b.push(await g.bare.sample(inFlight, seconds));
        l.push(await g.loop.sample(inFlight, seconds));
      } else {
        l.push(await g.loop.sample(inFlight, seconds));
        b.push(await g.bare.sample(inFlight, seconds));
      }
      if (piscina !== null && g.label === 'ThreadPoolExecutor') {
        p.push(await measure((x) => (piscina as PiscinaPool).run(x), inFlight, seconds));
      }
    }
    const row: Row = { pool: g.label, mode, bare: median(b), loop: median(l), ratio: median(l) / median(b) };
    if (p.length > 0) row.piscina = median(p);
    rows.push(row);
  }
}

await threads.shutdown();
await processes.shutdown();
await piscina?.destroy();
loop.close();

if (json) {
  console.log(JSON.stringify({ workers: WORKERS, window: WINDOW, seconds, rounds, rows }));
} else {
  const fmt = (x: number | undefined): string => (x === undefined ? '' : Math.round(x).toLocaleString('en-US'));
  const header = ['pool', 'mode', 'pool.submit/s', 'runInExecutor/s', 'ratio', 'piscina.run/s'];
  const body = rows.map((r) => [r.pool, r.mode, fmt(r.bare), fmt(r.loop), r.ratio.toFixed(2), fmt(r.piscina)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  console.log(`executor round trips: ${WORKERS} workers, window ${WINDOW}, median of ${rounds} × ${seconds} s`);
  console.log(line(header));
  for (const b of body) console.log(line(b));
}
