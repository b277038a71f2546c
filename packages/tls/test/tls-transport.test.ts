import assert from 'node:assert/strict';
import { once } from 'node:events';
import tls from 'node:tls';
import { after, describe, test } from 'node:test';
import {
  BufferedProtocol,
  CERT_NONE,
  CERT_OPTIONAL,
  CERT_REQUIRED,
  ConnectionAbortedError,
  NotImplementedError,
  PROTOCOL_TLS_CLIENT,
  PROTOCOL_TLS_SERVER,
  RuntimeError,
  SSLContext,
  TimeoutError,
  TransportSocket,
  ValueError,
  createDefaultContext,
  createTLSTransport,
  native,
  newEventLoop,
} from '@loopwork/tls';
import type { BaseEventLoop, BaseTransport, TLSTransport } from '@loopwork/tls';
import { makeTestCerts } from './helpers/certs.js';
import {
  Recorder,
  closeServer,
  collectedAfterGc,
  connect,
  listen,
  outcome,
  runLoop,
  tlsPair,
} from './helpers/harness.js';

const certs = makeTestCerts();
const { serverContext, clientContext } = certs;
after(() => certs.dispose());

describe('handshake and data', () => {
  test('connectionMade comes after the handshake; data flows both ways; waiters resolve', async () => {
    await runLoop(async (loop, errors) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      assert.equal(pair.server.protocol.events.length, 0);
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      assert.deepEqual(pair.server.protocol.events, ['made']);
      assert.deepEqual(pair.client.protocol.events, ['made']);
      // The TLS details were known when connectionMade ran.
      assert.ok(Array.isArray(pair.server.protocol.cipherAtMade));
      assert.equal(pair.client.protocol.transport, pair.client.transport);
      pair.client.transport.write(Buffer.from('ping'));
      assert.equal((await pair.server.protocol.receive(4)).toString(), 'ping');
      pair.server.transport.writelines([Buffer.from('po'), Buffer.from('ng')]);
      assert.equal((await pair.client.protocol.receive(4)).toString(), 'pong');
      assert.deepEqual(errors, []);
    });
  });

  test('getExtraInfo: sslcontext, peercert, cipher, compression, ssl_object, peername, sockname, socket', async () => {
    await runLoop(async (loop) => {
      const sctx = serverContext();
      const cctx = clientContext();
      await using pair = await tlsPair(loop, sctx, cctx);
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      const c = pair.client.transport;
      const s = pair.server.transport;
      assert.equal(c.getExtraInfo('sslcontext'), cctx);
      assert.equal(s.getExtraInfo('sslcontext'), sctx);
      const peercert = c.getExtraInfo('peercert') as tls.PeerCertificate;
      assert.equal(peercert.subject.CN, 'localhost');
      assert.match(peercert.subjectaltname ?? '', /IP Address:127\.0\.0\.1/);
      // No client certificate was asked for.
      assert.equal(s.getExtraInfo('peercert'), null);
      const cipher = c.getExtraInfo('cipher');
      assert.ok(Array.isArray(cipher) && cipher.length === 3);
      assert.equal(typeof cipher[0], 'string');
      assert.equal(cipher[1], 'TLSv1.3');
      assert.ok(cipher[2] === 128 || cipher[2] === 256, `bits ${cipher[2]}`);
      assert.equal(c.getExtraInfo('compression'), null);
      const sslObject = c.getExtraInfo('ssl_object');
      assert.ok(sslObject instanceof tls.TLSSocket);
      assert.equal(sslObject.getProtocol(), 'TLSv1.3');
      const peer = c.getExtraInfo('peername');
      const local = s.getExtraInfo('sockname');
      assert.ok(Array.isArray(peer) && Array.isArray(local));
      assert.equal(peer[0], '127.0.0.1');
      assert.equal(peer[1], local[1]);
      assert.deepEqual(s.getExtraInfo('peername'), c.getExtraInfo('sockname'));
      const sock = c.getExtraInfo('socket');
      assert.ok(sock instanceof TransportSocket);
      assert.ok(sock.fileno() >= 0);
      assert.equal(c.getExtraInfo('nonexistent' as 'pipe', 'dflt'), 'dflt');
    });
  });

  test(
    'TCP_NODELAY is on under both ends, as on asyncio socket transports',
    { skip: !native.nativeAvailable() },
    async () => {
      await runLoop(async (loop) => {
        await using pair = await tlsPair(loop, serverContext(), clientContext());
        await Promise.all([pair.server.waiter, pair.client.waiter]);
        const C = native.constants;
        for (const t of [pair.server.transport, pair.client.transport]) {
          const sock = t.getExtraInfo('socket') as TransportSocket;
          assert.equal(sock.getsockopt(C.IPPROTO_TCP, C.TCP_NODELAY), 1);
        }
      });
    },
  );

  test('a BufferedProtocol gets the decrypted bytes in its own buffers', async () => {
    await runLoop(async (loop) => {
      class Buffered extends BufferedProtocol {
        readonly buf = Buffer.alloc(7);
        readonly got: Buffer[] = [];
        readonly done = loop.createFuture<void>();
        override getBuffer(): Uint8Array {
          return this.buf;
        }
        override bufferUpdated(n: number): void {
          this.got.push(Buffer.from(this.buf.subarray(0, n)));
          if (Buffer.concat(this.got).length >= 100) this.done.setResult(undefined);
        }
      }
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      const proto = new Buffered();
      const waiter = loop.createFuture<unknown>();
      const st = createTLSTransport(loop, proto, accepted, serverContext(), { serverSide: true, waiter });
      const client = tls.connect({ socket: raw, ca: certs.ca.cert, servername: 'localhost' });
      try {
        await waiter;
        const payload = Buffer.alloc(100, 'abcdefghij');
        client.write(payload);
        await proto.done;
        assert.deepEqual(Buffer.concat(proto.got), payload);
        assert.ok(proto.got.every((c) => c.length <= 7));
      } finally {
        client.destroy();
        st.abort();
        await closeServer(l.server);
      }
    });
  });

  test('a BufferedProtocol whose getBuffer() returns an empty buffer: that connection fails with RuntimeError', async () => {
    await runLoop(async (loop, errors) => {
      class Empty extends BufferedProtocol {
        readonly lost = loop.createFuture<Error | null>();
        updates = 0;
        override getBuffer(): Uint8Array {
          return new Uint8Array(0);
        }
        override bufferUpdated(): void {
          this.updates++;
        }
        override connectionLost(exc: Error | null): void {
          this.lost.setResult(exc);
        }
      }
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      const proto = new Empty();
      const waiter = loop.createFuture<unknown>();
      const st = createTLSTransport(loop, proto, accepted, serverContext(), { serverSide: true, waiter });
      const client = tls.connect({ socket: raw, ca: certs.ca.cert, servername: 'localhost' });
      client.on('error', () => {});
      try {
        await waiter;
        client.write('data');
        const exc = await proto.lost;
        assert.ok(RuntimeError.isInstance(exc));
        assert.equal(exc.message, 'getBuffer() returned an empty buffer');
        assert.equal(proto.updates, 0);
        assert.equal(errors.length, 1);
        assert.equal(errors[0]!.exception, exc);
        assert.equal(errors[0]!.protocol, proto);
        assert.equal(st.isClosing(), true);
      } finally {
        client.destroy();
        st.abort();
        await closeServer(l.server);
      }
    });
  });
});

describe('verification', () => {
  test('a server certificate from an unknown CA fails the client handshake; no callback runs', async () => {
    await runLoop(async (loop, errors) => {
      // Node's bundled roots do not know the test CA.
      await using pair = await tlsPair(loop, serverContext(), createDefaultContext());
      const err = await outcome(pair.client.waiter);
      assert.ok(err !== null);
      assert.equal((err as { code?: string }).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      await pair.client.transport._sslObject.destroyed;
      assert.deepEqual(pair.client.protocol.events, []);
      assert.equal(pair.client.transport.isClosing(), true);
      // The server saw the client's alert.
      assert.ok((await outcome(pair.server.waiter)) !== null || pair.server.protocol.events.includes('lost'));
      assert.deepEqual(errors, []);
    });
  });

  test('a certificate signed by another CA is refused the same way', async () => {
    await runLoop(async (loop) => {
      const sctx = new SSLContext(PROTOCOL_TLS_SERVER);
      sctx.loadCertChain(certs.untrustedServer.certfile, certs.untrustedServer.keyfile);
      await using pair = await tlsPair(loop, sctx, clientContext());
      const err = await outcome(pair.client.waiter);
      assert.match(String((err as { code?: string }).code), /UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY/);
    });
  });

  test('hostname mismatch: ERR_TLS_CERT_ALTNAME_INVALID', async () => {
    await runLoop(async (loop) => {
      const pair = await tlsPair(loop, serverContext(), clientContext(), {
        client: { serverHostname: 'wrong.example' },
      });
      try {
        const err = await outcome(pair.client.waiter);
        assert.equal((err as { code?: string }).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
        assert.match(String(err?.message), /wrong\.example/);
      } finally {
        await pair.close();
      }
    });
  });

  test('an IP address is checked against the IP SANs (and not sent with SNI)', async () => {
    await runLoop(async (loop) => {
      let sni: string | null | undefined = null;
      const sctx = serverContext();
      sctx.sniCallback = (name) => {
        sni = name;
        return null;
      };
      await using pair = await tlsPair(loop, sctx, clientContext(), { client: { serverHostname: '127.0.0.1' } });
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      assert.equal(sni, null);
    });
  });

  test('checkHostname off and CERT_NONE: an untrusted, mismatching server is accepted', async () => {
    await runLoop(async (loop) => {
      const sctx = new SSLContext(PROTOCOL_TLS_SERVER);
      sctx.loadCertChain(certs.untrustedServer.certfile, certs.untrustedServer.keyfile);
      const cctx = new SSLContext(PROTOCOL_TLS_CLIENT);
      cctx.checkHostname = false;
      cctx.verifyMode = CERT_NONE;
      await using pair = await tlsPair(loop, sctx, cctx, { client: { serverHostname: 'wrong.example' } });
      await Promise.all([pair.server.waiter, pair.client.waiter]);
    });
  });

  test('checkHostname with no serverHostname is refused before the socket is touched', async () => {
    await runLoop(async (loop) => {
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      try {
        assert.throws(
          () => createTLSTransport(loop, new Recorder(loop), raw, clientContext(), { serverHostname: null }),
          { name: 'ValueError', message: 'checkHostname requires serverHostname' },
        );
        assert.equal(raw.destroyed, false);
      } finally {
        raw.destroy();
        accepted.destroy();
        await closeServer(l.server);
      }
    });
  });
});

describe('mutual TLS', () => {
  function mtlsServer(mode: 1 | 2 = CERT_REQUIRED): SSLContext {
    const ctx = serverContext();
    ctx.verifyMode = mode;
    ctx.loadVerifyLocations({ cafile: certs.ca.certfile });
    return ctx;
  }

  test('a client certificate from the CA is accepted and is the server peercert', async () => {
    await runLoop(async (loop) => {
      const cctx = clientContext();
      cctx.loadCertChain(certs.client.certfile, certs.client.keyfile);
      await using pair = await tlsPair(loop, mtlsServer(), cctx);
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      const peer = pair.server.transport.getExtraInfo('peercert') as tls.PeerCertificate;
      assert.equal(peer.subject.CN, 'client');
    });
  });

  test('no client certificate: the server handshake fails; the client connection does not survive', async () => {
    await runLoop(async (loop, errors) => {
      await using pair = await tlsPair(loop, mtlsServer(), clientContext());
      const err = await outcome(pair.server.waiter);
      assert.equal((err as { code?: string }).code, 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
      assert.deepEqual(pair.server.protocol.events, []);
      // TLS 1.3: the client finished its side first, then gets the alert.
      const clientErr = await outcome(pair.client.waiter);
      if (clientErr === null) {
        const lost = await pair.client.protocol.lost;
        assert.match(String((lost as { code?: string } | null)?.code), /CERTIFICATE_REQUIRED/);
      }
      assert.deepEqual(errors, []);
    });
  });

  test('a client certificate from an unknown CA is refused by the server', async () => {
    await runLoop(async (loop) => {
      const cctx = clientContext();
      cctx.loadCertChain(certs.untrustedClient.certfile, certs.untrustedClient.keyfile);
      await using pair = await tlsPair(loop, mtlsServer(), cctx);
      const err = await outcome(pair.server.waiter);
      assert.match(String((err as { code?: string }).code), /UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY/);
      assert.deepEqual(pair.server.protocol.events, []);
    });
  });

  test('CERT_OPTIONAL: no certificate is fine (peercert null), a bad one is refused', async () => {
    await runLoop(async (loop) => {
      const pair = await tlsPair(loop, mtlsServer(CERT_OPTIONAL), clientContext());
      try {
        await Promise.all([pair.server.waiter, pair.client.waiter]);
        assert.equal(pair.server.transport.getExtraInfo('peercert'), null);
      } finally {
        await pair.close();
      }
      const cctx = clientContext();
      cctx.loadCertChain(certs.untrustedClient.certfile, certs.untrustedClient.keyfile);
      const bad = await tlsPair(loop, mtlsServer(CERT_OPTIONAL), cctx);
      try {
        assert.ok((await outcome(bad.server.waiter)) !== null);
      } finally {
        await bad.close();
      }
    });
  });
});

describe('ALPN and SNI', () => {
  test('ALPN: the server picks from what the client offers', async () => {
    await runLoop(async (loop) => {
      const sctx = serverContext();
      sctx.setAlpnProtocols(['h2', 'http/1.1']);
      const cctx = clientContext();
      cctx.setAlpnProtocols(['http/1.1', 'foo']);
      await using pair = await tlsPair(loop, sctx, cctx);
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      const proto = (t: TLSTransport): unknown => (t.getExtraInfo('ssl_object') as tls.TLSSocket).alpnProtocol;
      assert.equal(proto(pair.client.transport), 'http/1.1');
      assert.equal(proto(pair.server.transport), 'http/1.1');
    });
  });

  test('SNI: two certificates chosen by the name the client asks for (sync and async callbacks)', async () => {
    await runLoop(async (loop) => {
      const other = new SSLContext(PROTOCOL_TLS_SERVER);
      other.loadCertChain(certs.server2.certfile, certs.server2.keyfile);
      for (const asyncCb of [false, true]) {
        const sctx = serverContext();
        const seen: string[] = [];
        sctx.sniCallback = (name, ctx, sslObject) => {
          assert.equal(ctx, sctx);
          assert.ok(sslObject instanceof tls.TLSSocket);
          seen.push(name);
          const chosen = name === 'other.test' ? other : null;
          return asyncCb ? Promise.resolve(chosen) : chosen;
        };
        for (const [name, cn] of [
          ['other.test', 'other.test'],
          ['localhost', 'localhost'],
        ] as const) {
          const pair = await tlsPair(loop, sctx, clientContext(), { client: { serverHostname: name } });
          try {
            await Promise.all([pair.server.waiter, pair.client.waiter]);
            const cert = pair.client.transport.getExtraInfo('peercert') as tls.PeerCertificate;
            assert.equal(cert.subject.CN, cn);
          } finally {
            await pair.close();
          }
        }
        assert.deepEqual(seen, ['other.test', 'localhost']);
      }
    });
  });

  test('SNI: an exception in the callback fails the handshake', async () => {
    await runLoop(async (loop) => {
      const sctx = serverContext();
      sctx.setServernameCallback(() => {
        throw new Error('no such host here');
      });
      await using pair = await tlsPair(loop, sctx, clientContext());
      assert.ok((await outcome(pair.server.waiter)) !== null);
      assert.ok((await outcome(pair.client.waiter)) !== null);
    });
  });
});

describe('timeouts', () => {
  test('handshake timeout: a client that connects and sends nothing is aborted with ConnectionAbortedError', async () => {
    await runLoop(async (loop, errors) => {
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      const proto = new Recorder(loop);
      const waiter = loop.createFuture<unknown>();
      const start = loop.time();
      createTLSTransport(loop, proto, accepted, serverContext(), {
        serverSide: true,
        waiter,
        sslHandshakeTimeout: 0.2,
      });
      const closed = once(raw, 'end');
      raw.resume();
      try {
        const err = await outcome(waiter);
        assert.ok(ConnectionAbortedError.isInstance(err));
        assert.equal(err.message, 'SSL handshake is taking longer than 0.2 seconds: aborting the connection');
        assert.ok(loop.time() - start >= 0.19);
        await closed;
        assert.deepEqual(proto.events, []);
        assert.deepEqual(errors, []);
      } finally {
        raw.destroy();
        accepted.destroy();
        await closeServer(l.server);
      }
    });
  });

  test('shutdown timeout: a peer that never answers close_notify is aborted with TimeoutError', async () => {
    await runLoop(async (loop, errors) => {
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      const proto = new Recorder(loop);
      const waiter = loop.createFuture<unknown>();
      const st = createTLSTransport(loop, proto, accepted, serverContext(), {
        serverSide: true,
        waiter,
        sslShutdownTimeout: 0.2,
      });
      // allowHalfOpen: Node's TLS socket does not answer close_notify until end() is called, which never happens.
      const options = { socket: raw, ca: certs.ca.cert, servername: 'localhost', allowHalfOpen: true };
      const client = tls.connect(options as tls.ConnectionOptions);
      const clientEnd = once(client, 'end');
      client.on('error', () => {});
      try {
        await waiter;
        st.close();
        assert.equal(st.isClosing(), true);
        await clientEnd;
        const t0 = loop.time();
        const exc = await proto.lost;
        assert.ok(TimeoutError.isInstance(exc));
        assert.equal(exc.message, 'SSL shutdown timed out');
        assert.ok(loop.time() - t0 >= 0.1);
        assert.deepEqual(errors, []);
      } finally {
        client.destroy();
        await closeServer(l.server);
      }
    });
  });

  test('timeouts are validated: positive numbers only', async () => {
    await runLoop(async (loop) => {
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      try {
        for (const [key, value] of [
          ['sslHandshakeTimeout', 0],
          ['sslHandshakeTimeout', -1],
          ['sslShutdownTimeout', 0],
        ] as const) {
          assert.throws(
            () =>
              createTLSTransport(loop, new Recorder(loop), raw, serverContext(), { serverSide: true, [key]: value }),
            { name: 'ValueError', message: `${key} should be a positive number, got ${value}` },
          );
        }
        assert.throws(() => createTLSTransport(loop, new Recorder(loop), raw, {} as SSLContext, { serverSide: true }), {
          name: 'TypeError',
          message: 'sslcontext is expected to be an instance of ssl.SSLContext, got {}',
        });
        assert.throws(() => createTLSTransport(loop, new Recorder(loop), raw, null, { serverSide: true }), {
          name: 'ValueError',
          message: 'Server side SSL needs a valid SSLContext',
        });
        assert.throws(
          () => createTLSTransport(loop, new Recorder(loop), raw, clientContext(), { serverSide: true }),
          ValueError,
        );
        assert.equal(raw.destroyed, false);
      } finally {
        raw.destroy();
        accepted.destroy();
        await closeServer(l.server);
      }
    });
  });
});

describe('closing', () => {
  test('client close: close_notify both ways, eofReceived then connectionLost(null) on both sides, quietly', async () => {
    await runLoop(async (loop, errors) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      pair.client.transport.write(Buffer.from('last words'));
      pair.client.transport.close();
      assert.equal(pair.client.transport.isClosing(), true);
      // Writes after close() are dropped.
      pair.client.transport.write(Buffer.from('dropped'));
      assert.equal(await pair.server.protocol.lost, null);
      assert.equal(await pair.client.protocol.lost, null);
      assert.equal(pair.server.protocol.received().toString(), 'last words');
      assert.deepEqual(pair.server.protocol.events, ['made', 'data', 'eof', 'lost']);
      // The client's close_notify was answered: the client saw the server's as EOF too.
      assert.deepEqual(pair.client.protocol.events, ['made', 'eof', 'lost']);
      assert.deepEqual(errors, []);
      assert.equal(pair.client.transport._sslObject.destroyed, true);
      assert.equal(pair.server.transport._sslObject.destroyed, true);
    });
  });

  test('a peer that sends close_notify and resets at once: connectionLost(null), no error reported', async () => {
    await runLoop(async (loop, errors) => {
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      const proto = new Recorder(loop);
      const waiter = loop.createFuture<unknown>();
      createTLSTransport(loop, proto, accepted, serverContext(), { serverSide: true, waiter });
      const client = tls.connect({ socket: raw, ca: certs.ca.cert, servername: 'localhost' });
      const secure = once(client, 'secureConnect');
      try {
        await waiter;
        await secure;
        client.write('bye');
        await proto.receive(3);
        // close_notify, then an RST (SO_LINGER 0) instead of waiting for the server's answer.
        client.end(() => raw.resetAndDestroy());
        assert.equal(await proto.lost, null);
        assert.deepEqual(errors, []);
      } finally {
        client.destroy();
        await closeServer(l.server);
      }
    });
  });

  test('a peer that resets without close_notify: connectionLost(ECONNRESET), not the exception handler', async () => {
    await runLoop(async (loop, errors) => {
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      const proto = new Recorder(loop);
      const waiter = loop.createFuture<unknown>();
      createTLSTransport(loop, proto, accepted, serverContext(), { serverSide: true, waiter });
      const client = tls.connect({ socket: raw, ca: certs.ca.cert, servername: 'localhost' });
      const secure = once(client, 'secureConnect');
      client.on('error', () => {});
      try {
        await waiter;
        await secure;
        raw.resetAndDestroy();
        const exc = await proto.lost;
        assert.equal((exc as { code?: string } | null)?.code, 'ECONNRESET');
        assert.deepEqual(errors, []);
      } finally {
        client.destroy();
        await closeServer(l.server);
      }
    });
  });

  test('abort: connectionLost(null) at once, the peer sees the connection end', async () => {
    await runLoop(async (loop) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      pair.server.transport.abort();
      assert.equal(await pair.server.protocol.lost, null);
      await pair.client.protocol.lost;
    });
  });

  test('close during the handshake aborts; the waiter fails; no callbacks', async () => {
    await runLoop(async (loop) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      pair.client.transport.close();
      const err = await outcome(pair.client.waiter);
      assert.equal(err?.name, 'ConnectionResetError');
      assert.deepEqual(pair.client.protocol.events, []);
    });
  });

  test('writeEof is refused (NotImplementedError), canWriteEof() is false; eofReceived cannot keep it open', async () => {
    await runLoop(async (loop) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      const t = pair.client.transport;
      assert.equal(t.canWriteEof(), false);
      assert.throws(
        () => t.writeEof(),
        (e: unknown) => {
          assert.ok(NotImplementedError.isInstance(e));
          assert.equal((e as Error).message, "SSL doesn't support half-closes");
          return true;
        },
      );
      // A protocol that asks to stay open after EOF is closed anyway.
      pair.server.protocol.eofReceived = () => {
        pair.server.protocol.events.push('eof');
        return true;
      };
      t.close();
      assert.equal(await pair.server.protocol.lost, null);
    });
  });
});

describe('flow control and errors', () => {
  test('pauseWriting above the high-water mark, resumeWriting once the peer reads', async () => {
    await runLoop(async (loop) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      const calls: string[] = [];
      const resumed = loop.createFuture<void>();
      pair.server.protocol.pauseWriting = () => calls.push('pause');
      pair.server.protocol.resumeWriting = () => {
        calls.push('resume');
        if (!resumed.done()) resumed.setResult(undefined);
      };
      const st = pair.server.transport;
      // asyncio's defaults for TLS: 512 KiB, and a quarter of it; the same with no arguments.
      assert.deepEqual(st.getWriteBufferLimits(), [128 * 1024, 512 * 1024]);
      st.setWriteBufferLimits(1024);
      assert.deepEqual(st.getWriteBufferLimits(), [256, 1024]);
      st.setWriteBufferLimits();
      assert.deepEqual(st.getWriteBufferLimits(), [128 * 1024, 512 * 1024]);
      st.setWriteBufferLimits(64 * 1024, 16 * 1024);
      assert.deepEqual(st.getWriteBufferLimits(), [16 * 1024, 64 * 1024]);
      pair.client.transport.pauseReading();
      assert.equal(pair.client.transport.isReading(), false);
      const chunk = Buffer.alloc(64 * 1024, 1);
      let written = 0;
      while (!calls.includes('pause') && written < 64 * 1024 * 1024) {
        st.write(chunk);
        written += chunk.length;
        // Let the kernel buffers fill between writes.
        if (st.getWriteBufferSize() === 0) await new Promise((r) => setImmediate(r));
      }
      assert.deepEqual(calls, ['pause']);
      assert.ok(st.getWriteBufferSize() > 64 * 1024);
      pair.client.transport.resumeReading();
      await resumed;
      assert.deepEqual(calls, ['pause', 'resume']);
      assert.equal((await pair.client.protocol.receive(written)).length, written);
    });
  });

  test('pauseReading holds data back until resumeReading', async () => {
    await runLoop(async (loop) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      pair.server.transport.pauseReading();
      pair.client.transport.write(Buffer.from('held'));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(pair.server.protocol.received().length, 0);
      pair.server.transport.resumeReading();
      assert.equal(pair.server.transport.isReading(), true);
      assert.equal((await pair.server.protocol.receive(4)).toString(), 'held');
    });
  });

  test('an exception in dataReceived goes to the exception handler and aborts that connection', async () => {
    await runLoop(async (loop, errors) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      const boom = new Error('boom');
      pair.server.protocol.dataReceived = () => {
        throw boom;
      };
      pair.client.transport.write(Buffer.from('x'));
      assert.equal(await pair.server.protocol.lost, boom);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.exception, boom);
      assert.equal(errors[0]?.transport, pair.server.transport);
      assert.equal(errors[0]?.protocol, pair.server.protocol);
      await pair.client.protocol.lost;
    });
  });

  test('write() refuses a string; setProtocol switches the receiver; inspect shows the state', async () => {
    await runLoop(async (loop) => {
      await using pair = await tlsPair(loop, serverContext(), clientContext());
      await Promise.all([pair.server.waiter, pair.client.waiter]);
      assert.throws(() => pair.client.transport.write('text' as unknown as Uint8Array), TypeError);
      // writelines() checks the whole list first, as the socket transports do: nothing of a bad list goes out.
      assert.throws(() => pair.client.transport.writelines([Buffer.from('lost'), 'text' as unknown as Uint8Array]), {
        name: 'TypeError',
        message: /in writelines\(\)/,
      });
      const next = new Recorder(loop);
      pair.server.transport.setProtocol(next);
      assert.equal(pair.server.transport.getProtocol(), next);
      pair.client.transport.write(Buffer.from('to next'));
      assert.equal((await next.receive(7)).toString(), 'to next');
      assert.match(
        (pair.server.transport as unknown as { _describe(): string })._describe(),
        /^<TLSTransport WRAPPED server peer=127\.0\.0\.1:\d+ read=polling bufsize=\d+>$/,
      );
    });
  });
});

describe('the loop', () => {
  test('data that arrives while the loop is not running waits for it, as asyncio reads nothing then', async () => {
    const loop = newEventLoop();
    const l = await listen();
    const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
    const proto = new Recorder(loop);
    const client = tls.connect({ socket: raw, ca: certs.ca.cert, servername: 'localhost' });
    const secure = once(client, 'secureConnect');
    try {
      await loop.runUntilComplete(async () => {
        const waiter = loop.createFuture<unknown>();
        createTLSTransport(loop, proto, accepted, serverContext(), { serverSide: true, waiter });
        await waiter;
        await secure;
      });
      client.write('while stopped');
      client.end();
      // The bytes and the EOF reach the server's socket, but not the protocol: the loop is not running.
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(proto.events, ['made']);
      await loop.runUntilComplete(() => proto.lost);
      assert.equal(proto.received().toString(), 'while stopped');
      assert.deepEqual(proto.events, ['made', 'data', 'eof', 'lost']);
    } finally {
      client.destroy();
      loop.close();
      await closeServer(l.server);
    }
  });

  test('a socket destroyed before the hand-off fails the waiter at once (no 60 s wait)', async () => {
    await runLoop(async (loop) => {
      const l = await listen();
      const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
      accepted.destroy();
      const proto = new Recorder(loop);
      const waiter = loop.createFuture<unknown>();
      createTLSTransport(loop, proto, accepted, serverContext(), { serverSide: true, waiter });
      const err = await outcome(waiter);
      assert.equal(err?.name, 'ConnectionResetError');
      assert.deepEqual(proto.events, []);
      raw.destroy();
      await closeServer(l.server);
    });
  });
});

describe('no leaks', () => {
  test('after many connections the server has no socket left and closes', async () => {
    await runLoop(async (loop) => {
      const l = await listen();
      const lost: PromiseLike<unknown>[] = [];
      for (let i = 0; i < 20; i++) {
        const [raw, accepted] = await Promise.all([connect(l.port), l.accept()]);
        const sp = new Recorder(loop);
        const cp = new Recorder(loop);
        const sw = loop.createFuture<unknown>();
        const cw = loop.createFuture<unknown>();
        createTLSTransport(loop, sp, accepted, serverContext(), { serverSide: true, waiter: sw });
        const ct = createTLSTransport(loop, cp, raw, clientContext(), { serverHostname: 'localhost', waiter: cw });
        await Promise.all([sw, cw]);
        (i % 2 === 0 ? ct : (sp.transport as BaseTransport)).close();
        lost.push(sp.lost, cp.lost);
      }
      assert.deepEqual(await Promise.all(lost), new Array(40).fill(null));
      const count = await new Promise<number>((resolve, reject) =>
        l.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
      assert.equal(count, 0);
      await closeServer(l.server);
    });
  });
});

describe('what a closed connection keeps alive', () => {
  /**
   * One connection, closed both ways. Returns its two TLS sockets, held as Node holds a closed socket until a full
   * GC runs its handles' weak callbacks, and weak references to the transports and protocols.
   */
  async function closedPair(loop: BaseEventLoop): Promise<{ sockets: tls.TLSSocket[]; refs: WeakRef<object>[] }> {
    const pair = await tlsPair(loop, serverContext(), clientContext());
    await Promise.all([pair.server.waiter, pair.client.waiter]);
    const sockets: tls.TLSSocket[] = [];
    const refs: WeakRef<object>[] = [];
    for (const side of [pair.server, pair.client]) {
      sockets.push(side.transport.getExtraInfo('ssl_object') as tls.TLSSocket);
      refs.push(new WeakRef(side.transport), new WeakRef(side.protocol));
    }
    pair.client.transport.close();
    await Promise.all([pair.server.protocol.lost, pair.client.protocol.lost]);
    await pair.close();
    return { sockets, refs };
  }

  test('a closed socket does not keep its transport and protocol alive', async () => {
    await runLoop(async (loop) => {
      const { sockets, refs } = await closedPair(loop);
      assert.deepEqual(
        await collectedAfterGc(refs),
        [true, true, true, true],
        'server transport, server protocol, client transport, client protocol collected',
      );
      // Still referenced, so still alive: only the way from them to the transports is gone.
      assert.ok(sockets.every((s) => s.destroyed));
    });
  });
});
