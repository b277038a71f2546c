import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ALL_COMPLETED,
  CancelledError,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  Future,
  RuntimeError,
  Task,
  TimeoutError,
  allTasks,
  asCompleted,
  createTask,
  currentTask,
  gather,
  getRunningLoop,
  newEventLoop,
  shield,
  sleep,
  wait,
  waitFor,
} from '@loopwork/core';
import type { BaseEventLoop, ExceptionContext } from '@loopwork/core';
import { exposedGc } from './helpers.js';

function withLoop<T>(body: (loop: BaseEventLoop) => Promise<T>): Promise<T> {
  const loop = newEventLoop();
  return loop.runUntilComplete(() => body(loop)).finally(() => loop.close());
}

const isCancelled = (e: unknown): boolean => CancelledError.isInstance(e);

describe('Task', () => {
  test('runs its coroutine on the next iteration and resolves with its result', () =>
    withLoop(async (loop) => {
      let started = false;
      const t = loop.createTask(async () => {
        started = true;
        return 5;
      });
      assert.ok(t instanceof Task && t instanceof Future);
      assert.equal(started, false, 'a task starts on the next iteration, as in asyncio');
      assert.equal(await t, 5);
      assert.equal(t.result(), 5);
    }));

  test('cancel() raises CancelledError at the current await; finally runs; the task ends cancelled', () =>
    withLoop(async (loop) => {
      const log: string[] = [];
      const t = loop.createTask(async () => {
        try {
          log.push('start');
          await loop.createFuture();
          log.push('never');
        } finally {
          log.push('finally');
        }
      });
      await sleep(0);
      assert.equal(t.cancel('stop it'), true);
      await assert.rejects(
        async () => await t,
        (e: unknown) => isCancelled(e) && (e as Error).message === 'stop it',
      );
      assert.deepEqual(log, ['start', 'finally']);
      assert.equal(t.cancelled(), true);
      assert.equal(t.cancel(), false, 'cancelling a done task is false');
    }));

  test('cancel() twice before the task wakes: it sees the first message, as asyncio keeps it', () =>
    withLoop(async (loop) => {
      const t = loop.createTask(async () => await sleep(10));
      await sleep(0);
      t.cancel('first');
      t.cancel('second');
      await assert.rejects(
        async () => await t,
        (e: unknown) => isCancelled(e) && (e as Error).message === 'first',
      );
      assert.equal(t.cancelling(), 2);
    }));

  test('a task awaiting itself, or a Future of another loop, gets RuntimeError instead of waiting forever', () =>
    withLoop(async (loop) => {
      const self: { t: Task<void> | null } = { t: null };
      self.t = loop.createTask(async () => {
        await sleep(0);
        await self.t!;
      });
      await assert.rejects(
        async () => await self.t!,
        (e: unknown) =>
          RuntimeError.isInstance(e) &&
          /^Task cannot await on itself: <Task pending name='Task-\d+'/.test((e as Error).message),
      );
      const other = newEventLoop();
      try {
        const foreign = other.createFuture<number>();
        await assert.rejects(
          async () => await foreign,
          (e: unknown) =>
            RuntimeError.isInstance(e) &&
            / got Future <Future pending> attached to a different loop$/.test((e as Error).message),
        );
      } finally {
        other.close();
      }
    }));

  test("sleep()'s promise is cancellable where JavaScript started it: waitFor, gather, a task made from it", () =>
    withLoop(async (loop) => {
      // asyncio's wait_for(asyncio.sleep(10), 0.05) gets the coroutine; here sleep() has started, and its
      // promise cancels its wait when the Task wrapping it is cancelled.
      const t0 = loop.time();
      await assert.rejects(waitFor(sleep(10), 0.05), TimeoutError);
      assert.ok(loop.time() - t0 < 1, `waitFor took ${loop.time() - t0} s`);
      const g = gather(sleep(10, 'a'), sleep(10, 'b'));
      await sleep(0);
      g.cancel('stop');
      await assert.rejects(
        async () => await g,
        (e: unknown) => isCancelled(e) && (e as Error).message === 'stop',
      );
      const t = loop.createTask(sleep(10));
      await sleep(0);
      t.cancel();
      await assert.rejects(async () => await t, isCancelled);
      assert.ok(loop.time() - t0 < 1, `all took ${loop.time() - t0} s`);
      assert.equal(new Task(sleep(0), { name: 42 as unknown as string }).getName(), '42');
    }));

  test('loop.runUntilComplete(sleep(t)) on a loop not running yet: the sleep starts in that loop', async () => {
    // asyncio's loop.run_until_complete(asyncio.sleep(t, 'ok')): the coroutine runs in the loop that runs it.
    const loop = newEventLoop();
    try {
      const t0 = loop.time();
      assert.equal(await loop.runUntilComplete(sleep(0.03, 'ok')), 'ok');
      const took = loop.time() - t0;
      assert.ok(took >= 0.03 && took < 1, `slept ${took} s`);
    } finally {
      loop.close();
    }
  });

  test('loop.runUntilComplete(sleep(0)) on a loop that is not the current one: yields in that loop', async () => {
    // asyncio's loop.run_until_complete(asyncio.sleep(0)) returns after one iteration of that loop; sleep(0) used
    // to queue its yield on the current event loop (getEventLoop()), which never ran, and the call hung.
    const loop = newEventLoop();
    try {
      loop.callLater(5, () => loop.stop()); // the hang ends as "Event loop stopped before Future completed."
      assert.equal(await loop.runUntilComplete(sleep(0, 'ok')), 'ok');
    } finally {
      loop.close();
    }
  });

  test('sleep() refuses a delay that is not a number, as asyncio.sleep(None) fails', () =>
    withLoop(async () => {
      for (const bad of [null, undefined, '1', {}]) {
        await assert.rejects(sleep(bad as unknown as number), { name: 'TypeError', message: /delay must be a number/ });
      }
      await assert.rejects(sleep(NaN), { name: 'ValueError' });
    }));

  test('cancel() during sleep(0) reaches the task, not a Future it only called then() on', () =>
    withLoop(async (loop) => {
      // The task's then() on `other` (a continuation, not an await) left `other` as the Future cancel() cancelled:
      // `other` was cancelled for nothing and the task went on as if never cancelled.
      const other = loop.createFuture<number>();
      const seen: string[] = [];
      const t = loop.createTask(async () => {
        void other.then(
          (v) => seen.push(`other ${v}`),
          () => seen.push('other rejected'),
        );
        await sleep(0);
        await sleep(0);
        seen.push('not cancelled');
      });
      await sleep(0);
      await sleep(0);
      assert.equal(t.cancel(), true);
      await assert.rejects(async () => await t, isCancelled);
      assert.equal(other.cancelled(), false);
      other.setResult(1);
      await sleep(0);
      assert.deepEqual(seen, ['other 1']);
    }));

  test('cancel() through nested async functions reaches the innermost awaited Future', () =>
    withLoop(async (loop) => {
      const inner = loop.createFuture();
      const deep = async (): Promise<void> => {
        await inner;
      };
      const t = loop.createTask(async () => {
        await (async () => await deep())();
      });
      await sleep(0);
      t.cancel();
      await assert.rejects(async () => await t, isCancelled);
      assert.equal(inner.cancelled(), true);
    }));

  test('a task cancelled before it starts never runs its coroutine', () =>
    withLoop(async (loop) => {
      let ran = false;
      const t = loop.createTask(async () => {
        ran = true;
      });
      t.cancel();
      await assert.rejects(async () => await t, isCancelled);
      assert.equal(ran, false);
    }));

  test('a task awaiting a native promise is cancelled at its next await of a loop Future, and its signal aborts at once', () =>
    withLoop(async (loop) => {
      let aborted = false;
      let after = '';
      const t = loop.createTask(async () => {
        const task = currentTask()!;
        task.signal.addEventListener('abort', () => (aborted = true));
        await new Promise((r) => setTimeout(r, 20));
        after = 'resumed';
        await sleep(0);
        after = 'not reached';
      });
      await sleep(0.005);
      t.cancel();
      assert.equal(aborted, true);
      await assert.rejects(async () => await t, isCancelled);
      assert.equal(after, 'resumed');
    }));

  test('a coroutine that catches CancelledError goes on; cancelling() counts, uncancel() decrements', () =>
    withLoop(async (loop) => {
      const t = loop.createTask(async () => {
        try {
          await sleep(10);
        } catch (e) {
          assert.ok(isCancelled(e));
        }
        const me = currentTask()!;
        assert.equal(me.cancelling(), 1);
        assert.equal(me.uncancel(), 0);
        return 'survived';
      });
      await sleep(0);
      t.cancel();
      assert.equal(await t, 'survived');
    }));

  test('awaiting a task that is cancelled cancels the awaiter too (cancel propagates down)', () =>
    withLoop(async (loop) => {
      const child = loop.createTask(() => sleep(10));
      const parent = loop.createTask(async () => await child);
      await sleep(0.001);
      parent.cancel();
      await assert.rejects(async () => await parent, isCancelled);
      assert.equal(child.cancelled(), true);
    }));

  test('an exception in the coroutine becomes the task exception', () =>
    withLoop(async (loop) => {
      const t = loop.createTask(async () => {
        await sleep(0);
        throw new Error('inside');
      });
      await assert.rejects(async () => await t, /inside/);
      assert.equal((t.exception() as Error).message, 'inside');
    }));

  test('names, getCoro, setResult refused, currentTask, allTasks', () =>
    withLoop(async (loop) => {
      const coro = async (): Promise<string | undefined> => currentTask()?.getName();
      const t = loop.createTask(coro, { name: 'worker' });
      assert.equal(t.getName(), 'worker');
      t.setName('renamed');
      assert.equal(t.getCoro(), coro);
      assert.throws(() => t.setResult('x'), /Task does not support set_result operation/);
      assert.throws(() => t.setException(new Error()), /Task does not support set_exception operation/);
      assert.ok(allTasks(loop).has(t));
      assert.equal(await t, 'renamed');
      assert.equal(allTasks(loop).has(t), false);
      assert.match(loop.createTask(async () => undefined).getName(), /^Task-\d+$/);
      assert.equal(currentTask()?.getName().startsWith('Task-'), true);
    }));

  test('currentTask() is null in a plain callback, even one scheduled from a task', () =>
    withLoop(async (loop) => {
      let inCallback: unknown = 'unset';
      const done = loop.createFuture();
      loop.callSoon(() => {
        inCallback = currentTask();
        done.setResult(null);
      });
      await done;
      assert.equal(inCallback, null);
      assert.notEqual(currentTask(), null);
    }));

  test('a task factory makes the tasks; getTaskFactory returns it', () =>
    withLoop(async (loop) => {
      const made: string[] = [];
      loop.setTaskFactory((l, coro, opts) => {
        made.push(String(opts.name));
        return new Task(coro, { loop: l, context: opts.context ?? null });
      });
      assert.equal(typeof loop.getTaskFactory(), 'function');
      const t = loop.createTask(async () => 1, { name: 'via-factory' });
      assert.equal(t.getName(), 'via-factory');
      assert.deepEqual(made, ['via-factory']);
      await t;
      loop.setTaskFactory(null);
      assert.equal(loop.getTaskFactory(), null);
      assert.throws(() => loop.setTaskFactory(3 as never), TypeError);
    }));

  test('createTask() refuses a Future or a Task, and what is not awaitable, as asyncio refuses them', () =>
    withLoop(async (loop) => {
      const fut = loop.createFuture<number>();
      const task = loop.createTask(async () => 1);
      for (const bad of [fut, task, 3, 'x', null, { then: 1 }]) {
        assert.throws(() => loop.createTask(bad as never), {
          name: 'TypeError',
          code: 'ERR_LOOPWORK_INVALID_ARG_TYPE',
          message: /^a coroutine was expected, got /,
        });
      }
      assert.throws(() => createTask(fut as never), { message: /^a coroutine was expected, got <Future pending>$/ });
      // A plain promise, or any other thenable, is a started coroutine: accepted.
      assert.equal(await loop.createTask({ then: (ok: (v: number) => void) => ok(7) } as PromiseLike<number>), 7);
      assert.equal(await task, 1);
    }));

  test('createTask(), currentTask() and allTasks() outside a running loop are refused, as asyncio refuses them', () => {
    assert.throws(() => createTask(async () => undefined), { message: 'no running event loop' });
    assert.throws(() => currentTask(), { message: 'no running event loop' });
    assert.throws(() => allTasks(), { message: 'no running event loop' });
    const loop = newEventLoop();
    assert.equal(currentTask(loop), null);
    assert.equal(allTasks(loop).size, 0);
    loop.close();
  });

  test('an unretrieved task exception is reported when the loop closes', async () => {
    const loop = newEventLoop();
    const errors: ExceptionContext[] = [];
    loop.setExceptionHandler((_l, c) => errors.push(c));
    await loop.runUntilComplete(async () => {
      loop.createTask(async () => {
        throw new Error('nobody looks');
      });
      await sleep(0.001);
    });
    loop.close();
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.message, 'Task exception was never retrieved');
  });
});

describe('exceptions nobody retrieved', () => {
  test("a failed task nobody refers to is reported once collected, while the loop runs, under asyncio's keys", async () => {
    const gc = exposedGc();
    const loop = newEventLoop();
    const errors: ExceptionContext[] = [];
    loop.setExceptionHandler((_l, c) => errors.push(c));
    await loop.runUntilComplete(async () => {
      loop.createTask(
        async () => {
          throw new Error('nobody looks');
        },
        { name: 'forgotten' },
      );
      for (let i = 0; i < 50 && errors.length === 0; i++) {
        await sleep(0.01);
        gc();
      }
    });
    assert.equal(errors.length, 1, 'reported before the loop closes');
    loop.close();
    const c = errors[0]!;
    assert.equal(c.message, 'Task exception was never retrieved');
    assert.equal((c.exception as Error).message, 'nobody looks');
    assert.match(
      String(c.future),
      /^<Task name='forgotten' coro=<anonymous\(\)> finished exception=Error: nobody looks>$/,
    );
  });
});

describe('a task made from a promise', () => {
  /** Runs `body` and returns the rejections Node found unhandled meanwhile (each would end a real process). */
  async function unhandledDuring(body: () => Promise<void>): Promise<unknown[]> {
    const seen: unknown[] = [];
    const listener = (reason: unknown): void => void seen.push(reason);
    process.on('unhandledRejection', listener);
    try {
      await body();
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      process.off('unhandledRejection', listener);
    }
    return seen;
  }

  test('a promise already rejected fails the task, and its rejection counts as handled', async () => {
    const caught: unknown[] = [];
    const unhandled = await unhandledDuring(() =>
      withLoop(async (loop) => {
        const boom = new Error('early');
        try {
          await loop.createTask(Promise.reject(boom));
        } catch (e) {
          caught.push(e);
        }
        try {
          await waitFor(Promise.reject(new Error('in waitFor')), 5);
        } catch (e) {
          caught.push(e);
        }
        try {
          await gather(Promise.reject(new Error('in gather')));
        } catch (e) {
          caught.push(e);
        }
      }),
    );
    assert.deepEqual(
      caught.map((e) => (e as Error).message),
      ['early', 'in waitFor', 'in gather'],
    );
    assert.deepEqual(unhandled, []);
  });

  test('a promise that rejects after its task was cancelled unstarted is handled too', async () => {
    let task: Task<unknown> | null = null;
    const unhandled = await unhandledDuring(() =>
      withLoop(async (loop) => {
        let reject: (e: Error) => void = () => {};
        const p = new Promise<never>((_resolve, r) => (reject = r));
        task = loop.createTask(p);
        task.cancel();
        await assert.rejects(async () => await task!, isCancelled);
        reject(new Error('late'));
        await sleep(0.01);
      }),
    );
    assert.equal(task!.cancelled(), true);
    assert.deepEqual(unhandled, []);
  });

  test('the outcome of a promise settled before the first step comes at that step, not before', () =>
    withLoop(async (loop) => {
      const t = loop.createTask(Promise.resolve(7));
      await Promise.resolve();
      await Promise.resolve();
      assert.equal(t.done(), false, 'a task takes its first step on the next iteration');
      assert.equal(await t, 7);
    }));
});

describe('gather', () => {
  test('gives results in order, of futures, promises and coroutine functions', () =>
    withLoop(async () => {
      const r = await gather(sleep(0.02, 'a'), async () => 'b', Promise.resolve('c'));
      assert.deepEqual(r, ['a', 'b', 'c']);
      assert.deepEqual(await gather(), []);
    }));

  test('the first exception rejects; with returnExceptions, errors are in the results', () =>
    withLoop(async () => {
      const boom = new Error('boom');
      await assert.rejects(
        async () =>
          await gather(
            async () => {
              throw boom;
            },
            () => sleep(0.01, 1),
          ),
        (e) => e === boom,
      );
      const r = await gather(
        async () => {
          throw boom;
        },
        () => sleep(0, 2),
        { returnExceptions: true },
      );
      assert.deepEqual(r, [boom, 2]);
    }));

  test('an awaitable passed twice is awaited once and its result given twice', () =>
    withLoop(async (loop) => {
      const t = loop.createTask(() => sleep(0.001, 'same'));
      assert.deepEqual(await gather(t, t, sleep(0, 'other')), ['same', 'same', 'other']);
    }));

  test('cancelling the gathered future cancels every child', () =>
    withLoop(async (loop) => {
      const a = loop.createTask(() => sleep(10));
      const b = loop.createTask(() => sleep(10));
      const g = gather(a, b);
      await sleep(0.001);
      assert.equal(g.cancel(), true);
      await assert.rejects(async () => await g, isCancelled);
      assert.equal(a.cancelled(), true);
      assert.equal(b.cancelled(), true);
    }));
});

describe('wait, waitFor, shield, asCompleted', () => {
  test('wait with ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION and timeout', () =>
    withLoop(async (loop) => {
      const fast = loop.createTask(() => sleep(0.01, 'fast'));
      const slow = loop.createTask(() => sleep(0.2, 'slow'));
      let [done, pending] = await wait([fast, slow], { returnWhen: FIRST_COMPLETED });
      assert.deepEqual([...done], [fast]);
      assert.deepEqual([...pending], [slow]);
      [done, pending] = await wait([slow], { timeout: 0.01 });
      assert.equal(done.size, 0);
      assert.equal(pending.size, 1);
      const bad = loop.createTask(async () => {
        throw new Error('x');
      });
      [done, pending] = await wait([bad, slow], { returnWhen: FIRST_EXCEPTION });
      assert.ok(done.has(bad));
      assert.ok(pending.has(slow));
      bad.exception();
      [done, pending] = await wait([slow, fast], { returnWhen: ALL_COMPLETED });
      assert.equal(done.size, 2);
      await assert.rejects(wait([]), { message: 'Set of Tasks/Futures is empty.' });
      await assert.rejects(wait([Promise.resolve() as never]), {
        message: 'Passing coroutines is forbidden, use tasks explicitly.',
      });
    }));

  test('waitFor times out with TimeoutError and cancels the awaitable; a fast one returns', () =>
    withLoop(async (loop) => {
      const inner = loop.createTask(() => sleep(10));
      await assert.rejects(waitFor(inner, 0.02), TimeoutError);
      assert.equal(inner.cancelled(), true);
      assert.equal(await waitFor(sleep(0.001, 'ok'), 1), 'ok');
      assert.equal(await waitFor(sleep(0, 'none'), null), 'none');
      const slow = loop.createTask(() => sleep(10));
      await assert.rejects(waitFor(slow, 0), TimeoutError);
      assert.equal(slow.cancelled(), true);
    }));

  test('wait() yields to the loop even when its condition already holds, and leaves no timer behind', () =>
    withLoop(async (loop) => {
      // asyncio's _wait always awaits its waiter. wait() used to return at once for done futures: a loop around
      // it never let another task run (here, `other` never ticked), and its timeout stayed scheduled.
      const done = loop.createTask(async () => 1);
      await sleep(0);
      await sleep(0);
      let ticks = 0;
      const other = loop.createTask(async () => {
        for (;;) {
          await sleep(0);
          ticks++;
        }
      });
      const scheduled = (): number => (loop as unknown as { _scheduled: { length: number } })._scheduled.length;
      const before = scheduled();
      for (let i = 0; i < 5 && ticks < 2; i++) {
        const [d, p] = await wait([done], { returnWhen: FIRST_COMPLETED, timeout: 100 });
        assert.equal(d.size, 1);
        assert.equal(p.size, 0);
      }
      assert.ok(ticks >= 2, `the other task ran ${ticks} times`);
      assert.equal(scheduled(), before);
      other.cancel();
    }));

  test('loop.runUntilComplete(wait([task])) on a loop not running yet waits in that loop', async () => {
    // The waiter was made on getEventLoop()'s loop, which never ran: the call hung.
    const loop = newEventLoop();
    try {
      loop.callLater(5, () => loop.stop()); // the hang ends as "Event loop stopped before Future completed."
      const t = loop.createTask(() => sleep(0.001, 'done'));
      const [done, pending] = await loop.runUntilComplete(wait([t], { timeout: 1 }));
      assert.deepEqual([done.size, pending.size], [1, 0]);
    } finally {
      loop.close();
    }
  });

  test('waitFor() handed to createTask() or gather() cancels only its awaitable, never the task that called it', () =>
    withLoop(async (loop) => {
      // asyncio's create_task(wait_for(sleep(10), 0.02)): the deadline is the new task's. JavaScript starts
      // waitFor() in its caller, whose own await (sleep(0.2) here) used to get the CancelledError at 0.02 s.
      const t0 = loop.time();
      const inner = loop.createTask(() => sleep(10));
      const t = loop.createTask(waitFor(inner, 0.02));
      await sleep(0.2);
      assert.ok(t.done());
      await assert.rejects(async () => await t, TimeoutError);
      assert.equal(inner.cancelled(), true);
      await assert.rejects(async () => await gather(waitFor(sleep(10), 0.02)), TimeoutError);
      assert.ok(loop.time() - t0 < 1, `took ${loop.time() - t0} s`);
      // Cancelling the Task made from it, or a task awaiting it, cancels the wait and its awaitable.
      const slow = loop.createTask(() => sleep(10));
      const w = loop.createTask(waitFor(slow, 5));
      await sleep(0.001);
      w.cancel();
      await assert.rejects(async () => await w, isCancelled);
      assert.equal(slow.cancelled(), true);
      // Cancelled before its first step too: the awaitable, already a Task, is cancelled with it.
      const slow3 = loop.createTask(() => sleep(10));
      const w3 = loop.createTask(waitFor(slow3, 5));
      w3.cancel();
      await assert.rejects(async () => await w3, isCancelled);
      assert.equal(slow3.cancelled(), true);
      const slow2 = loop.createTask(() => sleep(10));
      const caller = loop.createTask(() => waitFor(slow2, 5));
      await sleep(0.001);
      caller.cancel();
      await assert.rejects(async () => await caller, isCancelled);
      assert.equal(slow2.cancelled(), true);
    }));

  test('loop.runUntilComplete(waitFor(...)) on a loop not running yet: the wait runs in that loop', async () => {
    const loop = newEventLoop();
    try {
      assert.equal(await loop.runUntilComplete(waitFor(sleep(0.001, 'ok'), 1)), 'ok');
      await assert.rejects(loop.runUntilComplete(waitFor(sleep(10), 0.01)), TimeoutError);
    } finally {
      loop.close();
    }
  });

  test('shield keeps the inner task running when the outer is cancelled', () =>
    withLoop(async (loop) => {
      const inner = loop.createTask(() => sleep(0.02, 'inner-done'));
      const outer = loop.createTask(async () => await shield(inner));
      await sleep(0.001);
      outer.cancel();
      await assert.rejects(async () => await outer, isCancelled);
      assert.equal(await inner, 'inner-done');
    }));

  test('asCompleted gives results in completion order, and done futures with for await', () =>
    withLoop(async () => {
      const order: string[] = [];
      for (const next of asCompleted([sleep(0.03, 'c'), sleep(0.01, 'a'), sleep(0.02, 'b')])) order.push(await next);
      assert.deepEqual(order, ['a', 'b', 'c']);
      const futs: Future<string>[] = [];
      // TypeScript types `for await` over a sync-and-async iterable by its sync side; at run time the async side
      // (done Futures) is used, as asyncio 3.13 does.
      for await (const f of asCompleted([sleep(0.02, 'y'), sleep(0.01, 'x')]))
        futs.push(f as unknown as Future<string>);
      assert.deepEqual(
        futs.map((f) => f.result()),
        ['x', 'y'],
      );
      const it = asCompleted([sleep(1)], { timeout: 0.01 });
      for (const next of it) await assert.rejects(next, TimeoutError);
    }));
});

test('getRunningLoop inside a task is its loop', () =>
  withLoop(async (loop) => {
    assert.equal(getRunningLoop(), loop);
  }));
