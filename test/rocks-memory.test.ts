import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RocksDatabase } from '../engine/state/rocks.js';

/**
 * engine/state/rocks.ts `write()` must not leave its batch attached to the database: abstract-level keeps
 * attached batches (and the Buffers they were given) reachable until the database closes, which
 * made the heap grow by every byte written (found by the join benchmark and the replay heap test).
 */
function attachedResources(db: RocksDatabase): Set<unknown> {
  const native = (db as unknown as { db: object }).db;
  const symbol = Object.getOwnPropertySymbols(native).find((s) => s.description === 'resources');
  if (symbol === undefined) throw new Error('abstract-level no longer keeps a resource set; update this test');
  return (native as Record<symbol, Set<unknown>>)[symbol] as Set<unknown>;
}

describe('RocksDatabase.write releases its batches', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('writes data that can be read back (sanity check for the test below)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-rocks-leak-'));
    dirs.push(dir);
    const db = await RocksDatabase.open(dir);
    try {
      db.write([{ type: 'put', key: Buffer.from('k'), value: Buffer.from('v') }]);
      expect(db.get(Buffer.from('k'))?.toString()).toBe('v');
    } finally {
      await db.close();
    }
  });

  it('releases the write batch after each write: no batch stays attached to the database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-rocks-leak-'));
    dirs.push(dir);
    const db = await RocksDatabase.open(dir);
    try {
      for (let i = 0; i < 50; i++) db.write([{ type: 'put', key: Buffer.from(`key-${i}`), value: Buffer.alloc(600, i) }]);
      expect(attachedResources(db).size).toBe(0);
    } finally {
      await db.close();
    }
  });
});
