// loopwork's TLS echo server: loop.createServer(..., { ssl }) with a Protocol that writes back what it receives.
//   node --conditions=loopwork-source --import tsx bench/tls/loopwork-tls-echo.ts <port> <cert.pem> <key.pem>
// Prints READY <port> once listening.
import { loadPackage, type EventLoop, type ServerPackage, type Transport } from '../lib/loopwork.js';

interface TlsPackage extends ServerPackage {
  SSLContext: new (protocol?: number) => { loadCertChain(cert: string, key?: string): void };
  PROTOCOL_TLS_SERVER: number;
}

const [port = '0', certfile = '', keyfile = ''] = process.argv.slice(2);
const lw = await loadPackage<TlsPackage>('server', ['newEventLoop', 'Protocol', 'SSLContext', 'PROTOCOL_TLS_SERVER']);
const loop: EventLoop = lw.newEventLoop();
const ctx = new lw.SSLContext(lw.PROTOCOL_TLS_SERVER);
ctx.loadCertChain(certfile, keyfile);

class EchoProtocol extends lw.Protocol {
  transport: Transport | null = null;
  connectionMade(transport: Transport): void {
    this.transport = transport;
  }
  dataReceived(data: Uint8Array): void {
    this.transport!.write(data);
  }
}

await loop.runUntilComplete(async () => {
  const server = (await loop.createServer(() => new EchoProtocol(), '127.0.0.1', Number(port), {
    ssl: ctx,
    backlog: 1024,
  })) as unknown as { sockets: { getsockname(): [string, number] }[] };
  console.log(`READY ${server.sockets[0]!.getsockname()[1]}`);
  process.on('SIGTERM', () => process.exit(0));
  await new Promise(() => {});
});
