// The flagship run as a user runs it: a child process on free ports, its HTTP API driven with supertest, its
// Redis port with redis-cli, redis-benchmark and a raw RESP client, its TLS port with node:https and
// `openssl s_client`, its admin socket with socat, and signals.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import request from 'supertest';
import { SocketClient, hasCommand, run, startServer, tempDir } from './example-server.js';
import type { ExampleServer } from './example-server.js';

interface Flagship {
  server: ExampleServer;
  http: string;
  https: string | null;
  respPort: number;
  admin: string;
  stateDir: string;
}

/** Starts the flagship on free ports with its state in a temporary directory; waits for its address lines. */
async function startFlagship(
  t: TestContext,
  extra: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
  stateDir = tempDir(t, 'loopwork-flagship-'),
): Promise<Flagship> {
  const server = startServer(t, 'flagship.ts', ['--port', '0', '--state-dir', stateDir, ...extra], env);
  await server.waitFor(/Ctrl-C to stop\n/);
  const out = server.stdout;
  const http = /^ {2}http\s+(http:\/\/\S+)/m.exec(out);
  const tls = /^ {2}https\s+(https:\/\/\S+)/m.exec(out);
  const resp = /^ {2}resp\s+tcp:\/\/127\.0\.0\.1:(\d+)/m.exec(out);
  const admin = /^ {2}admin\s+unix:(\S+)/m.exec(out);
  assert.ok(http && resp && admin, `addresses printed:\n${out}`);
  return {
    server,
    http: http[1]!,
    https: tls === null ? null : tls[1]!,
    respPort: Number(resp[1]),
    admin: admin[1]!,
    stateDir,
  };
}

const redisCli = hasCommand('redis-cli');
const noRedisCli = 'redis-cli is not installed (apt-get install -y redis-tools; .ci/run installs it)';

test('the flagship serves one store over HTTP, RESP, TLS and the admin socket, and exits 0 on SIGTERM', async (t) => {
  const f = await startFlagship(t);
  const cli = (...args: string[]): Promise<string> =>
    run('redis-cli', ['-h', '127.0.0.1', '-p', String(f.respPort), ...args]).then((r) => r.stdout);

  await t.test('HTTP JSON API: PUT, GET, list, DELETE, 404, zod-checked key and body', async () => {
    const api = request(f.http);
    await api
      .put('/kv/greeting')
      .send({ value: 'hello' })
      .expect(201, { key: 'greeting', value: 'hello', created: true });
    await api.put('/kv/greeting').send({ value: 'hello again' }).expect(200);
    await api.get('/kv/greeting').expect(200, { key: 'greeting', value: 'hello again' });
    await api.put('/kv/other').send({ value: 'x', ttl: 60 }).expect(201);
    const listed = await api.get('/kv').query({ prefix: 'gr' }).expect(200);
    assert.deepEqual(listed.body, { count: 1, keys: ['greeting'] });
    const missing = await api.get('/kv/nope').expect(404);
    assert.equal(missing.body.message, 'no such key: nope');
    const badKey = await api.put('/kv/bad%20key').send({ value: 'v' }).expect(400);
    assert.deepEqual(
      badKey.body.issues.map((i: { path: string[] }) => i.path.join('.')),
      ['params.key'],
    );
    const badBody = await api.put('/kv/k1').send({ value: 42 }).expect(400);
    assert.deepEqual(
      badBody.body.issues.map((i: { path: string[] }) => i.path.join('.')),
      ['body.value'],
    );
    await api.delete('/kv/other').expect(204);
    await api.delete('/kv/other').expect(404);
    // The longest key (256 characters), percent-encoded at that: a route, not a 404 or a 414.
    const longKey = '@'.repeat(256);
    await api
      .put(`/kv/${encodeURIComponent(longKey)}`)
      .send({ value: 'long' })
      .expect(201);
    await api.get(`/kv/${encodeURIComponent(longKey)}`).expect(200, { key: longKey, value: 'long' });
    await api.delete(`/kv/${encodeURIComponent(longKey)}`).expect(204);
    await api.get('/healthz').expect(200);
    await api.get('/readyz').expect(200, { status: 'ready' });
  });

  await t.test(
    'redis-cli: the commands of the issue, on the same store as HTTP',
    { skip: !redisCli && noRedisCli },
    async () => {
      assert.equal(await cli('PING'), 'PONG\n');
      assert.equal(await cli('ECHO', 'hi there'), 'hi there\n');
      assert.equal(await cli('GET', 'greeting'), 'hello again\n');
      assert.equal(await cli('SET', 'from-redis', 'v1'), 'OK\n');
      await request(f.http).get('/kv/from-redis').expect(200, { key: 'from-redis', value: 'v1' });
      assert.equal(await cli('INCR', 'n'), '1\n');
      assert.equal(await cli('INCR', 'n'), '2\n');
      assert.match(await cli('INCR', 'greeting'), /ERR value is not an integer or out of range/);
      assert.equal(await cli('MSET', 'a', '1', 'b', '2'), 'OK\n');
      assert.equal(await cli('MGET', 'a', 'b', 'missing'), '1\n2\n\n');
      assert.equal(await cli('EXISTS', 'a', 'b', 'missing'), '2\n');
      assert.equal(await cli('DEL', 'a', 'b', 'missing'), '2\n');
      assert.equal(await cli('SET', 'temp', 'x', 'EX', '100'), 'OK\n');
      const ttl = Number(await cli('TTL', 'temp'));
      assert.ok(ttl > 90 && ttl <= 100, `TTL ${ttl}`);
      assert.equal(await cli('SET', 'gone', 'x', 'PX', '1'), 'OK\n');
      assert.equal(await cli('SET', 'temp', 'y', 'NX'), '\n');
      // `gone` expired a millisecond after it was set: more than that has passed.
      assert.equal(await cli('EXISTS', 'gone'), '0\n');
      assert.match(await cli('GET'), /ERR wrong number of arguments for 'get' command/);
      assert.match(await cli('FROB', 'x'), /ERR unknown command 'FROB', with args beginning with: 'x'/);
      assert.match(await cli('COMMAND', 'COUNT'), /^\d+\n$/);
      const docs = await run('redis-cli', ['-p', String(f.respPort), 'QUIT']);
      assert.equal(docs.code, 0);
    },
  );

  await t.test(
    'redis-benchmark -t get,set runs against it',
    { skip: !hasCommand('redis-benchmark') && noRedisCli },
    async () => {
      const r = await run('redis-benchmark', [
        '-p',
        String(f.respPort),
        '-t',
        'get,set',
        '-n',
        '2000',
        '-P',
        '16',
        '-q',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /SET: [\d.]+ requests per second/);
      assert.match(r.stdout, /GET: [\d.]+ requests per second/);
    },
  );

  await t.test('a raw RESP client: pipelined commands, inline commands, COMMAND DOCS, a protocol error', async (t) => {
    const c = new SocketClient(t, { port: f.respPort });
    c.write(
      '*3\r\n$3\r\nSET\r\n$3\r\nraw\r\n$5\r\nbytes\r\n*2\r\n$3\r\nGET\r\n$3\r\nraw\r\nPING\r\n*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n',
    );
    assert.equal(await c.upTo('*0\r\n'), '+OK\r\n$5\r\nbytes\r\n+PONG\r\n*0\r\n');
    c.write('*1\r\n$-7\r\n');
    assert.equal(await c.upTo('\r\n'), '-ERR Protocol error: invalid bulk length\r\n');
    await c.closed();
    // Only that connection was closed.
    const d = new SocketClient(t, { port: f.respPort });
    d.write('GET raw\r\n');
    assert.equal(await d.upTo('bytes\r\n'), '$5\r\nbytes\r\n');
    // Redis' error codes and limits: a deadline TTL/PTTL could not report is refused, as redis-server does.
    d.write('SELECT 1\r\nSET far v EX 1000000000000000\r\nSET far v PX 9223372036854775807\r\n');
    assert.equal(await d.upTo('\r\n'), '-ERR DB index is out of range\r\n');
    assert.equal(await d.upTo('\r\n'), "-ERR invalid expire time in 'set' command\r\n");
    assert.equal(await d.upTo('\r\n'), "-ERR invalid expire time in 'set' command\r\n");
    d.write('SET far v EX 1000000000\r\nTTL far\r\nPTTL far\r\n');
    assert.equal(await d.upTo('\r\n'), '+OK\r\n');
    assert.match(await d.upTo('\r\n'), /^:\d+\r\n$/);
    assert.match(await d.upTo('\r\n'), /^:\d+\r\n$/);
    await request(f.http).put('/kv/far').send({ value: 'v', ttl: 1e300 }).expect(400);
  });

  await t.test(
    'TLS: HTTPS with the certificate made at first start, verified by node:https and openssl s_client',
    async () => {
      assert.ok(f.https !== null, 'the TLS listener is up (openssl is installed here)');
      const cert = path.join(f.stateDir, 'cert.pem');
      assert.match(fs.readFileSync(cert, 'utf8'), /BEGIN CERTIFICATE/);
      assert.equal(fs.statSync(path.join(f.stateDir, 'key.pem')).mode & 0o777, 0o600);
      const url = new URL(f.https);
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: url.port, path: '/kv/greeting', ca: fs.readFileSync(cert) }, (res) => {
            let data = '';
            res.setEncoding('utf8').on('data', (d: string) => (data += d));
            res.on('end', () => resolve(`${res.statusCode} ${data}`));
          })
          .on('error', reject);
      });
      assert.equal(body, '200 {"key":"greeting","value":"hello again"}');
      const s = await run(
        'openssl',
        [
          's_client',
          '-connect',
          `127.0.0.1:${url.port}`,
          '-servername',
          'localhost',
          '-CAfile',
          cert,
          '-verify_return_error',
          '-quiet',
        ],
        'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      );
      assert.match(s.stdout, /^HTTP\/1\.1 200 OK/);
      assert.match(s.stderr, /verify return:1/);
    },
  );

  await t.test('the admin socket: mode 0600, stats over socat and a raw client', async (t) => {
    assert.equal(fs.statSync(f.admin).mode & 0o777, 0o600);
    const c = new SocketClient(t, { path: f.admin });
    c.write('ping\nhelp\nbogus\n');
    assert.equal(await c.line(), 'PONG');
    assert.equal(await c.line(), 'commands:');
    await c.upTo('quit');
    await c.line();
    assert.equal(await c.line(), "ERR unknown command 'bogus'");
    if (!hasCommand('socat')) {
      t.diagnostic('socat is not installed: the socat part is skipped (apt-get install -y socat)');
      return;
    }
    const r = await run('socat', ['-', `UNIX-CONNECT:${f.admin}`], 'stats\n');
    assert.equal(r.code, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as {
      keys: number;
      connections: { active: number };
      ready: boolean;
      adminCommands: number;
    };
    assert.ok(stats.keys >= 1);
    assert.equal(stats.adminCommands, 3, 'ping, help and this stats were counted');
    assert.equal(stats.ready, true);
    assert.ok(stats.connections.active >= 1);
  });

  await t.test('SIGTERM: graceful shutdown with an idle client connected, exit code 0', async (t) => {
    const idle = new SocketClient(t, { port: f.respPort });
    await idle.connected;
    f.server.child.kill('SIGTERM');
    const { code } = await f.server.exited;
    assert.equal(code, 0, f.server.stderr);
    assert.match(f.server.stdout, /received SIGTERM: draining/);
    await idle.closed();
  });
});

test('drain on the admin socket stops the flagship with exit 0; a second start reuses the certificate', async (t) => {
  const state = tempDir(t, 'loopwork-flagship-');
  const first = await startFlagship(t, [], process.env, state);
  assert.match(first.server.stdout, /made a self-signed certificate/);
  const certBefore = fs.readFileSync(path.join(state, 'cert.pem'), 'utf8');
  const c = new SocketClient(t, { path: first.admin });
  c.write('drain\n');
  assert.equal(await c.line(), 'OK draining');
  const { code } = await first.server.exited;
  assert.equal(code, 0, first.server.stderr);

  const second = await startFlagship(t, [], process.env, state);
  assert.doesNotMatch(second.server.stdout, /made a self-signed certificate/);
  assert.ok(second.https !== null);
  assert.equal(fs.readFileSync(path.join(state, 'cert.pem'), 'utf8'), certBefore);
  second.server.child.kill('SIGINT');
  assert.equal((await second.server.exited).code, 0);
});

test('without openssl on PATH, TLS is skipped with a log line and the rest serves', async (t) => {
  // PATH without openssl: an empty directory (node itself is started by its absolute path).
  const empty = tempDir(t, 'loopwork-nopath-');
  const f = await startFlagship(t, [], { ...process.env, PATH: empty });
  assert.equal(f.https, null);
  assert.match(f.server.stdout, /openssl not found: TLS listener skipped/);
  await request(f.http).put('/kv/k').send({ value: 'v' }).expect(201);
  f.server.child.kill('SIGTERM');
  assert.equal((await f.server.exited).code, 0);
});
