/**
 * The reference's "Set signal handlers for SIGINT and SIGTERM": `loop.addSignalHandler()` registers a handler
 * for each; the handler prints the signal's name and stops the loop, and the process exits 0.
 *
 * asyncio's version runs `asyncio.run(main())`, where stopping the loop ends `run()` with "Event loop stopped
 * before Future completed."; this one runs the loop with `runForever()` (for at most an hour), so that stopping
 * it is the normal way out.
 *
 * Run: `node --conditions=loopwork-source --import tsx apps/examples/src/signals.ts`, then Ctrl+C or
 * `kill -TERM <pid>`.
 *
 * @module
 */
import { newEventLoop } from '@loopwork/server';
import type { EventLoop } from '@loopwork/server';

function askExit(signame: string, loop: EventLoop): void {
  console.log(`got signal ${signame}: exit`);
  loop.stop();
}

const loop = newEventLoop();
for (const signame of ['SIGINT', 'SIGTERM'] as const) {
  loop.addSignalHandler(signame, askExit, signame, loop);
}

console.log('Event loop running for 1 hour, press Ctrl+C to interrupt.');
console.log(`pid ${process.pid}: send SIGINT or SIGTERM to exit.`);

const hour = loop.callLater(3600, () => loop.stop());
try {
  await loop.runForever();
} finally {
  hour.cancel();
  loop.close();
}
