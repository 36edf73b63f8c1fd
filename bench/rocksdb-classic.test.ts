import { describe, expect, it } from 'vitest';
import { buildWorkload, CONTENDERS, measureContender } from './rocksdb-choice.js';

// Own file, so own process: the classic `rocksdb` package must not share a process with the fork.
describe('rocksdb choice: the classic package', () => {
  it('runs every phase on rocksdb 5.2.1 and reads back what it wrote', async () => {
    const classic = CONTENDERS.find((c) => c.name.startsWith('rocksdb '));
    expect(classic).toBeDefined();
    const w = buildWorkload(2000, { seed: 5 });
    const phases = await measureContender(classic as (typeof CONTENDERS)[number], w);
    expect(phases.map((p) => [p.phase, p.rows])).toEqual([
      ['put', 2000],
      ['get', 2000],
      ['getConcurrent', 2000],
      ['scan', w.scanStarts.length * w.scanLimit],
    ]);
  });
});
