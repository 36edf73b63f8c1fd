import type { KeyValueStore } from '../engine/state/kv-store.js';

/**
 * The join's expiry index (key = close time | kind | request ID, in key order) with its first
 * page held in memory. Closing windows pops entries from the page, so a record reaches the store
 * for the index only when the page runs out: a range scan per `pageSize` closed entries instead of
 * one per record. Every write goes to the store as well; the page is a cache of the store's first
 * entries, never the only copy.
 *
 * Invariant: once loaded, the page holds exactly the live entries with key <= `end`
 * (all live entries when `complete`).
 */
export class ExpiryIndex {
  private keys: string[] = [];
  private head = 0;
  private readonly values = new Map<string, number>();
  private loaded = false;
  private complete = false;
  private end = '';

  constructor(
    private readonly store: KeyValueStore<number>,
    /** Where the first load starts: entries before it are known to be closed already. */
    private readonly startAfter: () => string,
    private readonly pageSize = 2000,
  ) {}

  put(key: string, value: number): void {
    this.store.put(key, value);
    if (!this.covers(key)) return;
    if (!this.values.has(key)) this.insert(key);
    this.values.set(key, value);
    if (this.complete && this.keys.length - this.head > 2 * this.pageSize) this.trimTail();
  }

  delete(key: string): void {
    this.store.delete(key);
    if (!this.values.delete(key)) return;
    const i = this.indexOf(key);
    if (i === this.head) this.head++;
    else if (i >= 0) this.keys.splice(i, 1);
  }

  /** The first live entry, or undefined when the index is empty. */
  first(): [string, number] | undefined {
    for (;;) {
      if (!this.loaded) this.load(this.startAfter());
      if (this.head < this.keys.length) {
        const key = this.keys[this.head] as string;
        return [key, this.values.get(key) as number];
      }
      if (this.complete) return undefined;
      this.load(`${this.end}\u0000`);
    }
  }

  /** Removes the entry `first()` returned. */
  removeFirst(): void {
    const key = this.keys[this.head];
    if (key === undefined) return;
    this.head++;
    this.values.delete(key);
    this.store.delete(key);
    if (this.head >= this.pageSize) {
      this.keys = this.keys.slice(this.head);
      this.head = 0;
    }
  }

  private covers(key: string): boolean {
    return this.loaded && (this.complete || key <= this.end);
  }

  private load(from: string): void {
    const rows = this.store.range(from, '~', this.pageSize);
    this.keys = rows.map(([k]) => k);
    this.head = 0;
    this.values.clear();
    for (const [k, v] of rows) this.values.set(k, v);
    this.loaded = true;
    this.complete = rows.length < this.pageSize;
    this.end = this.complete ? '' : (this.keys[this.keys.length - 1] as string);
  }

  /** Keeps memory bounded when everything fits the page: the tail goes back to being store-only. */
  private trimTail(): void {
    const keep = this.head + this.pageSize;
    for (let i = keep; i < this.keys.length; i++) this.values.delete(this.keys[i] as string);
    this.keys.length = keep;
    this.complete = false;
    this.end = this.keys[keep - 1] as string;
  }

  private insert(key: string): void {
    const last = this.keys[this.keys.length - 1];
    if (last === undefined || this.head === this.keys.length || last < key) {
      this.keys.push(key);
      return;
    }
    this.keys.splice(this.lowerBound(key), 0, key);
  }

  private indexOf(key: string): number {
    const i = this.lowerBound(key);
    return this.keys[i] === key ? i : -1;
  }

  private lowerBound(key: string): number {
    let lo = this.head;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.keys[mid] as string) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
