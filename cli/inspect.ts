import type { SampleloopConfig } from '../engine/config.js';
import { withLogAccess } from './context.js';

/** `sampleloop inspect`: per-topic counts and offsets. */
export async function inspect(config: SampleloopConfig, options: { json: boolean; out: (line: string) => void }): Promise<void> {
  const { topics, stores } = await withLogAccess(config, async (access) => ({ topics: await access.topics(), stores: await access.stores() }), { readOnly: true });
  if (options.json) {
    options.out(JSON.stringify({ dataDir: config.dataDir, topics, stores }));
    return;
  }
  options.out(`data dir: ${config.dataDir}`);
  options.out(['topic'.padEnd(24), 'partitions'.padStart(10), 'records'.padStart(10), 'end offsets'.padStart(14), '  cleanup'].join(''));
  for (const t of topics) {
    options.out([t.topic.padEnd(24), String(t.partitions).padStart(10), (t.records < 0 ? '-' : String(t.records)).padStart(10), t.endOffsets.join(',').padStart(14), `  ${t.compact ? 'compact' : 'delete'}`].join(''));
  }
  options.out('');
  options.out(['state store'.padEnd(24), 'task'.padStart(12), 'entries'.padStart(10), 'bytes'.padStart(12)].join(''));
  for (const s of stores) options.out([s.store.padEnd(24), s.task.padStart(12), String(s.entries).padStart(10), String(s.bytes).padStart(12)].join(''));
}
