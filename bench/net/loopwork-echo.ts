// loopwork echo servers in the four modes of the benchmark, written against asyncio's API in camelCase.
//   node --conditions=loopwork-source --import tsx bench/net/loopwork-echo.ts <mode> <port | unix:/path>
//   mode: protocol | buffered | streams | sock
// Prints READY once listening. Fails (and the harness reports it) until @loopwork/server provides the API.
import { rmSync } from 'node:fs';
import {
  loadPackage,
  type EventLoop,
  type ServerPackage,
  type Socket,
  type StreamReader,
  type StreamWriter,
  type Transport,
} from '../lib/loopwork.js';

const READ_SIZE = 256 * 1024;
const [mode = 'protocol', target = '25000'] = process.argv.slice(2);
const unix = target.startsWith('unix:') ? target.slice(5) : null;
const port = unix ? 0 : Number(target);
const host = '127.0.0.1';

const needs: Record<string, string[]> = {
  protocol: ['newEventLoop', 'Protocol'],
  buffered: ['newEventLoop', 'BufferedProtocol'],
  streams: ['newEventLoop', unix ? 'startUnixServer' : 'startServer'],
  sock: ['newEventLoop', 'Socket', 'AF_INET', 'AF_UNIX', 'SOCK_STREAM', 'SOL_SOCKET', 'TCP_NODELAY'],
};
const required = needs[mode];
if (!required) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
const loopNeeds: Record<string, (keyof EventLoop)[]> = {
  protocol: [unix ? 'createUnixServer' : 'createServer'],
  buffered: [unix ? 'createUnixServer' : 'createServer'],
  streams: [],
  sock: ['sockAccept', 'sockRecv', 'sockSendall'],
};
const lw = await loadPackage<ServerPackage>('server', required);
const loop: EventLoop = lw.newEventLoop();
const missing = (loopNeeds[mode] ?? []).filter((m) => typeof loop[m] !== 'function');
if (missing.length > 0) throw new Error(`the loop has no ${missing.join(', ')} yet`);

async function listen(): Promise<void> {
  if (unix) rmSync(unix, { force: true });
  const options = { backlog: 1024 };
  switch (mode) {
    case 'protocol': {
      class EchoProtocol extends lw.Protocol {
        transport: Transport | null = null;
        connectionMade(transport: Transport): void {
          this.transport = transport;
        }
        dataReceived(data: Uint8Array): void {
          this.transport!.write(data);
        }
      }
      const factory = (): object => new EchoProtocol();
      await (unix ? loop.createUnixServer(factory, unix, options) : loop.createServer(factory, host, port, options));
      return;
    }
    case 'buffered': {
      class EchoBufferedProtocol extends lw.BufferedProtocol {
        transport: Transport | null = null;
        buffer = new Uint8Array(READ_SIZE);
        connectionMade(transport: Transport): void {
          this.transport = transport;
        }
        getBuffer(_sizehint: number): Uint8Array {
          return this.buffer;
        }
        bufferUpdated(nbytes: number): void {
          // Zero-copy: the transport keeps what the kernel did not take, and then the next read needs a fresh buffer.
          const transport = this.transport!;
          transport.write(this.buffer.subarray(0, nbytes));
          if (transport.getWriteBufferSize() > 0) this.buffer = new Uint8Array(READ_SIZE);
        }
      }
      const factory = (): object => new EchoBufferedProtocol();
      await (unix ? loop.createUnixServer(factory, unix, options) : loop.createServer(factory, host, port, options));
      return;
    }
    case 'streams': {
      const echo = async (reader: StreamReader, writer: StreamWriter): Promise<void> => {
        try {
          for (;;) {
            const data = await reader.read(READ_SIZE);
            if (data.length === 0) break;
            writer.write(data);
            await writer.drain();
          }
        } finally {
          writer.close();
        }
      };
      await (unix ? lw.startUnixServer(echo, unix, options) : lw.startServer(echo, host, port, options));
      return;
    }
    default: {
      const lsock = new lw.Socket(unix ? lw.AF_UNIX : lw.AF_INET, lw.SOCK_STREAM);
      if (!unix) lsock.setsockopt(lw.SOL_SOCKET, lw.SO_REUSEADDR, 1);
      lsock.bind(unix ?? [host, port]);
      lsock.listen(options.backlog);
      lsock.setblocking(false);
      const serve = async (conn: Socket): Promise<void> => {
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
      };
      const acceptLoop = async (): Promise<void> => {
        for (;;) {
          const [conn] = await loop.sockAccept(lsock);
          if (!unix) conn.setsockopt(lw.IPPROTO_TCP, lw.TCP_NODELAY, 1);
          loop.createTask(() => serve(conn));
        }
      };
      loop.createTask(acceptLoop);
    }
  }
}

await loop.runUntilComplete(loop.createTask(listen));
console.log('READY');
process.on('SIGTERM', () => process.exit(0));
await loop.runForever();
