// The message-protocol stages over real sockets: lines, lengthPrefixed and resp framing, route() dispatch with
// per-command zod schemas, error replies (framing, validation, handler), and backpressure reaching a handler.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import {
  CommandError,
  RESP_OK,
  RespErrorReply,
  RespRaw,
  RespSimpleString,
  command,
  encodeCommand,
  encodeFrame,
  json,
  lengthPrefixed,
  lines,
  newEventLoop,
  pipeline,
  resp,
  route,
  sleep,
  utf8,
  validate,
  z,
} from '@loopwork/service';
import type {
  BaseEventLoop,
  MessageTransport,
  ProtocolFactory,
  RespCommand,
  RespReply,
  Transport,
} from '@loopwork/service';
import { recordingLogger } from './helpers.js';

// ---- harness ---------------------------------------------------------------------------------------------------

interface Served {
  port: number;
  loop: BaseEventLoop;
  /** What reached the loop's exception handler: `message: error message`. */
  reported: string[];
  /** The loop logger's lines. */
  logged: Record<string, unknown>[];
}

/** Runs `main` on a fresh loop, serving `factory` on 127.0.0.1:0; closes everything after. */
async function serve(factory: ProtocolFactory, main: (s: Served) => Promise<void>): Promise<Served> {
  const loop = newEventLoop();
  const reported: string[] = [];
  loop.setExceptionHandler((_l, ctx) => {
    const e = ctx.exception as Error | undefined;
    reported.push(`${ctx.message}: ${e?.message ?? ''}`);
  });
  const { logger, lines: logged } = recordingLogger('debug');
  loop.logger = logger;
  const served: Served = { port: 0, loop, reported, logged };
  try {
    await loop.runUntilComplete(async () => {
      const server = await loop.createServer(factory, '127.0.0.1', 0);
      try {
        served.port = (server.sockets[0]!.getsockname() as [string, number])[1];
        await main(served);
      } finally {
        server.close();
        server.closeClients();
        await server.waitClosed();
      }
    });
  } finally {
    loop.close();
  }
  return served;
}

/** A raw client: write bytes, read until a condition, see the server close. */
class Client {
  readonly socket: net.Socket;
  buf = Buffer.alloc(0);
  ended = false;
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
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

  async #until(done: () => boolean, what: string): Promise<void> {
    while (!done()) {
      if (this.ended) throw new Error(`connection closed before ${what}; got ${JSON.stringify(this.buf.toString())}`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Reads one `\n`-terminated line (without it, nor a `\r` before it). */
  async line(): Promise<string> {
    await this.#until(() => this.buf.includes(10), 'a line');
    const i = this.buf.indexOf(10);
    const line = this.buf.subarray(0, i).toString('utf8').replace(/\r$/, '');
    this.buf = this.buf.subarray(i + 1);
    return line;
  }

  /** Reads one length-prefixed (u32be) frame as JSON. */
  async frame(): Promise<unknown> {
    await this.#until(() => this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32BE(0), 'a frame');
    const n = this.buf.readUInt32BE(0);
    const body = this.buf.subarray(4, 4 + n).toString('utf8');
    this.buf = this.buf.subarray(4 + n);
    return JSON.parse(body) as unknown;
  }

  /** Reads until `n` bytes are buffered; returns them as text. */
  async bytes(n: number): Promise<string> {
    await this.#until(() => this.buf.length >= n, `${n} bytes`);
    const out = this.buf.subarray(0, n).toString('latin1');
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Reads until `text` has come; returns everything up to and including it. */
  async upTo(text: string): Promise<string> {
    await this.#until(() => this.buf.includes(text), JSON.stringify(text));
    const end = this.buf.indexOf(text) + Buffer.byteLength(text);
    const out = this.buf.subarray(0, end).toString('latin1');
    this.buf = this.buf.subarray(end);
    return out;
  }

  async closed(): Promise<void> {
    await this.#until(() => this.ended, 'close');
  }
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a child process without blocking the loop; resolves with its stdout. */
function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    import('node:child_process')
      .then(({ execFile }) => {
        execFile(cmd, args, { timeout: 10000 }, (err, stdout) => {
          resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout });
        });
      })
      .catch(reject);
  });
}

// ---- lines ---------------------------------------------------------------------------------------------------

const textRoutes = pipeline(
  lines({ maxLength: 64 }),
  utf8(),
  route<string, string>({
    echo: (ctx) => (ctx.input as string[]).join(' '),
    upper: (ctx) => (ctx.input as string[]).join(' ').toUpperCase(),
    // Per-connection state lives as long as the connection.
    count: (ctx) => {
      const n = ((ctx.connection.state.n as number | undefined) ?? 0) + 1;
      ctx.connection.state.n = n;
      return String(n);
    },
    later: async (ctx) => {
      await sleep(0.02);
      return `later ${(ctx.input as string[])[0] ?? ''}`;
    },
    menu: () => 'one\ntwo\r\nthree',
    add: command(z.tuple([z.coerce.number(), z.coerce.number()]), (ctx) => String(ctx.input[0] + ctx.input[1])),
    '/users/:id': (ctx) => `user ${ctx.params.id ?? '?'}`,
  }),
);

test('lines → utf8 → route: commands by first word (any case), CRLF or LF, replies in order', async () => {
  await serve(textRoutes, async ({ port }) => {
    const c = new Client(port);
    c.write('echo hello  world\r\nUPPER abc\nlater x\necho after\n');
    assert.equal(await c.line(), 'hello world');
    assert.equal(await c.line(), 'ABC');
    // An async handler holds the replies after it: pipelined requests are answered in order.
    assert.equal(await c.line(), 'later x');
    assert.equal(await c.line(), 'after');
    c.write('menu\n');
    assert.deepEqual([await c.line(), await c.line(), await c.line()], ['one', 'two', 'three']);
    c.write('/users/42\n');
    assert.equal(await c.line(), 'user 42');
    c.socket.destroy();
  });
});

test('lines: per-connection state, unknown commands and schema errors are answered, the connection goes on', async () => {
  await serve(textRoutes, async ({ port, reported }) => {
    const a = new Client(port);
    const b = new Client(port);
    a.write('count\ncount\n');
    b.write('count\n');
    assert.equal(await a.line(), '1');
    assert.equal(await a.line(), '2');
    assert.equal(await b.line(), '1');
    a.write('frobnicate now\nadd 1 x\nadd 2\nadd 2 3\n');
    assert.equal(await a.line(), "ERR unknown command 'frobnicate'");
    assert.match(await a.line(), /^ERR Invalid arguments for 'add': 1: .*number/i);
    assert.match(await a.line(), /^ERR Invalid arguments for 'add': /);
    assert.equal(await a.line(), '5');
    a.socket.destroy();
    b.socket.destroy();
    assert.deepEqual(reported, []);
  });
});

test('lines: a line over maxLength gets ERR and closes that connection only', async () => {
  const s = await serve(textRoutes, async ({ port }) => {
    const bad = new Client(port);
    const good = new Client(port);
    bad.write(`echo ${'x'.repeat(100)}\n`);
    assert.equal(await bad.line(), 'ERR Line is longer than maxLength (64 bytes)');
    await bad.closed();
    good.write('echo still here\n');
    assert.equal(await good.line(), 'still here');
    good.socket.destroy();
  });
  assert.deepEqual(s.reported, []);
  const warn = s.logged.find((l) => l.msg === 'framing error: closing the connection');
  assert.ok(warn, 'the framing error is logged');
  assert.equal(warn.code, 'ERR_LOOPWORK_LINE_TOO_LONG');
  // The peer as every other log line writes it.
  assert.match(String(warn.peer), /^127\.0\.0\.1:\d+$/);
});

test('lines: an unterminated last line before EOF is still answered, then the connection closes', async () => {
  await serve(textRoutes, async ({ port }) => {
    const c = new Client(port);
    c.socket.end('echo last words');
    assert.equal(await c.line(), 'last words');
    await c.closed();
  });
});

// ---- route errors ----------------------------------------------------------------------------------------------

test('a handler that throws: an error reply for its message, one report, and the connection goes on', async () => {
  const factory = pipeline(
    lines(),
    utf8(),
    route<string, string>({
      boom: () => {
        throw new Error('secret internals');
      },
      reject: async () => Promise.reject(new Error('async internals')),
      refuse: () => {
        throw new CommandError('you cannot do that');
      },
      ok: () => 'fine',
    }),
  );
  const s = await serve(factory, async ({ port }) => {
    const c = new Client(port);
    c.write('boom\nok\nreject\nrefuse\nok\n');
    // The client sees no internals; the log has them.
    assert.equal(await c.line(), 'ERR internal error');
    assert.equal(await c.line(), 'fine');
    assert.equal(await c.line(), 'ERR internal error');
    assert.equal(await c.line(), 'ERR you cannot do that');
    assert.equal(await c.line(), 'fine');
    c.socket.destroy();
  });
  // A CommandError is the client's mistake: not reported.
  assert.deepEqual(s.reported, [
    'Error in message handler: secret internals',
    'Error in message handler: async internals',
  ]);
});

test('a schema that throws (a buggy transform) fails like a handler: an error reply, one report, the connection goes on', async () => {
  const Buggy = z.object({ n: z.number(), method: z.string().optional() }).transform((v) => {
    if (v.n === 13) throw new Error('transform bug');
    return v;
  });
  const factory = pipeline(
    lines(),
    utf8(),
    json(),
    validate(Buggy),
    route<{ n: number; method?: string }, unknown>(
      {
        ok: (ctx) => ({ n: ctx.message.n }),
        check: command(
          z.object({ n: z.number() }).transform(() => {
            throw new Error('command schema bug');
          }),
          () => 'unreached',
        ),
      },
      { key: (m) => m.method ?? 'ok' },
    ),
  );
  const s = await serve(factory, async ({ port }) => {
    const c = new Client(port);
    c.write('{"n":1}\n{"n":13}\n{"n":2,"method":"check"}\n{"n":"x"}\n{"n":3}\n');
    assert.deepEqual(JSON.parse(await c.line()), { n: 1 });
    assert.deepEqual(JSON.parse(await c.line()), { error: 'InternalError', message: 'Internal error' });
    assert.deepEqual(JSON.parse(await c.line()), { error: 'InternalError', message: 'Internal error' });
    assert.equal(JSON.parse(await c.line()).error, 'MessageValidationError');
    assert.deepEqual(JSON.parse(await c.line()), { n: 3 });
    c.socket.destroy();
  });
  assert.deepEqual(s.reported, [
    'Error in validate() schema: transform bug',
    'Error in message handler: command schema bug',
  ]);
});

// ---- length-prefixed JSON RPC ------------------------------------------------------------------------------------

const RpcRequest = z.object({ id: z.number().int(), method: z.string(), params: z.unknown().optional() });
type RpcRequest = z.infer<typeof RpcRequest>;

const rpcFactory = pipeline(
  lengthPrefixed({
    header: 'u32be',
    maxLength: 4096,
    onError: (e) => JSON.stringify({ error: e.name, message: e.message }),
  }),
  json(),
  validate(RpcRequest),
  route<RpcRequest, unknown>({
    add: command(z.object({ params: z.object({ a: z.number(), b: z.number() }) }), (ctx) => ({
      id: ctx.message.id,
      result: ctx.input.params.a + ctx.input.params.b,
    })),
    slow: async (ctx) => {
      await sleep(0.02);
      return { id: ctx.message.id, result: 'slow' };
    },
    fail: () => {
      throw new TypeError('undefined is not a function');
    },
  }),
);

function rpc(c: Client, request: unknown): void {
  c.write(encodeFrame(JSON.stringify(request)));
}

test('lengthPrefixed → json → validate → route: RPC round trips, in order, ids echoed on errors', async () => {
  const s = await serve(rpcFactory, async ({ port }) => {
    const c = new Client(port);
    rpc(c, { id: 1, method: 'slow' });
    rpc(c, { id: 2, method: 'add', params: { a: 2, b: 40 } });
    rpc(c, { id: 3, method: 'nope' });
    rpc(c, { id: 4, method: 'add', params: { a: 'x' } });
    rpc(c, { id: 5, method: 'fail' });
    rpc(c, { method: 'add' });
    c.write(encodeFrame('{not json'));
    assert.deepEqual(await c.frame(), { id: 1, result: 'slow' });
    assert.deepEqual(await c.frame(), { id: 2, result: 42 });
    assert.deepEqual(await c.frame(), { id: 3, error: 'CommandError', message: "Unknown method 'nope'" });
    const invalid = (await c.frame()) as { id: number; error: string; issues: { path: string[] }[] };
    assert.equal(invalid.id, 4);
    assert.equal(invalid.error, 'MessageValidationError');
    assert.deepEqual(invalid.issues.map((i) => i.path.join('.')).sort(), ['params.a', 'params.b']);
    assert.deepEqual(await c.frame(), { id: 5, error: 'InternalError', message: 'Internal error' });
    // The envelope is checked by validate(): its reply lists the problems.
    const envelope = (await c.frame()) as { error: string; message: string };
    assert.equal(envelope.error, 'MessageValidationError');
    assert.match(envelope.message, /id/);
    const decode = (await c.frame()) as { error: string };
    assert.equal(decode.error, 'MessageDecodeError');
    rpc(c, { id: 6, method: 'add', params: { a: 1, b: 1 } });
    assert.deepEqual(await c.frame(), { id: 6, result: 2 });
    c.socket.destroy();
  });
  assert.deepEqual(s.reported, ['Error in message handler: undefined is not a function']);
});

test('lengthPrefixed: a frame over maxLength gets the onError frame and closes that connection only', async () => {
  await serve(rpcFactory, async ({ port }) => {
    const bad = new Client(port);
    const good = new Client(port);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1_000_000);
    bad.write(header);
    const reply = (await bad.frame()) as { error: string; message: string };
    assert.equal(reply.error, 'FrameTooLongError');
    assert.match(reply.message, /1000000 is over maxLength \(4096/);
    await bad.closed();
    rpc(good, { id: 7, method: 'add', params: { a: 3, b: 4 } });
    assert.deepEqual(await good.frame(), { id: 7, result: 7 });
    good.socket.destroy();
  });
});

test('lengthPrefixed: the stream ending inside a frame closes the connection', async () => {
  await serve(rpcFactory, async ({ port }) => {
    const c = new Client(port);
    const frame = encodeFrame(JSON.stringify({ id: 1, method: 'add', params: { a: 1, b: 2 } }));
    c.socket.end(frame.subarray(0, frame.length - 3));
    const reply = (await c.frame()) as { error: string };
    assert.equal(reply.error, 'FrameTruncatedError');
    await c.closed();
  });
});

// ---- RESP ------------------------------------------------------------------------------------------------------

const OK = new RespRaw(RESP_OK);

function respServer(): { factory: ProtocolFactory; store: Map<string, Buffer> } {
  const store = new Map<string, Buffer>();
  const factory = pipeline(
    resp(),
    route<RespCommand, RespReply>({
      PING: (ctx) => (ctx.message.length > 1 ? ctx.message[1]! : new RespSimpleString('PONG')),
      SET: (ctx) => {
        store.set(ctx.message[1]!.toString('latin1'), ctx.message[2]!);
        return OK;
      },
      GET: (ctx) => store.get(ctx.message[1]!.toString('latin1')) ?? null,
      // Arguments checked by zod: `-ERR Invalid arguments for 'INCRBY': …`.
      INCRBY: command(z.tuple([z.string().min(1), z.string().regex(/^-?\d+$/, 'not an integer')]), (ctx) => {
        const key = ctx.input[0];
        const n = Number(store.get(key)?.toString() ?? '0') + Number(ctx.input[1]);
        store.set(key, Buffer.from(String(n)));
        return n;
      }),
      SLOWECHO: async (ctx) => {
        await sleep(0.02);
        return ctx.message[1] ?? null;
      },
      LIST: () => [1, 'two', null, [new RespSimpleString('nested')]],
      WRONG: () => new RespErrorReply('WRONGTYPE Operation against a key holding the wrong kind of value'),
      FLOAT: () => 1.5,
      CRASH: () => {
        throw new RangeError('bug in handler');
      },
      QUIT: (ctx) => {
        ctx.write(OK);
        ctx.close();
      },
    }),
  );
  return { factory, store };
}

test('resp → route: RESP arrays and inline commands, pipelined replies in order', async () => {
  const { factory } = respServer();
  await serve(factory, async ({ port, reported }) => {
    const c = new Client(port);
    c.write(
      Buffer.concat([
        encodeCommand(['PING']),
        encodeCommand(['set', 'k', 'v1']),
        encodeCommand(['SLOWECHO', 'first']),
        encodeCommand(['GET', 'k']),
        encodeCommand(['GET', 'missing']),
        Buffer.from('ping "hello world"\r\n'),
        encodeCommand(['LIST']),
        encodeCommand(['WRONG']),
      ]),
    );
    const expected =
      '+PONG\r\n+OK\r\n$5\r\nfirst\r\n$2\r\nv1\r\n$-1\r\n$11\r\nhello world\r\n' +
      '*4\r\n:1\r\n$3\r\ntwo\r\n$-1\r\n*1\r\n+nested\r\n' +
      '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n';
    assert.equal(await c.bytes(Buffer.byteLength(expected)), expected);
    c.socket.destroy();
    assert.deepEqual(reported, []);
  });
});

test('resp: unknown commands, schema errors, handler errors and unencodable replies get -ERR; the connection goes on', async () => {
  const { factory } = respServer();
  const s = await serve(factory, async ({ port }) => {
    const c = new Client(port);
    c.write(encodeCommand(['FOO', 'a', 'b']));
    assert.equal(await c.upTo('\r\n'), "-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n");
    c.write(encodeCommand(['INCRBY', 'n', 'x']));
    assert.equal(await c.upTo('\r\n'), "-ERR Invalid arguments for 'INCRBY': 1: not an integer\r\n");
    c.write(encodeCommand(['INCRBY', 'n']));
    assert.match(await c.upTo('\r\n'), /^-ERR Invalid arguments for 'INCRBY': /);
    c.write(encodeCommand(['INCRBY', 'n', '5']));
    assert.equal(await c.upTo('\r\n'), ':5\r\n');
    c.write(encodeCommand(['CRASH']));
    assert.equal(await c.upTo('\r\n'), '-ERR internal error\r\n');
    c.write(encodeCommand(['FLOAT']));
    assert.match(await c.upTo('\r\n'), /^-ERR 1\.5 is not an integer/);
    c.write(encodeCommand(['PING']));
    assert.equal(await c.upTo('\r\n'), '+PONG\r\n');
    c.socket.destroy();
  });
  assert.deepEqual(s.reported, [
    'Error in message handler: bug in handler',
    'Cannot encode a reply: 1.5 is not an integer a RESP reply can carry',
  ]);
});

test('resp: a protocol error gets -ERR Protocol error and closes that connection only; QUIT closes after +OK', async () => {
  const { factory } = respServer();
  await serve(factory, async ({ port }) => {
    const bad = new Client(port);
    const good = new Client(port);
    bad.write('*1\r\n$abc\r\n');
    assert.equal(await bad.upTo('\r\n'), '-ERR Protocol error: invalid bulk length\r\n');
    await bad.closed();
    good.write(Buffer.concat([encodeCommand(['PING']), encodeCommand(['QUIT']), encodeCommand(['PING'])]));
    assert.equal(await good.upTo('+OK\r\n'), '+PONG\r\n+OK\r\n');
    await good.closed();
    assert.equal(good.buf.length, 0, 'nothing is answered after QUIT');
  });
});

test('resp: redis-cli talks to it', { skip: hasCommand('redis-cli') ? false : 'redis-cli not installed' }, async () => {
  const { factory } = respServer();
  await serve(factory, async ({ port }) => {
    const cli = (...args: string[]): Promise<{ code: number | null; stdout: string }> =>
      run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
    assert.equal((await cli('PING')).stdout, 'PONG\n');
    assert.equal((await cli('SET', 'greeting', 'hello there')).stdout, 'OK\n');
    assert.equal((await cli('GET', 'greeting')).stdout, 'hello there\n');
    assert.equal((await cli('INCRBY', 'counter', '7')).stdout, '7\n');
    assert.match((await cli('NOPE')).stdout, /ERR unknown command 'NOPE'/);
  });
});

// ---- write batching --------------------------------------------------------------------------------------------

test('replies to one chunk of pipelined requests go out in one write', () => {
  const { factory } = respServer();
  const writes: Buffer[] = [];
  const transport = {
    write: (b: Uint8Array) => writes.push(Buffer.from(b)),
    getExtraInfo: (_n: string, d?: unknown) => d,
    isClosing: () => false,
    pauseReading: () => undefined,
    resumeReading: () => undefined,
    close: () => undefined,
    abort: () => undefined,
    canWriteEof: () => true,
    getWriteBufferSize: () => 0,
  } as unknown as Transport;
  const proto = factory();
  proto.connectionMade(transport);
  const burst = Buffer.concat(Array.from({ length: 16 }, (_, i) => encodeCommand(['SET', `k${i}`, 'v'])));
  (proto as unknown as { dataReceived(b: Buffer): void }).dataReceived(burst);
  assert.equal(writes.length, 1);
  assert.equal(writes[0]!.toString(), '+OK\r\n'.repeat(16));
  (proto as unknown as { dataReceived(b: Buffer): void }).dataReceived(
    Buffer.concat([encodeCommand(['GET', 'k1']), encodeCommand(['GET', 'k2']), encodeCommand(['GET', 'none'])]),
  );
  assert.equal(writes.length, 2);
  assert.equal(writes[1]!.toString(), '$1\r\nv\r\n$1\r\nv\r\n$-1\r\n');

  // A large burst is written in pieces (bounded memory), small and large replies in order.
  writes.length = 0;
  const small = 'a'.repeat(1000);
  const large = 'b'.repeat(5000);
  const burst2: Buffer[] = [encodeCommand(['SET', 'small', small]), encodeCommand(['SET', 'large', large])];
  const expected: string[] = ['+OK\r\n', '+OK\r\n'];
  for (let i = 0; i < 100; i++) {
    const key = i % 7 === 0 ? 'large' : 'small';
    burst2.push(encodeCommand(['GET', key]));
    expected.push(key === 'large' ? `$5000\r\n${large}\r\n` : `$1000\r\n${small}\r\n`);
  }
  (proto as unknown as { dataReceived(b: Buffer): void }).dataReceived(Buffer.concat(burst2));
  assert.ok(writes.length >= 2, `${writes.length} writes`);
  assert.ok(
    writes.every((w) => w.length <= 64 * 1024 + 5010),
    writes.map((w) => w.length).join(),
  );
  assert.equal(Buffer.concat(writes).toString(), expected.join(''));
});

// ---- backpressure ------------------------------------------------------------------------------------------------

test('backpressure reaches a route handler: it awaits drain() while a slow reader is not reading', async (t: TestContext) => {
  const piece = 'x'.repeat(64 * 1024);
  const pieces = 128; // 8 MiB: far more than the socket buffers hold
  let paused!: () => void;
  const sawPause = new Promise<void>((r) => (paused = r));
  let maxBuffered = 0;
  let transport: MessageTransport<string | Uint8Array> | null = null;
  const factory = pipeline(
    lines(),
    utf8(),
    route<string, string | Uint8Array>({
      download: async (ctx) => {
        transport = ctx.connection.transport;
        for (let i = 0; i < pieces; i++) {
          ctx.write(piece);
          maxBuffered = Math.max(maxBuffered, ctx.connection.transport.getWriteBufferSize());
          if (ctx.connection.transport.isWritingPaused()) {
            paused();
            await ctx.drain();
          }
        }
        return 'done';
      },
    }),
  );
  await serve(factory, async ({ port }) => {
    const socket = net.connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await new Promise<void>((r) => socket.once('connect', r));
    socket.pause();
    socket.write('download\n');
    await sawPause;
    // The handler stopped writing: what the server holds is bounded by the high-water mark plus one piece.
    assert.ok(transport !== null);
    assert.ok(maxBuffered <= 64 * 1024 + piece.length + 1, `server buffered ${maxBuffered} bytes`);
    const total = pieces * (piece.length + 1) + 'done\n'.length;
    let received = 0;
    let tail = '';
    await new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        received += d.length;
        tail = (tail + d.toString('latin1')).slice(-5);
        if (received >= total) resolve();
      });
      socket.resume();
    });
    assert.equal(received, total);
    assert.equal(tail, 'done\n');
  });
});
