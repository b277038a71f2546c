/**
 * A JSON RPC service over length-prefixed frames, and its client.
 *
 * Each frame is a 4-byte big-endian length, then that many bytes of JSON. A request is
 * `{"id": 1, "method": "add", "params": {"a": 1, "b": 2}}`; its answer `{"id": 1, "result": 3}`, or
 * `{"id": 1, "error": "CommandError", "message": "division by zero"}`. Requests may be pipelined: answers come in
 * the order of the requests. The `count` method streams `{"id", "progress"}` notifications before its result,
 * waiting for the connection to drain when the client reads slowly.
 *
 * The server is `pipeline(lengthPrefixed(), json(), validate(Request), route(methods))` on an app's TCP listener
 * (SIGINT/SIGTERM drain it, exit 0); the client uses loopwork's streams (`openConnection`, `readexactly`).
 *
 * Run:
 * - `node --conditions=loopwork-source --import tsx apps/examples/src/rpc.ts server [--host 127.0.0.1] [--port 7100]`
 *   prints `rpc listening on tcp://HOST:PORT`;
 * - `… rpc.ts client [--host 127.0.0.1] --port PORT METHOD [PARAMS_JSON]` prints the notifications and the answer,
 *   one JSON line each, and exits 0 for a result, 1 for an error.
 *
 * Methods: `add {a, b}`, `divide {a, b}`, `echo <any>`, `sleep {seconds}` (at most 5), `count {to}` (streams),
 * `crash` (a bug: the client sees `InternalError`, the log has the stack), `stats`.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import {
  CommandError,
  command,
  createApp,
  json,
  lengthPrefixed,
  newEventLoop,
  openConnection,
  pipeline,
  route,
  sleep,
  validate,
  z,
} from '@loopwork/service';
import type { ProtocolFactory, StreamReader, StreamWriter } from '@loopwork/service';

const MAX_FRAME = 1024 * 1024;

/** The envelope of every request; each method checks its own `params`. */
const Request = z.object({
  id: z.union([z.number().int(), z.string().min(1)]),
  method: z.string().min(1),
  params: z.unknown().optional(),
});
type Request = z.infer<typeof Request>;

const Pair = z.object({ params: z.object({ a: z.number(), b: z.number() }) });

function rpcFactory(): ProtocolFactory {
  const calls = new Map<string, number>();
  const ok = (req: Request, result: unknown): unknown => {
    calls.set(req.method, (calls.get(req.method) ?? 0) + 1);
    return { id: req.id, result };
  };
  return pipeline(
    lengthPrefixed({
      header: 'u32be',
      maxLength: MAX_FRAME,
      // A frame too long (or cut short) ends the connection; the client is told why first.
      onError: (e) => JSON.stringify({ error: e.name, message: e.message }),
    }),
    json(),
    validate(Request),
    route<Request, unknown>(
      {
        add: command(Pair, (ctx) => ok(ctx.message, ctx.input.params.a + ctx.input.params.b)),
        divide: command(Pair, (ctx) => {
          if (ctx.input.params.b === 0) throw new CommandError('division by zero');
          return ok(ctx.message, ctx.input.params.a / ctx.input.params.b);
        }),
        echo: (ctx) => ok(ctx.message, ctx.message.params ?? null),
        sleep: command(z.object({ params: z.object({ seconds: z.number().min(0).max(5) }) }), async (ctx) => {
          await sleep(ctx.input.params.seconds);
          return ok(ctx.message, 'slept');
        }),
        count: command(z.object({ params: z.object({ to: z.number().int().min(0).max(1_000_000) }) }), async (ctx) => {
          for (let i = 1; i <= ctx.input.params.to; i++) {
            ctx.write({ id: ctx.message.id, progress: i });
            // A slow reader pauses the transport: wait for it rather than buffer without bound.
            if (ctx.connection.transport.isWritingPaused()) await ctx.drain();
          }
          return ok(ctx.message, ctx.input.params.to);
        }),
        crash: () => {
          throw new Error('a bug in the crash method');
        },
        stats: (ctx) => ok(ctx.message, Object.fromEntries(calls)),
      },
      { format: 'json' },
    ),
  );
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '7100' } },
  });
  const app = createApp({
    logger: { level: process.env.LOG_LEVEL ?? 'info', name: 'rpc' },
    health: false,
    metrics: false,
  });
  await app.listen({ tcp: { host: values.host, port: Number(values.port), protocol: rpcFactory() } });
  console.log(`rpc listening on ${app.addresses()[0]!.url}`);
}

/** An RPC client on one connection: `call()` sends a request and reads frames until its answer. */
export class RpcClient {
  #nextId = 1;

  private constructor(
    readonly reader: StreamReader,
    readonly writer: StreamWriter,
  ) {}

  /** Connects to an RPC server. */
  static async connect(host: string, port: number): Promise<RpcClient> {
    const [reader, writer] = await openConnection(host, port);
    return new RpcClient(reader, writer);
  }

  /** Sends one frame of JSON. */
  send(message: unknown): void {
    const body = Buffer.from(JSON.stringify(message), 'utf8');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    this.writer.write(Buffer.concat([header, body]));
  }

  /** Reads one frame of JSON. */
  async receive(): Promise<Record<string, unknown>> {
    const header = await this.reader.readexactly(4);
    const n = header.readUInt32BE(0);
    if (n > MAX_FRAME) throw new RangeError(`frame of ${n} bytes is over ${MAX_FRAME}`);
    return JSON.parse((await this.reader.readexactly(n)).toString('utf8')) as Record<string, unknown>;
  }

  /**
   * Calls a method: the notifications that come before the answer go to `onProgress`.
   *
   * @returns the answer (`{id, result}` or `{id, error, message}`).
   */
  async call(
    method: string,
    params?: unknown,
    onProgress: (m: Record<string, unknown>) => void = () => undefined,
  ): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    this.send(params === undefined ? { id, method } : { id, method, params });
    await this.writer.drain();
    for (;;) {
      const m = await this.receive();
      if (m.id === id && 'progress' in m) onProgress(m);
      else return m;
    }
  }

  async close(): Promise<void> {
    this.writer.close();
    await this.writer.waitClosed();
  }
}

async function client(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string' } },
  });
  const [method, paramsText] = positionals;
  if (values.port === undefined || method === undefined) {
    console.error('usage: rpc.ts client [--host H] --port PORT METHOD [PARAMS_JSON]');
    return 2;
  }
  let params: unknown;
  try {
    params = paramsText === undefined ? undefined : (JSON.parse(paramsText) as unknown);
  } catch (err) {
    console.error(`PARAMS_JSON is not JSON: ${(err as Error).message}`);
    return 2;
  }
  const loop = newEventLoop();
  try {
    return await loop.runUntilComplete(async () => {
      let c: RpcClient;
      try {
        c = await RpcClient.connect(values.host, Number(values.port));
      } catch (err) {
        // Nothing listens there, or the name does not resolve: say so, as a command-line tool does.
        console.error(`cannot connect to ${values.host}:${values.port}: ${(err as Error).message}`);
        return 1;
      }
      try {
        const answer = await c.call(method, params, (m) => console.log(JSON.stringify(m)));
        console.log(JSON.stringify(answer));
        return 'result' in answer ? 0 : 1;
      } finally {
        await c.close();
      }
    });
  } finally {
    loop.close();
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'server') await serve(rest);
else if (mode === 'client') process.exitCode = await client(rest);
else {
  console.error('usage: rpc.ts server [--host H] [--port N] | rpc.ts client --port N METHOD [PARAMS_JSON]');
  process.exitCode = 2;
}
