/**
 * The errors `@loopwork/tls` adds to core's (whose `ConnectionAbortedError` and `ConnectionResetError` it reports
 * for handshake timeouts and connections lost during a handshake).
 *
 * TLS failures themselves (a certificate that does not verify, a protocol alert, a host name that does not match)
 * are Node's own errors with their OpenSSL `code` (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_…`), passed through unchanged.
 *
 * @module
 */
import { makeError } from '@loopwork/core';

/**
 * The operation is not supported by this object (Python's `NotImplementedError`): `writeEof()` on a TLS
 * transport, since TLS has no half-close.
 */
export const NotImplementedError = makeError('ERR_LOOPWORK_NOT_IMPLEMENTED', 'NotImplementedError', Error);
