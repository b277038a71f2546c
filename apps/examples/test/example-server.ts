/**
 * Helpers for the tests that run an example as a long-lived server: start it as a child process (as a user would),
 * wait for what it prints, run clients (CLI tools as child processes, raw sockets), and make sure it is gone after
 * the test.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { examplePath } from './run-example.js';

/** A running example. */
export interface ExampleServer {
  readonly child: ChildProcess;
  /** Everything printed on stdout so far. */
  readonly stdout: string;
  /** Everything printed on stderr so far. */
  readonly stderr: string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first match of `re` in stdout (waiting for it); rejects if the process exits first. */
  waitFor(re: RegExp): Promise<RegExpExecArray>;
}

/**
 * Starts `apps/examples/src/<name>` with node (TypeScript through tsx, on the packages' sources); SIGKILLed after
 * the test if still running.
 */
export function startServer(
  t: TestContext,
  name: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): ExampleServer {
  const child = spawn(
    process.execPath,
    ['--conditions=loopwork-source', '--import', 'tsx', examplePath(name), ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    },
  );
  let stdout = '';
  let stderr = '';
  const waiters: (() => void)[] = [];
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    wake();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      wake();
      resolve({ code, signal });
    }),
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    waitFor(re: RegExp): Promise<RegExpExecArray> {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(stdout);
          if (m !== null) resolve(m);
          else if (child.exitCode !== null || child.signalCode !== null) {
            reject(
              new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${stdout}\n${stderr}`),
            );
          } else waiters.push(check);
        };
        check();
      });
    },
  };
}

/** Runs a command to completion (stdin `input`), bounded in time; resolves with its exit code and output. */
export function run(
  cmd: string,
  args: string[],
  input = '',
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Whether a command is on PATH. */
export function hasCommand(name: string): boolean {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .some((dir) => dir !== '' && fs.existsSync(path.join(dir, name)));
}

/** A temporary directory removed after the test. */
export function tempDir(t: TestContext, prefix = 'loopwork-example-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A socket client (TCP `{port}` or Unix `{path}`) that reads lines and raw bytes; destroyed after the test. */
export class SocketClient {
  readonly socket: net.Socket;
  buf = Buffer.alloc(0);
  ended = false;
  readonly connected: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(t: TestContext, where: { port: number; host?: string } | { path: string }) {
    this.socket = 'path' in where ? net.connect(where.path) : net.connect(where.port, where.host ?? '127.0.0.1');
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.#wake();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.#wake();
    });
    this.socket.on('error', () => undefined);
    t.after(() => this.socket.destroy());
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async #until(done: () => boolean, what: string): Promise<void> {
    while (!done()) {
      if (this.ended) throw new Error(`connection closed before ${what}; got ${JSON.stringify(this.buf.toString())}`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** One line, without its `\n` (nor a `\r` before it). */
  async line(): Promise<string> {
    await this.#until(() => this.buf.includes(10), 'a line');
    const i = this.buf.indexOf(10);
    const line = this.buf.subarray(0, i).toString('utf8').replace(/\r$/, '');
    this.buf = this.buf.subarray(i + 1);
    return line;
  }

  /** Everything up to and including `text`. */
  async upTo(text: string): Promise<string> {
    await this.#until(() => this.buf.includes(text), JSON.stringify(text));
    const end = this.buf.indexOf(text) + Buffer.byteLength(text);
    const out = this.buf.subarray(0, end).toString('latin1');
    this.buf = this.buf.subarray(end);
    return out;
  }

  /** One u32be length-prefixed frame, parsed as JSON. */
  async frame(): Promise<Record<string, unknown>> {
    await this.#until(() => this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32BE(0), 'a frame');
    const n = this.buf.readUInt32BE(0);
    const body = this.buf.subarray(4, 4 + n).toString('utf8');
    this.buf = this.buf.subarray(4 + n);
    return JSON.parse(body) as Record<string, unknown>;
  }

  async closed(): Promise<void> {
    await this.#until(() => this.ended, 'close');
  }
}
