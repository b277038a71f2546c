// Shared by the framing tests: feeding a decoder a byte string under a given chunking.
import fc from 'fast-check';

/** Splits `data` at the given (sorted, deduplicated) cut points. */
export function cut(data: Buffer, points: readonly number[]): Buffer[] {
  const sorted = [...new Set(points.map((p) => p % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of sorted) {
    out.push(data.subarray(at, p));
    at = p;
  }
  out.push(data.subarray(at));
  return out;
}

/** Every way of cutting `data` in two, plus one byte at a time. */
export function* splits(data: Buffer): Generator<Buffer[]> {
  for (let p = 0; p <= data.length; p++) yield [data.subarray(0, p), data.subarray(p)];
  yield Array.from(data, (_, i) => data.subarray(i, i + 1));
}

/** A random chunking of a byte string, as cut points. */
export const cutPoints = fc.array(fc.nat({ max: 1 << 16 }), { maxLength: 12 });

/**
 * Copies each chunk into a fresh Buffer and then scribbles over it after it was fed: a decoder that kept a
 * reference to a chunk (instead of copying what it carries over) gives wrong results.
 */
export function feedScribbled(feed: (chunk: Buffer) => void, chunks: readonly Buffer[]): void {
  for (const chunk of chunks) {
    const copy = Buffer.from(chunk);
    try {
      feed(copy);
    } finally {
      copy.fill(0x5a);
    }
  }
}
