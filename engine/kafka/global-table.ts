import type { Logger } from '../logger.js';
import { toLedgerRecord, type LedgerSource } from '../../models/model-registry.js';
import type { LedgerRecord } from '../../models/ledger.js';
import type { SchemaRegistry } from '../../schemas/registry.js';
import { referencedSchemaId } from '../../schemas/codec.js';
import { call, KafkaConsumer, toSourceRecord, type KafkaConsumerType, type LibrdkafkaSettings, type Message } from './client.js';

/**
 * The models topic read as a global table: every instance reads every partition from the start
 * (no consumer group), keeps the records in memory (a ledger is small), and keeps polling for new
 * versions. It serves the predictor's ModelRegistry through the synchronous LedgerSource interface.
 */
export class KafkaLedgerSource implements LedgerSource {
  private readonly records: LedgerRecord[][] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  private constructor(
    private readonly consumer: KafkaConsumerType,
    private readonly registry: SchemaRegistry,
    private readonly logger: Logger,
  ) {}

  static async start(settings: LibrdkafkaSettings, topic: string, partitions: number, registry: SchemaRegistry, logger: Logger, groupId: string): Promise<KafkaLedgerSource> {
    const consumer = new KafkaConsumer(
      { ...settings, 'group.id': groupId, 'enable.auto.commit': false, 'isolation.level': 'read_committed' } as ConstructorParameters<typeof KafkaConsumer>[0],
      {},
    );
    await call('connecting the models consumer', (cb) => consumer.connect({}, cb as never));
    consumer.setDefaultConsumeTimeout(500);
    consumer.assign(Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0 })));
    const source = new KafkaLedgerSource(consumer, registry, logger);
    for (let p = 0; p < partitions; p++) source.records.push([]);
    await source.catchUp(topic, partitions);
    source.loop = source.poll();
    return source;
  }

  /** Reads until every partition's high watermark, so the first batch already sees every model. */
  private async catchUp(topic: string, partitions: number): Promise<void> {
    const ends: number[] = [];
    for (let p = 0; p < partitions; p++) {
      const w = await call<{ highOffset: number }>('reading models offsets', (cb) => this.consumer.queryWatermarkOffsets(topic, p, 10_000, cb));
      ends.push(w.highOffset);
    }
    for (let idle = 0; idle < 20 && this.records.some((list, p) => (list.at(-1)?.offset ?? -1) + 1 < (ends[p] ?? 0)); ) {
      const n = await this.consumeOnce();
      idle = n === 0 ? idle + 1 : 0;
    }
  }

  private async consumeOnce(): Promise<number> {
    const messages = await call<Message[]>('reading the models topic', (cb) => this.consumer.consume(100, cb));
    for (const m of messages) {
      const record = toSourceRecord(m);
      const id = record.value ? referencedSchemaId(record.value) : undefined;
      if (id !== undefined && !this.registry.cached(id)) await this.registry.lookup(id).catch(() => undefined);
      this.records[record.partition]?.push(toLedgerRecord(record, (i) => this.registry.cached(i)));
    }
    return messages.length;
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.consumeOnce();
      } catch (err) {
        this.logger.warn({ err }, 'reading the models topic failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  endOffsets(): number[] {
    return this.records.map((list) => (list.at(-1)?.offset ?? -1) + 1);
  }

  read(partition: number, from: number, max: number): LedgerRecord[] {
    const list = this.records[partition] ?? [];
    const out: LedgerRecord[] = [];
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
