import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EngineMetrics } from '../metrics.js';
import type { SourceRecord } from '../record.js';
import type { DeadLetterEnvelope } from '../task.js';
import type { Topology } from '../topology.js';
import { KafkaAdmin, requireCoPartitioned, type TopicSpec } from './admin.js';
import { GroupMembership, CONSUME_TIMEOUT_MS, type AssignmentHandler, type TopicPartition } from './assignment.js';
import { changelogTopic } from './changelog.js';
import { call, ERR, KafkaError, toSourceRecord, type KafkaConsumerType, type LibrdkafkaSettings, type Message } from './client.js';
import { CommitPipeline, type ProcessingGuarantee } from './commit.js';
import { InputRouter } from './input-router.js';
import { OutputProducer } from './producer.js';
import { KafkaTasks, taskKey } from './tasks.js';

export { changelogTopic } from './changelog.js';
export type { ProcessingGuarantee } from './commit.js';

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
  /**
   * Delete-policy output topics whose records carry event times (side outputs such as unmatched or
   * dead letters): created with LogAppendTime, so retention counts from when they were written.
   */
  appendTimeTopics?: readonly string[];
  encodeDeadLetter(envelope: DeadLetterEnvelope): Buffer;
  protectPayload?(bytes: Buffer): { payload: Buffer; encoding: 'sealed' | 'withheld' } | null;
  /** Called before a batch is processed, e.g. to fetch unknown writer schemas. */
  beforeBatch?(records: readonly SourceRecord[]): Promise<void>;
  now?: () => number;
}

/** Consecutive failed commits (each followed by a recovery) before the runtime gives up. */
const MAX_FAILED_COMMITS = 5;
/** How long tasks may fail to reopen after a recovery (e.g. the broker is still down) before the runtime gives up. */
const REOPEN_GIVE_UP_MS = 5 * 60_000;
/** librdkafka's logical offset for "the start of the partition". */
const OFFSET_BEGINNING = -2;
/** How long consume waits while some task holds records it may not process yet. */
const WAITING_CONSUME_TIMEOUT_MS = 10;

/**
 * Runs topologies on a Kafka cluster, coordinating its parts: the consumer group's membership and
 * assignments (assignment.ts), the tasks and their state (tasks.ts, changelog.ts), each task's input
 * in timestamp order (input-router.ts, task-input.ts), and the commit pipeline (commit.ts) over the
 * output producer (producer.ts). A failed commit drops the uncommitted work with its tasks, which are
 * reopened from the changelogs and rewound to the committed offsets.
 */
export class KafkaRuntime {
  private consumer!: KafkaConsumerType;
  private admin!: KafkaAdmin;
  private membership!: GroupMembership;
  private producer!: OutputProducer;
  private tasks!: KafkaTasks;
  private inputs!: InputRouter;
  private commits!: CommitPipeline;
  private readonly byLead = new Map<string, Topology>();
  private readonly bySource = new Map<string, Topology>();
  private readonly partitions = new Map<string, number>();
  /** Tasks dropped by a recovery, reopened (restored, rewound) at the top of the run loop. */
  private readonly pendingReopen = new Map<string, { topology: Topology; partition: number }>();
  /** `run` threw: what was processed since the last commit is half done and must never be committed. */
  private failed = false;
  private reopenFailingSince: number | undefined;
  private lastPunctuate = 0;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly topologies: readonly Topology[],
    private readonly options: KafkaRuntimeOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Partitions of a topic this runtime reads or writes, once `start` has created or found it. */
  partitionCount(topic: string): number | undefined {
    return this.partitions.get(topic);
  }

  async start(): Promise<void> {
    const o = this.options;
    if (!o.librdkafka['bootstrap.servers']) throw new ConfigError('kafka.librdkafka["bootstrap.servers"] (or kafka.bootstrapServers) must be set in kafka mode');
    this.admin = new KafkaAdmin(o.librdkafka, o.logger);
    await this.ensureTopics();

    this.producer = await OutputProducer.connect({
      applicationId: o.applicationId,
      instanceId: o.instanceId,
      transactional: o.guarantee === 'exactly_once',
      librdkafka: o.librdkafka,
      partitionCount: (topic) => this.partitions.get(topic),
    });
    this.membership = new GroupMembership({
      applicationId: o.applicationId,
      instanceId: o.instanceId,
      librdkafka: o.librdkafka,
      logger: o.logger,
      metrics: o.metrics,
      byLead: this.byLead,
      stopped: () => this.stopped,
      leadPartitions: () => [...this.byLead.keys()].reduce((sum, lead) => sum + (this.partitions.get(lead) ?? 0), 0),
      now: this.now,
    });
    this.consumer = await this.membership.connect();
    this.tasks = new KafkaTasks({ ...o, now: this.now }, this.consumer);
    this.inputs = new InputRouter(this.consumer, this.tasks, this.bySource);
    this.commits = new CommitPipeline({ ...o, now: this.now }, this.tasks, this.consumer, this.producer);
    this.consumer.on('partition.eof', (eof) => this.inputs.onPartitionEnd(eof.topic, eof.partition, eof.offset));
    this.membership.subscribe();
    this.commits.lastCommit = this.now();
    this.lastPunctuate = this.now();
    o.logger.info({ guarantee: o.guarantee, group: o.applicationId, leads: [...this.byLead.keys()] }, 'kafka runtime started');
  }

  /** Creates the sources, sinks, dead-letter topic and changelogs that are missing; learns every topic's partition count. */
  private async ensureTopics(): Promise<void> {
    const o = this.options;
    const specs: TopicSpec[] = [{ name: o.deadLetterTopic, partitions: o.defaultPartitions, compact: false }];
    for (const t of this.topologies) {
      for (const source of t.sourceTopics()) specs.push({ name: source, partitions: o.defaultPartitions, compact: false });
      for (const [topic, req] of t.sinkTopics) specs.push({ name: topic, partitions: o.defaultPartitions, compact: req.compact });
    }
    const appendTime = new Set(o.appendTimeTopics ?? []);
    for (const spec of specs) if (appendTime.has(spec.name) && !spec.compact) spec.appendTime = true;
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
      await this.membership.runJobs(this.assignmentHandler);
      this.membership.checkLiveness();
      await this.reopenPending();
      let messages: Message[] = [];
      try {
        // consume(n) returns early on records only, not on end-of-partition events: do not sit on waiting records.
        this.consumer.setDefaultConsumeTimeout(this.inputs.waiting ? WAITING_CONSUME_TIMEOUT_MS : CONSUME_TIMEOUT_MS);
        messages = await call<Message[]>('consuming', (cb) => this.consumer.consume(this.options.pollRecords, cb));
      } catch (err) {
        if (err instanceof KafkaError && err.kafkaCode === ERR.FATAL) throw err;
        this.options.logger.warn({ err: errorMessage(err) }, 'consuming failed; retrying');
        await sleep(200);
      }
      await this.membership.runJobs(this.assignmentHandler);
      await this.process(messages);
      try {
        await this.commits.sendEarly();
      } catch (err) {
        await this.recover(err);
      }
      const now = this.now();
      if (now - this.lastPunctuate >= this.options.punctuateIntervalMs) {
        this.lastPunctuate = now;
        for (const rt of this.tasks.values()) rt.task.punctuate(now);
        for (const rt of this.tasks.values()) await rt.task.flushBatches();
      }
      if (now - this.commits.lastCommit >= this.options.commitIntervalMs) await this.commitOrRecover();
    }
  }

  private readonly assignmentHandler: AssignmentHandler = {
    openTask: async (topology, partition) => {
      // After a lost session under exactly-once: the new producer first (its initTransactions ends the
      // old transaction, whose records a read_committed restore would otherwise wait for).
      await this.commits.resetProducerIfNeeded();
      await this.tasks.open(topology, partition);
    },
    deferOpen: (topology, partition) => {
      this.pendingReopen.set(taskKey(topology.name, partition), { topology, partition });
    },
    beforeRevoke: (keys) => this.commitOrRecover(keys, 'complete'),
    onLostSession: async (keys) => {
      this.commits.abandonAfterLostSession();
      await this.dropUncommitted(keys);
    },
    closeTask: async (key, lost) => {
      this.pendingReopen.delete(key);
      if (lost) await this.dropTask(key);
      else await this.closeTask(key);
    },
    pauseQuietly: (partitions) => this.pauseQuietly(partitions),
    resumeQuietly: (partitions) => {
      try {
        this.consumer.resume(partitions);
      } catch (err) {
        this.options.logger.warn({ err: errorMessage(err), partitions }, 'could not resume partitions');
      }
    },
    taskCount: () => this.tasks.size,
  };

  /**
   * Commits (`start`: starts a commit, see CommitPipeline.start; `complete`: commits and waits;
   * `settle`: only waits for the commit in flight); when that fails (broker gone, group session lost,
   * transaction aborted...) the uncommitted work is dropped with its tasks, which are then reopened from
   * the changelogs and rewound to the committed offsets (`reopenPending`), so processing resumes by
   * itself. Tasks in `revoking` (being handed over) are dropped without being reopened.
   */
  private async commitOrRecover(revoking: ReadonlySet<string> = new Set(), how: 'start' | 'complete' | 'settle' = 'start'): Promise<void> {
    try {
      if (how === 'start') await this.commits.start();
      else if (how === 'complete') await this.commits.commit();
      else await this.commits.settle();
    } catch (err) {
      await this.recover(err, revoking);
    }
  }

  /** Drops every task's uncommitted work (see commitOrRecover); throws `err` after too many failures in a row. */
  private async recover(err: unknown, revoking: ReadonlySet<string> = new Set()): Promise<void> {
    const attempt = this.commits.countFailure();
    if (attempt > MAX_FAILED_COMMITS) throw err;
    this.options.logger.warn(
      { err: errorMessage(err), attempt, tasks: this.tasks.keys() },
      'commit failed: dropping uncommitted work; tasks will be restored from their changelogs and resume from the committed offsets',
    );
    await this.commits.discard(err);
    await this.dropUncommitted(revoking);
  }

  /** Drops every task with its uncommitted work; those not in `revoking` are reopened by the run loop. */
  private async dropUncommitted(revoking: ReadonlySet<string>): Promise<void> {
    for (const [key, rt] of [...this.tasks.entries()]) {
      if (!revoking.has(key)) {
        this.pendingReopen.set(key, { topology: rt.task.topology, partition: rt.task.partition });
        this.pauseQuietly(this.membership.followersOf(rt.task.topology.sourceTopics()[0] as string, rt.task.partition));
      }
      await this.dropTask(key);
    }
    this.options.metrics.tasks.set(this.tasks.size);
  }

  /** Reopens the tasks a recovery dropped: state from the changelogs, consumer positions from the committed offsets. */
  private async reopenPending(): Promise<void> {
    if (this.pendingReopen.size === 0 && !this.commits.needsProducerReset) return;
    try {
      await this.commits.resetProducerIfNeeded();
      const results = await Promise.allSettled(
        [...this.pendingReopen].map(async ([key, { topology, partition }]) => {
          await this.tasks.open(topology, partition);
          const inputs = this.membership.followersOf(topology.sourceTopics()[0] as string, partition);
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
  private async rewind(inputs: TopicPartition[]): Promise<void> {
    const committed = await call<Array<{ topic: string; partition: number; offset?: number }>>('reading committed offsets', (cb) => this.consumer.committed(inputs, 10_000, cb));
    for (const tp of committed) {
      const offset = typeof tp.offset === 'number' && tp.offset >= 0 ? tp.offset : OFFSET_BEGINNING;
      await call('seeking to the committed offset', (cb) => this.consumer.seek({ topic: tp.topic, partition: tp.partition, offset }, 10_000, cb));
    }
  }

  private pauseQuietly(partitions: TopicPartition[]): void {
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
      for (const record of records) this.inputs.push(record);
    }
    // Also without new records: an end-of-partition event may release records waiting for that partition.
    await this.inputs.drain();
  }

  /** Closes a task without a checkpoint: its next owner (maybe this instance) rebuilds it from the changelogs. */
  private async dropTask(key: string): Promise<void> {
    const rt = this.tasks.get(key);
    if (!rt) return;
    this.inputs.forget(key);
    this.inputs.forgetPaused(rt.task.topology.sourceTopics().map((topic) => ({ topic, partition: rt.task.partition })));
    this.commits.forget(key);
    await this.tasks.drop(key);
  }

  private async closeTask(key: string): Promise<void> {
    const rt = this.tasks.get(key);
    if (!rt) return;
    this.inputs.forget(key);
    this.commits.forget(key);
    this.inputs.forgetPaused(rt.task.topology.sourceTopics().map((topic) => ({ topic, partition: rt.task.partition })));
    await this.tasks.close(key);
  }

  /** Makes outputs, changelog records and input offsets durable: in that order, or atomically under exactly-once. */
  async commit(): Promise<void> {
    await this.commits.commit();
  }

  taskCount(): number {
    return this.tasks.size;
  }

  /** Input (lead) partitions the group has assigned to this instance. */
  partitionsOwned(): number {
    return this.membership.ownedPartitions();
  }

  /** For /healthz: unhealthy while the instance owns no input partition too long after losing its assignment. */
  health(): { healthy: boolean; details: Record<string, unknown> } {
    const { healthy, ...membership } = this.membership.health();
    return { healthy, details: { tasks: this.tasks.size, ...membership } };
  }

  /**
   * Records not yet fetched per assigned input partition (the high watermark of the last fetch minus
   * the consumer's position; partitions not fetched yet are left out), also set as
   * `sampleloop_consumer_lag`. Records fetched but still buffered for their task are not counted.
   */
  lag(): Array<{ topic: string; partition: number; lag: number }> {
    if (this.stopped || !this.consumer) return [];
    const gauge = this.options.metrics.consumerLag;
    const out: Array<{ topic: string; partition: number; lag: number }> = [];
    try {
      gauge.reset();
      for (const { topic, partition } of this.consumer.assignments()) {
        const { highOffset } = this.consumer.getWatermarkOffsets(topic, partition);
        const [pos] = this.consumer.position([{ topic, partition }]);
        if (highOffset < 0 || typeof pos?.offset !== 'number' || pos.offset < 0) continue;
        const lag = Math.max(0, highOffset - pos.offset);
        gauge.labels(topic, String(partition)).set(lag);
        out.push({ topic, partition, lag });
      }
    } catch {
      // the consumer is between a rebalance's revoke and assign, or closing: the next call reports
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    let committed = false;
    try {
      if (this.failed) await this.commits.abandonUncommitted();
      else {
        await this.commit();
        committed = true;
      }
    } finally {
      // Without a successful commit the local state is not what the changelogs hold: no checkpoint then.
      for (const key of this.tasks.keys()) await (committed ? this.closeTask(key) : this.dropTask(key));
      await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
      await this.producer.disconnect();
      this.admin.close();
    }
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
