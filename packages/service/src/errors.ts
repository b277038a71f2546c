/**
 * The errors of `@loopwork/service` outside the framing layer (which has its own in `framing/errors.ts`).
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';
import { ConnectionResetError, makeError } from '@loopwork/server';

/**
 * An error a handler throws to answer with a given status: for a 4xx status its message is sent to the client
 * (`{statusCode, error, message}`); for a 5xx status the client sees only the standard reason phrase and the
 * error is logged, as any other handler error.
 *
 * @example
 * ```ts
 * app.get('/kv/:key', (req) => store.get(req.params.key) ?? Promise.reject(new HttpError(404, 'no such key')));
 * ```
 */
export class HttpError extends makeError<[statusCode: number, message?: string, options?: ErrorOptions]>(
  'ERR_LOOPWORK_HTTP_ERROR',
  'HttpError',
  Error,
  (statusCode, message) => message ?? STATUS_CODES[statusCode] ?? `HTTP ${statusCode}`,
) {
  /** The status to answer with, 400–599. */
  readonly statusCode: number;
  constructor(statusCode: number, message?: string, options?: ErrorOptions) {
    if (!Number.isInteger(statusCode) || statusCode < 400 || statusCode > 599) {
      throw new RangeError(`HttpError status must be an integer in 400-599, got ${String(statusCode)}`);
    }
    super(statusCode, message, options);
    this.statusCode = statusCode;
  }
}

/**
 * A message a `validate()` stage refused: `issues` lists every problem zod found (`path` and `message` each).
 */
export class MessageValidationError extends makeError<[message: string, issues: readonly ValidationIssue[]]>(
  'ERR_LOOPWORK_MESSAGE_INVALID',
  'MessageValidationError',
  Error,
  (message) => message,
) {
  /** The problems found, one per failed check. */
  readonly issues: readonly ValidationIssue[];
  /**
   * 400 when the app's route schemas refused a request, as fastify's validation errors carry it (an error handler
   * written for fastify answers with `error.statusCode`); unset for a message a pipeline's `validate()` refused.
   */
  statusCode?: number;
  constructor(message: string, issues: readonly ValidationIssue[]) {
    super(message, issues);
    this.issues = issues;
  }
}

/** One problem found by a zod schema, as the framework reports it to clients. */
export interface ValidationIssue {
  /** Where the problem is: the keys from the root of the value (for HTTP, the first key is the part: `body`, …). */
  readonly path: readonly (string | number)[];
  /** What is wrong, in zod's words. */
  readonly message: string;
  /** zod's issue code (`invalid_type`, `too_small`, …). */
  readonly code: string;
}

/** A codec stage could not decode a message (invalid UTF-8, invalid JSON). */
export const MessageDecodeError = makeError('ERR_LOOPWORK_MESSAGE_DECODE', 'MessageDecodeError', Error);

/**
 * The connection was lost while a writer waited for it to drain (asyncio's `ConnectionResetError('Connection
 * lost')`): `@loopwork/server`'s `ConnectionResetError` itself, under the name the framework's docs use.
 */
export const ConnectionLostError = ConnectionResetError;

/** `app.listen()` was called in a state that does not allow it (already listening, or closed). */
export const AppStateError = makeError('ERR_LOOPWORK_APP_STATE', 'AppStateError', Error);
