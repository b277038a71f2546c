// Loads loopwork's packages for the benchmark scripts, and states the slice of the API they use.
//
// bench/ is not a workspace package, so `@loopwork/*` does not resolve from here; this module resolves it the
// way Node would, through the package's `exports` map: the `loopwork-source` entry (src/*.ts, run by tsx) when
// Node runs with `--conditions=loopwork-source` (the harness's default), else `default` (the built dist/).
// The interfaces below are asyncio's API in camelCase as the benchmarks call it; the import is dynamic so that
// these scripts type-check before the packages implement it, and a missing name fails at run time with a
// clear message, which the harness reports as "failed: …".
import { readFileSync } from 'node:fs';

export interface Handle {
  cancel(): void;
}
export type TimerHandle = Handle;

export interface Future<T = unknown> extends PromiseLike<T> {
  setResult(value: T): void;
  done(): boolean;
}

export interface Transport {
  write(data: Uint8Array): void;
  getWriteBufferSize(): number;
  close(): void;
}

export interface Server {
  close(): void;
}

export interface StreamReader {
  read(n: number): Promise<Uint8Array>;
}
export interface StreamWriter {
  write(data: Uint8Array): void;
  drain(): Promise<void>;
  close(): void;
}

/** A socket as `loop.sock*` takes it (Python's socket.socket: `new Socket(AF_INET, SOCK_STREAM)`). */
export interface Socket {
  bind(address: string | [string, number]): void;
  listen(backlog?: number): void;
  setblocking(flag: boolean): void;
  setsockopt(level: number, name: number, value: number): void;
  close(): void;
}

export interface EventLoop {
  callSoon(cb: (...args: any[]) => void, ...args: unknown[]): Handle;
  callLater(delay: number, cb: (...args: any[]) => void, ...args: unknown[]): TimerHandle;
  time(): number;
  createFuture<T = unknown>(): Future<T>;
  createTask<T>(coro: () => Promise<T>): Future<T>;
  runUntilComplete<T>(future: PromiseLike<T> | (() => Promise<T>)): Promise<T>;
  runForever(): Promise<void>;
  stop(): void;
  close(): void;
  createServer(
    factory: () => object,
    host: string | null,
    port: number,
    options?: Record<string, unknown>,
  ): Promise<Server>;
  createUnixServer(factory: () => object, path: string, options?: Record<string, unknown>): Promise<Server>;
  sockAccept(sock: Socket): Promise<[Socket, unknown]>;
  sockRecv(sock: Socket, n: number): Promise<Uint8Array>;
  sockSendall(sock: Socket, data: Uint8Array): Promise<void>;
}

export interface Core {
  newEventLoop(): EventLoop;
  sleep(seconds: number): Promise<void>;
  run<T>(main: () => Promise<T>): Promise<T>;
}

type StreamHandler = (reader: StreamReader, writer: StreamWriter) => Promise<void>;

export interface ServerPackage extends Core {
  Protocol: new () => object;
  BufferedProtocol: new () => object;
  startServer(handler: StreamHandler, host: string | null, port: number, options?: object): Promise<Server>;
  startUnixServer(handler: StreamHandler, path: string, options?: object): Promise<Server>;
  Socket: new (family?: number, type?: number) => Socket;
  AF_INET: number;
  AF_UNIX: number;
  SOCK_STREAM: number;
  SOL_SOCKET: number;
  SO_REUSEADDR: number;
  IPPROTO_TCP: number;
  TCP_NODELAY: number;
}

export const usingSource = process.execArgv.some((a) => a.includes('loopwork-source'));

/** Imports packages/<name> through its exports map; throws unless it exports every name in `required`. */
export async function loadPackage<T>(
  name: 'core' | 'server' | 'service',
  required: readonly string[] = [],
): Promise<T> {
  const pkgUrl = new URL(`../../packages/${name}/package.json`, import.meta.url);
  const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { exports: Record<string, Record<string, string>> };
  const entry = pkg.exports['.'];
  const file = usingSource ? entry?.['loopwork-source'] : entry?.['default'];
  if (!file) throw new Error(`@loopwork/${name}: no ${usingSource ? 'loopwork-source' : 'default'} export`);
  const mod = (await import(new URL(file, pkgUrl).href)) as Record<string, unknown>;
  const missing = required.filter((n) => mod[n] === undefined);
  if (missing.length > 0) {
    throw new Error(`@loopwork/${name} (${file}) does not export ${missing.join(', ')} yet`);
  }
  return mod as T;
}
