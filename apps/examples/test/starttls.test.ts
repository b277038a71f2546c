// The STARTTLS example, run as a user runs it: the server as a child process, and three clients talking to it
// (the example's own client, `openssl s_client -starttls smtp`, Python's smtplib).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { makeTestCerts } from '../../../packages/tls/test/helpers/certs.js';
import { startExample } from './run-example.js';
import type { ExampleRun } from './run-example.js';

const certs = makeTestCerts();
let server: ChildProcess | undefined;
let serverDone: Promise<ExampleRun>;
let serverOut = '';
let port = 0;

before(async () => {
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));
  serverDone = startExample(
    'starttls.ts',
    ['server', '--cert', certs.server.certfile, '--key', certs.server.keyfile],
    (all, child) => {
      server = child;
      serverOut = all;
      const m = /listening on 127\.0\.0\.1:(\d+)\n/.exec(all);
      if (m !== null && port === 0) {
        port = Number(m[1]);
        resolveReady();
      }
    },
  );
  await ready;
});

after(() => {
  server?.kill('SIGKILL');
  certs.dispose();
});

function run(
  cmd: string,
  args: string[],
  input = '',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

test("the example's client: plain EHLO, STARTTLS, then commands over TLS", async () => {
  const r = await startExample('starttls.ts', [
    ...['client', '--port', String(port), '--cafile', certs.ca.certfile, 'hello', 'world'],
  ]);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  const lines = r.stdout.trimEnd().split('\n');
  assert.deepEqual(lines.slice(0, 7), [
    'S: 220 loopwork ESMTP ready',
    'C: EHLO loopwork-client',
    'S: 250-loopwork greets loopwork-client',
    'S: 250-STARTTLS',
    'S: 250 HELP',
    'C: STARTTLS',
    'S: 220 2.0.0 Ready to start TLS',
  ]);
  assert.match(lines[7] ?? '', /^-- TLS established: TLSv1\.3 TLS_/);
  assert.deepEqual(lines.slice(8), [
    'C: EHLO loopwork-client',
    'S: 250-loopwork greets loopwork-client',
    'S: 250 HELP',
    'C: ECHO hello',
    'S: 250 hello',
    'C: ECHO world',
    'S: 250 world',
    'C: QUIT',
    'S: 221 2.0.0 Bye',
  ]);
});

test('openssl s_client -starttls smtp upgrades and talks over TLS', async () => {
  const r = await run(
    'openssl',
    [
      ...['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-CAfile', certs.ca.certfile],
      ...['-verify_return_error', '-crlf', '-ign_eof', '-brief'],
    ],
    'ECHO via openssl\nQUIT\n',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Verification: OK/);
  assert.match(r.stderr, /Protocol version: TLSv1\.3/);
  assert.match(r.stdout, /250 via openssl\r?\n/);
  assert.match(r.stdout, /221 2\.0\.0 Bye/);
});

test("Python's smtplib: starttls(), then ECHO over TLS; before TLS, ECHO is refused", async () => {
  const script = `
import smtplib, ssl, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s._host = 'localhost'  # the name the certificate is checked against
print(s.docmd('ECHO', 'too early'))
print(s.starttls(context=ssl.create_default_context(cafile=sys.argv[2])))
print(s.ehlo())
print(s.docmd('ECHO', 'from smtplib'))
print(s.quit())
`;
  const r = await run('python3', ['-c', script, String(port), certs.ca.certfile]);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.deepEqual(r.stdout.trimEnd().split('\n'), [
    "(530, b'5.7.0 Must issue a STARTTLS command first')",
    "(220, b'2.0.0 Ready to start TLS')",
    "(250, b'loopwork greets [127.0.0.1]\\nHELP')",
    "(250, b'from smtplib')",
    "(221, b'2.0.0 Bye')",
  ]);
});

test('SIGTERM stops the server cleanly: exit code 0, nothing on stderr', async () => {
  server?.kill('SIGTERM');
  const r = await serverDone;
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(serverOut.length > 0, true);
  assert.equal((r.stdout.match(/TLS established: TLSv1\.3/g) ?? []).length, 3);
  assert.match(r.stdout, /stopped\n$/);
});
