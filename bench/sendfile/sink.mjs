// The receiving end of the sendfile benchmark: connects to the server under test, reads everything into one
// reused buffer (no per-chunk allocation, so that the sink is never the bottleneck) until the server closes, and
// prints {"bytes", "seconds", "gibPerSecond"} timed from the connect to the end of the stream.
//   node bench/sendfile/sink.mjs <port> [expected bytes]
import net from 'node:net';

const [port = '25100', expected = '0'] = process.argv.slice(2);
const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
let bytes = 0;
let t0 = 0n;
const sock = net.connect({
  port: Number(port),
  host: '127.0.0.1',
  onread: {
    buffer,
    callback: (n) => {
      bytes += n;
      return true;
    },
  },
});
sock.on('connect', () => {
  t0 = process.hrtime.bigint();
});
sock.on('end', () => {
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (Number(expected) > 0 && bytes !== Number(expected)) {
    console.error(`sink: got ${bytes} bytes, expected ${expected}`);
    process.exit(1);
  }
  console.log(JSON.stringify({ bytes, seconds, gibPerSecond: bytes / 2 ** 30 / seconds }));
  sock.end();
});
sock.on('error', (e) => {
  console.error(`sink: ${e.message}`);
  process.exit(1);
});
