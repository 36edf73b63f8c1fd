import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CachedKeyValueStore, jsonCodec } from '../state/kv-store.js';
import { RocksDatabase } from '../state/rocks.js';

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
