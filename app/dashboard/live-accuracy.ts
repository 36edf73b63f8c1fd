/**
 * Live accuracy per category and model version: the CONFIRMED share of the samples whose label
 * came from feedback (CONFIRMED or CORRECTED; DEFAULT samples say nothing about the model). A later
 * revision of a request replaces its earlier label source, so an audit's correction of a confirmed
 * sample moves it from CONFIRMED to CORRECTED. The last label source of recent requests is kept in
 * a bounded map (oldest forgotten first); a revision of a forgotten request is counted as new.
 */

export interface AccuracyCount {
  category: string;
  version: string;
  confirmed: number;
  corrected: number;
  /** confirmed / (confirmed + corrected); null before the first labeled sample. */
  accuracy: number | null;
}

interface Remembered {
  key: string;
  labelSource: string;
}

export class LiveAccuracy {
  private readonly counts = new Map<string, AccuracyCount>();
  private readonly recent = new Map<string, Remembered>();

  constructor(private readonly rememberRequests = 100_000) {}

  /** Counts one sample (revision 0 or later); returns the count it changed, or undefined for DEFAULT samples. */
  add(sample: { requestId: string; category: string; version: string; labelSource: string }): AccuracyCount | undefined {
    const key = `${sample.category}\u0000${sample.version}`;
    const before = this.recent.get(sample.requestId);
    if (before) {
      this.recent.delete(sample.requestId);
      this.adjust(before.key, before.labelSource, -1);
    }
    if (sample.labelSource !== 'CONFIRMED' && sample.labelSource !== 'CORRECTED') return before ? this.counts.get(before.key) : undefined;
    this.recent.set(sample.requestId, { key, labelSource: sample.labelSource });
    if (this.recent.size > this.rememberRequests) {
      const oldest = this.recent.keys().next();
      if (!oldest.done) this.recent.delete(oldest.value);
    }
    if (!this.counts.has(key)) this.counts.set(key, { category: sample.category, version: sample.version, confirmed: 0, corrected: 0, accuracy: null });
    return this.adjust(key, sample.labelSource, 1);
  }

  all(): AccuracyCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }));
  }

  get(category: string, version: string): AccuracyCount | undefined {
    const c = this.counts.get(`${category}\u0000${version}`);
    return c ? { ...c } : undefined;
  }

  private adjust(key: string, labelSource: string, by: number): AccuracyCount | undefined {
    const c = this.counts.get(key);
    if (!c) return undefined;
    if (labelSource === 'CONFIRMED') c.confirmed += by;
    else if (labelSource === 'CORRECTED') c.corrected += by;
    const n = c.confirmed + c.corrected;
    c.accuracy = n > 0 ? c.confirmed / n : null;
    return c;
  }
}
