import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  PROTOCOL_TLS_SERVER,
  SSLContext,
  SSL_HANDSHAKE_TIMEOUT,
  SSL_SHUTDOWN_TIMEOUT,
  checkSslHandshakeTimeout,
  checkSslOnlyOptions,
  checkSslShutdownTimeout,
  resolveClientSsl,
  resolveServerSsl,
} from '@loopwork/tls';

describe('timeouts', () => {
  test('defaults are 60 and 30 seconds; positive numbers pass', () => {
    assert.equal(SSL_HANDSHAKE_TIMEOUT, 60);
    assert.equal(SSL_SHUTDOWN_TIMEOUT, 30);
    assert.equal(checkSslHandshakeTimeout(undefined), 60);
    assert.equal(checkSslHandshakeTimeout(null), 60);
    assert.equal(checkSslShutdownTimeout(undefined), 30);
    assert.equal(checkSslHandshakeTimeout(0.5), 0.5);
    assert.equal(checkSslShutdownTimeout(Infinity), Infinity);
  });

  test("zero, negatives and NaN are ValueErrors with asyncio's wording; other types TypeErrors", () => {
    assert.throws(() => checkSslHandshakeTimeout(0), {
      name: 'ValueError',
      message: 'sslHandshakeTimeout should be a positive number, got 0',
    });
    assert.throws(() => checkSslShutdownTimeout(-1), {
      name: 'ValueError',
      message: 'sslShutdownTimeout should be a positive number, got -1',
    });
    assert.throws(() => checkSslShutdownTimeout(NaN), { name: 'ValueError' });
    assert.throws(() => checkSslHandshakeTimeout('5' as unknown as number), { name: 'TypeError' });
  });

  test('timeouts and serverHostname without ssl are refused', () => {
    assert.throws(() => checkSslOnlyOptions({ sslHandshakeTimeout: 1 }), {
      name: 'ValueError',
      message: 'sslHandshakeTimeout is only meaningful with ssl',
    });
    assert.throws(() => checkSslOnlyOptions({ ssl: null, sslShutdownTimeout: 1 }), {
      message: 'sslShutdownTimeout is only meaningful with ssl',
    });
    checkSslOnlyOptions({ serverHostname: 'x' });
    assert.throws(() => checkSslOnlyOptions({ serverHostname: 'x' }, ['serverHostname']), {
      message: 'serverHostname is only meaningful with ssl',
    });
    checkSslOnlyOptions({ ssl: new SSLContext(), sslHandshakeTimeout: 1 });
  });
});

describe('resolveServerSsl', () => {
  test('ssl: true is refused with a TypeError, as asyncio does', () => {
    assert.throws(() => resolveServerSsl({ ssl: true }), {
      name: 'TypeError',
      message: 'ssl argument must be an SSLContext or null',
    });
    assert.throws(() => resolveServerSsl({ ssl: false }), { name: 'TypeError' });
    assert.throws(() => resolveServerSsl({ ssl: {} as SSLContext }), { name: 'TypeError' });
  });

  test('no ssl: null, and the timeouts are refused; with a context: the checked settings', () => {
    assert.equal(resolveServerSsl({}), null);
    assert.throws(() => resolveServerSsl({ sslShutdownTimeout: 3 }), { name: 'ValueError' });
    const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
    assert.deepEqual(resolveServerSsl({ ssl: ctx, sslHandshakeTimeout: 5 }), {
      sslcontext: ctx,
      serverHostname: null,
      sslHandshakeTimeout: 5,
      sslShutdownTimeout: 30,
    });
    assert.throws(() => resolveServerSsl({ ssl: ctx, sslHandshakeTimeout: 0 }), {
      message: 'sslHandshakeTimeout should be a positive number, got 0',
    });
  });
});

describe('resolveClientSsl', () => {
  test('ssl: true is the default context; the host is the default serverHostname', () => {
    const r = resolveClientSsl({ ssl: true }, 'example.com');
    assert.ok(r !== null);
    assert.equal(r.serverHostname, 'example.com');
    assert.equal(r.sslcontext.checkHostname, true);
    assert.equal(r.sslHandshakeTimeout, 60);
  });

  test("serverHostname '' turns host name checking off for ssl: true", () => {
    const r = resolveClientSsl({ ssl: true, serverHostname: '' }, 'example.com');
    assert.equal(r?.serverHostname, null);
    assert.equal(r?.sslcontext.checkHostname, false);
  });

  test("asyncio's argument errors", () => {
    assert.throws(() => resolveClientSsl({ serverHostname: 'x' }, 'h'), {
      name: 'ValueError',
      message: 'serverHostname is only meaningful with ssl',
    });
    assert.throws(() => resolveClientSsl({ ssl: true }, null), {
      message: 'You must set serverHostname when using ssl without a host',
    });
    assert.throws(() => resolveClientSsl({ ssl: true }, null, true), {
      message: 'you have to pass serverHostname when using ssl',
    });
    assert.throws(() => resolveClientSsl({ sslHandshakeTimeout: 2 }, 'h'), {
      message: 'sslHandshakeTimeout is only meaningful with ssl',
    });
    assert.throws(() => resolveClientSsl({ ssl: 'yes' as unknown as boolean }, 'h'), { name: 'TypeError' });
    assert.equal(resolveClientSsl({}, 'h'), null);
    assert.equal(resolveClientSsl({ ssl: false }, 'h'), null);
  });
});
