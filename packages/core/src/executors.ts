/**
 * Executors: pools of worker threads or child processes that run blocking or CPU-bound functions off the loop
 * (the analogue of `concurrent.futures`), and the loop methods built on them: `loop.runInExecutor()` and
 * `loop.setDefaultExecutor()` (`loop.shutdownDefaultExecutor()` is in the base loop).
 *
 * A function cannot be shared between threads or processes in JavaScript, so a function given to a pool is sent
 * as its source text to a generic worker that evaluates it in its own global scope and calls it with the
 * structured-cloned arguments. What such a function may use is therefore limited; see {@link PoolExecutor}.
 *
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { ResourceLimits } from 'node:worker_threads';
import type { BaseEventLoop, Executor } from './base-event-loop.js';
import { extendEventLoop } from './base-event-loop.js';
import { Deque } from './deque.js';
import {
  CancelledError,
  InvalidArgTypeError,
  NoRunningLoopError,
  RuntimeError,
  ValueError,
  makeError,
} from './errors.js';
import { peekRunningLoop } from './running.js';
import type { Future } from './futures.js';

/**
 * A function or its arguments cannot be sent to a worker: a native or bound function, a class, a method that
 * uses `this`, or arguments (or a result) that the structured clone algorithm refuses. The `cause` is the
 * underlying error when there is one (such as the `DataCloneError`).
 */
export const ExecutorUnsendableError = makeError('ERR_LOOPWORK_EXECUTOR_UNSENDABLE', 'TypeError', TypeError);

/**
 * A worker of a pool ended while running a work item (it crashed, called `process.exit()`, or was killed from
 * outside): asyncio's `BrokenThreadPool`/`BrokenProcessPool`. The pool replaces the worker and goes on.
 */
export const BrokenExecutorError = makeError('ERR_LOOPWORK_EXECUTOR_BROKEN', 'BrokenExecutor', RuntimeError);

type FutureStateName = 'pending' | 'running' | 'finished' | 'cancelled';

const noop = (): void => {};

/**
 * The pending result of work submitted to a pool (the analogue of `concurrent.futures.Future`): a promise that
 * settles with the function's result or error, and can be cancelled while it waits in the queue.
 *
 * A rejection nobody awaits is not reported as an unhandled rejection, as an exception nobody retrieves from a
 * `concurrent.futures.Future` is not.
 *
 * @typeParam R - the type of the result.
 */
export class ExecutorFuture<R> extends Promise<R> {
  #state: FutureStateName = 'pending';
  readonly #resolve: (value: R) => void;
  readonly #reject: (reason: unknown) => void;
  /** @internal removes the item from its pool; `abort` also stops it when it is running. */
  _canceller: ((abort: boolean) => boolean) | null = null;

  /** Promises derived with `then`/`catch`/`finally` are plain promises. */
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  /** @internal Made by the pools' `submit()`. */
  constructor() {
    let resolve!: (value: R) => void;
    let reject!: (reason: unknown) => void;
    super((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#resolve = resolve;
    this.#reject = reject;
    this.catch(noop);
  }

  /**
   * Cancels the work if it has not started yet: it will never run, and the future rejects with `CancelledError`.
   *
   * @returns `true` when the work was waiting and is now cancelled (or was cancelled before); `false` when it is
   * running or done.
   */
  cancel(): boolean {
    if (this.#state === 'cancelled') return true;
    if (this.#state !== 'pending') return false;
    return this._canceller?.(false) ?? false;
  }

  /**
   * Cancels the work whether it waits or runs: a running function is stopped by ending its worker (the thread
   * is terminated, the process killed; the pool starts a new worker when needed). The future rejects with
   * `CancelledError`. Side effects the function had already made stay.
   *
   * @returns `true` when the work was waiting or running and is now cancelled; `false` when it was done.
   */
  abort(): boolean {
    if (this.#state === 'cancelled') return true;
    if (this.#state === 'finished') return false;
    return this._canceller?.(true) ?? false;
  }

  /** True when the work was cancelled. */
  cancelled(): boolean {
    return this.#state === 'cancelled';
  }

  /** True while the work runs in a worker. */
  running(): boolean {
    return this.#state === 'running';
  }

  /** True when the work finished, failed or was cancelled. */
  done(): boolean {
    return this.#state === 'finished' || this.#state === 'cancelled';
  }

  /** @internal */
  _setRunning(): void {
    this.#state = 'running';
  }

  /** @internal */
  _setResult(value: R): void {
    if (this.done()) return;
    this.#state = 'finished';
    this.#resolve(value);
  }

  /** @internal */
  _setException(error: unknown): void {
    if (this.done()) return;
    this.#state = 'finished';
    this.#reject(error);
  }

  /** @internal */
  _setCancelled(): void {
    if (this.done()) return;
    this.#state = 'cancelled';
    this.#reject(new CancelledError());
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `<ExecutorFuture state=${this.#state}>`;
  }
}

// ---- sending functions ------------------------------------------------------------------------------------

/** A function turned into source that a worker can evaluate, with an id so that each worker compiles it once. */
interface Sendable {
  readonly id: number;
  readonly source: string;
}

const sendables = new WeakMap<object, Sendable>();
const sourceIds = new Map<string, number>();

/** The part of the source that is code: string literals and comments removed (a heuristic, enough for `this`). */
function codeOnly(source: string): string {
  return (
    source
      // esbuild's keepNames helper (tsx) names a nested class from its static block, `static{__name(this,"K")}`
      .replace(/static\s*\{\s*__name\(this,\s*"[^"]*"\)\s*;?\s*\}/g, '')
      .replace(/(["'`])(?:\\[\s\S]|(?!\1)[^\\])*\1/g, '""')
      .replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '')
  );
}

/** The index just past the bracket that closes the one at `open` (`(`/`)` or `{`/`}`), or -1. */
function pastClosing(code: string, open: number): number {
  const o = code[open];
  const c = o === '(' ? ')' : '}';
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    if (code[i] === o) depth++;
    else if (code[i] === c && --depth === 0) return i + 1;
  }
  return -1;
}

/**
 * `code` (from {@link codeOnly}) without the bodies of the functions and classes nested in it: a `this` there is
 * their own, not the `this` of the code around the function that is sent.
 */
function withoutNestedThisScopes(code: string): string {
  const scope = /(?<![.\w$])(?:function\b[\s*]*[\w$]*\s*(?=\()|class\b)/g;
  let out = '';
  let last = 0;
  for (let m = scope.exec(code); m !== null; m = scope.exec(code)) {
    let from = m.index + m[0].length;
    if (m[0].startsWith('function')) from = pastClosing(code, from);
    const open = from < 0 ? -1 : code.indexOf('{', from);
    const end = open < 0 ? -1 : pastClosing(code, open);
    if (end < 0) break;
    out += `${code.slice(last, m.index)} `;
    last = end;
    scope.lastIndex = end;
  }
  return out + code.slice(last);
}

function compiles(expression: string): boolean {
  try {
    // Only parsed, never called: tells an expression (function, arrow) from a method's shorthand.
    new Function(`return (${expression}\n);`);
    return true;
  } catch {
    return false;
  }
}

function describeFunction(fn: { name?: unknown }): string {
  return typeof fn.name === 'string' && fn.name !== '' ? `function ${fn.name}()` : 'the anonymous function';
}

/**
 * Turns `fn` into source a worker can evaluate, or throws why it cannot be sent.
 *
 * @internal
 */
function toSendable(fn: unknown, method: string): Sendable {
  if (typeof fn !== 'function') {
    throw new InvalidArgTypeError(`a callable object was expected by ${method}(), got ${inspect(fn, { depth: 0 })}`);
  }
  const cached = sendables.get(fn);
  if (cached !== undefined) return cached;
  const what = describeFunction(fn);
  const source = Function.prototype.toString.call(fn);
  const unsendable = (why: string): Error =>
    new ExecutorUnsendableError(
      `${what} cannot be sent to a worker: ${why}. A function run in an executor is sent as its source text ` +
        'and may use only its arguments, globals and what it imports itself',
    );
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) throw unsendable('it is a native or bound function');
  if (/^class\b/.test(source)) throw unsendable('it is a class');
  let expression = source;
  let isMethod = false;
  if (!compiles(source)) {
    // A method's shorthand (`m() {}`, `async *m() {}`, also a class method) is valid only inside an object.
    if (/^(get|set)\s/.test(source)) throw unsendable('it is an accessor');
    expression = `Object.values({ ${source}\n })[0]`;
    if (!compiles(expression)) throw unsendable('its source is not a function expression');
    isMethod = true;
  }
  const isArrow = !isMethod && !/^(async\s+)?function\b/.test(source);
  if ((isMethod || isArrow) && /\b(this|super)\b/.test(withoutNestedThisScopes(codeOnly(source)))) {
    throw unsendable(
      isMethod
        ? 'it is a method that uses `this` or `super` (pass the data it needs as arguments instead)'
        : 'it is an arrow function that uses the `this` of the code around it',
    );
  }
  let id = sourceIds.get(expression);
  if (id === undefined) {
    id = sourceIds.size + 1;
    sourceIds.set(expression, id);
  }
  const sendable: Sendable = { id, source: expression };
  sendables.set(fn, sendable);
  return sendable;
}

function isCloneError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'DataCloneError' || / could not be cloned\.?$/.test(error.message));
}

// ---- the generic worker ------------------------------------------------------------------------------------

/** The error of a worker's function as it crosses the thread or process boundary. */
interface ErrorDescription {
  kind: 'error';
  ctor: string;
  name: string;
  message: string;
  stack: string | undefined;
  props: Record<string, unknown>;
  cause?: ErrorDescription | { kind: 'value'; value: unknown };
  errors?: (ErrorDescription | { kind: 'value'; value: unknown })[];
}

type Thrown = ErrorDescription | { kind: 'value'; value: unknown };

/** A message to a worker: `[itemId, functionId, source (only the first time this worker sees it), args]`. */
type Request = [id: number, fnId: number, source: string | null, args: unknown[]];
/** A worker's reply: `[itemId, 0, result]`, `[itemId, 1, thrown]`, or `[itemId, 2, why the result cannot be sent]`. */
type Reply =
  | [id: number, status: 0, value: unknown]
  | [id: number, status: 1, thrown: Thrown]
  | [id: number, status: 2, why: string];

/*
 * The worker's side, shared by threads and processes: plain JavaScript evaluated with `eval: true` or `node -e`,
 * so that it needs no file next to this module (in the sources, the build, or a bundle).
 * `(0, eval)` is indirect: the function's source is compiled in the global scope, where it sees only globals.
 * `__name` is the helper esbuild (tsx) inserts into functions when it keeps names.
 */
const WORKER_COMMON = String.raw`
'use strict';
globalThis.__name ??= (f, n) => { try { Object.defineProperty(f, 'name', { value: n, configurable: true }); } catch {} return f; };
const fns = new Map();
const evaluate = eval;
const BUILTIN = new Set(['Error', 'TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'EvalError', 'URIError', 'AggregateError']);
function ctorOf(e) {
  for (let p = Object.getPrototypeOf(e); p !== null; p = Object.getPrototypeOf(p)) {
    const c = Object.hasOwn(p, 'constructor') ? p.constructor : undefined;
    if (c !== undefined && BUILTIN.has(c.name) && globalThis[c.name] === c) return c.name;
  }
  return 'Error';
}
function describe(e, depth) {
  if (!(e instanceof Error)) {
    try { structuredClone(e); return { kind: 'value', value: e }; } catch { return { kind: 'value', value: String(e) }; }
  }
  const out = { kind: 'error', ctor: ctorOf(e), name: String(e.name), message: String(e.message), stack: typeof e.stack === 'string' ? e.stack : undefined, props: {} };
  for (const k of Object.keys(e)) {
    if (k === 'name' || k === 'message' || k === 'stack' || k === 'cause' || k === 'errors') continue;
    try { out.props[k] = structuredClone(e[k]); } catch {}
  }
  if (depth < 4 && 'cause' in e) out.cause = describe(e.cause, depth + 1);
  if (depth < 4 && Array.isArray(e.errors)) out.errors = e.errors.map((x) => describe(x, depth + 1));
  return out;
}
async function run(m, reply) {
  const [id, fnId, source, args] = m;
  let value;
  try {
    let fn = fns.get(fnId);
    if (fn === undefined) {
      fn = evaluate('"use strict";(' + source + '\n)');
      fns.set(fnId, fn);
    }
    value = await fn(...args);
  } catch (e) {
    reply([id, 1, describe(e, 0)]);
    return;
  }
  try { reply([id, 0, value]); } catch (e) { reply([id, 2, String(e && e.message)]); }
}
`;

// Each runs in a function so that its names are not globals the evaluated functions could see; it loads what it
// needs with `import()` because the worker may run as a script or (with `--input-type=module`) as a module.
const THREAD_WORKER = `(async () => {${WORKER_COMMON}
globalThis.require ??= (await import('node:module')).createRequire(process.cwd() + '/');
const { parentPort } = await import('node:worker_threads');
parentPort.on('message', (m) => run(m, (r) => parentPort.postMessage(r)));
})();`;

// A reply that cannot be written means this process's parent is gone: leave quietly.
const PROCESS_WORKER = `(async () => {${WORKER_COMMON}
globalThis.require ??= (await import('node:module')).createRequire(process.cwd() + '/');
process.on('message', (m) => run(m, (r) => process.send(r, (e) => { if (e) process.exit(0); })));
process.on('disconnect', () => process.exit(0));
})();`;

const ERROR_CLASSES: Record<string, new (message?: string) => Error> = {
  Error,
  TypeError,
  RangeError,
  ReferenceError,
  SyntaxError,
  EvalError,
  URIError,
};

/** Rebuilds in this thread the error a worker's function threw: same class (if built in), name, message, stack. */
function rebuildThrown(thrown: Thrown): unknown {
  if (thrown.kind === 'value') return thrown.value;
  let error: Error;
  if (thrown.ctor === 'AggregateError') {
    error = new AggregateError((thrown.errors ?? []).map(rebuildThrown), thrown.message);
  } else {
    error = new (ERROR_CLASSES[thrown.ctor] ?? Error)(thrown.message);
  }
  if (error.name !== thrown.name) {
    Object.defineProperty(error, 'name', { value: thrown.name, writable: true, configurable: true });
  }
  if (thrown.stack !== undefined) {
    Object.defineProperty(error, 'stack', { value: thrown.stack, writable: true, configurable: true });
  }
  Object.assign(error, thrown.props);
  if (thrown.cause !== undefined) {
    Object.defineProperty(error, 'cause', { value: rebuildThrown(thrown.cause), writable: true, configurable: true });
  }
  return error;
}

// ---- pools --------------------------------------------------------------------------------------------------

/** @internal One submitted call. */
interface WorkItem {
  readonly id: number;
  readonly fn: Sendable;
  readonly args: unknown[];
  readonly future: ExecutorFuture<unknown>;
  worker: PoolWorker | null;
}

/** @internal A thread or a process of a pool, as the pool drives it. */
export interface PoolWorker {
  /** The item it runs, or null when idle. */
  item: WorkItem | null;
  /** Ids of the functions it has compiled. */
  readonly known: Set<number>;
  /** Set once it is ending (terminated, killed, exited): never given work again. */
  ending: boolean;
  /** Posts a request; throws when the request cannot be serialized. */
  send(request: Request): void;
  /** Keeps the process alive while it works. */
  ref(): void;
  /** Lets the process exit while it is idle. */
  unref(): void;
  /** Ends it: a thread is terminated, a process killed. */
  terminate(): void;
}

/** @internal Callbacks a pool gives the workers it spawns. */
export interface PoolWorkerEvents {
  /** A reply arrived. */
  message(reply: Reply): void;
  /** The worker ended; `error` says why when it failed. */
  exit(error: Error | null): void;
}

/** Options of a pool executor. */
export interface PoolExecutorOptions {
  /** How many workers may run at once (at least 1). */
  maxWorkers?: number;
  /**
   * Node options of the workers: by default a thread inherits this process's (as `worker_threads` does) and a
   * process gets this process's `process.execArgv` minus the inspector, the test runner and `--eval`.
   */
  execArgv?: string[];
  /** Environment of the workers (by default this process's `process.env`). */
  env?: NodeJS.ProcessEnv;
}

/** A function a pool can run: its result may be a promise, which the worker awaits. */
type WorkFunction<A extends unknown[], R> = (...args: A) => R | PromiseLike<R>;

const INHERITED_FLAG_DENYLIST = /^--(inspect|debug|test|experimental-test|watch|eval|print|input-type)|^-[ep]$/;

/** This process's Node options that make sense in a worker. */
function inheritedExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (INHERITED_FLAG_DENYLIST.test(arg)) {
      // `-e code`, `--eval code`, `--input-type module`: skip the value too.
      if (/^(-[ep]|--eval|--print|--input-type)$/.test(arg)) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

function checkMaxWorkers(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new InvalidArgTypeError(`maxWorkers must be an integer, got ${inspect(value, { depth: 0 })}`);
  }
  if (value <= 0) throw new ValueError('maxWorkers must be greater than 0');
  return value;
}

/**
 * The common part of `ThreadPoolExecutor` and `ProcessPoolExecutor`: a FIFO queue of submitted calls run by up to
 * `maxWorkers` workers, which are started when work arrives and no worker is idle.
 *
 * **What a submitted function may use.** The function is sent as its source text and evaluated in the worker's
 * global scope, so:
 * - it must not refer to variables of the code around it (a closure): such a name is not defined in the worker
 *   and the call fails there with a `ReferenceError`. Pass everything it needs as arguments.
 * - its arguments and its result are copied with the structured clone algorithm (plain data, arrays, `Map`,
 *   `Set`, `Date`, `RegExp`, typed arrays and `Buffer` contents, errors; a `SharedArrayBuffer` is shared with a
 *   thread); functions, class instances' prototypes and sockets are not. Arguments that cannot be cloned make the
 *   future fail with `ExecutorUnsendableError` (code `ERR_LOOPWORK_EXECUTOR_UNSENDABLE`, the `DataCloneError` as
 *   `cause`); so does a result that cannot be sent back.
 * - it may use globals (`process`, `Buffer`, `require` resolving from the working directory, timers) and load
 *   modules itself with `await import('node:fs')`. A relative specifier resolves from the working directory,
 *   not from the caller's file: pass `import.meta.resolve('./x.js')` as an argument instead.
 * - it may be `async`: the worker awaits it.
 * - native and bound functions, classes, accessors, and methods or arrow functions that use `this` cannot be
 *   sent: `submit()` throws `ExecutorUnsendableError` at once.
 *
 * An error thrown by the function rejects the future with an error of the same built-in class (`Error`,
 * `TypeError`, `RangeError`, …) with the original `name`, `message`, `stack` (the worker's), `cause`, and own
 * properties that can be cloned (such as `code`). A thrown non-error value is passed as is.
 *
 * Idle workers do not keep the process alive.
 */
export abstract class PoolExecutor implements Executor {
  /** How many workers may run at once. */
  readonly maxWorkers: number;
  /** @internal */
  readonly _execArgv: string[] | undefined;
  /** @internal */
  readonly _env: NodeJS.ProcessEnv | undefined;
  readonly #queue = new Deque<WorkItem>();
  readonly #idle: PoolWorker[] = [];
  readonly #workers = new Set<PoolWorker>();
  #nextId = 1;
  #shutdown = false;
  #joined: Promise<void> | null = null;
  #resolveJoined: (() => void) | null = null;

  protected constructor(options: PoolExecutorOptions, defaultMaxWorkers: number) {
    this.maxWorkers = checkMaxWorkers(options.maxWorkers, defaultMaxWorkers);
    this._execArgv = options.execArgv;
    this._env = options.env;
  }

  /** @internal Starts a worker that reports to `events`. */
  protected abstract _spawn(events: PoolWorkerEvents): PoolWorker;

  /** @internal The word used in messages: "thread" or "process". */
  protected abstract readonly _kind: string;

  /**
   * Schedules `fn(...args)` to run in a worker and returns a future of its result.
   *
   * @param fn - a self-contained function (see the class documentation for what it may use).
   * @param args - its arguments, structured-cloned into the worker.
   * @returns an `ExecutorFuture` (a thenable) that settles with the result or the error.
   * @throws ExecutorUnsendableError when `fn` cannot be sent; TypeError when it is not a function;
   * RuntimeError (`cannot schedule new futures after shutdown`) after `shutdown()`.
   */
  submit<A extends unknown[], R>(fn: WorkFunction<A, R>, ...args: A): ExecutorFuture<Awaited<R>> {
    const sendable = toSendable(fn, 'submit');
    if (this.#shutdown) throw new RuntimeError('cannot schedule new futures after shutdown');
    const future = new ExecutorFuture<Awaited<R>>();
    const item: WorkItem = {
      id: this.#nextId++,
      fn: sendable,
      args,
      future: future as ExecutorFuture<unknown>,
      worker: null,
    };
    future._canceller = (abort) => this.#cancel(item, abort);
    this.#queue.push(item);
    this.#pump();
    return future;
  }

  /**
   * Stops accepting work and ends the workers once the work already submitted is done (asyncio's
   * `Executor.shutdown`). Idempotent.
   *
   * @param options - `wait` (default `true`): the promise resolves only when every worker has ended;
   * `cancelFutures` (default `false`): work that has not started is cancelled (its futures reject with
   * `CancelledError`).
   */
  shutdown(options: { wait?: boolean; cancelFutures?: boolean } = {}): Promise<void> {
    const { wait = true, cancelFutures = false } = options;
    if (!this.#shutdown) {
      this.#shutdown = true;
      this.#joined = new Promise<void>((resolve) => {
        this.#resolveJoined = resolve;
      });
    }
    if (cancelFutures) {
      for (let item = this.#queue.shift(); item !== undefined; item = this.#queue.shift()) item.future._setCancelled();
    }
    this.#reap();
    return wait ? (this.#joined as Promise<void>) : Promise.resolve();
  }

  /** Shuts down and waits (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown({ wait: true });
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    let queued = 0;
    for (const item of this.#queue) if (!item.future.done()) queued++;
    return (
      `<${this.constructor.name} maxWorkers=${this.maxWorkers} workers=${this.#workers.size} ` +
      `idle=${this.#idle.length} queued=${queued}${this.#shutdown ? ' shutdown' : ''}>`
    );
  }

  #pump(): void {
    while (this.#queue.length > 0 && (this.#idle.length > 0 || this.#workers.size < this.maxWorkers)) {
      const item = this.#queue.shift() as WorkItem;
      if (item.future.done()) continue;
      const worker = this.#idle.pop() ?? this.#startWorker();
      this.#start(worker, item);
    }
    this.#reap();
  }

  #startWorker(): PoolWorker {
    const events: PoolWorkerEvents = {
      message: (reply) => this.#onReply(worker, reply),
      exit: (error) => this.#onExit(worker, error),
    };
    const worker = this._spawn(events);
    this.#workers.add(worker);
    return worker;
  }

  #start(worker: PoolWorker, item: WorkItem): void {
    const first = !worker.known.has(item.fn.id);
    try {
      worker.send([item.id, item.fn.id, first ? item.fn.source : null, item.args]);
    } catch (error) {
      if (isCloneError(error)) {
        this.#idle.push(worker);
      } else {
        worker.ending = true;
        worker.terminate();
      }
      item.future._setException(
        isCloneError(error)
          ? new ExecutorUnsendableError(
              `the arguments of ${item.fn.source.length > 60 ? 'the function' : item.fn.source} cannot be sent to a ` +
                `worker ${this._kind}: ${(error as Error).message}`,
              { cause: error },
            )
          : error,
      );
      return;
    }
    if (first) worker.known.add(item.fn.id);
    worker.item = item;
    item.worker = worker;
    item.future._setRunning();
    worker.ref();
  }

  #onReply(worker: PoolWorker, reply: Reply): void {
    const item = worker.item;
    if (item === null || item.id !== reply[0]) return;
    worker.item = null;
    item.worker = null;
    worker.unref();
    if (!worker.ending) this.#idle.push(worker);
    if (reply[1] === 0) {
      item.future._setResult(reply[2]);
    } else if (reply[1] === 1) {
      item.future._setException(rebuildThrown(reply[2]));
    } else {
      item.future._setException(
        new ExecutorUnsendableError(`the result cannot be sent back from the worker ${this._kind}: ${reply[2]}`),
      );
    }
    this.#pump();
  }

  #onExit(worker: PoolWorker, error: Error | null): void {
    worker.ending = true;
    this.#workers.delete(worker);
    const i = this.#idle.indexOf(worker);
    if (i !== -1) this.#idle.splice(i, 1);
    const item = worker.item;
    worker.item = null;
    if (item !== null) {
      item.worker = null;
      item.future._setException(
        new BrokenExecutorError(
          `A ${this._kind} in the pool was terminated abruptly while the future was running`,
          error === null ? undefined : { cause: error },
        ),
      );
    }
    this.#pump();
  }

  #cancel(item: WorkItem, abort: boolean): boolean {
    const worker = item.worker;
    if (worker === null) {
      // Still queued: `#pump` skips it.
      item.future._setCancelled();
      this.#reap();
      return true;
    }
    if (!abort) return false;
    worker.item = null;
    item.worker = null;
    worker.ending = true;
    worker.terminate();
    item.future._setCancelled();
    return true;
  }

  /** After shutdown: ends the idle workers (the queue is empty when any is idle) and resolves `#joined`. */
  #reap(): void {
    if (!this.#shutdown) return;
    for (let worker = this.#idle.pop(); worker !== undefined; worker = this.#idle.pop()) {
      worker.ending = true;
      worker.terminate();
    }
    if (this.#workers.size === 0 && this.#resolveJoined !== null) {
      let pending = false;
      for (const item of this.#queue) if (!item.future.done()) pending = true;
      if (!pending) {
        this.#resolveJoined();
        this.#resolveJoined = null;
      }
    }
  }
}

/** Options of a `ThreadPoolExecutor`. */
export interface ThreadPoolExecutorOptions extends PoolExecutorOptions {
  /** Resource limits of each worker thread (`worker_threads.ResourceLimits`). */
  resourceLimits?: ResourceLimits;
}

/**
 * An executor that runs functions in a pool of worker threads (asyncio's default executor, the analogue of
 * `concurrent.futures.ThreadPoolExecutor`). Threads are started when work arrives and no thread is idle, up to
 * `maxWorkers` (by default `min(32, cpus + 4)`), and are kept for later work; idle ones do not keep the process
 * alive. See {@link PoolExecutor} for what a submitted function may use.
 *
 * @example
 * ```ts
 * const pool = new ThreadPoolExecutor({ maxWorkers: 4 });
 * const n = await loop.runInExecutor(pool, (limit: number) => {
 *   let sum = 0;
 *   for (let i = 0; i < limit; i++) sum += i * i;
 *   return sum;
 * }, 10_000_000);
 * await pool.shutdown();
 * ```
 */
export class ThreadPoolExecutor extends PoolExecutor {
  /** @internal */
  protected readonly _kind = 'thread';
  readonly #resourceLimits: ResourceLimits | undefined;

  /**
   * @param options - `maxWorkers` (default `min(32, cpus + 4)`), `execArgv`, `env`, `resourceLimits`.
   * @throws ValueError when `maxWorkers` is not positive.
   */
  constructor(options: ThreadPoolExecutorOptions = {}) {
    super(options, Math.min(32, availableParallelism() + 4));
    this.#resourceLimits = options.resourceLimits;
  }

  /** @internal */
  protected _spawn(events: PoolWorkerEvents): PoolWorker {
    const worker = new Worker(THREAD_WORKER, {
      eval: true,
      ...(this._execArgv === undefined ? {} : { execArgv: this._execArgv }),
      ...(this._env === undefined ? {} : { env: this._env }),
      ...(this.#resourceLimits === undefined ? {} : { resourceLimits: this.#resourceLimits }),
    });
    let failure: Error | null = null;
    worker.on('message', (reply: Reply) => events.message(reply));
    worker.on('error', (error) => {
      failure = error;
    });
    worker.on('exit', () => events.exit(failure));
    worker.unref();
    return {
      item: null,
      known: new Set(),
      ending: false,
      send: (request) => worker.postMessage(request),
      ref: () => worker.ref(),
      unref: () => worker.unref(),
      terminate: () => {
        // Referenced until it has ended, so that a shutdown waiting for the 'exit' is not left pending.
        worker.ref();
        void worker.terminate();
      },
    };
  }
}

/**
 * An executor that runs functions in a pool of child processes (the analogue of
 * `concurrent.futures.ProcessPoolExecutor`): separate Node processes started from `process.execPath`, talking
 * over an IPC channel with the structured clone algorithm. Processes are started when work arrives and no process
 * is idle, up to `maxWorkers` (by default the number of CPUs), and are kept for later work; idle ones do not keep
 * this process alive, and each exits when this one does. Their stdout and stderr are this process's. See
 * {@link PoolExecutor} for what a submitted function may use.
 */
export class ProcessPoolExecutor extends PoolExecutor {
  /** @internal */
  protected readonly _kind = 'process';

  /**
   * @param options - `maxWorkers` (default: the number of CPUs), `execArgv`, `env`.
   * @throws ValueError when `maxWorkers` is not positive.
   */
  constructor(options: PoolExecutorOptions = {}) {
    super(options, availableParallelism());
  }

  /** @internal */
  protected _spawn(events: PoolWorkerEvents): PoolWorker {
    const child: ChildProcess = spawn(
      process.execPath,
      [...(this._execArgv ?? inheritedExecArgv()), '-e', PROCESS_WORKER],
      {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'advanced',
        windowsHide: true,
        ...(this._env === undefined ? {} : { env: this._env }),
      },
    );
    let failure: Error | null = null;
    let exited = false;
    const onExit = (): void => {
      if (exited) return;
      exited = true;
      events.exit(failure);
    };
    child.on('message', (reply: Reply) => events.message(reply));
    child.on('error', (error) => {
      failure = error;
      // A process that could not be started emits no 'exit'.
      if (child.pid === undefined) onExit();
    });
    child.on('exit', (code, signal) => {
      failure ??= code === 0 ? null : new Error(`the worker process exited with ${signal ?? `code ${code}`}`);
      onExit();
    });
    const unref = (): void => {
      child.unref();
      child.channel?.unref();
    };
    unref();
    return {
      item: null,
      known: new Set(),
      ending: false,
      send: (request) => {
        if (!child.connected) throw new BrokenExecutorError('the worker process is gone');
        child.send(request);
      },
      ref: () => {
        child.ref();
        child.channel?.ref();
      },
      unref,
      terminate: () => {
        if (exited) return;
        // Referenced until it has ended, so that a shutdown waiting for the 'exit' is not left pending.
        child.ref();
        child.kill('SIGKILL');
      },
    };
  }
}

/** True when `value` has an executor's `submit()` and `shutdown()` methods. */
export function isExecutor(value: unknown): value is Executor {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Executor).submit === 'function' &&
    typeof (value as Executor).shutdown === 'function'
  );
}

// ---- the loop methods ---------------------------------------------------------------------------------------

declare module './base-event-loop.js' {
  interface BaseEventLoop {
    /**
     * Runs `func(...args)` in `executor` and returns a Future of its result (asyncio's `run_in_executor`).
     *
     * With `executor` null the loop's default executor is used: the one given to `setDefaultExecutor()`, or a
     * `ThreadPoolExecutor` created at the first use. Cancelling the Future cancels the work if it has not
     * started, and stops it if it runs and the executor can (loopwork's pools end the worker running it).
     * With loopwork's pools, `func` must be self-contained: see {@link PoolExecutor}.
     *
     * @param executor - an `Executor`, or `null` for the default one.
     * @param func - the function to run.
     * @param args - its arguments.
     * @returns a Future of this loop that resolves with `func`'s result or fails with its error.
     * @throws RuntimeError when the loop is closed, or (`Executor shutdown has been called`) when the default
     * executor is asked for after `shutdownDefaultExecutor()`; TypeError when `executor` is not an executor or
     * `func` not a function; ExecutorUnsendableError when `func` cannot be sent to a worker.
     */
    runInExecutor<A extends unknown[], R>(
      executor: Executor | null,
      func: (...args: A) => R | PromiseLike<R>,
      ...args: A
    ): Future<Awaited<R>>;

    /**
     * Sets the executor `runInExecutor(null, …)` uses (asyncio's `set_default_executor`). asyncio accepts only a
     * `ThreadPoolExecutor`; loopwork accepts any `Executor`.
     *
     * @throws TypeError when `executor` is not an executor.
     */
    setDefaultExecutor(executor: Executor): void;
  }
}

interface Cancellable {
  cancel?: () => unknown;
  abort?: () => unknown;
}

extendEventLoop({
  runInExecutor(
    this: BaseEventLoop,
    executor: Executor | null,
    func: (...args: unknown[]) => unknown,
    ...args: unknown[]
  ): Future<unknown> {
    this._checkClosed();
    if (typeof func !== 'function') {
      throw new InvalidArgTypeError(
        `a callable object was expected by runInExecutor(), got ${inspect(func, { depth: 0 })}`,
      );
    }
    let target: Executor;
    if (executor === null || executor === undefined) {
      if (this._executorShutdownCalled) throw new RuntimeError('Executor shutdown has been called');
      this._defaultExecutor ??= new ThreadPoolExecutor();
      target = this._defaultExecutor;
    } else if (isExecutor(executor)) {
      target = executor;
    } else {
      throw new InvalidArgTypeError(`executor must be an Executor or null, got ${inspect(executor, { depth: 0 })}`);
    }
    const work = target.submit(func, ...args) as PromiseLike<unknown> & Cancellable;
    const future = this.createFuture<unknown>();
    future.addDoneCallback((f) => {
      if (!f.cancelled()) return;
      if (typeof work.abort === 'function') work.abort();
      else if (typeof work.cancel === 'function') work.cancel();
    });
    work.then(
      (value) => {
        if (!future.done() && !this.isClosed()) future.setResult(value);
      },
      (error: unknown) => {
        if (future.done() || this.isClosed()) return;
        if (CancelledError.isInstance(error)) future.cancel();
        else future.setException(error);
      },
    );
    return future;
  },

  setDefaultExecutor(this: BaseEventLoop, executor: Executor): void {
    if (!isExecutor(executor)) {
      throw new InvalidArgTypeError(
        `executor must be an Executor (with submit() and shutdown()), got ${inspect(executor, { depth: 0 })}`,
      );
    }
    this._defaultExecutor = executor;
  },
});

/**
 * Runs `func(...args)` in a worker thread of the running loop's default executor and returns a Future of its
 * result (asyncio's `to_thread`). As with `runInExecutor`, `func` must be self-contained (see
 * {@link PoolExecutor}); context variables do not cross into the worker, which shares no memory with this one.
 *
 * @example
 * ```ts
 * const sum = await toThread((n: number) => {
 *   let s = 0;
 *   for (let i = 0; i < n; i++) s += i;
 *   return s;
 * }, 1e8);
 * ```
 * @throws RuntimeError ("no running event loop") outside a running loop; as `runInExecutor` otherwise.
 */
export function toThread<A extends unknown[], R>(
  func: (...args: A) => R | PromiseLike<R>,
  ...args: A
): Future<Awaited<R>> {
  const loop = peekRunningLoop() as BaseEventLoop | null;
  if (loop === null) throw new NoRunningLoopError();
  return loop.runInExecutor(null, func, ...args);
}
