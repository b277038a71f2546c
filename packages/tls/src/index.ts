// @loopwork/tls: TLS for loopwork transports on node:tls.
export * from '@loopwork/core';
