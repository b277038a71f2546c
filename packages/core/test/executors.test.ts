import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { threadId as mainThreadId } from 'node:worker_threads';
import {
  BrokenExecutorError,
  CancelledError,
  ExecutorUnsendableError,
  Future,
  ProcessPoolExecutor,
  RuntimeError,
  ThreadPoolExecutor,
  getRunningLoop,
  newEventLoop,
  run,
  toThread,
} from '@loopwork/core';
import type { BaseEventLoop, Executor, PoolExecutor } from '@loopwork/core';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** Release functions of the gates still closed: a test's cleanup opens them before it shuts pools down. */
const openGates = new Set<() => void>();

function pool<P extends PoolExecutor>(t: TestContext, executor: P): P {
  t.after(async () => {
    for (const release of openGates) release();
    await executor.shutdown({ wait: true, cancelFutures: true });
  });
  return executor;
}

/** `Atomics.waitAsync` (Node 16+; typed only in lib ES2024). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;

/**
 * A gate shared with worker threads: workers count themselves in at index 0 and block until `release()`
 * (index 1); index 2 receives a worker's threadId.
 */
function gate(t: TestContext) {
  const sab = new SharedArrayBuffer(16);
  const i32 = new Int32Array(sab);
  const release = (): void => {
    Atomics.store(i32, 1, 1);
    Atomics.notify(i32, 1);
    openGates.delete(release);
  };
  openGates.add(release);
  t.after(release);
  return {
    sab,
    i32,
    release,
    /** Resolves once `n` workers have entered. */
    async entered(n = 1): Promise<void> {
      for (let v = Atomics.load(i32, 0); v < n; v = Atomics.load(i32, 0)) {
        const r = waitAsync(i32, 0, v);
        if (r.async) await r.value;
      }
    },
  };
}

/** Runs in a worker: counts itself in, records its thread, blocks until released (bounded), returns `value`. */
async function blockUntilReleased(sab: SharedArrayBuffer, value: number): Promise<number> {
  const { threadId } = await import('node:worker_threads');
  const i32 = new Int32Array(sab);
  Atomics.store(i32, 2, threadId);
  Atomics.add(i32, 0, 1);
  Atomics.notify(i32, 0);
  Atomics.wait(i32, 1, 0, 60_000);
  return value;
}

/** A function sent to a worker may use `require` (from the working directory), as a sync function must. */
function cpuBound(n: number): { sum: number; thread: number; pid: number } {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += i * i;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { threadId } = require('node:worker_threads') as { threadId: number };
  return { sum, thread: threadId, pid: process.pid };
}

async function currentThread(): Promise<number> {
  return (await import('node:worker_threads')).threadId;
}

test('ThreadPoolExecutor: a CPU-bound function runs in another thread and gives its result', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 2 }));
  const r = await ex.submit(cpuBound, 1000);
  let expected = 0;
  for (let i = 0; i < 1000; i++) expected += i * i;
  assert.equal(r.sum, expected);
  assert.notEqual(r.thread, mainThreadId);
  assert.equal(r.pid, process.pid);
});

test("toThread runs a function in the running loop's default executor, in another thread (asyncio.to_thread)", async () => {
  await run(async () => {
    const r = await toThread(cpuBound, 1000);
    assert.notEqual(r.thread, mainThreadId);
    assert.equal(r.pid, process.pid);
    await getRunningLoop().shutdownDefaultExecutor();
  });
  assert.throws(
    () => toThread(cpuBound, 1),
    (e: unknown) => RuntimeError.isInstance(e) && /no running event loop/.test(String(e)),
  );
});

test('ThreadPoolExecutor: two calls run at once in two threads', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 2 }));
  const g = gate(t);
  const both = async (sab: SharedArrayBuffer): Promise<[number, boolean]> => {
    const { threadId } = await import('node:worker_threads');
    const i32 = new Int32Array(sab);
    Atomics.add(i32, 0, 1);
    Atomics.notify(i32, 0);
    // Each waits (bounded) until the other one has entered too, which happens only if they run in parallel.
    const deadline = Date.now() + 30_000;
    while (Atomics.load(i32, 0) < 2 && Date.now() < deadline) Atomics.wait(i32, 0, 1, 1_000);
    return [threadId, Atomics.load(i32, 0) >= 2];
  };
  const [a, b] = await Promise.all([ex.submit(both, g.sab), ex.submit(both, g.sab)]);
  assert.deepEqual([a[1], b[1]], [true, true]);
  assert.notEqual(a[0], b[0]);
});

test('arguments and results round-trip by structured clone; async functions are awaited in the worker', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const value = {
    n: 1.5,
    big: 2n ** 70n,
    s: 'é',
    date: new Date(0),
    map: new Map([['k', [1, 2]]]),
    set: new Set(['x']),
    bytes: new Uint8Array([1, 2, 3]),
    nested: { a: [null, undefined, true] },
    re: /a+/g,
  };
  assert.deepEqual(await ex.submit((v: typeof value) => v, value), value);
  const doubled = await ex.submit(
    (m: Map<string, number>, k: number) => new Map([...m].map(([a, b]) => [a, b * k])),
    new Map([['a', 2]]),
    3,
  );
  assert.deepEqual(doubled, new Map([['a', 6]]));
  const cpus = await ex.submit(async () => {
    const os = await import('node:os');
    return os.availableParallelism();
  });
  assert.equal(cpus, availableParallelism());
  // Methods without `this` and functions with nested named functions and classes can be sent.
  const obj = {
    twice(x: number) {
      return x * 2;
    },
  };
  assert.equal(await ex.submit(obj.twice, 21), 42);
  function outer(n: number): number {
    function inner(x: number): number {
      return x + 1;
    }
    class K {
      static plus(y: number): number {
        return y + 100;
      }
    }
    return K.plus(inner(n));
  }
  assert.equal(await ex.submit(outer, 1), 102);
});

test('an error thrown in the worker is carried back: class, name, message, stack, cause, code', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  await assert.rejects(
    ex.submit(function failing(code: string) {
      const e = new RangeError('out of range', { cause: new Error('root') }) as RangeError & { code?: string };
      e.code = code;
      throw e;
    }, 'E_CODE'),
    (e: unknown) => {
      assert.ok(e instanceof RangeError);
      const err = e as RangeError & { code: string; cause: Error };
      assert.equal(err.name, 'RangeError');
      assert.equal(err.message, 'out of range');
      assert.equal(err.code, 'E_CODE');
      assert.equal(err.cause.message, 'root');
      assert.match(err.stack ?? '', /^RangeError: out of range\n\s+at failing/);
      return true;
    },
  );
  await assert.rejects(
    ex.submit(() => {
      class MyError extends Error {
        override name = 'MyError';
      }
      throw new MyError('mine');
    }),
    { name: 'MyError', message: 'mine' },
  );
  await assert.rejects(
    ex.submit(() => {
      throw 42;
    }),
    (e: unknown) => e === 42,
  );
  await assert.rejects(
    ex.submit(async () => {
      throw new TypeError('async failure');
    }),
    TypeError,
  );
});

const captured = 'a variable of the caller';

test('a closure over the caller is not sent: the name is not defined in the worker', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  await assert.rejects(
    ex.submit(() => captured.length),
    (e: unknown) => e instanceof ReferenceError && /captured is not defined/.test(e.message),
  );
});

test('unsendable functions are refused at once with ERR_LOOPWORK_EXECUTOR_UNSENDABLE', (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const unsendable = (why: RegExp) => (e: unknown) => {
    assert.ok(ExecutorUnsendableError.isInstance(e));
    assert.ok(e instanceof TypeError);
    assert.equal((e as { code: string }).code, 'ERR_LOOPWORK_EXECUTOR_UNSENDABLE');
    assert.match((e as Error).message, why);
    return true;
  };
  function plain(x: number): number {
    return x;
  }
  assert.throws(() => ex.submit(plain.bind(null), 1), unsendable(/native or bound function/));
  assert.throws(() => ex.submit(Math.max, 1, 2), unsendable(/function max\(\) cannot be sent.*native/));
  class Counter {
    count = 1;
    read(): number {
      return this.count;
    }
  }
  assert.throws(() => ex.submit(Counter.prototype.read), unsendable(/method that uses `this`/));
  assert.throws(() => ex.submit(Counter as never), unsendable(/it is a class/));
  const self = {
    n: 1,
    get(): () => number {
      return () => this.n;
    },
  };
  assert.throws(() => ex.submit(self.get()), unsendable(/arrow function that uses the `this`/));
  assert.throws(() => ex.submit(42 as never), {
    name: 'TypeError',
    message: /a callable object was expected by submit\(\), got 42/,
  });
});

test('an arrow function whose nested functions and classes use their own `this` is sent', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const withClass = (n: number): number => {
    class Box {
      v: number;
      constructor(v: number) {
        this.v = v;
      }
      twice(): number {
        return this.v * 2;
      }
    }
    return new Box(n).twice();
  };
  const withFunction = (n: number): number => {
    const o = {
      n,
      get: function (): number {
        return this.n + 1;
      },
    };
    return o.get();
  };
  assert.equal(await ex.submit(withClass, 21), 42);
  assert.equal(await ex.submit(withFunction, 6), 7);
  const self = {
    n: 1,
    get(): () => number {
      // A nested arrow still sees the `this` around the sent function.
      return () => [1].map(() => this.n)[0]!;
    },
  };
  assert.throws(() => ex.submit(self.get()), /arrow function that uses the `this`/);
});

test('arguments or a result that cannot be cloned fail the future with ERR_LOOPWORK_EXECUTOR_UNSENDABLE', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  await assert.rejects(
    ex.submit(
      (f: unknown) => f,
      () => 1,
    ),
    (e: unknown) => {
      assert.ok(ExecutorUnsendableError.isInstance(e));
      assert.match((e as Error).message, /arguments .* cannot be sent to a worker thread/);
      assert.equal(((e as Error).cause as Error).name, 'DataCloneError');
      return true;
    },
  );
  await assert.rejects(
    ex.submit(() => () => 1),
    {
      code: 'ERR_LOOPWORK_EXECUTOR_UNSENDABLE',
      message: /the result cannot be sent back/,
    },
  );
  // The worker is still usable.
  assert.equal(await ex.submit((x: number) => x + 1, 1), 2);
});

test('cancel() cancels queued work (it never runs) but not running work; abort() stops running work', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const g = gate(t);
  const first = ex.submit(blockUntilReleased, g.sab, 1);
  await g.entered(1);
  const ranCounter = new Int32Array(new SharedArrayBuffer(4));
  const second = ex.submit((sab: SharedArrayBuffer) => {
    Atomics.add(new Int32Array(sab), 0, 1);
  }, ranCounter.buffer as SharedArrayBuffer);
  assert.equal(first.running(), true);
  assert.equal(second.running(), false);
  assert.equal(first.cancel(), false);
  assert.equal(second.cancel(), true);
  assert.equal(second.cancelled(), true);
  await assert.rejects(second, CancelledError);
  g.release();
  assert.equal(await first, 1);
  assert.equal(first.done(), true);
  assert.equal(first.cancel(), false);
  await ex.shutdown({ wait: true });
  assert.equal(Atomics.load(ranCounter, 0), 0);
});

test('abort() ends the thread running the work; the pool goes on with a new thread', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const g = gate(t);
  const blocked = ex.submit(blockUntilReleased, g.sab, 1);
  await g.entered(1);
  const blockedThread = Atomics.load(g.i32, 2);
  assert.equal(blocked.abort(), true);
  await assert.rejects(blocked, CancelledError);
  const next = await ex.submit(currentThread);
  assert.notEqual(next, blockedThread);
});

test('shutdown({wait}) waits for running and queued work; later submits are refused', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const g = gate(t);
  const order: string[] = [];
  const a = ex.submit(blockUntilReleased, g.sab, 1).then((v) => order.push(`a${v}`));
  const b = ex.submit((x: number) => x, 2).then((v) => order.push(`b${v}`));
  await g.entered(1);
  const joined = ex.shutdown({ wait: true }).then(() => order.push('joined'));
  assert.throws(() => ex.submit(() => 1), {
    name: 'RuntimeError',
    message: 'cannot schedule new futures after shutdown',
  });
  g.release();
  await Promise.all([a, b, joined]);
  assert.deepEqual(order, ['a1', 'b2', 'joined']);
  assert.match(inspect(ex), /workers=0 idle=0 queued=0 shutdown/);
});

test('shutdown({cancelFutures}) cancels queued work; running work finishes', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const g = gate(t);
  const running = ex.submit(blockUntilReleased, g.sab, 7);
  const queued = [ex.submit((x: number) => x, 1), ex.submit((x: number) => x, 2)];
  await g.entered(1);
  const joined = ex.shutdown({ wait: true, cancelFutures: true });
  for (const q of queued) await assert.rejects(q, CancelledError);
  g.release();
  assert.equal(await running, 7);
  await joined;
});

test('maxWorkers: defaults as concurrent.futures, validated', (t) => {
  const cpus = availableParallelism();
  assert.equal(pool(t, new ThreadPoolExecutor()).maxWorkers, Math.min(32, cpus + 4));
  assert.equal(pool(t, new ProcessPoolExecutor()).maxWorkers, cpus);
  assert.throws(() => new ThreadPoolExecutor({ maxWorkers: 0 }), {
    name: 'ValueError',
    message: 'maxWorkers must be greater than 0',
  });
  assert.throws(() => new ProcessPoolExecutor({ maxWorkers: 1.5 }), TypeError);
});

test('a worker thread that exits while running gives BrokenExecutorError; the pool goes on', async (t) => {
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  await assert.rejects(
    ex.submit(() => process.exit(3)),
    (e: unknown) =>
      BrokenExecutorError.isInstance(e) && /thread in the pool was terminated abruptly/.test((e as Error).message),
  );
  assert.equal(await ex.submit(() => 5), 5);
});

test('ProcessPoolExecutor: runs in another process; round trip; errors; crashes; cancel and abort', async (t) => {
  const ex = pool(t, new ProcessPoolExecutor({ maxWorkers: 1 }));
  const r = await ex.submit(cpuBound, 1000);
  assert.notEqual(r.pid, process.pid);
  assert.equal(r.thread, 0);
  const firstPid = r.pid;
  assert.deepEqual(
    await ex.submit((m: Map<string, Date>) => [...m.values()].map((d) => d.getTime()), new Map([['x', new Date(5)]])),
    [5],
  );
  await assert.rejects(
    ex.submit(() => {
      const e = new TypeError('in the child') as TypeError & { code?: string };
      e.code = 'E_CHILD';
      throw e;
    }),
    { name: 'TypeError', message: 'in the child', code: 'E_CHILD' },
  );
  await assert.rejects(
    ex.submit((f: unknown) => f, Symbol('x')),
    { code: 'ERR_LOOPWORK_EXECUTOR_UNSENDABLE' },
  );

  // Queued work is cancelled; running work is aborted by killing its process.
  const forever = ex.submit(() => new Promise(() => {}));
  const queued = ex.submit(() => 'never');
  assert.equal(forever.running(), true);
  assert.equal(forever.cancel(), false);
  assert.equal(queued.cancel(), true);
  assert.equal(forever.abort(), true);
  await assert.rejects(forever, CancelledError);
  await assert.rejects(queued, CancelledError);
  const pid2 = await ex.submit(() => process.pid);
  assert.notEqual(pid2, firstPid);

  await assert.rejects(
    ex.submit(() => process.exit(3)),
    (e: unknown) =>
      BrokenExecutorError.isInstance(e) &&
      /process in the pool was terminated abruptly/.test((e as Error).message) &&
      /exited with code 3/.test(((e as Error).cause as Error).message),
  );
  assert.equal(await ex.submit((a: number, b: number) => a * b, 6, 7), 42);
});

test('idle workers do not keep the process alive', async () => {
  const code = `
    import { ThreadPoolExecutor, ProcessPoolExecutor } from '@loopwork/core';
    const t = new ThreadPoolExecutor({ maxWorkers: 2 });
    const p = new ProcessPoolExecutor({ maxWorkers: 2 });
    const r = await Promise.all([t.submit((x) => x + 1, 1), p.submit((x) => x * 10, 3), t.submit(() => 'ok')]);
    console.log(JSON.stringify(r));
  `;
  const child = spawn(
    process.execPath,
    ['--conditions=loopwork-source', '--import', 'tsx', '--input-type=module', '-e', code],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [status] = (await once(child, 'exit')) as [number | null];
  assert.equal(status, 0);
  assert.equal(out.trim(), '[2,30,"ok"]');
});

// ---- the loop methods ----------------------------------------------------------------------------------

function closeLoop(t: TestContext, loop: BaseEventLoop): void {
  t.after(async () => {
    for (const release of openGates) release();
    const ex = loop._defaultExecutor;
    if (!loop.isClosed()) loop.close();
    if (ex !== null) await ex.shutdown({ wait: true, cancelFutures: true });
  });
}

test('runInExecutor(null) creates the default ThreadPoolExecutor lazily and returns a Future of the loop', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  assert.equal(loop._defaultExecutor, null);
  const result = await loop.runUntilComplete(async () => {
    const fut = loop.runInExecutor(null, cpuBound, 10);
    assert.ok(fut instanceof Future);
    assert.equal(fut.getLoop(), loop);
    return fut;
  });
  assert.equal(result.sum, 285);
  assert.notEqual(result.thread, mainThreadId);
  const first = loop._defaultExecutor as Executor | null;
  assert.ok(first instanceof ThreadPoolExecutor);
  await loop.runUntilComplete(async () => loop.runInExecutor(null, () => 1));
  assert.equal(loop._defaultExecutor, first);
});

test('the Future fails with the error of the function', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  await assert.rejects(
    loop.runUntilComplete(async () =>
      loop.runInExecutor(
        null,
        (x: number) => {
          throw new RangeError(`bad ${x}`);
        },
        3,
      ),
    ),
    { name: 'RangeError', message: 'bad 3' },
  );
});

test('shutdownDefaultExecutor shuts the default executor down; the default executor is then refused', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  await loop.runUntilComplete(async () => loop.runInExecutor(null, () => 1));
  const ex = loop._defaultExecutor as ThreadPoolExecutor;
  await loop.runUntilComplete(loop.shutdownDefaultExecutor());
  assert.equal(loop._defaultExecutor, null);
  assert.match(inspect(ex), /workers=0 .*shutdown/);
  assert.throws(() => ex.submit(() => 1), { message: 'cannot schedule new futures after shutdown' });
  assert.throws(
    () => loop.runInExecutor(null, () => 1),
    (e: unknown) => RuntimeError.isInstance(e) && (e as Error).message === 'Executor shutdown has been called',
  );
  // An explicit executor still works.
  const other = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  assert.equal(await loop.runUntilComplete(async () => loop.runInExecutor(other, () => 2)), 2);
});

test('run() shuts the default executor down at exit', async () => {
  let ex: Executor | null = null;
  const r = await run(async () => {
    const loop = getRunningLoop();
    const v = await loop.runInExecutor(null, (a: number, b: number) => a + b, 2, 3);
    ex = loop._defaultExecutor;
    return v;
  });
  assert.equal(r, 5);
  assert.ok(ex !== null);
  assert.match(inspect(ex), /ThreadPoolExecutor .*workers=0 .*shutdown/);
});

test('shutdownDefaultExecutor(timeout) warns when the work outlives the timeout', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  const g = gate(t);
  const warned = once(process, 'warning') as Promise<[Error]>;
  await loop.runUntilComplete(async () => {
    const work = loop.runInExecutor(null, blockUntilReleased, g.sab, 9);
    await g.entered(1);
    const ex = loop._defaultExecutor as ThreadPoolExecutor;
    await loop.shutdownDefaultExecutor(0.05);
    const [warning] = await warned;
    assert.equal(warning.name, 'RuntimeWarning');
    assert.equal(warning.message, 'The executor did not finishing joining its threads within 0.05 seconds.');
    g.release();
    assert.equal(await work, 9);
    await ex.shutdown({ wait: true });
  });
});

test('runInExecutor on a closed loop raises; a non-executor or non-function is a TypeError', (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  assert.throws(() => loop.runInExecutor({} as never, () => 1), {
    name: 'TypeError',
    message: /executor must be an Executor or null/,
  });
  assert.throws(() => loop.runInExecutor(null, 'f' as never), {
    name: 'TypeError',
    message: /a callable object was expected by runInExecutor\(\)/,
  });
  loop.close();
  assert.throws(() => loop.runInExecutor(null, () => 1), { message: 'Event loop is closed' });
});

test('setDefaultExecutor takes any Executor and refuses others', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  const calls: string[] = [];
  // An executor that runs in this thread: any object with submit() and shutdown() is accepted.
  const inline: Executor = {
    submit(fn, ...args) {
      calls.push(fn.name);
      return Promise.resolve(fn(...args));
    },
    shutdown() {
      calls.push('shutdown');
      return Promise.resolve();
    },
  };
  loop.setDefaultExecutor(inline);
  function named(x: number): number {
    return x * 3;
  }
  assert.equal(await loop.runUntilComplete(async () => loop.runInExecutor(null, named, 4)), 12);
  await loop.runUntilComplete(loop.shutdownDefaultExecutor());
  assert.deepEqual(calls, ['named', 'shutdown']);
  assert.throws(() => loop.setDefaultExecutor({ submit() {} } as never), {
    name: 'TypeError',
    message: /executor must be an Executor/,
  });
  assert.throws(() => loop.setDefaultExecutor(null as never), TypeError);
});

test('cancelling the Future cancels queued work; it never runs', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const g = gate(t);
  const ran = new Int32Array(new SharedArrayBuffer(4));
  await loop.runUntilComplete(async () => {
    const first = loop.runInExecutor(ex, blockUntilReleased, g.sab, 1);
    await g.entered(1);
    const second = loop.runInExecutor(
      ex,
      (sab: SharedArrayBuffer) => void Atomics.add(new Int32Array(sab), 0, 1),
      ran.buffer as SharedArrayBuffer,
    );
    second.cancel();
    await assert.rejects(async () => await second, CancelledError);
    g.release();
    assert.equal(await first, 1);
  });
  await ex.shutdown({ wait: true });
  assert.equal(Atomics.load(ran, 0), 0);
});

test('cancelling the Future of running work ends the worker running it', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const g = gate(t);
  const next = await loop.runUntilComplete(async () => {
    const fut = loop.runInExecutor(ex, blockUntilReleased, g.sab, 1);
    await g.entered(1);
    fut.cancel();
    await assert.rejects(async () => await fut, CancelledError);
    return loop.runInExecutor(ex, currentThread);
  });
  assert.notEqual(next, Atomics.load(g.i32, 2));
});

test('a CancelledError from the executor cancels the Future', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  const ex = pool(t, new ThreadPoolExecutor({ maxWorkers: 1 }));
  const g = gate(t);
  await loop.runUntilComplete(async () => {
    const running = loop.runInExecutor(ex, blockUntilReleased, g.sab, 1);
    await g.entered(1);
    const queued = loop.runInExecutor(ex, () => 2);
    void ex.shutdown({ wait: false, cancelFutures: true });
    await assert.rejects(async () => await queued, CancelledError);
    assert.equal(queued.cancelled(), true);
    g.release();
    assert.equal(await running, 1);
  });
});

test('runInExecutor with a ProcessPoolExecutor', async (t) => {
  const loop = newEventLoop();
  closeLoop(t, loop);
  const ex = pool(t, new ProcessPoolExecutor({ maxWorkers: 2 }));
  const pids = await loop.runUntilComplete(async () =>
    Promise.all([loop.runInExecutor(ex, () => process.pid), loop.runInExecutor(ex, cpuBound, 100)]),
  );
  assert.notEqual(pids[0], process.pid);
  assert.notEqual(pids[1].pid, process.pid);
});
