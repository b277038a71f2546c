// Which echo load client the net benchmarks run: echo-client.c, compiled once per checkout into .bench-dist/,
// or client.mjs where no C compiler is found. Both take the same options and print the same JSON line; the C one
// spends less CPU per request, so that the server pinned on the other core saturates first (BENCH.md: a load
// client that saturates its own core measures itself, not the server).
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hasCommand } from '../lib/proc.mjs';
import { nodeArgv } from '../lib/systems.mjs';

const SOURCE = 'bench/net/echo-client.c';
let chosen = null;

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * The argv prefix of the load client (options follow), and its name for the results.
 *
 * @param {string} root - the repository's root.
 * @returns {{ argv: string[], name: 'c' | 'node' }}
 */
export function echoClient(root) {
  if (chosen !== null) return chosen;
  const binary = join(root, '.bench-dist', 'net', 'echo-client');
  const source = join(root, SOURCE);
  if (mtime(binary) < mtime(source) && hasCommand('cc')) {
    mkdirSync(join(root, '.bench-dist', 'net'), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', binary, source, '-lm'], { encoding: 'utf8' });
    if (r.status !== 0) console.error(`bench: cannot build ${SOURCE}, using client.mjs:\n${r.stderr}`);
  }
  chosen =
    mtime(binary) >= mtime(source)
      ? { argv: [binary], name: 'c' }
      : { argv: nodeArgv('bench/net/client.mjs'), name: 'node' };
  return chosen;
}
