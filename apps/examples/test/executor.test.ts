import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startExample } from './run-example.js';

test('the executor example runs blockingIo in the default and a custom thread pool, cpuBound in a process pool', async () => {
  const r = await startExample('executor.ts');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3, r.stdout);
  const hundredBytes = /^<Buffer( [0-9a-f]{2}){50} \.\.\. 50 more bytes>$/;
  const [first, second, third] = lines as [string, string, string];
  assert.ok(first.startsWith('default thread pool '), first);
  assert.match(first.slice('default thread pool '.length), hundredBytes);
  assert.ok(second.startsWith('custom thread pool '), second);
  assert.match(second.slice('custom thread pool '.length), hundredBytes);
  // 100 bytes of /dev/urandom twice: equal only by a 2**-800 chance.
  assert.notEqual(first.slice(20), second.slice(19));
  // Python: sum(i * i for i in range(10 ** 7)).
  assert.equal(third, 'custom process pool 333333283333335000000');
});
