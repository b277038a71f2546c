import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelledError, sleep, staggeredRace } from '@loopwork/server';
import type { BaseEventLoop } from '@loopwork/server';
import { runLoop, settle } from './helpers.js';

/** A coroutine function that records its start, waits `seconds`, then returns `value` or throws it. */
function coro(loop: BaseEventLoop, log: string[], name: string, seconds: number, outcome: 'ok' | 'fail') {
  return async (): Promise<string> => {
    log.push(`start ${name} ${Math.round(loop.time() * 10)}`);
    try {
      await sleep(seconds);
    } catch (e) {
      log.push(`cancelled ${name}`);
      throw e;
    }
    if (outcome === 'fail') throw new Error(`${name} failed`);
    return name;
  };
}

test('the first to succeed wins and the others are cancelled', () =>
  runLoop(async (loop) => {
    const log: string[] = [];
    const [result, index, excs] = await staggeredRace(
      [coro(loop, log, 'slow', 10, 'ok'), coro(loop, log, 'fast', 0.01, 'ok'), coro(loop, log, 'never', 0, 'ok')],
      0.05,
      { loop },
    );
    assert.equal(result, 'fast');
    assert.equal(index, 1);
    assert.equal(excs.length, 2);
    assert.equal(excs[1], null);
    assert.ok(CancelledError.isInstance(excs[0]));
    assert.ok(log.includes('cancelled slow'));
    assert.ok(!log.some((l) => l.startsWith('start never')));
  }));

test('a failure starts the next one at once, without waiting for the delay', () =>
  runLoop(async (loop) => {
    const log: string[] = [];
    const t0 = loop.time();
    const [result, index, excs] = await staggeredRace(
      [coro(loop, log, 'a', 0, 'fail'), coro(loop, log, 'b', 0, 'fail'), coro(loop, log, 'c', 0, 'ok')],
      10,
      { loop },
    );
    assert.equal(result, 'c');
    assert.equal(index, 2);
    assert.deepEqual(
      excs.map((e) => (e instanceof Error ? e.message : e)),
      ['a failed', 'b failed', null],
    );
    assert.ok(loop.time() - t0 < 5);
  }));

test('all failing: no winner, every exception in order; an empty race', () =>
  runLoop(async (loop) => {
    const log: string[] = [];
    const [result, index, excs] = await staggeredRace(
      [coro(loop, log, 'a', 0.02, 'fail'), coro(loop, log, 'b', 0, 'fail')],
      0.01,
      { loop },
    );
    assert.equal(result, null);
    assert.equal(index, null);
    assert.deepEqual(
      excs.map((e) => (e as Error).message),
      ['a failed', 'b failed'],
    );
    assert.deepEqual(await staggeredRace([], 0.1, { loop }), [null, null, []]);
  }));

test('delay null runs them one after the other', () =>
  runLoop(async (loop) => {
    const log: string[] = [];
    const [result] = await staggeredRace([coro(loop, log, 'a', 0.02, 'fail'), coro(loop, log, 'b', 0.01, 'ok')], null, {
      loop,
    });
    assert.equal(result, 'b');
    assert.deepEqual(
      log.map((l) => l.split(' ').slice(0, 2).join(' ')),
      ['start a', 'start b'],
    );
  }));

test('cancelling the race cancels the running attempts', () =>
  runLoop(async (loop) => {
    const log: string[] = [];
    const task = loop.createTask(() =>
      staggeredRace([coro(loop, log, 'a', 10, 'ok'), coro(loop, log, 'b', 10, 'ok')], 0.01, { loop }),
    );
    await sleep(0.05);
    task.cancel();
    await assert.rejects(settle(task), (e: Error) => CancelledError.isInstance(e));
    await sleep(0);
    assert.ok(log.includes('cancelled a') && log.includes('cancelled b'), log.join('; '));
  }));
