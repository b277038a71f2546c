// The anchor: a raw node:tls echo server (tls.createServer, each socket writes back what it reads).
//   node bench/tls/node-tls-echo.mjs <port> <cert.pem> <key.pem>
// Prints READY <port> once listening.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const [port = '0', certfile, keyfile] = process.argv.slice(2);
const server = tls.createServer({ cert: readFileSync(certfile), key: readFileSync(keyfile) }, (socket) => {
  socket.setNoDelay(true);
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => {});
});
server.on('tlsClientError', () => {});
server.listen(Number(port), '127.0.0.1', 1024, () => console.log(`READY ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
