/**
 * `app.inject()`: a request through the app's whole HTTP pipeline (parser, limits, routing, handlers, writer)
 * over an in-memory transport instead of a socket, and the response parsed back.
 *
 * @module
 */
import type { BaseEventLoop, BaseProtocol, ExtraInfo, Protocol, ProtocolFactory, Transport } from '@loopwork/server';

/** What `app.inject()` sends. */
export interface InjectOptions {
  /** The method; default `GET`. */
  readonly method?: string;
  /**
   * The request-target (`/path?x=1`); default `/`. Spaces and non-ASCII characters are sent percent-encoded (as
   * UTF-8), and a fragment (`#…`) is not sent, as a client does.
   */
  readonly url?: string;
  /** Query fields added to `url`. */
  readonly query?: Readonly<Record<string, string | number | boolean | readonly string[]>>;
  /** Header fields; `host` defaults to `localhost`, `content-length` is computed. */
  readonly headers?: Readonly<Record<string, string | number | readonly string[]>>;
  /** The body: an object or array is sent as JSON (with its content type), a string as is, bytes as is. */
  readonly payload?: unknown;
  /** The same as `payload`. */
  readonly body?: unknown;
  /** The peer address the app sees; default `['127.0.0.1', 41234]`. */
  readonly remoteAddress?: string;
}

/** What `app.inject()` returns. */
export interface InjectResponse {
  /** The status code. */
  readonly statusCode: number;
  /** The reason phrase. */
  readonly statusMessage: string;
  /** Header fields, lowercase names; repeated ones as arrays. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** The body as bytes. */
  readonly rawPayload: Buffer;
  /** The body as UTF-8 text. */
  readonly payload: string;
  /** The same as `payload`. */
  readonly body: string;
  /** Trailer fields of a chunked body. */
  readonly trailers: Readonly<Record<string, string>>;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

/**
 * The request-target a client sends for `url`, as a `URL` makes it (and fastify's inject sends): the fragment is
 * dropped (it is no part of a request), and what a request-target cannot hold (space, controls, non-ASCII) is
 * percent-encoded as UTF-8; what is percent-encoded already is kept.
 */
function requestTarget(url: string): string {
  const hash = url.indexOf('#');
  const target = hash === -1 ? url : url.slice(0, hash);
  return target.replace(/[^\x21-\x7e]+/gu, (run) => {
    let encoded = '';
    for (const byte of Buffer.from(run, 'utf8')) encoded += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    return encoded;
  });
}

/** @internal Encodes the request bytes. */
export function encodeRequest(options: InjectOptions): Buffer {
  const method = options.method?.toUpperCase() ?? 'GET';
  let url = requestTarget(options.url ?? '/');
  if (options.query !== undefined) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query)) {
      if (Array.isArray(v)) for (const item of v as readonly string[]) params.append(k, item);
      else params.append(k, String(v));
    }
    const qs = params.toString();
    if (qs !== '') url += (url.includes('?') ? '&' : '?') + qs;
  }
  const headers = new Map<string, string[]>();
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    headers.set(k.toLowerCase(), Array.isArray(v) ? [...(v as readonly string[])] : [String(v)]);
  }
  const payload = options.payload ?? options.body;
  let body: Buffer = Buffer.alloc(0);
  if (payload !== undefined && payload !== null) {
    if (typeof payload === 'string') body = Buffer.from(payload, 'utf8');
    else if (payload instanceof Uint8Array) body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    else {
      body = Buffer.from(JSON.stringify(payload), 'utf8');
      if (!headers.has('content-type')) headers.set('content-type', ['application/json; charset=utf-8']);
    }
  }
  if (!headers.has('host')) headers.set('host', ['localhost']);
  headers.delete('content-length');
  if (body.length > 0 || (method !== 'GET' && method !== 'HEAD' && !headers.has('transfer-encoding'))) {
    if (!headers.has('transfer-encoding')) headers.set('content-length', [String(body.length)]);
  }
  let head = `${method} ${url} HTTP/1.1\r\n`;
  for (const [k, values] of headers) for (const v of values) head += `${k}: ${v}\r\n`;
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body]);
}

/** An incremental HTTP/1.1 response reader: enough of RFC 9112 to read what the app's writer sends. */
class ResponseReader {
  #buf: Buffer = Buffer.alloc(0);
  #head: { status: number; message: string; headers: Record<string, string | string[]> } | null = null;
  #body: Buffer[] = [];
  #trailers: Record<string, string> = {};
  #remaining = -1;
  #chunked = false;
  #untilClose = false;
  #done = false;
  readonly #isHead: boolean;

  constructor(isHead: boolean) {
    this.#isHead = isHead;
  }

  get done(): boolean {
    return this.#done;
  }

  feed(data: Uint8Array): void {
    this.#buf = this.#buf.length === 0 ? Buffer.from(data) : Buffer.concat([this.#buf, data]);
    this.#run();
  }

  eof(): void {
    if (this.#untilClose && this.#head !== null) {
      this.#body.push(this.#buf);
      this.#buf = Buffer.alloc(0);
      this.#done = true;
    }
  }

  #run(): void {
    while (!this.#done) {
      if (this.#head === null) {
        const end = this.#buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = this.#buf.subarray(0, end).toString('latin1').split('\r\n');
        this.#buf = this.#buf.subarray(end + 4);
        const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? '');
        if (m === null) throw new Error(`inject: invalid status line ${JSON.stringify(lines[0])}`);
        const status = Number(m[1]);
        if (status >= 100 && status < 200) continue; // 100 Continue: the final response follows
        const headers: Record<string, string | string[]> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon).toLowerCase();
          const value = line.slice(colon + 1).trim();
          const seen = headers[name];
          headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
        }
        this.#head = { status, message: m[2] ?? '', headers };
        const te = headers['transfer-encoding'];
        const cl = headers['content-length'];
        if (this.#isHead || status === 204 || status === 304) this.#done = true;
        else if (typeof te === 'string' && /chunked/i.test(te)) this.#chunked = true;
        else if (typeof cl === 'string') this.#remaining = Number(cl);
        else this.#untilClose = true;
        if (this.#remaining === 0) this.#done = true;
        continue;
      }
      if (this.#untilClose) return;
      if (!this.#chunked) {
        const n = Math.min(this.#remaining, this.#buf.length);
        this.#body.push(this.#buf.subarray(0, n));
        this.#buf = this.#buf.subarray(n);
        this.#remaining -= n;
        if (this.#remaining === 0) this.#done = true;
        return;
      }
      if (this.#remaining <= 0) {
        const eol = this.#buf.indexOf('\r\n');
        if (eol < 0) return;
        const size = parseInt(this.#buf.subarray(0, eol).toString('latin1'), 16);
        if (size === 0) {
          const rest = this.#buf.subarray(eol + 2);
          let text = '';
          if (rest.length < 2) return;
          if (rest[0] !== 13 || rest[1] !== 10) {
            const end = rest.indexOf('\r\n\r\n');
            if (end < 0) return;
            text = rest.subarray(0, end).toString('latin1');
          }
          for (const line of text.split('\r\n')) {
            const colon = line.indexOf(':');
            if (colon > 0) this.#trailers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
          }
          this.#done = true;
          return;
        }
        this.#buf = this.#buf.subarray(eol + 2);
        this.#remaining = size;
        continue;
      }
      if (this.#buf.length < this.#remaining + 2) return;
      this.#body.push(this.#buf.subarray(0, this.#remaining));
      this.#buf = this.#buf.subarray(this.#remaining + 2);
      this.#remaining = 0;
    }
  }

  response(): InjectResponse {
    const head = this.#head;
    if (head === null) throw new Error('inject: the connection closed without a response');
    const raw = Buffer.concat(this.#body);
    const text = raw.toString('utf8');
    return {
      statusCode: head.status,
      statusMessage: head.message,
      headers: head.headers,
      rawPayload: raw,
      payload: text,
      body: text,
      trailers: this.#trailers,
      json: <T>() => JSON.parse(text) as T,
    };
  }
}

/** A transport that keeps what is written, for one injected request. */
class MemoryTransport implements Transport {
  readonly #loop: BaseEventLoop;
  readonly #protocol: Protocol;
  readonly #reader: ResponseReader;
  readonly #extra: Partial<ExtraInfo> & Record<string, unknown>;
  readonly #settle: (error: Error | null) => void;
  #closing = false;
  #lost = false;

  constructor(
    loop: BaseEventLoop,
    protocol: Protocol,
    reader: ResponseReader,
    peer: string,
    settle: (error: Error | null) => void,
  ) {
    this.#loop = loop;
    this.#protocol = protocol;
    this.#reader = reader;
    this.#extra = { peername: [peer, 41234], sockname: ['127.0.0.1', 80] };
    this.#settle = settle;
  }

  write(data: Uint8Array): void {
    if (this.#closing) return;
    try {
      this.#reader.feed(data);
    } catch (err) {
      this.#settle(err as Error);
      return;
    }
    if (this.#reader.done) this.#settle(null);
  }

  writelines(list: Iterable<Uint8Array>): void {
    for (const b of list) this.write(b);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#reader.eof();
    this.#lose();
  }

  abort(): void {
    this.close();
  }

  #lose(): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#loop.callSoon(() => {
      this.#protocol.connectionLost(null);
      this.#settle(null);
    });
  }

  writeEof(): void {
    this.#reader.eof();
    this.#settle(null);
  }

  canWriteEof(): boolean {
    return true;
  }

  isClosing(): boolean {
    return this.#closing;
  }

  isReading(): boolean {
    return !this.#closing;
  }

  pauseReading(): void {}

  resumeReading(): void {}

  setWriteBufferLimits(): void {}

  getWriteBufferSize(): number {
    return 0;
  }

  getWriteBufferLimits(): [low: number, high: number] {
    return [0, 0];
  }

  getExtraInfo(name: string, defaultValue?: unknown): unknown {
    return this.#extra[name] ?? defaultValue;
  }

  setProtocol(): void {}

  getProtocol(): BaseProtocol {
    return this.#protocol;
  }
}

/**
 * @internal Runs one request through a protocol made by `factory`, on `loop`, and reads the response.
 */
export function inject(loop: BaseEventLoop, factory: ProtocolFactory, options: InjectOptions): Promise<InjectResponse> {
  const request = encodeRequest(options);
  const reader = new ResponseReader((options.method ?? 'GET').toUpperCase() === 'HEAD');
  return new Promise<InjectResponse>((resolve, reject) => {
    let settled = false;
    let transport: MemoryTransport | null = null;
    const settle = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      if (error !== null) reject(error);
      else {
        try {
          resolve(reader.response());
        } catch (err) {
          reject(err as Error);
        }
      }
      // Done with this connection: let the pipeline release it as a closed one.
      transport?.close();
    };
    loop.callSoon(() => {
      const protocol = factory() as Protocol;
      transport = new MemoryTransport(loop, protocol, reader, options.remoteAddress ?? '127.0.0.1', settle);
      protocol.connectionMade(transport);
      loop.callSoon(() => {
        if (!transport!.isClosing()) protocol.dataReceived(request);
      });
    });
  });
}
