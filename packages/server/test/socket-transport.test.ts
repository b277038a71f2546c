import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import {
  ConnectionResetError,
  FdTransport,
  ContextVar,
  InvalidArgTypeError,
  OSError,
  RuntimeError,
  SocketTransport,
  TransportSocket,
  ValueError,
  native,
} from '@loopwork/server';
import type { BaseEventLoop, BaseTransport, Server, Transport, Protocol } from '@loopwork/server';
import {
  Recorder,
  acceptedSocket,
  STREAM_GRAMMAR,
  collectedAfterGc,
  SmallBuffers,
  nodeClient,
  portOf,
  readAll,
  runCommand,
  runLoop,
  settle,
} from './helpers.js';

/**
 * A server on `host` whose protocols are `make(loop)`: `accepted` lists them in order, `nth(n)` resolves once `n`
 * connections have their protocol.
 */
async function serve<P extends Protocol | SmallBuffers>(
  loop: BaseEventLoop,
  make: (loop: BaseEventLoop) => P,
  host = '127.0.0.1',
): Promise<{ server: Server; port: number; accepted: P[]; first: Promise<P>; nth: (n: number) => Promise<P> }> {
  const accepted: P[] = [];
  const waiting = new Map<number, (p: P) => void>();
  const nth = (n: number): Promise<P> =>
    accepted.length >= n ? Promise.resolve(accepted[n - 1]!) : new Promise<P>((r) => waiting.set(n, r));
  const server = await loop.createServer(
    () => {
      const p = make(loop);
      accepted.push(p);
      waiting.get(accepted.length)?.(p);
      return p;
    },
    host,
    0,
  );
  return { server, port: portOf(server.sockets[0]!.getsockname()), accepted, first: nth(1), nth };
}

async function closeServer(server: Server): Promise<void> {
  server.close();
  server.abortClients();
  await server.waitClosed();
}

test('protocol callbacks follow the grammar and run with no current task', () =>
  runLoop(async (loop) => {
    // The callbacks see the context the server started serving in (asyncio's handles carry it), no task.
    const request = new ContextVar<string>('request');
    request.set('main');
    const { server, port, first } = await serve(loop, (l) => {
      const r = new Recorder(l);
      r.probe = () => request.get('unset');
      return r;
    });
    request.set('changed after serving');
    const client = await nodeClient(port);
    const all = readAll(client);
    client.end('hello');
    const proto = await first;
    const exc = await settle(proto.lost);
    assert.equal(exc, null);
    assert.match(proto.grammar(), STREAM_GRAMMAR);
    assert.ok(proto.events.includes('eofReceived'));
    assert.equal(proto.text(), 'hello');
    assert.deepEqual(
      proto.tasksSeen,
      proto.tasksSeen.map(() => null),
    );
    await all;
    await closeServer(server);
  }));

/**
 * A SocketTransport on an accepted socket, closed: returns the socket, held as Node holds a closed socket until a
 * full GC runs its handle's weak callback, and weak references to the transport and its protocol.
 */
async function closedSocketTransport(loop: BaseEventLoop): Promise<{ sock: net.Socket; refs: WeakRef<object>[] }> {
  const { srv, client, sock } = await acceptedSocket();
  const proto = new Recorder(loop);
  const transport = new SocketTransport(loop, sock, proto);
  client.end('bye');
  await settle(proto.lost);
  transport.close();
  client.destroy();
  srv.close();
  return { sock, refs: [new WeakRef(transport), new WeakRef(proto)] };
}

test('a closed socket does not keep its transport and protocol alive', () =>
  runLoop(async (loop) => {
    const { sock, refs } = await closedSocketTransport(loop);
    assert.deepEqual(await collectedAfterGc(refs), [true, true], 'transport and protocol collected');
    assert.equal(sock.destroyed, true);
  }));

test('connectionMade is scheduled with callSoon: nothing is called during construction', () =>
  runLoop(async (loop) => {
    const { srv, client, sock } = await acceptedSocket();
    const proto = new Recorder(loop);
    const waiter = loop.createFuture<unknown>();
    const transport = new SocketTransport(loop, sock, proto, { waiter });
    assert.deepEqual(proto.events, []);
    await waiter;
    assert.deepEqual(proto.events, ['connectionMade']);
    transport.close();
    assert.equal(await settle(proto.lost), null);
    client.destroy();
    srv.close();
  }));

test('eofReceived returning true keeps the transport open for writing (half-close)', () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => {
      const r = new Recorder(l);
      r.keepOpen = true;
      return r;
    });
    const client = await nodeClient(port);
    const all = readAll(client);
    client.end('question');
    const proto = await first;
    await settle(proto.eof);
    const t = proto.tp!;
    assert.equal(t.isClosing(), false);
    t.write(Buffer.from('answer'));
    t.close();
    assert.equal((await all).toString(), 'answer');
    await settle(proto.lost);
    assert.match(proto.grammar(), STREAM_GRAMMAR);
    await closeServer(server);
  }));

test('write refuses what is not bytes, and anything after writeEof', () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const all = readAll(client);
    const t = await settle((await first).made);
    assert.throws(
      () => t.write('text' as unknown as Uint8Array),
      (e: Error) => {
        assert.ok(InvalidArgTypeError.isInstance(e));
        assert.match(e.message, /^data argument must be a bytes-like object, not 'str'/);
        return true;
      },
    );
    assert.throws(() => t.writelines([Buffer.from('a'), 42 as unknown as Uint8Array]), InvalidArgTypeError);
    assert.equal(t.canWriteEof(), true);
    t.write(new Uint8Array([65, 66]));
    t.writeEof();
    assert.throws(
      () => t.write(Buffer.from('x')),
      (e: Error) => {
        assert.ok(RuntimeError.isInstance(e));
        assert.equal(e.message, 'Cannot call write() after writeEof()');
        return true;
      },
    );
    assert.throws(() => t.writelines([Buffer.from('x')]), /Cannot call writelines\(\) after writeEof\(\)/);
    assert.equal((await all).toString(), 'AB');
    client.destroy();
    await closeServer(server);
  }));

test('writes after close are dropped, with a warning from the fifth on', () =>
  runLoop(async (loop) => {
    const warnings: string[] = [];
    const base = loop.logger;
    loop.logger = Object.assign(Object.create(base) as object, {
      warn: (_obj: unknown, msg: string) => warnings.push(msg),
    }) as unknown as typeof base;
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const all = readAll(client);
    const proto = await first;
    const t = await settle(proto.made);
    t.write(Buffer.from('before'));
    t.close();
    for (let i = 0; i < 4; i++) t.write(Buffer.from('after'));
    assert.deepEqual(warnings, []);
    t.write(Buffer.from('after'));
    t.writelines([Buffer.from('after')]);
    assert.deepEqual(warnings, ['socket.send() raised exception.', 'socket.send() raised exception.']);
    assert.equal((await all).toString(), 'before');
    assert.equal(await settle(proto.lost), null);
    loop.logger = base;
    await closeServer(server);
  }));

test('writelines sends every buffer, in order', () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const all = readAll(client);
    const t = await settle((await first).made);
    t.writelines([Buffer.from('a'), Buffer.alloc(0), new Uint8Array([98]), Buffer.from('cd')]);
    t.writelines(new Set([Buffer.from('e')]));
    t.close();
    assert.equal((await all).toString(), 'abcde');
    await closeServer(server);
  }));

test('close() flushes what is buffered before closing, writes made meanwhile too (as asyncio); abort() drops it', () =>
  runLoop(async (loop) => {
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    const { server, port, nth } = await serve(loop, (l) => new Recorder(l));
    const c1 = await nodeClient(port);
    const all1 = readAll(c1);
    const c2 = await nodeClient(port);
    const all2 = readAll(c2);
    const [p1, p2] = [await nth(1), await nth(2)];
    const t1 = await settle(p1.made);
    const t2 = await settle(p2.made);
    t1.write(big);
    assert.ok(t1.getWriteBufferSize() > 0, 'the kernel took 4 MiB at once');
    t1.close();
    assert.equal(t1.isClosing(), true);
    t1.close();
    t1.write(Buffer.from('tail'));
    t1.writelines([Buffer.from('!')]);
    t2.write(big);
    t2.abort();
    assert.equal(t2.isClosing(), true);
    const got1 = await all1;
    assert.equal(got1.length, big.length + 5);
    assert.equal(got1.subarray(big.length).toString(), 'tail!');
    assert.ok((await all2).length < big.length);
    assert.equal(await settle(p1.lost), null);
    assert.equal(await settle(p2.lost), null);
    assert.equal(p1.events.filter((e) => e === 'connectionLost').length, 1);
    assert.equal(p2.events.filter((e) => e === 'connectionLost').length, 1);
    await closeServer(server);
  }));

test('pauseReading holds data back until resumeReading', () =>
  runLoop(async (loop) => {
    const { server, port, nth } = await serve(loop, (l) => new Recorder(l));
    const c1 = await nodeClient(port);
    const p1 = await nth(1);
    const t1 = await settle(p1.made);
    assert.equal(t1.isReading(), true);
    t1.pauseReading();
    t1.pauseReading();
    assert.equal(t1.isReading(), false);
    await new Promise<void>((r) => c1.write('held', () => r()));
    // A barrier: an echo on a second connection, so the server has polled the first one's bytes meanwhile.
    const c2 = await nodeClient(port);
    const p2 = await nth(2);
    const t2 = await settle(p2.made);
    c2.write('ping');
    await p2.received(4);
    t2.write(Buffer.from('pong'));
    await once(c2, 'data');
    assert.deepEqual(p1.chunks, []);
    t1.resumeReading();
    t1.resumeReading();
    await p1.received(4);
    assert.equal(p1.text(), 'held');
    assert.equal(t1.isReading(), true);
    c1.destroy();
    c2.destroy();
    await closeServer(server);
  }));

test('BufferedProtocol gets the bytes copied into its buffers, in order', () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => new SmallBuffers(l, 4));
    const client = await nodeClient(port);
    client.end('abcdefghij');
    const proto = await first;
    assert.equal(await settle(proto.lost), null);
    assert.equal(Buffer.concat(proto.received).toString(), 'abcdefghij');
    assert.ok(proto.received.every((b) => b.length <= 4));
    assert.equal(proto.events[0], 'connectionMade');
    assert.equal(proto.events.at(-1), 'connectionLost');
    assert.equal(proto.events.at(-2), 'eofReceived');
    assert.ok(proto.events.includes('getBuffer(-1)'));
    client.destroy();
    await closeServer(server);
  }));

test('BufferedProtocol: pausing inside bufferUpdated keeps the rest of the chunk for later', () =>
  runLoop(async (loop) => {
    class PauseOnce extends SmallBuffers {
      paused = false;
      resumed = loop.createFuture<void>();
      override bufferUpdated(n: number): void {
        super.bufferUpdated(n);
        if (!this.paused) {
          this.paused = true;
          this.tp!.pauseReading();
          loop.callSoon(() => {
            this.events.push('resume');
            this.tp!.resumeReading();
          });
        }
      }
    }
    const { server, port, first } = await serve(loop, (l) => new PauseOnce(l, 3));
    const client = await nodeClient(port);
    client.end('0123456789');
    const proto = await first;
    await settle(proto.lost);
    assert.equal(Buffer.concat(proto.received).toString(), '0123456789');
    const updates = proto.events.filter((e) => e === 'bufferUpdated' || e === 'resume');
    assert.equal(updates[0], 'bufferUpdated');
    assert.equal(updates[1], 'resume');
    client.destroy();
    await closeServer(server);
  }));

test('BufferedProtocol: an empty buffer from getBuffer() is a fatal error of that connection (RuntimeError)', () =>
  runLoop(async (loop, errors) => {
    const { server, port, first } = await serve(loop, (l) => new SmallBuffers(l, 0));
    const client = await nodeClient(port);
    // The server ends the connection: a FIN, or a reset when the bytes were left unread in its socket.
    client.on('error', () => {});
    const ended = new Promise((resolve) => {
      client.once('end', resolve);
      client.once('close', resolve);
    });
    client.write('data');
    const proto = await first;
    const lost = (await settle(proto.lost)) as Error;
    assert.ok(RuntimeError.isInstance(lost));
    assert.equal(lost.message, 'getBuffer() returned an empty buffer');
    assert.deepEqual(proto.received, []);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.message, 'Fatal error: protocol.getBuffer() call failed.');
    assert.equal(errors[0]!.exception, lost);
    assert.equal(errors[0]!.protocol, proto);
    await ended;
    client.destroy();
    assert.equal(server.isServing(), true);
    await closeServer(server);
  }));

test('flow control: a slow reader keeps the write buffer near the high-water mark', () =>
  runLoop(async (loop) => {
    const CHUNK = 16 * 1024;
    const TOTAL = 16 * 1024 * 1024;
    class Pump extends Recorder {
      sent = 0;
      paused = false;
      maxBuffered = 0;
      pauses = 0;
      resumes = 0;
      firstPause = loop.createFuture<void>();
      override connectionMade(t: BaseTransport): void {
        super.connectionMade(t);
        (t as Transport).setWriteBufferLimits(64 * 1024, 16 * 1024);
        this.pump();
      }
      pump(): void {
        const t = this.tp!;
        while (!this.paused && this.sent < TOTAL) {
          t.write(Buffer.alloc(CHUNK, 1));
          this.sent += CHUNK;
          this.maxBuffered = Math.max(this.maxBuffered, t.getWriteBufferSize());
        }
        if (this.sent >= TOTAL) t.close();
      }
      override pauseWriting(): void {
        super.pauseWriting();
        this.pauses++;
        this.paused = true;
        if (!this.firstPause.done()) this.firstPause.setResult(undefined);
      }
      override resumeWriting(): void {
        super.resumeWriting();
        this.resumes++;
        assert.ok(this.tp!.getWriteBufferSize() <= 16 * 1024);
        this.paused = false;
        loop.callSoon(() => this.pump());
      }
    }
    const { server, port, first } = await serve(loop, (l) => new Pump(l));
    const client = await nodeClient(port);
    client.pause();
    const proto = await first;
    await settle(proto.firstPause);
    // Nothing was read yet: the server buffered at most the high-water mark plus one chunk.
    assert.ok(proto.sent < TOTAL);
    assert.ok(proto.maxBuffered <= 64 * 1024 + CHUNK, `buffered ${proto.maxBuffered}`);
    let got = 0;
    client.on('data', (d: Buffer) => {
      got += d.length;
      // Read slowly: a pause after each chunk, resumed by the next loop iteration.
      client.pause();
      setImmediate(() => client.resume());
    });
    client.resume();
    await once(client, 'end');
    assert.equal(got, TOTAL);
    assert.ok(proto.pauses >= 1 && proto.resumes >= 1);
    assert.ok(proto.maxBuffered <= 64 * 1024 + CHUNK, `buffered ${proto.maxBuffered}`);
    const flow = proto.events.filter((e) => e === 'pauseWriting' || e === 'resumeWriting');
    flow.forEach((e, i) => assert.equal(e, i % 2 === 0 ? 'pauseWriting' : 'resumeWriting'));
    client.destroy();
    await closeServer(server);
  }));

test('setWriteBufferLimits validates, getWriteBufferLimits reports', () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const t = await settle((await first).made);
    assert.deepEqual(t.getWriteBufferLimits(), [16 * 1024, 64 * 1024]);
    t.setWriteBufferLimits(100);
    assert.deepEqual(t.getWriteBufferLimits(), [25, 100]);
    t.setWriteBufferLimits(null, 10);
    assert.deepEqual(t.getWriteBufferLimits(), [10, 40]);
    assert.throws(
      () => t.setWriteBufferLimits(1, 2),
      (e: Error) => {
        assert.ok(ValueError.isInstance(e));
        assert.equal(e.message, 'high (1) must be >= low (2) must be >= 0');
        return true;
      },
    );
    assert.equal(t.getWriteBufferSize(), 0);
    client.destroy();
    await closeServer(server);
  }));

test('an exception in a protocol callback goes to the exception handler and aborts that connection only', () =>
  runLoop(async (loop, errors) => {
    class Fragile extends Recorder {
      override dataReceived(data: Buffer): void {
        super.dataReceived(data);
        if (data.includes('boom')) throw new Error('protocol bug');
        this.tp!.write(data);
      }
    }
    const { server, port, accepted } = await serve(loop, (l) => new Fragile(l));
    const bad = await nodeClient(port);
    const good = await nodeClient(port);
    // The server aborts the connection: the client (half-open allowed) sees its end.
    const badEnded = once(bad, 'end');
    bad.write('boom');
    await badEnded;
    bad.destroy();
    good.write('still here');
    const [echo] = (await once(good, 'data')) as [Buffer];
    assert.equal(echo.toString(), 'still here');
    assert.equal(errors.length, 1);
    const ctx = errors[0]!;
    assert.equal(ctx.message, 'Fatal error: protocol.dataReceived() call failed.');
    assert.equal((ctx.exception as Error).message, 'protocol bug');
    assert.ok(ctx.transport instanceof SocketTransport || ctx.transport instanceof FdTransport);
    assert.ok(accepted.includes(ctx.protocol as Fragile));
    const broken = ctx.protocol as Fragile;
    assert.equal(((await settle(broken.lost)) as Error).message, 'protocol bug');
    assert.match(broken.grammar(), STREAM_GRAMMAR);
    assert.equal(server.isServing(), true);
    good.destroy();
    await closeServer(server);
  }));

test('getExtraInfo gives asyncio address shapes, a socket view, and defaults', () =>
  runLoop(async (loop) => {
    for (const host of ['127.0.0.1', '::1']) {
      const { server, port, first } = await serve(loop, (l) => new Recorder(l), host);
      const client = await nodeClient(port, host);
      const t = await settle((await first).made);
      const peer = t.getExtraInfo('peername');
      const name = t.getExtraInfo('sockname');
      if (host === '::1') {
        assert.deepEqual(name, ['::1', port, 0, 0]);
        assert.deepEqual(peer, ['::1', client.localPort, 0, 0]);
      } else {
        assert.deepEqual(name, ['127.0.0.1', port]);
        assert.deepEqual(peer, ['127.0.0.1', client.localPort]);
      }
      const view = t.getExtraInfo('socket') as TransportSocket;
      assert.ok(view instanceof TransportSocket);
      assert.deepEqual(view.getsockname(), name);
      assert.deepEqual(view.getpeername(), peer);
      assert.ok(view.fileno() > 0);
      assert.equal(view.type, 1);
      assert.equal(t.getExtraInfo('peercert', null), null);
      assert.equal(t.getExtraInfo('nothing', 'dflt'), 'dflt');
      client.destroy();
      await closeServer(server);
      // Addresses stay readable after the connection is gone, as asyncio reads them up front.
      assert.deepEqual(t.getExtraInfo('peername'), peer);
    }
  }));

test('TCP_NODELAY is on, and inspect shows the state', { skip: !native.nativeAvailable() }, () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const proto = await first;
    const t = await settle(proto.made);
    const fd = (t.getExtraInfo('socket') as TransportSocket).fileno();
    const C = native.constants;
    assert.equal(native.getsockopt(fd, C.IPPROTO_TCP, C.TCP_NODELAY), 1);
    // FdTransport on the fast path, SocketTransport with LOOPWORK_TRANSPORT=socket: the same format.
    const name = t.constructor.name;
    assert.equal(inspect(t), `<${name} fd=${fd} read=polling write=<idle, bufsize=0>>`);
    t.pauseReading();
    assert.equal(inspect(t), `<${name} fd=${fd} read=idle write=<idle, bufsize=0>>`);
    t.close();
    assert.match(inspect(t), new RegExp(`^<${name} closing fd=\\d+`));
    await settle(proto.lost);
    assert.equal(inspect(t), `<${name} closed fd=${fd}>`);
    client.destroy();
    await closeServer(server);
  }),
);

test('setProtocol switches the protocol that receives data', () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const p1 = await first;
    const t = await settle(p1.made);
    client.write('one');
    await p1.received(3);
    const p2 = new Recorder(loop);
    t.setProtocol(p2);
    assert.equal(t.getProtocol(), p2);
    client.end('two');
    await settle(p2.lost);
    assert.equal(p1.text(), 'one');
    assert.equal(p2.text(), 'two');
    assert.deepEqual(p1.events, ['connectionMade', 'dataReceived']);
    await closeServer(server);
  }));

test('_detach hands the socket over: the old transport never calls its protocol again', () =>
  runLoop(async (loop) => {
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const p1 = await first;
    const t = (await settle(p1.made)) as SocketTransport;
    const sock = t._detach();
    assert.ok(sock instanceof net.Socket);
    assert.equal(t.isClosing(), true);
    assert.throws(() => t._detach(), RuntimeError);
    const p2 = new Recorder(loop);
    const t2 = new SocketTransport(loop, sock, p2);
    client.end('after');
    await settle(p2.lost);
    assert.equal(p2.text(), 'after');
    assert.deepEqual(p1.events, ['connectionMade']);
    assert.equal(t2.isClosing(), true);
    await closeServer(server);
  }));

test('a peer reset reaches connectionLost with the error, once', () =>
  runLoop(async (loop, errors) => {
    const { server, port, first } = await serve(loop, (l) => new Recorder(l));
    const client = await nodeClient(port);
    const proto = await first;
    await settle(proto.made);
    client.resetAndDestroy();
    const exc = await settle(proto.lost);
    assert.equal((exc as NodeJS.ErrnoException).code, 'ECONNRESET');
    // As asyncio has it: ConnectionResetError('[Errno 104] Connection reset by peer'), an OSError.
    assert.ok(ConnectionResetError.isInstance(exc) && OSError.isInstance(exc));
    assert.equal((exc as Error).message, '[Errno 104] Connection reset by peer');
    proto.tp!.close();
    proto.tp!.abort();
    assert.equal(proto.events.filter((e) => e === 'connectionLost').length, 1);
    // A reset is the network's business, not a bug: nothing for the exception handler.
    assert.deepEqual(errors, []);
    await closeServer(server);
  }));

test('protocol callbacks set context variables in a context of their own transport (made before any was in use)', async () => {
  const script = fileURLToPath(new URL('./fixtures/protocol-context.ts', import.meta.url));
  const r = await runCommand(process.execPath, ['--conditions=loopwork-source', '--import', 'tsx', script], {
    timeoutMs: 60000,
  });
  assert.equal(r.code, 0, r.stderr);
  // As in asyncio, a transport's reads run in one context, a copy of the one it was made in: a value set on one
  // read is seen by the next read of that transport, and by nothing else.
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1)!), {
    'tcp1 read 1 sees': 'none',
    'tcp2 read 1 sees': 'none',
    'tcp1 read 2 sees': 'tcp1',
    'udp read 1 sees': 'none',
    'udp read 2 sees': 'udp',
    'top level': 'none',
  });
});
