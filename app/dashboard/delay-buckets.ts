/**
 * The label delay's buckets (seconds, prediction to feedback in event time), shared by the
 * Prometheus histogram `sampleloop_label_delay_seconds` and the dashboard's per-slot histograms.
 */
export const LABEL_DELAY_BUCKETS: readonly number[] = [
  0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800,
];

/** Index of the bucket `seconds` falls in (the last index is the +Inf bucket). */
export function bucketOf(seconds: number): number {
  for (let i = 0; i < LABEL_DELAY_BUCKETS.length; i++) if (seconds <= (LABEL_DELAY_BUCKETS[i] as number)) return i;
  return LABEL_DELAY_BUCKETS.length;
}

export const BUCKET_COUNT = LABEL_DELAY_BUCKETS.length + 1;

/**
 * The q-quantile of bucket counts, interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile does (the +Inf bucket answers with the largest finite bound); null when empty.
 */
export function quantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && seen + c >= rank) {
      if (i >= LABEL_DELAY_BUCKETS.length) return LABEL_DELAY_BUCKETS[LABEL_DELAY_BUCKETS.length - 1] as number;
      const lower = i === 0 ? 0 : (LABEL_DELAY_BUCKETS[i - 1] as number);
      const upper = LABEL_DELAY_BUCKETS[i] as number;
      return lower + (upper - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return LABEL_DELAY_BUCKETS[LABEL_DELAY_BUCKETS.length - 1] as number;
}
