/**
 * What `npm start` runs: the flagship example. Until the service framework lands, it shows the loop working:
 * the reference's hello world with `callSoon`, then the date printer with `callLater` until Ctrl-C.
 */
import { KeyboardInterrupt, getRunningLoop, run, sleep } from '@loopwork/core';

try {
  await run(async () => {
    const loop = getRunningLoop();
    loop.callSoon(() => console.log('Hello World (callSoon)'));
    console.log('loopwork flagship: printing the date every second; Ctrl-C to stop');
    for (;;) {
      console.log(`${new Date().toISOString()}  loop.time()=${loop.time().toFixed(3)}`);
      await sleep(1);
    }
  });
} catch (e) {
  if (!KeyboardInterrupt.isInstance(e)) throw e;
  console.log('stopped');
}
