/**
 * Shared helpers of the service tests: apps on port 0 closed after each test, a raw socket client that reads
 * HTTP responses as they come, and a logger that records its lines.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from 'pino';
import { createApp, requestIdMixin } from '@loopwork/service';
import type { App, AppOptions, ListenOptions } from '@loopwork/service';
import { exchange as rawExchange } from '../../../test/reliability/helpers/raw-client.js';

/** An app for tests: no logger and no signal handlers unless asked for. */
export function testApp(options: AppOptions = {}): App {
  return createApp({ logger: false, signals: false, ...options });
}

/** Listens on 127.0.0.1:0 (no signal handlers) and closes the app after the test. */
export async function listen(t: TestContext, app: App, options: ListenOptions = {}): Promise<string> {
  const url = await app.listen({ port: 0, host: '127.0.0.1', ...options });
  t.after(() => app.close({ deadline: 2 }));
  return url;
}

/** The port of an `http://host:port` address. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** A pino logger whose lines are parsed into `lines`; with `requestIdMixin` unless `mixin` is false. */
export function recordingLogger(level = 'info', mixin = true): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      cb();
    },
  });
  return { logger: pino(mixin ? { level, mixin: requestIdMixin } : { level }, stream), lines };
}

/**
 * The raw HTTP client of the reliability suite: send exact bytes, read responses one by one (Content-Length,
 * chunked, or no body for HEAD/1xx/204/304), and see whether the server closed the connection.
 */
export { RawClient } from '../../../test/reliability/helpers/raw-client.js';
export type { RawResponse } from '../../../test/reliability/helpers/raw-client.js';

/** Sends `data` on a new connection and returns everything received until the server closes it. */
export async function exchange(port: number, data: string | Buffer, seconds = 5): Promise<string> {
  const r = await rawExchange(port, data, seconds, { halfClose: false });
  if (!r.closed)
    throw new Error(`the server did not close the connection; got ${JSON.stringify(r.received.toString())}`);
  return r.received.toString('latin1');
}

export interface Child {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stdout line matching `re`. */
  line(re: RegExp): Promise<RegExpExecArray>;
}

/** Starts `test/fixtures/<name>` in a child node (TypeScript through tsx); killed after the test. */
export function startFixture(t: TestContext, name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Child {
  const file = new URL(`./fixtures/${name}`, import.meta.url).pathname;
  const child = spawn(process.execPath, ['--conditions=loopwork-source', '--import', 'tsx', file, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const waiters: (() => void)[] = [];
  const c: Child = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
    line(re: RegExp): Promise<RegExpExecArray> {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(c.stdout);
          if (m !== null) resolve(m);
          else if (child.exitCode !== null || child.signalCode !== null) {
            reject(new Error(`fixture exited; stdout ${c.stdout}; stderr ${c.stderr}`));
          } else waiters.push(check);
        };
        check();
      });
    },
  };
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    c.stdout += d;
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    c.stderr += d;
  });
  child.on('exit', wake);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return c;
}
