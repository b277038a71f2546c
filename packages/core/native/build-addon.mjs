#!/usr/bin/env node
// Builds the native addon (build/Release/loopwork.node) with node-gyp, offline: the headers are the ones
// installed with this Node (<prefix>/include/node), so nothing is downloaded. Skips the build when the .node
// file is newer than binding.gyp and every source. On failure prints one line (the full log is kept in
// build/build-addon.log) and exits non-zero; the rest of loopwork works without the addon.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, 'build', 'Release', 'loopwork.node');
const log = join(here, 'build', 'build-addon.log');
const nodedir = resolve(dirname(process.execPath), '..');
const force = process.argv.includes('--force');

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

function fail(reason) {
  console.error(`build-addon: the native addon did not build: ${reason}`);
  process.exit(1);
}

const inputs = [join(here, 'binding.gyp'), ...readdirSync(join(here, 'src')).map((f) => join(here, 'src', f))];
const built = mtime(output);
if (!force && built > 0 && inputs.every((f) => mtime(f) < built)) process.exit(0);

if (mtime(join(nodedir, 'include', 'node', 'node_api.h')) < 0) {
  fail(`no Node headers in ${join(nodedir, 'include', 'node')} (install this Node's headers)`);
}
let gyp;
try {
  gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
} catch {
  fail('node-gyp is not installed (it is a devDependency of the repository root)');
}

const started = process.hrtime.bigint();
const r = spawnSync(process.execPath, [gyp, 'rebuild', '--release', '-j', 'max', `--nodedir=${nodedir}`], {
  cwd: here,
  encoding: 'utf8',
  env: { ...process.env, npm_config_nodedir: nodedir },
});
const text = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
mkdirSync(dirname(log), { recursive: true });
writeFileSync(log, text);
if (r.status !== 0 || mtime(output) < 0) {
  const first = text.split('\n').find((l) => /\berror\b/i.test(l) && !/^gyp (ERR|info)/.test(l));
  const where = relative(process.cwd(), log);
  fail(`${first ? first.trim() : `node-gyp exited with ${r.status ?? r.signal}`} (full log: ${where})`);
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(`build-addon: built ${relative(process.cwd(), output)} in ${seconds.toFixed(1)} s`);
