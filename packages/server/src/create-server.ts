/**
 * Making servers (asyncio's `create_server`, `create_unix_server` and `connect_accepted_socket`): binding the
 * listening sockets with asyncio's options and messages, and wrapping a socket accepted elsewhere.
 *
 * Listening sockets are made by loopwork's native addon when it is available (exactly asyncio's socket options:
 * `SO_REUSEADDR`, `SO_REUSEPORT`, `IPV6_V6ONLY`, bind now and listen when serving starts), and by `net.Server`
 * otherwise, or in a `node:cluster` worker, where Node shares the primary's listening socket.
 *
 * Installs `loop.createServer`, `loop.createUnixServer` and `loop.connectAcceptedSocket` on every event loop.
 *
 * @module
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { inspect } from 'node:util';
import type { AddrInfo, BaseEventLoop, BaseProtocol, ProtocolFactory, Transport } from '@loopwork/core';
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  AI_PASSIVE,
  InvalidArgTypeError,
  OSError,
  SOCK_STREAM,
  ValueError,
  checkOptions,
  extendEventLoop,
  isSocket,
  native,
  osErrorFrom,
  sleep,
  strerror,
} from '@loopwork/core';
import type { Socket as CoreSocket } from '@loopwork/core';
import { ensureResolved, formatAddress } from './addresses.js';
import type { SocketLike } from './create-connection.js';
import {
  createConnectionTransport,
  fspath,
  isAbstractPath,
  isOptionsArg,
  toConnectedSock,
} from './create-connection.js';
import { SocketOptionUnavailableError, osErrorCode } from './errors.js';
import type { Listener } from './server.js';
import { NativeListener, NodeListener, Server } from './server.js';
import type { SSLContextLike } from './ssl.js';
import { checkServerSsl } from './ssl.js';

/**
 * A listening socket handed in as `sock`: a listening `net.Server`, a bound (or listening) loopwork `Socket`
 * (the server takes its fd; the `Socket` is detached), or the fd of a native-addon socket.
 */
export type ServerSocketLike = net.Server | number | CoreSocket;

/** Options of `loop.createServer()`. */
export interface CreateServerOptions {
  /** The host(s) to bind (also the second argument). */
  host?: string | Iterable<string> | null;
  /** The port (also the third argument); 0 for a free port. */
  port?: number | string | null;
  /** Only addresses of this family: `AF_INET`, `AF_INET6` (or Node's 4 and 6); 0 for any (default). */
  family?: number;
  /** `getaddrinfo` flags, added to `AI_PASSIVE`. */
  flags?: number;
  /** An existing listening socket to serve on instead of host and port; the server owns it. */
  sock?: ServerSocketLike | null;
  /** The listen queue's length (default 100). */
  backlog?: number;
  /** An `SSLContext` to serve TLS; each connection's handshake runs before its `connectionMade`. */
  ssl?: SSLContextLike | null;
  /** Sets `SO_REUSEADDR` (default true: a restarted server may bind a port in `TIME_WAIT`). */
  reuseAddress?: boolean | null;
  /**
   * Sets `SO_REUSEPORT`: several processes may listen on the same port, the kernel spreads connections. When
   * one of them closes its listener, Linux resets the connections still waiting in its accept queue, unless the
   * sysctl `net.ipv4.tcp_migrate_req` is 1 (Linux 5.14+), which moves them to another listener of the group: set
   * it for rolling restarts that lose no connection.
   */
  reusePort?: boolean | null;
  /** Sets `SO_KEEPALIVE` on the listening sockets (Python 3.13's `keep_alive`). */
  keepAlive?: boolean | null;
  /** Seconds each TLS handshake may take (default 60). Only with `ssl`. */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for a peer's TLS close_notify at close (default 30). Only with `ssl`. */
  sslShutdownTimeout?: number | null;
  /** Accept connections at once (default true); otherwise call `server.startServing()` or `serveForever()`. */
  startServing?: boolean;
}

/** Options of `loop.createUnixServer()`. */
export interface CreateUnixServerOptions {
  /** The socket path (also the second argument). */
  path?: string | Buffer | URL | null;
  /** An existing listening Unix socket to serve on instead of `path`. */
  sock?: ServerSocketLike | null;
  /** The listen queue's length (default 100). */
  backlog?: number;
  /** An `SSLContext` to serve TLS. */
  ssl?: SSLContextLike | null;
  /** Seconds each TLS handshake may take (default 60). Only with `ssl`. */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for a peer's TLS close_notify at close (default 30). Only with `ssl`. */
  sslShutdownTimeout?: number | null;
  /** Accept connections at once (default true). */
  startServing?: boolean;
  /** Remove the socket file when the server closes, if it is still the one bound (default true). */
  cleanupSocket?: boolean;
  /**
   * The permission bits of the socket file (0 to 0o777, e.g. `0o600`: only the owner may connect; who may connect
   * to a Unix socket is who may write it). The file never has more than these bits, from the moment it exists:
   * on the native addon the socket's own mode is set before `bind(2)` (Linux creates the file with it, less the
   * umask); on `net.Server` the umask is narrowed around the bind. Bits the umask took away are added back with a
   * `chmod` after the bind, so the file may briefly have fewer bits than asked, never more. Default: the umask
   * decides (`0o777 & ~umask`), as with `bind(2)`. Not with an abstract name (`'\0…'`, which has no file) nor
   * with `sock` (already bound): both are refused. In a `node:cluster` worker on `net.Server` the primary binds
   * the socket, and in a worker thread the umask cannot be changed: there the mode is set right after the bind.
   */
  mode?: number | null;
}

/** Options of `loop.connectAcceptedSocket()`. */
export interface ConnectAcceptedSocketOptions {
  /** An `SSLContext`: the server side of a TLS handshake runs first. */
  ssl?: SSLContextLike | null;
  /** Seconds the TLS handshake may take (default 60). Only with `ssl`. */
  sslHandshakeTimeout?: number | null;
  /** Seconds to wait for the peer's TLS close_notify at close (default 30). Only with `ssl`. */
  sslShutdownTimeout?: number | null;
}

declare module '@loopwork/core' {
  interface BaseEventLoop {
    /**
     * Makes a TCP server listening on `host:port` (asyncio's `loop.create_server`): each connection gets a new
     * protocol from `protocolFactory`.
     *
     * `host` may be a name or numeric address, a list of them (bound once each), or `null`/`''` for all
     * interfaces (an IPv4 and an IPv6 socket). Port 0 picks a free port per socket.
     *
     * @param protocolFactory - makes the protocol of each connection.
     * @param host - where to listen.
     * @param port - the port.
     * @param options - see {@link CreateServerOptions}.
     * @returns the `Server`, serving unless `startServing: false`.
     * @throws OSError for a bind failure, e.g. `code` `EADDRINUSE` with `error while attempting to bind on
     * address ('127.0.0.1', 8080): address already in use`; ValueError/TypeError for arguments asyncio refuses;
     * SocketOptionUnavailableError for `reusePort` where neither Node nor the native addon can set it.
     * @example
     * ```ts
     * const server = await loop.createServer(() => new Echo(), '127.0.0.1', 8080);
     * await server.serveForever();
     * ```
     */
    createServer(
      protocolFactory: ProtocolFactory,
      host?: string | Iterable<string> | null,
      port?: number | string | null,
      options?: CreateServerOptions,
    ): Promise<Server>;
    createServer(protocolFactory: ProtocolFactory, options: CreateServerOptions): Promise<Server>;

    /**
     * Makes a Unix socket server listening on `path` (asyncio's `loop.create_unix_server`). A stale socket file
     * at `path` is removed first; the file is removed again at close if it is still the one bound.
     *
     * @param protocolFactory - makes the protocol of each connection.
     * @param path - a filesystem path, or `'\0name'` (a Buffer starting with a NUL byte) for an abstract name.
     * @param options - see {@link CreateUnixServerOptions}; `mode` sets the socket file's permission bits with
     * no moment where it has more.
     * @returns the `Server`.
     * @throws OSError `EADDRINUSE` when the path is in use or exists and is not a socket; TypeError/ValueError
     * for a `mode` that is not an integer from 0 to 0o777, or given with an abstract name or with `sock`.
     * @example
     * ```ts
     * // An admin socket only its owner can connect to.
     * const server = await loop.createUnixServer(() => new Admin(), '/run/app/admin.sock', { mode: 0o600 });
     * ```
     */
    createUnixServer(
      protocolFactory: ProtocolFactory,
      path?: string | Buffer | URL | null,
      options?: CreateUnixServerOptions,
    ): Promise<Server>;
    createUnixServer(protocolFactory: ProtocolFactory, options: CreateUnixServerOptions): Promise<Server>;

    /**
     * Binds a new protocol to a connection accepted outside the loop (asyncio's
     * `loop.connect_accepted_socket`).
     *
     * @param protocolFactory - makes the protocol.
     * @param sock - the accepted socket (a `net.Socket`, or an fd of the native addon); the transport owns it.
     * @param options - see {@link ConnectAcceptedSocketOptions}.
     * @returns `[transport, protocol]` once `connectionMade` has run.
     */
    connectAcceptedSocket<P extends BaseProtocol>(
      protocolFactory: ProtocolFactory<P>,
      sock: SocketLike,
      options?: ConnectAcceptedSocketOptions,
    ): Promise<[Transport, P]>;
  }
}

const SERVER_KEYS = [
  'host',
  'port',
  'family',
  'flags',
  'sock',
  'backlog',
  'ssl',
  'reuseAddress',
  'reusePort',
  'keepAlive',
  'sslHandshakeTimeout',
  'sslShutdownTimeout',
  'startServing',
] as const;
const UNIX_SERVER_KEYS = [
  'path',
  'sock',
  'backlog',
  'ssl',
  'sslHandshakeTimeout',
  'sslShutdownTimeout',
  'startServing',
  'cleanupSocket',
  'mode',
] as const;
const ACCEPTED_KEYS = ['ssl', 'sslHandshakeTimeout', 'sslShutdownTimeout'] as const;

/** Node's `listen()` takes `reusePort` from 22.12 (and 23.1) on. */
const NODE_HAS_REUSE_PORT = ((): boolean => {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
})();

/**
 * Which way listening sockets are made: by the native addon (asyncio's exact options) unless it is missing; in a
 * cluster worker through Node (which shares the primary's socket) unless an option only the addon can set asks
 * otherwise.
 */
function useNativeSockets(reusePort: boolean, reuseAddress: boolean): boolean {
  if (!native.nativeAvailable()) return false;
  return !cluster.isWorker || reusePort || !reuseAddress;
}

function checkBacklog(backlog: unknown): number {
  if (backlog === undefined) return 100;
  if (typeof backlog !== 'number' || !Number.isInteger(backlog)) {
    throw new InvalidArgTypeError(`backlog must be an integer, got ${inspect(backlog, { depth: 0 })}`);
  }
  return backlog;
}

function checkMode(mode: unknown): number | null {
  if (mode === undefined || mode === null) return null;
  if (typeof mode !== 'number' || !Number.isInteger(mode)) {
    throw new InvalidArgTypeError(`mode must be an integer, got ${inspect(mode, { depth: 0 })}`);
  }
  if (mode < 0 || mode > 0o777) throw new ValueError(`mode must be from 0 to 0o777, got 0o${mode.toString(8)}`);
  return mode;
}

/**
 * Narrows the process umask so that a file created now gets at most `mode`; returns the function that puts the
 * old umask back, or `null` where the umask cannot be changed (a worker thread). Only ever narrows: a file
 * another thread creates meanwhile gets fewer bits, never more.
 */
function narrowUmask(mode: number): (() => void) | null {
  let old: number;
  try {
    old = process.umask(0o077);
  } catch {
    return null;
  }
  process.umask(old | (0o777 & ~mode));
  return () => process.umask(old);
}

/** Adds the bits of `mode` the umask took away at bind (never more than `mode` was there before). */
function completeMode(path: string | Buffer, mode: number): void {
  if ((fs.statSync(path).mode & 0o777) !== mode) fs.chmodSync(path, mode);
}

/** Binds one native socket per addrinfo, with asyncio's options and errors. */
function bindNative(
  loop: BaseEventLoop,
  infos: AddrInfo[],
  o: { reuseAddress: boolean; reusePort: boolean; keepAlive: boolean },
): Listener[] {
  const C = native.constants;
  const fds: number[] = [];
  let completed = false;
  try {
    for (const [af, type, proto, , sa] of infos) {
      let fd: number;
      try {
        fd = native.socket(af, type, proto);
      } catch (err) {
        // A family this host does not have (no IPv6): asyncio skips it.
        if (loop._debug) loop.logger.warn({ err }, `createServer() failed to create socket(${af}, ${type}, ${proto})`);
        continue;
      }
      fds.push(fd);
      if (o.reuseAddress) native.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEADDR, 1);
      if (o.reusePort && (af === AF_INET || af === AF_INET6)) {
        try {
          native.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEPORT, 1);
        } catch {
          throw new ValueError('reusePort not supported by socket module, SO_REUSEPORT defined but not implemented.');
        }
      }
      if (o.keepAlive) native.setsockopt(fd, C.SOL_SOCKET, C.SO_KEEPALIVE, 1);
      // One socket per family: no dual-stack IPv6 socket that would also take the IPv4 port.
      if (af === AF_INET6) native.setsockopt(fd, C.IPPROTO_IPV6, C.IPV6_V6ONLY, 1);
      try {
        native.bind(fd, sa as readonly [string, number]);
      } catch (err) {
        const msg = `error while attempting to bind on address ${formatAddress(sa)}: ${strerror(err as object)}`;
        if ((err as { code?: unknown }).code === 'EADDRNOTAVAIL') {
          // The family is not enabled on this host (bpo-30945).
          fds.pop();
          native.close(fd);
          if (loop._debug) loop.logger.warn(msg);
          continue;
        }
        throw osErrorFrom(err, msg);
      }
    }
    if (fds.length === 0) {
      throw new OSError(`could not bind on any address out of [${infos.map((i) => formatAddress(i[4])).join(', ')}]`);
    }
    completed = true;
  } finally {
    if (!completed) for (const fd of fds) native.close(fd);
  }
  return fds.map((fd) => new NativeListener(fd, { unix: false }));
}

/** Listens with a `net.Server`; resolves once it listens (cancelling the caller closes it). */
async function listenNode(loop: BaseEventLoop, srv: net.Server, options: net.ListenOptions): Promise<void> {
  const fut = loop.createFuture<void>();
  const onListening = (): void => {
    srv.removeListener('error', onError);
    if (!fut.done() && !loop.isClosed()) fut.setResult(undefined);
  };
  const onError = (err: Error): void => {
    srv.removeListener('listening', onListening);
    if (!fut.done() && !loop.isClosed()) fut.setException(err);
  };
  srv.once('listening', onListening);
  srv.once('error', onError);
  srv.listen(options);
  try {
    await fut;
  } catch (error) {
    srv.close();
    throw error;
  }
}

/** Binds one `net.Server` per addrinfo (no native addon, or a cluster worker). */
async function bindNode(
  loop: BaseEventLoop,
  infos: AddrInfo[],
  o: { reusePort: boolean; keepAlive: boolean; backlog: number },
): Promise<Listener[]> {
  const listeners: NodeListener[] = [];
  let completed = false;
  try {
    for (const [af, , , , sa] of infos) {
      const [host, port] = sa as [string, number];
      const srv = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, keepAlive: o.keepAlive });
      const opts: net.ListenOptions & { reusePort?: boolean } = {
        host,
        port,
        backlog: o.backlog,
        ipv6Only: af === AF_INET6,
      };
      if (o.reusePort) {
        opts.reusePort = true;
        // Each worker binds its own socket: the point of SO_REUSEPORT.
        opts.exclusive = true;
      }
      try {
        await listenNode(loop, srv, opts);
      } catch (err) {
        const msg = `error while attempting to bind on address ${formatAddress(sa)}: ${strerror(err as object)}`;
        if ((err as { code?: unknown }).code === 'EADDRNOTAVAIL') continue;
        throw osErrorFrom(err, msg);
      }
      listeners.push(new NodeListener(srv, { unix: false }));
    }
    if (listeners.length === 0) {
      throw new OSError(`could not bind on any address out of [${infos.map((i) => formatAddress(i[4])).join(', ')}]`);
    }
    completed = true;
  } finally {
    if (!completed) for (const l of listeners) l.netServer.close();
  }
  return listeners;
}

/** A listening socket handed in as `sock`. */
function listenerFromSock(sock: ServerSocketLike, unix: boolean, cleanupSocket: boolean): Listener {
  if (isSocket(sock)) {
    // Ownership passes once the listener holds the descriptor; a socket refused here stays the caller's.
    const listener = listenerFromSock(sock.fileno(), unix, cleanupSocket);
    sock.detach();
    return listener;
  }
  if (sock instanceof tls.Server) throw new InvalidArgTypeError('Socket cannot be of type TLSSocket');
  if (typeof sock === 'number') {
    let type: number;
    let family: number;
    try {
      type = native.getSocketType(sock);
      family = native.getSocketFamily(sock);
    } catch (err) {
      throw osErrorFrom(err, `A Stream Socket was expected, got fd=${sock}: ${String((err as Error).message)}`);
    }
    if (type !== SOCK_STREAM || (unix && family !== AF_UNIX)) {
      throw new ValueError(`A ${unix ? 'UNIX Domain ' : ''}Stream Socket was expected, got fd=${sock}`);
    }
    let cleanup = null;
    if (unix && cleanupSocket) {
      const name = native.getsockname(sock);
      if (name !== null && !Array.isArray(name)) cleanup = unixCleanup(name as string | Buffer);
    }
    return new NativeListener(sock, { unix: family === AF_UNIX, cleanup });
  }
  if (!(sock instanceof net.Server)) {
    throw new InvalidArgTypeError(
      `sock must be a listening net.Server or a socket fd, got ${inspect(sock, { depth: 0 })}`,
    );
  }
  if (!sock.listening) throw new ValueError('A listening net.Server was expected, got one that is not listening');
  const address = sock.address();
  const isUnix = typeof address === 'string' || address === null;
  if (unix && !isUnix) throw new ValueError(`A UNIX Domain Stream Socket was expected, got ${inspect(address)}`);
  const cleanup = isUnix && cleanupSocket && typeof address === 'string' ? unixCleanup(address) : null;
  return new NodeListener(sock, { unix: isUnix, cleanup });
}

/** What removing a Unix socket file at close needs: its path and the inode bound (none for abstract names). */
function unixCleanup(path: string | Buffer): { path: string | Buffer; inode: number } | null {
  if (path.length === 0 || isAbstractPath(path)) return null;
  try {
    return { path, inode: fs.statSync(path).ino };
  } catch {
    return null;
  }
}

async function createServer(
  this: BaseEventLoop,
  protocolFactory: ProtocolFactory,
  hostArg?: string | Iterable<string> | null | CreateServerOptions,
  portArg?: number | string | null,
  optionsArg?: CreateServerOptions,
): Promise<Server> {
  let host: string | Iterable<string> | null | undefined;
  let port: number | string | null | undefined;
  let options: CreateServerOptions;
  if (isOptionsArg(hostArg)) {
    options = hostArg as CreateServerOptions;
    host = options.host;
    port = options.port;
  } else {
    host = hostArg as string | Iterable<string> | null | undefined;
    port = portArg;
    options = optionsArg ?? {};
  }
  checkOptions(options, SERVER_KEYS, 'createServer');
  if (typeof protocolFactory !== 'function') {
    throw new InvalidArgTypeError(`protocolFactory must be a callable, got ${String(protocolFactory)}`);
  }
  const ssl = checkServerSsl(options.ssl, options.sslHandshakeTimeout, options.sslShutdownTimeout);
  const sock = options.sock ?? null;
  const backlog = checkBacklog(options.backlog);
  let listeners: Listener[];
  if ((host !== null && host !== undefined) || (port !== null && port !== undefined)) {
    if (sock !== null) throw new ValueError('host/port and sock can not be specified at the same time');
    const reuseAddress = options.reuseAddress ?? true;
    const reusePort = options.reusePort === true;
    const keepAlive = options.keepAlive === true;
    let hosts: (string | null)[];
    if (host === '' || host === null || host === undefined) hosts = [null];
    else if (typeof host === 'string') hosts = [host];
    else hosts = [...new Set(host)];
    const infos: AddrInfo[] = [];
    const seen = new Set<string>();
    for (const h of hosts) {
      const resolved = await ensureResolved(this, h, port, {
        family: options.family ?? 0,
        type: SOCK_STREAM,
        flags: (options.flags ?? 0) | AI_PASSIVE,
      });
      for (const info of resolved) {
        // Bind each address once, however many of the hosts resolve to it.
        const key = `${info[0]}|${JSON.stringify(info[4])}`;
        if (seen.has(key)) continue;
        seen.add(key);
        infos.push(info);
      }
    }
    if (useNativeSockets(reusePort, reuseAddress)) {
      listeners = bindNative(this, infos, { reuseAddress, reusePort, keepAlive });
    } else {
      if (reusePort && !NODE_HAS_REUSE_PORT) {
        throw new SocketOptionUnavailableError(
          `reusePort needs loopwork's native addon on Node ${process.versions.node} (Node's listen() has no ` +
            'reusePort before 22.12); build it with `node packages/core/native/build-addon.mjs`',
        );
      }
      if (!reuseAddress) {
        throw new SocketOptionUnavailableError(
          "reuseAddress: false needs loopwork's native addon (Node always sets SO_REUSEADDR on listening sockets)",
        );
      }
      listeners = await bindNode(this, infos, { reusePort, keepAlive, backlog });
    }
  } else {
    if (sock === null) throw new ValueError('Neither host/port nor sock were specified');
    listeners = [listenerFromSock(sock, false, false)];
  }
  return await openServer(this, listeners, protocolFactory, ssl, backlog, options);
}

/**
 * The `Server` over bound listeners, serving at once unless `startServing` is false; what `createServer` and
 * `createUnixServer` end with.
 */
async function openServer(
  loop: BaseEventLoop,
  listeners: Listener[],
  protocolFactory: ProtocolFactory<BaseProtocol>,
  ssl: SSLContextLike | null,
  backlog: number,
  options: Pick<CreateServerOptions, 'sslHandshakeTimeout' | 'sslShutdownTimeout' | 'startServing'>,
): Promise<Server> {
  const server = new Server(
    loop,
    listeners,
    protocolFactory,
    ssl,
    backlog,
    options.sslHandshakeTimeout ?? null,
    options.sslShutdownTimeout ?? null,
  );
  if (options.startServing ?? true) {
    server._startServing();
    // One iteration, so that the listening sockets are watched when the caller goes on (asyncio does the same).
    await sleep(0);
  }
  return server;
}

/** Removes a stale socket file before binding (asyncio does); refuses a path that is not a socket. */
function removeStaleSocket(loop: BaseEventLoop, path: string | Buffer): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') {
      loop.logger.error({ err }, `Unable to check or remove stale UNIX socket ${formatAddress(path)}: ${String(err)}`);
    }
    return;
  }
  if (!st.isSocket()) {
    throw osErrorCode(
      'EADDRINUSE',
      `Address ${formatAddress(path)} is already in use: the path exists and is not a socket`,
      'bind',
    );
  }
  try {
    fs.unlinkSync(path);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ENOENT') {
      loop.logger.error({ err }, `Unable to check or remove stale UNIX socket ${formatAddress(path)}: ${String(err)}`);
    }
  }
}

async function bindUnix(
  loop: BaseEventLoop,
  path: string | Buffer,
  backlog: number,
  cleanupSocket: boolean,
  mode: number | null,
): Promise<Listener> {
  const abstract = isAbstractPath(path);
  if (abstract && mode !== null) {
    throw new ValueError('mode can not be set on an abstract socket name: it has no file');
  }
  // A NUL inside a path would end it early: bind(2) would make the socket at the part before it (Python's os.stat
  // refuses the path first).
  if (!abstract && (typeof path === 'string' ? path.includes('\0') : path.includes(0))) {
    throw new ValueError('embedded null byte');
  }
  if (!abstract) removeStaleSocket(loop, path);
  const inUse = (err: unknown): Error =>
    (err as { code?: unknown }).code === 'EADDRINUSE'
      ? osErrorFrom(err, `Address ${formatAddress(path)} is already in use`)
      : osErrorFrom(err, `${(err as Error).message}: ${formatAddress(path)}`);
  if (useNativeSockets(false, true)) {
    const fd = native.socket(AF_UNIX, SOCK_STREAM, 0);
    try {
      // Linux makes the file with the mode of the socket's inode less the umask: set before bind, the file never
      // has more than `mode`, with no process-wide umask change.
      if (mode !== null) fs.fchmodSync(fd, mode);
      native.bind(fd, path);
      if (mode !== null) completeMode(path, mode);
    } catch (err) {
      native.close(fd);
      throw inUse(err);
    }
    return new NativeListener(fd, { unix: true, cleanup: cleanupSocket ? unixCleanup(path) : null });
  }
  const srv = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  // listen() binds a path synchronously (in a cluster worker the primary binds it): the umask is narrowed for
  // that call only.
  const restoreUmask = mode !== null && !cluster.isWorker ? narrowUmask(mode) : null;
  let listening: Promise<void>;
  try {
    listening = listenNode(loop, srv, { path: typeof path === 'string' ? path : path.toString('utf8'), backlog });
  } finally {
    restoreUmask?.();
  }
  try {
    await listening;
    if (mode !== null) completeMode(path, mode);
  } catch (err) {
    srv.close();
    throw inUse(err);
  }
  return new NodeListener(srv, { unix: true, cleanup: cleanupSocket ? unixCleanup(path) : null });
}

async function createUnixServer(
  this: BaseEventLoop,
  protocolFactory: ProtocolFactory,
  pathArg?: string | Buffer | URL | null | CreateUnixServerOptions,
  optionsArg?: CreateUnixServerOptions,
): Promise<Server> {
  let path: string | Buffer | URL | null | undefined;
  let options: CreateUnixServerOptions;
  if (isOptionsArg(pathArg)) {
    options = pathArg as CreateUnixServerOptions;
    path = options.path;
  } else {
    path = pathArg as string | Buffer | URL | null | undefined;
    options = optionsArg ?? {};
  }
  checkOptions(options, UNIX_SERVER_KEYS, 'createUnixServer');
  if (typeof protocolFactory !== 'function') {
    throw new InvalidArgTypeError(`protocolFactory must be a callable, got ${String(protocolFactory)}`);
  }
  const ssl = checkServerSsl(options.ssl, options.sslHandshakeTimeout, options.sslShutdownTimeout);
  const backlog = checkBacklog(options.backlog);
  const cleanupSocket = options.cleanupSocket ?? true;
  const mode = checkMode(options.mode);
  const sock = options.sock ?? null;
  let listener: Listener;
  if (path !== null && path !== undefined) {
    if (sock !== null) throw new ValueError('path and sock can not be specified at the same time');
    listener = await bindUnix(this, fspath(path), backlog, cleanupSocket, mode);
  } else {
    if (sock === null) throw new ValueError('path was not specified, and no sock specified');
    if (mode !== null) throw new ValueError('mode can not be specified with sock: the socket is already bound');
    listener = listenerFromSock(sock, true, cleanupSocket);
  }
  return await openServer(this, [listener], protocolFactory, ssl, backlog, options);
}

async function connectAcceptedSocket<P extends BaseProtocol>(
  this: BaseEventLoop,
  protocolFactory: ProtocolFactory<P>,
  sock: SocketLike,
  options: ConnectAcceptedSocketOptions = {},
): Promise<[Transport, P]> {
  checkOptions(options, ACCEPTED_KEYS, 'connectAcceptedSocket');
  if (typeof protocolFactory !== 'function') {
    throw new InvalidArgTypeError(`protocolFactory must be a callable, got ${String(protocolFactory)}`);
  }
  const ssl = checkServerSsl(options.ssl, options.sslHandshakeTimeout, options.sslShutdownTimeout);
  const socket = toConnectedSock(sock, false, ssl === null);
  return createConnectionTransport(
    this,
    socket,
    protocolFactory,
    ssl === null ? undefined : { context: ssl, serverHostname: null },
    true,
    options.sslHandshakeTimeout,
    options.sslShutdownTimeout,
  );
}

extendEventLoop({ createServer, createUnixServer, connectAcceptedSocket });
