/**
 * The stream transport straight on a connected non-blocking socket fd (asyncio's `_SelectorSocketTransport`
 * proper): the fast path for plain TCP and Unix connections when the native addon is available.
 *
 * One `uv_poll` per connection: on readable, one `recv` into a read slab shared by every connection of the
 * thread (a `BufferedProtocol` reads into its own buffer instead, with no copy at all). A large read is handed to
 * the protocol as a view of the slab, and the slab moves on past it: no copy, and one allocation per 512 KiB
 * slab rather than one per read (at 100 KiB messages, a fresh allocation per read costs more than the syscalls:
 * page faults and garbage collections). A small read is copied out: up to 4 KiB into Node's own buffer pool, up
 * to 32 KiB into a 64 KiB copy arena that the next mid-size reads share (a copy, but no allocation of its own),
 * so that a kept piece pins no more than 16 times its size (the small ones, Node's 8 KiB pool). After a mid-size
 * read, the next one goes straight to the arena, with room for twice as much (a read that fills it sends the next
 * to the slab): at 10 KiB echo that copy was a tenth of the CPU per request. A kept large
 * piece (over 32 KiB) pins at most its slab, 16 times its size too. Every read goes to a 4 KiB-aligned address
 * of the slab: the kernel's copy into user memory runs several times slower when the destination lies a few
 * bytes past the source modulo 4 KiB (4K aliasing; at 10 KiB echo, about 4 µs of copying per read instead of
 * 1). Slabs come from Node's allocator. A pool of external buffers from the addon (memory that stays mapped, no
 * page faults) was measured twice as slow at 100 KiB echo when V8 alone decided when to collect: the external
 * buffers piled up until a full collection, where Node's own are freed by the young generation's scavenges. With
 * read-memory.ts's scavenges it saved 7-15 % in slow phases and nothing in a fast one (bench/README.md), and
 * without them (`LOOPWORK_READ_GC=0`) it was three times slower: not worth depending on. Slabs of 2 MiB huge pages
 * (`madvise`) cut the page faults at 100 KiB echo eightfold and the CPU per request not at all: what costs is the
 * cold memory each read lands in, not the faults (V8 frees ArrayBuffer memory in the scavenges it starts after each
 * 32 MiB of it, so the reads would cycle through that much memory: read-memory.ts asks for scavenges sooner). Only a
 * protocol that keeps nothing of a read can be handed memory reused at once, and a `BufferedProtocol` says so: at
 * 100 KiB echo it costs two thirds of a `Protocol`'s CPU per request, on the same transport. `write()` calls
 * `send` at once while nothing is buffered, and only what the kernel does not take is buffered and written
 * (`writev`) when the fd becomes writable. No Node stream sits in between.
 *
 * It behaves as `SocketTransport` does (see socket-transport.ts): the same callback order and scheduling
 * (`connectionMade` with `callSoon`, reading from the callback after it, `connectionLost` exactly once with
 * `callSoon` after the fd is closed), the same errors (`read ECONNRESET`, `write EPIPE`...) to `connectionLost`,
 * the same `getExtraInfo` keys and shapes, the same auto-close once both directions have ended. `startTls` takes
 * the fd over with `_detach()`, which hands it to a `net.Socket`.
 *
 * `LOOPWORK_TRANSPORT=socket` makes the loop's connection methods use `SocketTransport` instead (see
 * {@link fdTransportEnabled}).
 *
 * @module
 */
import net from 'node:net';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import type { BaseSocketTransportOptions, BufferedLike, StreamLike } from './base-socket-transport.js';
import { BaseSocketTransport, isSystemError } from './base-socket-transport.js';
import { enterOwnScope, exitOwnScope } from './context.js';
import { RuntimeError } from './errors.js';
import type { Future } from './futures.js';
import type { PollHandle } from './native.js';
import {
  READABLE,
  WRITABLE,
  close as closeFd,
  getSocketFamily,
  nativeAvailable,
  pageOffset,
  pollStart,
  pollStop,
  pollUnref,
  pollUpdate,
  recv,
  send,
  setsockopt,
  shutdown,
  systemError,
  writev,
} from './native.js';
import { onLoopClose } from './node-event-loop.js';
import type { Address, BaseProtocol } from './protocols.js';
import { protocolBuffer } from './protocols.js';
import { readMemoryUsed } from './read-memory.js';
import { TransportSocket, nativeAddress } from './socket-transport.js';
import type { ExtraInfo, Transport } from './transports.js';
import { checkBytes } from './transports.js';
import { registerTransportFd, unregisterTransportFd } from './fd-watchers.js';

/** The most one readiness event reads (asyncio's `max_size`). */
const MAX_READ = 256 * 1024;
/** The size of a read slab: reads go to its free end, and a large one is handed over as a view of it. */
const READ_SLAB_SIZE = 512 * 1024;
/** A read of at most this many bytes is copied out of the slab (whose space is then read into again). */
const COPY_READ_MAX = 32 * 1024;
/** A slab with less free space than this is replaced before a read (a read gets at least this much room). */
const MIN_READ_ROOM = 64 * 1024;
/** `writev` takes at most this many buffers (`IOV_MAX`). */
const IOV_MAX = 1024;

const AF_UNIX = 1;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SHUT_WR = 1;
const EPIPE = 32;

/** Reads start at addresses that are multiples of this (see the module's documentation). */
const READ_ALIGN = 4096;

/**
 * The slab every transport of this thread reads into (see the module's documentation), starting at an address
 * that is a multiple of `READ_ALIGN`, and its free offset, a multiple of `READ_ALIGN` too.
 */
let slab: Buffer | null = null;
let slabOffset = 0;

/** A new read slab: `READ_SLAB_SIZE` bytes less the head that puts its first byte on a `READ_ALIGN` boundary. */
function newSlab(): Buffer {
  const raw = Buffer.allocUnsafeSlow(READ_SLAB_SIZE);
  return raw.subarray((READ_ALIGN - pageOffset(raw)) % READ_ALIGN);
}

/** Reads of more than this many bytes (and at most `COPY_READ_MAX`) are copied into the copy arena. */
const ARENA_MIN = 4 * 1024;
/** The size of a copy arena: a kept chunk of at least `ARENA_MIN` bytes holds at most 16 times its size. */
const ARENA_SIZE = 64 * 1024;
/** Where mid-size reads are copied to, one after the other (small ones go to Node's own 8 KiB pool). */
let arena: Buffer | null = null;
let arenaOffset = 0;

/**
 * A new copy arena: `ARENA_SIZE` bytes less the head that puts its first byte on a `READ_ALIGN` boundary (reads may
 * go straight to it).
 */
function newArena(): Buffer {
  const raw = Buffer.allocUnsafeSlow(ARENA_SIZE);
  return raw.subarray((READ_ALIGN - pageOffset(raw)) % READ_ALIGN);
}

/**
 * A copy of `src[offset, offset + n)` that the protocol owns: from Node's buffer pool when small, else from the
 * copy arena, so that a 10 KiB read costs a copy but not an allocation of its own.
 */
function copyOut(src: Buffer, offset: number, n: number): Buffer {
  if (n <= ARENA_MIN) {
    const data = Buffer.allocUnsafe(n);
    src.copy(data, 0, offset, offset + n);
    return data;
  }
  if (arena === null || arena.length - arenaOffset < n) {
    arena = newArena();
    arenaOffset = 0;
  }
  const data = arena.subarray(arenaOffset, arenaOffset + n);
  src.copy(arena, arenaOffset, offset, offset + n);
  arenaOffset += (n + 7) & ~7;
  return data;
}

/**
 * @internal A paused `net.Socket` (half-open allowed) on the fd of a connected socket; it owns the fd from now
 * on. How a connection goes from an fd to Node: for TLS, and when a transport is detached.
 */
export function netSocketOf(fd: number): net.Socket {
  return new net.Socket({
    fd,
    allowHalfOpen: true,
    readable: true,
    writable: true,
    pauseOnCreate: true,
  } as net.SocketConstructorOpts);
}

/** The open transports of each loop, closed with it. */
const live = new WeakMap<BaseEventLoop, Set<FdTransport>>();

onLoopClose((loop) => {
  const set = live.get(loop);
  if (set === undefined) return;
  live.delete(loop);
  for (const t of [...set]) t._loopClosed();
});

/**
 * Whether the loop's connection methods (`createServer`, `createConnection`, `connectAcceptedSocket` and the Unix
 * ones) carry plain TCP and Unix connections on {@link FdTransport}: when the native addon is available, unless
 * the environment variable `LOOPWORK_TRANSPORT` is `socket` (the portable `SocketTransport`, on `net.Socket`).
 * TLS connections always use `net.Socket`, the base of node:tls.
 *
 * @returns true for the fast path.
 */
export function fdTransportEnabled(): boolean {
  return process.env.LOOPWORK_TRANSPORT !== 'socket' && nativeAvailable();
}

/** Options of `new FdTransport()`. */
export interface FdTransportOptions extends BaseSocketTransportOptions {
  /** The socket's address family when the caller knows it (saves a system call); read from the fd otherwise. */
  family?: number;
}

/**
 * A stream transport on a connected non-blocking socket fd (TCP or Unix), polled with the native addon.
 *
 * Made by the loop's connection methods, never by user code. It owns the fd: it closes it once the connection is
 * closed, aborted or lost, and when its loop is closed. Its protocol sees exactly what a `SocketTransport`'s sees.
 */
export class FdTransport extends BaseSocketTransport implements Transport {
  /** @internal the fd; -1 once closed or handed over. */
  _fd: number;
  /** @internal the fd number, kept for inspection after close. */
  readonly _fileno: number;
  /** @internal */
  _poll: PollHandle | null;
  /** @internal the events the poll waits for now. */
  _pollMask = 0;
  /** @internal buffered bytes the kernel has not taken yet, in order (the caller's buffers, not copies). */
  _buffer: Uint8Array[] = [];
  /** @internal */
  _bufferSize = 0;
  /** @internal the fd was readable while the loop was stopped: it is read once the loop runs again. */
  _readDeferred = false;
  /** @internal EOF was received and the protocol kept the transport open. */
  _readEof = false;
  /** @internal the write direction is shut down (a FIN was sent). */
  _shutdown = false;
  /** @internal connectionLost has run: the transport is closed. */
  _finished = false;
  /** @internal the error of a write the kernel refused, reported by a callback. */
  _writeError: unknown = null;
  /** @internal How `loop.sendfile` sends on this transport: zero-copy, through `_sendfileNative`. */
  readonly _sendfileCompatible = 'native';
  /** @internal asyncio's `_empty_waiter`: resolved once the write buffer is empty. */
  _emptyWaiter: Future<void> | null = null;
  /** @internal called with the error (or null) when the fd is closed, while a sendfile(2) runs on it. */
  _onFdClosed: ((reason: Error | null) => void) | null = null;
  /** @internal */
  readonly _family: number;
  /** @internal */
  _socketView: TransportSocket | null = null;
  /** @internal the size of the last read: a mid-size one sends the next read straight to the copy arena. */
  _lastRead = 0;

  /**
   * Wraps a connected socket fd. The protocol's `connectionMade` is scheduled with `callSoon`, reading starts
   * right after it, and then `options.waiter` is completed.
   *
   * @param loop - the loop that calls the protocol.
   * @param fd - a connected stream socket (TCP or Unix); the transport owns it from now on, and makes it
   *   non-blocking.
   * @param protocol - the protocol (`Protocol` or `BufferedProtocol`).
   * @param options - `waiter`, `extra`, `server`, `family`.
   * @throws SystemError from `uv_poll_init` (`EEXIST` when a Node handle already polls the fd); the fd is then
   *   still the caller's.
   */
  constructor(loop: BaseEventLoop, fd: number, protocol: BaseProtocol, options: FdTransportOptions = {}) {
    super(loop, protocol, options);
    // Before anything is registered, so that a failure leaves nothing behind. Unreferenced: the running loop keeps the process alive,
    // as a blocked run_forever() keeps Python's; a forgotten connection must not keep it alive once it is done.
    this._poll = pollStart(fd, 0, this._onPoll);
    pollUnref(this._poll);
    this._fd = fd;
    this._fileno = fd;
    let family = options.family;
    if (family === undefined) {
      try {
        family = getSocketFamily(fd);
      } catch {
        family = 0;
      }
    }
    this._family = family;
    if (family !== AF_UNIX) {
      try {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
      } catch {
        // not TCP after all, or already reset: nothing to tune
      }
    }
    this._readAddresses();
    registerTransportFd(loop, fd, this);
    let set = live.get(loop);
    if (set === undefined) {
      set = new Set();
      live.set(loop, set);
    }
    set.add(this);
    this._begin(options.waiter ?? null);
  }

  // ---- BaseTransport --------------------------------------------------------------------------------------

  /**
   * Optional information about the transport: `'peername'`, `'sockname'`, `'socket'` (a read-only
   * `TransportSocket`).
   *
   * @param name - the key.
   * @param defaultValue - returned when the transport has no such information.
   */
  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    if (name === 'socket') {
      // Also once closed, as asyncio's extra 'socket' stays: a view made now tells -1 for the fd.
      if (this._socketView === null) {
        const known: { sockname?: Address | null; peername?: Address | null; family: number } = {
          family: this._family,
        };
        if (this._extra.sockname !== undefined) known.sockname = this._extra.sockname as Address | null;
        if (this._extra.peername !== undefined) known.peername = this._extra.peername as Address | null;
        // Told the fd at each call: -1 once the transport has closed it (its number may be reused by then).
        this._socketView = new TransportSocket(() => this._fd, known);
      }
      return this._socketView;
    }
    const v = this._extra[name];
    return v === undefined ? defaultValue : v;
  }

  /**
   * Closes the transport: no more data is delivered, buffered data is flushed, then the fd is closed and the
   * protocol's `connectionLost(null)` is called. Idempotent.
   */
  close(): void {
    if (this._closing) return;
    this._closing = true;
    if (this._bufferSize === 0) {
      this._destroy(null);
      return;
    }
    // Flush first: _writeReady() closes the fd once the kernel has taken everything.
    this._updatePoll();
  }

  // ---- ReadTransport --------------------------------------------------------------------------------------

  // ---- WriteTransport -------------------------------------------------------------------------------------

  /** The bytes buffered and not yet handed to the kernel. */
  getWriteBufferSize(): number {
    return this._bufferSize;
  }

  /**
   * Writes bytes; never blocks. The kernel gets them at once when nothing is buffered; what it does not take is
   * buffered (not copied: do not change the buffer afterwards), and the protocol's `pauseWriting()` is called
   * when the buffer goes over the high-water mark. After `close()`, writes join the buffer while it is still
   * being flushed, as asyncio's do; once it is empty, or the connection is lost, they are dropped (a warning is
   * logged from the fifth on).
   *
   * @throws TypeError when `data` is not bytes; RuntimeError after `writeEof()`.
   */
  write(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) checkBytes(data, 'write');
    this._checkWritable('write');
    const len = data.byteLength;
    if (len === 0) return;
    if (this._closing && (this._bufferSize === 0 || this._lostScheduled)) {
      this._droppedWrite();
      return;
    }
    if (this._bufferSize === 0 && this._writeError === null) {
      let n: number;
      try {
        n = send(this._fd, data, 0, len, 0);
      } catch (err) {
        this._deferWriteError(err);
        return;
      }
      if (n === len) return;
      this._buffer.push(n > 0 ? data.subarray(n) : data);
      this._bufferSize = n > 0 ? len - n : len;
      this._updatePoll();
    } else {
      this._buffer.push(data);
      this._bufferSize += len;
      if (this._bufferSize === len) this._updatePoll();
    }
    if (!this._protocolPaused && this._bufferSize > this._highWater) this._maybePauseProtocol();
  }

  /**
   * Writes a list of byte buffers, as one `writev` where possible.
   *
   * @throws TypeError when an item is not bytes; RuntimeError after `writeEof()`.
   */
  writelines(list: Iterable<Uint8Array>): void {
    const items = this._writelinesItems(list);
    const parts = items.filter((item) => item.byteLength > 0);
    if (parts.length === 0) return;
    if (this._closing && (this._bufferSize === 0 || this._lostScheduled)) {
      this._droppedWrite();
      return;
    }
    if (parts.length === 1) {
      this.write(parts[0] as Uint8Array);
      return;
    }
    const wasEmpty = this._bufferSize === 0;
    for (const part of parts) {
      this._buffer.push(part);
      this._bufferSize += part.byteLength;
    }
    if (wasEmpty && this._writeError !== null) {
      this._updatePoll();
    } else if (wasEmpty) {
      let n: number;
      try {
        n = writev(this._fd, this._buffer.length > IOV_MAX ? this._buffer.slice(0, IOV_MAX) : this._buffer);
      } catch (err) {
        this._buffer = [];
        this._bufferSize = 0;
        this._deferWriteError(err);
        return;
      }
      if (n > 0) this._consume(n);
      if (this._bufferSize === 0) return;
      this._updatePoll();
    }
    if (!this._protocolPaused && this._bufferSize > this._highWater) this._maybePauseProtocol();
  }

  /** Closes the write end once buffered data is flushed (a TCP FIN); reading goes on. */
  writeEof(): void {
    if (this._closing || this._eof) return;
    this._eof = true;
    if (this._bufferSize === 0) this._shutdownWrite();
  }

  // ---- internals ------------------------------------------------------------------------------------------

  /**
   * Hands the fd over (for `startTls`) as a paused `net.Socket`: the transport stops touching it and will never
   * call its protocol again; what it had buffered is written to the socket first. Its server (if any) keeps
   * counting it until the socket closes; pass `_server` (read it first) to the new transport.
   *
   * @returns the socket.
   * @throws RuntimeError when the transport is closing or already detached.
   */
  _detach(): net.Socket {
    const fd = this._fd;
    if (fd < 0 || this._closing) throw new RuntimeError(`transport ${inspect(this)} is closing`);
    // The poll must be gone before a Node handle watches the same fd (libuv keeps one watcher per fd).
    this._releaseFd();
    const server = this._markDetached();
    let sock: net.Socket;
    try {
      sock = netSocketOf(fd);
    } catch (err) {
      closeQuietly(fd);
      server?._detach(this);
      throw err;
    }
    sock.unref();
    const pending = this._buffer;
    this._buffer = [];
    this._bufferSize = 0;
    for (const chunk of pending) sock.write(chunk);
    // The connection lives on in the new transport: the server counts this one until the socket is closed, so
    // that waitClosed() cannot slip through between the hand-over and the new transport's attach.
    if (server !== null) sock.once('close', () => server._detach(this));
    return sock;
  }

  /**
   * @internal asyncio's `_sendfile_native` for this transport: once the write buffer is drained, with reading
   * paused and `write()` refused, `run(fd, watchClose)` sends the file with `sendfile(2)` (sendfile.ts does);
   * `watchClose` registers what to call when the transport closes the fd meanwhile.
   *
   * @throws SendfileNotAvailableError-like errors from `run`; RuntimeError when a transfer already runs.
   */
  async _sendfileNative(
    run: (fd: number, watchClose: (abort: (reason: Error | null) => void) => () => void) => Promise<number>,
  ): Promise<number> {
    if (this._emptyWaiter !== null || this._sendfileActive) throw new RuntimeError('Empty waiter is already set');
    const resumeReading = this.isReading();
    this.pauseReading();
    this._sendfileActive = true;
    try {
      const waiter = this._loop.createFuture<void>();
      this._emptyWaiter = waiter;
      if (this._bufferSize === 0) waiter.setResult(undefined);
      try {
        await waiter;
      } finally {
        this._emptyWaiter = null;
      }
      if (this._fd < 0) throw systemError(EPIPE, 'write');
      return await run(this._fd, (abort) => {
        this._onFdClosed = abort;
        return () => {
          if (this._onFdClosed === abort) this._onFdClosed = null;
        };
      });
    } finally {
      this._sendfileActive = false;
      if (resumeReading) this.resumeReading();
    }
  }

  /** @internal Called by the poll when the fd is ready. */
  readonly _onPoll = (status: number, events: number): void => {
    const outer = enterOwnScope(this);
    try {
      if (status < 0) {
        // libuv stopped the poll: the fd was closed behind the transport's back, and its number may belong to
        // someone else by now. Forget it without closing it.
        this._releaseFd();
        this._fatalError(systemError(status, 'uv_poll'));
        return;
      }
      if ((events & READABLE) !== 0 && (this._pollMask & READABLE) !== 0) this._readReady();
      if ((events & WRITABLE) !== 0 && this._bufferSize > 0 && this._fd >= 0) this._writeReady();
    } finally {
      exitOwnScope(this, outer);
    }
  };

  /** @internal */
  _updateReading(): void {
    this._updatePoll();
  }

  /** @internal Makes the poll wait for exactly what the transport needs now. */
  _updatePoll(): void {
    const poll = this._poll;
    if (poll === null) return;
    let mask = 0;
    if (this._readStarted && !this._paused && !this._closing && !this._readEof && !this._readDeferred) {
      mask = READABLE;
    }
    if (this._bufferSize > 0) mask |= WRITABLE;
    if (mask === this._pollMask) return;
    this._pollMask = mask;
    pollUpdate(poll, mask);
  }

  /** @internal asyncio's `_read_ready`: one `recv` per readiness event. */
  _readReady(): void {
    const loop = this._loop;
    if (!loop._running) {
      // Nobody may call the protocol while the loop is stopped: read once it runs again (a level-triggered fd
      // would spin meanwhile).
      if (loop.isClosed()) return;
      this._readDeferred = true;
      this._updatePoll();
      loop._callSoonInternal(this._deferredRead, [], this._context);
      return;
    }
    if (this._bufferedProto) {
      this._readIntoBuffer();
      return;
    }
    const last = this._lastRead;
    let data: Buffer;
    if (last > ARENA_MIN && last <= COPY_READ_MAX) {
      // The last read was mid-size: read straight into the copy arena, with room for twice as much (what does not
      // fit comes with the next readiness event), rather than into the slab and then copy it there.
      const room = Math.min(2 * last, COPY_READ_MAX);
      let offset = (arenaOffset + READ_ALIGN - 1) & -READ_ALIGN;
      if (arena === null || arena.length - offset < room) {
        arena = newArena();
        offset = 0;
      }
      const buf = arena;
      const n = this._recv(buf, offset, room);
      if (n === 0) return;
      // A read that filled its room may have left more behind: the next one goes to the slab, with room for all.
      this._lastRead = n === room ? MAX_READ : n;
      if (n <= ARENA_MIN) {
        // A small piece does not pin the arena: it goes to Node's pool, and its room is read into again.
        data = copyOut(buf, offset, n);
      } else {
        data = buf.subarray(offset, offset + n);
        arenaOffset = offset + n;
      }
    } else {
      let buf = slab;
      let offset = slabOffset;
      if (buf === null || buf.length - offset < MIN_READ_ROOM) {
        buf = slab = newSlab();
        offset = slabOffset = 0;
      }
      const n = this._recv(buf, offset, Math.min(buf.length - offset, MAX_READ));
      if (n === 0) return;
      this._lastRead = n;
      // The protocol owns what it gets (asyncio gives bytes): nothing ever writes to these bytes again.
      if (n <= COPY_READ_MAX) {
        data = copyOut(buf, offset, n);
      } else {
        data = buf.subarray(offset, offset + n);
        slabOffset = offset + ((n + READ_ALIGN - 1) & -READ_ALIGN);
      }
    }
    readMemoryUsed(data.length);
    try {
      (this._protocol as unknown as StreamLike).dataReceived(data);
    } catch (exc) {
      this._fatalError(exc, 'Fatal error: protocol.dataReceived() call failed.');
    }
  }

  /**
   * @internal One `recv` into `buf[offset, offset + length)`: the bytes received, or 0 when there is nothing to
   * deliver (nothing available yet; the end of the stream, or a read error, both already dealt with).
   */
  _recv(buf: Uint8Array, offset: number, length: number): number {
    let n: number;
    try {
      n = recv(this._fd, buf, offset, length, 0);
    } catch (err) {
      this._fatalError(nodeError(err, 'read'), 'Fatal read error on socket transport');
      return 0;
    }
    if (n > 0) return n;
    if (n === 0) this._eofReceived();
    return 0;
  }

  /** @internal The read deferred while the loop was stopped. */
  readonly _deferredRead = (): void => {
    this._readDeferred = false;
    this._updatePoll();
    if ((this._pollMask & READABLE) !== 0) this._readReady();
  };

  /** @internal asyncio's `_read_ready__get_buffer`: `recv` straight into the protocol's buffer. */
  _readIntoBuffer(): void {
    const proto = this._protocol as unknown as BufferedLike;
    let buf: Uint8Array;
    try {
      buf = protocolBuffer(proto, -1);
    } catch (exc) {
      this._fatalError(exc, 'Fatal error: protocol.getBuffer() call failed.');
      return;
    }
    const n = this._recv(buf, 0, buf.byteLength);
    if (n === 0) return;
    try {
      proto.bufferUpdated(n);
    } catch (exc) {
      this._fatalError(exc, 'Fatal error: protocol.bufferUpdated() call failed.');
    }
  }

  /** @internal asyncio's `_read_ready__on_eof`. */
  _eofReceived(): void {
    if (this._loop._debug) this._loop.logger.debug({ transport: inspect(this) }, 'received EOF');
    this._readEof = true;
    this._updatePoll();
    let keepOpen: unknown;
    try {
      keepOpen = (this._protocol as unknown as StreamLike).eofReceived?.();
    } catch (exc) {
      this._fatalError(exc, 'Fatal error: protocol.eofReceived() call failed.');
      return;
    }
    // Both directions ended: the connection is over, as a Node socket closes itself then.
    if (!keepOpen || this._shutdown) this.close();
  }

  /** @internal asyncio's `_write_ready`. */
  _writeReady(): void {
    const buffer = this._buffer;
    let n: number;
    try {
      if (buffer.length === 1) {
        const head = buffer[0] as Uint8Array;
        n = send(this._fd, head, 0, head.byteLength, 0);
      } else {
        n = writev(this._fd, buffer.length > IOV_MAX ? buffer.slice(0, IOV_MAX) : buffer);
      }
    } catch (err) {
      this._buffer = [];
      this._bufferSize = 0;
      this._fatalError(nodeError(err, 'write'), 'Fatal write error on socket transport');
      return;
    }
    if (n <= 0) return;
    this._consume(n);
    // May write more: straight to the kernel if the buffer is empty now.
    if (this._protocolPaused) this._maybeResumeProtocol();
    if (this._bufferSize > 0 || this._fd < 0) return;
    this._updatePoll();
    const waiter = this._emptyWaiter;
    if (waiter !== null && !waiter.done()) waiter.setResult(undefined);
    if (this._closing) this._destroy(null);
    else if (this._eof) this._shutdownWrite();
  }

  /** @internal Drops the first `n` buffered bytes (the kernel took them). */
  _consume(n: number): void {
    this._bufferSize -= n;
    if (this._bufferSize === 0) {
      this._buffer = [];
      return;
    }
    const buffer = this._buffer;
    let i = 0;
    while (n > 0) {
      const head = buffer[i] as Uint8Array;
      if (head.byteLength <= n) {
        n -= head.byteLength;
        i++;
      } else {
        buffer[i] = head.subarray(n);
        n = 0;
      }
    }
    if (i > 0) buffer.splice(0, i);
  }

  /** @internal Sends the FIN once everything buffered is out. */
  _shutdownWrite(): void {
    if (this._fd < 0 || this._shutdown) return;
    this._shutdown = true;
    try {
      shutdown(this._fd, SHUT_WR);
    } catch (err) {
      // Node ignores ENOTCONN here (the peer is gone already): the read side reports what happened.
      if ((err as { code?: unknown }).code !== 'ENOTCONN') {
        this._fatalError(nodeError(err, 'shutdown'), 'Fatal error on transport');
        return;
      }
    }
    if (this._readEof) this.close();
  }

  /**
   * @internal A write the kernel refused at once (`EPIPE`, `ECONNRESET`): reported from a callback, as a Node
   * socket reports it, so that a protocol that closes the transport right after writing closes it cleanly, as
   * it would on a `SocketTransport`. Later writes are buffered meanwhile (flow control still holds: a
   * `write(); await drain()` loop is paused and lets the loop turn).
   */
  _deferWriteError(err: unknown): void {
    if (this._writeError !== null) return;
    this._writeError = nodeError(err, 'write');
    this._loop._callSoonInternal(this._reportWriteError, [], this._context);
  }

  /** @internal */
  readonly _reportWriteError = (): void => {
    if (!this._lost) this._fatalError(this._writeError, 'Fatal write error on socket transport');
  };

  /** @internal Closes the fd now; `connectionLost(exc)` follows with `callSoon`. */
  _destroy(exc: Error | null): void {
    if (this._lost) return;
    this._lost = true;
    this._closing = true;
    this._lostExc = exc;
    this._buffer = [];
    this._bufferSize = 0;
    const fd = this._fd;
    this._releaseFd();
    if (fd >= 0) closeQuietly(fd);
    const waiter = this._emptyWaiter;
    if (waiter !== null && !waiter.done()) waiter.setException(exc ?? systemError(EPIPE, 'write'));
    const onClosed = this._onFdClosed;
    this._onFdClosed = null;
    onClosed?.(exc);
    this._scheduleConnectionLost();
  }

  /** @internal Stops polling and forgets the fd (the caller closes it or hands it over). */
  _releaseFd(): void {
    const fd = this._fd;
    if (fd < 0) return;
    this._fd = -1;
    // The poll must stop before the fd is closed.
    if (this._poll !== null) pollStop(this._poll);
    this._poll = null;
    this._pollMask = 0;
    unregisterTransportFd(this._loop, fd, this);
    live.get(this._loop)?.delete(this);
  }

  /** @internal */
  override _finishConnectionLost(): void {
    this._finished = true;
    super._finishConnectionLost();
  }

  /** @internal The loop was closed: the fd is closed now (nobody can run `connectionLost` any more). */
  _loopClosed(): void {
    this._closing = true;
    this._lost = true;
    this._lostScheduled = true;
    this._buffer = [];
    this._bufferSize = 0;
    const fd = this._fd;
    this._releaseFd();
    if (fd >= 0) closeQuietly(fd);
    this._finishConnectionLost();
  }

  /** @internal asyncio computes both addresses when the transport is made: they stay readable after close. */
  _readAddresses(): void {
    const extra = this._extra;
    if (extra.sockname === undefined) extra.sockname = nativeAddress(this._fd, 'sock');
    if (extra.peername === undefined) extra.peername = nativeAddress(this._fd, 'peer');
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const info: string[] = [this.constructor.name];
    if (this._finished || this._detached) info.push('closed');
    else if (this._closing) info.push('closing');
    info.push(`fd=${this._fileno}`);
    if (!this._finished && !this._detached && !this._loop.isClosed()) {
      info.push(`read=${(this._pollMask & READABLE) !== 0 ? 'polling' : 'idle'}`);
      const size = this._bufferSize;
      info.push(`write=<${size > 0 ? 'polling' : 'idle'}, bufsize=${size}>`);
    }
    return `<${info.join(' ')}>`;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // closed behind our back: nothing left to release
  }
}

/**
 * The error Node's own socket reports for a failed read or write (`read ECONNRESET`, `write EPIPE`), so that
 * protocols see the same errors on either transport.
 */
function nodeError(err: unknown, syscall: string): unknown {
  const errno = (err as { errno?: unknown } | null)?.errno;
  if (typeof errno !== 'number' || !isSystemError(err)) return err;
  return systemError(errno, syscall);
}
