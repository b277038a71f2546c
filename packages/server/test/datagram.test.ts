import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import {
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdtempSync,
  open as fsOpen,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  DatagramProtocol,
  NativeDatagramTransport,
  SOCK_DGRAM,
  Socket,
  UDPTransport,
  native,
  newEventLoop,
  sleep,
} from '@loopwork/server';
import type { Address, BaseEventLoop, BaseTransport, DatagramSocketTransport, Future } from '@loopwork/server';
import { runLoop, settle } from './helpers.js';

const b = (s: string): Buffer => Buffer.from(s);
type Event = ['made', BaseTransport] | ['datagram', Buffer, Address] | ['error', Error] | ['lost', Error | null];

/** Records every callback in order, and lets a test wait for the next one of a kind. */
class Recorder extends DatagramProtocol {
  readonly events: Event[] = [];
  transport: DatagramSocketTransport | null = null;
  #waiters: [Event[0], Future<Event>][] = [];
  readonly #loop: BaseEventLoop;
  #seen = 0;
  constructor(loop: BaseEventLoop) {
    super();
    this.#loop = loop;
  }
  #push(ev: Event): void {
    this.events.push(ev);
    this.#wake();
  }
  #wake(): void {
    for (const w of [...this.#waiters]) {
      const idx = this.events.findIndex((e, i) => i >= this.#seen && e[0] === w[0]);
      if (idx === -1) continue;
      this.#seen = idx + 1;
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w[1].setResult(this.events[idx]!);
    }
  }
  /** The next event of `kind` after the last one waited for. */
  next<K extends Event[0]>(kind: K): Promise<Extract<Event, [K, ...unknown[]]>> {
    const fut = this.#loop.createFuture<Event>();
    this.#waiters.push([kind, fut]);
    this.#wake();
    return settle(fut) as Promise<Extract<Event, [K, ...unknown[]]>>;
  }
  override connectionMade(transport: BaseTransport): void {
    this.transport = transport as DatagramSocketTransport;
    this.#push(['made', transport]);
  }
  override datagramReceived(data: Buffer, addr: Address): void {
    this.#push(['datagram', data, addr]);
  }
  override errorReceived(exc: Error): void {
    this.#push(['error', exc]);
  }
  override connectionLost(exc: Error | null): void {
    this.#push(['lost', exc]);
  }
}

/** Sends every datagram back where it came from. */
class Echo extends Recorder {
  override datagramReceived(data: Buffer, addr: Address): void {
    super.datagramReceived(data, addr);
    this.transport!.sendto(data, addr);
  }
}

async function closeEndpoint(transport: DatagramSocketTransport, protocol: Recorder): Promise<void> {
  const lost = protocol.next('lost');
  transport.close();
  await lost;
}

/** A UDP port nobody listens on (bound, then closed). */
async function closedUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Blocks every libuv threadpool thread (each in an open() of a FIFO) until the returned function is called. */
function occupyThreadpool(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'lw-fifo-'));
  const fifo = join(dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  const readers: Promise<number>[] = [];
  for (let i = 0; i < Number(process.env.UV_THREADPOOL_SIZE ?? 4); i++) {
    readers.push(new Promise((resolve, reject) => fsOpen(fifo, 'r', (err, fd) => (err ? reject(err) : resolve(fd)))));
  }
  return () => {
    // A writer that does not wait: the readers blocked in open() are there, so it opens, and they all return.
    closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
    void Promise.all(readers).then((fds) => {
      for (const fd of fds) closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    });
  };
}

function hasIPv6(): boolean {
  try {
    const s = native.socket(AF_INET6, SOCK_DGRAM, 0);
    try {
      native.bind(s, ['::1', 0]);
      return true;
    } finally {
      native.close(s);
    }
  } catch {
    return false;
  }
}

describe('createDatagramEndpoint over UDP', () => {
  test('echo round trip between a loopwork server and a connected loopwork client', () =>
    runLoop(async (loop, errors) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Echo(loop), { localAddr: ['127.0.0.1', 0] });
      assert.ok(st instanceof UDPTransport);
      const saddr = st.getExtraInfo('sockname') as [string, number];
      assert.equal(saddr[0], '127.0.0.1');
      assert.ok(saddr[1] > 0);
      assert.equal(st.getExtraInfo('peername'), null);

      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), { remoteAddr: saddr });
      assert.deepEqual(ct.getExtraInfo('peername'), saddr);
      assert.equal(cp.events[0]![0], 'made');
      assert.equal(cp.events[0]![1], ct);

      for (const msg of ['hello', '', 'x'.repeat(60_000)]) {
        ct.sendto(b(msg));
        const [, data, addr] = await cp.next('datagram');
        assert.equal(data.toString(), msg);
        assert.deepEqual(addr, saddr);
      }
      const [, first, from] = await sp.next('datagram');
      assert.equal(first.toString(), 'hello');
      assert.deepEqual(from, ct.getExtraInfo('sockname'));
      assert.equal(ct.getWriteBufferSize(), 0);

      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
      assert.deepEqual(
        cp.events.map((e) => e[0]),
        ['made', 'datagram', 'datagram', 'datagram', 'lost'],
      );
      assert.deepEqual(cp.events.at(-1), ['lost', null]);
      assert.deepEqual(errors, []);
    }));

  test('getExtraInfo("socket") is a read-only view of a datagram socket', () =>
    runLoop(async (loop) => {
      const [t, p] = await loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] });
      const sock = t.getExtraInfo('socket') as any;
      assert.equal(sock.type, SOCK_DGRAM);
      assert.equal(sock.family, AF_INET);
      assert.equal(sock.proto, 17);
      assert.ok(sock.fileno() > 0);
      assert.deepEqual(sock.getsockname(), t.getExtraInfo('sockname'));
      assert.equal(sock.getpeername(), null);
      assert.equal(typeof sock.close, 'undefined');
      // Socket options are reachable, as on asyncio's TransportSocket (SO_RCVBUF: the kernel doubles it).
      sock.setsockopt(native.constants.SOL_SOCKET, native.constants.SO_RCVBUF, 65536);
      assert.equal(sock.getsockopt(native.constants.SOL_SOCKET, native.constants.SO_RCVBUF), 131072);
      assert.match(
        inspect(sock),
        /^<DatagramTransportSocket fd=\d+, family=2, type=2, proto=17, laddr=\('127\.0\.0\.1', \d+\)>$/,
      );
      assert.match(inspect(t), /^<UDPTransport fd=\d+ laddr=\('127\.0\.0\.1', \d+\) bufsize=0>$/);
      await closeEndpoint(t, p);
      assert.equal(sock.fileno(), -1);
      assert.match(inspect(t), /^<UDPTransport closed fd=-1/);
    }));

  test('a connected endpoint refuses another destination, accepts its own or none', () =>
    runLoop(async (loop) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] });
      const saddr = st.getExtraInfo('sockname') as [string, number];
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        remoteAddr: ['127.0.0.1', saddr[1]],
      });
      assert.throws(() => ct.sendto(b('x'), ['127.0.0.1', saddr[1] + 1]), {
        name: 'ValueError',
        message: `Invalid address: must be None or ('127.0.0.1', ${saddr[1]})`,
      });
      assert.throws(() => ct.sendto('text' as never), TypeError);
      ct.sendto(b('same'), ['127.0.0.1', saddr[1]]);
      ct.sendto(b('none'), null);
      ct.sendto(new Uint8Array([1, 2, 3]));
      assert.equal((await sp.next('datagram'))[1].toString(), 'same');
      assert.equal((await sp.next('datagram'))[1].toString(), 'none');
      assert.deepEqual([...(await sp.next('datagram'))[1]], [1, 2, 3]);
      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
    }));

  test('an unconnected endpoint needs an address for each datagram', () =>
    runLoop(async (loop) => {
      const [t, p] = await loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] });
      assert.throws(() => t.sendto(b('x')), { name: 'TypeError', message: /needs an address/ });
      assert.throws(() => t.sendto(b('x'), '/not/udp'), { name: 'TypeError', message: /UDP address/ });
      await closeEndpoint(t, p);
    }));

  test('sendto() a host name that does not resolve: errorReceived gets a gaierror; the endpoint stays open', () =>
    runLoop(async (loop) => {
      const [t, p] = await loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] });
      t.sendto(b('x'), ['nonexistent.invalid', 9]);
      const [, exc] = await p.next('error');
      // asyncio's sendto() resolves the name with socket.getaddrinfo: socket.gaierror reaches error_received().
      assert.equal(exc.name, 'gaierror');
      assert.equal((exc as Error & { code?: string }).code, 'EAI_NONAME');
      assert.equal(exc.message, '[Errno -2] Name or service not known');
      assert.equal(t.isClosing(), false);
      await closeEndpoint(t, p);
    }));

  test('errorReceived gets ECONNREFUSED on a connected socket after the ICMP port unreachable', () =>
    runLoop(async (loop, errors) => {
      const port = await closedUdpPort();
      const [t, p] = await loop.createDatagramEndpoint(() => new Recorder(loop), { remoteAddr: ['127.0.0.1', port] });
      t.sendto(b('anyone?'));
      const [, exc] = await p.next('error');
      assert.equal((exc as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      // The endpoint stays open, and works on.
      assert.equal(t.isClosing(), false);
      t.sendto(b('again'));
      assert.equal(((await p.next('error'))[1] as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      await closeEndpoint(t, p);
      assert.deepEqual(errors, []);
    }));

  test('allowBroadcast sets SO_BROADCAST, and with remoteAddr the socket is not connected', () =>
    runLoop(async (loop) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] });
      const saddr = st.getExtraInfo('sockname') as [string, number];
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        remoteAddr: saddr,
        allowBroadcast: true,
      });
      const fd = (ct.getExtraInfo('socket') as any).fileno();
      assert.equal(native.getsockopt(fd, native.constants.SOL_SOCKET, native.constants.SO_BROADCAST), 1);
      assert.equal(ct.getExtraInfo('peername'), null);
      const sfd = (st.getExtraInfo('socket') as any).fileno();
      assert.equal(native.getsockopt(sfd, native.constants.SOL_SOCKET, native.constants.SO_BROADCAST), 0);
      // Not connected, yet sendto() defaults to remoteAddr and refuses another one.
      ct.sendto(b('to remote'));
      assert.equal((await sp.next('datagram'))[1].toString(), 'to remote');
      assert.throws(() => ct.sendto(b('x'), ['127.0.0.1', 1]), { name: 'ValueError' });
      const [t2, p2] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        localAddr: ['127.0.0.1', 0],
        allowBroadcast: true,
      });
      const fd2 = (t2.getExtraInfo('socket') as any).fileno();
      assert.equal(native.getsockopt(fd2, native.constants.SOL_SOCKET, native.constants.SO_BROADCAST), 1);
      await closeEndpoint(t2, p2);
      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
    }));

  test('reusePort lets two endpoints bind one port; without it the second gets EADDRINUSE', () =>
    runLoop(async (loop) => {
      const [t1, p1] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        localAddr: ['127.0.0.1', 0],
        reusePort: true,
      });
      const port = (t1.getExtraInfo('sockname') as [string, number])[1];
      const fd = (t1.getExtraInfo('socket') as any).fileno();
      assert.equal(native.getsockopt(fd, native.constants.SOL_SOCKET, native.constants.SO_REUSEPORT), 1);
      const [t2, p2] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        localAddr: ['127.0.0.1', port],
        reusePort: true,
      });
      assert.equal((t2.getExtraInfo('sockname') as [string, number])[1], port);
      await assert.rejects(
        loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', port] }),
        { code: 'EADDRINUSE' },
      );
      await closeEndpoint(t2, p2);
      await closeEndpoint(t1, p1);
    }));

  test('a host name is resolved for remoteAddr and localAddr', () =>
    runLoop(async (loop) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Echo(loop), { localAddr: ['localhost', 0] });
      const saddr = st.getExtraInfo('sockname') as [string, number];
      assert.equal(saddr[0], '127.0.0.1');
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        remoteAddr: ['localhost', saddr[1]],
      });
      ct.sendto(b('named'));
      assert.deepEqual((await cp.next('datagram')).slice(1), [b('named'), saddr]);
      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
    }));

  test('IPv6: addresses are 4-tuples', { skip: !hasIPv6() && 'no ::1' }, () =>
    runLoop(async (loop) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Echo(loop), { localAddr: ['::1', 0] });
      const saddr = st.getExtraInfo('sockname') as [string, number, number, number];
      assert.deepEqual(saddr, ['::1', saddr[1], 0, 0]);
      assert.equal((st.getExtraInfo('socket') as any).family, AF_INET6);
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        remoteAddr: ['::1', saddr[1]],
        family: AF_INET6,
      });
      ct.sendto(b('six'));
      const [, data, addr] = await cp.next('datagram');
      assert.equal(data.toString(), 'six');
      assert.deepEqual(addr, ['::1', saddr[1], 0, 0]);
      // A connected endpoint's address is the resolved 4-tuple: a 2-tuple is another address, as in asyncio.
      assert.throws(() => ct.sendto(b('x'), ['::1', saddr[1]]), { name: 'ValueError' });
      ct.sendto(b('x'), ['::1', saddr[1], 0, 0]);
      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
    }),
  );

  test('only a family: an unbound socket that the first sendto binds', () =>
    runLoop(async (loop) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Echo(loop), { localAddr: ['127.0.0.1', 0] });
      const saddr = st.getExtraInfo('sockname') as [string, number];
      const [t, p] = await loop.createDatagramEndpoint(() => new Recorder(loop), { family: AF_INET });
      assert.deepEqual(t.getExtraInfo('sockname'), ['0.0.0.0', 0]);
      t.sendto(b('ping'), saddr);
      const [, data, addr] = await p.next('datagram');
      assert.equal(data.toString(), 'ping');
      assert.deepEqual(addr, saddr);
      await closeEndpoint(t, p);
      await closeEndpoint(st, sp);
    }));

  test('close() after sendto still sends; later sends are dropped; abort() drops at once', () =>
    runLoop(async (loop, errors) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] });
      const saddr = st.getExtraInfo('sockname') as [string, number];
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), { remoteAddr: saddr });
      ct.sendto(b('last words'));
      const lost = cp.next('lost');
      ct.close();
      ct.close();
      assert.equal(ct.isClosing(), true);
      assert.equal((await sp.next('datagram'))[1].toString(), 'last words');
      await lost;
      // Dropped; from the fifth on, each one logs asyncio's warning.
      const warnings: unknown[] = [];
      const warn = loop.logger.warn.bind(loop.logger);
      loop.logger.warn = ((...args: unknown[]) => void warnings.push(args)) as typeof warn;
      for (let i = 0; i < 7; i++) ct.sendto(b('dropped'));
      loop.logger.warn = warn;
      assert.deepEqual(warnings, Array(3).fill(['socket.send() raised exception.']));
      const [at, ap] = await loop.createDatagramEndpoint(() => new Recorder(loop), { remoteAddr: saddr });
      const alost = ap.next('lost');
      at.abort();
      assert.deepEqual(await alost, ['lost', null]);
      await closeEndpoint(st, sp);
      assert.equal(cp.events.filter((e) => e[0] === 'lost').length, 1);
      assert.deepEqual(errors, []);
    }));

  test('close() right after sendto() to a host name, or from an unbound endpoint, still sends the datagram', () =>
    runLoop(async (loop, errors) => {
      const [st, sp] = await loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] });
      const [, port] = st.getExtraInfo('sockname') as [string, number];
      // dgram looks the name up (and binds an unbound socket) before the kernel has the datagram; asyncio's
      // sendto() resolves and sends before it returns. A busy threadpool holds the lookup back.
      for (const options of [{ family: AF_INET }, { localAddr: ['127.0.0.1', 0] as const }]) {
        const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), options);
        const release = occupyThreadpool();
        try {
          ct.sendto(b('by name'), ['localhost', port]);
          ct.close();
          await sleep(0.05);
          assert.deepEqual(cp.events.at(-1)?.[0], 'made', 'connectionLost waits for the datagram to be sent');
        } finally {
          release();
        }
        assert.deepEqual(await cp.next('lost'), ['lost', null]);
        for (let i = 0; i < 100 && sp.events.length === 1; i++) await sleep(0.01);
        assert.deepEqual(sp.events.at(-1)?.slice(0, 2), ['datagram', b('by name')]);
        sp.events.pop();
      }
      await closeEndpoint(st, sp);
      assert.deepEqual(errors, []);
    }));
  test('an exception in datagramReceived goes to the exception handler; the endpoint stays open', () =>
    runLoop(async (loop, errors) => {
      const boom = new Error('boom');
      class Failing extends Recorder {
        override datagramReceived(data: Buffer, addr: Address): void {
          super.datagramReceived(data, addr);
          if (data.toString() === 'fail') throw boom;
        }
      }
      const [st, sp] = await loop.createDatagramEndpoint(() => new Failing(loop), { localAddr: ['127.0.0.1', 0] });
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        remoteAddr: st.getExtraInfo('sockname') as [string, number],
      });
      ct.sendto(b('fail'));
      await sp.next('datagram');
      ct.sendto(b('fine'));
      assert.equal((await sp.next('datagram'))[1].toString(), 'fine');
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.exception, boom);
      assert.equal(errors[0]!.transport, st);
      assert.equal(errors[0]!.protocol, sp);
      assert.equal(st.isClosing(), false);
      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
    }));

  test('sock: a bound dgram.Socket, or the fd of a native UDP socket', () =>
    runLoop(async (loop) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1');
      await once(s, 'listening');
      const [t1, p1] = await loop.createDatagramEndpoint(() => new Echo(loop), { sock: s });
      const addr1 = t1.getExtraInfo('sockname') as [string, number];
      assert.equal(addr1[1], s.address().port);

      const fd = native.socket(AF_INET, SOCK_DGRAM, 0);
      native.bind(fd, ['127.0.0.1', 0]);
      const [t2, p2] = await loop.createDatagramEndpoint(() => new Recorder(loop), { sock: fd });
      assert.ok(t2 instanceof UDPTransport);
      t2.sendto(b('via fd'), addr1);
      assert.equal((await p2.next('datagram'))[1].toString(), 'via fd');
      await closeEndpoint(t2, p2);
      await closeEndpoint(t1, p1);
      assert.throws(() => s.address()); // the transport owned it, and closed it
    }));

  test('sock: a connected UDP socket keeps its peer; sendto() without an address goes there', () =>
    runLoop(async (loop) => {
      const [server, sp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        localAddr: ['127.0.0.1', 0],
      });
      const addr = server.getExtraInfo('sockname') as [string, number];
      const fd = native.socket(AF_INET, SOCK_DGRAM, 0);
      native.connect(fd, addr);
      const [t, p] = await loop.createDatagramEndpoint(() => new Recorder(loop), { sock: fd });
      assert.deepEqual(t.getExtraInfo('peername'), addr);
      t.sendto(b('to the peer'));
      assert.equal((await sp.next('datagram'))[1].toString(), 'to the peer');
      await closeEndpoint(t, p);
      await closeEndpoint(server, sp);
    }));

  test('sendto() on an unconnected endpoint: the caller may reuse its buffer at once', () =>
    runLoop(async (loop) => {
      const [server, sp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        localAddr: ['127.0.0.1', 0],
      });
      const addr = server.getExtraInfo('sockname') as [string, number];
      const [t, p] = await loop.createDatagramEndpoint(() => new Recorder(loop), { family: AF_INET });
      const buf = Buffer.alloc(5);
      for (const word of ['one--', 'two--', 'three']) {
        buf.write(word);
        t.sendto(buf, addr);
      }
      const got: string[] = [];
      for (let i = 0; i < 3; i++) got.push((await sp.next('datagram'))[1].toString());
      assert.deepEqual(got, ['one--', 'two--', 'three']);
      await closeEndpoint(t, p);
      await closeEndpoint(server, sp);
    }));

  test('a protocol factory that throws with sock given closes the socket once (no abort)', () =>
    runLoop(async (loop) => {
      const before = countFds();
      for (const make of [() => new Socket(AF_INET, SOCK_DGRAM), () => native.socket(AF_INET, SOCK_DGRAM, 0)]) {
        const sock = make();
        await assert.rejects(
          loop.createDatagramEndpoint(
            () => {
              throw new Error('no protocol');
            },
            { sock },
          ),
          { message: 'no protocol' },
        );
      }
      await sleep(0.05);
      for (let i = 0; i < 100 && countFds() > before; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(countFds(), before);
    }));

  test('an endpoint left open does not keep the process alive once run() is over (UDP and Unix)', () => {
    const r = spawnSync(
      process.execPath,
      ['--conditions=loopwork-source', '--import', 'tsx', '--input-type=module', '-e', LEFT_OPEN_SCRIPT],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.signal, null, 'the child exited on its own');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'run() returned');
  });

  test('a protocol factory that throws leaves no socket open', () =>
    runLoop(async (loop) => {
      const before = countFds();
      await assert.rejects(
        loop.createDatagramEndpoint(
          () => {
            throw new Error('no protocol');
          },
          { localAddr: ['127.0.0.1', 0] },
        ),
        { message: 'no protocol' },
      );
      // The dgram socket closes asynchronously: wait for its handle to go.
      for (let i = 0; i < 100 && countFds() > before; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(countFds(), before);
    }));
});

function countFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('createDatagramEndpoint argument errors (asyncio messages)', () => {
  test('the checks asyncio makes', () =>
    runLoop(async (loop) => {
      const f = () => new Recorder(loop);
      await assert.rejects(loop.createDatagramEndpoint(f, { localAddr: ['127.0.0.1', 0], reuseAddress: true }), {
        name: 'ValueError',
        message:
          'Passing `reuseAddress: true` is no longer supported, as the usage of SO_REUSEPORT in UDP poses a ' +
          'significant security concern.',
      });
      await assert.rejects(loop.createDatagramEndpoint(f), {
        name: 'ValueError',
        message: 'unexpected address family',
      });
      await assert.rejects(loop.createDatagramEndpoint(f, { local_addr: ['127.0.0.1', 0] } as never), {
        name: 'TypeError',
        message: "createDatagramEndpoint() got an unexpected keyword argument 'local_addr'",
      });
      await assert.rejects(loop.createDatagramEndpoint(f, { localAddr: ['127.0.0.1', 0, 0] as never }), {
        name: 'TypeError',
        message: '2-tuple is expected',
      });
      await assert.rejects(loop.createDatagramEndpoint(f, { localAddr: '/tmp/x' }), {
        name: 'TypeError',
        message: '2-tuple is expected',
      });
      await assert.rejects(loop.createDatagramEndpoint(f, { family: AF_UNIX, localAddr: ['a', 1] }), {
        name: 'TypeError',
        message: 'string is expected',
      });
      const s = dgram.createSocket('udp4');
      await assert.rejects(
        loop.createDatagramEndpoint(f, { sock: s, localAddr: ['127.0.0.1', 0], allowBroadcast: true }),
        {
          name: 'ValueError',
          message:
            "socket modifier keyword arguments can not be used when sock is specified. (localAddr=('127.0.0.1', 0), " +
            'allowBroadcast=true)',
        },
      );
      s.close();
      const tcp = new net.Socket();
      await assert.rejects(loop.createDatagramEndpoint(f, { sock: tcp as never }), {
        name: 'ValueError',
        message: /^A datagram socket was expected, got /,
      });
      const sfd = native.socket(AF_INET, native.constants.SOCK_STREAM, 0);
      await assert.rejects(loop.createDatagramEndpoint(f, { sock: sfd }), {
        name: 'ValueError',
        message: /^A datagram socket was expected, got <socket fd=\d+, type=1>$/,
      });
      native.close(sfd);
      await assert.rejects(loop.createDatagramEndpoint(42 as never), TypeError);
      await assert.rejects(
        loop.createDatagramEndpoint(f, { localAddr: ['no-such-host.invalid', 0] }),
        (e: any) => e.name === 'gaierror',
      );
    }));
});

describe('createDatagramEndpoint over Unix datagram sockets (native)', () => {
  test('echo round trip between bound paths, stale socket files replaced', (t) =>
    runLoop(async (loop, errors) => {
      const dir = mkdtempSync(join(tmpdir(), 'loopwork-dgram-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const spath = join(dir, 'server.sock');
      const cpath = join(dir, 'client.sock');
      // A stale socket file where the server binds: asyncio removes it first.
      const stale = native.socket(AF_UNIX, SOCK_DGRAM, 0);
      native.bind(stale, spath);
      native.close(stale);
      assert.ok(existsSync(spath));

      const [st, sp] = await loop.createDatagramEndpoint(() => new Echo(loop), { family: AF_UNIX, localAddr: spath });
      assert.ok(st instanceof NativeDatagramTransport);
      assert.equal(st.getExtraInfo('sockname'), spath);
      assert.equal((st.getExtraInfo('socket') as any).family, AF_UNIX);
      assert.equal((st.getExtraInfo('socket') as any).proto, 0);
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        family: AF_UNIX,
        localAddr: cpath,
        remoteAddr: spath,
      });
      assert.equal(ct.getExtraInfo('peername'), spath);
      for (const msg of ['unix', '', 'y'.repeat(100_000)]) {
        ct.sendto(b(msg));
        const [, data, addr] = await cp.next('datagram');
        assert.equal(data.toString(), msg);
        assert.equal(addr, spath);
      }
      assert.equal((await sp.next('datagram'))[2], cpath);
      assert.throws(() => ct.sendto(b('x'), join(dir, 'other')), {
        message: `Invalid address: must be None or '${spath}'`,
      });
      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
      assert.deepEqual(errors, []);
    }));

  test('a regular file where the socket should go is not removed', (t) =>
    runLoop(async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), 'loopwork-dgram-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const path = join(dir, 'file');
      writeFileSync(path, 'data');
      await assert.rejects(
        loop.createDatagramEndpoint(() => new Recorder(loop), { family: AF_UNIX, localAddr: path }),
        { code: 'EADDRINUSE' },
      );
      assert.ok(existsSync(path));
    }));

  test('abstract addresses, an unnamed sender, and the sock argument', () =>
    runLoop(async (loop) => {
      const name = `\0loopwork-test-${process.pid}-${Date.now()}`;
      const [st, sp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        family: AF_UNIX,
        localAddr: name,
      });
      const fd = native.socket(AF_UNIX, SOCK_DGRAM, 0);
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), { sock: fd });
      assert.ok(ct instanceof NativeDatagramTransport);
      ct.sendto(b('from nobody'), name);
      const [, data, addr] = await sp.next('datagram');
      assert.equal(data.toString(), 'from nobody');
      assert.equal(addr, ''); // an unnamed sender
      await closeEndpoint(ct, cp);
      await closeEndpoint(st, sp);
    }));

  test('flow control: a reader that does not read pauses the writer, reading resumes it', (t) =>
    runLoop(async (loop) => {
      const dir = mkdtempSync(join(tmpdir(), 'loopwork-dgram-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const spath = join(dir, 'sink.sock');
      // A receiver that reads nothing until told to: a raw socket.
      const sink = native.socket(AF_UNIX, SOCK_DGRAM, 0);
      native.bind(sink, spath);
      t.after(() => native.close(sink));
      class Flow extends Recorder {
        flow: string[] = [];
        resumed: Future<void> | null = null;
        override pauseWriting(): void {
          this.flow.push('pause');
        }
        override resumeWriting(): void {
          this.flow.push('resume');
          this.resumed?.setResult();
        }
      }
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Flow(loop), { family: AF_UNIX, remoteAddr: spath });
      ct.setWriteBufferLimits(4096, 1024);
      const datagram = Buffer.alloc(1000, 1);
      let sent = 0;
      while (cp.flow.length === 0 && sent < 10_000) {
        ct.sendto(datagram);
        sent++;
      }
      assert.deepEqual(cp.flow, ['pause']);
      assert.ok(ct.getWriteBufferSize() > 4096);
      assert.equal(ct.getWriteBufferSize() % 1008, 0); // each datagram counts 8 more
      cp.resumed = loop.createFuture<void>();
      // Drain the sink; the transport sends its queue as room appears.
      const buf = Buffer.alloc(2000);
      let got = 0;
      while (got < sent) {
        const r = native.recvfrom(sink, buf);
        if (r === null) {
          await new Promise((res) => setTimeout(res, 1));
          continue;
        }
        assert.equal(r[0], 1000);
        got++;
      }
      await settle(cp.resumed);
      assert.deepEqual(cp.flow, ['pause', 'resume']);
      assert.equal(ct.getWriteBufferSize(), 0);
      await closeEndpoint(ct, cp);
    }));
});

const PY_UDP_ECHO = `
import asyncio
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.transport.sendto(data.upper(), addr)
async def main():
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=('127.0.0.1', 0))
    print(transport.get_extra_info('sockname')[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
`;

describe('interop with Python asyncio datagrams', () => {
  test('a loopwork client against a Python asyncio UDP echo server', (t) =>
    runLoop(async (loop) => {
      const child = spawn(process.env.LOOPWORK_PYTHON ?? 'python3', ['-c', PY_UDP_ECHO], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      t.after(() => child.kill());
      const [first] = (await once(child.stdout, 'data')) as [Buffer];
      const port = Number(first.toString().trim());
      const [ct, cp] = await loop.createDatagramEndpoint(() => new Recorder(loop), {
        remoteAddr: ['127.0.0.1', port],
      });
      ct.sendto(b('quack'));
      const [, data, addr] = await cp.next('datagram');
      assert.equal(data.toString(), 'QUACK');
      assert.deepEqual(addr, ['127.0.0.1', port]);
      await closeEndpoint(ct, cp);
    }));
});

describe('datagrams that arrive while the loop is stopped', () => {
  test('are kept and delivered, in order, when the loop runs again (UDP and Unix)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'loopwork-dgram-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const loop = newEventLoop();
    t.after(() => loop.close());
    const [ut, up] = await loop.runUntilComplete(() =>
      loop.createDatagramEndpoint(() => new Recorder(loop), { localAddr: ['127.0.0.1', 0] }),
    );
    const spath = join(dir, 's.sock');
    const [xt, xp] = await loop.runUntilComplete(() =>
      loop.createDatagramEndpoint(() => new Recorder(loop), { family: AF_UNIX, localAddr: spath }),
    );
    await loop.runUntilComplete(async () => {
      await up.next('made');
      await xp.next('made');
    });
    // The loop is stopped now: send from outside it.
    const sender = dgram.createSocket('udp4');
    t.after(() => sender.close());
    const port = (ut.getExtraInfo('sockname') as [string, number])[1];
    for (const m of ['a', 'b', 'c']) sender.send(m, port, '127.0.0.1');
    const usender = native.socket(AF_UNIX, SOCK_DGRAM, 0);
    t.after(() => native.close(usender));
    for (const m of ['x', 'y']) native.sendto(usender, b(m), 0, 1, spath);
    const u = ut as UDPTransport;
    const x = xt as NativeDatagramTransport;
    while (u._pending.length < 3 || !x._parked) await new Promise((r) => setImmediate(r));
    assert.equal(up.events.length, 1); // only 'made': nothing was delivered while stopped
    await loop.runUntilComplete(async () => {
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await up.next('datagram'))[1].toString());
      assert.deepEqual(got, ['a', 'b', 'c']);
      const xgot = [];
      for (let i = 0; i < 2; i++) xgot.push((await xp.next('datagram'))[1].toString());
      assert.deepEqual(xgot, ['x', 'y']);
      await closeEndpoint(ut, up);
      await closeEndpoint(xt, xp);
    });
  });
});

const NO_ADDON_SCRIPT = `
import { AF_UNIX, DatagramProtocol, newEventLoop } from '@loopwork/server';
const loop = newEventLoop();
const out = {};
await loop.runUntilComplete(async () => {
  try {
    await loop.createDatagramEndpoint(() => new DatagramProtocol(), { family: AF_UNIX, localAddr: '/tmp/never.sock' });
    out.unix = 'no error';
  } catch (e) { out.unix = [e.name, e.message]; }
  try {
    await loop.createDatagramEndpoint(() => new DatagramProtocol(), { localAddr: ['127.0.0.1', 0], reusePort: true });
    out.reusePort = 'no error';
  } catch (e) { out.reusePort = [e.name, e.code]; }
  const [t] = await loop.createDatagramEndpoint(() => new DatagramProtocol(), { localAddr: ['127.0.0.1', 0] });
  out.udp = t.getExtraInfo('sockname')[0];
  t.close();
});
loop.close();
console.log(JSON.stringify(out));
`;

const LEFT_OPEN_SCRIPT = `
import { run, getRunningLoop, DatagramProtocol, AF_UNIX } from '@loopwork/server';
await run(async () => {
  const loop = getRunningLoop();
  await loop.createDatagramEndpoint(() => new DatagramProtocol(), { localAddr: ['127.0.0.1', 0] });
  await loop.createDatagramEndpoint(() => new DatagramProtocol(), { family: AF_UNIX });
});
console.log('run() returned');
`;

describe('without the native addon', () => {
  test('UDP works; Unix datagrams and reusePort are clear errors', () => {
    const r = spawnSync(
      process.execPath,
      ['--conditions=loopwork-source', '--import', 'tsx', '--input-type=module', '-e', NO_ADDON_SCRIPT],
      { env: { ...process.env, LOOPWORK_NATIVE: '0' }, encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const out = JSON.parse(r.stdout);
    assert.equal(out.unix[0], 'NativeUnavailableError');
    assert.match(out.unix[1], /native addon is not available/);
    assert.deepEqual(out.reusePort, ['NotImplementedError', 'ERR_LOOPWORK_SOCKET_OPTION_UNAVAILABLE']);
    assert.equal(out.udp, '127.0.0.1');
  });
});
