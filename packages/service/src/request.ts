/**
 * The request object a route handler gets (fastify's shape): method, url, params, query, headers, body, id.
 *
 * @module
 */
import type { Logger } from 'pino';
import type { ParsedRequest } from './framing/http1-parser.js';
import type { HttpExchange } from './http1.js';
import { formatPeer } from './logging.js';

/** Route parameters as find-my-way gives them. */
export type DefaultParams = Record<string, string | undefined>;
/** The query string as find-my-way parses it: repeated keys become arrays. */
export type DefaultQuery = Record<string, string | string[] | undefined>;
/** Header fields with lowercase names, repeated ones joined. */
export type DefaultHeaders = Readonly<Record<string, string | undefined>>;

/** What a request knows of its route. */
export interface RouteInfo {
  /** The method the route was registered for (`HEAD` for an implicit HEAD route of a GET). */
  readonly method: string;
  /** The route's path pattern (`/kv/:key`); for unmatched requests, `''`. */
  readonly url: string;
  /** The `config` given when the route was registered. */
  readonly config: unknown;
}

/** @internal What a request needs of its app. */
export interface RequestHost {
  readonly log: Logger;
  /** False for a logger of the user's own without `requestIdMixin`: `request.log` is then a child with `reqId`. */
  readonly logAddsRequestId: boolean;
  readonly requestIdHeader: string | null;
  readonly requestIdPrefix: string;
}

const ID_OK = /^[\x21-\x7e]{1,128}$/;

/**
 * A request being served. `params`, `query`, `headers` and `body` are typed by the route's zod schemas (and are
 * then the schemas' output) or hold what the client sent.
 */
export class Request<P = DefaultParams, Q = DefaultQuery, B = unknown, H = DefaultHeaders> {
  /** The HTTP exchange (request and response on the connection). */
  readonly exchange: HttpExchange;
  /** The request head as the parser gave it. */
  readonly raw: ParsedRequest;
  /** Route parameters (`/kv/:key` → `{ key }`), decoded. */
  params: P;
  /** The query string, parsed. */
  query: Q;
  /**
   * The body: JSON-decoded for `application/json` (and `+json`; a JSON body with a `__proto__` key, or a
   * `constructor` key holding a `prototype` key, is refused with 400, as fastify refuses it), a string for
   * `text/*`, an object for `application/x-www-form-urlencoded`, a Buffer otherwise; `undefined` when there is
   * none.
   */
  body: B;
  /** The route that matched. */
  readonly routeOptions: RouteInfo;
  readonly #host: RequestHost;
  readonly #seq: number;
  #id: string | undefined = undefined;
  #log: Logger | undefined = undefined;
  #headers: H | undefined = undefined;

  /** @internal Requests are made by the app. */
  constructor(host: RequestHost, exchange: HttpExchange, route: RouteInfo, params: P, query: Q, seq: number) {
    this.#host = host;
    this.exchange = exchange;
    this.raw = exchange.request;
    this.routeOptions = route;
    this.params = params;
    this.query = query;
    this.body = undefined as B;
    this.#seq = seq;
  }

  /**
   * The request id: the client's `x-request-id` (the app's `requestIdHeader`) when it is 1–128 visible ASCII
   * characters, else `req-<n>` counted per app.
   */
  get id(): string {
    if (this.#id !== undefined) return this.#id;
    const header = this.#host.requestIdHeader;
    if (header !== null) {
      const given = this.raw.headers[header];
      if (given !== undefined && ID_OK.test(given)) return (this.#id = given);
    }
    return (this.#id = `${this.#host.requestIdPrefix}${this.#seq}`);
  }

  /** The method (`GET`). */
  get method(): string {
    return this.raw.method;
  }

  /** The request-target as sent (path and query). */
  get url(): string {
    return this.raw.url;
  }

  /** The path, without the query. */
  get path(): string {
    return this.raw.path;
  }

  /** The header fields (lowercase names), or the headers schema's output. */
  get headers(): H {
    return this.#headers ?? (this.raw.headers as H);
  }

  set headers(value: H) {
    this.#headers = value;
  }

  /** The client's address (`127.0.0.1`, `::1`), or the socket path for a Unix socket; `undefined` if unknown. */
  get ip(): string | undefined {
    const peer = this.exchange.transport.getExtraInfo('peername');
    if (Array.isArray(peer) && typeof peer[0] === 'string') return peer[0];
    return formatPeer(peer);
  }

  /**
   * The host the request is for, without its port: the authority of an absolute-form target
   * (`GET http://a.example/p`), which the server must use in place of the Host field (RFC 9112 §3.2.2), else the
   * Host field.
   */
  get hostname(): string {
    const host = targetAuthority(this.raw.url) ?? this.raw.headers.host ?? '';
    if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
    const colon = host.indexOf(':');
    return colon === -1 ? host : host.slice(0, colon);
  }

  /** `'https'` on a TLS listener, `'http'` otherwise. */
  get protocol(): 'http' | 'https' {
    return this.exchange.transport.getExtraInfo('sslcontext') === undefined ? 'http' : 'https';
  }

  /**
   * The app's logger, whose lines carry this request's `reqId` (as fastify's `request.log`): through
   * `requestIdMixin`, or, for a logger given without it, a child with the id bound.
   */
  get log(): Logger {
    if (this.#host.logAddsRequestId) return this.#host.log;
    return (this.#log ??= this.#host.log.child({ reqId: this.id }));
  }

  /** Aborted when the client goes away before the response is complete. */
  get signal(): AbortSignal {
    return this.exchange.signal;
  }
}

/** The host and port of an absolute-form request-target (`http://u@h:1/p` gives `h:1`), or `null` for another form. */
function targetAuthority(url: string): string | null {
  // origin-form (`/p`) and asterisk-form (`*`) have no authority; the parser admits no other form but absolute.
  if (url.charCodeAt(0) === 0x2f || url === '*') return null;
  const start = url.indexOf('//');
  if (start === -1) return null;
  let end = url.length;
  for (const stop of ['/', '?', '#']) {
    const at = url.indexOf(stop, start + 2);
    if (at !== -1 && at < end) end = at;
  }
  const authority = url.slice(start + 2, end);
  // userinfo is deprecated in http(s) URIs (RFC 9110 §4.2.4) and is no part of the host.
  return authority.slice(authority.lastIndexOf('@') + 1);
}
