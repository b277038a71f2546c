/**
 * Addresses and name resolution for servers and connections (asyncio's `_ensure_resolved`, `_ipaddr_info` and
 * `_interleave_addrinfos`): numeric hosts skip the resolver, names go through `loop.getaddrinfo`.
 *
 * @module
 */
import net from 'node:net';
import type { AddrInfo, Address, BaseEventLoop } from '@loopwork/core';
import { AF_INET, AF_INET6, AF_UNSPEC, IPPROTO_TCP, OSError, SOCK_STREAM, ValueError } from '@loopwork/core';

/**
 * @internal Reads a `family` option: 0 (any), `AF_INET`, `AF_INET6`, `AF_UNIX`, or Node's `4`/`6`.
 */
export function normalizeFamily(family: number | undefined | null): number {
  if (family === undefined || family === null || family === 0) return AF_UNSPEC;
  if (family === 4) return AF_INET;
  if (family === 6) return AF_INET6;
  return family;
}

/** @internal The address as Python's `repr()` prints it: `('127.0.0.1', 8080)`, `'/tmp/s'`. */
export function formatAddress(addr: unknown): string {
  if (Array.isArray(addr)) return `(${addr.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ')})`;
  if (Buffer.isBuffer(addr)) return `b'${addr.toString('latin1').replace(/\0/g, '\\x00')}'`;
  if (typeof addr === 'string') return `'${addr.replace(/\0/g, '\\x00')}'`;
  return String(addr);
}

/** @internal A Node address object in asyncio's shape. */
export function fromNodeAddress(a: net.AddressInfo | string | null | Record<string, never>): Address | null {
  if (a === null) return null;
  if (typeof a === 'string') return a;
  if (typeof (a as net.AddressInfo).port !== 'number') return null;
  const info = a as net.AddressInfo;
  return info.family === 'IPv6' ? [info.address, info.port, 0, 0] : [info.address, info.port];
}

/** @internal The fd of a Node socket or server, or -1. */
export function nodeFd(obj: unknown): number {
  const h = (obj as { _handle?: { fd?: unknown } | null })._handle;
  const fd = h?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** A port as a number, or a service name (`'http'`) for the resolver. */
function parsePort(port: number | string | null | undefined): number | string {
  if (port === null || port === undefined || port === '') return 0;
  const n = typeof port === 'number' ? port : /^\d+$/.test(port) ? Number(port) : NaN;
  if (typeof port === 'string' && Number.isNaN(n)) return port;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ValueError(`port must be 0-65535, got ${String(port)}`);
  return n;
}

/** asyncio's `_ipaddr_info`: the one addrinfo of a numeric host, or `null` when a resolver is needed. */
function ipaddrInfo(
  host: string | null,
  port: number | string,
  family: number,
  type: number,
  proto: number,
): AddrInfo | null {
  if (host === null || typeof port !== 'number' || (proto !== 0 && proto !== IPPROTO_TCP)) return null;
  if (host.includes('%')) return null;
  const kind = net.isIP(host);
  if (kind === 4 && (family === AF_UNSPEC || family === AF_INET)) return [AF_INET, type, IPPROTO_TCP, '', [host, port]];
  if (kind === 6 && (family === AF_UNSPEC || family === AF_INET6)) {
    return [AF_INET6, type, IPPROTO_TCP, '', [host, port, 0, 0]];
  }
  return null;
}

/**
 * @internal asyncio's `_ensure_resolved`: the addrinfos of `host:port` (numeric hosts without a resolver).
 *
 * @throws OSError from the resolver (`EAI_NONAME`, …).
 */
export async function ensureResolved(
  loop: BaseEventLoop,
  host: string | null,
  port: number | string | null | undefined,
  options: { family?: number; type?: number; proto?: number; flags?: number } = {},
): Promise<AddrInfo[]> {
  const family = normalizeFamily(options.family);
  const type = options.type ?? SOCK_STREAM;
  const proto = options.proto ?? 0;
  const flags = options.flags ?? 0;
  const p = parsePort(port);
  const info = ipaddrInfo(host, p, family, type, proto);
  if (info !== null) return [info];
  const infos = await loop.getaddrinfo(host, p, { family, type, proto, flags });
  return infos.filter((i) => i[0] === AF_INET || i[0] === AF_INET6);
}

/**
 * asyncio's `_interleave_addrinfos`: alternates address families (RFC 8305 §4), the first family getting
 * `firstAddressFamilyCount` addresses in a row before the alternation starts.
 *
 * @param addrinfos - in the resolver's order.
 * @param firstAddressFamilyCount - how many addresses of the first family come first (default 1).
 * @returns the reordered list.
 */
export function interleaveAddrinfos<T extends readonly [number, ...unknown[]]>(
  addrinfos: readonly T[],
  firstAddressFamilyCount = 1,
): T[] {
  const byFamily = new Map<number, T[]>();
  for (const a of addrinfos) {
    let list = byFamily.get(a[0]);
    if (list === undefined) byFamily.set(a[0], (list = []));
    list.push(a);
  }
  const lists = [...byFamily.values()];
  const out: T[] = [];
  if (firstAddressFamilyCount > 1 && lists[0] !== undefined) {
    out.push(...lists[0].splice(0, firstAddressFamilyCount - 1));
  }
  const longest = Math.max(0, ...lists.map((l) => l.length));
  for (let i = 0; i < longest; i++) {
    for (const l of lists) {
      const a = l[i];
      if (a !== undefined) out.push(a);
    }
  }
  return out;
}

/** @internal `getaddrinfo() returned empty list`. */
export function emptyAddrinfoError(): Error {
  return new OSError('getaddrinfo() returned empty list');
}
