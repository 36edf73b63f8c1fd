import type { Logger } from '../logger.js';
import type { EngineMetrics } from '../metrics.js';
import type { StreamTask } from '../task.js';
import { call, ERR, KafkaConsumer, KafkaError, toHeaders, type KafkaConsumerType, type LibrdkafkaSettings, type Message } from './client.js';

export function changelogTopic(applicationId: string, topology: string, store: string): string {
  return `${applicationId}-${topology}-${store}-changelog`;
}

/**
 * Marks a changelog record whose stored value is empty (e.g. the join's expiry markers). An empty
 * Kafka value comes back from the client as null, and null is a tombstone (compaction deletes the
 * key): such puts are written as one byte plus this header and turned back into an empty value on restore.
 */
const EMPTY_VALUE_HEADER = 'sampleloop.changelog.empty';

export const EMPTY_VALUE_HEADERS: Readonly<Record<string, string>> = Object.freeze({ [EMPTY_VALUE_HEADER]: '1' });
/** EMPTY_VALUE_HEADERS as produced, built once (the producer recognizes the object). */
export const EMPTY_VALUE_MESSAGE_HEADERS = toHeaders(EMPTY_VALUE_HEADERS);
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const EMPTY_VALUE_BYTES = Buffer.from([0]);

export function changelogValue(value: Buffer | null): { value: Buffer | null; headers: Record<string, string> } {
  if (value !== null && value.length === 0) return { value: EMPTY_VALUE_BYTES, headers: EMPTY_VALUE_HEADERS };
  return { value, headers: NO_HEADERS };
}

function restoredValue(m: Message): Buffer | null {
  const empty = ((m.headers ?? []) as Array<Record<string, unknown>>).some((h) => Object.prototype.hasOwnProperty.call(h, EMPTY_VALUE_HEADER));
  if (empty) return Buffer.alloc(0);
  return m.value ?? null;
}

/**
 * A topic created a moment ago (changelogs are created at start) can be missing from the broker's
 * metadata, or without a leader, for a short while: retry those errors (and timeouts) for up to 30 s.
 */
export async function changelogWatermarks(consumer: KafkaConsumerType, topic: string, partition: number): Promise<{ highOffset: number; lowOffset: number }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await call<{ highOffset: number; lowOffset: number }>('reading changelog offsets', (cb) => consumer.queryWatermarkOffsets(topic, partition, 10_000, cb));
    } catch (err) {
      const code = err instanceof KafkaError ? err.kafkaCode : undefined;
      const transient = [ERR.UNKNOWN_PARTITION, ERR.UNKNOWN_TOPIC_OR_PART, ERR.LEADER_NOT_AVAILABLE, ERR.NOT_LEADER_FOR_PARTITION, ERR.TIMED_OUT, ERR.TRANSPORT, ERR.ALL_BROKERS_DOWN] as number[];
      if (code === undefined || !transient.includes(code) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

export interface RestoreOptions {
  applicationId: string;
  librdkafka: LibrdkafkaSettings;
  logger: Logger;
  metrics: EngineMetrics;
  /** The group's consumer, for the changelogs' watermarks. */
  consumer: KafkaConsumerType;
}

/**
 * Replays the task's changelog partitions, from the checkpoint (or their start) to their ends, into
 * its stores, with one consumer for all of them. Throws when it stops making progress, rather than
 * leaving the task with part of its state.
 */
export async function restoreFromChangelogs(task: StreamTask, checkpoint: Record<string, number> | undefined, o: RestoreOptions): Promise<void> {
  const partition = task.partition;
  interface Pending {
    store: string;
    target: NonNullable<ReturnType<StreamTask['store']>>;
    from: number;
    end: number;
    position: number;
    restored: number;
  }
  const pending = new Map<string, Pending>();
  for (const spec of task.topology.stores.values()) {
    if (spec.changelog === false) continue;
    const topic = changelogTopic(o.applicationId, task.topology.name, spec.name);
    const target = task.store(spec.name);
    const { lowOffset, highOffset } = await changelogWatermarks(o.consumer, topic, partition);
    const from = Math.max(checkpoint?.[topic] ?? 0, lowOffset);
    if (target && from < highOffset) pending.set(topic, { store: spec.name, target, from, end: highOffset, position: from, restored: 0 });
  }
  if (pending.size === 0) return;
  task.markRestored();
  const restorer = new KafkaConsumer(
    { ...o.librdkafka, 'group.id': `${o.applicationId}-restore`, 'enable.auto.commit': false, 'isolation.level': 'read_committed' } as ConstructorParameters<typeof KafkaConsumer>[0],
    {},
  );
  await call('connecting the restore consumer', (cb) => restorer.connect({}, cb as never));
  restorer.setDefaultConsumeTimeout(200);
  restorer.assign([...pending].map(([topic, p]) => ({ topic, partition, offset: p.from })));
  let idle = 0;
  try {
    while (pending.size > 0) {
      const batch = await call<Message[]>('restoring', (cb) => restorer.consume(5000, cb));
      const byTopic = new Map<string, Message[]>();
      for (const m of batch) byTopic.set(m.topic, [...(byTopic.get(m.topic) ?? []), m]);
      for (const [topic, messages] of byTopic) {
        const p = pending.get(topic);
        if (!p) continue;
        p.target.restore(messages.map((m) => ({ key: m.key === null || m.key === undefined ? '' : m.key.toString(), value: restoredValue(m) })));
        p.restored += messages.length;
        p.position = (messages[messages.length - 1] as Message).offset + 1;
        o.metrics.restoredRecords.labels(p.store).inc(messages.length);
      }
      // Transaction markers occupy offsets without messages: the consumer's position tells how far each partition is.
      for (const pos of restorer.position([...pending.keys()].map((topic) => ({ topic, partition })))) {
        const p = pending.get(pos.topic);
        if (p && typeof pos.offset === 'number' && pos.offset > p.position) p.position = pos.offset;
      }
      for (const [topic, p] of [...pending]) {
        o.metrics.restoreRemaining.labels(p.store).set(Math.max(0, p.end - p.position));
        if (p.position < p.end) continue;
        pending.delete(topic);
        o.logger.info({ store: p.store, topic, partition, restored: p.restored, from: p.from, end: p.end }, 'state restored from changelog');
      }
      idle = batch.length > 0 ? 0 : idle + 1;
      if (idle >= 150) throw new KafkaError(`restoring ${[...pending.keys()].join(', ')} (partition ${partition}): no progress for 30 s`);
    }
  } finally {
    restorer.disconnect();
  }
}
