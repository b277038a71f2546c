// @loopwork/server: servers, connections, transports and streams; re-exports core and tls so that one import
// gives the whole surface, as `import asyncio` does.
export * from '@loopwork/core';
export * from '@loopwork/tls';
