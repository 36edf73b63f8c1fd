import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CachedKeyValueStore, jsonCodec } from '../state/kv-store.js';
import { RocksDatabase } from '../state/rocks.js';
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
