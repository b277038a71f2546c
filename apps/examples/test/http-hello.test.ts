import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { test } from 'node:test';
import request from 'supertest';
import { startExample } from './run-example.js';

test('http-hello serves JSON, validates with zod, and drains on SIGTERM with exit code 0', async (t) => {
  let child: ChildProcess | undefined;
  let resolveUrl!: (url: string) => void;
  const urlP = new Promise<string>((r) => (resolveUrl = r));
  const run = startExample('http-hello.ts', ['0'], (out, c) => {
    child = c;
    const m = /^http-hello listening on (http:\/\/\S+)$/m.exec(out);
    if (m) resolveUrl(m[1]!);
  });
  t.after(() => child?.kill('SIGKILL'));
  const url = await Promise.race([urlP, run.then((r) => Promise.reject(new Error(`exited early: ${r.stderr}`)))]);
  assert.deepEqual((await request(url).get('/').expect(200)).body, { hello: 'world' });
  const greet = await request(url).get('/greet/Ada?times=2').expect(200);
  assert.deepEqual(greet.body, { greeting: 'Hello, Ada! Hello, Ada!' });
  const bad = await request(url).get('/greet/Ada?times=9').expect(400);
  assert.deepEqual(
    bad.body.issues.map((i: { path: string[] }) => i.path),
    [['querystring', 'times']],
  );
  await request(url).get('/readyz').expect(200);
  assert.match((await request(url).get('/metrics').expect(200)).text, /http_requests_total/);
  child!.kill('SIGTERM');
  const r = await run;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /received SIGTERM: draining/);
});
