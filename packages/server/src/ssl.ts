/**
 * The hand-off to `@loopwork/tls`: the checks asyncio makes on the `ssl*` arguments, and the call that wraps a
 * connected socket in a TLS transport.
 *
 * The TLS package provides `createTLSTransport(loop, protocol, socket, sslcontext, {serverSide, serverHostname,
 * sslHandshakeTimeout, sslShutdownTimeout, waiter, server, extra})`: it returns the transport at once, calls
 * `connectionMade` after the handshake, then completes `waiter` (or fails it with the handshake's error). It is
 * looked up when first needed, so that this package works (without TLS) while the TLS package is incomplete.
 *
 * @module
 */
import type * as net from 'node:net';
import tls from 'node:tls';
import { inspect } from 'node:util';
import * as tlsPackage from '@loopwork/tls';
import type { BaseEventLoop, BaseProtocol, ExtraInfo, Future, Transport, TransportServer } from '@loopwork/core';
import { InvalidArgTypeError, ValueError } from '@loopwork/core';
import { TLSUnavailableError } from './errors.js';

/** An `SSLContext` of `@loopwork/tls` (Python's `ssl.SSLContext`). */
export type SSLContextLike = object;

/** Options of the TLS package's `createTLSTransport`. */
export interface TLSHandOffOptions {
  serverSide: boolean;
  serverHostname: string | null;
  sslHandshakeTimeout: number | null;
  sslShutdownTimeout: number | null;
  waiter: Future<unknown> | null;
  server: TransportServer | null;
  extra?: Partial<ExtraInfo> | null;
}

/** The TLS package's `createTLSTransport`. */
export type CreateTLSTransport = (
  loop: BaseEventLoop,
  protocol: BaseProtocol,
  socket: net.Socket,
  sslcontext: SSLContextLike | null,
  options: TLSHandOffOptions,
) => Transport;

const SSL_CONTEXT_BRAND = Symbol.for('loopwork.tls.SSLContext');

/** True for an `SSLContext` of `@loopwork/tls` (any installed copy). */
export function isSSLContextLike(value: unknown): value is SSLContextLike {
  if (typeof value !== 'object' || value === null) return false;
  const check = (tlsPackage as unknown as Record<string, unknown>).isSSLContext;
  if (typeof check === 'function') return (check as (v: unknown) => boolean)(value);
  return (value as Record<symbol, unknown>)[SSL_CONTEXT_BRAND] === true;
}

/** @internal The TLS package's transport factory. @throws TLSUnavailableError when it is not there. */
export function tlsTransportFactory(): CreateTLSTransport {
  const f = (tlsPackage as unknown as Record<string, unknown>).createTLSTransport;
  if (typeof f !== 'function') {
    throw new TLSUnavailableError(
      'ssl was given, but @loopwork/tls does not export createTLSTransport in this installation',
    );
  }
  return f as CreateTLSTransport;
}

function checkTimeout(name: string, value: number | null | undefined): void {
  if (value === null || value === undefined) return;
  if (typeof value !== 'number' || !(value > 0)) {
    throw new ValueError(`${name} should be a positive number, got ${String(value)}`);
  }
}

/**
 * @internal The checks of `create_server` / `create_unix_server`: `ssl` is an `SSLContext` or null (a boolean is
 * refused), and the timeouts need it.
 */
export function checkServerSsl(
  ssl: unknown,
  sslHandshakeTimeout: number | null | undefined,
  sslShutdownTimeout: number | null | undefined,
): SSLContextLike | null {
  if (typeof ssl === 'boolean') throw new InvalidArgTypeError('ssl argument must be an SSLContext or null');
  const has = ssl !== null && ssl !== undefined;
  if (sslHandshakeTimeout !== null && sslHandshakeTimeout !== undefined && !has) {
    throw new ValueError('sslHandshakeTimeout is only meaningful with ssl');
  }
  if (sslShutdownTimeout !== null && sslShutdownTimeout !== undefined && !has) {
    throw new ValueError('sslShutdownTimeout is only meaningful with ssl');
  }
  if (!has) return null;
  if (!isSSLContextLike(ssl)) {
    throw new InvalidArgTypeError(`ssl argument must be an SSLContext or null, got ${inspect(ssl, { depth: 0 })}`);
  }
  checkTimeout('sslHandshakeTimeout', sslHandshakeTimeout);
  checkTimeout('sslShutdownTimeout', sslShutdownTimeout);
  tlsTransportFactory();
  return ssl;
}

/**
 * @internal The checks of `create_connection`: returns the context (`null` for `ssl: true`, which means the
 * default client context) and the server host name to check, or `undefined` without ssl.
 */
export function checkClientSsl(
  ssl: unknown,
  host: string | null | undefined,
  serverHostname: string | null | undefined,
  sslHandshakeTimeout: number | null | undefined,
  sslShutdownTimeout: number | null | undefined,
  hostRequired = true,
): { context: SSLContextLike | null; serverHostname: string | null } | undefined {
  const has = ssl !== null && ssl !== undefined && ssl !== false;
  if (serverHostname !== null && serverHostname !== undefined && !has) {
    throw new ValueError('serverHostname is only meaningful with ssl');
  }
  let hostname = serverHostname ?? null;
  if (has && (serverHostname === null || serverHostname === undefined)) {
    if (!host) {
      throw new ValueError(
        hostRequired
          ? 'You must set serverHostname when using ssl without a host'
          : 'you have to pass serverHostname when using ssl',
      );
    }
    hostname = host;
  }
  if (sslHandshakeTimeout !== null && sslHandshakeTimeout !== undefined && !has) {
    throw new ValueError('sslHandshakeTimeout is only meaningful with ssl');
  }
  if (sslShutdownTimeout !== null && sslShutdownTimeout !== undefined && !has) {
    throw new ValueError('sslShutdownTimeout is only meaningful with ssl');
  }
  if (!has) return undefined;
  if (ssl !== true && !isSSLContextLike(ssl)) {
    throw new InvalidArgTypeError(
      `ssl argument must be an SSLContext, true or null, got ${inspect(ssl, { depth: 0 })}`,
    );
  }
  checkTimeout('sslHandshakeTimeout', sslHandshakeTimeout);
  checkTimeout('sslShutdownTimeout', sslShutdownTimeout);
  tlsTransportFactory();
  return { context: ssl === true ? null : ssl, serverHostname: hostname };
}

/** @internal asyncio's `_check_ssl_socket`: a socket handed in must not be a TLS socket already. */
export function checkNotTlsSocket(sock: unknown): void {
  if (sock instanceof tls.TLSSocket) throw new InvalidArgTypeError('Socket cannot be of type TLSSocket');
}
