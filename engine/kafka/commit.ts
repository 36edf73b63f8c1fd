import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EngineMetrics } from '../metrics.js';
import type { OutputRecord } from '../record.js';
import { changelogTopic, changelogValue } from './changelog.js';
import { call, KafkaError, type AsyncCommit, type KafkaConsumerType, type TopicPartitionOffset } from './client.js';
import type { OutputProducer } from './producer.js';
import type { KafkaTasks } from './tasks.js';

export type ProcessingGuarantee = 'at_least_once' | 'exactly_once';

export interface CommitPipelineOptions {
  applicationId: string;
  instanceId: string;
  guarantee: ProcessingGuarantee;
  logger: Logger;
  metrics: EngineMetrics;
  now: () => number;
}

/**
 * Makes the tasks' work durable: outputs and changelog records produced, then input offsets committed
 * (at-least-once), or all of it in one transaction (exactly-once). Outputs are produced between
 * commits as they are processed (`sendEarly`); a commit is started and finishes while processing goes
 * on (`start`), and the next commit or `settle` waits for it and throws its error.
 */
export class CommitPipeline {
  /** Exactly-once: a transaction was begun and outputs produced into it ahead of its commit (see sendEarly). */
  private transactionOpen = false;
  /** False from the start of a commit until it succeeded: no new transaction may begin meanwhile. */
  private commitSucceeded = true;
  /** Exactly-once, after a failed commit: the producer's transaction state is unknown; replace it before producing again. */
  private producerNeedsReset = false;
  /** Input offsets of drained work per task, committed by the next commit (see sendEarly). */
  private readonly drainedOffsets = new Map<string, Map<string, TopicPartitionOffset>>();
  /** The second half of the last commit, running while processing goes on (see start). */
  private inflight: Promise<void> | undefined;
  private failedCommits = 0;
  /** When the last commit started. */
  lastCommit = 0;

  constructor(
    private readonly options: CommitPipelineOptions,
    private readonly tasks: KafkaTasks,
    private readonly consumer: KafkaConsumerType,
    private readonly producer: OutputProducer,
  ) {
    this.lastCommit = options.now();
  }

  /** Makes outputs, changelog records and input offsets durable: in that order, or atomically under exactly-once. */
  async commit(): Promise<void> {
    await this.start();
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
  async start(): Promise<void> {
    await this.settle();
    this.lastCommit = this.options.now();
    const outputs = this.drainTasks();
    const offsets: TopicPartitionOffset[] = [];
    for (const byPartition of this.drainedOffsets.values()) for (const o of byPartition.values()) offsets.push(o);
    this.drainedOffsets.clear();
    if (outputs.length === 0 && offsets.length === 0 && !this.transactionOpen) return;
    const started = process.hrtime.bigint();
    let finishing: Promise<void>;
    if (this.options.guarantee === 'exactly_once') {
      if (!this.transactionOpen) await call('beginning a transaction', (cb) => this.producer.client.beginTransaction(cb));
      this.transactionOpen = false;
      this.commitSucceeded = false;
      try {
        this.producer.produceAll(outputs);
      } catch (err) {
        await this.abortTransaction(err);
        throw err;
      }
      finishing = this.finishTransaction(offsets, started);
    } else {
      this.producer.produceAll(outputs);
      finishing = this.finishAtLeastOnce(offsets, started);
    }
    finishing.catch(() => undefined); // observed by settle()
    this.inflight = finishing;
  }

  /** Waits for the commit in flight, if any; throws its error. */
  async settle(): Promise<void> {
    const inflight = this.inflight;
    if (!inflight) return;
    this.inflight = undefined;
    await inflight;
  }

  /**
   * Between commits: produces the outputs processed so far (with the changelog records of that work)
   * right away, like Kafka Streams, instead of holding them until the commit. At-least-once: their
   * offsets wait for the commit, which flushes the producer first. Exactly-once: into the transaction,
   * begun here unless the previous one is still committing, so the commit only has to send the offsets
   * and commit; nothing is visible to read_committed consumers before the commit, and an aborted
   * transaction takes these records with it.
   */
  async sendEarly(): Promise<void> {
    if (this.options.guarantee === 'at_least_once') {
      if (this.hasPendingOutputs()) this.producer.produceAll(this.drainTasks());
      return;
    }
    if (!this.commitSucceeded || this.producerNeedsReset) return;
    if (!this.hasPendingOutputs()) return;
    if (!this.transactionOpen) {
      await call('beginning a transaction', (cb) => this.producer.client.beginTransaction(cb));
      this.transactionOpen = true;
    }
    this.producer.produceAll(this.drainTasks());
  }

  /** Drained input offsets of a task that is closed or dropped are not committed by this instance. */
  forget(key: string): void {
    this.drainedOffsets.delete(key);
  }

  /** Counts a failed commit; returns how many failed in a row (a successful commit resets the count). */
  countFailure(): number {
    return ++this.failedCommits;
  }

  /** After a failed commit: waits out the commit in flight and aborts the open transaction; the caller drops the tasks' uncommitted work. */
  async discard(err: unknown): Promise<void> {
    await this.settle().catch(() => undefined); // its work is dropped too
    if (this.transactionOpen) {
      this.transactionOpen = false;
      await this.abortTransaction(err);
    }
    this.commitSucceeded = true;
    this.producer.clearDeliveryErrors();
    if (this.options.guarantee === 'exactly_once') this.producerNeedsReset = true;
  }

  /** Replaces the producer when a failed transaction left it in an unknown state; before reopening tasks. */
  async resetProducerIfNeeded(): Promise<void> {
    if (!this.producerNeedsReset) return;
    await this.producer.reset();
    this.producerNeedsReset = false;
  }

  get needsProducerReset(): boolean {
    return this.producerNeedsReset;
  }

  /**
   * After `run` failed: the commit in flight (of complete earlier work) may finish; the work since is
   * half done (a record that threw, the rest of its batch) and is never committed, nor is the open
   * transaction. The instance that takes over (or this one restarted) processes it again from the
   * committed offsets.
   */
  async abandonUncommitted(): Promise<void> {
    await this.settle().catch(() => undefined);
    if (!this.transactionOpen) return;
    this.transactionOpen = false;
    await call('aborting the transaction', (cb) => this.producer.client.abortTransaction(30_000, cb)).catch(() => undefined);
  }

  /**
   * Takes what the tasks processed: local store writes are applied, input offsets kept in
   * drainedOffsets for the commit, outputs and changelog records returned for producing.
   */
  private drainTasks(): OutputRecord[] {
    const outputs: OutputRecord[] = [];
    const now = this.options.now();
    for (const [key, rt] of this.tasks.entries()) {
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

  private hasPendingOutputs(): boolean {
    for (const rt of this.tasks.values()) if (rt.task.pendingOutputs() > 0) return true;
    return false;
  }

  private async finishTransaction(offsets: TopicPartitionOffset[], started: bigint): Promise<void> {
    try {
      if (offsets.length > 0) await call('sending offsets to the transaction', (cb) => this.producer.client.sendOffsetsToTransaction(offsets, this.consumer, 30_000, cb));
      await call('committing the transaction', (cb) => this.producer.client.commitTransaction(60_000, cb));
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
    await call('aborting the transaction', (cb) => this.producer.client.abortTransaction(30_000, cb)).catch(() => undefined);
  }

  private async finishAtLeastOnce(offsets: TopicPartitionOffset[], started: bigint): Promise<void> {
    await this.producer.flush();
    if (offsets.length > 0) await call('committing offsets', (cb) => (this.consumer as unknown as AsyncCommit).commitCb(offsets, cb));
    this.committed(started);
  }

  private committed(started: bigint): void {
    this.failedCommits = 0;
    this.options.metrics.commits.inc();
    this.options.metrics.commitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }
}
