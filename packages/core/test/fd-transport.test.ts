/**
 * FdTransport: the stream transport straight on a socket fd. Real TCP and Unix sockets: the transport's side is a
 * native socket, the peer a Node socket (or another FdTransport), all in this process.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { inspect } from 'node:util';
import {
  BrokenPipeError,
  BufferedProtocol,
  ConnectionError,
  ConnectionResetError,
  ContextVar,
  FdTransport,
  OSError,
  Protocol,
  RuntimeError,
  TransportSocket,
  fdTransportEnabled,
  isBufferedProtocol,
  newEventLoop,
  native,
  sleep,
} from '@loopwork/core';
import type { BaseEventLoop, BaseTransport, Transport } from '@loopwork/core';
import { Recorder, STREAM_GRAMMAR, runLoop, settle } from './helpers.js';

const NATIVE = native.nativeAvailable();
const skip = !NATIVE;
const MiB = 1024 * 1024;

/** A listening Node server on 127.0.0.1 (or a Unix path), closed when the test ends. */
async function nodeServer(t: TestContext, path?: string): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true });
  if (path === undefined) srv.listen(0, '127.0.0.1');
  else srv.listen(path);
  await once(srv, 'listening');
  t.after(() => srv.close());
  return srv;
}

/** A native socket connected to `srv`, and the Node socket the server accepted for it. */
async function connectTo(t: TestContext, srv: net.Server): Promise<{ fd: number; peer: net.Socket }> {
  const address = srv.address();
  const unix = typeof address === 'string';
  const fd = native.socket(unix ? native.constants.AF_UNIX : native.constants.AF_INET, native.constants.SOCK_STREAM);
  const accepted = once(srv, 'connection') as Promise<[net.Socket]>;
  native.connect(fd, unix ? address : ['127.0.0.1', (address as net.AddressInfo).port]);
  // The server accepts once the handshake is complete: the client side is connected by then.
  const [peer] = await accepted;
  peer.on('error', () => undefined);
  t.after(() => peer.destroy());
  assert.equal(native.getSocketError(fd), 0);
  return { fd, peer };
}

/** An FdTransport with a Recorder on a fresh TCP connection; resolves once connectionMade has run. */
async function tcpTransport(
  t: TestContext,
  loop: BaseEventLoop,
  srv?: net.Server,
): Promise<{ transport: FdTransport; proto: Recorder; peer: net.Socket; fd: number }> {
  const server = srv ?? (await nodeServer(t));
  const { fd, peer } = await connectTo(t, server);
  const proto = new Recorder(loop);
  const waiter = loop.createFuture<unknown>();
  const transport = new FdTransport(loop, fd, proto, { waiter });
  await waiter;
  return { transport, proto, peer, fd };
}

/** Everything a Node socket sends until it ends or closes. */
function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => {
    const finish = (): void => resolve(Buffer.concat(chunks));
    s.once('end', finish);
    s.once('close', finish);
  });
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function fdIsOpen(fd: number): boolean {
  try {
    native.getSocketType(fd);
    return true;
  } catch {
    return false;
  }
}

describe('FdTransport: the protocol grammar', { skip }, () => {
  test('connectionMade, data, EOF, connectionLost: in order, with no current task, in the context it was made in', (t) =>
    runLoop(async (loop, errors) => {
      const server = await nodeServer(t);
      const { fd, peer } = await connectTo(t, server);
      const v = new ContextVar<string>('v', { default: 'unset' });
      const proto = new Recorder(loop);
      proto.probe = () => v.get();
      v.set('made-here');
      const transport = new FdTransport(loop, fd, proto);
      v.set('changed-later');
      assert.deepEqual(proto.events, [], 'connectionMade is scheduled, not called');
      await settle(proto.made);
      peer.write('hello ');
      await proto.received(6);
      peer.end('world');
      await settle(proto.eof);
      assert.equal(await settle(proto.lost), null);
      assert.equal(proto.text(), 'hello world');
      assert.match(proto.grammar(), STREAM_GRAMMAR);
      assert.ok(
        proto.tasksSeen.every((task) => task === null),
        'no current task in protocol callbacks',
      );
      assert.ok(
        proto.probed.every((s) => s === 'made-here'),
        `contexts: ${proto.probed.join()}`,
      );
      assert.equal(transport.isClosing(), true);
      assert.equal(fdIsOpen(fd), false, 'the fd is closed');
      assert.deepEqual(errors, []);
    }));

  test("a protocol callback's context ends with it: Node's callbacks that follow run in the root context", (t) =>
    runLoop(async (loop) => {
      const server = await nodeServer(t);
      const { fd, peer } = await connectTo(t, server);
      const v = new ContextVar<string>('v', { default: 'root' });
      v.set('creator');
      const after: Promise<string>[] = [];
      const proto = new Recorder(loop);
      proto.probe = () => {
        after.push(new Promise((resolve) => setImmediate(() => resolve(v.get()))));
        return v.get();
      };
      new FdTransport(loop, fd, proto);
      await settle(proto.made);
      peer.write('x');
      await proto.received(1);
      peer.end();
      await settle(proto.lost);
      assert.deepEqual([...new Set(proto.probed)], ['creator']);
      assert.deepEqual([...new Set(await Promise.all(after))], ['root']);
      assert.equal(v.get(), 'creator');
    }));

  test('write, writelines, extra info, inspect and TCP_NODELAY', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, peer, fd } = await tcpTransport(t, loop);
      const C = native.constants;
      assert.equal(native.getsockopt(fd, C.IPPROTO_TCP, C.TCP_NODELAY), 1);
      const sockname = transport.getExtraInfo('sockname');
      const peername = transport.getExtraInfo('peername');
      assert.deepEqual(sockname, ['127.0.0.1', peer.remotePort]);
      assert.deepEqual(peername, ['127.0.0.1', peer.localPort]);
      const view = transport.getExtraInfo('socket') as TransportSocket;
      assert.ok(view instanceof TransportSocket);
      assert.equal(view.fileno(), fd);
      assert.deepEqual(view.getpeername(), peername);
      assert.equal(transport.getExtraInfo('nothing', 'dflt'), 'dflt');
      assert.equal(inspect(transport), `<FdTransport fd=${fd} read=polling write=<idle, bufsize=0>>`);
      transport.pauseReading();
      assert.equal(inspect(transport), `<FdTransport fd=${fd} read=idle write=<idle, bufsize=0>>`);
      transport.resumeReading();
      const all = readAll(peer);
      transport.write(Buffer.from('one '));
      transport.writelines([Buffer.from('two '), new Uint8Array(0), Buffer.from('three')]);
      assert.throws(() => transport.write('str' as never), TypeError);
      transport.writeEof();
      assert.throws(() => transport.write(Buffer.from('x')), RuntimeError);
      assert.equal((await all).toString(), 'one two three');
      transport.close();
      assert.match(inspect(transport), /^<FdTransport closing fd=\d+/);
      await settle(proto.lost);
      assert.equal(inspect(transport), `<FdTransport closed fd=${fd}>`);
      assert.equal(view.fileno(), -1);
      assert.deepEqual(view.getpeername(), peername, 'addresses stay readable after close');
      assert.equal(inspect(view), '<TransportSocket [closed]>');
    }));

  test('the fd is registered: addReader refuses it while the transport is open', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, fd } = await tcpTransport(t, loop);
      assert.throws(() => loop.addReader(fd, () => undefined), /is used by transport <FdTransport/);
      transport.close();
      await settle(proto.lost);
    }));

  test('an exception in dataReceived goes to the exception handler and aborts that connection', (t) =>
    runLoop(async (loop, errors) => {
      const server = await nodeServer(t);
      const { fd, peer } = await connectTo(t, server);
      class Fragile extends Recorder {
        override dataReceived(data: Buffer): void {
          super.dataReceived(data);
          throw new Error('protocol bug');
        }
      }
      const proto = new Fragile(loop);
      const transport = new FdTransport(loop, fd, proto);
      await settle(proto.made);
      const ended = once(peer, 'end');
      peer.write('boom');
      assert.equal(((await settle(proto.lost)) as Error).message, 'protocol bug');
      await ended;
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.message, 'Fatal error: protocol.dataReceived() call failed.');
      assert.equal(errors[0]!.transport, transport);
      assert.equal(errors[0]!.protocol, proto);
    }));
});

describe('FdTransport: closing', { skip }, () => {
  test('half-close: the peer ends, the protocol keeps writing; writeEof then ends the connection', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, peer } = await tcpTransport(t, loop);
      proto.keepOpen = true;
      const all = readAll(peer);
      peer.end('question');
      await settle(proto.eof);
      assert.equal(transport.isClosing(), false);
      transport.write(Buffer.from('answer'));
      transport.writeEof();
      // Both directions have ended: the connection is over, as with a Node socket.
      assert.equal(await settle(proto.lost), null);
      assert.equal((await all).toString(), 'answer');
      assert.equal(proto.text(), 'question');
      assert.match(proto.grammar(), STREAM_GRAMMAR);
    }));

  test('writeEof first: the peer sees the end and can still send', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, peer } = await tcpTransport(t, loop);
      const ended = once(peer, 'end');
      peer.resume();
      transport.write(Buffer.from('bye'));
      transport.writeEof();
      transport.writeEof(); // idempotent
      await ended;
      peer.write('still talking');
      await proto.received(13);
      peer.end();
      assert.equal(await settle(proto.lost), null);
      assert.equal(proto.text(), 'still talking');
    }));

  test('close flushes the buffer first, writes made meanwhile too (as asyncio); abort drops it', (t) =>
    runLoop(async (loop) => {
      const server = await nodeServer(t);
      const big = randomBytes(8 * MiB);
      {
        const { transport, proto, peer } = await tcpTransport(t, loop, server);
        const all = readAll(peer);
        transport.write(big);
        assert.ok(transport.getWriteBufferSize() > 0, 'the kernel does not take 8 MiB at once');
        transport.close();
        transport.close(); // idempotent
        transport.write(Buffer.from('tail'));
        assert.ok((await all).equals(Buffer.concat([big, Buffer.from('tail')])));
        assert.equal(await settle(proto.lost), null);
        transport.write(Buffer.from('dropped'));
        assert.equal(transport.getWriteBufferSize(), 0);
      }
      {
        const { transport, proto, peer } = await tcpTransport(t, loop, server);
        peer.pause();
        transport.write(big);
        transport.abort();
        assert.equal(transport.getWriteBufferSize(), 0);
        assert.equal(await settle(proto.lost), null);
        const all = readAll(peer);
        peer.resume();
        assert.ok((await all).length < big.length, 'aborted: the buffer was dropped');
      }
    }));

  test('a peer reset reaches connectionLost as asyncio reports it: ConnectionResetError, [Errno 104]', (t) =>
    runLoop(async (loop) => {
      const { proto, peer } = await tcpTransport(t, loop);
      peer.resetAndDestroy();
      const lost = await settle(proto.lost);
      assert.ok(ConnectionResetError.isInstance(lost) && OSError.isInstance(lost) && ConnectionError.isInstance(lost));
      const err = lost as Error & { code?: string; syscall?: string; errno?: number };
      assert.equal(err.name, 'ConnectionResetError');
      assert.equal(err.message, '[Errno 104] Connection reset by peer');
      assert.equal(err.code, 'ECONNRESET');
      assert.equal(err.errno, -104);
      assert.equal(err.syscall, 'read');
      assert.equal((err.cause as Error).message, 'read ECONNRESET');
      assert.match(proto.grammar(), /^connectionMade,connectionLost$/);
    }));

  test('a write refused by the kernel is reported from a callback; closing right after it closes cleanly', (t) =>
    runLoop(async (loop) => {
      const dir = `/tmp/loopwork-fdt-${process.pid}-${Date.now()}.sock`;
      const server = await nodeServer(t, dir);
      {
        const { fd, peer } = await connectTo(t, server);
        const proto = new Recorder(loop);
        proto.keepOpen = true;
        new FdTransport(loop, fd, proto);
        await settle(proto.made);
        peer.destroy(); // a Unix peer that is gone: the next send fails with EPIPE at once
        await settle(proto.eof);
        proto.tp!.write(Buffer.from('late'));
        assert.equal(proto.tp!.isClosing(), false, 'reported later, as a Node socket does');
        const err = (await settle(proto.lost)) as Error & { code?: string };
        assert.ok(BrokenPipeError.isInstance(err), `${err.name}: ${err.message}`);
        assert.equal(err.message, '[Errno 32] Broken pipe');
        assert.equal(err.code, 'EPIPE');
      }
      {
        const { fd, peer } = await connectTo(t, server);
        const proto = new Recorder(loop);
        proto.keepOpen = true;
        new FdTransport(loop, fd, proto);
        await settle(proto.made);
        peer.destroy();
        await settle(proto.eof);
        proto.tp!.write(Buffer.from('late'));
        proto.tp!.close();
        assert.equal(await settle(proto.lost), null);
      }
    }));

  test('closing the loop closes the fds of the transports still open', (t) => {
    let fd = -1;
    return (async () => {
      const server = await nodeServer(t);
      const loop = newEventLoop();
      await loop.runUntilComplete(async () => {
        const r = await tcpTransport(t, loop, server);
        fd = r.fd;
      });
      assert.equal(fdIsOpen(fd), true);
      loop.close();
      assert.equal(fdIsOpen(fd), false);
    })();
  });
});

describe('FdTransport: flow control and volume', { skip }, () => {
  test('a slow reader: pauseWriting keeps the buffer bounded, resumeWriting follows the drain', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, peer } = await tcpTransport(t, loop);
      transport.setWriteBufferLimits(64 * 1024, 16 * 1024);
      peer.pause();
      const chunk = Buffer.alloc(16 * 1024, 'z');
      let written = 0;
      let maxBuffered = 0;
      let resumed = loop.createFuture<void>();
      let paused = false;
      let all: Promise<Buffer> | null = null;
      class Writer extends Recorder {
        override pauseWriting(): void {
          super.pauseWriting();
          paused = true;
        }
        override resumeWriting(): void {
          super.resumeWriting();
          paused = false;
          if (!resumed.done()) resumed.setResult(undefined);
        }
      }
      const writer = new Writer(loop);
      transport.setProtocol(writer);
      // Write until the transport says stop, 32 times over: the buffer never grows past high + one chunk.
      for (let round = 0; round < 32; round++) {
        while (!paused) {
          transport.write(chunk);
          written += chunk.length;
          maxBuffered = Math.max(maxBuffered, transport.getWriteBufferSize());
        }
        if (round === 0) {
          all = readAll(peer);
          peer.resume();
        }
        await resumed;
        resumed = loop.createFuture<void>();
        assert.ok(transport.getWriteBufferSize() <= 16 * 1024);
      }
      assert.ok(maxBuffered <= 64 * 1024 + chunk.length, `buffered up to ${maxBuffered}`);
      const pauses = writer.events.filter((e) => e === 'pauseWriting').length;
      assert.equal(pauses, 32);
      assert.equal(writer.events.filter((e) => e === 'resumeWriting').length, 32);
      transport.close();
      await settle(writer.lost);
      // close() flushed everything: the peer gets every byte, then the end.
      assert.equal((await all!).length, written);
      void proto;
    }));

  test('pauseReading stops delivery; the peer is slowed by the kernel; resumeReading delivers the rest', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, peer } = await tcpTransport(t, loop);
      transport.pauseReading();
      transport.pauseReading(); // idempotent
      assert.equal(transport.isReading(), false);
      const data = randomBytes(4 * MiB);
      let drained = peer.write(data);
      // The kernel buffers fill: Node's socket has to keep some of it.
      while (drained) drained = peer.write(Buffer.alloc(0));
      assert.ok(peer.writableLength > 0);
      assert.equal(proto.size, 0);
      transport.resumeReading();
      await proto.received(data.length);
      assert.ok(Buffer.concat(proto.chunks).equals(data));
      transport.close();
      await settle(proto.lost);
    }));

  test('kept chunks stay intact: large reads are 4 KiB-aligned views of a shared slab, mid-size ones copies in a shared arena, small ones copies', (t) =>
    runLoop(async (loop) => {
      // Two connections read into the same slab, in turns; every chunk is kept until the end, then checked.
      const srv = await nodeServer(t);
      const a = await tcpTransport(t, loop, srv);
      const b = await tcpTransport(t, loop, srv);
      const sent: [Buffer[], Buffer[]] = [[], []];
      const peers = [a.peer, b.peer];
      for (let round = 0; round < 6; round++) {
        a.transport.pauseReading();
        b.transport.pauseReading();
        for (let i = 0; i < 2; i++) {
          // Big bursts while paused (reads of up to 256 KiB once resumed), then small messages one by one.
          const burst = randomBytes(768 * 1024);
          sent[i]!.push(burst);
          peers[i]!.write(burst);
        }
        await sleep(0.02);
        a.transport.resumeReading();
        b.transport.resumeReading();
        for (const [i, proto] of [a.proto, b.proto].entries()) {
          await proto.received(sent[i]!.reduce((n, c) => n + c.length, 0));
        }
        for (let k = 0; k < 20; k++) {
          for (const [i, proto] of [a.proto, b.proto].entries()) {
            // Mostly under 3 KiB (Node's pool), every fourth between 5 and 30 KiB (the copy arena).
            const size = k % 4 === 3 ? 5000 + ((k * 7919 + round * 613) % 25000) : 1 + ((k * 997 + round * 131) % 3000);
            const small = randomBytes(size);
            sent[i]!.push(small);
            peers[i]!.write(small);
            await proto.received(sent[i]!.reduce((n, c) => n + c.length, 0));
          }
        }
      }
      const large: Buffer[] = [];
      const mid: Buffer[] = [];
      for (const [i, proto] of [a.proto, b.proto].entries()) {
        assert.ok(Buffer.concat(proto.chunks).equals(Buffer.concat(sent[i]!)), `connection ${i}: bytes changed`);
        for (const chunk of proto.chunks) {
          if (chunk.length <= 4 * 1024) {
            // A copy from Node's pool: it pins no more than Node's own reads do.
            assert.ok(chunk.buffer.byteLength <= Math.max(Buffer.poolSize, chunk.length), `${chunk.length} pins more`);
          } else if (chunk.length <= 32 * 1024) {
            // A copy in a 64 KiB arena shared with the next mid-size reads: never the read slab.
            assert.ok(chunk.buffer.byteLength <= 64 * 1024, `${chunk.length} pins more than the arena`);
            mid.push(chunk);
          } else {
            assert.ok(chunk.buffer.byteLength <= 16 * chunk.length, `${chunk.length} pins more than 16 times it`);
            // Read where the kernel's copy is fastest (see fd-transport.ts).
            assert.equal(native.pageOffset(chunk), 0, `a read of ${chunk.length} bytes is not 4 KiB-aligned`);
            large.push(chunk);
          }
        }
      }
      // Large reads share slabs, mid-size copies share arenas: far fewer allocations than reads.
      assert.ok(large.length >= 4, `only ${large.length} large reads`);
      assert.ok(new Set(large.map((c) => c.buffer)).size < large.length);
      assert.ok(mid.length >= 4, `only ${mid.length} mid-size reads`);
      assert.ok(new Set(mid.map((c) => c.buffer)).size < mid.length);
      a.transport.close();
      b.transport.close();
      await settle(a.proto.lost);
      await settle(b.proto.lost);
    }));

  test('after mid-size reads (straight into the arena), a burst is read in large pieces again', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, peer } = await tcpTransport(t, loop);
      const sent: Buffer[] = [];
      for (let k = 0; k < 8; k++) {
        const msg = randomBytes(10 * 1024);
        sent.push(msg);
        peer.write(msg);
        await proto.received(sent.reduce((n, c) => n + c.length, 0));
      }
      const midChunks = proto.chunks.length;
      // Read straight into the arena: 4 KiB-aligned views of it, never the slab.
      const mid = proto.chunks.slice(1);
      assert.ok(mid.every((c) => c.buffer.byteLength <= 64 * 1024 && native.pageOffset(c) === 0));
      transport.pauseReading();
      const burst = randomBytes(2 * MiB);
      sent.push(burst);
      peer.write(burst);
      await sleep(0.05);
      transport.resumeReading();
      await proto.received(sent.reduce((n, c) => n + c.length, 0));
      assert.ok(Buffer.concat(proto.chunks).equals(Buffer.concat(sent)));
      // One read that filled the arena's room, then slab reads of up to 256 KiB: not 32 KiB at a time.
      const after = proto.chunks.slice(midChunks).map((c) => c.length);
      const small = after.filter((n) => n <= 32 * 1024);
      assert.ok(small.length <= 2, `the burst came in ${after.length} reads: ${after.join(' ')}`);
      transport.close();
      await settle(proto.lost);
    }));

  test('64 MiB each way through two FdTransports echoing over TCP, hashes equal', (t) =>
    runLoop(async (loop) => {
      // Both ends native: a listening socket accepts the echo side's fd.
      const lfd = native.socket(native.constants.AF_INET, native.constants.SOCK_STREAM);
      t.after(() => native.close(lfd));
      native.bind(lfd, ['127.0.0.1', 0]);
      native.listen(lfd, 8);
      const lport = (native.getsockname(lfd) as [string, number])[1];
      const cfd = native.socket(native.constants.AF_INET, native.constants.SOCK_STREAM);
      native.connect(cfd, ['127.0.0.1', lport]);
      let accepted: [number, unknown] | null = null;
      while (accepted === null) {
        accepted = native.accept(lfd);
        if (accepted === null) await new Promise((r) => setImmediate(r));
      }
      // The echo side writes back what it gets, with flow control both ways.
      class Echo extends Protocol {
        t: Transport | null = null;
        readonly lost = loop.createFuture<void>();
        override connectionMade(tr: BaseTransport): void {
          this.t = tr as Transport;
        }
        override dataReceived(d: Buffer): void {
          this.t!.write(d);
        }
        override pauseWriting(): void {
          this.t!.pauseReading();
        }
        override resumeWriting(): void {
          this.t!.resumeReading();
        }
        override eofReceived(): boolean {
          this.t!.writeEof();
          return true;
        }
        override connectionLost(): void {
          this.lost.setResult(undefined);
        }
      }
      const echo = new Echo();
      new FdTransport(loop, accepted[0], echo);
      const total = 64 * MiB;
      const hashIn = createHash('sha256');
      const hashOut = createHash('sha256');
      let got = 0;
      const done = loop.createFuture<void>();
      class Client extends BufferedProtocol {
        readonly buf = Buffer.alloc(64 * 1024);
        override getBuffer(): Uint8Array {
          return this.buf;
        }
        override bufferUpdated(n: number): void {
          hashIn.update(this.buf.subarray(0, n));
          got += n;
        }
        override eofReceived(): boolean {
          return false;
        }
        override connectionLost(exc: Error | null): void {
          if (exc) done.setException(exc);
          else done.setResult(undefined);
        }
      }
      const client = new FdTransport(loop, cfd, new Client());
      const block = randomBytes(MiB);
      let sent = 0;
      let canWrite = loop.createFuture<void>();
      canWrite.setResult(undefined);
      (client as unknown as { _protocol: Protocol })._protocol.pauseWriting = () => {
        canWrite = loop.createFuture<void>();
      };
      (client as unknown as { _protocol: Protocol })._protocol.resumeWriting = () => canWrite.setResult(undefined);
      while (sent < total) {
        await canWrite;
        block.writeUInt32LE(sent, 0);
        const piece = Buffer.from(block);
        hashOut.update(piece);
        client.write(piece);
        sent += piece.length;
      }
      client.writeEof();
      await done;
      await echo.lost;
      assert.equal(got, total);
      assert.equal(hashIn.digest('hex'), hashOut.digest('hex'));
    }));

  test('1000 connections opened and closed leave no fd behind', (t) =>
    runLoop(async (loop) => {
      const server = await nodeServer(t);
      const peers: net.Socket[] = [];
      server.on('connection', (s: net.Socket) => {
        peers.push(s);
        s.on('error', () => undefined);
        s.on('data', (d) => s.write(d));
        s.on('end', () => s.end());
      });
      const before = openFds();
      const port = (server.address() as net.AddressInfo).port;
      for (let batch = 0; batch < 10; batch++) {
        const protos: Recorder[] = [];
        for (let i = 0; i < 100; i++) {
          const fd = native.socket(native.constants.AF_INET, native.constants.SOCK_STREAM);
          native.connect(fd, ['127.0.0.1', port]);
          const proto = new Recorder(loop);
          // Made while the connection may still be in progress: the poll waits for it like any readiness.
          new FdTransport(loop, fd, proto);
          protos.push(proto);
        }
        await Promise.all(protos.map((p) => settle(p.made)));
        for (const [i, p] of protos.entries()) {
          if (i % 3 === 0) p.tp!.abort();
          else {
            p.tp!.write(Buffer.from('ping'));
            if (i % 3 === 1) p.tp!.close();
            else p.tp!.writeEof();
          }
        }
        await Promise.all(protos.map((p) => settle(p.lost)));
        for (const p of protos) assert.match(p.grammar(), STREAM_GRAMMAR);
      }
      for (const p of peers) p.destroy();
      await new Promise((r) => setImmediate(r));
      // Node's own peers are gone too: the count is back where it was (a small margin for Node's internals).
      const after = openFds();
      assert.ok(after <= before + 2, `fds before ${before}, after ${after}`);
    }));
});

test('isBufferedProtocol: a BufferedProtocol, or any protocol with a getBuffer method; not a Protocol', () => {
  class Buffered extends BufferedProtocol {}
  assert.equal(isBufferedProtocol(new Buffered()), true);
  const duck = Object.assign(new Protocol(), { getBuffer: () => new Uint8Array(8), bufferUpdated: () => undefined });
  assert.equal(isBufferedProtocol(duck), true);
  assert.equal(isBufferedProtocol(new Protocol()), false);
  assert.equal(isBufferedProtocol(Object.assign(new Protocol(), { getBuffer: 'no' })), false);
});

describe('FdTransport: BufferedProtocol and hand-over', { skip }, () => {
  test('BufferedProtocol: received straight into the protocol buffer (no copy), getBuffer(-1) each read', (t) =>
    runLoop(async (loop) => {
      const server = await nodeServer(t);
      const { fd, peer } = await connectTo(t, server);
      const events: string[] = [];
      const own = Buffer.alloc(5);
      const received: string[] = [];
      const lost = loop.createFuture<Error | null>();
      const first = loop.createFuture<void>();
      let tp: Transport | null = null;
      class Small extends BufferedProtocol {
        override connectionMade(t: BaseTransport): void {
          tp = t as Transport;
        }
        override getBuffer(hint: number): Uint8Array {
          events.push(`getBuffer(${hint})`);
          return own;
        }
        override bufferUpdated(n: number): void {
          events.push(`bufferUpdated(${n})`);
          received.push(own.subarray(0, n).toString());
          if (!first.done()) {
            tp!.pauseReading();
            first.setResult(undefined);
          }
        }
        override eofReceived(): boolean {
          events.push('eofReceived');
          return false;
        }
        override connectionLost(exc: Error | null): void {
          lost.setResult(exc);
        }
      }
      new FdTransport(loop, fd, new Small());
      peer.end('0123456789ab');
      await first;
      // What the protocol's buffer could not take is still in the kernel, not in a copy held by the transport.
      const peek = Buffer.alloc(64);
      assert.equal(native.recv(fd, peek, 0, 64, native.constants.MSG_PEEK), 7);
      tp!.resumeReading();
      assert.equal(await settle(lost), null);
      assert.equal(received.join(''), '0123456789ab');
      assert.deepEqual(received, ['01234', '56789', 'ab'], 'each recv fills the buffer it was given');
      assert.ok(events.filter((e) => e.startsWith('getBuffer')).every((e) => e === 'getBuffer(-1)'));
      assert.equal(events.at(-1), 'eofReceived');
    }));

  test('an empty buffer from getBuffer is a protocol error', (t) =>
    runLoop(async (loop, errors) => {
      const server = await nodeServer(t);
      const { fd, peer } = await connectTo(t, server);
      const lost = loop.createFuture<Error | null>();
      class Empty extends BufferedProtocol {
        override getBuffer(): Uint8Array {
          return new Uint8Array(0);
        }
        override connectionLost(exc: Error | null): void {
          lost.setResult(exc);
        }
      }
      new FdTransport(loop, fd, new Empty());
      peer.write('x');
      assert.match(String(await settle(lost)), /getBuffer\(\) returned an empty buffer/);
      assert.equal(errors[0]?.message, 'Fatal error: protocol.getBuffer() call failed.');
    }));

  test('_detach hands the fd to a net.Socket with what was still buffered', (t) =>
    runLoop(async (loop) => {
      const { transport, proto, peer } = await tcpTransport(t, loop);
      peer.pause();
      const big = randomBytes(4 * MiB);
      transport.write(big);
      assert.ok(transport.getWriteBufferSize() > 0);
      const sock = transport._detach();
      t.after(() => sock.destroy());
      assert.equal(transport.isClosing(), true);
      assert.throws(() => transport._detach(), RuntimeError);
      sock.end(Buffer.from('tail'));
      const all = readAll(peer);
      peer.resume();
      const got = await all;
      assert.ok(got.subarray(0, big.length).equals(big));
      assert.equal(got.subarray(big.length).toString(), 'tail');
      assert.equal(proto.lost.done(), false, 'the old protocol is never called again');
    }));
});

test('fdTransportEnabled follows the native addon and LOOPWORK_TRANSPORT', () => {
  const saved = process.env.LOOPWORK_TRANSPORT;
  try {
    delete process.env.LOOPWORK_TRANSPORT;
    assert.equal(fdTransportEnabled(), NATIVE);
    process.env.LOOPWORK_TRANSPORT = 'socket';
    assert.equal(fdTransportEnabled(), false);
  } finally {
    if (saved === undefined) delete process.env.LOOPWORK_TRANSPORT;
    else process.env.LOOPWORK_TRANSPORT = saved;
  }
});
