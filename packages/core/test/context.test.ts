import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Context,
  ContextVar,
  Token,
  copyContext,
  currentTask,
  enterScope,
  exitScope,
  newEventLoop,
  sleep,
} from '@loopwork/core';
import { Lines, spawnFixture } from './fixtures/child-process.js';

test('get/set/reset with default and tokens', () => {
  const v = new ContextVar<number>('v', { default: 1 });
  const ctx = new Context();
  ctx.run(() => {
    assert.equal(v.get(), 1);
    const t = v.set(2);
    assert.equal(v.get(), 2);
    assert.equal(t.oldValue, Token.MISSING);
    const t2 = v.set(3);
    assert.equal(t2.oldValue, 2);
    v.reset(t2);
    assert.equal(v.get(), 2);
    assert.throws(() => v.reset(t2), {
      name: 'RuntimeError',
      message: "<Token used var=<ContextVar name='v'>> has already been used once",
    });
    assert.throws(() => new ContextVar<number>('u').reset(t), {
      name: 'ValueError',
      message: "<Token var=<ContextVar name='v'>> was created by a different ContextVar",
    });
    assert.throws(() => new Context().run(() => v.reset(t)), {
      name: 'ValueError',
      message: "<Token var=<ContextVar name='v'>> was created in a different Context",
    });
    assert.throws(() => v.reset({} as Token<number>), {
      name: 'TypeError',
      message: 'expected an instance of Token, got {}',
    });
    v.reset(t);
    assert.equal(v.get(), 1);
  });
  const noDefault = new ContextVar<string>('nd');
  new Context().run(() => {
    assert.throws(() => noDefault.get(), /has no value/);
    assert.equal(noDefault.get('fallback'), 'fallback');
  });
});

test('Context.run refuses a context already entered, as Python does', async () => {
  const ctx = new Context();
  const other = new Context();
  const refused = { name: 'RuntimeError', message: 'cannot enter context: <Context vars=0> is already entered' };
  assert.throws(() => ctx.run(() => ctx.run(() => 1)), refused);
  assert.throws(() => ctx.run(() => other.run(() => ctx.run(() => 1))), refused);
  assert.equal(
    ctx.run(() => other.run(() => 2)),
    2,
  );
  assert.equal(
    ctx.run(() => 3),
    3,
  ); // entered again once the first run() returned
  // The context of the running task is entered, as asyncio runs a task's step in it.
  const loop = newEventLoop();
  try {
    await loop.runUntilComplete(
      loop.createTask(async () => assert.throws(() => ctx.run(() => 1), refused), { context: ctx }),
    );
  } finally {
    loop.close();
  }
});

test('Context.run keeps changes in that context only; copies are independent', () => {
  const v = new ContextVar<string>('v', { default: 'root' });
  const a = copyContext();
  a.run(() => v.set('a'));
  const b = a.copy();
  b.run(() => v.set('b'));
  assert.equal(a.get(v), 'a');
  assert.equal(b.get(v), 'b');
  assert.equal(a.has(v), true);
  assert.equal(new Context().get(v, 'dflt'), 'dflt');
  assert.deepEqual([...b.keys()], [v]);
});

test('a context var set in a task is not seen by its parent; the task sees the parent value at creation', async () => {
  const loop = newEventLoop();
  const v = new ContextVar<string>('request', { default: '-' });
  await loop.runUntilComplete(async () => {
    v.set('parent');
    const child = loop.createTask(async () => {
      const seen = v.get();
      v.set('child');
      await sleep(0);
      return [seen, v.get()];
    });
    v.set('parent-after-create');
    assert.deepEqual(await child, ['parent', 'child']);
    assert.equal(v.get(), 'parent-after-create');
  });
  loop.close();
});

test('a task runs in the context given to createTask; a callback in the context given to callSoon', async () => {
  const loop = newEventLoop();
  const v = new ContextVar<number>('n', { default: 0 });
  const ctx = new Context();
  ctx.run(() => v.set(42));
  await loop.runUntilComplete(async () => {
    const t = loop.createTask(async () => v.get(), { context: ctx });
    assert.equal(await t, 42);
    assert.equal(t.getContext(), ctx);
    const got = loop.createFuture<number>();
    loop.callSoon(() => got.setResult(v.get()), { context: ctx });
    assert.equal(await got, 42);
    assert.equal(currentTask()?.getContext().has(v), false);
  });
  loop.close();
});

test("a task keeps its context and stays current across awaits of Node's own promises and of thenables", async () => {
  const loop = newEventLoop();
  const v = new ContextVar<string>('who', { default: '-' });
  const { setTimeout: delay } = await import('node:timers/promises');
  await loop.runUntilComplete(async () => {
    const run = (name: string, ms: number) =>
      loop.createTask(
        async () => {
          const me = currentTask();
          v.set(name);
          const seen: string[] = [];
          await delay(ms);
          seen.push(`${v.get()}:${currentTask() === me}`);
          const fromThenable = await { then: (resolve: (x: string) => void) => setTimeout(() => resolve(v.get()), ms) };
          seen.push(`then=${fromThenable}`);
          await Promise.all([1, 2].map(async () => delay(ms)));
          seen.push(`${v.get()}:${currentTask() === me}`);
          return seen;
        },
        { name },
      );
    // Interleaved: each task's awaits resume in between the other's.
    const [a, b] = await Promise.all([run('a', 5), run('b', 3)]);
    // A thenable's then() runs inside the awaiting task, but the timer it starts calls back in the root context.
    assert.deepEqual(a, ['a:true', 'then=-', 'a:true']);
    assert.deepEqual(b, ['b:true', 'then=-', 'b:true']);
    assert.equal(v.get(), '-');
  });
  loop.close();
});

test("Node's own callbacks run in the root context with no current task, as only the loop's callbacks carry one", async () => {
  const loop = newEventLoop();
  const v = new ContextVar<string>('where', { default: 'root' });
  await loop.runUntilComplete(async () => {
    v.set('task');
    const seen = await new Promise<string[]>((resolve) => {
      const got: string[] = [];
      const note = (what: string) => {
        got.push(`${what} ${v.get()} ${String(currentTask())}`);
        if (got.length === 3) resolve(got.sort());
      };
      setTimeout(() => note('timeout'), 1);
      process.nextTick(() => note('tick'));
      setImmediate(() => note('immediate'));
    });
    assert.deepEqual(seen, ['immediate root null', 'tick root null', 'timeout root null']);
    assert.equal(v.get(), 'task');
  });
  loop.close();
});

test('an AsyncLocalStorage of the application still follows a task across its awaits', async () => {
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const als = new AsyncLocalStorage<string>();
  const loop = newEventLoop();
  const got = await als.run('request-7', () =>
    loop.runUntilComplete(async () => {
      await sleep(0.001);
      const inner = loop.createTask(async () => {
        await sleep(0);
        return als.getStore();
      });
      return [als.getStore(), await inner];
    }),
  );
  assert.deepEqual(got, ['request-7', 'request-7']);
  loop.close();
});

test("enterScope/exitScope: a transport callback Node calls from inside a task leaves the task's scope as it was", async () => {
  const loop = newEventLoop();
  const v = new ContextVar<string>('v', { default: 'root' });
  const other = new Context();
  other.run(() => v.set('other'));
  await loop.runUntilComplete(async () => {
    const me = currentTask();
    v.set('task');
    const outer = enterScope(other);
    assert.equal(v.get(), 'other');
    assert.equal(currentTask(), null);
    const inner = enterScope(null);
    assert.equal(v.get(), 'root');
    exitScope(inner);
    assert.equal(v.get(), 'other');
    exitScope(outer);
    assert.equal(v.get(), 'task');
    assert.equal(currentTask(), me);
    await sleep(0);
    assert.equal(currentTask(), me);
  });
  loop.close();
});

test('a loop callback scheduled while no context variable was in use keeps what it sets to itself', async () => {
  const child = spawnFixture('./first-context-var.ts');
  const out = new Lines(child);
  const [code] = await out.closed;
  assert.equal(code, 0, out.stderr);
  const checks = Object.fromEntries(
    out.lines.map((l) => JSON.parse(l) as { check: string; value: unknown }).map((r) => [r.check, r.value]),
  );
  assert.deepEqual(checks, {
    'getContext is the same each time': true,
    'second callback': 'none',
    'top level after the run': 'none',
    "the first callback's context": 'first',
    'callback scheduled before a top-level set': 'none',
  });
});
