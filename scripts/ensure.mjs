#!/usr/bin/env node
// Makes a fresh clone ready to run: installs from the frozen lockfile when node_modules is missing or older
// than the lockfile, then builds (the native addon and `tsc -b`, both incremental).
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function mtime(path) {
  try {
    return statSync(new URL(path, new URL('..', import.meta.url))).mtimeMs;
  } catch {
    return -1;
  }
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`ensure: ${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}

const installed = mtime('node_modules/.modules.yaml');
if (installed < 0 || installed < mtime('pnpm-lock.yaml')) {
  console.log('ensure: installing dependencies (pnpm, frozen lockfile)');
  run('npx', ['--yes', 'pnpm@10.34.9', 'install', '--frozen-lockfile']);
}
run(process.execPath, ['scripts/build.mjs']);
