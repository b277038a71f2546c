import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CancelledError,
  ContextVar,
  Handle,
  InvalidArgTypeError,
  LoopClosedError,
  RuntimeError,
  TimerHandle,
  ValueError,
  copyContext,
  getEventLoop,
  getRunningLoop,
  newEventLoop,
  setEventLoop,
  sleep,
} from '@loopwork/core';
import type { BaseEventLoop, ExceptionContext } from '@loopwork/core';
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { close, socketpair, write } from '../src/native.js';

function quietLoop(): { loop: BaseEventLoop; errors: ExceptionContext[] } {
  const loop = newEventLoop();
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  return { loop, errors };
}

/** Runs one iteration: stop() before runForever() runs exactly the handles ready now. */
async function runOnce(loop: BaseEventLoop): Promise<void> {
  loop.stop();
  await loop.runForever();
}

describe('callSoon', () => {
  test('runs callbacks in FIFO order with their arguments', async () => {
    const { loop } = quietLoop();
    const got: unknown[] = [];
    for (let i = 0; i < 10; i++) loop.callSoon((a: number, b: string) => got.push([a, b]), i, 'x');
    await runOnce(loop);
    assert.deepEqual(
      got,
      Array.from({ length: 10 }, (_, i) => [i, 'x']),
    );
    loop.close();
  });

  test('callbacks scheduled during an iteration run in the next one', async () => {
    const { loop } = quietLoop();
    const got: string[] = [];
    loop.callSoon(() => {
      got.push('a');
      loop.callSoon(() => got.push('c'));
    });
    loop.callSoon(() => got.push('b'));
    await runOnce(loop);
    assert.deepEqual(got, ['a', 'b']);
    await runOnce(loop);
    assert.deepEqual(got, ['a', 'b', 'c']);
    loop.close();
  });

  test("a task's step runs to its next await before the next handle, as an asyncio task step does", async () => {
    const { loop } = quietLoop();
    const got: string[] = [];
    const fut = loop.createFuture<string>();
    loop.createTask(async () => {
      got.push('step 1');
      await Promise.resolve();
      await Promise.resolve();
      got.push('step 1, two microtasks later');
      got.push(await fut);
      await Promise.resolve();
      got.push('step 2, a microtask later');
    });
    loop.callSoon(() => got.push('h1'));
    await runOnce(loop);
    assert.deepEqual(got, ['step 1', 'step 1, two microtasks later', 'h1']);
    fut.setResult('step 2'); // queues the task's wake-up now (asyncio's call_soon of __wakeup)
    loop.callSoon(() => got.push('h2'));
    await runOnce(loop);
    assert.deepEqual(got.slice(3), ['step 2', 'step 2, a microtask later', 'h2']);
    loop.close();
  });

  test('plain callbacks run back to back; their microtasks run before the next iteration', async () => {
    const { loop } = quietLoop();
    const got: string[] = [];
    loop.callSoon(() => {
      got.push('h1');
      void Promise.resolve().then(() => {
        got.push('micro1');
        loop.callSoon(() => got.push('next iteration'));
      });
    });
    loop.callSoon(() => got.push('h2'));
    await runOnce(loop);
    assert.deepEqual(got, ['h1', 'h2', 'micro1']);
    await runOnce(loop);
    assert.deepEqual(got, ['h1', 'h2', 'micro1', 'next iteration']);
    loop.close();
  });

  test('a cancelled handle never runs', async () => {
    const { loop } = quietLoop();
    let ran = false;
    const h = loop.callSoon(() => (ran = true));
    assert.ok(h instanceof Handle);
    h.cancel();
    assert.equal(h.cancelled(), true);
    await runOnce(loop);
    assert.equal(ran, false);
    loop.close();
  });

  test('refuses a non-callable and an async function with asyncio messages', () => {
    const { loop } = quietLoop();
    assert.throws(() => loop.callSoon(42 as never), {
      name: 'TypeError',
      message: 'a callable object was expected by callSoon(), got 42',
    });
    assert.throws(() => loop.callSoon((async () => undefined) as never), InvalidArgTypeError);
    assert.throws(() => loop.callSoon(async () => undefined), /coroutines cannot be used with callSoon\(\)/);
    // A started coroutine, as asyncio refuses a coroutine object.
    const started = Promise.resolve();
    assert.throws(() => loop.callSoon(started as never), {
      name: 'TypeError',
      message: 'coroutines cannot be used with callSoon()',
    });
    assert.throws(() => loop.callLater(1, started as never), { message: 'coroutines cannot be used with callLater()' });
    assert.throws(() => loop.callAt(1, started as never), { message: 'coroutines cannot be used with callAt()' });
    loop.close();
  });

  test('takes a trailing options object with context', async () => {
    const { loop } = quietLoop();
    const v = new ContextVar<string>('v', { default: 'none' });
    const ctx = copyContext();
    ctx.run(() => v.set('inside'));
    let seen = '';
    loop.callSoon((x: string) => (seen = x + v.get()), 'got:', { context: ctx });
    await runOnce(loop);
    assert.equal(seen, 'got:inside');
    loop.close();
  });

  test('callSoonThreadsafe schedules like callSoon', async () => {
    const { loop } = quietLoop();
    const got: number[] = [];
    loop.callSoonThreadsafe((n: number) => got.push(n), 1);
    loop.callSoon((n: number) => got.push(n), 2);
    await runOnce(loop);
    assert.deepEqual(got, [1, 2]);
    loop.close();
  });

  test('an exception in a callback reaches the handler with message, exception and handle; the loop goes on', async () => {
    const { loop, errors } = quietLoop();
    const boom = new Error('boom');
    let after = false;
    const h = loop.callSoon(function failing() {
      throw boom;
    });
    loop.callSoon(() => (after = true));
    await runOnce(loop);
    assert.equal(after, true);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /^Exception in callback failing\(\)/);
    assert.equal(errors[0]!.exception, boom);
    assert.equal(errors[0]!.handle, h);
    loop.close();
  });
});

describe('Handle and TimerHandle', () => {
  test("inspect() is asyncio's repr: when= after the class name; debug mode keeps a cancelled callback", () => {
    const loop = newEventLoop();
    function cb(..._args: unknown[]): void {}
    const h = loop.callSoon(cb, 1, 'x');
    assert.equal(inspect(h), "<Handle cb(1, 'x')>");
    h.cancel();
    assert.equal(inspect(h), '<Handle cancelled>');
    const t = loop.callAt(12.5, cb, 2);
    assert.equal(inspect(t), '<TimerHandle when=12.5 cb(2)>');
    t.cancel();
    assert.equal(inspect(t), '<TimerHandle cancelled when=12.5>');
    loop.setDebug(true);
    const dh = loop.callSoon(cb, 1);
    assert.match(inspect(dh), /^<Handle cb\(1\) created at .*base-event-loop\.test\.ts:\d+:\d+\)?>$/);
    dh.cancel();
    assert.match(inspect(dh), /^<Handle cancelled cb\(1\) created at .*base-event-loop\.test\.ts:\d+:\d+\)?>$/);
    const dt = loop.callAt(3, cb);
    dt.cancel();
    assert.match(inspect(dt), /^<TimerHandle cancelled when=3 cb\(\) created at .*base-event-loop\.test\.ts/);
    loop.close();
  });
});

describe('timers', () => {
  test('callLater runs after the delay, in seconds', async () => {
    const loop = newEventLoop();
    const t0 = loop.time();
    let at = 0;
    loop.callLater(0.05, () => {
      at = loop.time();
      loop.stop();
    });
    await loop.runForever();
    assert.ok(at - t0 >= 0.05, `ran after ${at - t0}s`);
    assert.ok(at - t0 < 1);
    loop.close();
  });

  test('a timer 30 days away keeps the loop asleep: no spinning, no TimeoutOverflowWarning', async () => {
    const loop = newEventLoop();
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      // Before it, Node fired a timer over 2 ** 31 - 1 ms after 1 ms, with a warning, and the loop re-armed it.
      const far = loop.callLater(30 * 86400, () => assert.fail('not yet'));
      loop.callLater(0.3, () => {
        far.cancel();
        loop.stop();
      });
      const cpu = process.cpuUsage();
      await loop.runForever();
      const used = process.cpuUsage(cpu);
      assert.ok(used.user + used.system < 100_000, `CPU ${(used.user + used.system) / 1000} ms in 0.3 s`);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(warnings, []);
    } finally {
      process.off('warning', onWarning);
      loop.close();
    }
  });

  test('equal callAt deadlines run in scheduling order', async () => {
    const loop = newEventLoop();
    const when = loop.time() + 0.01;
    const got: number[] = [];
    for (let i = 0; i < 20; i++) loop.callAt(when, () => got.push(i));
    loop.callAt(when + 0.001, () => loop.stop());
    await loop.runForever();
    assert.deepEqual(
      got,
      Array.from({ length: 20 }, (_, i) => i),
    );
    loop.close();
  });

  test('callLater(-1) and callLater(-2) run in deadline order', async () => {
    const loop = newEventLoop();
    const got: number[] = [];
    loop.callLater(-1, () => got.push(-1));
    loop.callLater(-2, () => got.push(-2));
    loop.callLater(0, () => loop.stop());
    await loop.runForever();
    assert.deepEqual(got, [-2, -1]);
    loop.close();
  });

  test('TimerHandle.when() is the deadline in loop time; cancel() prevents the call', async () => {
    const loop = newEventLoop();
    const t = loop.time();
    let ran = false;
    const h = loop.callLater(0.01, () => (ran = true));
    assert.ok(h instanceof TimerHandle);
    assert.ok(Math.abs(h.when() - (t + 0.01)) < 0.005);
    h.cancel();
    loop.callLater(0.03, () => loop.stop());
    await loop.runForever();
    assert.equal(ran, false);
    loop.close();
  });

  test('cancelling the earliest timer mid-run: the next one still fires on time, neither early nor late', async () => {
    const loop = newEventLoop();
    const t0 = loop.time();
    const fired: string[] = [];
    let at = 0;
    loop.callSoon(() => {
      // The platform timer is armed for `first`; it stays armed after the cancel and wakes the loop to nothing.
      const first = loop.callLater(0.02, () => fired.push('first'));
      loop.callLater(0.08, () => {
        at = loop.time();
        fired.push('second');
        loop.stop();
      });
      loop.callSoon(() => first.cancel());
    });
    await loop.runForever();
    assert.deepEqual(fired, ['second']);
    assert.ok(at - t0 >= 0.08, `fired after ${at - t0}s`);
    assert.ok(at - t0 < 0.5, `fired after ${at - t0}s`);
    loop.close();
  });

  test('many cancelled timers are swept and the rest still fire in order', async () => {
    const loop = newEventLoop();
    const got: number[] = [];
    const handles = [];
    for (let i = 0; i < 1000; i++) handles.push(loop.callLater(0.001 * (i % 10), () => got.push(i)));
    for (let i = 0; i < 1000; i += 2) handles[i]!.cancel();
    loop.callLater(0.05, () => loop.stop());
    await loop.runForever();
    assert.equal(got.length, 500);
    assert.ok(got.every((i) => i % 2 === 1));
    loop.close();
  });

  test('delay null is a TypeError, NaN a ValueError', () => {
    const loop = newEventLoop();
    assert.throws(() => loop.callLater(null as never, () => undefined), {
      name: 'TypeError',
      message: 'delay must not be None',
    });
    assert.throws(() => loop.callLater(Number.NaN, () => undefined), ValueError);
    assert.throws(() => loop.callAt(null as never, () => undefined), { message: 'when cannot be None' });
    loop.close();
  });

  test('time() is monotonic seconds', () => {
    const loop = newEventLoop();
    const a = loop.time();
    const b = loop.time();
    assert.ok(b >= a);
    assert.ok(a < 1e7, 'seconds, not milliseconds since the epoch');
    loop.close();
  });
});

describe('running and stopping', () => {
  test('stop() inside a callback lets the rest of the batch run and holds later handles for the next run', async () => {
    const loop = newEventLoop();
    const got: string[] = [];
    loop.callSoon(() => {
      got.push('1');
      loop.stop();
      loop.callSoon(() => got.push('later'));
    });
    loop.callSoon(() => got.push('2'));
    await loop.runForever();
    assert.deepEqual(got, ['1', '2']);
    assert.equal(loop.isRunning(), false);
    await runOnce(loop);
    assert.deepEqual(got, ['1', '2', 'later']);
    loop.close();
  });

  test('stop() called beside an idle running loop (not from its callbacks) wakes it, and runForever() resolves', async () => {
    const loop = newEventLoop();
    const running = loop.runForever();
    await new Promise<void>((resolve) => loop.callSoon(() => loop.callSoon(resolve)));
    await new Promise<void>((resolve) => setTimeout(resolve, 20));
    assert.equal(loop.isRunning(), true);
    loop.stop();
    const outcome = await Promise.race([
      running.then(() => 'stopped'),
      new Promise<string>((resolve) => setTimeout(() => resolve('still running after 2 s'), 2000).unref()),
    ]);
    assert.equal(outcome, 'stopped');
    assert.equal(loop.isRunning(), false);
    loop.close();
  });

  test('stop() before runForever() runs exactly one iteration', async () => {
    const loop = newEventLoop();
    const got: number[] = [];
    loop.callSoon(() => {
      got.push(1);
      loop.callSoon(() => got.push(2));
    });
    loop.stop();
    await loop.runForever();
    assert.deepEqual(got, [1]);
    loop.close();
  });

  test('runUntilComplete returns the result; of a coroutine function, a promise, a future', async () => {
    const loop = newEventLoop();
    assert.equal(await loop.runUntilComplete(async () => 1), 1);
    assert.equal(await loop.runUntilComplete(Promise.resolve(2)), 2);
    const fut = loop.createFuture<number>();
    loop.callSoon(() => fut.setResult(3));
    assert.equal(await loop.runUntilComplete(fut), 3);
    await assert.rejects(
      loop.runUntilComplete(async () => {
        throw new Error('inner');
      }),
      /inner/,
    );
    loop.close();
  });

  test('runUntilComplete of a future stopped early throws "Event loop stopped before Future completed."', async () => {
    const loop = newEventLoop();
    const fut = loop.createFuture();
    loop.callSoon(() => loop.stop());
    await assert.rejects(loop.runUntilComplete(fut), {
      name: 'RuntimeError',
      code: 'ERR_LOOPWORK_LOOP_STOPPED',
      message: 'Event loop stopped before Future completed.',
    });
    loop.close();
  });

  test('close() reports pending tasks, but not the one runUntilComplete made for a coroutine stopped early', async () => {
    const { loop, errors } = quietLoop();
    await assert.rejects(
      loop.runUntilComplete(async () => {
        loop.stop();
        await sleep(10);
      }),
      { message: 'Event loop stopped before Future completed.' },
    );
    const other = loop.createTask(async () => sleep(10));
    await runOnce(loop);
    loop.close();
    assert.deepEqual(
      errors.map((c) => [c.message, c.task]),
      [['Task was destroyed but it is pending!', other]],
    );
  });

  test('running a running loop and running a second loop are refused', async () => {
    const loop = newEventLoop();
    const other = newEventLoop();
    let inner: unknown;
    let second: unknown;
    loop.callSoon(() => {
      loop.runForever().catch((e: unknown) => (inner = e));
      other.runForever().catch((e: unknown) => (second = e));
      loop.callSoon(() => loop.stop());
    });
    await loop.runForever();
    assert.ok(RuntimeError.isInstance(inner));
    assert.equal((inner as Error).message, 'This event loop is already running');
    assert.equal((second as Error).message, 'Cannot run the event loop while another loop is running');
    loop.close();
    other.close();
  });

  test('isRunning, getRunningLoop inside and outside', async () => {
    const loop = newEventLoop();
    assert.throws(() => getRunningLoop(), { message: 'no running event loop' });
    let inside: unknown;
    loop.callSoon(() => {
      inside = getRunningLoop();
      assert.equal(loop.isRunning(), true);
      loop.stop();
    });
    await loop.runForever();
    assert.equal(inside, loop);
    assert.equal(loop.isRunning(), false);
    loop.close();
  });

  test('a closed loop refuses work; closing a running loop is refused; close is idempotent', async () => {
    const loop = newEventLoop();
    let closeError: unknown;
    loop.callSoon(() => {
      try {
        loop.close();
      } catch (e) {
        closeError = e;
      }
      loop.stop();
    });
    await loop.runForever();
    assert.equal((closeError as Error).message, 'Cannot close a running event loop');
    loop.close();
    loop.close();
    assert.equal(loop.isClosed(), true);
    assert.throws(() => loop.callSoon(() => undefined), LoopClosedError);
    assert.throws(() => loop.callLater(1, () => undefined), { message: 'Event loop is closed' });
    assert.throws(() => loop.createTask(async () => undefined), { code: 'ERR_LOOPWORK_LOOP_CLOSED' });
    await assert.rejects(loop.runForever(), { message: 'Event loop is closed' });
    await assert.rejects(loop.runUntilComplete(Promise.resolve(1)), { message: 'Event loop is closed' });
  });

  test('getEventLoop returns the set loop, else makes one; setEventLoop validates', () => {
    const loop = newEventLoop();
    setEventLoop(loop);
    assert.equal(getEventLoop(), loop);
    setEventLoop(null);
    const made = getEventLoop();
    assert.notEqual(made, loop);
    assert.equal(getEventLoop(), made);
    assert.throws(() => setEventLoop({} as never), TypeError);
    class NotALoop {}
    assert.throws(() => setEventLoop(new NotALoop() as never), {
      name: 'TypeError',
      message: "loop must be an instance of AbstractEventLoop or None, not 'NotALoop'",
    });
    loop.close();
    made.close();
    setEventLoop(null);
  });

  test('shutdownAsyncgens closes async generators that were iterated while the loop ran', async () => {
    const loop = newEventLoop();
    let finalized = false;
    async function* gen(): AsyncGenerator<number> {
      try {
        yield 1;
        yield 2;
      } finally {
        finalized = true;
      }
    }
    await loop.runUntilComplete(async () => {
      const g = gen();
      await g.next();
    });
    assert.equal(finalized, false);
    await loop.runUntilComplete(loop.shutdownAsyncgens());
    assert.equal(finalized, true);
    loop.close();
  });

  test('shutdownDefaultExecutor without an executor resolves; with one it waits, and warns past its timeout', async () => {
    const loop = newEventLoop();
    await loop.runUntilComplete(loop.shutdownDefaultExecutor());
    let released = (): void => undefined;
    const stuck = new Promise<void>((r) => (released = r));
    loop._defaultExecutor = {
      submit: () => Promise.reject(new Error('unused')),
      shutdown: () => stuck,
    };
    const warnings: Error[] = [];
    const onWarning = (w: Error): number => warnings.push(w);
    process.on('warning', onWarning);
    await loop.runUntilComplete(loop.shutdownDefaultExecutor(0.02));
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    released();
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.name, 'RuntimeWarning');
    assert.match(warnings[0]!.message, /did not finishing joining its threads within 0.02 seconds/);
    loop.close();
  });
});

describe('the exception handler', () => {
  test('setExceptionHandler / getExceptionHandler; non-callable refused', () => {
    const loop = newEventLoop();
    assert.equal(loop.getExceptionHandler(), null);
    const h = (): void => undefined;
    loop.setExceptionHandler(h);
    assert.equal(loop.getExceptionHandler(), h);
    loop.setExceptionHandler(null);
    assert.throws(() => loop.setExceptionHandler(5 as never), /A callable object or None is expected, got 5/);
    loop.close();
  });

  test('a throwing exception handler is itself caught and logged by the default handler', async () => {
    const lines: string[] = [];
    const { default: pino } = await import('pino');
    const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
    const loop = newEventLoop({ logger });
    loop.setExceptionHandler(() => {
      throw new Error('handler broke');
    });
    loop.callSoon(() => {
      throw new Error('cb broke');
    });
    let after = false;
    loop.callSoon(() => (after = true));
    await runOnce(loop);
    assert.equal(after, true);
    assert.equal(lines.length, 1);
    const rec = JSON.parse(lines[0]!) as { msg: string; err: { message: string }; context: string };
    assert.equal(rec.msg, 'Unhandled error in exception handler');
    assert.equal(rec.err.message, 'handler broke');
    assert.match(rec.context, /cb broke/);
    loop.close();
  });

  test('a custom handler runs in the context of the task, future or handle it is called for (asyncio 3.12)', async () => {
    const { loop } = quietLoop();
    const v = new ContextVar<string>('where', { default: 'root' });
    const seen: string[] = [];
    loop.setExceptionHandler((_l, c) => seen.push(`${c.message}: ${v.get()}`));
    const h = loop.callSoon(() => {
      v.set('in the callback');
      throw new Error('cb broke');
    });
    await runOnce(loop);
    await loop.runUntilComplete(async () => {
      v.set('in main');
      const task = loop.createTask(async () => {
        v.set('in the task');
        await sleep(0);
      });
      await task;
      loop.callExceptionHandler({ message: 'task', task });
      loop.callExceptionHandler({ message: 'future', future: task });
      loop.callExceptionHandler({ message: 'handle', handle: h });
      loop.callExceptionHandler({ message: 'none' });
    });
    assert.deepEqual(seen, [
      'Exception in callback anonymous(): in the callback',
      'task: in the task',
      'future: in the task',
      'handle: in the callback',
      'none: in main',
    ]);
    loop.close();
  });

  test('defaultExceptionHandler logs one structured line through the loop logger', async () => {
    const lines: string[] = [];
    const { default: pino } = await import('pino');
    const loop = newEventLoop({ logger: pino({}, { write: (s: string) => void lines.push(s) }) });
    loop.callExceptionHandler({ message: 'something failed', exception: new Error('why'), protocol: { a: 1 } });
    loop.callExceptionHandler({ message: '' });
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(first.msg, 'something failed');
    assert.equal((first.err as { message: string }).message, 'why');
    assert.equal(first.protocol, '{ a: 1 }');
    assert.equal(first.level, 50);
    assert.equal((JSON.parse(lines[1]!) as { msg: string }).msg, 'Unhandled exception in event loop');
    loop.close();
  });
});

describe('debug mode', () => {
  test('getDebug/setDebug; LOOPWORK_DEBUG turns it on for new loops', () => {
    const loop = newEventLoop();
    const before = process.env.LOOPWORK_DEBUG;
    assert.equal(loop.getDebug(), before === '1');
    loop.setDebug(true);
    assert.equal(loop.getDebug(), true);
    process.env.LOOPWORK_DEBUG = '1';
    const dbg = newEventLoop();
    assert.equal(dbg.getDebug(), true);
    if (before === undefined) delete process.env.LOOPWORK_DEBUG;
    else process.env.LOOPWORK_DEBUG = before;
    assert.equal(newEventLoop({ debug: false }).getDebug(), false);
    loop.close();
    dbg.close();
  });

  test('a slow callback is logged with where it was scheduled from', async () => {
    const lines: string[] = [];
    const { default: pino } = await import('pino');
    const loop = newEventLoop({ debug: true, logger: pino({}, { write: (s: string) => void lines.push(s) }) });
    assert.equal(loop.slowCallbackDuration, 0.1);
    loop.slowCallbackDuration = 0.02;
    loop.callSoon(function slowOne() {
      const end = Date.now() + 40;
      while (Date.now() < end);
    });
    loop.callSoon(function quickOne() {});
    await runOnce(loop);
    assert.equal(lines.length, 1);
    const rec = JSON.parse(lines[0]!) as { msg: string; createdAt: string; seconds: number };
    assert.match(
      rec.msg,
      /^Executing <Handle slowOne\(\) created at .*base-event-loop\.test\.ts.*> took 0\.0\d\d seconds$/,
    );
    assert.match(rec.createdAt, /base-event-loop\.test\.ts/);
    assert.ok(rec.seconds >= 0.02);
    loop.close();
  });

  test('the default handler called while a callback runs adds handleTraceback: where its handle was made', async () => {
    const lines: string[] = [];
    const { default: pino } = await import('pino');
    const loop = newEventLoop({ debug: true, logger: pino({}, { write: (s: string) => void lines.push(s) }) });
    loop.callSoon(function reports() {
      loop.callExceptionHandler({ message: 'inside a callback' });
    });
    loop.callSoon(function fails() {
      throw new Error('boom');
    });
    await runOnce(loop);
    loop.callExceptionHandler({ message: 'outside' });
    const recs = lines.map((l) => JSON.parse(l) as { msg: string; handleTraceback?: string; sourceTraceback?: string });
    assert.deepEqual(
      recs.map((r) => r.msg),
      ['inside a callback', 'Exception in callback fails()', 'outside'],
    );
    assert.match(recs[0]!.handleTraceback ?? '', /base-event-loop\.test\.ts/);
    // An exception in a callback says where its handle was made as sourceTraceback, and only there.
    assert.match(recs[1]!.sourceTraceback ?? '', /base-event-loop\.test\.ts/);
    assert.equal(recs[1]!.handleTraceback, undefined);
    assert.equal(recs[2]!.handleTraceback, undefined);
    loop.close();
  });

  test("a slow step of a task is logged with the task, as asyncio times a task's step", async () => {
    const lines: string[] = [];
    const { default: pino } = await import('pino');
    const loop = newEventLoop({ debug: true, logger: pino({}, { write: (s: string) => void lines.push(s) }) });
    loop.slowCallbackDuration = 0.02;
    await loop.runUntilComplete(
      loop.createTask(
        async () => {
          await sleep(0);
          const end = Date.now() + 40; // blocks the loop inside the step that sleep(0) resumed
          while (Date.now() < end);
          await sleep(0);
        },
        { name: 'blocker' },
      ),
    );
    const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    assert.equal(msgs.length, 1, msgs.join('\n'));
    assert.match(msgs[0]!, /^Executing <Task pending name='blocker' coro=<anonymous\(\)>> took 0\.0\d\d seconds$/);
    loop.close();
  });
});

describe('sleep and iterations', () => {
  test('sleep(0) yields exactly one iteration; sleep(d) waits d seconds', async () => {
    const loop = newEventLoop();
    const got: string[] = [];
    await loop.runUntilComplete(async () => {
      loop.callSoon(() => got.push('cb1'));
      await sleep(0);
      got.push('after-sleep0');
      const t0 = loop.time();
      const r = await sleep(0.03, 'result');
      got.push(r);
      assert.ok(loop.time() - t0 >= 0.03);
    });
    assert.deepEqual(got, ['cb1', 'after-sleep0', 'result']);
    loop.close();
  });

  test('what plain callbacks queue as microtasks runs before the next iteration, also between iterations run back to back', async () => {
    const { loop } = quietLoop();
    const got: string[] = [];
    let n = 0;
    const chain = (): void => {
      got.push(`C${n}`);
      if (++n < 30) loop.callSoon(chain);
    };
    loop.callSoon(chain);
    // A coroutine awaiting a promise that a callback resolves goes on before the next iteration, as before one
    // that polls I/O: not after a run of back-to-back iterations.
    const awaiting = (async () => {
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve) => loop.callSoon(() => resolve()));
        got.push(`A${i}`);
      }
    })();
    loop.callSoon(() => {
      void Promise.resolve().then(() => got.push('microtask'));
      loop.callSoon(() => got.push('next iteration'));
    });
    await loop.runUntilComplete(awaiting);
    assert.deepEqual(got.slice(0, 8), ['C0', 'A0', 'microtask', 'C1', 'next iteration', 'A1', 'C2', 'A2']);
    loop.close();
  });

  /**
   * Runs an endless chain of callbacks (each schedules the next, so every iteration ends with a handle ready),
   * waits until Node's loop has turned 10 times, then writes to a socket pair with a reader on the other end.
   * Returns how many iterations the reader waited, and the iterations and Node turns counted until then.
   */
  async function readerWaitDuringChain(
    work: () => void,
  ): Promise<{ waited: number; iterations: number; turns: number }> {
    const { loop, errors } = quietLoop();
    const [a, b] = socketpair();
    let iterations = 0;
    let turns = 0;
    let chain = true;
    const next = (): void => {
      iterations++;
      work();
      if (chain) loop.callSoon(next);
    };
    const countTurn = (): void => {
      turns++;
      if (chain) setImmediate(countTurn);
    };
    try {
      const waited = await loop.runUntilComplete(async () => {
        const readable = loop.createFuture<number>();
        loop.addReader(a, () => {
          loop.removeReader(a);
          readable.setResult(iterations);
        });
        loop.callSoon(next);
        setImmediate(countTurn);
        while (turns < 10) await sleep(0);
        const start = iterations;
        write(b, Buffer.from('x'));
        const at = (await readable) - start;
        chain = false;
        return at;
      });
      assert.deepEqual(errors, []);
      return { waited, iterations, turns };
    } finally {
      loop.close();
      close(a);
      close(b);
    }
  }

  test('iterations run back to back while handles are ready, and I/O is still polled every 16 of them', async () => {
    const { waited, iterations, turns } = await readerWaitDuringChain(() => {});
    // Several iterations per turn of Node's loop (each turn polls I/O once), but never more than 16 in a row:
    // the reader ran within 17 iterations of the write.
    assert.ok(iterations > 2 * turns, `${iterations} iterations in ${turns} turns of Node's loop`);
    assert.ok(waited <= 17, `the reader waited ${waited} iterations`);
  });

  test('iterations that take time poll I/O after each other: a reader waits one iteration, not 16', async () => {
    const { waited } = await readerWaitDuringChain(() => {
      const until = performance.now() + 2;
      while (performance.now() < until);
    });
    assert.ok(waited <= 2, `the reader waited ${waited} iterations of 2 ms`);
  });

  test('a cancelled task in sleep sees CancelledError and the timer is cancelled', async () => {
    const loop = newEventLoop();
    await loop.runUntilComplete(async () => {
      const t = loop.createTask(() => sleep(10));
      await sleep(0.01);
      t.cancel();
      await assert.rejects(async () => {
        await t;
      }, CancelledError);
    });
    loop.close();
  });
});
