import { createRequire } from 'node:module';
import type {
  AdminClient as AdminClientType,
  IAdminClient,
  KafkaConsumer as KafkaConsumerType,
  LibrdKafkaError,
  Message,
  MessageHeader,
  Metadata,
  Producer as ProducerType,
  TopicPartitionOffset,
} from '@confluentinc/kafka-javascript/types/rdkafka.js';
import { SampleloopError } from '../errors.js';
import type { Headers, SourceRecord } from '../record.js';

const require = createRequire(import.meta.url);
const rdkafka = require('@confluentinc/kafka-javascript') as {
  KafkaConsumer: typeof KafkaConsumerType;
  Producer: typeof ProducerType;
  AdminClient: typeof AdminClientType;
};

export const { KafkaConsumer, Producer, AdminClient } = rdkafka;

/** Cooperative rebalancing calls that the package implements but its typings omit. */
export interface IncrementalAssignment {
  incrementalAssign(partitions: Array<{ topic: string; partition: number }>): void;
  incrementalUnassign(partitions: Array<{ topic: string; partition: number }>): void;
  /** In a revoke callback: the partitions were taken away (session lost), not handed over. */
  assignmentLost(): boolean;
}
/** consume(n) tuning the package implements but its typings omit. */
export interface ConsumeTuning {
  /** true: consume(n) waits its timeout for the first record only, then takes what is already fetched. */
  setDefaultIsTimeoutOnlyForFirstMessage(onlyFirst: boolean): void;
}
/** A commit on the client's worker thread, not blocking the event loop like commitSync (untyped in the package). */
export interface AsyncCommit {
  commitCb(offsets: TopicPartitionOffset[], cb: (err: LibrdKafkaError | null) => void): void;
}
export type { IAdminClient, KafkaConsumerType, Message, Metadata, ProducerType, TopicPartitionOffset };

/** librdkafka error codes used here. */
export const ERR = {
  ASSIGN_PARTITIONS: -175,
  REVOKE_PARTITIONS: -174,
  TOPIC_ALREADY_EXISTS: 36,
  TIMED_OUT: -185,
  UNKNOWN_PARTITION: -190,
  UNKNOWN_TOPIC_OR_PART: 3,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_FOR_PARTITION: 6,
  TRANSPORT: -195,
  ALL_BROKERS_DOWN: -187,
  FATAL: -150,
} as const;

export class KafkaError extends SampleloopError {
  readonly kafkaCode: number | undefined;
  constructor(message: string, cause?: unknown) {
    const e = cause as Partial<LibrdKafkaError> | undefined;
    super('SL_KAFKA', e?.message ? `${message}: ${e.message}` : message, { cause, retriable: e?.isRetriable ?? true });
    this.kafkaCode = typeof e?.code === 'number' ? e.code : undefined;
  }
}

export type LibrdkafkaSettings = Record<string, string | number | boolean>;

export function call<T = void>(what: string, fn: (cb: (err: LibrdKafkaError | null | undefined, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    fn((err, value) => (err ? reject(new KafkaError(what, err)) : resolve(value as T)));
  });
}

/**
 * Flushes the producer and lets the delivery reports it triggered reach their 'delivery-report'
 * listeners before returning. The flush callback and the reports come back to the event loop on
 * separate libuv async handles, and the flush callback can run first: a caller that checks its
 * delivery errors right after flush() then misses a failed record (seen with a broker that refused a
 * record's timestamp: exit 0, the record lost). One trip through the check phase runs the pending
 * report dispatch.
 */
export async function flushProducer(producer: { flush(timeout: number, cb: (err: LibrdKafkaError | null | undefined) => void): unknown }, timeoutMs: number, what = 'flushing the producer'): Promise<void> {
  await call(what, (cb) => producer.flush(timeoutMs, cb));
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setImmediate(resolve));
}

export function toSourceRecord(m: Message): SourceRecord {
  const headers: Headers = {};
  for (const h of (m.headers ?? []) as MessageHeader[]) {
    for (const [k, v] of Object.entries(h)) headers[k] = Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  }
  return {
    topic: m.topic,
    partition: m.partition,
    offset: m.offset,
    key: m.key === undefined || m.key === null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(String(m.key)),
    value: m.value ?? null,
    timestamp: m.timestamp ?? Date.now(),
    headers,
  };
}

/** Undefined without headers: producing with an empty header list costs about as much again as producing without. */
export function toHeaders(headers: Headers): MessageHeader[] | undefined {
  let out: MessageHeader[] | undefined;
  for (const [k, v] of Object.entries(headers)) (out ??= []).push({ [k]: Buffer.from(v, 'utf8') });
  return out;
}
