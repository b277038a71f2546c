// fastify 5 hello-world JSON server (an anchor), no logger.   node bench/http/fastify-hello.mjs <port>
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 3000);
const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
await app.listen({ port, host: '127.0.0.1' });
console.log('READY');
process.on('SIGTERM', () => process.exit(0));
