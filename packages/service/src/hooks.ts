/**
 * The app's request-lifecycle hooks and handlers, fastify's: what each one is given and may return, and the one
 * runner for the hooks that may answer.
 *
 * The lifecycle of a request: `onRequest` → (the body is parsed) → `preValidation` → (the route's schemas are
 * checked) → `preHandler` → the handler → `preSerialization` (an object body only) → (the body is serialized) →
 * `onSend` → the response → `onResponse`. An error at any step runs the `onError` hooks, then the error handler
 * (`setErrorHandler`), whose answer goes through `preSerialization` and `onSend` as any other.
 *
 * @module
 */
import { isThenable } from '@loopwork/server';
import type { Reply } from './reply.js';
import type { Request } from './request.js';

/**
 * An `onRequest`, `preValidation` or `preHandler` hook: it may answer (`reply.send()`), and then nothing after it
 * runs but the response's own hooks. It may return a promise; a throw or a rejection is answered as a handler's.
 */
export type RequestHook = (request: Request, reply: Reply) => void | PromiseLike<void>;

/** A body as `onSend` hooks see it and may replace it: serialized, a stream, or none. */
export type OnSendPayload = string | Uint8Array | AsyncIterable<unknown> | null;

/**
 * An `onSend` hook: it sees the serialized body (and the headers, `content-type` included, on `reply`) just before
 * the response goes out, and may return another body; returning nothing keeps the body.
 */
export type OnSendHook = (
  request: Request,
  reply: Reply,
  payload: OnSendPayload,
) => OnSendPayload | void | PromiseLike<OnSendPayload | void>;

/**
 * A `preSerialization` hook: it sees a body that is to be serialized to JSON (not a string, bytes, a stream or
 * nothing) and may return another value to serialize; `undefined` keeps it.
 */
export type PreSerializationHook = (request: Request, reply: Reply, payload: unknown) => unknown;

/**
 * An `onError` hook: told of an error before the error handler answers it, for logging or metrics. It must not
 * answer (a `send()` in it is ignored with a warning); what it throws is reported and otherwise ignored.
 */
export type OnErrorHook = (request: Request, reply: Reply, error: unknown) => void | PromiseLike<void>;

/**
 * The app's error handler (`app.setErrorHandler`): answers an error a handler or hook threw, a body that is not
 * valid JSON, or a request its schemas refused. `reply.statusCode` is already the error's status (its
 * `statusCode` or `status` when 400–599, else the 4xx/5xx status set on the reply, else 500). It answers as a
 * route handler does: with `reply.send()`, or by returning the body (or a promise of it). What it throws is
 * answered by the default handling (logged, 500).
 */
export type ErrorHandler = (error: unknown, request: Request, reply: Reply) => unknown;

/** The hooks of an app, by name: what `Reply` needs of them lives here too. */
export interface AppHooks {
  readonly onRequest: RequestHook[];
  readonly preValidation: RequestHook[];
  readonly preHandler: RequestHook[];
  readonly preSerialization: PreSerializationHook[];
  readonly onSend: OnSendHook[];
  readonly onError: OnErrorHook[];
}

/**
 * @internal Runs `hooks` in order, waiting for each one's promise; true when the request goes on, false once a
 * hook answered. A throw or rejection propagates.
 */
export async function runRequestHooks(hooks: readonly RequestHook[], request: Request, reply: Reply): Promise<boolean> {
  for (const hook of hooks) {
    const r = hook(request, reply);
    if (isThenable(r)) await r;
    if (reply.sent) return false;
  }
  return true;
}
