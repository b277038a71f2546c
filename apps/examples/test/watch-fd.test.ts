import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const example = fileURLToPath(new URL('../src/watch-fd.ts', import.meta.url));

test('watch-fd example: the reader gets the data written to the other socket, then the loop stops', async () => {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--conditions=loopwork-source', '--import', 'tsx', example],
    { cwd: root, timeout: 30_000 },
  );
  assert.equal(stderr, '');
  assert.equal(stdout, 'Received: abc\n');
});
