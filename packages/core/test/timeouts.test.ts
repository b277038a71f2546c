import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CancelledError,
  Timeout,
  TimeoutError,
  currentTask,
  newEventLoop,
  sleep,
  timeout,
  timeoutAt,
  waitFor,
} from '@loopwork/core';
import type { BaseEventLoop } from '@loopwork/core';

function withLoop(body: (loop: BaseEventLoop) => Promise<void>): Promise<void> {
  const loop = newEventLoop();
  return loop.runUntilComplete(() => body(loop)).finally(() => loop.close());
}

test('timeout turns the cancellation it caused into TimeoutError and un-cancels the task', () =>
  withLoop(async () => {
    let cm: Timeout | undefined;
    await assert.rejects(
      timeout(0.01, async (t) => {
        cm = t;
        await sleep(1);
      }),
      TimeoutError,
    );
    assert.equal(cm!.expired(), true);
    assert.equal(currentTask()!.cancelling(), 0, 'uncancel() restored the count');
  }));

test('a block that finishes in time returns its value; reschedule and when', () =>
  withLoop(async (loop) => {
    const r = await timeout(1, async (t) => {
      assert.ok(t.when()! > loop.time());
      t.reschedule(null);
      assert.equal(t.when(), null);
      return 'fine';
    });
    assert.equal(r, 'fine');
    const late = await timeoutAt(loop.time() + 0.01, async (t) => {
      t.reschedule(loop.time() + 1);
      await sleep(0.03);
      return t.expired();
    });
    assert.equal(late, false);
  }));

test('timeout() and waitFor() refuse a delay that is neither a number nor null', () =>
  withLoop(async () => {
    // asyncio fails on loop.time() + '1' and on '1' <= 0; here '1' was concatenated to the loop time (a deadline
    // that never came) and waitFor(x, '1') timed out at once.
    const bad = { name: 'TypeError', message: /must be a number or null, got '1'/ };
    assert.throws(() => timeout('1' as unknown as number, async () => 'x'), bad);
    assert.throws(() => timeout('1' as unknown as number), bad);
    await assert.rejects(waitFor(sleep(0.001, 'x'), '1' as unknown as number), bad);
    await assert.rejects(waitFor(sleep(0.001, 'x'), undefined as unknown as number), { name: 'TypeError' });
    assert.equal(await waitFor(sleep(0.001, 'x'), null), 'x');
  }));

test('an outer cancellation is not turned into TimeoutError (uncancel semantics)', () =>
  withLoop(async (loop) => {
    const task = loop.createTask(async () => {
      await timeout(0.05, async () => {
        await sleep(1);
      });
    });
    await sleep(0.01);
    task.cancel();
    await assert.rejects(
      async () => await task,
      (e: unknown) => CancelledError.isInstance(e),
    );
  }));

test('nested timeouts: the inner one expiring raises TimeoutError inside the outer', () =>
  withLoop(async () => {
    const outer = await timeout(1, async () => {
      try {
        await timeout(0.01, () => sleep(1));
        return 'no';
      } catch (e) {
        return e instanceof Error ? e.name : 'other';
      }
    });
    assert.equal(outer, 'TimeoutError');
  }));

test('state errors: reschedule before enter, enter twice, outside a task', () =>
  withLoop(async () => {
    const t = new Timeout(null);
    assert.throws(() => t.reschedule(1), /Timeout has not been entered/);
    t.enter();
    assert.throws(() => t.enter(), /Timeout has already been entered/);
    t.exit();
    assert.throws(() => t.reschedule(1), /Cannot change state of finished Timeout/);
    const loop = newEventLoop();
    loop.callSoon(() => {
      assert.throws(() => new Timeout(null).enter(), /Timeout should be used inside a task/);
      loop.stop();
    });
    await new Promise((r) => setImmediate(r));
    loop.close();
  }));
