/**
 * Shared helpers of the service tests: apps on port 0 closed after each test, a raw socket client that reads
 * HTTP responses as they come, and a logger that records its lines.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from 'pino';
import { createApp, requestIdMixin } from '@loopwork/service';
import type { App, AppOptions, ListenOptions } from '@loopwork/service';

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

/** A pino logger whose lines are parsed into `lines`. */
export function recordingLogger(level = 'info'): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      cb();
    },
  });
  return { logger: pino({ level, mixin: requestIdMixin }, stream), lines };
}

/** A response read off a raw socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  rawHead: string;
  body: Buffer;
}

/**
 * A raw HTTP client on one socket: send bytes, read responses one by one (Content-Length, chunked, or no body for
 * HEAD/1xx/204/304), and see whether the server closed the connection.
 */
export class RawClient {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #ended = false;
  #waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.#ended = true;
        this.#wake();
        resolve();
      });
      socket.on('end', () => {
        this.#ended = true;
        this.#wake();
      });
    });
  }

  static async connect(t: TestContext, port: number): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    t.after(() => socket.destroy());
    return client;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return true;
  }

  /** Waits until `text` has been received (and keeps it in the buffer). */
  async waitFor(text: string): Promise<void> {
    while (!this.#buf.includes(text)) {
      if (!(await this.#more())) throw new Error(`connection ended before ${JSON.stringify(text)}`);
    }
  }

  /** Reads one response. */
  async response(options: { head?: boolean } = {}): Promise<RawResponse> {
    let end: number;
    while ((end = this.#buf.indexOf('\r\n\r\n')) < 0) {
      if (!(await this.#more())) throw new Error(`connection ended; got ${JSON.stringify(this.#buf.toString())}`);
    }
    const rawHead = this.#buf.subarray(0, end).toString('latin1');
    this.#buf = this.#buf.subarray(end + 4);
    const [statusLine, ...lines] = rawHead.split('\r\n');
    const status = Number(statusLine!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const c = line.indexOf(':');
      headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
    }
    let body = Buffer.alloc(0);
    if (options.head === true || status < 200 || status === 204 || status === 304) {
      // no body
    } else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        let eol: number;
        while ((eol = this.#buf.indexOf('\r\n')) < 0) if (!(await this.#more())) throw new Error('cut in chunk size');
        const size = parseInt(this.#buf.subarray(0, eol).toString('latin1'), 16);
        if (size === 0) {
          while (this.#buf.indexOf('\r\n\r\n', eol) < 0 && !this.#buf.subarray(eol + 2, eol + 4).equals(CRLF)) {
            if (!(await this.#more())) throw new Error('cut in trailers');
          }
          const t = this.#buf.indexOf('\r\n\r\n', eol);
          this.#buf = this.#buf.subarray(t + 4);
          break;
        }
        while (this.#buf.length < eol + 2 + size + 2) if (!(await this.#more())) throw new Error('cut in chunk');
        parts.push(this.#buf.subarray(eol + 2, eol + 2 + size));
        this.#buf = this.#buf.subarray(eol + 2 + size + 2);
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      while (this.#buf.length < n) if (!(await this.#more())) throw new Error('cut in body');
      body = this.#buf.subarray(0, n);
      this.#buf = this.#buf.subarray(n);
    } else {
      while (await this.#more());
      body = this.#buf;
      this.#buf = Buffer.alloc(0);
    }
    return { status, headers, rawHead, body };
  }

  /** Resolves true once the server closed the connection (and nothing more came), false after `seconds`. */
  async closedWithin(seconds: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), seconds * 1000);
    });
    const ended = new Promise<boolean>((resolve) => {
      const check = (): void => {
        if (this.#ended) resolve(true);
        else this.#waiters.push(check);
      };
      check();
    });
    const r = await Promise.race([timeout, ended]);
    clearTimeout(timer);
    return r;
  }

  /** Bytes received and not read as a response. */
  get pending(): Buffer {
    return this.#buf;
  }
}

const CRLF = Buffer.from('\r\n');

/** Sends `data` on a new connection and returns everything received until the server closes it. */
export async function exchange(t: TestContext, port: number, data: string | Buffer, seconds = 5): Promise<string> {
  const c = await RawClient.connect(t, port);
  c.write(data);
  const closed = await c.closedWithin(seconds);
  if (!closed) throw new Error(`the server did not close the connection; got ${JSON.stringify(c.pending.toString())}`);
  return c.pending.toString('latin1');
}

/** A child process running a fixture, with its output. */
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
