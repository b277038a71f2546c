/**
 * The reference's "Watch a file descriptor for read events": wait until a file descriptor received some data
 * using `loop.addReader()`, then close the event loop. The socket pair comes from loopwork's native addon
 * (Python's `socket.socketpair()`).
 *
 * Run: `node --conditions=loopwork-source --import tsx apps/examples/src/watch-fd.ts`.
 *
 * @module
 */
import { native, newEventLoop } from '@loopwork/server';

// Create a pair of connected file descriptors
const [rsock, wsock] = native.socketpair();

const loop = newEventLoop();

function reader(): void {
  const data = Buffer.alloc(100);
  const n = native.recv(rsock, data);
  console.log('Received:', data.subarray(0, n).toString());

  // We are done: unregister the file descriptor
  loop.removeReader(rsock);

  // Stop the event loop
  loop.stop();
}

// Register the file descriptor for read event
loop.addReader(rsock, reader);

// Simulate the reception of data from the network
loop.callSoon(native.send, wsock, Buffer.from('abc'));

try {
  // Run the event loop
  await loop.runForever();
} finally {
  // We are done. Close sockets and the event loop.
  native.close(rsock);
  native.close(wsock);
  loop.close();
}
