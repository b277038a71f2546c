// @loopwork/server: servers, connections, transports and streams; re-exports core and tls so that one import
// gives the whole surface, as `import asyncio` does.
export * from '@loopwork/core';
export * from '@loopwork/tls';
export * from './streams.js';
export * from './datagram.js';
export * from './subprocess.js';
export { SocketOptionUnavailableError, TLSUnavailableError } from './errors.js';
export { interleaveAddrinfos } from './addresses.js';
export { staggeredRace } from './staggered.js';
export type { StaggeredRaceResult } from './staggered.js';
export { Server } from './server.js';
export type { SSLContextLike } from './ssl.js';
export type { CreateConnectionOptions, CreateUnixConnectionOptions, SocketLike } from './create-connection.js';
export type {
  ConnectAcceptedSocketOptions,
  CreateServerOptions,
  CreateUnixServerOptions,
  ServerSocketLike,
} from './create-server.js';
import './create-connection.js';
import './create-server.js';
