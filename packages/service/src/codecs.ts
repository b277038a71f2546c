/**
 * Codec stages (`utf8()`, `json()`) and the `validate()` stage: they sit after a framing stage and turn frames
 * into values and back.
 *
 * A message a codec cannot decode, or that `validate` refuses, is the peer's mistake: it is answered (by default
 * with an error message in the stage's own format) and the connection goes on, since the framing outside is
 * intact. Each stage's `onError` option decides the reply instead: return the message to write back (it is
 * encoded by this stage and the layers outside), or `undefined` to close the connection.
 *
 * @module
 */
import { TextDecoder } from 'node:util';
import type { z } from 'zod';
import { getRunningLoopOrNull } from '@loopwork/server';
import { MessageDecodeError, MessageValidationError } from './errors.js';
import type { ValidationIssue } from './errors.js';
import type { MessageProtocol, Stage } from './pipeline.js';
import { StageProtocol } from './pipeline.js';

/** What a stage does with a message it cannot pass on: the reply to write back, or `undefined` to close. */
export type StageErrorHandler<Reply> = (error: Error) => Reply | undefined;

/** Options of {@link utf8}. */
export interface Utf8Options {
  /**
   * What to do with a frame that is not valid UTF-8: return a string to write back and go on, or `undefined` to
   * close the connection (the default: a text protocol has no error format this stage could know).
   */
  readonly onError?: StageErrorHandler<string>;
}

/**
 * A codec stage between bytes and text: frames are decoded as strict UTF-8 (an invalid sequence is an error,
 * never a replacement character), strings written are encoded as UTF-8.
 *
 * @param options - `onError`.
 * @returns the stage.
 * @example
 * ```ts
 * pipeline(lines(), utf8(), handle((line: string) => line.toUpperCase()));
 * ```
 */
export function utf8(options: Utf8Options = {}): Stage<Uint8Array, Uint8Array, string, string | Uint8Array> {
  const onError = options.onError;
  return (inner) => new Utf8Protocol(inner, onError);
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Utf8Protocol extends StageProtocol<Uint8Array, Uint8Array, string, string | Uint8Array> {
  readonly #onError: StageErrorHandler<string> | undefined;

  constructor(inner: MessageProtocol<string, string | Uint8Array>, onError: StageErrorHandler<string> | undefined) {
    super(inner);
    this.#onError = onError;
  }

  override messageReceived(frame: Uint8Array): void {
    let text: string;
    try {
      text = decoder.decode(frame);
    } catch (cause) {
      const error = new MessageDecodeError('The message is not valid UTF-8', { cause });
      this.refuse(error, this.#onError?.(error));
      return;
    }
    this.inner.messageReceived(text);
  }

  override write(message: string | Uint8Array): void {
    this.outer.write(typeof message === 'string' ? Buffer.from(message, 'utf8') : message);
  }
}

/** Options of {@link json}. */
export interface JsonOptions {
  /**
   * The reply to a frame that is not valid JSON (written back as JSON), or `undefined` to close the connection.
   * Default: `{"error":"MessageDecodeError","message":"Invalid JSON: …"}`.
   */
  readonly onError?: StageErrorHandler<unknown>;
  /** `JSON.parse`'s reviver, for every message. */
  readonly reviver?: (this: unknown, key: string, value: unknown) => unknown;
}

/**
 * A codec stage between text (or UTF-8 bytes) and JSON values: each frame is one JSON document; each value
 * written is serialized with `JSON.stringify`.
 *
 * @param options - `onError`, `reviver`.
 * @returns the stage.
 * @example
 * ```ts
 * pipeline(lengthPrefixed({ header: 'u32be' }), json(), validate(Request), handle(rpc));
 * ```
 */
export function json(options: JsonOptions = {}): Stage<string | Uint8Array, string, unknown, unknown> {
  const onError = options.onError ?? defaultJsonError;
  const reviver = options.reviver;
  return (inner) => new JsonProtocol(inner, onError, reviver);
}

/** What the peer gets for a reply `JSON.stringify` refused: the shape of `route()`'s internal-error reply. */
const ENCODE_FAILED = '{"error":"InternalError","message":"Internal error"}';

function defaultJsonError(error: Error): unknown {
  return { error: error.name, message: error.message };
}

class JsonProtocol extends StageProtocol<string | Uint8Array, string, unknown, unknown> {
  readonly #onError: StageErrorHandler<unknown>;
  readonly #reviver: JsonOptions['reviver'];

  constructor(
    inner: MessageProtocol<unknown, unknown>,
    onError: StageErrorHandler<unknown>,
    reviver: JsonOptions['reviver'],
  ) {
    super(inner);
    this.#onError = onError;
    this.#reviver = reviver;
  }

  override messageReceived(frame: string | Uint8Array): void {
    let value: unknown;
    try {
      const text = typeof frame === 'string' ? frame : decoder.decode(frame);
      value = JSON.parse(text, this.#reviver);
    } catch (cause) {
      const detail = cause instanceof SyntaxError ? `: ${cause.message}` : ' (not valid UTF-8)';
      const error = new MessageDecodeError(`Invalid JSON${detail}`, { cause });
      this.refuse(error, this.#onError(error));
      return;
    }
    this.inner.messageReceived(value);
  }

  override write(message: unknown): void {
    let text: string;
    try {
      // `undefined` (and functions) have no JSON text: send `null` rather than the string "undefined".
      text = JSON.stringify(message) ?? 'null';
    } catch (exception) {
      // A value JSON cannot carry (a cycle, a BigInt, nesting too deep): thrown from here it would end the
      // connection and lose the replies after it. Log it once; the peer gets an error reply in its turn.
      getRunningLoopOrNull()?.callExceptionHandler({ message: 'Cannot encode a reply', exception, transport: this });
      text = ENCODE_FAILED;
    }
    this.outer.write(text);
  }
}

/** Options of {@link validate}. */
export interface ValidateOptions<Reply> {
  /**
   * The reply to a message the schema refuses (the error is a `MessageValidationError` with `issues`), or
   * `undefined` to close the connection. Default: `{"error":"MessageValidationError","message":…,"issues":[…]}`.
   * A schema that throws (a transform or refinement with a bug) is reported to the loop's exception handler, and
   * its message refused with an `Error` named `InternalError` (default reply
   * `{"error":"InternalError","message":"Internal error"}`), as `route()` answers a handler that throws.
   */
  readonly onError?: StageErrorHandler<Reply>;
}

/**
 * A stage that checks each message with a zod schema: a valid message goes on as the schema's output (with
 * zod's transforms and defaults applied); an invalid one is answered with every problem zod found, and the
 * connection goes on. Replies pass through unchanged.
 *
 * @param schema - the zod schema of a message.
 * @param options - `onError`.
 * @returns the stage.
 * @example
 * ```ts
 * const Command = z.object({ op: z.enum(['get', 'set']), key: z.string().min(1), value: z.string().optional() });
 * pipeline(lines(), json(), validate(Command), handle((cmd) => run(cmd)));
 * ```
 */
export function validate<S extends z.ZodType, Out = unknown>(
  schema: S,
  options: ValidateOptions<Out> = {},
): Stage<unknown, Out, z.output<S>, Out> {
  if (schema === null || typeof schema !== 'object' || typeof schema.safeParse !== 'function') {
    throw new TypeError('validate() needs a zod schema');
  }
  const onError = (options.onError ?? defaultValidationError) as StageErrorHandler<Out>;
  return (inner) => new ValidateProtocol<S, Out>(inner, schema, onError);
}

function defaultValidationError(error: Error): unknown {
  if (!MessageValidationError.isInstance(error)) return { error: 'InternalError', message: 'Internal error' };
  return {
    error: error.name,
    message: error.message,
    issues: (error as InstanceType<typeof MessageValidationError>).issues,
  };
}

/** The error a message is refused with when the schema checking it throws (the client sees no more). */
function internalError(): Error {
  const error = new Error('Internal error');
  error.name = 'InternalError';
  return error;
}

class ValidateProtocol<S extends z.ZodType, Out> extends StageProtocol<unknown, Out, z.output<S>, Out> {
  readonly #schema: S;
  readonly #onError: StageErrorHandler<Out>;

  constructor(inner: MessageProtocol<z.output<S>, Out>, schema: S, onError: StageErrorHandler<Out>) {
    super(inner);
    this.#schema = schema;
    this.#onError = onError;
  }

  override messageReceived(message: unknown): void {
    let result: ReturnType<S['safeParse']>;
    try {
      result = this.#schema.safeParse(message) as ReturnType<S['safeParse']>;
    } catch (exception) {
      getRunningLoopOrNull()?.callExceptionHandler({
        message: 'Error in validate() schema',
        exception,
        transport: this,
      });
      const error = internalError();
      this.refuse(error, this.#onError(error));
      return;
    }
    if (result.success) {
      this.inner.messageReceived(result.data as z.output<S>);
      return;
    }
    const issues = zodIssues(result.error.issues);
    const error = new MessageValidationError(describeIssues('Invalid message', issues), issues);
    this.refuse(error, this.#onError(error));
  }

  override write(message: Out): void {
    this.outer.write(message);
  }
}

/**
 * @internal zod's issues in the shape the framework reports: `path` (symbols as strings), `message`, `code`.
 *
 * @param issues - zod's issues.
 * @param prefix - keys put before each path (for HTTP, the part: `body`, `params`, …).
 */
export function zodIssues(
  issues: readonly { path: readonly PropertyKey[]; message: string; code?: string }[],
  prefix?: string,
): ValidationIssue[] {
  return issues.map((issue) => {
    const path = issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
    return {
      path: prefix === undefined ? path : [prefix, ...path],
      message: issue.message,
      code: issue.code ?? 'custom',
    };
  });
}

/** @internal One line listing the problems: `Invalid message: key: Too small…; value: Required`. */
export function describeIssues(what: string, issues: readonly ValidationIssue[]): string {
  const parts = issues.map((i) => (i.path.length === 0 ? i.message : `${i.path.join('.')}: ${i.message}`));
  return `${what}: ${parts.join('; ')}`;
}
