import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants as fsConstants,
  createReadStream,
  createWriteStream,
  mkdtempSync,
  openSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import {
  BaseProtocol,
  BrokenPipeError,
  LoopClosedError,
  OSError,
  Protocol,
  ValueError,
  newEventLoop,
} from '@loopwork/core';
import type { BaseTransport, EventLoop, ExceptionContext, Future, ReadTransport } from '@loopwork/core';
import { close, pipe, read, socketpair, write } from '../src/native.js';
import { Lines, spawnFixture } from './fixtures/child-process.js';

function quietLoop(t: TestContext): { loop: EventLoop; errors: ExceptionContext[] } {
  const loop = newEventLoop();
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  t.after(() => loop.close());
  return { loop, errors };
}

/** Closes the fds when the test ends, ignoring those a transport already closed. */
function track(t: TestContext, ...fds: number[]): void {
  t.after(() => {
    for (const fd of fds) {
      try {
        close(fd);
      } catch {
        // closed by its transport
      }
    }
  });
}

function isClosed(fd: number): boolean {
  try {
    read(fd, Buffer.alloc(1));
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'EBADF';
  }
}

/** A read protocol that records its calls in order. */
class Recorder extends Protocol {
  readonly events: string[] = [];
  readonly chunks: Buffer[] = [];
  readonly lost: Future<Error | null>;
  transportSeen: BaseTransport | null = null;
  onData: ((data: Buffer) => void) | null = null;

  constructor(loop: EventLoop) {
    super();
    this.lost = loop.createFuture();
  }

  override connectionMade(transport: BaseTransport): void {
    this.transportSeen = transport;
    this.events.push('made');
  }

  override dataReceived(data: Buffer): void {
    if (this.events.at(-1) !== 'data') this.events.push('data');
    this.chunks.push(data);
    this.onData?.(data);
  }

  override eofReceived(): void {
    this.events.push('eof');
  }

  override connectionLost(exc: Error | null): void {
    this.events.push(exc === null ? 'lost' : `lost ${(exc as { code?: string }).code ?? exc.message}`);
    this.lost.setResult(exc);
  }

  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

/** A write protocol that records flow control and its end. */
class Writer extends BaseProtocol {
  readonly events: string[] = [];
  readonly lost: Future<Error | null>;
  resumed: Future<void> | null = null;
  paused = false;

  constructor(loop: EventLoop) {
    super();
    this.lost = loop.createFuture();
  }

  override connectionMade(): void {
    this.events.push('made');
  }

  override pauseWriting(): void {
    this.paused = true;
    this.events.push('pause');
  }

  override resumeWriting(): void {
    this.paused = false;
    this.events.push('resume');
    this.resumed?.setResult(undefined);
  }

  override connectionLost(exc: Error | null): void {
    this.events.push(exc === null ? 'lost' : `lost ${(exc as { code?: string }).code ?? exc.message}`);
    this.lost.setResult(exc);
  }
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-pipes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('connectReadPipe on a file descriptor', () => {
  test('data, then EOF: eofReceived and connectionLost(null); the fd is closed', async (t) => {
    const { loop, errors } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.connectReadPipe(() => new Recorder(loop), r);
      // Resolved once connectionMade() has been called.
      assert.deepEqual(protocol.events, ['made']);
      assert.equal(protocol.transportSeen, transport);
      assert.equal(transport.getExtraInfo('pipe'), r);
      assert.equal(transport.getExtraInfo('peername', 'none'), 'none');
      assert.equal(transport.isReading(), true);
      write(w, Buffer.from('hello '));
      write(w, Buffer.from('pipe'));
      close(w);
      assert.equal(await protocol.lost, null);
      assert.equal(protocol.text(), 'hello pipe');
      assert.deepEqual(protocol.events, ['made', 'data', 'eof', 'lost']);
      assert.equal(transport.isClosing(), true);
    });
    assert.ok(isClosed(r));
    assert.deepEqual(errors, []);
  });

  test('pauseReading stops delivery and resumeReading restarts it', async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    const [cr, cw] = pipe();
    track(t, r, w, cr, cw);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.connectReadPipe(() => new Recorder(loop), r);
      const first = loop.createFuture<void>();
      protocol.onData = () => {
        transport.pauseReading();
        first.setResult(undefined);
      };
      write(w, Buffer.from('one'));
      await first;
      assert.equal(transport.isReading(), false);
      // A control fd made readable together with the paused pipe: once its reader ran, the paused transport
      // would have had its turn as well.
      const control = loop.createFuture<void>();
      loop.addReader(cr, () => {
        loop.removeReader(cr);
        control.setResult(undefined);
      });
      write(w, Buffer.from('two'));
      write(cw, Buffer.from('x'));
      await control;
      await new Promise<void>((resolve) => loop.callSoon(resolve));
      assert.equal(protocol.text(), 'one');
      protocol.onData = null;
      transport.resumeReading();
      assert.equal(transport.isReading(), true);
      close(w);
      await protocol.lost;
      assert.equal(protocol.text(), 'onetwo');
    });
  });

  test('close() calls connectionLost(null) on the next iteration, without eofReceived', async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    await loop.runUntilComplete(async () => {
      const [transport, protocol] = await loop.connectReadPipe(() => new Recorder(loop), r);
      transport.close();
      assert.equal(transport.isClosing(), true);
      assert.deepEqual(protocol.events, ['made']);
      await protocol.lost;
      assert.deepEqual(protocol.events, ['made', 'lost']);
    });
    assert.ok(isClosed(r));
  });

  test('a regular file is refused', async (t) => {
    const { loop } = quietLoop(t);
    const fd = openSync(join(tempDir(t), 'file'), 'w+');
    t.after(() => closeSync(fd));
    await loop.runUntilComplete(async () => {
      await assert.rejects(
        loop.connectReadPipe(() => new Protocol(), fd),
        (err: Error) => {
          assert.ok(ValueError.isInstance(err));
          assert.equal(err.message, 'Pipe transport is for pipes/sockets only.');
          return true;
        },
      );
      await assert.rejects(
        loop.connectWritePipe(() => new BaseProtocol(), fd),
        {
          message: 'Pipe transport is only for pipes, sockets and character devices',
        },
      );
    });
  });

  test("a file descriptor that is not open is refused with asyncio's OSError", async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    close(r);
    close(w);
    const badFd = (err: Error): boolean => {
      assert.ok(OSError.isInstance(err));
      assert.equal(err.message, '[Errno 9] Bad file descriptor');
      assert.equal((err as Error & { code?: unknown }).code, 'EBADF');
      return true;
    };
    await loop.runUntilComplete(async () => {
      await assert.rejects(
        loop.connectReadPipe(() => new Protocol(), r),
        badFd,
      );
      await assert.rejects(
        loop.connectWritePipe(() => new BaseProtocol(), { fileno: () => w }),
        badFd,
      );
    });
  });

  test('a closed loop refuses', async () => {
    const loop = newEventLoop();
    loop.close();
    await assert.rejects(
      loop.connectReadPipe(() => new Protocol(), 0),
      LoopClosedError,
    );
    await assert.rejects(
      loop.connectWritePipe(() => new BaseProtocol(), 1),
      LoopClosedError,
    );
  });
});

describe('connectWritePipe on a file descriptor', () => {
  test('flow control: pauseWriting above the high-water mark, resumeWriting once drained; writeEof', async (t) => {
    const { loop, errors } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    const payload = randomBytes(2 * 1024 * 1024);
    await loop.runUntilComplete(async () => {
      const [transport, writer] = await loop.connectWritePipe(() => new Writer(loop), w);
      assert.equal(transport.canWriteEof(), true);
      assert.deepEqual(transport.getWriteBufferLimits(), [16 * 1024, 64 * 1024]);
      // Nobody reads yet: the kernel takes what fits in the pipe, the rest is buffered.
      for (let off = 0; off < payload.length; off += 64 * 1024) transport.write(payload.subarray(off, off + 64 * 1024));
      assert.equal(writer.paused, true);
      assert.ok(transport.getWriteBufferSize() > 64 * 1024, String(transport.getWriteBufferSize()));
      assert.ok(transport.getWriteBufferSize() < payload.length);
      writer.resumed = loop.createFuture();
      transport.writeEof();
      assert.equal(transport.isClosing(), true);
      const [, reader] = await loop.connectReadPipe(() => new Recorder(loop), r);
      await writer.resumed;
      assert.equal(await writer.lost, null);
      assert.equal(transport.getWriteBufferSize(), 0);
      await reader.lost;
      assert.equal(
        createHash('sha256')
          .update(reader.text() === '' ? Buffer.alloc(0) : Buffer.concat(reader.chunks))
          .digest('hex'),
        createHash('sha256').update(payload).digest('hex'),
      );
      assert.deepEqual(writer.events, ['made', 'pause', 'resume', 'lost']);
      assert.deepEqual(reader.events, ['made', 'data', 'eof', 'lost']);
    });
    assert.ok(isClosed(w));
    assert.deepEqual(errors, []);
  });

  test('the write buffer is a copy: the caller may reuse its buffer', async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    await loop.runUntilComplete(async () => {
      const [transport] = await loop.connectWritePipe(() => new Writer(loop), w);
      const big = Buffer.alloc(256 * 1024, 'a');
      transport.write(big);
      big.fill('b');
      transport.writelines([Buffer.from('-'), Buffer.from('end')]);
      transport.close();
      const [, reader] = await loop.connectReadPipe(() => new Recorder(loop), r);
      await reader.lost;
      assert.equal(reader.text(), 'a'.repeat(256 * 1024) + '-end');
    });
  });

  test('the read end closing is noticed without a write: connectionLost(null)', async (t) => {
    const { loop, errors } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    await loop.runUntilComplete(async () => {
      const [transport, writer] = await loop.connectWritePipe(() => new Writer(loop), w);
      close(r);
      assert.equal(await writer.lost, null);
      assert.equal(transport.isClosing(), true);
    });
    assert.deepEqual(errors, []);
  });

  test('the read end closing with data still buffered: connectionLost(BrokenPipeError)', async (t) => {
    const { loop, errors } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    await loop.runUntilComplete(async () => {
      const [transport, writer] = await loop.connectWritePipe(() => new Writer(loop), w);
      transport.write(Buffer.alloc(1024 * 1024));
      assert.ok(transport.getWriteBufferSize() > 0);
      close(r);
      const exc = await writer.lost;
      assert.ok(BrokenPipeError.isInstance(exc), String(exc));
      assert.equal((exc as { code?: string } | null)?.code, 'EPIPE');
      assert.equal((exc as Error).message, '[Errno 32] Broken pipe');
      // A broken pipe is an ordinary end: not reported to the exception handler.
      assert.deepEqual(errors, []);
      // Writing to a lost pipe is ignored.
      transport.write(Buffer.from('ignored'));
      assert.equal(transport.getWriteBufferSize(), 0);
    });
  });

  test('a socket pair: the peer closing is seen through EOF', async (t) => {
    const { loop } = quietLoop(t);
    const [a, b] = socketpair();
    track(t, a, b);
    await loop.runUntilComplete(async () => {
      const [transport, writer] = await loop.connectWritePipe(() => new Writer(loop), a);
      transport.write(Buffer.from('to the peer'));
      const buf = Buffer.alloc(64);
      assert.equal(buf.subarray(0, read(b, buf)).toString(), 'to the peer');
      close(b);
      assert.equal(await writer.lost, null);
    });
  });

  test('abort() drops the buffer and calls connectionLost(null)', async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    await loop.runUntilComplete(async () => {
      const [transport, writer] = await loop.connectWritePipe(() => new Writer(loop), w);
      transport.write(Buffer.alloc(1024 * 1024));
      assert.ok(transport.getWriteBufferSize() > 0);
      transport.abort();
      assert.equal(transport.getWriteBufferSize(), 0);
      assert.equal(await writer.lost, null);
    });
    assert.ok(isClosed(w));
  });

  test('a write error of any OSError (ENOSPC of /dev/full) closes the pipe without the exception handler', async (t) => {
    const { loop, errors } = quietLoop(t);
    const fd = openSync('/dev/full', 'w');
    track(t, fd);
    await loop.runUntilComplete(async () => {
      const [transport, writer] = await loop.connectWritePipe(() => new Writer(loop), fd);
      transport.write(Buffer.from('x'));
      const exc = await writer.lost;
      assert.ok(OSError.isInstance(exc));
      assert.equal((exc as { code?: string }).code, 'ENOSPC');
    });
    // asyncio's write pipe reports an OSError in debug mode only, whatever its errno.
    assert.deepEqual(errors, []);
    assert.ok(isClosed(fd));
  });

  test('write() refuses strings, as asyncio refuses str', async (t) => {
    const { loop } = quietLoop(t);
    const [r, w] = pipe();
    track(t, r, w);
    await loop.runUntilComplete(async () => {
      const [transport] = await loop.connectWritePipe(() => new Writer(loop), w);
      assert.throws(() => transport.write('text' as never), TypeError);
      transport.abort();
    });
  });
});

describe('FIFOs', () => {
  test('a FIFO opened as fds: both pipe transports', async (t) => {
    const { loop } = quietLoop(t);
    const fifo = join(tempDir(t), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const rfd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const wfd = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    track(t, rfd, wfd);
    await loop.runUntilComplete(async () => {
      const [, reader] = await loop.connectReadPipe(() => new Recorder(loop), rfd);
      const [wt, writer] = await loop.connectWritePipe(() => new Writer(loop), wfd);
      wt.write(Buffer.from('through the fifo'));
      wt.writeEof();
      await writer.lost;
      await reader.lost;
      assert.equal(reader.text(), 'through the fifo');
      assert.deepEqual(reader.events, ['made', 'data', 'eof', 'lost']);
    });
  });

  test('a FIFO as Node streams (fs.ReadStream, fs.WriteStream)', async (t) => {
    const { loop } = quietLoop(t);
    const fifo = join(tempDir(t), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const input = createReadStream(fifo);
    const output = createWriteStream(fifo);
    await loop.runUntilComplete(async () => {
      const [rt, reader] = await loop.connectReadPipe(() => new Recorder(loop), input);
      const [wt, writer] = await loop.connectWritePipe(() => new Writer(loop), output);
      assert.equal(rt.getExtraInfo('pipe'), input);
      assert.equal(wt.getExtraInfo('pipe'), output);
      wt.write(Buffer.from('streamed '));
      wt.write(Buffer.from('fifo'));
      wt.writeEof();
      assert.equal(await writer.lost, null);
      assert.equal(await reader.lost, null);
      assert.equal(reader.text(), 'streamed fifo');
      assert.deepEqual(reader.events, ['made', 'data', 'eof', 'lost']);
    });
    assert.ok(input.destroyed && output.destroyed);
  });
});

describe('Terminals', () => {
  test('a terminal (a pty made by script(1)) as fds 0 and 1: a line, then EOF at ^D, as asyncio reads a tty', async (t) => {
    try {
      execFileSync('script', ['--version'], { stdio: 'ignore' });
    } catch {
      return t.skip('script (util-linux) is not installed');
    }
    const fixture = fileURLToPath(new URL('./fixtures/pipe-child.ts', import.meta.url));
    const command = [process.execPath, '--conditions=loopwork-source', '--import', 'tsx', fixture, 'fds']
      .map((arg) => `'${arg}'`)
      .join(' ');
    // script runs the command on a new pty and copies our stdin to it: the child's fds 0 and 1 are a tty.
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: process.cwd() });
    t.after(() => child.kill());
    const out = new Lines(child);
    child.stdin.write('hello\n');
    // The tty echoes the line, then the child writes it upper-cased; ^D at the start of a line is EOF (read 0).
    await out.waitFor('HELLO\r');
    child.stdin.write('\x04');
    const [code] = await out.closed;
    child.stdin.end();
    assert.equal(code, 0, out.stderr);
    assert.deepEqual(
      out.lines.map((line) => line.replace(/\r$/, '')),
      ['hello', 'HELLO', 'made,data,eof,lost null'],
    );
  });
});

describe('Node streams', () => {
  test("a child's stdin and stdout streams: flow control and EOF", async (t) => {
    const { loop } = quietLoop(t);
    const child = spawn('cat');
    t.after(() => child.kill());
    const payload = randomBytes(1024 * 1024);
    await loop.runUntilComplete(async () => {
      const [rt, reader] = await loop.connectReadPipe(() => new Recorder(loop), child.stdout);
      const [wt, writer] = await loop.connectWritePipe(() => new Writer(loop), child.stdin);
      for (let off = 0; off < payload.length; off += 64 * 1024) wt.write(payload.subarray(off, off + 64 * 1024));
      assert.equal(writer.paused, true);
      assert.ok(wt.getWriteBufferSize() > 64 * 1024);
      writer.resumed = loop.createFuture();
      await writer.resumed;
      wt.writeEof();
      assert.equal(await writer.lost, null);
      assert.equal(await reader.lost, null);
      assert.ok(Buffer.concat(reader.chunks).equals(payload));
      assert.deepEqual(writer.events, ['made', 'pause', 'resume', 'lost']);
      assert.deepEqual(reader.events, ['made', 'data', 'eof', 'lost']);
      assert.equal(rt.isClosing(), true);
    });
  });

  test('process.stdin and process.stdout of a child running a loop', async () => {
    const child = spawnFixture('./pipe-child.ts');
    const out = new Lines(child);
    child.stdin.end('hello\nworld\n');
    const [code] = await out.closed;
    assert.equal(code, 0, out.stderr);
    assert.deepEqual(out.lines, ['HELLO', 'WORLD', 'made,data,eof,lost null']);
  });

  test('pauseReading on a stream holds the data until resumeReading', async (t) => {
    const { loop } = quietLoop(t);
    const child = spawn('sh', ['-c', 'printf one; read x; printf two']);
    t.after(() => child.kill());
    await loop.runUntilComplete(async () => {
      const first = loop.createFuture<void>();
      // The output may come before connectReadPipe() returns: the protocol pauses from its first data on.
      const [rt, reader] = await loop.connectReadPipe(() => {
        const recorder = new Recorder(loop);
        recorder.onData = () => {
          (recorder.transportSeen as ReadTransport).pauseReading();
          first.setResult(undefined);
        };
        return recorder;
      }, child.stdout);
      await first;
      assert.equal(rt.isReading(), false);
      // The child prints "two" and exits.
      child.stdin.end('go\n');
      await new Promise<void>((resolve) => child.once('exit', () => resolve()));
      for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      assert.equal(reader.text(), 'one');
      assert.deepEqual(reader.events, ['made', 'data']);
      reader.onData = null;
      rt.resumeReading();
      await reader.lost;
      assert.equal(reader.text(), 'onetwo');
      assert.deepEqual(reader.events, ['made', 'data', 'eof', 'lost']);
    });
  });

  test('a write stream that fails: connectionLost(exc); the exception handler for what is no OSError', async (t) => {
    const { loop, errors } = quietLoop(t);
    const path = join(tempDir(t), 'no-such-dir', 'file');
    await loop.runUntilComplete(async () => {
      const output = createWriteStream(path);
      const [wt, writer] = await loop.connectWritePipe(() => new Writer(loop), output);
      wt.write(Buffer.from('x'));
      const exc = await writer.lost;
      // A system error is an OSError, which asyncio's write pipe only logs in debug mode.
      assert.ok(OSError.isInstance(exc));
      assert.equal((exc as { code?: string } | null)?.code, 'ENOENT');
      assert.deepEqual(errors, []);
      const boom = new Error('boom');
      const failing = new Writable({ write: (_chunk, _enc, callback) => callback(boom) });
      const [wt2, writer2] = await loop.connectWritePipe(() => new Writer(loop), failing);
      wt2.write(Buffer.from('x'));
      assert.equal(await writer2.lost, boom);
    });
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.message, 'Fatal write error on pipe transport');
    assert.equal((errors[0]?.exception as Error).message, 'boom');
  });
});

test('without the native addon, pipes given as fds use Node streams', async () => {
  const child = spawnFixture('./native-off.ts', [], { env: { ...process.env, LOOPWORK_NATIVE: '0' } });
  const out = new Lines(child);
  const [code] = await out.closed;
  assert.equal(code, 0, out.stderr);
  const fifo = out.lines.map((l) => JSON.parse(l) as { check: string; value: unknown }).find((r) => r.check === 'fifo');
  assert.deepEqual(fifo?.value, { data: 'through the fifo', events: ['made', 'eof', 'lost null'], pipe: true });
});
