// The app's routing, zod validation, replies, errors, hooks and logging, through real sockets (supertest against
// app.listen({port: 0})) and through app.inject().
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import request from 'supertest';
import { z } from 'zod';
import net from 'node:net';
import { HttpError, Protocol, requestId, sleep } from '@loopwork/service';
import { RawClient, listen, portOf, recordingLogger, testApp } from './helpers.js';

test('routes with params and query strings as find-my-way parses them', async (t) => {
  const app = testApp();
  app.get('/users/:id/posts/:post', (req) => ({ params: req.params, query: req.query }));
  const url = await listen(t, app);
  const res = await request(url).get('/users/42/posts/hello%20world?a=1&b=x&b=y').expect(200);
  assert.deepEqual(res.body, { params: { id: '42', post: 'hello world' }, query: { a: '1', b: ['x', 'y'] } });
  assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
});

test('zod schemas validate and type each part; failures are 400 with every issue as JSON', async (t) => {
  const app = testApp();
  const schema = {
    params: z.object({ id: z.coerce.number().int().positive() }),
    querystring: z.object({ verbose: z.enum(['yes', 'no']).default('no') }),
    body: z.object({ name: z.string().min(1), tags: z.array(z.string()).max(2) }),
    headers: z.object({ 'x-tenant': z.string() }),
  };
  app.post('/items/:id', { schema }, (req) => {
    // Typed by the schemas: id is a number, verbose a union, name a string.
    const id: number = req.params.id;
    const verbose: 'yes' | 'no' = req.query.verbose;
    const name: string = req.body.name;
    return { id, verbose, name, tenant: req.headers['x-tenant'] };
  });
  const url = await listen(t, app);
  const ok = await request(url)
    .post('/items/7')
    .set('x-tenant', 'acme')
    .send({ name: 'n', tags: ['a'] })
    .expect(200);
  assert.deepEqual(ok.body, { id: 7, verbose: 'no', name: 'n', tenant: 'acme' });

  const bad = await request(url)
    .post('/items/-3?verbose=maybe')
    .send({ name: '', tags: ['a', 'b', 'c'] })
    .expect(400);
  assert.equal(bad.body.statusCode, 400);
  assert.equal(bad.body.error, 'Bad Request');
  assert.match(bad.body.message, /^Invalid request: /);
  const paths = (bad.body.issues as { path: (string | number)[] }[]).map((i) => i.path.join('.')).sort();
  assert.deepEqual(paths, ['body.name', 'body.tags', 'headers.x-tenant', 'params.id', 'querystring.verbose']);
  for (const issue of bad.body.issues) {
    assert.equal(typeof issue.message, 'string');
    assert.equal(typeof issue.code, 'string');
  }
});

test('invalid JSON bodies are 400, form and text bodies are parsed', async (t) => {
  const app = testApp();
  app.post('/echo', (req) => ({ body: req.body }));
  const url = await listen(t, app);
  const bad = await request(url).post('/echo').set('content-type', 'application/json').send('{"a":').expect(400);
  assert.match(bad.body.message, /^Body is not valid JSON/);
  const form = await request(url).post('/echo').type('form').send('a=1&b=2').expect(200);
  assert.deepEqual(form.body, { body: { a: '1', b: '2' } });
  const text = await request(url).post('/echo').set('content-type', 'text/plain').send('hi').expect(200);
  assert.deepEqual(text.body, { body: 'hi' });
  // Media types are case-insensitive (RFC 9110 §8.3.1).
  const upperText = await request(url).post('/echo').set('content-type', 'Text/Plain; charset=UTF-8').send('hi');
  assert.deepEqual(upperText.body, { body: 'hi' });
  const upperForm = await request(url)
    .post('/echo')
    .set('content-type', 'Application/X-WWW-Form-Urlencoded')
    .send('a=1');
  assert.deepEqual(upperForm.body, { body: { a: '1' } });
  const upperJson = await request(url).post('/echo').set('content-type', 'APPLICATION/JSON').send('{"a":1}');
  assert.deepEqual(upperJson.body, { body: { a: 1 } });
  // A UTF-8 byte order mark before JSON is ignored (RFC 8259 §8.1 allows it; fastify does so).
  const bom = await app.inject({
    method: 'POST',
    url: '/echo',
    headers: { 'content-type': 'application/json' },
    payload: Buffer.from('\uFEFF{"a":1}', 'utf8'),
  });
  assert.equal(bom.statusCode, 200);
  assert.deepEqual(bom.json(), { body: { a: 1 } });
});

test('JSON bodies with a __proto__ key, or constructor.prototype, are 400, as fastify refuses them', async () => {
  const app = testApp();
  app.post('/merge', (req) => {
    const target: Record<string, unknown> = {};
    Object.assign(target, req.body);
    return { admin: (target as { admin?: unknown }).admin ?? null, keys: Object.keys(target) };
  });
  const post = (payload: string): ReturnType<typeof app.inject> =>
    app.inject({ method: 'POST', url: '/merge', headers: { 'content-type': 'application/json' }, payload });
  for (const body of [
    '{"__proto__":{"admin":true}}',
    '{"a":[{"b":{"\\u005f_proto__":{"admin":true}}}]}',
    '{"constructor":{"prototype":{"admin":true}}}',
  ]) {
    const res = await post(body);
    assert.equal(res.statusCode, 400, body);
    assert.match(res.json<{ message: string }>().message, /forbidden prototype property/);
  }
  // The words as values, or a constructor key without a prototype, are ordinary JSON.
  const fine = await post('{"x":"__proto__","constructor":{"name":"c"}}');
  assert.equal(fine.statusCode, 200);
  assert.deepEqual(fine.json(), { admin: null, keys: ['x', 'constructor'] });
});

test('a path parameter over maxParamLength is 414, as fastify answers, not 404', async (t) => {
  const app = testApp();
  app.get('/kv/:key', (req) => ({ key: req.params.key }));
  app.put('/kv/:key', () => 'stored');
  const wide = testApp({ router: { maxParamLength: 300 } });
  wide.get('/kv/:key', (req) => ({ key: req.params.key }));
  const url = await listen(t, app);
  const wideUrl = await listen(t, wide);
  const key = 'k'.repeat(150);
  await request(url)
    .get(`/kv/${'k'.repeat(100)}`)
    .expect(200);
  const long = await request(url).get(`/kv/${key}`).expect(414);
  assert.deepEqual(long.body, {
    statusCode: 414,
    error: 'URI Too Long',
    message: `'/kv/${key}' is exceeding the max param length`,
  });
  // Expect: 100-continue gets the same answer, before the body is sent.
  const client = await RawClient.connect(portOf(url), t);
  client.write(`PUT /kv/${key} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n`);
  assert.equal((await client.response()).status, 414);
  assert.deepEqual((await request(wideUrl).get(`/kv/${key}`).expect(200)).body, { key });
});

test("an absolute-form target's authority is the request's hostname, not the Host field (RFC 9112 §3.2.2)", async (t) => {
  const app = testApp();
  app.get('/where', (req) => ({ hostname: req.hostname, path: req.path }));
  const c = await RawClient.connect(portOf(await listen(t, app)), t);
  const cases: [string, string][] = [
    ['http://a.example:8080/where?x=1', 'a.example'],
    ['http://user@[::1]:81/where', '[::1]'],
    ['/where', 'host.example'],
  ];
  for (const [target, hostname] of cases) {
    c.write(`GET ${target} HTTP/1.1\r\nHost: host.example:9\r\n\r\n`);
    const r = await c.response();
    assert.equal(r.status, 200, target);
    assert.deepEqual(JSON.parse(r.body.toString()), { hostname, path: '/where' }, target);
  }
});

test('404 for unknown paths and 405 with Allow for known paths with another method', async (t) => {
  const app = testApp();
  app.get('/thing', () => 'x');
  app.put('/thing', () => 'y');
  const url = await listen(t, app);
  const nf = await request(url).get('/nothing').expect(404);
  assert.deepEqual(nf.body, { statusCode: 404, error: 'Not Found', message: 'Route GET:/nothing not found' });
  const na = await request(url).delete('/thing').expect(405);
  assert.equal(na.headers.allow, 'GET, HEAD, PUT');
  assert.equal(na.body.statusCode, 405);
  const bad = await request(url).get('/thing%zz').expect(400);
  assert.equal(bad.body.statusCode, 400);
});

test('errors are 500 without leaking, logged once with the request id; HttpError 4xx shows its message', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.get('/boom', () => {
    throw new Error('secret database password is hunter2');
  });
  app.get('/async-boom', async () => {
    await sleep(0.001);
    throw new Error('async secret');
  });
  app.get('/teapot', () => {
    throw new HttpError(418, 'no coffee here');
  });
  const url = await listen(t, app);
  const res = await request(url).get('/boom').set('x-request-id', 'abc-123').expect(500);
  assert.deepEqual(res.body, { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' });
  assert.doesNotMatch(res.text, /hunter2|stack|at /);
  const errors = lines.filter((l) => l.level === 50);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.msg, 'Error in request handler');
  assert.equal(errors[0]!.reqId, 'abc-123');
  assert.equal(errors[0]!.request, 'GET /boom');
  assert.match(String((errors[0]!.err as { message: string }).message), /hunter2/);
  assert.match(String(errors[0]!.peer), /^127\.0\.0\.1:\d+$/);

  const res2 = await request(url).get('/async-boom').expect(500);
  assert.doesNotMatch(res2.text, /async secret/);
  assert.equal(lines.filter((l) => l.level === 50).length, 2);

  const tea = await request(url).get('/teapot').expect(418);
  assert.deepEqual(tea.body, { statusCode: 418, error: "I'm a Teapot", message: 'no coffee here' });
  assert.equal(lines.filter((l) => l.level === 50).length, 2);
});

test("an error's status is read from `status` too, as fastify reads it (http-errors and others set only that)", async () => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.get('/gone', () => {
    throw Object.assign(new Error('no longer here'), { status: 410 });
  });
  app.get('/later', async () => {
    await sleep(0.001);
    throw Object.assign(new Error('busy upstream'), { status: 503 });
  });
  app.get('/both', () => {
    throw Object.assign(new Error('statusCode wins'), { statusCode: 409, status: 500 });
  });
  const gone = await app.inject('/gone');
  assert.equal(gone.statusCode, 410);
  assert.deepEqual(gone.json(), { statusCode: 410, error: 'Gone', message: 'no longer here' });
  assert.equal(lines.filter((l) => l.level === 50).length, 0);
  const later = await app.inject('/later');
  assert.equal(later.statusCode, 503);
  assert.deepEqual(later.json(), { statusCode: 503, error: 'Service Unavailable', message: 'Service Unavailable' });
  assert.equal(lines.filter((l) => l.level === 50).length, 1);
  assert.equal((await app.inject('/both')).statusCode, 409);
});

test('an Error sent or returned is answered as one thrown (its status, else the reply 4xx/5xx, else 500), not 200 {}', async () => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.get('/send', (_req, reply) => reply.send(new Error('secret detail')));
  app.get('/returned', async () => new Error('async secret'));
  app.get('/coded', (_req, reply) => reply.code(404).send(new Error('no such thing')));
  app.get('/own', (_req, reply) => reply.code(404).send(new HttpError(409, 'taken')));
  app.get('/created', (_req, reply) => reply.code(201).send(new Error('not a success')));
  const send = await app.inject('/send');
  assert.equal(send.statusCode, 500);
  assert.deepEqual(send.json(), { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' });
  const returned = await app.inject('/returned');
  assert.equal(returned.statusCode, 500);
  assert.doesNotMatch(returned.body, /async secret/);
  assert.equal(lines.filter((l) => l.level === 50).length, 2);
  const coded = await app.inject('/coded');
  assert.equal(coded.statusCode, 404);
  assert.deepEqual(coded.json(), { statusCode: 404, error: 'Not Found', message: 'no such thing' });
  const own = await app.inject('/own');
  assert.equal(own.statusCode, 409);
  assert.deepEqual(own.json(), { statusCode: 409, error: 'Conflict', message: 'taken' });
  assert.equal((await app.inject('/created')).statusCode, 500);
  assert.equal(lines.filter((l) => l.level === 50).length, 3);
});

test('a handler or hook that sets a 4xx/5xx status and then throws is answered with that status, as fastify', async () => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.addHook('onRequest', (req, reply) => {
    if (req.url === '/hook') {
      reply.code(401);
      throw new Error('token expired');
    }
  });
  app.get('/sync', (_req, reply) => {
    reply.code(400);
    throw new Error('bad input');
  });
  app.get('/async', async (_req, reply) => {
    reply.code(422);
    await sleep(0.001);
    throw new Error('cannot process');
  });
  app.get('/server', (_req, reply) => {
    reply.code(503);
    throw new Error('secret upstream');
  });
  app.get('/hook', () => 'never');
  const sync = await app.inject('/sync');
  assert.equal(sync.statusCode, 400);
  assert.deepEqual(sync.json(), { statusCode: 400, error: 'Bad Request', message: 'bad input' });
  assert.equal((await app.inject('/async')).statusCode, 422);
  const hook = await app.inject('/hook');
  assert.deepEqual(hook.json(), { statusCode: 401, error: 'Unauthorized', message: 'token expired' });
  assert.equal(lines.filter((l) => l.level === 50).length, 0);
  const server = await app.inject('/server');
  assert.equal(server.statusCode, 503);
  assert.doesNotMatch(server.body, /secret/);
  assert.equal(lines.filter((l) => l.level === 50).length, 1);
});

test('reply: code, headers, types, redirect, buffers, strings, empty bodies, returned values', async (t) => {
  const app = testApp();
  app.post('/created', (_req, reply) => reply.code(201).header('X-Thing', 'a').send({ ok: true }));
  app.get('/text', () => 'plain');
  app.get('/bytes', () => Buffer.from([1, 2, 3]));
  app.get('/typed', (_req, reply) => reply.type('text/csv').send('a,b\n'));
  app.get('/empty', (_req, reply) => reply.code(204).send());
  app.get('/empty-dropped', (_req, reply) => reply.code(204).send({ dropped: true }));
  app.get('/async-empty', async () => undefined);
  app.get('/later', (_req, reply) => {
    setTimeout(() => reply.send({ late: true }), 5);
  });
  app.get('/go', (_req, reply) => reply.redirect('/text'));
  app.get('/close', (_req, reply) => reply.header('connection', 'close').send('bye'));
  const url = await listen(t, app);
  const created = await request(url).post('/created').expect(201);
  assert.equal(created.headers['x-thing'], 'a');
  assert.deepEqual(created.body, { ok: true });
  const text = await request(url).get('/text').expect(200);
  assert.equal(text.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(text.text, 'plain');
  const bytes = await request(url).get('/bytes').buffer(true).expect(200);
  assert.equal(bytes.headers['content-type'], 'application/octet-stream');
  assert.deepEqual([...(bytes.body as Buffer)], [1, 2, 3]);
  const csv = await request(url).get('/typed').expect(200);
  assert.equal(csv.headers['content-type'], 'text/csv');
  await request(url).get('/empty').expect(204);
  // fastify's way: a body given with 204 is dropped, not a 500.
  const dropped = await request(url).get('/empty-dropped').expect(204);
  assert.equal(dropped.text, '');
  assert.equal(dropped.headers['content-length'], undefined);
  const ae = await request(url).get('/async-empty').expect(200);
  assert.equal(ae.headers['content-length'], '0');
  assert.deepEqual((await request(url).get('/later').expect(200)).body, { late: true });
  const go = await request(url).get('/go').redirects(0).expect(302);
  assert.equal(go.headers.location, '/text');
  const close = await request(url).get('/close').expect(200);
  assert.equal(close.headers.connection, 'close');
});

test('a streamed Node stream is destroyed as soon as the client is gone, not at its next chunk, as fastify', async (t) => {
  const app = testApp();
  const source = new PassThrough();
  const closed = new Promise<void>((resolve) => source.on('close', resolve));
  app.get('/events', (_req, reply) => {
    source.write('data: first\n\n');
    return reply.type('text/event-stream').send(source);
  });
  const port = portOf(await listen(t, app));
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const first = new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write('GET /events HTTP/1.1\r\nHost: a\r\n\r\n');
  await first;
  // The client goes away (a reset) while the source has nothing more to send.
  socket.resetAndDestroy();
  const destroyed = await Promise.race([closed.then(() => true), sleep(1).then(() => false)]);
  source.destroy();
  assert.equal(destroyed, true, 'the source was not destroyed when the client went away');
});

test('a streamed body that fails before its first chunk is an error status, not a 200 cut short', async () => {
  const app = testApp();
  app.get('/missing', (_req, reply) => reply.send(createReadStream('/no/such/file/loopwork')));
  app.get('/throws', (_req, reply) =>
    reply.send(
      (async function* (): AsyncGenerator<string> {
        await sleep(0);
        if (Date.now() > 0) throw new HttpError(409, 'not now');
        yield 'never';
      })(),
    ),
  );
  app.get('/empty', (_req, reply) => reply.send(Readable.from([])));
  app.get('/later', (_req, reply) =>
    reply.send(
      (async function* () {
        yield 'partial';
        throw new Error('midway');
      })(),
    ),
  );
  assert.equal((await app.inject('/missing')).statusCode, 500);
  const conflict = await app.inject('/throws');
  assert.equal(conflict.statusCode, 409);
  assert.equal(conflict.json<{ message: string }>().message, 'not now');
  const empty = await app.inject('/empty');
  assert.equal(empty.statusCode, 200);
  assert.equal(empty.payload, '');
  // Once the head went out, a failure can only cut the response.
  const cut = await app.inject('/later');
  assert.equal(cut.statusCode, 200);
  assert.equal(cut.payload, 'partial');
});

test('inject runs the same pipeline with no socket', async () => {
  const app = testApp();
  app.post('/kv/:key', { schema: { body: z.object({ value: z.string() }) } }, (req, reply) =>
    reply.code(201).send({ key: req.params.key, value: req.body.value }),
  );
  app.get('/stream', (_req, reply) => reply.send(Readable.from(['a', 'b', 'c'])));
  const res = await app.inject({ method: 'POST', url: '/kv/x', payload: { value: 'v' } });
  assert.equal(res.statusCode, 201);
  assert.deepEqual(res.json(), { key: 'x', value: 'v' });
  const bad = await app.inject({ method: 'POST', url: '/kv/x', payload: { value: 1 } });
  assert.equal(bad.statusCode, 400);
  assert.deepEqual(
    bad.json<{ issues: { path: string[] }[] }>().issues.map((i) => i.path),
    [['body', 'value']],
  );
  const head = await app.inject({ method: 'HEAD', url: '/healthz' });
  assert.equal(head.statusCode, 200);
  assert.equal(head.headers['content-length'], String(JSON.stringify({ status: 'ok' }).length));
  assert.equal(head.payload, '');
  const stream = await app.inject('/stream');
  assert.equal(stream.headers['transfer-encoding'], 'chunked');
  assert.equal(stream.payload, 'abc');
  const tooBig = await testApp({ http: { maxBodySize: 4 } }).inject({ method: 'POST', url: '/', payload: 'hello' });
  assert.equal(tooBig.statusCode, 413);
  assert.equal(tooBig.headers.connection, 'close');
});

test("inject sends a url with spaces, non-ASCII characters or a fragment as a client would, as fastify's inject", async () => {
  const app = testApp();
  app.get('/p/:id', (req) => ({ id: req.params.id, query: req.query, url: req.url }));
  const spaced = await app.inject('/p/a b?x=a b');
  assert.equal(spaced.statusCode, 200);
  assert.deepEqual(spaced.json(), { id: 'a b', query: { x: 'a b' }, url: '/p/a%20b?x=a%20b' });
  const unicode = await app.inject({ url: '/p/é✓', query: { q: 'ü' } });
  assert.equal(unicode.statusCode, 200);
  assert.deepEqual(unicode.json(), { id: 'é✓', query: { q: 'ü' }, url: '/p/%C3%A9%E2%9C%93?q=%C3%BC' });
  const fragment = await app.inject('/p/x?y=1#top');
  assert.equal(fragment.statusCode, 200);
  assert.deepEqual(fragment.json(), { id: 'x', query: { y: '1' }, url: '/p/x?y=1' });
  const encoded = await app.inject('/p/a%2Fb');
  assert.deepEqual(encoded.json(), { id: 'a/b', query: {}, url: '/p/a%2Fb' });
});

test('onRequest hooks may answer; onResponse hooks see the status', async (t) => {
  const app = testApp();
  const seen: string[] = [];
  app.addHook('onRequest', async (req, reply) => {
    await sleep(0);
    if (req.headers['x-deny'] !== undefined) reply.code(403).send({ denied: true });
  });
  app.addHook('onResponse', (req, reply) => {
    seen.push(`${req.method} ${req.url} ${reply.statusCode}`);
  });
  app.get('/x', () => 'x');
  const url = await listen(t, app);
  await request(url).get('/x').expect(200);
  await request(url).get('/x').set('x-deny', '1').expect(403);
  assert.deepEqual(seen, ['GET /x 200', 'GET /x 403']);
});

test("onRequest hooks run before the body is parsed and validated, as fastify's", async (t) => {
  const app = testApp();
  app.addHook('onRequest', (req, reply) => {
    if (req.headers.authorization === undefined) reply.code(401).send({ error: 'who are you?' });
  });
  app.post('/items', { schema: { body: z.object({ name: z.string() }) } }, (req) => req.body);
  const url = await listen(t, app);
  await request(url).post('/items').send({ name: 42 }).expect(401);
  await request(url).post('/items').set('authorization', 'x').send({ name: 42 }).expect(400);
  const ok = await request(url).post('/items').set('authorization', 'x').send({ name: 'a' }).expect(200);
  assert.deepEqual(ok.body, { name: 'a' });
});

test('a schema whose own code throws (a zod transform) is a 500; the connection and later requests go on', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.get(
    '/parse',
    { schema: { querystring: z.object({ q: z.string().transform((v) => JSON.parse(v) as unknown) }) } },
    (req) => req.query,
  );
  app.get('/ok', () => 'ok');
  const port = portOf(await listen(t, app));
  const c = await RawClient.connect(port, t);
  c.write('GET /parse?q=%7B HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal((await c.response()).status, 500);
  const ok = await c.response();
  assert.equal(ok.status, 200);
  assert.equal(ok.body.toString(), 'ok');
  assert.ok(lines.some((l) => l.msg === 'Error in request handler'));
});

test('the request id is on every line logged while serving the request, and in the access log', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  app.get('/work', async (req) => {
    req.log.info('starting');
    await sleep(0.002);
    app.log.info({ step: 2 }, 'after an await');
    return { id: requestId.get() };
  });
  const url = await listen(t, app);
  const [a, b] = await Promise.all([
    request(url).get('/work').set('x-request-id', 'client-id-1'),
    request(url).get('/work'),
  ]);
  assert.equal(a.body.id, 'client-id-1');
  assert.match(b.body.id, /^req-\d+$/);
  for (const id of [a.body.id, b.body.id]) {
    const mine = lines.filter((l) => l.reqId === id);
    assert.deepEqual(
      mine.map((l) => l.msg),
      ['starting', 'after an await', 'request completed'],
    );
    const access = mine[2]!;
    assert.equal((access.res as { statusCode: number }).statusCode, 200);
    assert.equal((access.req as { url: string }).url, '/work');
    assert.equal(typeof access.responseTime, 'number');
  }
  assert.equal(requestId.get(), undefined);
});

test("request.log carries the reqId with a pino logger of one's own (no requestIdMixin), as fastify's; requestIdHeader in any case", async (t) => {
  const { logger, lines } = recordingLogger('info', false);
  const app = testApp({ logger, requestIdHeader: 'X-Trace-Id' });
  app.get('/work', async (req, reply) => {
    await sleep(0.002);
    req.log.info('in the handler');
    reply.send('ok');
    return reply.send('twice');
  });
  const url = await listen(t, app);
  await request(url).get('/work').set('x-trace-id', 'trace-7').expect(200);
  const work = lines.filter((l) => l.msg !== 'request completed' && l.reqId !== undefined);
  assert.deepEqual(
    work.map((l) => [l.reqId, l.msg]),
    [
      ['trace-7', 'in the handler'],
      ['trace-7', 'Reply was already sent, did you forget to "return reply"?'],
    ],
  );
});

test('the app logger is the loop exception handler: a failing callback is one structured line', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  await listen(t, app);
  const loop = app.loop!;
  await new Promise<void>((resolve) => {
    loop.callSoon(() => {
      throw new Error('callback failed');
    });
    loop.callSoon(resolve);
  });
  const line = lines.find((l) => (l.err as { message?: string } | undefined)?.message === 'callback failed');
  assert.ok(line, 'logged');
  assert.equal(line.level, 50);
  assert.match(String(line.msg), /^Exception in callback/);
  assert.equal(typeof line.handle, 'string');
});

test('errors from protocols and tasks are one structured line each, with transport, protocol, peer and task', async (t) => {
  const { logger, lines } = recordingLogger();
  const app = testApp({ logger });
  class Faulty extends Protocol {
    override dataReceived(): void {
      throw new Error('protocol bug');
    }
  }
  await listen(t, app, { http: { port: 0 }, tcp: { port: 0, protocol: () => new Faulty() } });
  const tcp = app.addresses().find((a) => a.kind === 'tcp')!;
  const sock = net.connect(tcp.port!, '127.0.0.1', () => sock.write('x'));
  await new Promise<void>((resolve) => sock.on('close', () => resolve()).on('error', () => undefined));
  const line = lines.find((l) => (l.err as { message?: string } | undefined)?.message === 'protocol bug');
  assert.ok(line, 'logged');
  assert.equal(line.level, 50);
  assert.equal(line.msg, 'Fatal error: protocol.dataReceived() call failed.');
  assert.match(String(line.transport), /^<(Socket|Fd)Transport/);
  assert.match(String(line.protocol), /Faulty|Tracked/);
  assert.match(String(line.peer), /^127\.0\.0\.1:\d+$/);
  assert.equal(lines.filter((l) => l.level === 50).length, 1);

  const loop = app.loop!;
  const task = loop.createTask(
    async () => {
      throw new Error('task failed');
    },
    { name: 'doomed' },
  );
  await new Promise<void>((resolve) => task.addDoneCallback(() => resolve()));
  // An exception nobody retrieved is reported when the task is collected or its loop closes (here, at close:
  // `task` still refers to it).
  await app.close({ deadline: 1 });
  const taskLine = lines.find((l) => (l.err as { message?: string } | undefined)?.message === 'task failed');
  assert.ok(taskLine, 'the task error was logged');
  assert.equal(taskLine.msg, 'Task exception was never retrieved');
  assert.match(String(taskLine.future), /<Task name='doomed' .* finished exception=Error: task failed>/);
});
