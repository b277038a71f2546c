/**
 * The only module that touches loopwork's native addon (`packages/core/native`): fd polling on libuv, raw
 * non-blocking descriptors and BSD sockets, and `sendfile(2)` on the threadpool. It is what `addReader`,
 * `addWriter`, the `sock*` methods, `sendfile`, `reusePort` and the syscall transport are built on.
 *
 * The addon is loaded on first use. When it is missing (not built, not Linux, or `LOOPWORK_NATIVE=0`), every
 * function here throws {@link NativeUnavailableError} saying why; {@link nativeAvailable} tells beforehand.
 *
 * Errors: a failed syscall throws a Node-style system error ({@link SystemError}: `code` such as
 * `ECONNREFUSED`, negative `errno`, `syscall`, message `connect ECONNREFUSED`). `EAGAIN` on a non-blocking call
 * is not an error: each function returns the sentinel its documentation gives (`-1` or `null`), so hot paths
 * never pay for an exception. `EINTR` is retried inside. Argument errors are `InvalidArgTypeError` and
 * `ValueError`. Every descriptor made here is non-blocking and close-on-exec. Linux only.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { InvalidArgTypeError, NativeUnavailableError, ValueError, type SystemErrorLike } from './errors.js';

// ---------------------------------------------------------------------------------------------------------
// Types

/** An IPv4 address as asyncio has it: `[host, port]`, the host numeric (`'127.0.0.1'`, `''` for any). */
export type IPv4Address = [host: string, port: number];
/** An IPv6 address as asyncio has it: `[host, port, flowinfo, scopeId]`. */
export type IPv6Address = [host: string, port: number, flowinfo: number, scopeId: number];
/**
 * A Unix socket address: a path, or a `Buffer` for an abstract name (first byte NUL) or a non-UTF-8 path;
 * `''` is an unnamed socket.
 */
export type UnixAddress = string | Buffer;
/** An address the addon returns, in the socket's family. */
export type SocketAddress = IPv4Address | IPv6Address | UnixAddress;
/**
 * An address the addon accepts, read in the socket's own family: `[host, port]` for IPv4 or IPv6 (hosts are
 * numeric, resolve names first; an IPv6 host may carry a zone, `'fe80::1%eth0'`), `[host, port, flowinfo,
 * scopeId]` for IPv6, a string or bytes for Unix.
 */
export type SocketAddressLike =
  readonly [host: string, port: number, flowinfo?: number, scopeId?: number] | string | Uint8Array;

/** The error a failed syscall throws, shaped as Node's own system errors. */
export interface SystemError extends SystemErrorLike {
  /** The errno name, e.g. `ECONNREFUSED` (`UNKNOWN` if this Node does not know the number). */
  code: string;
  /** The errno number, negative as Node reports it. */
  errno: number;
  /** The system call that failed, e.g. `connect`. */
  syscall: string;
}

/** The error a failed or cancelled {@link sendfile} completes with. */
export interface SendfileError extends SystemError {
  /** The bytes sent before the error; they are in the socket and cannot be taken back. */
  bytesSent: number;
}

declare const pollHandleBrand: unique symbol;
/** An fd being polled, returned by {@link pollStart}; opaque. */
export interface PollHandle {
  readonly [pollHandleBrand]: true;
}

/**
 * Called when a polled fd is ready.
 *
 * @param status - 0, or a negative errno when polling failed, in practice `EBADF` for an fd closed while polled
 *   (the poll is then stopped: call {@link pollStop}; `systemError(-status, 'uv_poll')` makes the error). A
 *   pending socket error (`POLLERR`: a refused connect, a reset) is not a failure: it is reported as the
 *   readable and writable events asked for, as asyncio's epoll selector does, and the next syscall on the fd
 *   returns the error.
 * @param events - the ready events, a mask of {@link READABLE}, {@link WRITABLE}, {@link DISCONNECT}.
 */
export type PollCallback = (status: number, events: number) => void;

/**
 * Called once when a {@link sendfile} transfer ends.
 *
 * @param err - null on success; else the error, with `code` `ECANCELED` after {@link SendfileHandle.cancel}.
 * @param bytesSent - the bytes sent, also on error.
 */
export type SendfileCallback = (err: SendfileError | null, bytesSent: number) => void;

/** A transfer started by {@link sendfile}. */
export interface SendfileHandle {
  /**
   * Stops the transfer within 100 ms; its callback then gets an `ECANCELED` error carrying `bytesSent`. Does
   * nothing once the transfer has ended.
   */
  cancel(): void;
}

const CONSTANT_NAMES = [
  'AF_UNSPEC',
  'AF_INET',
  'AF_INET6',
  'AF_UNIX',
  'SOCK_STREAM',
  'SOCK_DGRAM',
  'SOCK_RAW',
  'SOCK_SEQPACKET',
  'SOL_SOCKET',
  'SO_REUSEADDR',
  'SO_REUSEPORT',
  'SO_KEEPALIVE',
  'SO_BROADCAST',
  'SO_ERROR',
  'SO_TYPE',
  'SO_SNDBUF',
  'SO_RCVBUF',
  'SO_LINGER',
  'SO_DOMAIN',
  'SO_PROTOCOL',
  'SO_ACCEPTCONN',
  'IPPROTO_IP',
  'IPPROTO_TCP',
  'IPPROTO_UDP',
  'IPPROTO_IPV6',
  'TCP_NODELAY',
  'TCP_KEEPIDLE',
  'TCP_KEEPINTVL',
  'TCP_KEEPCNT',
  'TCP_QUICKACK',
  'TCP_CORK',
  'IPV6_V6ONLY',
  'SHUT_RD',
  'SHUT_WR',
  'SHUT_RDWR',
  'MSG_PEEK',
  'MSG_DONTWAIT',
  'MSG_WAITALL',
  'MSG_OOB',
  'MSG_TRUNC',
  'MSG_NOSIGNAL',
  'SOMAXCONN',
] as const;

/** The name of a socket constant. */
export type SocketConstantName = (typeof CONSTANT_NAMES)[number];
/** Socket constants, as the C headers define them. */
export type SocketConstants = Readonly<Record<SocketConstantName, number>>;

type RawSendfileCallback = (errno: number, bytesSent: number) => void;

declare const rawPollBrand: unique symbol;
/** The addon's handle of a poll (an external). */
interface RawPoll {
  readonly [rawPollBrand]: true;
}

/** The addon's exports; see native/src for each one. Never leaves this module. */
interface Binding {
  constants: SocketConstants;
  setErrorFactory(factory: (kind: number, errno: number, text: string) => Error): void;
  pollSetDispatch(dispatch: (count: number) => void, queue: Int32Array): void;
  pollStart(fd: number, events: number, id: number): RawPoll;
  pollUpdate(handle: RawPoll, events: number): void;
  pollStop(handle: RawPoll): void;
  pollSetRef(handle: RawPoll, ref: boolean): void;
  pipe(): [number, number];
  socketpair(family: number, type: number, proto: number): [number, number];
  eventfd(initval: number, semaphore: boolean): number;
  close(fd: number): void;
  dup(fd: number): number;
  setBlocking(fd: number, blocking: boolean): void;
  getBlocking(fd: number): boolean;
  read(fd: number, buf: ArrayBufferView, offset: number, length: number): number;
  write(fd: number, buf: ArrayBufferView, offset: number, length: number): number;
  writev(fd: number, buffers: readonly ArrayBufferView[]): number;
  pageOffset(buf: ArrayBufferView): number;
  socket(family: number, type: number, proto: number): number;
  bind(fd: number, address: SocketAddressLike): void;
  listen(fd: number, backlog: number): void;
  accept(fd: number): [number, SocketAddress | null] | null;
  connect(fd: number, address: SocketAddressLike): 0 | 1;
  getSocketError(fd: number): number;
  getSocketType(fd: number): number;
  getSocketFamily(fd: number): number;
  getSocketProtocol(fd: number): number;
  shutdown(fd: number, how: number): void;
  send(fd: number, buf: ArrayBufferView, offset: number, length: number, flags: number): number;
  recv(fd: number, buf: ArrayBufferView, offset: number, length: number, flags: number): number;
  sendto(
    fd: number,
    buf: ArrayBufferView,
    offset: number,
    length: number,
    address: SocketAddressLike,
    flags: number,
  ): number;
  recvfrom(
    fd: number,
    buf: ArrayBufferView,
    offset: number,
    length: number,
    flags: number,
  ): [number, SocketAddress | null] | null;
  setsockopt(fd: number, level: number, name: number, value: number): void;
  getsockopt(fd: number, level: number, name: number): number;
  getsockname(fd: number): SocketAddress | null;
  getpeername(fd: number): SocketAddress | null;
  sendfile(outFd: number, inFd: number, offset: number, count: number, callback: RawSendfileCallback): object;
  sendfileCancel(handle: object): void;
  sendfileCancelAll(): void;
}

// ---------------------------------------------------------------------------------------------------------
// Loading and errors

// Resolved from this file, so the same path works from src/ (tests, through tsx) and from dist/.
const ADDON_PATH = '../native/build/Release/loopwork.node';
const KIND_TYPE = 1;
const KIND_RANGE = 2;

let binding: Binding | undefined;
let loadFailure: Error | undefined;
let errnoNames: Map<number, string> | undefined;
let exitHookInstalled = false;

function load(): Binding {
  if (binding !== undefined) return binding;
  if (loadFailure === undefined) {
    try {
      if (process.env.LOOPWORK_NATIVE === '0') throw new Error('disabled by LOOPWORK_NATIVE=0');
      // A copy: the addon's exports object is in dictionary mode (its properties are set one by one), so every
      // `binding.recv` would be a hash lookup; the copy is a fast object whose loads are inlined.
      const exports = createRequire(import.meta.url)(ADDON_PATH) as Binding & { [REGISTRY]?: PollRegistry };
      // One dispatcher per addon instance (per thread): a second copy of this module shares the first's.
      let registry = exports[REGISTRY];
      if (registry === undefined) {
        const fresh: PollRegistry = { polls: new Map(), nextId: 0, queue: new Int32Array(3 * 1024) };
        exports.pollSetDispatch((count) => dispatchPolls(fresh, count), fresh.queue);
        registry = exports[REGISTRY] = fresh;
      }
      const b = { ...exports };
      b.setErrorFactory(makeNativeError);
      pollRegistry = registry;
      binding = b;
      return b;
    } catch (err) {
      loadFailure = err instanceof Error ? err : new Error(String(err));
    }
  }
  const why = loadFailure.message.split('\n')[0] ?? '';
  const hint = process.env.LOOPWORK_NATIVE === '0' ? '' : ' Build it with `node packages/core/native/build-addon.mjs`.';
  throw new NativeUnavailableError(
    `The loopwork native addon is not available (${why}).${hint} Watching fds, raw sockets and sendfile ` +
      'need it; the rest of loopwork still works.',
    { cause: loadFailure },
  );
}

// Called by the addon to make every error it throws, so that errno names come from one place.
function makeNativeError(kind: number, errno: number, text: string): Error {
  if (kind === KIND_TYPE) return new InvalidArgTypeError(text);
  if (kind === KIND_RANGE) return new ValueError(text);
  const err = systemError(errno, text);
  Error.captureStackTrace(err, makeNativeError);
  return err;
}

/**
 * Makes the Node-style error for an errno: `code` its name, `errno` negative, message `<syscall> <code>`.
 * Names come from `os.constants.errno` (libuv's own table lacks some, such as `EINPROGRESS`).
 *
 * @param errno - the errno number, positive (`getSocketError`) or negative (a poll `status`).
 * @param syscall - the failed system call, e.g. `connect`.
 * @returns the error, not thrown.
 * @example
 * const err = getSocketError(fd);
 * if (err !== 0) throw systemError(err, 'connect');
 */
export function systemError(errno: number, syscall: string): SystemError {
  const n = Math.abs(errno);
  if (errnoNames === undefined) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(osConstants.errno)) {
      if (!errnoNames.has(value)) errnoNames.set(value, name); // EAGAIN before EWOULDBLOCK
    }
  }
  const code = errnoNames.get(n) ?? 'UNKNOWN';
  const err = new Error(`${syscall} ${code}`) as SystemError;
  err.code = code;
  err.errno = -n;
  err.syscall = syscall;
  return err;
}

/**
 * True when the native addon is loaded or loads now; nothing else here works when it is false.
 *
 * @returns whether the addon is usable.
 */
export function nativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/**
 * Socket constants (`AF_INET`, `SOL_SOCKET`, `TCP_NODELAY`...) as the C headers define them. Reading one
 * loads the addon and throws {@link NativeUnavailableError} when it is missing.
 */
export const constants: SocketConstants = Object.freeze(
  Object.defineProperties(
    {},
    Object.fromEntries(
      CONSTANT_NAMES.map((name) => [name, { enumerable: true, get: () => (binding ?? load()).constants[name] }]),
    ),
  ),
) as SocketConstants;

// ---------------------------------------------------------------------------------------------------------
// Polling

/** The fd is readable (or at EOF, or has a pending error). libuv's `UV_READABLE`. */
export const READABLE = 1;
/** The fd is writable. libuv's `UV_WRITABLE`. */
export const WRITABLE = 2;
/** The peer closed its end (`EPOLLRDHUP`); reported only when asked for. libuv's `UV_DISCONNECT`. */
export const DISCONNECT = 4;
/** Urgent data is available (`EPOLLPRI`). libuv's `UV_PRIORITIZED`. */
export const PRIORITIZED = 8;

/**
 * Calls `callback` each time `fd` is ready for one of `events`, until {@link pollStop}. Polling runs on the
 * calling thread's libuv loop (a worker thread has its own). The callbacks of every fd ready in one turn of the
 * loop run back to back in one I/O callback, right after libuv's poll phase and before `setImmediate`
 * callbacks; microtasks and `process.nextTick` callbacks drain after the last one. They run in the async
 * context of that dispatcher, not of the `pollStart` caller: bind the callback (`AsyncResource.bind`) to keep an
 * `AsyncLocalStorage` store. An exception a callback throws is an uncaught exception, and does not keep the
 * other callbacks from running. An active poll keeps the loop alive unless {@link pollUnref} is called.
 *
 * Never poll an fd that a Node handle (`net.Socket`, `fs.watch`...) already owns: libuv keeps one watcher per
 * fd, so this throws `EEXIST` when Node's watcher is registered, and breaks Node's handle when it is not yet.
 * Poll a {@link dup} of it instead. libuv makes `fd` non-blocking.
 *
 * @param fd - the descriptor to watch.
 * @param events - a mask of {@link READABLE}, {@link WRITABLE}, {@link DISCONNECT}, {@link PRIORITIZED}.
 * @param callback - called with `(status, events)`.
 * @returns the handle for {@link pollUpdate} and {@link pollStop}.
 * @throws SystemError from `uv_poll_init` (`EEXIST`, `EBADF`, `EPERM` for a regular file).
 * @example
 * const h = pollStart(fd, READABLE, (status, events) => { if (events & READABLE) readSome(); });
 */
export function pollStart(fd: number, events: number, callback: PollCallback): PollHandle {
  const b = binding ?? load();
  if (typeof callback !== 'function') throw new InvalidArgTypeError('callback must be a function');
  const registry = pollRegistry as PollRegistry;
  let id = registry.nextId;
  while (registry.polls.has(id)) id = (id + 1) & 0x7fffffff;
  registry.nextId = (id + 1) & 0x7fffffff;
  const poll = new Poll(b.pollStart(fd, events, id), id, events, callback);
  registry.polls.set(id, poll);
  return poll as unknown as PollHandle;
}

/**
 * Changes the events `handle` waits for; `0` pauses it (it then keeps the loop alive no more).
 *
 * @param handle - from {@link pollStart}, not stopped.
 * @param events - the new mask.
 * @throws ValueError if the handle is stopped.
 */
export function pollUpdate(handle: PollHandle, events: number): void {
  const poll = pollOf(handle);
  (binding ?? load()).pollUpdate(poll.raw, events);
  poll.events = events;
}

/**
 * Stops polling for good: no callback runs after it returns, the libuv handle is closed and every reference
 * released, so the process can exit. Calling it again does nothing. Stop the poll before closing the fd.
 *
 * @param handle - from {@link pollStart}.
 */
export function pollStop(handle: PollHandle): void {
  const poll = pollOf(handle);
  (binding ?? load()).pollStop(poll.raw);
  const { polls } = pollRegistry as PollRegistry;
  if (polls.get(poll.id) === poll) polls.delete(poll.id);
}

/**
 * Makes an active poll keep the loop alive again (the default).
 *
 * @param handle - from {@link pollStart}.
 */
export function pollRef(handle: PollHandle): void {
  (binding ?? load()).pollSetRef(pollOf(handle).raw, true);
}

/**
 * Lets the process exit even while this poll is active.
 *
 * @param handle - from {@link pollStart}.
 */
export function pollUnref(handle: PollHandle): void {
  (binding ?? load()).pollSetRef(pollOf(handle).raw, false);
}

/** What a {@link PollHandle} is inside this module. */
class Poll {
  constructor(
    readonly raw: RawPoll,
    readonly id: number,
    /** The events asked for now: events queued before a change are filtered by it. */
    public events: number,
    readonly callback: PollCallback,
  ) {}
}

/** A poll as the dispatcher sees it (a `Poll` of this copy of the module or of another). */
interface PollEntry {
  readonly events: number;
  readonly callback: PollCallback;
}

/** The dispatcher's state, kept on the addon's exports object under {@link REGISTRY}. */
interface PollRegistry {
  /** The polls not stopped, by the id the addon queues their events under. */
  readonly polls: Map<number, PollEntry>;
  nextId: number;
  /** Where the addon queues `(id, status, events)` for the dispatcher: up to 1024 events per call. */
  readonly queue: Int32Array;
}

const REGISTRY = Symbol.for('loopwork.native.polls');
let pollRegistry: PollRegistry | null = null;

function pollOf(handle: PollHandle): Poll {
  if (!(handle instanceof Poll)) throw new InvalidArgTypeError('handle must be a poll handle returned by pollStart()');
  return handle;
}

/**
 * Called by the addon once per libuv poll phase (see native/src/poll.c) with the number of events queued in
 * `registry.queue`. An event of a poll stopped since is dropped; one of a poll changed since keeps only the events
 * still asked for (libuv does the same within one poll phase). A callback that throws does not stop the others:
 * its exception is rethrown from a nextTick, an uncaught exception as before.
 */
function dispatchPolls(registry: PollRegistry, count: number): void {
  const { queue, polls } = registry;
  for (let i = 0, j = 0; i < count; i++, j += 3) {
    const poll = polls.get(queue[j] as number);
    if (poll === undefined) continue;
    const status = queue[j + 1] as number;
    let events = queue[j + 2] as number;
    if (status >= 0 && (events &= poll.events) === 0) continue;
    try {
      poll.callback(status, events);
    } catch (err) {
      process.nextTick(rethrow, err);
    }
  }
}

function rethrow(err: unknown): never {
  throw err;
}

// ---------------------------------------------------------------------------------------------------------
// Descriptors

/**
 * Creates a pipe, both ends non-blocking and close-on-exec.
 *
 * @returns `[readFd, writeFd]`.
 */
export function pipe(): [readFd: number, writeFd: number] {
  return (binding ?? load()).pipe();
}

/**
 * Creates a pair of connected sockets, both non-blocking and close-on-exec.
 *
 * @param family - `AF_UNIX` by default.
 * @param type - `SOCK_STREAM` by default.
 * @param proto - 0 by default.
 * @returns the two fds.
 */
export function socketpair(family?: number, type?: number, proto = 0): [number, number] {
  const b = binding ?? load();
  return b.socketpair(family ?? b.constants.AF_UNIX, type ?? b.constants.SOCK_STREAM, proto);
}

/**
 * Creates an eventfd, non-blocking and close-on-exec: a counter another thread can bump to wake a poll.
 *
 * @param initval - the counter's first value.
 * @param semaphore - each read takes 1 instead of the whole count.
 * @returns the fd.
 */
export function eventfd(initval = 0, semaphore = false): number {
  return (binding ?? load()).eventfd(initval, semaphore);
}

/**
 * Closes `fd`. Never retried on `EINTR` (the fd is gone then on Linux, and may already be reused).
 *
 * @param fd - the descriptor; stop any poll on it first.
 * @throws SystemError `EBADF` if it is not open.
 */
export function close(fd: number): void {
  (binding ?? load()).close(fd);
}

/**
 * Duplicates `fd` (close-on-exec) to the lowest free number; the copy shares the open file and its flags.
 *
 * @param fd - the descriptor.
 * @returns the new fd.
 */
export function dup(fd: number): number {
  return (binding ?? load()).dup(fd);
}

/**
 * Sets or clears `O_NONBLOCK` on `fd` (Python's `os.set_blocking`).
 *
 * @param fd - the descriptor.
 * @param blocking - true for blocking mode.
 */
export function setBlocking(fd: number, blocking: boolean): void {
  (binding ?? load()).setBlocking(fd, blocking);
}

/**
 * Whether `fd` is in blocking mode (Python's `os.get_blocking`).
 *
 * @param fd - the descriptor.
 * @returns true when `O_NONBLOCK` is clear.
 */
export function getBlocking(fd: number): boolean {
  return (binding ?? load()).getBlocking(fd);
}

/**
 * Reads at most `length` bytes into `buf` at `offset`.
 *
 * @param fd - the descriptor.
 * @param buf - where the bytes go.
 * @param offset - in bytes, 0 by default.
 * @param length - in bytes, the rest of `buf` by default.
 * @returns the bytes read; 0 at end of file; -1 when nothing is available now (EAGAIN).
 */
export function read(fd: number, buf: ArrayBufferView, offset = 0, length = buf.byteLength - offset): number {
  return (binding ?? load()).read(fd, buf, offset, length);
}

/**
 * Writes at most `length` bytes of `buf` from `offset`.
 *
 * @param fd - the descriptor.
 * @param buf - the bytes.
 * @param offset - in bytes, 0 by default.
 * @param length - in bytes, the rest of `buf` by default.
 * @returns the bytes written (maybe fewer than asked); -1 when none can be written now (EAGAIN).
 */
export function write(fd: number, buf: ArrayBufferView, offset = 0, length = buf.byteLength - offset): number {
  return (binding ?? load()).write(fd, buf, offset, length);
}

/**
 * Writes several buffers in one call (at most the first `IOV_MAX`, 1024).
 *
 * @param fd - the descriptor.
 * @param buffers - the bytes, in order.
 * @returns the bytes written, which may end inside any buffer; -1 when none can be written now (EAGAIN).
 */
export function writev(fd: number, buffers: readonly ArrayBufferView[]): number {
  return (binding ?? load()).writev(fd, buffers);
}

/**
 * Where the first byte of `buf` lies modulo 4096 (a page on x86-64). Reads that land a few bytes past their
 * source modulo 4096 make the kernel's copy several times slower (4K aliasing), so a read buffer is best
 * 4 KiB-aligned.
 *
 * @param buf - the bytes.
 * @returns the address of `buf`'s first byte modulo 4096.
 */
export function pageOffset(buf: ArrayBufferView): number {
  return (binding ?? load()).pageOffset(buf);
}

// ---------------------------------------------------------------------------------------------------------
// Sockets

/**
 * Creates a socket, non-blocking and close-on-exec.
 *
 * @param family - `AF_INET`, `AF_INET6`, `AF_UNIX`.
 * @param type - `SOCK_STREAM`, `SOCK_DGRAM`...
 * @param proto - 0 by default.
 * @returns the fd.
 */
export function socket(family: number, type: number, proto = 0): number {
  return (binding ?? load()).socket(family, type, proto);
}

/**
 * Binds the socket to `address`, read in the socket's family.
 *
 * @param fd - the socket.
 * @param address - e.g. `['127.0.0.1', 0]`, `['::', 0]`, a path, or an abstract name `Buffer.from('\0name')`.
 * @throws SystemError `EADDRINUSE`, `EACCES`...; ValueError for a host that is not numeric.
 */
export function bind(fd: number, address: SocketAddressLike): void {
  (binding ?? load()).bind(fd, address);
}

/**
 * Makes the socket accept connections.
 *
 * @param fd - a bound stream socket.
 * @param backlog - the queue length, `SOMAXCONN` by default.
 */
export function listen(fd: number, backlog?: number): void {
  const b = binding ?? load();
  b.listen(fd, backlog ?? b.constants.SOMAXCONN);
}

/**
 * Accepts one connection; the new socket is non-blocking and close-on-exec.
 *
 * @param fd - a listening socket.
 * @returns `[fd, peerAddress]`, or null when no connection is waiting (EAGAIN).
 * @throws SystemError `ECONNABORTED`, `EMFILE`... (asyncio ignores the first and pauses on the second).
 */
export function accept(fd: number): [fd: number, address: SocketAddress | null] | null {
  return (binding ?? load()).accept(fd);
}

/**
 * Starts connecting the socket to `address`.
 *
 * @param fd - the socket.
 * @param address - the peer, read in the socket's family.
 * @returns 0 when connected; 1 when in progress: wait until the fd is writable, then read
 *   {@link getSocketError} (`EINPROGRESS`, `EINTR`, and `EAGAIN` on a full Unix backlog all give 1).
 * @throws SystemError `ECONNREFUSED` (immediate refusal), `ENOENT` (no such Unix path)...
 */
export function connect(fd: number, address: SocketAddressLike): 0 | 1 {
  return (binding ?? load()).connect(fd, address);
}

/**
 * Reads and clears the socket's pending error (`SO_ERROR`), how a non-blocking connect reports its outcome.
 *
 * @param fd - the socket.
 * @returns the errno, positive, or 0; make the error with {@link systemError}.
 */
export function getSocketError(fd: number): number {
  return (binding ?? load()).getSocketError(fd);
}

/**
 * The socket's type (`SO_TYPE`), to check a socket handed in as a number.
 *
 * @param fd - the socket.
 * @returns `SOCK_STREAM`, `SOCK_DGRAM`...
 * @throws SystemError `ENOTSOCK` when `fd` is not a socket.
 */
export function getSocketType(fd: number): number {
  return (binding ?? load()).getSocketType(fd);
}

/**
 * The socket's family (`SO_DOMAIN`), to check a socket handed in as a number.
 *
 * @param fd - the socket.
 * @returns `AF_INET`, `AF_INET6`, `AF_UNIX`...
 * @throws SystemError `ENOTSOCK` when `fd` is not a socket.
 */
export function getSocketFamily(fd: number): number {
  return (binding ?? load()).getSocketFamily(fd);
}

/**
 * The socket's protocol (`SO_PROTOCOL`), e.g. `IPPROTO_TCP`.
 *
 * @param fd - the socket.
 * @returns the protocol number.
 */
export function getSocketProtocol(fd: number): number {
  return (binding ?? load()).getSocketProtocol(fd);
}

/**
 * Shuts down one or both directions of the connection.
 *
 * @param fd - the socket.
 * @param how - `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
 */
export function shutdown(fd: number, how: number): void {
  (binding ?? load()).shutdown(fd, how);
}

/**
 * Sends bytes on a connected socket; never raises `SIGPIPE` (`MSG_NOSIGNAL`), a closed peer gives `EPIPE`.
 *
 * @param fd - the socket.
 * @param buf - the bytes.
 * @param offset - in bytes, 0 by default.
 * @param length - in bytes, the rest of `buf` by default.
 * @param flags - `MSG_*` flags, 0 by default.
 * @returns the bytes sent (maybe fewer than asked); -1 when none can be sent now (EAGAIN).
 */
export function send(
  fd: number,
  buf: ArrayBufferView,
  offset = 0,
  length = buf.byteLength - offset,
  flags = 0,
): number {
  return (binding ?? load()).send(fd, buf, offset, length, flags);
}

/**
 * Receives bytes into `buf` at `offset`.
 *
 * @param fd - the socket.
 * @param buf - where the bytes go.
 * @param offset - in bytes, 0 by default.
 * @param length - in bytes, the rest of `buf` by default.
 * @param flags - `MSG_*` flags (`MSG_PEEK`...), 0 by default.
 * @returns the bytes received; 0 when the peer has closed (EOF); -1 when nothing is available now (EAGAIN).
 */
export function recv(
  fd: number,
  buf: ArrayBufferView,
  offset = 0,
  length = buf.byteLength - offset,
  flags = 0,
): number {
  return (binding ?? load()).recv(fd, buf, offset, length, flags);
}

/**
 * Sends a datagram to `address`.
 *
 * @param fd - the socket.
 * @param buf - the bytes.
 * @param offset - in bytes.
 * @param length - in bytes.
 * @param address - the destination, read in the socket's family.
 * @param flags - `MSG_*` flags, 0 by default.
 * @returns the bytes sent; -1 when the socket buffer is full (EAGAIN).
 */
export function sendto(
  fd: number,
  buf: ArrayBufferView,
  offset: number,
  length: number,
  address: SocketAddressLike,
  flags = 0,
): number {
  return (binding ?? load()).sendto(fd, buf, offset, length, address, flags);
}

/**
 * Receives a datagram into `buf` at `offset`; a datagram longer than `length` is truncated.
 *
 * @param fd - the socket.
 * @param buf - where the bytes go.
 * @param offset - in bytes, 0 by default.
 * @param length - in bytes, the rest of `buf` by default.
 * @param flags - `MSG_*` flags, 0 by default.
 * @returns `[bytes, senderAddress]` (the address is null when the kernel gives none, e.g. an unbound Unix
 *   peer), or null when no datagram is waiting (EAGAIN).
 */
export function recvfrom(
  fd: number,
  buf: ArrayBufferView,
  offset = 0,
  length = buf.byteLength - offset,
  flags = 0,
): [bytes: number, address: SocketAddress | null] | null {
  return (binding ?? load()).recvfrom(fd, buf, offset, length, flags);
}

/**
 * Sets an integer (or boolean) socket option.
 *
 * @param fd - the socket.
 * @param level - `SOL_SOCKET`, `IPPROTO_TCP`, `IPPROTO_IPV6`...
 * @param name - `SO_REUSEADDR`, `TCP_NODELAY`...
 * @param value - the value; booleans are 1 and 0.
 */
export function setsockopt(fd: number, level: number, name: number, value: number | boolean): void {
  (binding ?? load()).setsockopt(fd, level, name, Number(value));
}

/**
 * Reads an integer socket option.
 *
 * @param fd - the socket.
 * @param level - `SOL_SOCKET`, `IPPROTO_TCP`...
 * @param name - the option.
 * @returns its value (booleans read back as 0 or 1).
 */
export function getsockopt(fd: number, level: number, name: number): number {
  return (binding ?? load()).getsockopt(fd, level, name);
}

/**
 * The socket's own address.
 *
 * @param fd - the socket.
 * @returns the address (`''` for an unbound Unix socket), null for a family the addon does not decode.
 */
export function getsockname(fd: number): SocketAddress | null {
  return (binding ?? load()).getsockname(fd);
}

/**
 * The connected peer's address.
 *
 * @param fd - the socket.
 * @returns the address (`''` for an unnamed Unix peer), null for a family the addon does not decode.
 * @throws SystemError `ENOTCONN` when not connected.
 */
export function getpeername(fd: number): SocketAddress | null {
  return (binding ?? load()).getpeername(fd);
}

// ---------------------------------------------------------------------------------------------------------
// sendfile

/**
 * Sends `count` bytes of file `inFd` from `offset` to `outFd` with `sendfile(2)` on a libuv threadpool
 * thread, then calls `callback` once. A non-blocking `outFd` that is full is waited for (`poll(2)` in slices
 * of 100 ms, so that {@link SendfileHandle.cancel} is seen). The transfer keeps the loop alive; `process.exit()`
 * and a worker's termination cancel it. Do not write to `outFd` meanwhile. Use a non-blocking `outFd`: on a
 * blocking one, a cancel waits for the current `sendfile(2)` call (up to 1 MiB) to finish.
 *
 * @param outFd - a socket (or any fd sendfile(2) writes to).
 * @param inFd - a regular file.
 * @param offset - in bytes, where to read from; `inFd`'s file position is left as it is. `null` reads from
 *   the file position and advances it.
 * @param count - in bytes; 0 sends until end of file.
 * @param callback - `(err, bytesSent)`; `err` carries `bytesSent` too.
 * @returns a handle to cancel the transfer.
 * @example
 * sendfile(sock, file, 0, 0, (err, n) => (err ? fut.setException(err) : fut.setResult(n)));
 */
export function sendfile(
  outFd: number,
  inFd: number,
  offset: number | null,
  count: number,
  callback: SendfileCallback,
): SendfileHandle {
  const b = binding ?? load();
  if (offset !== null && offset < 0) throw new ValueError(`offset must be >= 0 or null, got ${offset}`);
  if (!exitHookInstalled) {
    // process.exit() joins the threadpool without running cleanup hooks: a transfer waiting on a peer that
    // never reads would hang the exit. 'exit' listeners run before that join.
    exitHookInstalled = true;
    process.on('exit', () => b.sendfileCancelAll());
  }
  const job = b.sendfile(outFd, inFd, offset ?? -1, count, (errno, bytesSent) => {
    if (errno === 0) return callback(null, bytesSent);
    const err = systemError(errno, 'sendfile') as SendfileError;
    err.bytesSent = bytesSent;
    callback(err, bytesSent);
  });
  return { cancel: () => b.sendfileCancel(job) };
}
