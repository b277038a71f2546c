import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { inspect } from 'node:util';
import { dirname, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { ChildProcess, execFileSync } from 'node:child_process';
import {
  DEVNULL,
  FileNotFoundError,
  InvalidArgTypeError,
  OSError,
  PermissionError,
  ProcessLookupError,
  STDOUT,
  SubprocessProtocol,
  UnixSubprocessTransport,
  ValueError,
  newEventLoop,
} from '@loopwork/core';
import type { BaseTransport, EventLoop, ExceptionContext, Future, ReadTransport, WriteTransport } from '@loopwork/core';
import { Lines, spawnFixture } from './fixtures/child-process.js';

function quietLoop(t: TestContext): { loop: EventLoop; errors: ExceptionContext[] } {
  const loop = newEventLoop();
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  t.after(() => loop.close());
  return { loop, errors };
}

/** Records the protocol calls and checks asyncio's grammar as they come. */
class Recorder extends SubprocessProtocol {
  readonly calls: string[] = [];
  readonly out = new Map<number, Buffer[]>();
  readonly lostPipes = new Map<number, Error | null>();
  readonly done: Future<Error | null>;
  exited = false;
  paused = 0;
  resumed = 0;
  transport: BaseTransport | null = null;

  constructor(loop: EventLoop) {
    super();
    this.done = loop.createFuture();
  }

  override connectionMade(transport: BaseTransport): void {
    assert.equal(this.calls.length, 0, 'connectionMade comes first');
    this.transport = transport;
    this.calls.push('made');
  }

  override pipeDataReceived(fd: number, data: Buffer): void {
    assert.ok(this.calls[0] === 'made', 'data after connectionMade');
    assert.ok(!this.lostPipes.has(fd), `data of fd ${fd} after its pipeConnectionLost`);
    assert.ok(data.length > 0);
    const chunks = this.out.get(fd) ?? [];
    chunks.push(data);
    this.out.set(fd, chunks);
    if (this.calls.at(-1) !== `data ${fd}`) this.calls.push(`data ${fd}`);
  }

  override pipeConnectionLost(fd: number, exc: Error | null): void {
    assert.ok(!this.lostPipes.has(fd), 'one pipeConnectionLost per fd');
    this.lostPipes.set(fd, exc);
    this.calls.push(`pipe lost ${fd}`);
  }

  override processExited(): void {
    assert.ok(!this.exited, 'processExited once');
    this.exited = true;
    this.calls.push('exited');
  }

  override pauseWriting(): void {
    this.paused++;
  }

  override resumeWriting(): void {
    this.resumed++;
  }

  override connectionLost(exc: Error | null): void {
    assert.ok(this.exited, 'connectionLost after processExited');
    this.calls.push('lost');
    this.done.setResult(exc);
  }

  text(fd: number): string {
    return Buffer.concat(this.out.get(fd) ?? []).toString();
  }
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('subprocessExec', () => {
  test('echo: output, return code 0, and the calls in asyncio order', async (t) => {
    const { loop, errors } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.subprocessExec(() => new Recorder(loop), 'echo', 'hello', 'world');
      assert.ok(transport instanceof UnixSubprocessTransport);
      assert.equal(protocol.transport, transport);
      assert.ok(transport.getPid() > 0);
      assert.ok(transport.getExtraInfo('subprocess') instanceof ChildProcess);
      assert.equal((transport.getExtraInfo('subprocess') as ChildProcess).pid, transport.getPid());
      assert.equal(await protocol.done, null);
      assert.equal(protocol.text(1), 'hello world\n');
      assert.equal(protocol.text(2), '');
      assert.equal(transport.getReturncode(), 0);
      // Every pipe lost, each once; the order between pipes and the exit is not fixed (asyncio's neither).
      assert.deepEqual([...protocol.lostPipes.keys()].sort(), [0, 1, 2]);
      assert.deepEqual(
        [...protocol.calls].sort(),
        ['data 1', 'exited', 'lost', 'made', 'pipe lost 0', 'pipe lost 1', 'pipe lost 2'].sort(),
      );
      assert.ok(protocol.calls.indexOf('data 1') < protocol.calls.indexOf('pipe lost 1'));
      assert.equal(protocol.calls.at(-1), 'lost');
    });
    assert.deepEqual(errors, []);
  });

  test('a return code; a signal gives a negative one', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const [t1, p1] = await loop.subprocessExec(() => new Recorder(loop), 'sh', '-c', 'exit 3');
      await p1.done;
      assert.equal(t1.getReturncode(), 3);
      const [t2, p2] = await loop.subprocessShell(() => new Recorder(loop), 'kill -TERM $$');
      await p2.done;
      assert.equal(t2.getReturncode(), -15);
    });
  });

  test('stdin piped to cat, closed with writeEof()', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.subprocessExec(() => new Recorder(loop), 'cat');
      const stdin = transport.getPipeTransport(0) as WriteTransport;
      assert.ok(stdin !== null);
      assert.equal(stdin.getExtraInfo('pipe') !== undefined, true);
      stdin.write(Buffer.from('line one\n'));
      stdin.writelines([Buffer.from('line '), Buffer.from('two\n')]);
      stdin.writeEof();
      await protocol.done;
      assert.equal(protocol.text(1), 'line one\nline two\n');
      assert.equal(transport.getReturncode(), 0);
      assert.equal(protocol.lostPipes.get(0), null);
    });
  });

  test("stdin is a pipe, as asyncio's on Linux: the child can open /dev/stdin", async (t) => {
    const { loop, errors } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      // A socket for stdin (asyncio's choice on AIX only) fails here: open(/dev/stdin) gives ENXIO.
      const [transport, protocol] = await loop.subprocessShell(
        () => new Recorder(loop),
        'if [ -p /dev/stdin ]; then echo fifo; fi; cat /dev/stdin',
      );
      const stdin = transport.getPipeTransport(0) as WriteTransport;
      stdin.write(Buffer.from('through /dev/stdin\n'));
      stdin.writeEof();
      await protocol.done;
      assert.equal(protocol.text(2), '');
      assert.equal(protocol.text(1), 'fifo\nthrough /dev/stdin\n');
      assert.equal(transport.getReturncode(), 0);
    });
    assert.deepEqual(errors, []);
  });

  test('the child closing its stdin pipe is noticed while it runs: pipeConnectionLost(0, null)', async (t) => {
    const { loop, errors } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const stdinLost = loop.createFuture<Error | null>();
      class StdinWatcher extends Recorder {
        override pipeConnectionLost(fd: number, exc: Error | null): void {
          super.pipeConnectionLost(fd, exc);
          if (fd === 0) stdinLost.setResult(exc);
        }
      }
      const [transport, protocol] = await loop.subprocessShell(
        () => new StdinWatcher(loop),
        'exec 0<&-; exec sleep 30',
      );
      // No write: the pipe's write end polls readable (POLLERR) once the child has closed the read end.
      assert.equal(await stdinLost, null);
      assert.equal(transport.getReturncode(), null);
      transport.kill();
      await protocol.done;
      assert.equal(transport.getReturncode(), -9);
    });
    assert.deepEqual(errors, []);
  });

  test('large output through flow control on both sides', async (t) => {
    const { loop, errors } = quietLoop(t);
    const payload = randomBytes(8 * 1024 * 1024);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.subprocessExec(() => new Recorder(loop), 'cat', { stderr: DEVNULL });
      const stdin = transport.getPipeTransport(0) as WriteTransport;
      const stdout = transport.getPipeTransport(1) as ReadTransport;
      assert.equal(transport.getPipeTransport(2), null);
      for (let off = 0; off < payload.length; off += 256 * 1024) stdin.write(payload.subarray(off, off + 256 * 1024));
      // Far more than the pipes hold: the stdin transport buffers, and its pause reaches the protocol.
      assert.ok(stdin.getWriteBufferSize() > 64 * 1024);
      assert.equal(protocol.paused, 1);
      // Stop reading a while: cat blocks on its full stdout, so our stdin buffer stays full.
      stdout.pauseReading();
      for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(protocol.resumed, 0);
      stdout.resumeReading();
      stdin.writeEof();
      await protocol.done;
      assert.equal(protocol.resumed, 1);
      const got = Buffer.concat(protocol.out.get(1) ?? []);
      assert.equal(got.length, payload.length);
      assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    });
    assert.deepEqual(errors, []);
  });

  test('stderr=STDOUT: both go to one pipe, in the order written', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const script = 'for i in 1 2 3; do echo out$i; echo err$i >&2; done';
      const [transport, protocol] = await loop.subprocessExec(() => new Recorder(loop), 'sh', '-c', script, {
        stderr: STDOUT,
      });
      assert.equal(transport.getPipeTransport(2), null);
      await protocol.done;
      assert.equal(protocol.text(1), 'out1\nerr1\nout2\nerr2\nout3\nerr3\n');
      assert.equal(protocol.out.has(2), false);
      assert.deepEqual([...protocol.lostPipes.keys()].sort(), [0, 1]);
    });
  });

  test('separate stderr pipe', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const [, protocol] = await loop.subprocessShell(() => new Recorder(loop), 'echo out; echo err >&2');
      await protocol.done;
      assert.equal(protocol.text(1), 'out\n');
      assert.equal(protocol.text(2), 'err\n');
    });
  });

  test('DEVNULL, a file descriptor, and a stream as stdio', async (t) => {
    const { loop } = quietLoop(t);
    const dir = mkdtempSync(join(tmpdir(), 'loopwork-subprocess-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'out');
    const fd = openSync(file, 'w');
    t.after(() => closeSync(fd));
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.subprocessShell(
        () => new Recorder(loop),
        'cat; echo to-file; echo e >&2',
        {
          stdin: DEVNULL,
          stdout: fd,
          stderr: STDOUT,
        },
      );
      assert.equal(transport.getPipeTransport(0), null);
      assert.equal(transport.getPipeTransport(1), null);
      await protocol.done;
      // No pipes: nothing between connectionMade and the exit.
      assert.deepEqual(protocol.calls, ['made', 'exited', 'lost']);
      assert.equal(readFileSync(file, 'utf8'), 'to-file\ne\n');
      // A stream that has a file descriptor.
      const streamFile = join(dir, 'stream');
      const stream = createWriteStream(streamFile);
      await once(stream, 'open');
      const [t2, p2] = await loop.subprocessShell(() => new Recorder(loop), 'echo via-stream', { stdout: stream });
      assert.equal(t2.getPipeTransport(1), null);
      await p2.done;
      stream.close();
      assert.equal(readFileSync(streamFile, 'utf8'), 'via-stream\n');
      assert.equal(p2.out.size, 0);
      // An object with fileno(), as Popen takes a file object.
      const objFile = join(dir, 'fileno');
      const objFd = openSync(objFile, 'w');
      t.after(() => closeSync(objFd));
      const [t3, p3] = await loop.subprocessShell(() => new Recorder(loop), 'echo via-fileno >&2', {
        stderr: { fileno: () => objFd },
      });
      assert.equal(t3.getPipeTransport(2), null);
      await p3.done;
      assert.equal(readFileSync(objFile, 'utf8'), 'via-fileno\n');
    });
  });

  test('inherited stdio (null): output goes to our own stdout', async () => {
    const child = spawnFixture('./subprocess-child.ts', ['inherit']);
    const out = new Lines(child);
    const [code] = await out.closed;
    assert.equal(code, 0, out.stderr);
    assert.deepEqual(out.lines, ['from the grandchild', 'returncode 0']);
  });

  test('cwd and env', async (t) => {
    const { loop } = quietLoop(t);
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'loopwork-subprocess-')));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await loop.runUntilComplete(async () => {
      const [, protocol] = await loop.subprocessShell(() => new Recorder(loop), 'pwd; echo "$LW_VALUE"', {
        cwd: dir,
        env: { PATH: process.env.PATH, LW_VALUE: 'from env' },
      });
      await protocol.done;
      assert.equal(protocol.text(1), `${dir}\nfrom env\n`);
    });
  });

  test("executable: the program run in argv[0]'s place; for a shell, the shell and its argv[0] (Popen's rule)", async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const [, p1] = await loop.subprocessExec(() => new Recorder(loop), 'named', '-c', 'echo "$0"', {
        executable: '/bin/sh',
      });
      await p1.done;
      assert.equal(p1.text(1), 'named\n');
      // bash run as /bin/sh would say so in $0, and switch itself to POSIX mode.
      const [, p2] = await loop.subprocessShell(() => new Recorder(loop), 'echo "$0"', { executable: '/bin/bash' });
      await p2.done;
      assert.equal(p2.text(1), '/bin/bash\n');
      const [, p3] = await loop.subprocessShell(() => new Recorder(loop), 'echo "$0"');
      await p3.done;
      assert.equal(p3.text(1), '/bin/sh\n');
    });
  });

  test('sendSignal, terminate and kill', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const cases: [string, (tr: UnixSubprocessTransport) => void, number][] = [
        ['terminate', (tr) => tr.terminate(), -15],
        ['kill', (tr) => tr.kill(), -9],
        ['sendSignal', (tr) => tr.sendSignal('SIGINT'), -2],
        ['sendSignal number', (tr) => tr.sendSignal(10), -10],
      ];
      for (const [name, send, expected] of cases) {
        const [transport, protocol] = await loop.subprocessExec(() => new Recorder(loop), 'sleep', '30');
        assert.equal(transport.getReturncode(), null);
        send(transport);
        await protocol.done;
        assert.equal(transport.getReturncode(), expected, name);
        // After the end: the process is gone (asyncio's ProcessLookupError).
        assert.throws(
          () => transport.kill(),
          (e: unknown) =>
            ProcessLookupError.isInstance(e) &&
            (e as Error & { code: string }).code === 'ESRCH' &&
            (e as Error).message === '[Errno 3] No such process',
        );
      }
    });
  });

  test('sendSignal with a signal Node has no name for: a real-time one is sent, a bad number is an OSError, no number a TypeError', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.subprocessExec(() => new Recorder(loop), 'sleep', '30');
      const started = loop.time();
      assert.throws(
        () => transport.sendSignal(999),
        (e: unknown) => OSError.isInstance(e) && (e as { code: string }).code === 'EINVAL',
      );
      // Not a signal at all: TypeError, as os.kill() raises, and nothing is sent (Node's kill() would send SIGTERM
      // for undefined).
      for (const bad of [2.5, undefined, null, {}]) {
        assert.throws(() => transport.sendSignal(bad as never), {
          name: 'TypeError',
          message: `signal must be an int or a signal name, not ${inspect(bad, { depth: 0 })}`,
        });
      }
      assert.equal(transport.getReturncode(), null);
      transport.sendSignal(40);
      await protocol.done;
      assert.ok(loop.time() - started < 10, 'SIGRTMIN+6 ended the child');
      // Node's child-process layer reports a death by a signal it cannot name as an exit with status 0
      // (docs/asyncio-differences.md); asyncio would say -40.
      assert.equal(transport.getReturncode(), 0);
    });
  });

  test('close() kills a running child; connectionLost follows', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.subprocessExec(() => new Recorder(loop), 'sleep', '30');
      transport.close();
      assert.equal(transport.isClosing(), true);
      await protocol.done;
      assert.equal(transport.getReturncode(), -9);
    });
  });

  test('_wait() resolves with the return code', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      // The child waits for a line on stdin, so that it is surely still running when _wait() begins.
      const [transport, protocol] = await loop.subprocessShell(() => new Recorder(loop), 'read line; exit 7');
      // Waiting before the exit: woken at connectionLost, after the pipes.
      const waiting = transport._wait();
      (transport.getPipeTransport(0) as WriteTransport).write(Buffer.from('go\n'));
      assert.equal(await waiting, 7);
      assert.equal(protocol.calls.at(-1), 'lost');
      // Once the return code is known, at once.
      assert.equal(await transport._wait(), 7);
    });
  });

  test('no file descriptor is left open', async (t) => {
    const { loop } = quietLoop(t);
    await loop.runUntilComplete(async () => {
      // Warm up: the first spawn opens Node's own descriptors for good.
      const [, p0] = await loop.subprocessExec(() => new Recorder(loop), 'true');
      await p0.done;
      const before = openFds();
      for (let i = 0; i < 5; i++) {
        const [, p] = await loop.subprocessShell(() => new Recorder(loop), 'cat; echo done >&2', { stderr: STDOUT });
        (p.transport as UnixSubprocessTransport).getPipeTransport(0)?.close();
        await p.done;
      }
      await assert.rejects(loop.subprocessExec(() => new Recorder(loop), '/nonexistent/program'));
      assert.equal(openFds(), before);
    });
  });
});

describe('bad arguments (asyncio messages)', () => {
  test('subprocessExec', async (t) => {
    const { loop } = quietLoop(t);
    const f = (): Recorder => new Recorder(loop);
    const cases: [unknown[], RegExp | string][] = [
      [['ls', { shell: true }], 'shell must be False'],
      [['ls', { text: true }], 'text must be False'],
      [['ls', { encoding: 'utf-8' }], 'encoding must be None'],
      [['ls', { errors: 'strict' }], 'errors must be None'],
      [['ls', { universalNewlines: true }], 'universal_newlines must be False'],
      [['ls', { bufsize: 4096 }], 'bufsize must be 0'],
    ];
    for (const [args, message] of cases) {
      await assert.rejects(
        (loop.subprocessExec as (...a: unknown[]) => Promise<unknown>).call(loop, f, ...args),
        (err: Error) => {
          assert.ok(ValueError.isInstance(err), String(err));
          assert.equal(err.message, message);
          return true;
        },
      );
    }
    await assert.rejects(loop.subprocessExec(f, 42 as never), (err: Error) => {
      assert.ok(InvalidArgTypeError.isInstance(err));
      assert.equal(err.message, 'program arguments must be a bytes or text string, not number');
      return true;
    });
    await assert.rejects(loop.subprocessExec(f, 'ls', null as never), {
      message: 'program arguments must be a bytes or text string, not null',
    });
    await assert.rejects(loop.subprocessExec(f, 'ls', { preexecFn: () => {} } as never), {
      name: 'TypeError',
      message: "subprocessExec() got an unexpected keyword argument 'preexecFn'",
    });
    await assert.rejects(loop.subprocessExec(f, 'ls', { stdin: STDOUT }), {
      message: 'STDOUT can only be used for stderr',
    });
    await assert.rejects(loop.subprocessExec(f, 'ls', { stdout: 'pipe' as never }), InvalidArgTypeError);
    await assert.rejects(loop.subprocessExec(f, 'ls', { stdout: { fileno: () => -1 } }), {
      name: 'ValueError',
      message: 'Invalid file descriptor: -1',
    });
  });

  test('subprocessShell', async (t) => {
    const { loop } = quietLoop(t);
    const f = (): Recorder => new Recorder(loop);
    await assert.rejects(loop.subprocessShell(f, ['ls'] as never), {
      name: 'ValueError',
      message: 'cmd must be a string',
    });
    await assert.rejects(loop.subprocessShell(f, 'ls', { shell: false }), { message: 'shell must be True' });
    await assert.rejects(loop.subprocessShell(f, 'ls', { text: true }), { message: 'text must be False' });
  });

  test("a spawn that fails: Python's OSError (FileNotFoundError, PermissionError, EBADF), naming the file", async (t) => {
    const { loop } = quietLoop(t);
    const fails = (cls: { isInstance(e: unknown): boolean }, code: string, message: string) => (e: unknown) => {
      assert.ok(cls.isInstance(e) && OSError.isInstance(e), String(e));
      assert.equal((e as { code: string }).code, code);
      assert.equal((e as Error).message, message);
      return true;
    };
    await loop.runUntilComplete(async () => {
      const exec = (program: string, options = {}) => loop.subprocessExec(() => new Recorder(loop), program, options);
      await assert.rejects(
        exec('no-such-program-loopwork'),
        fails(FileNotFoundError, 'ENOENT', "[Errno 2] No such file or directory: 'no-such-program-loopwork'"),
      );
      const notExecutable = join(mkdtempSync(join(tmpdir(), 'loopwork-spawn-')), 'data.txt');
      writeFileSync(notExecutable, 'not a program\n', { mode: 0o644 });
      await assert.rejects(
        exec(notExecutable),
        fails(PermissionError, 'EACCES', `[Errno 13] Permission denied: '${notExecutable}'`),
      );
      rmSync(dirname(notExecutable), { recursive: true });
      await assert.rejects(
        exec('pwd', { cwd: '/no/such/dir-loopwork' }),
        fails(FileNotFoundError, 'ENOENT', "[Errno 2] No such file or directory: '/no/such/dir-loopwork'"),
      );
      // A stdio fd that is not open (a high one: a lower one just closed may be taken again by the spawn's own
      // pipes): Node throws this one at once, Popen raises OSError.
      const badFd = 4000;
      assert.equal(existsSync(`/proc/self/fd/${badFd}`), false);
      await assert.rejects(
        exec('true', { stdin: DEVNULL, stdout: badFd, stderr: DEVNULL }),
        fails(OSError, 'EBADF', '[Errno 9] Bad file descriptor'),
      );
    });
  });

  test('a closed loop refuses', async () => {
    const loop = newEventLoop();
    loop.close();
    await assert.rejects(
      loop.subprocessExec(() => new SubprocessProtocol(), 'true'),
      { message: 'Event loop is closed' },
    );
  });
});

test('without the native addon, subprocesses use Node pipes; stderr=STDOUT with a piped stdout is refused', async () => {
  const child = spawnFixture('./native-off.ts', [], { env: { ...process.env, LOOPWORK_NATIVE: '0' } });
  const out = new Lines(child);
  const [code] = await out.closed;
  assert.equal(code, 0, out.stderr);
  const results = Object.fromEntries(
    out.lines.map((l) => JSON.parse(l) as { check: string; value: unknown }).map((r) => [r.check, r.value]),
  );
  assert.deepEqual(results.subprocess, { out: '|1:out|2:err', returncode: 4 });
  assert.deepEqual(results['stdout-merge'], { native: true });
});

test('cancelling subprocessExec while its pipes connect kills the child and waits for it', async (t) => {
  const { loop } = quietLoop(t);
  await loop.runUntilComplete(async () => {
    for (let turns = 0; turns < 4; turns++) {
      const task = loop.createTask(() => loop.subprocessExec(() => new Recorder(loop), 'sleep', '30'));
      for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => loop.callSoon(resolve));
      task.cancel();
      await assert.rejects(async () => await task, { name: 'CancelledError' });
    }
    // The transport waited for each child: none is left.
    assert.throws(() => execFileSync('pgrep', ['-P', String(process.pid), 'sleep']), { status: 1 });
  });
});
