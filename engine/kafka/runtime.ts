import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EngineMetrics } from '../metrics.js';
import { partitionForKey } from '../partitioner.js';
import type { OutputRecord, SourceRecord } from '../record.js';
import { StreamTask, type DeadLetterEnvelope } from '../task.js';
import type { Topology } from '../topology.js';
import { CachedKeyValueStore } from '../state/kv-store.js';
import { RocksDatabase } from '../state/rocks.js';
import { KafkaAdmin, requireCoPartitioned, type TopicSpec } from './admin.js';
import { TaskInput } from './task-input.js';
import type { InputRecord } from '../timestamp-extractor.js';
import {
  call,
  ERR,
  KafkaConsumer,
  KafkaError,
  flushProducer,
  Producer,
  toHeaders,
  toSourceRecord,
  type AsyncCommit,
  type ConsumeTuning,
  type IncrementalAssignment,
  type KafkaConsumerType,
  type LibrdkafkaSettings,
  type Message,
  type ProducerType,
  type TopicPartitionOffset,
} from './client.js';

export type ProcessingGuarantee = 'at_least_once' | 'exactly_once';

export interface KafkaRuntimeOptions {
  applicationId: string;
  /** Stable per instance: the transactional id under exactly-once, so a restarted instance fences its predecessor. */
  instanceId: string;
  guarantee: ProcessingGuarantee;
  /** librdkafka settings for every client (bootstrap.servers, security.protocol, sasl.*, ssl.*, ...). */
  librdkafka: LibrdkafkaSettings;
  stateDir: string;
  replicationFactor: number;
  /** Partitions of topics the runtime has to create (sources default to this too). */
  defaultPartitions: number;
  commitIntervalMs: number;
  punctuateIntervalMs: number;
  pollRecords: number;
  logger: Logger;
  metrics: EngineMetrics;
  deadLetterTopic: string;
  encodeDeadLetter(envelope: DeadLetterEnvelope): Buffer;
  protectPayload?(bytes: Buffer): { payload: Buffer; encoding: 'sealed' | 'withheld' } | null;
  /** Called before a batch is processed, e.g. to fetch unknown writer schemas. */
  beforeBatch?(records: readonly SourceRecord[]): Promise<void>;
  now?: () => number;
}

interface RunningTask {
  task: StreamTask;
  db: RocksDatabase;
  dir: string;
}

interface Job {
  kind: 'assign' | 'revoke';
  partitions: Array<{ topic: string; partition: number }>;
  /** Revoked because the group session was lost: another member may already own them, so nothing is committed. */
  lost?: boolean;
}

/** Consecutive failed commits (each followed by a recovery) before the runtime gives up. */
const MAX_FAILED_COMMITS = 5;
/** How long tasks may fail to reopen after a recovery (e.g. the broker is still down) before the runtime gives up. */
const REOPEN_GIVE_UP_MS = 5 * 60_000;

/** librdkafka's logical offset for "the start of the partition". */
const OFFSET_BEGINNING = -2;
const CHECKPOINT = '.checkpoint';
/** Performance settings; kafka.librdkafka overrides them. */
const CONSUMER_DEFAULTS: LibrdkafkaSettings = {
  // librdkafka leaves Nagle on (the Java clients turn it off): small requests may wait for delayed ACKs.
  'socket.nagle.disable': true,
};
const PRODUCER_DEFAULTS: LibrdkafkaSettings = {
  'socket.nagle.disable': true,
  // Records are produced in one burst per commit and flushed (or committed) right after.
  'linger.ms': 5,
};

/** How long consume waits for a first record. */
const CONSUME_TIMEOUT_MS = 100;
const WAITING_CONSUME_TIMEOUT_MS = 10;

/** Records buffered per input partition before its fetching is paused. */
const MAX_BUFFERED = 20_000;

/**
 * Marks a changelog record whose stored value is empty (e.g. the join's expiry markers). An empty
 * Kafka value comes back from the client as null, and null is a tombstone (compaction deletes the
 * key): such puts are written as one byte plus this header and turned back into an empty value on restore.
 */
const EMPTY_VALUE_HEADER = 'sampleloop.changelog.empty';

const EMPTY_VALUE_HEADERS: Readonly<Record<string, string>> = Object.freeze({ [EMPTY_VALUE_HEADER]: '1' });
/** EMPTY_VALUE_HEADERS as produced, built once (produceAll recognizes the object). */
const EMPTY_VALUE_MESSAGE_HEADERS = toHeaders(EMPTY_VALUE_HEADERS);
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const EMPTY_VALUE_BYTES = Buffer.from([0]);

function changelogValue(value: Buffer | null): { value: Buffer | null; headers: Record<string, string> } {
  if (value !== null && value.length === 0) return { value: EMPTY_VALUE_BYTES, headers: EMPTY_VALUE_HEADERS };
  return { value, headers: NO_HEADERS };
}

function restoredValue(m: Message): Buffer | null {
  const empty = ((m.headers ?? []) as Array<Record<string, unknown>>).some((h) => Object.prototype.hasOwnProperty.call(h, EMPTY_VALUE_HEADER));
  if (empty) return Buffer.alloc(0);
  return m.value ?? null;
}

export function changelogTopic(applicationId: string, topology: string, store: string): string {
  return `${applicationId}-${topology}-${store}-changelog`;
}

/**
 * Runs topologies on a Kafka cluster. One consumer (group = applicationId, cooperative-sticky)
 * subscribes to each topology's first source topic (its "lead"); when it is assigned partition p of a
 * lead, the task for p is created, its stores restored from their changelog topics, and partition p
 * of the topology's other (co-partitioned) source topics is assigned along with it, so a request
 * ID's prediction and feedback always meet in one task. Outputs and changelog records are produced,
 * then input offsets committed (at-least-once), or all of it in one transaction (exactly-once).
 */
export class KafkaRuntime {
  private consumer!: KafkaConsumerType;
  private producer!: ProducerType;
  private admin!: KafkaAdmin;
  private readonly tasks = new Map<string, RunningTask>();
  private readonly byLead = new Map<string, Topology>();
  private readonly bySource = new Map<string, Topology>();
  private readonly partitions = new Map<string, number>();
  private readonly jobs: Job[] = [];
  /** Fetched records waiting to be processed in timestamp order, per task. */
  private readonly inputs = new Map<string, TaskInput>();
  private readonly paused = new Set<string>();
  private deliveryErrors: Error[] = [];
  /** Tasks dropped by a recovery, reopened (restored, rewound) at the top of the run loop. */
  private readonly pendingReopen = new Map<string, { topology: Topology; partition: number }>();
  private producerNeedsReset = false;
  /** Exactly-once: a transaction was begun and outputs produced into it ahead of its commit (see sendEarlyInTransaction). */
  private transactionOpen = false;
  /** `run` threw: what was processed since the last commit is half done and must never be committed. */
  private failed = false;
  /** False from the start of a commit until it succeeded: no new transaction may begin meanwhile. */
  private commitSucceeded = true;
  /** Input offsets of drained work per task, committed by the next commit (see sendEarly). */
  private readonly drainedOffsets = new Map<string, Map<string, TopicPartitionOffset>>();
  /** The second half of the last commit, running while processing goes on (see startCommit). */
  private inflight: Promise<void> | undefined;
  private failedCommits = 0;
  /** Some task holds records it may not process yet (see TaskInput). */
  private waiting = false;
  private reopenFailingSince: number | undefined;
  private lastCommit = 0;
  private lastPunctuate = 0;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly topologies: readonly Topology[],
    private readonly options: KafkaRuntimeOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  private taskKey(topology: string, partition: number): string {
    return `${topology}_${partition}`;
  }

  /** Partitions of a topic this runtime reads or writes, once `start` has created or found it. */
  partitionCount(topic: string): number | undefined {
    return this.partitions.get(topic);
  }

  async start(): Promise<void> {
    const o = this.options;
    if (!o.librdkafka['bootstrap.servers']) throw new ConfigError('kafka.librdkafka["bootstrap.servers"] (or kafka.bootstrapServers) must be set in kafka mode');
    this.admin = new KafkaAdmin(o.librdkafka, o.logger);
    const specs: TopicSpec[] = [{ name: o.deadLetterTopic, partitions: o.defaultPartitions, compact: false }];
    for (const t of this.topologies) {
      for (const source of t.sourceTopics()) specs.push({ name: source, partitions: o.defaultPartitions, compact: false });
      for (const [topic, req] of t.sinkTopics) specs.push({ name: topic, partitions: o.defaultPartitions, compact: req.compact });
    }
    const counts = await this.admin.ensureTopics(dedupe(specs), o.replicationFactor);
    for (const t of this.topologies) {
      const sources = t.sourceTopics();
      const n = requireCoPartitioned(t.name, sources.map((s) => [s, counts.get(s) ?? o.defaultPartitions] as const));
      const changelogs: TopicSpec[] = [...t.stores.values()].filter((s) => s.changelog !== false).map((s) => ({ name: changelogTopic(o.applicationId, t.name, s.name), partitions: n, compact: true }));
      const changelogCounts = await this.admin.ensureTopics(changelogs, o.replicationFactor);
      for (const [topic, count] of changelogCounts) counts.set(topic, count);
      const lead = sources[0];
      if (lead === undefined) throw new ConfigError(`topology "${t.name}" has no source topic`);
      this.byLead.set(lead, t);
      for (const s of sources) this.bySource.set(s, t);
    }
    for (const [topic, count] of counts) this.partitions.set(topic, count);

    this.producer = await this.createProducer();

    this.consumer = new KafkaConsumer(
      {
        ...CONSUMER_DEFAULTS,
        ...o.librdkafka,
        'group.id': o.applicationId,
        'client.id': `${o.applicationId}-${o.instanceId}-consumer`,
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'partition.assignment.strategy': 'cooperative-sticky',
        'isolation.level': 'read_committed',
        'auto.offset.reset': 'earliest',
        // TaskInput learns from these events that a partition is caught up.
        'enable.partition.eof': true,
        rebalance_cb: (err: { code: number }, assignment: Array<{ topic: string; partition: number }>) => {
          if (this.stopped) {
            // Closing: tasks are already committed and closed; let librdkafka finish leaving the group.
            if (err.code === ERR.REVOKE_PARTITIONS) {
              (this.consumer as unknown as IncrementalAssignment).incrementalUnassign(assignment.flatMap((tp) => this.followersOf(tp.topic, tp.partition)));
            }
            return;
          }
          if (err.code === ERR.ASSIGN_PARTITIONS) this.jobs.push({ kind: 'assign', partitions: assignment });
          else if (err.code === ERR.REVOKE_PARTITIONS) {
            this.jobs.push({ kind: 'revoke', partitions: assignment, lost: (this.consumer as unknown as IncrementalAssignment).assignmentLost() });
          }
        },
      } as ConstructorParameters<typeof KafkaConsumer>[0],
      { 'auto.offset.reset': 'earliest' },
    );
    await call('connecting the consumer', (cb) => this.consumer.connect({}, cb as never));
    this.consumer.setDefaultConsumeTimeout(CONSUME_TIMEOUT_MS);
    // Otherwise consume(n) waits up to the timeout for each of the n records, holding back what
    // arrived already until n records are there: at a low rate that is most of a second.
    (this.consumer as unknown as ConsumeTuning).setDefaultIsTimeoutOnlyForFirstMessage(true);
    this.consumer.on('partition.eof', (eof) => this.onPartitionEnd(eof.topic, eof.partition, eof.offset));
    this.consumer.subscribe([...this.byLead.keys()]);
    this.lastCommit = this.now();
    this.lastPunctuate = this.now();
    o.logger.info({ guarantee: o.guarantee, group: o.applicationId, leads: [...this.byLead.keys()] }, 'kafka runtime started');
  }

  private async createProducer(): Promise<ProducerType> {
    const o = this.options;
    const producer = new Producer({
      ...PRODUCER_DEFAULTS,
      ...o.librdkafka,
      'client.id': `${o.applicationId}-${o.instanceId}-producer`,
      'enable.idempotence': true,
      acks: 'all',
      dr_cb: true,
      // Only failures are needed (they fail the commit): a report per delivered record doubles the cost of producing.
      'delivery.report.only.error': true,
      ...(o.guarantee === 'exactly_once' ? { 'transactional.id': `${o.applicationId}-${o.instanceId}`, 'transaction.timeout.ms': 60_000 } : {}),
    } as ConstructorParameters<typeof Producer>[0]);
    producer.on('delivery-report', (err) => {
      if (err) this.deliveryErrors.push(new KafkaError('a record could not be delivered', err));
    });
    await call('connecting the producer', (cb) => producer.connect({}, cb as never));
    producer.setPollInterval(10);
    if (o.guarantee === 'exactly_once') {
      // Fences an earlier producer with this transactional id and aborts its open transaction.
      await call('initializing transactions', (cb) => producer.initTransactions(30_000, cb)).catch(async (err: unknown) => {
        await new Promise<void>((resolve) => producer.disconnect(5_000, () => resolve()));
        throw err;
      });
    }
    return producer;
  }

  /**
   * Polls, processes and commits until `signal` aborts; then commits and closes every task. When it
   * throws, the runtime has failed: `close` then commits nothing more (see `failed`).
   */
  async run(signal: AbortSignal): Promise<void> {
    try {
      await this.loop(signal);
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !this.stopped) {
      await this.runJobs();
      await this.reopenPending();
      let messages: Message[] = [];
      try {
        // consume(n) returns early on records only, not on end-of-partition events: do not sit on waiting records.
        this.consumer.setDefaultConsumeTimeout(this.waiting ? WAITING_CONSUME_TIMEOUT_MS : CONSUME_TIMEOUT_MS);
        messages = await call<Message[]>('consuming', (cb) => this.consumer.consume(this.options.pollRecords, cb));
      } catch (err) {
        if (err instanceof KafkaError && err.kafkaCode === ERR.FATAL) throw err;
        this.options.logger.warn({ err: errorMessage(err) }, 'consuming failed; retrying');
        await sleep(200);
      }
      await this.runJobs();
      await this.process(messages);
      try {
        if (this.options.guarantee === 'at_least_once') this.sendEarly();
        else await this.sendEarlyInTransaction();
      } catch (err) {
        await this.recover(err);
      }
      const now = this.now();
      if (now - this.lastPunctuate >= this.options.punctuateIntervalMs) {
        this.lastPunctuate = now;
        for (const rt of this.tasks.values()) rt.task.punctuate(now);
        for (const rt of this.tasks.values()) await rt.task.flushBatches();
      }
      if (now - this.lastCommit >= this.options.commitIntervalMs) await this.commitOrRecover();
    }
  }

  /**
   * Commits (`start`: starts a commit, see startCommit; `complete`: commits and waits; `settle`: only
   * waits for the commit in flight); when that fails (broker gone, group session lost, transaction
   * aborted...) the uncommitted work is dropped with its tasks, which are then reopened from the
   * changelogs and rewound to the committed offsets (`reopenPending`), so processing resumes by itself.
   * Tasks in `revoking` (being handed over) are dropped without being reopened.
   */
  private async commitOrRecover(revoking: ReadonlySet<string> = new Set(), how: 'start' | 'complete' | 'settle' = 'start'): Promise<void> {
    try {
      if (how === 'start') await this.startCommit();
      else if (how === 'complete') await this.commit();
      else await this.settle();
    } catch (err) {
      await this.recover(err, revoking);
    }
  }

  /** Drops every task's uncommitted work (see commitOrRecover); throws `err` after too many failures in a row. */
  private async recover(err: unknown, revoking: ReadonlySet<string> = new Set()): Promise<void> {
    this.failedCommits++;
    if (this.failedCommits > MAX_FAILED_COMMITS) throw err;
    this.options.logger.warn(
      { err: errorMessage(err), attempt: this.failedCommits, tasks: [...this.tasks.keys()] },
      'commit failed: dropping uncommitted work; tasks will be restored from their changelogs and resume from the committed offsets',
    );
    await this.settle().catch(() => undefined); // its work is dropped too
    if (this.transactionOpen) {
      this.transactionOpen = false;
      await this.abortTransaction(err);
    }
    this.commitSucceeded = true;
    this.deliveryErrors = [];
    if (this.options.guarantee === 'exactly_once') this.producerNeedsReset = true;
    for (const [key, rt] of [...this.tasks]) {
      if (!revoking.has(key)) {
        this.pendingReopen.set(key, { topology: rt.task.topology, partition: rt.task.partition });
        this.pauseQuietly(this.followersOf(rt.task.topology.sourceTopics()[0] as string, rt.task.partition));
      }
      await this.dropTask(key);
    }
    this.options.metrics.tasks.set(this.tasks.size);
  }

  /** Reopens the tasks a recovery dropped: state from the changelogs, consumer positions from the committed offsets. */
  private async reopenPending(): Promise<void> {
    if (this.pendingReopen.size === 0 && !this.producerNeedsReset) return;
    try {
      if (this.producerNeedsReset) {
        const old = this.producer;
        await new Promise<void>((resolve) => old.disconnect(5_000, () => resolve()));
        this.producer = await this.createProducer();
        this.producerNeedsReset = false;
      }
      const results = await Promise.allSettled(
        [...this.pendingReopen].map(async ([key, { topology, partition }]) => {
          await this.openTask(topology, partition);
          const inputs = this.followersOf(topology.sourceTopics()[0] as string, partition);
          await this.rewind(inputs);
          this.consumer.resume(inputs);
          this.pendingReopen.delete(key);
        }),
      );
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
      this.reopenFailingSince = undefined;
      this.options.metrics.tasks.set(this.tasks.size);
    } catch (err) {
      this.reopenFailingSince ??= Date.now();
      if (Date.now() - this.reopenFailingSince > REOPEN_GIVE_UP_MS) throw err;
      // A half-opened task is dropped again; the next loop retries.
      for (const key of this.pendingReopen.keys()) await this.dropTask(key);
      this.options.logger.warn({ err: errorMessage(err) }, 'reopening tasks after a failed commit failed; retrying');
      await sleep(1_000);
    }
  }

  /** Moves the consumer back to the committed offsets (the start of a partition without any). */
  private async rewind(inputs: Array<{ topic: string; partition: number }>): Promise<void> {
    const committed = await call<Array<{ topic: string; partition: number; offset?: number }>>('reading committed offsets', (cb) => this.consumer.committed(inputs, 10_000, cb));
    for (const tp of committed) {
      const offset = typeof tp.offset === 'number' && tp.offset >= 0 ? tp.offset : OFFSET_BEGINNING;
      await call('seeking to the committed offset', (cb) => this.consumer.seek({ topic: tp.topic, partition: tp.partition, offset }, 10_000, cb));
    }
  }

  private pauseQuietly(partitions: Array<{ topic: string; partition: number }>): void {
    try {
      this.consumer.pause(partitions);
    } catch (err) {
      this.options.logger.warn({ err: errorMessage(err), partitions }, 'could not pause partitions');
    }
  }

  private async process(messages: Message[]): Promise<void> {
    if (messages.length > 0) {
      const records = messages.map(toSourceRecord);
      if (this.options.beforeBatch) await this.options.beforeBatch(records);
      for (const record of records) {
        // A task revoked meanwhile: the new owner reprocesses the record from the committed offset.
        this.inputFor(record.topic, record.partition)?.push(record);
      }
    }
    // Also without new records: an end-of-partition event may release records waiting for that partition.
    await this.drainInputs();
  }

  /** The input buffer of the task that reads `topic` partition `partition`; undefined when this instance has no such task. */
  private inputFor(topic: string, partition: number): TaskInput | undefined {
    const topology = this.bySource.get(topic);
    if (!topology) return undefined;
    const key = this.taskKey(topology.name, partition);
    let input = this.inputs.get(key);
    if (!input) {
      if (!this.tasks.has(key)) return undefined;
      input = new TaskInput(topology.sourceTopics().map((t) => ({ topic: t, partition })), (r) => topology.extract(r));
      this.inputs.set(key, input);
    }
    return input;
  }

  private onPartitionEnd(topic: string, partition: number, offset: number): void {
    this.inputFor(topic, partition)?.markEnd(topic, partition, offset);
  }

  /**
   * Fallback for an empty partition without an end-of-partition event since its last record: caught up
   * when the consumer's position has reached the high watermark of the last fetch. An unknown position
   * or watermark means the partition was not fetched yet: wait for it.
   */
  private readonly caughtUp = (topic: string, partition: number): boolean => {
    const { highOffset } = this.consumer.getWatermarkOffsets(topic, partition);
    if (highOffset < 0) return false;
    const [pos] = this.consumer.position([{ topic, partition }]);
    return typeof pos?.offset === 'number' && pos.offset >= 0 && pos.offset >= highOffset;
  };

  /** Processes each task's buffered input in timestamp order (see TaskInput), pausing partitions buffered far ahead. */
  private async drainInputs(): Promise<void> {
    this.waiting = false;
    for (const [key, input] of this.inputs) {
      const rt = this.tasks.get(key);
      if (!rt) {
        this.inputs.delete(key);
        continue;
      }
      if (input.size() === 0) continue;
      const batch: InputRecord[] = [];
      for (let next = input.next(this.caughtUp); next; next = input.next(this.caughtUp)) batch.push(next);
      rt.task.prefetch(batch.map((e) => e.record));
      for (const e of batch) rt.task.process(e.record, e.extraction);
      if (batch.length > 0) await rt.task.flushBatches();
      if (input.size() > 0) this.waiting = true;
      for (const b of input.buffered()) {
        const tp = [{ topic: b.topic, partition: b.partition }];
        const id = `${b.topic}/${b.partition}`;
        if (b.size > MAX_BUFFERED && !this.paused.has(id)) {
          this.consumer.pause(tp);
          this.paused.add(id);
        } else if (b.size < MAX_BUFFERED / 4 && this.paused.has(id)) {
          this.consumer.resume(tp);
          this.paused.delete(id);
        }
      }
    }
  }

  private async runJobs(): Promise<void> {
    while (this.jobs.length > 0) {
      const job = this.jobs.shift() as Job;
      if (job.kind === 'assign') await this.assign(job.partitions);
      else await this.revoke(job.partitions, job.lost ?? false);
    }
  }

  private followersOf(lead: string, partition: number): Array<{ topic: string; partition: number }> {
    const topology = this.byLead.get(lead);
    return (topology?.sourceTopics() ?? [lead]).map((topic) => ({ topic, partition }));
  }

  private async assign(partitions: Array<{ topic: string; partition: number }>): Promise<void> {
    const all: Array<{ topic: string; partition: number }> = [];
    const deferred: Array<{ topic: string; partition: number }> = [];
    // Tasks restore in parallel: each waits on its own changelog fetches.
    await Promise.all(
      partitions.map(async ({ topic, partition }) => {
        const topology = this.byLead.get(topic);
        if (!topology) return;
        const inputs = this.followersOf(topic, partition);
        all.push(...inputs);
        try {
          await this.openTask(topology, partition);
        } catch (err) {
          // E.g. the broker went away during the restore: assign paused, restore again from the run loop.
          this.options.logger.warn({ err: errorMessage(err), topic, partition }, 'opening the task failed; retrying');
          this.pendingReopen.set(this.taskKey(topology.name, partition), { topology, partition });
          deferred.push(...inputs);
        }
      }),
    );
    this.options.metrics.rebalances.labels('assigned').inc(partitions.length);
    this.options.metrics.tasks.set(this.tasks.size);
    (this.consumer as unknown as IncrementalAssignment).incrementalAssign(all);
    if (deferred.length > 0) this.pauseQuietly(deferred);
    this.options.logger.info({ partitions: all }, 'partitions assigned');
  }

  private async revoke(partitions: Array<{ topic: string; partition: number }>, lost: boolean): Promise<void> {
    const keys = new Set<string>();
    for (const { topic, partition } of partitions) {
      const topology = this.byLead.get(topic);
      if (topology) keys.add(this.taskKey(topology.name, partition));
    }
    // Lost partitions may already be processed by their new owner: their uncommitted work is dropped, not committed.
    await this.commitOrRecover(keys, lost ? 'settle' : 'complete');
    const all: Array<{ topic: string; partition: number }> = [];
    for (const { topic, partition } of partitions) {
      const topology = this.byLead.get(topic);
      if (!topology) continue;
      const key = this.taskKey(topology.name, partition);
      this.pendingReopen.delete(key);
      if (lost) await this.dropTask(key);
      else await this.closeTask(key);
      all.push(...this.followersOf(topic, partition));
    }
    this.options.metrics.rebalances.labels('revoked').inc(partitions.length);
    this.options.metrics.tasks.set(this.tasks.size);
    (this.consumer as unknown as IncrementalAssignment).incrementalUnassign(all);
    this.options.logger.info({ partitions: all, lost }, 'partitions revoked');
  }

  private async openTask(topology: Topology, partition: number): Promise<void> {
    const o = this.options;
    const key = this.taskKey(topology.name, partition);
    if (this.tasks.has(key)) return;
    const dir = join(o.stateDir, o.applicationId, key);
    const checkpointPath = join(dir, CHECKPOINT);
    // Without a clean-shutdown checkpoint the local state may be ahead of or behind the changelog: rebuild it.
    const checkpoint = existsSync(checkpointPath) ? (JSON.parse(readFileSync(checkpointPath, 'utf8')) as Record<string, number>) : undefined;
    if (!checkpoint) rmSync(dir, { recursive: true, force: true });
    else rmSync(checkpointPath);
    mkdirSync(dir, { recursive: true });
    const db = await RocksDatabase.open(dir);
    const task = new StreamTask(topology, partition, {
      applicationId: o.applicationId,
      logger: o.logger,
      metrics: o.metrics,
      deadLetterTopic: o.deadLetterTopic,
      encodeDeadLetter: o.encodeDeadLetter,
      ...(o.protectPayload ? { protectPayload: o.protectPayload } : {}),
      now: this.now,
      createStore: (spec, taskId) => new CachedKeyValueStore(spec.name, taskId, db, spec.codec, spec.readCacheEntries, spec.rangeScans),
    });
    task.openStores();
    try {
      await this.restoreTask(task, checkpoint);
    } catch (err) {
      await db.close();
      throw err;
    }
    task.init();
    this.tasks.set(key, { task, db, dir });
  }

  /**
   * A topic created a moment ago (changelogs are created by start()) can be missing from the broker's
   * metadata, or without a leader, for a short while: retry those errors (and timeouts) for up to 30 s.
   */
  private async changelogWatermarks(topic: string, partition: number): Promise<{ highOffset: number; lowOffset: number }> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await call<{ highOffset: number; lowOffset: number }>('reading changelog offsets', (cb) => this.consumer.queryWatermarkOffsets(topic, partition, 10_000, cb));
      } catch (err) {
        const code = err instanceof KafkaError ? err.kafkaCode : undefined;
        const transient = [ERR.UNKNOWN_PARTITION, ERR.UNKNOWN_TOPIC_OR_PART, ERR.LEADER_NOT_AVAILABLE, ERR.NOT_LEADER_FOR_PARTITION, ERR.TIMED_OUT, ERR.TRANSPORT, ERR.ALL_BROKERS_DOWN] as number[];
        if (code === undefined || !transient.includes(code) || Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  /**
   * Replays the task's changelog partitions, from the checkpoint (or their start) to their ends, into
   * its stores, with one consumer for all of them. Throws when it stops making progress, rather than
   * leaving the task with part of its state.
   */
  private async restoreTask(task: StreamTask, checkpoint: Record<string, number> | undefined): Promise<void> {
    const o = this.options;
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
      const { lowOffset, highOffset } = await this.changelogWatermarks(topic, partition);
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

  /** Closes a task without a checkpoint: its next owner (maybe this instance) rebuilds it from the changelogs. */
  private async dropTask(key: string): Promise<void> {
    const rt = this.tasks.get(key);
    if (!rt) return;
    this.tasks.delete(key);
    this.inputs.delete(key);
    this.drainedOffsets.delete(key);
    try {
      rt.task.close();
    } finally {
      await rt.db.close();
    }
  }

  private async closeTask(key: string): Promise<void> {
    const rt = this.tasks.get(key);
    if (!rt) return;
    this.tasks.delete(key);
    this.inputs.delete(key);
    this.drainedOffsets.delete(key);
    for (const topic of rt.task.topology.sourceTopics()) this.paused.delete(`${topic}/${rt.task.partition}`);
    rt.task.close();
    const checkpoint: Record<string, number> = {};
    for (const spec of rt.task.topology.stores.values()) {
      if (spec.changelog === false) continue;
      const topic = changelogTopic(this.options.applicationId, rt.task.topology.name, spec.name);
      const w = await this.changelogWatermarks(topic, rt.task.partition);
      checkpoint[topic] = w.highOffset;
    }
    await rt.db.close();
    writeFileSync(join(rt.dir, CHECKPOINT), JSON.stringify(checkpoint));
  }

  /** Makes outputs, changelog records and input offsets durable: in that order, or atomically under exactly-once. */
  async commit(): Promise<void> {
    await this.startCommit();
    await this.settle();
  }

  /**
   * Hands everything processed since the last commit to the producer and returns; the rest (flush and
   * offset commit, or the transaction's offsets and commit) runs while the next records are processed,
   * and the next commit (or `settle`) waits for it and throws its error. Processing meanwhile is safe:
   * the tasks keep the new outputs and offsets until then, and a failure drops all uncommitted work.
   * Local store writes are applied right away (the stores read through to the database); local state
   * is only trusted after a successful commit (the checkpoint written on closing a task).
   */
  private async startCommit(): Promise<void> {
    await this.settle();
    this.lastCommit = this.now();
    const outputs = this.drainTasks();
    const offsets: TopicPartitionOffset[] = [];
    for (const byPartition of this.drainedOffsets.values()) for (const o of byPartition.values()) offsets.push(o);
    this.drainedOffsets.clear();
    if (outputs.length === 0 && offsets.length === 0 && !this.transactionOpen) return;
    const started = process.hrtime.bigint();
    let finishing: Promise<void>;
    if (this.options.guarantee === 'exactly_once') {
      if (!this.transactionOpen) await call('beginning a transaction', (cb) => this.producer.beginTransaction(cb));
      this.transactionOpen = false;
      this.commitSucceeded = false;
      try {
        this.produceAll(outputs);
      } catch (err) {
        await this.abortTransaction(err);
        throw err;
      }
      finishing = this.finishTransaction(offsets, started);
    } else {
      this.produceAll(outputs);
      finishing = this.finishAtLeastOnce(offsets, started);
    }
    finishing.catch(() => undefined); // observed by settle()
    this.inflight = finishing;
  }

  /**
   * Takes what the tasks processed: local store writes are applied, input offsets kept in
   * drainedOffsets for the commit, outputs and changelog records returned for producing.
   */
  private drainTasks(): OutputRecord[] {
    const outputs: OutputRecord[] = [];
    const now = this.now();
    for (const [key, rt] of this.tasks) {
      const unit = rt.task.drain();
      for (const out of unit.outputs) outputs.push(out);
      for (const change of unit.changes) {
        if (rt.task.topology.stores.get(change.store)?.changelog === false) continue;
        outputs.push({
          topic: changelogTopic(this.options.applicationId, rt.task.topology.name, change.store),
          partition: rt.task.partition,
          key: Buffer.from(change.key, 'utf8'),
          ...changelogValue(change.value),
          timestamp: now,
        });
      }
      if (unit.ops.length > 0) rt.db.write(unit.ops);
      if (unit.offsets.length === 0) continue;
      let byPartition = this.drainedOffsets.get(key);
      if (!byPartition) {
        byPartition = new Map();
        this.drainedOffsets.set(key, byPartition);
      }
      for (const o of unit.offsets) byPartition.set(`${o.topic}/${o.partition}`, { topic: o.topic, partition: o.partition, offset: o.offset });
    }
    return outputs;
  }

  /**
   * At-least-once, between commits: produces the outputs processed so far (with the changelog records
   * of that work) right away, like Kafka Streams, instead of holding them until the commit; their
   * offsets wait for the commit, which flushes the producer first.
   */
  private sendEarly(): void {
    if (this.hasPendingOutputs()) this.produceAll(this.drainTasks());
  }

  /**
   * Exactly-once, between commits: begins the transaction (unless the previous one is still
   * committing) and produces the outputs processed so far into it, as Kafka Streams does, so the
   * commit only has to send the offsets and commit. Nothing is visible to read_committed consumers
   * before the commit, and an aborted transaction takes these records with it.
   */
  private async sendEarlyInTransaction(): Promise<void> {
    if (!this.commitSucceeded || this.producerNeedsReset) return;
    if (!this.hasPendingOutputs()) return;
    if (!this.transactionOpen) {
      await call('beginning a transaction', (cb) => this.producer.beginTransaction(cb));
      this.transactionOpen = true;
    }
    this.produceAll(this.drainTasks());
  }

  private hasPendingOutputs(): boolean {
    for (const rt of this.tasks.values()) if (rt.task.pendingOutputs() > 0) return true;
    return false;
  }

  /** Waits for the commit in flight, if any; throws its error. */
  private async settle(): Promise<void> {
    const inflight = this.inflight;
    if (!inflight) return;
    this.inflight = undefined;
    await inflight;
  }

  private async finishTransaction(offsets: TopicPartitionOffset[], started: bigint): Promise<void> {
    try {
      if (offsets.length > 0) await call('sending offsets to the transaction', (cb) => this.producer.sendOffsetsToTransaction(offsets, this.consumer, 30_000, cb));
      await call('committing the transaction', (cb) => this.producer.commitTransaction(60_000, cb));
    } catch (err) {
      await this.abortTransaction(err);
      throw /fenced/i.test(errorMessage(err)) ? this.fencedError(err) : err;
    }
    this.commitSucceeded = true;
    this.committed(started);
  }

  /** Fencing means another producer took this transactional id: most often two instances share kafka.instanceId. */
  private fencedError(err: unknown): KafkaError {
    return new KafkaError(
      `${errorMessage(err)}; the transactional id of this instance (kafka.instanceId "${this.options.instanceId}") is used by another producer: ` +
        'give every instance of the application its own kafka.instanceId (the default is the host name, the same for instances on one host)',
    );
  }

  private async abortTransaction(err: unknown): Promise<void> {
    this.options.logger.error({ err: errorMessage(err) }, 'transaction failed; aborting');
    await call('aborting the transaction', (cb) => this.producer.abortTransaction(30_000, cb)).catch(() => undefined);
  }

  private async finishAtLeastOnce(offsets: TopicPartitionOffset[], started: bigint): Promise<void> {
    await flushProducer(this.producer, 60_000);
    if (this.deliveryErrors.length > 0) {
      const first = this.deliveryErrors[0] as Error;
      this.deliveryErrors = [];
      throw first;
    }
    if (offsets.length > 0) await call('committing offsets', (cb) => (this.consumer as unknown as AsyncCommit).commitCb(offsets, cb));
    this.committed(started);
  }

  private committed(started: bigint): void {
    this.failedCommits = 0;
    this.options.metrics.commits.inc();
    this.options.metrics.commitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  private produceAll(outputs: OutputRecord[]): void {
    for (const r of outputs) {
      const partition = r.partition ?? (r.key ? partitionForKey(r.key, this.partitions.get(r.topic) ?? 1) : null);
      for (;;) {
        try {
          const headers = r.headers === EMPTY_VALUE_HEADERS ? EMPTY_VALUE_MESSAGE_HEADERS : toHeaders(r.headers);
          this.producer.produce(r.topic, partition, r.value, r.key, r.timestamp, undefined, headers);
          break;
        } catch (err) {
          // Local queue full: let librdkafka deliver some records, then retry.
          if ((err as { code?: number }).code !== -184) throw new KafkaError(`producing to ${r.topic}`, err);
          this.producer.poll();
        }
      }
    }
  }

  taskCount(): number {
    return this.tasks.size;
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    let committed = false;
    try {
      if (this.failed) await this.abandonUncommitted();
      else {
        await this.commit();
        committed = true;
      }
    } finally {
      // Without a successful commit the local state is not what the changelogs hold: no checkpoint then.
      for (const key of [...this.tasks.keys()]) await (committed ? this.closeTask(key) : this.dropTask(key));
      await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
      await new Promise<void>((resolve) => this.producer.disconnect(() => resolve()));
      this.admin.close();
    }
  }

  /**
   * After `run` failed: the commit in flight (of complete earlier work) may finish; the work since is
   * half done (a record that threw, the rest of its batch) and is never committed, nor is the open
   * transaction. The instance that takes over (or this one restarted) processes it again from the
   * committed offsets.
   */
  private async abandonUncommitted(): Promise<void> {
    await this.settle().catch(() => undefined);
    if (!this.transactionOpen) return;
    this.transactionOpen = false;
    await call('aborting the transaction', (cb) => this.producer.abortTransaction(30_000, cb)).catch(() => undefined);
  }
}

function dedupe(specs: TopicSpec[]): TopicSpec[] {
  const byName = new Map<string, TopicSpec>();
  for (const s of specs) {
    const prev = byName.get(s.name);
    byName.set(s.name, prev ? { ...prev, compact: prev.compact || s.compact } : s);
  }
  return [...byName.values()];
}
