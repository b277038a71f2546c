// HTTP/1.1 on loopwork transports, over raw sockets and curl: keep-alive, pipelining in order, chunked bodies both
// ways, HEAD, 100-continue, every limit status, request-smuggling shapes refused with 400 and a closed connection.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { sleep } from '@loopwork/service';
import type { App } from '@loopwork/service';
import { RawClient, exchange, listen, portOf, testApp } from './helpers.js';

const execFileP = promisify(execFile);

function echoApp(options: Parameters<typeof testApp>[0] = {}): App {
  const app = testApp(options);
  app.get('/delay/:ms', async (req) => {
    await sleep(Number(req.params.ms) / 1000);
    return { ms: Number(req.params.ms) };
  });
  app.post('/echo', (req) => {
    const body = req.exchange.body;
    return { length: body.length, text: body.toString('latin1'), trailers: req.raw.trailers };
  });
  app.get('/stream/:n', async (req, reply) => {
    reply.type('text/plain').writeHead(200);
    for (let i = 0; i < Number(req.params.n); i++) await reply.write(`line ${i}\n`);
    reply.end();
  });
  app.get('/hello', () => ({ hello: 'world' }));
  return app;
}

test('keep-alive: several requests on one connection', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const c = await RawClient.connect(port, t);
  for (let i = 0; i < 3; i++) {
    c.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await c.response();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), '{"hello":"world"}');
    assert.equal(r.headers.connection, undefined);
    assert.match(r.headers.date!, /GMT$/);
  }
  c.write('GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const last = await c.response();
  assert.equal(last.headers.connection, 'close');
  assert.ok(await c.endedWithin(2));
});

test('a client that half-closes after its requests still gets every response', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const c = await RawClient.connect(port, t);
  c.write('GET /delay/30 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
  c.socket.end();
  assert.deepEqual(JSON.parse((await c.response()).body.toString()), { ms: 30 });
  assert.equal((await c.response()).body.toString(), '{"hello":"world"}');
  assert.ok(await c.endedWithin(2));
});

test('HTTP/1.0: closed after the response unless keep-alive is asked for', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const plain = await exchange(port, 'GET /hello HTTP/1.0\r\n\r\n');
  assert.match(plain, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(plain, /Connection: close/);
  const c = await RawClient.connect(port, t);
  c.write('GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const r = await c.response();
  assert.equal(r.headers.connection, 'keep-alive');
  c.write('GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  assert.equal((await c.response()).status, 200);
});

test('pipelining: responses come in request order whatever order the handlers finish in', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const c = await RawClient.connect(port, t);
  c.write(
    'GET /delay/60 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /delay/1 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc' +
      'GET /delay/20 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n',
  );
  assert.deepEqual(JSON.parse((await c.response()).body.toString()), { ms: 60 });
  assert.deepEqual(JSON.parse((await c.response()).body.toString()), { ms: 1 });
  assert.equal(JSON.parse((await c.response()).body.toString()).text, 'abc');
  assert.deepEqual(JSON.parse((await c.response()).body.toString()), { ms: 20 });
  const head = await c.response({ head: true });
  assert.equal(head.headers['content-length'], '17');
  assert.equal(head.body.length, 0);
  assert.equal((await c.response()).body.toString(), '{"hello":"world"}');
  assert.equal(c.pending.length, 0);
});

test('chunked request bodies (with trailers) and chunked streamed responses', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const c = await RawClient.connect(port, t);
  c.write('POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
  c.write('5\r\nhello\r\n');
  await sleep(0.01);
  c.write('6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n');
  const r = await c.response();
  assert.deepEqual(JSON.parse(r.body.toString()), { length: 11, text: 'hello world', trailers: { 'x-sum': '11' } });

  c.write('GET /stream/500 HTTP/1.1\r\nHost: x\r\n\r\n');
  const s = await c.response();
  assert.equal(s.headers['transfer-encoding'], 'chunked');
  const lines = s.body.toString().trimEnd().split('\n');
  assert.equal(lines.length, 500);
  assert.equal(lines[499], 'line 499');
  // The connection goes on after a chunked response.
  c.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal((await c.response()).status, 200);
});

test('HEAD answers with the GET head and no body', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const c = await RawClient.connect(port, t);
  c.write('HEAD /stream/3 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
  const h = await c.response({ head: true });
  assert.equal(h.status, 200);
  assert.equal(h.headers['transfer-encoding'], 'chunked');
  const g = await c.response();
  assert.equal(g.body.toString(), '{"hello":"world"}');
});

test('Expect: 100-continue: the interim response, then the body; refused before the body for no route', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const c = await RawClient.connect(port, t);
  c.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
  assert.ok(await c.waitFor('HTTP/1.1 100 Continue\r\n\r\n'), 'the connection ended before 100 Continue');
  assert.equal(c.pending.toString(), 'HTTP/1.1 100 Continue\r\n\r\n');
  c.write('body');
  const interim = await c.response();
  assert.equal(interim.status, 100);
  const r = await c.response();
  assert.equal(JSON.parse(r.body.toString()).text, 'body');

  const d = await RawClient.connect(port, t);
  d.write('POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
  const refused = await d.response();
  assert.equal(refused.status, 404);
  assert.equal(refused.headers.connection, 'close');
  assert.ok(await d.endedWithin(3));

  // A method the route does not take: 405 with Allow (RFC 9110 §15.5.6), as without Expect.
  const e = await RawClient.connect(port, t);
  e.write('POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
  const notAllowed = await e.response();
  assert.equal(notAllowed.status, 405);
  assert.equal(notAllowed.headers.allow, 'GET, HEAD');
  assert.equal(JSON.parse(notAllowed.body.toString()).message, 'Method POST not allowed on /hello');
});

test('curl: 100-continue upload, chunked upload and download', { skip: !(await hasCurl()) }, async (t) => {
  const url = await listen(t, echoApp());
  const dir = mkdtempSync(join(tmpdir(), 'lw-curl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'big');
  writeFileSync(file, 'x'.repeat(200_000));
  const upload = await execFileP('curl', [
    '-sS',
    '-H',
    'Expect: 100-continue',
    '--data-binary',
    `@${file}`,
    `${url}/echo`,
  ]);
  assert.equal(JSON.parse(upload.stdout).length, 200_000);
  const chunked = await execFileP('curl', [
    '-sS',
    '-H',
    'Transfer-Encoding: chunked',
    '--data-binary',
    'abc',
    `${url}/echo`,
  ]);
  assert.equal(JSON.parse(chunked.stdout).text, 'abc');
  const download = await execFileP('curl', ['-sS', '--raw', '-i', `${url}/stream/3`]);
  assert.match(download.stdout, /transfer-encoding: chunked/i);
  const plain = await execFileP('curl', ['-sS', `${url}/stream/3`]);
  assert.equal(plain.stdout, 'line 0\nline 1\nline 2\n');
});

async function hasCurl(): Promise<boolean> {
  try {
    await execFileP('curl', ['--version']);
    return true;
  } catch {
    return false;
  }
}

test('limits: 431 header size and count, 414 URL, 413 body (declared and chunked); each closes', async (t) => {
  const app = echoApp({ http: { maxHeaderSize: 1024, maxHeaderCount: 10, maxUrlLength: 64, maxBodySize: 16 } });
  const port = portOf(await listen(t, app));
  const cases: [string, number][] = [
    [`GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`, 431],
    [`GET /hello HTTP/1.1\r\nHost: x\r\n${'X-A: 1\r\n'.repeat(11)}\r\n`, 431],
    [`GET /${'u'.repeat(100)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
    [`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n${'b'.repeat(17)}`, 413],
    [
      `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n${'c'.repeat(16)}\r\n1\r\nd\r\n0\r\n\r\n`,
      413,
    ],
  ];
  for (const [req, status] of cases) {
    const out = await exchange(port, req);
    assert.match(out, new RegExp(`^HTTP/1\\.1 ${status} `), `${status} for ${JSON.stringify(req.slice(0, 60))}`);
    assert.match(out, /Connection: close/);
    const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4));
    assert.equal(body.statusCode, status);
  }
});

test('request smuggling shapes are refused with 400 (or 501/505) and the connection closed', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const shapes: [string, string, number][] = [
    [
      'CL+TE',
      'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
    ],
    [
      'TE+CL',
      'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
      400,
    ],
    ['duplicate CL', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', 400],
    ['list CL', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc', 400],
    ['signed CL', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc', 400],
    ['bare LF', 'GET /hello HTTP/1.1\nHost: x\r\n\r\n', 400],
    ['bare LF in headers', 'GET /hello HTTP/1.1\r\nHost: x\nX: y\r\n\r\n', 400],
    ['obs-fold', 'GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n', 400],
    ['space before colon', 'GET /hello HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n', 400],
    ['NUL in value', 'GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n', 400],
    ['TE not chunked last', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n', 400],
    ['TE in 1.0', 'POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['bad chunk size', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
    [
      'chunk overflow',
      `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${'f'.repeat(20)}\r\n`,
      400,
    ],
    ['missing host', 'GET /hello HTTP/1.1\r\n\r\n', 400],
    ['double host', 'GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['CONNECT', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 501],
    ['HTTP/2.0', 'GET /hello HTTP/2.0\r\nHost: x\r\n\r\n', 505],
    ['TE gzip', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501],
  ];
  const other = await RawClient.connect(port, t);
  for (const [name, req, status] of shapes) {
    const out = await exchange(port, req);
    assert.match(out, new RegExp(`^HTTP/1\\.1 ${status} `), `${name}: ${JSON.stringify(out.slice(0, 80))}`);
    assert.match(out, /Connection: close/, name);
    // Nothing after the error response: the smuggled part was never handled.
    assert.equal(out.split('HTTP/1.1 ').length, 2, name);
    // Another client is served all along.
    other.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await other.response()).status, 200);
  }
});

test('an error after pipelined requests comes after their responses', async (t) => {
  const port = portOf(await listen(t, echoApp()));
  const out = await exchange(
    port,
    'GET /delay/20 HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
  );
  const statuses = [...out.matchAll(/HTTP\/1\.1 (\d+) /g)].map((m) => m[1]);
  assert.deepEqual(statuses, ['200', '400']);
});

test('handlerTimeout: a handler that does not answer in time gets 503 and the connection closes', async (t) => {
  const app = echoApp({ http: { handlerTimeout: 0.1 } });
  const port = portOf(await listen(t, app));
  const out = await exchange(port, 'GET /delay/2000 HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(out, /^HTTP\/1\.1 503 /);
  const c = await RawClient.connect(port, t);
  c.write('GET /delay/10 HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal((await c.response()).status, 200);
});

test('a client that pipelines and does not read: the server stops reading instead of buffering every response', async (t) => {
  const app = testApp();
  const big = Buffer.alloc(256 * 1024, 'x');
  let handled = 0;
  app.get('/big', (_req, reply) => {
    handled++;
    reply.type('application/octet-stream').send(big);
  });
  const port = portOf(await listen(t, app));
  const total = 400; // 100 MiB of responses
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  socket.pause();
  socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(total));
  await sleep(0.5);
  // What the kernel buffers on both sides, and one transport high-water mark: far from 100 MiB.
  assert.ok(handled < total / 2, `handled ${handled} of ${total} while nothing was read`);
  let received = 0;
  let responses = 0;
  const head = Buffer.from('HTTP/1.1 200 OK');
  let carry = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    // A status line may be split between two chunks: the end of the previous one is searched again, and it is too
    // short to hold a whole status line that was counted already.
    const text = Buffer.concat([carry, chunk]);
    for (let i = text.indexOf(head); i !== -1; i = text.indexOf(head, i + 1)) responses++;
    carry = text.subarray(Math.max(0, text.length - (head.length - 1)));
  });
  socket.resume();
  for (let i = 0; i < 200 && handled < total; i++) await sleep(0.05);
  assert.equal(handled, total);
  for (let i = 0; i < 100 && received < total * big.length; i++) await sleep(0.05);
  assert.ok(received > total * big.length, `every response arrived (${received} bytes)`);
  assert.equal(responses, total);
});

test('a client that pipelines and reads slowly gets every response: the held requests do not time out', async (t) => {
  const app = testApp({ http: { headersTimeout: 0.2 } });
  const big = Buffer.alloc(256 * 1024, 'y');
  app.get('/big', (_req, reply) => {
    reply.type('application/octet-stream').send(big);
  });
  const port = portOf(await listen(t, app));
  const total = 200; // 50 MiB, read over more than the head timeout
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  socket.pause();
  socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(total));
  let received = 0;
  let tail = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    tail = Buffer.concat([tail, chunk]).subarray(-400);
  });
  socket.pause();
  const started = Date.now();
  // Read in bursts, stalling between them: the whole read takes well over the head timeout.
  while (received < total * big.length && Date.now() - started < 20_000) {
    socket.resume();
    await sleep(0.002);
    socket.pause();
    await sleep(0.15);
  }
  assert.ok(Date.now() - started > 600, 'the reading took longer than the head timeout, thrice');
  assert.ok(
    received > total * big.length,
    `every response arrived (${received} bytes) ${JSON.stringify(tail.toString('latin1').replace(/y+/g, 'y…'))}`,
  );
});
