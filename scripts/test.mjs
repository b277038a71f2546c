#!/usr/bin/env node
// Runs every test file (`*.test.ts`) with node:test, TypeScript through tsx, on the packages' sources
// (the `loopwork-source` export condition), so that a test never runs against a stale build.
//   node scripts/test.mjs                 every test in the repo
//   node scripts/test.mjs packages/core   the tests under one folder
//   node scripts/test.mjs some.test.ts    one file
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const skip = new Set(['node_modules', 'dist', 'build', '.git', 'bench', 'fixtures']);

function collect(path, out) {
  const st = statSync(path);
  if (st.isFile()) {
    if (path.endsWith('.test.ts')) out.push(path);
    return out;
  }
  for (const name of readdirSync(path).sort()) {
    if (skip.has(name)) continue;
    collect(join(path, name), out);
  }
  return out;
}

const args = process.argv.slice(2);
const flags = args.filter((a) => a.startsWith('--'));
const targets = args.filter((a) => !a.startsWith('--'));
const files = [];
for (const t of targets.length ? targets : ['packages', 'apps', 'test']) {
  const path = resolve(process.cwd(), t);
  if (targets.length === 0 && !existsSync(path)) continue;
  collect(path, files);
}
if (files.length === 0) {
  console.error('test: no test files found');
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  [
    '--conditions=loopwork-source',
    '--import',
    'tsx',
    '--expose-gc',
    '--test',
    `--test-concurrency=${process.env.LOOPWORK_TEST_CONCURRENCY ?? '2'}`,
    '--test-timeout=120000',
    ...flags,
    ...files.map((f) => relative(root, f)),
  ],
  { cwd: root, stdio: 'inherit' },
);
process.exit(r.status ?? 1);
