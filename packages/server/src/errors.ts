/**
 * The errors `@loopwork/server` adds to core's: Python's `OSError` for the failures asyncio reports with it, and
 * the options this platform cannot honour.
 *
 * A failed system call keeps Node's shape (`code` such as `EADDRINUSE`, negative `errno`, `syscall`, and
 * `address`/`port` where Node gives them) with asyncio's message, and the original Node error as `cause`.
 *
 * @module
 */
import { getSystemErrorMap } from 'node:util';
import type { SystemErrorLike } from '@loopwork/core';
import { makeError } from '@loopwork/core';

/**
 * Python's `OSError`: a system call failed (`code` is then its errno name, e.g. `EADDRINUSE`, and `errno`,
 * `syscall` are set), or a network operation failed as a whole (`Multiple exceptions: …`, `could not bind on any
 * address out of …`; `code` is then `ERR_LOOPWORK_OS_ERROR`).
 */
export const OSError = makeError('ERR_LOOPWORK_OS_ERROR', 'OSError', Error);

/**
 * A socket option this platform cannot set (Python's `NotImplementedError` in spirit): `reusePort` or
 * `reuseAddress: false` on a Node without the option and without loopwork's native addon.
 */
export const SocketOptionUnavailableError = makeError(
  'ERR_LOOPWORK_SOCKET_OPTION_UNAVAILABLE',
  'NotImplementedError',
  Error,
);

/** `ssl` was given but `@loopwork/tls` does not provide the TLS transport in this installation. */
export const TLSUnavailableError = makeError('ERR_LOOPWORK_TLS_UNAVAILABLE', 'NotImplementedError', Error);

/** The fields an `OSError` made from a system error carries. */
export interface OSErrorFields extends SystemErrorLike {
  /** The address involved, when Node gave one. */
  address?: string;
  /** The port involved, when Node gave one. */
  port?: number;
}

/** @internal The libuv text for an errno name or number, lower case: `address already in use`. */
export function strerror(err: { code?: unknown; errno?: unknown }): string {
  const map = getSystemErrorMap();
  if (typeof err.errno === 'number') {
    const hit = map.get(err.errno < 0 ? err.errno : -err.errno);
    if (hit !== undefined) return hit[1];
  }
  if (typeof err.code === 'string') {
    for (const [name, text] of map.values()) if (name === err.code) return text;
  }
  return typeof err.code === 'string' ? err.code : 'unknown error';
}

/** @internal The positive errno number of a system error, or 0. */
export function errnoOf(err: { errno?: unknown }): number {
  return typeof err.errno === 'number' ? Math.abs(err.errno) : 0;
}

/**
 * @internal An `OSError` with asyncio's `message`, carrying the system error's `code`, `errno`, `syscall`,
 * `address` and `port`, and the system error as `cause`.
 */
export function osErrorFrom(cause: unknown, message: string): Error & OSErrorFields {
  const err = new OSError(message, { cause }) as Error & OSErrorFields;
  const c = (typeof cause === 'object' && cause !== null ? cause : {}) as Partial<OSErrorFields>;
  if (typeof c.code === 'string') Object.defineProperty(err, 'code', { value: c.code, enumerable: true });
  if (typeof c.errno === 'number') err.errno = c.errno;
  if (typeof c.syscall === 'string') err.syscall = c.syscall;
  if (typeof c.address === 'string') err.address = c.address;
  if (typeof c.port === 'number') err.port = c.port;
  return err;
}

/** @internal An `OSError` for an errno name (`EADDRINUSE`) without an underlying Node error. */
export function osErrorCode(code: string, message: string, syscall?: string): Error & OSErrorFields {
  const map = getSystemErrorMap();
  let errno: number | undefined;
  for (const [n, [name]] of map) if (name === code) errno = n;
  const fields: Partial<OSErrorFields> = { code };
  if (errno !== undefined) fields.errno = errno;
  if (syscall !== undefined) fields.syscall = syscall;
  const err = osErrorFrom(fields, message);
  // No Node error underneath: the fields themselves are not a cause worth showing.
  delete (err as { cause?: unknown }).cause;
  return err;
}

/** @internal True for an error from a system call or the network (asyncio's `isinstance(exc, OSError)`). */
export function isOSError(err: unknown): err is Error & OSErrorFields {
  if (!(err instanceof Error)) return false;
  if (OSError.isInstance(err)) return true;
  const code = (err as { code?: unknown }).code;
  return (
    typeof code === 'string' && (typeof (err as { syscall?: unknown }).syscall === 'string' || /^E[A-Z]+$/.test(code))
  );
}
