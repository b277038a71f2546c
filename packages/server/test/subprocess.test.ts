import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import {
  DEVNULL,
  PIPE,
  STDOUT,
  TimeoutError,
  createSubprocessExec,
  createSubprocessShell,
  waitFor,
} from '@loopwork/server';
import type { Process } from '@loopwork/server';
import { runLoop } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);

/** Kills the child if a test failed before it ended. */
function reap(t: { after(fn: () => void): void }, proc: Process): void {
  t.after(() => {
    if (proc.returncode === null) proc.kill();
  });
}

describe('createSubprocessExec and Process', () => {
  test('cat round trip: lines written to stdin come back on stdout', (t) =>
    runLoop(async (_loop, errors) => {
      const proc = await createSubprocessExec('cat', { stdin: PIPE, stdout: PIPE });
      reap(t, proc);
      assert.ok(proc.pid > 0);
      assert.equal(proc.returncode, null);
      assert.equal(proc.stderr, null); // inherited, as asyncio's default
      assert.match(inspect(proc), /^<Process \d+>$/);
      const stdin = proc.stdin!;
      const stdout = proc.stdout!;
      for (const line of ['first\n', 'second\n']) {
        stdin.write(b(line));
        await stdin.drain();
        assert.deepEqual(await stdout.readline(), b(line));
      }
      stdin.close();
      await stdin.waitClosed();
      assert.deepEqual(await stdout.read(), b(''));
      assert.equal(await proc.wait(), 0);
      assert.equal(proc.returncode, 0);
      assert.deepEqual(errors, []);
    }));

  test('communicate with a large input', (t) =>
    runLoop(async (_loop, errors) => {
      const proc = await createSubprocessExec('cat', { stdin: PIPE, stdout: PIPE, stderr: PIPE });
      reap(t, proc);
      const input = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < input.length; i++) input[i] = (i * 31) & 0xff;
      const [out, err] = await proc.communicate(input);
      assert.equal(out!.length, input.length);
      assert.ok(out!.equals(input));
      assert.deepEqual(err, b(''));
      assert.equal(proc.returncode, 0);
      assert.deepEqual(errors, []);
    }));

  test('communicate when the child exits without reading its input is not an error', (t) =>
    runLoop(async () => {
      const proc = await createSubprocessExec('sh', '-c', 'exit 3', { stdin: PIPE, stdout: PIPE });
      reap(t, proc);
      const [out, err] = await proc.communicate(Buffer.alloc(4 * 1024 * 1024));
      assert.deepEqual(out, b(''));
      assert.equal(err, null);
      assert.equal(proc.returncode, 3);
    }));

  test('exit codes', () =>
    runLoop(async () => {
      for (const code of [0, 1, 7, 255]) {
        const proc = await createSubprocessExec('sh', '-c', `exit ${code}`);
        assert.equal(await proc.wait(), code);
        assert.equal(proc.returncode, code);
      }
      // Waiting again returns at once.
      const proc = await createSubprocessShell('exit 5');
      assert.equal(await proc.wait(), 5);
      assert.equal(await proc.wait(), 5);
    }));

  test('signals give a negative return code: terminate, kill, sendSignal', (t) =>
    runLoop(async () => {
      const cases: [(p: Process) => void, number][] = [
        [(p) => p.terminate(), -15],
        [(p) => p.kill(), -9],
        [(p) => p.sendSignal('SIGUSR1'), -10],
        [(p) => p.sendSignal(2), -2],
      ];
      for (const [send, expected] of cases) {
        const proc = await createSubprocessExec('sleep', '30', { stdout: DEVNULL });
        reap(t, proc);
        send(proc);
        assert.equal(await waitFor(() => proc.wait(), 10), expected);
        assert.equal(proc.returncode, expected);
      }
    }));

  test('waitFor(proc.communicate(), t) and waitFor(proc.wait(), t) time out at t; the child can be killed then', (t) =>
    runLoop(async (loop) => {
      // The asyncio idiom for a child that runs too long, with the promises JavaScript has started already.
      const proc = await createSubprocessExec('sleep', '30', { stdin: PIPE, stdout: PIPE });
      reap(t, proc);
      let t0 = loop.time();
      await assert.rejects(waitFor(proc.communicate(b('x')), 0.2), TimeoutError);
      assert.ok(loop.time() - t0 < 5, `communicate timed out after ${loop.time() - t0} s`);
      t0 = loop.time();
      await assert.rejects(waitFor(proc.wait(), 0.1), TimeoutError);
      assert.ok(loop.time() - t0 < 5, `wait timed out after ${loop.time() - t0} s`);
      assert.equal(proc.returncode, null);
      proc.kill();
      assert.equal(await proc.wait(), -9);
    }));

  test('stderr to a pipe, or merged into stdout', () =>
    runLoop(async () => {
      const script = 'echo out; echo err >&2';
      let proc = await createSubprocessShell(script, { stdout: PIPE, stderr: PIPE });
      let [out, err] = await proc.communicate();
      assert.deepEqual(out, b('out\n'));
      assert.deepEqual(err, b('err\n'));
      proc = await createSubprocessShell(script, { stdout: PIPE, stderr: STDOUT });
      assert.equal(proc.stderr, null);
      [out, err] = await proc.communicate();
      assert.deepEqual(out, b('out\nerr\n'));
      assert.equal(err, null);
    }));

  test('stdout read line by line while the child runs; the limit reaches the readers', () =>
    runLoop(async () => {
      const proc = await createSubprocessExec('sh', '-c', 'for i in 1 2 3; do echo line $i; done', {
        stdout: PIPE,
        limit: 5,
      });
      assert.equal(proc.stdout!._limit, 5);
      await assert.rejects(proc.stdout!.readline(), { name: 'ValueError' }); // 'line 1' is over 5 bytes
      const proc2 = await createSubprocessExec('sh', '-c', 'for i in 1 2 3; do echo line $i; done', {
        stdout: PIPE,
      });
      const lines: string[] = [];
      for await (const line of proc2.stdout!) lines.push(line.toString());
      assert.deepEqual(lines, ['line 1\n', 'line 2\n', 'line 3\n']);
      assert.equal(await proc2.wait(), 0);
      await proc.wait();
    }));

  test('options are checked as asyncio checks them; a missing program is ENOENT', () =>
    runLoop(async () => {
      await assert.rejects(createSubprocessExec('true', { shell: true }), {
        name: 'ValueError',
        message: 'shell must be False',
      });
      await assert.rejects(createSubprocessShell('true', { bogus: 1 } as never), TypeError);
      await assert.rejects(createSubprocessExec('/no/such/program'), { code: 'ENOENT' });
      await assert.rejects(
        (async () => {
          const p = await createSubprocessExec('cat', { stdin: PIPE, stdout: DEVNULL });
          try {
            await p.communicate('text' as never);
          } finally {
            p.kill();
            await p.wait();
          }
        })(),
        TypeError,
      );
    }));
});
