// The chat example run as a user runs it: a child process on a free port, and line clients (as nc or socat would
// be) that join, choose nicks, talk, and leave.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { SocketClient, hasCommand, run, startServer } from './example-server.js';

async function join(t: TestContext, port: number): Promise<[SocketClient, string]> {
  const c = new SocketClient(t, { port });
  const welcome = await c.line();
  const m = /^\* welcome to loopwork chat, (guest\d+); \/help for commands$/.exec(welcome);
  assert.ok(m, welcome);
  return [c, m[1]!];
}

test('chat: nicks, broadcast, /who, /me, errors, /quit; SIGTERM exits 0', async (t) => {
  const server = startServer(t, 'chat.ts', ['--port', '0']);
  const port = Number((await server.waitFor(/chat listening on tcp:\/\/127\.0\.0\.1:(\d+)/))[1]);

  const [ada, adaGuest] = await join(t, port);
  const [bob, bobGuest] = await join(t, port);
  assert.equal(await ada.line(), `* ${bobGuest} joined`);

  ada.write(`/nick ada\n`);
  assert.equal(await ada.line(), '* you are now ada');
  assert.equal(await bob.line(), `* ${adaGuest} is now ada`);
  bob.write('/nick ADA\n/nick not a nick\n/nick b@d\n/nick bob\n');
  assert.equal(await bob.line(), '* error: nick ADA is taken');
  assert.match(await bob.line(), /^\* error: Invalid arguments for 'nick': /);
  assert.equal(await bob.line(), "* error: Invalid arguments for 'nick': 0: a nick is 1-24 letters, digits, _ or -");
  assert.equal(await bob.line(), '* you are now bob');
  assert.equal(await ada.line(), `* ${bobGuest} is now bob`);

  // A line is said to everyone else, not echoed back.
  ada.write('hello, bob\r\n');
  assert.equal(await bob.line(), '<ada> hello, bob');
  bob.write('/me waves\n/who\n/dance\n');
  assert.equal(await ada.line(), '* bob waves');
  assert.equal(await bob.line(), '* 2 here: ada, bob');
  assert.equal(await bob.line(), '* unknown command /dance; /help for the list');
  bob.write('/help\n');
  assert.equal(await bob.line(), '* commands:');

  // A line longer than the limit: an error line, and only that client is disconnected.
  const [eve] = await join(t, port);
  assert.match(await ada.line(), /^\* guest\d+ joined$/);
  eve.write(`${'x'.repeat(5000)}\n`);
  assert.equal(await eve.upTo('\n'), '* error: Line is longer than maxLength (2048 bytes)\n');
  await eve.closed();
  assert.match(await ada.line(), /^\* guest\d+ left$/);

  bob.write('/quit see you\n');
  await bob.upTo('* bye\n');
  await bob.closed();
  assert.equal(await ada.line(), '* bob left (see you)');

  if (hasCommand('socat')) {
    // socat as a client: it sends its line and reads what comes until the server closes.
    const r = await run('socat', ['-', `TCP:127.0.0.1:${port}`], '/nick sock\n/quit\n');
    assert.match(r.stdout, /\* you are now sock\n\* bye\n/);
  }

  server.child.kill('SIGTERM');
  const { code } = await server.exited;
  assert.equal(code, 0, server.stderr);
  await ada.closed();
});
