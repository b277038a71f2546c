// The echo servers: raw node:net, CPython asyncio and uvloop (asyncio_echo.py), loopwork (loopwork-echo.ts),
// each in the modes it has. Every one takes `<mode> <port | unix:/path>` and prints READY when listening.
import { loopworkArgv, nodeArgv, pythonArgv } from '../lib/systems.mjs';

export const MODES = ['protocol', 'buffered', 'streams', 'sock'];
const MODE_LABEL = { protocol: 'Protocol', buffered: 'BufferedProtocol', streams: 'streams', sock: 'sock*' };

export function echoServer(ctx, impl, mode) {
  switch (impl) {
    case 'node-net':
      return {
        id: 'node-net',
        label: 'raw node:net',
        role: 'anchor',
        argv: (target) => nodeArgv('bench/net/node-echo.mjs', 'protocol', target),
      };
    case 'asyncio':
    case 'uvloop':
      return {
        id: `${impl}-${mode}`,
        label: `${impl === 'asyncio' ? 'asyncio' : 'uvloop'} ${MODE_LABEL[mode]}`,
        role: 'anchor',
        requires: impl === 'uvloop' ? ['python3', 'uvloop'] : ['python3'],
        argv: (target) => pythonArgv('bench/net/asyncio_echo.py', impl, mode, target),
      };
    case 'loopwork':
      return {
        id: `loopwork-${mode}`,
        label: `loopwork ${MODE_LABEL[mode]}`,
        role: 'loopwork',
        requires: ['tsx'],
        argv: (target) => loopworkArgv(ctx, 'bench/net/loopwork-echo.ts', mode, target),
      };
    default:
      throw new Error(`unknown echo server ${impl}`);
  }
}
