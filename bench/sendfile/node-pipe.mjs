// Node's idiomatic file server: fs.createReadStream(file).pipe(socket) for each connection.
//   node bench/sendfile/node-pipe.mjs <port> <file>
import fs from 'node:fs';
import net from 'node:net';

const [port = '25100', file] = process.argv.slice(2);
const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  fs.createReadStream(file).pipe(sock);
});
server.listen(Number(port), '127.0.0.1', () => console.log('READY'));
