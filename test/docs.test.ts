// Keeps docs/errors.md honest: every error code made in the sources has a row, and no row names a code that
// no longer exists.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

test('every ERR_LOOPWORK_ code in the sources is documented in docs/errors.md, and only those', () => {
  const codes = new Set<string>();
  for (const pkg of readdirSync(join(root, 'packages'))) {
    for (const file of sources(join(root, 'packages', pkg, 'src'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/'(ERR_LOOPWORK_[A-Z0-9_]+)'/g)) codes.add(m[1]!);
    }
  }
  const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(ERR_LOOPWORK_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]!));
  assert.ok(codes.size > 30, `found ${codes.size} codes`);
  assert.deepEqual([...codes].filter((c) => !documented.has(c)).sort(), [], 'codes missing from docs/errors.md');
  assert.deepEqual([...documented].filter((c) => !codes.has(c)).sort(), [], 'documented codes that no longer exist');
});
