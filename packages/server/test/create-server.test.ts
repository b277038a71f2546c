import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { AF_INET, AF_INET6, InvalidArgTypeError, OSError, Protocol, ValueError, native } from '@loopwork/server';
import type { BaseEventLoop, BaseTransport, Server, Transport } from '@loopwork/server';
import {
  Recorder,
  acceptedSocket,
  fileEventsDuring,
  nodeClient,
  portOf,
  runCommand,
  runLoop,
  settle,
} from './helpers.js';

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

/** Sends `text` to `port` on `host` and resolves with the echo. */
async function echoVia(port: number, host: string, text = 'ping'): Promise<string> {
  const c = await nodeClient(port, host);
  c.write(text);
  const [reply] = (await once(c, 'data')) as [Buffer];
  c.destroy();
  return reply.toString();
}

async function closed(server: Server): Promise<void> {
  server.close();
  server.abortClients();
  await server.waitClosed();
}

/** A fresh temporary directory, removed when the test ends. */
function tmpDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopwork-unix-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('host string and port 0: a free port on that address', () =>
  runLoop(async (loop) => {
    const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0);
    assert.equal(server.sockets.length, 1);
    const [host, port] = server.sockets[0]!.getsockname() as [string, number];
    assert.equal(host, '127.0.0.1');
    assert.ok(port > 0);
    assert.equal(await echoVia(port, '127.0.0.1'), 'ping');
    await closed(server);
  }));

test('host null (and "") listens on every interface, IPv4 and IPv6, each socket once', () =>
  runLoop(async (loop) => {
    for (const host of [null, '']) {
      const server = await loop.createServer(() => new Echo(), host, 0);
      const names = server.sockets.map((s) => s.getsockname() as [string, number]);
      assert.deepEqual(names.map((n) => n[0]).sort(), ['0.0.0.0', '::']);
      assert.deepEqual(server.sockets.map((s) => s.family).sort(), [AF_INET, AF_INET6].sort());
      const v4 = names.find((n) => n[0] === '0.0.0.0')!;
      const v6 = names.find((n) => n[0] === '::')!;
      assert.equal(await echoVia(v4[1], '127.0.0.1', 'four'), 'four');
      assert.equal(await echoVia(v6[1], '::1', 'six'), 'six');
      await closed(server);
    }
  }));

test('a list of hosts binds each address once', () =>
  runLoop(async (loop) => {
    const server = await loop.createServer(() => new Echo(), ['127.0.0.1', '::1', '127.0.0.1'], 0);
    const names = server.sockets.map((s) => s.getsockname() as [string, number]);
    assert.deepEqual(names.map((n) => n[0]).sort(), ['127.0.0.1', '::1']);
    const v6 = names.find((n) => n[0] === '::1')!;
    assert.deepEqual(server.sockets.find((s) => s.family === AF_INET6)!.getsockname(), ['::1', v6[1], 0, 0]);
    await closed(server);
    const one = await loop.createServer(() => new Echo(), new Set(['::1']), 0);
    assert.equal(one.sockets.length, 1);
    await closed(one);
  }));

test('family narrows the addresses', () =>
  runLoop(async (loop) => {
    const server = await loop.createServer(() => new Echo(), null, 0, { family: AF_INET6 });
    assert.deepEqual(
      server.sockets.map((s) => (s.getsockname() as unknown as [string])[0]),
      ['::'],
    );
    await closed(server);
    const four = await loop.createServer(() => new Echo(), { host: null, port: 0, family: 4 });
    assert.deepEqual(
      four.sockets.map((s) => (s.getsockname() as unknown as [string])[0]),
      ['0.0.0.0'],
    );
    await closed(four);
  }));

test('a busy port gives EADDRINUSE with asyncio message', () =>
  runLoop(async (loop) => {
    const first = await loop.createServer(() => new Echo(), '127.0.0.1', 0);
    const port = portOf(first.sockets[0]!.getsockname());
    await assert.rejects(
      loop.createServer(() => new Echo(), '127.0.0.1', port),
      (e: Error) => {
        assert.ok(OSError.isInstance(e));
        assert.equal((e as NodeJS.ErrnoException).code, 'EADDRINUSE');
        assert.equal((e as NodeJS.ErrnoException).syscall !== undefined, true);
        assert.equal(
          e.message,
          `error while attempting to bind on address ('127.0.0.1', ${port}): address already in use`,
        );
        return true;
      },
    );
    await closed(first);
  }));

test('backlog is 100 by default and can be set', { skip: process.platform !== 'linux' }, async (t) => {
  if ((await runCommand('sh', ['-c', 'command -v ss'])).code !== 0) return t.skip('ss is not installed');
  await runLoop(async (loop) => {
    for (const [backlog, expected] of [
      [undefined, 100],
      [7, 7],
    ] as const) {
      const server = await loop.createServer(
        () => new Echo(),
        '127.0.0.1',
        0,
        backlog === undefined ? {} : { backlog },
      );
      const port = portOf(server.sockets[0]!.getsockname());
      // For a listening socket, ss shows the backlog in the Send-Q column.
      const r = await runCommand('ss', ['-ltnH', `sport = :${port}`]);
      const cols = r.stdout.trim().split(/\s+/);
      assert.equal(Number(cols[2]), expected, r.stdout);
      await closed(server);
    }
  });
});

test('reuseAddress and keepAlive set the socket options', { skip: !NATIVE }, () =>
  runLoop(async (loop) => {
    const C = native.constants;
    const dflt = await loop.createServer(() => new Echo(), '127.0.0.1', 0);
    const fd = dflt.sockets[0]!.fileno();
    assert.equal(native.getsockopt(fd, C.SOL_SOCKET, C.SO_REUSEADDR), 1);
    assert.equal(native.getsockopt(fd, C.SOL_SOCKET, C.SO_KEEPALIVE), 0);
    await closed(dflt);
    const set = await loop.createServer(() => new Echo(), '127.0.0.1', 0, { reuseAddress: false, keepAlive: true });
    const fd2 = set.sockets[0]!.fileno();
    assert.equal(native.getsockopt(fd2, C.SOL_SOCKET, C.SO_REUSEADDR), 0);
    assert.equal(native.getsockopt(fd2, C.SOL_SOCKET, C.SO_KEEPALIVE), 1);
    await closed(set);
    const v6 = await loop.createServer(() => new Echo(), '::1', 0);
    assert.equal(native.getsockopt(v6.sockets[0]!.fileno(), C.IPPROTO_IPV6, C.IPV6_V6ONLY), 1);
    await closed(v6);
  }),
);

test('reusePort: two servers share a port and both get connections', { skip: !NATIVE }, () =>
  runLoop(async (loop) => {
    const counts = [0, 0];
    const make = (i: number) => () => {
      counts[i]!++;
      return new Echo();
    };
    const a = await loop.createServer(make(0), '127.0.0.1', 0, { reusePort: true });
    const port = portOf(a.sockets[0]!.getsockname());
    await assert.rejects(loop.createServer(make(1), '127.0.0.1', port), /EADDRINUSE|address already in use/);
    const b = await loop.createServer(make(1), '127.0.0.1', port, { reusePort: true });
    // The kernel spreads connections by a hash of the client's address: a few dozen reach both.
    for (let i = 0; i < 64 && (counts[0] === 0 || counts[1] === 0); i++) {
      assert.equal(await echoVia(port, '127.0.0.1', `n${i}`), `n${i}`);
    }
    assert.ok(counts[0]! > 0 && counts[1]! > 0, `connections per server: ${counts.join(', ')}`);
    await closed(a);
    await closed(b);
  }),
);

test('sock: a listening net.Server or a bound native socket', () =>
  runLoop(async (loop) => {
    const srv = net.createServer((c) => c.end('not me'));
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as net.AddressInfo).port;
    const server = await loop.createServer(() => new Echo(), { sock: srv });
    assert.deepEqual(server.sockets[0]!.getsockname(), ['127.0.0.1', port]);
    assert.equal(await echoVia(port, '127.0.0.1'), 'ping');
    await closed(server);
    assert.equal(srv.listening, false);
    if (NATIVE) {
      const C = native.constants;
      const fd = native.socket(C.AF_INET, C.SOCK_STREAM);
      native.bind(fd, ['127.0.0.1', 0]);
      const fromFd = await loop.createServer(() => new Echo(), null, null, { sock: fd });
      const p = portOf(fromFd.sockets[0]!.getsockname());
      assert.equal(fromFd.sockets[0]!.fileno(), fd);
      assert.equal(await echoVia(p, '127.0.0.1'), 'ping');
      await closed(fromFd);
      const udp = native.socket(C.AF_INET, C.SOCK_DGRAM);
      await assert.rejects(
        loop.createServer(() => new Echo(), { sock: udp }),
        (e: Error) => {
          assert.ok(ValueError.isInstance(e));
          assert.equal(e.message, `A Stream Socket was expected, got fd=${udp}`);
          return true;
        },
      );
      native.close(udp);
    }
  }));

test('argument errors use asyncio messages', () =>
  runLoop(async (loop) => {
    const f = (): Echo => new Echo();
    const srv = net.createServer();
    const cases: [Promise<unknown>, (e: Error) => boolean, string][] = [
      [
        loop.createServer(f, '127.0.0.1', 0, { sock: srv }),
        ValueError.isInstance,
        'host/port and sock can not be specified at the same time',
      ],
      [loop.createServer(f), ValueError.isInstance, 'Neither host/port nor sock were specified'],
      [
        loop.createServer(f, '127.0.0.1', 0, { ssl: true as never }),
        (e) => e instanceof TypeError,
        'ssl argument must be an SSLContext or null',
      ],
      [
        loop.createServer(f, '127.0.0.1', 0, { sslHandshakeTimeout: 1 }),
        ValueError.isInstance,
        'sslHandshakeTimeout is only meaningful with ssl',
      ],
      [
        loop.createServer(f, '127.0.0.1', 0, { sslShutdownTimeout: 1 }),
        ValueError.isInstance,
        'sslShutdownTimeout is only meaningful with ssl',
      ],
      [
        loop.createServer(f, '127.0.0.1', 0, { reuse_port: true } as never),
        InvalidArgTypeError.isInstance,
        "createServer() got an unexpected keyword argument 'reuse_port'",
      ],
      [
        loop.createServer(f, { sock: srv }),
        ValueError.isInstance,
        'A listening net.Server was expected, got one that is not listening',
      ],
      [loop.createServer(f, '127.0.0.1', 70000), ValueError.isInstance, 'port must be 0-65535, got 70000'],
      [loop.createUnixServer(f), ValueError.isInstance, 'path was not specified, and no sock specified'],
      [
        loop.createUnixServer(f, '/tmp/x.sock', { sock: 3 }),
        ValueError.isInstance,
        'path and sock can not be specified at the same time',
      ],
      [
        loop.createUnixServer(f, '/tmp/x.sock', { ssl: false as never }),
        (e) => e instanceof TypeError,
        'ssl argument must be an SSLContext or null',
      ],
      [
        loop.createServer(f, '127.0.0.1', 0, { ssl: { not: 'a context' } as never }),
        (e) => e instanceof TypeError,
        "ssl argument must be an SSLContext or null, got { not: 'a context' }",
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

test('ssl hands each accepted connection to the TLS transport', async (t) => {
  const tlsPkg = (await import('@loopwork/tls')) as unknown as Record<string, unknown>;
  if (typeof tlsPkg.createTLSTransport !== 'function' || typeof tlsPkg.SSLContext !== 'function') {
    return t.skip('@loopwork/tls does not provide createTLSTransport yet');
  }
  if ((await runCommand('sh', ['-c', 'command -v openssl'])).code !== 0) return t.skip('openssl is not installed');
  const dir = tmpDir(t);
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = await runCommand('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  type Ctx = { loadCertChain(c: string, k: string): void; loadVerifyLocations(o: { cafile: string }): void };
  const SSLContext = tlsPkg.SSLContext as new (p: number) => Ctx;
  const serverCtx = new SSLContext(tlsPkg.PROTOCOL_TLS_SERVER as number);
  serverCtx.loadCertChain(cert, key);
  const clientCtx = new SSLContext(tlsPkg.PROTOCOL_TLS_CLIENT as number);
  clientCtx.loadVerifyLocations({ cafile: cert });
  await runLoop(async (loop) => {
    const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0, {
      ssl: serverCtx,
      sslHandshakeTimeout: 5,
    });
    const port = portOf(server.sockets[0]!.getsockname());
    const proto = new Recorder(loop);
    const [transport] = await loop.createConnection(() => proto, '127.0.0.1', port, {
      ssl: clientCtx,
      serverHostname: 'localhost',
    });
    transport.write(Buffer.from('secret'));
    await proto.received(6);
    assert.equal(proto.text(), 'secret');
    assert.notEqual(transport.getExtraInfo('cipher'), undefined);
    transport.close();
    await settle(proto.lost);
    await closed(server);
  });
});

test('connectAcceptedSocket binds a protocol to a socket accepted elsewhere', () =>
  runLoop(async (loop) => {
    const { srv, client, sock } = await acceptedSocket();
    const proto = new Recorder(loop);
    const [transport, p] = await loop.connectAcceptedSocket(() => proto, sock);
    assert.equal(p, proto);
    assert.deepEqual(proto.events, ['connectionMade']);
    assert.deepEqual(transport.getExtraInfo('peername'), ['127.0.0.1', client.localPort]);
    client.end('accepted');
    await settle(proto.lost);
    assert.equal(proto.text(), 'accepted');
    srv.close();
    await assert.rejects(
      loop.connectAcceptedSocket(() => proto, sock, { sslHandshakeTimeout: 1 }),
      /sslHandshakeTimeout is only meaningful with ssl/,
    );
  }));

test('Unix server: path, the socket file removed at close, addresses', (t) =>
  runLoop(async (loop) => {
    const dir = tmpDir(t);
    const p = path.join(dir, 's.sock');
    const accepted: Recorder[] = [];
    const server = await loop.createUnixServer(() => {
      const r = new Recorder(loop);
      accepted.push(r);
      return r;
    }, p);
    assert.ok(fs.statSync(p).isSocket());
    assert.equal(server.sockets[0]!.getsockname(), p);
    const client = net.connect(p);
    await once(client, 'connect');
    client.end('over unix');
    await once(client, 'end');
    const proto = accepted[0]!;
    await settle(proto.lost);
    assert.equal(proto.text(), 'over unix');
    assert.equal(proto.tp!.getExtraInfo('sockname'), p);
    assert.equal(proto.tp!.getExtraInfo('peername'), '');
    client.destroy();
    await closed(server);
    assert.equal(fs.existsSync(p), false);
  }));

test('Unix server: a stale socket file is replaced; a path that is not a socket is refused', (t) =>
  runLoop(async (loop) => {
    const dir = tmpDir(t);
    const p = path.join(dir, 'stale.sock');
    // A socket file nobody listens on any more.
    const stale = net.createServer().listen(p);
    await once(stale, 'listening');
    // Node removes the file at close: keep a second name for it, and put it back afterwards.
    fs.linkSync(p, `${p}.keep`);
    stale.close();
    fs.renameSync(`${p}.keep`, p);
    assert.ok(fs.statSync(p).isSocket());
    const server = await loop.createUnixServer(() => new Echo(), p);
    const c = net.connect(p);
    await once(c, 'connect');
    c.destroy();
    await closed(server);

    const file = path.join(dir, 'regular');
    fs.writeFileSync(file, 'data');
    await assert.rejects(
      loop.createUnixServer(() => new Echo(), file),
      (e: Error) => {
        assert.ok(OSError.isInstance(e));
        assert.equal((e as NodeJS.ErrnoException).code, 'EADDRINUSE');
        assert.equal(e.message, `Address '${file}' is already in use: the path exists and is not a socket`);
        return true;
      },
    );
    assert.equal(fs.readFileSync(file, 'utf8'), 'data');
  }));

test('Unix server: a path with a NUL byte inside is refused (asyncio: ValueError: embedded null byte)', (t) =>
  runLoop(async (loop, errors) => {
    const dir = tmpDir(t);
    const cut = path.join(dir, 'a');
    for (const p of [`${cut}\0b`, Buffer.from(`${cut}\0b`)]) {
      await assert.rejects(
        loop.createUnixServer(() => new Echo(), p),
        (e: Error) => {
          assert.ok(ValueError.isInstance(e), String(e));
          assert.equal(e.message, 'embedded null byte');
          return true;
        },
      );
    }
    // Not bound at the path cut at the NUL, and nothing logged.
    assert.equal(fs.existsSync(cut), false);
    assert.deepEqual(errors, []);
  }));

test(
  'Unix server: a socket file someone replaced is left alone; cleanupSocket: false keeps it',
  { skip: !NATIVE },
  (t) =>
    runLoop(async (loop) => {
      const dir = tmpDir(t);
      const p = path.join(dir, 'r.sock');
      const server = await loop.createUnixServer(() => new Echo(), p);
      fs.unlinkSync(p);
      const other = net.createServer().listen(p);
      await once(other, 'listening');
      const inode = fs.statSync(p).ino;
      await closed(server);
      assert.equal(fs.statSync(p).ino, inode);
      other.close();

      const q = path.join(dir, 'keep.sock');
      const kept = await loop.createUnixServer(() => new Echo(), q, { cleanupSocket: false });
      await closed(kept);
      assert.ok(fs.statSync(q).isSocket());
    }),
);

test('Unix server: mode makes the socket file with those bits, never chmodded wider after', (t) =>
  runLoop(async (loop) => {
    const dir = tmpDir(t);
    // Umask 022 lets 0o600 and 0o640 through whole: the file is made with them and never touched again. 0o666
    // needs the umask's bits added back after the bind (the file had fewer before, never more).
    const umask = process.umask(0o022);
    t.after(() => process.umask(umask));
    for (const [mode, chmodded] of [
      [0o600, false],
      [0o640, false],
      [0o666, true],
    ] as const) {
      const name = `m${mode.toString(8)}.sock`;
      const p = path.join(dir, name);
      let server: Server | null = null;
      const { [name]: events } = await fileEventsDuring(dir, async () => {
        server = await loop.createUnixServer(() => new Echo(), p, { mode });
      });
      assert.equal(fs.statSync(p).mode & 0o777, mode, `mode 0o${mode.toString(8)}`);
      assert.deepEqual(events, chmodded ? ['rename', 'change'] : ['rename'], `events for 0o${mode.toString(8)}`);
      const c = net.connect(p);
      await once(c, 'connect');
      c.destroy();
      await closed(server!);
      assert.equal(fs.existsSync(p), false, 'removed at close');
    }
  }));

test('Unix server: mode is refused when not an integer 0..0o777, with an abstract name, or with sock', (t) =>
  runLoop(async (loop) => {
    const dir = tmpDir(t);
    const p = path.join(dir, 'bad.sock');
    const f = (): Echo => new Echo();
    await assert.rejects(loop.createUnixServer(f, p, { mode: '0600' as never }), (e: Error) => {
      assert.ok(InvalidArgTypeError.isInstance(e));
      assert.equal(e.message, "mode must be an integer, got '0600'");
      return true;
    });
    for (const mode of [-1, 0o1000, 0o4755]) {
      await assert.rejects(loop.createUnixServer(f, p, { mode }), (e: Error) => {
        assert.ok(ValueError.isInstance(e));
        assert.equal((e as NodeJS.ErrnoException).code, 'ERR_LOOPWORK_INVALID_VALUE');
        assert.match(e.message, /^mode must be from 0 to 0o777, got 0o/);
        return true;
      });
    }
    assert.equal(fs.existsSync(p), false);
    if (process.platform === 'linux') {
      await assert.rejects(
        loop.createUnixServer(f, `\0loopwork-mode-${process.pid}`, { mode: 0o600 }),
        (e: Error) =>
          ValueError.isInstance(e) && e.message === 'mode can not be set on an abstract socket name: it has no file',
      );
    }
    const srv = net.createServer().listen(path.join(dir, 'n.sock'));
    await once(srv, 'listening');
    await assert.rejects(
      loop.createUnixServer(f, { sock: srv, mode: 0o600 }),
      (e: Error) =>
        ValueError.isInstance(e) && e.message === 'mode can not be specified with sock: the socket is already bound',
    );
    srv.close();
  }));

test('Unix server: abstract names and Buffer paths', { skip: process.platform !== 'linux' }, (t) =>
  runLoop(async (loop) => {
    // Abstract names are exact-length, as in Python (Node's net pads them to 108 bytes, so loopwork connects to
    // them through the native addon).
    const name = `\0loopwork-test-${process.pid}-${Date.now()}`;
    for (const p of [name, Buffer.from(`${name}-buf`)]) {
      const server = await loop.createUnixServer(() => new Echo(), p);
      const name0 = server.sockets[0]!.getsockname();
      if (NATIVE) assert.deepEqual(name0, Buffer.from(p));
      const proto = new Recorder(loop);
      const [transport] = await loop.createUnixConnection(() => proto, p);
      transport.write(Buffer.from('abstract'));
      await proto.received(8);
      assert.equal(proto.text(), 'abstract');
      transport.close();
      await settle(proto.lost);
      await closed(server);
    }
    const dir = tmpDir(t);
    const bufPath = Buffer.from(path.join(dir, 'b.sock'));
    const server = await loop.createUnixServer(() => new Echo(), bufPath);
    assert.ok(fs.statSync(bufPath).isSocket());
    await closed(server);
    assert.equal(fs.existsSync(bufPath), false);
  }),
);

test('Unix server: sock is a listening Unix socket', (t) =>
  runLoop(async (loop) => {
    const dir = tmpDir(t);
    const p = path.join(dir, 'n.sock');
    const srv = net.createServer().listen(p);
    await once(srv, 'listening');
    const server = await loop.createUnixServer(() => new Echo(), { sock: srv });
    const c = net.connect(p);
    await once(c, 'connect');
    c.write('via sock');
    const [reply] = (await once(c, 'data')) as [Buffer];
    assert.equal(reply.toString(), 'via sock');
    c.destroy();
    await closed(server);
    const tcp = net.createServer().listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    await assert.rejects(
      loop.createUnixServer(() => new Echo(), { sock: tcp }),
      /A UNIX Domain Stream Socket was expected/,
    );
    tcp.close();
  }));

test('a closed server refuses connections', () =>
  runLoop(async (loop: BaseEventLoop) => {
    const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0);
    const port = portOf(server.sockets[0]!.getsockname());
    await closed(server);
    const c = net.connect(port, '127.0.0.1');
    const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
  }));

test('without the native addon, servers run on net.Server and say what they cannot do', async () => {
  const script = new URL('./fixtures/native-off.ts', import.meta.url).pathname;
  const r = await runCommand(process.execPath, ['--conditions=loopwork-source', '--import', 'tsx', script], {
    env: { ...process.env, LOOPWORK_NATIVE: '0' },
    timeoutMs: 60000,
  });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  assert.equal(out.native, false);
  assert.equal(out.echo, 'fallback');
  assert.match(
    out.busy as string,
    /^EADDRINUSE: error while attempting to bind on address \('127\.0\.0\.1', \d+\): address already in use$/,
  );
  assert.match(
    out.reusePort as string,
    /^ERR_LOOPWORK_SOCKET_OPTION_UNAVAILABLE: reusePort needs loopwork's native addon/,
  );
  assert.match(out.reuseAddress as string, /^ERR_LOOPWORK_SOCKET_OPTION_UNAVAILABLE: reuseAddress: false needs/);
  assert.deepEqual(out.all, ['0.0.0.0', '::']);
  // On net.Server, a connection made before serving starts waits (paused) for it.
  assert.equal(out.late, 'queued');
  assert.equal(out.unixName, true);
  assert.equal(out.unixRemoved, true);
  assert.equal(out.mode, '600');
  assert.deepEqual(out.modeEvents, ['rename'], 'made with mode 0o600, never chmodded after');
  assert.equal(out.umaskAfter, '22', 'the umask is put back');
});
