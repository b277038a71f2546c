/**
 * A small HTTP service on @loopwork/service: a JSON hello, a zod-validated greeting, health and metrics
 * endpoints built in, graceful shutdown on Ctrl-C / SIGTERM.
 *
 *   node --conditions=loopwork-source --import tsx apps/examples/src/http-hello.ts [port]
 *   curl localhost:3000/               → {"hello":"world"}
 *   curl localhost:3000/greet/Ada?times=2  → {"greeting":"Hello, Ada! Hello, Ada!"}
 *   curl localhost:3000/greet/x?times=9    → 400 with the problems listed
 */
import { createApp, z } from '@loopwork/service';

const port = Number(process.argv[2] ?? 3000);
const app = createApp();

app.get('/', () => ({ hello: 'world' }));

app.get(
  '/greet/:name',
  {
    schema: {
      params: z.object({ name: z.string().min(1).max(40) }),
      querystring: z.object({ times: z.coerce.number().int().min(1).max(5).default(1) }),
    },
  },
  (req) => ({ greeting: Array.from({ length: req.query.times }, () => `Hello, ${req.params.name}!`).join(' ') }),
);

const url = await app.listen({ port, host: '127.0.0.1' });
// The address on stdout for whoever started us; the logger's lines are on stdout too (pretty on a terminal).
console.log(`http-hello listening on ${url}`);
