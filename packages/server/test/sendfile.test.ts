/**
 * loop.sendfile and loop.sockSendfile: zero-copy sendfile(2) on plain TCP and Unix transports, the read-and-write
 * fallback (TLS, a pipe as the source), offset/count/file position, errors, a peer leaving midway, cancelling.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import {
  AF_INET,
  ConnectionError,
  DatagramProtocol,
  InvalidArgTypeError,
  OSError,
  RuntimeError,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SendfileNotAvailableError,
  SocketTransport,
  Socket,
  ValueError,
  isCancelledError,
  native,
  sleep,
  socketpair,
} from '@loopwork/server';
import type { BaseEventLoop, Transport } from '@loopwork/server';
import * as tlsPkg from '@loopwork/tls';
import { Recorder, portOf, runCommand, runLoop, settle } from './helpers.js';

const MiB = 1024 * 1024;

function tmpDir(t: TestContext): string {
  const dir = fs.mkdtempSync(join(tmpdir(), 'lw-sendfile-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A file of `size` bytes of a position-dependent pattern, so that misplaced bytes show. */
function patternFile(dir: string, size: number, name = 'data.bin'): [string, Buffer] {
  const data = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE(i >>> 0, i);
  data.fill(0xab, size - (size % 4));
  const path = join(dir, name);
  fs.writeFileSync(path, data);
  return [path, data];
}

async function openFile(t: TestContext, path: string): Promise<fs.promises.FileHandle> {
  const fh = await fs.promises.open(path, 'r');
  t.after(() => fh.close().catch(() => undefined));
  return fh;
}

/** The file position of `fd`, read from the kernel. */
function filePosition(fd: number): number {
  const m = /^pos:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
  return Number(m![1]);
}

interface Sink {
  port: number;
  /** Resolves with every byte of the next connection once it ends. */
  next(): Promise<Buffer>;
  /** The next connection's socket itself (to pause it, to destroy it). */
  nextSocket(): Promise<net.Socket>;
}

/** A Node server on the other side that keeps what each connection sends. */
async function sink(t: TestContext, path?: string): Promise<Sink & { path?: string }> {
  const sockets: net.Socket[] = [];
  const waiting: ((s: net.Socket) => void)[] = [];
  const srv = net.createServer({ allowHalfOpen: false }, (s) => {
    sockets.push(s);
    const w = waiting.shift();
    if (w !== undefined) w(sockets.shift()!);
  });
  if (path === undefined) srv.listen(0, '127.0.0.1');
  else srv.listen(path);
  await once(srv, 'listening');
  t.after(() => srv.close());
  const nextSocket = (): Promise<net.Socket> =>
    new Promise((resolve) => {
      const s = sockets.shift();
      if (s !== undefined) resolve(s);
      else waiting.push(resolve);
    });
  return {
    port: path === undefined ? (srv.address() as net.AddressInfo).port : 0,
    nextSocket,
    async next() {
      const s = await nextSocket();
      t.after(() => s.destroy());
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', () => undefined);
      await once(s, 'close');
      return Buffer.concat(chunks);
    },
  };
}

async function connect(loop: BaseEventLoop, port: number): Promise<[Transport, Recorder]> {
  const proto = new Recorder(loop);
  const [transport] = await loop.createConnection(() => proto, '127.0.0.1', port);
  return [transport, proto];
}

/**
 * Counts the bytes `transport.write()` takes: the fallback sends the file through it, zero-copy does not (on either
 * transport, the `SocketTransport` on a `net.Socket` or the `FdTransport` on the fd).
 */
function countWrites(transport: Transport): { bytes: number } {
  const counter = { bytes: 0 };
  const write = transport.write.bind(transport);
  transport.write = (data: Uint8Array): void => {
    write(data);
    counter.bytes += data.byteLength;
  };
  return counter;
}

describe('loop.sendfile over a plain TCP transport (zero-copy)', () => {
  test('sends 4 MiB+ with sendfile(2): nothing goes through the write buffer; writes refused meanwhile', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path, data] = patternFile(dir, 4 * MiB + 12345);
      const fh = await openFile(t, path);
      const peer = await sink(t);
      const received = peer.next();
      const [transport, proto] = await connect(loop, peer.port);
      const header = Buffer.alloc(3 * MiB, 'H');
      const writes = countWrites(transport);
      transport.write(header); // drained before the file goes out
      const samples: { buffered: number; reading: boolean; writeError: string }[] = [];
      const sample = (): void => {
        let writeError = '';
        try {
          transport.write(Buffer.from('x'));
        } catch (err) {
          writeError = (err as Error).message;
        }
        samples.push({ buffered: transport.getWriteBufferSize(), reading: transport.isReading(), writeError });
      };
      const sending = loop.sendfile(transport, fh);
      const probe = loop.createTask(async () => {
        while (!sending.done()) {
          sample();
          await sleep(0.001);
        }
      });
      const sent = await sending;
      await probe;
      assert.equal(sent, data.length);
      assert.equal(writes.bytes, header.length, 'no file byte went through write(): zero-copy');
      assert.ok(samples.length > 0);
      for (const s of samples) {
        assert.equal(s.buffered, 0);
        assert.equal(s.reading, false, 'reading is paused during sendfile');
        assert.equal(s.writeError, 'unable to write; sendfile is in progress');
      }
      assert.equal(transport.isReading(), true, 'reading resumes');
      transport.write(Buffer.from('TRAILER')); // writing resumes
      transport.close();
      const got = await received;
      assert.equal(got.length, header.length + data.length + 7);
      assert.ok(got.subarray(0, header.length).equals(header), 'the buffered header went first');
      assert.ok(got.subarray(header.length, header.length + data.length).equals(data), 'the file, byte for byte');
      assert.equal(got.subarray(header.length + data.length).toString(), 'TRAILER');
      assert.equal(filePosition(fh.fd), data.length, 'the file position is offset + bytes sent');
      await settle(proto.lost);
    }));

  test('offset and count send a slice; the file position ends at offset + count; a bare fd works', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path, data] = patternFile(dir, 1 * MiB);
      const fd = fs.openSync(path, 'r');
      t.after(() => fs.closeSync(fd));
      const peer = await sink(t);
      const received = peer.next();
      const [transport, proto] = await connect(loop, peer.port);
      assert.equal(await loop.sendfile(transport, fd, 1000, 5000), 5000);
      assert.equal(filePosition(fd), 6000);
      // count past the end sends what there is.
      assert.equal(await loop.sendfile(transport, fd, data.length - 10, 100), 10);
      assert.equal(filePosition(fd), data.length);
      // An offset past the end sends nothing, and then asyncio leaves the position where it was.
      const fd2 = fs.openSync(path, 'r');
      t.after(() => fs.closeSync(fd2));
      assert.equal(await loop.sendfile(transport, fd2, data.length + 5000), 0);
      assert.equal(filePosition(fd2), 0);
      transport.close();
      const got = await received;
      assert.ok(got.equals(Buffer.concat([data.subarray(1000, 6000), data.subarray(data.length - 10)])));
      await settle(proto.lost);
    }));

  test('a zero-size file sends nothing and returns 0', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const path = join(dir, 'empty');
      fs.writeFileSync(path, '');
      const fh = await openFile(t, path);
      const peer = await sink(t);
      const received = peer.next();
      const [transport, proto] = await connect(loop, peer.port);
      assert.equal(await loop.sendfile(transport, fh), 0);
      assert.equal(await loop.sendfile(transport, fh, 0, null, { fallback: false }), 0);
      transport.close();
      assert.equal((await received).length, 0);
      await settle(proto.lost);
    }));

  test('a peer that goes away midway fails it with a connection error; the position is offset + bytes sent', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const path = join(dir, 'sparse');
      fs.writeFileSync(path, '');
      fs.truncateSync(path, 256 * MiB);
      const fh = await openFile(t, path);
      const peer = await sink(t);
      const [transport, proto] = await connect(loop, peer.port);
      const remote = await peer.nextSocket();
      let seen = 0;
      remote.on('data', (d: Buffer) => {
        seen += d.length;
        // Unread data at close makes the kernel reset the connection.
        if (seen > MiB) remote.destroy();
      });
      const err = await settle(loop.sendfile(transport, fh, 100)).then(
        () => assert.fail('the transfer should fail'),
        (e: unknown) => e as Error & { code?: string; bytesSent?: number },
      );
      assert.ok(['EPIPE', 'ECONNRESET'].includes(err.code ?? ''), `code ${err.code}: ${err.message}`);
      assert.ok(ConnectionError.isInstance(err as unknown), `an OSError of asyncio's class: ${err.name}`);
      assert.ok((err.bytesSent ?? 0) > MiB, `bytesSent ${err.bytesSent}`);
      assert.equal(filePosition(fh.fd), 100 + err.bytesSent!);
      transport.close();
      await settle(proto.lost);
    }));

  test('cancelling stops the transfer; the transport stays usable and the position counts what was sent', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path, data] = patternFile(dir, 64 * MiB);
      const fh = await openFile(t, path);
      const peer = await sink(t);
      const [transport, proto] = await connect(loop, peer.port);
      const remote = await peer.nextSocket();
      remote.pause(); // the kernel buffers fill up: the transfer waits for the peer
      const sending = loop.sendfile(transport, fh);
      // The kernel advances the file position as the transfer goes: wait until it has started.
      while (filePosition(fh.fd) === 0) await sleep(0.005);
      assert.equal(sending.done(), false);
      sending.cancel();
      await assert.rejects(settle(sending), (e: unknown) => isCancelledError(e));
      transport.write(Buffer.from('END')); // no longer refused
      transport.close();
      const chunks: Buffer[] = [];
      remote.on('data', (d: Buffer) => chunks.push(d));
      remote.resume();
      await once(remote, 'end');
      const got = Buffer.concat(chunks);
      const fileBytes = got.length - 3;
      assert.ok(fileBytes > 0 && fileBytes < data.length, `sent ${fileBytes}`);
      assert.ok(got.subarray(0, fileBytes).equals(data.subarray(0, fileBytes)));
      assert.equal(got.subarray(fileBytes).toString(), 'END');
      assert.equal(filePosition(fh.fd), fileBytes);
      await settle(proto.lost);
    }));

  test('a Unix transport sends with sendfile(2) too', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path, data] = patternFile(dir, 2 * MiB);
      const fh = await openFile(t, path);
      const sockPath = join(dir, 'sink.sock');
      const peer = await sink(t, sockPath);
      const received = peer.next();
      const proto = new Recorder(loop);
      const [transport] = await loop.createUnixConnection(() => proto, sockPath);
      const writes = countWrites(transport);
      assert.equal(await loop.sendfile(transport, fh, 0, null, { fallback: false }), data.length);
      assert.equal(writes.bytes, 0);
      transport.close();
      assert.ok((await received).equals(data));
      await settle(proto.lost);
    }));

  test('the portable SocketTransport (LOOPWORK_TRANSPORT=socket) sends with sendfile(2) on its net.Socket fd', (t) =>
    runLoop(async (loop) => {
      const saved = process.env.LOOPWORK_TRANSPORT;
      process.env.LOOPWORK_TRANSPORT = 'socket';
      t.after(() => {
        if (saved === undefined) delete process.env.LOOPWORK_TRANSPORT;
        else process.env.LOOPWORK_TRANSPORT = saved;
      });
      const dir = tmpDir(t);
      const [path, data] = patternFile(dir, 16 * MiB + 1);
      const fh = await openFile(t, path);
      const peer = await sink(t);
      const received = peer.next();
      const [transport, proto] = await connect(loop, peer.port);
      assert.ok(transport instanceof SocketTransport, transport.constructor.name);
      const sock = (transport as unknown as { _socket: net.Socket })._socket;
      transport.write(Buffer.from('HEAD'));
      const sending = loop.sendfile(transport, fh, 0, null, { fallback: false });
      let refused = '';
      while (refused === '' && !sending.done()) {
        try {
          transport.write(Buffer.alloc(0));
          await sleep(0);
        } catch (err) {
          refused = (err as Error).message;
        }
      }
      assert.equal(refused, 'unable to write; sendfile is in progress');
      assert.equal(await sending, data.length);
      assert.equal(sock.bytesWritten, 4, 'only the header went through Node: the file did not');
      transport.close();
      const got = await received;
      assert.equal(got.subarray(0, 4).toString(), 'HEAD');
      assert.ok(got.subarray(4).equals(data));
      await settle(proto.lost);
    }));

  test('argument and state errors', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path] = patternFile(dir, 1000);
      const fh = await openFile(t, path);
      const peer = await sink(t);
      const received = peer.next();
      const [transport, proto] = await connect(loop, peer.port);
      await assert.rejects(settle(loop.sendfile(transport, fh, -1)), ValueError);
      await assert.rejects(settle(loop.sendfile(transport, fh, 0, 0)), ValueError);
      await assert.rejects(settle(loop.sendfile(transport, fh, 1.5)), InvalidArgTypeError);
      await assert.rejects(settle(loop.sendfile(transport, 'nope' as never)), InvalidArgTypeError);
      await assert.rejects(settle(loop.sendfile(transport, fh, 0, null, { fall_back: false } as never)), {
        name: 'TypeError',
        message: "sendfile() got an unexpected keyword argument 'fall_back'",
      });
      transport.close();
      await assert.rejects(settle(loop.sendfile(transport, fh)), /^RuntimeError: Transport is closing$/);
      await received;
      await settle(proto.lost);
    }));
});

describe('loop.sendfile fallback', () => {
  test('a pipe as the source: read and written in blocks; fallback: false refuses it', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path, data] = patternFile(dir, 3 * MiB + 7);
      const peer = await sink(t);
      const received = peer.next();
      const [transport, proto] = await connect(loop, peer.port);
      const [r, w] = native.pipe();
      t.after(() => native.close(r));
      await assert.rejects(settle(loop.sendfile(transport, r, 0, null, { fallback: false })), (e: unknown) => {
        assert.ok(SendfileNotAvailableError.isInstance(e));
        return true;
      });
      const child = spawn('cat', [path], { stdio: ['ignore', w, 'inherit'] });
      const exited = once(child, 'exit');
      native.close(w);
      assert.equal(await loop.sendfile(transport, r), data.length);
      await exited;
      transport.close();
      assert.ok((await received).equals(data));
      await settle(proto.lost);
    }));

  test('TLS: the fallback sends the file through the TLS transport; fallback: false is refused', async (t) => {
    const dir = tmpDir(t);
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const r = await runCommand('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ]); // prettier-ignore
    assert.equal(r.code, 0, r.stderr);
    const serverCtx = new tlsPkg.SSLContext(tlsPkg.PROTOCOL_TLS_SERVER);
    serverCtx.loadCertChain(cert, key);
    const clientCtx = new tlsPkg.SSLContext(tlsPkg.PROTOCOL_TLS_CLIENT);
    clientCtx.loadVerifyLocations({ cafile: cert });
    const [path, data] = patternFile(dir, 2 * MiB + 3);
    await runLoop(async (loop) => {
      const fh = await openFile(t, path);
      const sinkProto = new Recorder(loop);
      const server = await loop.createServer(() => sinkProto, '127.0.0.1', 0, { ssl: serverCtx });
      const proto = new Recorder(loop);
      const [transport] = await loop.createConnection(
        () => proto,
        '127.0.0.1',
        portOf(server.sockets[0]!.getsockname()),
        {
          ssl: clientCtx,
          serverHostname: 'localhost',
        },
      );
      await assert.rejects(settle(loop.sendfile(transport, fh, 0, null, { fallback: false })), (e: unknown) => {
        assert.ok(SendfileNotAvailableError.isInstance(e));
        assert.ok(RuntimeError.isInstance(e));
        assert.match((e as Error).message, /^fallback is disabled and native sendfile is not supported for transport/);
        return true;
      });
      assert.equal(await loop.sendfile(transport, fh, 0), data.length);
      assert.equal(transport.getProtocol(), proto, 'the protocol is given back');
      await sinkProto.received(data.length);
      assert.ok(Buffer.concat(sinkProto.chunks).equals(data));
      assert.equal(filePosition(fh.fd), data.length);
      transport.close();
      await settle(proto.lost);
      server.close();
      await server.waitClosed();
    });
  });

  test('a datagram transport is refused', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path] = patternFile(dir, 10);
      const fh = await openFile(t, path);
      const [transport] = await loop.createDatagramEndpoint(() => new DatagramProtocol(), {
        localAddr: ['127.0.0.1', 0],
      });
      await assert.rejects(settle(loop.sendfile(transport as unknown as Transport, fh)), (e: unknown) => {
        assert.ok(RuntimeError.isInstance(e));
        assert.match((e as Error).message, /^sendfile is not supported for transport/);
        return true;
      });
      transport.close();
    }));
});

describe('loop.sockSendfile', () => {
  test('zero-copy on a socket pair, and the fallback for a pipe', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [path, data] = patternFile(dir, 2 * MiB + 1);
      const fh = await openFile(t, path);
      const [a, b] = socketpair(undefined, SOCK_STREAM | SOCK_NONBLOCK);
      t.after(() => {
        a.close();
        b.close();
      });
      const readAll = async (n: number): Promise<Buffer> => {
        const chunks: Buffer[] = [];
        let size = 0;
        while (size < n) {
          const c = await loop.sockRecv(b, 1 << 20);
          assert.ok(c.length > 0);
          chunks.push(c);
          size += c.length;
        }
        return Buffer.concat(chunks);
      };
      const reading = readAll(data.length - 10);
      assert.equal(await loop.sockSendfile(a, fh, 10), data.length - 10);
      assert.ok((await reading).equals(data.subarray(10)));
      assert.equal(filePosition(fh.fd), data.length);

      const [r, w] = native.pipe();
      t.after(() => native.close(r));
      native.write(w, Buffer.from('through a pipe'));
      native.close(w);
      await assert.rejects(settle(loop.sockSendfile(a, r, 0, null, { fallback: false })), (e: unknown) =>
        SendfileNotAvailableError.isInstance(e),
      );
      const reading2 = readAll(14);
      assert.equal(await loop.sockSendfile(a, r), 14);
      assert.equal((await reading2).toString(), 'through a pipe');
    }));

  test('only SOCK_STREAM sockets', (t) =>
    runLoop(async (loop) => {
      const s = new Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
      t.after(() => s.close());
      await assert.rejects(settle(loop.sockSendfile(s, 0)), /only SOCK_STREAM type sockets are supported/);
    }));

  test('a file that cannot be read fails with the OSError Python raises', (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const [a, b] = socketpair(undefined, SOCK_STREAM | SOCK_NONBLOCK);
      const dirFd = fs.openSync(dir, 'r');
      const [path] = patternFile(dir, 100);
      const writeOnly = fs.openSync(path, 'a');
      t.after(() => {
        a.close();
        b.close();
        fs.closeSync(dirFd);
        fs.closeSync(writeOnly);
      });
      // Python's fallback reads the file (readinto): IsADirectoryError, and EBADF for a file opened to write.
      await assert.rejects(settle(loop.sockSendfile(a, dirFd)), (e: Error & { code?: string }) => {
        assert.ok(OSError.isInstance(e), `${e.name}: ${e.message}`);
        assert.equal(e.code, 'EISDIR');
        // libuv's wording ("Illegal operation on a directory") where glibc says "Is a directory".
        assert.match(e.message, /^\[Errno 21\] /);
        return true;
      });
      await assert.rejects(settle(loop.sockSendfile(a, writeOnly)), (e: Error & { code?: string }) => {
        assert.ok(OSError.isInstance(e), `${e.name}: ${e.message}`);
        assert.equal(e.message, '[Errno 9] Bad file descriptor');
        return true;
      });
    }));
});
