import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { describe, test } from 'node:test';
import {
  InvalidArgTypeError,
  LoopClosedError,
  RuntimeError,
  ValueError,
  getRunningLoop,
  newEventLoop,
} from '@loopwork/core';
import type { EventLoop, ExceptionContext, Future } from '@loopwork/core';
import { Lines, spawnFixture } from './fixtures/child-process.js';

function quietLoop(): { loop: EventLoop; errors: ExceptionContext[] } {
  const loop = newEventLoop();
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  return { loop, errors };
}

describe('addSignalHandler: arguments (asyncio messages)', () => {
  test('an unknown signal number is a ValueError', (t) => {
    const { loop } = quietLoop();
    t.after(() => loop.close());
    for (const sig of [0, 1000, -1, 65]) {
      assert.throws(() => loop.addSignalHandler(sig, () => {}), {
        name: 'ValueError',
        message: `invalid signal number ${sig}`,
      });
      assert.throws(() => loop.removeSignalHandler(sig), ValueError);
    }
  });

  test('an unknown signal name is a ValueError; a non-integer is a TypeError', (t) => {
    const { loop } = quietLoop();
    t.after(() => loop.close());
    assert.throws(() => loop.addSignalHandler('SIGFOO' as NodeJS.Signals, () => {}), {
      name: 'ValueError',
      message: "invalid signal name 'SIGFOO'",
    });
    for (const sig of [2.5, {}, null]) {
      assert.throws(
        () => loop.addSignalHandler(sig as number, () => {}),
        (err: Error) => {
          assert.ok(InvalidArgTypeError.isInstance(err));
          assert.match(err.message, /^sig must be an int or a signal name, not /);
          return true;
        },
      );
    }
  });

  test('SIGKILL and SIGSTOP cannot be caught', (t) => {
    const { loop } = quietLoop();
    t.after(() => loop.close());
    assert.throws(() => loop.addSignalHandler(constants.signals.SIGKILL, () => {}), {
      name: 'RuntimeError',
      message: `sig ${constants.signals.SIGKILL} cannot be caught`,
    });
    assert.throws(
      () => loop.addSignalHandler('SIGSTOP', () => {}),
      (err: Error) => {
        assert.ok(RuntimeError.isInstance(err));
        assert.equal(err.message, `sig ${constants.signals.SIGSTOP} cannot be caught`);
        return true;
      },
    );
    assert.equal(process.listenerCount('SIGKILL'), 0);
  });

  test('coroutine functions and promises are refused, as other non-callables', (t) => {
    const { loop } = quietLoop();
    t.after(() => loop.close());
    assert.throws(() => loop.addSignalHandler('SIGUSR2', async () => {}), {
      name: 'TypeError',
      message: 'coroutines cannot be used with addSignalHandler()',
    });
    const p = Promise.resolve();
    assert.throws(() => loop.addSignalHandler('SIGUSR2', p as never), {
      message: 'coroutines cannot be used with addSignalHandler()',
    });
    assert.throws(() => loop.addSignalHandler('SIGUSR2', 42 as never), {
      name: 'TypeError',
      message: 'a callable object was expected by addSignalHandler(), got 42',
    });
    assert.equal(process.listenerCount('SIGUSR2'), 0);
  });

  test('a closed loop refuses; removing from it returns false', () => {
    const loop = newEventLoop();
    loop.close();
    assert.throws(() => loop.addSignalHandler('SIGUSR2', () => {}), LoopClosedError);
    assert.equal(loop.removeSignalHandler('SIGUSR2'), false);
  });
});

describe('addSignalHandler: real signals to this process', () => {
  test('the handler runs on the loop with its arguments; removal returns true, then false', async (t) => {
    const { loop, errors } = quietLoop();
    t.after(() => loop.close());
    const got: unknown[] = [];
    const fired: Future<void> = loop.createFuture();
    loop.addSignalHandler(
      'SIGUSR1',
      (a: number, b: string) => {
        got.push([a, b, getRunningLoop() === loop]);
        fired.setResult(undefined);
      },
      1,
      'two',
    );
    assert.equal(process.listenerCount('SIGUSR1'), 1);
    await loop.runUntilComplete(async () => {
      process.kill(process.pid, 'SIGUSR1');
      await fired;
    });
    assert.deepEqual(got, [[1, 'two', true]]);
    assert.equal(loop.removeSignalHandler('SIGUSR1'), true);
    assert.equal(loop.removeSignalHandler(constants.signals.SIGUSR1), false);
    assert.equal(process.listenerCount('SIGUSR1'), 0);
    assert.deepEqual(errors, []);
  });

  test('a second handler replaces the first; one listener per signal', async (t) => {
    const { loop } = quietLoop();
    t.after(() => loop.close());
    const got: string[] = [];
    const fired: Future<void> = loop.createFuture();
    loop.addSignalHandler('SIGUSR2', () => got.push('first'));
    loop.addSignalHandler(constants.signals.SIGUSR2, () => {
      got.push('second');
      fired.setResult(undefined);
    });
    assert.equal(process.listenerCount('SIGUSR2'), 1);
    await loop.runUntilComplete(async () => {
      process.kill(process.pid, 'SIGUSR2');
      await fired;
    });
    assert.deepEqual(got, ['second']);
    assert.equal(loop.removeSignalHandler('SIGUSR2'), true);
  });

  test('a signal that arrives while the loop is stopped runs its handler at the next run', async (t) => {
    const { loop } = quietLoop();
    t.after(() => loop.close());
    const got: string[] = [];
    loop.addSignalHandler('SIGUSR2', () => got.push('ran'));
    // Signal delivery is asynchronous: wait for Node's listener to see it (it queues the Handle). Signal
    // listeners do not keep Node alive: a timer does meanwhile.
    const keepAlive = setInterval(() => {}, 1000);
    const seen = new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve()));
    process.kill(process.pid, 'SIGUSR2');
    await seen;
    clearInterval(keepAlive);
    assert.deepEqual(got, []);
    loop.stop();
    await loop.runForever();
    assert.deepEqual(got, ['ran']);
    loop.removeSignalHandler('SIGUSR2');
  });

  test('an exception in the handler goes to the exception handler', async (t) => {
    const { loop, errors } = quietLoop();
    t.after(() => loop.close());
    const boom = new Error('boom');
    loop.addSignalHandler('SIGUSR2', () => {
      throw boom;
    });
    await loop.runUntilComplete(async () => {
      process.kill(process.pid, 'SIGUSR2');
      while (errors.length === 0) await new Promise<void>((resolve) => loop.callSoon(resolve));
    });
    assert.equal(errors[0]?.exception, boom);
    assert.match(errors[0]?.message ?? '', /^Exception in callback/);
    loop.removeSignalHandler('SIGUSR2');
  });

  test('close() removes every handler of the loop', () => {
    const loop = newEventLoop();
    loop.addSignalHandler('SIGUSR1', () => {});
    loop.addSignalHandler('SIGUSR2', () => {});
    loop.addSignalHandler('SIGWINCH', () => {});
    const before = process.listenerCount('SIGWINCH');
    loop.close();
    assert.equal(process.listenerCount('SIGUSR1'), 0);
    assert.equal(process.listenerCount('SIGUSR2'), 0);
    assert.equal(process.listenerCount('SIGWINCH'), before - 1);
  });

  test('two loops with a handler for the same signal share one listener', (t) => {
    const a = newEventLoop();
    const b = newEventLoop();
    t.after(() => {
      a.close();
      b.close();
    });
    a.addSignalHandler('SIGUSR2', () => {});
    b.addSignalHandler('SIGUSR2', () => {});
    assert.equal(process.listenerCount('SIGUSR2'), 1);
    a.removeSignalHandler('SIGUSR2');
    assert.equal(process.listenerCount('SIGUSR2'), 1);
    b.removeSignalHandler('SIGUSR2');
    assert.equal(process.listenerCount('SIGUSR2'), 0);
  });
});

describe('addSignalHandler: signals sent to a child process running a loop', () => {
  test('SIGHUP runs a handler on the loop; SIGTERM stops the loop and the process exits 0', async () => {
    const child = spawnFixture('./signal-child.ts', ['handlers']);
    const out = new Lines(child);
    await out.waitFor('ready');
    child.kill('SIGHUP');
    assert.equal(await out.waitFor(/^hup/), 'hup x true');
    child.kill('SIGTERM');
    const [code, signal] = await out.closed;
    assert.equal(out.stderr, '');
    assert.deepEqual([code, signal], [0, null]);
    assert.deepEqual(out.lines, ['ready', 'hup x true', 'term', 'closed listeners=0']);
  });

  test('removing the handler restores the default disposition: the signal ends the process', async () => {
    const child = spawnFixture('./signal-child.ts', ['default-restored']);
    const out = new Lines(child);
    await out.waitFor('ready');
    child.kill('SIGUSR2');
    const [code, signal] = await out.closed;
    assert.deepEqual([code, signal], [null, 'SIGUSR2']);
    assert.deepEqual(out.lines, ['removed true', 'ready']);
  });

  test('SIGPIPE stays ignored after its handler is removed, as Node has it', async () => {
    const child = spawnFixture('./signal-child.ts', ['sigpipe']);
    const out = new Lines(child);
    const [code, signal] = await out.closed;
    assert.deepEqual([code, signal], [0, null]);
    assert.deepEqual(out.lines, ['alive']);
  });

  test("under run(), a loop's SIGINT handler takes over from the Runner's", async () => {
    const child = spawnFixture('./signal-child.ts', ['runner-sigint']);
    const out = new Lines(child);
    await out.waitFor('ready');
    child.kill('SIGINT');
    const [code, signal] = await out.closed;
    assert.equal(out.stderr, '');
    assert.deepEqual([code, signal], [0, null]);
    assert.deepEqual(out.lines, ['ready', 'got int', 'done']);
  });
});
