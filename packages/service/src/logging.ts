/**
 * Logging: the app's pino logger, the request id every line carries while a request is served, and the loop
 * exception handler that turns every error into one structured line.
 *
 * @module
 */
import { inspect } from 'node:util';
import type { BaseEventLoop, ExceptionContext, ExceptionHandler } from '@loopwork/server';
import { ContextVar } from '@loopwork/server';
import pino from 'pino';
import type { Logger, LoggerOptions } from 'pino';
import pretty from 'pino-pretty';

/**
 * The id of the request being served, in the current context (a `ContextVar`): set by the app for the duration
 * of each request's handling (its handler, hooks and everything they start), `undefined` elsewhere.
 *
 * @example
 * ```ts
 * app.get('/', () => ({ id: requestId.get() }));
 * ```
 */
export const requestId: ContextVar<string | undefined> = new ContextVar<string | undefined>('loopwork.requestId', {
  default: undefined,
});

/**
 * A pino `mixin` that adds `reqId` to every line logged while a request is served. The app's own logger has it;
 * pass it to a logger you make yourself to get the same.
 *
 * @returns `{ reqId }` inside a request, `{}` outside (a fresh object each time: pino merges into it).
 * @example
 * ```ts
 * const logger = pino({ mixin: requestIdMixin });
 * ```
 */
export function requestIdMixin(): Record<string, unknown> {
  const id = requestId.get();
  return id === undefined ? {} : { reqId: id };
}

/**
 * @internal Whether `logger` adds `reqId` itself (made with {@link requestIdMixin}, as the app's own logger is).
 * Another logger needs the id bound on a child to have it on a request's lines.
 */
export function hasRequestIdMixin(logger: Logger): boolean {
  return (logger as unknown as Record<symbol, unknown>)[pino.symbols.mixinSym] === requestIdMixin;
}

/**
 * The `logger` option of an app: `true` for pino at `info` on stdout (pretty when stdout is a terminal),
 * `false` for none, pino options (the same, configured), or a pino logger of your own.
 */
export type LoggerOption = boolean | LoggerOptions | Logger;

function isLogger(value: unknown): value is Logger {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Logger).info === 'function' &&
    typeof (value as Logger).child === 'function'
  );
}

/**
 * @internal Makes the app's logger from its option.
 *
 * @param option - the `logger` option.
 * @returns the logger and whether it logs at all.
 */
export function createLogger(option: LoggerOption | undefined): { logger: Logger; enabled: boolean } {
  if (isLogger(option)) return { logger: option, enabled: option.level !== 'silent' && option.isLevelEnabled('error') };
  if (option === false) return { logger: pino({ level: 'silent' }), enabled: false };
  const options: LoggerOptions = option === true || option === undefined ? {} : { ...option };
  if (options.mixin === undefined) options.mixin = requestIdMixin;
  options.level ??= 'info';
  if (process.stdout.isTTY === true && process.env.LOOPWORK_LOG_JSON !== '1') {
    // Synchronous pretty printing: no worker thread, nothing lost at exit.
    return { logger: pino(options, pretty({ colorize: true, sync: true })), enabled: true };
  }
  return { logger: pino(options), enabled: options.level !== 'silent' };
}

/** A peer address in the usual text form: `127.0.0.1:5678`, `[::1]:5678`, or a Unix path. */
export function formatPeer(addr: unknown): string | undefined {
  if (Array.isArray(addr) && typeof addr[0] === 'string') {
    const host = addr[0].includes(':') ? `[${addr[0]}]` : addr[0];
    return `${host}:${String(addr[1])}`;
  }
  if (typeof addr === 'string') return addr === '' ? undefined : addr;
  if (Buffer.isBuffer(addr)) return addr.toString('latin1');
  return undefined;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  const custom = (value as Record<symbol, unknown> | null)?.[Symbol.for('nodejs.util.inspect.custom')];
  if (typeof custom === 'function' || value === null || typeof value !== 'object') {
    return inspect(value, { depth: 0, breakLength: Infinity });
  }
  // A plain protocol or transport object: its class is what tells, not its fields.
  return `<${value.constructor?.name ?? 'Object'}>`;
}

/**
 * @internal The exception handler an app installs on its loop: every error the loop reports (from a callback, a
 * protocol, a task, a handler) becomes one error line with `err`, and the context keys as text (`task`,
 * `transport`, `protocol`, …), plus `peer` (the connection's peer address) when a transport is in the context.
 *
 * @param logger - where to log.
 * @returns the handler, for `loop.setExceptionHandler`.
 */
export function exceptionHandler(logger: Logger): ExceptionHandler {
  return (_loop: BaseEventLoop, context: ExceptionContext): void => {
    const fields: Record<string, unknown> = {};
    for (const key of Object.keys(context)) {
      if (key === 'message' || key === 'exception') continue;
      const value = context[key];
      if (value === undefined) continue;
      if (key === 'transport' && typeof (value as { getExtraInfo?: unknown }).getExtraInfo === 'function') {
        const peer = formatPeer((value as { getExtraInfo(n: string): unknown }).getExtraInfo('peername'));
        if (peer !== undefined && fields.peer === undefined) fields.peer = peer;
      }
      fields[key] = key === 'peer' ? (formatPeer(value) ?? describe(value)) : describe(value);
    }
    if (context.exception !== undefined) fields.err = context.exception;
    logger.error(fields, context.message || 'Unhandled exception in event loop');
  };
}
