/**
 * Name resolution as asyncio gives it (`loop.getaddrinfo`, `loop.getnameinfo`, which are Python's
 * `socket.getaddrinfo`/`socket.getnameinfo` run in an executor), on `node:dns`, with the socket constants of
 * Linux.
 *
 * The system resolver is asked only for names: numeric hosts and ports, the host `null`, the checks of flags,
 * families, socket types and protocols, and the service names (from `/etc/services`) are done here, in the way
 * glibc's `getaddrinfo` does them, so that the results and the errors are the ones Python gives on Linux.
 *
 * @module
 */
import { lookup as dnsLookup, lookupService as dnsLookupService, ADDRCONFIG, ALL, V4MAPPED } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import { readFile, readdir } from 'node:fs/promises';
import { SocketAddress, isIPv6 } from 'node:net';
import { inspect } from 'node:util';
import type { BaseEventLoop } from './base-event-loop.js';
import { extendEventLoop } from './base-event-loop.js';
import { InvalidArgTypeError, OSError, ValueError, makeError } from './errors.js';
import { checkOptions } from './options.js';

// ---- constants (Linux's values) ---------------------------------------------------------------------------

/** Address family: unspecified (any). */
export const AF_UNSPEC = 0;
/** Address family: Unix domain sockets. */
export const AF_UNIX = 1;
/** Address family: IPv4. */
export const AF_INET = 2;
/** Address family: IPv6. */
export const AF_INET6 = 10;
/** Socket type: a byte stream (TCP). */
export const SOCK_STREAM = 1;
/** Socket type: datagrams (UDP). */
export const SOCK_DGRAM = 2;
/** Socket type: raw. */
export const SOCK_RAW = 3;
/** Protocol: TCP. */
export const IPPROTO_TCP = 6;
/** Protocol: UDP. */
export const IPPROTO_UDP = 17;
/** `SOCK_SEQPACKET` (exported by the socket module) and SCTP's protocol number, for glibc's table below. */
const SOCK_SEQPACKET = 5;
const IPPROTO_SCTP = 132;
/** `getaddrinfo` flag: the host `null` means the wildcard address (for binding), not the loopback. */
export const AI_PASSIVE = 1;
/** `getaddrinfo` flag: put the canonical name into the first result. */
export const AI_CANONNAME = 2;
/** `getaddrinfo` flag: the host must be a numeric address; no name is resolved. */
export const AI_NUMERICHOST = 4;
/** `getaddrinfo` flag: with `AF_INET6`, give IPv4 addresses as IPv4-mapped IPv6 addresses. */
export const AI_V4MAPPED = 8;
/** `getaddrinfo` flag: with `AI_V4MAPPED`, give both IPv6 and IPv4-mapped addresses. */
export const AI_ALL = 16;
/** `getaddrinfo` flag: only the families configured on this host. */
export const AI_ADDRCONFIG = 32;
/** `getaddrinfo` flag: the port must be numeric; no service name is looked up. */
export const AI_NUMERICSERV = 1024;
/** `getnameinfo` flag: give the numeric host. */
export const NI_NUMERICHOST = 1;
/** `getnameinfo` flag: give the numeric port. */
export const NI_NUMERICSERV = 2;
/** `getnameinfo` flag: fail when the host has no name. */
export const NI_NAMEREQD = 8;
/** `getnameinfo` flag: the service is a datagram (UDP) one. */
export const NI_DGRAM = 16;

/** `getaddrinfo` error: bad value for `flags`. */
export const EAI_BADFLAGS = -1;
/** `getaddrinfo` error: the name or service is not known. */
export const EAI_NONAME = -2;
/** `getaddrinfo` error: temporary failure in name resolution. */
export const EAI_AGAIN = -3;
/** `getaddrinfo` error: non-recoverable failure in name resolution. */
export const EAI_FAIL = -4;
/** `getaddrinfo` error: the family is not supported. */
export const EAI_FAMILY = -6;
/** `getaddrinfo` error: the socket type is not supported. */
export const EAI_SOCKTYPE = -7;
/** `getaddrinfo` error: the service is not supported for the socket type. */
export const EAI_SERVICE = -8;
/** `getaddrinfo` error: the host has no address in the requested family. */
export const EAI_ADDRFAMILY = -9;
/** `getaddrinfo` error: out of memory. */
export const EAI_MEMORY = -10;
/** `getaddrinfo` error: a system error. */
export const EAI_SYSTEM = -11;

const EAI = {
  EAI_BADFLAGS: [EAI_BADFLAGS, 'Bad value for ai_flags'],
  EAI_NONAME: [EAI_NONAME, 'Name or service not known'],
  EAI_AGAIN: [EAI_AGAIN, 'Temporary failure in name resolution'],
  EAI_FAIL: [EAI_FAIL, 'Non-recoverable failure in name resolution'],
  EAI_FAMILY: [EAI_FAMILY, 'ai_family not supported'],
  EAI_SOCKTYPE: [EAI_SOCKTYPE, 'ai_socktype not supported'],
  EAI_SERVICE: [EAI_SERVICE, 'Servname not supported for ai_socktype'],
  EAI_ADDRFAMILY: [EAI_ADDRFAMILY, 'Address family for hostname not supported'],
  EAI_MEMORY: [EAI_MEMORY, 'Memory allocation failure'],
  EAI_SYSTEM: [EAI_SYSTEM, 'System error'],
} as const satisfies Record<string, readonly [number, string]>;

/** The name of a `getaddrinfo`/`getnameinfo` error, e.g. `'EAI_NONAME'`. */
export type EaiCode = keyof typeof EAI;

/**
 * A name resolution error (Python's `socket.gaierror`): `code` is the error's name (`'EAI_NONAME'`, …), `errno`
 * its negative number as on Linux (`-2`), `strerror` glibc's text; the message is Python's
 * (`[Errno -2] Name or service not known`). When `node:dns` reported it, its error is the `cause`.
 */
export class GaiError extends makeError<[code: EaiCode, options?: ErrorOptions]>(
  'ERR_LOOPWORK_GAIERROR',
  'gaierror',
  Error,
  (code) => `[Errno ${EAI[code][0]}] ${EAI[code][1]}`,
) {
  /** The negative error number (`EAI_NONAME` is -2). */
  readonly errno: number;
  /** glibc's text for the error. */
  readonly strerror: string;
  /** `'getaddrinfo'` or `'getnameinfo'`. */
  syscall: 'getaddrinfo' | 'getnameinfo' = 'getaddrinfo';
  /** The host that was looked up, when there was one. */
  hostname: string | undefined = undefined;

  constructor(code: EaiCode, options?: ErrorOptions) {
    super(code, ...(options === undefined ? [] : [options]));
    Object.defineProperty(this, 'code', { value: code, enumerable: true, configurable: true });
    this.errno = EAI[code][0];
    this.strerror = EAI[code][1];
  }
}

function gaiError(
  code: EaiCode,
  syscall: 'getaddrinfo' | 'getnameinfo',
  host?: string | null,
  cause?: unknown,
): GaiError {
  const error = new GaiError(code, ...(cause === undefined ? [] : [{ cause }]));
  error.syscall = syscall;
  if (host !== undefined && host !== null) error.hostname = host;
  return error;
}

/**
 * @internal Maps an error of `node:dns` (also one a Node API that looks names up reports, such as `dgram`'s
 * `send`) to the `gaierror` Python would raise; any other error is returned as it is.
 */
export function gaiErrorFrom(error: unknown, syscall: 'getaddrinfo' | 'getnameinfo', host: string): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOTFOUND': // libuv's EAI_NONAME and EAI_NODATA
    case 'ENODATA':
      return gaiError('EAI_NONAME', syscall, host, error);
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_FAMILY':
    case 'EAI_SERVICE':
    case 'EAI_SOCKTYPE':
    case 'EAI_BADFLAGS':
    case 'EAI_MEMORY':
    case 'EAI_ADDRFAMILY':
      return gaiError(code, syscall, host, error);
    case 'ESERVFAIL':
    case 'EREFUSED':
      return gaiError('EAI_FAIL', syscall, host, error);
    default:
      return error;
  }
}

// ---- types --------------------------------------------------------------------------------------------------

/** An IP socket address as Python gives it: `[host, port]` (IPv4) or `[host, port, flowinfo, scopeId]` (IPv6). */
export type InetAddress =
  [host: string, port: number] | [host: string, port: number, flowinfo: number, scopeId: number];

/** One result of `getaddrinfo`: `[family, type, proto, canonname, sockaddr]`, as in Python. */
export type AddrInfo = [family: number, type: number, proto: number, canonname: string, sockaddr: InetAddress];

/** The keys of {@link GetaddrinfoOptions}. */
const GETADDRINFO_KEYS = ['family', 'type', 'proto', 'flags'];

/** Options of `getaddrinfo` (Python's keyword arguments). */
export interface GetaddrinfoOptions {
  /** `AF_UNSPEC` (default), `AF_INET` or `AF_INET6`. */
  family?: number;
  /** `0` (default: every type), `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW` or `SOCK_SEQPACKET` (SCTP). */
  type?: number;
  /** `0` (default), `IPPROTO_TCP`, `IPPROTO_UDP`, 132 (SCTP), or (with `SOCK_RAW`) any protocol number. */
  proto?: number;
  /** A bitwise or of `AI_*` flags. */
  flags?: number;
}

// ---- services ----------------------------------------------------------------------------------------------

interface ServiceTable {
  /** `name/proto` (names and aliases) → port. */
  readonly ports: Map<string, number>;
  /** `port/proto` → the first name. */
  readonly names: Map<string, string>;
}

/** Used when `/etc/services` cannot be read: the well-known services of netbase's file. */
const FALLBACK_SERVICES = `
ftp 21/tcp
ssh 22/tcp
telnet 23/tcp
smtp 25/tcp mail
domain 53/tcp
domain 53/udp
http 80/tcp www
pop3 110/tcp pop-3
ntp 123/udp
imap2 143/tcp imap
snmp 161/udp
https 443/tcp
https 443/udp
submissions 465/tcp ssmtp smtps urd
syslog 514/udp
submission 587/tcp
imaps 993/tcp
pop3s 995/tcp
`;

let services: Promise<ServiceTable> | null = null;

function parseServices(text: string): ServiceTable {
  const ports = new Map<string, number>();
  const names = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [name, portProto, ...aliases] = line.split(/\s+/);
    const m = /^(\d+)\/(\w+)$/.exec(portProto ?? '');
    if (name === undefined || m === null) continue;
    const port = Number(m[1]);
    const proto = m[2] as string;
    for (const n of [name, ...aliases]) if (!ports.has(`${n}/${proto}`)) ports.set(`${n}/${proto}`, port);
    if (!names.has(`${port}/${proto}`)) names.set(`${port}/${proto}`, name);
  }
  return { ports, names };
}

function serviceTable(): Promise<ServiceTable> {
  services ??= readFile('/etc/services', 'latin1').then(parseServices, () => parseServices(FALLBACK_SERVICES));
  return services;
}

// ---- socket types and protocols (glibc's gaih_inet_typeproto) ----------------------------------------------

interface TypeProto {
  readonly type: number;
  readonly proto: number;
  readonly name: string;
  /** Any protocol number goes with this type (raw sockets). */
  readonly anyProto: boolean;
  /** No service (port) may be given with this type. */
  readonly noService: boolean;
  /** Only in the answer to a query for this type or protocol. */
  readonly asked?: boolean;
}

/** glibc's table of socket types and protocols, in its order (SCTP only when the query asks for it). */
const TYPE_PROTOS: readonly TypeProto[] = [
  { type: SOCK_STREAM, proto: IPPROTO_TCP, name: 'tcp', anyProto: false, noService: false },
  { type: SOCK_DGRAM, proto: IPPROTO_UDP, name: 'udp', anyProto: false, noService: false },
  { type: SOCK_STREAM, proto: IPPROTO_SCTP, name: 'sctp', anyProto: false, noService: false, asked: true },
  { type: SOCK_SEQPACKET, proto: IPPROTO_SCTP, name: 'sctp', anyProto: false, noService: false, asked: true },
  { type: SOCK_RAW, proto: 0, name: 'raw', anyProto: true, noService: true },
];

/** The flags glibc takes: the standard ones, and its IDN flags `AI_IDN`…`AI_IDN_USE_STD3_ASCII_RULES` (0x40-0x200). */
const KNOWN_AI_FLAGS =
  AI_PASSIVE | AI_CANONNAME | AI_NUMERICHOST | AI_V4MAPPED | AI_ALL | AI_ADDRCONFIG | AI_NUMERICSERV | 0x3c0;

/** `[type, proto, port]` for each socket type the query gives, in glibc's order. */
async function resolveService(
  port: number | string | null,
  type: number,
  proto: number,
  flags: number,
): Promise<[number, number, number][]> {
  let numeric: number | null = null;
  let name: string | null = null;
  if (typeof port === 'number') {
    // glibc reads the decimal text Python makes of the number and keeps its low 16 bits.
    numeric = port < 0 ? null : port % 65536;
    if (port < 0) name = String(port);
  } else if (port === '') {
    numeric = 0;
  } else if (port !== null) {
    // strtoul's form: leading white space and a plus sign are allowed (a minus sign is not, for glibc).
    const digits = /^[ \t\n\v\f\r]*\+?(\d+)$/.exec(port);
    if (digits !== null) numeric = Number(BigInt(digits[1] as string) % 65536n);
    else name = port;
  }
  const hasService = numeric !== null || name !== null;
  if (name !== null && (flags & AI_NUMERICSERV) !== 0) throw gaiError('EAI_NONAME', 'getaddrinfo');
  const table = name === null ? null : await serviceTable();
  const portFor = (tp: TypeProto): number | null =>
    numeric !== null ? numeric : name === null ? 0 : (table?.ports.get(`${name}/${tp.name}`) ?? null);

  if (type !== 0 || proto !== 0) {
    const tp = TYPE_PROTOS.find(
      (t) => (type === 0 || type === t.type) && (proto === 0 || t.anyProto || proto === t.proto),
    );
    if (tp === undefined) throw gaiError(type !== 0 ? 'EAI_SOCKTYPE' : 'EAI_SERVICE', 'getaddrinfo');
    if (hasService && tp.noService) throw gaiError('EAI_SERVICE', 'getaddrinfo');
    const p = portFor(tp);
    if (p === null) throw gaiError('EAI_SERVICE', 'getaddrinfo');
    return [[tp.type, tp.anyProto ? proto : tp.proto, p]];
  }
  const out: [number, number, number][] = [];
  for (const tp of TYPE_PROTOS) {
    if ((name !== null && tp.noService) || tp.asked === true) continue;
    const p = portFor(tp);
    if (p !== null) out.push([tp.type, tp.proto, p]);
  }
  if (out.length === 0) throw gaiError('EAI_SERVICE', 'getaddrinfo');
  return out;
}

// ---- numeric addresses --------------------------------------------------------------------------------------

/** Parses an IPv4 address as `inet_aton` does (`127.1`, `0x7f.1`, octal parts) into dotted-quad text, or null. */
function parseIPv4(text: string): string | null {
  const parts = text.split('.');
  if (parts.length > 4) return null;
  const values: number[] = [];
  for (const part of parts) {
    let v: number;
    if (/^0x[0-9a-f]+$/i.test(part)) v = parseInt(part.slice(2), 16);
    else if (/^0[0-7]*$/.test(part)) v = parseInt(part, 8);
    else if (/^[1-9]\d*$/.test(part)) v = Number(part);
    else return null;
    values.push(v);
  }
  const last = values.pop() as number;
  if (values.some((v) => v > 255) || last >= 2 ** (8 * (4 - values.length))) return null;
  const bytes = [...values];
  for (let i = 3 - values.length; i >= 0; i--) bytes.push(Math.floor(last / 2 ** (8 * i)) % 256);
  return bytes.join('.');
}

/** The first 16 bits of a canonical IPv6 address (to tell link-local addresses). */
function firstWord(canonical: string): number {
  return canonical.startsWith('::') ? 0 : parseInt(canonical.split(':')[0] as string, 16);
}

function isLinkLocal(canonical: string): boolean {
  const w = firstWord(canonical);
  return (w & 0xffc0) === 0xfe80 || (w & 0xff0f) === 0xff02;
}

/** The IPv4 address of an IPv4-mapped IPv6 address in canonical form (`::ffff:127.0.0.1`), or null. */
function mappedIPv4(canonical: string): string | null {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(canonical);
  return m === null ? null : (m[1] as string);
}

/** The index of a network interface (Linux: from sysfs), or null. */
async function interfaceIndex(name: string): Promise<number | null> {
  if (!/^[\w.:-]+$/.test(name)) return null;
  try {
    const text = await readFile(`/sys/class/net/${name}/ifindex`, 'utf8');
    const n = Number(text.trim());
    return Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
}

/** The name of the network interface with this index (Linux: from sysfs), or null. */
async function interfaceName(index: number): Promise<string | null> {
  try {
    for (const name of await readdir('/sys/class/net')) {
      if ((await interfaceIndex(name)) === index) return name;
    }
  } catch {
    // not Linux: the numeric scope is given
  }
  return null;
}

interface NumericHost {
  family: typeof AF_INET | typeof AF_INET6;
  address: string;
  scopeId: number;
}

/**
 * Parses a numeric host (IPv4 in `inet_aton`'s forms, or IPv6 with an optional `%scope`), or returns null when it
 * is not numeric.
 *
 * @throws GaiError (EAI_NONAME) for an IPv6 address whose scope names no interface.
 */
async function parseNumericHost(host: string, syscall: 'getaddrinfo' | 'getnameinfo'): Promise<NumericHost | null> {
  const v4 = parseIPv4(host);
  if (v4 !== null) return { family: AF_INET, address: v4, scopeId: 0 };
  const pct = host.indexOf('%');
  const bare = pct === -1 ? host : host.slice(0, pct);
  if (!isIPv6(bare) || bare.includes('%')) return null;
  const address = new SocketAddress({ address: bare, family: 'ipv6' }).address;
  if (pct === -1) return { family: AF_INET6, address, scopeId: 0 };
  const scope = host.slice(pct + 1);
  let scopeId: number | null = null;
  if (/^\d+$/.test(scope) && Number(scope) <= 0xffffffff) scopeId = Number(scope);
  else if (isLinkLocal(address)) scopeId = await interfaceIndex(scope);
  if (scopeId === null) throw gaiError('EAI_NONAME', syscall, host);
  return { family: AF_INET6, address, scopeId };
}

// ---- getaddrinfo -------------------------------------------------------------------------------------------

function checkInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new InvalidArgTypeError(`${what} must be an integer, got ${inspect(value, { depth: 0 })}`);
  }
  return value;
}

function lookupAll(host: string, family: number, flags: number): Promise<LookupAddress[]> {
  let hints = 0;
  if ((flags & AI_ADDRCONFIG) !== 0) hints |= ADDRCONFIG;
  if ((flags & AI_V4MAPPED) !== 0 && family === AF_INET6) {
    hints |= V4MAPPED;
    if ((flags & AI_ALL) !== 0) hints |= ALL;
  }
  const nodeFamily = family === AF_INET ? 4 : family === AF_INET6 ? 6 : 0;
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true, family: nodeFamily, hints, verbatim: true }, (error, addresses) => {
      if (error) reject(gaiErrorFrom(error, 'getaddrinfo', host));
      else resolve(addresses);
    });
  });
}

/**
 * Resolves `host` and `port` into the addresses to create a socket for (Python's `socket.getaddrinfo`, asyncio's
 * `loop.getaddrinfo`): one `[family, type, proto, canonname, sockaddr]` per address and socket type, in the
 * resolver's order, as Python gives them on Linux.
 *
 * - `host`: a name (resolved by the system resolver through `node:dns`), a numeric IPv4 (also `inet_aton`'s
 *   short forms such as `127.1`) or IPv6 address (with an optional `%scope`), or `null`: the loopback addresses
 *   (`::1` then `127.0.0.1`), or with `AI_PASSIVE` the wildcard ones (`0.0.0.0` then `::`).
 * - `port`: a number, a numeric string, a service name from `/etc/services` (`'http'` is 80 over TCP only), or
 *   `null`. Without `type`, each address comes once per socket type (`SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW`)
 *   that has the service.
 * - `canonname` is set on the first result with `AI_CANONNAME` (the host as given: `node:dns` does not report a
 *   canonical name), else `''`.
 *
 * @param host - the host, or `null`.
 * @param port - the port or service, or `null`.
 * @param options - `family`, `type`, `proto`, `flags` (Python's keyword arguments; all default to 0).
 * @returns the list of 5-tuples.
 * @throws GaiError (rejects) with Python's code: `EAI_NONAME` for an unknown name or a name with
 * `AI_NUMERICHOST`, `EAI_SERVICE` for an unknown service, `EAI_ADDRFAMILY` for a numeric host of another family,
 * `EAI_FAMILY`, `EAI_SOCKTYPE`, `EAI_BADFLAGS`; TypeError for arguments of the wrong type.
 */
export async function getaddrinfo(
  host: string | null,
  port: number | string | null,
  options: GetaddrinfoOptions = {},
): Promise<AddrInfo[]> {
  if (host !== null && typeof host !== 'string') {
    throw new InvalidArgTypeError(
      `getaddrinfo() argument 1 must be string or None, got ${inspect(host, { depth: 0 })}`,
    );
  }
  if (port !== null && typeof port !== 'string' && (typeof port !== 'number' || !Number.isInteger(port))) {
    throw new InvalidArgTypeError(`Int or String expected for the port, got ${inspect(port, { depth: 0 })}`);
  }
  checkOptions(options, GETADDRINFO_KEYS, 'getaddrinfo');
  const family = checkInt(options.family ?? 0, 'family');
  const type = checkInt(options.type ?? 0, 'type');
  const proto = checkInt(options.proto ?? 0, 'proto');
  const flags = checkInt(options.flags ?? 0, 'flags');

  // glibc's order of checks.
  if (host === null && port === null) throw gaiError('EAI_NONAME', 'getaddrinfo');
  if ((flags & ~KNOWN_AI_FLAGS) !== 0) throw gaiError('EAI_BADFLAGS', 'getaddrinfo', host);
  if ((flags & AI_CANONNAME) !== 0 && host === null) throw gaiError('EAI_BADFLAGS', 'getaddrinfo');
  if (family !== AF_UNSPEC && family !== AF_INET && family !== AF_INET6) {
    throw gaiError('EAI_FAMILY', 'getaddrinfo', host);
  }
  const kinds = await resolveService(port, type, proto, flags);

  let addresses: NumericHost[];
  if (host === null) {
    const passive = (flags & AI_PASSIVE) !== 0;
    const all: NumericHost[] = passive
      ? [
          { family: AF_INET, address: '0.0.0.0', scopeId: 0 },
          { family: AF_INET6, address: '::', scopeId: 0 },
        ]
      : [
          { family: AF_INET6, address: '::1', scopeId: 0 },
          { family: AF_INET, address: '127.0.0.1', scopeId: 0 },
        ];
    addresses = all.filter((a) => family === AF_UNSPEC || a.family === family);
  } else if (host === '') {
    throw gaiError('EAI_NONAME', 'getaddrinfo', host);
  } else {
    const numeric = await parseNumericHost(host, 'getaddrinfo');
    if (numeric !== null) {
      if (family === AF_INET6 && numeric.family === AF_INET) {
        if ((flags & AI_V4MAPPED) === 0) throw gaiError('EAI_ADDRFAMILY', 'getaddrinfo', host);
        numeric.family = AF_INET6;
        numeric.address = `::ffff:${numeric.address}`;
      } else if (family === AF_INET && numeric.family === AF_INET6) {
        // glibc gives an IPv4-mapped address (`::ffff:a.b.c.d`) asked for as IPv4 as the IPv4 address.
        const v4 = mappedIPv4(numeric.address);
        if (v4 === null) throw gaiError('EAI_ADDRFAMILY', 'getaddrinfo', host);
        numeric.family = AF_INET;
        numeric.address = v4;
        numeric.scopeId = 0;
      }
      addresses = [numeric];
    } else if ((flags & AI_NUMERICHOST) !== 0) {
      throw gaiError('EAI_NONAME', 'getaddrinfo', host);
    } else {
      addresses = (await lookupAll(host, family, flags)).map((a) => {
        const pct = a.address.indexOf('%');
        return {
          family: a.family === 6 ? AF_INET6 : AF_INET,
          address: pct === -1 ? a.address : a.address.slice(0, pct),
          scopeId: 0,
        };
      });
      if (addresses.length === 0) throw gaiError('EAI_NONAME', 'getaddrinfo', host);
    }
  }

  const canon = (flags & AI_CANONNAME) !== 0 ? (host ?? '') : '';
  const out: AddrInfo[] = [];
  for (const a of addresses) {
    for (const [t, p, portNumber] of kinds) {
      const sockaddr: InetAddress =
        a.family === AF_INET ? [a.address, portNumber] : [a.address, portNumber, 0, a.scopeId];
      out.push([a.family, t, p, out.length === 0 ? canon : '', sockaddr]);
    }
  }
  return out;
}

// ---- getnameinfo -------------------------------------------------------------------------------------------

function lookupName(address: string, port: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    dnsLookupService(address, port, (error, hostname) => {
      if (!error) resolve(hostname);
      else if ((error as { code?: string }).code === 'ENOTFOUND') resolve(null);
      else reject(gaiErrorFrom(error, 'getnameinfo', address));
    });
  });
}

/**
 * Gives the host name and the service name of a socket address (Python's `socket.getnameinfo`, asyncio's
 * `loop.getnameinfo`).
 *
 * The host must be numeric. Its name comes from the system resolver (`node:dns` `lookupService`); without one, the
 * numeric host is given (or, with `NI_NAMEREQD`, `EAI_NONAME` is raised). The service name comes from
 * `/etc/services` (UDP's with `NI_DGRAM`), else the port number as text. `NI_NUMERICHOST` and `NI_NUMERICSERV`
 * skip the lookups.
 *
 * @param sockaddr - `[host, port]` or `[host, port, flowinfo, scopeId]`.
 * @param flags - a bitwise or of `NI_*` flags.
 * @returns `[host, service]`.
 * @throws GaiError (rejects): `EAI_NONAME` for a host that is not numeric, or has no name with `NI_NAMEREQD`;
 * `EAI_SERVICE` for a negative port. TypeError for a malformed `sockaddr`; OSError for an IPv4 address with
 * four elements; ValueError for an out of range `flowinfo`.
 */
export async function getnameinfo(sockaddr: InetAddress, flags = 0): Promise<[host: string, service: string]> {
  if (!Array.isArray(sockaddr)) {
    throw new InvalidArgTypeError(`getnameinfo() argument 1 must be an array, got ${inspect(sockaddr, { depth: 0 })}`);
  }
  const [host, port, flowinfo = 0, scopeIdArg = 0] = sockaddr as unknown[];
  if (sockaddr.length < 2 || sockaddr.length > 4 || typeof host !== 'string') {
    throw new InvalidArgTypeError('getnameinfo(): illegal sockaddr argument');
  }
  checkInt(port, 'getnameinfo(): port');
  checkInt(flowinfo, 'getnameinfo(): flowinfo');
  const scopeGiven = checkInt(scopeIdArg, 'getnameinfo(): scopeId');
  checkInt(flags, 'flags');
  if ((flowinfo as number) < 0 || (flowinfo as number) > 0xfffff) {
    throw new ValueError('getnameinfo(): flowinfo must be 0-1048575.');
  }
  const numeric = await parseNumericHost(host, 'getnameinfo');
  if (numeric === null) throw gaiError('EAI_NONAME', 'getnameinfo', host);
  if ((port as number) < 0) throw gaiError('EAI_SERVICE', 'getnameinfo', host);
  const portNumber = (port as number) % 65536;
  // Python raises a bare OSError here.
  if (numeric.family === AF_INET && sockaddr.length !== 2) throw new OSError('IPv4 sockaddr must be 2 tuple');

  let scope = '';
  if (numeric.family === AF_INET6 && scopeGiven !== 0) {
    const name = isLinkLocal(numeric.address) ? await interfaceName(scopeGiven) : null;
    scope = `%${name ?? scopeGiven >>> 0}`;
  }
  const numericHost = numeric.address + scope;
  let hostName = numericHost;
  if ((flags & NI_NUMERICHOST) === 0) {
    const name = await lookupName(numericHost, portNumber);
    if (name !== null) hostName = name;
    else if ((flags & NI_NAMEREQD) !== 0) throw gaiError('EAI_NONAME', 'getnameinfo', host);
  }
  let service = String(portNumber);
  if ((flags & NI_NUMERICSERV) === 0) {
    const table = await serviceTable();
    service = table.names.get(`${portNumber}/${(flags & NI_DGRAM) !== 0 ? 'udp' : 'tcp'}`) ?? service;
  }
  return [hostName, service];
}

// ---- the loop methods ---------------------------------------------------------------------------------------

declare module './base-event-loop.js' {
  interface BaseEventLoop {
    /**
     * Resolves `host` and `port` into socket addresses (asyncio's `loop.getaddrinfo`): see {@link getaddrinfo}.
     * In debug mode, the time each call takes is logged.
     *
     * @throws RuntimeError (rejects) when the loop is closed; GaiError as {@link getaddrinfo}.
     */
    getaddrinfo(host: string | null, port: number | string | null, options?: GetaddrinfoOptions): Promise<AddrInfo[]>;

    /**
     * Gives the host and service names of a socket address (asyncio's `loop.getnameinfo`): see
     * {@link getnameinfo}.
     *
     * @throws RuntimeError (rejects) when the loop is closed; GaiError as {@link getnameinfo}.
     */
    getnameinfo(sockaddr: InetAddress, flags?: number): Promise<[host: string, service: string]>;
  }
}

function describeQuery(host: string | null, port: number | string | null, options: GetaddrinfoOptions): string {
  const parts = [`${String(host)}:${inspect(port)}`];
  for (const key of ['family', 'type', 'proto', 'flags'] as const) {
    const v = options[key];
    if (v !== undefined && v !== 0) parts.push(`${key}=${v}`);
  }
  return parts.join(', ');
}

extendEventLoop({
  async getaddrinfo(
    this: BaseEventLoop,
    host: string | null,
    port: number | string | null,
    options: GetaddrinfoOptions = {},
  ): Promise<AddrInfo[]> {
    this._checkClosed();
    if (!this._debug) return getaddrinfo(host, port, options);
    const query = describeQuery(host, port, options);
    this.logger.debug(`Get address info ${query}`);
    const t0 = this.time();
    const result = await getaddrinfo(host, port, options);
    const dt = this.time() - t0;
    const message = `Getting address info ${query} took ${(dt * 1e3).toFixed(3)}ms: ${inspect(result)}`;
    if (dt >= this.slowCallbackDuration) this.logger.info(message);
    else this.logger.debug(message);
    return result;
  },

  async getnameinfo(this: BaseEventLoop, sockaddr: InetAddress, flags = 0): Promise<[string, string]> {
    this._checkClosed();
    return getnameinfo(sockaddr, flags);
  },
});
