/**
 * After many large writes and a full GC, (heap + array buffers) is back near where it started:
 * RocksDatabase.write keeps nothing it wrote reachable.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { RocksDatabase } from '../engine/state/rocks.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function liveBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('RocksDatabase.write', () => {
  it('does not keep the written keys and values reachable after the write', async () => {
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
