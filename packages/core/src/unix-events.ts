/**
 * Subprocesses (asyncio's `base_subprocess.py` and the subprocess part of `unix_events.py`): `subprocessExec`
 * and `subprocessShell` with `PIPE`, `STDOUT`, `DEVNULL`, inheritance, an fd or a stream for each of the child's
 * stdio. The transport is asyncio's `BaseSubprocessTransport` on Node's `child_process.spawn`; its pipes are the
 * pipe transports of pipes.ts.
 *
 * The rest of what asyncio's `unix_events.py` adds to the loop lives beside this module: watching file
 * descriptors in fd-watchers.ts, pipes in pipes.ts, and signal handling in node-event-loop.ts (the only module
 * that touches `process.on`). The high-level `createSubprocessExec`/`createSubprocessShell` need the streams API
 * and live with it.
 *
 * Without the native addon, subprocess pipes are Node's own (`stderr: STDOUT` with a piped stdout then needs the
 * addon).
 *
 * @module
 */
import type { ChildProcess, SpawnOptions, StdioOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable, Stream } from 'node:stream';
import { PassThrough } from 'node:stream';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import { extendEventLoop } from './base-event-loop.js';
import { captureContext } from './context.js';
import {
  InvalidArgTypeError,
  NativeUnavailableError,
  RuntimeError,
  ValueError,
  osErrorFrom,
  typeName,
} from './errors.js';
import { checkOptions } from './options.js';
import type { Future } from './futures.js';
import { cancellableWait } from './futures.js';
import * as native from './native.js';
import { fdHasTransport, fileobjToFd, requireNative } from './fd-watchers.js';
import { closePipe, inspectExtra, isStream, soon } from './pipes.js';
import type { BaseProtocol, ProtocolFactory, SubprocessProtocol } from './protocols.js';
import { BaseProtocol as BaseProtocolClass } from './protocols.js';
import type { BaseTransport, ExtraInfo, ReadTransport, SubprocessTransport, WriteTransport } from './transports.js';

// ---------------------------------------------------------------------------------------------------------
// Subprocesses (asyncio's base_subprocess.py and _UnixSubprocessTransport)

/** A child's stdio is a new pipe (asyncio's `subprocess.PIPE`). */
export const PIPE = -1;
/** The child's stderr goes where its stdout goes (asyncio's `subprocess.STDOUT`); for `stderr` only. */
export const STDOUT = -2;
/** The child's stdio is `/dev/null` (asyncio's `subprocess.DEVNULL`). */
export const DEVNULL = -3;

/**
 * Where one of the child's stdin, stdout or stderr goes: `PIPE`, `STDOUT` (stderr only), `DEVNULL`, `null`
 * (inherited from this process), a file descriptor (≥ 0) of this process, an object with a `fileno()` method
 * (a file object, as Popen takes), or a Node stream that has a file descriptor.
 */
export type StdioSpec = typeof PIPE | typeof STDOUT | typeof DEVNULL | null | number | { fileno(): number } | Stream;

/** Options of `subprocessExec` and `subprocessShell` (asyncio's keyword arguments, camelCased). */
export interface SubprocessOptions {
  /** The child's stdin; `PIPE` by default. */
  stdin?: StdioSpec;
  /** The child's stdout; `PIPE` by default. */
  stdout?: StdioSpec;
  /** The child's stderr; `PIPE` by default; `STDOUT` merges it into stdout. */
  stderr?: StdioSpec;
  /** The child's working directory. */
  cwd?: string | URL | null;
  /** The child's environment; this process's by default. */
  env?: NodeJS.ProcessEnv | null;
  /** Runs the child in a new session (`setsid`), as Popen's `start_new_session`. */
  startNewSession?: boolean;
  /** The user id the child runs as. */
  user?: number | null;
  /** The group id the child runs as. */
  group?: number | null;
  /**
   * The program to run in place of `program`, which stays the child's `argv[0]`; for `subprocessShell`, the shell
   * to run in place of `/bin/sh`, which is then its `argv[0]` too (as Popen's `shell=True`).
   */
  executable?: string | null;
  /** Must be false: the transport deals in bytes. */
  universalNewlines?: boolean;
  /** Must be false for `subprocessExec` and true (or absent) for `subprocessShell`. */
  shell?: boolean;
  /** Must be 0: the transport does its own buffering. */
  bufsize?: number;
  /** Must be null: the transport deals in bytes. */
  encoding?: string | null;
  /** Must be null: the transport deals in bytes. */
  errors?: string | null;
  /** Must be false: the transport deals in bytes. */
  text?: boolean | null;
}

/** The keys of {@link SubprocessOptions}. */
const SUBPROCESS_OPTIONS = [
  'stdin',
  'stdout',
  'stderr',
  'cwd',
  'env',
  'startNewSession',
  'user',
  'group',
  'executable',
  'universalNewlines',
  'shell',
  'bufsize',
  'encoding',
  'errors',
  'text',
];

/** The signal numbers Node has names for (its `ChildProcess.kill()` refuses the others). */
const NODE_SIGNAL_NUMBERS = new Set<number>(Object.values(osConstants.signals));

/**
 * A failed spawn as Python's `subprocess` raises it, the matching `OSError` subclass with the file in the message
 * (`FileNotFoundError: [Errno 2] No such file or directory: 'prog'`): the working directory when that is what is
 * missing, though Node's error names the program.
 */
function spawnError(error: Error, cwd: string | URL | undefined): Error {
  const e = error as Error & { code?: unknown; errno?: unknown; path?: unknown };
  if (typeof e.code !== 'string' || typeof e.errno !== 'number') return error;
  let file = typeof e.path === 'string' ? e.path : null;
  if (e.code === 'ENOENT' && cwd !== undefined && !existsSync(cwd)) file = String(cwd);
  const plain = osErrorFrom(error);
  return file === null ? plain : osErrorFrom(error, `${plain.message}: '${file}'`);
}

function checkSubprocessOptions(method: string, options: SubprocessOptions, expectShell: boolean): void {
  checkOptions(options, SUBPROCESS_OPTIONS, method);
  if (options.universalNewlines) throw new ValueError('universal_newlines must be False');
  if (expectShell) {
    if (options.shell !== undefined && !options.shell) throw new ValueError('shell must be True');
  } else if (options.shell) {
    throw new ValueError('shell must be False');
  }
  if (options.bufsize !== undefined && options.bufsize !== 0) throw new ValueError('bufsize must be 0');
  if (options.text) throw new ValueError('text must be False');
  if (options.encoding !== undefined && options.encoding !== null) throw new ValueError('encoding must be None');
  if (options.errors !== undefined && options.errors !== null) throw new ValueError('errors must be None');
}

/** A parent's end of a child's stdio pipe: an fd of ours (from the addon) or the stream Node made. */
type ParentEnd = number | Readable | Writable;

/** asyncio's `WriteSubprocessPipeProto`: the protocol of the stdin pipe transport. */
class WriteSubprocessPipeProto extends BaseProtocolClass {
  proc: UnixSubprocessTransport | null;
  readonly fd: number;
  pipe: ReadTransport | WriteTransport | null = null;
  disconnected = false;

  constructor(proc: UnixSubprocessTransport, fd: number) {
    super();
    this.proc = proc;
    this.fd = fd;
  }

  override connectionMade(transport: BaseTransport): void {
    this.pipe = transport as ReadTransport | WriteTransport;
  }

  override connectionLost(exc: Error | null): void {
    this.disconnected = true;
    this.proc?._pipeConnectionLost(this.fd, exc);
    this.proc = null;
  }

  override pauseWriting(): void {
    this.proc?._protocol?.pauseWriting();
  }

  override resumeWriting(): void {
    this.proc?._protocol?.resumeWriting();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `<${this.constructor.name} fd=${this.fd} pipe=${inspect(this.pipe)}>`;
  }
}

/** asyncio's `ReadSubprocessPipeProto`: the protocol of the stdout and stderr pipe transports. */
class ReadSubprocessPipeProto extends WriteSubprocessPipeProto {
  dataReceived(data: Buffer): void {
    this.proc?._pipeDataReceived(this.fd, data);
  }

  eofReceived(): void {}
}

type PendingCall = [fn: (...args: never[]) => unknown, args: unknown[]];

/**
 * The transport of a child process (asyncio's `BaseSubprocessTransport` on Node's `child_process`). Made by
 * `loop.subprocessExec()` and `loop.subprocessShell()`.
 *
 * It calls its `SubprocessProtocol` in asyncio's order: `connectionMade` once every pipe is connected, then
 * `pipeDataReceived(fd, data)` for the output of stdout (1) and stderr (2), each pipe's
 * `pipeConnectionLost(fd, exc)` after all of its data, `processExited()` when the process has exited (which
 * may come before the output of pipes that are still open), and `connectionLost(null)` last, once the process
 * has exited and every pipe is closed.
 */
export class UnixSubprocessTransport implements SubprocessTransport {
  /** @internal */
  _closed = false;
  /** @internal */
  _protocol: SubprocessProtocol | null;
  /** @internal */
  _loop: BaseEventLoop | null;
  /** @internal */
  _proc: ChildProcess | null = null;
  /** @internal */
  _pid: number | null = null;
  /** @internal */
  _returncode: number | null = null;
  /** @internal futures of `_wait()`, resolved at connectionLost. */
  _exitWaiters: Future<number>[] | null = [];
  /** @internal protocol calls made before connectionMade, replayed after it. */
  _pendingCalls: PendingCall[] | null = [];
  /** @internal the protocol of each piped fd, null until it is connected. */
  readonly _pipes = new Map<number, WriteSubprocessPipeProto | null>();
  /** @internal */
  _pipesConnected = false;
  /** @internal */
  _finished = false;
  /** @internal the parent's end of each piped fd, until a pipe transport takes it over. */
  readonly _parentEnds: (ParentEnd | null)[] = [null, null, null];
  readonly #extra: Record<string, unknown> = {};
  /** The context the exit is handled in: the one `subprocessExec` was called in. */
  readonly #context = captureContext();

  /** @internal made by `subprocessExec`/`subprocessShell`. */
  constructor(loop: BaseEventLoop, protocol: SubprocessProtocol, stdio: readonly StdioSpec[]) {
    this._loop = loop;
    this._protocol = protocol;
    stdio.forEach((spec, fd) => {
      if (spec === PIPE) this._pipes.set(fd, null);
    });
  }

  /** @internal Spawns the child: asyncio's `_start`. On failure every fd made for it is closed. */
  async _start(args: readonly string[], stdio: readonly StdioSpec[], options: SubprocessOptions): Promise<void> {
    const useNative = native.nativeAvailable();
    const childStdio: (string | number | Stream)[] = [];
    const childEnds: number[] = [];
    const closeEnds = (): void => {
      for (const fd of childEnds) closePipe(fd, fd);
      childEnds.length = 0;
      this._parentEnds.forEach((end, i) => {
        if (typeof end === 'number') closePipe(end, end);
        else end?.destroy();
        this._parentEnds[i] = null;
      });
    };
    try {
      stdio.forEach((spec, fd) => {
        if (spec === PIPE) {
          if (!useNative) {
            childStdio.push('pipe');
            return;
          }
          // A pipe for stdin too, as asyncio has it on Linux (a socket pair only on AIX): the child may open
          // /dev/stdin, which a socket refuses (ENXIO). Our write end polls readable when the child closes it.
          const [readEnd, writeEnd] = native.pipe();
          const [parent, child] = fd === 0 ? [writeEnd, readEnd] : [readEnd, writeEnd];
          this._parentEnds[fd] = parent;
          childEnds.push(child);
          // The addon makes both ends non-blocking; the child expects ordinary blocking stdio.
          native.setBlocking(child, true);
          childStdio.push(child);
        } else if (spec === STDOUT) {
          if (fd !== 2) throw new ValueError('STDOUT can only be used for stderr');
          const out = childStdio[1] as string | number | Stream;
          if (out === 'pipe') {
            throw new NativeUnavailableError(
              'stderr=STDOUT with stdout=PIPE needs one pipe for both, which needs the loopwork native addon ' +
                `(${nativeUnavailableReason()})`,
            );
          }
          childStdio.push(out === 'inherit' ? 1 : out);
        } else if (spec === DEVNULL) {
          childStdio.push('ignore');
        } else if (spec === null || spec === undefined) {
          childStdio.push('inherit');
        } else if (typeof spec === 'number') {
          if (!Number.isInteger(spec) || spec < 0) throw new ValueError(`invalid stdio value ${spec}`);
          childStdio.push(spec);
        } else if (isStream(spec)) {
          childStdio.push(spec);
        } else if (typeof (spec as { fileno?: unknown }).fileno === 'function') {
          childStdio.push(fileobjToFd(spec));
        } else {
          throw new InvalidArgTypeError(
            'stdin, stdout and stderr must be PIPE, STDOUT, DEVNULL, null, a file descriptor, an object with ' +
              `fileno() or a stream, not ${inspect(spec, { depth: 0 })}`,
          );
        }
      });
      const spawnOptions: SpawnOptions = {
        stdio: childStdio as StdioOptions,
        argv0: args[0] as string,
        detached: options.startNewSession === true,
      };
      if (options.cwd != null) spawnOptions.cwd = options.cwd;
      if (options.env != null) spawnOptions.env = options.env;
      if (options.user != null) spawnOptions.uid = options.user;
      if (options.group != null) spawnOptions.gid = options.group;
      let proc: ChildProcess;
      try {
        proc = spawn(options.executable ?? (args[0] as string), args.slice(1), spawnOptions);
      } catch (error) {
        // Some failures Node throws at once (a bad fd for stdio: EBADF), others it reports on the next tick.
        throw spawnError(error as Error, spawnOptions.cwd);
      }
      // Only the child keeps its ends: the parent's copies would hide the child's EOF.
      for (const fd of childEnds) closePipe(fd, fd);
      childEnds.length = 0;
      if (proc.pid === undefined) {
        // Node reports a failed spawn (ENOENT, EACCES...) on the next tick.
        throw spawnError(await new Promise<Error>((resolve) => proc.once('error', resolve)), spawnOptions.cwd);
      }
      this._proc = proc;
      this._pid = proc.pid;
      this.#extra.subprocess = proc;
      if (!useNative) {
        for (const fd of this._pipes.keys()) {
          const stream = proc.stdio[fd] as Readable | Writable;
          // Node resumes an exited child's output streams even when nobody reads them yet (the pipe transports
          // come a few iterations later): a PassThrough keeps the output until then.
          this._parentEnds[fd] = fd === 0 ? stream : (stream as Readable).pipe(new PassThrough());
        }
      }
    } catch (error) {
      closeEnds();
      throw error;
    }
    const proc = this._proc;
    proc.on('error', (exception: Error) => {
      if (this._loop !== null && !this._loop.isClosed()) {
        this._loop.callExceptionHandler({ message: 'Subprocess error', exception, transport: this });
      }
    });
    proc.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      const returncode = code ?? -(osConstants.signals[signal as NodeJS.Signals] ?? 0);
      const loop = this._loop;
      // asyncio's child watcher: the exit is handled on the loop.
      if (loop !== null && !loop.isClosed()) {
        loop._callSoonInternal(this._processExited.bind(this), [returncode], this.#context);
      } else if (this._returncode === null) this._returncode = returncode;
    });
    // While the loop runs its keep-alive holds the process; the child alone must not.
    proc.unref();
    const loop = this._loop as BaseEventLoop;
    if (loop.getDebug()) loop.logger.debug({ program: args[0], pid: this._pid }, 'process created');
  }

  /** @internal asyncio's `_connect_pipes`: connects the pipe transports, then calls connectionMade. */
  async _connectPipes(waiter: Future<void>): Promise<void> {
    try {
      const loop = this._loop as BaseEventLoop;
      for (const fd of [0, 1, 2]) {
        if (!this._pipes.has(fd)) continue;
        const end = this._parentEnds[fd];
        if (this._closed || end === null || end === undefined) {
          throw new RuntimeError('the subprocess transport was closed while its pipes were being connected');
        }
        // From here the pipe transport owns the end and closes it, whatever happens.
        this._parentEnds[fd] = null;
        let proto: WriteSubprocessPipeProto;
        try {
          proto =
            fd === 0
              ? (await loop.connectWritePipe(() => new WriteSubprocessPipeProto(this, 0), end))[1]
              : (await loop.connectReadPipe(() => new ReadSubprocessPipeProto(this, fd), end))[1];
        } catch (error) {
          // Unless no transport could be made for it at all.
          if (typeof end === 'number' && !fdHasTransport(loop, end)) closePipe(end, end);
          throw error;
        }
        this._pipes.set(fd, proto);
        if (this._closed) {
          proto.pipe?.close();
          throw new RuntimeError('the subprocess transport was closed while its pipes were being connected');
        }
      }
      const protocol = this._protocol as SubprocessProtocol;
      soon(loop, protocol.connectionMade.bind(protocol), this);
      for (const [fn, args] of this._pendingCalls ?? []) soon(loop, fn, ...args);
      this._pendingCalls = null;
      this._pipesConnected = true;
    } catch (exc) {
      if (!waiter.cancelled()) waiter.setException(exc);
      return;
    }
    if (!waiter.cancelled()) waiter.setResult(undefined);
  }

  /** The child's process id. */
  getPid(): number {
    return this._pid as number;
  }

  /** The child's return code: `null` while it runs, `-N` when signal N ended it. */
  getReturncode(): number | null {
    return this._returncode;
  }

  /**
   * The pipe transport of the child's `fd`: a `WriteTransport` for 0, a `ReadTransport` for 1 and 2.
   *
   * @returns null when that fd is not a pipe (or not connected yet).
   */
  getPipeTransport(fd: number): WriteTransport | ReadTransport | null {
    return this._pipes.get(fd)?.pipe ?? null;
  }

  /**
   * Sends `signal` to the child; nothing happens once it has exited.
   *
   * @param signal - a number or a name, e.g. `'SIGTERM'`.
   * @throws ProcessLookupError (`ESRCH`) after the transport was finished, as asyncio's; OSError (`EINVAL`) for a
   * number that is no signal; TypeError for what is neither an integer nor a signal name.
   */
  sendSignal(signal: number | NodeJS.Signals): void {
    const proc = this.#checkProc();
    // Node's kill() sends SIGTERM for `undefined` and turns other bad values into odd errors: refuse them first.
    if (!(Number.isInteger(signal) || typeof signal === 'string')) {
      throw new InvalidArgTypeError(`signal must be an int or a signal name, not ${inspect(signal, { depth: 0 })}`);
    }
    if (typeof signal !== 'number' || NODE_SIGNAL_NUMBERS.has(signal)) {
      proc.kill(signal);
      return;
    }
    // Node's kill() knows signals by name only: a real-time signal (34-64) or a bad number goes to kill(2) itself,
    // unless the child has exited (Popen.send_signal polls first), when its pid may be another process's.
    if (proc.exitCode !== null || proc.signalCode !== null || this._returncode !== null) return;
    try {
      process.kill(this._pid as number, signal);
    } catch (error) {
      throw osErrorFrom(error);
    }
  }

  /** Sends SIGTERM to the child. */
  terminate(): void {
    this.sendSignal('SIGTERM');
  }

  /** Sends SIGKILL to the child. */
  kill(): void {
    this.sendSignal('SIGKILL');
  }

  #checkProc(): ChildProcess {
    if (this._proc === null) throw osErrorFrom(native.systemError(osConstants.errno.ESRCH, 'kill'));
    return this._proc;
  }

  setProtocol(protocol: BaseProtocol): void {
    this._protocol = protocol as SubprocessProtocol;
  }

  getProtocol(): BaseProtocol {
    return this._protocol as BaseProtocol;
  }

  isClosing(): boolean {
    return this._closed;
  }

  /**
   * Closes the pipe transports and kills the child (SIGKILL) if it still runs. `connectionLost` follows once
   * the child has exited and the pipes are closed.
   */
  close(): void {
    if (this._closed) return;
    this._closed = true;
    for (const proto of this._pipes.values()) proto?.pipe?.close();
    this._parentEnds.forEach((end, i) => {
      if (typeof end === 'number') closePipe(end, end);
      else end?.destroy();
      this._parentEnds[i] = null;
    });
    const proc = this._proc;
    if (proc !== null && this._returncode === null && proc.exitCode === null && proc.signalCode === null) {
      if (this._loop?.getDebug() === true) {
        this._loop.logger.warn({ transport: this._describe() }, 'Close running child process: kill');
      }
      try {
        proc.kill('SIGKILL');
      } catch {
        // It may have exited meanwhile.
      }
    }
  }

  getExtraInfo<K extends keyof ExtraInfo>(name: K, defaultValue?: ExtraInfo[K]): ExtraInfo[K] | undefined;
  getExtraInfo(name: string, defaultValue?: unknown): unknown;
  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return inspectExtra(this.#extra, name, defaultValue);
  }

  /** @internal */
  _call(fn: (...args: never[]) => unknown, ...args: unknown[]): void {
    if (this._pendingCalls !== null) this._pendingCalls.push([fn, args]);
    else soon(this._loop as BaseEventLoop, fn, ...args);
  }

  /** @internal */
  _pipeConnectionLost(fd: number, exc: Error | null): void {
    const protocol = this._protocol as SubprocessProtocol;
    this._call(protocol.pipeConnectionLost.bind(protocol), fd, exc);
    this._tryFinish();
  }

  /** @internal */
  _pipeDataReceived(fd: number, data: Buffer): void {
    const protocol = this._protocol as SubprocessProtocol;
    this._call(protocol.pipeDataReceived.bind(protocol), fd, data);
  }

  /** @internal */
  _processExited(returncode: number): void {
    if (this._returncode !== null || this._loop === null) return;
    if (this._loop.getDebug()) {
      this._loop.logger.info({ transport: this._describe(), returncode }, 'process exited');
    }
    this._returncode = returncode;
    const protocol = this._protocol as SubprocessProtocol;
    this._call(protocol.processExited.bind(protocol));
    this._tryFinish();
  }

  /**
   * @internal Resolves with the return code once the process has exited and, when its pipes were connected,
   * after `connectionLost` (what `Process.wait()` awaits).
   */
  _wait(): Promise<number> {
    if (this._returncode !== null) return Promise.resolve(this._returncode);
    const waiter = (this._loop as BaseEventLoop).createFuture<number>();
    this._exitWaiters?.push(waiter);
    // Cancellable at its wait (`waitFor(proc.wait(), 1)`): only this waiter, as a cancelled asyncio wait() is.
    return cancellableWait(waiter);
  }

  /** @internal */
  _tryFinish(): void {
    if (this._finished || this._returncode === null) return;
    if (!this._pipesConnected) {
      // The pipes never got connected (the spawn or _connectPipes failed): nothing else will wake _wait().
      for (const waiter of this._exitWaiters ?? []) if (!waiter.done()) waiter.setResult(this._returncode);
    }
    for (const proto of this._pipes.values()) if (proto === null || !proto.disconnected) return;
    this._finished = true;
    this._call(this._callConnectionLost.bind(this), null);
  }

  /** @internal */
  _callConnectionLost(exc: Error | null): void {
    try {
      this._protocol?.connectionLost(exc);
    } finally {
      for (const waiter of this._exitWaiters ?? []) {
        if (!waiter.cancelled() && !waiter.done()) waiter.setResult(this._returncode as number);
      }
      this._exitWaiters = null;
      this._loop = null;
      this._proc = null;
      this._protocol = null;
    }
  }

  /** @internal */
  _describe(): string {
    const info = [this.constructor.name];
    if (this._closed) info.push('closed');
    if (this._pid !== null) info.push(`pid=${this._pid}`);
    if (this._returncode !== null) info.push(`returncode=${this._returncode}`);
    else if (this._pid !== null) info.push('running');
    else info.push('not started');
    const stdin = this._pipes.get(0);
    if (stdin) info.push(`stdin=${inspect(stdin.pipe)}`);
    const stdout = this._pipes.get(1);
    const stderr = this._pipes.get(2);
    if (stdout) info.push(`stdout=${inspect(stdout.pipe)}`);
    if (stderr) info.push(`stderr=${inspect(stderr.pipe)}`);
    return `<${info.join(' ')}>`;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this._describe();
  }
}

function nativeUnavailableReason(): string {
  try {
    requireNative();
    return 'available';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

async function makeSubprocessTransport(
  loop: BaseEventLoop,
  protocol: SubprocessProtocol,
  args: readonly string[],
  options: SubprocessOptions,
): Promise<UnixSubprocessTransport> {
  const stdio: StdioSpec[] = [options.stdin, options.stdout, options.stderr].map((s) => (s === undefined ? PIPE : s));
  const waiter = loop.createFuture<void>();
  const transport = new UnixSubprocessTransport(loop, protocol, stdio);
  try {
    await transport._start(args, stdio, options);
  } catch (error) {
    transport.close();
    throw error;
  }
  loop.createTask(() => transport._connectPipes(waiter));
  try {
    await waiter;
  } catch (error) {
    transport.close();
    await transport._wait();
    throw error;
  }
  return transport;
}

function splitSubprocessArgs(rest: unknown[]): [unknown[], SubprocessOptions] {
  const last = rest[rest.length - 1];
  if (typeof last === 'object' && last !== null && !isStream(last)) {
    const proto: unknown = Object.getPrototypeOf(last);
    if (proto === Object.prototype || proto === null) return [rest.slice(0, -1), last as SubprocessOptions];
  }
  return [rest, {}];
}

// ---------------------------------------------------------------------------------------------------------
// The loop methods

extendEventLoop({
  async subprocessExec(
    this: BaseEventLoop,
    protocolFactory: ProtocolFactory<SubprocessProtocol>,
    program: string,
    ...rest: unknown[]
  ): Promise<[SubprocessTransport, SubprocessProtocol]> {
    const [args, options] = splitSubprocessArgs(rest);
    checkSubprocessOptions('subprocessExec', options, false);
    const popenArgs = [program, ...args];
    for (const arg of popenArgs) {
      if (typeof arg !== 'string') {
        throw new InvalidArgTypeError(`program arguments must be a bytes or text string, not ${typeName(arg)}`);
      }
    }
    this._checkClosed();
    const protocol = protocolFactory();
    const transport = await makeSubprocessTransport(this, protocol, popenArgs as string[], options);
    return [transport, protocol];
  },

  async subprocessShell(
    this: BaseEventLoop,
    protocolFactory: ProtocolFactory<SubprocessProtocol>,
    cmd: string,
    options: SubprocessOptions = {},
  ): Promise<[SubprocessTransport, SubprocessProtocol]> {
    if (typeof cmd !== 'string') throw new ValueError('cmd must be a string');
    checkSubprocessOptions('subprocessShell', options, true);
    this._checkClosed();
    const protocol = protocolFactory();
    // As Popen(shell=True): `executable` replaces the shell, as the program and as its argv[0] both.
    const shell = options.executable ?? '/bin/sh';
    const transport = await makeSubprocessTransport(this, protocol, [shell, '-c', cmd], options);
    return [transport, protocol];
  },
});

declare module './base-event-loop.js' {
  interface BaseEventLoop {
    /**
     * Runs `program` with `args` in a child process (asyncio's `subprocess_exec`), without a shell.
     *
     * Each of stdin, stdout, stderr is `PIPE` (the default), `STDOUT` (stderr only: both to one pipe),
     * `DEVNULL`, `null` (inherited), a file descriptor, an object with `fileno()` or a stream. The protocol gets
     * `connectionMade`, the output as `pipeDataReceived(fd, data)`, each pipe's `pipeConnectionLost(fd, exc)`,
     * `processExited()`, and `connectionLost(null)` once the process has exited and all pipes are closed; write
     * to stdin through `transport.getPipeTransport(0)`.
     *
     * @param protocolFactory - makes the `SubprocessProtocol`.
     * @param program - the program, looked up in `PATH`.
     * @param args - its arguments (strings), then optionally the {@link SubprocessOptions}.
     * @returns `[transport, protocol]` once the pipes are connected.
     * @throws TypeError "program arguments must be a bytes or text string, not number"; ValueError "shell
     *   must be False", "text must be False", "encoding must be None", "errors must be None",
     *   "universal_newlines must be False", "bufsize must be 0"; Node's spawn error (`ENOENT`, `EACCES`).
     * @example
     * const [transport, protocol] = await loop.subprocessExec(() => new MyProtocol(), 'ls', '-l', { stdin: DEVNULL });
     */
    subprocessExec<P extends SubprocessProtocol>(
      protocolFactory: ProtocolFactory<P>,
      program: string,
      ...args: [...string[]] | [...string[], SubprocessOptions]
    ): Promise<[UnixSubprocessTransport, P]>;
    /**
     * Runs `cmd` with `/bin/sh -c` (asyncio's `subprocess_shell`); as `subprocessExec` otherwise. Quote what
     * comes from users (the shell interprets the whole string).
     *
     * @param cmd - the command line.
     * @throws ValueError "cmd must be a string", "shell must be True", and the others of `subprocessExec`.
     */
    subprocessShell<P extends SubprocessProtocol>(
      protocolFactory: ProtocolFactory<P>,
      cmd: string,
      options?: SubprocessOptions,
    ): Promise<[UnixSubprocessTransport, P]>;
  }
}
