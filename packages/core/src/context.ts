/**
 * Python's `contextvars`, carried across `await` by V8's promise hooks.
 *
 * A `Context` maps `ContextVar`s to values. Code runs "in" a context: `ContextVar.get()` and `set()` read and
 * write the current one. Every callback scheduled on the loop runs in the context it was given (by default a copy
 * of the scheduler's), and every Task runs in a copy of its creator's context, so a value set inside a task is
 * never seen by its parent. Copies are copy-on-write, so `copyContext()` is O(1).
 *
 * The current scope (the context, and the Task whose coroutine is running, see `currentTask`) is one module
 * variable. The loop sets it around every callback and task step it runs. A promise created in a scope keeps it,
 * and the reactions of that promise (the code after an `await`) run in it: V8's promise hooks set it before each
 * reaction and restore it after. Nothing else is tracked. Node's own callbacks (an `EventEmitter` listener, a
 * `setTimeout` callback) run in the root context, not in the one they were registered in, as asyncio runs only
 * the loop's callbacks in a context.
 *
 * This is not `AsyncLocalStorage`: on Node 20 that keeps an async_hooks init hook for every Node resource (each
 * socket, timer, `process.nextTick`), makes every native callback go through a JS trampoline, and its promise
 * hooks cost twice these (10^6 awaits: 0.77 s against 0.41 s; `sleep(0)` task switches went 1.5× faster).
 *
 * @module
 */
import { inspect } from 'node:util';
import { promiseHooks } from 'node:v8';
import { InvalidArgTypeError, RuntimeError, ValueError } from './errors.js';

/** The current context and the task running in it (if any). */
export interface Scope {
  /** The context variables' values in effect. */
  readonly context: Context;
  /** The task whose step is running, or `null` in a plain callback. */
  readonly task: object | null;
}

/** The scope code runs in now; `undefined` is the root one (the root context, no task). */
let currentScope: Scope | undefined;
/** The scopes that promise reactions running now interrupted, innermost last. */
const interrupted: (Scope | undefined)[] = [];
/** Where a promise keeps the scope it was created in. */
const SCOPE = Symbol('loopwork.scope');
/** True once the promise hooks are installed (when a scope is first entered). */
let hooksInstalled = false;

type Tagged = Promise<unknown> & { [SCOPE]?: Scope };

function installHooks(): void {
  hooksInstalled = true;
  promiseHooks.onInit((promise) => {
    if (currentScope !== undefined) (promise as Tagged)[SCOPE] = currentScope;
  });
  promiseHooks.onBefore((promise) => {
    interrupted.push(currentScope);
    currentScope = (promise as Tagged)[SCOPE];
  });
  promiseHooks.onAfter(() => {
    currentScope = interrupted.pop();
  });
}

/** Calls `fn(...args)` in `scope`, and goes back to the scope it was called in after, even when `fn` throws. */
function runIn<A extends unknown[], R>(scope: Scope | undefined, fn: (...args: A) => R, args: A): R {
  if (scope !== undefined && !hooksInstalled) installHooks();
  const outer = currentScope;
  currentScope = scope;
  try {
    return args.length === 0 ? (fn as () => R)() : fn(...args);
  } finally {
    currentScope = outer;
  }
}

/**
 * True once a context variable was set (or a context entered with `Context.run`): before that, every context is
 * the empty one, so callbacks need not capture or enter any.
 */
let varsInUse = false;
/** True once any scope was entered (a task started): from then on, the current task must be looked up. */
let inUse = false;

/**
 * An immutable-looking mapping of `ContextVar` to value, in which code can be run (Python's `contextvars.Context`).
 *
 * `copyContext()` returns a snapshot; `ctx.run(fn)` runs `fn` with `ctx` as the current context, so that
 * `var.set()` inside `fn` changes `ctx` and nothing else.
 */
export class Context {
  /** @internal shared with copies until one of them writes (copy-on-write). */
  _data: Map<ContextVar<unknown>, unknown>;
  /** @internal true when `_data` is ours alone and may be written in place. */
  _owned: boolean;
  /** @internal the scope used when a plain callback runs in this context. */
  _scope: Scope | undefined;
  /** @internal how many `run()` calls of this context have not returned yet. */
  _entered = 0;

  /** Makes an empty context (Python's `contextvars.Context()`). */
  constructor() {
    this._data = new Map();
    this._owned = true;
    this._scope = undefined;
  }

  /**
   * Runs `fn(...args)` with this context as the current one and returns its result.
   *
   * Changes made by `ContextVar.set()` inside `fn` (and in the asynchronous work it starts) are kept in this
   * context.
   *
   * @throws RuntimeError ("cannot enter context: … is already entered") when this context is the current one, or
   * is entered by a `run()` that has not returned yet, as Python's `Context.run` refuses.
   */
  run<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): R {
    if (typeof fn !== 'function') {
      throw new InvalidArgTypeError(`a callable object was expected by Context.run(), got ${String(fn)}`);
    }
    if (this._entered > 0 || current() === this) {
      throw new RuntimeError(`cannot enter context: ${inspect(this)} is already entered`);
    }
    inUse = true;
    varsInUse = true;
    this._entered++;
    try {
      return runIn(scopeOf(this), fn, args);
    } finally {
      this._entered--;
    }
  }

  /** Returns a shallow copy of this context (Python's `Context.copy()`). */
  copy(): Context {
    const c = new Context();
    c._data = this._data;
    c._owned = false;
    this._owned = false;
    return c;
  }

  /** The value of `variable` in this context, or `defaultValue` when it has none. */
  get<T>(variable: ContextVar<T>, defaultValue?: T): T | undefined {
    return this._data.has(variable as ContextVar<unknown>)
      ? (this._data.get(variable as ContextVar<unknown>) as T)
      : defaultValue;
  }

  /** True when `variable` has a value in this context. */
  has(variable: ContextVar<unknown>): boolean {
    return this._data.has(variable);
  }

  /** How many variables have a value in this context. */
  get size(): number {
    return this._data.size;
  }

  /** The variables that have a value in this context. */
  keys(): IterableIterator<ContextVar<unknown>> {
    return this._data.keys();
  }

  /** The `[variable, value]` pairs of this context. */
  entries(): IterableIterator<[ContextVar<unknown>, unknown]> {
    return this._data.entries();
  }

  /** @internal */
  _write(variable: ContextVar<unknown>, value: unknown, remove: boolean): void {
    if (!this._owned) {
      this._data = new Map(this._data);
      this._owned = true;
    }
    if (remove) this._data.delete(variable);
    else this._data.set(variable, value);
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `<Context vars=${this._data.size}>`;
  }
}

/** The context of code that runs outside any task or callback (replaced by {@link detachRootContext}). */
let rootContext = new Context();

function scopeOf(ctx: Context): Scope {
  return (ctx._scope ??= { context: ctx, task: null });
}

/** The current context: the one of the running task or callback, or the root context. */
function current(): Context {
  return currentScope?.context ?? rootContext;
}

/**
 * Returns a copy of the current context (Python's `contextvars.copy_context()`).
 *
 * @returns a new `Context` with the same variables and values, independent from the current one.
 */
export function copyContext(): Context {
  return current().copy();
}

/**
 * @internal The context a callback scheduled now should run in: `null` while no context variable was ever used
 * (the callback may then run in whatever context without any difference), else a copy of the current context.
 */
export function captureContext(): Context | null {
  return varsInUse ? current().copy() : null;
}

/**
 * @internal Makes `ctx` (and optionally `task`) current, for a callback that Node (not the loop) calls: a
 * transport's I/O callback. Returns the scope to go back to with {@link exitScope} when the callback is done; a
 * callback that enters the root scope (`ctx` null, no task) may leave it current.
 */
export function enterScope(ctx: Context | null, task: object | null = null): Scope | undefined {
  const outer = currentScope;
  if (!inUse && task === null) return outer;
  inUse = true;
  if (!hooksInstalled) installHooks();
  currentScope = scopeFor(ctx, task);
  return outer;
}

/**
 * @internal Something Node calls back (a transport, a server, a datagram endpoint) whose callbacks run in a context
 * of its own: a copy of the one it was made in, as asyncio's transport callbacks are handles made there; `null`
 * while no context variable is in use.
 */
export interface ContextOwner {
  _context: Context | null;
}

/**
 * @internal Enters `owner`'s context (no current task) for a callback Node calls. An owner made while no context
 * variable was in use gets a new empty context of its own once one is; until then its callbacks run in the root
 * context, which is still empty (see {@link exitOwnScope}). Returns the scope to give to `exitOwnScope`.
 */
export function enterOwnScope(owner: ContextOwner): Scope | undefined {
  if (owner._context === null && varsInUse) owner._context = new Context();
  return enterScope(owner._context);
}

/**
 * @internal Leaves what {@link enterOwnScope} entered. If the callback ran in the root context and set the first
 * context variable ever, that context becomes the owner's own and the root one starts empty again: what a
 * protocol sets stays its own, as in asyncio.
 */
export function exitOwnScope(owner: ContextOwner, outer: Scope | undefined): void {
  currentScope = outer;
  if (owner._context === null && varsInUse) owner._context = detachRootContext();
}

/** @internal Goes back to the scope that {@link enterScope} returned. */
export function exitScope(outer: Scope | undefined): void {
  currentScope = outer;
}

/**
 * @internal The context a loop callback that was given none (scheduled while no context variable was in use, so
 * in the empty context) runs in: a new empty context once a variable is in use, so that what it sets stays its
 * own, as in asyncio; `null` while none is, when it may run in the root context (which is still empty).
 */
export function contextForDetached(): Context | null {
  return varsInUse ? new Context() : null;
}

/**
 * @internal Called after a loop callback that ran in the root context (see {@link contextForDetached}). If it
 * set the first context variable ever, it set it in the root context: that context becomes the callback's own
 * (returned), and the root context is a new empty one, so that the value does not leak to the code and the
 * callbacks that run in the root context later. Returns `null` when no variable is in use yet.
 */
export function detachRootContext(): Context | null {
  if (!varsInUse) return null;
  const own = rootContext;
  rootContext = new Context();
  return own;
}

/** @internal Calls `fn(...args)` with `ctx` as the current context (and no current task). */
export function callInContext(ctx: Context, fn: (...args: unknown[]) => unknown, args: unknown[]): unknown {
  inUse = true;
  return runIn(scopeOf(ctx), fn, args);
}

/**
 * @internal Runs `fn` with `ctx` current (the root context when null) and `task` as the running task, and goes
 * back to the caller's scope after.
 */
export function runInScope<R>(ctx: Context | null, task: object | null, fn: () => R): R {
  const scope = scopeFor(ctx, task);
  if (scope !== undefined) inUse = true;
  return runIn(scope, fn, []);
}

/** The scope of `ctx` (the root context when null) with `task` running; `undefined` for the root scope. */
function scopeFor(ctx: Context | null, task: object | null): Scope | undefined {
  if (task !== null) return { context: ctx ?? rootContext, task };
  return ctx === null ? undefined : scopeOf(ctx);
}

/** @internal The task object whose coroutine is running now, if any. */
export function currentScopeTask(): object | null {
  return currentScope?.task ?? null;
}

const MISSING: unique symbol = Symbol('MISSING');

/**
 * A token returned by `ContextVar.set()`, used to restore the variable's previous value with `reset()`.
 */
export class Token<T> {
  /** A marker used by `oldValue` when the variable had no value before `set()`. */
  static readonly MISSING: typeof MISSING = MISSING;
  /** @internal */
  _used = false;
  /** @internal */
  constructor(
    /** The variable this token belongs to. */
    readonly variable: ContextVar<T>,
    /** The value the variable had before `set()`, or `Token.MISSING`. */
    readonly oldValue: T | typeof MISSING,
    /** @internal */
    readonly _context: Context,
  ) {}

  /** @internal As Python's repr: `<Token var=<ContextVar name='v'>>`, `<Token used var=…>` once used. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `<Token${this._used ? ' used' : ''} var=${inspect(this.variable)}>`;
  }
}

/**
 * A context variable (Python's `contextvars.ContextVar`): a value that follows the flow of callbacks and tasks.
 *
 * @example
 * ```ts
 * const requestId = new ContextVar<string>('requestId', { default: '-' });
 * requestId.set('abc');
 * requestId.get(); // 'abc'
 * ```
 */
export class ContextVar<T> {
  readonly #default: T | typeof MISSING;

  /**
   * @param name - the variable's name, for debugging.
   * @param options - `default`: the value `get()` returns when the variable has no value in the current context.
   */
  constructor(
    readonly name: string,
    options?: { default?: T },
  ) {
    if (typeof name !== 'string') throw new InvalidArgTypeError('context variable name must be a str');
    this.#default = options !== undefined && 'default' in options ? (options.default as T) : MISSING;
  }

  /**
   * The variable's value in the current context.
   *
   * @param defaultValue - returned when the variable has no value (before the variable's own default).
   * @throws LookupError-style `ValueError` when there is no value and no default.
   */
  get(defaultValue?: T): T {
    const data = current()._data;
    if (data.has(this as ContextVar<unknown>)) return data.get(this as ContextVar<unknown>) as T;
    if (arguments.length > 0) return defaultValue as T;
    if (this.#default !== MISSING) return this.#default;
    throw new ValueError(`<ContextVar name='${this.name}'> has no value (LookupError)`);
  }

  /**
   * Sets the variable's value in the current context.
   *
   * @returns a `Token` that `reset()` takes to restore the previous value.
   */
  set(value: T): Token<T> {
    inUse = true;
    varsInUse = true;
    const ctx = current();
    const old = ctx._data.has(this as ContextVar<unknown>)
      ? (ctx._data.get(this as ContextVar<unknown>) as T)
      : MISSING;
    ctx._write(this as ContextVar<unknown>, value, false);
    return new Token(this, old, ctx);
  }

  /**
   * Restores the value the variable had before the `set()` that returned `token`.
   *
   * @throws RuntimeError when the token was already used; ValueError when it belongs to another variable or was
   * created in another context.
   */
  reset(token: Token<T>): void {
    if (!(token instanceof Token)) {
      throw new InvalidArgTypeError(`expected an instance of Token, got ${inspect(token, { depth: 0 })}`);
    }
    if (token._used) throw new RuntimeError(`${inspect(token)} has already been used once`);
    if (token.variable !== this) throw new ValueError(`${inspect(token)} was created by a different ContextVar`);
    const ctx = current();
    if (token._context !== ctx) throw new ValueError(`${inspect(token)} was created in a different Context`);
    token._used = true;
    ctx._write(this as ContextVar<unknown>, token.oldValue, token.oldValue === MISSING);
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `<ContextVar name='${this.name}'>`;
  }
}
