/**
 * Session-long latency histogram with fixed bucket bounds: O(1) per sample,
 * bounded memory, and two snapshots can be subtracted to get the distribution
 * of any time window (the capacity benchmark does that to leave out setup).
 */

/** Upper bounds (ms) of the buckets; a last, open bucket holds everything above. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  ...Array.from({ length: 20 }, (_, i) => i + 1), // 1 … 20 by 1
  ...Array.from({ length: 15 }, (_, i) => 22 + i * 2), // 22 … 50 by 2
  ...Array.from({ length: 10 }, (_, i) => 55 + i * 5), // 55 … 100 by 5
  ...Array.from({ length: 10 }, (_, i) => 110 + i * 10), // 110 … 200 by 10
  ...Array.from({ length: 16 }, (_, i) => 250 + i * 50), // 250 … 1000 by 50
];

export interface LatencyHistogramSnapshot {
  /** Upper bounds in ms; `counts` has one more entry, for samples above the last bound. */
  boundsMs: readonly number[];
  counts: number[];
  max: number;
}

/** Index of the bucket `ms` falls in: the first bound ≥ ms, or `bounds.length` (the open bucket). */
export function bucketOf(bounds: readonly number[], ms: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ms <= bounds[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class LatencyHistogram {
  readonly #bounds: readonly number[];
  readonly #counts: Float64Array;
  #n = 0;
  #max = 0;
  #sum = 0;

  /** @param bounds upper bucket bounds, ascending (default: the latency buckets in ms) */
  constructor(bounds: readonly number[] = LATENCY_BOUNDS_MS) {
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Sum of every sample (for Prometheus' `_sum`). */
  get sum(): number {
    return this.#sum;
  }

  get count(): number {
    return this.#n;
  }

  /** The bucket bounds (shared by reference with histograms built on the same ones). */
  get bounds(): readonly number[] {
    return this.#bounds;
  }

  add(ms: number): void {
    this.addToBucket(bucketOf(this.#bounds, ms), ms);
  }

  /**
   * Adds a sample whose bucket is known (`bucketOf` on these bounds): several
   * histograms with the same bounds search once per sample.
   */
  addToBucket(bucket: number, ms: number): void {
    this.#counts[bucket]++;
    this.#n++;
    this.#sum += ms;
    if (ms > this.#max) this.#max = ms;
  }

  snapshot(): LatencyHistogramSnapshot {
    return { boundsMs: this.#bounds, counts: Array.from(this.#counts), max: this.#max };
  }

  /** The q-quantile (0..1), interpolated linearly inside its bucket; null without samples. */
  quantile(q: number): number | null {
    return quantileOf(this.#counts, q, this.#max, this.#bounds, this.#n);
  }

  /** Largest sample (0 without samples). */
  get max(): number {
    return this.#max;
  }
}

/** Quantile of a bucket count array (also for differences of two snapshots). */
export function quantileOf(
  counts: ArrayLike<number>,
  q: number,
  max = Infinity,
  bounds: readonly number[] = LATENCY_BOUNDS_MS,
  total?: number,
): number | null {
  let n = total ?? 0;
  if (total === undefined) for (let i = 0; i < counts.length; i++) n += counts[i];
  if (n === 0) return null;
  const rank = q * n;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] === 0) continue;
    if (seen + counts[i] >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      const upper = i < bounds.length ? bounds[i] : Math.max(lower, max);
      return Math.min(max, lower + ((upper - lower) * (rank - seen)) / counts[i]);
    }
    seen += counts[i];
  }
  return max;
}

/**
 * The same buckets over the last `windowSeconds` only: a ring of one-second
 * histograms, preallocated, so adding a sample stays O(log buckets) with no
 * allocation. What a dashboard should show for "now": a start-up spike leaves
 * the window after `windowSeconds`, while it stays in a session-long histogram.
 */
export class RecentHistogram {
  readonly windowSeconds: number;
  readonly #bounds: readonly number[];
  /** One row of counts per second slot. */
  readonly #counts: Float64Array[];
  /** The second (Math.floor(ms / 1000)) each slot holds, or -1. */
  readonly #second: Float64Array;
  readonly #max: Float64Array;
  readonly #scratch: Float64Array;

  constructor(windowSeconds = 10, bounds: readonly number[] = LATENCY_BOUNDS_MS) {
    if (!Number.isInteger(windowSeconds) || windowSeconds < 1) throw new RangeError(`windowSeconds must be a positive integer, got ${windowSeconds}`);
    this.windowSeconds = windowSeconds;
    this.#bounds = bounds;
    this.#counts = Array.from({ length: windowSeconds }, () => new Float64Array(bounds.length + 1));
    this.#second = new Float64Array(windowSeconds).fill(-1);
    this.#max = new Float64Array(windowSeconds);
    this.#scratch = new Float64Array(bounds.length + 1);
  }

  add(ms: number, now = Date.now()): void {
    this.addToBucket(bucketOf(this.#bounds, ms), ms, now);
  }

  /** Adds a sample whose bucket is known (`bucketOf` on these bounds). */
  addToBucket(bucket: number, ms: number, now = Date.now()): void {
    const second = Math.floor(now / 1000);
    const slot = second % this.windowSeconds;
    if (this.#second[slot] !== second) {
      this.#counts[slot].fill(0);
      this.#second[slot] = second;
      this.#max[slot] = 0;
    }
    this.#counts[slot][bucket]++;
    if (ms > this.#max[slot]) this.#max[slot] = ms;
  }

  get bounds(): readonly number[] {
    return this.#bounds;
  }

  /** The q-quantile over the window; null without samples in it. */
  quantile(q: number, now = Date.now()): number | null {
    const first = Math.floor(now / 1000) - this.windowSeconds + 1;
    const sum = this.#scratch.fill(0);
    let max = 0;
    for (let s = 0; s < this.windowSeconds; s++) {
      if (this.#second[s] < first) continue;
      const row = this.#counts[s];
      for (let i = 0; i < row.length; i++) sum[i] += row[i];
      if (this.#max[s] > max) max = this.#max[s];
    }
    return quantileOf(sum, q, max, this.#bounds);
  }

  /** Samples in the window. */
  count(now = Date.now()): number {
    const first = Math.floor(now / 1000) - this.windowSeconds + 1;
    let n = 0;
    for (let s = 0; s < this.windowSeconds; s++) {
      if (this.#second[s] < first) continue;
      for (const c of this.#counts[s]) n += c;
    }
    return n;
  }
}
