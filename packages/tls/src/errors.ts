/**
 * The errors `@loopwork/tls` adds to core's (Python's built-in connection errors that TLS reports).
 *
 * TLS failures themselves (a certificate that does not verify, a protocol alert, a host name that does not match)
 * are Node's own errors with their OpenSSL `code` (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_…`), passed through unchanged.
 *
 * @module
 */
import { makeError } from '@loopwork/core';

/**
 * The connection was aborted by this side (Python's `ConnectionAbortedError`): a TLS handshake that did not
 * finish within `sslHandshakeTimeout`.
 */
export const ConnectionAbortedError = makeError('ERR_LOOPWORK_CONNECTION_ABORTED', 'ConnectionAbortedError', Error);

/**
 * The operation is not supported by this object (Python's `NotImplementedError`): `writeEof()` on a TLS
 * transport, since TLS has no half-close.
 */
export const NotImplementedError = makeError('ERR_LOOPWORK_NOT_IMPLEMENTED', 'NotImplementedError', Error);

/**
 * @internal The peer went away before the TLS handshake finished (asyncio's `ConnectionResetError`). It shares
 * its code with `@loopwork/server`'s `ConnectionResetError`, so that `ConnectionResetError.isInstance()` holds for
 * it; it is not exported under that name to keep one class of that name in the re-exported surface.
 */
export const ConnectionLostError = makeError('ERR_LOOPWORK_CONNECTION_LOST', 'ConnectionResetError', Error);
