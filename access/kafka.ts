import { jsonLinesToRecords, toDisplay, type DisplayRecord, type LogAccess, type TopicSummary } from './embedded.js';
import { UsageError } from '../engine/errors.js';
import { partitionForKey } from '../engine/partitioner.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import { encodeFramed } from '../schemas/codec.js';
import { schemaJson } from '../schemas/index.js';
import type { SchemaRegistry } from '../schemas/registry.js';
import { KafkaAdmin } from '../engine/kafka/admin.js';
import { KafkaPartitionReader } from '../engine/kafka/partition-reader.js';
import { fetchWriterSchemas } from '../schemas/confluent-registry.js';
import { call, flushProducer, KafkaConsumer, KafkaError, Producer, toHeaders, type LibrdkafkaSettings } from '../engine/kafka/client.js';
import type { Logger } from '../engine/logger.js';
import type { InputProtection } from '../processors/input-protection.js';

/**
 * The CLI's view of a Kafka cluster (`produce`, `consume`, `inspect`, `models ...` in mode "kafka"):
 * records are produced with Kafka's default partitioner (murmur2 of the key) and read from the start
 * of every partition up to its current end, read_committed.
 */
export function kafkaAccess(
  settings: LibrdkafkaSettings,
  registry: SchemaRegistry,
  logger: Logger,
  options: { partitions: number; replicationFactor: number; /** Protects input records before they are produced (privacy.protectOnIngest). */ ingest?: InputProtection },
): LogAccess {
  const admin = (): KafkaAdmin => new KafkaAdmin(settings, logger);

  const partitionCount = async (topic: string, create: boolean, createPartitions?: number, keepForever = false): Promise<number> => {
    const a = admin();
    try {
      const counts = create
        ? await a.ensureTopics([{ name: topic, partitions: createPartitions ?? options.partitions, compact: false, keepForever }], options.replicationFactor)
        : await a.partitionCounts([topic]);
      const n = counts.get(topic);
      if (n === undefined) throw new UsageError(`unknown topic "${topic}" on the Kafka cluster`);
      return n;
    } finally {
      a.close();
    }
  };

  const send = async (records: OutputRecord[], partitions: number): Promise<void> => {
    const producer = new Producer({ ...settings, 'enable.idempotence': true, acks: 'all', dr_cb: true } as ConstructorParameters<typeof Producer>[0]);
    const failures: unknown[] = [];
    producer.on('delivery-report', (err) => {
      if (err) failures.push(err);
    });
    await call('connecting the producer', (cb) => producer.connect({}, cb as never));
    producer.setPollInterval(10);
    try {
      for (const r of records) {
        producer.produce(r.topic, r.key ? partitionForKey(r.key, partitions) : null, r.value, r.key, r.timestamp, undefined, toHeaders(r.headers));
      }
      await flushProducer(producer, 60_000, 'flushing');
      if (failures.length > 0) throw deliveryError(failures, records.length);
    } finally {
      await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
    }
  };

  return {
    produce: async (topic, text, produceOptions = {}) => {
      const partitions = await partitionCount(topic, true, produceOptions.createPartitions);
      const lines = jsonLinesToRecords(topic, text, produceOptions.keyField ?? 'requestId', Date.now());
      const records = options.ingest ? options.ingest.protectRecords(lines) : lines;
      await send(records, partitions);
      return { appended: records.length };
    },
    produceAvro: async (topic, schema, records) => {
      // The model ledger is one partition keyed by category whose history is kept (as the engine creates it).
      const ledger = schema === 'ModelVersion';
      const partitions = await partitionCount(topic, true, ledger ? 1 : undefined, ledger);
      const id = await registry.register(`${topic}-value`, schemaJson(schema));
      await send(
        records.map((r) => ({ topic, key: r.key === null ? null : Buffer.from(r.key, 'utf8'), value: encodeFramed(schema, id, r.value), timestamp: r.timestamp, headers: {} })),
        partitions,
      );
      return { appended: records.length };
    },
    read: async (topic, readOptions = {}) => {
      const partitions = await partitionCount(topic, false);
      if (readOptions.partition !== undefined && readOptions.partition >= partitions) {
        throw new UsageError(`topic "${topic}" has ${partitions} partition(s), numbered from 0; there is no partition ${readOptions.partition}`);
      }
      const reader = await KafkaPartitionReader.open(settings, logger, `sampleloop-cli-${process.pid}`);
      const out: DisplayRecord[] = [];
      const max = readOptions.max ?? Number.MAX_SAFE_INTEGER;
      try {
        for (let p = 0; p < partitions && out.length < max; p++) {
          if (readOptions.partition !== undefined && p !== readOptions.partition) continue;
          for (let from = readOptions.from ?? 0; out.length < max; ) {
            const batch = await reader.read(topic, p, from, Math.min(5_000, max - out.length));
            if (batch.length === 0) break;
            await fetchWriterSchemas(registry, batch);
            for (const r of batch) out.push(toDisplay(r, registry));
            from = (batch[batch.length - 1] as SourceRecord).offset + 1;
          }
        }
      } finally {
        await reader.close();
      }
      return out.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    },
    topics: async () => {
      const a = admin();
      try {
        const all = await a.partitionCounts(await a.topicNames());
        const summaries: TopicSummary[] = [];
        const consumer = new KafkaConsumer({ ...settings, 'group.id': `sampleloop-cli-${process.pid}` } as ConstructorParameters<typeof KafkaConsumer>[0], {});
        await call('connecting the consumer', (cb) => consumer.connect({}, cb as never));
        try {
          for (const [topic, partitions] of [...all].sort(([x], [y]) => x.localeCompare(y))) {
            const endOffsets: number[] = [];
            let records = 0;
            for (let p = 0; p < partitions; p++) {
              const w = await call<{ lowOffset: number; highOffset: number }>('reading offsets', (cb) => consumer.queryWatermarkOffsets(topic, p, 10_000, cb));
              endOffsets.push(w.highOffset);
              records += w.highOffset - w.lowOffset;
            }
            // Cleanup policy and retention are topic configs this client cannot read (no DescribeConfigs).
            summaries.push({ topic, partitions, compact: null, retentionMs: null, records, endOffsets });
          }
        } finally {
          await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
        }
        return summaries;
      } finally {
        a.close();
      }
    },
    stores: () => Promise.resolve([]),
  };
}

/**
 * The broker's reasons, counted (e.g. "Broker: Invalid timestamp"), with a hint for the one a CLI
 * user causes: `produce` uses each line's `timestamp` as the Kafka timestamp, and brokers refuse
 * timestamps too far in the future (`message.timestamp.after.max.ms`, 1 h by default since Kafka 3.6)
 * or past (`message.timestamp.before.max.ms`).
 */
function deliveryError(failures: unknown[], total: number): KafkaError {
  const reasons = new Map<string, number>();
  for (const f of failures) {
    const text = (f as { message?: unknown } | null)?.message;
    const reason = typeof text === 'string' && text.length > 0 ? text : String(f);
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  const listed = [...reasons].map(([reason, n]) => `${reason} (${n})`).join('; ');
  const timestamp = [...reasons.keys()].some((r) => /timestamp/i.test(r))
    ? ". Each record's Kafka timestamp is its line's `timestamp`; the broker refuses timestamps beyond message.timestamp.after.max.ms (default 1 h) in the future or message.timestamp.before.max.ms in the past"
    : '';
  return new KafkaError(`${failures.length} of ${total} record(s) could not be delivered: ${listed}${timestamp}`);
}
