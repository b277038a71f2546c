// Opens <count> connections to an echo server, makes one round trip on each (so the server has accepted and
// read from it), prints "READY <count>" and then holds them idle until killed.
//   node bench/mem/idle-client.mjs <port | unix:/path> <count>
import { connect } from 'node:net';

const [target = '25000', countArg = '5000'] = process.argv.slice(2);
const count = Number(countArg);
const unix = target.startsWith('unix:') ? target.slice(5) : null;
const sockets = [];

function open() {
  return new Promise((resolve, reject) => {
    const sock = connect(unix ? { path: unix } : { host: '127.0.0.1', port: Number(target) });
    sockets.push(sock);
    sock.once('error', reject);
    sock.once('connect', () => sock.write('x\n'));
    sock.once('data', () => resolve());
  });
}

try {
  for (let i = 0; i < count; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 100); j++) batch.push(open());
    await Promise.all(batch);
  }
} catch (e) {
  console.error(`idle-client: after ${sockets.length} connections: ${e.message}`);
  process.exit(1);
}
console.log(`READY ${sockets.length}`);
process.on('SIGTERM', () => process.exit(0));
setInterval(() => {}, 1 << 30);
