/**
 * The app: a fastify-style HTTP framework on the `http1` stage, with find-my-way routing, zod schemas, pino
 * logging wired to the loop's exception handler, Prometheus metrics, health endpoints, and a lifecycle that
 * serves the same app on several listeners and drains them gracefully.
 *
 * The request path: the `http1` stage hands each complete request to the app, which finds its route, runs the
 * `onRequest` hooks (as fastify's, before the body is parsed: an auth hook answers 401 before a bad body gets
 * 400), parses the body, runs the `preValidation` hooks, checks the route's schemas, runs the `preHandler` hooks
 * and the handler, and answers (through the `preSerialization` and `onSend` hooks); an error goes to the
 * `onError` hooks and the error handler (`hooks.ts` has the whole lifecycle). A handler that returns a value (or
 * calls `reply.send`) synchronously is answered within the same callback, with no promise and no extra loop
 * iteration when no hook is added; a handler that returns a promise is answered when it settles.
 *
 * @module
 */
import cluster from 'node:cluster';
import { METHODS } from 'node:http';
import { parse as parseForm } from 'node:querystring';
import type { BaseEventLoop, EventLoop, ExceptionHandler, ProtocolFactory, SSLContext, Server } from '@loopwork/server';
import { Context, isThenable } from '@loopwork/server';
import FindMyWay from 'find-my-way';
import secureJsonParse from 'secure-json-parse';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { Primary, announceListening } from './cluster.js';
import { describeIssues, zodIssues } from './codecs.js';
import { ConnectionTracker } from './connections.js';
import { AppStateError, HttpError, MessageValidationError } from './errors.js';
import type { ValidationIssue } from './errors.js';
import type { ParsedRequest } from './framing/http1-parser.js';
import { runRequestHooks } from './hooks.js';
import type { AppHooks, ErrorHandler, OnErrorHook, OnSendHook, PreSerializationHook, RequestHook } from './hooks.js';
import { http1 } from './http1.js';
import type { ContinueRefusal, ExchangeOutcome, Http1Options, HttpExchange, HttpHandlerProtocol } from './http1.js';
import { inject } from './inject.js';
import type { InjectOptions, InjectResponse } from './inject.js';
import { createLogger, exceptionHandler, formatPeer, hasRequestIdMixin, requestId } from './logging.js';
import type { LoggerOption } from './logging.js';
import { acquireLoop } from './loop-host.js';
import type { LoopLease } from './loop-host.js';
import { AppMetrics } from './metrics.js';
import type { MetricsOptions, RequestMetrics } from './metrics.js';
import type { MessageTransport } from './pipeline.js';
import { pipeline } from './pipeline.js';
import { Reply, errorBody } from './reply.js';
import type { ReplyHost } from './reply.js';
import { Request } from './request.js';
import type { DefaultHeaders, DefaultParams, DefaultQuery, RequestHost, RouteInfo } from './request.js';

/** The zod schemas of a route's parts; each part is checked and replaced by the schema's output. */
export interface RouteSchema {
  /** Route parameters (`/kv/:key` → `{ key }`), strings before coercion. */
  readonly params?: z.ZodType;
  /** The parsed query string (values are strings, or arrays of strings for repeated keys). */
  readonly querystring?: z.ZodType;
  /** The parsed body (see `Request.body`). */
  readonly body?: z.ZodType;
  /** The header fields (lowercase names). */
  readonly headers?: z.ZodType;
}

type Part<S, K extends keyof RouteSchema, D> = S extends { readonly [P in K]: infer T }
  ? T extends z.ZodType
    ? z.output<T>
    : D
  : D;

/** The request type of a route with schema `S`. */
export type RequestFor<S extends RouteSchema> = Request<
  Part<S, 'params', DefaultParams>,
  Part<S, 'querystring', DefaultQuery>,
  Part<S, 'body', unknown>,
  Part<S, 'headers', DefaultHeaders>
>;

/**
 * A route handler: answers with `reply.send(body)`, or by returning the body (or a promise of it).
 *
 * @param request - the request, typed by the route's schemas.
 * @param reply - the reply being built.
 */
export type RouteHandler<S extends RouteSchema = RouteSchema> = (request: RequestFor<S>, reply: Reply) => unknown;

/** Options of one route. */
export interface RouteOptions<S extends RouteSchema = RouteSchema> {
  /** zod schemas of the parts to check. */
  readonly schema?: S;
  /** Anything; the handler sees it as `request.routeOptions.config`. */
  readonly config?: unknown;
  /** Whether requests on this route are access-logged; default true. */
  readonly accessLog?: boolean;
}

/** A whole route, for `app.route()`. */
export interface RouteDefinition<S extends RouteSchema = RouteSchema> extends RouteOptions<S> {
  /** The method, or several. */
  readonly method: string | readonly string[];
  /** The path pattern (find-my-way syntax: `/kv/:key`, `/files/*`). */
  readonly url: string;
  /** The handler. */
  readonly handler: RouteHandler<S>;
}

/** An `onRequest` hook, run for each request before its body is parsed; it may answer (see {@link RequestHook}). */
export type OnRequestHook = RequestHook;
/** A hook run after each response is complete (or the connection was lost before that). */
export type OnResponseHook = (request: Request, reply: Reply) => void | PromiseLike<void>;

/** The names `addHook` takes. */
type HookName = keyof AppHooks | 'onResponse';

/** Options of the app's health endpoints. */
export interface HealthOptions {
  /** Liveness: 200 while the process serves; default `/healthz`. */
  readonly healthPath?: string;
  /** Readiness: 200 while listening and not draining, 503 otherwise; default `/readyz`. */
  readonly readyPath?: string;
}

/** Options of {@link createApp}. Times are in seconds. */
export interface AppOptions {
  /** The logger: see `LoggerOption`; default `true` (pino at `info` on stdout, pretty on a terminal). */
  readonly logger?: LoggerOption;
  /** One `info` line per request (method, url, status, duration); default true when the logger logs. */
  readonly accessLog?: boolean;
  /** Keep the request id in a `ContextVar` while a request is served; default true when the logger logs. */
  readonly requestContext?: boolean;
  /** The loop to run on; default the running loop, else a background loop the app starts and stops. */
  readonly loop?: EventLoop;
  /** HTTP/1.1 limits and timeouts (`maxBodySize`, `keepAliveTimeout`, `headersTimeout`, …). */
  readonly http?: Http1Options;
  /** The most connections served at once over all listeners; more wait unread (see `maxParked`). */
  readonly maxConnections?: number;
  /** Connections accepted over `maxConnections` that may wait; more are closed at once; default 1024. */
  readonly maxParked?: number;
  /** The request header that carries a client's request id, or false to always make one; `x-request-id`. */
  readonly requestIdHeader?: string | false;
  /** The prefix of the request ids the app makes (`req-` gives `req-1`, `req-2`, …). */
  readonly requestIdPrefix?: string;
  /** Built-in `/healthz` and `/readyz`; default true. */
  readonly health?: boolean | HealthOptions;
  /** Prometheus metrics on `/metrics`; default true. */
  readonly metrics?: boolean | MetricsOptions;
  /** find-my-way options. */
  readonly router?: {
    readonly ignoreTrailingSlash?: boolean;
    readonly ignoreDuplicateSlashes?: boolean;
    readonly caseSensitive?: boolean;
    /** The longest path parameter, in characters as sent (percent-encoded); default 100; longer: 414. */
    readonly maxParamLength?: number;
  };
  /** Answer HEAD for every GET route that has no HEAD route of its own; default true. */
  readonly exposeHeadRoutes?: boolean;
  /** Seconds a graceful shutdown (on a signal, or `close()` without a deadline) may take; default 10. */
  readonly shutdownTimeout?: number;
  /**
   * Seconds between readiness turning false and the listeners closing, at the start of a shutdown: time for a
   * load balancer polling `/readyz` to stop sending new connections; default 0. Counted in the deadline.
   */
  readonly shutdownDelay?: number;
  /** The signals that start a graceful shutdown, or false for none; default `['SIGTERM', 'SIGINT']`. */
  readonly signals?: readonly NodeJS.Signals[] | false;
  /** Exit the process after a shutdown started by a signal (0 when it was clean, 1 if not); default true. */
  readonly exitOnSignal?: boolean;
  /** Log promise rejections nobody handled (instead of Node ending the process) while listening; default true. */
  readonly catchUnhandledRejections?: boolean;
}

/** One listener of `app.listen()`: a TCP port (with TLS when `ssl` is given). */
export interface TcpListenerOptions {
  /** The port; 0 for a free one. Default 3000. */
  readonly port?: number;
  /** The host to bind; default `127.0.0.1`. */
  readonly host?: string;
  /** The listen backlog. */
  readonly backlog?: number;
  /**
   * Several processes may bind the same port (`SO_REUSEPORT`), e.g. for a rolling restart: start the new
   * instance on the port, then SIGTERM the old one. For such a restart to lose no connection, set the Linux
   * sysctl `net.ipv4.tcp_migrate_req=1` (5.14+): otherwise the kernel resets the connections still queued on
   * the listener that closes (see docs/deployment.md).
   */
  readonly reusePort?: boolean;
  /** Serve TLS with this context. */
  readonly ssl?: SSLContext;
  /** Seconds a TLS handshake may take. */
  readonly sslHandshakeTimeout?: number;
  /**
   * Seconds a TLS connection being closed waits for the client's close_notify after its own, then is cut;
   * default 2 ({@link HTTP_SSL_SHUTDOWN_TIMEOUT}). asyncio's 30 would let each idle keep-alive client (which
   * seldom answers) hold a graceful shutdown past its deadline.
   */
  readonly sslShutdownTimeout?: number;
  /** What to serve: a protocol factory (a `pipeline(...)`); default the app's HTTP. */
  readonly protocol?: ProtocolFactory;
}

/** A Unix socket listener of `app.listen()`. */
export interface UnixListenerOptions {
  /** The socket path. */
  readonly path: string;
  /**
   * The socket file's permission bits; default `0o600` (only the owner may connect). The file is made with them
   * (see `createUnixServer`'s `mode`): there is no moment when it has more. Ignored for an abstract name
   * (`'\0…'`), which has no file.
   */
  readonly mode?: number;
  /** The listen backlog. */
  readonly backlog?: number;
  /** Serve TLS with this context. */
  readonly ssl?: SSLContext;
  /** As {@link TcpListenerOptions.sslShutdownTimeout}. */
  readonly sslShutdownTimeout?: number;
  /** What to serve; default the app's HTTP. */
  readonly protocol?: ProtocolFactory;
}

/**
 * Options of `app.listen()`: `port`/`host` for one HTTP listener, or any mix of `http`, `tls`, `tcp` and
 * `unix` listeners (each one or a list), all serving (by default) the same app.
 */
export interface ListenOptions extends TcpListenerOptions {
  /** Plain HTTP listeners. */
  readonly http?: TcpListenerOptions | readonly TcpListenerOptions[];
  /** HTTPS listeners (`ssl` required). */
  readonly tls?: TcpListenerOptions | readonly TcpListenerOptions[];
  /** TCP listeners for other protocols (`protocol` given), or HTTP. */
  readonly tcp?: TcpListenerOptions | readonly TcpListenerOptions[];
  /** Unix socket listeners (a path, or options). */
  readonly unix?: string | UnixListenerOptions | readonly (string | UnixListenerOptions)[];
  /** Serve from this many processes (node:cluster); this process becomes their primary. */
  readonly workers?: number;
}

/** A listening address of the app. */
export interface AppAddress {
  /** Which option made it. */
  readonly kind: 'http' | 'tls' | 'tcp' | 'unix';
  /** `http://127.0.0.1:8080`, `https://…`, `tcp://…`, `unix:/path`. */
  readonly url: string;
  /** The host bound (TCP). */
  readonly host?: string;
  /** The port bound (TCP). */
  readonly port?: number;
  /** The socket path (Unix). */
  readonly path?: string;
  /** The server. */
  readonly server: Server;
}

/** What `app.close()` reports. */
export interface CloseResult {
  /** True when every connection finished on its own within the deadline (nothing was cut). */
  readonly clean: boolean;
}

interface RouteRecord extends RouteInfo {
  readonly handler: RouteHandler;
  readonly validate: ((request: Request, reply: Reply) => boolean) | null;
  readonly accessLog: boolean;
  /** Request metrics by status (by method and status for the catch-all records). */
  readonly metrics: Map<number | string, RequestMetrics>;
}

type Router = FindMyWay.Instance<FindMyWay.HTTPVersion.V1>;

const NOOP_HANDLER = (): void => undefined;

/**
 * The methods a route can have (find-my-way's, which are node:http's). Any other is answered 501 (RFC 9110
 * §9.1) and counted in the metrics as `_OTHER`, so that clients cannot make up label values.
 */
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);

/**
 * find-my-way answers a bad percent-encoding and a parameter over `maxParamLength` with a match that has no
 * route (`store` null); its handler calls these, and so tells which: the status to answer.
 */
const BAD_URL = (): number => 400;
const PARAM_TOO_LONG = (): number => 414;
const GRACEFUL_SHARE = 0.8;
const AFTER_ABORT_WAIT = 1;

function positiveSeconds(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`${name} must be a positive number of seconds`);
  return value;
}

/** The media type of a `Content-Type` value, without parameters, in lower case (RFC 9110 §8.3.1). */
function mediaType(ct: string): string {
  const semi = ct.indexOf(';');
  return (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase();
}

function isJsonType(type: string): boolean {
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/** The status of a match with no route behind it: 400 (bad percent-encoding) or 414 (a parameter too long). */
function noRouteStatus(found: FindMyWay.FindResult<FindMyWay.HTTPVersion.V1>): number {
  return (found.handler as unknown as () => number)();
}

/**
 * Makes an app.
 *
 * @param options - see {@link AppOptions}.
 * @returns the app.
 * @throws RangeError / TypeError for invalid options.
 * @example
 * ```ts
 * const app = createApp();
 * app.get('/hello/:name', { schema: { params: z.object({ name: z.string().min(1) }) } }, (req) => ({
 *   hello: req.params.name,
 * }));
 * await app.listen({ port: 8080 });
 * ```
 */
export function createApp(options: AppOptions = {}): App {
  return new App(options);
}

/**
 * An HTTP app: routes, hooks, and the listeners and lifecycle that serve them. Make one with {@link createApp}.
 */
export class App implements RequestHost, ReplyHost {
  /** The app's logger; lines logged while a request is served carry its `reqId`. */
  readonly log: Logger;
  /** @internal */
  readonly requestIdHeader: string | null;
  /** @internal */
  readonly requestIdPrefix: string;
  /** @internal */
  readonly logAddsRequestId: boolean;
  readonly #options: AppOptions;
  readonly #logEnabled: boolean;
  readonly #accessLog: boolean;
  readonly #useContext: boolean;
  readonly #router: Router;
  readonly #methods = new Set<string>();
  readonly #getRoutes: { url: string; options: RouteOptions; handler: RouteHandler }[] = [];
  readonly #explicitHead = new Set<string>();
  #sealed = false;
  readonly #hooks: AppHooks = {
    onRequest: [],
    preValidation: [],
    preHandler: [],
    preSerialization: [],
    onSend: [],
    onError: [],
  };
  readonly #onResponse: OnResponseHook[] = [];
  #errorHandler: ErrorHandler | null = null;
  #notFoundHandler: RouteHandler | null = null;
  readonly #metrics: AppMetrics | null;
  readonly #tracker: ConnectionTracker;
  readonly #httpFactory: ProtocolFactory;
  readonly #notFound: RouteRecord;
  readonly #paramTooLong: RouteRecord;
  readonly #notImplemented: RouteRecord;
  readonly #badUrl: RouteRecord;
  readonly #shutdownTimeout: number;
  readonly #signals: readonly NodeJS.Signals[];
  #lease: LoopLease | null = null;
  #addresses: AppAddress[] = [];
  #state: 'new' | 'starting' | 'listening' | 'closing' | 'closed' = 'new';
  #ready = false;
  #seq = 0;
  #closing: Promise<CloseResult> | null = null;
  #previousHandler: ExceptionHandler | null = null;
  #previousLogger: Logger | null = null;
  #installedSignals: NodeJS.Signals[] = [];
  #primary: Primary | null = null;
  #rejectionListener: ((reason: unknown) => void) | null = null;
  /** Set by a second signal that cut connections: the shutdown is not clean. */
  #aborted = false;
  /** Ends the `shutdownDelay` wait early (a second signal). */
  #endDelay: (() => void) | null = null;
  /** The shared endpoint of the app's HTTP pipelines: exchanges carry their own state, so one object serves all. */
  readonly #endpoint: HttpHandlerProtocol;

  /** @internal Use {@link createApp}. */
  constructor(options: AppOptions = {}) {
    this.#options = options;
    const { logger, enabled } = createLogger(options.logger);
    this.log = logger;
    this.#logEnabled = enabled;
    this.#accessLog = options.accessLog ?? enabled;
    this.#useContext = options.requestContext ?? enabled;
    // The mixin finds the id in the request's context, which requestContext: false does not keep.
    this.logAddsRequestId = hasRequestIdMixin(logger) && this.#useContext;
    // Header names are matched in lower case (as fastify does with this option): `X-Request-Id` works too.
    this.requestIdHeader =
      options.requestIdHeader === false ? null : (options.requestIdHeader ?? 'x-request-id').toLowerCase();
    this.requestIdPrefix = options.requestIdPrefix ?? 'req-';
    this.#shutdownTimeout = positiveSeconds('shutdownTimeout', options.shutdownTimeout, 10);
    this.#signals = options.signals === false ? [] : (options.signals ?? ['SIGTERM', 'SIGINT']);
    if (
      options.maxConnections !== undefined &&
      !(Number.isInteger(options.maxConnections) && options.maxConnections > 0)
    ) {
      throw new RangeError('maxConnections must be a positive integer');
    }
    this.#tracker = new ConnectionTracker(options.maxConnections ?? Infinity, options.maxParked ?? 1024);
    const routerOptions = options.router ?? {};
    this.#router = FindMyWay({
      ignoreTrailingSlash: routerOptions.ignoreTrailingSlash ?? false,
      ignoreDuplicateSlashes: routerOptions.ignoreDuplicateSlashes ?? false,
      caseSensitive: routerOptions.caseSensitive ?? true,
      maxParamLength: routerOptions.maxParamLength ?? 100,
      // Matches with no route behind them: answered 400 and 414 (as fastify does).
      onBadUrl: BAD_URL,
      onMaxParamLength: PARAM_TOO_LONG,
    });
    this.#endpoint = {
      connectionMade: (_t: MessageTransport<never>): void => undefined,
      messageReceived: (ex: HttpExchange): void => this.#dispatch(ex),
      connectionLost: (): void => undefined,
      expectContinue: (req: ParsedRequest): number | ContinueRefusal | null => this.#expectContinue(req),
    };
    const stage = http1(options.http ?? {});
    const endpoint = this.#endpoint;
    this.#httpFactory = pipeline(stage, () => endpoint);
    this.#notFound = this.#record('*', '', {}, (req, reply) => this.#answerNoRoute(req, reply));
    this.#badUrl = this.#record('*', '', {}, (_req, reply) => {
      reply.code(400).send(JSON.parse(errorBody(400, 'Invalid URL encoding')) as unknown);
    });
    this.#paramTooLong = this.#record('*', '', {}, (req, reply) => {
      reply.code(414).send(JSON.parse(errorBody(414, `'${req.path}' is exceeding the max param length`)) as unknown);
    });
    this.#notImplemented = this.#record('*', '', {}, (req, reply) => {
      reply.code(501).send(JSON.parse(errorBody(501, `Method ${req.method} is not implemented`)) as unknown);
    });
    const metricsOpt = options.metrics ?? true;
    this.#metrics =
      metricsOpt === false
        ? null
        : new AppMetrics(metricsOpt === true ? {} : metricsOpt, () => this.#tracker.active + this.#tracker.parked);
    if (this.#metrics !== null) {
      const metrics = this.#metrics;
      this.get(metrics.path, { accessLog: false }, async (_req, reply) => {
        const { contentType, body } = await metrics.render();
        return reply.type(contentType).send(body);
      });
    }
    const health = options.health ?? true;
    if (health !== false) {
      const h = health === true ? {} : health;
      this.get(h.healthPath ?? '/healthz', { accessLog: false }, () => ({ status: 'ok' }));
      this.get(h.readyPath ?? '/readyz', { accessLog: false }, (_req, reply) =>
        this.#ready
          ? { status: 'ready' }
          : reply.code(503).send({ status: this.#state === 'new' ? 'starting' : 'draining' }),
      );
    }
  }

  // ---- routes --------------------------------------------------------------------------------------------

  /** Adds a GET route (and, unless `exposeHeadRoutes: false`, the matching HEAD route). */
  get<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  get<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  get(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    return this.#shorthand('GET', path, a, b);
  }

  /** Adds a POST route. */
  post<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  post<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  post(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    return this.#shorthand('POST', path, a, b);
  }

  /** Adds a PUT route. */
  put<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  put<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  put(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    return this.#shorthand('PUT', path, a, b);
  }

  /** Adds a DELETE route. */
  delete<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  delete<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  delete(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    return this.#shorthand('DELETE', path, a, b);
  }

  /** Adds a PATCH route. */
  patch<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  patch<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  patch(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    return this.#shorthand('PATCH', path, a, b);
  }

  /** Adds a HEAD route (it replaces the implicit one of the GET route on the same path). */
  head<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  head<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  head(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    return this.#shorthand('HEAD', path, a, b);
  }

  /** Adds an OPTIONS route. */
  options<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  options<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  options(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    return this.#shorthand('OPTIONS', path, a, b);
  }

  /** Adds a route for GET, POST, PUT, DELETE, PATCH and OPTIONS (and HEAD through GET). */
  all<S extends RouteSchema = RouteSchema>(path: string, handler: RouteHandler<S>): this;
  all<S extends RouteSchema>(path: string, options: RouteOptions<S>, handler: RouteHandler<S>): this;
  all(path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    const [options, handler] = typeof a === 'function' ? [{}, a] : [a, b];
    return this.route({
      ...options,
      method: ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
      url: path,
      handler: handler!,
    });
  }

  /**
   * Adds a route.
   *
   * @param definition - method(s), url, schema, handler, config.
   * @returns this app.
   * @throws TypeError for a missing handler or schema that is not a zod schema; find-my-way's error for an
   *   invalid or duplicate path.
   */
  route<S extends RouteSchema>(definition: RouteDefinition<S>): this;
  route<S extends RouteSchema>(method: string | readonly string[], path: string, handler: RouteHandler<S>): this;
  route<S extends RouteSchema>(
    method: string | readonly string[],
    path: string,
    options: RouteOptions<S>,
    handler: RouteHandler<S>,
  ): this;
  route(
    a: RouteDefinition | string | readonly string[],
    path?: string,
    b?: RouteOptions | RouteHandler,
    c?: RouteHandler,
  ): this {
    let def: RouteDefinition;
    if (typeof a === 'string' || Array.isArray(a)) {
      const [options, handler] = typeof b === 'function' ? [{}, b] : [b ?? {}, c];
      def = { ...options, method: a as string | readonly string[], url: path!, handler: handler! };
    } else {
      def = a as RouteDefinition;
    }
    if (typeof def.handler !== 'function') throw new TypeError(`route ${String(def.url)} needs a handler function`);
    if (typeof def.url !== 'string') throw new TypeError('route url must be a string');
    const methods = typeof def.method === 'string' ? [def.method] : def.method;
    for (const m of methods) {
      const method = m.toUpperCase();
      if (method === 'HEAD') this.#explicitHead.add(def.url);
      this.#add(method, def.url, def, def.handler as RouteHandler);
      if (method === 'GET') {
        this.#getRoutes.push({ url: def.url, options: def, handler: def.handler as RouteHandler });
        if (this.#sealed) this.#exposeHead(def.url, def, def.handler as RouteHandler);
      }
    }
    return this;
  }

  #shorthand(method: string, path: string, a: RouteOptions | RouteHandler, b?: RouteHandler): this {
    if (typeof a === 'function') return this.route({ method, url: path, handler: a });
    if (typeof b !== 'function') throw new TypeError(`route ${method} ${path} needs a handler function`);
    return this.route({ ...a, method, url: path, handler: b });
  }

  #add(method: string, url: string, options: RouteOptions, handler: RouteHandler): void {
    const record = this.#record(method, url, options, handler);
    this.#router.on(method as FindMyWay.HTTPMethod, url, NOOP_HANDLER, record);
    this.#methods.add(method);
  }

  #exposeHead(url: string, options: RouteOptions, handler: RouteHandler): void {
    if (this.#options.exposeHeadRoutes === false || this.#explicitHead.has(url)) return;
    if (this.#router.hasRoute('HEAD', url)) return;
    this.#add('HEAD', url, options, handler);
  }

  /** Implicit HEAD routes are added once the routes are complete (a HEAD route given later replaces none). */
  #seal(): void {
    if (this.#sealed) return;
    this.#sealed = true;
    for (const r of this.#getRoutes) this.#exposeHead(r.url, r.options, r.handler);
  }

  #record(method: string, url: string, options: RouteOptions, handler: RouteHandler): RouteRecord {
    return {
      method,
      url,
      config: options.config,
      handler,
      validate: options.schema === undefined ? null : compileSchema(options.schema),
      accessLog: options.accessLog ?? true,
      metrics: new Map(),
    };
  }

  /**
   * Adds a hook, fastify's (the lifecycle is in the `hooks` module's documentation). Hooks of one name run in the
   * order they were added; each may return a promise, which is waited for.
   * - `onRequest(request, reply)`: before the body is parsed (`request.body` is not set yet).
   * - `preValidation(request, reply)`: the body is parsed, the schemas are not checked yet.
   * - `preHandler(request, reply)`: just before the handler.
   * - `preSerialization(request, reply, payload)`: a body to be serialized to JSON; returns another, or nothing.
   * - `onSend(request, reply, payload)`: the serialized body; returns another, or nothing.
   * - `onError(request, reply, error)`: an error is about to be answered; for logging, it must not answer.
   * - `onResponse(request, reply)`: the response is complete (or the connection was lost first).
   *
   * The first three may answer with `reply.send()`: then the hooks and the handler after it do not run. A throw
   * or a rejection in a hook is answered as a handler's.
   *
   * @param name - the hook's name.
   * @param hook - the hook.
   * @returns this app.
   * @throws TypeError for an unknown name or a hook that is not a function.
   */
  addHook(name: 'onRequest' | 'preValidation' | 'preHandler', hook: RequestHook): this;
  addHook(name: 'preSerialization', hook: PreSerializationHook): this;
  addHook(name: 'onSend', hook: OnSendHook): this;
  addHook(name: 'onError', hook: OnErrorHook): this;
  addHook(name: 'onResponse', hook: OnResponseHook): this;
  addHook(name: HookName, hook: RequestHook | PreSerializationHook | OnSendHook | OnErrorHook): this {
    if (typeof hook !== 'function') throw new TypeError(`${String(name)} hook must be a function`);
    if (name === 'onResponse') this.#onResponse.push(hook as OnResponseHook);
    else if (Object.hasOwn(this.#hooks, name)) (this.#hooks[name] as unknown[]).push(hook);
    else throw new TypeError(`unknown hook ${String(name)}`);
    return this;
  }

  /**
   * Sets the error handler (fastify's `setErrorHandler`; a second call replaces the first). It answers what a
   * handler or a hook throws (or rejects with, or sends), a body that is not valid JSON (an `HttpError` 400), and
   * a request the route's schemas refuse (a `MessageValidationError` with its `issues`, 400), with
   * `reply.statusCode` already set to the error's status. It answers as a route handler does. An error it handles
   * is not logged by the app (the handler decides); an error it throws is answered and logged as the default
   * does, and so is an `Error` it sends.
   *
   * @param handler - `(error, request, reply)`.
   * @returns this app.
   * @throws TypeError when `handler` is not a function.
   */
  setErrorHandler(handler: ErrorHandler): this {
    if (typeof handler !== 'function') throw new TypeError('the error handler must be a function');
    this.#errorHandler = handler;
    return this;
  }

  /**
   * Sets the handler of requests no route takes (fastify's `setNotFoundHandler`; a second call replaces the
   * first), in place of the default 404 answer. The request hooks run before it, as before a route's handler;
   * `reply.statusCode` is 404 when it starts, and it answers as a route handler does. A path that has routes for
   * other methods still gets 405 with `Allow`, and an unknown method 501.
   *
   * @param handler - `(request, reply)`.
   * @returns this app.
   * @throws TypeError when `handler` is not a function.
   */
  setNotFoundHandler(handler: RouteHandler): this {
    if (typeof handler !== 'function') throw new TypeError('the not-found handler must be a function');
    this.#notFoundHandler = handler;
    return this;
  }

  /** @internal The hooks, for replies. */
  get _hooks(): AppHooks {
    return this.#hooks;
  }

  /** @internal The error handler, for replies. */
  get _errorHandler(): ErrorHandler | null {
    return this.#errorHandler;
  }

  // ---- serving -------------------------------------------------------------------------------------------

  /** The loop the app runs on once it listens (or injects), else `null`. */
  get loop(): BaseEventLoop | null {
    return this.#lease?.loop ?? null;
  }

  /** True while the app listens and does not drain (what `/readyz` tells). */
  get ready(): boolean {
    return this.#ready;
  }

  /** The listening addresses. */
  addresses(): readonly AppAddress[] {
    return this.#addresses;
  }

  /** Connections served now, and parked over `maxConnections`. */
  get connections(): { readonly active: number; readonly parked: number; readonly accepted: number } {
    return { active: this.#tracker.active, parked: this.#tracker.parked, accepted: this.#tracker.accepted };
  }

  /** The Prometheus registry of the app's metrics, or `null` with `metrics: false`. */
  get metricsRegistry(): AppMetrics['registry'] | null {
    return this.#metrics?.registry ?? null;
  }

  /**
   * A protocol factory serving this app's HTTP (the `http1` stage and the app), for `loop.createServer()` by
   * hand. Connections made with it are not counted by the app's lifecycle; prefer `listen()`.
   */
  protocolFactory(): ProtocolFactory {
    this.#seal();
    return this.#httpFactory;
  }

  /**
   * Sends one request through the app's whole HTTP pipeline without a socket, and reads the response.
   *
   * @param options - method, url, query, headers, payload.
   * @returns the response.
   * @example
   * ```ts
   * const res = await app.inject({ method: 'POST', url: '/kv/a', payload: { value: 'x' } });
   * assert.equal(res.statusCode, 201);
   * ```
   */
  async inject(options: InjectOptions | string = {}): Promise<InjectResponse> {
    this.#seal();
    const opts = typeof options === 'string' ? { url: options } : options;
    const lease = this.#lease ?? acquireLoop(this.#options.loop);
    try {
      return await inject(lease.loop, this.#httpFactory, opts);
    } finally {
      if (lease !== this.#lease) await lease.release();
    }
  }

  /**
   * Starts serving: binds every listener, installs the logger as the loop's exception handler and the signal
   * handlers, and turns ready. With `workers: N` (N > 1) in a cluster primary, forks N workers that do this
   * instead.
   *
   * @param options - see {@link ListenOptions}.
   * @returns the address of the first listener (`http://127.0.0.1:43567`).
   * @throws AppStateError when the app listens already or was closed; OSError for a bind failure (the
   *   listeners bound so far are closed again).
   */
  async listen(options: ListenOptions = {}): Promise<string> {
    if (this.#state !== 'new') throw new AppStateError(`app.listen() called on an app that is ${this.#state}`);
    this.#state = 'starting';
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError('workers must be a positive integer');
    if (workers > 1 && cluster.isPrimary) {
      this.#primary = new Primary({
        workers,
        signals: this.#signals,
        shutdownTimeout: this.#shutdownTimeout,
        exitOnSignal: this.#options.exitOnSignal ?? true,
        log: this.log,
      });
      this.#state = 'listening';
      return this.#primary.start();
    }
    this.#seal();
    const lease = acquireLoop(this.#options.loop);
    this.#lease = lease;
    const loop = lease.loop;
    this.#previousHandler = loop.getExceptionHandler();
    this.#previousLogger = loop._logger;
    loop.setExceptionHandler(exceptionHandler(this.log));
    loop.logger = this.log;
    try {
      for (const spec of listenerSpecs(options)) this.#addresses.push(await this.#bind(loop, spec));
    } catch (err) {
      for (const a of this.#addresses) a.server.close();
      this.#addresses = [];
      this.#restoreLoop(loop);
      this.#lease = null;
      this.#state = 'new';
      await lease.release();
      throw err;
    }
    for (const sig of this.#signals) {
      loop.addSignalHandler(sig, () => this.#onSignal(sig));
      this.#installedSignals.push(sig);
    }
    if (this.#options.catchUnhandledRejections !== false) {
      this.#rejectionListener = (reason: unknown) => {
        loop.callExceptionHandler({ message: 'Unhandled promise rejection', exception: reason });
      };
      process.on('unhandledRejection', this.#rejectionListener);
    }
    this.#metrics?.startLagProbe(loop);
    this.#state = 'listening';
    this.#ready = true;
    const first = this.#addresses[0]!.url;
    this.log.info({ addresses: this.#addresses.map((a) => a.url) }, `listening on ${first}`);
    announceListening(first);
    return first;
  }

  async #bind(loop: EventLoop, spec: ListenerSpec): Promise<AppAddress> {
    const factory = this.#tracker.wrap(spec.protocol ?? this.#httpFactory);
    if (spec.kind === 'unix') {
      const o = spec.options as UnixListenerOptions;
      // Owner-only unless asked otherwise: a Unix listener is usually an admin or sidecar door. The server makes
      // the file with that mode (never more, not even for a moment); an abstract name ('\0…') has no file.
      const server = await loop.createUnixServer(factory, o.path, {
        ...(o.backlog === undefined ? {} : { backlog: o.backlog }),
        ...sslOptions(o),
        ...(o.path.startsWith('\0') ? {} : { mode: o.mode ?? 0o600 }),
      });
      return { kind: 'unix', url: `unix:${o.path}`, path: o.path, server };
    }
    const o = spec.options as TcpListenerOptions;
    if (spec.kind === 'tls' && o.ssl === undefined) throw new TypeError('a tls listener needs an ssl context');
    const host = o.host ?? '127.0.0.1';
    const server = await loop.createServer(factory, host, o.port ?? 3000, {
      ...(o.backlog === undefined ? {} : { backlog: o.backlog }),
      ...(o.reusePort === undefined ? {} : { reusePort: o.reusePort }),
      ...sslOptions(o),
      ...(o.sslHandshakeTimeout === undefined ? {} : { sslHandshakeTimeout: o.sslHandshakeTimeout }),
    });
    const name = server.sockets[0]?.getsockname();
    const boundHost = Array.isArray(name) ? name[0] : host;
    const port = Array.isArray(name) ? name[1] : (o.port ?? 0);
    const scheme =
      spec.kind === 'tls' || o.ssl !== undefined ? 'https' : spec.kind === 'tcp' && o.protocol ? 'tcp' : 'http';
    const hostText = boundHost.includes(':') ? `[${boundHost}]` : boundHost;
    return { kind: spec.kind, url: `${scheme}://${hostText}:${port}`, host: boundHost, port, server };
  }

  #onSignal(sig: NodeJS.Signals): void {
    if (this.#state === 'closing' || this.#state === 'closed') {
      this.log.warn({ signal: sig }, 'second signal: closing every connection now');
      // What this cuts did not finish on its own: the shutdown is not clean (exit 1), however fast the rest goes.
      if (this.#tracker.active + this.#tracker.parked > 0) this.#aborted = true;
      this.#endDelay?.();
      this.#tracker.abortAll();
      for (const a of this.#addresses) a.server.abortClients();
      return;
    }
    this.log.info({ signal: sig }, `received ${sig}: draining`);
    void this.close().then(({ clean }) => {
      if (this.#options.exitOnSignal ?? true) process.exit(clean ? 0 : 1);
    });
  }

  /**
   * Stops serving, gracefully: readiness turns false, the listeners stop accepting, idle connections are closed
   * (after a grace second, see below), requests in progress (and those already pipelined) are answered, then the remaining connections are closed
   * (`closeClients`) and, at the deadline, aborted (`abortClients`). Idempotent.
   *
   * No connection the server accepted is dropped unread: one accepted just before the listeners closed, or one
   * that has not sent its first request yet, is kept for that request (answered with `Connection: close`, or
   * closed at the keep-alive timeout), and connections parked over `maxConnections` are admitted as places free.
   * An idle kept-alive connection stays readable for one second: a request its client sent before it could know
   * is answered with `Connection: close`; then it is closed. A request sent at that very moment is not read, and
   * may be sent again (RFC 9112 §9.3.1; nginx's `proxy_next_upstream error` does so).
   *
   * @param options - `deadline`: seconds the whole shutdown may take (default the app's `shutdownTimeout`).
   * @returns whether every connection finished on its own.
   */
  close(options: { deadline?: number } = {}): Promise<CloseResult> {
    this.#closing ??= this.#close(positiveSeconds('deadline', options.deadline, this.#shutdownTimeout));
    return this.#closing;
  }

  async #close(deadlineArg: number): Promise<CloseResult> {
    let deadline = deadlineArg;
    this.#ready = false;
    const previous = this.#state;
    this.#state = 'closing';
    if (this.#primary !== null) {
      const clean = await this.#primary.stop();
      this.#state = 'closed';
      return { clean };
    }
    const lease = this.#lease;
    if (lease === null || previous === 'new') {
      this.#state = 'closed';
      return { clean: true };
    }
    const loop = lease.loop;
    const servers = this.#addresses.map((a) => a.server);
    const delay = Math.min(this.#options.shutdownDelay ?? 0, deadline / 2);
    if (delay > 0 && !this.#aborted) {
      await new Promise<void>((resolve) => {
        const timer = loop.callLater(delay, resolve);
        this.#endDelay = () => {
          timer.cancel();
          resolve();
        };
      });
      this.#endDelay = null;
    }
    deadline -= delay;
    for (const s of servers) s.close();
    this.#tracker.shutdownAll();
    const drained = await this.#within(loop, this.#tracker.waitEmpty(), deadline * GRACEFUL_SHARE);
    if (!drained) {
      this.log.warn({ connections: this.#tracker.active }, 'shutdown: closing the connections still open');
      for (const s of servers) s.closeClients();
      if (!(await this.#within(loop, this.#tracker.waitEmpty(), deadline * (1 - GRACEFUL_SHARE)))) {
        this.log.warn({ connections: this.#tracker.active }, 'shutdown deadline: aborting the connections left');
        for (const s of servers) s.abortClients();
        this.#tracker.abortAll();
        await this.#within(loop, this.#tracker.waitEmpty(), AFTER_ABORT_WAIT);
      }
    }
    await this.#within(loop, Promise.all(servers.map((s) => s.waitClosed())), AFTER_ABORT_WAIT);
    this.#metrics?.stopLagProbe();
    for (const sig of this.#installedSignals) loop.removeSignalHandler(sig);
    this.#installedSignals = [];
    if (this.#rejectionListener !== null) {
      process.removeListener('unhandledRejection', this.#rejectionListener);
      this.#rejectionListener = null;
    }
    const clean = drained && !this.#aborted;
    this.log.info({ clean }, 'closed');
    this.#lease = null;
    this.#state = 'closed';
    // A background loop closes here, and reports what it still holds (unretrieved task exceptions) to the app's
    // handler: restore the previous one only after.
    await lease.release();
    this.#restoreLoop(loop);
    return { clean };
  }

  #restoreLoop(loop: BaseEventLoop): void {
    loop.setExceptionHandler(this.#previousHandler);
    if (this.#previousLogger !== null) loop.logger = this.#previousLogger;
    else loop._logger = null;
  }

  /** Resolves true when `promise` settles within `seconds` (loop time), false otherwise. */
  #within(loop: BaseEventLoop, promise: Promise<unknown>, seconds: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = loop.callLater(seconds, resolve, false);
      promise.then(
        () => {
          timer.cancel();
          resolve(true);
        },
        () => {
          timer.cancel();
          resolve(true);
        },
      );
    });
  }

  // ---- the request path ----------------------------------------------------------------------------------

  #dispatch(ex: HttpExchange): void {
    const raw = ex.request;
    const known = KNOWN_METHODS.has(raw.method);
    const found = known ? this.#router.find(raw.method as FindMyWay.HTTPMethod, raw.url) : null;
    let route: RouteRecord;
    let request: Request;
    if (found === null) {
      route = known ? this.#notFound : this.#notImplemented;
      request = new Request(this, ex, route, {}, {}, ++this.#seq);
    } else {
      route = (found.store as RouteRecord | null) ?? this.#noRouteRecord(found);
      request = new Request(this, ex, route, found.params, found.searchParams as DefaultQuery, ++this.#seq);
    }
    const reply = new Reply(this, ex, request);
    if (this.#metrics !== null || this.#accessLog || this.#onResponse.length > 0) {
      ex.context = reply;
      ex.onFinish = onExchangeFinish;
    }
    if (this.#useContext) new Context().run(runInRequestContext, this, route, request, reply);
    else this.#run(route, request, reply);
  }

  /** @internal */
  _run(route: RouteRecord, request: Request, reply: Reply): void {
    this.#run(route, request, reply);
  }

  #run(route: RouteRecord, request: Request, reply: Reply): void {
    const hooks = this.#hooks;
    if (hooks.onRequest.length > 0 || hooks.preValidation.length > 0 || hooks.preHandler.length > 0) {
      void this.#withHooks(route, request, reply);
      return;
    }
    if (parseAndValidate(route, request, reply)) callHandler(route, request, reply);
  }

  async #withHooks(route: RouteRecord, request: Request, reply: Reply): Promise<void> {
    const hooks = this.#hooks;
    try {
      if (!(await runRequestHooks(hooks.onRequest, request, reply))) return;
      if (request.exchange.body.length > 0 && !parseBody(request, reply)) return;
      if (!(await runRequestHooks(hooks.preValidation, request, reply))) return;
      if (route.validate !== null && !route.validate(request, reply)) return;
      if (!(await runRequestHooks(hooks.preHandler, request, reply))) return;
    } catch (err) {
      reply._handlerFailed(err);
      return;
    }
    callHandler(route, request, reply);
  }

  #answerNoRoute(request: Request, reply: Reply): unknown {
    const { status, headers, message } = this.#noRoute(request.raw);
    if (status === 404 && this.#notFoundHandler !== null) {
      reply.code(404);
      return this.#notFoundHandler(request, reply);
    }
    if (headers?.allow !== undefined) reply.header('allow', headers.allow);
    return reply.code(status).send(JSON.parse(errorBody(status, message)) as unknown);
  }

  /**
   * The answer to a request no route takes, with or without `Expect: 100-continue`: 405 with `Allow` when the path
   * has routes for other methods (RFC 9110 §15.5.6), else 404.
   */
  #noRoute(raw: ParsedRequest): ContinueRefusal & { message: string } {
    const allowed = this.#allowedMethods(raw);
    if (allowed.length > 0) {
      return {
        status: 405,
        headers: { allow: allowed.join(', ') },
        message: `Method ${raw.method} not allowed on ${raw.path}`,
      };
    }
    return { status: 404, message: `Route ${raw.method}:${raw.path} not found` };
  }

  #allowedMethods(raw: ParsedRequest): string[] {
    const allowed: string[] = [];
    for (const m of this.#methods) {
      if (m === raw.method) continue;
      const found = this.#router.find(m as FindMyWay.HTTPMethod, raw.url);
      if (found !== null && found.store !== null) allowed.push(m);
    }
    return allowed.sort();
  }

  #expectContinue(req: ParsedRequest): number | ContinueRefusal | null {
    if (!KNOWN_METHODS.has(req.method)) return 501;
    const found = this.#router.find(req.method as FindMyWay.HTTPMethod, req.url);
    if (found !== null && found.store !== null) return null;
    if (found !== null) return noRouteStatus(found);
    // The answer a request without Expect would get; a not-found handler wants the body.
    const refusal = this.#noRoute(req);
    return refusal.status === 404 && this.#notFoundHandler !== null ? null : refusal;
  }

  /** The record answering a match with no route behind it (see {@link BAD_URL}). */
  #noRouteRecord(found: FindMyWay.FindResult<FindMyWay.HTTPVersion.V1>): RouteRecord {
    return noRouteStatus(found) === 414 ? this.#paramTooLong : this.#badUrl;
  }

  /** @internal A handler failed: one error line through the loop's exception handler. */
  reportError(error: unknown, reply: Reply): void {
    const request = reply.request;
    const loop = this.#lease?.loop;
    const context = {
      message: 'Error in request handler',
      exception: error,
      request: `${request.method} ${request.url}`,
      route: request.routeOptions.url,
      reqId: request.id,
      peer: formatPeer(request.exchange.transport.getExtraInfo('peername')),
    };
    if (loop !== undefined) loop.callExceptionHandler(context);
    else exceptionHandler(this.log)(null as unknown as BaseEventLoop, context);
  }

  /** @internal The response is complete (or the connection was lost first). */
  _finish(reply: Reply, outcome: ExchangeOutcome): void {
    const ex = reply._ex;
    const request = reply.request as Request;
    const route = request.routeOptions as RouteRecord;
    const status = ex.status;
    const metrics = this.#metrics;
    const seconds = (this.#lease?.loop.time() ?? performance.now() / 1000) - ex.startTime;
    if (metrics !== null && outcome === 'completed') {
      // The catch-all records (404, 405, 501, bad URLs) see every method: their cache is keyed by method too, and
      // they alone see methods no route can have, counted as one.
      const catchAll = route.method === '*';
      const method = catchAll && !KNOWN_METHODS.has(ex.request.method) ? '_OTHER' : ex.request.method;
      const key = catchAll ? `${method} ${status}` : status;
      let m = route.metrics.get(key);
      if (m === undefined) {
        m = metrics.forRoute(method, route.url === '' ? '<unmatched>' : route.url, status);
        route.metrics.set(key, m);
      }
      m.observe(seconds);
    }
    if (this.#accessLog && route.accessLog) {
      this.log.info(
        {
          reqId: request.id,
          req: { method: ex.request.method, url: ex.request.url, peer: request.ip },
          res: { statusCode: status },
          responseTime: Math.round(seconds * 1e6) / 1000,
        },
        outcome === 'completed' ? 'request completed' : 'request aborted',
      );
    }
    for (const hook of this.#onResponse) {
      try {
        const r = hook(request, reply);
        if (isThenable(r)) r.then(undefined, (err: unknown) => this.reportError(err, reply));
      } catch (err) {
        this.reportError(err, reply);
      }
    }
  }

  /** @internal For tests and tools: whether the logger logs. */
  get _logEnabled(): boolean {
    return this.#logEnabled;
  }
}

function onExchangeFinish(ex: HttpExchange, outcome: ExchangeOutcome): void {
  const reply = ex.context as Reply;
  (reply._host as App)._finish(reply, outcome);
}

function runInRequestContext(app: App, route: RouteRecord, request: Request, reply: Reply): void {
  requestId.set(request.id);
  app._run(route, request, reply);
}

function callHandler(route: RouteRecord, request: Request, reply: Reply): void {
  let result: unknown;
  try {
    result = route.handler(request, reply);
  } catch (err) {
    reply._handlerFailed(err);
    return;
  }
  reply._answer(result);
}

/**
 * Seconds an app's TLS connection waits for the client's close_notify when it closes (see
 * {@link TcpListenerOptions.sslShutdownTimeout}); HTTP needs none (Node's https server does not wait at all).
 */
export const HTTP_SSL_SHUTDOWN_TIMEOUT = 2;

/** A listener's TLS options for `createServer`: the context, and the shutdown timeout with the app's default. */
function sslOptions(o: { ssl?: SSLContext; sslShutdownTimeout?: number }): {
  ssl?: SSLContext;
  sslShutdownTimeout?: number;
} {
  if (o.ssl === undefined) return {};
  return { ssl: o.ssl, sslShutdownTimeout: o.sslShutdownTimeout ?? HTTP_SSL_SHUTDOWN_TIMEOUT };
}

/**
 * Parses the body and checks the route's schemas; false when the request was answered (refused, or failed). A
 * schema's own code that throws (a zod `transform` or `refine`) is a handler error: a 500 through the error path,
 * not a lost connection.
 */
function parseAndValidate(route: RouteRecord, request: Request, reply: Reply): boolean {
  try {
    if (request.exchange.body.length > 0 && !parseBody(request, reply)) return false;
    if (route.validate !== null && !route.validate(request, reply)) return false;
  } catch (err) {
    reply._handlerFailed(err);
    return false;
  }
  return true;
}

/** How JSON bodies are parsed (fastify's defaults): a prototype-poisoning key is an error, a 400. */
const SECURE_JSON = { protoAction: 'error', constructorAction: 'error' } as const;

/** Parses the body by its content type; answers 400 (an `HttpError`) and returns false when it cannot. */
function parseBody(request: Request, reply: Reply): boolean {
  const body = request.exchange.body;
  const type = mediaType(request.raw.headers['content-type'] ?? '');
  if (isJsonType(type)) {
    try {
      // fastify's parser, with its defaults: a UTF-8 byte order mark (Windows tools send one) is ignored, as RFC
      // 8259 §8.1 allows; a `__proto__` key, or a `constructor` key holding a `prototype` key, is an error (merged
      // into an object, such a body would change prototypes).
      request.body = secureJsonParse(body.toString('utf8'), null, SECURE_JSON) as unknown;
    } catch (err) {
      reply._fail(new HttpError(400, `Body is not valid JSON: ${(err as Error).message}`));
      return false;
    }
  } else if (type.startsWith('text/')) {
    request.body = body.toString('utf8');
  } else if (type === 'application/x-www-form-urlencoded') {
    request.body = { ...parseForm(body.toString('utf8')) };
  } else {
    request.body = body;
  }
  return true;
}

/**
 * Compiles a route's schemas into one check that replaces each part by its output, or answers 400 (a
 * `MessageValidationError`).
 */
function compileSchema(schema: RouteSchema): (request: Request, reply: Reply) => boolean {
  for (const part of ['params', 'querystring', 'body', 'headers'] as const) {
    const s = schema[part];
    if (s !== undefined && (s === null || typeof (s as { safeParse?: unknown }).safeParse !== 'function')) {
      throw new TypeError(`schema.${part} must be a zod schema`);
    }
  }
  const { params, querystring, body, headers } = schema;
  return (request, reply) => {
    let issues: ValidationIssue[] | null = null;
    if (params !== undefined) {
      const r = params.safeParse(request.params);
      if (r.success) request.params = r.data as DefaultParams;
      else (issues ??= []).push(...zodIssues(r.error.issues, 'params'));
    }
    if (querystring !== undefined) {
      const r = querystring.safeParse(request.query);
      if (r.success) request.query = r.data as DefaultQuery;
      else (issues ??= []).push(...zodIssues(r.error.issues, 'querystring'));
    }
    if (headers !== undefined) {
      const r = headers.safeParse(request.headers);
      if (r.success) request.headers = r.data as DefaultHeaders;
      else (issues ??= []).push(...zodIssues(r.error.issues, 'headers'));
    }
    if (body !== undefined) {
      const r = body.safeParse(request.body);
      if (r.success) request.body = r.data;
      else (issues ??= []).push(...zodIssues(r.error.issues, 'body'));
    }
    if (issues === null) return true;
    // 400 with every issue (the default answer lists them too).
    const error = new MessageValidationError(describeIssues('Invalid request', issues), issues);
    error.statusCode = 400;
    reply._fail(error);
    return false;
  };
}

interface ListenerSpec {
  readonly kind: 'http' | 'tls' | 'tcp' | 'unix';
  readonly options: TcpListenerOptions | UnixListenerOptions;
  readonly protocol: ProtocolFactory | undefined;
}

function listOf<T>(value: T | readonly T[] | undefined): readonly T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

function listenerSpecs(options: ListenOptions): ListenerSpec[] {
  const specs: ListenerSpec[] = [];
  for (const o of listOf(options.http)) specs.push({ kind: 'http', options: o, protocol: o.protocol });
  for (const o of listOf(options.tls)) specs.push({ kind: 'tls', options: o, protocol: o.protocol });
  for (const o of listOf(options.tcp)) specs.push({ kind: 'tcp', options: o, protocol: o.protocol });
  for (const u of listOf(options.unix)) {
    const o: UnixListenerOptions = typeof u === 'string' ? { path: u } : u;
    specs.push({ kind: 'unix', options: o, protocol: o.protocol });
  }
  if (specs.length === 0) {
    specs.push({ kind: options.ssl === undefined ? 'http' : 'tls', options, protocol: options.protocol });
  }
  return specs;
}
