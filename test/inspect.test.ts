/** `sampleloop inspect`: the text table keeps its columns apart however wide the values are. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { inspect } from '../cli/inspect.js';
import { parseConfig, type SampleloopConfig } from '../config/config.js';
import { directAccess } from '../access/embedded.js';
import { openEmbeddedLog } from '../app/embedded.js';
import { rocksRegistryStorage } from '../schemas/registry-storage.js';
import { LocalSchemaRegistry } from '../schemas/registry.js';

let root: string;
let config: SampleloopConfig;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'sampleloop-inspect-test-'));
  config = parseConfig({ dataDir: join(root, 'data'), log: { level: 'silent' }, embedded: { partitions: 12 } });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

it('separates the records and end-offsets columns when the offsets list is wider than its header', async () => {
  const log = await openEmbeddedLog(config);
  try {
    const access = directAccess(log, new LocalSchemaRegistry(rocksRegistryStorage(log.db)));
    await access.produce('predictions', Array.from({ length: 400 }, (_, i) => JSON.stringify({ requestId: `r-${i}`, timestamp: i })).join('\n'), { createPartitions: 12 });
  } finally {
    await log.close();
  }
  const lines: string[] = [];
  await inspect(config, { json: false, out: (l) => lines.push(l) });
  const row = lines.find((l) => l.startsWith('predictions')) as string;
  const ends = row.split(/\s+/)[3] as string;
  expect(ends.split(',')).toHaveLength(12);
  expect(ends.length).toBeGreaterThan(14);
  expect(row.split(/\s+/)).toEqual(['predictions', '12', '400', ends, 'delete']);
  const header = lines.find((l) => l.startsWith('topic')) as string;
  expect(header.indexOf('end offsets') + 'end offsets'.length).toBe(row.indexOf(ends) + ends.length);
});
