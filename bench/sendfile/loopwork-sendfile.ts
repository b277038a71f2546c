// loopwork serving a file to each connection with loop.sendfile.
//   node --conditions=loopwork-source --import tsx bench/sendfile/loopwork-sendfile.ts <zero-copy|fallback> <port> <file>
// zero-copy: sendfile(2) on the threadpool (the default for a plain TCP transport); fallback: the same call with
// the transport declared fallback-only (`_sendfileCompatible`), so the file is read and written in blocks, as for
// TLS. With LOOPWORK_BENCH_ONCE=1 it exits after one transfer (for --cpu-prof).
import { open } from 'node:fs/promises';
import { loadPackage } from '../lib/loopwork.js';

interface Transport {
  close(): void;
}
interface SendfileLoop {
  createServer(factory: () => object, host: string, port: number, options?: object): Promise<unknown>;
  createTask(fn: () => Promise<unknown>): unknown;
  createFuture(): PromiseLike<unknown>;
  sendfile(t: Transport, file: unknown, offset?: number, count?: number | null, o?: object): PromiseLike<number>;
  runUntilComplete(fn: () => Promise<unknown>): Promise<unknown>;
}
interface Pkg {
  newEventLoop(): SendfileLoop;
  Protocol: new () => { connectionMade(t: Transport): void };
}

const [mode = 'zero-copy', port = '25100', path = ''] = process.argv.slice(2);
const lw = await loadPackage<Pkg>('server', ['newEventLoop', 'Protocol']);
const loop = lw.newEventLoop();
if (typeof loop.sendfile !== 'function') throw new Error('the loop has no sendfile yet');

class Serve extends lw.Protocol {
  override connectionMade(transport: Transport): void {
    if (mode === 'fallback') (transport as { _sendfileCompatible?: string })._sendfileCompatible = 'fallback';
    loop.createTask(async () => {
      const fh = await open(path, 'r');
      try {
        await loop.sendfile(transport, fh, 0, null, { fallback: mode === 'fallback' });
      } finally {
        await fh.close();
        transport.close();
        if (process.env.LOOPWORK_BENCH_ONCE === '1') setTimeout(() => process.exit(0), 100);
      }
    });
  }
}

// Exit cleanly when the harness stops the server (so that `node --cpu-prof` writes its profile).
process.on('SIGTERM', () => process.exit(0));
await loop.runUntilComplete(async () => {
  await loop.createServer(() => new Serve(), '127.0.0.1', Number(port));
  console.log('READY');
  await loop.createFuture(); // serve until killed
});
