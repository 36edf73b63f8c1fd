import type { Logger } from '../logger.js';
import type { SourceRecord } from '../record.js';
import { call, KafkaConsumer, toSourceRecord, type KafkaConsumerType, type LibrdkafkaSettings, type Message } from './client.js';

/** Turns a record of the table's topic into the application's row; may await (e.g. a schema lookup). */
export type GlobalTableDecoder<T extends { offset: number }> = (record: SourceRecord) => T | Promise<T>;

/**
 * A topic read as a global table (Kafka Streams' GlobalKTable): every instance reads every partition
 * from the start (no consumer group), keeps the rows in memory (meant for small topics such as a model
 * ledger), and keeps polling for new ones. `read` and `endOffsets` serve synchronous readers.
 */
export class KafkaGlobalTable<T extends { offset: number }> {
  private readonly rows: T[][] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  private constructor(
    private readonly consumer: KafkaConsumerType,
    private readonly decode: GlobalTableDecoder<T>,
    private readonly logger: Logger,
    private readonly topic: string,
  ) {}

  static async start<T extends { offset: number }>(options: {
    settings: LibrdkafkaSettings;
    topic: string;
    partitions: number;
    groupId: string;
    decode: GlobalTableDecoder<T>;
    logger: Logger;
  }): Promise<KafkaGlobalTable<T>> {
    const { settings, topic, partitions } = options;
    const consumer = new KafkaConsumer(
      { ...settings, 'group.id': options.groupId, 'enable.auto.commit': false, 'isolation.level': 'read_committed' } as ConstructorParameters<typeof KafkaConsumer>[0],
      {},
    );
    await call(`connecting the ${topic} consumer`, (cb) => consumer.connect({}, cb as never));
    consumer.setDefaultConsumeTimeout(500);
    consumer.assign(Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0 })));
    const table = new KafkaGlobalTable<T>(consumer, options.decode, options.logger, topic);
    for (let p = 0; p < partitions; p++) table.rows.push([]);
    await table.catchUp(partitions);
    table.loop = table.poll();
    return table;
  }

  /** Reads until every partition's high watermark, so the first reader already sees every row. */
  private async catchUp(partitions: number): Promise<void> {
    const ends: number[] = [];
    for (let p = 0; p < partitions; p++) {
      const w = await call<{ highOffset: number }>(`reading ${this.topic} offsets`, (cb) => this.consumer.queryWatermarkOffsets(this.topic, p, 10_000, cb));
      ends.push(w.highOffset);
    }
    for (let idle = 0; idle < 20 && this.rows.some((list, p) => (list.at(-1)?.offset ?? -1) + 1 < (ends[p] ?? 0)); ) {
      const n = await this.consumeOnce();
      idle = n === 0 ? idle + 1 : 0;
    }
  }

  private async consumeOnce(): Promise<number> {
    const messages = await call<Message[]>(`reading the ${this.topic} topic`, (cb) => this.consumer.consume(100, cb));
    for (const m of messages) {
      const record = toSourceRecord(m);
      this.rows[record.partition]?.push(await this.decode(record));
    }
    return messages.length;
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.consumeOnce();
      } catch (err) {
        this.logger.warn({ err, topic: this.topic }, 'reading a global table failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  endOffsets(): number[] {
    return this.rows.map((list) => (list.at(-1)?.offset ?? -1) + 1);
  }

  read(partition: number, from: number, max: number): T[] {
    const list = this.rows[partition] ?? [];
    const out: T[] = [];
    for (const r of list) {
      if (r.offset < from) continue;
      out.push(r);
      if (out.length >= max) break;
    }
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
  }
}
