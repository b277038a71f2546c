/**
 * The flagship, what `npm start` runs: an in-memory key-value microservice served by ONE app over four
 * listeners at once, all on the same store:
 *
 * - an HTTP JSON API: `GET /kv` (list keys; `?prefix=&limit=`), `GET /kv/:key`, `PUT /kv/:key` with
 *   `{"value": "…", "ttl"?: seconds}`, `DELETE /kv/:key`; zod checks the key, the body and the query (400 with the
 *   problems), 404 for a missing key; plus the app's `/healthz`, `/readyz` and `/metrics`;
 * - the Redis protocol (RESP2) on a TCP port: PING, ECHO, GET, SET (EX/PX/NX/XX), DEL, INCR, INCRBY, DECR, MGET,
 *   MSET, EXISTS, TTL, PTTL, DBSIZE, FLUSHALL, FLUSHDB, SELECT, CLIENT, CONFIG GET, INFO, COMMAND, QUIT: enough
 *   for `redis-cli` and `redis-benchmark -t get,set`;
 * - HTTP over TLS on another port, with a self-signed certificate made by the `openssl` CLI at first start and
 *   kept in the state directory (without openssl, TLS is skipped with a log line);
 * - an admin daemon on a Unix socket (mode 0600, in the state directory; line protocol): `stats`, `drain`,
 *   `help`, `ping`, `quit`; try `socat - UNIX-CONNECT:<path>`.
 *
 * Ctrl-C or SIGTERM (or `drain` on the admin socket) drains gracefully: readiness goes false, the listeners stop
 * accepting, requests in progress are answered, and the process exits 0.
 *
 * Run: `npm start`, or `node --conditions=loopwork-source --import tsx apps/examples/src/flagship.ts [flags]`.
 * Flags (environment variables in brackets; defaults on 127.0.0.1):
 *   --host H            [LOOPWORK_HOST]        address to bind (default 127.0.0.1)
 *   --port N            [PORT]                 HTTP port (8080); `--port 0` alone puts every TCP listener on a
 *                                              free port
 *   --resp-port N       [LOOPWORK_RESP_PORT]   Redis protocol port (6380)
 *   --tls-port N        [LOOPWORK_TLS_PORT]    HTTPS port (8443)
 *   --no-tls            [LOOPWORK_TLS=0]       no TLS listener
 *   --state-dir DIR     [LOOPWORK_STATE_DIR]   certificate and admin socket ($XDG_STATE_HOME/loopwork, else
 *                                              ~/.local/state/loopwork)
 *   --admin-socket PATH [LOOPWORK_ADMIN_SOCKET] (default <state-dir>/admin.sock)
 *   --log-level L       [LOG_LEVEL]            pino level (info)
 *
 * @module
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CommandError,
  HttpError,
  PIPE,
  PROTOCOL_TLS_SERVER,
  RESP_NULL,
  RESP_OK,
  RESP_PONG,
  RespRaw,
  RespSimpleString,
  SSLContext,
  command,
  createApp,
  createSubprocessExec,
  lines,
  newEventLoop,
  pipeline,
  resp,
  route,
  utf8,
  z,
} from '@loopwork/service';
import type {
  App,
  BaseEventLoop,
  CommandContext,
  CommandHandler,
  CommandRoute,
  MessageRoutes,
  RespCommand,
  RespReply,
  RespValue,
  SSLContext as Ssl,
} from '@loopwork/service';

// ---- configuration -------------------------------------------------------------------------------------------

const USAGE = `usage: flagship [--host H] [--port N] [--resp-port N] [--tls-port N] [--no-tls]
                [--state-dir DIR] [--admin-socket PATH] [--log-level L]`;

interface Config {
  host: string;
  httpPort: number;
  respPort: number;
  tlsPort: number | null;
  stateDir: string;
  adminSocket: string;
  logLevel: string;
}

function port(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`flagship: ${name} must be a port number (0-65535), got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

function configure(argv: string[]): Config {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'resp-port': { type: 'string' },
        'tls-port': { type: 'string' },
        'no-tls': { type: 'boolean', default: false },
        'state-dir': { type: 'string' },
        'admin-socket': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    console.error(`flagship: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const env = process.env;
  const httpPort = port('--port', v.port ?? env.PORT, 8080);
  // `--port 0` alone: every TCP listener on a free port (what tests want).
  const allFree = v.port === '0';
  const respPort = port('--resp-port', v['resp-port'] ?? env.LOOPWORK_RESP_PORT, allFree ? 0 : 6380);
  const tlsOff = v['no-tls'] || env.LOOPWORK_TLS === '0';
  const tlsPort = tlsOff ? null : port('--tls-port', v['tls-port'] ?? env.LOOPWORK_TLS_PORT, allFree ? 0 : 8443);
  const stateHome = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  const stateDir = path.resolve(v['state-dir'] ?? env.LOOPWORK_STATE_DIR ?? path.join(stateHome, 'loopwork'));
  const adminSocket = path.resolve(v['admin-socket'] ?? env.LOOPWORK_ADMIN_SOCKET ?? path.join(stateDir, 'admin.sock'));
  return {
    host: v.host ?? env.LOOPWORK_HOST ?? '127.0.0.1',
    httpPort,
    respPort,
    tlsPort,
    stateDir,
    adminSocket,
    logLevel: v['log-level'] ?? env.LOG_LEVEL ?? 'info',
  };
}

// ---- the store -----------------------------------------------------------------------------------------------

/**
 * The in-memory store every listener shares. Keys are byte strings (each char one byte, latin1), so that RESP's
 * binary keys and HTTP's text keys (ASCII by the route's pattern) are the same keys; values are bytes.
 * Expiry is lazy (a read finds a key past its deadline gone) plus a sweep each second.
 */
class KvStore {
  readonly #data = new Map<string, Buffer>();
  /** Deadlines (loop time, seconds) of the keys that have one. */
  readonly #deadlines = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  get size(): number {
    return this.#data.size;
  }

  get expiring(): number {
    return this.#deadlines.size;
  }

  get(key: string): Buffer | undefined {
    if (this.#deadlines.size > 0) this.#expireIfDue(key);
    return this.#data.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Sets a value; `ttl` in seconds, or undefined to keep none. */
  set(key: string, value: Buffer, ttl?: number): void {
    this.#data.set(key, value);
    if (ttl !== undefined) this.#deadlines.set(key, this.#now() + ttl);
    else if (this.#deadlines.size > 0) this.#deadlines.delete(key);
  }

  /** Replaces a value and keeps its deadline (INCR). */
  replace(key: string, value: Buffer): void {
    this.#data.set(key, value);
  }

  delete(key: string): boolean {
    this.#deadlines.delete(key);
    return this.#data.delete(key);
  }

  /** Seconds left before `key` expires: -1 without a deadline, -2 when missing (as Redis' TTL). */
  ttl(key: string): number {
    if (this.get(key) === undefined) return -2;
    const at = this.#deadlines.get(key);
    return at === undefined ? -1 : Math.max(0, at - this.#now());
  }

  *keys(): IterableIterator<string> {
    for (const key of this.#data.keys()) if (this.get(key) !== undefined) yield key;
  }

  clear(): void {
    this.#data.clear();
    this.#deadlines.clear();
  }

  /** Drops the keys past their deadline. */
  sweep(): void {
    const now = this.#now();
    for (const [key, at] of this.#deadlines) {
      if (at <= now) {
        this.#deadlines.delete(key);
        this.#data.delete(key);
      }
    }
  }

  #expireIfDue(key: string): void {
    const at = this.#deadlines.get(key);
    if (at !== undefined && at <= this.#now()) {
      this.#deadlines.delete(key);
      this.#data.delete(key);
    }
  }
}

/** What the admin `stats` command reports besides the store. */
/** The longest time to live, in seconds: its PTTL in milliseconds is still an exact integer (about 142 millennia). */
const MAX_TTL = Math.floor(Number.MAX_SAFE_INTEGER / 2000);

const counters = { respCommands: 0, respConnections: 0, adminCommands: 0, startedAt: Date.now() };

// ---- the Redis protocol --------------------------------------------------------------------------------------

const OK = new RespRaw(RESP_OK);
const PONG = new RespRaw(RESP_PONG);
const NIL = new RespRaw(RESP_NULL);
const EMPTY_ARRAY: RespReply = [];
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const keyOf = (b: Buffer): string => b.toString('latin1');

function wrongArity(name: string): never {
  throw new CommandError(`wrong number of arguments for '${name.toLowerCase()}' command`);
}

/** Redis' arity rule: `n` exactly when positive, at least `-n` when negative (the name counts). */
function arity(args: RespCommand, n: number, name: string): void {
  if (n >= 0 ? args.length !== n : args.length < -n) wrongArity(name);
}

function integer(text: string): bigint {
  if (!/^-?\d{1,19}$/.test(text)) throw new CommandError('value is not an integer or out of range');
  const n = BigInt(text);
  if (n < INT64_MIN || n > INT64_MAX) throw new CommandError('value is not an integer or out of range');
  return n;
}

function incrBy(store: KvStore, key: Buffer, delta: bigint): bigint {
  const k = keyOf(key);
  const old = store.get(k);
  const n = (old === undefined ? 0n : integer(old.toString('latin1'))) + delta;
  if (n < INT64_MIN || n > INT64_MAX) throw new CommandError('increment or decrement would overflow');
  const bytes = Buffer.from(n.toString(), 'latin1');
  if (old === undefined) store.set(k, bytes);
  else store.replace(k, bytes);
  return n;
}

/** Name, arity, flags, first key, last key, step: what `COMMAND` tells a client of each command. */
const COMMAND_TABLE: [string, number, string[], number, number, number][] = [
  ['ping', -1, ['fast'], 0, 0, 0],
  ['echo', 2, ['fast'], 0, 0, 0],
  ['get', 2, ['readonly', 'fast'], 1, 1, 1],
  ['set', -3, ['write', 'denyoom'], 1, 1, 1],
  ['del', -2, ['write'], 1, -1, 1],
  ['incr', 2, ['write', 'denyoom', 'fast'], 1, 1, 1],
  ['incrby', 3, ['write', 'denyoom', 'fast'], 1, 1, 1],
  ['decr', 2, ['write', 'denyoom', 'fast'], 1, 1, 1],
  ['mget', -2, ['readonly', 'fast'], 1, -1, 1],
  ['mset', -3, ['write', 'denyoom'], 1, -1, 2],
  ['exists', -2, ['readonly', 'fast'], 1, -1, 1],
  ['ttl', 2, ['readonly', 'fast'], 1, 1, 1],
  ['pttl', 2, ['readonly', 'fast'], 1, 1, 1],
  ['dbsize', 1, ['readonly', 'fast'], 0, 0, 0],
  ['flushall', -1, ['write'], 0, 0, 0],
  ['flushdb', -1, ['write'], 0, 0, 0],
  ['select', 2, ['loading', 'fast'], 0, 0, 0],
  ['client', -2, ['admin'], 0, 0, 0],
  ['config', -2, ['admin'], 0, 0, 0],
  ['info', -1, ['loading'], 0, 0, 0],
  ['command', -1, ['loading'], 0, 0, 0],
  ['quit', -1, ['fast'], 0, 0, 0],
];

function commandInfo(name: string): RespValue {
  const row = COMMAND_TABLE.find((r) => r[0] === name.toLowerCase());
  if (row === undefined) return null;
  const [n, a, flags, first, last, step] = row;
  return [n, a, flags.map((f) => new RespSimpleString(f)), first, last, step];
}

type RespRoutes = Record<string, CommandHandler<RespCommand, RespReply> | CommandRoute<RespCommand, RespReply>>;

function respCommands(store: KvStore, app: App): RespRoutes {
  let clientIds = 0;
  return {
    PING: (ctx) => {
      const m = ctx.message;
      if (m.length === 1) return PONG;
      if (m.length === 2) return m[1]!;
      return wrongArity('ping');
    },
    ECHO: (ctx) => (ctx.message.length === 2 ? ctx.message[1]! : wrongArity('echo')),
    GET: (ctx) => {
      const m = ctx.message;
      if (m.length !== 2) wrongArity('get');
      return store.get(keyOf(m[1]!)) ?? NIL;
    },
    SET: (ctx) => {
      const m = ctx.message;
      if (m.length === 3) {
        store.set(keyOf(m[1]!), m[2]!);
        return OK;
      }
      arity(m, -3, 'set');
      let ttl: number | undefined;
      let nx = false;
      let xx = false;
      for (let i = 3; i < m.length; i++) {
        const opt = m[i]!.toString('latin1').toUpperCase();
        if ((opt === 'EX' || opt === 'PX') && ttl === undefined && i + 1 < m.length) {
          const n = Number(integer(m[++i]!.toString('latin1')));
          ttl = opt === 'EX' ? n : n / 1000;
          // Redis refuses a deadline it could not report: here, one whose PTTL is no exact integer.
          if (n <= 0 || ttl > MAX_TTL) throw new CommandError(`invalid expire time in 'set' command`);
        } else if (opt === 'NX' && !xx) nx = true;
        else if (opt === 'XX' && !nx) xx = true;
        else throw new CommandError('syntax error');
      }
      const key = keyOf(m[1]!);
      if ((nx && store.has(key)) || (xx && !store.has(key))) return NIL;
      store.set(key, m[2]!, ttl);
      return OK;
    },
    DEL: (ctx) => {
      arity(ctx.message, -2, 'del');
      let n = 0;
      for (let i = 1; i < ctx.message.length; i++) if (store.delete(keyOf(ctx.message[i]!))) n++;
      return n;
    },
    EXISTS: (ctx) => {
      arity(ctx.message, -2, 'exists');
      let n = 0;
      for (let i = 1; i < ctx.message.length; i++) if (store.has(keyOf(ctx.message[i]!))) n++;
      return n;
    },
    INCR: (ctx) => (ctx.message.length === 2 ? incrBy(store, ctx.message[1]!, 1n) : wrongArity('incr')),
    DECR: (ctx) => (ctx.message.length === 2 ? incrBy(store, ctx.message[1]!, -1n) : wrongArity('decr')),
    // The arguments checked by a zod schema: a refused one gets `-ERR Invalid arguments for 'INCRBY': …`.
    INCRBY: command(z.tuple([z.string(), z.string().regex(/^-?\d{1,19}$/, 'increment must be an integer')]), (ctx) =>
      incrBy(store, ctx.message[1]!, integer(ctx.input[1])),
    ),
    MGET: (ctx) => {
      arity(ctx.message, -2, 'mget');
      const out: RespValue[] = [];
      for (let i = 1; i < ctx.message.length; i++) out.push(store.get(keyOf(ctx.message[i]!)) ?? null);
      return out;
    },
    MSET: (ctx) => {
      const m = ctx.message;
      if (m.length < 3 || m.length % 2 === 0) wrongArity('mset');
      for (let i = 1; i < m.length; i += 2) store.set(keyOf(m[i]!), m[i + 1]!);
      return OK;
    },
    TTL: (ctx) => {
      arity(ctx.message, 2, 'ttl');
      const t = store.ttl(keyOf(ctx.message[1]!));
      return t < 0 ? t : Math.ceil(t);
    },
    PTTL: (ctx) => {
      arity(ctx.message, 2, 'pttl');
      const t = store.ttl(keyOf(ctx.message[1]!));
      return t < 0 ? t : Math.ceil(t * 1000);
    },
    DBSIZE: () => store.size,
    FLUSHALL: () => {
      store.clear();
      return OK;
    },
    FLUSHDB: () => {
      store.clear();
      return OK;
    },
    SELECT: (ctx) => {
      arity(ctx.message, 2, 'select');
      if (ctx.message[1]!.toString('latin1') !== '0') throw new CommandError('ERR DB index is out of range');
      return OK;
    },
    // Per-connection state: the client's id and name live as long as its connection.
    CLIENT: (ctx) => {
      arity(ctx.message, -2, 'client');
      const state = ctx.connection.state;
      const sub = ctx.message[1]!.toString('latin1').toUpperCase();
      if (sub === 'SETNAME' && ctx.message.length === 3) {
        state.name = ctx.message[2]!.toString('utf8');
        return OK;
      }
      if (sub === 'GETNAME') return typeof state.name === 'string' ? state.name : null;
      if (sub === 'ID') return (state.id ??= ++clientIds) as number;
      if (sub === 'SETINFO') return OK;
      throw new CommandError(`unknown subcommand '${sub}'. Try CLIENT HELP.`);
    },
    CONFIG: (ctx) => {
      arity(ctx.message, -2, 'config');
      if (ctx.message[1]!.toString('latin1').toUpperCase() !== 'GET') return OK;
      // What redis-benchmark asks for at start: an in-memory store has no persistence.
      const known: Record<string, string> = { save: '', appendonly: 'no', databases: '1' };
      const out: string[] = [];
      for (const arg of (ctx.input as string[]).slice(1)) {
        const value = known[arg.toLowerCase()];
        if (value !== undefined) out.push(arg.toLowerCase(), value);
      }
      return out;
    },
    INFO: () => {
      const uptime = Math.floor((Date.now() - counters.startedAt) / 1000);
      return [
        '# Server',
        'redis_version:7.0.0-loopwork',
        `process_id:${process.pid}`,
        `uptime_in_seconds:${uptime}`,
        '# Clients',
        `connected_clients:${app.connections.active}`,
        '# Stats',
        `total_commands_processed:${counters.respCommands}`,
        '# Keyspace',
        `db0:keys=${store.size},expires=${store.expiring}`,
        '',
      ].join('\r\n');
    },
    COMMAND: (ctx) => {
      const m = ctx.message;
      if (m.length === 1) return COMMAND_TABLE.map((r) => commandInfo(r[0]));
      const sub = m[1]!.toString('latin1').toUpperCase();
      if (sub === 'COUNT') return COMMAND_TABLE.length;
      // redis-cli 7 asks for DOCS at start for its hints; an empty map is a valid answer.
      if (sub === 'DOCS') return EMPTY_ARRAY;
      if (sub === 'INFO') return (ctx.input as string[]).slice(1).map(commandInfo);
      throw new CommandError(`unknown subcommand '${sub}'. Try COMMAND HELP.`);
    },
    QUIT: (ctx) => {
      ctx.write(OK);
      ctx.close();
    },
  };
}

/** The same routes, each counting its calls in `counters.respCommands` (for `stats` and INFO). */
function counted(routes: RespRoutes): RespRoutes {
  const out: RespRoutes = {};
  for (const [name, r] of Object.entries(routes)) {
    out[name] =
      typeof r === 'function'
        ? (ctx) => {
            counters.respCommands++;
            return r(ctx);
          }
        : {
            schema: r.schema,
            handler: (ctx: CommandContext<RespCommand, RespReply, never>) => {
              counters.respCommands++;
              return r.handler(ctx);
            },
          };
  }
  return out;
}

// ---- the HTTP API --------------------------------------------------------------------------------------------

/** Keys the HTTP API accepts: what fits in a path segment without escaping, as Redis users write keys. */
const Key = z.string().regex(/^[A-Za-z0-9._:@~-]{1,256}$/, 'key must be 1-256 of A-Z a-z 0-9 . _ : @ ~ -');
const KeyParams = z.object({ key: Key });
const PutBody = z.object({ value: z.string(), ttl: z.number().positive().max(MAX_TTL).optional() }).strict();
const ListQuery = z.object({
  prefix: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10000).default(1000),
});

/** A store key as text for JSON: its bytes read as UTF-8. */
const textKey = (k: string): string => Buffer.from(k, 'latin1').toString('utf8');

function httpRoutes(app: App, store: KvStore): void {
  app.get('/kv', { schema: { querystring: ListQuery } }, (req) => {
    const { prefix, limit } = req.query;
    const keys: string[] = [];
    for (const k of store.keys()) {
      const key = textKey(k);
      if (prefix !== undefined && !key.startsWith(prefix)) continue;
      keys.push(key);
    }
    keys.sort();
    return { count: keys.length, keys: keys.slice(0, limit) };
  });

  app.get('/kv/:key', { schema: { params: KeyParams } }, (req) => {
    const value = store.get(req.params.key);
    if (value === undefined) throw new HttpError(404, `no such key: ${req.params.key}`);
    const ttl = store.ttl(req.params.key);
    return { key: req.params.key, value: value.toString('utf8'), ...(ttl >= 0 ? { ttl } : {}) };
  });

  app.put('/kv/:key', { schema: { params: KeyParams, body: PutBody } }, (req, reply) => {
    const { key } = req.params;
    const created = !store.has(key);
    store.set(key, Buffer.from(req.body.value, 'utf8'), req.body.ttl);
    return reply.code(created ? 201 : 200).send({ key, value: req.body.value, created });
  });

  app.delete('/kv/:key', { schema: { params: KeyParams } }, (req, reply) => {
    if (!store.delete(req.params.key)) throw new HttpError(404, `no such key: ${req.params.key}`);
    return reply.code(204).send();
  });
}

// ---- the admin daemon ----------------------------------------------------------------------------------------

const ADMIN_HELP = [
  'commands:',
  '  stats   one JSON line: keys, connections, commands, uptime, memory',
  '  drain   stop accepting, finish what is in progress, exit 0',
  '  ping    PONG',
  '  help    this text',
  '  quit    close this connection',
].join('\n');

function adminCommands(app: App, store: KvStore, drain: (why: string) => void): MessageRoutes<string, string> {
  const routes: Record<string, CommandHandler<string, string>> = {
    stats: () =>
      JSON.stringify({
        keys: store.size,
        expiring: store.expiring,
        connections: app.connections,
        respConnections: counters.respConnections,
        respCommands: counters.respCommands,
        adminCommands: counters.adminCommands,
        ready: app.ready,
        uptime: Math.round((Date.now() - counters.startedAt) / 100) / 10,
        rss: process.memoryUsage.rss(),
        pid: process.pid,
      }),
    drain: (ctx) => {
      ctx.write('OK draining');
      drain('admin drain');
    },
    ping: () => 'PONG',
    help: () => ADMIN_HELP,
    quit: (ctx) => {
      ctx.write('BYE');
      ctx.close();
    },
  };
  // Each counts its calls in `counters.adminCommands` (for `stats`).
  const out: Record<string, CommandHandler<string, string>> = {};
  for (const [name, handler] of Object.entries(routes)) {
    out[name] = (ctx) => {
      counters.adminCommands++;
      return handler(ctx);
    };
  }
  return out;
}

// ---- TLS -----------------------------------------------------------------------------------------------------

/**
 * The server's TLS context, from `cert.pem`/`key.pem` in the state directory; made with the openssl CLI (a
 * self-signed certificate for localhost, 127.0.0.1 and ::1) when they are not there yet. Returns null, with a
 * log line saying why, when that is not possible.
 */
async function tlsContext(app: App, dir: string): Promise<Ssl | null> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  if (!fs.existsSync(cert) || !fs.existsSync(key)) {
    let proc;
    try {
      proc = await createSubprocessExec(
        'openssl',
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '825',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
        '-keyout',
        key,
        '-out',
        cert,
        { stdin: PIPE, stdout: PIPE, stderr: PIPE },
      );
    } catch (e) {
      if ((e as { code?: unknown }).code === 'ENOENT') {
        app.log.warn('openssl not found: TLS listener skipped (install openssl, or pass --no-tls)');
      } else {
        app.log.warn({ err: e }, 'cannot run openssl: TLS listener skipped');
      }
      return null;
    }
    const [, stderr] = await proc.communicate();
    if (proc.returncode !== 0) {
      app.log.warn({ stderr: stderr?.toString() }, `openssl failed (exit ${proc.returncode}): TLS listener skipped`);
      return null;
    }
    fs.chmodSync(key, 0o600);
    app.log.info({ cert }, 'made a self-signed certificate for localhost');
  }
  const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
  ctx.loadCertChain(cert, key);
  return ctx;
}

// ---- main ----------------------------------------------------------------------------------------------------

async function main(loop: BaseEventLoop, config: Config): Promise<void> {
  // A key is up to 256 characters, each of them up to 3 in the path when percent-encoded (`%40` for `@`).
  const app = createApp({ logger: { level: config.logLevel, name: 'flagship' }, router: { maxParamLength: 3 * 256 } });
  const store = new KvStore(() => loop.time());
  httpRoutes(app, store);

  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.dirname(config.adminSocket), { recursive: true, mode: 0o700 });
  const ssl = config.tlsPort === null ? null : await tlsContext(app, config.stateDir);

  let done!: () => void;
  const closed = new Promise<void>((resolve) => (done = resolve));
  const drain = (why: string): void => {
    app.log.info(`${why}: draining`);
    // After this callback, so that the reply to `drain` is on its way first.
    loop.callSoon(
      () =>
        void app.close().then(({ clean }) => {
          if (!clean) process.exitCode = 1;
          done();
        }),
    );
  };

  const respFactory = pipeline(
    resp(),
    route(counted(respCommands(store, app)), {
      onConnect: () => counters.respConnections++,
      onDisconnect: () => counters.respConnections--,
    }),
  );
  const adminFactory = pipeline(
    lines({ maxLength: 4096 }),
    utf8({ onError: () => 'ERR not UTF-8' }),
    route(adminCommands(app, store, drain), { format: 'text' }),
  );

  try {
    await app.listen({
      http: { host: config.host, port: config.httpPort },
      tcp: { host: config.host, port: config.respPort, protocol: respFactory },
      ...(ssl === null ? {} : { tls: { host: config.host, port: config.tlsPort!, ssl } }),
      unix: { path: config.adminSocket, mode: 0o600, protocol: adminFactory },
    });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw e;
    console.error(
      `flagship: ${(e as Error).message}\n` +
        'choose other ports with --port, --resp-port and --tls-port (or --port 0 for free ones)',
    );
    process.exitCode = 1;
    return;
  }

  // Expired keys are dropped each second, on the loop's own timer.
  let sweep = loop.callLater(1, function tick() {
    store.sweep();
    sweep = loop.callLater(1, tick);
  });

  const hint: Record<string, (url: string) => string> = {
    http: (url) => `curl ${url}/kv`,
    tls: (url) => `curl -k ${url}/kv`,
    tcp: (url) => `redis-cli -p ${new URL(url).port}`,
    unix: (url) => `socat - UNIX-CONNECT:${url.slice('unix:'.length)}`,
  };
  const label: Record<string, string> = { http: 'http', tls: 'https', tcp: 'resp', unix: 'admin' };
  const shown = app.addresses().map((a) => `  ${label[a.kind]!.padEnd(6)} ${a.url.padEnd(34)} ${hint[a.kind]!(a.url)}`);
  console.log(`loopwork kv service (pid ${process.pid}), listening on:\n${shown.join('\n')}\nCtrl-C to stop`);

  await closed;
  sweep.cancel();
}

const config = configure(process.argv.slice(2));
const loop = newEventLoop();
try {
  await loop.runUntilComplete(() => main(loop, config));
} finally {
  loop.close();
}
