// Command lines of the systems under test, shared by the workload modules.
import { PYTHON } from './env.mjs';

/** A plain Node script. */
export const nodeArgv = (script, ...args) => [process.execPath, script, ...args];

/** A Python script run by Debian's python3 (the one python3-uvloop installs for). */
export const pythonArgv = (script, ...args) => [PYTHON, script, ...args];

/**
 * A loopwork script (TypeScript through tsx). By default on the packages' sources (`--conditions=loopwork-source`,
 * what the tests run); with `--dist` on the built `dist/` of each package.
 */
export const loopworkArgv = (ctx, script, ...args) =>
  ctx.dist
    ? [process.execPath, '--import', 'tsx', script, ...args]
    : [process.execPath, '--conditions=loopwork-source', '--import', 'tsx', script, ...args];
