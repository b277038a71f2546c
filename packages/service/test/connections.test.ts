// The connection accounting of an app around protocols that are not pipelines: a stream `Protocol` and a
// `BufferedProtocol` served on TCP are wrapped, parked over `maxConnections` (their protocol not told), admitted
// when a slot frees, and asked to shut down on a graceful close.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import type { BaseTransport, Transport } from '@loopwork/service';
import { BufferedProtocol, Protocol } from '@loopwork/service';
import { testApp } from './helpers.js';

/** What a served protocol was told, in order; it echoes what it receives and closes when asked to shut down. */
class Journal {
  readonly lines: string[] = [];
  #t: Transport | null = null;
  made(transport: BaseTransport): void {
    this.#t = transport as Transport;
    this.lines.push('made');
  }
  received(data: Buffer): void {
    this.lines.push(`data ${data.toString()}`);
    this.#t?.write(data);
  }
  shutdown(): void {
    this.lines.push('shutdown');
    this.#t?.close();
  }
}

class EchoStream extends Protocol {
  constructor(readonly journal: Journal) {
    super();
  }
  override connectionMade(transport: BaseTransport): void {
    this.journal.made(transport);
  }
  override dataReceived(data: Buffer): void {
    this.journal.received(data);
  }
  override connectionLost(): void {
    this.journal.lines.push('lost');
  }
  shutdown(): void {
    this.journal.shutdown();
  }
}

class EchoBuffered extends BufferedProtocol {
  readonly #buf = Buffer.alloc(1024);
  constructor(readonly journal: Journal) {
    super();
  }
  override connectionMade(transport: BaseTransport): void {
    this.journal.made(transport);
  }
  override getBuffer(): Uint8Array {
    return this.#buf;
  }
  override bufferUpdated(nbytes: number): void {
    this.journal.received(Buffer.from(this.#buf.subarray(0, nbytes)));
  }
  override connectionLost(): void {
    this.journal.lines.push('lost');
  }
  shutdown(): void {
    this.journal.shutdown();
  }
}

/** A client socket and what it received so far. */
async function connect(port: number): Promise<{ socket: net.Socket; read(n: number): Promise<string> }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let got = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (d: Buffer) => {
    got += d.toString();
    for (const w of waiters.splice(0)) w();
  });
  socket.on('close', () => {
    for (const w of waiters.splice(0)) w();
  });
  return {
    socket,
    async read(n: number): Promise<string> {
      while (got.length < n && !socket.destroyed) await new Promise<void>((r) => waiters.push(r));
      const out = got.slice(0, n);
      got = got.slice(n);
      return out;
    },
  };
}

for (const [kind, make] of [
  ['a stream Protocol', (j: Journal) => new EchoStream(j)],
  ['a BufferedProtocol', (j: Journal) => new EchoBuffered(j)],
] as const) {
  test(
    `${kind}: parked over maxConnections unseen by the protocol, admitted when a slot frees, shut down gracefully`,
    { timeout: 10_000 },
    async (t) => {
      const journals: Journal[] = [];
      const app = testApp({ maxConnections: 1 });
      await app.listen({
        tcp: {
          port: 0,
          protocol: () => {
            const journal = new Journal();
            journals.push(journal);
            return make(journal);
          },
        },
      });
      let closed = false;
      t.after(async () => {
        if (!closed) await app.close({ deadline: 2 });
      });
      const port = Number(new URL(app.addresses()[0]!.url.replace(/^tcp:/, 'http:')).port);

      const a = await connect(port);
      t.after(() => a.socket.destroy());
      a.socket.write('a1');
      assert.equal(await a.read(2), 'a1');

      const b = await connect(port);
      t.after(() => b.socket.destroy());
      b.socket.write('b1');
      // The parked connection is not read: wait until a served one answers after it, then look.
      a.socket.write('a2');
      assert.equal(await a.read(2), 'a2');
      assert.deepEqual(app.connections, { active: 1, parked: 1, accepted: 2 });
      assert.deepEqual(journals[1]?.lines, []);

      a.socket.destroy();
      assert.equal(await b.read(2), 'b1');
      assert.deepEqual(journals[0]?.lines, ['made', 'data a1', 'data a2', 'lost']);
      assert.deepEqual(app.connections, { active: 1, parked: 0, accepted: 2 });

      // Parked at the close: admitted once the served one is gone, and asked at once to finish (a graceful close
      // drops no connection it accepted).
      const c = await connect(port);
      t.after(() => c.socket.destroy());
      b.socket.write('b2');
      assert.equal(await b.read(2), 'b2');
      assert.deepEqual(app.connections, { active: 1, parked: 1, accepted: 3 });

      closed = true;
      await app.close({ deadline: 2 });
      assert.deepEqual(journals[1]?.lines, ['made', 'data b1', 'data b2', 'shutdown', 'lost']);
      assert.deepEqual(journals[2]?.lines, ['made', 'shutdown', 'lost']);
      assert.deepEqual(app.connections, { active: 0, parked: 0, accepted: 3 });
    },
  );
}
