// loopwork's echo server in the sock* mode (the uvloop echo benchmark's default "sockets" mode): a loopwork
// Socket listens; each connection is served by a task looping on loop.sockRecv / loop.sockSendall.
//   node --conditions=loopwork-source --import tsx bench/net/loopwork-sock-echo.ts <port | unix:/path>
// (also accepts `sock <target>`, the argument shape of loopwork-echo.ts). Prints READY once listening.
import { rmSync } from 'node:fs';
import { loadPackage } from '../lib/loopwork.js';

const READ_SIZE = 256 * 1024;

interface Sock {
  bind(address: string | [string, number]): void;
  listen(backlog?: number): void;
  setblocking(flag: boolean): void;
  setsockopt(level: number, name: number, value: number): void;
  close(): void;
}
interface SockLoop {
  sockAccept(sock: Sock): PromiseLike<[Sock, unknown]>;
  sockRecv(sock: Sock, n: number): PromiseLike<Uint8Array>;
  sockSendall(sock: Sock, data: Uint8Array): PromiseLike<void>;
  createTask(fn: () => Promise<unknown>): unknown;
  runUntilComplete(fn: () => Promise<unknown>): Promise<unknown>;
}
interface Pkg {
  newEventLoop(): SockLoop;
  Socket: new (family?: number, type?: number) => Sock;
  AF_INET: number;
  AF_UNIX: number;
  SOCK_STREAM: number;
  SOL_SOCKET: number;
  SO_REUSEADDR: number;
  IPPROTO_TCP: number;
  TCP_NODELAY: number;
}

const args = process.argv.slice(2).filter((a) => a !== 'sock');
const target = args[0] ?? '25000';
const unix = target.startsWith('unix:') ? target.slice(5) : null;
const lw = await loadPackage<Pkg>('server', ['newEventLoop', 'Socket', 'SOL_SOCKET', 'TCP_NODELAY']);
const loop = lw.newEventLoop();
for (const m of ['sockAccept', 'sockRecv', 'sockSendall'] as const) {
  if (typeof loop[m] !== 'function') throw new Error(`the loop has no ${m} yet`);
}

async function serve(conn: Sock): Promise<void> {
  try {
    for (;;) {
      const data = await loop.sockRecv(conn, READ_SIZE);
      if (data.length === 0) break;
      await loop.sockSendall(conn, data);
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'ECONNRESET' && code !== 'EPIPE') throw err;
  } finally {
    conn.close();
  }
}

await loop.runUntilComplete(async () => {
  if (unix) rmSync(unix, { force: true });
  const lsock = new lw.Socket(unix ? lw.AF_UNIX : lw.AF_INET, lw.SOCK_STREAM);
  if (!unix) lsock.setsockopt(lw.SOL_SOCKET, lw.SO_REUSEADDR, 1);
  lsock.bind(unix ?? ['127.0.0.1', Number(target)]);
  lsock.listen(1024);
  lsock.setblocking(false);
  console.log('READY');
  process.on('SIGTERM', () => process.exit(0));
  for (;;) {
    const [conn] = await loop.sockAccept(lsock);
    if (!unix) conn.setsockopt(lw.IPPROTO_TCP, lw.TCP_NODELAY, 1);
    loop.createTask(() => serve(conn));
  }
});
