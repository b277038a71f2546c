// The C load clients (net/echo-client.c, tls/tls-client.c, sendfile/sink.c): each compiled once per checkout into
// .bench-dist/, and rebuilt when its source or load-client.h changes, or a Node fallback where no C compiler (or
// library) is found. A C client spends less CPU per operation than the Node one, so that the server pinned on the
// other core saturates first (BENCH.md: a load client that saturates its own core measures itself, not the server).
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { hasCommand } from './proc.mjs';

const HEADER = 'bench/lib/load-client.h';
const chosen = new Map();

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * The argv prefix of a load client (options follow), and its name for the results.
 *
 * @param {string} root - the repository's root.
 * @param {{ source: string, libs?: string[], fallback: string[] }} client - the C source (relative to `root`),
 *   the libraries it links with, and the argv of the Node client to use when it cannot be built.
 * @returns {{ argv: string[], name: 'c' | 'node' }}
 */
export function loadClient(root, { source, libs = [], fallback }) {
  const known = chosen.get(source);
  if (known !== undefined) return known;
  const dir = join(root, '.bench-dist', basename(dirname(source)));
  const binary = join(dir, basename(source, '.c'));
  const newest = Math.max(mtime(join(root, source)), mtime(join(root, HEADER)));
  if (mtime(binary) < newest && hasCommand('cc')) {
    mkdirSync(dir, { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', binary, join(root, source), ...libs], { encoding: 'utf8' });
    if (r.status !== 0) console.error(`bench: cannot build ${source}, using the Node client:\n${r.stderr}`);
  }
  const result = mtime(binary) >= newest ? { argv: [binary], name: 'c' } : { argv: fallback, name: 'node' };
  chosen.set(source, result);
  return result;
}
