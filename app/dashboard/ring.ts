/**
 * A bounded in-process time series: `capacity` slots of `resolutionMs` each (1 h at 1 s by default),
 * reused round-robin, so memory stays fixed however long the engine runs. Each slot holds named
 * counters (summed), gauges (last value wins) and histograms (bucket counts, summed).
 */

interface Slot {
  start: number;
  counters: Map<string, number>;
  gauges: Map<string, number>;
  histograms: Map<string, number[]>;
}

/** Slots merged into steps of `stepMs` (the API's `step`), oldest first. */
export interface RingWindow {
  /** Start of each step (ms since the epoch). */
  t: number[];
  counter(name: string): number[];
  /** The last value set within each step; null where none was. */
  gauge(name: string): Array<number | null>;
  histogram(name: string): Array<number[] | null>;
  /** Names seen in the window that start with `prefix`. */
  names(kind: 'counter' | 'gauge' | 'histogram', prefix: string): string[];
}

export class TimeRing {
  private readonly slots: Array<Slot | undefined>;
  private latest = Number.NEGATIVE_INFINITY;

  constructor(
    readonly resolutionMs: number,
    readonly capacity: number,
  ) {
    if (!(resolutionMs > 0) || !Number.isInteger(capacity) || capacity < 1) throw new RangeError(`time ring: resolution ${resolutionMs} ms, capacity ${capacity}`);
    this.slots = new Array<Slot | undefined>(capacity);
  }

  add(time: number, name: string, by = 1): void {
    const slot = this.slotAt(time);
    if (slot) slot.counters.set(name, (slot.counters.get(name) ?? 0) + by);
  }

  set(time: number, name: string, value: number): void {
    this.slotAt(time)?.gauges.set(name, value);
  }

  /** Adds one observation to bucket `bucket` of a histogram with `buckets` buckets. */
  observe(time: number, name: string, bucket: number, buckets: number): void {
    const slot = this.slotAt(time);
    if (!slot) return;
    let counts = slot.histograms.get(name);
    if (!counts) {
      counts = new Array<number>(buckets).fill(0);
      slot.histograms.set(name, counts);
    }
    counts[bucket] = (counts[bucket] ?? 0) + 1;
  }

  /** Start of the newest slot written, or undefined before the first write. */
  newest(): number | undefined {
    return Number.isFinite(this.latest) ? this.latest : undefined;
  }

  /** Start of the oldest slot still kept, or undefined before the first write. */
  oldest(): number | undefined {
    const floor = this.latest - (this.capacity - 1) * this.resolutionMs;
    let oldest: number | undefined;
    for (const s of this.slots) if (s && s.start >= floor && (oldest === undefined || s.start < oldest)) oldest = s.start;
    return oldest;
  }

  /** The slots from `from` (ms) on, merged into steps of `stepMs` (rounded to whole slots). */
  window(options: { from?: number; stepMs?: number } = {}): RingWindow {
    const res = this.resolutionMs;
    const stepMs = Math.max(res, Math.round((options.stepMs ?? res) / res) * res);
    const oldest = this.latest - (this.capacity - 1) * res;
    const from = Math.max(oldest, options.from ?? oldest);
    const live = this.slots.filter((s): s is Slot => s !== undefined && s.start >= from).sort((a, b) => a.start - b.start);
    // Every step from the first to the last, so a quiet period reads as zero, not as a line across it.
    const steps = new Map<number, Slot[]>();
    const first = live[0];
    if (first) for (let step = Math.floor(first.start / stepMs) * stepMs; step <= this.latest; step += stepMs) steps.set(step, []);
    for (const s of live) {
      const step = Math.floor(s.start / stepMs) * stepMs;
      const list = steps.get(step);
      if (list) list.push(s);
      else steps.set(step, [s]);
    }
    const t = [...steps.keys()];
    const groups = [...steps.values()];
    return {
      t,
      counter: (name) => groups.map((g) => g.reduce((sum, s) => sum + (s.counters.get(name) ?? 0), 0)),
      gauge: (name) =>
        groups.map((g) => {
          for (let i = g.length - 1; i >= 0; i--) {
            const v = (g[i] as Slot).gauges.get(name);
            if (v !== undefined) return v;
          }
          return null;
        }),
      histogram: (name) =>
        groups.map((g) => {
          let merged: number[] | null = null;
          for (const s of g) {
            const counts = s.histograms.get(name);
            if (!counts) continue;
            merged ??= new Array<number>(counts.length).fill(0);
            for (let i = 0; i < counts.length; i++) merged[i] = (merged[i] ?? 0) + (counts[i] ?? 0);
          }
          return merged;
        }),
      names: (kind, prefix) => {
        const found = new Set<string>();
        for (const s of live) {
          const map = kind === 'counter' ? s.counters : kind === 'gauge' ? s.gauges : s.histograms;
          for (const name of map.keys()) if (name.startsWith(prefix)) found.add(name);
        }
        return [...found].sort();
      },
    };
  }

  /** The slot for `time`, recycled when it held an older period; undefined when `time` is older than the ring keeps. */
  private slotAt(time: number): Slot | undefined {
    const start = Math.floor(time / this.resolutionMs) * this.resolutionMs;
    if (start <= this.latest - this.capacity * this.resolutionMs) return undefined;
    const index = Math.floor(start / this.resolutionMs) % this.capacity;
    let slot = this.slots[index];
    if (!slot || slot.start < start) {
      slot = { start, counters: new Map(), gauges: new Map(), histograms: new Map() };
      this.slots[index] = slot;
    } else if (slot.start > start) {
      return undefined;
    }
    if (start > this.latest) this.latest = start;
    return slot;
  }
}
