import { prefixEnd, type RocksDatabase, type WriteOp } from './rocks.js';

export interface Codec<V> {
  encode(value: V): Buffer;
  decode(bytes: Buffer): V;
}

/** A task-local key-value store. Keys used with `range` must be ASCII so string and byte order agree. */
export interface KeyValueStore<V> {
  readonly name: string;
  get(key: string): V | undefined;
  put(key: string, value: V): void;
  delete(key: string): void;
  /** Entries with from <= key < to in key order, including writes not yet committed. */
  range(from: string, to: string, limit?: number): Array<[string, V]>;
  /** Entries written since the last commit (a rough size signal for commit scheduling). */
  pendingWrites(): number;
  /** Reads these keys in one bulk lookup, so the next `get` of each is answered from memory. */
  prefetch?(keys: readonly string[]): void;
  /** Every committed entry, in pages (uncommitted writes are not seen): for rebuilding derived state at start. */
  committedEntries(pageSize?: number): Iterable<[string, V]>;
  /**
   * Replaces the whole store with `entries`, written straight to the database in batches rather than
   * through the write cache: for rebuilding derived state at start (before any record), where the
   * entries can be as many as the task's whole state.
   */
  replaceAll(entries: Iterable<[string, V]>): void;
}

/** One logical change of a store, as written to a changelog topic (value null = deleted). */
export interface StoreChange {
  store: string;
  key: string;
  value: Buffer | null;
}

export interface CommittableStore<V> extends KeyValueStore<V> {
  /** Hands over the uncommitted writes, as physical write ops and as changelog entries. */
  drain(withChanges?: boolean): { ops: WriteOp[]; changes: StoreChange[] };
  /** Physical key prefix of this store instance. */
  readonly prefix: Buffer;
  /** Applies changelog entries (restoration) straight to the database. */
  restore(changes: ReadonlyArray<{ key: string; value: Buffer | null }>): void;
}

const STATE_PREFIX = 0x50;
const ZERO = Buffer.from([0]);
/** Deleted keys left in the sorted dirty keys of a store that starts empty before they are swept out (see `forget`). */
const STALE_DIRTY_KEYS_MIN = 1_024;

export interface CachedStoreOptions {
  /**
   * The database is known to hold no rows of this store (a new scratch database, as replay's): until
   * a drain hands over rows, reads are answered from the write cache alone, with no database call, and
   * a delete drops the cached entry instead of keeping a tombstone. Never set it over a data dir that
   * may hold state already.
   */
  startsEmpty?: boolean;
}

export function storePrefix(store: string, taskId: string): Buffer {
  return Buffer.concat([Buffer.from([STATE_PREFIX]), Buffer.from(`${store}\u0000${taskId}\u0000`, 'utf8')]);
}

/**
 * RocksDB-backed store with an in-memory write cache flushed at commit and a bounded read cache.
 * Reads see uncommitted writes; nothing reaches RocksDB before the task commits, so state and
 * outputs become durable together.
 *
 * The database is assumed to hold rows of the store unless `startsEmpty` says otherwise; the store
 * stays "empty in the database" until its first drain that hands over rows (or a restore or
 * `replaceAll` that writes some).
 */
export class CachedKeyValueStore<V> implements CommittableStore<V> {
  private readonly dirty = new Map<string, V | null>();
  private readonly clean = new Map<string, V>();
  /** Dirty keys, kept only for stores scanned by range (see `orderedKeys`); sorted lazily, when a range needs them. */
  private readonly dirtyKeys: string[] | undefined;
  private dirtyKeysSorted = true;
  /** Entries of `dirtyKeys` no longer in `dirty` (deleted while the database was empty), or repeated since. */
  private staleDirtyKeys = 0;
  /** The database holds no rows of this store: reads need not look there. */
  private emptyInDb: boolean;
  readonly prefix: Buffer;
  /** Results of the last `prefetch`: stored bytes, or null for a key known to be absent. */
  private fetched = new Map<string, Buffer | null>();

  constructor(
    readonly name: string,
    taskId: string,
    private readonly db: RocksDatabase,
    private readonly codec: Codec<V>,
    private readonly readCacheEntries = 10_000,
    orderedKeys = false,
    options: CachedStoreOptions = {},
  ) {
    this.prefix = storePrefix(name, taskId);
    this.dirtyKeys = orderedKeys ? [] : undefined;
    this.emptyInDb = options.startsEmpty ?? false;
  }

  private markDirty(key: string, value: V | null): void {
    if (this.dirtyKeys && !this.dirty.has(key)) {
      const last = this.dirtyKeys[this.dirtyKeys.length - 1];
      if (last !== undefined && key < last) this.dirtyKeysSorted = false;
      this.dirtyKeys.push(key);
    }
    this.dirty.set(key, value);
  }

  private physical(key: string): Buffer {
    const k = Buffer.allocUnsafe(this.prefix.length + Buffer.byteLength(key));
    this.prefix.copy(k, 0);
    k.write(key, this.prefix.length, 'utf8');
    return k;
  }

  get(key: string): V | undefined {
    const pending = this.dirty.get(key);
    if (pending !== undefined) return pending ?? undefined;
    if (this.emptyInDb) return undefined;
    const cached = this.clean.get(key);
    if (cached !== undefined) return cached;
    const prefetched = this.fetched.get(key);
    if (prefetched === null) return undefined;
    const bytes = prefetched ?? this.db.get(this.physical(key));
    if (bytes === undefined) return undefined;
    if (prefetched !== undefined) this.fetched.delete(key);
    const value = this.codec.decode(bytes);
    this.remember(key, value);
    return value;
  }

  put(key: string, value: V): void {
    this.markDirty(key, value);
    this.clean.delete(key);
  }

  delete(key: string): void {
    if (this.emptyInDb) {
      this.forget(key);
      return;
    }
    this.markDirty(key, null);
    this.clean.delete(key);
  }

  /** Deletes a key while the database holds nothing of the store: no tombstone needed, the cached entry just goes. */
  private forget(key: string): void {
    if (!this.dirty.delete(key) || !this.dirtyKeys) return;
    // Its place in `dirtyKeys` stays until enough of them pile up: removing it there would shift the array.
    this.staleDirtyKeys++;
    if (this.staleDirtyKeys > Math.max(STALE_DIRTY_KEYS_MIN, this.dirty.size)) this.compactDirtyKeys(this.dirtyKeys);
  }

  /** Drops the entries of `keys` that are no longer dirty, and repeats of keys put again after a delete. Keeps the order. */
  private compactDirtyKeys(keys: string[]): void {
    const seen = new Set<string>();
    let kept = 0;
    for (const key of keys) {
      if (!this.dirty.has(key) || seen.has(key)) continue;
      seen.add(key);
      keys[kept++] = key;
    }
    keys.length = kept;
    this.staleDirtyKeys = 0;
  }

  /** Rows of the store reach the database (or may have): from now on, reads look there. */
  private markStored(): void {
    if (!this.emptyInDb) return;
    this.emptyInDb = false;
    // Only the write cache path tolerates stale dirty keys (`cachedRange`); `mergedRange` needs them exact.
    if (this.dirtyKeys && this.staleDirtyKeys > 0) this.compactDirtyKeys(this.dirtyKeys);
  }

  prefetch(keys: readonly string[]): void {
    if (this.emptyInDb) return;
    this.fetched = new Map();
    const wanted: string[] = [];
    for (const key of keys) {
      if (this.dirty.has(key) || this.clean.has(key) || this.fetched.has(key)) continue;
      this.fetched.set(key, null);
      wanted.push(key);
    }
    if (wanted.length === 0) return;
    const found = this.db.getMany(wanted.map((k) => this.physical(k)));
    for (let i = 0; i < wanted.length; i++) {
      const bytes = found[i];
      if (bytes !== undefined) this.fetched.set(wanted[i] as string, bytes);
    }
  }

  range(from: string, to: string, limit = Number.MAX_SAFE_INTEGER): Array<[string, V]> {
    if (this.emptyInDb) return this.cachedRange(from, to, limit);
    if (this.dirtyKeys) return this.mergedRange(this.sortedDirtyKeys(this.dirtyKeys), from, to, limit);
    const merged = new Map<string, V | null>();
    const offset = this.prefix.length;
    const end = this.physical(to);
    let cursor = this.physical(from);
    let page = Math.max(1, Math.min(limit, 64));
    let live = 0;
    // Page through RocksDB until `limit` stored entries not deleted by uncommitted writes are found.
    for (;;) {
      const rows = this.db.range(cursor, end, page);
      for (const [k, v] of rows) {
        const key = k.toString('utf8', offset);
        if (this.dirty.get(key) === null) continue;
        merged.set(key, this.clean.get(key) ?? this.codec.decode(v));
        live++;
      }
      if (live >= limit || rows.length < page) break;
      cursor = Buffer.concat([(rows[rows.length - 1] as [Buffer, Buffer])[0], ZERO]);
      page = Math.min(page * 4, 10_000);
    }
    for (const [key, value] of this.dirty) {
      if (key >= from && key < to) merged.set(key, value);
    }
    const out: Array<[string, V]> = [];
    for (const key of [...merged.keys()].sort()) {
      const value = merged.get(key);
      if (value === null || value === undefined) continue;
      out.push([key, value]);
      if (out.length >= limit) break;
    }
    return out;
  }

  private sortedDirtyKeys(keys: string[]): string[] {
    // Sorting here, not on every write: deletes of the oldest keys would otherwise shift the whole array each.
    if (!this.dirtyKeysSorted) keys.sort();
    this.dirtyKeysSorted = true;
    return keys;
  }

  /** `range` while the database holds nothing of the store: the write cache is the whole store. */
  private cachedRange(from: string, to: string, limit: number): Array<[string, V]> {
    const out: Array<[string, V]> = [];
    if (this.dirtyKeys) {
      const keys = this.sortedDirtyKeys(this.dirtyKeys);
      let previous: string | undefined;
      for (let j = lowerBound(keys, from); j < keys.length && out.length < limit; j++) {
        const key = keys[j] as string;
        if (key >= to) break;
        if (key === previous) continue;
        previous = key;
        const value = this.dirty.get(key);
        if (value !== null && value !== undefined) out.push([key, value]);
      }
      return out;
    }
    const keys: string[] = [];
    for (const [key, value] of this.dirty) if (value !== null && key >= from && key < to) keys.push(key);
    keys.sort();
    for (const key of keys) {
      if (out.length >= limit) break;
      out.push([key, this.dirty.get(key) as V]);
    }
    return out;
  }

  /**
   * `range` for stores that keep their dirty keys sorted: a merge of the stored rows (paged) and the
   * sorted dirty keys that stops at `limit`, so the cost follows the entries returned, not the
   * number of uncommitted writes.
   */
  private mergedRange(dirtySorted: readonly string[], from: string, to: string, limit: number): Array<[string, V]> {
    const out: Array<[string, V]> = [];
    const offset = this.prefix.length;
    const end = this.physical(to);
    let cursor = this.physical(from);
    let page = Math.max(1, Math.min(limit, 10_000));
    let rows = this.db.range(cursor, end, page);
    let i = 0;
    let j = lowerBound(dirtySorted, from);
    let storedKey = rows.length > 0 ? (rows[0] as [Buffer, Buffer])[0].toString('utf8', offset) : undefined;
    while (out.length < limit) {
      if (storedKey === undefined && i >= rows.length && rows.length === page) {
        // This page is used up and RocksDB may hold more: fetch the next one.
        cursor = Buffer.concat([(rows[rows.length - 1] as [Buffer, Buffer])[0], ZERO]);
        page = Math.min(page * 4, 10_000);
        rows = this.db.range(cursor, end, page);
        i = 0;
        storedKey = rows.length > 0 ? (rows[0] as [Buffer, Buffer])[0].toString('utf8', offset) : undefined;
        continue;
      }
      const dirtyKey = j < dirtySorted.length && (dirtySorted[j] as string) < to ? (dirtySorted[j] as string) : undefined;
      if (storedKey === undefined && dirtyKey === undefined) break;
      if (dirtyKey !== undefined && (storedKey === undefined || dirtyKey <= storedKey)) {
        if (dirtyKey === storedKey) storedKey = this.nextStored(rows, ++i, offset);
        j++;
        const value = this.dirty.get(dirtyKey);
        if (value !== null && value !== undefined) out.push([dirtyKey, value]);
        continue;
      }
      const key = storedKey as string;
      const bytes = (rows[i] as [Buffer, Buffer])[1];
      storedKey = this.nextStored(rows, ++i, offset);
      if (this.dirty.has(key)) continue;
      out.push([key, this.clean.get(key) ?? this.codec.decode(bytes)]);
    }
    return out;
  }

  private nextStored(rows: Array<[Buffer, Buffer]>, i: number, offset: number): string | undefined {
    return i < rows.length ? (rows[i] as [Buffer, Buffer])[0].toString('utf8', offset) : undefined;
  }

  pendingWrites(): number {
    return this.dirty.size;
  }

  replaceAll(entries: Iterable<[string, V]>, batchSize = 10_000): void {
    let ops: WriteOp[] = [];
    const flush = (): void => {
      this.db.write(ops);
      ops = [];
    };
    for (const [key] of this.committedEntries()) {
      ops.push({ type: 'del', key: this.physical(key) });
      if (ops.length >= batchSize) flush();
    }
    flush();
    let written = 0;
    for (const [key, value] of entries) {
      ops.push({ type: 'put', key: this.physical(key), value: this.codec.encode(value) });
      written++;
      if (ops.length >= batchSize) flush();
    }
    flush();
    this.dirty.clear();
    if (this.dirtyKeys) this.dirtyKeys.length = 0;
    this.dirtyKeysSorted = true;
    this.staleDirtyKeys = 0;
    this.clean.clear();
    this.fetched.clear();
    if (written > 0) this.markStored();
  }

  *committedEntries(pageSize = 5_000): Iterable<[string, V]> {
    const offset = this.prefix.length;
    const end = prefixEnd(this.prefix);
    let cursor = this.prefix;
    for (;;) {
      const rows = this.db.range(cursor, end, pageSize);
      for (const [k, v] of rows) yield [k.toString('utf8', offset), this.codec.decode(v)];
      if (rows.length < pageSize) return;
      cursor = Buffer.concat([(rows[rows.length - 1] as [Buffer, Buffer])[0], ZERO]);
    }
  }

  /** `withChanges` false: no changelog entries (the embedded runtime keeps state in the log's own database). */
  drain(withChanges = true): { ops: WriteOp[]; changes: StoreChange[] } {
    const ops: WriteOp[] = [];
    const changes: StoreChange[] = [];
    for (const [key, value] of this.dirty) {
      const physical = this.physical(key);
      if (value === null) {
        ops.push({ type: 'del', key: physical });
        if (withChanges) changes.push({ store: this.name, key, value: null });
      } else {
        const bytes = this.codec.encode(value);
        ops.push({ type: 'put', key: physical, value: bytes });
        if (withChanges) changes.push({ store: this.name, key, value: bytes });
        this.remember(key, value);
      }
    }
    this.dirty.clear();
    if (this.dirtyKeys) {
      this.dirtyKeys.length = 0;
      this.dirtyKeysSorted = true;
      this.staleDirtyKeys = 0;
    }
    // The caller writes the ops to the database.
    if (ops.length > 0) this.markStored();
    // Prefetched bytes predate the writes just drained; they are valid only within one commit interval.
    this.fetched.clear();
    return { ops, changes };
  }

  restore(changes: ReadonlyArray<{ key: string; value: Buffer | null }>): void {
    const ops: WriteOp[] = changes.map((c) =>
      c.value === null ? { type: 'del', key: this.physical(c.key) } : { type: 'put', key: this.physical(c.key), value: c.value },
    );
    this.db.write(ops);
    if (changes.some((c) => c.value !== null)) this.markStored();
    for (const c of changes) this.clean.delete(c.key);
    this.fetched.clear();
  }

  private remember(key: string, value: V): void {
    if (this.readCacheEntries <= 0) return;
    if (this.clean.size >= this.readCacheEntries) {
      const oldest = this.clean.keys().next().value;
      if (oldest !== undefined) this.clean.delete(oldest);
    }
    this.clean.set(key, value);
  }
}

/** JSON codec for small, rarely written state (metadata). */
export function jsonCodec<V>(): Codec<V> {
  return {
    encode: (v) => Buffer.from(JSON.stringify(v), 'utf8'),
    decode: (b) => JSON.parse(b.toString('utf8')) as V,
  };
}

function lowerBound(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
