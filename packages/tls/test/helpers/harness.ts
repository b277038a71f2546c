// Shared pieces of the TLS tests: a loop runner that records the exception handler's calls, a protocol that
// records its callbacks, and TLS connection pairs made over real TCP sockets with the hand-off function.
import net from 'node:net';
import { Protocol, createTLSTransport } from '@loopwork/tls';
import type {
  BaseEventLoop,
  BaseTransport,
  Future,
  SSLContext,
  TLSTransport,
  TLSTransportOptions,
  Transport,
} from '@loopwork/tls';

export { collectedAfterGc, runLoop } from '../../../core/test/helpers.js';

/** A protocol that records what happens to it, with futures to wait on. */
export class Recorder extends Protocol {
  readonly events: string[] = [];
  readonly chunks: Buffer[] = [];
  declare transport?: Transport;
  lostWith: Error | null | undefined = undefined;
  readonly made: Future<Transport>;
  readonly lost: Future<Error | null>;
  readonly eof: Future<void>;
  /** Resolved when at least `want` bytes arrived. */
  private waiting: { want: number; fut: Future<Buffer> } | null = null;
  /** What `connectionMade` saw of the TLS state. */
  cipherAtMade: unknown = undefined;

  constructor(readonly loop: BaseEventLoop) {
    super();
    this.made = loop.createFuture<Transport>();
    this.lost = loop.createFuture<Error | null>();
    this.eof = loop.createFuture<void>();
  }

  override connectionMade(transport: BaseTransport): void {
    this.events.push('made');
    this.transport = transport as Transport;
    this.cipherAtMade = transport.getExtraInfo('cipher');
    this.made.setResult(transport as Transport);
  }

  override dataReceived(data: Buffer): void {
    if (this.events.at(-1) !== 'data') this.events.push('data');
    this.chunks.push(Buffer.from(data));
    const w = this.waiting;
    if (w !== null && this.received().length >= w.want) {
      this.waiting = null;
      w.fut.setResult(this.received());
    }
  }

  override eofReceived(): boolean | void {
    this.events.push('eof');
    this.eof.setResult(undefined);
  }

  override connectionLost(exc: Error | null): void {
    this.events.push('lost');
    this.lostWith = exc;
    this.lost.setResult(exc);
    this.waiting?.fut.setException(exc ?? new Error('connection lost before the bytes came'));
    this.waiting = null;
  }

  received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Waits until `n` bytes in all have been received. */
  async receive(n: number): Promise<Buffer> {
    if (this.received().length >= n) return this.received();
    const fut = this.loop.createFuture<Buffer>();
    this.waiting = { want: n, fut };
    return fut;
  }
}

/** A listening TCP server on 127.0.0.1, port 0, that hands each accepted socket to the caller. */
export async function listen(): Promise<{ server: net.Server; port: number; accept(): Promise<net.Socket> }> {
  const server = net.createServer({ allowHalfOpen: true });
  const queue: net.Socket[] = [];
  const waiters: ((s: net.Socket) => void)[] = [];
  server.on('connection', (s) => {
    const w = waiters.shift();
    if (w !== undefined) w(s);
    else queue.push(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    accept: () => {
      const s = queue.shift();
      if (s !== undefined) return Promise.resolve(s);
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/** Connects a TCP socket to 127.0.0.1:port. */
export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, allowHalfOpen: true }, () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Closes a Node server and waits until its last connection is gone. */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** One side of a TLS pair. */
export interface Side {
  protocol: Recorder;
  transport: TLSTransport;
  waiter: Future<unknown>;
}

/** Options of {@link tlsPair}. */
export interface PairOptions {
  server?: Omit<TLSTransportOptions, 'serverSide' | 'waiter'>;
  client?: Omit<TLSTransportOptions, 'serverSide' | 'waiter'>;
}

/**
 * Makes a TCP connection and wraps both ends with `createTLSTransport`; the handshakes run in the background.
 * The caller awaits `server.waiter` / `client.waiter`.
 */
export async function tlsPair(
  loop: BaseEventLoop,
  serverCtx: SSLContext,
  clientCtx: SSLContext,
  options: PairOptions = {},
): Promise<{ server: Side; client: Side; close(): Promise<void>; [Symbol.asyncDispose](): Promise<void> }> {
  const l = await listen();
  const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
  const make = (ctx: SSLContext, sock: net.Socket, serverSide: boolean, opts: PairOptions['server']): Side => {
    const protocol = new Recorder(loop);
    const waiter = loop.createFuture<unknown>();
    // A handshake failure is the test's to check; nobody must be warned about an unretrieved exception.
    waiter.addDoneCallback((f) => {
      if (!f.cancelled()) f.exception();
    });
    const transport = createTLSTransport(loop, protocol, sock, ctx, {
      serverHostname: serverSide ? null : 'localhost',
      ...opts,
      serverSide,
      waiter,
    });
    return { protocol, transport, waiter };
  };
  const server = make(serverCtx, accepted, true, options.server);
  const client = make(clientCtx, raw, false, options.client);
  const close = async (): Promise<void> => {
    server.transport.abort();
    client.transport.abort();
    await closeServer(l.server);
  };
  // `await using pair = await tlsPair(…)` closes both sides and the listener when the test's block ends.
  return { server, client, close, [Symbol.asyncDispose]: close };
}

/** Settles with the waiter's error (or `null` on success), without throwing. */
export async function outcome(fut: PromiseLike<unknown>): Promise<Error | null> {
  try {
    await fut;
    return null;
  } catch (error) {
    return error as Error;
  }
}
