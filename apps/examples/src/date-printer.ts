/**
 * The reference's "display the current date with call_later()": print the date every second for 5 seconds.
 *
 * Run: `node --conditions=loopwork-source --import tsx apps/examples/src/date-printer.ts [seconds] [interval]`
 * (defaults 5 and 1, as in the reference).
 */
import { newEventLoop } from '@loopwork/core';
import type { BaseEventLoop } from '@loopwork/core';

const total = Number(process.argv[2] ?? 5);
const interval = Number(process.argv[3] ?? 1);

function displayDate(endTime: number, loop: BaseEventLoop): void {
  console.log(new Date().toISOString());
  if (loop.time() + interval < endTime) loop.callLater(interval, displayDate, endTime, loop);
  else loop.stop();
}

const loop = newEventLoop();
// Schedule the first call to displayDate().
const endTime = loop.time() + total;
loop.callSoon(displayDate, endTime, loop);
// Blocked until loop.stop() is called.
try {
  await loop.runForever();
} finally {
  loop.close();
}
