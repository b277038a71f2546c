import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AbstractEventLoop,
  DefaultEventLoopPolicy,
  NodeEventLoop,
  Runner,
  SelectorEventLoop,
  getEventLoop,
  getEventLoopPolicy,
  getRunningLoop,
  newEventLoop,
  run,
  setEventLoop,
  setEventLoopPolicy,
  sleep,
} from '@loopwork/core';
import type { BaseEventLoop } from '@loopwork/core';

test('run() returns the result, then cancels what is left and closes the loop', async () => {
  let leftover: { cancelled(): boolean } | undefined;
  let loop: BaseEventLoop | undefined;
  const r = await run(async () => {
    loop = getRunningLoop();
    leftover = loop.createTask(() => sleep(10));
    await sleep(0);
    return 'main-result';
  });
  assert.equal(r, 'main-result');
  assert.equal(leftover!.cancelled(), true);
  assert.equal(loop!.isClosed(), true);
});

test('run() with debug, with a promise, with a future; errors propagate', async () => {
  assert.equal(await run(async () => getRunningLoop().getDebug(), { debug: true }), true);
  await assert.rejects(
    run(async () => {
      throw new Error('main failed');
    }),
    /main failed/,
  );
  await assert.rejects(run(42 as never), TypeError);
});

test('run() inside a running loop is refused', async () => {
  const loop = newEventLoop();
  await loop.runUntilComplete(async () => {
    await assert.rejects(
      run(async () => 1),
      { message: 'run() cannot be called from a running event loop' },
    );
  });
  loop.close();
});

test('Runner runs several coroutines on one loop and closes with await using', async () => {
  let loops: BaseEventLoop[] = [];
  {
    await using runner = new Runner();
    loops.push(await runner.run(async () => getRunningLoop()));
    loops.push(await runner.run(async () => getRunningLoop()));
    assert.equal(runner.getLoop(), loops[0]);
    assert.equal(getEventLoop(), loops[0], 'the runner sets its loop as current');
  }
  assert.equal(loops[0], loops[1]);
  assert.equal(loops[0]!.isClosed(), true);
  loops = [];
});

test('Runner with a loopFactory', async () => {
  const mine = newEventLoop();
  const runner = new Runner({ loopFactory: () => mine });
  assert.equal(await runner.run(async () => getRunningLoop() === mine), true);
  await runner.close();
  assert.equal(mine.isClosed(), true);
  await assert.rejects(
    runner.run(async () => 1),
    { message: 'Runner is closed' },
  );
});

test('SIGINT cancels the main task, which ends with KeyboardInterrupt; its finally runs', async () => {
  const script = fileURLToPath(new URL('./fixtures/sigint-main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--conditions=loopwork-source', '--import', 'tsx', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (d.includes('ready')) child.kill('SIGINT');
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.match(out, /ready\n/);
  assert.match(out, /finally ran\n/);
  assert.match(out, /KeyboardInterrupt\n/);
  assert.equal(code, 130);
});

test('the event-loop policy: newEventLoop, getEventLoop, setEventLoop and run() go through it', async () => {
  assert.ok(getEventLoopPolicy() instanceof DefaultEventLoopPolicy);
  assert.equal(SelectorEventLoop, NodeEventLoop);
  class Counting extends DefaultEventLoopPolicy {
    made = 0;
    override newEventLoop(): BaseEventLoop {
      this.made++;
      return super.newEventLoop();
    }
  }
  const policy = new Counting();
  setEventLoopPolicy(policy);
  try {
    assert.equal(getEventLoopPolicy(), policy);
    const loop = newEventLoop();
    assert.ok(loop instanceof AbstractEventLoop);
    assert.equal(policy.made, 1);
    setEventLoop(loop);
    assert.equal(getEventLoop(), loop);
    loop.close();
    assert.equal(await run(async () => getRunningLoop() instanceof NodeEventLoop), true);
    assert.equal(policy.made, 2, 'run() made its loop through the policy');
    assert.throws(() => setEventLoopPolicy({} as never), {
      name: 'TypeError',
      message: "policy must be an instance of AbstractEventLoopPolicy or None, not 'Object'",
    });
  } finally {
    setEventLoopPolicy(null);
  }
  assert.ok(getEventLoopPolicy() instanceof DefaultEventLoopPolicy);
  assert.notEqual(getEventLoopPolicy(), policy);
});
