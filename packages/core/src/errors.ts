/**
 * Every error loopwork throws, made by one small factory.
 *
 * Each class has a stable `code` (`ERR_LOOPWORK_…`, never reused), a `name` (asyncio's where asyncio has one),
 * ES2022 `cause`, and a `Symbol.for` brand so that `isInstance` holds across two installed copies of the package.
 * Argument errors extend `TypeError` or `RangeError`; asyncio's `RuntimeError` cases extend `Error`.
 *
 * @module
 */

import { getSystemErrorMap } from 'node:util';

type ErrorBase = new (message?: string, options?: ErrorOptions) => Error;

/** What every loopwork error carries besides the standard `Error` fields. */
export interface LoopworkErrorFields {
  /** A stable, never reused identifier such as `ERR_LOOPWORK_LOOP_CLOSED`. */
  readonly code: string;
}

/** The constructor of a loopwork error class, with its `code` and a cross-copy `isInstance` test. */
export interface LoopworkErrorClass<E extends Error, A extends unknown[]> {
  new (...args: A): E & LoopworkErrorFields;
  /** The class's stable error code. */
  readonly code: string;
  /** True when `value` is an instance of this class, even one made by another installed copy of loopwork. */
  isInstance(value: unknown): value is E & LoopworkErrorFields;
}

const BRAND = Symbol.for('loopwork.error.codes');

interface Branded {
  [BRAND]?: ReadonlySet<string>;
}

/**
 * Makes an error class with a stable code.
 *
 * @param code - the stable code, `ERR_LOOPWORK_…`.
 * @param name - the class name shown in stack traces (asyncio's name where there is one).
 * @param Base - the built-in base class: `Error`, `TypeError`, `RangeError`, or another loopwork error class.
 * @param format - makes the message from the constructor's arguments.
 * @returns the new class.
 */
export function makeError<A extends unknown[] = [message?: string, options?: ErrorOptions]>(
  code: string,
  name: string,
  Base: ErrorBase,
  format?: (...args: A) => string,
): LoopworkErrorClass<Error, A> {
  const fmt = format ?? ((...args: A) => (typeof args[0] === 'string' ? args[0] : ''));
  const baseCodes = (Base.prototype as Branded)[BRAND];
  const codes = new Set<string>(baseCodes ?? []);
  codes.add(code);
  const Cls = class extends Base {
    readonly code: string = code;
    constructor(...args: A) {
      const last = args[args.length - 1];
      const options = isErrorOptions(last) ? last : undefined;
      super(fmt(...args), options);
    }
    static readonly code = code;
    static isInstance(value: unknown): boolean {
      if (typeof value !== 'object' || value === null) return false;
      const set = (value as Branded)[BRAND];
      return set !== undefined && set.has(code);
    }
  };
  Object.defineProperty(Cls, 'name', { value: name });
  Object.defineProperty(Cls.prototype, 'name', { value: name, writable: true, configurable: true });
  Object.defineProperty(Cls.prototype, BRAND, { value: codes });
  return Cls as unknown as LoopworkErrorClass<Error, A>;
}

function isErrorOptions(value: unknown): value is ErrorOptions {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.getPrototypeOf(value) === Object.prototype &&
    'cause' in value &&
    Object.keys(value).length === 1
  );
}

/** asyncio's `RuntimeError`: an operation that is not allowed in the loop's current state. */
export const RuntimeError = makeError('ERR_LOOPWORK_RUNTIME', 'RuntimeError', Error);
/** asyncio's `ValueError`: an argument of the right type but a wrong value. */
export const ValueError = makeError('ERR_LOOPWORK_INVALID_VALUE', 'ValueError', RangeError);
/** A wrong argument type (a `TypeError` with a code). */
export const InvalidArgTypeError = makeError('ERR_LOOPWORK_INVALID_ARG_TYPE', 'TypeError', TypeError);
/** Options that failed validation; the `ZodError` (if any) is the `cause`. */
export const InvalidOptionsError = makeError('ERR_LOOPWORK_INVALID_OPTIONS', 'TypeError', TypeError);

/** `Event loop is closed`: any scheduling on a closed loop. */
export const LoopClosedError = makeError(
  'ERR_LOOPWORK_LOOP_CLOSED',
  'RuntimeError',
  RuntimeError,
  () => 'Event loop is closed',
);
/** `This event loop is already running`, `Cannot run the event loop while another loop is running`. */
export const LoopRunningError = makeError('ERR_LOOPWORK_LOOP_RUNNING', 'RuntimeError', RuntimeError);
/** `no running event loop`. */
export const NoRunningLoopError = makeError(
  'ERR_LOOPWORK_NO_RUNNING_LOOP',
  'RuntimeError',
  RuntimeError,
  () => 'no running event loop',
);
/** `Event loop stopped before Future completed.` */
export const LoopStoppedError = makeError(
  'ERR_LOOPWORK_LOOP_STOPPED',
  'RuntimeError',
  RuntimeError,
  () => 'Event loop stopped before Future completed.',
);

/**
 * The operation was cancelled (asyncio.CancelledError). A cancelled Task's coroutine sees it at its current
 * await; catching it and going on un-cancels nothing by itself (see `Task.uncancel`).
 */
export const CancelledError = makeError('ERR_LOOPWORK_CANCELLED', 'CancelledError', Error);
/** An operation on a Future or Task in the wrong state, e.g. `Result is not ready.` */
export const InvalidStateError = makeError('ERR_LOOPWORK_INVALID_STATE', 'InvalidStateError', Error);
/** A deadline passed (asyncio.TimeoutError, which is the built-in TimeoutError since 3.11). */
export const TimeoutError = makeError('ERR_LOOPWORK_TIMEOUT', 'TimeoutError', Error);
/** `sendfile` cannot use zero-copy here and `fallback` is off. */
export const SendfileNotAvailableError = makeError(
  'ERR_LOOPWORK_SENDFILE_NOT_AVAILABLE',
  'SendfileNotAvailableError',
  RuntimeError,
);
/** The native addon could not be loaded; the message says why and what still works. */
export const NativeUnavailableError = makeError('ERR_LOOPWORK_NATIVE_UNAVAILABLE', 'NativeUnavailableError', Error);

/** Raised by `readexactly()` and `readuntil()` when EOF arrives before the expected bytes. */
export class IncompleteReadError extends makeError<[partial: Buffer, expected: number | null]>(
  'ERR_LOOPWORK_INCOMPLETE_READ',
  'IncompleteReadError',
  Error,
  (partial, expected) =>
    `${partial.length} bytes read on a total of ${expected === null ? 'undefined' : String(expected)} expected bytes`,
) {
  /** The bytes read before EOF. */
  readonly partial: Buffer;
  /** How many bytes were expected, or `null` when unknown. */
  readonly expected: number | null;
  constructor(partial: Buffer, expected: number | null) {
    super(partial, expected);
    this.partial = partial;
    this.expected = expected;
  }
}

/** Raised by `readuntil()`/`readline()` when the separator is not found within the stream's limit. */
export class LimitOverrunError extends makeError<[message: string, consumed: number]>(
  'ERR_LOOPWORK_LIMIT_OVERRUN',
  'LimitOverrunError',
  Error,
  (message) => message,
) {
  /** How many bytes are to be consumed. */
  readonly consumed: number;
  constructor(message: string, consumed: number) {
    super(message, consumed);
    this.consumed = consumed;
  }
}

/** Several errors at once, as Python's `ExceptionGroup` (raised by `TaskGroup`). */
export class ExceptionGroup extends AggregateError {
  /** `ERR_LOOPWORK_EXCEPTION_GROUP`. */
  readonly code = 'ERR_LOOPWORK_EXCEPTION_GROUP';
  constructor(message: string, errors: readonly unknown[]) {
    super(errors, `${message} (${errors.length} sub-exception${errors.length === 1 ? '' : 's'})`);
    this.name = 'ExceptionGroup';
  }
  /** The errors in the group (Python's `exceptions`). */
  get exceptions(): readonly unknown[] {
    return this.errors as unknown[];
  }
}

/** Builds the `errno`-style error Node itself throws (`code: 'EADDRINUSE'`, `errno`, `syscall`). */
export interface SystemErrorLike extends Error {
  /** The errno name, e.g. `ECONNREFUSED`. */
  code: string;
  /** The negative errno number, as Node reports it. */
  errno?: number;
  /** The system call that failed. */
  syscall?: string;
}

/**
 * Python's `OSError`: a system call failed (`code` is then its errno name, e.g. `EADDRINUSE`, and `errno`,
 * `syscall` are set, Node's way: `errno` negative), or a network operation failed as a whole (`Multiple
 * exceptions: …`, `could not bind on any address out of …`; `code` is then `ERR_LOOPWORK_OS_ERROR`). As in
 * Python, some errnos make one of its subclasses: {@link ConnectionResetError} (`ECONNRESET`),
 * {@link BrokenPipeError} (`EPIPE`, `ESHUTDOWN`), {@link ConnectionRefusedError} (`ECONNREFUSED`),
 * {@link ConnectionAbortedError} (`ECONNABORTED`), {@link FileNotFoundError} (`ENOENT`), {@link PermissionError}
 * (`EACCES`, `EPERM`), {@link ProcessLookupError} (`ESRCH`).
 */
export const OSError = makeError('ERR_LOOPWORK_OS_ERROR', 'OSError', Error);
/** Python's `ConnectionError`: the base of the connection errors below. */
export const ConnectionError = makeError('ERR_LOOPWORK_CONNECTION_ERROR', 'ConnectionError', OSError);
/**
 * Python's `ConnectionResetError`: the peer reset the connection (`[Errno 104] Connection reset by peer`), or
 * the connection was lost while something waited on it (`Connection lost`: streams' `drain()`, a TLS handshake).
 */
export const ConnectionResetError = makeError('ERR_LOOPWORK_CONNECTION_LOST', 'ConnectionResetError', ConnectionError);
/** Python's `BrokenPipeError`: a write to a connection or pipe whose other end is closed (`EPIPE`). */
export const BrokenPipeError = makeError('ERR_LOOPWORK_BROKEN_PIPE', 'BrokenPipeError', ConnectionError);
/** Python's `ConnectionRefusedError`: nothing listens there (`ECONNREFUSED`). */
export const ConnectionRefusedError = makeError(
  'ERR_LOOPWORK_CONNECTION_REFUSED',
  'ConnectionRefusedError',
  ConnectionError,
);
/**
 * Python's `ConnectionAbortedError`: the connection was aborted on this side (`ECONNABORTED`, or a TLS handshake
 * that did not finish within `sslHandshakeTimeout`).
 */
export const ConnectionAbortedError = makeError(
  'ERR_LOOPWORK_CONNECTION_ABORTED',
  'ConnectionAbortedError',
  ConnectionError,
);

/** Python's `FileNotFoundError`: no such file or directory (`ENOENT`), e.g. a Unix socket path that is not there. */
export const FileNotFoundError = makeError('ERR_LOOPWORK_FILE_NOT_FOUND', 'FileNotFoundError', OSError);
/** Python's `PermissionError`: the operation is not permitted (`EACCES`, `EPERM`). */
export const PermissionError = makeError('ERR_LOOPWORK_PERMISSION', 'PermissionError', OSError);
/** Python's `ProcessLookupError`: no such process (`ESRCH`), e.g. a signal to a child that has been reaped. */
export const ProcessLookupError = makeError('ERR_LOOPWORK_PROCESS_LOOKUP', 'ProcessLookupError', OSError);

/** The fields an `OSError` made from a system error carries. */
export interface OSErrorFields extends Partial<SystemErrorLike> {
  /** The address involved, when Node gave one. */
  address?: string;
  /** The port involved, when Node gave one. */
  port?: number;
}

/** The `OSError` subclass Python raises for an errno name. */
function osErrorClass(code: unknown): typeof OSError {
  switch (code) {
    case 'ECONNRESET':
      return ConnectionResetError;
    case 'EPIPE':
    case 'ESHUTDOWN':
      return BrokenPipeError;
    case 'ECONNREFUSED':
      return ConnectionRefusedError;
    case 'ECONNABORTED':
      return ConnectionAbortedError;
    case 'ENOENT':
      return FileNotFoundError;
    case 'EACCES':
    case 'EPERM':
      return PermissionError;
    case 'ESRCH':
      return ProcessLookupError;
    default:
      return OSError;
  }
}

/** libuv's errors by number (`getSystemErrorMap()` builds a new Map at each call: read once). */
let systemErrors: Map<number, [string, string]> | null = null;

/** @internal libuv's errors: negative errno → `[name, text]` (`-98` → `['EADDRINUSE', 'address already in use']`). */
export function systemErrorMap(): ReadonlyMap<number, [string, string]> {
  return (systemErrors ??= getSystemErrorMap());
}

/** @internal The libuv text for an errno name or number, lower case: `address already in use`. */
export function strerror(err: { code?: unknown; errno?: unknown }): string {
  const map = systemErrorMap();
  if (typeof err.errno === 'number') {
    const hit = map.get(err.errno < 0 ? err.errno : -err.errno);
    if (hit !== undefined) return hit[1];
  }
  if (typeof err.code === 'string') {
    for (const [name, text] of map.values()) if (name === err.code) return text;
  }
  return typeof err.code === 'string' ? err.code : 'unknown error';
}

/** @internal The positive errno number of a system error, or 0. */
export function errnoOf(err: { errno?: unknown }): number {
  return typeof err.errno === 'number' ? Math.abs(err.errno) : 0;
}

/**
 * @internal An `OSError` (of the subclass Python would raise for its errno) carrying the system error's `code`,
 * `errno`, `syscall`, `address` and `port`, and the system error as `cause`. The message is `message`, by
 * default Python's `[Errno 104] Connection reset by peer`; the class is `cls` when the errno alone does not say
 * it (asyncio's `ConnectionError('socket is not connected')` for `ENOTCONN`).
 */
export function osErrorFrom(cause: unknown, message?: string, cls?: typeof OSError): Error & OSErrorFields {
  const c = (typeof cause === 'object' && cause !== null ? cause : {}) as OSErrorFields;
  if (message === undefined) {
    const text = strerror(c);
    message = `[Errno ${errnoOf(c)}] ${text.charAt(0).toUpperCase()}${text.slice(1)}`;
  }
  const Cls = cls ?? osErrorClass(c.code);
  const err = new Cls(message, { cause }) as Error & OSErrorFields;
  if (typeof c.code === 'string') Object.defineProperty(err, 'code', { value: c.code, enumerable: true });
  if (typeof c.errno === 'number') err.errno = c.errno;
  if (typeof c.syscall === 'string') err.syscall = c.syscall;
  if (typeof c.address === 'string') err.address = c.address;
  if (typeof c.port === 'number') err.port = c.port;
  return err;
}

/**
 * @internal An error of a connection as asyncio reports it: a Node system error (`read ECONNRESET`) becomes the
 * `OSError` Python would raise (`ConnectionResetError: [Errno 104] Connection reset by peer`), the Node error its
 * `cause`; anything else (a loopwork `OSError` already, a protocol's exception) is returned as it is.
 */
export function connectionError<E>(exc: E): E | (Error & OSErrorFields) {
  if (!(exc instanceof Error) || OSError.isInstance(exc)) return exc;
  const e = exc as Error & { code?: unknown; syscall?: unknown; errno?: unknown };
  if (typeof e.code !== 'string' || typeof e.syscall !== 'string' || typeof e.errno !== 'number') return exc;
  return osErrorFrom(exc);
}

/**
 * @internal Calls `fn()`; a Node system error it throws (a missing file, a bad fd) is thrown as the `OSError`
 * Python raises (`FileNotFoundError: [Errno 2] No such file or directory`), Node's error as its `cause` (see
 * {@link connectionError}); any other exception as it is.
 */
export function withOSErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw connectionError(error);
  }
}

/** @internal The type of a value for an error message: `null`, an object's class name, else its `typeof`. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as { constructor?: { name?: string } }).constructor?.name || 'object';
  return typeof value;
}

/**
 * @internal The `'error'` listener a closed transport leaves on its Node stream in place of its own: a late error
 * must never be thrown as an uncaught exception, and a listener bound to the transport would keep the transport
 * alive as long as Node keeps the stream (for a socket, until a full GC).
 */
export function ignoreError(): void {}

/** True when `err` is a CancelledError (from any installed copy of loopwork). */
export function isCancelledError(err: unknown): boolean {
  return CancelledError.isInstance(err);
}
