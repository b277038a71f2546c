/**
 * The loop's coroutines on {@link Socket}s (asyncio's `sock_recv`, `sock_recv_into`, `sock_recvfrom`,
 * `sock_recvfrom_into`, `sock_sendall`, `sock_sendto`, `sock_connect`, `sock_accept`, as `selector_events.py` has
 * them): each tries its system call at once and, when it would block, waits for the socket's fd with the loop's
 * fd watching, then tries again.
 *
 * Each returns a loop `Future` (awaitable like a promise) rather than a promise: cancelling it, directly, by
 * `waitFor` or by cancelling the awaiting task, cancels the operation itself, as cancelling asyncio's coroutine
 * does. What asyncio promises holds: the watcher is removed as soon as the operation completes or is cancelled; a
 * cancelled receive has consumed nothing; a cancelled `sockSendall` leaves the socket usable (how much was sent is
 * unknown, as in asyncio); in debug mode a blocking socket is refused. An fd that a transport owns is refused
 * (`File descriptor N is used by transport T`). `sockSendfile` is in `sendfile.ts`.
 *
 * @module
 */
import { constants as osConstants } from 'node:os';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import { extendEventLoop } from './base-event-loop.js';
import { AF_INET, AF_INET6 } from './dns.js';
import { InvalidArgTypeError, ValueError, connectionError, osErrorFrom } from './errors.js';
import type { Future } from './futures.js';
import type { Handle } from './handles.js';
import type { SocketAddress, SocketAddressLike } from './native.js';
import * as native from './native.js';
import type { Socket } from './socket.js';
import { formatSocketAddress, isSocket, numericHostFamily } from './socket.js';
import { ensureFdNoTransport } from './fd-watchers.js';

/** Receives up to this size go through one reused buffer and are copied out at their real length. */
const SCRATCH_SIZE = 64 * 1024;
let scratch: Buffer | null = null;

function recvBuffer(n: number): [buf: Buffer, shared: boolean] {
  if (n > SCRATCH_SIZE) return [Buffer.allocUnsafe(n), false];
  scratch ??= Buffer.allocUnsafe(SCRATCH_SIZE);
  return [scratch, true];
}

function received(buf: Buffer, n: number, shared: boolean): Buffer {
  if (!shared) return n === buf.length ? buf : buf.subarray(0, n);
  const out = Buffer.allocUnsafe(n);
  buf.copy(out, 0, 0, n);
  return out;
}

/** asyncio's `_check_ssl_socket` and its debug-mode blocking check, for a loopwork {@link Socket}. */
function checkSock(loop: BaseEventLoop, sock: unknown): asserts sock is Socket {
  if (!isSocket(sock)) {
    throw new InvalidArgTypeError(`sock must be a loopwork Socket, got ${inspect(sock, { depth: 0 })}`);
  }
  if (loop._debug && sock.gettimeout() !== 0) throw new ValueError('the socket must be non-blocking');
}

function checkNbytes(n: unknown, method: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) {
    throw new InvalidArgTypeError(`${method}() nbytes must be an integer, got ${inspect(n, { depth: 0 })}`);
  }
  if (n < 0) throw new ValueError(`negative buffersize in ${method}`);
  return n;
}

function checkData(data: unknown, method: string): ArrayBufferView {
  if (!ArrayBuffer.isView(data)) {
    throw new InvalidArgTypeError(`${method}() data must be a bytes-like object, not ${inspect(data, { depth: 0 })}`);
  }
  return data;
}

/** Removes the reader once `fut` is done, unless another operation has replaced it (asyncio's `_sock_read_done`). */
function readDone(loop: BaseEventLoop, fd: number, handle: Handle): () => void {
  return () => {
    if (!handle.cancelled()) loop._removeReader(fd);
  };
}

/** The same for the writer (asyncio's `_sock_write_done`). */
function writeDone(loop: BaseEventLoop, fd: number, handle: Handle): () => void {
  return () => {
    if (!handle.cancelled()) loop._removeWriter(fd);
  };
}

type IoCallback = (...args: never[]) => unknown;

/** Calls `cb(fut, ...args)` each time `fd` is readable, until `fut` is done; resolves with `fut`. */
function waitReadable<T>(
  loop: BaseEventLoop,
  fd: number,
  fut: Future<T>,
  cb: IoCallback,
  ...args: unknown[]
): Future<T> {
  ensureFdNoTransport(loop, fd);
  const handle = loop._addReader(fd, cb as (...a: unknown[]) => unknown, fut, ...args);
  fut.addDoneCallback(readDone(loop, fd, handle));
  return fut;
}

/** Calls `cb(fut, ...args)` each time `fd` is writable, until `fut` is done; resolves with `fut`. */
function waitWritable<T>(
  loop: BaseEventLoop,
  fd: number,
  fut: Future<T>,
  cb: IoCallback,
  ...args: unknown[]
): Future<T> {
  ensureFdNoTransport(loop, fd);
  const handle = loop._addWriter(fd, cb as (...a: unknown[]) => unknown, fut, ...args);
  fut.addDoneCallback(writeDone(loop, fd, handle));
  return fut;
}

function byteView(view: ArrayBufferView): Uint8Array {
  return view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** What `sockConnect` takes: an address, or `[host, port]` with the port as a string (a number or a service). */
export type ConnectAddress = SocketAddressLike | readonly [host: string, port: string];

/**
 * Whether `address` is not a numeric address of the socket's `family` (asyncio's `_ensure_resolved` then calls
 * `getaddrinfo`, which also gives the gaierror for a numeric host of the other family).
 */
function needsResolving(address: ConnectAddress, family: number): boolean {
  if (!Array.isArray(address)) return false;
  const host: unknown = address[0];
  if (typeof host !== 'string') throw new InvalidArgTypeError(`host must be a string, got ${inspect(host)}`);
  // A service name or a numeric string as the port is resolved too, as asyncio's getaddrinfo() does.
  return (host !== '' && numericHostFamily(host) !== family) || typeof address[1] === 'string';
}

/**
 * A numeric IPv6 address as asyncio's `_ensure_resolved` gives it, `[host, port, flowinfo, scopeId]` (the form
 * its "Connect call failed" message shows); any other address as it is.
 */
function ipv6Address(sock: Socket, address: SocketAddressLike): SocketAddressLike {
  if (sock.family !== AF_INET6 || !Array.isArray(address) || address.length >= 4) return address;
  const [host, port, flowinfo = 0] = address as readonly [string, number, number?];
  return [host, port, flowinfo, 0];
}

/** asyncio's `_ensure_resolved` for `sockConnect`: the first address `getaddrinfo` gives for a host name. */
async function resolveFor(loop: BaseEventLoop, sock: Socket, address: ConnectAddress): Promise<SocketAddressLike> {
  const [host, port] = address as readonly [string, number | string, ...unknown[]];
  const infos = await loop.getaddrinfo(host, port as number | string, {
    family: sock.family,
    type: sock.type,
    proto: sock.proto,
  });
  const first = infos[0];
  if (first === undefined) throw new ValueError(`getaddrinfo() returned an empty list for ${inspect(host)}`);
  return first[4];
}

/**
 * Runs `start` for a new Future of `loop`: it settles the Future at once (the system call did not block), or
 * registers the fd watcher that will; an exception it throws becomes the Future's.
 *
 * A Future settled at once is awaited on the next loop iteration, as every loop Future is. Resuming at once
 * instead (a microtask) doubles a ping-pong microbenchmark but costs an echo server: its next receive then comes
 * before the peer's next request, and registers and drops an fd watcher per request (measured: one `epoll_ctl`
 * per request against one per thirty).
 */
function operation<T>(loop: BaseEventLoop, start: (fut: Future<T>) => void): Future<T> {
  const fut = loop.createFuture<T>();
  try {
    start(fut);
  } catch (err) {
    if (!fut.done()) fut.setException(connectionError(err));
  }
  return fut;
}

extendEventLoop({
  sockRecv(this: BaseEventLoop, sock: Socket, n: number): Future<Buffer> {
    return operation(this, (fut) => {
      checkSock(this, sock);
      checkNbytes(n, 'sockRecv');
      const fd = sock._fd('recv');
      // recv(2) of 0 bytes would wait for data (EAGAIN): Python answers b'' at once, without the syscall.
      if (n === 0) {
        fut.setResult(Buffer.alloc(0));
        return;
      }
      const [buf, shared] = recvBuffer(n);
      const got = native.recv(fd, buf, 0, n, 0);
      if (got >= 0) fut.setResult(received(buf, got, shared));
      else waitReadable(this, fd, fut, sockRecvReady, sock, n);
    });
  },

  sockRecvInto(this: BaseEventLoop, sock: Socket, buf: ArrayBufferView): Future<number> {
    return operation(this, (fut) => {
      checkSock(this, sock);
      const view = byteView(checkData(buf, 'sockRecvInto'));
      const fd = sock._fd('recv');
      if (view.byteLength === 0) {
        fut.setResult(0);
        return;
      }
      const got = native.recv(fd, view, 0, view.byteLength, 0);
      if (got >= 0) fut.setResult(got);
      else waitReadable(this, fd, fut, sockRecvIntoReady, sock, view);
    });
  },

  sockRecvfrom(this: BaseEventLoop, sock: Socket, bufsize: number): Future<[Buffer, SocketAddress | null]> {
    return operation(this, (fut) => {
      checkSock(this, sock);
      checkNbytes(bufsize, 'sockRecvfrom');
      const fd = sock._fd('recvfrom');
      const [buf, shared] = recvBuffer(bufsize);
      const got = native.recvfrom(fd, buf, 0, bufsize, 0);
      if (got !== null) fut.setResult([received(buf, got[0], shared), got[1]]);
      else waitReadable(this, fd, fut, sockRecvfromReady, sock, bufsize);
    });
  },

  sockRecvfromInto(
    this: BaseEventLoop,
    sock: Socket,
    buf: ArrayBufferView,
    nbytes = 0,
  ): Future<[number, SocketAddress | null]> {
    return operation(this, (fut) => {
      checkSock(this, sock);
      const view = byteView(checkData(buf, 'sockRecvfromInto'));
      checkNbytes(nbytes, 'sockRecvfromInto');
      if (nbytes > view.byteLength) throw new ValueError('nbytes is greater than the length of the buffer');
      const len = nbytes === 0 ? view.byteLength : nbytes;
      const fd = sock._fd('recvfrom');
      const got = native.recvfrom(fd, view, 0, len, 0);
      if (got !== null) fut.setResult(got);
      else waitReadable(this, fd, fut, sockRecvfromIntoReady, sock, view, len);
    });
  },

  sockSendall(this: BaseEventLoop, sock: Socket, data: ArrayBufferView): Future<void> {
    return operation(this, (fut) => {
      checkSock(this, sock);
      const view = byteView(checkData(data, 'sockSendall'));
      const fd = sock._fd('send');
      const n = view.byteLength === 0 ? 0 : native.send(fd, view, 0, view.byteLength, 0);
      const sent = n < 0 ? 0 : n;
      if (sent === view.byteLength) fut.setResult(undefined);
      // The position lives in a one-element array so that the callback can advance it (asyncio's trick).
      else waitWritable(this, fd, fut, sockSendallReady, sock, view, [sent]);
    });
  },

  sockSendto(this: BaseEventLoop, sock: Socket, data: ArrayBufferView, address: SocketAddressLike): Future<number> {
    return operation(this, (fut) => {
      checkSock(this, sock);
      const view = byteView(checkData(data, 'sockSendto'));
      const fd = sock._fd('sendto');
      const n = native.sendto(fd, view, 0, view.byteLength, address, 0);
      if (n >= 0) fut.setResult(n);
      else waitWritable(this, fd, fut, sockSendtoReady, sock, view, address);
    });
  },

  sockConnect(this: BaseEventLoop, sock: Socket, address: ConnectAddress): Future<void> {
    try {
      checkSock(this, sock);
      if ((sock.family === AF_INET || sock.family === AF_INET6) && needsResolving(address, sock.family)) {
        // A name: resolve it first (a Task, so that cancelling it reaches whichever step is running).
        return this.createTask(async () => {
          const target = await resolveFor(this, sock, address);
          await startConnect(this, sock, target);
        });
      }
    } catch (err) {
      return operation(this, () => {
        throw err;
      });
    }
    // A string port was resolved above (on an IP socket; elsewhere connect() refuses the tuple).
    return startConnect(this, sock, ipv6Address(sock, address as SocketAddressLike));
  },

  sockAccept(this: BaseEventLoop, sock: Socket): Future<[Socket, SocketAddress | null]> {
    return operation(this, (fut) => {
      checkSock(this, sock);
      const fd = sock._fd('accept');
      const got = tryAccept(sock, fd);
      if (got !== null) fut.setResult(got);
      else waitReadable(this, fd, fut, sockAcceptReady, sock);
    });
  },
});

function startConnect(loop: BaseEventLoop, sock: Socket, address: SocketAddressLike): Future<void> {
  return operation(loop, (fut) => {
    const fd = sock._fd('connect');
    if (native.connect(fd, address) === 0) fut.setResult(undefined);
    // In progress (EINPROGRESS, or EINTR: bpo-23618): the socket becomes writable when it is decided.
    else waitWritable(loop, fd, fut, sockConnectReady, sock, address);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The I/O callbacks, run as `callback(fut, ...state)` each time the fd is ready, until `fut` is done.

/** Settles `fut` with the outcome of `fn`, or leaves it pending when `fn` returns `undefined` (would block). */
function attempt<T>(fut: Future<T>, fn: () => T | undefined): void {
  if (fut.done()) return;
  let result: T | undefined;
  try {
    result = fn();
  } catch (err) {
    fut.setException(connectionError(err));
    return;
  }
  if (result !== undefined) fut.setResult(result);
}

function sockRecvReady(fut: Future<Buffer>, sock: Socket, n: number): void {
  attempt(fut, () => {
    const [buf, shared] = recvBuffer(n);
    const got = native.recv(sock._fd('recv'), buf, 0, n, 0);
    return got < 0 ? undefined : received(buf, got, shared);
  });
}

function sockRecvIntoReady(fut: Future<number>, sock: Socket, view: Uint8Array): void {
  attempt(fut, () => {
    const got = native.recv(sock._fd('recv'), view, 0, view.byteLength, 0);
    return got < 0 ? undefined : got;
  });
}

function sockRecvfromReady(fut: Future<[Buffer, SocketAddress | null]>, sock: Socket, bufsize: number): void {
  attempt(fut, () => {
    const [buf, shared] = recvBuffer(bufsize);
    const got = native.recvfrom(sock._fd('recvfrom'), buf, 0, bufsize, 0);
    return got === null ? undefined : ([received(buf, got[0], shared), got[1]] as [Buffer, SocketAddress | null]);
  });
}

function sockRecvfromIntoReady(
  fut: Future<[number, SocketAddress | null]>,
  sock: Socket,
  view: Uint8Array,
  len: number,
): void {
  attempt(fut, () => native.recvfrom(sock._fd('recvfrom'), view, 0, len, 0) ?? undefined);
}

function sockSendallReady(fut: Future<void>, sock: Socket, view: Uint8Array, pos: [number]): void {
  if (fut.done()) return; // cancelled in an earlier iteration
  const start = pos[0];
  let n: number;
  try {
    n = native.send(sock._fd('send'), view, start, view.byteLength - start, 0);
  } catch (err) {
    fut.setException(connectionError(err));
    return;
  }
  if (n < 0) return;
  pos[0] = start + n;
  if (pos[0] === view.byteLength) fut.setResult(undefined);
}

function sockSendtoReady(fut: Future<number>, sock: Socket, view: Uint8Array, address: SocketAddressLike): void {
  attempt(fut, () => {
    const n = native.sendto(sock._fd('sendto'), view, 0, view.byteLength, address, 0);
    return n < 0 ? undefined : n;
  });
}

function sockConnectReady(fut: Future<void>, sock: Socket, address: SocketAddressLike): void {
  if (fut.done()) return;
  try {
    const err = native.getSocketError(sock._fd('connect'));
    if (err === osConstants.errno.EINPROGRESS || err === osConstants.errno.EINTR) return;
    if (err !== 0) {
      const cause = native.systemError(err, 'connect');
      fut.setException(osErrorFrom(cause, `[Errno ${err}] Connect call failed ${formatSocketAddress(address)}`));
      return;
    }
  } catch (err) {
    fut.setException(connectionError(err));
    return;
  }
  fut.setResult(undefined);
}

function tryAccept(sock: Socket, fd: number): [Socket, SocketAddress | null] | null {
  const got = native.accept(fd);
  if (got === null) return null;
  const [conn, address] = got;
  // asyncio sets the accepted socket non-blocking: the addon made it so already.
  const SocketClass = sock.constructor as typeof Socket;
  return [SocketClass._fromFd(conn, sock.family, sock.type, sock.proto, false), address];
}

function sockAcceptReady(fut: Future<[Socket, SocketAddress | null]>, sock: Socket): void {
  attempt(fut, () => tryAccept(sock, sock._fd('accept')) ?? undefined);
}

declare module './base-event-loop.js' {
  interface BaseEventLoop {
    /**
     * Receives up to `n` bytes from `sock` (asyncio's `sock_recv`). Resolves as soon as some data (or EOF) is
     * there; cancelling it consumes nothing.
     *
     * @param sock - a non-blocking {@link Socket}.
     * @param n - the most bytes to take.
     * @returns the bytes; empty at EOF.
     * @throws ValueError `the socket must be non-blocking` in debug mode; RuntimeError for a transport's fd;
     *   an `OSError` of the errno's class (`ConnectionResetError` for `ECONNRESET`...).
     * @example
     * const data = await loop.sockRecv(sock, 65536);
     */
    sockRecv(sock: Socket, n: number): Future<Buffer>;
    /**
     * Receives into `buf` (asyncio's `sock_recv_into`).
     *
     * @param sock - a non-blocking {@link Socket}.
     * @param buf - where the bytes go.
     * @returns how many bytes were received; 0 at EOF.
     */
    sockRecvInto(sock: Socket, buf: ArrayBufferView): Future<number>;
    /**
     * Receives a datagram of up to `bufsize` bytes (asyncio's `sock_recvfrom`).
     *
     * @param sock - a non-blocking datagram {@link Socket}.
     * @param bufsize - the most bytes to take.
     * @returns `[data, senderAddress]`.
     */
    sockRecvfrom(sock: Socket, bufsize: number): Future<[Buffer, SocketAddress | null]>;
    /**
     * Receives a datagram into `buf` (asyncio's `sock_recvfrom_into`).
     *
     * @param sock - a non-blocking datagram {@link Socket}.
     * @param buf - where the bytes go.
     * @param nbytes - the most bytes to take; 0 for the whole buffer.
     * @returns `[nbytes, senderAddress]`.
     */
    sockRecvfromInto(sock: Socket, buf: ArrayBufferView, nbytes?: number): Future<[number, SocketAddress | null]>;
    /**
     * Sends all of `data` (asyncio's `sock_sendall`), waiting for room in the send buffer as long as needed.
     * When it fails or is cancelled there is no telling how much was sent; the socket stays usable.
     *
     * @param sock - a non-blocking connected {@link Socket}.
     * @param data - the bytes.
     * @throws BrokenPipeError (`EPIPE`), ConnectionResetError (`ECONNRESET`)...
     */
    sockSendall(sock: Socket, data: ArrayBufferView): Future<void>;
    /**
     * Sends a datagram to `address` (asyncio's `sock_sendto`).
     *
     * @param sock - a non-blocking datagram {@link Socket}.
     * @param data - the bytes.
     * @param address - the destination (numeric host).
     * @returns the bytes sent.
     */
    sockSendto(sock: Socket, data: ArrayBufferView, address: SocketAddressLike): Future<number>;
    /**
     * Connects `sock` to `address` (asyncio's `sock_connect`); a host name is resolved with `getaddrinfo` first
     * (the first address is used).
     *
     * @param sock - a non-blocking {@link Socket}.
     * @param address - `[host, port]` (a name or a numeric host), or a Unix path.
     * @throws ConnectionRefusedError (an `OSError`)... with asyncio's message `[Errno 111] Connect call failed
     *   ('127.0.0.1', 1)`; GaiError for a name that does not resolve.
     */
    sockConnect(sock: Socket, address: ConnectAddress): Future<void>;
    /**
     * Accepts a connection (asyncio's `sock_accept`).
     *
     * @param sock - a non-blocking listening {@link Socket}.
     * @returns `[conn, address]`; `conn` is non-blocking.
     * @example
     * const [conn, peer] = await waitFor(loop.sockAccept(listener), 5);
     */
    sockAccept(sock: Socket): Future<[Socket, SocketAddress | null]>;
  }
}
