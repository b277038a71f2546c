// Interop with real TLS peers: `openssl s_client` and `curl` against a loopwork TLS server, a loopwork TLS client
// against `openssl s_server`, and Python asyncio's TLS client and server (test/fixtures/asyncio_tls_peer.py).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { CERT_REQUIRED, Protocol, createDefaultContext } from '@loopwork/server';
import type { BaseEventLoop, BaseTransport, ExceptionContext, Server, Transport } from '@loopwork/server';
import { makeTestCerts } from './helpers/certs.js';
import { Recorder, runLoop } from './helpers/harness.js';

const certs = makeTestCerts();
const { serverContext } = certs;
after(() => certs.dispose());
const PEER = fileURLToPath(new URL('./fixtures/asyncio_tls_peer.py', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Runs a command to its end (killed after `ms`), feeding `input` and keeping stdin open for `holdMs`. */
function run(cmd: string, args: string[], input = '', holdMs = 0, ms = 20_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin.write(input);
    if (holdMs > 0) setTimeout(() => child.stdin.end(), holdMs);
    else child.stdin.end();
  });
}

/** Starts a long-running peer and resolves with it and the first stdout line matching `ready`. */
function startPeer(
  cmd: string,
  args: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray; done: Promise<Result> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let matched = false;
    const done = new Promise<Result>((res) =>
      child.on('close', (code) => {
        children.delete(child);
        res({ code, stdout, stderr });
      }),
    );
    child.on('error', reject);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = ready.exec(stdout);
      if (m !== null && !matched) {
        matched = true;
        resolve({ child, match: m, done });
      }
    });
    setTimeout(() => {
      if (!matched) {
        child.kill('SIGKILL');
        reject(new Error(`${cmd} did not become ready: ${stdout} ${stderr}`));
      }
    }, 10_000);
  });
}

/** Answers each line with `echo: <line>` and closes after the first one. */
class LineEcho extends Protocol {
  declare transport?: Transport;
  buf = '';
  override connectionMade(transport: BaseTransport): void {
    this.transport = transport as Transport;
  }
  override dataReceived(data: Buffer): void {
    this.buf += data.toString();
    const i = this.buf.indexOf('\n');
    if (i < 0) return;
    this.transport?.write(Buffer.from(`echo: ${this.buf.slice(0, i + 1)}`));
    this.transport?.close();
  }
}

/** A minimal HTTP/1.1 responder: one response per connection, then close. */
class TinyHttp extends Protocol {
  declare transport?: Transport;
  head = '';
  override connectionMade(transport: BaseTransport): void {
    this.transport = transport as Transport;
  }
  override dataReceived(data: Buffer): void {
    this.head += data.toString('latin1');
    if (!this.head.includes('\r\n\r\n')) return;
    const path = this.head.split(' ')[1] ?? '/';
    const alpn = (this.transport?.getExtraInfo('ssl_object') as { alpnProtocol?: unknown }).alpnProtocol;
    const body = `hello ${path} alpn=${String(alpn)}\n`;
    this.transport?.write(
      Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`),
    );
    this.transport?.close();
  }
}

async function serve(
  loop: BaseEventLoop,
  factory: () => Protocol,
  ctx = serverContext(),
): Promise<{ server: Server; port: number; lost: Promise<unknown>[] }> {
  const lost: Promise<unknown>[] = [];
  const server = await loop.createServer(
    () => {
      const p = factory();
      const r = new Recorder(loop);
      // Observe the end of each connection without changing the protocol.
      const original = p.connectionLost.bind(p);
      p.connectionLost = (exc) => {
        original(exc);
        r.connectionLost(exc);
      };
      lost.push(r.lost.then((e) => e));
      return p;
    },
    '127.0.0.1',
    0,
    { ssl: ctx },
  );
  const name = server.sockets[0]?.getsockname();
  assert.ok(Array.isArray(name));
  return { server, port: name[1] as number, lost };
}

async function stop(server: Server): Promise<void> {
  server.close();
  await server.waitClosed();
}

function noErrors(errors: ExceptionContext[]): void {
  assert.deepEqual(
    errors.map((e) => `${e.message}: ${String(e.exception)}`),
    [],
  );
}

describe('a loopwork TLS server with real clients', () => {
  test('openssl s_client: verifies the chain, negotiates TLS 1.3 and ALPN, gets the echo and a clean close', async () => {
    await runLoop(async (loop, errors) => {
      const ctx = serverContext();
      ctx.setAlpnProtocols(['h2', 'http/1.1']);
      const { server, port, lost } = await serve(loop, () => new LineEcho(), ctx);
      try {
        const r = await run(
          'openssl',
          [
            ...['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', certs.ca.certfile, '-servername', 'localhost'],
            ...['-verify_return_error', '-alpn', 'http/1.1', '-ign_eof'],
          ],
          'hello\n',
        );
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /echo: hello/);
        assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
        assert.match(r.stdout, /Protocol {2}: TLSv1\.3/);
        assert.match(r.stdout, /ALPN protocol: http\/1\.1/);
        assert.deepEqual(await Promise.all(lost), [null]);
        noErrors(errors);
      } finally {
        await stop(server);
      }
    });
  });

  test('openssl s_client with a client certificate against a server that requires one', async () => {
    await runLoop(async (loop, errors) => {
      const ctx = serverContext();
      ctx.verifyMode = CERT_REQUIRED;
      ctx.loadVerifyLocations({ cafile: certs.ca.certfile });
      const { server, port } = await serve(loop, () => new LineEcho(), ctx);
      try {
        const base = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', certs.ca.certfile, '-ign_eof'];
        const ok = await run(
          'openssl',
          [...base, '-cert', certs.client.certfile, '-key', certs.client.keyfile],
          'mtls\n',
        );
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stdout, /echo: mtls/);
        const refused = await run('openssl', base, 'nope\n', 500);
        assert.doesNotMatch(refused.stdout, /echo: nope/);
        assert.match(refused.stdout + refused.stderr, /certificate required|alert/i);
        noErrors(errors);
      } finally {
        await stop(server);
      }
    });
  });

  test('curl: an HTTPS request over a loopwork TLS server (HTTP/1.1 by ALPN)', async () => {
    await runLoop(async (loop, errors) => {
      const ctx = serverContext();
      ctx.setAlpnProtocols(['http/1.1']);
      const { server, port, lost } = await serve(loop, () => new TinyHttp(), ctx);
      try {
        const r = await run('curl', [
          ...['-sS', '--cacert', certs.ca.certfile, '--resolve', `localhost:${port}:127.0.0.1`],
          ...['-w', '%{http_code} %{ssl_verify_result}', `https://localhost:${port}/path`],
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'hello /path alpn=http/1.1\n200 0');
        const again = await run('curl', ['-sS', '--cacert', certs.ca.certfile, `https://127.0.0.1:${port}/ip`]);
        assert.equal(again.stdout, 'hello /ip alpn=http/1.1\n');
        await Promise.all(lost);
        noErrors(errors);
      } finally {
        await stop(server);
      }
    });
  });

  test('Python asyncio TLS client: echo and a clean close on both sides', async () => {
    await runLoop(async (loop, errors) => {
      const { server, port, lost } = await serve(loop, () => new LineEcho());
      try {
        const r = await run('python3', [PEER, 'client', '127.0.0.1', String(port), certs.ca.certfile]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        assert.equal(r.stdout, 'echo: hello from python\ncipher TLSv1.3\n');
        assert.deepEqual(await Promise.all(lost), [null]);
        noErrors(errors);
      } finally {
        await stop(server);
      }
    });
  });
});

describe('a loopwork TLS client with real servers', () => {
  test('openssl s_server -rev: lines come back reversed; the server closes with close_notify', async () => {
    await runLoop(async (loop, errors) => {
      const peer = await startPeer(
        'openssl',
        [
          's_server',
          '-accept',
          '0',
          '-cert',
          certs.server.certfile,
          '-key',
          certs.server.keyfile,
          '-rev',
          '-naccept',
          '1',
        ],
        /ACCEPT .*:(\d+)/,
      );
      const port = Number(peer.match[1]);
      const [t, p] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', port, {
        ssl: createDefaultContext({ cafile: certs.ca.certfile }),
        serverHostname: 'localhost',
      });
      t.write(Buffer.from('hello\n'));
      assert.equal((await p.receive(6)).toString(), 'olleh\n');
      // "CLOSE" makes s_server answer and shut the TLS connection down itself.
      t.write(Buffer.from('CLOSE\n'));
      assert.equal(await p.lost, null);
      assert.ok(p.events.includes('eof'));
      const done = await peer.done;
      assert.equal(done.code, 0, done.stderr);
      noErrors(errors);
    });
  });

  test('openssl s_server -Verify 1: our client certificate is verified (mutual TLS)', async () => {
    await runLoop(async (loop, errors) => {
      const peer = await startPeer(
        'openssl',
        [
          ...['s_server', '-accept', '0', '-cert', certs.server.certfile, '-key', certs.server.keyfile, '-rev'],
          ...['-naccept', '1', '-Verify', '1', '-verify_return_error', '-CAfile', certs.ca.certfile],
        ],
        /ACCEPT .*:(\d+)/,
      );
      const ctx = createDefaultContext({ cafile: certs.ca.certfile });
      ctx.loadCertChain(certs.client.certfile, certs.client.keyfile);
      const [t, p] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', Number(peer.match[1]), {
        ssl: ctx,
        serverHostname: 'localhost',
      });
      t.write(Buffer.from('abc\n'));
      assert.equal((await p.receive(4)).toString(), 'cba\n');
      t.close();
      assert.equal(await p.lost, null);
      const done = await peer.done;
      assert.equal(done.code, 0, done.stderr);
      // The verify callback prints the chain it checked.
      assert.match(done.stdout + done.stderr, /depth=0 CN = client/);
      noErrors(errors);
    });
  });

  test('Python asyncio TLS server: answer, then close_notify both ways, nothing logged on either side', async () => {
    await runLoop(async (loop, errors) => {
      const peer = await startPeer(
        'python3',
        [PEER, 'server', certs.server.certfile, certs.server.keyfile],
        /^(\d+)\n/,
      );
      const [t, p] = await loop.createConnection(() => new Recorder(loop), '127.0.0.1', Number(peer.match[1]), {
        ssl: createDefaultContext({ cafile: certs.ca.certfile }),
        serverHostname: 'localhost',
      });
      t.write(Buffer.from('hi python\n'));
      assert.equal((await p.receive(14)).toString(), 'py: hi python\n');
      t.close();
      assert.equal(await p.lost, null);
      const done = await peer.done;
      assert.equal(done.code, 0, done.stderr);
      assert.equal(done.stderr, '');
      assert.match(done.stdout, /rest 0\n$/);
      noErrors(errors);
    });
  });
});
