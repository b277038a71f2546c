// The receiving end of the sendfile benchmark where sink.c cannot be built: connects to the server under test,
// reads everything into one reused buffer (no per-chunk allocation) until the server closes, and prints
// {"bytes", "seconds", "gibPerSecond", "serverCpuSeconds"} timed from the connect to the end of the stream, with the
// CPU time the server process used meanwhile (null without its pid). It copies every byte out, so it fills its own
// core before a zero-copy server does (sink.c has the kernel discard them instead). First it takes `warm-up` whole
// transfers untimed, as sink.c does.
//   node bench/sendfile/sink.mjs <port> [expected bytes] [warm-up transfers] [server pid]
import net from 'node:net';
import { cpuSeconds } from '../lib/proc.mjs';

const [port = '25100', expected = '0', warmups = '0', serverPid = ''] = process.argv.slice(2);
const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);

/** One transfer: resolves to { bytes, seconds }. */
function transfer() {
  return new Promise((resolve, reject) => {
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
      sock.end();
      resolve({ bytes, seconds });
    });
    sock.on('error', reject);
  });
}

try {
  let result;
  let cpu0 = null;
  let cpu1 = null;
  for (let i = 0; i <= Number(warmups); i++) {
    cpu0 = serverPid ? cpuSeconds(serverPid) : null;
    result = await transfer();
    cpu1 = serverPid ? cpuSeconds(serverPid) : null;
    if (Number(expected) > 0 && result.bytes !== Number(expected)) {
      console.error(`sink: got ${result.bytes} bytes, expected ${expected}`);
      process.exit(1);
    }
  }
  const { bytes, seconds } = result;
  const serverCpuSeconds = cpu0 === null || cpu1 === null ? null : cpu1 - cpu0;
  console.log(JSON.stringify({ bytes, seconds, gibPerSecond: bytes / 2 ** 30 / seconds, serverCpuSeconds }));
} catch (e) {
  console.error(`sink: ${e.message}`);
  process.exit(1);
}
