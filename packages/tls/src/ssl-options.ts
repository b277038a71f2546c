/**
 * The checks of the `ssl*` arguments that `createServer`, `createUnixServer`, `createConnection`,
 * `createUnixConnection`, `connectAcceptedSocket` and `startTls` share, with asyncio's messages in our names.
 *
 * @module
 */
import { inspect } from 'node:util';
import { InvalidArgTypeError, ValueError } from '@loopwork/core';
import type { SSLContext } from './ssl-context.js';
import { defaultClientContext, isSSLContext } from './ssl-context.js';

/** Seconds a TLS handshake may take before the connection is aborted (asyncio's `SSL_HANDSHAKE_TIMEOUT`). */
export const SSL_HANDSHAKE_TIMEOUT = 60.0;
/** Seconds to wait for the peer's close_notify before the connection is aborted (`SSL_SHUTDOWN_TIMEOUT`). */
export const SSL_SHUTDOWN_TIMEOUT = 30.0;

/** The `ssl` argument of a connection: a context, `true` for the default client context, or none. */
export type SslArgument = SSLContext | boolean | null | undefined;

/** The `ssl*` options as the loop methods take them. */
export interface SslOptions {
  /** An `SSLContext`; `true` on a client for `createDefaultContext()`. */
  ssl?: SslArgument;
  /** The host name the server's certificate is checked against (clients). */
  serverHostname?: string | null;
  /** Seconds (positive; default 60). */
  sslHandshakeTimeout?: number | null;
  /** Seconds (positive; default 30). */
  sslShutdownTimeout?: number | null;
}

/** The checked TLS settings of one connection or server, ready for `createTLSTransport`. */
export interface ResolvedSsl {
  /** The context the connection or server uses. */
  sslcontext: SSLContext;
  /** The host name to check (clients), `null` on servers or when checking is off. */
  serverHostname: string | null;
  /** Seconds. */
  sslHandshakeTimeout: number;
  /** Seconds. */
  sslShutdownTimeout: number;
}

/**
 * Checks a TLS handshake timeout.
 *
 * @param value - seconds, or `null`/`undefined` for the default (60).
 * @returns the timeout in seconds.
 * @throws ValueError `sslHandshakeTimeout should be a positive number, got 0`; TypeError for a non-number.
 */
export function checkSslHandshakeTimeout(value: number | null | undefined): number {
  return checkPositive('sslHandshakeTimeout', value, SSL_HANDSHAKE_TIMEOUT);
}

/**
 * Checks a TLS shutdown timeout.
 *
 * @param value - seconds, or `null`/`undefined` for the default (30).
 * @returns the timeout in seconds.
 * @throws ValueError `sslShutdownTimeout should be a positive number, got 0`; TypeError for a non-number.
 */
export function checkSslShutdownTimeout(value: number | null | undefined): number {
  return checkPositive('sslShutdownTimeout', value, SSL_SHUTDOWN_TIMEOUT);
}

/**
 * Refuses the TLS-only options when there is no `ssl` (asyncio's "… is only meaningful with ssl").
 *
 * @param options - the call's options.
 * @param names - which options to check (default: both timeouts; clients add `'serverHostname'`).
 * @throws ValueError `sslHandshakeTimeout is only meaningful with ssl` and the like.
 */
export function checkSslOnlyOptions(
  options: SslOptions,
  names: readonly ('serverHostname' | 'sslHandshakeTimeout' | 'sslShutdownTimeout')[] = [
    'sslHandshakeTimeout',
    'sslShutdownTimeout',
  ],
): void {
  if (options.ssl) return;
  for (const name of names) {
    const v = options[name];
    if (v !== undefined && v !== null) throw new ValueError(`${name} is only meaningful with ssl`);
  }
}

/**
 * Checks the TLS options of `createServer`, `createUnixServer` or `connectAcceptedSocket` (server side).
 *
 * @param options - `ssl`, `sslHandshakeTimeout`, `sslShutdownTimeout`.
 * @returns the settings, or `null` without `ssl`.
 * @throws TypeError `ssl argument must be an SSLContext or null` for `true` (a server needs a certificate) or
 * another type; ValueError for a timeout without ssl or one that is not positive.
 */
export function resolveServerSsl(options: SslOptions): ResolvedSsl | null {
  const { ssl } = options;
  if (typeof ssl === 'boolean' || (ssl !== undefined && ssl !== null && !isSSLContext(ssl))) {
    throw new InvalidArgTypeError('ssl argument must be an SSLContext or null');
  }
  if (ssl === undefined || ssl === null) {
    checkSslOnlyOptions(options);
    return null;
  }
  return {
    sslcontext: ssl,
    serverHostname: null,
    sslHandshakeTimeout: checkSslHandshakeTimeout(options.sslHandshakeTimeout),
    sslShutdownTimeout: checkSslShutdownTimeout(options.sslShutdownTimeout),
  };
}

/**
 * Checks the TLS options of `createConnection` or `createUnixConnection` (client side), as asyncio does: the
 * host name defaults to `host`; `ssl: true` means `createDefaultContext()` (without host name checking when the
 * host name is `''`).
 *
 * @param options - `ssl`, `serverHostname`, `sslHandshakeTimeout`, `sslShutdownTimeout`.
 * @param host - the host connected to (`null` for a `sock` or a Unix path).
 * @param unix - true for `createUnixConnection`, where `serverHostname` must be given.
 * @returns the settings, or `null` without `ssl`.
 * @throws ValueError `serverHostname is only meaningful with ssl`, `You must set serverHostname when using ssl
 * without a host`, `you have to pass serverHostname when using ssl`, and the timeout errors; TypeError for an
 * `ssl` that is neither a context nor a boolean.
 */
export function resolveClientSsl(options: SslOptions, host: string | null = null, unix = false): ResolvedSsl | null {
  const { ssl } = options;
  if (ssl !== undefined && ssl !== null && typeof ssl !== 'boolean' && !isSSLContext(ssl)) {
    throw new InvalidArgTypeError(`ssl argument must be an SSLContext, a boolean or null, got ${inspect(ssl)}`);
  }
  if (!ssl) {
    checkSslOnlyOptions(options, ['serverHostname', 'sslHandshakeTimeout', 'sslShutdownTimeout']);
    return null;
  }
  let serverHostname = options.serverHostname ?? null;
  if (serverHostname === null) {
    if (unix) throw new ValueError('you have to pass serverHostname when using ssl');
    if (!host) throw new ValueError('You must set serverHostname when using ssl without a host');
    serverHostname = host;
  }
  let sslcontext: SSLContext;
  if (ssl === true) sslcontext = defaultClientContext(serverHostname !== '');
  else sslcontext = ssl;
  return {
    sslcontext,
    serverHostname: serverHostname === '' ? null : serverHostname,
    sslHandshakeTimeout: checkSslHandshakeTimeout(options.sslHandshakeTimeout),
    sslShutdownTimeout: checkSslShutdownTimeout(options.sslShutdownTimeout),
  };
}

function checkPositive(name: string, value: number | null | undefined, defaultValue: number): number {
  if (value === undefined || value === null) return defaultValue;
  if (typeof value !== 'number')
    throw new InvalidArgTypeError(`${name} should be a positive number, got ${inspect(value)}`);
  if (!(value > 0)) throw new ValueError(`${name} should be a positive number, got ${value}`);
  return value;
}
