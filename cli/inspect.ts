import type { SampleloopConfig } from '../config/config.js';
import { withLogAccess } from './context.js';

/** `sampleloop inspect`: per-topic counts and offsets. */
export async function inspect(config: SampleloopConfig, options: { json: boolean; out: (line: string) => void }): Promise<void> {
  const { topics, stores } = await withLogAccess(config, async (access) => ({ topics: await access.topics(), stores: await access.stores() }), { readOnly: true });
  if (options.json) {
    options.out(JSON.stringify({ dataDir: config.dataDir, topics, stores }));
    return;
  }
  options.out(config.mode === 'kafka' ? `Kafka cluster: ${config.kafka.bootstrapServers ?? String(config.kafka.librdkafka['bootstrap.servers'] ?? '')}` : `data dir: ${config.dataDir}`);
  const width = Math.max(24, ...topics.map((t) => t.topic.length + 2), ...stores.map((s) => s.store.length + 2));
  // Columns grow with their widest value, so numbers never run into each other.
  const records = topics.map((t) => (t.records < 0 ? '-' : String(t.records)));
  const ends = topics.map((t) => t.endOffsets.join(','));
  const recordsWidth = Math.max(10, ...records.map((r) => r.length + 2));
  const endsWidth = Math.max(14, ...ends.map((e) => e.length + 2));
  options.out(['topic'.padEnd(width), 'partitions'.padStart(10), 'records'.padStart(recordsWidth), 'end offsets'.padStart(endsWidth), '  cleanup'].join(''));
  topics.forEach((t, i) => {
    const cleanup = t.compact === null ? '?' : t.compact ? 'compact' : 'delete';
    options.out([t.topic.padEnd(width), String(t.partitions).padStart(10), (records[i] as string).padStart(recordsWidth), (ends[i] as string).padStart(endsWidth), `  ${cleanup}`].join(''));
  });
  if (config.mode === 'kafka') {
    options.out('(records = high - low watermark, transaction markers included; cleanup policy not readable with this client: "?")');
    return;
  }
  options.out('');
  options.out(['state store'.padEnd(width), 'task'.padStart(12), 'entries'.padStart(10), 'bytes'.padStart(12)].join(''));
  for (const s of stores) options.out([s.store.padEnd(width), s.task.padStart(12), String(s.entries).padStart(10), String(s.bytes).padStart(12)].join(''));
}
