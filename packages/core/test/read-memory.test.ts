/**
 * The interval between the scavenges loopwork asks for (read-memory.ts): it grows while they are slow for the
 * memory they give back and shrinks when they are quick, between 16 and 64 MiB. The scavenges themselves are
 * tested on real connections in packages/server/test/read-memory.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextInterval } from '../src/read-memory.js';

const MiB = 1024 * 1024;

test('a scavenge that costs little for its interval keeps the interval', () => {
  // An echo server's: about 0.1 ms.
  assert.equal(nextInterval(16 * MiB, 0.12), 16 * MiB);
  assert.equal(nextInterval(32 * MiB, 2), 32 * MiB);
});

test('a slow scavenge doubles the interval, up to 64 MiB', () => {
  assert.equal(nextInterval(16 * MiB, 2), 32 * MiB);
  assert.equal(nextInterval(32 * MiB, 10), 64 * MiB);
  assert.equal(nextInterval(64 * MiB, 50), 64 * MiB);
});

test('a quick scavenge halves the interval, down to 16 MiB', () => {
  assert.equal(nextInterval(64 * MiB, 1), 32 * MiB);
  assert.equal(nextInterval(32 * MiB, 0.1), 16 * MiB);
  assert.equal(nextInterval(16 * MiB, 0), 16 * MiB);
});
