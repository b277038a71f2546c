// Pipelines of stages over real TCP: a framing stage written on the StageProtocol interface (as the lines/
// lengthPrefixed/resp stages are), the utf8/json codecs, validate(zod), handle(); ordering, errors, backpressure.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { z } from 'zod';
import {
  LineDecoder,
  LineTooLongError,
  StageProtocol,
  encodeLine,
  handle,
  json,
  newEventLoop,
  pipeline,
  sleep,
  utf8,
  validate,
} from '@loopwork/service';
import type { BaseEventLoop, MessageProtocol, ProtocolFactory, Server, Stage } from '@loopwork/service';

/** A line framing stage for these tests, written as a stage author would (see the pipeline module docs). */
function testLines(maxLength = 1024): Stage<Buffer, Uint8Array, Buffer, string | Uint8Array> {
  return (inner) => new LinesProtocol(inner, maxLength);
}

class LinesProtocol extends StageProtocol<Buffer, Uint8Array, Buffer, string | Uint8Array> {
  readonly #decoder: LineDecoder;
  constructor(inner: MessageProtocol<Buffer, string | Uint8Array>, maxLength: number) {
    super(inner);
    this.#decoder = new LineDecoder((line) => this.inner.messageReceived(line), { maxLength });
  }
  override messageReceived(chunk: Buffer): void {
    try {
      this.#decoder.feedData(chunk);
    } catch (err) {
      if (!LineTooLongError.isInstance(err)) throw err;
      this.outer.write(encodeLine('ERR line too long'));
      this.outer.close();
    }
  }
  override write(line: string | Uint8Array): void {
    this.outer.write(encodeLine(line));
  }
}

/** Runs `main` on a fresh loop, serving `factory` on 127.0.0.1:0. */
async function serve(
  factory: ProtocolFactory,
  main: (port: number, loop: BaseEventLoop) => Promise<void>,
): Promise<void> {
  const loop = newEventLoop();
  const errors: unknown[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx.exception ?? ctx.message));
  try {
    await loop.runUntilComplete(async () => {
      const server: Server = await loop.createServer(factory, '127.0.0.1', 0);
      try {
        const port = (server.sockets[0]!.getsockname() as [string, number])[1];
        await main(port, loop);
      } finally {
        server.close();
        server.closeClients();
        await server.waitClosed();
      }
    });
  } finally {
    loop.close();
  }
  assert.deepEqual(errors, []);
}

/** A line client: send lines, read lines. */
class LineClient {
  readonly socket: net.Socket;
  #buf = '';
  #waiters: (() => void)[] = [];
  ended = false;
  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => {
      this.#buf += d;
      this.#wake();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.#wake();
    });
    this.socket.on('error', () => undefined);
  }
  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
  send(...lines: string[]): void {
    this.socket.write(lines.map((l) => `${l}\n`).join(''));
  }
  async line(): Promise<string> {
    while (!this.#buf.includes('\n')) {
      if (this.ended) throw new Error('ended');
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    const i = this.#buf.indexOf('\n');
    const line = this.#buf.slice(0, i);
    this.#buf = this.#buf.slice(i + 1);
    return line;
  }
  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((r) => this.#waiters.push(r));
  }
}

const Command = z.object({ op: z.enum(['add', 'echo']), a: z.number().optional(), b: z.number().optional() });

test('lines → utf8 → json → validate → handle: replies in order, bad messages answered, connection kept', async () => {
  const factory = pipeline(
    testLines(),
    utf8(),
    json(),
    validate(Command),
    handle(async (cmd) => {
      if (cmd.op === 'add') {
        await sleep(0.01);
        return { sum: (cmd.a ?? 0) + (cmd.b ?? 0) };
      }
      return { echo: cmd };
    }),
  );
  await serve(factory, async (port) => {
    const c = new LineClient(port);
    c.send('{"op":"add","a":1,"b":2}', '{"op":"echo"}', 'not json', '{"op":"mul","a":"x"}', '{"op":"add","a":5}');
    assert.deepEqual(JSON.parse(await c.line()), { sum: 3 });
    assert.deepEqual(JSON.parse(await c.line()), { echo: { op: 'echo' } });
    const decode = JSON.parse(await c.line());
    assert.equal(decode.error, 'MessageDecodeError');
    assert.match(decode.message, /^Invalid JSON/);
    const invalid = JSON.parse(await c.line());
    assert.equal(invalid.error, 'MessageValidationError');
    assert.deepEqual(invalid.issues.map((i: { path: string[] }) => i.path.join('.')).sort(), ['a', 'op']);
    assert.match(invalid.message, /^Invalid message: /);
    assert.deepEqual(JSON.parse(await c.line()), { sum: 5 });
    c.socket.destroy();
  });
});

test('utf8: invalid UTF-8 closes the connection by default, or is answered with onError', async () => {
  await serve(
    pipeline(
      testLines(),
      utf8(),
      handle((s: string) => s.toUpperCase()),
    ),
    async (port) => {
      const c = new LineClient(port);
      c.send('hello');
      assert.equal(await c.line(), 'HELLO');
      c.socket.write(Buffer.from([0xff, 0xfe, 0x0a]));
      await c.closed();
    },
  );
  const lenient = utf8({ onError: (e) => `ERR ${e.message}` });
  await serve(
    pipeline(
      testLines(),
      lenient,
      handle((s: string) => s.toUpperCase()),
    ),
    async (port) => {
      const c = new LineClient(port);
      c.socket.write(Buffer.from([0xc3, 0x28, 0x0a]));
      assert.equal(await c.line(), 'ERR The message is not valid UTF-8');
      c.send('ok');
      assert.equal(await c.line(), 'OK');
      c.socket.destroy();
    },
  );
});

test('a handler that throws is reported once and its connection closed; others go on', async () => {
  const loop = newEventLoop();
  const reported: string[] = [];
  loop.setExceptionHandler((_l, ctx) => reported.push(`${ctx.message}: ${(ctx.exception as Error).message}`));
  const factory = pipeline(
    testLines(),
    utf8(),
    handle((s: string) => {
      if (s === 'boom') throw new Error('kaput');
      return s;
    }),
  );
  try {
    await loop.runUntilComplete(async () => {
      const server = await loop.createServer(factory, '127.0.0.1', 0);
      const port = (server.sockets[0]!.getsockname() as [string, number])[1];
      const a = new LineClient(port);
      const b = new LineClient(port);
      a.send('boom');
      await a.closed();
      b.send('fine');
      assert.equal(await b.line(), 'fine');
      b.socket.destroy();
      server.close();
      server.closeClients();
      await server.waitClosed();
    });
  } finally {
    loop.close();
  }
  assert.deepEqual(reported, ['Error in message handler: kaput']);
});

test('backpressure reaches the handler: a large streamed reply waits on drain and arrives whole', async () => {
  const total = 8 * 1024 * 1024;
  const piece = Buffer.alloc(64 * 1024, 0x61);
  let sawPause = false;
  const factory = pipeline(
    testLines(),
    handle(async (_line: Buffer, ctx) => {
      for (let sent = 0; sent < total; sent += piece.length) {
        ctx.transport.write(piece);
        if (ctx.transport.isWritingPaused()) {
          sawPause = true;
          await ctx.drain();
        }
      }
      return 'done';
    }),
  );
  await serve(factory, async (port) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.pause();
    socket.write('go\n');
    // Let the server fill the socket buffers while nothing is read.
    await sleep(0.2);
    let received = 0;
    await new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        received += d.length;
        // Each piece goes out as a line (the framing stage adds its newline), then `done\n`.
        if (received >= total + total / piece.length + 5) resolve();
      });
      socket.resume();
    });
    socket.destroy();
    assert.equal(received, total + total / piece.length + 5);
  });
  assert.ok(sawPause, 'the handler saw writing paused and awaited drain()');
});

test('a client that sends and does not read: messages wait and reading stops, instead of replies filling memory', async () => {
  const reply = 'x'.repeat(64 * 1024);
  let handled = 0;
  const factory = pipeline(
    testLines(),
    handle(() => {
      handled++;
      return reply;
    }),
  );
  await serve(factory, async (port) => {
    const total = 2000; // 128 MiB of replies
    const socket = net.connect(port, '127.0.0.1');
    socket.pause();
    socket.write('go\n'.repeat(total));
    await sleep(0.5);
    assert.ok(handled < total / 2, `handled ${handled} of ${total} while nothing was read`);
    let received = 0;
    const expected = total * (reply.length + 1);
    await new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= expected) resolve();
      });
      socket.resume();
    });
    socket.destroy();
    assert.equal(handled, total);
    assert.equal(received, expected);
  });
});

test('per-connection state and hooks', async () => {
  const events: string[] = [];
  const factory = pipeline(
    testLines(),
    utf8(),
    handle(
      (line: string, ctx) => {
        const n = ((ctx.state.count as number | undefined) ?? 0) + 1;
        ctx.state.count = n;
        return `${n}:${line}`;
      },
      {
        onConnect: (ctx) => {
          events.push('connect');
          ctx.write('hello');
        },
        onDisconnect: () => events.push('disconnect'),
      },
    ),
  );
  await serve(factory, async (port) => {
    const a = new LineClient(port);
    assert.equal(await a.line(), 'hello');
    a.send('x', 'y');
    assert.equal(await a.line(), '1:x');
    assert.equal(await a.line(), '2:y');
    const b = new LineClient(port);
    assert.equal(await b.line(), 'hello');
    b.send('z');
    assert.equal(await b.line(), '1:z');
    a.socket.end();
    await a.closed();
    b.socket.destroy();
    await b.closed();
    await sleep(0.01);
  });
  assert.deepEqual(events, ['connect', 'connect', 'disconnect', 'disconnect']);
});
