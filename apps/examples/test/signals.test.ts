import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const example = fileURLToPath(new URL('../src/signals.ts', import.meta.url));

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`signals example: ${signal} prints and stops the loop; exit code 0`, async () => {
    const child = spawn(process.execPath, ['--conditions=loopwork-source', '--import', 'tsx', example], { cwd: root });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (err += chunk));
    const closed = once(child, 'close');
    // Send the signal once the handlers are installed: the example prints its pid after installing them.
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('send SIGINT or SIGTERM to exit.\n')) resolve();
      });
    });
    child.kill(signal);
    const [code, sig] = (await closed) as [number | null, string | null];
    assert.equal(err, '');
    assert.deepEqual([code, sig], [0, null]);
    assert.equal(
      out,
      'Event loop running for 1 hour, press Ctrl+C to interrupt.\n' +
        `pid ${child.pid}: send SIGINT or SIGTERM to exit.\n` +
        `got signal ${signal}: exit\n`,
    );
  });
}
