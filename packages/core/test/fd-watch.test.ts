import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  LoopClosedError,
  OSError,
  PermissionError,
  Protocol,
  RuntimeError,
  ValueError,
  newEventLoop,
  sleep,
} from '@loopwork/core';
import type { EventLoop, ExceptionContext } from '@loopwork/core';
import { close, pipe, pollStart, pollStop, read, READABLE, socketpair, write } from '../src/native.js';
import { Lines, spawnFixture } from './fixtures/child-process.js';

function quietLoop(t: TestContext): { loop: EventLoop; errors: ExceptionContext[] } {
  const loop = newEventLoop();
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  t.after(() => loop.close());
  return { loop, errors };
}

/** A socket pair closed when the test ends (those already closed are skipped). */
function pair(t: TestContext): [number, number] {
  const fds = socketpair();
  t.after(() => {
    for (const fd of fds) {
      try {
        close(fd);
      } catch {
        // closed by the test
      }
    }
  });
  return fds;
}

/** Runs one iteration: stop() before runForever() runs exactly the handles ready now. */
async function runOnce(loop: EventLoop): Promise<void> {
  loop.stop();
  await loop.runForever();
}

/** Lets Node turn its own loop `n` times (the poll phase runs each time) while the loopwork loop is stopped. */
async function nodeTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

function readAll(fd: number): string {
  const buf = Buffer.alloc(1024);
  const n = read(fd, buf);
  return n > 0 ? buf.subarray(0, n).toString() : '';
}

describe('addReader / removeReader', () => {
  test('the reader runs on the loop, with its arguments, when the other end writes', async (t) => {
    const { loop, errors } = quietLoop(t);
    const [a, b] = pair(t);
    const got: string[] = [];
    await loop.runUntilComplete(async () => {
      const done = loop.createFuture<void>();
      loop.addReader(
        a,
        (tag: string) => {
          got.push(`${tag}:${readAll(a)}`);
          assert.equal(loop.removeReader(a), true);
          done.setResult(undefined);
        },
        'r',
      );
      loop.callSoon(() => write(b, Buffer.from('abc')));
      await done;
    });
    assert.deepEqual(got, ['r:abc']);
    assert.equal(loop.removeReader(a), false);
    assert.deepEqual(errors, []);
  });

  test('after removeReader the callback no longer runs', async (t) => {
    const { loop } = quietLoop(t);
    const [a, b] = pair(t);
    const [c, d] = pair(t);
    const got: string[] = [];
    loop.addReader(a, () => got.push(`a:${readAll(a)}`));
    assert.equal(loop.removeReader(a), true);
    await loop.runUntilComplete(async () => {
      const done = loop.createFuture<void>();
      // Both fds become readable at once: had a's reader stayed, it would run in the same iteration as c's.
      loop.addReader(c, () => {
        got.push(`c:${readAll(c)}`);
        loop.removeReader(c);
        done.setResult(undefined);
      });
      write(b, Buffer.from('x'));
      write(d, Buffer.from('y'));
      await done;
      await new Promise<void>((resolve) => loop.callSoon(resolve));
    });
    assert.deepEqual(got, ['c:y']);
  });

  test('a second addReader replaces the first', async (t) => {
    const { loop } = quietLoop(t);
    const [a, b] = pair(t);
    const got: string[] = [];
    await loop.runUntilComplete(async () => {
      const done = loop.createFuture<void>();
      loop.addReader(a, () => got.push('first'));
      loop.addReader({ fileno: () => a }, () => {
        got.push(`second:${readAll(a)}`);
        loop.removeReader(a);
        done.setResult(undefined);
      });
      write(b, Buffer.from('z'));
      await done;
    });
    assert.deepEqual(got, ['second:z']);
  });

  test('a readable fd runs its reader once per iteration, also after the loop was stopped a while', async (t) => {
    const { loop } = quietLoop(t);
    const [a, b] = pair(t);
    let calls = 0;
    loop.addReader(a, () => calls++);
    write(b, Buffer.from('stays unread'));
    // The loop is stopped: Node polls meanwhile, but the Handle is queued once.
    await nodeTurns(5);
    await runOnce(loop);
    assert.equal(calls, 1);
    // Polling resumed once the Handle ran: the still-readable fd queues it again.
    await nodeTurns(5);
    await runOnce(loop);
    assert.equal(calls, 2);
    assert.equal(loop.removeReader(a), true);
    await nodeTurns(5);
    await runOnce(loop);
    assert.equal(calls, 2);
  });

  test('an exception in the reader goes to the exception handler and the reader stays', async (t) => {
    const { loop, errors } = quietLoop(t);
    const [a, b] = pair(t);
    const boom = new Error('boom');
    let calls = 0;
    loop.addReader(a, function failingReader() {
      calls++;
      throw boom;
    });
    write(b, Buffer.from('x'));
    await loop.runUntilComplete(async () => {
      while (calls < 2) await new Promise<void>((resolve) => loop.callSoon(resolve));
    });
    loop.removeReader(a);
    assert.equal(errors[0]?.exception, boom);
    assert.match(errors[0]?.message ?? '', /^Exception in callback failingReader/);
  });

  test("debug mode: a slow reader is reported by its own Handle, as asyncio's", async (t) => {
    const lines: string[] = [];
    const { default: pino } = await import('pino');
    const loop = newEventLoop({ debug: true, logger: pino({}, { write: (s: string) => void lines.push(s) }) });
    t.after(() => loop.close());
    loop.slowCallbackDuration = 0.02;
    const [a, b] = pair(t);
    loop.addReader(
      a,
      function slowReader(tag: string) {
        readAll(a);
        const end = Date.now() + 40;
        while (Date.now() < end);
        void tag;
        loop.removeReader(a);
      },
      'tag',
    );
    write(b, Buffer.from('x'));
    await loop.runUntilComplete(sleep(0.1));
    const slow = lines
      .map((l) => JSON.parse(l) as { msg: string; createdAt?: string })
      .filter((r) => /^Executing/.test(r.msg));
    assert.equal(slow.length, 1, lines.join('\n'));
    assert.match(
      slow[0]!.msg,
      /^Executing <Handle cancelled slowReader\('tag'\) created at .*fd-watch\.test\.ts.*> took 0\.0\d\d seconds$/,
    );
    assert.match(slow[0]!.createdAt ?? '', /fd-watch\.test\.ts/);
  });

  test('an fd of a pipe works as well as a socket', async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    t.after(() => {
      close(r);
      close(w);
    });
    await loop.runUntilComplete(async () => {
      const done = loop.createFuture<string>();
      loop.addReader(r, () => {
        loop.removeReader(r);
        done.setResult(readAll(r));
      });
      write(w, Buffer.from('piped'));
      assert.equal(await done, 'piped');
    });
  });
});

describe('addWriter / removeWriter', () => {
  test('the writer runs when the fd is writable, and stops after removeWriter', async (t) => {
    const { loop } = quietLoop(t);
    const [a, b] = pair(t);
    const got: string[] = [];
    await loop.runUntilComplete(async () => {
      const done = loop.createFuture<void>();
      loop.addWriter(
        a,
        (msg: string) => {
          write(a, Buffer.from(msg));
          got.push('wrote');
          assert.equal(loop.removeWriter(a), true);
          done.setResult(undefined);
        },
        'hello',
      );
      await done;
    });
    assert.deepEqual(got, ['wrote']);
    assert.equal(readAll(b), 'hello');
    assert.equal(loop.removeWriter(a), false);
  });

  test('a reader and a writer on one fd are independent', async (t) => {
    const { loop } = quietLoop(t);
    const [a, b] = pair(t);
    await loop.runUntilComplete(async () => {
      const wrote = loop.createFuture<void>();
      const readDone = loop.createFuture<string>();
      loop.addReader(a, () => {
        loop.removeReader(a);
        readDone.setResult(readAll(a));
      });
      loop.addWriter(a, () => {
        loop.removeWriter(a);
        wrote.setResult(undefined);
      });
      await wrote;
      // The reader is still registered after the writer went away.
      write(b, Buffer.from('late'));
      assert.equal(await readDone, 'late');
    });
  });
});

describe('arguments and states', () => {
  test('invalid fds and callbacks are refused', (t) => {
    const { loop } = quietLoop(t);
    assert.throws(() => loop.addReader(-1, () => {}), { name: 'ValueError', message: 'Invalid file descriptor: -1' });
    assert.throws(
      () => loop.addReader('x' as never, () => {}),
      (err: Error) => {
        assert.ok(ValueError.isInstance(err));
        assert.equal(err.message, "Invalid file object: 'x'");
        return true;
      },
    );
    assert.throws(() => loop.removeWriter(1.5), ValueError);
    assert.throws(() => loop.addReader(0, 42 as never), {
      name: 'TypeError',
      message: 'a callable object was expected by addReader(), got 42',
    });
    assert.throws(() => loop.addWriter(0, async () => {}), { message: 'coroutines cannot be used with addWriter()' });
    assert.throws(() => loop.addReader(0, Promise.resolve() as never), {
      name: 'TypeError',
      message: 'coroutines cannot be used with addReader()',
    });
  });

  test("a closed file descriptor or a regular file is refused with asyncio's OSError", (t) => {
    const { loop } = quietLoop(t);
    const [a, b] = socketpair();
    close(a);
    close(b);
    assert.throws(
      () => loop.addReader(a, () => {}),
      (err: Error) => {
        assert.ok(OSError.isInstance(err));
        assert.equal(err.message, '[Errno 9] Bad file descriptor');
        assert.equal((err as Error & { code?: unknown }).code, 'EBADF');
        return true;
      },
    );
    assert.equal(loop.removeReader(a), false);
    const file = openSync(fileURLToPath(import.meta.url), 'r');
    t.after(() => closeSync(file));
    assert.throws(
      () => loop.addWriter(file, () => {}),
      (err: Error) => {
        assert.ok(PermissionError.isInstance(err));
        assert.equal(err.message, '[Errno 1] Operation not permitted');
        return true;
      },
    );
    assert.equal(loop.removeWriter(file), false);
  });

  test('an fd closed in the same turn as addReader/addWriter, or after its watch changed, is taken quietly', async () => {
    // libuv registers a watch with epoll in its next poll phase and aborted the process when the fd was gone by
    // then: run in a child, so that an abort is a failed test.
    const out = new Lines(spawnFixture('./close-watched-fd.ts'));
    const [code, signal] = await out.closed;
    assert.deepEqual([code, signal], [0, null], out.stderr);
    assert.deepEqual(
      out.lines.map((l) => JSON.parse(l) as unknown),
      [
        { check: 'addReader then close', value: true },
        { check: 'addWriter then close', value: true },
        { check: 'changed then close', value: [true, true] },
      ],
    );
  });

  test('an fd owned by a transport is refused until the transport is closing', async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    t.after(() => close(w));
    await loop.runUntilComplete(async () => {
      const [transport] = await loop.connectReadPipe(() => new Protocol(), r);
      const expected = new RegExp(`^File descriptor .* is used by transport <UnixReadPipeTransport fd=${r} polling>$`);
      for (const attempt of [
        () => loop.addReader(r, () => {}),
        () => loop.addWriter(r, () => {}),
        () => loop.removeReader(r),
        () => loop.removeWriter({ fileno: () => r }),
      ]) {
        assert.throws(attempt, (err: Error) => {
          assert.ok(RuntimeError.isInstance(err));
          assert.ok(err.message.startsWith(`File descriptor ${r} `) || err.message.includes('fileno'));
          assert.match(err.message, expected);
          return true;
        });
      }
      transport.close();
      // Closing: the fd is no longer the transport's to defend (asyncio's is_closing() check).
      assert.equal(loop.removeReader(r), false);
    });
  });

  test('a closed loop refuses addReader/addWriter; remove* return false', (t) => {
    const loop = newEventLoop();
    const [a] = pair(t);
    loop.close();
    assert.throws(() => loop.addReader(a, () => {}), LoopClosedError);
    assert.throws(() => loop.addWriter(a, () => {}), LoopClosedError);
    assert.equal(loop.removeReader(a), false);
    assert.equal(loop.removeWriter(a), false);
  });

  test('close() stops every watcher: the fd can be polled anew', (t) => {
    const loop = newEventLoop();
    const [a] = pair(t);
    loop.addReader(a, () => {});
    loop.addWriter(a, () => {});
    // libuv allows one poll per fd: a second one is EEXIST while the loop's poll is active.
    assert.throws(() => pollStart(a, READABLE, () => {}), { code: 'EEXIST' });
    loop.close();
    const h = pollStart(a, READABLE, () => {});
    pollStop(h);
  });

  test('without the native addon the methods throw NativeUnavailableError saying why', async () => {
    const child = spawnFixture('./native-off.ts', [], { env: { ...process.env, LOOPWORK_NATIVE: '0' } });
    const out = new Lines(child);
    const [code] = await out.closed;
    assert.equal(code, 0, out.stderr);
    const results = Object.fromEntries(
      out.lines.map((l) => JSON.parse(l) as { check: string; value: unknown }).map((r) => [r.check, r.value]),
    );
    for (const method of ['addReader', 'removeReader', 'addWriter', 'removeWriter']) {
      const r = results[method] as { native: boolean; message: string };
      assert.equal(r.native, true, method);
      assert.match(r.message, /native addon is not available \(disabled by LOOPWORK_NATIVE=0\)/);
    }
  });
});
