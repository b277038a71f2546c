/**
 * The errors `@loopwork/server` adds to core's: the options this platform cannot honour, and the helpers that
 * make core's `OSError` for the failures asyncio reports with it.
 *
 * A failed system call keeps Node's shape (`code` such as `EADDRINUSE`, negative `errno`, `syscall`, and
 * `address`/`port` where Node gives them) with asyncio's message, and the original Node error as `cause`.
 *
 * @module
 */
import { OSError, makeError, osErrorFrom, systemErrorMap } from '@loopwork/core';
import type { OSErrorFields } from '@loopwork/core';

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

/** @internal An `OSError` for an errno name (`EADDRINUSE`) without an underlying Node error. */
export function osErrorCode(code: string, message: string, syscall?: string): Error & OSErrorFields {
  let errno: number | undefined;
  for (const [n, [name]] of systemErrorMap()) if (name === code) errno = n;
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
