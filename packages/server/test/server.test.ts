import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { inspect } from 'node:util';
import {
  BufferedProtocol,
  CancelledError,
  OSError,
  Protocol,
  RuntimeError,
  TransportSocket,
  native,
  sleep,
} from '@loopwork/server';
import type { BaseEventLoop, BaseTransport, Transport, Server } from '@loopwork/server';
import { Recorder, nodeClient, portOf, readAll, runCommand, runLoop, settle } from './helpers.js';

/** An echo protocol. */
class Echo extends Protocol {
  t: Transport | null = null;
  override connectionMade(t: BaseTransport): void {
    this.t = t as Transport;
  }
  override dataReceived(data: Buffer): void {
    this.t!.write(data);
  }
}

/** A server on 127.0.0.1 of Recorders; `nth(n)` resolves with the n-th connection's protocol. */
async function recorderServer(
  loop: BaseEventLoop,
  options: { startServing?: boolean } = {},
): Promise<{ server: Server; port: number; nth: (n: number) => Promise<Recorder> }> {
  const accepted: Recorder[] = [];
  const waiting = new Map<number, (p: Recorder) => void>();
  const server = await loop.createServer(
    () => {
      const p = new Recorder(loop);
      accepted.push(p);
      waiting.get(accepted.length)?.(p);
      return p;
    },
    '127.0.0.1',
    0,
    options,
  );
  const nth = (n: number): Promise<Recorder> =>
    accepted.length >= n ? Promise.resolve(accepted[n - 1]!) : new Promise((r) => waiting.set(n, r));
  return { server, port: portOf(server.sockets[0]!.getsockname()), nth };
}

/** Resolves after `n` loop iterations: lets a wrongly resolved waiter show itself. */
async function iterations(loop: BaseEventLoop, n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await sleep(0);
  void loop;
}

test('waitClosed blocks while a client is connected and returns once it leaves', () =>
  runLoop(async (loop) => {
    const { server, port, nth } = await recorderServer(loop);
    const client = await nodeClient(port);
    const proto = await nth(1);
    await settle(proto.made);
    const order: string[] = [];
    const waiting = loop.createTask(async () => {
      await server.waitClosed();
      order.push('waitClosed');
    });
    // Open server, one client: waits.
    client.write('x');
    await proto.received(1);
    await iterations(loop);
    assert.equal(waiting.done(), false);
    server.close();
    assert.equal(server.isServing(), false);
    // Closed server, one client left: still waits.
    client.write('y');
    await proto.received(2);
    await iterations(loop);
    assert.equal(waiting.done(), false);
    const lost = settle(proto.lost).then(() => order.push('connectionLost'));
    client.end();
    await waiting;
    await lost;
    assert.deepEqual(order, ['connectionLost', 'waitClosed']);
    // Once woken, waitClosed returns at once.
    await server.waitClosed();
    client.destroy();
  }));

test('waitClosed on an open server without clients waits for close()', () =>
  runLoop(async (loop) => {
    const { server } = await recorderServer(loop);
    const waiting = loop.createTask(() => server.waitClosed());
    await iterations(loop);
    assert.equal(waiting.done(), false);
    server.close();
    await waiting;
    server.close();
  }));

test('closeClients and abortClients end a pending waitClosed', () =>
  runLoop(async (loop) => {
    for (const how of ['closeClients', 'abortClients'] as const) {
      const { server, port, nth } = await recorderServer(loop);
      const c1 = await nodeClient(port);
      const c2 = await nodeClient(port);
      const ended = [readAll(c1), readAll(c2)];
      const [p1, p2] = [await nth(1), await nth(2)];
      await settle(p1.made);
      await settle(p2.made);
      p1.tp!.write(Buffer.from('bye'));
      server.close();
      const waiting = loop.createTask(() => server.waitClosed());
      await iterations(loop);
      assert.equal(waiting.done(), false);
      server[how]();
      await waiting;
      assert.equal(await settle(p1.lost), null);
      assert.equal(await settle(p2.lost), null);
      const [got1] = await Promise.all(ended);
      if (how === 'closeClients') assert.equal(got1!.toString(), 'bye');
      c1.destroy();
      c2.destroy();
    }
  }));

test('serveForever: a second call is refused, cancelling it closes the server', () =>
  runLoop(async (loop) => {
    const { server, port } = await recorderServer(loop, { startServing: false });
    assert.equal(server.isServing(), false);
    const forever = loop.createTask(() => server.serveForever());
    await iterations(loop);
    assert.equal(server.isServing(), true);
    await assert.rejects(server.serveForever(), (e: Error) => {
      assert.ok(RuntimeError.isInstance(e));
      assert.equal(e.message, `server ${inspect(server)} is already being awaited on serveForever()`);
      return true;
    });
    const client = await nodeClient(port);
    client.destroy();
    forever.cancel();
    await assert.rejects(settle(forever), (e: Error) => CancelledError.isInstance(e));
    assert.equal(server.isServing(), false);
    assert.deepEqual(server.sockets, []);
    await assert.rejects(server.serveForever(), /is closed/);
  }));

test('close() ends a pending serveForever with a CancelledError', () =>
  runLoop(async (loop) => {
    const { server } = await recorderServer(loop);
    const forever = loop.createTask(() => server.serveForever());
    await iterations(loop);
    server.close();
    await assert.rejects(settle(forever), (e: Error) => CancelledError.isInstance(e));
  }));

test('startServing: false binds now and accepts only once serving starts', () =>
  runLoop(async (loop) => {
    const { server, port, nth } = await recorderServer(loop, { startServing: false });
    assert.ok(port > 0);
    assert.equal(server.isServing(), false);
    if (native.nativeAvailable()) {
      // asyncio's semantics: bound but not listening, so a connection is refused.
      const refused = net.connect(port, '127.0.0.1');
      const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNREFUSED');
    }
    await server.startServing();
    await server.startServing();
    assert.equal(server.isServing(), true);
    const client = await nodeClient(port);
    client.end('late');
    const proto = await nth(1);
    await settle(proto.lost);
    assert.equal(proto.text(), 'late');
    server.close();
    await server.waitClosed();
  }));

test('sockets are read-only views, empty once closed; getLoop; inspect', () =>
  runLoop(async (loop) => {
    const { server, port } = await recorderServer(loop);
    assert.equal(server.getLoop(), loop);
    const socks = server.sockets;
    assert.equal(socks.length, 1);
    assert.ok(Object.isFrozen(socks));
    assert.ok(socks[0] instanceof TransportSocket);
    assert.deepEqual(socks[0]!.getsockname(), ['127.0.0.1', port]);
    assert.equal(socks[0]!.getpeername(), null);
    assert.equal(socks[0]!.family, 2);
    assert.equal((socks[0] as unknown as { close?: unknown }).close, undefined);
    assert.match(
      inspect(server),
      /^<Server sockets=\[<TransportSocket fd=\d+, family=2, type=1, proto=6, laddr=\('127\.0\.0\.1', \d+\)>\]>$/,
    );
    const kept = socks[0]!;
    server.close();
    assert.deepEqual(server.sockets, []);
    assert.equal(inspect(server), '<Server sockets=[]>');
    await server.waitClosed();
    // A view kept after the close acts on no socket, even one that reuses the fd's number (Python: EBADF).
    const other = await loop.createServer(() => new Protocol(), '127.0.0.1', 0);
    assert.equal(kept.fileno(), -1);
    assert.throws(
      () => kept.shutdown(native.constants.SHUT_RDWR),
      (e: unknown) => OSError.isInstance(e) && (e as { code?: string }).code === 'EBADF',
    );
    assert.throws(() => kept.setsockopt(native.constants.SOL_SOCKET, native.constants.SO_KEEPALIVE, 1), {
      code: 'EBADF',
    });
    other.close();
    await other.waitClosed();
  }));

test('await using closes the server and waits for its connections', () =>
  runLoop(async (loop) => {
    let outside: Server | null = null;
    let proto: Recorder | null = null;
    {
      let made!: (p: Recorder) => void;
      const accepted = new Promise<Recorder>((r) => (made = r));
      await using server = await loop.createServer(
        () => {
          const p = new Recorder(loop);
          made(p);
          return p;
        },
        '127.0.0.1',
        0,
      );
      outside = server;
      const client = await nodeClient(portOf(server.sockets[0]!.getsockname()));
      proto = await accepted;
      await settle(proto.made);
      // The client leaves, so that the disposal's waitClosed() can finish.
      client.end();
      client.on('end', () => client.destroy());
    }
    assert.equal(outside.isServing(), false);
    assert.deepEqual(outside.sockets, []);
    // Disposal returned only after the last connection was gone.
    assert.equal(proto.lost.done(), true);
  }));

test('garbage from clients and a throwing protocol never take the server down', () =>
  runLoop(async (loop, errors) => {
    class Strict extends Protocol {
      t: Transport | null = null;
      override connectionMade(t: BaseTransport): void {
        this.t = t as Transport;
      }
      override dataReceived(data: Buffer): void {
        // A parser that chokes on anything but JSON.
        const msg = JSON.parse(data.toString('utf8')) as { echo: string };
        this.t!.write(Buffer.from(JSON.stringify(msg)));
      }
    }
    const server = await loop.createServer(() => new Strict(), '127.0.0.1', 0);
    const port = portOf(server.sockets[0]!.getsockname());
    const clients: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      clients.push(
        (async () => {
          const c = await nodeClient(port);
          c.on('error', () => {});
          c.write(randomBytes(512 + i));
          if (i % 3 === 0) c.resetAndDestroy();
          else if (i % 3 === 1) c.end();
          else await once(c, 'end');
          c.destroy();
        })(),
      );
    }
    await Promise.all(clients);
    const ok = await nodeClient(port);
    ok.write(JSON.stringify({ echo: 'fine' }));
    const [reply] = (await once(ok, 'data')) as [Buffer];
    assert.deepEqual(JSON.parse(reply.toString()), { echo: 'fine' });
    assert.equal(server.isServing(), true);
    assert.ok(errors.length > 0);
    for (const e of errors) {
      assert.equal(e.message, 'Fatal error: protocol.dataReceived() call failed.');
      assert.ok(e.exception instanceof SyntaxError);
      assert.ok(e.transport !== undefined && e.protocol instanceof Strict);
    }
    ok.destroy();
    server.close();
    server.abortClients();
    await server.waitClosed();
  }));

test('abortClients on a connection paused for writing: connectionLost without resumeWriting (asyncio)', () =>
  runLoop(async (loop) => {
    const { server, port, nth } = await recorderServer(loop);
    const client = await nodeClient(port);
    client.pause();
    const proto = await nth(1);
    const transport = await proto.made;
    transport.setWriteBufferLimits(1000, 500);
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < 100 && transport.getWriteBufferSize() === 0; i++) transport.write(big);
    assert.deepEqual(proto.events, ['connectionMade', 'pauseWriting']);
    server.close();
    server.abortClients();
    assert.equal(await proto.lost, null);
    await iterations(loop);
    // asyncio's _force_close drops the buffer without calling resume_writing().
    assert.deepEqual(proto.events, ['connectionMade', 'pauseWriting', 'connectionLost']);
    client.destroy();
    await server.waitClosed();
  }));

test("getExtraInfo('socket') is still a view once the connection is closed (fd -1), as asyncio's extra stays", () =>
  runLoop(async (loop) => {
    const { server, port, nth } = await recorderServer(loop);
    const client = await nodeClient(port);
    const proto = await nth(1);
    const transport = await proto.made;
    client.destroy();
    await proto.lost;
    const view = transport.getExtraInfo('socket');
    assert.ok(view instanceof TransportSocket);
    assert.equal(view.fileno(), -1);
    assert.equal(view.family, 2);
    assert.deepEqual(view.getsockname(), ['127.0.0.1', port]);
    await server[Symbol.asyncDispose]();
  }));

test('BufferedProtocol: getBuffer() returning no Uint8Array is a TypeError of that connection, not an "empty buffer"', () =>
  runLoop(async (loop, errors) => {
    const lost = loop.createFuture<Error | null>();
    class NotABuffer extends BufferedProtocol {
      override getBuffer(): Uint8Array {
        return new ArrayBuffer(16) as unknown as Uint8Array;
      }
      override connectionLost(exc: Error | null): void {
        lost.setResult(exc);
      }
    }
    const server = await loop.createServer(() => new NotABuffer(), '127.0.0.1', 0);
    const client = await nodeClient(portOf(server.sockets[0]!.getsockname()));
    client.on('error', () => {});
    client.write('data');
    const exc = await lost;
    assert.ok(exc instanceof TypeError);
    assert.equal(exc.message, 'getBuffer() must return a Uint8Array, not ArrayBuffer');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.message, 'Fatal error: protocol.getBuffer() call failed.');
    client.destroy();
    await server[Symbol.asyncDispose]();
  }));

test('a protocol factory that throws closes that connection and is reported', () =>
  runLoop(async (loop, errors) => {
    let n = 0;
    const server = await loop.createServer(
      () => {
        if (++n === 1) throw new Error('factory bug');
        return new Echo();
      },
      '127.0.0.1',
      0,
    );
    const port = portOf(server.sockets[0]!.getsockname());
    const first = await nodeClient(port);
    first.on('error', () => {});
    await Promise.race([once(first, 'end'), once(first, 'close')]);
    first.destroy();
    const second = await nodeClient(port);
    second.write('ok');
    const [reply] = (await once(second, 'data')) as [Buffer];
    assert.equal(reply.toString(), 'ok');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.message, 'Error on transport creation for incoming connection');
    assert.equal((errors[0]!.exception as Error).message, 'factory bug');
    second.destroy();
    server.close();
    server.abortClients();
    await server.waitClosed();
  }));

test('a protocol factory that returns no protocol: that connection is closed and reported as the transport failing', () =>
  runLoop(async (loop, errors) => {
    const server = await loop.createServer(() => null as unknown as Protocol, '127.0.0.1', 0);
    const port = portOf(server.sockets[0]!.getsockname());
    const client = await nodeClient(port);
    client.on('error', () => {});
    await Promise.race([once(client, 'end'), once(client, 'close')]);
    client.destroy();
    assert.equal(server.isServing(), true);
    assert.equal(errors.length, 1);
    // asyncio's _accept_connection2 reports whatever fails there (the factory, the transport) with this message.
    assert.equal(errors[0]!.message, 'Error on transport creation for incoming connection');
    assert.ok(errors[0]!.exception instanceof TypeError);
    await server[Symbol.asyncDispose]();
  }));

test(
  'out of file descriptors: accepting pauses, is reported, and resumes',
  { skip: !native.nativeAvailable() || process.platform !== 'linux' },
  async () => {
    // A child process runs a server whose descriptor limit is then cut to what it uses; this process opens more
    // connections than it can accept.
    const script = fileURLToPath(new URL('./fixtures/emfile-server.ts', import.meta.url));
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['--conditions=loopwork-source', '--import', 'tsx', script], {
      stdio: ['pipe', 'pipe', 'inherit'],
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    });
    const lines: string[] = [];
    let buffered = '';
    const waiters: [(s: string) => boolean, () => void][] = [];
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      let i: number;
      while ((i = buffered.indexOf('\n')) >= 0) {
        lines.push(buffered.slice(0, i));
        buffered = buffered.slice(i + 1);
        for (const w of [...waiters]) if (w[0](lines.at(-1)!)) w[1]();
      }
    });
    const line = (pred: (s: string) => boolean): Promise<string> =>
      new Promise((resolve) => {
        const hit = lines.find(pred);
        if (hit !== undefined) return resolve(hit);
        waiters.push([pred, () => resolve(lines.find(pred)!)]);
      });
    const sockets: net.Socket[] = [];
    try {
      const [, port, , fds] = (await line((s) => s.startsWith('port '))).split(' ').map(Number) as number[];
      // A few descriptors to spare, then no more.
      const limit = fds! + 6;
      const r = await runCommand('prlimit', [`--pid=${child.pid}`, `--nofile=${limit}:${limit}`]);
      assert.equal(r.code, 0, r.stderr);
      // More connections than the child has descriptors for.
      for (let i = 0; i < 60; i++) {
        const s = net.connect(port!, '127.0.0.1');
        s.on('error', () => {});
        sockets.push(s);
      }
      const report = await line((s) => s.startsWith('error '));
      assert.match(report, /^error socket\.accept\(\) out of system resource (EMFILE|ENFILE)$/);
      // The child frees its descriptors; after the pause it accepts again.
      child.stdin.write('free\n');
      const resumed = await line((s) => s.startsWith('resumed '));
      // Paused, not spinning: a handful of reports, not one per readiness event.
      assert.ok(Number(resumed.split(' ')[1]) <= 3, resumed);
      assert.ok(!lines.some((s) => s.startsWith('crash')));
    } finally {
      for (const s of sockets) s.destroy();
      child.kill();
      await once(child, 'close');
    }
  },
);
