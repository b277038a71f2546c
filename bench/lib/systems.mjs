// Command lines of the systems under test, shared by the workload modules.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { PYTHON } from './env.mjs';

/** A plain Node script. */
export const nodeArgv = (script, ...args) => [process.execPath, script, ...args];

/** A Python script run by Debian's python3 (the one python3-uvloop installs for). */
export const pythonArgv = (script, ...args) => [PYTHON, script, ...args];

/**
 * A loopwork script. By default on the packages' built `dist/`, as a user runs them: the script itself is
 * compiled once per run to plain JavaScript under `.bench-dist/` (types stripped by esbuild, tsx's own
 * compiler), so that no TypeScript loader sits in the measured process (tsx's loader thread alone costs ~40 MiB
 * of RSS). With `--src`, on the packages' sources through tsx (`--conditions=loopwork-source`), as the tests run.
 */
export const loopworkArgv = (ctx, script, ...args) =>
  ctx.dist
    ? [process.execPath, compiledScript(ctx.root, script), ...args]
    : [process.execPath, '--conditions=loopwork-source', '--import', 'tsx', script, ...args];

/** Bench folders whose TypeScript the harness runs (soak/ and executor/ are run by hand, through tsx). */
const COMPILED_DIRS = ['lib', 'core', 'net', 'http', 'tls', 'sendfile', 'mem', 'resp'];
let compiledRoot = null;

/**
 * `.bench-dist/<script>.js` for `bench/<script>.ts`, compiling every harness script on the first call; an app's
 * `apps/<app>/src/<script>.ts` is its own build's `apps/<app>/dist/<script>.js`.
 */
function compiledScript(root, script) {
  if (script.startsWith('apps/')) return join(root, script.replace('/src/', '/dist/').replace(/\.ts$/, '.js'));
  const out = join(root, '.bench-dist');
  if (compiledRoot === null) {
    const esbuild = createRequire(createRequire(import.meta.url).resolve('tsx/package.json'))('esbuild');
    rmSync(out, { recursive: true, force: true });
    for (const dir of COMPILED_DIRS) {
      const from = join(root, 'bench', dir);
      if (!existsSync(from)) continue;
      for (const name of readdirSync(from).filter((n) => n.endsWith('.ts'))) {
        const { code } = esbuild.transformSync(readFileSync(join(from, name), 'utf8'), {
          loader: 'ts',
          format: 'esm',
          target: 'node20',
        });
        mkdirSync(join(out, dir), { recursive: true });
        writeFileSync(join(out, dir, name.replace(/\.ts$/, '.js')), code);
      }
    }
    compiledRoot = out;
  }
  return join(compiledRoot, relative(join(root, 'bench'), join(root, script)).replace(/\.ts$/, '.js'));
}
