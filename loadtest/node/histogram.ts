/**
 * A latency histogram with logarithmic buckets 1% wide: small enough to send between processes, mergeable by
 * adding counts, and within 1% at every percentile. The maximum is kept exactly.
 */
const GROWTH = Math.log(1.01);
/** Values are microseconds; bucket 0 holds everything up to 1 µs. */
const BUCKETS = Math.ceil(Math.log(1e9) / GROWTH) + 1;

export interface HistogramData {
  /** [bucket, count] for the non-empty buckets. */
  buckets: Array<[number, number]>;
  count: number;
  maxUs: number;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  maxUs = 0;

  recordMs(ms: number): void {
    const us = ms * 1000;
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / GROWTH));
    this.counts[i]!++;
    this.count++;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(data: HistogramData): void {
    for (const [i, c] of data.buckets) this.counts[i]! += c;
    this.count += data.count;
    if (data.maxUs > this.maxUs) this.maxUs = data.maxUs;
  }

  /** The value (ms) at or below which `p` (0..1) of the recordings lie; the bucket's upper bound, capped at the max. */
  percentileMs(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(p * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Math.exp(i * GROWTH), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  toJSON(): HistogramData {
    const buckets: Array<[number, number]> = [];
    this.counts.forEach((c, i) => c > 0 && buckets.push([i, c]));
    return { buckets, count: this.count, maxUs: this.maxUs };
  }
}
