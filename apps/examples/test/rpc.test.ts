// The length-prefixed JSON RPC example run as a user runs it: the server as a child process on a free port, its own
// client CLI as another, and a raw socket client sending frames.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { examplePath } from './run-example.js';
import { SocketClient, run, startServer } from './example-server.js';

function frame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}

test('rpc: the client CLI calls methods; raw frames pipeline; errors are answered; SIGTERM exits 0', async (t) => {
  const server = startServer(t, 'rpc.ts', ['server', '--port', '0']);
  const port = Number((await server.waitFor(/rpc listening on tcp:\/\/127\.0\.0\.1:(\d+)/))[1]);
  const client = (...args: string[]): ReturnType<typeof run> =>
    run(process.execPath, [
      '--conditions=loopwork-source',
      '--import',
      'tsx',
      examplePath('rpc.ts'),
      'client',
      '--port',
      String(port),
      ...args,
    ]);

  const add = await client('add', '{"a":40,"b":2}');
  assert.equal(add.code, 0, add.stderr);
  assert.equal(add.stdout, '{"id":1,"result":42}\n');
  const count = await client('count', '{"to":3}');
  assert.equal(count.code, 0, count.stderr);
  assert.equal(
    count.stdout,
    '{"id":1,"progress":1}\n{"id":1,"progress":2}\n{"id":1,"progress":3}\n{"id":1,"result":3}\n',
  );
  const divide = await client('divide', '{"a":1,"b":0}');
  assert.equal(divide.code, 1);
  assert.equal(divide.stdout, '{"id":1,"error":"CommandError","message":"division by zero"}\n');

  const c = new SocketClient(t, { port });
  c.write(
    Buffer.concat([
      frame({ id: 'slow', method: 'sleep', params: { seconds: 0.05 } }),
      frame({ id: 2, method: 'echo', params: ['x', 1] }),
      frame({ id: 3, method: 'add', params: { a: 'one' } }),
      frame({ id: 4, method: 'crash' }),
      frame({ id: 5, method: 'nope' }),
      frame({ method: 'add' }),
    ]),
  );
  // Answers come in the order of the requests, even behind a slow one.
  assert.deepEqual(await c.frame(), { id: 'slow', result: 'slept' });
  assert.deepEqual(await c.frame(), { id: 2, result: ['x', 1] });
  const invalid = await c.frame();
  assert.equal(invalid.id, 3);
  assert.equal(invalid.error, 'MessageValidationError');
  assert.deepEqual(
    (invalid.issues as { path: string[] }[]).map((i) => i.path.join('.')),
    ['params.a', 'params.b'],
  );
  assert.deepEqual(await c.frame(), { id: 4, error: 'InternalError', message: 'Internal error' });
  assert.deepEqual(await c.frame(), { id: 5, error: 'CommandError', message: "Unknown method 'nope'" });
  const envelope = await c.frame();
  assert.equal(envelope.error, 'MessageValidationError');

  // The bug in `crash` is logged with its stack, as one JSON line; the client saw none of it.
  await server.waitFor(/"msg":"Error in message handler"/);
  assert.match(server.stdout, /"command":"crash".*a bug in the crash method/);

  // A frame announcing more than the limit: the error frame, then that connection is closed.
  const header = Buffer.alloc(4);
  header.writeUInt32BE(64 * 1024 * 1024);
  c.write(header);
  const tooLong = await c.frame();
  assert.equal(tooLong.error, 'FrameTooLongError');
  await c.closed();

  const after = await client('echo', '"still serving"');
  assert.equal(after.stdout, '{"id":1,"result":"still serving"}\n');
  // A command-line tool's errors: one line each, no stack trace.
  const badJson = await client('echo', '{not json');
  assert.equal(badJson.code, 2);
  assert.match(badJson.stderr, /^PARAMS_JSON is not JSON: /);
  assert.doesNotMatch(badJson.stderr, /\n\s+at /);

  server.child.kill('SIGTERM');
  const { code } = await server.exited;
  assert.equal(code, 0, server.stderr);
  const refused = await client('echo', '"anyone?"');
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    new RegExp(`^cannot connect to 127\\.0\\.0\\.1:${port}: \\[Errno 111\\] Connect call failed`),
  );
  assert.doesNotMatch(refused.stderr, /\n\s+at /);
});
