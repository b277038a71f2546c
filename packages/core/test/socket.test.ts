import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { inspect } from 'node:util';
import * as core from '@loopwork/core';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  IPPROTO_TCP,
  InvalidArgTypeError,
  MSG_PEEK,
  SHUT_WR,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_KEEPALIVE,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SO_SNDBUF,
  SO_TYPE,
  Socket,
  TCP_NODELAY,
  TransportSocket,
  ValueError,
  createServerSocket,
  isSocket,
  native,
  socketpair,
} from '@loopwork/core';

/** Closes every socket given when the test ends. */
function track<T extends Socket | Socket[]>(t: TestContext, socks: T): T {
  t.after(() => {
    for (const s of Array.isArray(socks) ? socks : [socks]) s.close();
  });
  return socks;
}

function code(name: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, name, String(err));
    return true;
  };
}

/** A listening blocking TCP socket on a free loopback port, and that port. */
function listener(t: TestContext): [Socket, number] {
  const srv = track(t, createServerSocket(['127.0.0.1', 0]));
  return [srv, (srv.getsockname() as [string, number])[1]];
}

/** A connected TCP pair [client, server side], both blocking. */
function tcpPair(t: TestContext): [Socket, Socket] {
  const [srv, port] = listener(t);
  const client = track(t, new Socket(AF_INET, SOCK_STREAM));
  client.connect(['127.0.0.1', port]);
  const [conn] = srv.accept();
  track(t, conn);
  return [client, conn];
}

const HAS_IPV6 = ((): boolean => {
  try {
    new Socket(AF_INET6, SOCK_STREAM).close();
    return true;
  } catch {
    return false;
  }
})();

describe('constants', () => {
  test('match the C headers the addon was built with', () => {
    const exported = core as unknown as Record<string, unknown>;
    for (const [name, value] of Object.entries(native.constants)) {
      if (name in exported) assert.equal(exported[name], value, name);
    }
    assert.equal(core.SO_REUSEPORT, native.constants.SO_REUSEPORT);
    assert.equal(core.TCP_NODELAY, native.constants.TCP_NODELAY);
  });
});

describe('Socket', () => {
  test('is made blocking with the given family, type and protocol, as Python makes it', (t) => {
    const s = track(t, new Socket());
    assert.equal(s.family, AF_INET);
    assert.equal(s.type, SOCK_STREAM);
    assert.equal(s.proto, 0);
    assert.equal(s.getblocking(), true);
    assert.equal(s.gettimeout(), null);
    assert.equal(native.getBlocking(s.fileno()), true);
    assert.ok(isSocket(s));
    assert.ok(!isSocket({ fileno: () => 3 }));
  });

  test('SOCK_NONBLOCK in the type makes it non-blocking; type reads without the flag', (t) => {
    const s = track(t, new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
    assert.equal(s.type, SOCK_STREAM);
    assert.equal(s.getblocking(), false);
    assert.equal(native.getBlocking(s.fileno()), false);
  });

  test('settimeout(0) is setblocking(false), settimeout(null) is setblocking(true); other timeouts refused', (t) => {
    const s = track(t, new Socket());
    s.settimeout(0);
    assert.equal(s.gettimeout(), 0);
    assert.equal(s.getblocking(), false);
    assert.equal(native.getBlocking(s.fileno()), false);
    s.settimeout(null);
    assert.equal(s.getblocking(), true);
    assert.equal(native.getBlocking(s.fileno()), true);
    assert.throws(() => s.settimeout(-1), ValueError);
    assert.throws(() => s.settimeout(2.5), ValueError);
    s.setblocking(false);
    assert.equal(s.gettimeout(), 0);
  });

  test('a blocking TCP connection: connect, accept, send, recv, sendall, recvInto, addresses', (t) => {
    const [srv, port] = listener(t);
    assert.equal(srv.getsockopt(SOL_SOCKET, SO_REUSEADDR), 1);
    const client = track(t, new Socket(AF_INET, SOCK_STREAM));
    client.connect(['127.0.0.1', port]);
    const [conn, peer] = srv.accept();
    track(t, conn);
    assert.equal(conn.getblocking(), true, 'accepted sockets are blocking, as in Python');
    assert.deepEqual(peer, client.getsockname());
    assert.deepEqual(client.getpeername(), ['127.0.0.1', port]);
    assert.equal(client.send(Buffer.from('hello')), 5);
    assert.equal(conn.recv(100).toString(), 'hello');
    client.sendall(Buffer.from('abc'));
    const into = Buffer.alloc(10);
    assert.equal(conn.recvInto(into, 2), 2);
    assert.equal(into.subarray(0, 2).toString(), 'ab');
    assert.equal(conn.recv(10, MSG_PEEK).toString(), 'c');
    assert.equal(conn.recv(10).toString(), 'c');
    assert.throws(() => conn.recvInto(into, 11), ValueError);
    assert.throws(() => conn.recv(-1), ValueError);
    assert.match(
      inspect(conn),
      /^<Socket fd=\d+, family=AF_INET, type=SOCK_STREAM, proto=0, laddr=\('127\.0\.0\.1', \d+\), raddr=\('127\.0\.0\.1', \d+\)>$/,
    );
  });

  test('non-blocking calls that would block throw EAGAIN / EINPROGRESS, as Python raises BlockingIOError', (t) => {
    const [srv, port] = listener(t);
    srv.setblocking(false);
    assert.throws(() => srv.accept(), code('EAGAIN'));
    const client = track(t, new Socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
    try {
      client.connect(['127.0.0.1', port]);
    } catch (err) {
      code('EINPROGRESS')(err);
    }
    // Loopback connects complete at once or after one round trip: wait for the accept queue.
    let conn: Socket | null = null;
    while (conn === null) {
      try {
        conn = srv.accept()[0];
      } catch (err) {
        code('EAGAIN')(err);
      }
    }
    track(t, conn);
    conn.setblocking(false);
    assert.throws(() => conn.recv(10), code('EAGAIN'));
    assert.throws(() => conn.recvInto(Buffer.alloc(4)), code('EAGAIN'));
  });

  test('sendall on a non-blocking socket throws EAGAIN once the buffers are full', (t) => {
    const [a, b] = track(t, socketpair());
    a.setblocking(false);
    a.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);
    assert.throws(() => a.sendall(Buffer.alloc(8 << 20)), code('EAGAIN'));
    assert.ok(b.recv(1024).length > 0, 'part of it went out');
  });

  test('connectEx returns the errno instead of throwing it', (t) => {
    // A bound socket that does not listen: connections to it are refused.
    const closed = track(t, new Socket(AF_INET, SOCK_STREAM));
    closed.bind(['127.0.0.1', 0]);
    const port = (closed.getsockname() as [string, number])[1];
    const c = track(t, new Socket(AF_INET, SOCK_STREAM));
    assert.equal(c.connectEx(['127.0.0.1', port]), 111 /* ECONNREFUSED */);
    const [, open] = listener(t);
    const c2 = track(t, new Socket(AF_INET, SOCK_STREAM));
    assert.equal(c2.connectEx(['127.0.0.1', open]), 0);
    const c3 = track(t, new Socket(AF_INET, SOCK_STREAM));
    assert.throws(() => c3.connect(['127.0.0.1', port]), code('ECONNREFUSED'));
  });

  test('UDP: sendto (both overloads), recvfrom, recvfromInto', (t) => {
    const a = track(t, new Socket(AF_INET, SOCK_DGRAM));
    const b = track(t, new Socket(AF_INET, SOCK_DGRAM));
    a.bind(['127.0.0.1', 0]);
    b.bind(['127.0.0.1', 0]);
    const bAddr = b.getsockname() as [string, number];
    assert.equal(a.sendto(Buffer.from('one'), bAddr), 3);
    assert.equal(a.sendto(Buffer.from('two'), 0, bAddr), 3);
    const [data, from] = b.recvfrom(100);
    assert.equal(data.toString(), 'one');
    assert.deepEqual(from, a.getsockname());
    const buf = Buffer.alloc(10);
    const [n, from2] = b.recvfromInto(buf);
    assert.equal(buf.subarray(0, n).toString(), 'two');
    assert.deepEqual(from2, a.getsockname());
    b.setblocking(false);
    assert.throws(() => b.recvfrom(10), code('EAGAIN'));
  });

  test('socket options: SO_REUSEADDR, SO_REUSEPORT, TCP_NODELAY, SO_KEEPALIVE, SO_SNDBUF, SO_TYPE', (t) => {
    const s = track(t, new Socket(AF_INET, SOCK_STREAM));
    for (const [level, opt] of [
      [SOL_SOCKET, SO_REUSEADDR],
      [SOL_SOCKET, SO_REUSEPORT],
      [IPPROTO_TCP, TCP_NODELAY],
      [SOL_SOCKET, SO_KEEPALIVE],
    ] as const) {
      assert.equal(s.getsockopt(level, opt), 0);
      s.setsockopt(level, opt, true);
      assert.equal(s.getsockopt(level, opt), 1);
      s.setsockopt(level, opt, 0);
      assert.equal(s.getsockopt(level, opt), 0);
    }
    s.setsockopt(SOL_SOCKET, SO_SNDBUF, 65536);
    assert.ok(s.getsockopt(SOL_SOCKET, SO_SNDBUF) >= 65536, 'Linux doubles it');
    assert.equal(s.getsockopt(SOL_SOCKET, SO_TYPE), SOCK_STREAM);
  });

  test('shutdown(SHUT_WR) gives the peer EOF; the other direction still works', (t) => {
    const [client, conn] = tcpPair(t);
    client.shutdown(SHUT_WR);
    assert.equal(conn.recv(10).length, 0);
    conn.sendall(Buffer.from('still'));
    assert.equal(client.recv(10).toString(), 'still');
  });

  test('close is idempotent; a closed socket throws EBADF and fileno() is -1', () => {
    const s = new Socket();
    const fd = s.fileno();
    assert.ok(fd >= 0);
    s.close();
    s.close();
    assert.equal(s.fileno(), -1);
    assert.throws(() => s.bind(['127.0.0.1', 0]), code('EBADF'));
    assert.throws(() => s.recv(1), code('EBADF'));
    assert.match(inspect(s), /^<Socket \[closed\] fd=-1, family=AF_INET, type=SOCK_STREAM, proto=0>$/);
    const d = new Socket();
    d[Symbol.dispose]();
    assert.equal(d.fileno(), -1);
  });

  test('detach() lets go of the fd without closing it; new Socket(.., fileno) takes it back, reading its kind', (t) => {
    const u = new Socket(AF_INET, SOCK_DGRAM);
    u.bind(['127.0.0.1', 0]);
    const name = u.getsockname();
    const fd = u.detach();
    assert.equal(u.fileno(), -1);
    const again = track(t, new Socket(null, null, null, fd));
    assert.equal(again.family, AF_INET);
    assert.equal(again.type, SOCK_DGRAM);
    assert.equal(again.proto, 17);
    assert.deepEqual(again.getsockname(), name);
  });

  test('dup() shares the connection', (t) => {
    const [client, conn] = tcpPair(t);
    const copy = track(t, client.dup());
    assert.notEqual(copy.fileno(), client.fileno());
    copy.sendall(Buffer.from('via dup'));
    assert.equal(conn.recv(100).toString(), 'via dup');
  });

  test('socketpair() gives two connected blocking sockets; SOCK_DGRAM pairs keep messages', (t) => {
    const [a, b] = track(t, socketpair());
    assert.equal(a.family, AF_UNIX);
    assert.equal(a.getblocking(), true);
    a.sendall(Buffer.from('ping'));
    assert.equal(b.recv(10).toString(), 'ping');
    assert.equal(inspect(a), `<Socket fd=${a.fileno()}, family=AF_UNIX, type=SOCK_STREAM, proto=0>`);
    const [c, d] = track(t, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK));
    assert.equal(c.getblocking(), false);
    c.send(Buffer.from('m1'));
    c.send(Buffer.from('m2'));
    assert.equal(d.recv(10).toString(), 'm1');
    assert.equal(d.recv(10).toString(), 'm2');
  });

  test('Unix sockets on a path and on an abstract name', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lw-sock-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 's');
    for (const address of [path, Buffer.from(`\0lw-test-${process.pid}`)]) {
      const srv = track(t, new Socket(AF_UNIX, SOCK_STREAM));
      srv.bind(address);
      srv.listen();
      const c = track(t, new Socket(AF_UNIX, SOCK_STREAM));
      c.connect(address);
      const [conn] = srv.accept();
      track(t, conn);
      c.sendall(Buffer.from('unix'));
      assert.equal(conn.recv(10).toString(), 'unix');
      assert.deepEqual(c.getpeername(), address);
    }
  });

  test('IPv6 addresses are 4-tuples', { skip: !HAS_IPV6 }, (t) => {
    const srv = track(t, createServerSocket(['::1', 0], { family: AF_INET6 }));
    const name = srv.getsockname() as [string, number, number, number];
    assert.equal(name.length, 4);
    assert.equal(name[0], '::1');
    const c = track(t, new Socket(AF_INET6, SOCK_STREAM));
    c.connect(['::1', name[1]]);
    const [conn] = srv.accept();
    track(t, conn);
    assert.equal((conn.getpeername() as unknown[]).length, 4);
  });

  test('argument errors', (t) => {
    const s = track(t, new Socket());
    assert.throws(() => s.send('text' as unknown as Buffer), InvalidArgTypeError);
    assert.throws(() => new Socket('x' as unknown as number), InvalidArgTypeError);
    assert.throws(() => s.bind(['localhost', 0]), ValueError);
  });
});

describe('createServerSocket', () => {
  test('binds with SO_REUSEADDR, listens, and sets SO_REUSEPORT when asked', (t) => {
    const a = track(t, createServerSocket(['127.0.0.1', 0], { reusePort: true }));
    const port = (a.getsockname() as [string, number])[1];
    assert.equal(a.getsockopt(SOL_SOCKET, SO_REUSEPORT), 1);
    assert.equal(a.getsockopt(SOL_SOCKET, native.constants.SO_ACCEPTCONN), 1);
    // A second socket with SO_REUSEPORT may listen on the same port; without it, the port is in use.
    const b = track(t, createServerSocket(['127.0.0.1', port], { reusePort: true }));
    assert.equal((b.getsockname() as [string, number])[1], port);
    assert.throws(
      () => createServerSocket(['127.0.0.1', port]),
      (err: unknown) => {
        code('EADDRINUSE')(err);
        assert.match((err as Error).message, /while attempting to bind on address \('127\.0\.0\.1', \d+\)/);
        return true;
      },
    );
  });

  test('dualstackIpv6 needs AF_INET6', () => {
    assert.throws(() => createServerSocket(['', 0], { dualstackIpv6: true }), /dualstack_ipv6 requires AF_INET6/);
  });
});

describe('TransportSocket', () => {
  test('reads and sets options of the socket it shows, but refuses to make it blocking', (t) => {
    const [a] = track(t, socketpair());
    const view = new TransportSocket(a.fileno());
    assert.equal(view.family, AF_UNIX);
    view.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1);
    assert.equal(view.getsockopt(SOL_SOCKET, SO_KEEPALIVE), 1);
    assert.equal(view.gettimeout(), 0);
    view.settimeout(0);
    view.setblocking(false);
    assert.throws(() => view.settimeout(null), ValueError);
    assert.throws(() => view.setblocking(true), ValueError);
    const v = view as unknown as Record<string, unknown>;
    for (const method of ['send', 'recv', 'close', 'accept', 'detach']) assert.equal(v[method], undefined, method);
  });
});
