import type { SampleloopConfig } from '../engine/config.js';
import { withLogAccess } from './context.js';

/** `sampleloop inspect`: per-topic counts and offsets. */
export async function inspect(config: SampleloopConfig, options: { json: boolean; out: (line: string) => void }): Promise<void> {
  const topics = await withLogAccess(config, (access) => access.topics());
  if (options.json) {
    options.out(JSON.stringify({ dataDir: config.dataDir, topics }));
    return;
  }
  options.out(`data dir: ${config.dataDir}`);
  options.out(['topic'.padEnd(24), 'partitions'.padStart(10), 'records'.padStart(10), 'end offsets'.padStart(14), '  cleanup'].join(''));
  for (const t of topics) {
    options.out([t.topic.padEnd(24), String(t.partitions).padStart(10), String(t.records).padStart(10), t.endOffsets.join(',').padStart(14), `  ${t.compact ? 'compact' : 'delete'}`].join(''));
  }
}
