// A small log-linear latency histogram (HDR-like: 64 sub-buckets per power of two, so within ~1.6 %),
// values in microseconds, cheap enough to record every request of a load client.
const SUB = 64;
const LINEAR = 2 * SUB; // values below 128 µs have a bucket each

function bucketOf(v) {
  if (v < LINEAR) return v;
  const e = 31 - Math.clz32(v); // 2^e <= v < 2^(e+1), e >= 7
  const m = v >>> (e - 6); // in [64, 128)
  return LINEAR + (e - 7) * SUB + (m - SUB);
}

function lowestOf(b) {
  if (b < LINEAR) return b;
  const e = Math.floor((b - LINEAR) / SUB) + 7;
  const m = ((b - LINEAR) % SUB) + SUB;
  return m * 2 ** (e - 6);
}

export class LatencyHistogram {
  constructor() {
    this.counts = new Float64Array(LINEAR + 25 * SUB);
    this.total = 0;
  }

  /** Records one value in µs (clamped to [0, ~2^31)). */
  record(us) {
    const v = us <= 0 ? 0 : us >= 2 ** 31 ? 2 ** 31 - 1 : Math.floor(us);
    this.counts[Math.min(bucketOf(v), this.counts.length - 1)]++;
    this.total++;
  }

  /** The value at percentile p (0–100), as the lower bound of its bucket; null when empty. */
  percentile(p) {
    if (this.total === 0) return null;
    const want = Math.ceil((p / 100) * this.total);
    let seen = 0;
    for (let b = 0; b < this.counts.length; b++) {
      seen += this.counts[b];
      if (seen >= want && this.counts[b] > 0) return lowestOf(b);
    }
    return lowestOf(this.counts.length - 1);
  }
}
