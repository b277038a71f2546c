/**
 * Server.pauseServing() / resumeServing(): accept backpressure. While paused, the listening sockets stay open and
 * connections wait in the listen queue (or, on a net.Server, held unread by loopwork); resuming accepts them.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { native, sleep } from '@loopwork/server';
import type { BaseEventLoop, Server } from '@loopwork/server';
import { Recorder, portOf, runLoop, settle } from './helpers.js';

type Kind = 'native' | 'net.Server';

/** A server of Recorders on 127.0.0.1, on a native listening socket or on a `net.Server` handed in as `sock`. */
async function recorderServer(
  loop: BaseEventLoop,
  kind: Kind,
  options: { startServing?: boolean; onAccept?: (n: number, server: Server) => void } = {},
): Promise<{ server: Server; port: number; accepted: Recorder[]; nth: (n: number) => Promise<Recorder> }> {
  const accepted: Recorder[] = [];
  const waiting = new Map<number, (p: Recorder) => void>();
  let server: Server | null = null;
  const factory = (): Recorder => {
    const p = new Recorder(loop);
    accepted.push(p);
    options.onAccept?.(accepted.length, server!);
    waiting.get(accepted.length)?.(p);
    return p;
  };
  const serveOptions = options.startServing === undefined ? {} : { startServing: options.startServing };
  if (kind === 'native') {
    server = await loop.createServer(factory, '127.0.0.1', 0, serveOptions);
  } else {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    server = await loop.createServer(factory, { sock: srv, ...serveOptions });
  }
  const nth = (n: number): Promise<Recorder> =>
    accepted.length >= n ? Promise.resolve(accepted[n - 1]!) : new Promise((r) => waiting.set(n, r));
  return { server, port: portOf(server.sockets[0]!.getsockname()), accepted, nth };
}

/** A Node client whose TCP handshake has completed (the kernel queued it, whether or not anyone accepted it). */
async function connected(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => undefined);
  await once(s, 'connect');
  return s;
}

/**
 * Resolves once the loop has certainly had the chance to accept what is queued: a connection to another (serving)
 * server made after `socks` connected has been accepted, and the loop ran a few more iterations.
 */
async function settleAccepts(loop: BaseEventLoop): Promise<void> {
  let made!: () => void;
  const seen = new Promise<void>((r) => (made = r));
  const control = await loop.createServer(
    () => {
      const p = new Recorder(loop);
      made();
      return p;
    },
    '127.0.0.1',
    0,
  );
  const probe = await connected(portOf(control.sockets[0]!.getsockname()));
  await seen;
  for (let i = 0; i < 5; i++) await sleep(0);
  probe.destroy();
  control.close();
  control.abortClients();
  await control.waitClosed();
}

for (const kind of ['native', 'net.Server'] as const) {
  const skip = kind === 'native' && !native.nativeAvailable();

  test(`${kind}: connections queue while paused and are accepted after resumeServing`, { skip }, (t) =>
    runLoop(async (loop) => {
      const { server, port, accepted, nth } = await recorderServer(loop, kind);
      const clients: net.Socket[] = [];
      t.after(() => {
        for (const c of clients) c.destroy();
        server.close();
      });
      server.pauseServing();
      server.pauseServing(); // idempotent
      assert.equal(server.isServing(), true);
      assert.equal(server.isServingPaused(), true);
      for (let i = 0; i < 3; i++) {
        const c = await connected(port);
        c.write(`hello ${i}`);
        clients.push(c);
      }
      await settleAccepts(loop);
      assert.equal(accepted.length, 0, 'nothing accepted while paused');

      server.resumeServing();
      server.resumeServing(); // idempotent
      assert.equal(server.isServingPaused(), false);
      const protos = await Promise.all([nth(1), nth(2), nth(3)]);
      for (const p of protos) await p.received(7);
      assert.deepEqual(protos.map((p) => p.text()).sort(), ['hello 0', 'hello 1', 'hello 2']);

      // Paused again: a new client waits; the ones already accepted go on.
      server.pauseServing();
      const late = await connected(port);
      clients.push(late);
      for (const p of protos) p.tp!.write(Buffer.from('still served'));
      const [echo] = (await once(clients[0]!, 'data')) as [Buffer];
      assert.equal(echo.toString(), 'still served');
      await settleAccepts(loop);
      assert.equal(accepted.length, 3);
      server.resumeServing();
      await settle((await nth(4)).made);

      server.close();
      server.abortClients();
      await server.waitClosed();
      // Closed: pause and resume do nothing.
      server.pauseServing();
      server.resumeServing();
      assert.equal(server.isServingPaused(), false);
    }),
  );

  test(`${kind}: paused before serving starts, serving starts paused`, { skip }, (t) =>
    runLoop(async (loop) => {
      const { server, port, accepted, nth } = await recorderServer(loop, kind, { startServing: false });
      const clients: net.Socket[] = [];
      t.after(() => {
        for (const c of clients) c.destroy();
        server.close();
      });
      server.pauseServing();
      await server.startServing();
      clients.push(await connected(port));
      await settleAccepts(loop);
      assert.equal(accepted.length, 0);
      server.resumeServing();
      await settle((await nth(1)).made);
      server.close();
      server.abortClients();
      await server.waitClosed();
    }),
  );

  test(`${kind}: a protocol factory can pause accepting (a connection limit)`, { skip }, (t) =>
    runLoop(async (loop) => {
      const limit = 2;
      const { server, port, accepted, nth } = await recorderServer(loop, kind, {
        onAccept: (n, s) => {
          if (n >= limit) s.pauseServing();
        },
      });
      const clients: net.Socket[] = [];
      t.after(() => {
        for (const c of clients) c.destroy();
        server.close();
      });
      // All connect at once: one readiness event stands for several queued connections.
      clients.push(...(await Promise.all([0, 1, 2, 3].map(() => connected(port)))));
      await settle((await nth(limit)).made);
      await settleAccepts(loop);
      assert.equal(accepted.length, limit);
      server.resumeServing(); // the factory pauses again at each one past the limit
      await settle((await nth(limit + 1)).made);
      await settleAccepts(loop);
      assert.equal(accepted.length, limit + 1);
      server.resumeServing();
      await settle((await nth(limit + 2)).made);
      server.close();
      server.abortClients();
      await server.waitClosed();
    }),
  );
}
