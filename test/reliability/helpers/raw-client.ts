/**
 * A raw TCP (or TLS) client for the reliability tests: it sends exactly the bytes it is given and reads HTTP
 * responses (or anything else) as they come, so that a test sees what the server really sent and whether it
 * closed the connection.
 */
import net from 'node:net';
import type { Cleanup } from './measure.js';

/** A response read off a raw socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  rawHead: string;
  body: Buffer;
}

/** Connects to `port` on loopback; the socket is destroyed after the test. */
export function connect(port: number, t?: Cleanup): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
    t?.after(() => s.destroy());
  });
}

/**
 * One connection: bytes in, responses out. `ended` turns true once the server ended or closed its side;
 * nothing is ever thrown for a reset (the tests look at `ended` and at what was received).
 */
export class RawClient {
  readonly socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #ended = false;
  #error: string | null = null;
  #waiters: (() => void)[] = [];

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.#error = e.code ?? e.message;
    });
    const end = (): void => {
      this.#ended = true;
      this.#wake();
    };
    socket.on('end', end);
    socket.on('close', end);
  }

  static async connect(port: number, t?: Cleanup): Promise<RawClient> {
    return new RawClient(await connect(port, t));
  }

  /** The socket error seen (its code), if any. */
  get error(): string | null {
    return this.#error;
  }

  /** True once the server ended its side (or the connection is gone). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes received and not consumed by `response()`. */
  get pending(): Buffer {
    return this.#buf;
  }

  /** Returns the bytes received so far and forgets them. */
  consume(): Buffer {
    const b = this.#buf;
    this.#buf = Buffer.alloc(0);
    return b;
  }

  write(data: string | Uint8Array): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Waits for more bytes (or the end); false when the connection has ended. */
  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return true;
  }

  /** Resolves true once the server ended the connection, false after `seconds` (the socket stays open). */
  endedWithin(seconds: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), seconds * 1000);
      const check = (): void => {
        if (this.#ended) {
          clearTimeout(timer);
          resolve(true);
        } else this.#waiters.push(check);
      };
      check();
    });
  }

  /** Waits until at least `n` bytes are buffered, or the end; returns whether they are. */
  async atLeast(n: number): Promise<boolean> {
    while (this.#buf.length < n) if (!(await this.#more())) return false;
    return true;
  }

  /** Waits until `text` was received; false if the connection ended first. */
  async waitFor(text: string): Promise<boolean> {
    while (!this.#buf.includes(text)) if (!(await this.#more())) return false;
    return true;
  }

  /** Reads one HTTP response (Content-Length, chunked, or to the end); throws if the connection ends first. */
  async response(options: { head?: boolean } = {}): Promise<RawResponse> {
    let end: number;
    while ((end = this.#buf.indexOf('\r\n\r\n')) < 0) {
      if (!(await this.#more())) throw new Error(`connection ended; got ${JSON.stringify(this.#buf.toString())}`);
    }
    const rawHead = this.#buf.subarray(0, end).toString('latin1');
    this.#buf = this.#buf.subarray(end + 4);
    const [statusLine, ...lines] = rawHead.split('\r\n');
    const status = Number(statusLine!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const c = line.indexOf(':');
      headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
    }
    let body: Buffer = Buffer.alloc(0);
    if (options.head === true || status < 200 || status === 204 || status === 304) {
      // no body
    } else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        let eol: number;
        while ((eol = this.#buf.indexOf('\r\n')) < 0) if (!(await this.#more())) throw new Error('cut in chunk size');
        const size = parseInt(this.#buf.subarray(0, eol).toString('latin1'), 16);
        if (size === 0) {
          let t: number;
          while ((t = this.#buf.indexOf('\r\n\r\n', eol)) < 0 && !this.#buf.subarray(eol + 2, eol + 4).equals(CRLF)) {
            if (!(await this.#more())) throw new Error('cut in trailers');
          }
          this.#buf = this.#buf.subarray(t >= 0 ? t + 4 : eol + 4);
          break;
        }
        while (this.#buf.length < eol + 2 + size + 2) if (!(await this.#more())) throw new Error('cut in chunk');
        parts.push(this.#buf.subarray(eol + 2, eol + 2 + size));
        this.#buf = this.#buf.subarray(eol + 2 + size + 2);
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      while (this.#buf.length < n) if (!(await this.#more())) throw new Error('cut in body');
      body = this.#buf.subarray(0, n);
      this.#buf = this.#buf.subarray(n);
    } else {
      while (await this.#more());
      body = this.#buf;
      this.#buf = Buffer.alloc(0);
    }
    return { status, headers, rawHead, body };
  }

  /** Every response in what was received until the end of the connection (a partial last one is dropped). */
  async allResponses(): Promise<RawResponse[]> {
    const out: RawResponse[] = [];
    for (;;) {
      try {
        out.push(await this.response());
      } catch {
        return out;
      }
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Sends an RST instead of a FIN (SO_LINGER 0), as a crashed or hostile peer does. */
  reset(): void {
    this.socket.resetAndDestroy();
  }
}

const CRLF = Buffer.from('\r\n');

/**
 * Sends `data` on a new connection, half-closes, and returns everything received until the server closes (or
 * `seconds` pass: then `closed` is false and the socket is destroyed).
 */
export async function exchange(
  port: number,
  data: string | Uint8Array,
  seconds = 5,
  options: { halfClose?: boolean } = {},
): Promise<{ received: Buffer; closed: boolean; ms: number }> {
  const c = await RawClient.connect(port);
  const t0 = performance.now();
  c.write(data);
  if (options.halfClose ?? true) c.socket.end();
  const closed = await c.endedWithin(seconds);
  const ms = performance.now() - t0;
  c.destroy();
  return { received: c.pending, closed, ms };
}

/** Status codes of every HTTP response head in `bytes` (`HTTP/1.1 400 …`), in order. */
export function statuses(bytes: Buffer): number[] {
  const out: number[] = [];
  const re = /HTTP\/1\.[01] (\d{3}) /g;
  const text = bytes.toString('latin1');
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push(Number(m[1]));
  return out;
}

/** Resolves with the connect error code (`ECONNREFUSED`), or `'connected'`. */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}
