/**
 * Runs an example as a user would: a child `node` process on the example's source, its output collected.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What an example printed and how it ended. */
export interface ExampleRun {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The path of an example's source file. */
export function examplePath(name: string): string {
  return fileURLToPath(new URL(`../src/${name}`, import.meta.url));
}

/** Starts an example; `onStdout` sees the output as it comes (to send signals or input). */
export function startExample(
  name: string,
  args: string[] = [],
  onStdout?: (all: string, child: ChildProcess) => void,
): Promise<ExampleRun> {
  const child = spawn(
    process.execPath,
    ['--conditions=loopwork-source', '--import', 'tsx', examplePath(name), ...args],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    onStdout?.(stdout, child);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ stdout, stderr, code, signal })));
}
