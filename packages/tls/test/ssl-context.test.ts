import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, describe, test } from 'node:test';
import {
  CERT_NONE,
  CERT_OPTIONAL,
  CERT_REQUIRED,
  PROTOCOL_TLS,
  PROTOCOL_TLS_CLIENT,
  PROTOCOL_TLS_SERVER,
  OSError,
  Purpose,
  SSLContext,
  TLSVersion,
  createDefaultContext,
  isSSLContext,
} from '@loopwork/tls';
import { makeTestCerts } from './helpers/certs.js';
import { outcome, runLoop, tlsPair } from './helpers/harness.js';

const certs = makeTestCerts();
const { serverContext } = certs;
after(() => certs.dispose());

describe('defaults', () => {
  test("each protocol has Python's defaults; TLS 1.2 is the lowest version", () => {
    const client = new SSLContext(PROTOCOL_TLS_CLIENT);
    assert.equal(client.protocol, PROTOCOL_TLS_CLIENT);
    assert.equal(client.verifyMode, CERT_REQUIRED);
    assert.equal(client.checkHostname, true);
    const server = new SSLContext(PROTOCOL_TLS_SERVER);
    assert.equal(server.verifyMode, CERT_NONE);
    assert.equal(server.checkHostname, false);
    const generic = new SSLContext();
    assert.equal(generic.protocol, PROTOCOL_TLS);
    assert.equal(generic.verifyMode, CERT_NONE);
    for (const ctx of [client, server, generic]) {
      assert.equal(ctx.minimumVersion, TLSVersion.TLSv1_2);
      assert.equal(ctx.maximumVersion, TLSVersion.TLSv1_3);
    }
    assert.throws(() => new SSLContext(3 as typeof PROTOCOL_TLS), { name: 'ValueError' });
  });

  test('createDefaultContext: a verifying client context, or a server one for CLIENT_AUTH', () => {
    const c = createDefaultContext();
    assert.equal(c.protocol, PROTOCOL_TLS_CLIENT);
    assert.equal(c.verifyMode, CERT_REQUIRED);
    assert.equal(c.checkHostname, true);
    assert.equal(c._defaultCerts, true);
    const withCa = createDefaultContext({ cafile: certs.ca.certfile });
    assert.equal(withCa._defaultCerts, false);
    assert.equal(withCa.getCaCerts().length, 1);
    const s = createDefaultContext({ purpose: Purpose.CLIENT_AUTH });
    assert.equal(s.protocol, PROTOCOL_TLS_SERVER);
    assert.equal(s.verifyMode, CERT_NONE);
    assert.throws(() => createDefaultContext({ purpose: 'x' as Purpose }), { name: 'ValueError' });
  });

  test('isSSLContext tells contexts from look-alikes', () => {
    assert.equal(isSSLContext(new SSLContext()), true);
    assert.equal(isSSLContext({ verifyMode: 2 }), false);
    assert.equal(isSSLContext(null), false);
    assert.equal(isSSLContext(tls.createSecureContext()), false);
  });
});

describe('checkHostname and verifyMode', () => {
  test('turning checkHostname on raises CERT_NONE to CERT_REQUIRED', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
    ctx.checkHostname = true;
    assert.equal(ctx.verifyMode, CERT_REQUIRED);
    ctx.verifyMode = CERT_OPTIONAL;
    ctx.checkHostname = true;
    assert.equal(ctx.verifyMode, CERT_OPTIONAL);
  });

  test('CERT_NONE is refused while checkHostname is on; unknown modes are refused', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_CLIENT);
    assert.throws(() => (ctx.verifyMode = CERT_NONE), {
      name: 'ValueError',
      message: 'Cannot set verifyMode to CERT_NONE when checkHostname is enabled.',
    });
    assert.throws(() => (ctx.verifyMode = 7 as typeof CERT_NONE), { message: 'invalid value for verifyMode' });
    ctx.checkHostname = false;
    ctx.verifyMode = CERT_NONE;
    assert.equal(ctx.verifyMode, CERT_NONE);
  });

  test('TLS versions: unknown names refused; a client limited to TLS 1.1 cannot connect', async () => {
    const ctx = new SSLContext(PROTOCOL_TLS_CLIENT);
    assert.throws(() => (ctx.minimumVersion = 'SSLv3' as TLSVersion), { name: 'ValueError' });
    await runLoop(async (loop) => {
      const old = createDefaultContext({ cafile: certs.ca.certfile });
      old.minimumVersion = TLSVersion.TLSv1;
      old.maximumVersion = TLSVersion.TLSv1_1;
      await using pair = await tlsPair(loop, serverContext(), old);
      assert.ok((await outcome(pair.client.waiter)) !== null);
      assert.ok((await outcome(pair.server.waiter)) !== null);
    });
  });

  test('TLS versions: a TLS 1.2 maximum on one side gives a TLS 1.2 connection', async () => {
    await runLoop(async (loop) => {
      const sctx = serverContext();
      sctx.maximumVersion = TLSVersion.TLSv1_2;
      await using pair = await tlsPair(loop, sctx, createDefaultContext({ cafile: certs.ca.certfile }));
      await Promise.all([pair.client.waiter, pair.server.waiter]);
      const cipher = pair.client.transport.getExtraInfo('cipher');
      assert.equal(cipher?.[1], 'TLSv1.2');
      assert.equal((pair.client.transport.getExtraInfo('ssl_object') as tls.TLSSocket).getProtocol(), 'TLSv1.2');
    });
  });

  test('setCiphers: restricts TLS 1.2 ciphers; nonsense is refused', async () => {
    assert.throws(() => new SSLContext().setCiphers('NOT-A-CIPHER'), /no cipher match/i);
    await runLoop(async (loop) => {
      const sctx = serverContext();
      sctx.maximumVersion = TLSVersion.TLSv1_2;
      sctx.setCiphers('ECDHE-ECDSA-AES128-GCM-SHA256');
      await using pair = await tlsPair(loop, sctx, createDefaultContext({ cafile: certs.ca.certfile }));
      await Promise.all([pair.client.waiter, pair.server.waiter]);
      assert.deepEqual(pair.client.transport.getExtraInfo('cipher'), ['ECDHE-ECDSA-AES128-GCM-SHA256', 'TLSv1.2', 128]);
    });
  });
});

describe('loadCertChain', () => {
  test('paths, PEM strings, Buffers, and one file holding both', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
    ctx.loadCertChain(certs.server.certfile, certs.server.keyfile);
    ctx.loadCertChain(certs.server.cert, certs.server.key);
    ctx.loadCertChain(Buffer.from(certs.server.cert), Buffer.from(certs.server.key));
    ctx.loadCertChain(certs.server.cert + certs.server.key);
    const der = new X509Certificate(certs.server.cert).raw;
    ctx.loadCertChain(der, certs.server.key);
    assert.ok(ctx._getSecureContext());
  });

  test('an encrypted key: a password string or function works; a wrong one throws here', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
    ctx.loadCertChain(certs.server.certfile, certs.encryptedServerKeyfile, 'secret');
    ctx.loadCertChain(certs.server.certfile, certs.encryptedServerKeyfile, () => Buffer.from('secret'));
    assert.throws(
      () => ctx.loadCertChain(certs.server.certfile, certs.encryptedServerKeyfile, 'wrong'),
      /bad decrypt/i,
    );
    assert.throws(
      () => ctx.loadCertChain(certs.server.certfile, certs.encryptedServerKeyfile, 42 as unknown as string),
      { name: 'TypeError', message: 'password should be a string or bytes' },
    );
  });

  test('a key that does not match the certificate, or a missing file, throws here', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
    assert.throws(() => ctx.loadCertChain(certs.server.certfile, certs.client.keyfile), /key values mismatch/i);
    // Python's FileNotFoundError (an OSError), with Node's code kept.
    const missing = { name: 'FileNotFoundError', code: 'ENOENT', message: '[Errno 2] No such file or directory' };
    assert.throws(() => ctx.loadCertChain(join(certs.dir, 'nope.pem')), missing);
    assert.throws(() => ctx.loadCertChain(certs.server.certfile, join(certs.dir, 'nope.key')), missing);
    assert.ok(OSError.isInstance(catchError(() => ctx.loadCertChain(join(certs.dir, 'nope.pem')))));
    assert.equal(ctx._certChain, null);
    const client = new SSLContext(PROTOCOL_TLS_CLIENT);
    assert.throws(() => client.loadVerifyLocations(join(certs.dir, 'nope.pem')), missing);
    assert.throws(() => client.loadVerifyLocations({ capath: join(certs.dir, 'nope') }), missing);
    assert.throws(() => createDefaultContext({ cafile: join(certs.dir, 'nope.pem') }), missing);
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return null;
}

describe('loadVerifyLocations', () => {
  test('cafile, capath, cadata (PEM text, PEM Buffer, DER Buffer), a plain string as cafile', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_CLIENT);
    ctx.loadVerifyLocations(certs.ca.certfile);
    ctx.loadVerifyLocations({ cafile: certs.ca.certfile });
    const dir = join(certs.dir, 'capath');
    mkdirSync(dir, { recursive: true });
    copyFileSync(certs.ca.certfile, join(dir, 'a.pem'));
    copyFileSync(certs.otherCa.certfile, join(dir, 'b.0'));
    ctx.loadVerifyLocations({ capath: dir });
    ctx.loadVerifyLocations({ cadata: certs.ca.cert });
    ctx.loadVerifyLocations({ cadata: Buffer.from(certs.ca.cert) });
    ctx.loadVerifyLocations({ cadata: new X509Certificate(readFileSync(certs.ca.certfile)).raw });
    assert.equal(ctx.getCaCerts().length, 7);
  });

  test('nothing given is a TypeError; no certificate found is a ValueError', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_CLIENT);
    assert.throws(() => ctx.loadVerifyLocations({}), {
      name: 'TypeError',
      message: 'cafile, capath and cadata cannot be all omitted',
    });
    assert.throws(() => ctx.loadVerifyLocations({ cadata: 'not a certificate' }), { name: 'ValueError' });
  });

  test('a cafile or capath that is not a path is a TypeError, never read as a file descriptor', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_CLIENT);
    // An open descriptor of the CA file: read through it, it would pass for a path (0 would wait on stdin).
    const fd = openSync(certs.ca.certfile, 'r');
    try {
      assert.throws(() => ctx.loadVerifyLocations({ cafile: fd as unknown as string }), {
        name: 'TypeError',
        message: /^cafile should be a valid filesystem path/,
      });
      assert.throws(() => ctx.loadVerifyLocations({ capath: fd as unknown as string }), {
        name: 'TypeError',
        message: /^capath should be a valid filesystem path/,
      });
      assert.deepEqual(ctx.getCaCerts(), []);
    } finally {
      closeSync(fd);
    }
  });

  test('a client context that trusts nothing fails; loadVerifyLocations makes it work', async () => {
    await runLoop(async (loop) => {
      const bare = new SSLContext(PROTOCOL_TLS_CLIENT);
      const pair = await tlsPair(loop, serverContext(), bare);
      try {
        assert.ok((await outcome(pair.client.waiter)) !== null);
      } finally {
        await pair.close();
      }
      bare.loadVerifyLocations({ cadata: certs.ca.cert });
      const ok = await tlsPair(loop, serverContext(), bare);
      try {
        await Promise.all([ok.client.waiter, ok.server.waiter]);
      } finally {
        await ok.close();
      }
    });
  });

  test('default roots and loaded anchors are trusted together', async () => {
    await runLoop(async (loop) => {
      const ctx = createDefaultContext();
      ctx.loadVerifyLocations({ cafile: certs.ca.certfile });
      await using pair = await tlsPair(loop, serverContext(), ctx);
      await Promise.all([pair.client.waiter, pair.server.waiter]);
    });
  });
});

describe('ALPN, SNI and caching', () => {
  test('setAlpnProtocols validates the names', () => {
    const ctx = new SSLContext();
    ctx.setAlpnProtocols(['h2', 'http/1.1']);
    assert.throws(() => ctx.setAlpnProtocols(['']), { message: 'ALPN protocols must be 1 to 255 in length' });
    assert.throws(() => ctx.setAlpnProtocols(['x'.repeat(256)]), { name: 'ValueError' });
    assert.throws(() => ctx.setAlpnProtocols([1 as unknown as string]), { name: 'TypeError' });
  });

  test('sniCallback must be a function or null', () => {
    const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
    assert.throws(() => (ctx.sniCallback = 'x' as never), { name: 'TypeError' });
    ctx.sniCallback = () => null;
    ctx.setServernameCallback(null);
    assert.equal(ctx.sniCallback, null);
  });

  test('the SecureContext is built once and rebuilt only after a change', () => {
    const ctx = serverContext();
    const a = ctx._getSecureContext();
    assert.equal(ctx._getSecureContext(), a);
    ctx.setAlpnProtocols(['h2']);
    assert.equal(ctx._getSecureContext(), a);
    ctx.minimumVersion = TLSVersion.TLSv1_3;
    assert.notEqual(ctx._getSecureContext(), a);
  });

  test('a context is refused on the wrong side', () => {
    assert.throws(() => new SSLContext(PROTOCOL_TLS_CLIENT)._serverOptions(), {
      message: 'Cannot create a server socket with a PROTOCOL_TLS_CLIENT context',
    });
    assert.throws(() => new SSLContext(PROTOCOL_TLS_SERVER)._clientOptions(undefined, 'x'), {
      message: 'Cannot create a client socket with a PROTOCOL_TLS_SERVER context',
    });
  });
});
