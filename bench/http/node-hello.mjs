// Plain node:http hello-world JSON server (an anchor).   node bench/http/node-hello.mjs <port>
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 3000);
const server = createServer((req, res) => {
  const body = JSON.stringify({ hello: 'world' });
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 65000;
server.listen(port, '127.0.0.1', () => console.log('READY'));
process.on('SIGTERM', () => process.exit(0));
