/**
 * The reliability app (fixtures/server.ts) in a child process: start it with a config, read its log lines and
 * counters, ask it for its figures (RSS, heap after GC, descriptors), signal it. Killed after the test.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FixtureConfig } from '../fixtures/app.js';
import { within } from './measure.js';
import type { Cleanup } from './measure.js';

const SERVER = fileURLToPath(new URL('../fixtures/server.ts', import.meta.url));

/** What the child reports for `stats`. */
export interface ServerStats {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  fds: number;
  active: number;
  parked: number;
  accepted: number;
  handled: number;
  acked: number;
  slow: number;
}

/** A pino line of the child. */
export type LogLine = Record<string, unknown> & { level: number; msg?: string };

/** The running child. */
export interface ServerChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Ports: the HTTP listener, and those asked for. */
  readonly port: number;
  readonly tlsPort: number | undefined;
  readonly respPort: number | undefined;
  readonly linesPort: number | undefined;
  readonly framesPort: number | undefined;
  readonly rawPort: number | undefined;
  /** Everything written on stdout and stderr so far. */
  readonly output: () => { stdout: string; stderr: string };
  /** The pino lines so far. */
  logs(): LogLine[];
  /** Log lines at error level or above. */
  errors(): LogLine[];
  /** Resolves with the first stdout line (whole) matching `re`, waiting at most `seconds`. */
  line(re: RegExp, seconds?: number): Promise<string>;
  /** The child's figures (after two GCs). */
  stats(): Promise<ServerStats>;
  /** Sends a line on the child's stdin. */
  send(line: string): void;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts the app in a child.
 *
 * @param t - the test: the child is killed after it.
 * @param config - the app's config (plus `signals: true` to let SIGTERM/SIGINT drain it).
 * @param options - `execArgv` for node, `wrap` (a command and args put before node, as `prlimit …`).
 */
export async function startServer(
  t: Cleanup,
  config: FixtureConfig & { signals?: boolean },
  options: { wrap?: string[] } = {},
): Promise<ServerChild> {
  const nodeArgs = ['--expose-gc', '--conditions=loopwork-source', '--import', 'tsx', SERVER];
  const [cmd, ...args] = options.wrap
    ? [...options.wrap, process.execPath, ...nodeArgs]
    : [process.execPath, ...nodeArgs];
  const child = spawn(cmd!, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, RELIABILITY_CONFIG: JSON.stringify(config), LOOPWORK_LOG_JSON: '1' },
  });
  let stdout = '';
  let stderr = '';
  const lines: string[] = [];
  let partial = '';
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    partial += d;
    let i: number;
    while ((i = partial.indexOf('\n')) >= 0) {
      lines.push(partial.slice(0, i));
      partial = partial.slice(i + 1);
    }
    wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin!.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      resolve({ code, signal });
      wake();
    }),
  );
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  /** Resolves with the `n`-th stdout line matching `re` (1-based), waiting at most `seconds`. */
  const nth = (re: RegExp, n: number, seconds: number): Promise<string> => {
    const found = new Promise<string>((resolve, reject) => {
      // Each waiter reads the lines once, from where it stopped (long runs print many).
      let next = 0;
      let count = 0;
      const check = (): void => {
        for (; next < lines.length; next++) {
          if (re.test(lines[next]!) && ++count === n) {
            waiters.delete(check);
            resolve(lines[next]!);
            return;
          }
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          waiters.delete(check);
          reject(
            new Error(`server exited (${child.exitCode ?? child.signalCode}); stdout ${stdout}; stderr ${stderr}`),
          );
        }
      };
      waiters.add(check);
      check();
    });
    return within(found, seconds, `waiting for ${re}`);
  };

  const parsed = (): LogLine[] =>
    lines
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          return { level: 0, msg: l };
        }
      });
  const ready = JSON.parse((await nth(/^READY /, 1, 30)).slice(6)) as {
    pid: number;
    addresses: { kind: string; port?: number; path?: string }[];
  };
  const tcp = ready.addresses.filter((a) => a.kind === 'tcp');
  let statsSeen = 0;
  return {
    child,
    pid: ready.pid,
    port: ready.addresses.find((a) => a.kind === 'http')!.port!,
    tlsPort: ready.addresses.find((a) => a.kind === 'tls')?.port,
    respPort: tcp[0]?.port,
    linesPort: tcp[1]?.port,
    framesPort: tcp[2]?.port,
    rawPort: tcp[3]?.port,
    output: () => ({ stdout, stderr }),
    logs: () => parsed(),
    errors: () => parsed().filter((l) => l.level >= 50),
    line: (re: RegExp, seconds = 10) => nth(re, 1, seconds),
    async stats(): Promise<ServerStats> {
      const n = ++statsSeen;
      child.stdin!.write('stats\n');
      return JSON.parse((await nth(/^STATS /, n, 10)).slice(6)) as ServerStats;
    },
    send: (l: string) => child.stdin!.write(`${l}\n`),
    exited,
  };
}
