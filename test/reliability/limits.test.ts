/**
 * Limits: `maxConnections` and `maxParked`.
 *
 * What it proves, and measures:
 * - at `maxConnections` the app stops serving new connections: they are parked (accepted, not read, their request
 *   unanswered) while the connections it serves keep their latency (p50/p99 printed);
 * - past `maxParked` more connections are closed at once;
 * - below the limit again, parked connections are admitted in arrival order and their waiting requests answered:
 *   none is lost; when all are gone the counts return to zero.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serveLocal } from './helpers/in-process.js';
import { ms, percentile, within } from './helpers/measure.js';
import { RawClient } from './helpers/raw-client.js';

const GET = 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\n';

async function until(check: () => boolean, seconds: number, what: string): Promise<void> {
  const end = performance.now() + seconds * 1000;
  while (!check()) {
    if (performance.now() > end) throw new Error(`${what}: not within ${seconds}s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('maxConnections: over the limit connections wait, the served ones keep their latency, then all are served', async (t) => {
  const MAX = 50;
  const PARKED = 20;
  const server = await serveLocal(t, { maxConnections: MAX, maxParked: PARKED, http: { keepAliveTimeout: 30 } });
  const { app } = server;
  const active = await Promise.all(Array.from({ length: MAX }, () => RawClient.connect(server.port, t)));
  for (const c of active) {
    c.write(GET);
    assert.equal((await c.response()).status, 200);
  }
  const baseline: number[] = [];
  for (let i = 0; i < 200; i++) {
    const c = active[i % MAX]!;
    const t0 = performance.now();
    c.write(GET);
    assert.equal((await c.response()).status, 200);
    baseline.push(performance.now() - t0);
  }

  // At the limit: new connections are parked, their requests wait.
  const parked = await Promise.all(Array.from({ length: PARKED }, () => RawClient.connect(server.port, t)));
  for (const c of parked) c.write(GET);
  await until(() => app.connections.parked === PARKED, 2, 'parking');
  assert.equal(app.connections.active, MAX);
  // Past maxParked: closed at once.
  const extra = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(server.port, t)));
  const t0 = performance.now();
  assert.ok((await Promise.all(extra.map((c) => c.endedWithin(2)))).every(Boolean), 'over maxParked: closed');
  const shedMs = performance.now() - t0;
  for (const c of extra) assert.equal(c.pending.length, 0, 'closed without an answer');

  // The served clients keep their latency while others wait.
  const atLimit: number[] = [];
  for (let i = 0; i < 200; i++) {
    const c = active[i % MAX]!;
    const s = performance.now();
    c.write(GET);
    assert.equal((await c.response()).status, 200);
    atLimit.push(performance.now() - s);
  }
  await new Promise((r) => setTimeout(r, 100));
  for (const c of parked) assert.equal(c.pending.length, 0, 'a parked connection is not served');
  assert.equal(app.connections.parked, PARKED);

  // Below the limit again: the parked ones are admitted in arrival order, and their requests answered.
  const admittedAt: number[] = [];
  const t1 = performance.now();
  for (let i = 0; i < PARKED; i++) {
    active[i]!.destroy();
    const r = await within(parked[i]!.response(), 2, `parked connection ${i} being served`);
    assert.equal(r.status, 200);
    admittedAt.push(performance.now() - t1);
    // Only the oldest parked connection was admitted for that one slot.
    if (i + 1 < PARKED) assert.equal(parked[i + 1]!.pending.length, 0, 'admitted in arrival order');
  }
  assert.equal(app.connections.parked, 0);
  for (const c of [...active, ...parked]) c.destroy();
  await until(() => app.connections.active === 0, 2, 'every connection gone');
  assert.deepEqual(server.errors(), []);
  const p99Before = percentile(baseline, 99);
  const p99At = percentile(atLimit, 99);
  assert.ok(p99At < Math.max(50, 10 * p99Before), `p99 at the limit ${p99At} ms (before ${p99Before} ms)`);
  t.diagnostic(
    `maxConnections ${MAX}: served clients p50 ${ms(percentile(baseline, 50))} / p99 ${ms(p99Before)} ms below the ` +
      `limit, p50 ${ms(percentile(atLimit, 50))} / p99 ${ms(p99At)} ms at it with ${PARKED} parked`,
  );
  t.diagnostic(
    `past maxParked (${PARKED}): 5 closed in ${ms(shedMs)} ms; ${PARKED} parked admitted one per freed slot, in ` +
      `order, each answered ${ms(
        percentile(
          admittedAt.map((x, i) => x - (admittedAt[i - 1] ?? 0)),
          50,
        ),
      )} ms ` +
      `(median) after its slot freed; 0 lost`,
  );
});
