/**
 * The reference's "Executing code in thread or process pools": a blocking read and a CPU-bound sum, run in the
 * loop's default executor, in a custom thread pool, and in a custom process pool.
 *
 * The functions are sent to the workers as their source text, so they use only their arguments, globals and
 * what they import themselves (no variables of this module).
 *
 * Run: `node --conditions=loopwork-source --import tsx apps/examples/src/executor.ts`
 */
import { ProcessPoolExecutor, ThreadPoolExecutor, getRunningLoop, run } from '@loopwork/core';

async function blockingIo(): Promise<Uint8Array> {
  // File operations (such as logging) can block the event loop: run them in a thread pool.
  const { closeSync, openSync, readSync } = await import('node:fs');
  const fd = openSync('/dev/urandom', 'r');
  try {
    const data = Buffer.alloc(100);
    readSync(fd, data);
    return data;
  } finally {
    closeSync(fd);
  }
}

function cpuBound(): bigint {
  // CPU-bound operations will block the event loop: in general it is preferable to run them in a process pool.
  // The sum of i * i for i below 10 ** 7 exceeds 2 ** 53: exact partial sums are added as BigInt.
  const n = 10 ** 7;
  let total = 0n;
  for (let start = 0; start < n; start += 64) {
    let partial = 0;
    for (let i = start; i < Math.min(start + 64, n); i++) partial += i * i;
    total += BigInt(partial);
  }
  return total;
}

/** Shows bytes as Python's `bytes` repr would be shown by Node: `<Buffer 1f 8b … 90 more bytes>`. */
function bytes(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

async function main(): Promise<void> {
  const loop = getRunningLoop();

  // Options:

  // 1. Run in the default loop's executor:
  const result1 = await loop.runInExecutor(null, blockingIo);
  console.log('default thread pool', bytes(result1));

  // 2. Run in a custom thread pool:
  {
    await using pool = new ThreadPoolExecutor();
    const result = await loop.runInExecutor(pool, blockingIo);
    console.log('custom thread pool', bytes(result));
  }

  // 3. Run in a custom process pool:
  {
    await using pool = new ProcessPoolExecutor();
    const result = await loop.runInExecutor(pool, cpuBound);
    console.log('custom process pool', String(result));
  }
}

await run(main);
