/** Small measuring tools of the reliability tests: percentiles, descriptor counts, deadlines. */
import { readdirSync, readFileSync } from 'node:fs';

/** Where cleanups go: a test's context (`t.after`), or a script's own list. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/** The `p`-th percentile (0–100) of `values` (nearest rank); NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Milliseconds, rounded to 0.01, for diagnostics. */
export function ms(value: number): number {
  return Math.round(value * 100) / 100;
}

/** MiB, rounded to 0.01. */
export function mib(bytes: number): number {
  return Math.round((bytes / 1048576) * 100) / 100;
}

/** The open descriptors of a process (`/proc/<pid>/fd`). */
export function fdCount(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The resident set size of a process, in bytes (`/proc/<pid>/status` VmRSS). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]) * 1024;
}

/** Rejects with `what timed out` after `seconds`, unless `promise` settles first. */
export async function within<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${seconds}s`)), seconds * 1000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `task(i)` for i in [0, total) with at most `concurrency` at a time. */
export async function pool(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}
