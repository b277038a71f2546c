/**
 * reusePort on Node 20 (SO_REUSEPORT through loopwork's sockets, handed to the server), and the `sock` parameter
 * of the server and connection methods taking a loopwork `Socket`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AF_INET,
  AF_UNIX,
  DatagramProtocol,
  Protocol,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_REUSEPORT,
  Socket,
  createServerSocket,
  socketpair,
} from '@loopwork/server';
import type { Address, BaseTransport, DatagramTransport, Transport } from '@loopwork/server';
import { Recorder, nodeClient, portOf, readAll, runLoop, settle } from './helpers.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/reuse-port-server.ts', import.meta.url));

/** Starts a fixture server process; resolves with its pid and port once it listens. */
async function startServer(t: TestContext, port: number, kind: 'tcp' | 'udp'): Promise<[ChildProcess, number]> {
  const child = spawn(
    process.execPath,
    ['--conditions=loopwork-source', '--import', 'tsx', SCRIPT, String(port), kind],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  t.after(() => {
    child.stdin!.end();
    child.kill();
  });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => assert.fail(`server exited with ${String(code)}`)),
  ])) as [string];
  const m = /^listening (\d+)$/.exec(line);
  assert.ok(m, line);
  return [child, Number(m[1])];
}

/** Connects to `port` until both pids answered (each connection from a new source port), at most `limit` times. */
async function pidsSeen(port: number, want: Set<string>, limit: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < limit && [...want].some((p) => !seen.has(p)); i++) {
    const s = await nodeClient(port);
    const pid = (await readAll(s)).toString();
    s.destroy();
    seen.set(pid, (seen.get(pid) ?? 0) + 1);
  }
  return seen;
}

describe('reusePort', () => {
  test('two processes listen on the same port; the kernel spreads connections over both', async (t) => {
    const [a, port] = await startServer(t, 0, 'tcp');
    const [b, port2] = await startServer(t, port, 'tcp');
    assert.equal(port2, port);
    const want = new Set([String(a.pid), String(b.pid)]);
    const seen = await pidsSeen(port, want, 400);
    assert.deepEqual(new Set(seen.keys()), want, `answers per pid: ${JSON.stringify([...seen])}`);
  });

  test('two processes share a UDP port with reusePort: both receive datagrams', async (t) => {
    const [a, port] = await startServer(t, 0, 'udp');
    const [b] = await startServer(t, port, 'udp');
    const want = new Set([String(a.pid), String(b.pid)]);
    const seen = new Set<string>();
    // Each client socket has its own source port: the kernel's hash sends some to each.
    for (let i = 0; i < 400 && seen.size < 2; i++) {
      const c = dgram.createSocket('udp4');
      c.send('who', port, '127.0.0.1');
      const [msg] = (await once(c, 'message')) as [Buffer];
      seen.add(msg.toString());
      c.close();
    }
    assert.deepEqual(seen, want);
  });

  test('in one process: a second server binds the port only with reusePort', () =>
    runLoop(async (loop) => {
      const a = await loop.createServer(() => new Recorder(loop), '127.0.0.1', 0, { reusePort: true });
      const port = portOf(a.sockets[0]!.getsockname());
      assert.equal(a.sockets[0]!.getsockopt(SOL_SOCKET, SO_REUSEPORT), 1);
      const b = await loop.createServer(() => new Recorder(loop), '127.0.0.1', port, { reusePort: true });
      await assert.rejects(
        loop.createServer(() => new Recorder(loop), '127.0.0.1', port),
        (err: unknown) => {
          assert.equal((err as { code?: string }).code, 'EADDRINUSE');
          return true;
        },
      );
      for (const s of [a, b]) {
        s.close();
        await s.waitClosed();
      }
    }));
});

describe('sock: a loopwork Socket', () => {
  test('createServer takes a listening Socket (ownership passes: the Socket is detached)', () =>
    runLoop(async (loop) => {
      const sock = createServerSocket(['127.0.0.1', 0], { reusePort: true });
      const port = portOf(sock.getsockname());
      const server = await loop.createServer(() => new Echo(), { sock });
      assert.equal(sock.fileno(), -1, 'the server owns the fd now');
      assert.equal(portOf(server.sockets[0]!.getsockname()), port);
      const c = await nodeClient(port);
      c.end('echo me');
      assert.equal((await readAll(c)).toString(), 'echo me');
      server.close();
      await server.waitClosed();
    }));

  test('createConnection and connectAcceptedSocket take connected Sockets', () =>
    runLoop(async (loop) => {
      const srv = createServerSocket(['127.0.0.1', 0]);
      try {
        const client = new Socket(AF_INET, SOCK_STREAM);
        client.connect(['127.0.0.1', portOf(srv.getsockname())]);
        const [conn] = srv.accept();
        const serverProto = new Echo();
        const [serverTransport] = await loop.connectAcceptedSocket(() => serverProto, conn);
        assert.equal(conn.fileno(), -1);
        const proto = new Recorder(loop);
        const [transport] = await loop.createConnection(() => proto, { sock: client });
        assert.equal(client.fileno(), -1);
        transport.write(Buffer.from('round trip'));
        await proto.received(10);
        assert.equal(proto.text(), 'round trip');
        transport.close();
        await settle(proto.lost);
        serverTransport.close();
      } finally {
        srv.close();
      }
    }));

  test('createUnixServer and createUnixConnection take Unix Sockets', (t) =>
    runLoop(async (loop) => {
      const dir = fs.mkdtempSync(join(tmpdir(), 'lw-sock-'));
      t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
      const path = join(dir, 'srv.sock');
      const listening = new Socket(AF_UNIX, SOCK_STREAM);
      listening.bind(path);
      listening.listen();
      const server = await loop.createUnixServer(() => new Echo(), { sock: listening });
      assert.equal(listening.fileno(), -1);
      const client = new Socket(AF_UNIX, SOCK_STREAM);
      client.connect(path);
      const proto = new Recorder(loop);
      const [transport] = await loop.createUnixConnection(() => proto, { sock: client });
      transport.write(Buffer.from('unix'));
      await proto.received(4);
      assert.equal(proto.text(), 'unix');
      transport.close();
      await settle(proto.lost);
      server.close();
      await server.waitClosed();
    }));

  test("a refused Socket stays the caller's", () =>
    runLoop(async (loop) => {
      const [a, b] = socketpair(AF_UNIX, SOCK_DGRAM);
      try {
        await assert.rejects(
          loop.createConnection(() => new Recorder(loop), { sock: a }),
          /Stream Socket was expected/,
        );
        assert.ok(a.fileno() >= 0, 'not detached');
      } finally {
        a.close();
        b.close();
      }
    }));

  test('createDatagramEndpoint takes a UDP Socket', () =>
    runLoop(async (loop) => {
      const sock = new Socket(AF_INET, SOCK_DGRAM);
      sock.bind(['127.0.0.1', 0]);
      const port = portOf(sock.getsockname());
      const got = loop.createFuture<[Buffer, Address]>();
      class Rx extends DatagramProtocol {
        override datagramReceived(data: Buffer, addr: Address): void {
          if (!got.done()) got.setResult([data, addr]);
        }
      }
      const [transport] = await loop.createDatagramEndpoint(() => new Rx(), { sock });
      assert.equal(sock.fileno(), -1);
      const c = dgram.createSocket('udp4');
      c.send('datagram', port, '127.0.0.1');
      const [data] = await got;
      assert.equal(data.toString(), 'datagram');
      c.close();
      (transport as DatagramTransport).close();
    }));
});

/** Echoes what it receives, closes at EOF. */
class Echo extends Protocol {
  #t: Transport | null = null;
  override connectionMade(t: BaseTransport): void {
    this.#t = t as Transport;
  }
  override dataReceived(data: Buffer): void {
    this.#t!.write(data);
  }
  override eofReceived(): boolean {
    this.#t!.close();
    return false;
  }
}
