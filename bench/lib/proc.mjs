// Processes for the benchmarks: spawning pinned to a core, waiting for a READY line, reading /proc, killing.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const live = new Set();

/** Kills every child still running when the harness exits, whatever the reason. */
function killAll() {
  for (const child of live) killGroup(child, 'SIGKILL');
}

/** Children run in their own process group (`detached`), so that a wrapper shell's children go with it. */
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

export function hasCommand(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

let clockTicks;
function ticksPerSecond() {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clockTicks = Number(r.stdout) > 0 ? Number(r.stdout) : 100;
  }
  return clockTicks;
}

/** Fields of /proc/<pid>/stat after the command name (field 3 is index 0). */
function statFields(text) {
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; null when it is gone. */
export function cpuSeconds(pid) {
  try {
    const f = statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
  } catch {
    return null;
  }
}

/** CPU seconds of the children a shell waited for (cutime + cstime), from a /proc/<pid>/stat line. */
export function childCpuSecondsFromStat(text) {
  const f = statFields(text.trim());
  return (Number(f[13]) + Number(f[14])) / ticksPerSecond();
}

/** Resident set size in bytes from /proc/<pid>/status, or null. */
export function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Renders an argv as a shell command line, for the record. */
export function shellLine(argv) {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

/**
 * Wraps an argv so that it runs with a raised open-files limit (the shell `exec`s, so the pid is the command's).
 */
export function withNofile(argv, nofile) {
  if (!nofile) return argv;
  const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  return ['sh', '-c', script, 'sh', ...argv];
}

/** The last error-looking line of a process's stderr, for "failed: <error>". */
export function errorSummary(stderr, stdout = '', fallback = 'exited without output') {
  const lines = `${stderr}\n${stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const unavailable = lines.find((l) => l.startsWith('UNAVAILABLE:'));
  if (unavailable) return unavailable.slice('UNAVAILABLE:'.length).trim();
  const err =
    lines.find((l) => /^[\w.]*(Error|Exception)\b/.test(l)) ?? lines.find((l) => /error/i.test(l)) ?? lines.at(-1);
  return (err ?? fallback).slice(0, 240);
}

/** A benchmark failure of one system: `status` is "failed", "missing" (an anchor not installed) or "unavailable". */
export class SystemFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * Starts a long-running process (a server). Resolves once a stdout line matches `ready` (default /^READY/),
 * rejects with a SystemFailure when it exits first or does not get ready in time.
 */
export async function startProcess(argv, { cwd, env, ready = /^READY\b/, timeoutMs = 30000 } = {}) {
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (error) => {
      live.delete(child);
      stderr += `\n${error.message}`;
      resolve({ code: -1, signal: null });
    });
  });
  child.stderr.setEncoding('utf8').on('data', (d) => {
    stderr = (stderr + d).slice(-20000);
  });
  const readyLine = new Promise((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout = (stdout + d).slice(-20000);
      const line = stdout.split('\n').find((l) => ready.test(l));
      if (line) resolve(line);
    });
  });
  let timer;
  const outcome = await Promise.race([
    readyLine.then((line) => ({ line })),
    exited.then((e) => ({ exit: e })),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve({ timeout: true }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  const proc = {
    pid: child.pid,
    child,
    exited,
    get stderr() {
      return stderr;
    },
    get stdout() {
      return stdout;
    },
    readyLine: outcome.line,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      killGroup(child, 'SIGTERM');
      const t = setTimeout(() => killGroup(child, 'SIGKILL'), 2000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
  if (outcome.line) return proc;
  await proc.stop();
  await sleep(20);
  if (outcome.timeout)
    throw new SystemFailure(
      'failed',
      `not ready after ${timeoutMs / 1000} s: ${errorSummary(stderr, stdout, 'no output')}`,
    );
  const status = /UNAVAILABLE:/.test(stdout + stderr) ? 'unavailable' : 'failed';
  throw new SystemFailure(
    status,
    errorSummary(stderr, stdout, `exited with ${outcome.exit.code ?? outcome.exit.signal}`),
  );
}

/**
 * Runs `body()` against a server from {@link startProcess} and stops the server after it, however it ends. A
 * failure after the server exited is reported as the server's death, with what it printed.
 */
export async function againstServer(server, body) {
  try {
    return await body();
  } catch (e) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new SystemFailure('failed', `server died: ${errorSummary(server.stderr, server.stdout)}`);
    }
    throw e;
  } finally {
    await server.stop();
  }
}

/** Runs a command to completion and collects its output; rejects with a SystemFailure on a non-zero exit. */
export async function runProcess(argv, { cwd, env, timeoutMs = 600000 } = {}) {
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-200000)));
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
  const { code, signal } = await new Promise((resolve) => {
    child.once('exit', (c, s) => resolve({ code: c, signal: s }));
    child.once('error', (e) => {
      stderr += `\n${e.message}`;
      resolve({ code: -1, signal: null });
    });
  });
  clearTimeout(timer);
  live.delete(child);
  if (code !== 0) {
    const status = code === 3 || /UNAVAILABLE:/.test(stdout) ? 'unavailable' : 'failed';
    throw new SystemFailure(status, errorSummary(stderr, stdout, `exited with ${code ?? signal}`));
  }
  return { stdout, stderr, pid: child.pid };
}

/** The last line of `text` that parses as a JSON object. */
export function lastJson(text) {
  const lines = text.split('\n').reverse();
  for (const line of lines) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      return JSON.parse(t);
    } catch {
      // not JSON; keep looking
    }
  }
  return null;
}

function cpuTotals() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  return { idle, total: f.reduce((a, b) => a + b, 0) };
}

/** How busy the whole machine is over `ms` (percent of all cores), measured while the harness is idle. */
export async function machineBusyPct(ms = 200) {
  const a = cpuTotals();
  await sleep(ms);
  const b = cpuTotals();
  const total = b.total - a.total;
  return total > 0 ? (100 * (total - (b.idle - a.idle))) / total : 0;
}
