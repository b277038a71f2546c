import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineDecoder, LineTooLongError, encodeLine } from '../../src/framing/index.js';
import type { LineDecoderOptions } from '../../src/framing/index.js';
import { cut, cutPoints, feedScribbled, splits } from './helpers.js';

interface Outcome {
  lines: string[];
  error: string | null;
  maxBuffered: number;
}

function run(chunks: readonly Buffer[], options?: LineDecoderOptions, eof = true): Outcome {
  const out: Outcome = { lines: [], error: null, maxBuffered: 0 };
  const decoder = new LineDecoder((line) => out.lines.push(line.toString('latin1')), options);
  try {
    feedScribbled((c) => {
      decoder.feedData(c);
      out.maxBuffered = Math.max(out.maxBuffered, decoder.bufferedBytes);
    }, chunks);
    if (eof) decoder.feedEof();
  } catch (err) {
    assert.ok(LineTooLongError.isInstance(err), String(err));
    assert.equal(err.code, 'ERR_LOOPWORK_LINE_TOO_LONG');
    out.error = err.message;
    assert.throws(
      () => decoder.feedData(Buffer.from('ok\n')),
      (e) => e === err,
    );
    assert.throws(
      () => decoder.feedEof(),
      (e) => e === err,
    );
  }
  return out;
}

const all = (s: string, options?: LineDecoderOptions): Outcome => run([Buffer.from(s, 'latin1')], options);

test('lines end at \\n; a \\r before it is dropped, others are kept', () => {
  assert.deepEqual(all('a\nb\r\n\nc\r\r\n\rd\n').lines, ['a', 'b', '', 'c\r', '\rd']);
});

test('an unterminated last line is delivered at EOF, and only then', () => {
  assert.deepEqual(run([Buffer.from('a\nrest')], {}, false).lines, ['a']);
  assert.deepEqual(all('a\nrest').lines, ['a', 'rest']);
  assert.deepEqual(all('a\nrest\r').lines, ['a', 'rest\r']);
  assert.deepEqual(all('').lines, []);
});

test('every split gives the same lines', () => {
  const data = Buffer.from('first\r\nsecond\n\r\nthird\r\r\nlast', 'latin1');
  const whole = run([data]);
  for (const chunks of splits(data)) assert.deepEqual(run(chunks).lines, whole.lines);
});

test('maxLength: a line of maxLength bytes passes, one more byte is refused, in any split', () => {
  const opts = { maxLength: 5 };
  assert.deepEqual(all('12345\n12345\r\n', opts).lines, ['12345', '12345']);
  for (const bad of ['123456\n', '123456\r\n', '123456', '12345\r', '1234567890123']) {
    const data = Buffer.from(bad);
    const whole = run([data], opts);
    assert.equal(whole.error, 'Line is longer than maxLength (5 bytes)', bad);
    for (const chunks of splits(data)) {
      const o = run(chunks, opts);
      assert.equal(o.error, whole.error, bad);
      assert.ok(o.maxBuffered <= 6);
    }
  }
});

test('an endless line is refused without being held', () => {
  const decoder = new LineDecoder(() => assert.fail('no line'), { maxLength: 1024 });
  assert.throws(() => {
    for (let i = 0; i < 10_000; i++) {
      decoder.feedData(Buffer.alloc(100, 0x61));
      assert.ok(decoder.bufferedBytes <= 1025);
    }
  }, LineTooLongError);
});

test('the default limit is 64 KiB', () => {
  assert.equal(all('a'.repeat(65536) + '\n').lines.length, 1);
  assert.notEqual(all('a'.repeat(65537) + '\n').error, null);
});

test('feedData after feedEof is refused; feedEof twice is fine', () => {
  const decoder = new LineDecoder(() => {});
  decoder.feedEof();
  decoder.feedEof();
  assert.throws(() => decoder.feedData(Buffer.from('x\n')), { code: 'ERR_LOOPWORK_INVALID_STATE' });
});

test('encodeLine: the bytes and a terminator; a newline inside is refused', () => {
  assert.equal(encodeLine('héllo').toString(), 'héllo\n');
  assert.equal(encodeLine(Buffer.from('x'), { eol: '\r\n' }).toString(), 'x\r\n');
  assert.equal(encodeLine('').toString(), '\n');
  for (const bad of ['a\nb', '\n', 'a\r'])
    assert.throws(() => encodeLine(bad), { code: 'ERR_LOOPWORK_FRAMING_ENCODE' });
  assert.throws(() => encodeLine('abcdef', { maxLength: 5 }), { code: 'ERR_LOOPWORK_FRAMING_ENCODE' });
});

test('property: encode then decode gives the lines back, whatever the chunking', () => {
  const line = fc.uint8Array({ maxLength: 50 }).map((a) => Buffer.from(a.filter((b) => b !== 10)).toString('latin1'));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 20 }), fc.boolean(), cutPoints, (lines, crlf, points) => {
      const ok = lines.filter((l) => !l.endsWith('\r'));
      const data = Buffer.concat(ok.map((l) => encodeLine(Buffer.from(l, 'latin1'), { eol: crlf ? '\r\n' : '\n' })));
      const o = run(cut(data, points), { maxLength: 50 });
      assert.equal(o.error, null);
      assert.deepEqual(o.lines, ok);
    }),
  );
});

test('property: arbitrary bytes, any chunking: the same outcome, bounded buffering', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), cutPoints, fc.integer({ min: 1, max: 40 }), (bytes, points, max) => {
      const data = Buffer.from(bytes);
      const whole = run([data], { maxLength: max });
      const split = run(cut(data, points), { maxLength: max });
      assert.deepEqual({ ...split, maxBuffered: 0 }, { ...whole, maxBuffered: 0 });
      assert.ok(split.maxBuffered <= max + 1);
    }),
    { numRuns: 500 },
  );
});
