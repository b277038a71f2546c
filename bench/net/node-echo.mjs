// Raw node:net echo server: the anchor loopwork's transports are compared with.
//   node bench/net/node-echo.mjs <mode> <port | unix:/path>      (mode: "protocol", the only one)
// Prints READY once listening.
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';

const [mode = 'protocol', target = '25000'] = process.argv.slice(2);
if (mode !== 'protocol') {
  console.log(`UNAVAILABLE: node:net has no ${mode} mode`);
  process.exit(3);
}
const unix = target.startsWith('unix:') ? target.slice(5) : null;
const server = createServer({ noDelay: !unix }, (sock) => {
  sock.on('data', (data) => sock.write(data));
  sock.on('error', () => sock.destroy());
});
if (unix) rmSync(unix, { force: true });
const where = unix ? { path: unix, backlog: 1024 } : { host: '127.0.0.1', port: Number(target), backlog: 1024 };
server.listen(where, () => console.log('READY'));
process.on('SIGTERM', () => process.exit(0));
