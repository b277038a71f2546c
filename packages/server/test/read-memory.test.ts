/**
 * Read memory (core's read-memory.ts): after every few MiB that a transport hands to protocols, loopwork asks V8
 * for a scavenge, so that the next reads land in memory freed while still warm. Each case runs a child process
 * (the policy's state is per process) that sends 40 MiB to a server's Protocol and counts the forced scavenges.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { native } from '@loopwork/server';

const fixture = fileURLToPath(new URL('./fixtures/read-memory-child.ts', import.meta.url));

/** What the child received and how many minor collections were forced while it did. */
async function run(env: Record<string, string>): Promise<{ received: number; forced: number; gcGlobals: string[] }> {
  const child = spawn(process.execPath, ['--conditions=loopwork-source', '--import', 'tsx', fixture, '40'], {
    env: { ...process.env, LOOPWORK_READ_GC: '', LOOPWORK_TRANSPORT: '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [status] = (await once(child, 'exit')) as [number | null];
  assert.equal(status, 0);
  return JSON.parse(out) as { received: number; forced: number; gcGlobals: string[] };
}

const transports = [
  { name: 'FdTransport', env: {}, skip: !native.nativeAvailable() },
  { name: 'SocketTransport', env: { LOOPWORK_TRANSPORT: 'socket' }, skip: false },
];

for (const { name, env, skip } of transports) {
  test(`${name}: reads of 40 MiB make loopwork ask for scavenges`, { skip }, async () => {
    const { received, forced, gcGlobals } = await run(env);
    assert.equal(received, 40 * 1024 * 1024);
    // The first comes after 16 MiB; the interval may then grow while the young generation is full of start-up.
    assert.ok(forced >= 1, `forced scavenges: ${forced}`);
    // Neither a context made afterwards nor the main one got a `gc` global.
    assert.deepEqual(gcGlobals, ['undefined', 'undefined']);
  });

  test(`${name}: LOOPWORK_READ_GC=0 turns them off`, { skip }, async () => {
    const { received, forced } = await run({ ...env, LOOPWORK_READ_GC: '0' });
    assert.equal(received, 40 * 1024 * 1024);
    assert.equal(forced, 0);
  });
}
