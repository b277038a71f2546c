/**
 * Which transport the loop's connection methods use: FdTransport (straight on the fd) for plain TCP and Unix
 * connections when the native addon is available, SocketTransport (net.Socket) with LOOPWORK_TRANSPORT=socket.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { AF_INET, FdTransport, SOCK_STREAM, SocketTransport, native } from '@loopwork/server';
import type { BaseEventLoop, Server, Transport } from '@loopwork/server';
import { Recorder, portOf, runLoop, settle } from './helpers.js';

const skip = !native.nativeAvailable();

/** Runs `fn` with LOOPWORK_TRANSPORT set to `value` (undefined: unset). */
async function withTransportEnv<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.LOOPWORK_TRANSPORT;
  if (value === undefined) delete process.env.LOOPWORK_TRANSPORT;
  else process.env.LOOPWORK_TRANSPORT = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.LOOPWORK_TRANSPORT;
    else process.env.LOOPWORK_TRANSPORT = saved;
  }
}

/** A server of Recorders; resolves the first accepted protocol. */
async function recorders(
  loop: BaseEventLoop,
  listen: (factory: () => Recorder) => Promise<Server>,
): Promise<{ server: Server; first: Promise<Recorder> }> {
  let resolveFirst!: (p: Recorder) => void;
  const first = new Promise<Recorder>((r) => (resolveFirst = r));
  const server = await listen(() => {
    const p = new Recorder(loop);
    resolveFirst(p);
    return p;
  });
  return { server, first };
}

/** Both ends of one connection: the server's transport and the client's, after a round of bytes. */
async function bothEnds(
  t: TestContext,
  loop: BaseEventLoop,
  unix: boolean,
): Promise<{ server: Transport; client: Transport }> {
  let path = '';
  if (unix) {
    const dir = mkdtempSync(join(tmpdir(), 'loopwork-choice-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    path = join(dir, 's.sock');
  }
  const { server, first } = await recorders(loop, (f) =>
    unix ? loop.createUnixServer(f, path) : loop.createServer(f, '127.0.0.1', 0),
  );
  const cp = new Recorder(loop);
  const [client] = unix
    ? await loop.createUnixConnection(() => cp, path)
    : await loop.createConnection(() => cp, '127.0.0.1', portOf(server.sockets[0]!.getsockname()));
  const sp = await first;
  const st = await settle(sp.made);
  client.write(Buffer.from('ping'));
  await sp.received(4);
  st.write(Buffer.from('pong'));
  await cp.received(4);
  client.close();
  await settle(sp.lost);
  await settle(cp.lost);
  server.close();
  await server.waitClosed();
  return { server: st, client };
}

for (const unix of [false, true]) {
  const kind = unix ? 'Unix' : 'TCP';

  test(`${kind}: FdTransport on both ends by default`, { skip }, (t) =>
    withTransportEnv(undefined, () =>
      runLoop(async (loop) => {
        const { server, client } = await bothEnds(t, loop, unix);
        assert.ok(server instanceof FdTransport, `server side: ${server.constructor.name}`);
        assert.ok(client instanceof FdTransport, `client side: ${client.constructor.name}`);
      }),
    ),
  );

  test(`${kind}: SocketTransport on both ends with LOOPWORK_TRANSPORT=socket`, (t) =>
    withTransportEnv('socket', () =>
      runLoop(async (loop) => {
        const { server, client } = await bothEnds(t, loop, unix);
        assert.ok(server instanceof SocketTransport, `server side: ${server.constructor.name}`);
        assert.ok(client instanceof SocketTransport, `client side: ${client.constructor.name}`);
      }),
    ));
}

test('connectAcceptedSocket and createConnection({sock}) keep a native fd on its fd', { skip }, () =>
  withTransportEnv(undefined, () =>
    runLoop(async (loop) => {
      const lfd = native.socket(AF_INET, SOCK_STREAM);
      native.bind(lfd, ['127.0.0.1', 0]);
      native.listen(lfd, 4);
      const port = (native.getsockname(lfd) as [string, number])[1];
      try {
        const cfd = native.socket(AF_INET, SOCK_STREAM);
        native.connect(cfd, ['127.0.0.1', port]);
        let accepted: [number, unknown] | null = null;
        while (accepted === null) {
          accepted = native.accept(lfd);
          if (accepted === null) await new Promise((r) => setImmediate(r));
        }
        const sp = new Recorder(loop);
        const cp = new Recorder(loop);
        const [st] = await loop.connectAcceptedSocket(() => sp, accepted[0]);
        const [ct] = await loop.createConnection(() => cp, { sock: cfd });
        assert.ok(st instanceof FdTransport);
        assert.ok(ct instanceof FdTransport);
        ct.write(Buffer.from('hello'));
        await sp.received(5);
        assert.equal(sp.text(), 'hello');
        st.close();
        assert.equal(await settle(cp.lost), null);
        await settle(sp.lost);
      } finally {
        native.close(lfd);
      }
    }),
  ),
);
