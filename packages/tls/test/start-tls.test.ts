import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import {
  ConnectionAbortedError,
  PROTOCOL_TLS_SERVER,
  SSLContext,
  SocketTransport,
  TLSTransport,
  createDefaultContext,
  sleep,
} from '@loopwork/tls';
import type { BaseEventLoop, Transport } from '@loopwork/tls';
import { makeTestCerts } from './helpers/certs.js';
import { Recorder, closeServer, connect, listen, outcome, runLoop, tlsPair } from './helpers/harness.js';

const certs = makeTestCerts();
const { serverContext, clientContext } = certs;
after(() => certs.dispose());

/** Two plain SocketTransports on one TCP connection, both with a Recorder that has seen connectionMade. */
async function plainPair(loop: BaseEventLoop) {
  const l = await listen();
  const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
  const sp = new Recorder(loop);
  const cp = new Recorder(loop);
  const st = new SocketTransport(loop, accepted, sp);
  const ct = new SocketTransport(loop, raw, cp);
  await Promise.all([sp.made, cp.made]);
  return {
    server: { protocol: sp, transport: st as Transport },
    client: { protocol: cp, transport: ct as Transport },
    async close(...more: Transport[]) {
      for (const t of [st, ct, ...more]) t.abort();
      await closeServer(l.server);
    },
  };
}

describe('startTls', () => {
  test('STARTTLS: plain lines, then both sides upgrade; connectionMade is not called again', async () => {
    await runLoop(async (loop, errors) => {
      const p = await plainPair(loop);
      let sTls: Transport | undefined;
      let cTls: Transport | undefined;
      try {
        p.client.transport.write(Buffer.from('STARTTLS\r\n'));
        assert.equal((await p.server.protocol.receive(10)).toString(), 'STARTTLS\r\n');
        p.server.transport.write(Buffer.from('220 go ahead\r\n'));
        // The server upgrades right after its answer; the client once it has read it.
        const serverSide = loop.startTls(p.server.transport, p.server.protocol, serverContext(), { serverSide: true });
        await p.client.protocol.receive(14);
        const clientSide = loop.startTls(p.client.transport, p.client.protocol, clientContext(), {
          serverHostname: 'localhost',
        });
        [sTls, cTls] = await Promise.all([serverSide, clientSide]);
        assert.ok(sTls instanceof TLSTransport && cTls instanceof TLSTransport);
        assert.deepEqual(p.server.protocol.events, ['made', 'data']);
        assert.deepEqual(p.client.protocol.events, ['made', 'data']);
        assert.equal(cTls.getExtraInfo('cipher')?.[1], 'TLSv1.3');
        assert.deepEqual(cTls.getExtraInfo('peername'), p.client.transport.getExtraInfo('peername'));
        // The old transports are detached: closing them does nothing to the TLS connection.
        assert.equal(p.server.transport.isClosing(), true);
        p.server.transport.close();
        p.client.transport.close();
        cTls.write(Buffer.from('EHLO secure\r\n'));
        assert.equal((await p.server.protocol.receive(10 + 13)).subarray(10).toString(), 'EHLO secure\r\n');
        sTls.write(Buffer.from('250 ok\r\n'));
        assert.equal((await p.client.protocol.receive(14 + 8)).subarray(14).toString(), '250 ok\r\n');
        cTls.close();
        assert.equal(await p.server.protocol.lost, null);
        assert.equal(await p.client.protocol.lost, null);
        assert.deepEqual(p.server.protocol.events, ['made', 'data', 'eof', 'lost']);
        assert.deepEqual(errors, []);
      } finally {
        await p.close(...[sTls, cTls].filter((t): t is Transport => t !== undefined));
      }
    });
  });

  test('startTls called from inside dataReceived, as a line protocol does; the data after it goes to TLS', async () => {
    await runLoop(async (loop) => {
      const p = await plainPair(loop);
      let sTls: Promise<Transport> | undefined;
      const sctx = serverContext();
      const proto = p.server.protocol;
      const plainReceived = proto.dataReceived.bind(proto);
      proto.dataReceived = (data: Buffer) => {
        plainReceived(data);
        if (sTls === undefined && data.toString() === 'STARTTLS\n') {
          p.server.transport.write(Buffer.from('220\n'));
          sTls = loop.startTls(p.server.transport, proto, sctx, { serverSide: true });
          proto.dataReceived = plainReceived;
        }
      };
      try {
        p.client.transport.write(Buffer.from('STARTTLS\n'));
        await p.client.protocol.receive(4);
        const cTls = await loop.startTls(p.client.transport, p.client.protocol, clientContext(), {
          serverHostname: 'localhost',
        });
        // Sent at once, possibly before the server's startTls has returned: it must reach the protocol.
        cTls.write(Buffer.from('hi'));
        const server = await (sTls as Promise<Transport>);
        assert.equal((await proto.receive(11)).subarray(9).toString(), 'hi');
        await p.close(server, cTls);
      } catch (error) {
        await p.close();
        throw error;
      }
    });
  });

  test('refuses a non-SSLContext with a TypeError and leaves the transport usable', async () => {
    await runLoop(async (loop) => {
      const p = await plainPair(loop);
      try {
        await assert.rejects(loop.startTls(p.client.transport, p.client.protocol, {} as SSLContext), {
          name: 'TypeError',
          message: 'sslcontext is expected to be an instance of ssl.SSLContext, got {}',
        });
        await assert.rejects(loop.startTls({} as Transport, p.client.protocol, clientContext()), {
          name: 'TypeError',
          message: /is not supported by startTls\(\)/,
        });
        await assert.rejects(
          loop.startTls(p.client.transport, p.client.protocol, clientContext(), { sslHandshakeTimeout: -5 }),
          { name: 'ValueError', message: 'sslHandshakeTimeout should be a positive number, got -5' },
        );
        await assert.rejects(
          loop.startTls(p.client.transport, p.client.protocol, clientContext(), { server_side: true } as never),
          { name: 'TypeError', message: "startTls() got an unexpected keyword argument 'server_side'" },
        );
        // checkHostname without serverHostname.
        await assert.rejects(loop.startTls(p.client.transport, p.client.protocol, clientContext()), {
          name: 'ValueError',
        });
        assert.equal(p.client.transport.isClosing(), false);
        p.client.transport.write(Buffer.from('still plain'));
        assert.equal((await p.server.protocol.receive(11)).toString(), 'still plain');
      } finally {
        await p.close();
      }
    });
  });

  test('a failed handshake rejects startTls and closes the connection', async () => {
    await runLoop(async (loop, errors) => {
      const p = await plainPair(loop);
      try {
        const serverSide = loop.startTls(p.server.transport, p.server.protocol, serverContext(), { serverSide: true });
        const clientSide = loop.startTls(p.client.transport, p.client.protocol, createDefaultContext(), {
          serverHostname: 'localhost',
        });
        const cErr = await outcome(clientSide);
        assert.equal((cErr as { code?: string }).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
        assert.ok((await outcome(serverSide)) !== null);
        assert.deepEqual(p.client.protocol.events, ['made']);
        assert.deepEqual(errors, []);
      } finally {
        await p.close();
      }
    });
  });

  test('a peer that never starts the handshake: ConnectionAbortedError after sslHandshakeTimeout', async () => {
    await runLoop(async (loop) => {
      const p = await plainPair(loop);
      try {
        const err = await outcome(
          loop.startTls(p.server.transport, p.server.protocol, serverContext(), {
            serverSide: true,
            sslHandshakeTimeout: 0.1,
          }) as never,
        );
        assert.ok(ConnectionAbortedError.isInstance(err));
        assert.match(err.message, /^SSL handshake is taking longer than 0\.1 seconds/);
        // The plain client sees the connection end.
        await p.client.protocol.lost;
      } finally {
        await p.close();
      }
    });
  });

  test('cancelling the task that awaits startTls aborts the connection', async () => {
    await runLoop(async (loop) => {
      const p = await plainPair(loop);
      try {
        const task = loop.createTask(() =>
          loop.startTls(p.server.transport, p.server.protocol, serverContext(), { serverSide: true }),
        );
        await new Promise((r) => setTimeout(r, 20));
        task.cancel();
        assert.ok((await outcome(task)) !== null);
        assert.equal(task.cancelled(), true);
        await p.client.protocol.lost;
      } finally {
        await p.close();
      }
    });
  });

  test('TLS inside TLS: a transport without a socket to hand over is upgraded through a stream adapter', async () => {
    await runLoop(async (loop, errors) => {
      // A normal close logs nothing (the stream adapter's eofReceived() used to draw "returning true from
      // eofReceived() has no effect when using ssl" from the outer TLS transport).
      const warnings: unknown[] = [];
      const logger = loop.logger;
      loop.logger = Object.assign(Object.create(logger) as typeof logger, {
        warn: (...args: unknown[]) => void warnings.push(args),
      });
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      const inner = new SSLContext(PROTOCOL_TLS_SERVER);
      inner.loadCertChain(certs.server2.certfile, certs.server2.keyfile);
      const [sTls, cTls] = await Promise.all([
        loop.startTls(pair.server.transport, pair.server.protocol, inner, { serverSide: true }),
        loop.startTls(pair.client.transport, pair.client.protocol, clientContext(), {
          serverHostname: 'other.test',
        }),
      ]);
      assert.equal((cTls.getExtraInfo('peercert') as { subject: { CN: string } }).subject.CN, 'other.test');
      const big = Buffer.alloc(300_000, 7);
      cTls.write(big);
      assert.equal((await pair.server.protocol.receive(big.length)).length, big.length);
      sTls.write(Buffer.from('inner'));
      assert.equal((await pair.client.protocol.receive(5)).toString(), 'inner');
      cTls.close();
      assert.equal(await pair.server.protocol.lost, null);
      assert.equal(await pair.client.protocol.lost, null);
      assert.deepEqual(errors, []);
      await sleep(0.05);
      assert.deepEqual(warnings, []);
    });
  });
});
