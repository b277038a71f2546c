/** The load generator (fixtures/load-client.ts) in a child process. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { within } from './measure.js';
import type { Cleanup } from './measure.js';

const CLIENT = fileURLToPath(new URL('../fixtures/load-client.ts', import.meta.url));

/** What the load generator reports. */
export interface LoadResult {
  completed: number;
  completedAfterMark: number;
  retried: number;
  /** Of `retried`, those that failed on a new connection (see load-client.ts). */
  retriedOnNew: number;
  retriedFor: Record<string, number>;
  lost: number;
  errors: Record<string, number>;
  byPath: Record<string, number>;
}

/** A running load generator. */
export interface Load {
  /** Resolves once every worker has had a response. */
  readonly started: Promise<void>;
  /** Marks the moment (a signal sent): responses after it are counted apart. */
  mark(): void;
  /** Stops (in-flight requests finish) and resolves with the figures. */
  stop(): Promise<LoadResult>;
  /** Resolves with the figures once the generator ends by itself (every worker saw the server gone). */
  readonly done: Promise<LoadResult>;
  /** The last progress figures (with `progress: true`), or `null`. */
  latest(): LoadResult | null;
}

/**
 * Starts `workers` keep-alive workers sending GETs for `paths` (in turn) to 127.0.0.1:`port`.
 *
 * @param retry - resend requests that failed before any byte of a response (see load-client.ts).
 */
export function startLoad(
  t: Cleanup,
  port: number,
  workers: number,
  retry: boolean,
  paths: string[],
  options: { progress?: boolean } = {},
): Load {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLIENT, String(port), String(workers), retry ? '1' : '0', ...paths],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, LOAD_PROGRESS: options.progress ? '1' : '0' } },
  );
  let latest: LoadResult | null = null;
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let onStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  const done = new Promise<LoadResult>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('STARTED\n')) onStarted();
      const p = out.lastIndexOf('PROGRESS ');
      if (p >= 0) {
        const e = out.indexOf('\n', p);
        if (e > 0) {
          latest = JSON.parse(out.slice(p + 9, e)) as LoadResult;
          // Keep the buffer small over long runs: only what follows the last progress line matters.
          out = out.slice(e + 1);
        }
      }
      const m = /RESULT (.+)\n/.exec(out);
      if (m !== null) resolve(JSON.parse(m[1]!) as LoadResult);
    });
    child.on('exit', (code) => {
      if (!/RESULT /.test(out)) reject(new Error(`load client exited ${code}: ${out}`));
    });
  });
  done.catch(() => undefined);
  return {
    started: within(started, 30, 'the load client starting'),
    mark: () => child.stdin!.write('mark\n'),
    stop: () => {
      child.stdin!.write('stop\n');
      return within(done, 30, 'the load client stopping');
    },
    done,
    latest: () => latest,
  };
}
