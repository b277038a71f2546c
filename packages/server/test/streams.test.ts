import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import {
  CancelledError,
  BrokenPipeError,
  ConnectionResetError,
  FlowControlMixin,
  IncompleteReadError,
  LimitOverrunError,
  OSError,
  PROTOCOL_TLS_CLIENT,
  PROTOCOL_TLS_SERVER,
  SSLContext,
  RuntimeError,
  StreamReader,
  StreamReaderProtocol,
  StreamWriter,
  SocketTransport,
  TimeoutError,
  ValueError,
  gather,
  getRunningLoop,
  newEventLoop,
  openConnection,
  openUnixConnection,
  sleep,
  startServer,
  startUnixServer,
  waitFor,
} from '@loopwork/server';
import type { BaseEventLoop, Server, Task, Transport } from '@loopwork/server';
import { runLoop, settle } from './helpers.js';

/** A promise for a loop Future (node:assert wants a real Promise). */
const DATA = Buffer.from('line1\nline2\nline3\n');
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A reader with no transport, on a loop that is not running (for the synchronous parts of the port). */
function reader(limit?: number): StreamReader {
  const loop = newEventLoop();
  return new StreamReader(limit === undefined ? { loop } : { loop, limit });
}

// ---------------------------------------------------------------------------------------------------------
// Streams over a real TCP connection: core's SocketTransport on both ends of a connected net.Socket pair.

interface Pair {
  client: [StreamReader, StreamWriter];
  server: [StreamReader, StreamWriter];
  clientTransport: SocketTransport;
  serverTransport: SocketTransport;
  clientSocket: net.Socket;
  serverSocket: net.Socket;
}

/** A TCP connection on 127.0.0.1 with streams on both ends; closed when the test ends. */
async function streamPair(
  loop: BaseEventLoop,
  options: { clientLimit?: number; serverLimit?: number } = {},
): Promise<Pair> {
  const srv = net.createServer({ allowHalfOpen: true });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  const accepted = once(srv, 'connection');
  const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(c, 'connect');
  const [s] = (await accepted) as [net.Socket];
  srv.close();
  const make = (sock: net.Socket, limit: number | undefined) => {
    const r = new StreamReader(limit === undefined ? { loop } : { loop, limit });
    const p = new StreamReaderProtocol(r, null, { loop });
    const t = new SocketTransport(loop, sock, p);
    return { r, p, t };
  };
  const cl = make(c, options.clientLimit);
  const sv = make(s, options.serverLimit);
  await sleep(0); // connectionMade runs
  return {
    client: [cl.r, new StreamWriter(cl.t, cl.p, cl.r, loop)],
    server: [sv.r, new StreamWriter(sv.t, sv.p, sv.r, loop)],
    clientTransport: cl.t,
    serverTransport: sv.t,
    clientSocket: c,
    serverSocket: s,
  };
}

function closePair(p: Pair): void {
  p.clientSocket.destroy();
  p.serverSocket.destroy();
}

// ---------------------------------------------------------------------------------------------------------
// StreamReader, ported from CPython's Lib/test/test_asyncio/test_streams.py

describe('StreamReader (test_streams.py)', () => {
  test('feedData: empty data is ignored, data is buffered', () => {
    const s = reader();
    s.feedData(b(''));
    assert.deepEqual(s._buffer, b(''));
    s.feedData(DATA);
    assert.deepEqual(s._buffer, DATA);
  });

  test('feedData refuses a string and data after EOF', () => {
    const s = reader();
    assert.throws(() => s.feedData('abc' as never), TypeError);
    s.feedEof();
    assert.throws(() => s.feedData(b('x')), RuntimeError);
  });

  test('read(0) returns empty and leaves the buffer', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(DATA);
      assert.deepEqual(await s.read(0), b(''));
      assert.deepEqual(s._buffer, DATA);
    }));

  test('read(n) waits for data', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const t = loop.createTask(() => s.read(30));
      loop.callSoon(() => s.feedData(DATA));
      assert.deepEqual(await t, DATA);
      assert.deepEqual(s._buffer, b(''));
    }));

  test('read(n) takes at most n bytes', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('line1'));
      s.feedData(b('line2'));
      assert.deepEqual(await s.read(5), b('line1'));
      assert.deepEqual(s._buffer, b('line2'));
      s.feedData(b('abc'));
      assert.deepEqual(await s.read(7), b('line2ab'));
      assert.deepEqual(s._buffer, b('c'));
    }));

  test('read(n) at EOF returns empty', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const t = loop.createTask(() => s.read(1024));
      loop.callSoon(() => s.feedEof());
      assert.deepEqual(await t, b(''));
      assert.deepEqual(s._buffer, b(''));
    }));

  test('read() reads until EOF', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const t = loop.createTask(() => s.read());
      loop.callSoon(() => {
        s.feedData(b('chunk1\n'));
        s.feedData(b('chunk2'));
        s.feedEof();
      });
      assert.deepEqual(await t, b('chunk1\nchunk2'));
      assert.deepEqual(s._buffer, b(''));
    }));

  test('read() with more than the limit pending does not deadlock', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop, limit: 1 });
      const paused: string[] = [];
      s.setTransport({ pauseReading: () => paused.push('p'), resumeReading: () => paused.push('r') } as never);
      const t = loop.createTask(() => s.read(-1));
      loop.callSoon(() => {
        s.feedData(b('data'));
        s.feedData(b('more'));
        s.feedEof();
      });
      assert.deepEqual(await t, b('datamore'));
      assert.deepEqual(paused, ['p', 'r']);
    }));

  test('read throws the exception set on the stream', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('line\n'));
      assert.deepEqual(await s.read(2), b('li'));
      const err = new Error('boom');
      s.setException(err);
      await assert.rejects(s.read(2), (e) => e === err);
      assert.equal(s.exception(), err);
    }));

  test('invalid limit', () => {
    const loop = newEventLoop();
    assert.throws(() => new StreamReader({ loop, limit: 0 }), { name: 'ValueError', message: /imit/ });
    assert.throws(() => new StreamReader({ loop, limit: -1 }), { name: 'ValueError', message: /imit/ });
    assert.throws(() => new StreamReader({ loop, limit: 'x' as never }), TypeError);
    // read() reads limit-sized blocks: a fractional limit would split a byte.
    assert.throws(() => new StreamReader({ loop, limit: 1.5 }), { name: 'TypeError', message: /integer/ });
    assert.equal(new StreamReader({ loop, limit: Infinity })._limit, Infinity);
  });

  test('read and readexactly refuse a size that is not an integer, and the buffer stays whole', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('abcdef'));
      s.feedEof();
      for (const n of [1.5, Number.NaN, Infinity, '2']) {
        await assert.rejects(s.read(n as number), { name: 'TypeError', message: /read\(\) size must be an integer/ });
        await assert.rejects(s.readexactly(n as number), {
          name: 'TypeError',
          message: /readexactly\(\) size must be an integer/,
        });
      }
      // Python's slices take integers only; a fraction here used to drop a byte (read(1.5) left 4.5 counted).
      assert.equal(s._len, 6);
      assert.deepEqual(await s.read(), b('abcdef'));
    }));

  test('read and readexactly are not bounded by the limit', () =>
    runLoop(async (loop) => {
      let s = new StreamReader({ loop, limit: 3 });
      s.feedData(b('chunk'));
      assert.deepEqual(await s.read(5), b('chunk'));
      assert.deepEqual(s._buffer, b(''));
      s = new StreamReader({ loop, limit: 3 });
      s.feedData(b('chunk'));
      assert.deepEqual(await s.readexactly(5), b('chunk'));
      assert.deepEqual(s._buffer, b(''));
    }));

  test('readline waits for the end of the line', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('chunk1 '));
      const t = loop.createTask(() => s.readline());
      loop.callSoon(() => {
        s.feedData(b('chunk2 '));
        s.feedData(b('chunk3 '));
        s.feedData(b('\n chunk4'));
      });
      assert.deepEqual(await t, b('chunk1 chunk2 chunk3 \n'));
      assert.deepEqual(s._buffer, b(' chunk4'));
    }));

  test('readline over the limit with the data already buffered', () =>
    runLoop(async (loop) => {
      let s = new StreamReader({ loop, limit: 3 });
      s.feedData(b('li'));
      s.feedData(b('ne1\nline2\n'));
      await assert.rejects(s.readline(), ValueError);
      // The line that was too long is gone, the next one stays.
      assert.deepEqual(s._buffer, b('line2\n'));

      s = new StreamReader({ loop, limit: 3 });
      s.feedData(b('li'));
      s.feedData(b('ne1'));
      s.feedData(b('li'));
      await assert.rejects(s.readline(), ValueError);
      // No end of line within the limit: the whole buffer is dropped.
      assert.deepEqual(s._buffer, b(''));
    }));

  test('atEof', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      assert.equal(s.atEof(), false);
      s.feedData(b('some data\n'));
      assert.equal(s.atEof(), false);
      await s.readline();
      assert.equal(s.atEof(), false);
      s.feedData(b('some data\n'));
      s.feedEof();
      await s.readline();
      assert.equal(s.atEof(), true);
    }));

  test('readline over the limit with data fed while waiting', () =>
    runLoop(async (loop) => {
      let s = new StreamReader({ loop, limit: 7 });
      loop.callSoon(() => {
        s.feedData(b('chunk1'));
        s.feedData(b('chunk2'));
        s.feedData(b('chunk3\n'));
        s.feedEof();
      });
      await assert.rejects(s.readline(), ValueError);
      assert.deepEqual(s._buffer, b(''));

      s = new StreamReader({ loop, limit: 7 });
      loop.callSoon(() => {
        s.feedData(b('chunk1'));
        s.feedData(b('chunk2\n'));
        s.feedData(b('chunk3\n'));
        s.feedEof();
      });
      await assert.rejects(s.readline(), ValueError);
      assert.deepEqual(s._buffer, b('chunk3\n'));

      // The limit is strict: it counts the line without its separator.
      s = new StreamReader({ loop, limit: 7 });
      s.feedData(b('1234567\n'));
      assert.deepEqual(await s.readline(), b('1234567\n'));
      assert.deepEqual(s._buffer, b(''));
      s.feedData(b('12345678\n'));
      await assert.rejects(
        s.readline(),
        (e: Error) => ValueError.isInstance(e) && LimitOverrunError.isInstance(e.cause),
      );
      assert.deepEqual(s._buffer, b(''));
      s.feedData(b('12345678'));
      await assert.rejects(s.readline(), ValueError);
      assert.deepEqual(s._buffer, b(''));
    }));

  test('readline with everything buffered, then read', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(DATA.subarray(0, 6));
      s.feedData(DATA.subarray(6));
      assert.deepEqual(await s.readline(), b('line1\n'));
      assert.deepEqual(s._buffer, b('line2\nline3\n'));
      assert.deepEqual(await s.read(7), b('line2\nl'));
      assert.deepEqual(s._buffer, b('ine3\n'));
    }));

  test('readline at EOF: the partial line, then empty', () =>
    runLoop(async (loop) => {
      let s = new StreamReader({ loop });
      s.feedData(b('some data'));
      s.feedEof();
      assert.deepEqual(await s.readline(), b('some data'));
      s = new StreamReader({ loop });
      s.feedEof();
      assert.deepEqual(await s.readline(), b(''));
    }));

  test('readline throws the exception set on the stream', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('line\n'));
      assert.deepEqual(await s.readline(), b('line\n'));
      const err = new Error('x');
      s.setException(err);
      await assert.rejects(s.readline(), (e) => e === err);
      assert.deepEqual(s._buffer, b(''));
    }));

  test('readuntil refuses empty separators', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      await assert.rejects(s.readuntil(b('')), { name: 'ValueError', message: /Separator should be/ });
      await assert.rejects(s.readuntil([b('')]), { name: 'ValueError', message: /Separator should be/ });
      await assert.rejects(s.readuntil([]), { name: 'ValueError', message: /Separator should contain/ });
      await assert.rejects(s.readuntil(42 as never), TypeError);
    }));

  test('readuntil across chunks', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('lineAAA'));
      assert.deepEqual(await s.readuntil(b('AAA')), b('lineAAA'));
      assert.deepEqual(s._buffer, b(''));
      s.feedData(b('lineAAA'));
      assert.deepEqual(await s.readuntil('AAA'), b('lineAAA'));
      assert.deepEqual(s._buffer, b(''));
      s.feedData(b('lineAAAxxx'));
      assert.deepEqual(await s.readuntil(b('AAA')), b('lineAAA'));
      assert.deepEqual(s._buffer, b('xxx'));
    }));

  test('readuntil: a separator split over chunks', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('QWEaa'));
      s.feedData(b('XYaa'));
      s.feedData(b('a'));
      assert.deepEqual(await s.readuntil(b('aaa')), b('QWEaaXYaaa'));
      assert.deepEqual(s._buffer, b(''));
      s.feedData(b('QWEaa'));
      s.feedData(b('XYa'));
      s.feedData(b('aa'));
      assert.deepEqual(await s.readuntil(b('aaa')), b('QWEaaXYaaa'));
      assert.deepEqual(s._buffer, b(''));
      s.feedData(b('aaa'));
      assert.deepEqual(await s.readuntil(b('aaa')), b('aaa'));
      s.feedData(b('Xaaa'));
      assert.deepEqual(await s.readuntil(b('aaa')), b('Xaaa'));
      s.feedData(b('XXX'));
      s.feedData(b('a'));
      s.feedData(b('a'));
      s.feedData(b('a'));
      assert.deepEqual(await s.readuntil(b('aaa')), b('XXXaaa'));
      assert.deepEqual(s._buffer, b(''));
    }));

  test('readuntil: a separator completed by data fed while waiting, one byte at a time', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('xyzSEPARAT'));
      const t = loop.createTask(() => s.readuntil(b('SEPARATOR')));
      for (const ch of 'OR--') loop.callSoon(() => s.feedData(b(ch)));
      assert.deepEqual(await t, b('xyzSEPARATOR'));
      assert.deepEqual(s._buffer, b('--'));
    }));

  test('readuntil at EOF: IncompleteReadError with the partial data', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('some dataAA'));
      s.feedEof();
      await assert.rejects(s.readuntil(b('AAA')), (e: any) => {
        assert.ok(e instanceof IncompleteReadError);
        assert.match(e.message, /undefined expected bytes/);
        assert.deepEqual(e.partial, b('some dataAA'));
        assert.equal(e.expected, null);
        return true;
      });
      assert.deepEqual(s._buffer, b(''));
    }));

  test('readuntil over the limit keeps the data (found and not found)', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop, limit: 3 });
      s.feedData(b('some dataAA'));
      await assert.rejects(s.readuntil(b('AAA')), (e: any) => {
        assert.ok(e instanceof LimitOverrunError);
        assert.match(e.message, /not found/);
        assert.equal(e.consumed, 9);
        return true;
      });
      assert.deepEqual(s._buffer, b('some dataAA'));
      s.feedData(b('A'));
      await assert.rejects(s.readuntil(b('AAA')), (e: any) => {
        assert.match(e.message, /is found/);
        assert.equal(e.consumed, 9);
        return true;
      });
      assert.deepEqual(s._buffer, b('some dataAAA'));
    }));

  test('readuntil with several separators: the earliest end wins', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('line 1\nline 2\r'));
      assert.deepEqual(await s.readuntil([b('\r'), b('\n')]), b('line 1\n'));
      assert.deepEqual(await s.readuntil(['\r', '\n']), b('line 2\r'));
      assert.deepEqual(s._buffer, b(''));
      // The first end position wins, even for a longer separator.
      s.feedData(b('ABCDEFG'));
      assert.deepEqual(await s.readuntil([b('DEF'), b('BCDE')]), b('ABCDE'));
      assert.deepEqual(s._buffer, b('FG'));
      // Equal ends: the shorter separator wins.
      s.feedData(b('xxabc'));
      assert.deepEqual(await s.readuntil([b('abc'), b('bc')]), b('FGxxabc'));
    }));

  test('readuntil with several separators over the limit', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop, limit: 3 });
      s.feedData(b('some dataA'));
      await assert.rejects(s.readuntil([b('A'), b('ome dataA')]), { name: 'LimitOverrunError', message: /is found/ });
      assert.deepEqual(s._buffer, b('some dataA'));
    }));

  test('readuntil with several separators: the offset never goes negative', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('data'));
      const t = loop.createTask(() => s.readuntil([b('A'), b('long sep')]));
      loop.callSoon(() => s.feedData(b('Z')));
      loop.callSoon(() => s.feedData(b('Aaaa')));
      assert.deepEqual(await t, b('dataZA'));
      assert.deepEqual(s._buffer, b('aaa'));
    }));

  test('readexactly(0) and a negative size', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(DATA);
      assert.deepEqual(await s.readexactly(0), b(''));
      assert.deepEqual(s._buffer, DATA);
      await assert.rejects(s.readexactly(-1), { name: 'ValueError', message: /less than zero/ });
      assert.deepEqual(s._buffer, DATA);
    }));

  test('readexactly waits for n bytes', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const n = 2 * DATA.length;
      const t = loop.createTask(() => s.readexactly(n));
      loop.callSoon(() => {
        s.feedData(DATA);
        s.feedData(DATA);
        s.feedData(DATA);
      });
      assert.deepEqual(await t, Buffer.concat([DATA, DATA]));
      assert.deepEqual(s._buffer, DATA);
    }));

  test('readexactly at EOF: IncompleteReadError', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const n = 2 * DATA.length;
      const t = loop.createTask(() => s.readexactly(n));
      loop.callSoon(() => {
        s.feedData(DATA);
        s.feedEof();
      });
      await assert.rejects(settle(t), (e: any) => {
        assert.ok(e instanceof IncompleteReadError);
        assert.deepEqual(e.partial, DATA);
        assert.equal(e.expected, n);
        assert.equal(e.message, '18 bytes read on a total of 36 expected bytes');
        return true;
      });
      assert.deepEqual(s._buffer, b(''));
    }));

  test('readexactly throws the exception set on the stream', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('line\n'));
      assert.deepEqual(await s.readexactly(2), b('li'));
      const err = new Error('x');
      s.setException(err);
      await assert.rejects(s.readexactly(2), (e) => e === err);
    }));

  test('setException wakes a waiting read', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const t1 = loop.createTask(() => s.readline());
      const err = new Error('x');
      const t2 = loop.createTask(async () => s.setException(err));
      await gather(t1, t2, { returnExceptions: true });
      assert.equal(t1.exception(), err);
    }));

  test('setException after a cancelled read', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const t = loop.createTask(() => s.readline());
      await sleep(0);
      t.cancel();
      await sleep(0);
      s.setException(new Error('message'));
      await sleep(0);
      assert.equal(s._waiter, null);
      assert.ok(t.cancelled());
    }));

  test('two reads waiting at once are refused', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const t = loop.createTask(() => s.read(1));
      await sleep(0);
      await assert.rejects(s.readline(), {
        name: 'RuntimeError',
        message: 'readuntil() called while another coroutine is already waiting for incoming data',
      });
      s.feedData(b('x'));
      assert.deepEqual(await t, b('x'));
    }));

  test('inspect', () => {
    const loop = newEventLoop();
    assert.equal(inspect(new StreamReader({ loop })), '<StreamReader>');
    assert.equal(inspect(new StreamReader({ loop, limit: 123 })), '<StreamReader limit=123>');
    let s = new StreamReader({ loop });
    s.feedEof();
    assert.equal(inspect(s), '<StreamReader eof>');
    s = new StreamReader({ loop });
    s.feedData(b('data'));
    assert.equal(inspect(s), '<StreamReader 4 bytes>');
    s = new StreamReader({ loop });
    s.setException(new RangeError('bad'));
    assert.match(inspect(s), /^<StreamReader exception=RangeError: bad/);
  });

  test('the errors carry their fields', () => {
    const e = new IncompleteReadError(b('abc'), 10);
    assert.equal(e.message, '3 bytes read on a total of 10 expected bytes');
    assert.equal(e.code, 'ERR_LOOPWORK_INCOMPLETE_READ');
    const l = new LimitOverrunError('message', 10);
    assert.equal(l.consumed, 10);
  });
});

describe('StreamReader flow control and cancellation', () => {
  test('pauses the transport above twice the limit and resumes at the limit', () =>
    runLoop(async (loop) => {
      const calls: string[] = [];
      const transport = {
        pauseReading: () => calls.push('pause'),
        resumeReading: () => calls.push('resume'),
      } as unknown as Transport;
      const s = new StreamReader({ loop, limit: 10 });
      s.setTransport(transport);
      assert.throws(() => s.setTransport(transport), { message: 'Transport already set' });
      s.feedData(Buffer.alloc(20));
      assert.deepEqual(calls, []);
      s.feedData(Buffer.alloc(1));
      assert.deepEqual(calls, ['pause']);
      s.feedData(Buffer.alloc(100)); // paused already: no second call
      assert.deepEqual(calls, ['pause']);
      await s.read(100);
      assert.deepEqual(calls, ['pause']); // 21 bytes left, over the limit
      await s.read(11);
      assert.deepEqual(calls, ['pause', 'resume']);
      assert.match(inspect(s), /10 bytes limit=10/);
    }));

  test('a read that must wait resumes a paused transport (readexactly beyond the limit)', () =>
    runLoop(async (loop) => {
      const calls: string[] = [];
      const s = new StreamReader({ loop, limit: 2 });
      s.setTransport({ pauseReading: () => calls.push('pause'), resumeReading: () => calls.push('resume') } as never);
      s.feedData(b('12345'));
      assert.deepEqual(calls, ['pause']);
      const t = loop.createTask(() => s.readexactly(8));
      await sleep(0);
      assert.deepEqual(calls, ['pause', 'resume']);
      s.feedData(b('678'));
      assert.deepEqual(await t, b('12345678'));
    }));

  test('a transport without pauseReading is forgotten, and everything is buffered', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop, limit: 1 });
      s.setTransport({} as Transport);
      s.feedData(b('abc'));
      assert.equal(s._transport, null);
      assert.equal(s._paused, false);
    }));

  test('a cancelled read loses no data', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      s.feedData(b('12345'));
      const t = loop.createTask(() => s.readexactly(10));
      await sleep(0);
      assert.ok(s._waiter !== null);
      t.cancel();
      await assert.rejects(settle(t), CancelledError);
      assert.equal(s._waiter, null);
      s.feedData(b('67890'));
      assert.deepEqual(await s.readexactly(10), b('1234567890'));

      // Cancelled by a timeout while data arrives in pieces.
      s.feedData(b('part'));
      await assert.rejects(
        waitFor(() => s.readline(), 0.01),
        TimeoutError,
      );
      s.feedData(b('ial\n'));
      assert.deepEqual(await s.readline(), b('partial\n'));

      // Cancelled in the same iteration as the data arrives: the data is still there.
      const t2 = loop.createTask(() => s.read(100));
      await sleep(0);
      s.feedData(b('late'));
      t2.cancel();
      await assert.rejects(settle(t2), CancelledError);
      assert.deepEqual(await s.read(100), b('late'));
    }));

  test("waitFor(reader.readline(), t) with the read's promise times out at t, and loses no data", () =>
    runLoop(async (loop) => {
      // JavaScript started the read already (asyncio's wait_for would get the coroutine): its promise is
      // cancellable at its wait, so the idiom keeps asyncio's meaning.
      const s = new StreamReader({ loop });
      s.feedData(b('part'));
      const t0 = loop.time();
      await assert.rejects(waitFor(s.readline(), 0.05), TimeoutError);
      assert.ok(loop.time() - t0 < 1, `timed out after ${loop.time() - t0} s`);
      assert.equal(s._waiter, null);
      await assert.rejects(waitFor(new StreamReader({ loop }).read(10), 0.01), TimeoutError);
      await assert.rejects(waitFor(s.readexactly(10), 0.01), TimeoutError);
      await assert.rejects(waitFor(s.readuntil(b('!')), 0.01), TimeoutError);
      s.feedData(b('ial\n'));
      assert.deepEqual(await s.readline(), b('partial\n'));
      // A read that does not wait is a plain promise, and gives its data.
      s.feedData(b('ready\n'));
      assert.deepEqual(await waitFor(s.readline(), 0.05), b('ready\n'));
    }));

  test('async iteration over lines', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      loop.callSoon(() => {
        s.feedData(b('one\ntw'));
        s.feedData(b('o\nthree'));
        s.feedEof();
      });
      const lines: string[] = [];
      for await (const line of s) lines.push(line.toString());
      assert.deepEqual(lines, ['one\n', 'two\n', 'three']);
    }));
});

// ---------------------------------------------------------------------------------------------------------
// Writers and protocols over a real TCP connection

describe('StreamWriter over TCP', () => {
  test('write, writelines, readline, read to EOF, writeEof (half-close)', (t) =>
    runLoop(async (loop, errors) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      const [cr, cw] = p.client;
      const [sr, sw] = p.server;
      cw.write(b('hello\n'));
      cw.writelines([b('wor'), b('ld\n')]);
      await cw.drain();
      assert.deepEqual(await sr.readline(), b('hello\n'));
      assert.deepEqual(await sr.readline(), b('world\n'));
      assert.ok(cw.canWriteEof());
      cw.writeEof();
      assert.deepEqual(await sr.read(), b(''));
      assert.ok(sr.atEof());
      // The other direction still works after the client's EOF.
      sw.write(b('reply'));
      sw.close();
      assert.ok(sw.isClosing());
      assert.deepEqual(await cr.read(), b('reply'));
      await sw.waitClosed();
      await cw.waitClosed();
      assert.deepEqual(errors, []);
    }));

  test('getExtraInfo and transport', (t) =>
    runLoop(async (loop) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      const [, cw] = p.client;
      const [, sw] = p.server;
      assert.equal(cw.transport, p.clientTransport);
      assert.deepEqual(cw.getExtraInfo('peername'), sw.getExtraInfo('sockname'));
      assert.equal((cw.getExtraInfo('socket') as any).getsockname()[1], p.clientSocket.localPort);
      assert.equal(cw.getExtraInfo('nonexistent', 'dflt'), 'dflt');
      assert.match(inspect(cw), /^<StreamWriter transport=.* reader=<StreamReader transport=/);
    }));

  test('drain waits while a slow reader keeps the writer paused, then resumes', (t) =>
    runLoop(async (loop) => {
      const p = await streamPair(loop, { clientLimit: 1024 });
      t.after(() => closePair(p));
      const [cr] = p.client;
      const [, sw] = p.server;
      const proto = p.serverTransport.getProtocol() as StreamReaderProtocol;
      const events: string[] = [];
      const origPause = proto.pauseWriting.bind(proto);
      const origResume = proto.resumeWriting.bind(proto);
      proto.pauseWriting = () => (events.push('pause'), origPause());
      proto.resumeWriting = () => (events.push('resume'), origResume());

      const total = 8 * 1024 * 1024;
      sw.write(Buffer.alloc(total, 7));
      assert.deepEqual(events, ['pause']);
      let drained = false;
      const drain = loop.createTask(async () => {
        await sw.drain();
        drained = true;
      });
      // The client reads nothing: the server stays paused, however many iterations pass.
      for (let i = 0; i < 20; i++) await sleep(0);
      assert.equal(drained, false);
      assert.ok(p.clientTransport.isReading() === false || cr._len > 0);
      // waitFor(writer.drain(), t) with drain()'s promise times out at t; the other drain() waits on.
      const t0 = loop.time();
      await assert.rejects(waitFor(sw.drain(), 0.05), TimeoutError);
      assert.ok(loop.time() - t0 < 1, `timed out after ${loop.time() - t0} s`);
      assert.equal(drained, false);
      // Now the client reads everything; drain() returns once the buffer is under the low-water mark.
      const got = await cr.readexactly(total);
      assert.equal(got.length, total);
      await drain;
      assert.equal(drained, true);
      assert.deepEqual(events, ['pause', 'resume']);
      // Not paused any more: drain() returns at once, without giving the loop a turn (as asyncio's).
      let ranMeanwhile = false;
      loop.callSoon(() => (ranMeanwhile = true));
      await sw.drain();
      assert.equal(ranMeanwhile, false);
    }));

  test('several writers wait in drain() and all wake', () =>
    runLoop(async (loop) => {
      const proto = new FlowControlMixin(loop);
      let drained = 0;
      proto.pauseWriting();
      loop.callLater(0.01, () => proto.resumeWriting());
      await gather(
        ...Array.from({ length: 10 }, () =>
          loop.createTask(async () => {
            await proto._drainHelper();
            drained++;
          }),
        ),
      );
      assert.equal(drained, 10);
      assert.throws(() => proto.resumeWriting(), RuntimeError);
    }));

  test('connection lost while paused: drain() throws its error', () =>
    runLoop(async (loop) => {
      const proto = new FlowControlMixin(loop);
      proto.pauseWriting();
      const err = new Error('reset');
      const t = loop.createTask(() => proto._drainHelper());
      await sleep(0);
      proto.connectionLost(err);
      await assert.rejects(settle(t), (e) => e === err);
      await assert.rejects(proto._drainHelper(), { name: 'ConnectionResetError', message: 'Connection lost' });
    }));

  test('drain() on a connection the peer closed raises instead of looping forever', (t) =>
    runLoop(async (loop, errors) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      const [, cw] = p.client;
      p.serverSocket.destroy();
      await assert.rejects(
        (async () => {
          for (;;) {
            cw.write(b('foo\n'));
            await cw.drain();
          }
        })(),
        // asyncio's: ConnectionResetError or BrokenPipeError, both OSErrors.
        (e: any) => ConnectionResetError.isInstance(e) || BrokenPipeError.isInstance(e),
      );
      assert.deepEqual(errors, []);
    }));

  test('a peer reset: read() and waitClosed() raise ConnectionResetError [Errno 104], as asyncio', (t) =>
    runLoop(async (loop) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      const [cr, cw] = p.client;
      p.serverSocket.resetAndDestroy();
      const isReset = (e: any): boolean =>
        ConnectionResetError.isInstance(e) &&
        OSError.isInstance(e) &&
        e.message === '[Errno 104] Connection reset by peer' &&
        e.code === 'ECONNRESET';
      await assert.rejects(cr.read(), isReset);
      cw.close();
      await assert.rejects(cw.waitClosed(), isReset);
    }));

  test('write then drain after close raises ConnectionResetError', (t) =>
    runLoop(async (loop) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      const [cr, cw] = p.client;
      p.server[1].close();
      assert.deepEqual(await cr.read(), b(''));
      cw.close();
      await cw.waitClosed();
      cw.write(b('data'));
      await assert.rejects(cw.drain(), { name: 'ConnectionResetError' });
    }));

  test('after the peer closes, waitClosed returns and the reader is at EOF', (t) =>
    runLoop(async (loop, errors) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      const [cr, cw] = p.client;
      cw.close();
      await cw.waitClosed();
      assert.ok(cr.atEof());
      assert.deepEqual(await cr.read(), b(''));
      assert.deepEqual(errors, []);
    }));

  test('a connection lost with an error: reads throw it, drain throws it, waitClosed throws it', () =>
    runLoop(async (loop) => {
      const s = new StreamReader({ loop });
      const proto = new StreamReaderProtocol(s, null, { loop });
      const fake = { getExtraInfo: () => undefined, isClosing: () => true } as unknown as Transport;
      proto.connectionMade(fake);
      const w = new StreamWriter(fake, proto, s, loop);
      const err = new Error('ZeroDivisionError');
      proto.connectionLost(err);
      await assert.rejects(s.read(), (e) => e === err);
      await assert.rejects(w.drain(), (e) => e === err);
      await assert.rejects(w.waitClosed(), (e) => e === err);
    }));

  test('await using closes the writer and waits', (t) =>
    runLoop(async (loop) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      const [cr] = p.client;
      {
        await using w = p.server[1];
        w.write(b('bye'));
      }
      assert.ok(p.server[1].isClosing());
      assert.deepEqual(await cr.read(), b('bye'));
    }));

  test('startTls without loop.startTls is a clear error', (t) =>
    runLoop(async (loop) => {
      const p = await streamPair(loop);
      t.after(() => closePair(p));
      // As if @loopwork/tls were not loaded: the instance hides the prototype's method.
      Object.defineProperty(loop, 'startTls', { value: undefined, configurable: true });
      await assert.rejects(p.client[1].startTls({} as never), {
        name: 'RuntimeError',
        message: /needs loop\.startTls\(\), which @loopwork\/tls installs/,
      });
    }));

  test('startTls hands the transport to loop.startTls with the writer side and options', () =>
    runLoop(async (loop) => {
      const calls: unknown[][] = [];
      const newTransport = { getExtraInfo: (k: string) => (k === 'sslcontext' ? 'ctx' : undefined) };
      (loop as any).startTls = async function (this: BaseEventLoop, ...args: unknown[]) {
        calls.push([this, ...args]);
        return newTransport;
      };
      const s = new StreamReader({ loop });
      let writer!: StreamWriter;
      const proto = new StreamReaderProtocol(s, (_r, w) => void (writer = w), { loop });
      const old = { getExtraInfo: () => undefined, isClosing: () => false } as unknown as Transport;
      proto.connectionMade(old);
      await writer.startTls('ctx' as never, { serverHostname: 'h', sslHandshakeTimeout: 5, sslShutdownTimeout: 6 });
      assert.deepEqual(calls, [
        [
          loop,
          old,
          proto,
          'ctx',
          { serverSide: true, serverHostname: 'h', sslHandshakeTimeout: 5, sslShutdownTimeout: 6 },
        ],
      ]);
      assert.equal(writer.transport, newTransport);
      assert.equal(proto._transport, newTransport);
      assert.equal(proto.eofReceived(), false); // over TLS now: no half-close
    }));
});

describe('StreamReaderProtocol client-connected callback', () => {
  function serve(loop: BaseEventLoop, cb: (r: StreamReader, w: StreamWriter) => unknown) {
    return (sock: net.Socket) => {
      const r = new StreamReader({ loop });
      const p = new StreamReaderProtocol(r, cb as never, { loop });
      return new SocketTransport(loop, sock, p);
    };
  }

  async function connectTo(handler: (s: net.Socket) => unknown, t: any): Promise<net.Socket> {
    const srv = net.createServer({ allowHalfOpen: true }, handler);
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    t.after(() => srv.close());
    const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    t.after(() => c.destroy());
    await once(c, 'connect');
    return c;
  }

  test('an async callback runs as a task; a sync callback is called', (t) =>
    runLoop(async (loop, errors) => {
      const seen: string[] = [];
      const done = loop.createFuture<void>();
      const c = await connectTo(
        serve(loop, async (r, w) => {
          seen.push(`task:${getRunningLoop() === loop}`);
          const line = await r.readline();
          w.write(line);
          await w.drain();
          w.close();
          await w.waitClosed();
          done.setResult(undefined);
        }),
        t,
      );
      c.write('hello world!\n');
      const chunks: Buffer[] = [];
      c.on('data', (d) => chunks.push(d));
      await once(c, 'end');
      await done;
      assert.equal(Buffer.concat(chunks).toString(), 'hello world!\n');
      assert.deepEqual(seen, ['task:true']);

      let syncCalled = 0;
      const c2 = await connectTo(
        serve(loop, (_r, w) => {
          syncCalled++;
          w.write(b('hi'));
          w.close();
        }),
        t,
      );
      const got: Buffer[] = [];
      c2.on('data', (d) => got.push(d));
      await once(c2, 'end');
      assert.equal(Buffer.concat(got).toString(), 'hi');
      assert.equal(syncCalled, 1);
      assert.deepEqual(errors, []);
    }));

  test('an exception in an async callback goes to the exception handler and closes the connection', (t) =>
    runLoop(async (loop, errors) => {
      const boom = new Error('boom');
      let transport: SocketTransport | undefined;
      const c = await connectTo((s: net.Socket) => {
        transport = serve(loop, async (r) => {
          await r.readline();
          throw boom;
        })(s);
      }, t);
      c.write('x\n');
      c.resume();
      await once(c, 'end');
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.message, 'Unhandled exception in client_connected_cb');
      assert.equal(errors[0]!.exception, boom);
      assert.equal(errors[0]!.transport, transport);
    }));

  test('a sync callback returning a promise is wrapped in a task too', (t) =>
    runLoop(async (loop, errors) => {
      const c = await connectTo(
        serve(loop, (r) =>
          r.readline().then(() => {
            throw new Error('late');
          }),
        ),
        t,
      );
      c.write('x\n');
      c.resume();
      await once(c, 'end');
      assert.equal(errors.length, 1);
      assert.equal((errors[0]!.exception as Error).message, 'late');
    }));

  test('a sync callback returning a Task is watched as it is: its failure is reported once and closes', (t) =>
    runLoop(async (loop, errors) => {
      let made: Task<void> | undefined;
      const c = await connectTo(
        serve(loop, (r) => {
          made = loop.createTask(async () => {
            await r.readline();
            throw new Error('task failed');
          });
          return made;
        }),
        t,
      );
      c.write('x\n');
      c.resume();
      await once(c, 'end');
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.message, 'Unhandled exception in client_connected_cb');
      assert.equal((errors[0]!.exception as Error).message, 'task failed');
      assert.ok(made!.done());
    }));

  test('a cancelled callback task closes the connection', (t) =>
    runLoop(async (loop, errors) => {
      let proto: StreamReaderProtocol | undefined;
      const c = await connectTo((s: net.Socket) => {
        const r = new StreamReader({ loop });
        proto = new StreamReaderProtocol(r, async (rr) => void (await rr.read()), { loop });
        new SocketTransport(loop, s, proto);
      }, t);
      while (proto?._task == null) await sleep(0);
      proto._task.cancel();
      c.resume();
      await once(c, 'end');
      assert.deepEqual(errors, []);
    }));
});

// ---------------------------------------------------------------------------------------------------------
// openConnection, startServer and their Unix twins, on the loop's own createConnection/createServer

/** Echoes lines until EOF, then writes `bye` and closes (asyncio's test_start_server handler, extended). */
async function echoLines(reader: StreamReader, writer: StreamWriter): Promise<void> {
  for await (const line of reader) {
    writer.write(line);
    await writer.drain();
  }
  writer.write(b('bye'));
  writer.close();
  await writer.waitClosed();
}

function portOf(server: Server): number {
  return (server.sockets[0]!.getsockname() as [string, number])[1];
}

async function closeServer(server: Server): Promise<void> {
  server.close();
  await server.waitClosed();
}

describe('openConnection and startServer', () => {
  test('an async client callback: lines echoed, EOF, then the server closes', () =>
    runLoop(async (_loop, errors) => {
      const server = await startServer(echoLines, '127.0.0.1', 0);
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
        writer.write(b('hello world!\n'));
        writer.writelines([b('second '), b('line\n')]);
        await writer.drain();
        assert.deepEqual(await reader.readline(), b('hello world!\n'));
        assert.deepEqual(await reader.readline(), b('second line\n'));
        assert.deepEqual(writer.getExtraInfo('peername'), ['127.0.0.1', portOf(server)]);
        writer.writeEof();
        assert.deepEqual(await reader.read(), b('bye'));
        assert.ok(reader.atEof());
        writer.close();
        await writer.waitClosed();
      } finally {
        await closeServer(server);
      }
      assert.deepEqual(errors, []);
    }));

  test('a plain client callback that starts its own task, and the options-object form', () =>
    runLoop(async (loop, errors) => {
      const server = await startServer((r, w) => void loop.createTask(() => echoLines(r, w)), {
        host: '127.0.0.1',
        port: 0,
      });
      try {
        const [reader, writer] = await openConnection({ host: '127.0.0.1', port: portOf(server) });
        writer.write(b('one\n'));
        assert.deepEqual(await reader.readline(), b('one\n'));
        writer.close();
        await writer.waitClosed();
      } finally {
        await closeServer(server);
      }
      assert.deepEqual(errors, []);
    }));

  test('limit reaches the readers on both sides; other options reach the loop method', () =>
    runLoop(async () => {
      const limits: number[] = [];
      const server = await startServer(
        (r, w) => {
          limits.push(r._limit);
          w.close();
        },
        '127.0.0.1',
        0,
        { limit: 123, backlog: 5 },
      );
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server), { limit: 77 });
        assert.equal(reader._limit, 77);
        assert.deepEqual(await reader.read(), b(''));
        assert.deepEqual(limits, [123]);
        writer.close();
        await writer.waitClosed();
        await assert.rejects(openConnection('127.0.0.1', portOf(server), { bogus: 1 } as never), TypeError);
        await assert.rejects(
          startServer(() => undefined, 'x', 0, { bogus: 1 } as never),
          TypeError,
        );
        await assert.rejects(startServer(42 as never, '127.0.0.1', 0), TypeError);
      } finally {
        await closeServer(server);
      }
    }));

  test('a connection refused is the error of openConnection', () =>
    runLoop(async () => {
      const probe = net.createServer().listen(0, '127.0.0.1');
      await once(probe, 'listening');
      const { port } = probe.address() as net.AddressInfo;
      await new Promise((r) => probe.close(r));
      await assert.rejects(openConnection('127.0.0.1', port), { code: 'ECONNREFUSED' });
    }));

  test('an exception in the client callback goes to the handler, closes that connection, and the server goes on', () =>
    runLoop(async (_loop, errors) => {
      const boom = new Error('boom');
      const server = await startServer(
        async (r, w) => {
          const line = await r.readline();
          if (line.toString() === 'fail\n') throw boom;
          w.write(line);
          w.close();
        },
        '127.0.0.1',
        0,
      );
      try {
        const [r1, w1] = await openConnection('127.0.0.1', portOf(server));
        w1.write(b('fail\n'));
        assert.deepEqual(await r1.read(), b(''));
        assert.equal(errors.length, 1);
        assert.equal(errors[0]!.message, 'Unhandled exception in client_connected_cb');
        assert.equal(errors[0]!.exception, boom);
        w1.close();
        const [r2, w2] = await openConnection('127.0.0.1', portOf(server));
        w2.write(b('ok\n'));
        assert.deepEqual(await r2.read(), b('ok\n'));
        w2.close();
        await w2.waitClosed();
      } finally {
        await closeServer(server);
      }
    }));

  test('a slow reader pauses the writer (drain waits) and resumes it', () =>
    runLoop(async (loop) => {
      const total = 16 * 1024 * 1024;
      const events: string[] = [];
      const drained = loop.createFuture<void>();
      let clientReader!: StreamReader;
      const server = await startServer(
        async (_r, w) => {
          const proto = w._protocol;
          const pause = proto.pauseWriting.bind(proto);
          const resume = proto.resumeWriting.bind(proto);
          proto.pauseWriting = () => (events.push('pause'), pause());
          proto.resumeWriting = () => (events.push('resume'), resume());
          w.write(Buffer.alloc(total, 1));
          events.push(`written paused=${proto._paused}`);
          const d = w.drain();
          // The client reads nothing yet: drain() must still be waiting after many iterations.
          for (let i = 0; i < 50; i++) await sleep(0);
          events.push(`waiting buffered=${w.transport.getWriteBufferSize() > 0}`);
          loop.callSoon(
            () => void loop.createTask(() => clientReader.readexactly(total)).then(() => drained.setResult()),
          );
          await d;
          events.push('drained');
          w.close();
        },
        '127.0.0.1',
        0,
      );
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server), { limit: 1024 });
        clientReader = reader;
        await drained;
        assert.deepEqual(events, ['pause', 'written paused=true', 'waiting buffered=true', 'resume', 'drained']);
        writer.close();
        await writer.waitClosed();
      } finally {
        await closeServer(server);
      }
    }));

  test('drain() after the peer vanished raises instead of spinning', () =>
    runLoop(async (_loop, errors) => {
      const srv = net.createServer((s) => s.destroy());
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
      try {
        const [, writer] = await openConnection('127.0.0.1', (srv.address() as net.AddressInfo).port);
        await assert.rejects(
          (async () => {
            for (;;) {
              writer.write(b('foo\n'));
              await writer.drain();
            }
          })(),
          (e: any) => ConnectionResetError.isInstance(e) || ['ECONNRESET', 'EPIPE'].includes(e.code),
        );
        writer.close();
      } finally {
        srv.close();
      }
      assert.deepEqual(errors, []);
    }));

  test('waitClosed after close, with unread data, and the reader sees EOF', () =>
    runLoop(async (_loop, errors) => {
      const server = await startServer(
        async (r, w) => {
          w.write(Buffer.alloc(100_000, 2));
          await r.read(); // until the client is gone
          w.close();
        },
        '127.0.0.1',
        0,
      );
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
        await reader.readexactly(10);
        assert.equal(writer.isClosing(), false);
        writer.close();
        assert.equal(writer.isClosing(), true);
        await writer.waitClosed();
        assert.equal(reader.atEof(), false); // unread data stays readable
        await reader.read();
      } finally {
        await closeServer(server);
      }
      assert.deepEqual(errors, []);
    }));

  test('await using closes the writer; server waitClosed returns once the client is gone', () =>
    runLoop(async () => {
      const server = await startServer(echoLines, '127.0.0.1', 0);
      const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
      {
        await using w = writer;
        w.write(b('x\n'));
        assert.deepEqual(await reader.readline(), b('x\n'));
      }
      assert.ok(writer.isClosing());
      await closeServer(server);
    }));
});

describe('openUnixConnection and startUnixServer', () => {
  test('echo over a Unix socket, with both call forms', (t) =>
    runLoop(async (_loop, errors) => {
      const dir = mkdtempSync(join(tmpdir(), 'loopwork-streams-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const path = join(dir, 's.sock');
      const server = await startUnixServer(echoLines, path, { limit: 1000 });
      try {
        const [reader, writer] = await openUnixConnection(path);
        writer.write(b('unix line\n'));
        assert.deepEqual(await reader.readline(), b('unix line\n'));
        writer.writeEof();
        assert.deepEqual(await reader.read(), b('bye'));
        await writer.waitClosed();
        const [r2, w2] = await openUnixConnection({ path, limit: 10 });
        assert.equal(r2._limit, 10);
        w2.close();
        await w2.waitClosed();
      } finally {
        await closeServer(server);
      }
      const server2 = await startUnixServer((_r, w) => w.close(), { path: join(dir, 't.sock'), mode: 0o600 });
      assert.equal(statSync(join(dir, 't.sock')).mode & 0o777, 0o600, 'mode passed to createUnixServer');
      await closeServer(server2);
      assert.deepEqual(errors, []);
    }));
});

// ---------------------------------------------------------------------------------------------------------
// startTls over real TLS

function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { cert, key };
}

/** A server context and a client context that trusts it, on a fresh self-signed certificate for localhost. */
function tlsContexts(t: { after(fn: () => void): void }): { serverCtx: SSLContext; clientCtx: SSLContext } {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { cert, key } = selfSignedCert(dir);
  const serverCtx = new SSLContext(PROTOCOL_TLS_SERVER);
  serverCtx.loadCertChain(cert, key);
  const clientCtx = new SSLContext(PROTOCOL_TLS_CLIENT);
  clientCtx.loadVerifyLocations({ cadata: readFileSync(cert, 'utf8') });
  return { serverCtx, clientCtx };
}

describe('StreamWriter.startTls', () => {
  test('both ends upgrade a plain connection to TLS and go on talking (test_start_tls)', (t) =>
    runLoop(async (_loop, errors) => {
      const { serverCtx, clientCtx } = tlsContexts(t);

      const server = await startServer(
        async (r, w) => {
          const data1 = await r.readline();
          w.write(data1);
          await w.drain();
          assert.equal(w.getExtraInfo('sslcontext'), undefined);
          await w.startTls(serverCtx);
          assert.equal(w.getExtraInfo('sslcontext'), serverCtx);
          const data2 = await r.readline();
          w.write(data2);
          await w.drain();
          w.close();
          await w.waitClosed();
        },
        '127.0.0.1',
        0,
      );
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
        writer.write(b('hello world 1!\n'));
        await writer.drain();
        assert.deepEqual(await reader.readline(), b('hello world 1!\n'));
        await writer.startTls(clientCtx, { serverHostname: 'localhost' });
        assert.equal(writer.getExtraInfo('sslcontext'), clientCtx);
        writer.write(b('hello world 2!\n'));
        await writer.drain();
        assert.deepEqual(await reader.readline(), b('hello world 2!\n'));
        writer.close();
        await writer.waitClosed();
      } finally {
        await closeServer(server);
      }
      assert.deepEqual(errors, []);
    }));

  test('a ClientHello the server reader already holds goes to the TLS layer (test_start_tls_buffered_data)', (t) =>
    runLoop(async (_loop, errors) => {
      const { serverCtx, clientCtx } = tlsContexts(t);
      const server = await startServer(
        async (r, w) => {
          // A PROXY header, and the ClientHello right behind it in the reader's buffer.
          assert.deepEqual(await r.readline(), b('PROXY TCP4 192.0.2.1 192.0.2.2 1234 443\r\n'));
          while (r._len === 0) await r._waitForData('test');
          await w.startTls(serverCtx, { sslHandshakeTimeout: 5 });
          const line = await r.readline();
          w.write(Buffer.concat([b('pong '), line]));
          await w.drain();
          w.close();
          await w.waitClosed();
        },
        '127.0.0.1',
        0,
      );
      let client: StreamWriter | null = null;
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
        client = writer;
        writer.write(b('PROXY TCP4 192.0.2.1 192.0.2.2 1234 443\r\n'));
        await writer.startTls(clientCtx, { serverHostname: 'localhost', sslHandshakeTimeout: 5 });
        writer.write(b('ping\n'));
        assert.deepEqual(await reader.readline(), b('pong ping\n'));
        writer.close();
        await writer.waitClosed();
      } finally {
        client?.transport.abort();
        server.close();
        server.closeClients();
        await server.waitClosed();
      }
      assert.deepEqual(errors, []);
    }));

  test("after the upgrade the reader's flow control pauses the TLS transport (a fast peer is held back)", (t) =>
    runLoop(async (_loop, errors) => {
      const { serverCtx, clientCtx } = tlsContexts(t);
      const limit = 1 << 14;
      let serverReader: StreamReader | null = null;
      let serverWriter: StreamWriter | null = null;
      const upgraded = getRunningLoop().createFuture<void>();
      const server = await startServer(
        async (r, w) => {
          await r.readline();
          w.write(b('220 go ahead\n'));
          await w.startTls(serverCtx);
          serverReader = r;
          serverWriter = w;
          upgraded.setResult(undefined);
        },
        '127.0.0.1',
        0,
        { limit },
      );
      let client: StreamWriter | null = null;
      try {
        const [reader, writer] = await openConnection('127.0.0.1', portOf(server));
        client = writer;
        writer.write(b('STARTTLS\n'));
        await reader.readline();
        await writer.startTls(clientCtx, { serverHostname: 'localhost' });
        await upgraded;
        const sr = serverReader as unknown as StreamReader;
        const sw = serverWriter as unknown as StreamWriter;
        assert.equal(sr._transport, sw.transport);
        // Nobody reads on the server: past twice the limit, the TLS transport stops reading.
        const total = 4 << 20;
        writer.write(Buffer.alloc(total, 0x78));
        while (sr._len <= 2 * limit) await sleep(0.01);
        assert.equal(sr._paused, true);
        assert.equal(sw.transport.isReading(), false);
        await sleep(0.1);
        // Held back: not the whole 4 MiB buffered (it was, when the reader still paused the handed-over transport).
        assert.ok(sr._len < total / 4, `buffered ${sr._len}`);
        // Reading resumes it, and every byte arrives.
        assert.equal((await sr.readexactly(total)).length, total);
        assert.equal(sw.transport.isReading(), true);
        writer.close();
        await writer.waitClosed();
        sw.close();
        await sw.waitClosed();
      } finally {
        // A failed check must not leave the server waiting for its connection.
        client?.transport.abort();
        (serverWriter as StreamWriter | null)?.transport.abort();
        await closeServer(server);
      }
      assert.deepEqual(errors, []);
    }));
});

// ---------------------------------------------------------------------------------------------------------
// Interop with CPython's asyncio streams

const PYTHON = process.env.LOOPWORK_PYTHON ?? 'python3';

const PY_CLIENT = `
import asyncio, sys
async def main(port):
    r, w = await asyncio.open_connection('127.0.0.1', port, limit=1 << 20)
    out = []
    for i in range(3):
        w.write(f'line {i}\\n'.encode())
        await w.drain()
        out.append((await r.readline()).decode().strip())
    w.write(b'x' * 200000 + b'\\n')
    await w.drain()
    out.append(str(len(await r.readline())))
    w.write_eof()
    out.append((await r.read()).decode())
    w.close()
    await w.wait_closed()
    print('|'.join(out))
asyncio.run(main(int(sys.argv[1])))
`;

const PY_SERVER = `
import asyncio
async def handle(r, w):
    while line := await r.readline():
        w.write(line.upper())
        await w.drain()
    w.write(b'BYE')
    await w.drain()
    w.close()
    await w.wait_closed()
async def main():
    srv = await asyncio.start_server(handle, '127.0.0.1', 0, limit=1 << 20)
    print(srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
`;

describe('interop with Python asyncio streams', () => {
  test('a Python asyncio client against a loopwork startServer', (t) =>
    runLoop(async (_loop, errors) => {
      const server = await startServer(echoLines, '127.0.0.1', 0, { limit: 1 << 20 });
      try {
        const child = spawn(PYTHON, ['-c', PY_CLIENT, String(portOf(server))], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        t.after(() => child.kill());
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        const [code] = await once(child, 'exit');
        assert.equal(code, 0);
        assert.equal(out.trim(), 'line 0|line 1|line 2|200001|bye');
      } finally {
        await closeServer(server);
      }
      assert.deepEqual(errors, []);
    }));

  test('a loopwork openConnection against a Python asyncio start_server', (t) =>
    runLoop(async (_loop, errors) => {
      const child = spawn(PYTHON, ['-c', PY_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
      t.after(() => child.kill());
      const [first] = (await once(child.stdout, 'data')) as [Buffer];
      const port = Number(first.toString().trim());
      const [reader, writer] = await openConnection('127.0.0.1', port, { limit: 1 << 20 });
      const lines = ['alpha\n', 'beta\n', `${'z'.repeat(100_000)}\n`];
      for (const line of lines) {
        writer.write(b(line));
        await writer.drain();
        assert.deepEqual(await reader.readuntil('\n'), b(line.toUpperCase()));
      }
      writer.writeEof();
      assert.deepEqual(await reader.read(), b('BYE'));
      writer.close();
      await writer.waitClosed();
      assert.deepEqual(errors, []);
    }));
});
