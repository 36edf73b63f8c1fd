import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExpiryIndex } from '../processors/join-expiry.js';
import { CachedKeyValueStore } from '../engine/state/kv-store.js';
import { RocksDatabase } from '../engine/state/rocks.js';
import { matchedFlagCodec } from '../processors/join-state.js';
import { mulberry32 } from './reference/traffic.js';

describe('ExpiryIndex: in-memory first page over the store', () => {
  let db: RocksDatabase | undefined;
  let dir = '';
  afterEach(async () => {
    await db?.close();
    db = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  for (const pageSize of [1, 3, 16]) {
    it(`matches a sorted map under random puts, deletes, pops and commits (page size ${pageSize})`, async () => {
      dir = mkdtempSync(join(tmpdir(), 'sampleloop-expiry-'));
      db = await RocksDatabase.open(dir);
      const store = new CachedKeyValueStore<number>('expiry', 't0', db, matchedFlagCodec, 0, true);
      const index = new ExpiryIndex(store, () => '', pageSize);
      const model = new Map<string, number>();
      const rand = mulberry32(pageSize * 7919);
      const key = (n: number): string => String(n).padStart(6, '0');
      let base = 0;
      let pops = 0;
      for (let step = 0; step < 4000; step++) {
        const r = rand();
        if (r < 0.45) {
          // Mostly increasing keys, sometimes far back (out of order) or far ahead.
          const k = key(base + Math.floor(rand() * (rand() < 0.1 ? 500 : 40)));
          const v = rand() < 0.5 ? 0 : 1;
          index.put(k, v);
          model.set(k, v);
        } else if (r < 0.6 && model.size > 0) {
          const keys = [...model.keys()];
          const k = keys[Math.floor(rand() * keys.length)] as string;
          index.delete(k);
          model.delete(k);
        } else if (r < 0.9) {
          const expected = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))[0];
          expect(index.first()).toEqual(expected);
          if (expected) {
            index.removeFirst();
            model.delete(expected[0]);
            base = Number(expected[0]);
            pops++;
          }
        } else {
          db.write(store.drain().ops);
        }
      }
      expect(pops).toBeGreaterThan(500);
      // Drain everything: the index and the store agree with the model to the end.
      const rest = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
      const drained: Array<[string, number]> = [];
      for (let e = index.first(); e; e = index.first()) {
        drained.push(e);
        index.removeFirst();
      }
      expect(drained).toEqual(rest);
      expect(store.range('', '~')).toEqual([]);
    });
  }
});
