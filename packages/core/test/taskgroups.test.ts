import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelledError, ExceptionGroup, TaskGroup, currentTask, newEventLoop, sleep } from '@loopwork/core';
import type { BaseEventLoop } from '@loopwork/core';

function withLoop(body: (loop: BaseEventLoop) => Promise<void>): Promise<void> {
  const loop = newEventLoop();
  return loop.runUntilComplete(() => body(loop)).finally(() => loop.close());
}

test('waits for every task; returns the body value', () =>
  withLoop(async () => {
    const got: number[] = [];
    const r = await new TaskGroup().run(async (tg) => {
      tg.createTask(async () => {
        await sleep(0.02);
        got.push(2);
      });
      tg.createTask(async () => {
        await sleep(0.01);
        got.push(1);
      });
      return 'body';
    });
    assert.equal(r, 'body');
    assert.deepEqual(got, [1, 2]);
  }));

test('a failing child cancels the others and the body; all errors come in an ExceptionGroup', () =>
  withLoop(async () => {
    let otherCancelled = false;
    let bodyCancelled = false;
    await assert.rejects(
      new TaskGroup().run(async (tg) => {
        tg.createTask(async () => {
          await sleep(0.005);
          throw new Error('child failed');
        });
        tg.createTask(async () => {
          try {
            await sleep(1);
          } catch (e) {
            otherCancelled = CancelledError.isInstance(e);
            throw e;
          }
        });
        try {
          await sleep(1);
        } catch (e) {
          bodyCancelled = CancelledError.isInstance(e);
          throw e;
        }
      }),
      (e: unknown) => {
        assert.ok(e instanceof ExceptionGroup);
        assert.equal(e.exceptions.length, 1);
        assert.equal((e.exceptions[0] as Error).message, 'child failed');
        return true;
      },
    );
    assert.equal(otherCancelled, true);
    assert.equal(bodyCancelled, true);
  }));

test('a child failing while the block already waits for the group leaves the parent uncancelled', () =>
  withLoop(async () => {
    // asyncio 3.12 uncancels the parent after the wait: the parent's cancel() made by a child that fails once the
    // block has returned was never withdrawn, and cancelling() stayed at 1 after the group.
    await assert.rejects(
      new TaskGroup().run((tg) => {
        tg.createTask(async () => {
          await sleep(0.005);
          throw new Error('late');
        });
        tg.createTask(() => sleep(1));
      }),
      ExceptionGroup,
    );
    assert.equal(currentTask()?.cancelling(), 0);
    assert.equal(await sleep(0.001, 'still runs'), 'still runs');
  }));

test('the body failing cancels the children and is part of the group', () =>
  withLoop(async () => {
    await assert.rejects(
      new TaskGroup().run(async (tg) => {
        tg.createTask(() => sleep(1));
        throw new Error('body failed');
      }),
      (e: unknown) => e instanceof ExceptionGroup && (e.exceptions[0] as Error).message === 'body failed',
    );
  }));

test('an outer cancellation propagates as CancelledError and cancels the children', () =>
  withLoop(async (loop) => {
    let childCancelled = false;
    const t = loop.createTask(() =>
      new TaskGroup().run(async (tg) => {
        tg.createTask(async () => {
          try {
            await sleep(1);
          } catch (e) {
            childCancelled = true;
            throw e;
          }
        });
        await sleep(1);
      }),
    );
    await sleep(0.01);
    t.cancel();
    await assert.rejects(
      async () => await t,
      (e: unknown) => CancelledError.isInstance(e),
    );
    assert.equal(childCancelled, true);
  }));

test('state errors', () =>
  withLoop(async () => {
    const tg = new TaskGroup();
    assert.throws(() => tg.createTask(async () => undefined), /has not been entered/);
    await tg.run(async () => undefined);
    assert.throws(() => tg.createTask(async () => undefined), /is finished/);
    assert.throws(() => tg.enter(), /has already been entered/);
  }));
