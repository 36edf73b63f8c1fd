import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EngineMetrics } from '../metrics.js';
import type { Topology } from '../topology.js';
import { call, ERR, KafkaConsumer, type ConsumeTuning, type IncrementalAssignment, type KafkaConsumerType, type LibrdkafkaSettings } from './client.js';
import { taskKey } from './tasks.js';

export type TopicPartition = { topic: string; partition: number };

/** What the group's assignments do to the runtime's tasks. */
export interface AssignmentHandler {
  /** Opens the task for a newly assigned partition (restores its state); throws when that fails. */
  openTask(topology: Topology, partition: number): Promise<void>;
  /** The task could not be opened now: open it from the run loop (its partitions stay paused meanwhile). */
  deferOpen(topology: Topology, partition: number): void;
  /** Before revoked partitions are handed over: commit their work, or, when lost, only wait for the commit in flight. */
  beforeRevoke(keys: ReadonlySet<string>, lost: boolean): Promise<void>;
  /** Closes the task of a revoked partition (with a checkpoint), or drops it when the partition was lost. */
  closeTask(key: string, lost: boolean): Promise<void>;
  pauseQuietly(partitions: TopicPartition[]): void;
  taskCount(): number;
}

export interface GroupMembershipOptions {
  applicationId: string;
  instanceId: string;
  librdkafka: LibrdkafkaSettings;
  logger: Logger;
  metrics: EngineMetrics;
  /** Each topology by its lead (first) source topic: the topics the group subscribes to. */
  byLead: ReadonlyMap<string, Topology>;
  /** The runtime is closing: rebalances only release partitions. */
  stopped(): boolean;
}

interface Job {
  kind: 'assign' | 'revoke';
  partitions: TopicPartition[];
  /** Revoked because the group session was lost: another member may already own them, so nothing is committed. */
  lost?: boolean;
}

/** Performance settings; kafka.librdkafka overrides them. */
const CONSUMER_DEFAULTS: LibrdkafkaSettings = {
  // librdkafka leaves Nagle on (the Java clients turn it off): small requests may wait for delayed ACKs.
  'socket.nagle.disable': true,
};
/** How long consume waits for a first record. */
export const CONSUME_TIMEOUT_MS = 100;

/**
 * The runtime's membership in the consumer group (group = applicationId, cooperative-sticky): the
 * consumer, subscribed to each topology's lead topic. Rebalance callbacks are queued as jobs and run
 * from the run loop (`runJobs`): an assigned lead partition p opens the task for p and assigns
 * partition p of the topology's other (co-partitioned) source topics along with it; a revoked one
 * commits and closes the task, or drops it without committing when the assignment was lost.
 */
export class GroupMembership {
  private readonly jobs: Job[] = [];
  consumer!: KafkaConsumerType;

  constructor(private readonly options: GroupMembershipOptions) {}

  async connect(): Promise<KafkaConsumerType> {
    const o = this.options;
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
        rebalance_cb: (err: { code: number }, assignment: TopicPartition[]) => {
          if (o.stopped()) {
            // Closing: tasks are already committed and closed; let librdkafka finish leaving the group.
            if (err.code === ERR.REVOKE_PARTITIONS) {
              this.incremental().incrementalUnassign(assignment.flatMap((tp) => this.followersOf(tp.topic, tp.partition)));
            }
            return;
          }
          if (err.code === ERR.ASSIGN_PARTITIONS) this.jobs.push({ kind: 'assign', partitions: assignment });
          else if (err.code === ERR.REVOKE_PARTITIONS) {
            this.jobs.push({ kind: 'revoke', partitions: assignment, lost: this.incremental().assignmentLost() });
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
    return this.consumer;
  }

  subscribe(): void {
    this.consumer.subscribe([...this.options.byLead.keys()]);
  }

  private incremental(): IncrementalAssignment {
    return this.consumer as unknown as IncrementalAssignment;
  }

  /** Partition `partition` of every source topic of the topology led by `lead`. */
  followersOf(lead: string, partition: number): TopicPartition[] {
    const topology = this.options.byLead.get(lead);
    return (topology?.sourceTopics() ?? [lead]).map((topic) => ({ topic, partition }));
  }

  /** Runs the rebalance callbacks queued since the last call. */
  async runJobs(handler: AssignmentHandler): Promise<void> {
    while (this.jobs.length > 0) {
      const job = this.jobs.shift() as Job;
      if (job.kind === 'assign') await this.assign(job.partitions, handler);
      else await this.revoke(job.partitions, job.lost ?? false, handler);
    }
  }

  private async assign(partitions: TopicPartition[], handler: AssignmentHandler): Promise<void> {
    const all: TopicPartition[] = [];
    const deferred: TopicPartition[] = [];
    // Tasks restore in parallel: each waits on its own changelog fetches.
    await Promise.all(
      partitions.map(async ({ topic, partition }) => {
        const topology = this.options.byLead.get(topic);
        if (!topology) return;
        const inputs = this.followersOf(topic, partition);
        all.push(...inputs);
        try {
          await handler.openTask(topology, partition);
        } catch (err) {
          // E.g. the broker went away during the restore: assign paused, restore again from the run loop.
          this.options.logger.warn({ err: errorMessage(err), topic, partition }, 'opening the task failed; retrying');
          handler.deferOpen(topology, partition);
          deferred.push(...inputs);
        }
      }),
    );
    this.options.metrics.rebalances.labels('assigned').inc(partitions.length);
    this.options.metrics.tasks.set(handler.taskCount());
    this.incremental().incrementalAssign(all);
    if (deferred.length > 0) handler.pauseQuietly(deferred);
    this.options.logger.info({ partitions: all }, 'partitions assigned');
  }

  private async revoke(partitions: TopicPartition[], lost: boolean, handler: AssignmentHandler): Promise<void> {
    const keys = new Set<string>();
    for (const { topic, partition } of partitions) {
      const topology = this.options.byLead.get(topic);
      if (topology) keys.add(taskKey(topology.name, partition));
    }
    // Lost partitions may already be processed by their new owner: their uncommitted work is dropped, not committed.
    await handler.beforeRevoke(keys, lost);
    const all: TopicPartition[] = [];
    for (const { topic, partition } of partitions) {
      const topology = this.options.byLead.get(topic);
      if (!topology) continue;
      await handler.closeTask(taskKey(topology.name, partition), lost);
      all.push(...this.followersOf(topic, partition));
    }
    this.options.metrics.rebalances.labels('revoked').inc(partitions.length);
    this.options.metrics.tasks.set(handler.taskCount());
    this.incremental().incrementalUnassign(all);
    this.options.logger.info({ partitions: all, lost }, 'partitions revoked');
  }
}
