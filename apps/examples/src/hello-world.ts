/**
 * The reference's "Hello World with call_soon()": schedule a callback, print, stop the loop.
 *
 * Run: `node --conditions=loopwork-source --import tsx apps/examples/src/hello-world.ts`
 */
import { newEventLoop } from '@loopwork/core';
import type { BaseEventLoop } from '@loopwork/core';

function helloWorld(loop: BaseEventLoop): void {
  console.log('Hello World');
  loop.stop();
}

const loop = newEventLoop();
// Schedule a call to helloWorld().
loop.callSoon(helloWorld, loop);
// Blocked until loop.stop() is called.
try {
  await loop.runForever();
} finally {
  loop.close();
}
