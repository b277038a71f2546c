import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  accept,
  bind,
  close,
  connect,
  constants as C,
  DISCONNECT,
  getBlocking,
  getpeername,
  getSocketError,
  getSocketFamily,
  getSocketType,
  getsockname,
  getsockopt,
  listen,
  nativeAvailable,
  pageOffset,
  pipe,
  pollStart,
  pollStop,
  pollUpdate,
  type PollHandle,
  read,
  READABLE,
  recv,
  recvfrom,
  send,
  sendfile,
  sendto,
  setBlocking,
  setsockopt,
  shutdown,
  socket,
  socketpair,
  systemError,
  write,
  WRITABLE,
  writev,
  type SendfileError,
  type IPv6Address,
  type SystemError,
} from '../src/native.js';
import { InvalidArgTypeError, ValueError } from '../src/errors.js';

const nativeUrl = new URL('../src/native.ts', import.meta.url).href;
const tsxApiUrl = import.meta.resolve('tsx/esm/api');

/** Closes the fds when the test ends, ignoring those already closed. */
function track(t: TestContext, ...fds: number[]): number[] {
  t.after(() => {
    for (const fd of fds) {
      try {
        close(fd);
      } catch {
        // closed by the test itself
      }
    }
  });
  return fds;
}

/** Resolves with the ready events the first time `fd` is ready for `events`, then stops polling. */
function ready(fd: number, events: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const h = pollStart(fd, events, (status, got) => {
      pollStop(h);
      if (status < 0) reject(systemError(-status, 'uv_poll'));
      else resolve(got);
    });
  });
}

/** Reads exactly `total` bytes from a non-blocking socket or pipe, polling for readability. */
function readAll(fd: number, total: number, useRecv = true): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(256 * 1024);
  let got = 0;
  return new Promise((resolve, reject) => {
    const h = pollStart(fd, READABLE, (status) => {
      if (status < 0) {
        pollStop(h);
        reject(systemError(-status, 'uv_poll'));
        return;
      }
      for (;;) {
        const n = useRecv ? recv(fd, buf) : read(fd, buf);
        if (n === -1) return;
        if (n === 0) {
          pollStop(h);
          reject(new Error(`EOF after ${got} of ${total} bytes`));
          return;
        }
        chunks.push(Buffer.from(buf.subarray(0, n)));
        got += n;
        if (got >= total) {
          pollStop(h);
          resolve(Buffer.concat(chunks));
          return;
        }
      }
    });
  });
}

/** A listening TCP socket on 127.0.0.1 and a connected, accepted pair. */
async function tcpPair(t: TestContext): Promise<{ server: number; client: number; peer: number; port: number }> {
  const [server] = track(t, socket(C.AF_INET, C.SOCK_STREAM));
  setsockopt(server!, C.SOL_SOCKET, C.SO_REUSEADDR, true);
  bind(server!, ['127.0.0.1', 0]);
  listen(server!);
  const port = (getsockname(server!) as [string, number])[1];
  const [client] = track(t, socket(C.AF_INET, C.SOCK_STREAM));
  if (connect(client!, ['127.0.0.1', port]) === 1) {
    await ready(client!, WRITABLE);
    assert.equal(getSocketError(client!), 0);
  }
  let accepted = accept(server!);
  while (accepted === null) {
    await ready(server!, READABLE);
    accepted = accept(server!);
  }
  track(t, accepted[0]);
  return { server: server!, client: client!, peer: accepted[0], port };
}

/** Runs an ES module snippet in a child Node (TypeScript through tsx). */
function runChild(code: string, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', code],
      { env, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(new Error(`${err.message}\n${stderr}`));
        else resolve({ code: err ? Number(err.code) : 0, stdout });
      },
    );
  });
}

function tempFile(t: TestContext, bytes: Buffer): number {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-native-'));
  const path = join(dir, 'data.bin');
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r');
  t.after(() => {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  return fd;
}

function sendfileP(outFd: number, inFd: number, offset: number | null, count: number): Promise<number> {
  return new Promise((resolve, reject) => {
    sendfile(outFd, inFd, offset, count, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

test('the addon is built and loads', () => {
  assert.equal(nativeAvailable(), true);
  assert.equal(C.AF_INET, 2);
  assert.equal(typeof C.SO_REUSEPORT, 'number');
});

test('poll a pipe for readability and writability', async (t) => {
  const [r, w] = track(t, ...pipe());
  assert.equal(getBlocking(r!), false);
  assert.equal((await ready(w!, WRITABLE)) & WRITABLE, WRITABLE);
  const readable = ready(r!, READABLE);
  assert.equal(write(w!, Buffer.from('hello')), 5);
  assert.equal((await readable) & READABLE, READABLE);
  const buf = Buffer.alloc(16);
  assert.equal(read(r!, buf), 5);
  assert.equal(buf.toString('utf8', 0, 5), 'hello');
  assert.equal(read(r!, buf), -1, 'EAGAIN is the sentinel -1');
  close(w!);
  assert.equal(read(r!, buf), 0, 'EOF');
});

test('pollUpdate pauses and resumes; pollStop stops callbacks', async (t) => {
  const [, w] = track(t, ...pipe());
  let calls = 0;
  await new Promise<void>((resolve) => {
    const h = pollStart(w!, WRITABLE, () => {
      calls++;
      if (calls === 1) {
        pollUpdate(h, 0);
        setImmediate(() => {
          assert.equal(calls, 1, 'a paused poll is silent');
          pollUpdate(h, WRITABLE);
        });
      } else {
        pollStop(h);
        pollStop(h); // idempotent
        assert.throws(() => pollUpdate(h, READABLE), ValueError);
        resolve();
      }
    });
  });
  // A writable pipe would fire on every loop iteration: a few iterations prove the stop.
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(calls, 2);
});

test('the poll callbacks of one loop turn run back to back, then microtasks and ticks, then immediates', async (t) => {
  const [r1, w1] = track(t, ...pipe());
  const [r2, w2] = track(t, ...pipe());
  const order: string[] = [];
  const done = new Promise<void>((resolve) => {
    const onReady = (name: string, h: () => PollHandle) => () => {
      pollStop(h());
      order.push(name);
      void Promise.resolve().then(() => order.push(`microtask ${name}`));
      process.nextTick(() => order.push(`tick ${name}`));
      setImmediate(() => {
        order.push(`immediate ${name}`);
        if (name === 'second') resolve();
      });
    };
    const h1: PollHandle = pollStart(
      r1!,
      READABLE,
      onReady('first', () => h1),
    );
    const h2: PollHandle = pollStart(
      r2!,
      READABLE,
      onReady('second', () => h2),
    );
  });
  // Both fds are ready before the loop polls: one poll phase sees both.
  write(w1!, Buffer.from('x'));
  write(w2!, Buffer.from('x'));
  await done;
  assert.deepEqual(new Set(order.slice(0, 2)), new Set(['first', 'second']));
  const [a, b] = order.slice(0, 2) as [string, string];
  assert.deepEqual(order, [
    a,
    b,
    `tick ${a}`,
    `tick ${b}`,
    `microtask ${a}`,
    `microtask ${b}`,
    `immediate ${a}`,
    `immediate ${b}`,
  ]);
});

test("a poll callback runs in the dispatcher's async context; AsyncResource.bind keeps the caller's", async (t) => {
  const [r1, w1] = track(t, ...pipe());
  const [r2, w2] = track(t, ...pipe());
  const als = new AsyncLocalStorage<string>();
  const stores: string[] = [];
  const done = new Promise<void>((resolve) => {
    als.run('caller', () => {
      const plain = pollStart(r1!, READABLE, () => {
        pollStop(plain);
        stores.push(`plain=${als.getStore() ?? 'none'}`);
      });
      const bound = pollStart(
        r2!,
        READABLE,
        AsyncResource.bind(() => {
          pollStop(bound);
          stores.push(`bound=${als.getStore() ?? 'none'}`);
          setImmediate(resolve);
        }),
      );
    });
  });
  (globalThis as { gc?: () => void }).gc?.();
  write(w1!, Buffer.from('x'));
  write(w2!, Buffer.from('x'));
  await done;
  assert.deepEqual(stores.sort(), ['bound=caller', 'plain=none']);
});

test('an event queued for a poll stopped or paused earlier in the same turn is dropped', async (t) => {
  const [r1, w1] = track(t, ...pipe());
  const [r2, w2] = track(t, ...pipe());
  const [r3, w3] = track(t, ...pipe());
  const calls: string[] = [];
  let h1: PollHandle | null = null;
  let h2: PollHandle | null = null;
  let h3: PollHandle | null = null;
  // Whichever runs first stops or pauses the other two, whose events are already queued.
  const first = (name: string) => () => {
    calls.push(name);
    for (const h of [h1, h2, h3]) if (h !== null) pollStop(h);
    h1 = h2 = h3 = null;
  };
  h1 = pollStart(r1!, READABLE, first('1'));
  h2 = pollStart(r2!, READABLE, first('2'));
  h3 = pollStart(r3!, READABLE, first('3'));
  write(w1!, Buffer.from('x'));
  write(w2!, Buffer.from('x'));
  write(w3!, Buffer.from('x'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(calls.length, 1, `called: ${calls.join(', ')}`);
  // Paused (events 0) the same way: nothing is delivered for it until it asks again.
  const [r4, w4] = track(t, ...pipe());
  const [r5, w5] = track(t, ...pipe());
  const got: string[] = [];
  const h5: PollHandle = pollStart(r5!, READABLE, () => got.push('5'));
  const h4: PollHandle = pollStart(r4!, READABLE, () => {
    got.push('4');
    pollStop(h4);
    pollUpdate(h5, 0);
  });
  t.after(() => pollStop(h5));
  write(w4!, Buffer.from('x'));
  write(w5!, Buffer.from('x'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  // Whichever ran first: 5 ran only if it came before 4 in the turn, and never after being paused.
  assert.ok(got[0] === '4' ? got.join() === '4' : got.join() === '5,4', got.join());
});

test('pollStop and pollUnref let the process exit', async () => {
  const stopped = await runChild(`
    import * as n from ${JSON.stringify(nativeUrl)};
    const [r, w] = n.pipe();
    const h = n.pollStart(r, n.READABLE, (status, events) => {
      n.pollStop(h);
      n.close(r);
      n.close(w);
      console.log('events', events);
    });
    n.write(w, Buffer.from('x'));
  `);
  assert.deepEqual(stopped, { code: 0, stdout: 'events 1\n' });
  // An unref'd poll that never fires, and a live one left to the env teardown, do not hold the process.
  const unrefd = await runChild(`
    import * as n from ${JSON.stringify(nativeUrl)};
    const [r] = n.pipe();
    n.pollUnref(n.pollStart(r, n.READABLE, () => {}));
    console.log('started');
  `);
  assert.deepEqual(unrefd, { code: 0, stdout: 'started\n' });
});

test("two copies of the module in one thread share the addon's dispatcher", async () => {
  const child = await runChild(`
    const a = await import(${JSON.stringify(nativeUrl)});
    const b = await import(${JSON.stringify(nativeUrl + '?copy')});
    if (a === b) throw new Error('not two copies');
    const got = [];
    for (const [name, n] of [['a', a], ['b', b]]) {
      const [r, w] = n.pipe();
      const h = n.pollStart(r, n.READABLE, () => {
        n.pollStop(h);
        n.close(r);
        n.close(w);
        got.push(name);
        if (got.length === 2) console.log(got.sort().join(','));
      });
      n.write(w, Buffer.from('x'));
    }
  `);
  assert.deepEqual(child, { code: 0, stdout: 'a,b\n' });
});

test('a throw in a poll callback is an uncaught exception', async () => {
  const child = await runChild(`
    import * as n from ${JSON.stringify(nativeUrl)};
    const [r, w] = n.pipe();
    process.on('uncaughtException', (err) => {
      console.log('caught', err.message);
      n.pollStop(h);
    });
    const h = n.pollStart(r, n.READABLE, () => {
      throw new Error('boom');
    });
    n.write(w, Buffer.from('x'));
  `);
  assert.deepEqual(child, { code: 0, stdout: 'caught boom\n' });
});

test('without the addon every function throws NativeUnavailableError', async () => {
  const child = await runChild(
    `
    import * as n from ${JSON.stringify(nativeUrl)};
    const errors = [];
    for (const f of [() => n.pipe(), () => n.socket(2, 1), () => n.constants.AF_INET]) {
      try { f(); } catch (err) { errors.push({ name: err.name, code: err.code, message: err.message }); }
    }
    console.log(JSON.stringify({ available: n.nativeAvailable(), errors }));
  `,
    { ...process.env, LOOPWORK_NATIVE: '0' },
  );
  assert.equal(child.code, 0);
  const { available, errors } = JSON.parse(child.stdout) as {
    available: boolean;
    errors: { name: string; code: string; message: string }[];
  };
  assert.equal(available, false);
  assert.equal(errors.length, 3);
  for (const err of errors) {
    assert.equal(err.name, 'NativeUnavailableError');
    assert.equal(err.code, 'ERR_LOOPWORK_NATIVE_UNAVAILABLE');
    assert.match(err.message, /disabled by LOOPWORK_NATIVE=0/);
    assert.match(err.message, /the rest of loopwork still works/);
  }
});

test('an fd cannot be polled twice (one libuv watcher per fd)', (t) => {
  const [r] = track(t, ...pipe());
  const h = pollStart(r!, READABLE, () => {});
  t.after(() => pollStop(h));
  assert.throws(() => pollStart(r!, READABLE, () => {}), { code: 'EEXIST', syscall: 'uv_poll_init' });
});

test('socketpair round trip with send, recv and writev', async (t) => {
  const [a, b] = track(t, ...socketpair());
  assert.equal(getSocketFamily(a!), C.AF_UNIX);
  assert.equal(getSocketType(a!), C.SOCK_STREAM);
  assert.equal(send(a!, Buffer.from('ping')), 4);
  assert.deepEqual(await readAll(b!, 4), Buffer.from('ping'));
  assert.equal(writev(b!, [Buffer.from('po'), new Uint8Array([110, 103]), Buffer.alloc(0)]), 4);
  assert.deepEqual(await readAll(a!, 4), Buffer.from('pong'));
  const buf = Buffer.alloc(8);
  assert.equal(recv(a!, buf), -1, 'EAGAIN is the sentinel -1');
  assert.equal(send(a!, Buffer.from('xyz'), 1, 2), 2);
  await ready(b!, READABLE);
  assert.equal(recv(b!, buf, 0, 8, C.MSG_PEEK), 2);
  assert.equal(recv(b!, buf, 4, 4), 2);
  assert.equal(buf.toString('utf8', 4, 6), 'yz');
  shutdown(a!, C.SHUT_WR);
  await ready(b!, READABLE);
  assert.equal(recv(b!, buf), 0, 'EOF after shutdown');
  assert.throws(() => recv(b!, buf, 4, 5), ValueError, 'out of bounds');
});

test("pageOffset: where a view's first byte lies modulo 4096", () => {
  const buf = Buffer.allocUnsafeSlow(3 * 4096);
  const base = pageOffset(buf);
  assert.ok(Number.isInteger(base) && base >= 0 && base < 4096);
  for (const k of [1, 48, 4095, 4096, 5000]) {
    assert.equal(pageOffset(buf.subarray(k)), (base + k) % 4096);
    assert.equal(pageOffset(new Uint32Array(buf.buffer, buf.byteOffset + (k & ~3))), (base + (k & ~3)) % 4096);
  }
  assert.throws(() => pageOffset('nope' as unknown as Buffer), TypeError);
});

test('blocking mode can be read and changed', (t) => {
  const [a] = track(t, ...socketpair());
  assert.equal(getBlocking(a!), false);
  setBlocking(a!, true);
  assert.equal(getBlocking(a!), true);
  setBlocking(a!, false);
  assert.equal(getBlocking(a!), false);
});

test('raw TCP: listen, accept, connect, names and TCP_NODELAY', async (t) => {
  const { server, client, peer, port } = await tcpPair(t);
  assert.ok(port > 0);
  assert.deepEqual(getsockname(server), ['127.0.0.1', port]);
  assert.deepEqual(getpeername(client), ['127.0.0.1', port]);
  assert.deepEqual(getpeername(peer), getsockname(client));
  assert.equal(getSocketType(peer), C.SOCK_STREAM);
  assert.equal(getSocketFamily(peer), C.AF_INET);
  assert.equal(getBlocking(peer), false, 'accepted sockets are non-blocking');
  assert.equal(accept(server), null, 'EAGAIN is the sentinel null');
  assert.equal(getsockopt(client, C.IPPROTO_TCP, C.TCP_NODELAY), 0);
  setsockopt(client, C.IPPROTO_TCP, C.TCP_NODELAY, true);
  assert.notEqual(getsockopt(client, C.IPPROTO_TCP, C.TCP_NODELAY), 0);
  const data = randomBytes(100_000);
  const received = readAll(peer, data.length);
  let sent = 0;
  while (sent < data.length) {
    const n = send(client, data, sent, data.length - sent);
    if (n === -1) await ready(client, WRITABLE);
    else sent += n;
  }
  assert.deepEqual(await received, data);
});

test('SO_REUSEPORT lets two sockets bind the same port', (t) => {
  const [a, b] = track(t, socket(C.AF_INET, C.SOCK_STREAM), socket(C.AF_INET, C.SOCK_STREAM));
  setsockopt(a!, C.SOL_SOCKET, C.SO_REUSEPORT, 1);
  setsockopt(b!, C.SOL_SOCKET, C.SO_REUSEPORT, 1);
  assert.equal(getsockopt(b!, C.SOL_SOCKET, C.SO_REUSEPORT), 1);
  bind(a!, ['127.0.0.1', 0]);
  listen(a!);
  const port = (getsockname(a!) as [string, number])[1];
  bind(b!, ['127.0.0.1', port]);
  listen(b!);
  assert.deepEqual(getsockname(b!), ['127.0.0.1', port]);
});

async function unixRoundTrip(t: TestContext, address: string | Buffer): Promise<void> {
  const [server] = track(t, socket(C.AF_UNIX, C.SOCK_STREAM));
  bind(server!, address);
  listen(server!);
  assert.deepEqual(getsockname(server!), address);
  const [client] = track(t, socket(C.AF_UNIX, C.SOCK_STREAM));
  if (connect(client!, address) === 1) await ready(client!, WRITABLE);
  assert.deepEqual(getpeername(client!), address);
  let accepted = accept(server!);
  while (accepted === null) {
    await ready(server!, READABLE);
    accepted = accept(server!);
  }
  const [peer, peerAddress] = accepted;
  track(t, peer);
  assert.equal(peerAddress, '', 'an unbound client is unnamed');
  assert.equal(getsockname(client!), '');
  send(client!, Buffer.from('unix'));
  assert.deepEqual(await readAll(peer, 4), Buffer.from('unix'));
}

test('Unix stream socket on a path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-native-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await unixRoundTrip(t, join(dir, 's.sock'));
  assert.throws(() => bind(socket(C.AF_UNIX, C.SOCK_STREAM), 'x'.repeat(200)), ValueError);
});

test('Unix stream socket on an abstract name', async (t) => {
  await unixRoundTrip(t, Buffer.from(`\0loopwork-test-${process.pid}-${randomBytes(4).toString('hex')}`));
});

test('UDP sendto and recvfrom', async (t) => {
  const [a, b] = track(t, socket(C.AF_INET, C.SOCK_DGRAM), socket(C.AF_INET, C.SOCK_DGRAM));
  bind(a!, ['127.0.0.1', 0]);
  bind(b!, ['127.0.0.1', 0]);
  const buf = Buffer.alloc(64);
  assert.equal(recvfrom(b!, buf), null, 'EAGAIN is the sentinel null');
  assert.equal(sendto(a!, Buffer.from('datagram'), 0, 8, getsockname(b!)!), 8);
  await ready(b!, READABLE);
  const got = recvfrom(b!, buf);
  assert.ok(got);
  assert.equal(got[0], 8);
  assert.deepEqual(got[1], getsockname(a!));
  assert.equal(buf.toString('utf8', 0, 8), 'datagram');
});

test('UDP over IPv6 loopback', async (t) => {
  const [a, b] = track(t, socket(C.AF_INET6, C.SOCK_DGRAM), socket(C.AF_INET6, C.SOCK_DGRAM));
  try {
    bind(a!, ['::1', 0]);
  } catch (err) {
    if ((err as SystemError).code === 'EADDRNOTAVAIL') return t.skip('no IPv6 loopback');
    throw err;
  }
  bind(b!, ['::1', 0, 0, 0]);
  const address = getsockname(b!) as IPv6Address;
  assert.equal(address.length, 4);
  assert.equal(address[0], '::1');
  sendto(a!, Buffer.from('six'), 0, 3, address);
  await ready(b!, READABLE);
  const got = recvfrom(b!, Buffer.alloc(8));
  assert.deepEqual(got?.[1], getsockname(a!));
});

test('sendfile a 4 MiB file through a socketpair', async (t) => {
  const data = randomBytes(4 * 1024 * 1024);
  const file = tempFile(t, data);
  const [a, b] = track(t, ...socketpair());
  const [sent, received] = await Promise.all([sendfileP(a!, file, 0, 0), readAll(b!, data.length)]);
  assert.equal(sent, data.length);
  assert.ok(received.equals(data), 'the bytes match');
});

test("the sendfile callback runs in the caller's AsyncLocalStorage context", async (t) => {
  const file = tempFile(t, Buffer.from('context'));
  const [a, b] = track(t, ...socketpair());
  const als = new AsyncLocalStorage<string>();
  const store = await new Promise((resolve) => {
    als.run('caller', () => sendfile(a!, file, 0, 0, () => resolve(als.getStore())));
  });
  assert.equal(store, 'caller');
  assert.deepEqual(await readAll(b!, 7), Buffer.from('context'));
});

test('sendfile with an offset and a count over TCP', async (t) => {
  const data = randomBytes(4 * 1024 * 1024);
  const file = tempFile(t, data);
  const { client, peer } = await tcpPair(t);
  const count = 3 * 1024 * 1024 + 7;
  const [sent, received] = await Promise.all([sendfileP(client, file, 1000, count), readAll(peer, count)]);
  assert.equal(sent, count);
  assert.ok(received.equals(data.subarray(1000, 1000 + count)), 'the bytes match');
});

test('sendfile can be cancelled while the socket is full', async (t) => {
  const data = randomBytes(4 * 1024 * 1024);
  const file = tempFile(t, data);
  const [a, b] = track(t, ...socketpair());
  const result = new Promise<[SendfileError | null, number]>((resolve) => {
    const handle = sendfile(a!, file, 0, 0, (err, n) => resolve([err, n]));
    // Once bytes arrive the transfer is under way; nobody reads, so it is now waiting for room.
    void ready(b!, READABLE).then(() => handle.cancel());
  });
  const [err, n] = await result;
  assert.ok(err);
  assert.equal(err.code, 'ECANCELED');
  assert.equal(err.syscall, 'sendfile');
  assert.equal(err.bytesSent, n);
  assert.ok(n > 0 && n < data.length, `sent ${n}`);
});

test('process.exit() is not held by a transfer waiting on a peer that never reads', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-native-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'big.bin');
  writeFileSync(path, Buffer.alloc(8 * 1024 * 1024));
  const child = await runChild(`
    import * as n from ${JSON.stringify(nativeUrl)};
    import { openSync } from 'node:fs';
    const [a, b] = n.socketpair();
    n.sendfile(a, openSync(${JSON.stringify(path)}, 'r'), 0, 0, () => {});
    const h = n.pollStart(b, n.READABLE, () => {
      n.pollStop(h);
      console.log('exiting');
      process.exit(0);
    });
  `);
  assert.deepEqual(child, { code: 0, stdout: 'exiting\n' });
});

test('sendfile cancelled at once completes with ECANCELED', async (t) => {
  const file = tempFile(t, randomBytes(1024 * 1024));
  const [a] = track(t, ...socketpair());
  const err = await new Promise<SendfileError | null>((resolve) => {
    sendfile(a!, file, 0, 0, (e) => resolve(e)).cancel();
  });
  assert.equal(err?.code, 'ECANCELED');
});

test('errors: ECONNREFUSED, EADDRINUSE, EBADF, argument errors', async (t) => {
  // A bound socket that does not listen: its port refuses connections.
  const [closed] = track(t, socket(C.AF_INET, C.SOCK_STREAM));
  bind(closed!, ['127.0.0.1', 0]);
  const port = (getsockname(closed!) as [string, number])[1];

  const [c1] = track(t, socket(C.AF_INET, C.SOCK_STREAM));
  let refused: SystemError | undefined;
  try {
    if (connect(c1!, ['127.0.0.1', port]) === 1) {
      await ready(c1!, WRITABLE);
      refused = systemError(getSocketError(c1!), 'connect');
    }
  } catch (err) {
    refused = err as SystemError;
  }
  assert.equal(refused?.code, 'ECONNREFUSED');
  assert.equal(refused.errno, -osConstants.errno.ECONNREFUSED);
  assert.equal(refused.syscall, 'connect');
  assert.equal(refused.message, 'connect ECONNREFUSED');

  const [c2] = track(t, socket(C.AF_INET, C.SOCK_STREAM));
  setBlocking(c2!, true);
  assert.throws(() => connect(c2!, ['127.0.0.1', port]), {
    code: 'ECONNREFUSED',
    errno: -osConstants.errno.ECONNREFUSED,
    syscall: 'connect',
    message: 'connect ECONNREFUSED',
  });

  const [listening, other] = track(t, socket(C.AF_INET, C.SOCK_STREAM), socket(C.AF_INET, C.SOCK_STREAM));
  bind(listening!, ['127.0.0.1', 0]);
  listen(listening!);
  assert.throws(() => bind(other!, getsockname(listening!)!), {
    code: 'EADDRINUSE',
    errno: -osConstants.errno.EADDRINUSE,
    syscall: 'bind',
  });

  const notAnFd = 1 << 30;
  assert.throws(() => close(notAnFd), { code: 'EBADF', errno: -osConstants.errno.EBADF, syscall: 'close' });
  assert.throws(() => read(notAnFd, Buffer.alloc(1)), { code: 'EBADF', syscall: 'read' });
  assert.throws(() => getSocketType(notAnFd), { code: 'EBADF', syscall: 'getsockopt' });

  assert.equal(systemError(osConstants.errno.EINPROGRESS, 'connect').code, 'EINPROGRESS');
  assert.equal(systemError(osConstants.errno.EAGAIN, 'recv').code, 'EAGAIN');
  assert.throws(() => bind(other!, ['localhost', 0]), ValueError);
  assert.throws(() => bind(other!, ['127.0.0.1', 70000]), ValueError);
  assert.throws(() => bind(other!, '/tmp/x'), InvalidArgTypeError);
  assert.throws(() => pollStart(0, READABLE, 'nope' as unknown as () => void), InvalidArgTypeError);
  assert.throws(() => pollStart(0, 64, () => {}), ValueError);
  assert.throws(() => sendfile(1, 0, -1, 0, () => {}), ValueError);
  assert.throws(() => read(-1, Buffer.alloc(1)), ValueError);
});

/** The worker's first message; rejects if it fails or exits first. */
function firstMessage<T>(worker: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.once('message', resolve).once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the worker exited with ${code} before its message`)));
  });
}

function runWorker(code: string): Worker {
  // An eval'd worker does not inherit --import tsx: register it before importing native.ts. A pending import()
  // through the tsx hooks does not keep a worker alive by itself: a timer does until native.ts is loaded.
  return new Worker(
    `const { parentPort } = require('node:worker_threads');
    const keepAlive = setInterval(() => {}, 1 << 30);
    import(${JSON.stringify(tsxApiUrl)})
      .then((tsx) => { tsx.register(); return import(${JSON.stringify(nativeUrl)}); })
      .then((n) => { clearInterval(keepAlive); ${code} });`,
    { eval: true },
  );
}

test('polling inside a worker thread', async () => {
  const worker = runWorker(`
    const [r, w] = n.pipe();
    const h = n.pollStart(r, n.READABLE, (status, events) => {
      const buf = Buffer.alloc(16);
      const len = n.read(r, buf);
      n.pollStop(h);
      n.close(r);
      n.close(w);
      parentPort.postMessage({ status, events, text: buf.toString('utf8', 0, len) });
    });
    n.write(w, Buffer.from('from a worker'));
  `);
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const message = await firstMessage(worker);
  assert.deepEqual(message, { status: 0, events: READABLE, text: 'from a worker' });
  // The worker exits by itself: nothing it opened holds its loop.
  assert.equal(await exited, 0);
});

test('terminating a worker closes its polls and cancels its transfers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-native-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'big.bin');
  writeFileSync(path, Buffer.alloc(8 * 1024 * 1024));
  // A poll that fires on every iteration, one that never fires, and a sendfile stuck on a peer that never
  // reads: Node must neither hang on the transfer nor crash on the handles when the worker goes.
  const worker = runWorker(`
    const fd = require('node:fs').openSync(${JSON.stringify(path)}, 'r');
    const [a, b] = n.socketpair();
    const [r, w] = n.pipe();
    n.pollStart(r, n.READABLE | ${DISCONNECT}, () => {});
    n.sendfile(a, fd, 0, 0, () => {});
    let told = false;
    n.pollStart(b, n.READABLE, () => {
      if (!told) parentPort.postMessage([a, b, r, w]);
      told = true;
    });
  `);
  const fds = await firstMessage<number[]>(worker);
  assert.equal(await worker.terminate(), 1);
  // Node closes the worker's fs.openSync fds; those the addon made belong to the process.
  for (const fd of fds) close(fd);
});
