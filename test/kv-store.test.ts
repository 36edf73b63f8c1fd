import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CachedKeyValueStore, jsonCodec } from '../engine/state/kv-store.js';
import { RocksDatabase } from '../engine/state/rocks.js';
import { mulberry32 } from './reference/traffic.js';

describe('CachedKeyValueStore.prefetch', () => {
  let db: RocksDatabase;
  let dir: string;
  let store: CachedKeyValueStore<{ n: number }>;
  const commit = (): void => db.write(store.drain().ops);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sampleloop-kv-'));
    db = await RocksDatabase.open(dir);
    store = new CachedKeyValueStore('s', 't0', db, jsonCodec<{ n: number }>(), 0);
    store.put('a', { n: 1 });
    store.put('b', { n: 2 });
    commit();
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers gets of prefetched keys, present and absent', () => {
    store.prefetch(['a', 'b', 'c']);
    expect(store.get('a')).toEqual({ n: 1 });
    expect(store.get('b')).toEqual({ n: 2 });
    expect(store.get('c')).toBeUndefined();
  });

  it('never serves prefetched bytes after a later write was committed', () => {
    store.prefetch(['a', 'b', 'c']);
    store.delete('a');
    store.put('b', { n: 20 });
    store.put('c', { n: 30 });
    expect(store.get('a')).toBeUndefined();
    commit();
    expect(store.get('a')).toBeUndefined();
    expect(store.get('b')).toEqual({ n: 20 });
    expect(store.get('c')).toEqual({ n: 30 });
  });

  it('sees uncommitted writes over prefetched values', () => {
    store.put('c', { n: 3 });
    store.prefetch(['a', 'c']);
    expect(store.get('c')).toEqual({ n: 3 });
    store.delete('a');
    expect(store.get('a')).toBeUndefined();
  });
});

describe('CachedKeyValueStore.range', () => {
  for (const ordered of [false, true]) {
    it(`equals a sorted map over committed and uncommitted writes (dirty keys ${ordered ? 'kept sorted' : 'unsorted'})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sampleloop-kv-range-'));
      const db = await RocksDatabase.open(dir);
      try {
        const store = new CachedKeyValueStore<{ n: number }>('r', 't0', db, jsonCodec<{ n: number }>(), 0, ordered);
        const model = new Map<string, number>();
        const rand = mulberry32(12345);
        const key = (): string => `k${String(Math.floor(rand() * 3000)).padStart(5, '0')}`;
        for (let step = 0; step < 6000; step++) {
          const r = rand();
          if (r < 0.55) {
            const k = key();
            store.put(k, { n: step });
            model.set(k, step);
          } else if (r < 0.8) {
            const k = key();
            store.delete(k);
            model.delete(k);
          } else if (r < 0.83) {
            db.write(store.drain().ops);
          } else {
            const a = key();
            const b = key();
            const [from, to] = a < b ? [a, b] : [b, a];
            const limit = rand() < 0.3 ? Number.MAX_SAFE_INTEGER : 1 + Math.floor(rand() * 700);
            const expected = [...model.entries()]
              .filter(([k]) => k >= from && k < to)
              .sort(([x], [y]) => (x < y ? -1 : 1))
              .slice(0, limit)
              .map(([k, n]) => [k, { n }]);
            expect(store.range(from, to, limit)).toEqual(expected);
          }
        }
      } finally {
        await db.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('CachedKeyValueStore.replaceAll', () => {
  it('leaves exactly the given entries, committed, with no cached or uncommitted leftovers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-kv-replace-'));
    const db = await RocksDatabase.open(dir);
    try {
      const store = new CachedKeyValueStore<{ n: number }>('x', 't0', db, jsonCodec<{ n: number }>(), 100, true);
      const other = new CachedKeyValueStore<{ n: number }>('y', 't0', db, jsonCodec<{ n: number }>(), 0);
      for (let i = 0; i < 2_500; i++) store.put(`old-${String(i).padStart(5, '0')}`, { n: i });
      other.put('keep', { n: 1 });
      db.write([...store.drain().ops, ...other.drain().ops]);
      expect(store.get('old-00007')).toEqual({ n: 7 });
      store.put('uncommitted', { n: -1 });

      store.replaceAll(
        (function* () {
          for (let i = 0; i < 1_234; i++) yield [`new-${String(i).padStart(5, '0')}`, { n: i }] as [string, { n: number }];
        })(),
        100,
      );

      const after = [...store.committedEntries(64)];
      expect(after).toHaveLength(1_234);
      expect(after[0]).toEqual(['new-00000', { n: 0 }]);
      expect(store.get('old-00007')).toBeUndefined();
      expect(store.get('uncommitted')).toBeUndefined();
      expect(store.range('', '~', 3).map(([k]) => k)).toEqual(['new-00000', 'new-00001', 'new-00002']);
      expect(other.get('keep')).toEqual({ n: 1 });
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const DB_READS = new Set<string | symbol>(['get', 'getMany', 'range']);

/** `db` with its reads (get, getMany, range) counted. */
function countingReads(db: RocksDatabase): { db: RocksDatabase; reads: () => number } {
  let reads = 0;
  const counted = new Proxy(db, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        if (DB_READS.has(prop)) reads++;
        return method.apply(target, args);
      };
    },
  });
  return { db: counted, reads: () => reads };
}

describe('CachedKeyValueStore starting empty', () => {
  let db: RocksDatabase;
  let dir: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sampleloop-kv-empty-'));
    db = await RocksDatabase.open(dir);
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const ordered of [false, true]) {
    it(`answers as a store reading the database does, before and after it first spills (dirty keys ${ordered ? 'kept sorted' : 'unsorted'})`, () => {
      const codec = jsonCodec<{ n: number }>();
      const empty = new CachedKeyValueStore<{ n: number }>('e', 't0', db, codec, 0, ordered, { startsEmpty: true });
      const normal = new CachedKeyValueStore<{ n: number }>('n', 't0', db, codec, 0, ordered);
      const model = new Map<string, number>();
      const rand = mulberry32(777);
      const key = (): string => `k${String(Math.floor(rand() * 500)).padStart(4, '0')}`;
      // Long enough without a drain that over a thousand deleted keys pile up in the sorted dirty keys.
      const firstDrain = 8_000;
      for (let step = 0; step < 12_000; step++) {
        const r = rand();
        if (r < 0.5) {
          const k = key();
          empty.put(k, { n: step });
          normal.put(k, { n: step });
          model.set(k, step);
        } else if (r < 0.75) {
          const k = key();
          empty.delete(k);
          normal.delete(k);
          model.delete(k);
        } else if (r < 0.78 && step >= firstDrain) {
          db.write([...empty.drain(false).ops, ...normal.drain(false).ops]);
        } else if (r < 0.85) {
          const keys = [key(), key(), key()];
          empty.prefetch(keys);
          normal.prefetch(keys);
          for (const k of keys) {
            const expected = model.has(k) ? { n: model.get(k) } : undefined;
            expect(empty.get(k)).toEqual(expected);
            expect(normal.get(k)).toEqual(expected);
          }
        } else {
          const a = key();
          const b = key();
          const [from, to] = a < b ? [a, b] : [b, a];
          const limit = rand() < 0.3 ? Number.MAX_SAFE_INTEGER : 1 + Math.floor(rand() * 200);
          const expected = [...model.entries()]
            .filter(([k]) => k >= from && k < to)
            .sort(([x], [y]) => (x < y ? -1 : 1))
            .slice(0, limit)
            .map(([k, n]) => [k, { n }]);
          expect(empty.range(from, to, limit)).toEqual(expected);
          expect(normal.range(from, to, limit)).toEqual(expected);
        }
        if (step === firstDrain - 1) expect(empty.pendingWrites()).toBe(model.size);
      }
    });
  }

  it('never reads the database before a drain hands over rows, and finds the spilled rows after', () => {
    const counted = countingReads(db);
    const store = new CachedKeyValueStore<{ n: number }>('s', 't0', counted.db, jsonCodec<{ n: number }>(), 0, true, { startsEmpty: true });
    store.put('a', { n: 1 });
    store.put('b', { n: 2 });
    store.delete('a');
    store.prefetch(['a', 'b', 'c']);
    expect(store.get('a')).toBeUndefined();
    expect(store.get('b')).toEqual({ n: 2 });
    expect(store.get('c')).toBeUndefined();
    expect(store.range('', '~')).toEqual([['b', { n: 2 }]]);
    store.put('x', { n: 9 });
    store.delete('x');
    store.delete('b');
    // Everything written was deleted again: nothing to hand over, the database still holds nothing of the store.
    expect(store.drain(false).ops).toEqual([]);
    expect(store.get('b')).toBeUndefined();
    expect(store.range('', '~')).toEqual([]);
    expect(counted.reads()).toBe(0);

    store.put('a', { n: 10 });
    store.put('b', { n: 20 });
    counted.db.write(store.drain(false).ops);
    store.put('c', { n: 30 });
    store.delete('a');
    expect(store.get('b')).toEqual({ n: 20 });
    expect(store.get('a')).toBeUndefined();
    expect(store.range('', '~')).toEqual([
      ['b', { n: 20 }],
      ['c', { n: 30 }],
    ]);
    expect(counted.reads()).toBeGreaterThan(0);
    counted.db.write(store.drain(false).ops);
    expect([...store.committedEntries()]).toEqual([
      ['b', { n: 20 }],
      ['c', { n: 30 }],
    ]);
  });

  it('drops a deleted entry instead of keeping a tombstone, until the first spill', () => {
    const store = new CachedKeyValueStore<{ n: number }>('s', 't0', db, jsonCodec<{ n: number }>(), 0, false, { startsEmpty: true });
    store.put('a', { n: 1 });
    store.put('b', { n: 2 });
    store.delete('a');
    expect(store.pendingWrites()).toBe(1);
    const first = store.drain(false).ops;
    expect(first.map((op) => op.type)).toEqual(['put']);
    db.write(first);
    // Now the database holds rows of the store: a delete must reach it.
    store.delete('b');
    expect(store.pendingWrites()).toBe(1);
    const second = store.drain(false).ops;
    expect(second.map((op) => op.type)).toEqual(['del']);
    db.write(second);
    expect(store.get('b')).toBeUndefined();
    expect([...store.committedEntries()]).toEqual([]);
  });
});
