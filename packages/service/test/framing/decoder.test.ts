import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidStateError } from '@loopwork/server';
import { LineDecoder, StreamDecoder } from '../../src/framing/index.js';

/** A decoder of fixed-size records, to check what StreamDecoder does for every subclass. */
class Records extends StreamDecoder {
  readonly records: string[] = [];
  held = Buffer.alloc(0);
  discarded = 0;
  ended = 0;

  get bufferedBytes(): number {
    return this.held.length;
  }

  protected _decode(chunk: Buffer): void {
    let all = Buffer.concat([this.held, chunk]);
    while (all.length >= 3) {
      const record = all.subarray(0, 3).toString('latin1');
      if (record === 'bad') throw new RangeError('bad record');
      this.records.push(record);
      all = all.subarray(3);
    }
    this.held = Buffer.from(all);
  }

  protected _end(): void {
    this.ended++;
    if (this.held.length > 0) throw new RangeError(`stream ended inside a record (${this.held.length} bytes)`);
  }

  protected _discard(): void {
    this.discarded++;
    this.held = Buffer.alloc(0);
  }
}

test('StreamDecoder: a subclass decodes; data after the end is refused; a second end does nothing', () => {
  const d = new Records();
  d.feedData(Buffer.from('abcd'));
  d.feedData(Buffer.from('ef'));
  assert.deepEqual(d.records, ['abc', 'def']);
  d.feedEof();
  d.feedEof();
  assert.equal(d.ended, 1);
  assert.throws(
    () => d.feedData(Buffer.from('ghi')),
    (err) => InvalidStateError.isInstance(err) && err.message === 'feedData() after feedEof()',
  );
  assert.equal(d.discarded, 0);
});

test('StreamDecoder: an error from decoding drops what was held and is thrown again by every later call', () => {
  const d = new Records();
  d.feedData(Buffer.from('okkba'));
  assert.equal(d.bufferedBytes, 2);
  let first: unknown;
  assert.throws(
    () => d.feedData(Buffer.from('d')),
    (err) => ((first = err), err instanceof RangeError),
  );
  assert.equal(d.discarded, 1);
  assert.equal(d.bufferedBytes, 0);
  assert.throws(
    () => d.feedData(Buffer.from('xyz')),
    (err) => err === first,
  );
  assert.throws(
    () => d.feedEof(),
    (err) => err === first,
  );
  assert.equal(d.ended, 0);
  assert.deepEqual(d.records, ['okk']);
});

test('StreamDecoder: an error at the end is kept too', () => {
  const d = new Records();
  d.feedData(Buffer.from('ab'));
  let first: unknown;
  assert.throws(
    () => d.feedEof(),
    (err) => ((first = err), err instanceof RangeError && /inside a record \(2 bytes\)/.test(err.message)),
  );
  assert.equal(d.discarded, 1);
  assert.throws(
    () => d.feedEof(),
    (err) => err === first,
  );
});

test('LineDecoder: what onLine throws for the last line at EOF is kept, as any other error', () => {
  const boom = new Error('handler failed');
  const d = new LineDecoder(() => {
    throw boom;
  });
  d.feedData(Buffer.from('no newline'));
  assert.throws(
    () => d.feedEof(),
    (err) => err === boom,
  );
  assert.equal(d.bufferedBytes, 0);
  assert.throws(
    () => d.feedEof(),
    (err) => err === boom,
  );
});
