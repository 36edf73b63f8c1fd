/**
 * The built-in trainer on a Kafka cluster: `retrain-triggers` and the samples snapshot are read with
 * an assign-only, read_committed consumer (engine/kafka/partition-reader.ts), decisions are produced
 * with an idempotent producer, and the trigger offsets are committed for group
 * `<applicationId>.trainer` after the decision is delivered: at-least-once, and a trigger handled
 * twice is detected in the ledger (`already-trained`). Instances that enable it share the triggers'
 * partitions through that consumer group, so each trigger is trained by one of them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { GroupOffset } from '../engine/embedded/log.js';
import { KafkaAdmin } from '../engine/kafka/admin.js';
import { call, ERR, flushProducer, KafkaConsumer, KafkaError, Producer, toHeaders, type KafkaConsumerType, type LibrdkafkaSettings, type ProducerType } from '../engine/kafka/client.js';
import { KafkaPartitionReader } from '../engine/kafka/partition-reader.js';
import type { Logger } from '../engine/logger.js';
import { partitionForKey } from '../engine/partitioner.js';
import type { OutputRecord, SourceRecord } from '../engine/record.js';
import type { TrainerLog } from './trainer-ports.js';

const TIMEOUT_MS = 10_000;

export class KafkaTrainerLog implements TrainerLog {
  private constructor(
    private readonly reader: KafkaPartitionReader,
    private readonly committer: KafkaConsumerType,
    private readonly owned: ReadonlySet<number>,
    private readonly triggersTopic: string,
    private readonly producer: ProducerType,
    private readonly beforeReturn: (records: readonly SourceRecord[]) => Promise<void>,
  ) {}

  /**
   * Connects a reader, a committer in `group` and a producer; creates `ensureTopics` when missing.
   * `beforeReturn` sees every batch read before the trainer does (to fetch writer schemas).
   */
  static async open(
    settings: LibrdkafkaSettings,
    logger: Logger,
    group: string,
    triggersTopic: string,
    ensureTopics: ReadonlyArray<{ name: string; partitions: number }>,
    replicationFactor: number,
    beforeReturn: (records: readonly SourceRecord[]) => Promise<void> = () => Promise.resolve(),
  ): Promise<KafkaTrainerLog> {
    const admin = new KafkaAdmin(settings, logger);
    try {
      await admin.ensureTopics(ensureTopics.map((t) => ({ ...t, compact: false })), replicationFactor);
    } finally {
      admin.close();
    }
    // A member of the trainer's group on the triggers topic: the group hands each partition to one
    // instance, so triggers are trained once however many instances enable the trainer. It never
    // fetches (its partitions are paused): the reader reads, this consumer owns and commits.
    const owned = new Set<number>();
    const committer: KafkaConsumerType = new KafkaConsumer(
      {
        ...settings,
        'group.id': group,
        'enable.auto.commit': false,
        rebalance_cb: (err: { code: number }, assignment: Array<{ topic: string; partition: number }>) => {
          if (err.code === ERR.ASSIGN_PARTITIONS) {
            committer.assign(assignment);
            committer.pause(assignment);
            for (const tp of assignment) owned.add(tp.partition);
          } else if (err.code === ERR.REVOKE_PARTITIONS) {
            owned.clear();
            committer.unassign();
          }
        },
      } as ConstructorParameters<typeof KafkaConsumer>[0],
      {},
    );
    const producer = new Producer({ ...settings, 'enable.idempotence': true, acks: 'all', dr_cb: true } as ConstructorParameters<typeof Producer>[0]);
    const reader = await KafkaPartitionReader.open(settings, logger, `${group}-reader`);
    await call('connecting the trainer committer', (cb) => committer.connect({}, cb as never));
    committer.setDefaultConsumeTimeout(50);
    committer.subscribe([triggersTopic]);
    await call('connecting the trainer producer', (cb) => producer.connect({}, cb as never));
    producer.setPollInterval(50);
    return new KafkaTrainerLog(reader, committer, owned, triggersTopic, producer, beforeReturn);
  }

  /** Serves the group's rebalance events, then answers with this member's partitions of the triggers topic. */
  async ownedPartitions(topic: string): Promise<number[]> {
    await call<unknown[]>('polling the trainer group', (cb) => this.committer.consume(1, cb));
    return topic === this.triggersTopic ? [...this.owned].sort((a, b) => a - b) : [];
  }

  partitions(topic: string): Promise<number> {
    return this.reader.partitions(topic);
  }

  async read(topic: string, partition: number, from: number, max: number): Promise<SourceRecord[]> {
    const out = await this.reader.read(topic, partition, from, max);
    await this.beforeReturn(out);
    return out;
  }

  async committedOffset(_group: string, topic: string, partition: number): Promise<number | undefined> {
    const [committed] = await call<Array<{ offset?: number }>>('reading committed offsets', (cb) => this.committer.committed([{ topic, partition }], TIMEOUT_MS, cb as never));
    const offset = committed?.offset;
    return typeof offset === 'number' && offset >= 0 ? offset : undefined;
  }

  async commit(outputs: readonly OutputRecord[], offsets: readonly GroupOffset[]): Promise<void> {
    if (outputs.length > 0) {
      const failures: unknown[] = [];
      const onReport = (err: unknown): void => {
        if (err) failures.push(err);
      };
      this.producer.on('delivery-report', onReport);
      try {
        for (const r of outputs) {
          const partitions = await this.partitions(r.topic);
          this.producer.produce(r.topic, r.key && partitions > 0 ? partitionForKey(r.key, partitions) : null, r.value, r.key, r.timestamp, undefined, toHeaders(r.headers));
        }
        await flushProducer(this.producer, 60_000, 'flushing trainer decisions');
      } finally {
        this.producer.removeListener('delivery-report', onReport);
      }
      if (failures.length > 0) throw new KafkaError(`${failures.length} trainer decision(s) could not be delivered`, failures[0]);
    }
    if (offsets.length > 0) this.committer.commitSync(offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })));
  }

  async waitForAppend(timeoutMs: number): Promise<void> {
    await sleep(timeoutMs);
  }

  async close(): Promise<void> {
    await Promise.all([
      this.reader.close(),
      new Promise<void>((resolve) => this.committer.disconnect(() => resolve())),
      new Promise<void>((resolve) => this.producer.disconnect(() => resolve())),
    ]);
  }
}
