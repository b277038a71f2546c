// Which echo load client the net benchmarks run: echo-client.c (see ../lib/c-client.mjs), or client.mjs where it
// cannot be built. Both take the same options and print the same JSON line.
import { loadClient } from '../lib/c-client.mjs';
import { nodeArgv } from '../lib/systems.mjs';

/**
 * The argv prefix of the echo load client (options follow), and its name for the results.
 *
 * @param {string} root - the repository's root.
 * @returns {{ argv: string[], name: 'c' | 'node' }}
 */
export function echoClient(root) {
  return loadClient(root, {
    source: 'bench/net/echo-client.c',
    libs: ['-lm'],
    fallback: nodeArgv('bench/net/client.mjs'),
  });
}
