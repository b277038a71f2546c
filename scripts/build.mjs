#!/usr/bin/env node
// Builds everything: the native addon of @loopwork/core (node-gyp, against the headers installed with this
// Node, so no download is needed), then every TypeScript project with `tsc -b`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  return r.status === 0;
}

const addon = new URL('../packages/core/native/build-addon.mjs', import.meta.url);
if (existsSync(addon)) {
  // The addon is optional at run time: a failed build is reported, and the fd-watching methods say why.
  if (!run(process.execPath, [fileURLToPath(addon)])) console.warn('build: the native addon did not build');
}
if (!run(process.execPath, [fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url)), '-b'])) {
  process.exit(1);
}
