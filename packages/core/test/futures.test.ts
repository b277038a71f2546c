import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelledError, InvalidStateError, isFuture, newEventLoop } from '@loopwork/core';
import type { BaseEventLoop, ExceptionContext, Future } from '@loopwork/core';

async function iterate(loop: BaseEventLoop, n = 1): Promise<void> {
  for (let i = 0; i < n; i++) {
    loop.stop();
    await loop.runForever();
  }
}

test('result() before done throws InvalidStateError "Result is not ready."', () => {
  const loop = newEventLoop();
  const f = loop.createFuture();
  assert.equal(f.done(), false);
  assert.throws(() => f.result(), { name: 'InvalidStateError', message: 'Result is not ready.' });
  assert.throws(() => f.exception(), { message: 'Exception is not set.' });
  let caught: unknown;
  try {
    f.result();
  } catch (e) {
    caught = e;
  }
  assert.ok(InvalidStateError.isInstance(caught));
  loop.close();
});

test('setResult, result, setting twice is refused', () => {
  const loop = newEventLoop();
  const f = loop.createFuture<number>();
  f.setResult(7);
  assert.equal(f.done(), true);
  assert.equal(f.result(), 7);
  assert.equal(f.exception(), null);
  assert.throws(() => f.setResult(8), { name: 'InvalidStateError', message: 'FINISHED: <Future finished result=7>' });
  assert.throws(() => f.setException(new Error('x')), InvalidStateError);
  loop.close();
});

test('setException: result() throws it, exception() returns it; an error class is instantiated', () => {
  const loop = newEventLoop();
  const f = loop.createFuture();
  const e = new Error('bad');
  f.setException(e);
  assert.throws(
    () => f.result(),
    (x) => x === e,
  );
  assert.equal(f.exception(), e);
  const g = loop.createFuture();
  g.setException(RangeError);
  assert.ok(g.exception() instanceof RangeError);
  loop.close();
});

test('cancel: cancelled(), result() throws CancelledError with the message, cancel twice is false', () => {
  const loop = newEventLoop();
  const f = loop.createFuture();
  assert.equal(f.cancel('why'), true);
  assert.equal(f.cancelled(), true);
  assert.equal(f.done(), true);
  assert.throws(
    () => f.result(),
    (e: unknown) => CancelledError.isInstance(e) && (e as Error).message === 'why',
  );
  assert.throws(() => f.exception(), CancelledError);
  assert.equal(f.cancel(), false);
  const done = loop.createFuture();
  done.setResult(1);
  assert.equal(done.cancel(), false);
  loop.close();
});

test('done callbacks run through callSoon, in registration order, each once; removeDoneCallback counts', async () => {
  const loop = newEventLoop();
  const f = loop.createFuture<number>();
  const got: string[] = [];
  const a = (fut: Future<number>): void => void got.push(`a${fut.result()}`);
  const b = (): void => void got.push('b');
  f.addDoneCallback(a);
  f.addDoneCallback(b);
  f.addDoneCallback(b);
  assert.equal(f.removeDoneCallback(b), 2);
  f.addDoneCallback(b);
  f.setResult(1);
  assert.equal(got.length, 0, 'not called synchronously');
  await iterate(loop);
  assert.deepEqual(got, ['a1', 'b']);
  f.addDoneCallback(() => got.push('late'));
  await iterate(loop);
  assert.deepEqual(got, ['a1', 'b', 'late']);
  loop.close();
});

test('await gives the result or throws; a future is a thenable', async () => {
  const loop = newEventLoop();
  const r = await loop.runUntilComplete(async () => {
    const f = loop.createFuture<string>();
    loop.callSoon(() => f.setResult('ok'));
    const v = await f;
    const g = loop.createFuture();
    loop.callSoon(() => g.setException(new Error('nope')));
    await assert.rejects(async () => {
      await g;
    }, /nope/);
    const c = loop.createFuture();
    loop.callSoon(() => c.cancel('gone'));
    await assert.rejects(
      async () => {
        await c;
      },
      (e: unknown) => CancelledError.isInstance(e) && (e as Error).message === 'gone',
    );
    return v;
  });
  assert.equal(r, 'ok');
  assert.ok(isFuture(loop.createFuture()));
  assert.equal(isFuture(Promise.resolve()), false);
  loop.close();
});

test('await of a future already done while its loop does not run, or is closed, settles without the loop', async () => {
  // `await task` after `loop.runUntilComplete(task)` used to wait for an iteration that never came (and threw
  // "Event loop is closed" once the loop was closed).
  const loop = newEventLoop();
  const t = loop.createTask(async () => 5);
  await loop.runUntilComplete(t);
  const failed = loop.createFuture();
  failed.setException(new Error('nope'));
  const cancelled = loop.createFuture();
  cancelled.cancel('gone');
  const timer = setTimeout(() => assert.fail('await of a done future hung'), 5000);
  try {
    assert.equal(await t, 5);
    await assert.rejects(async () => await failed, /nope/);
    loop.close();
    assert.equal(await t, 5);
    await assert.rejects(
      async () => await cancelled,
      (e: unknown) => CancelledError.isInstance(e),
    );
  } finally {
    clearTimeout(timer);
  }
});

test('an exception nobody retrieved is reported when the future is garbage-collected', async () => {
  const loop = newEventLoop();
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  (() => {
    const f = loop.createFuture();
    f.setException(new Error('lost'));
  })();
  for (let i = 0; i < 20 && errors.length === 0; i++) {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.message, 'Future exception was never retrieved');
  assert.equal((errors[0]!.exception as Error).message, 'lost');
  loop.close();
});

test('an exception nobody retrieved is reported when the loop closes; a retrieved one is not', () => {
  const loop = newEventLoop();
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  const kept = loop.createFuture();
  kept.setException(new Error('unseen'));
  const seen = loop.createFuture();
  seen.setException(new Error('seen'));
  seen.exception();
  loop.close();
  assert.equal(errors.length, 1);
  assert.equal((errors[0]!.exception as Error).message, 'unseen');
  void kept;
});

test('inspect shows the state', () => {
  const loop = newEventLoop();
  const f = loop.createFuture();
  assert.equal(
    String(Reflect.apply(f[Symbol.for('nodejs.util.inspect.custom') as never] as () => string, f, [])),
    '<Future pending>',
  );
  f.setResult(3);
  assert.match(f._describe(), /<Future finished result=3>/);
  loop.close();
});
