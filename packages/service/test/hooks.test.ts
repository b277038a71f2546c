// The request lifecycle of fastify's that the app follows: preValidation, preHandler, preSerialization, onSend and
// onError hooks, setErrorHandler and setNotFoundHandler; through real sockets (supertest, a raw client) and inject().
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import request from 'supertest';
import { z } from 'zod';
import { HttpError, MessageValidationError, sleep } from '@loopwork/service';
import { RawClient, listen, portOf, recordingLogger, testApp } from './helpers.js';

test('the hooks run in fastify order around the parse, the schemas and the handler', async (t) => {
  const app = testApp();
  const order: string[] = [];
  app.addHook('onRequest', (req) => void order.push(`onRequest body=${String(req.body)}`));
  app.addHook('preValidation', async (req) => {
    await sleep(0);
    order.push(`preValidation body=${JSON.stringify(req.body)}`);
  });
  app.addHook('preHandler', (req) => void order.push(`preHandler n=${typeof (req.body as { n: unknown }).n}`));
  app.addHook('preSerialization', (_req, _reply, payload) => {
    order.push(`preSerialization ${JSON.stringify(payload)}`);
    return { ...(payload as object), wrapped: true };
  });
  app.addHook('onSend', (_req, reply, payload) => {
    order.push(`onSend ${String(payload)} ${String(reply.getHeader('content-type'))}`);
  });
  app.addHook('onResponse', () => void order.push('onResponse'));
  app.post('/n', { schema: { body: z.object({ n: z.coerce.number() }) } }, (req) => {
    order.push('handler');
    return { n: req.body.n };
  });
  const url = await listen(t, app);
  const res = await request(url).post('/n').send({ n: '5' }).expect(200);
  assert.deepEqual(res.body, { n: 5, wrapped: true });
  while (!order.includes('onResponse')) await sleep(0.01);
  assert.deepEqual(order, [
    'onRequest body=undefined',
    'preValidation body={"n":"5"}',
    'preHandler n=number',
    'handler',
    'preSerialization {"n":5}',
    'onSend {"n":5,"wrapped":true} application/json; charset=utf-8',
    'onResponse',
  ]);
});

test('preValidation and preHandler hooks may answer: what comes after them does not run', async (t) => {
  const app = testApp();
  let handled = 0;
  app.addHook('preValidation', (req, reply) => {
    if (req.headers['x-stop'] === 'validation') reply.code(409).send({ stopped: 'preValidation' });
  });
  app.addHook('preHandler', async (req, reply) => {
    await sleep(0);
    if (req.headers['x-stop'] === 'handler') reply.code(403).send({ stopped: 'preHandler' });
  });
  app.post('/x', { schema: { body: z.object({ ok: z.literal(true) }) } }, () => {
    handled++;
    return 'done';
  });
  const url = await listen(t, app);
  // Refused before the schema would have refused it.
  const a = await request(url).post('/x').set('x-stop', 'validation').send({ ok: false }).expect(409);
  assert.deepEqual(a.body, { stopped: 'preValidation' });
  await request(url).post('/x').set('x-stop', 'handler').send({ ok: false }).expect(400);
  const b = await request(url).post('/x').set('x-stop', 'handler').send({ ok: true }).expect(403);
  assert.deepEqual(b.body, { stopped: 'preHandler' });
  assert.equal(handled, 0);
  await request(url).post('/x').send({ ok: true }).expect(200, 'done');
  assert.equal(handled, 1);
});

test('a hook that throws is answered as a throwing handler (status of the error, else 500, logged)', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.addHook('preHandler', (req) => {
    if (req.url === '/teapot') throw new HttpError(418, 'short and stout');
    if (req.url === '/boom') throw new Error('hook broke');
  });
  app.get('/teapot', () => 'no');
  app.get('/boom', () => 'no');
  const url = await listen(t, app);
  const tea = await request(url).get('/teapot').expect(418);
  assert.equal(tea.body.message, 'short and stout');
  const boom = await request(url).get('/boom').expect(500);
  assert.deepEqual(boom.body, { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' });
  assert.equal(lines.filter((l) => l.msg === 'Error in request handler').length, 1);
});

test('onSend hooks may replace the body (strings, bytes, a stream) and set headers; undefined keeps it', async (t) => {
  const app = testApp();
  app.addHook('onSend', (req, reply, payload) => {
    reply.header('x-length-before', String(typeof payload === 'string' ? payload.length : -1));
    if (req.url === '/upper') return (payload as string).toUpperCase();
    if (req.url === '/bytes') return Buffer.from('bytes!');
    if (req.url === '/stream') return Readable.from(['a', 'b', 'c']);
    return undefined;
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    await sleep(0);
    reply.header('x-second-saw', payload === null ? 'null' : typeof payload);
  });
  app.get('/upper', () => 'hello');
  app.get('/bytes', () => 'text');
  app.get('/stream', () => 'text');
  app.get('/same', () => ({ a: 1 }));
  app.get('/none', (_req, reply) => reply.code(204).send());
  const url = await listen(t, app);
  const up = await request(url).get('/upper').expect(200, 'HELLO');
  assert.equal(up.headers['x-length-before'], '5');
  assert.equal(up.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(up.headers['x-second-saw'], 'string');
  const bytes = await request(url).get('/bytes').expect(200);
  assert.equal(bytes.text, 'bytes!');
  assert.equal(bytes.headers['x-second-saw'], 'object');
  const streamed = await request(url).get('/stream').expect(200);
  assert.equal(streamed.text, 'abc');
  assert.equal(streamed.headers['transfer-encoding'], 'chunked');
  const same = await request(url).get('/same').expect(200);
  assert.deepEqual(same.body, { a: 1 });
  const none = await request(url).get('/none').expect(204);
  assert.equal(none.headers['x-second-saw'], 'null');
});

test('an onSend hook that throws or returns what cannot be sent gets a 500, logged once, with no hook loop', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  let calls = 0;
  app.addHook('onSend', (req) => {
    calls++;
    if (req.url === '/throw') throw new Error('onSend broke');
    if (req.url === '/number') return 42 as never;
    return undefined;
  });
  app.get('/throw', () => 'x');
  app.get('/number', () => 'x');
  app.get('/fine', () => 'fine');
  const port = portOf(await listen(t, app));
  const c = await RawClient.connect(port, t);
  c.write(
    'GET /throw HTTP/1.1\r\nHost: x\r\n\r\nGET /number HTTP/1.1\r\nHost: x\r\n\r\nGET /fine HTTP/1.1\r\nHost: x\r\n\r\n',
  );
  assert.equal((await c.response()).status, 500);
  assert.equal((await c.response()).status, 500);
  const fine = await c.response();
  assert.equal(fine.status, 200);
  assert.equal(fine.body.toString(), 'fine');
  assert.equal(calls, 3);
  const errors = lines.filter((l) => l.msg === 'Error in request handler');
  assert.equal(errors.length, 2);
  assert.match(String((errors[1]!.err as { message: string }).message), /onSend hook must return a string/);
});

test('setErrorHandler answers thrown, rejected and sent errors, bad JSON and refused schemas', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  const seen: { message: string; status: number; name: string }[] = [];
  app.setErrorHandler((error, req, reply) => {
    const e = error as Error;
    seen.push({ message: e.message, status: reply.statusCode, name: e.name });
    if (MessageValidationError.isInstance(e)) {
      return { invalid: (e as MessageValidationError).issues.map((i) => i.path.join('.')) };
    }
    if (req.url === '/async') return sleep(0).then(() => ({ handled: e.message, async: true }));
    reply.type('text/plain').send(`handled: ${e.message}`);
    return reply;
  });
  app.get('/throw', () => {
    throw new Error('thrown');
  });
  app.get('/reject', async () => {
    throw new HttpError(409, 'conflict');
  });
  app.get('/send', (_req, reply) => reply.code(422).send(new Error('sent')));
  app.get('/async', () => Promise.reject(new Error('later')));
  app.post('/json', { schema: { body: z.object({ n: z.number(), s: z.string() }) } }, (req) => req.body);
  const url = await listen(t, app);
  const thrown = await request(url).get('/throw').expect(500);
  assert.equal(thrown.text, 'handled: thrown');
  assert.equal(thrown.headers['content-type'], 'text/plain');
  await request(url).get('/reject').expect(409, 'handled: conflict');
  await request(url).get('/send').expect(422, 'handled: sent');
  const later = await request(url).get('/async').expect(500);
  assert.deepEqual(later.body, { handled: 'later', async: true });
  await request(url)
    .post('/json')
    .set('content-type', 'application/json')
    .send('{"n":')
    .expect(400, /handled: Body/);
  const invalid = await request(url).post('/json').send({ n: 'x' }).expect(400);
  assert.deepEqual(invalid.body, { invalid: ['body.n', 'body.s'] });
  assert.deepEqual(
    seen.map((s) => `${s.status} ${s.name}`),
    ['500 Error', '409 HttpError', '422 Error', '500 Error', '400 HttpError', '400 MessageValidationError'],
  );
  // The handler decided what to do with them: the app logged none.
  assert.equal(lines.filter((l) => l.msg === 'Error in request handler').length, 0);
});

test('an error handler that throws or sends an error falls back to the default answer, logged', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.setErrorHandler(() => 'replaced');
  app.setErrorHandler((error, req, reply) => {
    if (req.url === '/rethrow') throw new Error(`wrapped ${(error as Error).message}`);
    if (req.url === '/resend') return reply.send(new HttpError(503, 'try later'));
    // Answered later, from outside the handler.
    setTimeout(() => reply.send({ late: true }), 10);
    return undefined;
  });
  for (const path of ['/rethrow', '/resend', '/late']) {
    app.get(path, () => {
      throw new HttpError(404, 'first');
    });
  }
  const url = await listen(t, app);
  // What the error handler throws is answered with the status already set (fastify's rule), and logged.
  const rethrown = await request(url).get('/rethrow').expect(404);
  assert.equal(rethrown.body.message, 'wrapped first');
  const resent = await request(url).get('/resend').expect(503);
  assert.deepEqual(resent.body, { statusCode: 503, error: 'Service Unavailable', message: 'Service Unavailable' });
  const late = await request(url).get('/late').expect(404);
  assert.deepEqual(late.body, { late: true });
  const logged = lines.filter((l) => l.msg === 'Error in request handler');
  assert.deepEqual(
    logged.map((l) => (l.err as { message: string }).message),
    ['try later'],
  );
});

test('onError hooks see the first error before the error handler, cannot answer, and their throws are logged', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  const order: string[] = [];
  app.addHook('onError', async (req, reply, error) => {
    await sleep(0);
    order.push(`onError ${(error as Error).message} ${reply.statusCode}`);
    reply.send('ignored');
  });
  app.addHook('onError', () => {
    throw new Error('onError hook broke');
  });
  app.get('/a', () => {
    throw new HttpError(400, 'bad a');
  });
  const url = await listen(t, app);
  // No error handler: the default answer, after the hooks.
  const a = await request(url).get('/a').expect(400);
  assert.equal(a.body.message, 'bad a');
  app.setErrorHandler((error, _req, reply) => {
    order.push(`handler ${(error as Error).message}`);
    return reply.code(299).send('handled');
  });
  await request(url).get('/a').expect(299, 'handled');
  assert.deepEqual(order, ['onError bad a 200', 'onError bad a 200', 'handler bad a']);
  assert.equal(lines.filter((l) => (l.err as { message?: string })?.message === 'onError hook broke').length, 2);
  assert.equal(lines.filter((l) => l.msg === 'Reply was already sent, did you forget to "return reply"?').length, 2);
});

test('setNotFoundHandler answers what no route takes, after the request hooks; 405 and 501 stay', async (t) => {
  const app = testApp();
  const hooked: string[] = [];
  app.addHook('onRequest', (req) => void hooked.push(req.url));
  app.get('/known', () => 'known');
  app.setNotFoundHandler((req, reply) => {
    assert.equal(reply.statusCode, 404);
    if (req.url.startsWith('/spa/')) return reply.code(200).type('text/html').send('<html>app</html>');
    return { custom: 'not found', path: req.url };
  });
  const url = await listen(t, app);
  const spa = await request(url).get('/spa/deep/link').expect(200);
  assert.equal(spa.text, '<html>app</html>');
  const missing = await request(url).get('/nope?x=1').expect(404);
  assert.deepEqual(missing.body, { custom: 'not found', path: '/nope?x=1' });
  await request(url).post('/known').expect(405);
  assert.deepEqual(hooked, ['/spa/deep/link', '/nope?x=1', '/known']);
  const port = portOf(url);
  const c = await RawClient.connect(port, t);
  c.write('BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal((await c.response()).status, 501);
  // Expect: 100-continue to a path no route takes: the handler wants the body, so the server asks for it.
  const e = await RawClient.connect(port, t);
  e.write('POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n');
  assert.equal((await e.response()).status, 100);
  e.write('hi');
  const answered = await e.response();
  assert.equal(answered.status, 404);
  assert.deepEqual(JSON.parse(answered.body.toString()), { custom: 'not found', path: '/upload' });
});

test('addHook, setErrorHandler and setNotFoundHandler refuse what they cannot use', () => {
  const app = testApp();
  assert.throws(() => app.addHook('onTimeout' as never, () => undefined), {
    name: 'TypeError',
    message: 'unknown hook onTimeout',
  });
  assert.throws(() => app.addHook('onSend', 'x' as never), {
    name: 'TypeError',
    message: 'onSend hook must be a function',
  });
  assert.throws(() => app.setErrorHandler(null as never), { name: 'TypeError' });
  assert.throws(() => app.setNotFoundHandler({} as never), { name: 'TypeError' });
});

test('inject() goes through the same lifecycle', async () => {
  const app = testApp();
  app.addHook('onSend', (_req, reply) => void reply.header('x-injected', 'yes'));
  app.setNotFoundHandler(() => ({ nothing: 'here' }));
  app.setErrorHandler((error) => ({ caught: (error as Error).message }));
  app.get('/fail', () => {
    throw new Error('nope');
  });
  const missing = await app.inject('/where');
  assert.equal(missing.statusCode, 404);
  assert.deepEqual(missing.json(), { nothing: 'here' });
  assert.equal(missing.headers['x-injected'], 'yes');
  const failed = await app.inject('/fail');
  assert.equal(failed.statusCode, 500);
  assert.deepEqual(failed.json(), { caught: 'nope' });
  assert.equal(failed.headers['x-injected'], 'yes');
  await app.close();
});

test('a preSerialization hook that throws is answered as a handler error: onError, the error handler, its status', async (t) => {
  const app = testApp();
  const seen: string[] = [];
  app.addHook('preSerialization', (req, _reply, payload) => {
    if ((payload as { handled?: unknown }).handled !== undefined) return payload;
    throw new HttpError(409, `preSerialization ${req.url}`);
  });
  app.addHook('onError', (_req, _reply, error) => void seen.push(`onError ${(error as Error).message}`));
  app.get('/own', () => ({ a: 1 }));
  const url = await listen(t, app);
  const own = await request(url).get('/own').expect(409);
  assert.equal(own.body.message, 'preSerialization /own');
  assert.deepEqual(seen, ['onError preSerialization /own']);
  app.setErrorHandler((error, _req, reply) => ({ handled: (error as Error).message, status: reply.statusCode }));
  const handled = await request(url).get('/own').expect(409);
  assert.deepEqual(handled.body, { handled: 'preSerialization /own', status: 409 });
});

test('the default error answer goes through the onSend hooks and keeps the headers set before the error', async (t) => {
  const app = testApp();
  const seen: string[] = [];
  app.addHook('onSend', (req, reply, payload) => {
    seen.push(`${req.url} ${reply.statusCode} ${String(reply.getHeader('content-type'))}`);
    reply.header('x-on-send', 'yes');
    return typeof payload === 'string' ? payload.replace('"statusCode"', '"sc"') : payload;
  });
  app.get('/fail', (_req, reply) => {
    reply.code(429).header('x-before', 'kept').type('text/html');
    throw new Error('slow down');
  });
  app.post('/json', (req) => req.body);
  const url = await listen(t, app);
  const failed = await request(url).get('/fail').expect(429);
  assert.equal(failed.headers['x-before'], 'kept');
  assert.equal(failed.headers['x-on-send'], 'yes');
  assert.equal(failed.headers['content-type'], 'application/json; charset=utf-8');
  assert.deepEqual(failed.body, { sc: 429, error: 'Too Many Requests', message: 'slow down' });
  const bad = await request(url).post('/json').set('content-type', 'application/json').send('{"n":').expect(400);
  assert.equal(bad.headers['x-on-send'], 'yes');
  assert.equal(bad.body.sc, 400);
  assert.deepEqual(seen, ['/fail 429 application/json; charset=utf-8', '/json 400 application/json; charset=utf-8']);
});

test('a 204 whose body was dropped carries no content type, with onSend hooks too', async (t) => {
  const app = testApp();
  app.addHook('onSend', (_req, reply) => void reply.header('x-hooked', 'yes'));
  app.get('/none', (_req, reply) => reply.code(204).send({ dropped: true }));
  app.get('/typed', (_req, reply) => reply.code(204).type('text/html').send('<p>'));
  app.get('/not-modified', (_req, reply) => reply.code(304).send('body'));
  const port = portOf(await listen(t, app));
  const c = await RawClient.connect(port, t);
  c.write(
    'GET /none HTTP/1.1\r\nHost: x\r\n\r\nGET /typed HTTP/1.1\r\nHost: x\r\n\r\nGET /not-modified HTTP/1.1\r\nHost: x\r\n\r\n',
  );
  for (const path of ['/none', '/typed']) {
    const r = await c.response();
    assert.equal(r.status, 204, path);
    assert.equal(r.headers['x-hooked'], 'yes');
    assert.equal(r.headers['content-type'], undefined, path);
  }
  const notModified = await c.response();
  assert.equal(notModified.status, 304);
  assert.equal(notModified.headers['content-type'], 'text/plain; charset=utf-8');
});

test('an error thrown after send(), while the onSend hooks run, is logged: the response goes out as sent', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  const seen: string[] = [];
  app.addHook('onSend', async () => {
    await sleep(0.01);
  });
  app.addHook('onError', () => void seen.push('onError'));
  app.setErrorHandler(() => {
    seen.push('error handler');
    return 'replaced';
  });
  app.get('/sync', (_req, reply) => {
    reply.send('first');
    throw new Error('after send');
  });
  app.get('/async', async (_req, reply) => {
    reply.send('first');
    await sleep(0);
    throw new HttpError(409, 'after send');
  });
  const url = await listen(t, app);
  for (const path of ['/sync', '/async']) {
    const res = await request(url).get(path).expect(200, 'first');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  }
  assert.deepEqual(seen, []);
  const logged = lines.filter((l) => l.msg === 'Error in request handler');
  assert.deepEqual(
    logged.map((l) => (l.err as { message: string }).message),
    ['after send', 'after send'],
  );
});

test('a request refused by its schemas reaches the error handler with statusCode 400, as in fastify', async (t) => {
  const app = testApp();
  // An error handler written for fastify: the status from the error.
  app.setErrorHandler((error, _req, reply) => {
    const e = error as { statusCode?: number; message: string };
    return reply.code(e.statusCode ?? 500).send({ failed: e.message.split(':')[0] });
  });
  app.post('/n', { schema: { body: z.object({ n: z.number() }) } }, (req) => req.body);
  const url = await listen(t, app);
  const refused = await request(url).post('/n').send({ n: 'x' }).expect(400);
  assert.deepEqual(refused.body, { failed: 'Invalid request' });
  await request(url).post('/n').set('content-type', 'application/json').send('{').expect(400);
});
