// @loopwork/tls: TLS for loopwork transports on node:tls.
export * from '@loopwork/core';
export { NotImplementedError } from './errors.js';
export {
  CERT_NONE,
  CERT_OPTIONAL,
  CERT_REQUIRED,
  PROTOCOL_TLS,
  PROTOCOL_TLS_CLIENT,
  PROTOCOL_TLS_SERVER,
  Purpose,
  SSLContext,
  TLSVersion,
  VerifyMode,
  createDefaultContext,
  isSSLContext,
} from './ssl-context.js';
export type {
  CertSource,
  DefaultContextOptions,
  KeyPassword,
  SNICallback,
  SSLProtocolVersion,
  VerifyLocations,
} from './ssl-context.js';
export {
  SSL_HANDSHAKE_TIMEOUT,
  SSL_SHUTDOWN_TIMEOUT,
  checkSslHandshakeTimeout,
  checkSslOnlyOptions,
  checkSslShutdownTimeout,
  resolveClientSsl,
  resolveServerSsl,
} from './ssl-options.js';
export type { ResolvedSsl, SslArgument, SslOptions } from './ssl-options.js';
export { TLSTransport, createTLSTransport } from './tls-transport.js';
export type { SSLProtocolState, TLSTransportOptions } from './tls-transport.js';
export type { StartTlsOptions } from './start-tls.js';
import './start-tls.js';
