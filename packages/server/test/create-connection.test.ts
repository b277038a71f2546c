import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  AF_INET,
  AF_INET6,
  CancelledError,
  ExceptionGroup,
  FileNotFoundError,
  InvalidArgTypeError,
  IPPROTO_TCP,
  OSError,
  Protocol,
  SOCK_STREAM,
  Socket,
  TimeoutError,
  ValueError,
  native,
  openConnection,
  sleep,
  waitFor,
} from '@loopwork/server';
import type { AddrInfo, BaseEventLoop, BaseTransport, Server, Transport } from '@loopwork/server';
import { Recorder, portOf, runLoop, settle } from './helpers.js';

const NATIVE = native.nativeAvailable();

class Echo extends Protocol {
  t: Transport | null = null;
  override connectionMade(t: BaseTransport): void {
    this.t = t as Transport;
  }
  override dataReceived(data: Buffer): void {
    this.t!.write(data);
  }
}

async function echoServer(loop: BaseEventLoop, host = '127.0.0.1', port = 0): Promise<[Server, number]> {
  const server = await loop.createServer(() => new Echo(), host, port);
  return [server, portOf(server.sockets[0]!.getsockname())];
}

async function closed(server: Server): Promise<void> {
  server.close();
  server.abortClients();
  await server.waitClosed();
}

/** A port nothing listens on (bound, then closed). */
async function deadPort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer().listen(0, host);
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  s.close();
  await once(s, 'close');
  return port;
}

/** Makes `loop.getaddrinfo` answer `infos` for the host `name` (a test double of the resolver). */
function fakeResolver(loop: BaseEventLoop, name: string, infos: AddrInfo[]): void {
  const real = loop.getaddrinfo.bind(loop);
  Object.defineProperty(loop, 'getaddrinfo', {
    configurable: true,
    value: (host: string | null, ...rest: Parameters<typeof real> extends [unknown, ...infer R] ? R : never) =>
      host === name ? Promise.resolve(infos) : real(host, ...rest),
  });
}

const v4 = (host: string, port: number): AddrInfo => [AF_INET, SOCK_STREAM, IPPROTO_TCP, '', [host, port]];
const v6 = (host: string, port: number): AddrInfo => [AF_INET6, SOCK_STREAM, IPPROTO_TCP, '', [host, port, 0, 0]];

/**
 * A listening address that never answers a connection: a native socket listening with a backlog of 0 whose one
 * queue slot is taken, so the kernel drops further SYNs and a connect just waits.
 */
async function blackhole(host: string, port = 0): Promise<{ port: number; close(): void }> {
  const C = native.constants;
  const fd = native.socket(C.AF_INET, C.SOCK_STREAM);
  native.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEADDR, 1);
  native.bind(fd, [host, port]);
  native.listen(fd, 0);
  const p = (native.getsockname(fd) as [string, number])[1];
  const filler = net.connect(p, host);
  await once(filler, 'connect');
  return {
    port: p,
    close(): void {
      filler.destroy();
      native.close(fd);
    },
  };
}

test('createConnection returns [transport, protocol] once connectionMade has run', () =>
  runLoop(async (loop) => {
    const [server, port] = await echoServer(loop);
    const proto = new Recorder(loop);
    const [transport, p] = await loop.createConnection(() => proto, '127.0.0.1', port);
    assert.equal(p, proto);
    assert.deepEqual(proto.events, ['connectionMade']);
    assert.deepEqual(transport.getExtraInfo('peername'), ['127.0.0.1', port]);
    transport.write(Buffer.from('hi'));
    await proto.received(2);
    assert.equal(proto.text(), 'hi');
    transport.close();
    assert.equal(await settle(proto.lost), null);
    // The options-object form.
    const p2 = new Recorder(loop);
    const [t2] = await loop.createConnection(() => p2, { host: '127.0.0.1', port });
    t2.close();
    await settle(p2.lost);
    await closed(server);
  }));

test('a refused connection gives asyncio message and errno fields', () =>
  runLoop(async (loop) => {
    const port = await deadPort();
    await assert.rejects(
      loop.createConnection(() => new Echo(), '127.0.0.1', port),
      (e: Error) => {
        assert.ok(OSError.isInstance(e));
        const err = e as NodeJS.ErrnoException;
        assert.equal(err.code, 'ECONNREFUSED');
        assert.equal(err.syscall, 'connect');
        assert.equal(e.message, `[Errno 111] Connect call failed ('127.0.0.1', ${port})`);
        return true;
      },
    );
  }));

test('a connect that hangs: waitFor(loop.createConnection(…), t) and waitFor(openConnection(…), t) time out at t', () =>
  runLoop(async (loop) => {
    // A listener that never accepts, its queue full: the next SYN is dropped and the connect hangs.
    const listener = new Socket(AF_INET, SOCK_STREAM);
    listener.bind(['127.0.0.1', 0]);
    listener.listen(0);
    const port = (listener.getsockname() as [string, number])[1];
    const fillers = [1, 2, 3, 4].map(() => net.connect(port, '127.0.0.1').on('error', () => undefined));
    try {
      await sleep(0.2);
      const attempts: (() => Promise<unknown>)[] = [
        () => loop.createConnection(() => new Echo(), '127.0.0.1', port),
        () => openConnection('127.0.0.1', port),
      ];
      for (const connect of attempts) {
        const t0 = loop.time();
        await assert.rejects(waitFor(connect(), 0.3), TimeoutError);
        assert.ok(loop.time() - t0 < 2, `timed out after ${loop.time() - t0} s`);
      }
      // A task awaiting the connect passes its cancellation on, as asyncio's would.
      const task = loop.createTask(() => loop.createConnection(() => new Echo(), '127.0.0.1', port));
      await sleep(0.1);
      task.cancel();
      await assert.rejects(settle(task), CancelledError);
    } finally {
      for (const f of fillers) f.destroy();
      listener.close();
    }
  }));

test('argument errors use asyncio messages', () =>
  runLoop(async (loop) => {
    const f = (): Echo => new Echo();
    const sock = new net.Socket();
    const cases: [Promise<unknown>, (e: Error) => boolean, string][] = [
      [
        loop.createConnection(f, '127.0.0.1', 1, { serverHostname: 'x' }),
        ValueError.isInstance,
        'serverHostname is only meaningful with ssl',
      ],
      [
        loop.createConnection(f, { sock, ssl: true }),
        ValueError.isInstance,
        'You must set serverHostname when using ssl without a host',
      ],
      [
        loop.createConnection(f, '127.0.0.1', 1, { sock }),
        ValueError.isInstance,
        'host/port and sock can not be specified at the same time',
      ],
      [loop.createConnection(f), ValueError.isInstance, 'host and port was not specified and no sock specified'],
      [
        loop.createConnection(f, '127.0.0.1', 1, { sslHandshakeTimeout: 1 }),
        ValueError.isInstance,
        'sslHandshakeTimeout is only meaningful with ssl',
      ],
      [
        loop.createConnection(f, '127.0.0.1', 1, { sslShutdownTimeout: 1 }),
        ValueError.isInstance,
        'sslShutdownTimeout is only meaningful with ssl',
      ],
      [
        loop.createConnection(f, '127.0.0.1', 1, { happy_eyeballs_delay: 1 } as never),
        InvalidArgTypeError.isInstance,
        "createConnection() got an unexpected keyword argument 'happy_eyeballs_delay'",
      ],
      [loop.createUnixConnection(f), ValueError.isInstance, 'no path and sock were specified'],
      [
        loop.createUnixConnection(f, '/tmp/x', { sock }),
        ValueError.isInstance,
        'path and sock can not be specified at the same time',
      ],
      [
        loop.createUnixConnection(f, '/tmp/x', { ssl: true }),
        ValueError.isInstance,
        'you have to pass serverHostname when using ssl',
      ],
      [
        loop.createUnixConnection(f, '/tmp/x', { serverHostname: 'x' }),
        ValueError.isInstance,
        'serverHostname is only meaningful with ssl',
      ],
    ];
    for (const [p, kind, message] of cases) {
      await assert.rejects(p, (e: Error) => {
        assert.ok(kind(e), `${e.name}: ${e.message}`);
        assert.equal(e.message, message);
        return true;
      });
    }
  }));

test('every attempt failing: one OSError listing them all, or an ExceptionGroup with allErrors', () =>
  runLoop(async (loop) => {
    const port = await deadPort();
    fakeResolver(loop, 'two.test', [v4('127.0.0.1', port), v6('::1', port)]);
    await assert.rejects(
      loop.createConnection(() => new Echo(), 'two.test', port),
      (e: Error) => {
        assert.ok(OSError.isInstance(e));
        assert.equal(
          e.message,
          `Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', ${port}), ` +
            `[Errno 111] Connect call failed ('::1', ${port}, 0, 0)`,
        );
        return true;
      },
    );
    await assert.rejects(
      loop.createConnection(() => new Echo(), 'two.test', port, { allErrors: true }),
      (e: Error) => {
        assert.ok(e instanceof ExceptionGroup);
        assert.ok(e instanceof AggregateError);
        assert.equal(e.message, 'createConnection failed (2 sub-exceptions)');
        assert.deepEqual(
          e.exceptions.map((x) => (x as NodeJS.ErrnoException).code),
          ['ECONNREFUSED', 'ECONNREFUSED'],
        );
        return true;
      },
    );
    // The same message twice: the first error itself.
    fakeResolver(loop, 'same.test', [v4('127.0.0.1', port), v4('127.0.0.1', port)]);
    await assert.rejects(
      loop.createConnection(() => new Echo(), 'same.test', port),
      (e: Error) => {
        assert.equal(e.message, `[Errno 111] Connect call failed ('127.0.0.1', ${port})`);
        return true;
      },
    );
  }));

test('without Happy Eyeballs the addresses are tried one after the other', () =>
  runLoop(async (loop) => {
    const [server, port] = await echoServer(loop, '::1');
    fakeResolver(loop, 'seq.test', [v4('127.0.0.1', port), v6('::1', port)]);
    const proto = new Recorder(loop);
    const [transport] = await loop.createConnection(() => proto, 'seq.test', port);
    assert.deepEqual(transport.getExtraInfo('peername'), ['::1', port, 0, 0]);
    transport.close();
    await settle(proto.lost);
    await closed(server);
  }));

test('Happy Eyeballs: when the first address hangs, the second one wins after the delay', { skip: !NATIVE }, () =>
  runLoop(async (loop) => {
    const [server, port] = await echoServer(loop, '127.0.0.1');
    const hole = await blackhole('127.0.0.2', port);
    try {
      fakeResolver(loop, 'he.test', [v4('127.0.0.2', port), v4('127.0.0.1', port)]);
      const proto = new Recorder(loop);
      const t0 = loop.time();
      const [transport] = await loop.createConnection(() => proto, 'he.test', port, { happyEyeballsDelay: 0.1 });
      const took = loop.time() - t0;
      assert.deepEqual(transport.getExtraInfo('peername'), ['127.0.0.1', port]);
      assert.ok(took >= 0.09 && took < 0.9, `took ${took}s`);
      transport.write(Buffer.from('won'));
      await proto.received(3);
      transport.close();
      await settle(proto.lost);
    } finally {
      hole.close();
      await closed(server);
    }
  }),
);

test('Happy Eyeballs: a failure starts the next attempt at once; families are interleaved', () =>
  runLoop(async (loop) => {
    const port = await deadPort();
    // Resolver order: two IPv6 then two IPv4. Interleaved: v6, v4, v6, v4.
    const infos = [v6('::1', port), v6('::1', port), v4('127.0.0.1', port), v4('127.0.0.1', port)];
    fakeResolver(loop, 'mix.test', infos);
    const t0 = loop.time();
    await assert.rejects(
      loop.createConnection(() => new Echo(), 'mix.test', port, { happyEyeballsDelay: 5, allErrors: true }),
      (e: Error) => {
        const where = (e as ExceptionGroup).exceptions.map((x) => (x as { address?: string }).address);
        assert.deepEqual(where, ['::1', '127.0.0.1', '::1', '127.0.0.1']);
        return true;
      },
    );
    // Refusals do not wait for the 5 s delay.
    assert.ok(loop.time() - t0 < 4);
    await assert.rejects(
      loop.createConnection(() => new Echo(), 'mix.test', port, {
        happyEyeballsDelay: 5,
        interleave: 2,
        allErrors: true,
      }),
      (e: Error) => {
        const where = (e as ExceptionGroup).exceptions.map((x) => (x as { address?: string }).address);
        assert.deepEqual(where, ['::1', '::1', '127.0.0.1', '127.0.0.1']);
        return true;
      },
    );
  }));

test('cancelling createConnection stops the attempt', { skip: !NATIVE }, () =>
  runLoop(async (loop) => {
    const hole = await blackhole('127.0.0.2');
    try {
      const task = loop.createTask(() => loop.createConnection(() => new Echo(), '127.0.0.2', hole.port));
      loop.callLater(0.05, () => task.cancel());
      await assert.rejects(settle(task), (e: Error) => CancelledError.isInstance(e));
    } finally {
      hole.close();
    }
  }),
);

test('localAddr binds the client socket; a bind failure has asyncio message', () =>
  runLoop(async (loop) => {
    const [server, port] = await echoServer(loop);
    const local = await deadPort();
    const proto = new Recorder(loop);
    const [transport] = await loop.createConnection(() => proto, '127.0.0.1', port, {
      localAddr: ['127.0.0.1', local],
    });
    assert.deepEqual(transport.getExtraInfo('sockname'), ['127.0.0.1', local]);
    const busy = portOf(server.sockets[0]!.getsockname());
    await assert.rejects(
      loop.createConnection(() => new Echo(), '127.0.0.1', port, { localAddr: ['127.0.0.1', busy] }),
      (e: Error) => {
        assert.equal((e as NodeJS.ErrnoException).code, 'EADDRINUSE');
        assert.equal(
          e.message,
          `error while attempting to bind on address ('127.0.0.1', ${busy}): address already in use`,
        );
        return true;
      },
    );
    await assert.rejects(
      loop.createConnection(() => new Echo(), '127.0.0.1', port, { localAddr: ['::1', 0] }),
      (e: Error) => {
        assert.equal(e.message, `no matching local address with family=${AF_INET} found`);
        return true;
      },
    );
    transport.close();
    await settle(proto.lost);
    await closed(server);
  }));

test('sock: a connected net.Socket or a native socket', () =>
  runLoop(async (loop) => {
    const [server, port] = await echoServer(loop);
    const raw = net.connect(port, '127.0.0.1');
    await once(raw, 'connect');
    const proto = new Recorder(loop);
    const [transport] = await loop.createConnection(() => proto, { sock: raw });
    transport.write(Buffer.from('via sock'));
    await proto.received(8);
    assert.equal(proto.text(), 'via sock');
    transport.close();
    await settle(proto.lost);
    if (NATIVE) {
      const [a, b] = native.socketpair();
      const peer = new net.Socket({ fd: b, readable: true, writable: true });
      peer.on('data', (d: Buffer) => peer.write(d));
      const p2 = new Recorder(loop);
      const [t2] = await loop.createConnection(() => p2, null, null, { sock: a });
      t2.write(Buffer.from('pair'));
      await p2.received(4);
      assert.equal(p2.text(), 'pair');
      t2.close();
      await settle(p2.lost);
      peer.destroy();
      const udp = native.socket(native.constants.AF_INET, native.constants.SOCK_DGRAM);
      await assert.rejects(
        loop.createConnection(() => new Echo(), { sock: udp }),
        /A Stream Socket was expected/,
      );
      native.close(udp);
    }
    await closed(server);
  }));

test('a protocol that the transport refuses: createConnection rejects and closes the connected socket', () =>
  runLoop(async (loop) => {
    const accepted = loop.createFuture<Recorder>();
    const server = await loop.createServer(
      () => {
        const p = new Recorder(loop);
        accepted.setResult(p);
        return p;
      },
      '127.0.0.1',
      0,
    );
    const port = portOf(server.sockets[0]!.getsockname());
    await assert.rejects(
      loop.createConnection(() => undefined as unknown as Protocol, '127.0.0.1', port),
      TypeError,
    );
    // The server's side of the connection ends: the client's socket was closed, not left open.
    const peer = await waitFor(accepted, 2);
    assert.equal(await waitFor(peer.lost, 2), null);
    await closed(server);
  }));

test('createUnixConnection: path, sock, and the errors of a missing path', (t) =>
  runLoop(async (loop) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopwork-unixc-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const p = path.join(dir, 'c.sock');
    const server = await loop.createUnixServer(() => new Echo(), p);
    const proto = new Recorder(loop);
    const [transport] = await loop.createUnixConnection(() => proto, p);
    assert.equal(transport.getExtraInfo('peername'), p);
    transport.write(Buffer.from('unix'));
    await proto.received(4);
    transport.close();
    await settle(proto.lost);
    const raw = net.connect(p);
    await once(raw, 'connect');
    const p2 = new Recorder(loop);
    const [t2] = await loop.createUnixConnection(() => p2, { sock: raw });
    t2.close();
    await settle(p2.lost);
    const [tcpServer, tcpPort] = await echoServer(loop);
    const tcp = net.connect(tcpPort, '127.0.0.1');
    await once(tcp, 'connect');
    await assert.rejects(
      loop.createUnixConnection(() => new Echo(), { sock: tcp }),
      /A UNIX Domain Stream Socket was expected/,
    );
    tcp.destroy();
    await closed(tcpServer);
    const missing = path.join(dir, 'missing.sock');
    await assert.rejects(
      loop.createUnixConnection(() => new Echo(), missing),
      (e: Error) => {
        // asyncio: FileNotFoundError(2, 'No such file or directory'), an OSError.
        assert.ok(FileNotFoundError.isInstance(e) && OSError.isInstance(e));
        assert.equal((e as NodeJS.ErrnoException).code, 'ENOENT');
        assert.equal(e.message, '[Errno 2] No such file or directory');
        return true;
      },
    );
    await closed(server);
  }));

test('createUnixConnection: a path too long for sun_path is OSError "AF_UNIX path too long" (asyncio)', () =>
  runLoop(async (loop) => {
    for (const target of [`/tmp/${'x'.repeat(103)}`, Buffer.from(`/tmp/${'x'.repeat(200)}`), `\0${'a'.repeat(108)}`]) {
      await assert.rejects(
        loop.createUnixConnection(() => new Echo(), target),
        (e: Error) => {
          assert.ok(OSError.isInstance(e), String(e));
          assert.equal(FileNotFoundError.isInstance(e), false, String(e));
          assert.equal(e.message, 'AF_UNIX path too long');
          return true;
        },
      );
    }
  }));
