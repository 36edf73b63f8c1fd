import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SampleloopConfig } from '../../config/config.js';
import { ConfigError } from '../../engine/errors.js';
import { KafkaAdmin } from '../../engine/kafka/admin.js';
import { librdkafkaSettings } from '../../app/kafka.js';
import { call, flushProducer, KafkaError, Producer, toHeaders, type ProducerType } from '../../engine/kafka/client.js';
import { ConfluentSchemaRegistry } from '../../schemas/confluent-registry.js';
import { silentLogger } from '../../engine/logger.js';
import { partitionForKey } from '../../engine/partitioner.js';
import type { OutputRecord } from '../../engine/record.js';
import type { ReplayOutput, ReplaySink } from './sink.js';

const QUEUE_FULL = -184;

/**
 * Produces the replay's outputs to the topics of the configured Kafka cluster (`kafka.*`): values
 * are Avro in the Confluent frame with ids of the cluster's schema registry (the topology registers
 * `<topic>-value` there, as `startKafkaApp` does), keys are request IDs and partitions follow the
 * key (murmur2, as the engine's producer), so a replayed sample replaces the online one of its
 * request after compaction. The producer is idempotent (no duplicates from its own retries).
 */
export class KafkaSink implements ReplaySink {
  readonly revocable = false;
  readonly locations: Record<ReplayOutput, string>;
  readonly defaultRejectsPath: string;
  private readonly deliveryErrors: KafkaError[] = [];
  private closed = false;

  private constructor(
    private readonly producer: ProducerType,
    readonly registry: ConfluentSchemaRegistry,
    private readonly topics: Record<ReplayOutput, string>,
    private readonly partitions: ReadonlyMap<string, number>,
    dataDir: string,
  ) {
    this.locations = Object.fromEntries(Object.entries(topics).map(([o, t]) => [o, `kafka topic ${t}`])) as Record<ReplayOutput, string>;
    this.defaultRejectsPath = join(dataDir, 'replay-rejects.jsonl');
    producer.on('delivery-report', (err) => {
      if (err) this.deliveryErrors.push(new KafkaError('a replayed record could not be delivered', err));
    });
  }

  static async open(config: SampleloopConfig): Promise<KafkaSink> {
    const missing: string[] = [];
    const registrySettings = config.kafka.schemaRegistry;
    if (!config.kafka.bootstrapServers && !config.kafka.librdkafka['bootstrap.servers']) missing.push('kafka.bootstrapServers (or kafka.librdkafka["bootstrap.servers"])');
    if (!registrySettings) missing.push('kafka.schemaRegistry.url (outputs are Avro in the Confluent wire format, registered under <topic>-value)');
    if (missing.length > 0 || !registrySettings) throw new ConfigError(`--out kafka needs ${missing.join(' and ')} in the configuration`);
    const settings = librdkafkaSettings(config);
    const topics: Record<ReplayOutput, string> = {
      samples: config.topics.samples,
      unmatched: config.topics.unmatched,
      orphans: config.topics.orphans,
      late: config.topics.late,
      review: config.topics.review,
      deadLetters: config.topics.deadLetters,
    };
    const admin = new KafkaAdmin(settings, silentLogger());
    let partitions: Map<string, number>;
    try {
      const specs = (Object.entries(topics) as Array<[ReplayOutput, string]>).map(([output, name]) => ({ name, partitions: config.kafka.partitions, compact: output === 'samples' }));
      partitions = await admin.ensureTopics(specs, config.kafka.replicationFactor);
    } finally {
      admin.close();
    }
    const producer = new Producer({
      ...settings,
      'client.id': `${config.applicationId}-replay`,
      'enable.idempotence': true,
      acks: 'all',
      'linger.ms': 20,
      dr_cb: true,
    } as ConstructorParameters<typeof Producer>[0]);
    await call('connecting the producer', (cb) => producer.connect({}, cb as never));
    producer.setPollInterval(10);
    const dataDir = resolve(config.dataDir);
    mkdirSync(dataDir, { recursive: true });
    return new KafkaSink(producer, new ConfluentSchemaRegistry(registrySettings), topics, partitions, dataDir);
  }

  async write(output: ReplayOutput, record: OutputRecord): Promise<void> {
    const topic = this.topics[output];
    const partition = record.key ? partitionForKey(record.key, this.partitions.get(topic) ?? 1) : null;
    for (;;) {
      try {
        this.producer.produce(topic, partition, record.value, record.key, record.timestamp, undefined, toHeaders(record.headers));
        return;
      } catch (err) {
        if ((err as { code?: number }).code !== QUEUE_FULL) throw new KafkaError(`producing to ${topic}`, err);
        // librdkafka's local queue is full: let it deliver.
        this.producer.poll();
        await sleep(5);
      }
    }
  }

  async commit(): Promise<void> {
    await flushProducer(this.producer, 120_000);
    await this.close();
    const failed = this.deliveryErrors[0];
    if (failed) throw failed;
  }

  async abort(): Promise<void> {
    await this.close();
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.producer.disconnect(() => resolve()));
  }
}
