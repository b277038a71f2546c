// What the benchmarks need on the machine: Debian packages (installed with apt-get when missing and we are
// root), npm packages (root devDependencies), the pinning of server and client to cores, and a description of
// the machine for the results file.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { hasCommand } from './proc.mjs';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const PYTHON = '/usr/bin/python3'; // Debian's: python3-uvloop installs for it, not for a pyenv python3

function out(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : null;
}

function pythonModuleVersion(module) {
  if (!existsSync(PYTHON)) return null;
  return out(PYTHON, ['-c', `import ${module}; print(${module}.__version__)`]);
}

function npmVersion(name) {
  const file = `${root}node_modules/${name}/package.json`;
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).version : null;
}

/** Each requirement: how to detect it, and the Debian package that provides it (or how to get it). */
const requirements = {
  taskset: { detect: () => hasCommand('taskset'), apt: 'util-linux' },
  python3: { detect: () => existsSync(PYTHON), apt: 'python3' },
  uvloop: { detect: () => pythonModuleVersion('uvloop') !== null, apt: 'python3-uvloop' },
  wrk: { detect: () => hasCommand('wrk'), apt: 'wrk' },
  'redis-server': { detect: () => hasCommand('redis-server'), apt: 'redis-server' },
  'redis-benchmark': { detect: () => hasCommand('redis-benchmark'), apt: 'redis-tools' },
  socat: { detect: () => hasCommand('socat'), apt: 'socat' },
  openssl: { detect: () => hasCommand('openssl'), apt: 'openssl' },
  tsx: { detect: () => npmVersion('tsx') !== null, npm: 'tsx' },
  autocannon: { detect: () => npmVersion('autocannon') !== null, npm: 'autocannon' },
  fastify: { detect: () => npmVersion('fastify') !== null, npm: 'fastify' },
};

/**
 * Checks every requirement, installs the missing Debian packages when it can (root + apt-get), and returns
 * { have: Set, missing: Map<name, why> }. Missing anchors are announced loudly, never skipped silently.
 */
export function ensureRequirements({ install = true, log = console.log } = {}) {
  const missing = new Map();
  for (const [name, req] of Object.entries(requirements)) if (!req.detect()) missing.set(name, req);
  const apt = [...new Set([...missing.values()].filter((r) => r.apt).map((r) => r.apt))];
  if (apt.length > 0 && install) {
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    if (root && hasCommand('apt-get')) {
      log(`bench: installing ${apt.join(' ')} (apt-get) …`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const up = spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
      const r = spawnSync('apt-get', ['install', '-y', '-qq', ...apt], { encoding: 'utf8', env });
      if (up.status !== 0 || r.status !== 0)
        log(`bench: apt-get failed: ${(r.stderr ?? '').trim().split('\n').at(-1)}`);
    } else {
      log(`bench: cannot install ${apt.join(' ')}: ${root ? 'no apt-get' : 'not root'}`);
    }
  }
  const have = new Set();
  const still = new Map();
  for (const [name, req] of Object.entries(requirements)) {
    if (req.detect()) have.add(name);
    else
      still.set(
        name,
        req.apt
          ? `Debian package ${req.apt} is not installed (run as root: apt-get install -y ${req.apt})`
          : `npm package ${req.npm} is missing (a root devDependency: run \`node scripts/ensure.mjs\`)`,
      );
  }
  if (still.size > 0) {
    const bar = '!'.repeat(100);
    log(`${bar}\n!! ANCHORS MISSING: the systems that need them are reported as "missing", not measured:`);
    for (const [name, why] of still) log(`!!   ${name}: ${why}`);
    log(bar);
  }
  return { have, missing: still };
}

/** `taskset -c N` prefixes, or none when taskset is missing or the machine has one core. */
export function pinning(have) {
  const n = cpus().length;
  if (!have.has('taskset')) return { server: [], client: [], note: 'taskset missing: server and client not pinned' };
  if (n < 2) return { server: [], client: [], note: 'one core: server and client share it, not pinned' };
  return {
    server: ['taskset', '-c', '0'],
    client: ['taskset', '-c', '1'],
    note: 'server on core 0, load client on core 1 (taskset)',
  };
}

export function machineInfo() {
  const cpuModel = (/model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8')) ?? [])[1] ?? cpus()[0]?.model;
  const gitHead = out('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  const dirty = out('git', ['-C', root, 'status', '--porcelain']);
  return {
    nproc: cpus().length,
    cpuModel,
    kernel: release(),
    loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    node: process.version,
    python: existsSync(PYTHON)
      ? `${out(PYTHON, ['-c', 'import sys; print(sys.version.split()[0])'])} (${PYTHON})`
      : null,
    uvloop: pythonModuleVersion('uvloop'),
    wrk: hasCommand('wrk') ? /wrk \S+/.exec(spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout)?.[0] : null,
    autocannon: npmVersion('autocannon'),
    fastify: npmVersion('fastify'),
    tsx: npmVersion('tsx'),
    git: gitHead ? `${gitHead}${dirty ? ' (working tree modified)' : ''}` : null,
  };
}
