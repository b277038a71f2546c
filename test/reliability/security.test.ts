/**
 * Security defaults.
 *
 * What it proves:
 * - the TLS server refuses TLS 1.0 and 1.1 (a client that can speak them, as a control server shows, fails the
 *   handshake with ours) and negotiates TLS 1.3 by default;
 * - clients verify by default: `ssl: true` refuses a certificate from an unknown CA, and a trusted certificate is
 *   refused for the wrong host name; `PROTOCOL_TLS_CLIENT` contexts start with CERT_REQUIRED, host name checking
 *   and TLS 1.2 at least;
 * - an app's Unix socket gets the mode asked for, and 0600 when none is asked for, from the moment it exists
 *   (the file is never chmodded after the bind, so it never had the umask's mode);
 * - error replies carry no stack trace, no internal message, no server version;
 * - `pnpm audit --prod` finds no high or critical advisory in the production dependencies (skipped, saying why,
 *   when the registry cannot answer).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import {
  CERT_REQUIRED,
  PROTOCOL_TLS_CLIENT,
  Protocol,
  SSLContext,
  TLSVersion,
  createApp,
  createDefaultContext,
  getRunningLoop,
  run,
} from '@loopwork/service';
import { fileEventsDuring } from '../../packages/server/test/helpers.js';
import { SECRET } from './fixtures/app.js';
import { certs } from './helpers/certs.js';
import { startServer } from './helpers/child.js';
import { serveLocal } from './helpers/in-process.js';
import { RawClient, exchange } from './helpers/raw-client.js';

const material = certs();

/** A TLS handshake with node:tls; resolves with the protocol negotiated, or the error's code/message. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
      const v = s.getProtocol() ?? 'unknown';
      s.destroy();
      resolve(v);
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
  });
}

const OLD_CLIENT: tls.ConnectionOptions = {
  minVersion: 'TLSv1',
  maxVersion: 'TLSv1.1',
  ciphers: 'DEFAULT:@SECLEVEL=0',
};

test(
  'TLS server: TLS 1.0 and 1.1 are refused, 1.2 and 1.3 accepted',
  { skip: material === null && 'no openssl' },
  async (t) => {
    const m = material!;
    const server = await startServer(t, { tls: { certfile: m.server.certfile, keyfile: m.server.keyfile } });
    const port = server.tlsPort!;
    // The control: a node:tls server that allows TLS 1.0: the old client does speak it.
    const control = tls.createServer({
      cert: m.server.cert,
      key: m.server.key,
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT:@SECLEVEL=0',
    });
    await new Promise<void>((r) => control.listen(0, '127.0.0.1', r));
    t.after(() => control.close());
    const controlPort = (control.address() as { port: number }).port;
    assert.equal(
      await handshake(controlPort, { ...OLD_CLIENT, ca: m.ca.cert }),
      'TLSv1.1',
      'the client speaks TLS 1.1',
    );
    for (const v of ['TLSv1', 'TLSv1.1'] as const) {
      const r = await handshake(port, { ...OLD_CLIENT, minVersion: v, maxVersion: v, ca: m.ca.cert });
      assert.match(r, /^error /, `${v} must be refused, got ${r}`);
    }
    assert.equal(await handshake(port, { ca: m.ca.cert, maxVersion: 'TLSv1.2' }), 'TLSv1.2');
    assert.equal(await handshake(port, { ca: m.ca.cert }), 'TLSv1.3');
    assert.deepEqual(server.errors(), [], 'refused handshakes are not errors');
    t.diagnostic(
      'TLS server: TLSv1 and TLSv1.1 refused (the same client gets TLSv1.1 from a permissive server); 1.2, 1.3 accepted',
    );
  },
);

test(
  'TLS clients verify by default: unknown CA and wrong host name are refused',
  { skip: material === null && 'no openssl' },
  async (t) => {
    const m = material!;
    const server = await startServer(t, { tls: { certfile: m.server.certfile, keyfile: m.server.keyfile } });
    const port = server.tlsPort!;
    const ctx = new SSLContext(PROTOCOL_TLS_CLIENT);
    assert.equal(ctx.verifyMode, CERT_REQUIRED);
    assert.equal(ctx.checkHostname, true);
    assert.equal(ctx.minimumVersion, TLSVersion.TLSv1_2);
    const outcomes = await run(async () => {
      const loop = getRunningLoop();
      const attempt = async (options: Record<string, unknown>): Promise<string> => {
        try {
          const [transport] = await loop.createConnection(() => new Protocol(), '127.0.0.1', port, options);
          transport.close();
          return 'connected';
        } catch (err) {
          return `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`;
        }
      };
      const trusted = createDefaultContext({ cafile: m.ca.certfile });
      return {
        defaultContext: await attempt({ ssl: true, serverHostname: 'localhost' }),
        trusted: await attempt({ ssl: trusted, serverHostname: 'localhost' }),
        wrongHost: await attempt({ ssl: trusted, serverHostname: 'wrong.example' }),
      };
    });
    assert.match(outcomes.defaultContext, /certificate|issuer|self.signed/i, outcomes.defaultContext);
    assert.equal(outcomes.trusted, 'connected');
    assert.match(outcomes.wrongHost, /host ?name|altnames|does not match|IP|mismatch/i, outcomes.wrongHost);
    t.diagnostic(`ssl: true against an unknown CA → ${outcomes.defaultContext.trim().slice(0, 100)}`);
    t.diagnostic(`trusted CA, wrong host name → ${outcomes.wrongHost.trim().slice(0, 100)}`);
  },
);

test('Unix sockets: the mode asked for, and 0600 by default', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-modes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A permissive umask: the default must not depend on it.
  const previous = process.umask(0o000);
  t.after(() => process.umask(previous));
  const app = createApp({ logger: false, signals: false });
  app.get('/ok', () => 'ok');
  const byDefault = join(dir, 'admin.sock');
  const asked = join(dir, 'group.sock');
  const events = await fileEventsDuring(dir, async () => {
    await app.listen({ unix: [byDefault, { path: asked, mode: 0o660 }] });
  });
  t.after(() => app.close({ deadline: 1 }));
  assert.equal(statSync(byDefault).mode & 0o777, 0o600, 'default mode');
  assert.equal(statSync(asked).mode & 0o777, 0o660, 'the mode asked for');
  // Made with their mode, not chmodded after: under umask 000 a bind then chmod would leave them 0777 a moment.
  assert.deepEqual(events, { 'admin.sock': ['rename'], 'group.sock': ['rename'] }, 'no chmod after the bind');
  t.diagnostic(
    `unix socket modes under umask 000: default ${(statSync(byDefault).mode & 0o777).toString(8)}, asked 660 → 660, ` +
      'each made with its mode (no chmod after the bind)',
  );
});

test('error replies carry no stack trace, internal message or server version', async (t) => {
  const server = await serveLocal(t);
  const requests = [
    'GET /throw HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /throw-async HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n',
    'DELETE /ok HTTP/1.1\r\nHost: x\r\n\r\n',
    'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{',
    'GET /ok HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n',
    `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 ** 30}\r\n\r\n`,
  ];
  for (const data of requests) {
    const c = await RawClient.connect(server.port, t);
    c.write(data);
    const r = await c.response();
    const text = `${r.rawHead}\r\n\r\n${r.body.toString('latin1')}`;
    assert.ok(r.status >= 400, text);
    assert.ok(!text.includes(SECRET), text);
    assert.doesNotMatch(text, /\bat .+\(.+:\d+:\d+\)|\/work\/|node:internal|\.ts:\d+/, text);
    assert.equal(r.headers.server, undefined, 'no Server header');
    assert.equal(r.headers['x-powered-by'], undefined);
    c.destroy();
  }
  const resp = await exchange(server.port, 'GET /throw HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.ok(!resp.received.includes(SECRET));
  t.diagnostic(`${requests.length} error replies checked: no stack, no internal message, no server version`);
});

test('pnpm audit --prod: no high or critical advisory in production dependencies', async (t) => {
  const root = new URL('../..', import.meta.url).pathname;
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('npx', ['--yes', 'pnpm@10.34.9', 'audit', '--prod', '--json'], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: String(e) });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  interface Advisory {
    severity: string;
    module_name: string;
    title: string;
  }
  let report: { advisories?: Record<string, Advisory> } | null;
  try {
    report = JSON.parse(r.stdout) as { advisories?: Record<string, Advisory> };
  } catch {
    report = null;
  }
  if (report === null || report.advisories === undefined) {
    const why = `${r.stdout} ${r.stderr}`.replace(/\s+/g, ' ').trim().slice(0, 300);
    t.skip(`the registry's audit endpoint did not answer (${why || `exit ${r.code}`})`);
    return;
  }
  const found = Object.values(report.advisories);
  const serious = found.filter((a) => a.severity === 'high' || a.severity === 'critical');
  assert.deepEqual(
    serious.map((a) => `${a.severity} ${a.module_name}: ${a.title}`),
    [],
    'high or critical advisories in production dependencies',
  );
  t.diagnostic(`pnpm audit --prod: ${found.length} advisories, none high or critical`);
});
