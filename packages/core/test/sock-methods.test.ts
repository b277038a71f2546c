import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import {
  AF_INET,
  AF_INET6,
  BrokenPipeError,
  ConnectionRefusedError,
  GaiError,
  InvalidArgTypeError,
  RuntimeError,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_RCVBUF,
  SO_SNDBUF,
  Socket,
  TimeoutError,
  ValueError,
  createServerSocket,
  isCancelledError,
  newEventLoop,
  registerTransportFd,
  sleep,
  socketpair,
  waitFor,
} from '@loopwork/core';
import type { BaseTransport, EventLoop, Future } from '@loopwork/core';
import { settle } from './helpers.js';

/** A fresh loop closed when the test ends. */
function makeLoop(t: TestContext, debug = false): EventLoop {
  const loop = newEventLoop({ debug });
  t.after(() => loop.close());
  return loop;
}

function track<T extends Socket | Socket[]>(t: TestContext, socks: T): T {
  t.after(() => {
    for (const s of Array.isArray(socks) ? socks : [socks]) s.close();
  });
  return socks;
}

/** A non-blocking listening socket on loopback and its port. */
function listener(t: TestContext): [Socket, number] {
  const srv = track(t, createServerSocket(['127.0.0.1', 0]));
  srv.setblocking(false);
  return [srv, (srv.getsockname() as [string, number])[1]];
}

function nonBlockingPair(t: TestContext): [Socket, Socket] {
  return track(t, socketpair(undefined, SOCK_STREAM | SOCK_NONBLOCK));
}

/** Counts the fd watchers the loop registers (the `_addReader`/`_addWriter` calls). */
function countWatchers(loop: EventLoop): { readers: number; writers: number } {
  const counts = { readers: 0, writers: 0 };
  const l = loop as unknown as Record<string, (...args: unknown[]) => unknown>;
  const addReader = l._addReader!.bind(loop);
  const addWriter = l._addWriter!.bind(loop);
  l._addReader = (...args) => {
    counts.readers++;
    return addReader(...args);
  };
  l._addWriter = (...args) => {
    counts.writers++;
    return addWriter(...args);
  };
  return counts;
}

describe('sock* coroutines', () => {
  test('an echo server and client on sockAccept, sockConnect, sockRecv, sockSendall', async (t) => {
    const loop = makeLoop(t);
    const [srv, port] = listener(t);
    const payload = Buffer.alloc(4 << 20);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
    await loop.runUntilComplete(async () => {
      const server = loop.createTask(async () => {
        const [conn] = await loop.sockAccept(srv);
        assert.equal(conn.getblocking(), false, 'sockAccept gives a non-blocking socket');
        try {
          while (true) {
            const data = await loop.sockRecv(conn, 65536);
            if (data.length === 0) break;
            await loop.sockSendall(conn, data);
          }
        } finally {
          conn.close();
        }
      });
      const client = track(t, new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
      await loop.sockConnect(client, ['127.0.0.1', port]);
      const reader = loop.createTask(async () => {
        const chunks: Buffer[] = [];
        let size = 0;
        while (size < payload.length) {
          const buf = Buffer.alloc(100000);
          const n = await loop.sockRecvInto(client, buf);
          assert.ok(n > 0);
          chunks.push(buf.subarray(0, n));
          size += n;
        }
        return Buffer.concat(chunks);
      });
      await loop.sockSendall(client, payload);
      const echoed = await reader;
      assert.ok(echoed.equals(payload), 'the 4 MiB came back intact');
      client.shutdown(1);
      await server;
    });
  });

  test('sockConnect resolves a host name with getaddrinfo', async (t) => {
    const loop = makeLoop(t);
    const [srv, port] = listener(t);
    await loop.runUntilComplete(async () => {
      const client = track(t, new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
      const accepted = loop.sockAccept(srv);
      await loop.sockConnect(client, ['localhost', port]);
      const [conn, peer] = await accepted;
      track(t, conn);
      assert.deepEqual(peer, client.getsockname());
    });
  });

  test('sockConnect of an IPv6 socket: the address of the other family is a gaierror', async (t) => {
    const loop = makeLoop(t);
    await loop.runUntilComplete(async () => {
      const client = track(t, new Socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK));
      // asyncio resolves the address for the socket's family: getaddrinfo('127.0.0.1', family=AF_INET6).
      await assert.rejects(settle(loop.sockConnect(client, ['127.0.0.1', 1])), (err: unknown) => {
        assert.ok(GaiError.isInstance(err), String(err));
        assert.equal((err as Error).message, '[Errno -9] Address family for hostname not supported');
        return true;
      });
    });
  });

  test('a refused sockConnect fails with asyncio\'s "Connect call failed" and ECONNREFUSED', async (t) => {
    const loop = makeLoop(t);
    const closed = track(t, new Socket(AF_INET, SOCK_STREAM));
    closed.bind(['127.0.0.1', 0]);
    const port = (closed.getsockname() as [string, number])[1];
    await loop.runUntilComplete(async () => {
      const client = track(t, new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
      await assert.rejects(settle(loop.sockConnect(client, ['127.0.0.1', port])), (err: unknown) => {
        assert.ok(ConnectionRefusedError.isInstance(err), String(err));
        assert.equal((err as { code?: string }).code, 'ECONNREFUSED');
        assert.equal((err as Error).message, `[Errno 111] Connect call failed ('127.0.0.1', ${port})`);
        return true;
      });
      // An IPv6 address is asyncio's resolved 4-tuple in the message.
      const closed6 = track(t, new Socket(AF_INET6, SOCK_STREAM));
      let port6 = 0;
      try {
        closed6.bind(['::1', 0]);
        port6 = (closed6.getsockname() as [string, number])[1];
      } catch {
        // no IPv6 loopback here
      }
      if (port6 !== 0) {
        const client6 = track(t, new Socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK));
        await assert.rejects(settle(loop.sockConnect(client6, ['::1', port6])), {
          message: `[Errno 111] Connect call failed ('::1', ${port6}, 0, 0)`,
        });
      }
      // A port given as a string is resolved, as asyncio's getaddrinfo() does.
      const again = track(t, new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
      await assert.rejects(settle(loop.sockConnect(again, ['127.0.0.1', String(port)])), (err: unknown) =>
        ConnectionRefusedError.isInstance(err),
      );
    });
  });

  test('sockRecv of 0 bytes and sockRecvInto an empty buffer answer at once, as Python does', async (t) => {
    const loop = makeLoop(t);
    const [a] = nonBlockingPair(t);
    await loop.runUntilComplete(async () => {
      assert.deepEqual(await waitFor(loop.sockRecv(a, 0), 1), Buffer.alloc(0));
      assert.equal(await waitFor(loop.sockRecvInto(a, Buffer.alloc(0)), 1), 0);
      assert.deepEqual(a.recv(0), Buffer.alloc(0));
    });
  });

  test('sockSendall to a peer that has gone fails with BrokenPipeError', async (t) => {
    const loop = makeLoop(t);
    const [a, b] = nonBlockingPair(t);
    b.close();
    await loop.runUntilComplete(async () => {
      await assert.rejects(settle(loop.sockSendall(a, Buffer.alloc(10))), (err: unknown) => {
        assert.ok(BrokenPipeError.isInstance(err), String(err));
        assert.equal((err as Error).message, '[Errno 32] Broken pipe');
        return true;
      });
    });
  });

  test('the fast path tries the system call before registering a watcher', async (t) => {
    const loop = makeLoop(t);
    const [a, b] = nonBlockingPair(t);
    const counts = countWatchers(loop);
    await loop.runUntilComplete(async () => {
      a.send(Buffer.from('ready'));
      assert.equal((await loop.sockRecv(b, 100)).toString(), 'ready');
      await loop.sockSendall(b, Buffer.from('fits'));
      assert.deepEqual(counts, { readers: 0, writers: 0 });
      const pending = loop.sockRecv(b, 100);
      assert.equal(counts.readers, 1, 'nothing to read: now it waits');
      a.send(Buffer.from('later'));
      assert.equal((await pending).toString(), 'later');
    });
  });

  test('the watcher is removed on completion', async (t) => {
    const loop = makeLoop(t);
    const [a, b] = nonBlockingPair(t);
    await loop.runUntilComplete(async () => {
      const pending = loop.sockRecv(b, 100);
      a.send(Buffer.from('x'));
      await pending;
      assert.equal(loop.removeReader(b.fileno()), false, 'no reader left');
    });
  });

  test('a cancelled sockRecv consumes nothing and removes its watcher', async (t) => {
    const loop = makeLoop(t);
    const [a, b] = nonBlockingPair(t);
    await loop.runUntilComplete(async () => {
      const task = loop.createTask(async () => await loop.sockRecv(b, 100));
      await loop.createTask(async () => undefined); // let the task start and wait
      task.cancel();
      await assert.rejects(settle(task), (err: unknown) => isCancelledError(err));
      assert.equal(loop.removeReader(b.fileno()), false, 'the reader went with the cancel');
      a.send(Buffer.from('all of it'));
      assert.equal((await loop.sockRecv(b, 100)).toString(), 'all of it');
    });
  });

  test('waitFor(loop.sockAccept(sock), 0.1) times out cleanly, and the socket still accepts', async (t) => {
    const loop = makeLoop(t);
    const [srv, port] = listener(t);
    await loop.runUntilComplete(async () => {
      const t0 = loop.time();
      await assert.rejects(waitFor(loop.sockAccept(srv), 0.1), (err: unknown) => TimeoutError.isInstance(err));
      const elapsed = loop.time() - t0;
      assert.ok(elapsed >= 0.09 && elapsed < 1, `timed out after ${elapsed}s`);
      assert.equal(loop.removeReader(srv.fileno()), false, 'no reader left behind');
      const client = track(t, new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
      const accepted = loop.sockAccept(srv);
      await loop.sockConnect(client, ['127.0.0.1', port]);
      track(t, (await accepted)[0]);
    });
  });

  test('a cancelled sockSendall leaves the socket usable', async (t) => {
    const loop = makeLoop(t);
    const [a, b] = nonBlockingPair(t);
    a.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    b.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096);
    await loop.runUntilComplete(async () => {
      const big = Buffer.alloc(8 << 20, 1);
      const send = loop.sockSendall(a, big);
      assert.equal(send.done(), false, 'the buffers are full: it waits');
      send.cancel();
      await sleep(0); // done callbacks run on the next iteration, as in asyncio
      assert.equal(loop.removeWriter(a.fileno()), false, 'the writer went with the cancel');
      // Drain what got through, then the socket carries new data.
      let drained = 0;
      while (true) {
        const chunk = await waitFor(loop.sockRecv(b, 1 << 20), 0.2).catch(() => null);
        if (chunk === null) break;
        drained += chunk.length;
      }
      assert.ok(drained > 0 && drained < big.length, `drained ${drained}`);
      await loop.sockSendall(a, Buffer.from('after'));
      const tail = await loop.sockRecv(b, 100);
      assert.equal(tail.toString(), 'after');
    });
  });

  test('datagrams: sockSendto, sockRecvfrom, sockRecvfromInto wait for data', async (t) => {
    const loop = makeLoop(t);
    const a = track(t, new Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK));
    const b = track(t, new Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK));
    a.bind(['127.0.0.1', 0]);
    b.bind(['127.0.0.1', 0]);
    const bAddr = b.getsockname() as [string, number];
    await loop.runUntilComplete(async () => {
      const first = loop.sockRecvfrom(b, 100);
      assert.equal(await loop.sockSendto(a, Buffer.from('dgram-1'), bAddr), 7);
      const [data, from] = await first;
      assert.equal(data.toString(), 'dgram-1');
      assert.deepEqual(from, a.getsockname());
      const buf = Buffer.alloc(64);
      const second = loop.sockRecvfromInto(b, buf, 5);
      await loop.sockSendto(a, Buffer.from('dgram-2'), bAddr);
      const [n, from2] = await second;
      assert.equal(buf.subarray(0, n).toString(), 'dgram', 'nbytes caps the read');
      assert.equal(n, 5);
      assert.deepEqual(from2, a.getsockname());
    });
  });

  test('debug mode refuses a blocking socket: "the socket must be non-blocking"', async (t) => {
    const loop = makeLoop(t, true);
    const [a] = track(t, socketpair());
    await loop.runUntilComplete(async () => {
      const calls: [string, () => Future<unknown>][] = [
        ['sockRecv', () => loop.sockRecv(a, 1)],
        ['sockRecvInto', () => loop.sockRecvInto(a, Buffer.alloc(1))],
        ['sockSendall', () => loop.sockSendall(a, Buffer.from('x'))],
        ['sockAccept', () => loop.sockAccept(a)],
        ['sockConnect', () => loop.sockConnect(a, '/nonexistent')],
        ['sockRecvfrom', () => loop.sockRecvfrom(a, 1)],
      ];
      for (const [name, call] of calls) {
        await assert.rejects(settle(call()), (err: unknown) => {
          assert.ok(ValueError.isInstance(err), name);
          assert.equal((err as Error).message, 'the socket must be non-blocking');
          return true;
        });
      }
    });
  });

  test('an fd a transport owns is refused when the operation has to wait', async (t) => {
    const loop = makeLoop(t);
    const [, b] = nonBlockingPair(t);
    const fake = { isClosing: () => false, close() {}, getExtraInfo: () => undefined } as unknown as BaseTransport;
    registerTransportFd(loop as never, b.fileno(), fake);
    await loop.runUntilComplete(async () => {
      await assert.rejects(settle(loop.sockRecv(b, 10)), (err: unknown) => {
        assert.ok(RuntimeError.isInstance(err));
        assert.match((err as Error).message, /^File descriptor \d+ is used by transport/);
        return true;
      });
    });
  });

  test('argument errors: not a Socket, a closed Socket', async (t) => {
    const loop = makeLoop(t);
    await loop.runUntilComplete(async () => {
      await assert.rejects(settle(loop.sockRecv(3 as unknown as Socket, 1)), InvalidArgTypeError);
      const s = new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
      s.close();
      await assert.rejects(settle(loop.sockRecv(s, 1)), (err: unknown) => (err as { code?: string }).code === 'EBADF');
      await assert.rejects(settle(loop.sockSendall(s, 'x' as unknown as Buffer)), InvalidArgTypeError);
    });
  });
});
