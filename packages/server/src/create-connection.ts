/**
 * Opening connections (asyncio's `create_connection` and `create_unix_connection`): name resolution, RFC 8305
 * Happy Eyeballs over the resolved addresses, and the transport (plain or TLS) bound to a new protocol.
 *
 * A plain connection is made on a native socket and carried by an `FdTransport` when the native addon is
 * available (see `fdTransportEnabled`); otherwise, and for TLS, on a `net.Socket`.
 *
 * Installs `loop.createConnection` and `loop.createUnixConnection` on every event loop.
 *
 * @module
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type {
  AddrInfo,
  Address,
  BaseEventLoop,
  BaseProtocol,
  ExtraInfo,
  ProtocolFactory,
  Transport,
} from '@loopwork/core';
import {
  AF_INET6,
  AF_UNIX,
  CancelledError,
  ExceptionGroup,
  FdTransport,
  InvalidArgTypeError,
  OSError,
  SOCK_STREAM,
  SocketTransport,
  TimeoutError,
  ValueError,
  checkOptions,
  extendEventLoop,
  fdTransportEnabled,
  isSocket,
  native,
  netSocketOf,
  osErrorFrom,
  runCancellable,
  strerror,
} from '@loopwork/core';
import type { Socket as CoreSocket } from '@loopwork/core';
import { emptyAddrinfoError, ensureResolved, formatAddress, interleaveAddrinfos } from './addresses.js';
import { isOSError } from './errors.js';
import type { SSLContextLike } from './ssl.js';
import { checkClientSsl, checkNotTlsSocket, tlsTransportFactory } from './ssl.js';
import { staggeredRace } from './staggered.js';

/**
 * A connected socket handed in as `sock`: a `net.Socket`, a loopwork `Socket` (the transport takes its fd; the
 * `Socket` is detached), or the fd of a socket made by the native addon.
 */
export type SocketLike = net.Socket | number | CoreSocket;

/** Options of `loop.createConnection()`. */
export interface CreateConnectionOptions {
  /** The host to connect to (also the second argument). */
  host?: string | null;
  /** The port to connect to (also the third argument). */
  port?: number | string | null;
  /** An `SSLContext` for TLS, or `true` for the default client context. */
  ssl?: SSLContextLike | boolean | null;
  /** Only addresses of this family: `AF_INET`, `AF_INET6` (or Node's 4 and 6); 0 for any (default). */
  family?: number;
  /** The protocol number for the resolver (0 or `IPPROTO_TCP`). */
  proto?: number;
  /** `getaddrinfo` flags (`AI_ADDRCONFIG`, …). */
  flags?: number;
  /** An already connected socket to use instead of host and port; the transport owns it. */
  sock?: SocketLike | null;
  /** `[host, port]` to bind the socket to before connecting. */
  localAddr?: readonly [host: string, port: number] | null;
  /** The host name to check the server's certificate against (default: `host`); `''` turns the check off. */
  serverHostname?: string | null;
  /** Seconds the TLS handshake may take (default 60). */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for the peer's TLS close_notify at close (default 30). */
  sslShutdownTimeout?: number | null;
  /**
   * Seconds to wait for a connection attempt before starting the next one in parallel (RFC 8305 Happy Eyeballs;
   * 0.25 is the RFC's recommendation). Without it, the addresses are tried one after the other.
   */
  happyEyeballsDelay?: number | null;
  /** How many addresses of the first family come before the families alternate (default 1 with Happy Eyeballs). */
  interleave?: number | null;
  /** Throw an `ExceptionGroup` of every attempt's error instead of one error when all attempts fail. */
  allErrors?: boolean;
}

/** Options of `loop.createUnixConnection()`. */
export interface CreateUnixConnectionOptions {
  /** The socket path (also the second argument). */
  path?: string | Buffer | URL | null;
  /** An `SSLContext` for TLS, or `true` for the default client context. */
  ssl?: SSLContextLike | boolean | null;
  /** An already connected Unix socket to use instead of `path`. */
  sock?: SocketLike | null;
  /** The host name to check the server's certificate against; required with `ssl`. */
  serverHostname?: string | null;
  /** Seconds the TLS handshake may take (default 60). */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for the peer's TLS close_notify at close (default 30). */
  sslShutdownTimeout?: number | null;
}

declare module '@loopwork/core' {
  interface BaseEventLoop {
    /**
     * Opens a TCP connection to `host:port` and binds a new protocol to it (asyncio's `loop.create_connection`).
     *
     * The host is resolved; the addresses are tried in the resolver's order, or with `happyEyeballsDelay` raced
     * with staggered starts, families interleaved (RFC 8305). The first connection that succeeds wins; the other
     * attempts are cancelled.
     *
     * @param protocolFactory - makes the protocol.
     * @param host - a host name or numeric address.
     * @param port - the port.
     * @param options - see {@link CreateConnectionOptions}.
     * @returns `[transport, protocol]` once `connectionMade` has run (after the TLS handshake with `ssl`).
     * @throws OSError: one attempt's error when all failed with the same message, else `Multiple exceptions: …`
     * listing each; an `ExceptionGroup` with `allErrors`; ValueError for arguments asyncio refuses
     * (`host/port and sock can not be specified at the same time`, `serverHostname is only meaningful with
     * ssl`, …).
     * @example
     * ```ts
     * const [transport, protocol] = await loop.createConnection(() => new Client(), 'localhost', 8080, {
     *   happyEyeballsDelay: 0.25,
     * });
     * ```
     */
    createConnection<P extends BaseProtocol>(
      protocolFactory: ProtocolFactory<P>,
      host?: string | null,
      port?: number | string | null,
      options?: CreateConnectionOptions,
    ): Promise<[Transport, P]>;
    createConnection<P extends BaseProtocol>(
      protocolFactory: ProtocolFactory<P>,
      options: CreateConnectionOptions,
    ): Promise<[Transport, P]>;

    /**
     * Opens a Unix socket connection to `path` and binds a new protocol to it (asyncio's
     * `loop.create_unix_connection`).
     *
     * @param protocolFactory - makes the protocol.
     * @param path - the socket path; `'\0name'` (or a Buffer starting with a NUL byte) for an abstract name.
     * @param options - see {@link CreateUnixConnectionOptions}.
     * @returns `[transport, protocol]` once `connectionMade` has run.
     * @throws OSError `ENOENT`, `ECONNREFUSED`…; ValueError for arguments asyncio refuses.
     */
    createUnixConnection<P extends BaseProtocol>(
      protocolFactory: ProtocolFactory<P>,
      path?: string | Buffer | URL | null,
      options?: CreateUnixConnectionOptions,
    ): Promise<[Transport, P]>;
    createUnixConnection<P extends BaseProtocol>(
      protocolFactory: ProtocolFactory<P>,
      options: CreateUnixConnectionOptions,
    ): Promise<[Transport, P]>;
  }
}

const CONNECTION_KEYS = [
  'host',
  'port',
  'ssl',
  'family',
  'proto',
  'flags',
  'sock',
  'localAddr',
  'serverHostname',
  'sslHandshakeTimeout',
  'sslShutdownTimeout',
  'happyEyeballsDelay',
  'interleave',
  'allErrors',
] as const;
const UNIX_CONNECTION_KEYS = [
  'path',
  'ssl',
  'sock',
  'serverHostname',
  'sslHandshakeTimeout',
  'sslShutdownTimeout',
] as const;

/** @internal True for an options object passed where a positional argument could be. */
export function isOptionsArg(v: unknown): v is Record<string, unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    !Buffer.isBuffer(v) &&
    !(v instanceof URL) &&
    typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function'
  );
}

/** @internal A filesystem path argument as a string or Buffer. */
export function fspath(path: string | Buffer | URL): string | Buffer {
  if (path instanceof URL) return fileURLToPath(path);
  if (typeof path === 'string' || Buffer.isBuffer(path)) return path;
  throw new InvalidArgTypeError(`expected str, bytes or os.PathLike object, not ${typeof path}`);
}

/** @internal True for a Linux abstract socket name (first byte NUL). */
export function isAbstractPath(path: string | Buffer): boolean {
  return typeof path === 'string' ? path.startsWith('\0') : path[0] === 0;
}

/** `sun_path`'s size on Linux: a path needs room for its NUL, an abstract name may fill it. */
const SUN_PATH_SIZE = 108;

/**
 * @internal Refuses a Unix address that does not fit in `sun_path` as Python's socket module does
 * (`OSError: AF_UNIX path too long`), before either connect path sees it: the native addon would throw its own
 * argument error, and Node's pipe a `FileNotFoundError`.
 */
export function checkUnixPathLength(path: string | Buffer): void {
  const n = typeof path === 'string' ? Buffer.byteLength(path) : path.length;
  if (isAbstractPath(path) ? n > SUN_PATH_SIZE : n >= SUN_PATH_SIZE) throw new OSError('AF_UNIX path too long');
}

/** @internal True when a Node socket is a Unix socket (its handle is a pipe). */
export function isUnixNodeSocket(sock: net.Socket): boolean {
  const h = (sock as unknown as { _handle?: { getsockname?: unknown } | null })._handle;
  return h !== null && h !== undefined && typeof h.getsockname !== 'function';
}

/** @internal A connected socket: a `net.Socket`, or the fd of a native socket (carried by an `FdTransport`). */
export type ConnectedSock = net.Socket | number;

/** @internal Closes a connected socket nobody will use. */
export function closeConnected(sock: ConnectedSock): void {
  if (typeof sock !== 'number') {
    sock.destroy();
    return;
  }
  try {
    native.close(sock);
  } catch {
    // already gone
  }
}

/**
 * @internal A connected socket handed in as `sock`: an fd (or a loopwork `Socket`, detached) stays an fd when
 * `onFd` and the fast path is on, else it is wrapped in a `net.Socket` as {@link toNetSocket} does.
 */
export function toConnectedSock(sock: SocketLike, unix: boolean, onFd: boolean): ConnectedSock {
  if (!onFd || !fdTransportEnabled() || !(typeof sock === 'number' || isSocket(sock))) return toNetSocket(sock, unix);
  if (isSocket(sock)) {
    // Ownership passes once the fd is checked; a socket refused here stays the caller's.
    const fd = checkStreamFd(sock.fileno(), unix);
    sock.detach();
    return fd;
  }
  return checkStreamFd(sock, unix);
}

/** Checks that `fd` is a stream socket (of the Unix family when `unix`). */
function checkStreamFd(fd: number, unix: boolean): number {
  let type: number;
  let family: number;
  try {
    type = native.getSocketType(fd);
    family = native.getSocketFamily(fd);
  } catch (err) {
    throw osErrorFrom(err, `A Stream Socket was expected, got fd=${fd}: ${String((err as Error).message)}`);
  }
  if (type !== SOCK_STREAM || (unix && family !== AF_UNIX)) {
    throw new ValueError(`A ${unix ? 'UNIX Domain ' : ''}Stream Socket was expected, got fd=${fd}`);
  }
  return fd;
}

/**
 * @internal A connected socket handed in as `sock`, as a `net.Socket`: a Node socket is used as it is, an fd of
 * the native addon is wrapped (it must be a stream socket).
 */
export function toNetSocket(sock: SocketLike, unix: boolean): net.Socket {
  if (isSocket(sock)) {
    // Ownership passes once Node holds the descriptor; a socket refused here stays the caller's.
    const socket = toNetSocket(sock.fileno(), unix);
    sock.detach();
    return socket;
  }
  checkNotTlsSocket(sock);
  if (typeof sock === 'number') return netSocketOf(checkStreamFd(sock, unix));
  if (!(sock instanceof net.Socket)) {
    throw new InvalidArgTypeError(`sock must be a net.Socket or a socket fd, got ${String(sock)}`);
  }
  if (unix && !isUnixNodeSocket(sock)) {
    throw new ValueError(`A UNIX Domain Stream Socket was expected, got ${String(sock.remoteAddress)}`);
  }
  return sock;
}

/** @internal The TLS side of a connection, checked: the context (`null`: the default one) and host name. */
export interface SslRequest {
  context: SSLContextLike | null;
  serverHostname: string | null;
}

/**
 * @internal asyncio's `_create_connection_transport`: a protocol and its transport on a connected socket;
 * resolves once `connectionMade` ran (with TLS, once the handshake is done).
 */
export async function createConnectionTransport<P extends BaseProtocol>(
  loop: BaseEventLoop,
  connected: ConnectedSock,
  protocolFactory: ProtocolFactory<P>,
  ssl: SslRequest | undefined,
  serverSide: boolean,
  sslHandshakeTimeout: number | null | undefined,
  sslShutdownTimeout: number | null | undefined,
  extra: Partial<ExtraInfo> | null = null,
): Promise<[Transport, P]> {
  let protocol: P;
  try {
    protocol = protocolFactory();
  } catch (error) {
    closeConnected(connected);
    throw error;
  }
  const waiter = loop.createFuture<unknown>();
  let transport: Transport;
  if (typeof connected === 'number' && ssl === undefined) {
    try {
      transport = new FdTransport(loop, connected, protocol, { waiter, extra });
    } catch (error) {
      closeConnected(connected);
      throw error;
    }
  } else if (ssl === undefined) {
    try {
      transport = new SocketTransport(loop, connected as net.Socket, protocol, { waiter, extra });
    } catch (error) {
      // As on the fd: the connection is the caller's no longer, and nothing else would ever close it.
      closeConnected(connected);
      throw error;
    }
  } else {
    const sock = typeof connected === 'number' ? netSocketOf(connected) : connected;
    try {
      transport = tlsTransportFactory()(loop, protocol, sock, ssl.context, {
        serverSide,
        serverHostname: ssl.serverHostname,
        sslHandshakeTimeout: sslHandshakeTimeout ?? null,
        sslShutdownTimeout: sslShutdownTimeout ?? null,
        waiter,
        server: null,
        extra,
      });
    } catch (error) {
      sock.destroy();
      throw error;
    }
  }
  try {
    await waiter;
  } catch (error) {
    transport.close();
    throw error;
  }
  return [transport, protocol];
}

/** Where a connection goes: an IP address and port (optionally from a local one), or a Unix path. */
export type ConnectTarget =
  | { kind: 'inet'; address: Address; host: string; port: number; family: number; local: Address | null }
  | { kind: 'unix'; path: string | Buffer };

/** The system error of a failed connect, with asyncio's message. */
function connectError(err: unknown, target: ConnectTarget): Error {
  const e = err as { syscall?: unknown; errno?: unknown; address?: unknown; port?: unknown };
  if (e.syscall === 'bind' && target.kind === 'inet' && target.local !== null) {
    return osErrorFrom(err, `error while attempting to bind on address ${formatAddress(target.local)}: ${strerror(e)}`);
  }
  // A Unix socket's connect fails at once, and asyncio raises its OSError as it is: `[Errno 2] No such file or
  // directory` (FileNotFoundError).
  if (target.kind === 'unix') return osErrorFrom(err);
  const errno = typeof e.errno === 'number' ? Math.abs(e.errno) : 0;
  return osErrorFrom(err, `[Errno ${errno}] Connect call failed ${formatAddress(target.address)}`);
}

/**
 * @internal Connects a new Node socket (asyncio's `sock_connect` on a new socket): resolves with the socket,
 * paused; cancelling the awaiting task destroys it.
 */
export async function connectNodeSocket(loop: BaseEventLoop, target: ConnectTarget): Promise<net.Socket> {
  const sock = new net.Socket({ allowHalfOpen: true });
  sock.pause();
  const fut = loop.createFuture<net.Socket>();
  const onConnect = (): void => {
    sock.removeListener('error', onError);
    if (fut.done() || loop.isClosed()) sock.destroy();
    else fut.setResult(sock);
  };
  const onError = (err: Error): void => {
    sock.removeListener('connect', onConnect);
    sock.destroy();
    if (!fut.done() && !loop.isClosed()) fut.setException(connectError(err, target));
  };
  sock.once('connect', onConnect);
  sock.once('error', onError);
  if (target.kind === 'unix') {
    const path = target.path;
    sock.connect({ path: typeof path === 'string' ? path : path.toString('utf8') });
  } else {
    const opts: net.TcpSocketConnectOpts = {
      host: target.host,
      port: target.port,
      family: target.family === AF_INET6 ? 6 : 4,
    };
    if (target.local !== null && Array.isArray(target.local)) {
      opts.localAddress = target.local[0];
      opts.localPort = target.local[1];
    }
    sock.connect(opts);
  }
  // The loop keeps the process alive while it runs; a socket must not keep it alive after the loop is gone.
  sock.unref();
  try {
    return await fut;
  } catch (error) {
    sock.destroy();
    throw error;
  }
}

/** Adds to a native socket's error the `address` and `port` a Node socket's error has. */
function withAddress(err: unknown, target: ConnectTarget): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const e = err as { syscall?: unknown; address?: unknown; port?: unknown };
  if (target.kind === 'unix') {
    e.address = typeof target.path === 'string' ? target.path : target.path.toString('utf8');
  } else if (e.syscall === 'bind' && Array.isArray(target.local)) {
    e.address = target.local[0];
    e.port = target.local[1];
  } else {
    e.address = target.host;
    e.port = target.port;
  }
  return err;
}

/**
 * @internal Connects a new native socket (asyncio's `sock_connect` on a new socket): resolves with its fd;
 * cancelling the awaiting task closes it. Unix names Node cannot use as they are need it too: an abstract name
 * (Node's `net` pads it with NULs to the full `sun_path`, Python and loopwork's servers do not) or a path that is
 * not UTF-8.
 */
export async function connectNativeSocket(loop: BaseEventLoop, target: ConnectTarget): Promise<number> {
  const fd = native.socket(target.kind === 'unix' ? AF_UNIX : target.family, SOCK_STREAM, 0);
  let handedOver = false;
  try {
    let inProgress: 0 | 1;
    try {
      if (target.kind === 'inet' && target.local !== null) native.bind(fd, target.local as readonly [string, number]);
      inProgress = native.connect(fd, target.kind === 'unix' ? target.path : (target.address as [string, number]));
    } catch (err) {
      throw connectError(withAddress(err, target), target);
    }
    if (inProgress === 1) {
      const fut = loop.createFuture<void>();
      const poll = native.pollStart(fd, native.WRITABLE, (status) => {
        native.pollStop(poll);
        if (fut.done() || loop.isClosed()) return;
        const errno = status < 0 ? -status : native.getSocketError(fd);
        if (errno !== 0) {
          fut.setException(connectError(withAddress(native.systemError(errno, 'connect'), target), target));
        } else {
          fut.setResult(undefined);
        }
      });
      native.pollUnref(poll);
      try {
        await fut;
      } finally {
        native.pollStop(poll);
      }
    }
    handedOver = true;
    return fd;
  } finally {
    if (!handedOver) native.close(fd);
  }
}

/**
 * asyncio's `_connect_sock`: one attempt at one address, binding to the first local address of its family that
 * binds. Its `OSError`s are recorded in a list of its own inside `exceptions`.
 */
async function connectSock(
  loop: BaseEventLoop,
  exceptions: unknown[][],
  addrInfo: AddrInfo,
  localInfos: AddrInfo[] | null,
  onFd: boolean,
): Promise<ConnectedSock> {
  const mine: unknown[] = [];
  exceptions.push(mine);
  const [family, , , , address] = addrInfo;
  const [host, port] = address as [string, number];
  const connect = onFd ? connectNativeSocket : connectNodeSocket;
  try {
    if (localInfos === null) {
      return await connect(loop, { kind: 'inet', address, host, port, family, local: null });
    }
    const candidates = localInfos.filter((l) => l[0] === family);
    if (candidates.length === 0) throw new OSError(`no matching local address with family=${family} found`);
    let lastBindError: unknown = null;
    for (const [, , , , local] of candidates) {
      try {
        return await connect(loop, { kind: 'inet', address, host, port, family, local });
      } catch (err) {
        if ((err as { syscall?: unknown }).syscall !== 'bind') throw err;
        lastBindError = err;
      }
    }
    throw lastBindError;
  } catch (exc) {
    if (isOSError(exc)) mine.push(exc);
    throw exc;
  }
}

/** asyncio's rule for the error of a failed `create_connection`. */
function connectionFailure(exceptions: unknown[][], allErrors: boolean): unknown {
  const flat = exceptions.flat();
  if (allErrors) return new ExceptionGroup('createConnection failed', flat);
  if (flat.length === 1) return flat[0];
  if (flat.length > 1) {
    const text = (e: unknown): string => (e instanceof Error ? e.message : String(e));
    const model = text(flat[0]);
    if (flat.every((e) => text(e) === model)) return flat[0];
    return new OSError(`Multiple exceptions: ${flat.map(text).join(', ')}`);
  }
  return new TimeoutError('createConnection failed');
}

async function createConnection<P extends BaseProtocol>(
  this: BaseEventLoop,
  protocolFactory: ProtocolFactory<P>,
  hostArg?: string | null | CreateConnectionOptions,
  portArg?: number | string | null,
  optionsArg?: CreateConnectionOptions,
): Promise<[Transport, P]> {
  let host: string | null | undefined;
  let port: number | string | null | undefined;
  let options: CreateConnectionOptions;
  if (isOptionsArg(hostArg)) {
    options = hostArg as CreateConnectionOptions;
    host = options.host;
    port = options.port;
  } else {
    host = hostArg as string | null | undefined;
    port = portArg;
    options = optionsArg ?? {};
  }
  checkOptions(options, CONNECTION_KEYS, 'createConnection');
  if (typeof protocolFactory !== 'function') {
    throw new InvalidArgTypeError(`protocolFactory must be a callable, got ${String(protocolFactory)}`);
  }
  const ssl = checkClientSsl(
    options.ssl,
    host,
    options.serverHostname,
    options.sslHandshakeTimeout,
    options.sslShutdownTimeout,
  );
  const sockArg = options.sock ?? null;
  if (sockArg !== null) checkNotTlsSocket(sockArg);
  let interleave = options.interleave ?? null;
  const delay = options.happyEyeballsDelay ?? null;
  if (delay !== null && interleave === null) interleave = 1;

  // Plain connections go on a native socket and an FdTransport; TLS ones need a net.Socket under node:tls.
  const onFd = ssl === undefined && fdTransportEnabled();
  let sock: ConnectedSock | null = null;
  if ((host !== null && host !== undefined) || (port !== null && port !== undefined)) {
    if (sockArg !== null) throw new ValueError('host/port and sock can not be specified at the same time');
    const family = options.family ?? 0;
    const resolveOptions = { family, type: SOCK_STREAM, proto: options.proto ?? 0, flags: options.flags ?? 0 };
    let infos = await ensureResolved(this, host ?? null, port, resolveOptions);
    if (infos.length === 0) throw emptyAddrinfoError();
    let localInfos: AddrInfo[] | null = null;
    const localAddr = options.localAddr ?? null;
    if (localAddr !== null) {
      localInfos = await ensureResolved(this, localAddr[0], localAddr[1], resolveOptions);
      if (localInfos.length === 0) throw emptyAddrinfoError();
    }
    if (interleave) infos = interleaveAddrinfos(infos, interleave);

    const exceptions: unknown[][] = [];
    if (delay === null) {
      for (const info of infos) {
        try {
          sock = await connectSock(this, exceptions, info, localInfos, onFd);
          break;
        } catch (exc) {
          if (!isOSError(exc)) throw exc;
        }
      }
    } else {
      let won = false;
      const attempts = infos.map((info) => async (): Promise<ConnectedSock> => {
        const s = await connectSock(this, exceptions, info, localInfos, onFd);
        if (won) {
          // Two attempts connected in the same instant: keep the first, drop this one.
          closeConnected(s);
          throw new CancelledError();
        }
        won = true;
        return s;
      });
      sock = (await staggeredRace(attempts, delay, { loop: this }))[0];
    }
    if (sock === null) throw connectionFailure(exceptions, options.allErrors === true);
  } else {
    if (sockArg === null) throw new ValueError('host and port was not specified and no sock specified');
    sock = toConnectedSock(sockArg, false, onFd);
  }
  return createConnectionTransport(
    this,
    sock,
    protocolFactory,
    ssl,
    false,
    options.sslHandshakeTimeout,
    options.sslShutdownTimeout,
  );
}

async function createUnixConnection<P extends BaseProtocol>(
  this: BaseEventLoop,
  protocolFactory: ProtocolFactory<P>,
  pathArg?: string | Buffer | URL | null | CreateUnixConnectionOptions,
  optionsArg?: CreateUnixConnectionOptions,
): Promise<[Transport, P]> {
  let path: string | Buffer | URL | null | undefined;
  let options: CreateUnixConnectionOptions;
  if (isOptionsArg(pathArg)) {
    options = pathArg as CreateUnixConnectionOptions;
    path = options.path;
  } else {
    path = pathArg as string | Buffer | URL | null | undefined;
    options = optionsArg ?? {};
  }
  checkOptions(options, UNIX_CONNECTION_KEYS, 'createUnixConnection');
  if (typeof protocolFactory !== 'function') {
    throw new InvalidArgTypeError(`protocolFactory must be a callable, got ${String(protocolFactory)}`);
  }
  const ssl = checkClientSsl(
    options.ssl,
    null,
    options.serverHostname,
    options.sslHandshakeTimeout,
    options.sslShutdownTimeout,
    false,
  );
  const sockArg = options.sock ?? null;
  const onFd = ssl === undefined && fdTransportEnabled();
  let sock: ConnectedSock;
  let extra: Partial<ExtraInfo> | null = null;
  if (path !== null && path !== undefined) {
    if (sockArg !== null) throw new ValueError('path and sock can not be specified at the same time');
    const p = fspath(path);
    checkUnixPathLength(p);
    const nodeCannot = typeof p !== 'string' || isAbstractPath(p);
    if (onFd) {
      sock = await connectNativeSocket(this, { kind: 'unix', path: p });
    } else if (nodeCannot && native.nativeAvailable()) {
      sock = netSocketOf(await connectNativeSocket(this, { kind: 'unix', path: p }));
    } else {
      sock = await connectNodeSocket(this, { kind: 'unix', path: p });
    }
    extra = { peername: p };
  } else {
    if (sockArg === null) throw new ValueError('no path and sock were specified');
    sock = toConnectedSock(sockArg, true, onFd);
  }
  return createConnectionTransport(
    this,
    sock,
    protocolFactory,
    ssl,
    false,
    options.sslHandshakeTimeout,
    options.sslShutdownTimeout,
    extra,
  );
}

// Each connection is made in a Task of its own, whose promise is cancellable (`waitFor(loop.createConnection(…),
// 5)` cancels the attempts, as asyncio's wait_for cancels the coroutine).
extendEventLoop({
  createConnection(this: BaseEventLoop, ...args: Parameters<typeof createConnection>) {
    return runCancellable(this, () => createConnection.apply(this, args));
  },
  createUnixConnection(this: BaseEventLoop, ...args: Parameters<typeof createUnixConnection>) {
    return runCancellable(this, () => createUnixConnection.apply(this, args));
  },
});
