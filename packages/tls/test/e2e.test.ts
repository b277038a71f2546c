// End to end through @loopwork/server (which depends on this package; the root's devDependencies make it
// importable here): createServer/createConnection/createUnixServer/connectAcceptedSocket with `ssl`, streams
// with TLS and StreamWriter.startTls.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, describe, test } from 'node:test';
import { CERT_REQUIRED, Protocol, TLSTransport, openConnection, sleep, startServer } from '@loopwork/server';
import type { BaseEventLoop, BaseTransport, Server, StreamReader, StreamWriter, Transport } from '@loopwork/server';
import { makeTestCerts } from './helpers/certs.js';
import { Recorder, outcome, runLoop } from './helpers/harness.js';

const certs = makeTestCerts();
const { serverContext, clientContext } = certs;
const dir = mkdtempSync(join(tmpdir(), 'loopwork-tls-e2e-'));
after(() => {
  certs.dispose();
  rmSync(dir, { recursive: true, force: true });
});

class Echo extends Protocol {
  declare transport?: Transport;
  override connectionMade(transport: BaseTransport): void {
    this.transport = transport as Transport;
  }
  override dataReceived(data: Buffer): void {
    this.transport?.write(data);
  }
}

function portOf(server: Server): number {
  const name = server.sockets[0]?.getsockname();
  assert.ok(Array.isArray(name));
  return name[1] as number;
}

/** A TLS server on `host` whose protocols are Recorders, listed in `accepted` as connections come. */
async function recordingServer(
  loop: BaseEventLoop,
  host: string | null,
): Promise<{ server: Server; accepted: Recorder[] }> {
  const accepted: Recorder[] = [];
  const factory = (): Recorder => {
    const r = new Recorder(loop);
    accepted.push(r);
    return r;
  };
  const server = await loop.createServer(factory, host, 0, { ssl: serverContext() });
  return { server, accepted };
}

describe('createServer and createConnection with ssl', () => {
  test('a TLS echo: the client transport is a TLSTransport, handshake done when createConnection returns', async () => {
    await runLoop(async (loop, errors) => {
      const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0, { ssl: serverContext() });
      try {
        const [transport, protocol] = await loop.createConnection(
          () => new Recorder(loop),
          '127.0.0.1',
          portOf(server),
          {
            ssl: clientContext(),
            serverHostname: 'localhost',
          },
        );
        assert.ok(transport instanceof TLSTransport);
        assert.deepEqual(protocol.events, ['made']);
        assert.equal(transport.getExtraInfo('cipher')?.[1], 'TLSv1.3');
        transport.write(Buffer.from('hello over tls'));
        assert.equal((await protocol.receive(14)).toString(), 'hello over tls');
        transport.close();
        assert.equal(await protocol.lost, null);
        assert.deepEqual(errors, []);
      } finally {
        server.close();
        await server.waitClosed();
      }
    });
  });

  test("a server's TLS transports know their addresses, on a given address and on all interfaces", async () => {
    await runLoop(async (loop) => {
      for (const host of ['127.0.0.1', null]) {
        const { server, accepted } = await recordingServer(loop, host);
        try {
          const port = portOf(server);
          for (let i = 0; i < 2; i++) {
            const [transport] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', port, {
              ssl: clientContext(),
              serverHostname: 'localhost',
            });
            await accepted[i]!.made;
            const mine = accepted[i]!.transport!;
            assert.deepEqual(mine.getExtraInfo('sockname'), ['127.0.0.1', port], `${host} #${i}`);
            assert.deepEqual(mine.getExtraInfo('peername'), transport.getExtraInfo('sockname'));
            transport.close();
          }
          // Each connection has an address of its own (not one array shared with the listener).
          assert.notEqual(
            accepted[0]!.transport!.getExtraInfo('sockname'),
            accepted[1]!.transport!.getExtraInfo('sockname'),
          );
        } finally {
          server.close();
          server.abortClients();
          await server.waitClosed();
        }
      }
    });
  });

  for (const debug of [false, true]) {
    test(`a failed handshake closes the connection; the exception handler hears of it ${debug ? 'in debug mode' : 'only in debug mode'}`, async () => {
      await runLoop(
        async (loop, errors) => {
          const { server, accepted } = await recordingServer(loop, '127.0.0.1');
          try {
            const sock = net.connect(portOf(server), '127.0.0.1');
            sock.on('error', () => {});
            sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
            await once(sock, 'close');
            assert.equal(accepted.length, 1);
            // The protocol never saw a connection.
            assert.deepEqual(accepted[0]!.events, []);
            for (let i = 0; i < 50 && errors.length === 0 && debug; i++) await sleep(0.01);
            await sleep(0.02);
            if (debug) {
              assert.equal(errors.length, 1);
              assert.equal(errors[0]!.message, 'Error on transport creation for incoming connection');
              assert.ok(errors[0]!.exception instanceof Error);
              assert.ok(errors[0]!.transport instanceof TLSTransport);
            } else assert.deepEqual(errors, []);
          } finally {
            server.close();
            await server.waitClosed();
          }
        },
        { debug },
      );
    });
  }

  test('the host is the default serverHostname: a mismatch fails createConnection', async () => {
    await runLoop(async (loop) => {
      const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0, { ssl: serverContext() });
      try {
        // The certificate names localhost, 127.0.0.1 and ::1: an address it does not name fails the check.
        await assert.rejects(
          loop.createConnection(() => new Recorder(loop), '127.0.0.1', portOf(server), {
            ssl: clientContext(),
            serverHostname: 'example.com',
          }),
          { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
        );
        const [t] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', portOf(server), {
          ssl: clientContext(),
        });
        t.close();
      } finally {
        server.close();
        await server.waitClosed();
      }
    });
  });

  test('ssl: true is the default context on a client (unknown CA fails) and a TypeError on a server', async () => {
    await runLoop(async (loop) => {
      await assert.rejects(
        loop.createServer(() => new Echo(), '127.0.0.1', 0, { ssl: true as never }),
        {
          name: 'TypeError',
          message: 'ssl argument must be an SSLContext or null',
        },
      );
      await assert.rejects(
        loop.createServer(() => new Echo(), '127.0.0.1', 0, { sslHandshakeTimeout: 1 }),
        { name: 'ValueError', message: 'sslHandshakeTimeout is only meaningful with ssl' },
      );
      const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0, { ssl: serverContext() });
      try {
        await assert.rejects(
          loop.createConnection(() => new Recorder(loop), 'localhost', portOf(server), { ssl: true, family: 2 }),
          { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' },
        );
      } finally {
        server.close();
        await server.waitClosed();
      }
    });
  });

  test('mutual TLS through createServer: without a client certificate the client connection fails', async () => {
    await runLoop(async (loop, errors) => {
      const sctx = serverContext();
      sctx.verifyMode = CERT_REQUIRED;
      sctx.loadVerifyLocations({ cafile: certs.ca.certfile });
      let peer: unknown;
      class Peek extends Echo {
        override connectionMade(transport: BaseTransport): void {
          super.connectionMade(transport);
          peer = transport.getExtraInfo('peercert');
        }
      }
      const server = await loop.createServer(() => new Peek(), '127.0.0.1', 0, { ssl: sctx });
      try {
        const cctx = clientContext();
        cctx.loadCertChain(certs.client.certfile, certs.client.keyfile);
        const [t, p] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', portOf(server), {
          ssl: cctx,
          serverHostname: 'localhost',
        });
        t.write(Buffer.from('x'));
        await p.receive(1);
        assert.equal((peer as tls.PeerCertificate).subject.CN, 'client');
        t.close();
        await p.lost;
        // TLS 1.3: the client's handshake is over before the server refuses; the refusal ends the connection.
        const attempt = await outcome(
          (async () => {
            const [t2, p2] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', portOf(server), {
              ssl: clientContext(),
              serverHostname: 'localhost',
            });
            t2.write(Buffer.from('y'));
            const lost = await p2.lost;
            if (lost !== null) throw lost;
          })(),
        );
        assert.match(String((attempt as { code?: string } | null)?.code), /CERTIFICATE_REQUIRED/);
        assert.deepEqual(errors, []);
      } finally {
        server.close();
        await server.waitClosed();
      }
    });
  });

  test('handshake timeout on a server: a client that sends nothing is dropped; the server is fine', async () => {
    await runLoop(async (loop, errors) => {
      const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0, {
        ssl: serverContext(),
        sslHandshakeTimeout: 0.2,
      });
      try {
        const silent = net.connect(portOf(server), '127.0.0.1');
        silent.resume();
        const t0 = Date.now();
        await once(silent, 'close');
        assert.ok(Date.now() - t0 >= 150);
        const [t] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', portOf(server), {
          ssl: clientContext(),
          serverHostname: 'localhost',
        });
        t.close();
        assert.deepEqual(errors, []);
      } finally {
        server.close();
        await server.waitClosed();
      }
    });
  });

  test('waitClosed waits for a TLS client; closeClients ends it with close_notify', async () => {
    await runLoop(async (loop) => {
      const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0, { ssl: serverContext() });
      const [t, p] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', portOf(server), {
        ssl: clientContext(),
        serverHostname: 'localhost',
      });
      t.write(Buffer.from('x'));
      await p.receive(1);
      server.close();
      let closed = false;
      const waiting = server.waitClosed().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(closed, false);
      server.closeClients();
      // The client gets the server's close_notify as EOF, answers it, and both sides finish.
      assert.equal(await p.lost, null);
      assert.deepEqual(p.events, ['made', 'data', 'eof', 'lost']);
      await waiting;
      assert.equal(closed, true);
    });
  });

  test('a Unix server with TLS, and connectAcceptedSocket with ssl', async () => {
    await runLoop(async (loop) => {
      const path = join(dir, 'tls.sock');
      const server = await loop.createUnixServer(() => new Echo(), path, { ssl: serverContext() });
      try {
        const [t, p] = await loop.createUnixConnection(() => new Recorder(loop), path, {
          ssl: clientContext(),
          serverHostname: 'localhost',
        });
        t.write(Buffer.from('unix'));
        assert.equal((await p.receive(4)).toString(), 'unix');
        t.close();
        await p.lost;
      } finally {
        server.close();
        await server.waitClosed();
      }
      const listener = net.createServer();
      await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
      const accepted = once(listener, 'connection');
      const client = tls.connect({
        port: (listener.address() as net.AddressInfo).port,
        host: '127.0.0.1',
        ca: certs.ca.cert,
        servername: 'localhost',
      });
      const [sock] = (await accepted) as [net.Socket];
      const [st, sp] = await loop.connectAcceptedSocket(() => new Recorder(loop), sock, { ssl: serverContext() });
      assert.ok(st instanceof TLSTransport);
      client.write('accepted');
      assert.equal((await sp.receive(8)).toString(), 'accepted');
      client.end();
      await sp.lost;
      client.destroy();
      await new Promise((r) => listener.close(r));
    });
  });
});

describe('streams', () => {
  test('TLS inside TLS: a ClientHello the inner server reader already holds reaches the handshake', async () => {
    await runLoop(async (_loop, errors) => {
      const sctx = serverContext();
      const server = await startServer(
        async (reader: StreamReader, writer: StreamWriter) => {
          const line = (await reader.readline()).toString();
          // The inner ClientHello, read ahead behind the line (over the outer TLS: the stream adapter's path).
          while (reader._len === 0) await reader._waitForData('test');
          await writer.startTls(sctx, { sslHandshakeTimeout: 5 });
          writer.write(Buffer.from(`inner ${line.trim()} ${(await reader.readline()).toString()}`));
          await writer.drain();
          writer.close();
          await writer.waitClosed();
        },
        '127.0.0.1',
        0,
        { ssl: sctx },
      );
      let client: StreamWriter | null = null;
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server), {
          ssl: clientContext(),
          serverHostname: 'localhost',
        });
        client = writer;
        writer.write(Buffer.from('UPGRADE\n'));
        await writer.startTls(clientContext(), { serverHostname: 'localhost', sslHandshakeTimeout: 5 });
        writer.write(Buffer.from('deep\n'));
        assert.equal((await reader.readline()).toString(), 'inner UPGRADE deep\n');
        writer.close();
        await writer.waitClosed();
      } finally {
        client?.transport.abort();
        server.close();
        server.closeClients();
        await server.waitClosed();
      }
      assert.deepEqual(errors, []);
    });
  });

  test('openConnection/startServer with ssl, and StreamWriter.startTls (STARTTLS both ways)', async () => {
    await runLoop(async (loop, errors) => {
      const sctx = serverContext();
      const server = await startServer(
        async (reader: StreamReader, writer: StreamWriter) => {
          const line = (await reader.readline()).toString();
          if (line === 'STARTTLS\n') {
            writer.write(Buffer.from('220 ready\n'));
            await writer.startTls(sctx);
          }
          const next = await reader.readline();
          writer.write(Buffer.from(`echo ${next.toString()}`));
          await writer.drain();
          writer.close();
          await writer.waitClosed();
        },
        '127.0.0.1',
        0,
      );
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
        writer.write(Buffer.from('STARTTLS\n'));
        assert.equal((await reader.readline()).toString(), '220 ready\n');
        await writer.startTls(clientContext(), { serverHostname: 'localhost' });
        assert.ok(writer.transport instanceof TLSTransport);
        writer.write(Buffer.from('secret\n'));
        assert.equal((await reader.readline()).toString(), 'echo secret\n');
        assert.equal((await reader.read()).length, 0);
        writer.close();
        await writer.waitClosed();
        assert.deepEqual(errors, []);
      } finally {
        server.close();
        await server.waitClosed();
      }
      const tlsServer = await startServer(
        async (reader: StreamReader, writer: StreamWriter) => {
          writer.write(await reader.readline());
          writer.close();
        },
        '127.0.0.1',
        0,
        { ssl: sctx },
      );
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(tlsServer), {
          ssl: clientContext(),
          serverHostname: 'localhost',
        });
        writer.write(Buffer.from('direct\n'));
        assert.equal((await reader.readline()).toString(), 'direct\n');
        writer.close();
        await writer.waitClosed();
      } finally {
        tlsServer.close();
        await tlsServer.waitClosed();
      }
    });
  });
});
