import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startExample } from './run-example.js';

test('hello world with callSoon prints once and exits 0', async () => {
  const r = await startExample('hello-world.ts');
  assert.equal(r.stdout, 'Hello World\n');
  assert.equal(r.code, 0);
});

test('the date printer prints the date every interval until the end time', async () => {
  const r = await startExample('date-printer.ts', ['1', '0.2']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.ok(lines.length >= 4 && lines.length <= 6, `got ${lines.length} lines`);
  const times = lines.map((l) => Date.parse(l));
  assert.ok(times.every((t) => Number.isFinite(t)));
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 190, 'about 0.2 s apart');
});

test('the flagship starts, prints its addresses, and stops on Ctrl-C (SIGINT) with exit code 0', async () => {
  let sent = false;
  const state = mkdtempSync(join(tmpdir(), 'loopwork-flagship-'));
  try {
    const r = await startExample('flagship.ts', ['--port', '0', '--no-tls', '--state-dir', state], (out, child) => {
      if (!sent && out.includes('Ctrl-C to stop')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    assert.match(r.stdout, /^ {2}http\s+http:\/\/127\.0\.0\.1:\d+/m);
    assert.match(r.stdout, /^ {2}resp\s+tcp:\/\/127\.0\.0\.1:\d+/m);
    assert.match(r.stdout, /^ {2}admin\s+unix:/m);
    assert.match(r.stdout, /received SIGINT: draining/);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
