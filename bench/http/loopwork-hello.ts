// loopwork service hello-world JSON server: the slot the HTTP benchmark compares with fastify and node:http.
//   node --conditions=loopwork-source --import tsx bench/http/loopwork-hello.ts <port>
// The same app as fastify-hello.mjs: one GET / route answering {"hello":"world"}, no logger (so no access log).
// Prints READY once listening; "UNAVAILABLE: …" (exit 3) on a checkout whose service has no app API yet.
import { loadPackage } from '../lib/loopwork.js';

interface App {
  get(path: string, handler: () => unknown): App;
  listen(options: { host: string; port: number }): Promise<unknown>;
}
interface Service {
  createApp?: (options?: { logger?: boolean }) => App;
}

const port = Number(process.argv[2] ?? 3000);
const { createApp } = await loadPackage<Service>('service');
if (typeof createApp !== 'function') {
  console.log('UNAVAILABLE: @loopwork/service exports no createApp (no app API yet)');
  process.exit(3);
}
const app = createApp({ logger: false });
app.get('/', () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port });
console.log('READY');
process.on('SIGTERM', () => process.exit(0));
