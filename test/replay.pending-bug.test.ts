/**
 * Engine bug found while testing replay under a small heap (state/rocks.ts, RocksDatabase.write):
 * `write` creates a chained batch with `this.db.batch()`, fills it with `batch.put/del` and commits
 * it with `batch._writeSync(...)`, but never closes it. abstract-level attaches every chained batch
 * to the database as an open resource (`db[resources]`) until it is closed, and `put` records each
 * operation (key and value Buffers) in the batch's operations list. So every write — each commit of
 * the runtime, each `EmbeddedLog.append` — keeps all the keys and values it wrote reachable until
 * the database is closed: the heap grows by the bytes written, without bound, online as well.
 *
 * Expected: after writing 64 × 1 MiB and a full GC, (heap + array buffers) is back near where it
 * started. Actual: it has grown by ~64 MiB, and is released only by `close()`.
 * Replay works around it by reopening its databases every few MiB written (topologies/replay.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { RocksDatabase } from '../state/rocks.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function liveBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('RocksDatabase.write', () => {
  it.fails('does not keep the written keys and values reachable after the write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampleloop-rocks-leak-'));
    const db = await RocksDatabase.open(dir);
    try {
      const before = liveBytes();
      for (let i = 0; i < 64; i++) db.write([{ type: 'put', key: Buffer.from(`k${i}`), value: Buffer.alloc(1 << 20, i) }]);
      const grown = liveBytes() - before;
      expect(grown).toBeLessThan(8 * 1024 * 1024);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
