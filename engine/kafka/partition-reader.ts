/**
 * Reads partitions of a Kafka cluster by offset, like the embedded log's `read`: an assign-only
 * consumer (no group membership, nothing committed) with `isolation.level=read_committed`, so
 * records of open or aborted transactions are never returned. Used by the built-in trainer
 * (models/trainer-kafka.ts) and by `sampleloop archive` in Kafka mode (cli/archive.ts).
 */
import { KafkaAdmin } from './admin.js';
import { call, KafkaConsumer, toSourceRecord, type KafkaConsumerType, type LibrdkafkaSettings, type Message } from './client.js';
import type { Logger } from '../logger.js';
import type { SourceRecord } from '../record.js';

const TIMEOUT_MS = 10_000;
/** Empty polls in a row after which a read stops short of the high watermark (aborted transactions leave gaps). */
const MAX_IDLE_POLLS = 5;

export class KafkaPartitionReader {
  private readonly partitionCounts = new Map<string, number>();

  private constructor(
    private readonly settings: LibrdkafkaSettings,
    private readonly logger: Logger,
    private readonly consumer: KafkaConsumerType,
  ) {}

  /** Connects the consumer; `groupId` is only required by librdkafka (the reader never joins the group nor commits). */
  static async open(settings: LibrdkafkaSettings, logger: Logger, groupId: string): Promise<KafkaPartitionReader> {
    const consumer = new KafkaConsumer({ ...settings, 'group.id': groupId, 'enable.auto.commit': false, 'isolation.level': 'read_committed' } as ConstructorParameters<typeof KafkaConsumer>[0], {
      'auto.offset.reset': 'earliest',
    });
    await call('connecting the partition reader', (cb) => consumer.connect({}, cb as never));
    consumer.setDefaultConsumeTimeout(200);
    return new KafkaPartitionReader(settings, logger, consumer);
  }

  /** Partition count of `topic`, 0 when it does not exist (known counts are cached). */
  async partitions(topic: string): Promise<number> {
    const known = this.partitionCounts.get(topic);
    if (known !== undefined) return known;
    const admin = new KafkaAdmin(this.settings, this.logger);
    try {
      const n = (await admin.partitionCounts([topic])).get(topic) ?? 0;
      if (n > 0) this.partitionCounts.set(topic, n);
      return n;
    } finally {
      admin.close();
    }
  }

  /**
   * Up to `max` committed records at offsets >= `from`, in offset order; stops at the high watermark
   * read when called. Offsets may have gaps (transaction markers, aborted records, compaction).
   */
  async read(topic: string, partition: number, from: number, max: number): Promise<SourceRecord[]> {
    const { highOffset } = await call<{ highOffset: number }>('reading offsets', (cb) => this.consumer.queryWatermarkOffsets(topic, partition, TIMEOUT_MS, cb));
    if (from >= highOffset || max <= 0) return [];
    this.consumer.assign([{ topic, partition, offset: from }]);
    const out: SourceRecord[] = [];
    try {
      for (let idle = 0; out.length < max && idle < MAX_IDLE_POLLS; ) {
        const batch = await call<Message[]>('reading', (cb) => this.consumer.consume(Math.min(1000, max - out.length), cb));
        idle = batch.length === 0 ? idle + 1 : 0;
        for (const m of batch) if (m.offset >= from && out.length < max) out.push(toSourceRecord(m));
        const last = out[out.length - 1];
        if (last !== undefined && last.offset + 1 >= highOffset) break;
        // Transaction markers occupy offsets without being delivered.
        const [position] = this.consumer.position([{ topic, partition }]);
        if (typeof position?.offset === 'number' && position.offset >= highOffset) break;
      }
    } finally {
      this.consumer.unassign();
    }
    return out;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
  }
}
