// loopwork service hello-world JSON server: the slot the HTTP benchmark compares with fastify and node:http.
//   node --conditions=loopwork-source --import tsx bench/http/loopwork-hello.ts <port>
// The same app as bench/http/fastify-hello.mjs: one GET / route answering {"hello":"world"} as JSON, no logger.
import { loadPackage } from '../lib/loopwork.js';

interface App {
  get(path: string, handler: () => unknown): unknown;
  listen(options: { host: string; port: number }): Promise<string>;
}
const port = Number(process.argv[2] ?? 3000);
const { createApp } = await loadPackage<{ createApp(options: object): App }>('service', ['createApp']);
// No logger, as the fastify anchor; metrics stay on (the default), signals handled by the app (exit 0 on SIGTERM).
const app = createApp({ logger: false });
app.get('/', () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port });
console.log('READY');
