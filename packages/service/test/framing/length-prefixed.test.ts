import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FrameTooLongError,
  FrameTruncatedError,
  LengthPrefixedDecoder,
  LengthPrefixedEncoder,
  encodeFrame,
} from '../../src/framing/index.js';
import type { LengthHeader, LengthPrefixedOptions } from '../../src/framing/index.js';
import { cut, cutPoints, feedScribbled, splits } from './helpers.js';

interface Outcome {
  frames: string[];
  error: { code: string; message: string } | null;
  maxBuffered: number;
}

function run(chunks: readonly Buffer[], options?: LengthPrefixedOptions, eof = true): Outcome {
  const out: Outcome = { frames: [], error: null, maxBuffered: 0 };
  const decoder = new LengthPrefixedDecoder((f) => out.frames.push(f.toString('hex')), options);
  try {
    feedScribbled((c) => {
      decoder.feedData(c);
      out.maxBuffered = Math.max(out.maxBuffered, decoder.bufferedBytes);
    }, chunks);
    if (eof) decoder.feedEof();
  } catch (err) {
    assert.ok(FrameTooLongError.isInstance(err) || FrameTruncatedError.isInstance(err), String(err));
    out.error = { code: err.code, message: err.message };
    assert.throws(
      () => decoder.feedData(Buffer.alloc(8)),
      (e) => e === err,
    );
    assert.throws(
      () => decoder.feedEof(),
      (e) => e === err,
    );
  }
  return out;
}

const HEADERS: LengthHeader[] = ['u8', 'u16be', 'u16le', 'u24be', 'u24le', 'u32be', 'u32le'];

test('each header format, byte order included', () => {
  const payload = Buffer.from('abc');
  const expected: Record<LengthHeader, string> = {
    u8: '03',
    u16be: '0003',
    u16le: '0300',
    u24be: '000003',
    u24le: '030000',
    u32be: '00000003',
    u32le: '03000000',
  };
  for (const header of HEADERS) {
    const frame = encodeFrame(payload, { header });
    assert.equal(frame.toString('hex'), expected[header] + '616263', header);
    assert.deepEqual(run([frame], { header }).frames, ['616263'], header);
  }
});

test('frames back to back, empty frames included, in every split', () => {
  const data = Buffer.concat([encodeFrame('hello'), encodeFrame(''), encodeFrame('x'), encodeFrame('world!')]);
  const whole = run([data]);
  assert.deepEqual(whole.frames, ['68656c6c6f', '', '78', '776f726c6421']);
  for (const chunks of splits(data)) assert.deepEqual({ ...run(chunks), maxBuffered: 0 }, whole);
});

test('an oversized length is refused as soon as the header is read, before any payload is held', () => {
  const header = Buffer.from([0, 0, 0x10, 0x01]); // 4097
  const o = run([header], { maxLength: 4096 }, false);
  assert.deepEqual(o.error, {
    code: 'ERR_LOOPWORK_FRAME_TOO_LONG',
    message: 'Frame length 4097 is over maxLength (4096 bytes)',
  });
  assert.equal(o.maxBuffered, 0);
  assert.equal(run([Buffer.from([0xff, 0xff, 0xff, 0xff])]).error?.code, 'ERR_LOOPWORK_FRAME_TOO_LONG');
  assert.equal(run([encodeFrame(Buffer.alloc(4096), { maxLength: 4096 })], { maxLength: 4096 }).error, null);
});

test('a stream that ends inside a header or a payload is reported', () => {
  assert.deepEqual(run([Buffer.from([0, 0])]).error, {
    code: 'ERR_LOOPWORK_FRAME_TRUNCATED',
    message: 'Stream ended inside a frame header (2 of 4 bytes)',
  });
  assert.deepEqual(run([Buffer.from([0, 0, 0, 5, 1, 2])]).error, {
    code: 'ERR_LOOPWORK_FRAME_TRUNCATED',
    message: 'Stream ended inside a frame (2 of 5 bytes)',
  });
  assert.equal(run([encodeFrame('ok')]).error, null);
});

test('options are checked', () => {
  const make = (o: LengthPrefixedOptions) => () => new LengthPrefixedDecoder(() => {}, o);
  assert.throws(make({ header: 'u8', maxLength: 256 }), { code: 'ERR_LOOPWORK_INVALID_OPTIONS' });
  assert.throws(make({ header: 'u64' as LengthHeader }), { code: 'ERR_LOOPWORK_INVALID_OPTIONS' });
  assert.throws(make({ header: 'toString' as LengthHeader }), { code: 'ERR_LOOPWORK_INVALID_OPTIONS' });
  assert.throws(make({ maxLength: -1 }), { code: 'ERR_LOOPWORK_INVALID_OPTIONS' });
  assert.doesNotThrow(make({ header: 'u8' }));
  assert.doesNotThrow(make({ header: 'u16be', maxLength: 65535 }));
});

test('the encoder refuses payloads over maxLength, and encodes headers alone', () => {
  const enc = new LengthPrefixedEncoder({ header: 'u16be', maxLength: 10 });
  assert.throws(() => enc.encode(Buffer.alloc(11)), { code: 'ERR_LOOPWORK_FRAMING_ENCODE' });
  assert.throws(() => enc.encodeHeader(11), { code: 'ERR_LOOPWORK_FRAMING_ENCODE' });
  assert.throws(() => enc.encodeHeader(-1), { code: 'ERR_LOOPWORK_FRAMING_ENCODE' });
  assert.equal(enc.encodeHeader(10).toString('hex'), '000a');
  assert.throws(() => encodeFrame(Buffer.alloc(256), { header: 'u8' }), { code: 'ERR_LOOPWORK_FRAMING_ENCODE' });
});

test('feedData after feedEof is refused', () => {
  const d = new LengthPrefixedDecoder(() => {});
  d.feedEof();
  assert.throws(() => d.feedData(Buffer.alloc(1)), { code: 'ERR_LOOPWORK_INVALID_STATE' });
});

test('property: encode then decode gives the frames back, whatever the header and the chunking', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...HEADERS),
      fc.array(fc.uint8Array({ maxLength: 255 }), { maxLength: 12 }),
      cutPoints,
      (header, payloads, points) => {
        const enc = new LengthPrefixedEncoder({ header });
        const data = Buffer.concat(payloads.map((p) => enc.encode(p)));
        const o = run(cut(data, points), { header });
        assert.equal(o.error, null);
        assert.deepEqual(
          o.frames,
          payloads.map((p) => Buffer.from(p).toString('hex')),
        );
      },
    ),
  );
});

test('property: arbitrary bytes, any chunking: the same outcome, never more than a frame held', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...HEADERS),
      fc.uint8Array({ maxLength: 400 }),
      cutPoints,
      fc.integer({ min: 1, max: 200 }),
      (header, bytes, points, maxLength) => {
        const data = Buffer.from(bytes);
        const whole = run([data], { header, maxLength });
        const split = run(cut(data, points), { header, maxLength });
        assert.deepEqual({ ...split, maxBuffered: 0 }, { ...whole, maxBuffered: 0 });
        assert.ok(split.maxBuffered <= maxLength + 4);
      },
    ),
    { numRuns: 500 },
  );
});
