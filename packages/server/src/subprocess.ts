/**
 * Subprocesses with streams (asyncio's `subprocess.py`): `createSubprocessExec` and `createSubprocessShell` run
 * a child on `loop.subprocessExec`/`loop.subprocessShell` and give a {@link Process} whose `stdin` is a
 * {@link StreamWriter} and whose `stdout` and `stderr` are {@link StreamReader}s.
 *
 * @module
 */
import { inspect } from 'node:util';
import {
  ConnectionResetError,
  InvalidArgTypeError,
  cancellablePromise,
  gather,
  getRunningLoop,
  promiseCanceller,
} from '@loopwork/core';
import type { PromiseCanceller } from '@loopwork/core';
import type {
  BaseEventLoop,
  Future,
  ReadTransport,
  SubprocessOptions,
  Transport,
  UnixSubprocessTransport,
} from '@loopwork/core';
import { FlowControlMixin, StreamReader, StreamWriter } from './streams.js';

/** The default buffer limit of the stdout and stderr readers, in bytes (asyncio's 64 KiB). */
const DEFAULT_LIMIT = 2 ** 16;

/**
 * The protocol between a child process and its streams (asyncio's `SubprocessStreamProtocol`): it makes a reader
 * for each piped output and a writer for a piped stdin, and closes the transport once the child has exited and
 * its outputs are read to EOF.
 */
export class SubprocessStreamProtocol extends FlowControlMixin {
  /** @internal */
  readonly _limit: number;
  /** The child's stdin, when it is a pipe. */
  stdin: StreamWriter | null = null;
  /** The child's stdout, when it is a pipe. */
  stdout: StreamReader | null = null;
  /** The child's stderr, when it is a pipe. */
  stderr: StreamReader | null = null;
  /** @internal */
  _transport: UnixSubprocessTransport | null = null;
  /** @internal */
  _processExited = false;
  /** @internal the output fds not at EOF yet. */
  readonly _pipeFds: number[] = [];
  /** @internal settled when the stdin pipe is closed (what `stdin.waitClosed()` awaits). */
  readonly _stdinClosed: Future<void>;

  /**
   * @param limit - the readers' buffer limit in bytes.
   * @param loop - the loop.
   */
  constructor(limit: number, loop: BaseEventLoop) {
    super(loop);
    this._limit = limit;
    this._stdinClosed = this._loop.createFuture<void>();
  }

  /** Makes the streams of the child's pipes. */
  override connectionMade(transport: unknown): void {
    const t = transport as UnixSubprocessTransport;
    this._transport = t;
    const stdoutTransport = t.getPipeTransport(1);
    if (stdoutTransport !== null) {
      this.stdout = new StreamReader({ limit: this._limit, loop: this._loop });
      this.stdout.setTransport(stdoutTransport as ReadTransport as Transport);
      this._pipeFds.push(1);
    }
    const stderrTransport = t.getPipeTransport(2);
    if (stderrTransport !== null) {
      this.stderr = new StreamReader({ limit: this._limit, loop: this._loop });
      this.stderr.setTransport(stderrTransport as ReadTransport as Transport);
      this._pipeFds.push(2);
    }
    const stdinTransport = t.getPipeTransport(0);
    if (stdinTransport !== null) {
      this.stdin = new StreamWriter(stdinTransport as Transport, this, null, this._loop);
    }
  }

  /** Feeds the child's output to its reader. */
  pipeDataReceived(fd: number, data: Buffer): void {
    const reader = fd === 1 ? this.stdout : fd === 2 ? this.stderr : null;
    reader?.feedData(data);
  }

  /** Ends a reader (EOF or the error), or settles the stdin writer's `waitClosed()`. */
  pipeConnectionLost(fd: number, exc: Error | null): void {
    if (fd === 0) {
      this.stdin?.close();
      this.connectionLost(exc);
      if (exc === null) this._stdinClosed.setResult(undefined);
      else {
        this._stdinClosed.setException(exc);
        // Awaiting stdin.waitClosed() is not mandatory: no "never retrieved" report.
        this._stdinClosed.exception();
      }
      return;
    }
    const reader = fd === 1 ? this.stdout : fd === 2 ? this.stderr : null;
    if (reader !== null) {
      if (exc === null) reader.feedEof();
      else reader.setException(exc);
    }
    const i = this._pipeFds.indexOf(fd);
    if (i !== -1) this._pipeFds.splice(i, 1);
    this._maybeCloseTransport();
  }

  /** Closes the transport once the outputs are at EOF too. */
  processExited(): void {
    this._processExited = true;
    this._maybeCloseTransport();
  }

  /** @internal */
  _maybeCloseTransport(): void {
    if (this._pipeFds.length === 0 && this._processExited && this._transport !== null) {
      this._transport.close();
      this._transport = null;
    }
  }

  /** @internal */
  override _getCloseWaiter(stream: StreamWriter): Future<void> {
    if (stream === this.stdin) return this._stdinClosed;
    return super._getCloseWaiter(stream);
  }
}

/**
 * A child process started by {@link createSubprocessExec} or {@link createSubprocessShell} (asyncio's
 * `asyncio.subprocess.Process`).
 *
 * Read `stdout`/`stderr` while the child runs, or use `communicate()`: with pipes, `wait()` alone may never
 * return if the child fills a pipe nobody reads.
 */
export class Process {
  /** @internal */
  readonly _transport: UnixSubprocessTransport;
  /** @internal */
  readonly _protocol: SubprocessStreamProtocol;
  /** @internal */
  readonly _loop: BaseEventLoop;
  /** The child's stdin as a writer, when it is a pipe (`stdin: PIPE`), else `null`. */
  readonly stdin: StreamWriter | null;
  /** The child's stdout as a reader, when it is a pipe (`stdout: PIPE`), else `null`. */
  readonly stdout: StreamReader | null;
  /** The child's stderr as a reader, when it is a pipe (`stderr: PIPE`), else `null`. */
  readonly stderr: StreamReader | null;
  /** The child's process id. */
  readonly pid: number;

  /** @internal made by `createSubprocessExec`/`createSubprocessShell`. */
  constructor(transport: UnixSubprocessTransport, protocol: SubprocessStreamProtocol, loop: BaseEventLoop) {
    this._transport = transport;
    this._protocol = protocol;
    this._loop = loop;
    this.stdin = protocol.stdin;
    this.stdout = protocol.stdout;
    this.stderr = protocol.stderr;
    this.pid = transport.getPid();
  }

  /** The exit code: `null` while the child runs, `-N` when signal N ended it. */
  get returncode(): number | null {
    return this._transport.getReturncode();
  }

  /**
   * Waits for the child to exit.
   *
   * @returns the exit code (`-N` for signal N).
   */
  wait(): Promise<number> {
    return this._transport._wait();
  }

  /** Sends a signal (a number or a name such as `'SIGUSR1'`) to the child. */
  sendSignal(signal: number | NodeJS.Signals): void {
    this._transport.sendSignal(signal);
  }

  /** Sends SIGTERM to the child. */
  terminate(): void {
    this._transport.terminate();
  }

  /** Sends SIGKILL to the child. */
  kill(): void {
    this._transport.kill();
  }

  /** @internal */
  async _feedStdin(input: Uint8Array | null): Promise<void> {
    const stdin = this.stdin as StreamWriter;
    const debug = this._loop.getDebug();
    try {
      if (input !== null) {
        stdin.write(input);
        if (debug) this._loop.logger.debug(`${inspect(this)} communicate: feed stdin (${input.length} bytes)`);
      }
      await stdin.drain();
    } catch (exc) {
      // A child that exits without reading all of its input is not an error of communicate().
      if (!isBrokenPipe(exc)) throw exc;
      if (debug) this._loop.logger.debug({ err: exc }, `${inspect(this)} communicate: stdin got an error`);
    }
    if (debug) this._loop.logger.debug(`${inspect(this)} communicate: close stdin`);
    stdin.close();
  }

  /** @internal */
  async _readStream(fd: 1 | 2): Promise<Buffer> {
    const transport = this._transport.getPipeTransport(fd);
    const stream = (fd === 2 ? this.stderr : this.stdout) as StreamReader;
    const name = fd === 1 ? 'stdout' : 'stderr';
    if (this._loop.getDebug()) this._loop.logger.debug(`${inspect(this)} communicate: read ${name}`);
    const output = await stream.read();
    if (this._loop.getDebug()) this._loop.logger.debug(`${inspect(this)} communicate: close ${name}`);
    transport?.close();
    return output;
  }

  /**
   * Sends `input` to the child's stdin and closes it, reads its stdout and stderr to EOF, and waits for it to
   * exit.
   *
   * @param input - bytes for stdin (needs `stdin: PIPE`), or `null`.
   * @returns `[stdout, stderr]`: the output of each stream that is a pipe, else `null`.
   */
  communicate(input: Uint8Array | null = null): Promise<[stdout: Buffer | null, stderr: Buffer | null]> {
    // What it waits on now, which cancelling it cancels (`waitFor(proc.communicate(), 1)`): the gather of the
    // three streams' tasks, then the exit.
    let waitingOn: PromiseCanceller | null = null;
    const run = async (): Promise<[Buffer | null, Buffer | null]> => {
      if (input !== null && !(input instanceof Uint8Array)) {
        throw new InvalidArgTypeError(`input must be bytes, not ${typeof input}`);
      }
      // A new no-op each time: gather() takes one awaitable given twice as one child.
      const noop = () => async (): Promise<null> => null;
      const streams = gather(
        this.stdin !== null ? () => this._feedStdin(input) : noop(),
        this.stdout !== null ? () => this._readStream(1) : noop(),
        this.stderr !== null ? () => this._readStream(2) : noop(),
      );
      waitingOn = (msg) => streams.cancel(msg);
      const [, stdout, stderr] = await streams;
      const exit = this.wait();
      waitingOn = (msg) => promiseCanceller(exit)?.(msg) ?? false;
      await exit;
      return [stdout, stderr];
    };
    return cancellablePromise(run(), (msg) => waitingOn?.(msg) ?? false);
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `<Process ${this.pid}>`;
  }
}

function isBrokenPipe(exc: unknown): boolean {
  if (ConnectionResetError.isInstance(exc)) return true;
  const code = (exc as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ECONNRESET';
}

/** Options of {@link createSubprocessExec} and {@link createSubprocessShell}. */
export interface CreateSubprocessOptions extends SubprocessOptions {
  /** The stdout and stderr readers' buffer limit in bytes (default 64 KiB). */
  limit?: number;
}

/**
 * Runs a program as a child process with streams (asyncio's `create_subprocess_exec`).
 *
 * Unlike `loop.subprocessExec`, the child's stdio is inherited unless `stdin`, `stdout` or `stderr` is `PIPE`
 * (or `DEVNULL`, `STDOUT`, an fd), as in asyncio.
 *
 * @param program - the program (looked up in `PATH`).
 * @param args - its arguments, then optionally the options: `stdin`, `stdout`, `stderr`, `limit` (bytes),
 * `cwd`, `env`, and the other options of `loop.subprocessExec`.
 * @returns the {@link Process}.
 * @throws the spawn error (`ENOENT`…); what `loop.subprocessExec` refuses.
 * @example
 * ```ts
 * const proc = await createSubprocessExec('cat', { stdin: PIPE, stdout: PIPE });
 * const [out] = await proc.communicate(Buffer.from('hello'));
 * ```
 */
export async function createSubprocessExec(
  program: string,
  ...args: [...string[]] | [...string[], CreateSubprocessOptions]
): Promise<Process> {
  const loop = getRunningLoop();
  const last = args[args.length - 1];
  const hasOptions = typeof last === 'object' && last !== null;
  const strings = (hasOptions ? args.slice(0, -1) : args) as string[];
  const { limit = DEFAULT_LIMIT, ...options } = (hasOptions ? last : {}) as CreateSubprocessOptions;
  const [transport, protocol] = await loop.subprocessExec(
    () => new SubprocessStreamProtocol(limit, loop),
    program,
    ...strings,
    withInheritedStdio(options),
  );
  return new Process(transport, protocol, loop);
}

/**
 * Runs a shell command (`/bin/sh -c cmd`) as a child process with streams (asyncio's
 * `create_subprocess_shell`); as {@link createSubprocessExec} otherwise. Quote what comes from users.
 *
 * @param cmd - the command line.
 * @param options - `stdin`, `stdout`, `stderr`, `limit` (bytes), and the options of `loop.subprocessShell`.
 * @returns the {@link Process}.
 */
export async function createSubprocessShell(cmd: string, options: CreateSubprocessOptions = {}): Promise<Process> {
  const loop = getRunningLoop();
  const { limit = DEFAULT_LIMIT, ...rest } = options;
  const [transport, protocol] = await loop.subprocessShell(
    () => new SubprocessStreamProtocol(limit, loop),
    cmd,
    withInheritedStdio(rest),
  );
  return new Process(transport, protocol, loop);
}

/** asyncio's high-level functions default each stdio to `None` (inherited), the low-level ones to `PIPE`. */
function withInheritedStdio(options: SubprocessOptions): SubprocessOptions {
  return { stdin: null, stdout: null, stderr: null, ...options };
}
